"""SQL pieces and helpers shared by the analyses (no analysis of its own)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from .. import schema, stats
from ..cache import memoize
from ..db import Database
from ..filters import Filter
from ..results import analysis


@analysis()
@memoize
def cohort_info(db: Database, cohort: str) -> dict:
    """Scheduled weeks, final week and size of one cohort."""
    df = db.query(
        "SELECT scheduled_weeks, final_week, n_patients FROM cohorts WHERE cohort = ?", [cohort]
    )
    if df.empty:
        raise ValueError(f"unknown cohort {cohort!r}")
    row = df.iloc[0]
    return {
        "scheduled_weeks": [int(w) for w in row["scheduled_weeks"]],
        "final_week": int(row["final_week"]),
        "n_patients": int(row["n_patients"]),
    }


@memoize
def count_patients(db: Database, flt: Filter) -> tuple[int, int]:
    """(patients matching the filter, patients in the cohort)."""
    cond, params = flt.where("p")
    row = db.query(
        f"SELECT count(*) FILTER (WHERE {cond}) AS k, count(*) AS n "
        "FROM patient_facts p WHERE p.cohort = ?",
        [*params, flt.cohort],
    ).iloc[0]
    return int(row["k"]), int(row["n"])


@analysis()
@memoize
def available_endpoints(db: Database, flt: Filter) -> list[schema.Endpoint]:
    """Endpoints with at least one value in the cohort."""
    cols = [e.column for e in schema.ENDPOINTS]
    counts = db.query(
        "SELECT " + ", ".join(f'count("{c}") AS "{c}"' for c in cols)
        + " FROM visit_facts WHERE cohort = ?",
        [flt.cohort],
    ).iloc[0]
    return [e for e in schema.ENDPOINTS if int(counts[e.column]) > 0]


def resolve_endpoints(db: Database, flt: Filter, endpoints: Sequence[str] | None) -> list[schema.Endpoint]:
    avail = available_endpoints(db, flt)
    if endpoints is None:
        return avail
    unknown = [e for e in endpoints if e not in schema.ENDPOINTS_BY_COLUMN]
    if unknown:
        raise ValueError(
            f"unknown endpoint(s) {', '.join(unknown)}; choose from "
            + ", ".join(schema.ENDPOINTS_BY_COLUMN)
        )
    names = {e.column for e in avail}
    return [schema.ENDPOINTS_BY_COLUMN[e] for e in endpoints if e in names]


def visits_sql(flt: Filter, columns: Sequence[str], extra_where: str = "") -> tuple[str, list]:
    """Visit rows of the filtered patients, only the named columns."""
    cond, params = flt.where("p")
    cols = ", ".join(f'v."{c}"' for c in columns)
    sql = (
        f"SELECT v.patient_id, v.visit_week, {cols} FROM visit_facts v "
        "JOIN patient_facts p ON p.cohort = v.cohort AND p.patient_id = v.patient_id "
        f"WHERE {cond} {extra_where}"
    )
    return sql, params


def spss_quantile(p: float, xs: str = "xs", n: str = "n") -> str:
    """SQL for the SPSS (R type 6) quantile of a sorted 1-based list `xs` of length `n`."""
    h = f"({p} * ({n} + 1))"
    lo = f"CAST(floor({h}) AS BIGINT)"
    return (
        f"CASE WHEN {n} = 0 THEN NULL WHEN {lo} < 1 THEN {xs}[1] "
        f"WHEN {lo} >= {n} THEN {xs}[{n}] "
        f"ELSE {xs}[{lo}] + ({h} - {lo}) * ({xs}[{lo} + 1] - {xs}[{lo}]) END"
    )


def adjusted(p: pd.Series, method: str) -> np.ndarray:
    """Adjusted p-values as floats (NaN where a test was not computable)."""
    adj = stats.adjust_p([None if pd.isna(v) else float(v) for v in p], method)
    return np.array([np.nan if v is None else v for v in adj], dtype=float)


def crosstab(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Counts of each (a, b) pair, rows and columns in sorted label order."""
    ra, ia = np.unique(a.astype(str), return_inverse=True)
    rb, ib = np.unique(b.astype(str), return_inverse=True)
    table = np.zeros((ra.size, rb.size), dtype=np.int64)
    np.add.at(table, (ia, ib), 1)
    return table


def categorical_test(table: np.ndarray) -> stats.TestResult:
    if table.shape[0] < 2 or table.shape[1] < 2:
        return stats.TestResult("chi2", int(table.sum()), reason="only one level or one group")
    tot = table.sum()
    expected = table.sum(1, keepdims=True) * table.sum(0, keepdims=True) / tot
    if (expected >= 5).all():
        return stats.chi2(table)
    return stats.fisher(table, conf_int=False)  # only the p-value is shown


