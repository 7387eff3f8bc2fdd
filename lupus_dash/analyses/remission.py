"""Remission: LLDAS, DORIS remission and renal response rates, disease states,
which criterion failed, time to first response."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from .. import endpoints, schema, stats
from ..cache import memoize
from ..db import Database
from ..filters import Filter
from ..results import Part, analysis
from .common import cohort_info, count_patients

# Outcome columns per definition; lldas/remission depend on the preset.
EXTRA_OUTCOMES = {
    # Seed paper (Wang 2022) reports these at the last follow-up.
    "glucocorticoid_off": ("prednisone_mg_day", "= 0"),
    "glucocorticoid_le_5": ("prednisone_mg_day", "<= 5"),
}


def _outcome_expr(definition: str, preset: str) -> str:
    if definition in schema.PRESET_DEFINITIONS:
        if preset not in schema.PRESETS:
            raise ValueError(f"unknown preset {preset!r}; choose from {', '.join(schema.PRESETS)}")
        return f'v."{definition}_{preset}"'
    if definition in schema.RENAL_DEFINITIONS:
        return f'v."{definition}"'
    if definition in EXTRA_OUTCOMES:
        col, op = EXTRA_OUTCOMES[definition]
        return f'(v."{col}" {op})'
    raise ValueError(f"unknown definition {definition!r}")


NOT_EVALUABLE_RULES = ("exclude", "failure")
# Each definition in words (screen, slides, exports).
LABELS = {"lldas": "LLDAS", "remission": "Remission",
          "renal_complete": "Complete renal response",
          "renal_partial": "Partial renal response (not complete)",
          "renal_overall": "Overall renal response (complete or partial)",
          "renal_crr": "Complete renal response (BLISS-LN)",
          "renal_perr": "Primary efficacy renal response (BLISS-LN)",
          "glucocorticoid_off": "Off glucocorticoids",
          "glucocorticoid_le_5": "Prednisone ≤ 5 mg/day"}
RATE_COLUMNS = ["visit_week", "definition", "n_achieved", "n_not_achieved", "n_not_evaluable",
                "n_no_assessment", "n_eligible", "n_denominator", "denominator_rule", "rate",
                "ci_low", "ci_high"]


def renal_threshold(definition: str) -> float:
    """Baseline proteinuria (g/g, or g/day) a patient needs to count for a renal definition:
    active nephritis as KDIGO defines it (≥ 0.5 g/g) for the KDIGO responses, BLISS-LN's
    enrolment criterion (≥ 1 g/g) for CRR and PERR (endpoints.RENAL_RESPONSES)."""
    return endpoints.RENAL_RESPONSES[definition].eligibility.min_g_g


def _rates_cli(kw: dict) -> list[str]:
    out = []
    if kw.get("preset", "standard") != "standard":
        out += ["--definitions", kw["preset"]]
    if kw.get("observed"):
        out.append("--observed")
    if kw.get("not_evaluable", "exclude") != "exclude":
        out += ["--not-evaluable", kw["not_evaluable"]]
    return out


@analysis(counts={"n_achieved": "n_denominator", "n_not_achieved": "n_denominator",
                  "n_not_evaluable": "n_eligible", "n_no_assessment": "n_eligible",
                  "n_denominator": "n_eligible", "n_eligible": None},
          n_of={"rate": "n_denominator", "ci_low": "n_denominator", "ci_high": "n_denominator"},
          cli=_rates_cli)
@memoize
def rates(
    db: Database,
    flt: Filter,
    preset: str = "standard",
    observed: bool = False,
    ci: str = "wilson",
    definitions: Sequence[str] = schema.REMISSION_DEFINITIONS,
    extras: bool = True,
    not_evaluable: str = "exclude",
) -> pd.DataFrame:
    """Rates by scheduled visit and at each patient's last assessment (`visit_week="last"`).

    Per visit and definition: achieved, not achieved, not evaluable (attended, a
    component missing) and no assessment (missed or stopped), among the eligible
    patients (everyone in the filter; for renal definitions those with active
    nephritis at baseline, `renal_threshold`). Non-responder imputation by default,
    the seed paper's convention (14/26): a patient with no assessment counts as not
    achieving it and stays in the denominator. `observed=True` divides by the
    patients assessed at that visit instead. Not-evaluable visits are left out of the
    denominator and reported apart (`not_evaluable="exclude"`) or, as a sensitivity
    analysis, counted as not achieved (`"failure"`). `denominator_rule` says which.
    """
    if not_evaluable not in NOT_EVALUABLE_RULES:
        raise ValueError(f"not_evaluable must be one of {NOT_EVALUABLE_RULES}")
    defs = list(definitions) + (list(EXTRA_OUTCOMES) if extras else [])
    weeks = cohort_info(db, flt.cohort)["scheduled_weeks"]
    cond, params = flt.where("p")
    exprs = ", ".join(f'{_outcome_expr(d, preset)} AS "{d}"' for d in defs)

    def elig(d: str) -> str:
        # Renal definitions count the patients their definition applies to: the patient-level
        # flag derived at import (NULL = no baseline proteinuria, reported as unknown).
        return f'"{schema.RENAL_ELIGIBLE_COLUMN[d]}"' if d in schema.RENAL_DEFINITIONS else "TRUE"

    flags = sorted({schema.RENAL_ELIGIBLE_COLUMN[d] for d in defs
                    if d in schema.RENAL_DEFINITIONS})

    sums = ", ".join(
        f'count(*) FILTER (WHERE {elig(d)} AND visit_week IS NOT NULL) AS "{d}__att", '
        f'count(*) FILTER (WHERE {elig(d)} AND "{d}") AS "{d}__yes", '
        f'count("{d}") FILTER (WHERE {elig(d)}) AS "{d}__obs"'
        for d in defs
    )
    eligible = ", ".join(f'count(*) FILTER (WHERE {elig(d)}) AS "{d}"' for d in defs)
    flag_cols = "".join(f', p."{f}"' for f in flags)
    base = f"SELECT p.patient_id{flag_cols} FROM patient_facts p WHERE {cond}"
    unknown = "".join(f', count(*) FILTER (WHERE "{schema.RENAL_ELIGIBLE_COLUMN[d]}" IS NULL) '
                      f'AS "{d}__unknown"' for d in defs if d in schema.RENAL_DEFINITIONS)
    sql = f"""
        WITH base AS ({base}),
        r AS (SELECT base.*, v.visit_week, v.is_last, {exprs}
              FROM base LEFT JOIN visit_facts v
                ON v.cohort = ? AND v.patient_id = base.patient_id),
        by_week AS (SELECT CAST(visit_week AS VARCHAR) AS wk, {sums} FROM r
                    WHERE visit_week IN (SELECT unnest(?)) GROUP BY visit_week),
        last AS (SELECT 'last' AS wk, {sums} FROM r WHERE is_last)
        SELECT * FROM by_week UNION ALL SELECT * FROM last
    """
    counts = db.query(sql, [*params, flt.cohort, [int(w) for w in weeks]])
    # Eligible patients per definition and, for renal ones, those of unknown eligibility.
    n_elig = db.query(f"WITH base AS ({base}) SELECT {eligible}{unknown} FROM base",
                      params).iloc[0]
    by_wk = {r["wk"]: r for _, r in counts.iterrows()}
    failure = not_evaluable == "failure"
    out = []
    for wk in [*(str(w) for w in weeks), "last"]:
        r = by_wk.get(wk)
        for d in defs:
            n_e = int(n_elig[d])
            att = 0 if r is None else int(r[f"{d}__att"])
            yes = 0 if r is None else int(r[f"{d}__yes"])
            obs = 0 if r is None else int(r[f"{d}__obs"])
            not_eval, no_assess = att - obs, n_e - att
            denom = (obs if observed else obs + no_assess) + (not_eval if failure else 0)
            rule = ("observed: patients assessed at this visit" if observed else
                    "non-responder imputation: missed or stopped count as not achieved")
            if not_eval:
                rule += ("; not evaluable counted as not achieved" if failure
                         else "; not evaluable left out")
            if d in schema.RENAL_DEFINITIONS:
                rule += f"; patients with baseline proteinuria ≥ {renal_threshold(d):g} g/g"
                n_unk = int(n_elig[f"{d}__unknown"])
                if n_unk:
                    rule += (f" ({n_unk} without a baseline proteinuria not "
                             "counted)")
            rate, lo, hi = stats.proportion_ci(yes, denom, method=ci)
            out.append({
                "visit_week": "last" if wk == "last" else int(wk),
                "definition": d,
                "n_achieved": yes,
                "n_not_achieved": obs - yes,
                "n_not_evaluable": not_eval,
                "n_no_assessment": no_assess,
                "n_eligible": n_e,
                "n_denominator": denom,
                "denominator_rule": rule,
                "rate": rate,
                "ci_low": lo,
                "ci_high": hi,
            })
    return pd.DataFrame(out, columns=RATE_COLUMNS)


@analysis(counts={"n": "n_total"}, n_of={"pct": "n_total"}, cli=lambda kw: None)
@memoize
def states(db: Database, flt: Filter, preset: str = "standard") -> pd.DataFrame:
    """Patients per visit in remission, LLDAS (not remission), active, not evaluable or no visit."""
    weeks = cohort_info(db, flt.cohort)["scheduled_weeks"]
    cond, params = flt.where("p")
    lld, rem = f'v."lldas_{preset}"', f'v."remission_{preset}"'
    if preset not in schema.PRESETS:
        raise ValueError(f"unknown preset {preset!r}")
    # States of the visits held; patients without a visit that week are 'no visit'
    # (counted, not joined from a patients × weeks grid).
    sql = f"""
        SELECT v.visit_week,
          CASE WHEN {rem} THEN 'remission'
               WHEN {lld} THEN 'LLDAS'
               WHEN NOT {lld} THEN 'active'
               ELSE 'not evaluable' END AS state,
          count(*) AS n
        FROM visit_facts v JOIN patient_facts p
          ON p.cohort = v.cohort AND p.patient_id = v.patient_id
        WHERE {cond} AND v.visit_week IN (SELECT unnest(?))
        GROUP BY ALL
    """
    held = db.query(sql, [*params, [int(w) for w in weeks]])
    k, _ = count_patients(db, flt)
    seen = held.groupby("visit_week")["n"].sum()
    absent = [{"visit_week": int(w), "state": "no visit", "n": k - int(seen.get(w, 0))}
              for w in weeks if k - int(seen.get(w, 0)) > 0]
    df = pd.concat([held, pd.DataFrame(absent, columns=["visit_week", "state", "n"])],
                   ignore_index=True).astype({"visit_week": "int32", "state": "str", "n": "int64"})
    total = df.groupby("visit_week")["n"].transform("sum")
    df["n_total"] = total
    df["pct"] = df["n"] / total * 100
    order = {s: i for i, s in enumerate(["remission", "LLDAS", "active", "not evaluable",
                                         "no visit"])}
    df = df.sort_values(["visit_week", "state"], key=lambda s: s.map(order) if s.name == "state"
                        else s)
    return df.reset_index(drop=True)


@analysis(parts={"curves": Part(counts={"n_risk": None, "n_event": "n_risk",
                                       "n_censor": "n_risk"},
                               n_of={"survival": "n_risk", "ci_low": "n_risk",
                                     "ci_high": "n_risk"}, group="group"),
                 "test": Part(p_columns=("p_value",), groups_n=("n",))},
          cli=lambda kw: None)
@memoize
def time_to_event(
    db: Database,
    flt: Filter,
    definition: str = "lldas",
    preset: str = "standard",
    group_by: str | None = None,
):
    """Kaplan–Meier of weeks to the first visit meeting `definition`; log-rank across groups.

    Patients who never meet it are censored at their last assessed visit.
    """
    expr = _outcome_expr(definition, preset)
    cond, params = flt.where("p")
    grp = f'CAST(p."{group_by}" AS VARCHAR)' if group_by else "'All'"
    sql = f"""
        SELECT p.patient_id, {grp} AS grp,
               min(v.visit_week) FILTER (WHERE {expr}) AS first_event,
               max(v.visit_week) AS last_week
        FROM patient_facts p JOIN visit_facts v
          ON v.cohort = p.cohort AND v.patient_id = p.patient_id AND v.visit_week > 0
        WHERE {cond} GROUP BY ALL
    """
    df = db.query(sql, params)
    df["grp"] = df["grp"].fillna("(missing)")
    df["event"] = df["first_event"].notna().astype(int)
    df["time"] = df["first_event"].fillna(df["last_week"]).astype(float)
    curves = []
    for g, sub in df.groupby("grp", sort=True):
        km = stats.kaplan_meier(sub["time"].to_numpy(), sub["event"].to_numpy())
        km.insert(0, "group", g)
        curves.append(km)
    km = pd.concat(curves, ignore_index=True) if curves else pd.DataFrame()
    test = pd.DataFrame(columns=["method", "n", "statistic", "df", "p_value", "reason"])
    if group_by and df["grp"].nunique() >= 2:
        res = stats.logrank(df["time"].to_numpy(), df["event"].to_numpy(),
                            df["grp"].to_numpy(object))
        test = pd.DataFrame([{"method": res.method, "n": res.n, "statistic": res.statistic,
                              "df": res.df, "p_value": res.p_value, "reason": res.reason}])
    return {"curves": km, "test": test}


@analysis(patient_level=True)
def criteria(
    db: Database, flt: Filter, preset: str = "standard", week: int | str = "last"
) -> pd.DataFrame:
    """Per patient at one visit (or the last assessment): LLDAS, remission and why not."""
    if preset not in schema.PRESETS:
        raise ValueError(f"unknown preset {preset!r}")
    cond, params = flt.where("p")
    lld, rem = f"lldas_{preset}", f"remission_{preset}"
    at = "v.is_last" if week == "last" else "v.visit_week = ?"
    wparams = [] if week == "last" else [int(week)]
    renal = ", ".join(f'v."{d}", v."{d}_why"' for d in ("renal_complete", "renal_partial",
                                                         "renal_overall"))
    return db.query(
        f'SELECT p.patient_id, v.visit_week, v."{lld}" AS lldas, v."{lld}_why" AS lldas_why, '
        f'v."{rem}" AS remission, v."{rem}_why" AS remission_why, {renal} '
        "FROM patient_facts p LEFT JOIN visit_facts v ON v.cohort = p.cohort "
        f"AND v.patient_id = p.patient_id AND {at} WHERE {cond} ORDER BY p.patient_id",
        [*wparams, *params],
    )




OUTCOMES = ("achieved", "not achieved", "not evaluable", "no assessment")


@analysis(patient_level=True, cli=lambda kw: None)
def who(db: Database, flt: Filter, definition: str = "lldas", week: int | str = "last",
        preset: str = "standard") -> pd.DataFrame:
    """The patients behind a rate (drill-down): each eligible patient's outcome at one visit
    (or the last assessment) — achieved, not achieved, not evaluable (attended, a component
    missing) or no assessment (missed or stopped) — with the reason it was not met. The
    counts per outcome equal `rates`' n_achieved, n_not_achieved, n_not_evaluable and
    n_no_assessment for the same definition and visit. Patient-level."""
    expr = _outcome_expr(definition, preset)
    why = (f'v."{definition}_{preset}_why"' if definition in schema.PRESET_DEFINITIONS
           else f'v."{definition}_why"' if definition in schema.RENAL_DEFINITIONS else "NULL")
    cond, params = flt.where("p")
    elig = (f' AND p."{schema.RENAL_ELIGIBLE_COLUMN[definition]}"'
            if definition in schema.RENAL_DEFINITIONS else "")
    at = "v.is_last" if week == "last" else "v.visit_week = ?"
    wparams = [] if week == "last" else [int(week)]
    df = db.query(
        f"SELECT p.patient_id, v.visit_week, {expr} AS outcome, {why} AS why, "
        "v.patient_id IS NOT NULL AS attended "
        "FROM patient_facts p LEFT JOIN visit_facts v ON v.cohort = p.cohort "
        f"AND v.patient_id = p.patient_id AND {at} WHERE {cond}{elig} ORDER BY p.patient_id",
        [*wparams, *params],
    )
    state = pd.Series("no assessment", index=df.index, dtype=object)
    ok = df["attended"].astype(bool)
    val = df["outcome"].astype("boolean")
    state[ok & val.isna().to_numpy()] = "not evaluable"
    state[ok & (val == True).fillna(False).to_numpy()] = "achieved"
    state[ok & (val == False).fillna(False).to_numpy()] = "not achieved"
    return pd.DataFrame({"patient_id": df["patient_id"], "visit_week": df["visit_week"],
                         "outcome": state, "why": df["why"].fillna("")})
