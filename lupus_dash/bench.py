"""Benchmark: the computation behind every page for a fixed sequence of 20 filter changes.

`python -m lupus_dash bench [--patients N] [--db FILE] [--cohort C] [--format json]`
builds (or reuses) an N-patient cohort with `build-demo --scale N`, then for each
of 20 realistic filter changes times, per page, the same `analysis` / `explore` /
`report` calls the page makes (uncached: the app caches by filter state, so a
new filter is a cache miss — this is the worst case a user sees). It also
times the floor (one bare DuckDB scan-and-aggregate of the endpoint columns
for the same filter), the pandas peer (the Biomarkers and Remission
computations written the common way: the whole visit table in pandas, filtered
and grouped in pandas), the mixed model on its own, the peak RSS and the size
of every chart's data as the browser would receive it.

Issue 6 targets; see docs/BENCHMARK.md for the measured figures.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from . import analysis, explore, report, schema, stats
from .db import Database
from .filters import Filter

N_CHANGES = 20
# Pages' default widget state, as the page files set it (pages/*.py).
DEFAULT_ENDPOINT = "c3_g_l"
DEFAULT_GROUP = "class_group"
PRESET = "standard"
TARGET_PAYLOAD_BYTES = 200 * 1024


# --- the cohort ---------------------------------------------------------------------------


def cache_dir() -> Path:
    """Where scale cohorts are kept between runs ($LUPUS_DASH_BENCH_DIR or the user cache)."""
    env = os.environ.get("LUPUS_DASH_BENCH_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "lupus_dash"


def _synth_available() -> bool:
    try:
        from . import synth
    except ImportError:
        return False
    return hasattr(synth, "build_demo")


def ensure_cohort(n: int, path: Path | None = None) -> tuple[Path, dict]:
    """The N-patient benchmark file (built once, then reused); returns (path, build info).

    Built in a child process so the build's memory does not count in the
    benchmark's peak RSS. `build-demo --scale N` when synth is present, else the
    small vectorised generator below (`fallback_tables`).
    """
    builder = "synth" if _synth_available() else "fallback"
    if path is None:
        path = cache_dir() / f"scale_{n}_{builder}.duckdb"
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        return path, {"builder": builder, "built": False, "build_s": None, "path": str(path)}
    if builder == "synth":
        cmd = [sys.executable, "-m", "lupus_dash", "build-demo", "--scale", str(n),
               "--db", str(path)]
    else:
        cmd = [sys.executable, "-m", "lupus_dash.bench", "--build-fallback", str(n), str(path)]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return path, {"builder": builder, "built": True, "build_s": time.perf_counter() - t0,
                  "path": str(path)}


FALLBACK_WEEKS = (0, 4, 12, 24, 52)  # the seed paper's schedule (Wang 2022)


def fallback_tables(n: int, seed: int = 6, cohort: str = "scale") -> dict[str, pd.DataFrame]:
    """N synthetic patients (patients, visits, adverse_events), vectorised, for timing only.

    Plausible shapes, not calibrated to the papers (that is synth's job): used
    only until `build-demo --scale` exists.
    """
    rng = np.random.default_rng(seed)
    ids = np.char.add("S", np.char.zfill(np.arange(1, n + 1).astype(str), 7))
    sex = np.where(rng.random(n) < 0.87, "F", "M")
    onset = np.clip(rng.normal(26, 11, n), 4, 75)
    dur = np.clip(rng.gamma(1.5, 30, n), 1, 400)
    base_age = onset + dur / 12
    kidney = rng.random(n) < 0.55
    classes = np.array(["II", "III", "IV", "V", "III+V", "IV+V", "I", "VI"])
    cls = classes[rng.choice(8, n, p=[.08, .2, .38, .16, .07, .07, .02, .02])].astype(object)
    cls[~kidney | (rng.random(n) < 0.35)] = None
    imm = np.array(["MMF", "CYC", "AZA", "TAC", "MMF+TAC", "MMF after CYC"], dtype=object)[
        rng.choice(6, n, p=[.42, .12, .16, .08, .1, .12])]
    imm[rng.random(n) < 0.08] = None
    stop = rng.random(n) < 0.12
    stop_week = np.where(stop, rng.choice([8, 16, 30, 40], n), -1)
    reasons = np.array(["lack of efficacy", "adverse event", "cost", "patient choice"],
                       dtype=object)[rng.integers(0, 4, n)]
    patients = pd.DataFrame({
        "patient_id": ids, "cohort": cohort, "sex": sex,
        "age_at_onset_years": onset.round(1), "age_at_baseline_years": base_age.round(1),
        "disease_duration_months": dur.round(0),
        "biopsy_class": cls, "immunosuppressant": imm,
        "antimalarial": rng.random(n) < 0.85, "ana_positive": rng.random(n) < 0.97,
        "weight_kg": np.clip(rng.normal(60, 12, n), 30, 130).round(1),
        "height_cm": np.clip(rng.normal(163, 8, n), 130, 200).round(0),
        "discontinued_week": pd.array(np.where(stop, stop_week, np.nan), dtype="Int64"),
        "discontinuation_reason": np.where(stop, reasons, None),
    })
    for organ, p in (("fever", .25), ("skin", .45), ("cns", .08), ("lung", .06),
                     ("blood", .45), ("cardiovascular", .1), ("musculoskeletal", .35),
                     ("gastrointestinal", .05)):
        patients[f"organ_{organ}"] = rng.random(n) < p
    patients["organ_kidney"] = kidney

    weeks = np.array(FALLBACK_WEEKS)
    k = len(weeks)
    pid = np.repeat(np.arange(n), k)
    wk = np.tile(weeks, n)
    keep = (stop_week[pid] < 0) | (wk < stop_week[pid])
    keep &= (wk == 0) | (rng.random(n * k) > 0.05)  # 5 % missed visits
    pid, wk = pid[keep], wk[keep]
    m = len(pid)
    t = wk / 52.0
    resp = rng.random(n)[pid]  # how strongly each patient responds
    act0 = rng.gamma(2.5, 4, n)[pid]
    sledai = np.maximum(0, np.round(act0 * (1 - 0.7 * resp * np.sqrt(t)) + rng.normal(0, 1.5, m)))
    c3 = np.clip(rng.normal(0.7, 0.25, n)[pid] + 0.25 * resp * np.sqrt(t)
                 + rng.normal(0, 0.08, m), 0.05, 2.5)
    c4 = np.clip(rng.normal(0.13, 0.07, n)[pid] + 0.06 * resp * np.sqrt(t)
                 + rng.normal(0, 0.02, m), 0.01, 0.8)
    prot = np.where(kidney[pid], np.exp(rng.normal(0.3, 0.9, n)[pid] - 1.5 * resp * t
                                        + rng.normal(0, 0.3, m)), np.exp(rng.normal(-2.3, .4, m)))
    dsdna = rng.random(n)[pid] < (0.7 - 0.35 * resp * np.sqrt(t))
    pred = np.round(np.clip(rng.normal(30, 12, n)[pid] * (1 - 0.85 * t * resp - 0.3 * t), 0, 80)
                    / 2.5) * 2.5
    visits = pd.DataFrame({
        "patient_id": ids[pid], "visit_week": wk,
        "c3_g_l": c3.round(2), "c4_g_l": c4.round(3),
        "urine_protein_g_24h": prot.round(2),
        "upcr_g_g": np.where(rng.random(m) < 0.5, (prot * 0.9).round(2), np.nan),
        "cd19_pct": np.clip(rng.normal(15, 6, m) * (1 - 0.5 * t), 0.2, 60).round(1),
        "anti_dsdna_positive": dsdna,
        "anti_dsdna_iu_ml": np.where(dsdna, rng.gamma(2, 120, m), rng.gamma(2, 8, m)).round(0),
        "sledai2k": sledai.astype(int),
        "pga": np.clip(sledai / 6 + rng.normal(0, 0.3, m), 0, 3).round(1),
        "prednisone_mg_day": pred,
        "albumin_g_l": np.clip(rng.normal(36, 6, m) - 4 * np.log1p(prot), 12, 55).round(0),
        "creatinine_umol_l": np.clip(rng.normal(65, 18, m), 25, 600).round(0),
        "major_organ_activity": (sledai >= 8) & (rng.random(m) < 0.5),
        "new_activity": rng.random(m) < 0.1 * (1 - t),
    })
    n_ae = rng.poisson(0.5, n)
    apid = np.repeat(np.arange(n), n_ae)
    cats = np.array(schema.AE_CATEGORIES, dtype=object)
    cat = cats[rng.choice(len(cats), len(apid),
                          p=[.45, .1, .05, .05, .1, .03, .07, .05, .1])]
    terms = np.where(cat == "infection", np.array(
        ["upper respiratory tract infection", "urinary tract infection", "herpes zoster",
         "pneumonia"], dtype=object)[rng.integers(0, 4, len(apid))], cat)
    aes = pd.DataFrame({
        "patient_id": ids[apid],
        "onset_week": rng.integers(0, 53, len(apid)),
        "term": terms, "category": cat,
        "severity": np.array(schema.AE_SEVERITIES, dtype=object)[
            rng.choice(3, len(apid), p=[.7, .25, .05])],
        "serious": rng.random(len(apid)) < 0.05,
    })
    return {"patients": patients, "visits": visits, "adverse_events": aes}


def build_fallback(n: int, path: str | os.PathLike) -> dict:
    """Write `fallback_tables(n)` to a new DuckDB file through the store."""
    from . import store

    tables = fallback_tables(n)
    return store.write_database(path, tables, mode="create",
                                schedules={"scale": list(FALLBACK_WEEKS)}, source="bench")


# --- the filter sequence --------------------------------------------------------------------


def _top(db: Database, cohort: str, col: str, k: int = 1) -> list:
    """The k most common non-missing values of a patient column (so no step empties a demo)."""
    df = db.query(
        f'SELECT "{col}" AS v, count(*) AS n FROM patient_facts WHERE cohort = ? '
        f'AND "{col}" IS NOT NULL GROUP BY 1 ORDER BY n DESC, v LIMIT ?',
        [cohort, k],
    )
    return [v.item() if hasattr(v, "item") else v for v in df["v"]]


def filter_sequence(db: Database, cohort: str) -> list[tuple[str, Filter]]:
    """20 realistic filter changes: single columns, age range, combinations and resets.

    Values are the most common ones present in the cohort, so the same sequence
    runs on the 26-patient demo and the 100,000-patient scale cohort. A step that
    would match nobody keeps only its newest restriction (the panel would show
    "0 of N" and the user would undo).
    """
    top = {c: _top(db, cohort, c, 3) for c in (
        "sex", "class_group", "biopsy_class", "immunosuppressant", "baseline_anti_dsdna")}
    ages = db.query(
        "SELECT quantile_cont(age_at_baseline_years, 0.25) AS a, "
        "quantile_cont(age_at_baseline_years, 0.75) AS b FROM patient_facts WHERE cohort = ?",
        [cohort]).iloc[0]
    a_lo = math.floor(ages["a"]) if pd.notna(ages["a"]) else None
    a_hi = math.ceil(ages["b"]) if pd.notna(ages["b"]) else None

    def pick(col, i):
        vals = top[col]
        return [vals[min(i, len(vals) - 1)]] if vals else []

    steps: list[tuple[str, dict]] = [
        ("all patients", {}),
        ("sex", {"sex": pick("sex", 0)}),
        ("+ completers only", {"sex": pick("sex", 0), "completer": [True]}),
        ("+ class group", {"sex": pick("sex", 0), "completer": [True],
                           "class_group": pick("class_group", 0)}),
        ("+ age range", {"sex": pick("sex", 0), "completer": [True],
                         "class_group": pick("class_group", 0),
                         "age_min": a_lo, "age_max": a_hi}),
        ("reset", {}),
        ("biopsy class (2 values)", {"biopsy_class": top["biopsy_class"][:2]}),
        ("immunosuppressant", {"immunosuppressant": pick("immunosuppressant", 0)}),
        ("organ: kidney", {"organ_kidney": [True]}),
        ("baseline anti-dsDNA", {"baseline_anti_dsdna": pick("baseline_anti_dsdna", 0)}),
        ("anti-dsDNA + kidney", {"baseline_anti_dsdna": pick("baseline_anti_dsdna", 0),
                                 "organ_kidney": [True]}),
        ("other sex", {"sex": pick("sex", 1)}),
        ("class group 2", {"class_group": pick("class_group", 1)}),
        ("immunosuppressant (2 values)", {"immunosuppressant": top["immunosuppressant"][:2]}),
        ("age range only", {"age_min": a_lo, "age_max": a_hi}),
        ("organ: skin + blood", {"organ_skin": [True], "organ_blood": [True]}),
        ("non-completers", {"completer": [False]}),
        ("combination", {"sex": pick("sex", 0), "biopsy_class": pick("biopsy_class", 0),
                         "immunosuppressant": pick("immunosuppressant", 0)}),
        ("biopsy class", {"biopsy_class": pick("biopsy_class", 0)}),
        ("reset", {}),
    ]
    out = []
    prev: dict = {}
    for label, d in steps:
        flt = Filter.build(cohort, **d)
        if d and analysis.count_patients(db, flt)[0] == 0:
            new = {c: v for c, v in d.items() if prev.get(c) != v} or d
            flt = Filter.build(cohort, **new)
            label += " (reduced: nobody matched)"
        out.append((label, flt))
        prev = d
    assert len(out) == N_CHANGES
    return out


# --- the pages --------------------------------------------------------------------------------
# Each function makes the calls its page makes on a filter change with the page's
# default widget state, and returns {chart name: the frame the chart is drawn from}.

Frames = dict[str, pd.DataFrame]


def sidebar(db: Database, flt: Filter) -> None:
    """The filter panel's per-filter work: the patient count. The cohort list, filter
    options and age range are cached per file in the app (ui.filter_panel), so a filter
    change does not ask for them again."""
    analysis.count_patients(db, flt)


def page_overview(db: Database, flt: Filter) -> Frames:
    """pages/overview.py with its default widget state: Table 1 without a split."""
    analysis.cohort_info(db, flt.cohort)
    flow, _reasons, _doses = explore.patient_flow(db, flt)
    analysis.remission(db, flt, preset=PRESET)
    explore.ae_table3(db, flt)
    explore.table1_display(analysis.table1(db, flt, group_by=None))
    return {"patient_flow": flow}


def page_overview_split(db: Database, flt: Filter) -> Frames:
    """Overview after choosing "Split by: class group": Table 1 by group with its p-values."""
    page_overview(db, flt)
    explore.table1_display(analysis.table1(db, flt, group_by=DEFAULT_GROUP),
                           analysis.table1_tests(db, flt, DEFAULT_GROUP))
    return {}


def page_biomarkers(db: Database, flt: Filter) -> Frames:
    """pages/biomarkers.py on its first tab (the page's default); Figure 1 is a lazy tab."""
    analysis.available_endpoints(db, flt)
    summ = analysis.summary(db, flt, endpoints=[DEFAULT_ENDPOINT])
    rec = analysis.recommended_methods(db, flt, endpoint=DEFAULT_ENDPOINT, comparator="baseline")
    lon = analysis.longitudinal(db, flt, endpoints=[DEFAULT_ENDPOINT], comparators=["baseline"],
                                adjust="none", include_mixed=False)
    explore.pick_methods(lon, "auto", rec)
    analysis.omnibus(db, flt, endpoints=[DEFAULT_ENDPOINT])
    return {"trajectory": summ[summ["n"] > 0]}


def page_biomarkers_figure1(db: Database, flt: Filter) -> Frames:
    """Biomarkers with the "All endpoints (Figure 1)" tab open: both tabs run."""
    frames = page_biomarkers(db, flt)
    summ_all = analysis.summary(db, flt)
    lon_all = analysis.longitudinal(db, flt, comparators=["baseline"])
    frames["figure1"] = explore.figure1_frame(summ_all, lon_all)
    report.table2(db, flt)
    return frames


def page_remission(db: Database, flt: Filter) -> Frames:
    """pages/remission.py: rates (NRI), states, KM to first LLDAS, per-patient criteria."""
    rates = analysis.remission(db, flt, preset=PRESET, observed=False)
    analysis.cohort_info(db, flt.cohort)
    states = analysis.remission_states(db, flt, preset=PRESET)
    km, _ = analysis.time_to_event(db, flt, definition="lldas", preset=PRESET, group_by=None)
    explore.endpoint_states(db, flt, preset=PRESET, week="last")
    return {"rates": rates, "states": states, "km_lldas": km}


def page_subgroups(db: Database, flt: Filter) -> Frames:
    """pages/subgroups.py: by class group, value (tests Holm-adjusted), forest of change."""
    eps = analysis.available_endpoints(db, flt)
    col = eps[0].column if eps else DEFAULT_ENDPOINT
    explore.group_sizes(db, flt, group_by=DEFAULT_GROUP)
    traj = analysis.subgroup_summary(db, flt, DEFAULT_GROUP, col, outcome="value")
    analysis.subgroups(db, flt, DEFAULT_GROUP, endpoints=[col], outcome="value", adjust="holm")
    analysis.cohort_info(db, flt.cohort)
    forest = analysis.subgroup_summary(db, flt, DEFAULT_GROUP, col, outcome="change")
    return {"group_trajectories": traj.dropna(subset=["mean"]), "forest": forest}


def page_patient(db: Database, flt: Filter) -> Frames:
    """Patient: the picker's id list, then the first patient's record, visits and events."""
    ids = explore.patient_ids(db, flt)
    if not ids:
        return {}
    explore.patient_record(db, flt.cohort, ids[0])
    vis = explore.patient_visits(db, flt.cohort, ids[0])
    explore.patient_events(db, flt.cohort, ids[0])
    return {"patient_series": vis[["visit_week", DEFAULT_ENDPOINT, "sledai2k", "pga",
                                   "prednisone_mg_day"]],
            # Not a chart: the picker's options, which the selectbox sends to the browser
            # (none above explore.PICKER_CAP: the page then asks for an id).
            "patient_picker_options": pd.DataFrame(
                {"patient_id": ids if len(ids) <= explore.PICKER_CAP else []})}


def page_safety(db: Database, flt: Filter) -> Frames:
    """Safety: Table 3 layout, incidence by category, time to first event, listing."""
    explore.ae_table3(db, flt)
    inc = explore.ae_incidence(db, flt)
    km = explore.ae_time_to_first(db, flt)
    explore.ae_listing(db, flt)
    return {"incidence": inc, "km_first_ae": km}


def page_data(db: Database, flt: Filter) -> Frames:
    """Data with the "Data quality" tab open (import and dictionary compute nothing per filter):
    missingness by visit × variable and values at the range edges."""
    miss = explore.missingness(db, flt)
    explore.range_edges(db, flt)
    return {"missingness": miss}


PAGES: dict[str, Callable[[Database, Filter], Frames]] = {
    "Overview": page_overview,
    "Overview split": page_overview_split,
    "Biomarkers": page_biomarkers,
    "Biomarkers Figure 1": page_biomarkers_figure1,
    "Remission": page_remission,
    "Subgroups": page_subgroups,
    "Patient": page_patient,
    "Safety": page_safety,
    "Data quality": page_data,
}


def on_demand_frames(db: Database, flt: Filter) -> Frames:
    """Charts drawn only when asked for (individual trajectories, capped by explore)."""
    ind, _total, _sampled = explore.individual_trajectories(db, flt, endpoint=DEFAULT_ENDPOINT)
    return {"individual_trajectories": ind}


# --- floor and pandas peer ---------------------------------------------------------------------


def floor_query(db: Database, flt: Filter) -> pd.DataFrame:
    """The floor: one GROUP BY visit_week over the filtered visits, count/avg/stddev per endpoint."""
    cond, params = flt.where("p")
    cols = [e.column for e in schema.ENDPOINTS]
    aggs = ", ".join(
        f'count(v."{c}") AS "n_{c}", avg(CAST(v."{c}" AS DOUBLE)) AS "mean_{c}", '
        f'stddev_samp(CAST(v."{c}" AS DOUBLE)) AS "sd_{c}"' for c in cols)
    return db.query(
        f"SELECT v.visit_week, {aggs} FROM visit_facts v JOIN patient_facts p "
        f"ON p.cohort = v.cohort AND p.patient_id = v.patient_id WHERE {cond} "
        "GROUP BY v.visit_week ORDER BY v.visit_week", params)


def biomarkers_core(db: Database, flt: Filter, endpoint: str = DEFAULT_ENDPOINT) -> dict:
    """The Biomarkers computations the pandas peer reproduces, through analysis (DuckDB)."""
    return {
        "summary": analysis.summary(db, flt),
        "longitudinal": analysis.longitudinal(db, flt, endpoints=[endpoint]),
        "recommended": analysis.recommended_methods(db, flt, endpoint, "baseline"),
    }


def remission_core(db: Database, flt: Filter) -> dict:
    """The Remission computations the pandas peer reproduces, through analysis (DuckDB)."""
    return {
        "remission": analysis.remission(db, flt, preset=PRESET),
        "states": analysis.remission_states(db, flt, preset=PRESET),
        "km": analysis.time_to_event(db, flt, definition="lldas", preset=PRESET)[0],
    }


class PandasPeer:
    """The same computations written the common way: whole tables in pandas, filter, group.

    Statistical tests call the same `stats` functions, so the comparison is of
    data access and aggregation only; `tests/test_bench.py` checks that the
    outputs equal `analysis`'s.
    """

    def __init__(self, db: Database, cohort: str):
        t0 = time.perf_counter()
        self.cohort = cohort
        self.patients = db.query("SELECT * FROM patient_facts WHERE cohort = ?", [cohort])
        self.visits = db.query("SELECT * FROM visit_facts WHERE cohort = ?", [cohort])
        self.weeks = analysis.cohort_info(db, cohort)["scheduled_weeks"]
        self.load_s = time.perf_counter() - t0

    # filtering, as one would write it in pandas
    def _patients(self, flt: Filter) -> pd.DataFrame:
        p = self.patients
        mask = pd.Series(True, index=p.index)
        for col, vals in flt.values:
            s = p[col]
            real = [v for v in vals if v != "(missing)"]
            m = s.isin(real).fillna(False).astype(bool)
            if len(real) != len(vals):
                m |= s.isna()
            mask &= m
        age = p["age_at_baseline_years"]
        if flt.age_min is not None:
            mask &= (age >= flt.age_min).fillna(False).astype(bool)
        if flt.age_max is not None:
            mask &= (age <= flt.age_max).fillna(False).astype(bool)
        return p[mask]

    def _visits(self, flt: Filter) -> tuple[pd.DataFrame, pd.DataFrame]:
        pts = self._patients(flt)
        return pts, self.visits[self.visits["patient_id"].isin(pts["patient_id"])]

    # Biomarkers
    def summary(self, flt: Filter) -> pd.DataFrame:
        _, v = self._visits(flt)
        eps = [e for e in schema.ENDPOINTS if self.visits[e.column].notna().any()]
        v = v[v["visit_week"].isin(self.weeks)]
        long = v.melt(id_vars=["visit_week"], value_vars=[e.column for e in eps],
                      var_name="endpoint", value_name="value").dropna(subset=["value"])
        long["value"] = long["value"].astype(float)
        g = long.groupby(["endpoint", "visit_week"])["value"]
        agg = g.agg(n="count", mean="mean", sd="std", total="sum")
        # SPSS type-6 quartiles, as analysis.summary (pandas' quantile is type 7).
        q = g.apply(lambda s: pd.Series(np.quantile(s.to_numpy(), [0.5, 0.25, 0.75],
                                                    method="weibull"),
                                        index=["median", "p25", "p75"])).unstack()
        # (an empty filter gives no quartile columns at all)
        agg = agg.join(q.reindex(columns=["median", "p25", "p75"])).reset_index()
        grid = pd.MultiIndex.from_product([[e.column for e in eps], self.weeks],
                                          names=["endpoint", "visit_week"]).to_frame(index=False)
        df = grid.merge(agg, on=["endpoint", "visit_week"], how="left")
        # The same finishing step (SE, CIs, binary rates) as analysis.summary.
        return analysis.finish_summary(df, eps)

    def _wide(self, flt: Filter, endpoint: str) -> np.ndarray:
        _, v = self._visits(flt)
        v = v[v["visit_week"].isin(self.weeks)]
        wide = v.pivot(index="patient_id", columns="visit_week", values=endpoint)
        return wide.reindex(columns=self.weeks).to_numpy(dtype=float, na_value=np.nan)

    def longitudinal(self, flt: Filter, endpoint: str = DEFAULT_ENDPOINT) -> pd.DataFrame:
        ep = schema.ENDPOINTS_BY_COLUMN[endpoint]
        arr = self._wide(flt, endpoint)
        methods = analysis.BINARY_METHODS if ep.kind == "binary" else analysis.CONTINUOUS_METHODS
        rows = analysis._paired_rows(endpoint, arr, list(self.weeks), analysis.COMPARATORS,
                                     list(methods))
        return analysis.adjust_longitudinal(
            pd.DataFrame(rows, columns=analysis.LONGITUDINAL_COLUMNS), "none")

    def recommended(self, flt: Filter, endpoint: str = DEFAULT_ENDPOINT) -> pd.DataFrame:
        arr = self._wide(flt, endpoint)
        w = self.weeks
        rows = []
        for i in range(1, len(w)):
            m, r = stats.choose_paired_method(arr[:, i], arr[:, 0])
            rows.append({"visit_week": w[i], "method": m, "reason": r})
        return pd.DataFrame(rows, columns=["visit_week", "method", "reason"])

    def biomarkers(self, flt: Filter) -> dict:
        return {"summary": self.summary(flt), "longitudinal": self.longitudinal(flt),
                "recommended": self.recommended(flt)}

    # Remission
    def _outcomes(self, v: pd.DataFrame) -> pd.DataFrame:
        out = pd.DataFrame({"patient_id": v["patient_id"], "visit_week": v["visit_week"],
                            "is_last": v["is_last"]})
        for d in schema.REMISSION_DEFINITIONS:
            col = f"{d}_{PRESET}" if d in schema.PRESET_DEFINITIONS else d
            out[d] = v[col].astype("boolean")
        pred = v["prednisone_mg_day"]
        out["glucocorticoid_off"] = (pred == 0).astype("boolean")
        out["glucocorticoid_le_5"] = (pred <= 5).astype("boolean")
        return out

    def remission(self, flt: Filter) -> pd.DataFrame:
        pts, v = self._visits(flt)
        k = len(pts)
        base = v[v["visit_week"] == 0]
        prot = base["upcr_g_g"].fillna(base["urine_protein_g_24h"])
        renal_ids = set(base.loc[(prot >= 0.5).fillna(False).astype(bool), "patient_id"])
        o = self._outcomes(v)
        o["renal"] = o["patient_id"].isin(renal_ids)
        defs = [*schema.REMISSION_DEFINITIONS, *analysis.EXTRA_OUTCOMES]
        rows = []
        for wk in [*self.weeks, "last"]:
            sub = o[o["is_last"].fillna(False).astype(bool)] if wk == "last" \
                else o[o["visit_week"] == wk]
            for d in defs:
                s = sub[d]
                renal = d in schema.RENAL_DEFINITIONS
                if renal:
                    s = s[sub["renal"]]
                yes = int(s.fillna(False).astype(bool).sum())
                denom = len(renal_ids) if renal else k
                rate, lo, hi = stats.proportion_ci(yes, denom, method="wilson")
                rows.append({"visit_week": wk, "definition": d, "n_achieved": yes,
                             "n_evaluable": denom, "rate": rate, "ci_low": lo, "ci_high": hi})
        return pd.DataFrame(rows)

    def states(self, flt: Filter) -> pd.DataFrame:
        pts, v = self._visits(flt)
        grid = pd.MultiIndex.from_product([pts["patient_id"], self.weeks],
                                          names=["patient_id", "visit_week"]).to_frame(index=False)
        g = grid.merge(v[["patient_id", "visit_week", f"lldas_{PRESET}", f"remission_{PRESET}"]],
                       on=["patient_id", "visit_week"], how="left", indicator=True)
        lld = g[f"lldas_{PRESET}"].astype("boolean")
        rem = g[f"remission_{PRESET}"].astype("boolean")
        state = np.select(
            [(g["_merge"] == "left_only").to_numpy(), rem.fillna(False).to_numpy(bool),
             lld.fillna(False).to_numpy(bool), (~lld).fillna(False).to_numpy(bool)],
            ["no visit", "remission", "LLDAS", "active"], default="not evaluable")
        df = pd.DataFrame({"visit_week": g["visit_week"], "state": state})
        df = df.groupby(["visit_week", "state"]).size().reset_index(name="n")
        df["pct"] = df["n"] / df.groupby("visit_week")["n"].transform("sum") * 100
        order = {s: i for i, s in enumerate(["remission", "LLDAS", "active", "not evaluable",
                                             "no visit"])}
        return df.sort_values(["visit_week", "state"], key=lambda s: s.map(order)
                              if s.name == "state" else s).reset_index(drop=True)

    def km(self, flt: Filter) -> pd.DataFrame:
        _, v = self._visits(flt)
        v = v[v["visit_week"] > 0]
        ev = v[v[f"lldas_{PRESET}"].fillna(False).astype(bool)]
        first = ev.groupby("patient_id")["visit_week"].min()
        last = v.groupby("patient_id")["visit_week"].max()
        time_ = first.reindex(last.index).fillna(last).to_numpy(float)
        event = last.index.isin(first.index).astype(int)
        km = stats.kaplan_meier(time_, event)
        km.insert(0, "group", "All")
        return km

    def remission_page(self, flt: Filter) -> dict:
        return {"remission": self.remission(flt), "states": self.states(flt), "km": self.km(flt)}


# --- measuring -------------------------------------------------------------------------------------


# Per-cohort facts the app keeps across filter changes (memo keyed on the cohort alone).
PER_COHORT = {"cohort_info"}


def clear_memos() -> None:
    """Forget analysis/explore/report's in-process memo (a new filter is a miss in the app)."""
    for mod in (analysis, explore, report):
        for name, obj in vars(mod).items():
            if name in PER_COHORT:
                continue
            clear = getattr(obj, "cache_clear", None)
            if callable(clear) and getattr(obj, "__module__", "").startswith("lupus_dash"):
                clear()


def _ms(samples: Sequence[float]) -> dict:
    a = np.asarray(samples, dtype=float) * 1000
    return {"p50_ms": float(np.percentile(a, 50)), "p95_ms": float(np.percentile(a, 95)),
            "max_ms": float(a.max())}


def _timed(fn, *args):
    clear_memos()
    t0 = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - t0, out


def payload_bytes(df: pd.DataFrame) -> dict:
    """Bytes a chart's frame costs on the wire: Arrow IPC (what st.altair_chart sends) and JSON."""
    import pyarrow as pa

    buf = io.BytesIO()
    df = df.reset_index(drop=True)
    try:
        table = pa.Table.from_pandas(df, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        # Mixed object columns (visit_week 0, 4, …, "last"): Streamlit sends them as text.
        obj = [c for c in df.columns if df[c].dtype == object]
        table = pa.Table.from_pandas(df.astype({c: str for c in obj}), preserve_index=False)
    with pa.ipc.new_stream(buf, table.schema) as w:
        w.write_table(table)
    js = df.to_json(orient="records", date_format="iso")
    return {"rows": len(df), "arrow_bytes": buf.tell(), "json_bytes": len(js.encode())}


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _abbrev(name: str) -> str:
    """Short page name for the per-step log line ("Biomarkers Figure 1" → "BioF")."""
    words = name.split()
    return words[0][:3] + (words[1][0].upper() if len(words) > 1 else words[0][3])


def run_bench(db: Database, cohort: str, pages: Sequence[str] | None = None,
              peer: bool = True, mixed: bool = True, log=None,
              budget_s: float = math.inf) -> dict:
    """Time every page for the 20 filter changes; the JSON-ready result dict."""
    log = log or (lambda *_: None)
    names = list(pages or PAGES)
    seq = filter_sequence(db, cohort)
    n_patients = int(db.scalar("SELECT count(*) FROM patient_facts WHERE cohort = ?", [cohort]))
    n_visits = int(db.scalar("SELECT count(*) FROM visit_facts WHERE cohort = ?", [cohort]))

    # Warm-up (untimed): imports, first queries, DuckDB's caches — the app is a warm
    # process. On the smallest filter of the sequence, so a slow page costs little here.
    counts = [analysis.count_patients(db, f)[0] for _, f in seq]
    warm = seq[int(np.argmin(counts))][1]
    for name in names:
        try:
            PAGES[name](db, warm)
        except Exception:  # noqa: BLE001, S110 — reported by the timed runs below
            pass
    floor_query(db, warm)

    times: dict[str, list[float]] = {n: [] for n in names}
    skipped: dict[str, int] = {}
    errors: dict[str, list[str]] = {}
    payloads: dict[str, dict] = {}
    steps = []
    for label, flt in seq:
        k = analysis.count_patients(db, flt)[0]
        step = {"change": label, "filter": flt.to_dict(), "patients": k, "ms": {}}
        for name in names:
            if sum(times[name]) > budget_s:
                # Over its time budget: the remaining changes are not run (reported).
                skipped[name] = skipped.get(name, 0) + 1
                continue
            # Memo cleared per page and change: sharing within one page render counts
            # (Table 2 and Figure 1 reuse one computation), hits from earlier steps do not.
            clear_memos()
            t0 = time.perf_counter()
            try:
                sidebar(db, flt)
                frames = PAGES[name](db, flt)
            except Exception as exc:  # noqa: BLE001 — a page bug must not hide the other pages
                errors.setdefault(name, []).append(f"{label}: {type(exc).__name__}: {exc}")
                frames = {}
            dt = time.perf_counter() - t0
            times[name].append(dt)
            step["ms"][name] = dt * 1000
            for chart, df in frames.items():
                key = f"{name}/{chart}"
                size = payload_bytes(df)
                if key not in payloads or size["arrow_bytes"] > payloads[key]["arrow_bytes"]:
                    payloads[key] = size
        steps.append(step)
        log(f"  {label:<40} {k:>7} patients  " + "  ".join(
            f"{_abbrev(n)} {step['ms'].get(n, math.nan):6.0f}" for n in names))

    floor = []
    for _, flt in seq:
        dt, _ = _timed(floor_query, db, flt)
        floor.append(dt)
    rss = peak_rss_mb()

    for chart, df in on_demand_frames(db, seq[0][1]).items():
        payloads[f"Biomarkers/{chart} (on demand)"] = payload_bytes(df)

    core = {"Biomarkers": [], "Remission": []}
    for _, flt in seq:
        core["Biomarkers"].append(_timed(biomarkers_core, db, flt)[0])
        core["Remission"].append(_timed(remission_core, db, flt)[0])

    result: dict = {
        "patients": n_patients,
        "visits": n_visits,
        "cohort": cohort,
        "pages": {n: {**_ms(times[n]), "n_changes": len(times[n])} for n in names},
        "skipped_over_budget": skipped,
        "budget_s_per_page": budget_s,
        "floor_ms": _ms(floor)["p50_ms"],
        "floor": _ms(floor),
        "peak_rss_mb": rss,
        "core": {n: _ms(v) for n, v in core.items()},
        "chart_payloads": payloads,
        "largest_chart": max(payloads.items(), key=lambda kv: kv[1]["arrow_bytes"],
                             default=(None, None))[0],
        "errors": errors,
        "steps": steps,
    }

    if mixed:
        weeks = analysis.cohort_info(db, cohort)["scheduled_weeks"]
        t0 = time.perf_counter()
        rows = analysis._mixed_rows(db, seq[0][1], DEFAULT_ENDPOINT, weeks)
        result["mixed_model"] = {"endpoint": DEFAULT_ENDPOINT, "filter": "all patients",
                                 "ms": (time.perf_counter() - t0) * 1000,
                                 "reason": rows[0]["reason"] if rows else None}
        result["peak_rss_mb_with_mixed_model"] = peak_rss_mb()

    if peer:
        pp = PandasPeer(db, cohort)
        ptimes = {"Biomarkers": [], "Remission": []}
        for _, flt in seq:
            ptimes["Biomarkers"].append(_timed(pp.biomarkers, flt)[0])
            ptimes["Remission"].append(_timed(pp.remission_page, flt)[0])
        result["pandas_peer"] = {n: _ms(v) for n, v in ptimes.items()}
        result["pandas_peer_load_ms"] = pp.load_s * 1000
        result["peer_speedup"] = {
            n: result["pandas_peer"][n]["p50_ms"] / result["core"][n]["p50_ms"]
            for n in ptimes}
        result["peak_rss_mb_with_peer"] = peak_rss_mb()
    else:
        result["pandas_peer"] = {}
    return result


def machine() -> dict:
    """What the figures were measured on."""
    import duckdb

    info = {"python": platform.python_version(), "duckdb": duckdb.__version__,
            "pandas": pd.__version__, "cpus": os.cpu_count(), "platform": platform.platform(),
            # Other work on a shared machine inflates every figure; say how busy it was.
            "load_average_1_5_15": list(os.getloadavg())}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo") as f:
            info["mem_total_mb"] = int(f.readline().split()[1]) // 1024
    except OSError:
        pass
    return info


def _text(res: dict) -> str:
    lines = [f"{res['cohort']}: {res['patients']} patients, {res['visits']} visits"]
    lines.append(f"{'page':<20} {'p50 ms':>9} {'p95 ms':>9} {'max ms':>9} {'p50/floor':>10}")
    floor = res["floor_ms"]
    for n, r in res["pages"].items():
        lines.append(f"{n:<20} {r['p50_ms']:9.1f} {r['p95_ms']:9.1f} {r['max_ms']:9.1f} "
                     f"{r['p50_ms'] / floor if floor else float('nan'):9.1f}x")
    lines.append(f"floor (bare DuckDB scan-and-aggregate) p50 {res['floor_ms']:.1f} ms")
    for n, r in res["core"].items():
        peer = res["pandas_peer"].get(n)
        lines.append(f"{n} core: DuckDB p50 {r['p50_ms']:.1f} ms"
                     + (f", pandas peer p50 {peer['p50_ms']:.1f} ms "
                        f"({res['peer_speedup'][n]:.1f}x)" if peer else ""))
    if "pandas_peer_load_ms" in res:
        lines.append(f"pandas peer load (once): {res['pandas_peer_load_ms']:.0f} ms")
    if "mixed_model" in res:
        lines.append(f"mixed model ({res['mixed_model']['endpoint']}, all patients): "
                     f"{res['mixed_model']['ms']:.0f} ms")
    lines.append(f"peak RSS {res['peak_rss_mb']:.0f} MB")
    big = res["largest_chart"]
    if big:
        b = res["chart_payloads"][big]
        lines.append(f"largest chart payload: {big} {b['rows']} rows, {b['arrow_bytes']} B "
                     f"Arrow, {b['json_bytes']} B JSON (target ≤ {TARGET_PAYLOAD_BYTES} B)")
    for n, k in res.get("skipped_over_budget", {}).items():
        lines.append(f"{n}: {k} of {N_CHANGES} changes skipped after the page used its "
                     f"{res['budget_s_per_page']:.0f} s budget")
    for n, errs in res["errors"].items():
        lines.append(f"ERRORS in {n}: {len(errs)}; first: {errs[0]}")
    return "\n".join(lines)


def cli_bench(args) -> int:
    """`python -m lupus_dash bench`: build or reuse the cohort, run, print text or JSON."""
    log = (lambda *a: print(*a, file=sys.stderr)) if args.format == "json" else print
    build = None
    if getattr(args, "demo", False):
        path = Path(args.db or "data/demo.duckdb")
        if not path.exists():
            from . import synth

            synth.build_demo(path)
    elif args.db:
        path = Path(args.db)
        if not path.exists():
            path, build = ensure_cohort(args.patients, path)
    else:
        path, build = ensure_cohort(args.patients)
    if build:
        how = f"built in {build['build_s']:.1f} s" if build["built"] else "reused"
        log(f"cohort: {build['path']} ({how}, {build['builder']})")
    db = Database(path)
    cohorts = list(db.cohorts()["cohort"])
    wanted = [args.cohort] if getattr(args, "cohort", None) else cohorts
    pages = getattr(args, "pages", None)
    results = []
    for c in wanted:
        log(f"benchmarking {c} …")
        results.append(run_bench(db, c, pages=pages.split(",") if pages else None,
                                 peer=not getattr(args, "no_peer", False),
                                 mixed=not getattr(args, "no_mixed", False), log=log,
                                 budget_s=getattr(args, "budget", None) or math.inf))
    out = dict(results[0])
    if len(results) > 1:
        out["other_cohorts"] = {r["cohort"]: r for r in results[1:]}
    out["build"] = build
    out["machine"] = machine()
    out["db"] = str(path)
    if args.format == "json":
        print(json.dumps(out, indent=1, default=str))
    else:
        for r in results:
            print(_text(r))
            print()
    return 0


def _main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="internal: build the fallback scale cohort")
    p.add_argument("--build-fallback", nargs=2, metavar=("N", "PATH"), required=True)
    a = p.parse_args(argv)
    n, path = int(a.build_fallback[0]), a.build_fallback[1]
    info = build_fallback(n, path)
    print(json.dumps({k: info[k] for k in ("patients", "visits", "seconds")}))
    return 0


if __name__ == "__main__":
    sys.exit(_main())

