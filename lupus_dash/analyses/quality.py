"""Data quality: missingness per visit and variable, values at the plausible-range edges."""

from __future__ import annotations

import math

import pandas as pd

from .. import schema
from ..db import Database
from ..filters import Filter
from ..results import Part, analysis
from .common import cohort_info, count_patients

QUALITY_COLUMNS = tuple(
    c for c in schema.VISIT_COLUMNS
    if c.name not in ("patient_id", "visit_week", "visit_date")
    and not c.name.startswith("sledai_")
)


@analysis(counts={"n_missing": "n_expected", "n_expected": None},
          n_of={"pct_missing": "n_expected"}, cli=lambda kw: None)
def missingness(db: Database, flt: Filter) -> pd.DataFrame:
    """Per scheduled visit × variable: visits held, values missing and the share missing.

    The first row per visit, '(visit attended)', counts filtered patients with no
    visit row at that week; the others count missing values among held visits.
    """
    cond, params = flt.where("p")
    weeks = cohort_info(db, flt.cohort)["scheduled_weeks"]
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
    n_patients = count_patients(db, flt)[0]
    df = held.reindex(weeks, fill_value=0).rename_axis("visit_week").reset_index()
    rows = []
    for _, r in df.iterrows():
        n_pat, n_vis = n_patients, int(r["n_visits"])
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


# Variables whose plausible-range floor is an ordinary clinical value, not a suspect one.
NATURAL_FLOOR = frozenset({"sledai2k", "pga", "prednisone_mg_day", "prednisone_mg_kg_day",
                           "urine_protein_g_24h", "upcr_g_g", "anti_dsdna_iu_ml", "cd19_pct"})
EDGE_FRACTION = 0.01  # within 1 % of the plausible span below the upper limit


@analysis(parts={"summary": Part(counts={"n_values": None, "n_at_low": "n_values",
                                          "n_near_high": "n_values"},
                                  extremes=("min", "max")),
                 "listing": Part(patient_level=True)}, cli=lambda kw: None)
def range_edges(db: Database, flt: Filter) -> dict[str, pd.DataFrame]:
    """Per-variable summary and listing of values at the lower limit or near the upper one.

    Limits are the contract's plausibility ranges (schema lo/hi). A value within
    EDGE_FRACTION of the span below the upper limit is often a unit slip or a
    placeholder (999, 4.99); a value exactly at the lower limit is listed too,
    except where the floor is a real clinical value (NATURAL_FLOOR: a SLEDAI-2K or
    PGA of 0, no glucocorticoid, no proteinuria).
    """
    cond, params = flt.where("p")
    present = db.columns("visit_facts")
    cols = [c for c in QUALITY_COLUMNS
            if c.name in present and c.dtype in (schema.NUMBER, schema.INTEGER)
            and c.lo is not None and c.hi is not None]
    empty_listing = pd.DataFrame(columns=["variable", "patient_id", "visit_week", "value", "edge"])
    if not cols:
        return {"summary": pd.DataFrame(), "listing": empty_listing}
    # One pass over the filtered visits for every variable (a wide aggregate: unpivoting
    # 100,000 patients' visits first cost ten times more), then the listing from only
    # the visits with a value at an edge.
    # A natural floor is never an edge: its lower limit is set below any value.
    limits = [(c, -math.inf if c.name in NATURAL_FLOOR else float(c.lo),
               float(c.hi - (c.hi - c.lo) * EDGE_FRACTION)) for c in cols]
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
        return {"summary": summ, "listing": empty_listing}
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
    return {"summary": summ, "listing": lst.reset_index(drop=True)}


