"""Page-specific DuckDB queries that `analysis` does not cover.

Patient flow, one patient's record, a capped set of individual trajectories,
adverse events (the seed paper's Table 3 layout, incidence, time to first
event, listing) and data quality (missingness, values at range edges). Every
function takes a `Database` and a `Filter` (or a patient id) and returns a
small, unrounded DataFrame; aggregation runs in DuckDB.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from . import analysis, schema, stats
from .analysis import memoize
from .db import Database
from .filters import MISSING, Filter

# Belimumab IV (US prescribing information; CLINICAL_DEFINITIONS.md §11):
# 10 mg/kg at weeks 0, 2 and 4, then every 4 weeks.
INDUCTION_WEEKS = (0, 2, 4)
MAINTENANCE_INTERVAL = 4

TRAJECTORY_CAP = 60  # patients drawn in the individual-trajectory view

AE_LABELS = {
    "infusion_reaction": "Infusion reaction",
    "allergic_reaction": "Allergic reaction",
    "infection": "Infection",
    "leukopenia": "Leukopenia",
    "gastrointestinal": "Gastrointestinal disorders",
    "psychiatric": "Psychiatric disorders",
    "nervous_system": "Nervous system disorders",
    "musculoskeletal": "Musculoskeletal disorders",
    "other": "Other",
}
# Rows of the seed paper's Table 3 (Wang et al. 2022), in its order; the
# infection terms it lists are shown even when nobody had them.
TABLE3_ORDER = (
    "infusion_reaction",
    "allergic_reaction",
    "infection",
    "leukopenia",
    "gastrointestinal",
    "psychiatric",
    "nervous_system",
    "musculoskeletal",
    "other",
)
TABLE3_INFECTION_TERMS = (
    "upper respiratory tract infection",
    "lower respiratory tract infection",
    "urinary tract infection",
    "herpes simplex",
    "herpes zoster",
    "gastrointestinal infection",
)


# --- filter panel -------------------------------------------------------------


def filter_options(db: Database, cohort: str) -> dict[str, list]:
    """Values present in the cohort for every text filter column (MISSING for NULLs)."""
    out: dict[str, list] = {}
    for col in ("biopsy_class", "class_group", "immunosuppressant", "sex", "age_band",
                "baseline_anti_dsdna"):
        df = db.query(
            f'SELECT DISTINCT CAST("{col}" AS VARCHAR) AS v FROM patient_facts WHERE cohort = ?',
            [cohort],
        )
        vals = [v for v in df["v"] if v is not None and not _isnan(v)]
        order = _choice_order(col)
        vals.sort(key=lambda v: (order.get(v, len(order)), v))
        if len(vals) < len(df):
            vals.append(MISSING)
        out[col] = vals
    organs = db.query(
        "SELECT " + ", ".join(f'count(*) FILTER (WHERE "organ_{o}") AS "{o}"'
                              for o in schema.ORGANS)
        + " FROM patient_facts WHERE cohort = ?",
        [cohort],
    ).iloc[0]
    out["organs"] = [o for o in schema.ORGANS if int(organs[o]) > 0]
    return out


def _choice_order(col: str) -> dict[str, int]:
    choices = schema.column("patient_facts", col).choices or ()
    return {c: i for i, c in enumerate(choices)}


def _isnan(v) -> bool:
    return isinstance(v, float) and math.isnan(v)


def cohorts(db: Database) -> pd.DataFrame:
    """Cohort labels with their schedules and sizes (`Database.cohorts`, for the UI cache)."""
    return db.cohorts()


def age_limits(db: Database, cohort: str) -> tuple[float | None, float | None]:
    """Youngest and oldest age at baseline in the cohort (None when unknown)."""
    df = db.query(
        "SELECT min(age_at_baseline_years) AS lo, max(age_at_baseline_years) AS hi "
        "FROM patient_facts WHERE cohort = ?",
        [cohort],
    ).iloc[0]
    lo, hi = df["lo"], df["hi"]
    return (None if pd.isna(lo) else float(lo), None if pd.isna(hi) else float(hi))


# Above this many matching patients the Patient page asks for an id instead of listing
# them all: a select box sends every option to the browser (1.8 MB for 100,000 ids).
PICKER_CAP = 500
# Rows of a per-patient or per-event listing shown on screen (downloads hold all rows).
LISTING_CAP = 1000


def patient_ids(db: Database, flt: Filter) -> list[str]:
    """Patients matching the filter, sorted."""
    sql, params = flt.patients_sql()
    return sorted(db.query(sql, params)["patient_id"].astype(str))


def group_sizes(db: Database, flt: Filter, group_by: str) -> pd.DataFrame:
    """Patients per level of a grouping column (group, n), MISSING for NULL."""
    if group_by not in schema.GROUPING_COLUMNS:
        raise ValueError(f"cannot group by {group_by!r}")
    cond, params = flt.where("p")
    df = db.query(
        f'SELECT CAST(p."{group_by}" AS VARCHAR) AS "group", count(*) AS n '
        f"FROM patient_facts p WHERE {cond} GROUP BY 1 ORDER BY 1",
        params,
    )
    df["group"] = df["group"].fillna(MISSING)
    return df


# --- patient flow -------------------------------------------------------------


def belimumab_dose_weeks(last_week: int | None, discontinued_week: int | None) -> list[int]:
    """Weeks of belimumab IV doses a patient received.

    Weeks 0, 2, 4, then every 4 weeks (US label), up to and including the last
    assessed visit (an infusion is given at each visit), and strictly before
    `discontinued_week` when the drug was stopped (the stop visit has no dose).
    The data contract records no infusions, so this is derived, not observed.
    """
    if last_week is None or _isnan(last_week):
        return []
    end = int(last_week)
    weeks = [w for w in INDUCTION_WEEKS if w <= end]
    w = INDUCTION_WEEKS[-1] + MAINTENANCE_INTERVAL
    while w <= end:
        weeks.append(w)
        w += MAINTENANCE_INTERVAL
    if discontinued_week is not None and not _isnan(discontinued_week):
        weeks = [x for x in weeks if x < int(discontinued_week)] or [0]
    return weeks


def belimumab_dose_counts(last_week, discontinued_week) -> np.ndarray:
    """len(belimumab_dose_weeks(l, d)) for arrays of patients at once (NaN = missing)."""
    last = np.asarray(last_week, dtype=float)
    stop = np.asarray(discontinued_week, dtype=float)
    # Doses are given at integer weeks: "strictly before the stop week" = up to stop − 1.
    end = np.where(np.isnan(stop), last, np.minimum(last, stop - 1))
    safe = np.nan_to_num(end, nan=-1.0)
    induction = sum((safe >= w).astype(int) for w in INDUCTION_WEEKS)
    first = INDUCTION_WEEKS[-1] + MAINTENANCE_INTERVAL
    maintenance = np.where(safe >= first, (safe - first) // MAINTENANCE_INTERVAL + 1, 0)
    count = (induction + maintenance).astype(int)
    # A patient who stopped before any counted dose still had the first one (week 0).
    count = np.where(~np.isnan(stop) & (count == 0), 1, count)
    return np.where(np.isnan(last), 0, count)


def patient_flow(db: Database, flt: Filter) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(flow stages, discontinuation reasons, doses per patient) for the filtered patients.

    Stages: enrolled → received the 3 induction doses → completed (has the
    cohort's final scheduled visit) → stopped belimumab (discontinued_week set).
    """
    cond, params = flt.where("p")
    df = db.query(
        "SELECT p.patient_id, p.last_week, p.discontinued_week, p.discontinuation_reason, "
        f"p.completer FROM patient_facts p WHERE {cond} ORDER BY p.patient_id",
        params,
    )
    doses = pd.DataFrame({
        "patient_id": df["patient_id"],
        "doses": belimumab_dose_counts(
            df["last_week"].to_numpy(dtype=float, na_value=np.nan),
            df["discontinued_week"].to_numpy(dtype=float, na_value=np.nan)),
    })
    n = len(df)
    induction = int((doses["doses"] >= len(INDUCTION_WEEKS)).sum())
    completed = int(df["completer"].fillna(False).astype(bool).sum())
    stopped_mask = df["discontinued_week"].notna()
    stopped = int(stopped_mask.sum())
    total = int(doses["doses"].sum())
    med = float(np.median(doses["doses"])) if n else math.nan
    flow = pd.DataFrame({
        "stage": ["Enrolled", "Received induction (3 doses)", "Completed follow-up",
                  "Stopped belimumab"],
        "n": [n, induction, completed, stopped],
        "detail": [
            f"{n} patients started belimumab",
            f"{total} doses in all, median {med:g} per patient (derived from the IV schedule)"
            if n else "",
            "has the cohort's final scheduled visit",
            "discontinued_week recorded",
        ],
    })
    reasons = (
        df.loc[stopped_mask, "discontinuation_reason"].fillna("(no reason recorded)")
        .value_counts().rename_axis("reason").reset_index(name="n")
    )
    return flow, reasons, doses


# --- one patient --------------------------------------------------------------


def patient_record(db: Database, cohort: str, patient_id: str) -> dict:
    """The patient_facts row of one patient as a dict (empty when unknown)."""
    df = db.query(
        "SELECT * FROM patient_facts WHERE cohort = ? AND patient_id = ?", [cohort, patient_id]
    )
    return {} if df.empty else df.iloc[0].to_dict()


def patient_visits(db: Database, cohort: str, patient_id: str) -> pd.DataFrame:
    """Every visit_facts row of one patient, by week."""
    return db.query(
        "SELECT * FROM visit_facts WHERE cohort = ? AND patient_id = ? ORDER BY visit_week",
        [cohort, patient_id],
    )


def patient_events(db: Database, cohort: str, patient_id: str) -> pd.DataFrame:
    """Adverse events of one patient, by onset."""
    join, params = _ae_join(db, cohort)
    return db.query(
        f"SELECT a.* FROM adverse_events a {join} WHERE a.patient_id = ? "
        "ORDER BY a.onset_week NULLS LAST, a.term",
        [*params, patient_id],
    )


def endpoint_states(
    db: Database, flt: Filter, preset: str = "standard", week: int | str = "last"
) -> pd.DataFrame:
    """Per patient at one visit (or the last assessment): LLDAS, remission and why not."""
    if preset not in schema.PRESETS:
        raise ValueError(f"unknown preset {preset!r}")
    cond, params = flt.where("p")
    lld, rem = f"lldas_{preset}", f"remission_{preset}"
    at = "v.is_last" if week == "last" else "v.visit_week = ?"
    wparams = [] if week == "last" else [int(week)]
    renal = ", ".join(f'v."{d}", v."{d}_why"' for d in ("renal_complete", "renal_partial"))
    return db.query(
        f'SELECT p.patient_id, v.visit_week, v."{lld}" AS lldas, v."{lld}_why" AS lldas_why, '
        f'v."{rem}" AS remission, v."{rem}_why" AS remission_why, {renal} '
        "FROM patient_facts p LEFT JOIN visit_facts v ON v.cohort = p.cohort "
        f"AND v.patient_id = p.patient_id AND {at} WHERE {cond} ORDER BY p.patient_id",
        [*wparams, *params],
    )


def individual_trajectories(
    db: Database, flt: Filter, endpoint: str, cap: int = TRAJECTORY_CAP
) -> tuple[pd.DataFrame, int, bool]:
    """(patient_id, visit_week, value) for at most `cap` patients, total patients, sampled?

    The sample is deterministic (ordered by md5 of the id) so a link shows the
    same patients every time.
    """
    if endpoint not in schema.ENDPOINTS_BY_COLUMN:
        raise ValueError(f"unknown endpoint {endpoint!r}")
    cond, params = flt.where("p")
    total = int(db.scalar(
        f'SELECT count(DISTINCT v.patient_id) FROM visit_facts v JOIN patient_facts p '
        f'ON p.cohort = v.cohort AND p.patient_id = v.patient_id WHERE {cond} '
        f'AND v."{endpoint}" IS NOT NULL',
        params,
    ) or 0)
    df = db.query(
        f"""
        WITH pts AS (
            SELECT DISTINCT v.patient_id FROM visit_facts v JOIN patient_facts p
              ON p.cohort = v.cohort AND p.patient_id = v.patient_id
            WHERE {cond} AND v."{endpoint}" IS NOT NULL
            ORDER BY md5(v.patient_id) LIMIT ?
        )
        SELECT v.patient_id, v.visit_week, CAST(v."{endpoint}" AS DOUBLE) AS value
        FROM visit_facts v JOIN pts USING (patient_id)
        WHERE v.cohort = ? AND v."{endpoint}" IS NOT NULL
        ORDER BY v.patient_id, v.visit_week
        """,
        [*params, int(cap), flt.cohort],
    )
    return df, total, total > cap


# --- adverse events -----------------------------------------------------------


def _ae_join(db: Database, cohort: str) -> tuple[str, list]:
    """Join adverse_events to the cohort's patients (by cohort too when the table has it)."""
    cols = db.columns("adverse_events")
    if "cohort" in cols:
        return ("JOIN patient_facts pf ON pf.patient_id = a.patient_id "
                "AND pf.cohort = a.cohort AND pf.cohort = ?"), [cohort]
    return "JOIN patient_facts pf ON pf.patient_id = a.patient_id AND pf.cohort = ?", [cohort]


@memoize
def _ae_rows(db: Database, flt: Filter) -> tuple[pd.DataFrame, int]:
    """The filtered patients' adverse events and the patient count (Safety uses them thrice)."""
    cond, params = flt.where("p")
    join, jparams = _ae_join(db, flt.cohort)
    df = db.query(
        f"SELECT a.* FROM adverse_events a {join} "
        f"WHERE a.patient_id IN (SELECT p.patient_id FROM patient_facts p WHERE {cond}) "
        "ORDER BY a.patient_id, a.onset_week NULLS LAST",
        [*jparams, *params],
    )
    k = int(db.scalar(f"SELECT count(*) FROM patient_facts p WHERE {cond}", params))
    return df, k


def ae_table3(db: Database, flt: Filter) -> pd.DataFrame:
    """Adverse events in the seed paper's Table 3 layout: patients with ≥ 1 event per row.

    Columns: row (label, indented for infection terms), level (0 or 1), n_patients,
    pct (of the filtered patients), n_events.
    """
    ae, k = _ae_rows(db, flt)
    # NumPy masks over the event rows: a few dozen rows per call, pandas indexing per
    # row of the table cost more than the query.
    pid = ae["patient_id"].to_numpy(dtype=object)

    def row(label, mask, level=0):
        mask = np.asarray(mask, dtype=bool)
        n_pat = len(set(pid[mask])) if mask.any() else 0
        return {"row": label, "level": level, "n_patients": n_pat,
                "pct": n_pat / k * 100 if k else math.nan, "n_events": int(mask.sum())}

    def col(name):
        return (ae[name].astype(object).where(ae[name].notna(), None).to_numpy(dtype=object)
                if name in ae.columns else None)

    rows = [row("Patients with adverse events", np.ones(len(ae), dtype=bool))]
    serious, severity = col("serious"), col("severity")
    if serious is not None:
        rows.append(row("Serious adverse events", [bool(x) for x in serious]))
    if severity is not None:
        rows.append(row("Severe adverse events", severity == "severe"))
    cat = col("category")
    if cat is None:
        cat = np.full(len(ae), None, dtype=object)
    term = col("term")
    term = (np.array([t.lower() if isinstance(t, str) else None for t in term], dtype=object)
            if term is not None else cat)
    for c in TABLE3_ORDER:
        is_c = cat == c
        rows.append(row(AE_LABELS[c], is_c))
        if c == "infection":
            seen = {t for t in term[is_c] if t is not None}
            for t in (*TABLE3_INFECTION_TERMS, *sorted(seen - set(TABLE3_INFECTION_TERMS))):
                rows.append(row(t[0].upper() + t[1:], is_c & (term == t), 1))
    unknown = np.array([x is None or x not in TABLE3_ORDER for x in cat], dtype=bool)
    if len(ae) and unknown.any():
        rows.append(row("Category not recorded", unknown))
    return pd.DataFrame(rows, columns=["row", "level", "n_patients", "pct", "n_events"])


def ae_incidence(db: Database, flt: Filter) -> pd.DataFrame:
    """Per category: patients with ≥ 1 event, % with Wilson 95 % CI, events, events per 100 PY.

    Person-years: each filtered patient's follow_up_months / 12 (last assessment).
    """
    ae, k = _ae_rows(db, flt)
    cond, params = flt.where("p")
    py = float(db.scalar(
        f"SELECT coalesce(sum(p.follow_up_months), 0) / 12.0 FROM patient_facts p WHERE {cond}",
        params,
    ) or 0.0)
    rows = []
    for c in TABLE3_ORDER:
        sub = ae[ae["category"] == c] if len(ae) else ae
        n_pat = int(sub["patient_id"].nunique()) if len(sub) else 0
        rate, lo, hi = stats.proportion_ci(n_pat, k) if k else (math.nan,) * 3
        rows.append({"category": c, "label": AE_LABELS[c], "n_patients": n_pat, "n": k,
                     "rate": rate, "ci_low": lo, "ci_high": hi, "n_events": len(sub),
                     "per_100_py": len(sub) / py * 100 if py else math.nan})
    return pd.DataFrame(rows)


def ae_time_to_first(db: Database, flt: Filter) -> pd.DataFrame:
    """Kaplan–Meier of weeks to the first adverse event; no event → censored at the last visit."""
    cond, params = flt.where("p")
    join, jparams = _ae_join(db, flt.cohort)
    df = db.query(
        f"""
        WITH first AS (
            SELECT a.patient_id, min(a.onset_week) AS first_week
            FROM adverse_events a {join} GROUP BY a.patient_id
        )
        SELECT p.patient_id, f.first_week, p.last_week
        FROM patient_facts p LEFT JOIN first f ON f.patient_id = p.patient_id
        WHERE {cond}
        """,
        [*jparams, *params],
    )
    if df.empty:
        return pd.DataFrame(columns=["group", "time", "n_risk", "n_event", "survival",
                                     "ci_low", "ci_high"])
    event = df["first_week"].notna().to_numpy(dtype=int)
    time = df["first_week"].fillna(df["last_week"]).fillna(0).to_numpy(dtype=float)
    km = stats.kaplan_meier(time, event)
    km.insert(0, "group", "All")
    return km


def ae_listing(db: Database, flt: Filter) -> pd.DataFrame:
    """Every adverse event of the filtered patients."""
    ae, _ = _ae_rows(db, flt)
    keep = [c.name for c in schema.AE_COLUMNS if c.name in ae.columns]
    return ae[keep].reset_index(drop=True)


# --- data quality -------------------------------------------------------------

QUALITY_COLUMNS = tuple(
    c for c in schema.VISIT_COLUMNS
    if c.name not in ("patient_id", "visit_week", "visit_date")
    and not c.name.startswith("sledai_")
)


def missingness(db: Database, flt: Filter) -> pd.DataFrame:
    """Per scheduled visit × variable: visits held, values missing and the share missing.

    The first row per visit, '(visit attended)', counts filtered patients with no
    visit row at that week; the others count missing values among held visits.
    """
    cond, params = flt.where("p")
    weeks = [int(w) for w in db.query(
        "SELECT unnest(scheduled_weeks) AS w FROM cohorts WHERE cohort = ?", [flt.cohort]
    )["w"]]
    present = db.columns("visit_facts")
    cols = [c for c in QUALITY_COLUMNS if c.name in present]
    counts = ", ".join(f'count(v."{c.name}") AS "{c.name}"' for c in cols)
    # Visits held per scheduled week among the filtered patients; every filtered patient
    # is expected at every week (no patients × weeks grid to join: 900,000 rows at scale).
    held = db.query(
        f"""
        SELECT v.visit_week, count(*) AS n_visits, {counts}
        FROM visit_facts v JOIN patient_facts p
          ON p.cohort = v.cohort AND p.patient_id = v.patient_id
        WHERE {cond} AND v.visit_week IN (SELECT unnest(?))
        GROUP BY v.visit_week
        """,
        [*params, weeks],
    ).set_index("visit_week")
    n_patients = analysis.count_patients(db, flt)[0]
    df = held.reindex(weeks, fill_value=0).rename_axis("visit_week").reset_index()
    df["n_patients"] = n_patients
    rows = []
    for _, r in df.iterrows():
        n_pat, n_vis = int(r["n_patients"]), int(r["n_visits"])
        rows.append({"visit_week": int(r["visit_week"]), "variable": "visit",
                     "label": "(visit attended)", "n_expected": n_pat,
                     "n_missing": n_pat - n_vis,
                     "pct_missing": (n_pat - n_vis) / n_pat if n_pat else math.nan})
        for c in cols:
            miss = n_vis - int(r[c.name])
            rows.append({"visit_week": int(r["visit_week"]), "variable": c.name,
                         "label": c.label, "n_expected": n_vis, "n_missing": miss,
                         "pct_missing": miss / n_vis if n_vis else math.nan})
    out = pd.DataFrame(rows, columns=["visit_week", "variable", "label", "n_expected",
                                      "n_missing", "pct_missing"])
    # A variable nobody ever recorded is a cohort design fact, not missing data.
    tot = out.groupby("variable")[["n_missing", "n_expected"]].transform("sum")
    out["recorded"] = (tot["n_missing"] < tot["n_expected"]) | (out["variable"] == "visit")
    return out


EDGE_FRACTION = 0.01  # within 1 % of the plausible span below the upper limit


def range_edges(db: Database, flt: Filter) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per-variable summary, listing) of values at the lower limit or near the upper one.

    Limits are the contract's plausibility ranges (schema lo/hi). A value within
    EDGE_FRACTION of the span below the upper limit is often a unit slip or a
    placeholder (999, 4.99); a value exactly at the lower limit is listed too,
    though 0 is real for doses and proteinuria.
    """
    cond, params = flt.where("p")
    present = db.columns("visit_facts")
    cols = [c for c in QUALITY_COLUMNS
            if c.name in present and c.dtype in (schema.NUMBER, schema.INTEGER)
            and c.lo is not None and c.hi is not None]
    empty_listing = pd.DataFrame(columns=["variable", "patient_id", "visit_week", "value", "edge"])
    if not cols:
        return pd.DataFrame(), empty_listing
    # One pass over the filtered visits for every variable (a wide aggregate: unpivoting
    # 100,000 patients' visits first cost ten times more), then the listing from only
    # the visits with a value at an edge.
    limits = [(c, float(c.lo), float(c.hi - (c.hi - c.lo) * EDGE_FRACTION)) for c in cols]
    join = ("FROM visit_facts v JOIN patient_facts p ON p.cohort = v.cohort "
            f"AND p.patient_id = v.patient_id WHERE {cond}")
    aggs, agg_params = [], []
    for i, (c, lo, high) in enumerate(limits):
        x = f'CAST(v."{c.name}" AS DOUBLE)'
        aggs.append(f"count({x}) AS n{i}, min({x}) AS lo{i}, max({x}) AS hi{i}, "
                    f"count(*) FILTER (WHERE {x} <= ?) AS nl{i}, "
                    f"count(*) FILTER (WHERE {x} >= ?) AS nh{i}")
        agg_params += [lo, high]
    r = db.query(f"SELECT {', '.join(aggs)} {join}", [*agg_params, *params]).iloc[0]
    summary = []
    for i, (c, _, _) in enumerate(limits):
        n = int(r[f"n{i}"])
        as_type = int if c.dtype == schema.INTEGER else float
        summary.append({"variable": c.name, "label": c.label, "unit": c.unit,
                        "range": f"{c.lo:g}–{c.hi:g}", "n_values": n,
                        "min": as_type(r[f"lo{i}"]) if n else None,
                        "max": as_type(r[f"hi{i}"]) if n else None,
                        "n_at_low": int(r[f"nl{i}"]), "n_near_high": int(r[f"nh{i}"])})
    summ = pd.DataFrame(summary)
    if not (summ["n_at_low"].sum() or summ["n_near_high"].sum()):
        return summ, empty_listing
    edge_cols = [(c, lo, high) for c, lo, high in limits
                 if int(summ.loc[summ["variable"] == c.name, "n_at_low"].iloc[0])
                 or int(summ.loc[summ["variable"] == c.name, "n_near_high"].iloc[0])]
    any_edge = " OR ".join(f'(v."{c.name}" <= ? OR v."{c.name}" >= ?)' for c, _, _ in edge_cols)
    edge_params = [x for _, lo, high in edge_cols for x in (lo, high)]
    select = ", ".join(f'CAST(v."{c.name}" AS DOUBLE) AS "{c.name}"' for c, _, _ in edge_cols)
    on = ", ".join(f'"{c.name}"' for c, _, _ in edge_cols)
    lim_sql = ", ".join("(?, ?, ?)" for _ in edge_cols)
    lim_params = [x for c, lo, high in edge_cols for x in (c.name, lo, high)]
    lst = db.query(
        f"""
        WITH fv AS (SELECT v.patient_id, v.visit_week, {select} {join} AND ({any_edge})),
        long AS (UNPIVOT fv ON {on} INTO NAME variable VALUE value),
        lim AS (SELECT * FROM (VALUES {lim_sql}) t(variable, lo, high))
        SELECT x.variable, x.patient_id, x.visit_week, x.value,
               CASE WHEN x.value >= l.high THEN 'near upper limit'
                    ELSE 'at lower limit' END AS edge
        FROM long x JOIN lim l ON x.variable = l.variable
        WHERE x.value <= l.lo OR x.value >= l.high
        QUALIFY row_number() OVER (PARTITION BY x.variable
                                   ORDER BY x.patient_id, x.visit_week) <= 200
        """,
        [*params, *edge_params, *lim_params],
    )
    order = {c.name: i for i, c in enumerate(cols)}
    lst = lst.sort_values(["variable", "patient_id", "visit_week"],
                          key=lambda s: s.map(order) if s.name == "variable" else s)
    return summ, lst.reset_index(drop=True)


# --- display helpers ----------------------------------------------------------


def fmt_p(p) -> str:
    """A p-value as papers print it (<0.001 or three decimals; 'not computable' when absent)."""
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return "not computable"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


# --- shaping analysis results for display -------------------------------------------


def pick_methods(lon: pd.DataFrame, method: str, recommended: pd.DataFrame | None = None
                 ) -> pd.DataFrame:
    """Rows of `analysis.longitudinal` for one method, or per visit the recommended one."""
    if method != "auto" or recommended is None or recommended.empty:
        return lon[lon["method"] == method].reset_index(drop=True)
    # A mask rather than a merge: same rows in the same order, without pandas' join
    # machinery on string columns (it was the page's slowest display step).
    pairs = set(zip(recommended["visit_week"].tolist(), recommended["method"].tolist(),
                    strict=True))
    keep = [(w, m) in pairs for w, m in zip(lon["visit_week"].tolist(), lon["method"].tolist(),
                                              strict=True)]
    return lon[keep].reset_index(drop=True)


def stats_table(rows: pd.DataFrame, summ: pd.DataFrame, display: str) -> pd.DataFrame:
    """The statistics table: per visit the summary shown and the test against the comparator."""
    s = summ.set_index("visit_week")
    out = []
    for r in rows.itertuples(index=False):
        w = r.visit_week
        cur = s.loc[w] if w in s.index else None
        if cur is None or not cur["n"]:
            shown = "—"
        elif cur["kind"] == "binary":
            shown = f"{int(cur['n_positive'])}/{int(cur['n'])} ({cur['rate'] * 100:.1f} %)"
        elif display == "median":
            shown = f"{cur['median']:.3g} ({cur['p25']:.3g}, {cur['p75']:.3g})"
        else:
            shown = f"{cur['mean']:.3g} ± {cur['sd']:.3g}" if cur["n"] > 1 else \
                f"{cur['mean']:.3g}"
        out.append({
            "week": w, "vs week": r.comparator_week, "method": r.method, "n": r.n,
            "summary": shown, "statistic": r.statistic, "p": r.p_value,
            "p adjusted": r.p_adjusted, "difference": r.mean_diff, "CI low": r.ci_low,
            "CI high": r.ci_high,
            "note": r.reason if isinstance(r.reason, str) and r.reason else "",
        })
    return pd.DataFrame(out, columns=["week", "vs week", "method", "n", "summary", "statistic",
                                      "p", "p adjusted", "difference", "CI low", "CI high",
                                      "note"])


def figure1_frame(summ: pd.DataFrame, lon: pd.DataFrame) -> pd.DataFrame:
    """Small-multiples data as in the seed paper's Figure 1.

    Skewed endpoints: median with IQR and Wilcoxon stars; others: mean ± 95 % CI
    with Bonferroni-adjusted repeated-measures stars; binary: % positive with
    Wilson CI and Fisher stars (the paper's test). All against baseline.
    """
    from .charts import stars

    rows = []
    for r in summ.itertuples(index=False):
        ep = schema.ENDPOINTS_BY_COLUMN[r.endpoint]
        if ep.kind == "binary":
            c, lo, hi, what, method = r.rate * 100, r.ci_low * 100, r.ci_high * 100, \
                "% positive (95 % CI)", "fisher"
        elif ep.skewed:
            c, lo, hi, what, method = r.median, r.p25, r.p75, "median (IQR)", "wilcoxon"
        else:
            c, lo, hi, what, method = r.mean, r.ci_low, r.ci_high, "mean (95 % CI)", \
                "rm_anova_bonferroni"
        sel = lon[(lon["endpoint"] == r.endpoint) & (lon["method"] == method)
                  & (lon["comparator"] == "baseline") & (lon["visit_week"] == r.visit_week)]
        p = float(sel["p_value"].iloc[0]) if len(sel) and pd.notna(sel["p_value"].iloc[0]) \
            else None
        label = f"{ep.label} ({ep.unit})" if ep.unit and ep.kind != "binary" else \
            f"{ep.label} (%)"
        rows.append({"endpoint": r.endpoint, "label": label, "visit_week": int(r.visit_week),
                     "n": int(r.n), "centre": c, "lower": lo, "upper": hi, "summary": what,
                     "method": method, "p_value": p, "stars": stars(p)})
    df = pd.DataFrame(rows)
    return df[df["n"] > 0].reset_index(drop=True) if len(df) else df


def _num_text(x, digits: int = 3) -> str:
    if x is None or pd.isna(x):
        return "–"
    return f"{x:.{digits}g}" if abs(x) < 1000 else f"{x:.0f}"


def table1_display(t1: pd.DataFrame, tests: pd.DataFrame | None = None) -> pd.DataFrame:
    """`analysis.table1` as a paper prints it: one row per variable (or level), one column
    per group; numbers 'mean ± SD; median (P25, P75) [n]', categories 'count/n (pct %)'.
    """
    if t1.empty:
        return pd.DataFrame(columns=["Characteristic", "Level"])
    groups = list(dict.fromkeys(t1["group"]))
    rows: dict[tuple, dict] = {}
    for r in t1.itertuples(index=False):
        numeric = r.level is None or pd.isna(r.level)
        key = (r.variable, None if numeric else str(r.level))
        if numeric:
            cell = (f"{_num_text(r.mean)} ± {_num_text(r.sd)}; {_num_text(r.median)} "
                    f"({_num_text(r.p25)}, {_num_text(r.p75)}) [n={int(r.n)}]") if r.n else "–"
        else:
            cell = (f"{int(r.count)}/{int(r.n)} ({r.pct:.1f} %)" if r.n else "–")
        rows.setdefault(key, {"Characteristic": r.label, "Level": key[1] or ""})
        rows[key][str(r.group)] = cell
    out = pd.DataFrame(list(rows.values()), columns=["Characteristic", "Level", *map(str, groups)])
    if tests is not None and not tests.empty:
        p = dict(zip(tests["variable"], tests["p_value"], strict=True))
        m = dict(zip(tests["variable"], tests["method"], strict=True))
        first = ~pd.Series([k[0] for k in rows]).duplicated().to_numpy()
        out["P"] = [fmt_p(p[k[0]]) if f and k[0] in p else "" for k, f in zip(rows, first,
                                                                           strict=True)]
        out["Test"] = [m.get(k[0], "") if f else "" for k, f in zip(rows, first, strict=True)]
    return out
