"""Treat-to-target: time in LLDAS and remission, sustained states, flares, what became of
patients who stopped (intercurrent-event strategies), disease-state flow, time to first
target, the swimmer plot (the rules: lupus_dash.treat_to_target)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .. import schema, survival
from ..cache import memoize
from ..db import Database
from ..filters import Filter
from ..results import Part, analysis
from ..treat_to_target import (
    DEFINITIONS,
    SUMMARY_COLUMNS,
    SUSTAIN_VISITS,
    SUSTAIN_WEEKS,
    SWIMMER_MAX,
    _check_strategy,
    ae_markers,
    per_patient,
    state_counts,
    summarise,
    swimmer_data,
    time_to_target,
    transitions,
    visit_states,
)
from .common import cohort_info


@memoize
def _frames(db: Database, flt: Filter, preset: str, group_by: str | None = None):
    """(visits, patients) of the filtered cohort: integer patient codes, two queries.

    visits: patient, week, lldas, remission (NaN = not evaluable); patients: patient_id,
    patient (code), stop_week, stop_reason[, group]. Only these columns leave DuckDB.
    Memoised: the page's time in target, flow, time to first and swimmer share one pull.
    """
    if preset not in schema.PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose from {', '.join(schema.PRESETS)}")
    if group_by is not None and group_by not in schema.GROUPING_COLUMNS:
        raise ValueError(f"cannot group by {group_by!r}")
    cond, params = flt.where("p")
    grp = f', CAST(p."{group_by}" AS VARCHAR) AS "group"' if group_by else ""
    pts_sql = (f"SELECT p.patient_id, CAST(row_number() OVER (ORDER BY p.patient_id) - 1 "
               f"AS BIGINT) AS patient, CAST(p.discontinued_week AS DOUBLE) AS stop_week, "
               f"p.discontinuation_reason AS stop_reason{grp} FROM patient_facts p WHERE {cond}")
    patients = db.query(pts_sql + " ORDER BY patient", params)
    vis_sql = f"""
        WITH pts AS ({pts_sql})
        SELECT pts.patient, CAST(v.visit_week AS DOUBLE) AS week,
               CAST(v."lldas_{preset}" AS DOUBLE) AS lldas,
               CAST(v."remission_{preset}" AS DOUBLE) AS remission
        FROM visit_facts v JOIN pts ON v.patient_id = pts.patient_id
        WHERE v.cohort = ?
    """
    cur = db.cursor()
    try:
        res = cur.execute(vis_sql, [*params, flt.cohort]).fetchnumpy()
    finally:
        cur.close()
    visits = pd.DataFrame({k: (np.ma.filled(v.astype(float), np.nan) if np.ma.isMaskedArray(v)
                               else v) for k, v in res.items()})
    if group_by:
        patients["group"] = patients["group"].fillna("(missing)")
    return visits, patients


def _end_week(db: Database, flt: Filter) -> float:
    return float(cohort_info(db, flt.cohort)["final_week"])


def _tit_cli(kw: dict) -> list[str]:
    out = ["--time-in-target"]
    if kw.get("strategy", "composite") != "composite":
        out += ["--strategy", kw["strategy"]]
    if kw.get("preset", "standard") != "standard":
        out += ["--definitions", kw["preset"]]
    return out


@analysis(counts={"n": None, "n_ge_50pct": "n", "n_sustained": "n", "n_reached": "n",
                  "n_flare": "n", "n_lost_by_stop": "n", "n_no_observed_time": None},
          n_of={c: "n" for c in ("median", "p25", "p75", "share_ge_50pct", "ci_low",
                                 "ci_high", "share_sustained", "sustained_ci_low",
                                 "sustained_ci_high")},
          cli=_tit_cli)
@memoize
def time_in_target(db: Database, flt: Filter, preset: str = "standard",
                   strategy: str = "composite", min_visits: int = SUSTAIN_VISITS,
                   min_weeks: float = SUSTAIN_WEEKS) -> pd.DataFrame:
    """The report's `time_in_target` rows: one per definition (LLDAS, remission)."""
    _check_strategy(strategy)
    visits, patients = _frames(db, flt, preset)
    end = _end_week(db, flt)
    rows = [summarise(per_patient(visits, patients, d, strategy, end, min_visits, min_weeks),
                      d, strategy) for d in DEFINITIONS]
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


@analysis(parts={
    "curves": Part(counts={"n_risk": None, "n_event": "n_risk", "n_censor": "n_risk"},
                   n_of={"survival": "n_risk", "ci_low": "n_risk", "ci_high": "n_risk"},
                   group="group"),
    "risk": Part(counts={"n_risk": None}, group="group"),
    "medians": Part(counts={"n": None, "events": "n"},
                    n_of={"median": "n", "ci_low": "n", "ci_high": "n"}, group="group"),
    "tests": Part(p_columns=("p_value", "estimate", "ci_low", "ci_high", "p_score", "p_lr"),
                  groups_n=("n_smallest_group",)),
    "counts": Part(counts={c: "n_patients" for c in (
        "n_at_risk", "n_events", "n_at_baseline", "n_baseline_not_assessed", "n_no_follow_up",
        "n_stopped_censored_at_end")} | {"n_patients": None})},
    cli=lambda kw: None)
@memoize
def time_to_first(db: Database, flt: Filter, definition: str = "lldas",
                  preset: str = "standard", strategy: str = "composite",
                  group_by: str | None = None) -> dict:
    """Kaplan–Meier of weeks to the first post-baseline LLDAS (or remission), by strategy.

    Returns `survival.km_summary` (curves, risk, medians, logrank, cox) plus `counts`:
    n_at_risk, n_events, n_at_baseline (in the state at baseline, reported apart),
    n_baseline_not_assessed, n_no_follow_up, n_stopped_censored_at_end.
    """
    if definition not in DEFINITIONS:
        raise ValueError(f"definition must be one of {', '.join(DEFINITIONS)}")
    visits, patients = _frames(db, flt, preset, group_by)
    end = _end_week(db, flt)
    tt = time_to_target(visits, patients, definition, strategy, end)
    if group_by:
        tt["group"] = patients["group"].to_numpy()
    inc = tt[tt["included"]]
    weeks = cohort_info(db, flt.cohort)["scheduled_weeks"]
    out = survival.km_summary(inc, group="group" if group_by else None,
                              times=[float(w) for w in weeks])
    out["counts"] = {
        "n_patients": len(tt), "n_at_risk": len(inc),
        "n_events": int(inc["event"].sum()),
        "n_at_baseline": int(tt["at_baseline"].sum()),
        "n_baseline_not_assessed": int((~tt["baseline_assessed"] & tt["included"]).sum()),
        "n_no_follow_up": int((tt["why"] == "no assessed visit after baseline").sum()),
        "n_stopped_censored_at_end": int((inc["stopped"] & (inc["event"] == 0)).sum())
        if strategy == "composite" else 0,
    }
    out["counts"] = pd.DataFrame([out["counts"]])
    out["tests"] = _tests_frame(out.pop("logrank"), out.pop("cox"))
    med = out["medians"]
    out["tests"]["n_smallest_group"] = int(med["n"].min()) if len(med) else 0
    out.pop("strategy", None)
    return out


def _tests_frame(logrank, cox) -> pd.DataFrame:
    """Log-rank and Cox rows of a grouped KM (empty without groups)."""
    rows = []
    if logrank is not None:
        rows.append({"method": "logrank", "n": logrank.n, "statistic": logrank.statistic,
                     "df": logrank.df, "p_value": logrank.p_value, "estimate": None,
                     "ci_low": None, "ci_high": None, "reason": logrank.reason})
    if cox:
        rows.append({"method": "cox", "n": cox["n"], "statistic": None, "df": None,
                     "p_value": cox["p_wald"], "estimate": cox["hr"],
                     "ci_low": cox["ci_low"], "ci_high": cox["ci_high"],
                     "reason": cox["reason"], "p_score": cox["p_score"], "p_lr": cox["p_lr"],
                     "groups": " vs ".join(map(str, cox["groups"][::-1]))
                     if cox.get("groups") else None})
    return pd.DataFrame(rows)


@analysis(parts={"counts": Part(counts={"n": "n_total"}),
                 "transitions": Part(counts={"n": None})}, cli=lambda kw: None)
@memoize
def state_flow(db: Database, flt: Filter, preset: str = "standard",
               strategy: str = "composite") -> dict[str, pd.DataFrame]:
    """(patients per scheduled visit × state, transitions between consecutive visits)."""
    visits, patients = _frames(db, flt, preset)
    weeks = cohort_info(db, flt.cohort)["scheduled_weeks"]
    states = visit_states(visits, patients, weeks, strategy)
    counts = state_counts(states, weeks)
    counts["n_total"] = counts.groupby("visit_week")["n"].transform("sum")
    return {"counts": counts, "transitions": transitions(states, weeks)}


@analysis(parts={"lanes": Part(patient_level=True), "markers": Part(patient_level=True),
                 "note": Part()}, patient_level=True, cli=lambda kw: None)
@memoize
def swimmer(db: Database, flt: Filter, preset: str = "standard", strategy: str = "composite",
            sort_by: str = "stopped_first", max_patients: int = SWIMMER_MAX):
    """(lanes, markers, note) of `swimmer_data` with real patient ids and adverse events.

    Patient-level: the page hides it in shared mode.
    """
    visits, patients = _frames(db, flt, preset)
    end = _end_week(db, flt)
    lanes, markers, note = swimmer_data(visits, patients, None, strategy=strategy,
                                        sort_by=sort_by, max_patients=max_patients,
                                        end_week=end)
    # Integer codes back to patient ids (codes follow patient_id order, so sorting by
    # code is sorting by id).
    ids = patients["patient_id"].to_numpy(dtype=object)
    lanes["patient"] = ids[lanes["patient"].to_numpy(np.int64)]
    markers["patient"] = ids[markers["patient"].to_numpy(np.int64)]
    shown = lanes["patient"].tolist()
    if shown:
        ae = db.query(
            "SELECT patient_id AS patient, CAST(onset_week AS DOUBLE) AS week, term "
            "FROM adverse_events WHERE patient_id IN (SELECT unnest(?)) "
            "AND onset_week IS NOT NULL", [shown])
        if len(ae):
            markers = pd.concat([markers, ae_markers(ae, lanes)], ignore_index=True).sort_values(
                ["lane", "week"], kind="stable").reset_index(drop=True)
    return {"lanes": lanes, "markers": markers, "note": pd.DataFrame({"note": [note]})}
