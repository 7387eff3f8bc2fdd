"""Endpoint × visit computations shared by the pages and `report`.

Every function takes a `Database` and a `Filter` and returns a tidy,
unrounded DataFrame. Aggregates (counts, means, quartiles, rates) run in
DuckDB; paired and group tests pull only the columns they need and run
vectorised in `stats`.
"""

from __future__ import annotations

import copy
import functools
import math
import threading
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np
import pandas as pd

from . import schema, stats
from .db import Database
from .filters import Filter
from .lazy import LazyModule

sps = LazyModule("scipy.stats")  # imported on first use (lazy.py)

COMPARATORS = ("baseline", "previous")
# The Hodges–Lehmann shift and CI beside a Wilcoxon test cost O(n log n) Walsh
# averages; registries far above this size get the test without it.
HL_MAX_PAIRS = 5_000
CONTINUOUS_METHODS = ("paired_t", "wilcoxon", "rm_anova_bonferroni")
BINARY_METHODS = ("mcnemar_exact", "fisher")

LONGITUDINAL_COLUMNS = [
    "endpoint",
    "visit_week",
    "comparator",
    "comparator_week",
    "method",
    "n",
    "statistic",
    "p_value",
    "p_adjusted",
    "mean_diff",
    "ci_low",
    "ci_high",
    "effect",
    "effect_name",
    "reason",
]


# --- memo ---------------------------------------------------------------------

MEMO_SIZE = 256  # results kept per function; small frames, a few MB at most


def _freeze(v):
    if isinstance(v, (list, tuple)):
        return tuple(_freeze(x) for x in v)
    if isinstance(v, dict):
        return tuple(sorted((k, _freeze(x)) for k, x in v.items()))
    return v


def _memo(fn):
    """Remember results per (database file version, filter, arguments); hand out copies.

    A page computes Figure 1 and Table 2 from the same summary and tests, and
    `report` builds several sections from them: each is computed once. The key
    holds the file's path, mtime and size, so a rewritten database is never
    served stale results. Thread-safe; callers get copies they may modify.
    """
    cache: OrderedDict = OrderedDict()
    lock = threading.Lock()
    running: dict = {}  # key → Event of a computation in progress

    @functools.wraps(fn)
    def wrapper(db, *args, **kwargs):
        key = (db.version, _freeze(args), _freeze(kwargs))
        with lock:
            if key in cache:
                cache.move_to_end(key)
                return copy.deepcopy(cache[key])
            done = running.get(key)
            owner = done is None
            if owner:
                done = running[key] = threading.Event()
        if not owner:
            # Another session is computing the same thing (several users on one filter):
            # wait for its result instead of computing it again alongside.
            done.wait(timeout=300)
            with lock:
                if key in cache:
                    return copy.deepcopy(cache[key])
            return fn(db, *args, **kwargs)  # it failed: compute here (and raise here)
        try:
            result = fn(db, *args, **kwargs)
            with lock:
                cache[key] = result
                while len(cache) > MEMO_SIZE:
                    cache.popitem(last=False)
        finally:
            with lock:
                running.pop(key, None)
            done.set()
        return copy.deepcopy(result)

    wrapper.cache_clear = cache.clear
    return wrapper


memoize = _memo  # for explore and report, which share the same per-file-version memo


# --- cohort and filter basics -------------------------------------------------


@_memo
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


@_memo
def count_patients(db: Database, flt: Filter) -> tuple[int, int]:
    """(patients matching the filter, patients in the cohort)."""
    cond, params = flt.where("p")
    row = db.query(
        f"SELECT count(*) FILTER (WHERE {cond}) AS k, count(*) AS n "
        "FROM patient_facts p WHERE p.cohort = ?",
        [*params, flt.cohort],
    ).iloc[0]
    return int(row["k"]), int(row["n"])


@_memo
def available_endpoints(db: Database, flt: Filter) -> list[schema.Endpoint]:
    """Endpoints with at least one value in the cohort."""
    cols = [e.column for e in schema.ENDPOINTS]
    counts = db.query(
        "SELECT " + ", ".join(f'count("{c}") AS "{c}"' for c in cols)
        + " FROM visit_facts WHERE cohort = ?",
        [flt.cohort],
    ).iloc[0]
    return [e for e in schema.ENDPOINTS if int(counts[e.column]) > 0]


def _endpoints(db: Database, flt: Filter, endpoints: Sequence[str] | None) -> list[schema.Endpoint]:
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


def _visits_sql(flt: Filter, columns: Sequence[str], extra_where: str = "") -> tuple[str, list]:
    """Visit rows of the filtered patients, only the named columns."""
    cond, params = flt.where("p")
    cols = ", ".join(f'v."{c}"' for c in columns)
    sql = (
        f"SELECT v.patient_id, v.visit_week, {cols} FROM visit_facts v "
        "JOIN patient_facts p ON p.cohort = v.cohort AND p.patient_id = v.patient_id "
        f"WHERE {cond} {extra_where}"
    )
    return sql, params


def _spss_quantile(p: float, xs: str = "xs", n: str = "n") -> str:
    """SQL for the SPSS (R type 6) quantile of a sorted 1-based list `xs` of length `n`."""
    h = f"({p} * ({n} + 1))"
    lo = f"CAST(floor({h}) AS BIGINT)"
    return (
        f"CASE WHEN {n} = 0 THEN NULL WHEN {lo} < 1 THEN {xs}[1] "
        f"WHEN {lo} >= {n} THEN {xs}[{n}] "
        f"ELSE {xs}[{lo}] + ({h} - {lo}) * ({xs}[{lo} + 1] - {xs}[{lo}]) END"
    )


# --- descriptive summaries ----------------------------------------------------


@_memo
def summary(
    db: Database,
    flt: Filter,
    endpoints: Sequence[str] | None = None,
    weeks: Sequence[int] | None = None,
) -> pd.DataFrame:
    """n, mean, SD, SE, 95 % CI, median and SPSS quartiles (or rate) per endpoint × visit."""
    eps = _endpoints(db, flt, endpoints)
    cols = [
        "endpoint", "kind", "visit_week", "n", "mean", "sd", "se", "ci_low", "ci_high",
        "median", "p25", "p75", "n_positive", "rate",
    ]
    if not eps:
        return pd.DataFrame(columns=cols)
    if weeks is None:
        weeks = cohort_info(db, flt.cohort)["scheduled_weeks"]
    base, params = _visits_sql(flt, [e.column for e in eps])
    unpivot = " UNION ALL ".join(
        f'SELECT ? AS endpoint, visit_week, CAST("{e.column}" AS DOUBLE) AS value FROM base'
        for e in eps
    )
    sql = f"""
        WITH base AS ({base} AND v.visit_week IN (SELECT unnest(?))),
        long AS ({unpivot}),
        agg AS (
            SELECT endpoint, visit_week, count(value) AS n, avg(value) AS mean,
                   stddev_samp(value) AS sd, sum(value) AS total,
                   list_sort(list(value) FILTER (WHERE value IS NOT NULL)) AS xs
            FROM long GROUP BY endpoint, visit_week
        ),
        -- Every endpoint × scheduled week appears, with n = 0 where nobody has a value.
        grid AS (SELECT e.endpoint, e.pos, w.visit_week
                 FROM (SELECT unnest(?) AS endpoint, generate_subscripts(?, 1) AS pos) e
                 CROSS JOIN (SELECT unnest(?) AS visit_week) w)
        SELECT g.endpoint, g.visit_week, coalesce(a.n, 0) AS n, a.mean, a.sd, a.total,
               {_spss_quantile(0.5, "a.xs", "a.n")} AS median,
               {_spss_quantile(0.25, "a.xs", "a.n")} AS p25,
               {_spss_quantile(0.75, "a.xs", "a.n")} AS p75
        FROM grid g LEFT JOIN agg a
          ON a.endpoint = g.endpoint AND a.visit_week = g.visit_week
        ORDER BY g.pos, g.visit_week
    """
    names = [e.column for e in eps]
    wk = [int(w) for w in weeks]
    df = db.query(sql, [*params, wk, *names, names, names, wk])
    return finish_summary(df, eps)


def finish_summary(df: pd.DataFrame, eps: Sequence[schema.Endpoint]) -> pd.DataFrame:
    """From per endpoint × visit n, mean, sd, total and quartiles to the summary columns.

    Adds SE and the t 95 % CI of the mean (Wilson for binary endpoints, whose
    rate is the mean of 0/1), blanks mean-type columns for binary endpoints and
    orders rows by endpoint then week. Shared with the benchmark's pandas peer.
    Works on NumPy arrays and builds the frame once (a page calls it per rerun).
    """
    order = {e.column: i for i, e in enumerate(eps)}
    kind = {e.column: e.kind for e in eps}
    ep = df["endpoint"].to_numpy(dtype=object)
    wk = df["visit_week"].to_numpy(dtype=np.int64)
    idx = np.lexsort((wk, np.array([order[e] for e in ep], dtype=np.int64)))
    ep, wk = ep[idx], wk[idx]

    def col(name):
        return df[name].to_numpy(dtype=float, na_value=np.nan)[idx]

    n = np.nan_to_num(col("n"), nan=0.0)
    mean, sd, total = col("mean"), col("sd"), col("total")
    med, p25, p75 = col("median"), col("p25"), col("p75")
    with np.errstate(invalid="ignore", divide="ignore"):
        se = sd / np.sqrt(n)
        tcrit = np.where(n > 1, sps.t.ppf(0.975, np.maximum(n - 1, 1)), np.nan)
    lo, hi = mean - tcrit * se, mean + tcrit * se
    binary = np.array([kind[e] == "binary" for e in ep], dtype=bool)
    n_pos = np.where(binary, total, np.nan)
    rate = np.where(binary, mean, np.nan)
    for i in np.flatnonzero(binary):
        _, lo[i], hi[i] = (np.nan if v is None else v for v in stats.proportion_ci(
            int(n_pos[i]) if n[i] else 0, int(n[i])))
    for a in (mean, sd, se, med, p25, p75):
        a[binary] = np.nan
    return pd.DataFrame({
        "endpoint": ep, "kind": [kind[e] for e in ep], "visit_week": wk,
        "n": n.astype(np.int64), "mean": mean, "sd": sd, "se": se, "ci_low": lo,
        "ci_high": hi, "median": med, "p25": p25, "p75": p75, "n_positive": n_pos,
        "rate": rate,
    })


# --- paired comparisons -------------------------------------------------------


def wide_values(db: Database, flt: Filter, endpoint: str, weeks: Sequence[int]) -> pd.DataFrame:
    """Patients × weeks array of one endpoint (NaN where missing)."""
    base, params = _visits_sql(flt, [endpoint], "AND v.visit_week IN (SELECT unnest(?))")
    df = db.query(base, [*params, [int(w) for w in weeks]])
    if df.empty:
        return pd.DataFrame(columns=list(weeks), dtype=float)
    wide = df.pivot(index="patient_id", columns="visit_week", values=endpoint)
    wide = wide.reindex(columns=list(weeks)).astype(float)
    return wide


@_memo
def wide_arrays(
    db: Database, flt: Filter, endpoints: Sequence[str], weeks: Sequence[int]
) -> dict[str, np.ndarray]:
    """Patients × weeks float arrays for several endpoints from one query (NaN = missing).

    DuckDB numbers the patients and the week positions, so no pandas pivot is needed.
    """
    weeks = [int(w) for w in weeks]
    if not endpoints:
        return {}
    cond, params = flt.where("p")
    cols = ", ".join(f'CAST(v."{c}" AS DOUBLE) AS "{c}"' for c in endpoints)
    sql = (
        "SELECT CAST(dense_rank() OVER (ORDER BY v.patient_id) - 1 AS BIGINT) AS pi, "
        "CAST(list_position(?, v.visit_week) - 1 AS BIGINT) AS wi, "
        f"{cols} FROM visit_facts v JOIN patient_facts p "
        "ON p.cohort = v.cohort AND p.patient_id = v.patient_id "
        f"WHERE {cond} AND v.visit_week IN (SELECT unnest(?))"
    )
    cur = db.cursor()
    try:
        res = cur.execute(sql, [weeks, *params, weeks]).fetchnumpy()
    finally:
        cur.close()
    pi, wi = np.asarray(res["pi"], dtype=np.int64), np.asarray(res["wi"], dtype=np.int64)
    n = int(pi.max()) + 1 if pi.size else 0
    out = {}
    for c in endpoints:
        arr = np.full((n, len(weeks)), np.nan)
        vals = res[c]
        vals = np.ma.filled(vals.astype(float), np.nan) if np.ma.isMaskedArray(vals) \
            else np.asarray(vals, dtype=float)
        arr[pi, wi] = vals
        out[c] = arr
    return out


def _comparator_week(weeks: list[int], w: int, comparator: str) -> int:
    if comparator == "baseline":
        return weeks[0]
    return weeks[weeks.index(w) - 1]


def _row(endpoint, week, comparator, cweek, res: stats.TestResult) -> dict:
    return {
        "endpoint": endpoint,
        "visit_week": week,
        "comparator": comparator,
        "comparator_week": cweek,
        "method": res.method,
        "n": res.n,
        "statistic": res.statistic,
        "p_value": res.p_value,
        "p_adjusted": None,
        "mean_diff": res.mean_diff,
        "ci_low": res.ci_low,
        "ci_high": res.ci_high,
        "effect": res.effect,
        "effect_name": res.effect_name,
        "reason": res.reason,
    }


@_memo
def longitudinal(
    db: Database,
    flt: Filter,
    endpoints: Sequence[str] | None = None,
    comparators: Sequence[str] = COMPARATORS,
    methods: Sequence[str] | None = None,
    adjust: str = "none",
    include_mixed: bool = False,
    weeks: Sequence[int] | None = None,
) -> pd.DataFrame:
    """Every follow-up visit against baseline and the previous visit, by every method."""
    for c in comparators:
        if c not in COMPARATORS:
            raise ValueError(f"comparator must be baseline or previous, not {c!r}")
    weeks = list(weeks or cohort_info(db, flt.cohort)["scheduled_weeks"])
    rows: list[dict] = []
    eps = _endpoints(db, flt, endpoints)
    arrays = wide_arrays(db, flt, [e.column for e in eps], weeks)
    for ep in eps:
        arr = arrays[ep.column]
        if ep.kind == "binary":
            wanted = [m for m in (methods or BINARY_METHODS) if m in BINARY_METHODS]
        else:
            wanted = [m for m in (methods or CONTINUOUS_METHODS) if m in CONTINUOUS_METHODS]
        rows.extend(_paired_rows(ep.column, arr, weeks, comparators, wanted))
        if include_mixed and ep.kind == "continuous" and "baseline" in comparators:
            rows.extend(_mixed_rows(db, flt, ep.column, weeks))
    df = pd.DataFrame(rows, columns=LONGITUDINAL_COLUMNS)
    return adjust_longitudinal(df, adjust)


def _paired_rows(endpoint, arr, weeks, comparators, methods) -> list[dict]:
    rows = []
    follow = weeks[1:]
    pairs = (stats.rm_anova_bonferroni(arr, list(weeks))
             if "rm_anova_bonferroni" in methods and len(weeks) >= 2 else None)
    for comparator in comparators:
        for w in follow:
            cw = _comparator_week(weeks, w, comparator)
            x, y = arr[:, weeks.index(w)], arr[:, weeks.index(cw)]
            for m in methods:
                if m == "rm_anova_bonferroni":
                    continue
                if m in ("mcnemar_exact", "fisher"):
                    xb = np.where(np.isnan(x), np.nan, x)
                    yb = np.where(np.isnan(y), np.nan, y)
                    res = (stats.mcnemar_exact(xb, yb) if m == "mcnemar_exact"
                           else stats.fisher_visits(xb, yb, conf_int=False))
                elif m == "wilcoxon":
                    hl = int(np.sum(~np.isnan(x) & ~np.isnan(y))) <= HL_MAX_PAIRS
                    res = stats.wilcoxon(x, y, hodges_lehmann=hl)
                    if not hl:
                        res.extra["hl_note"] = (f"Hodges–Lehmann shift skipped above "
                                                f"{HL_MAX_PAIRS} pairs (speed)")
                else:
                    res = getattr(stats, m)(x, y)
                rows.append(_row(endpoint, w, comparator, cw, res))
        if pairs is not None:
            by_pair = {(r.extra.get("a"), r.extra.get("b")): r for r in pairs}
            for w in follow:
                cw = _comparator_week(weeks, w, comparator)
                res = by_pair.get((cw, w))
                if res is None:
                    res = stats.TestResult(
                        "rm_anova_bonferroni", 0, reason=pairs[0].reason if pairs else "no data"
                    )
                rows.append(_row(endpoint, w, comparator, cw, res))
    return rows


def _mixed_rows(db, flt, endpoint, weeks) -> list[dict]:
    base, params = _visits_sql(flt, [endpoint], "AND v.visit_week IN (SELECT unnest(?))")
    long = db.query(base, [*params, [int(w) for w in weeks]]).rename(
        columns={"patient_id": "subject", "visit_week": "visit", endpoint: "value"}
    )
    long = long.dropna(subset=["value"])
    results = stats.mixed_model(long, baseline=weeks[0])
    out = []
    for res in results:
        w = res.extra.get("visit")
        out.append(_row(endpoint, w, "baseline", weeks[0], res))
    if not results:
        out.append(
            _row(endpoint, None, "baseline", weeks[0],
                 stats.TestResult("mixed_model", 0, reason="no observations"))
        )
    return out


def adjust_longitudinal(df: pd.DataFrame, adjust: str) -> pd.DataFrame:
    """Adjusted p beside the raw p, within endpoint × comparator × method across visits.

    rm_anova_bonferroni p-values are already Bonferroni-adjusted for all k(k−1)/2
    pairs (the SPSS convention), so they are copied, not adjusted again.
    """
    df = df.copy()
    df["p_adjusted"] = df["p_value"]
    if adjust == "none" or df.empty:
        return df
    for idx in df.groupby(["endpoint", "comparator", "method"]).groups.values():
        if df.loc[idx[0], "method"] == "rm_anova_bonferroni":
            continue
        df.loc[idx, "p_adjusted"] = _adjusted(df.loc[idx, "p_value"], adjust)
    return df


def _adjusted(p: pd.Series, method: str) -> np.ndarray:
    """Adjusted p-values as floats (NaN where a test was not computable)."""
    adj = stats.adjust_p([None if pd.isna(v) else float(v) for v in p], method)
    return np.array([np.nan if v is None else v for v in adj], dtype=float)


@_memo
def recommended_methods(
    db: Database, flt: Filter, endpoint: str, comparator: str = "baseline"
) -> pd.DataFrame:
    """The method the dashboard shows by default per visit, with the reason (STATISTICS.md)."""
    ep = schema.ENDPOINTS_BY_COLUMN[endpoint]
    weeks = cohort_info(db, flt.cohort)["scheduled_weeks"]
    arr = wide_arrays(db, flt, [endpoint], weeks)[endpoint]
    rows = []
    for w in weeks[1:]:
        cw = _comparator_week(weeks, w, comparator)
        if ep.kind == "binary":
            rows.append({"visit_week": w, "method": "mcnemar_exact",
                         "reason": "binary endpoint: exact McNemar on the discordant pairs"})
            continue
        method, reason = stats.choose_paired_method(
            arr[:, weeks.index(w)], arr[:, weeks.index(cw)]
        )
        rows.append({"visit_week": w, "method": method, "reason": reason})
    return pd.DataFrame(rows, columns=["visit_week", "method", "reason"])


@_memo
def omnibus(db: Database, flt: Filter, endpoints: Sequence[str] | None = None) -> pd.DataFrame:
    """Friedman and repeated-measures ANOVA over the scheduled visits (complete cases)."""
    weeks = cohort_info(db, flt.cohort)["scheduled_weeks"]
    rows = []
    eps = [e for e in _endpoints(db, flt, endpoints) if e.kind == "continuous"]
    arrays = wide_arrays(db, flt, [e.column for e in eps], weeks)
    for ep in eps:
        arr = arrays[ep.column]
        for res in (stats.friedman(arr), stats.rm_anova(arr)):
            rows.append({"endpoint": ep.column, "method": res.method, "n": res.n,
                         "statistic": res.statistic, "p_value": res.p_value, "df": res.df,
                         "reason": res.reason})
    return pd.DataFrame(rows, columns=["endpoint", "method", "n", "statistic", "p_value", "df",
                                       "reason"])


# --- remission ----------------------------------------------------------------

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


@_memo
def remission(
    db: Database,
    flt: Filter,
    preset: str = "standard",
    observed: bool = False,
    ci: str = "wilson",
    definitions: Sequence[str] = schema.REMISSION_DEFINITIONS,
    extras: bool = True,
) -> pd.DataFrame:
    """Rates by scheduled visit and at each patient's last assessment (`visit_week="last"`).

    Non-responder imputation by default: a patient with no assessment at a visit
    (stopped, missed) or one that cannot be evaluated counts as not achieving it and
    stays in the denominator. Renal definitions count only patients with active
    nephritis at baseline (a renal response is undefined otherwise). `observed=True`
    divides by the patients with an evaluable assessment at that visit.
    """
    defs = list(definitions) + (list(EXTRA_OUTCOMES) if extras else [])
    weeks = cohort_info(db, flt.cohort)["scheduled_weeks"]
    cond, params = flt.where("p")
    exprs = ", ".join(f'{_outcome_expr(d, preset)} AS "{d}"' for d in defs)
    rows_sql = f"""
        SELECT p.patient_id, v.visit_week, v.is_last, {exprs}
        FROM patient_facts p
        LEFT JOIN visit_facts v ON v.cohort = p.cohort AND v.patient_id = p.patient_id
        WHERE {cond}
    """
    renal_base = _renal_eligible_sql(flt)
    sums = ", ".join(
        f'count(*) FILTER (WHERE "{d}") AS "{d}__yes", count("{d}") AS "{d}__obs"'
        + (f', count(*) FILTER (WHERE "{d}" AND patient_id IN (SELECT patient_id FROM renal)) '
           f'AS "{d}__yes_r", count("{d}") FILTER (WHERE patient_id IN '
           f'(SELECT patient_id FROM renal)) AS "{d}__obs_r"'
           if d in schema.RENAL_DEFINITIONS else "")
        for d in defs
    )
    sql = f"""
        WITH r AS ({rows_sql}), renal AS ({renal_base[0]}),
        by_week AS (SELECT CAST(visit_week AS VARCHAR) AS wk, {sums} FROM r
                    WHERE visit_week IN (SELECT unnest(?)) GROUP BY visit_week),
        last AS (SELECT 'last' AS wk, {sums} FROM r WHERE is_last)
        SELECT * FROM by_week UNION ALL SELECT * FROM last
    """
    counts = db.query(sql, [*params, *renal_base[1], [int(w) for w in weeks]])
    k, _ = count_patients(db, flt)
    n_renal = int(db.scalar(f"SELECT count(*) FROM ({renal_base[0]})", renal_base[1]))
    by_wk = {r["wk"]: r for _, r in counts.iterrows()}
    out = []
    for wk in [*(str(w) for w in weeks), "last"]:
        r = by_wk.get(wk)
        for d in defs:
            renal = d in schema.RENAL_DEFINITIONS
            yes = 0 if r is None else int(r[f"{d}__yes_r" if renal else f"{d}__yes"])
            obs = 0 if r is None else int(r[f"{d}__obs_r" if renal else f"{d}__obs"])
            denom = obs if observed else (n_renal if renal else k)
            rate, lo, hi = stats.proportion_ci(yes, denom, method=ci)
            out.append({
                "visit_week": "last" if wk == "last" else int(wk),
                "definition": d,
                "n_achieved": yes,
                "n_evaluable": denom,
                "rate": rate,
                "ci_low": lo,
                "ci_high": hi,
            })
    return pd.DataFrame(out, columns=["visit_week", "definition", "n_achieved", "n_evaluable",
                                      "rate", "ci_low", "ci_high"])


def _renal_eligible_sql(flt: Filter) -> tuple[str, list]:
    """Patients with active nephritis at baseline: proteinuria ≥ 0.5 g/g (or g/day).

    KDIGO 2021 complete response is UPCR < 0.5 g/g; a patient already below it at
    baseline cannot 'respond' (CLINICAL_DEFINITIONS.md §5).
    """
    cond, params = flt.where("p")
    sql = (
        "SELECT p.patient_id FROM patient_facts p JOIN visit_facts v "
        "ON v.cohort = p.cohort AND v.patient_id = p.patient_id AND v.visit_week = 0 "
        f"WHERE {cond} AND coalesce(v.upcr_g_g, v.urine_protein_g_24h) >= 0.5"
    )
    return sql, params


@_memo
def remission_states(db: Database, flt: Filter, preset: str = "standard") -> pd.DataFrame:
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
    df["pct"] = df["n"] / total * 100
    order = {s: i for i, s in enumerate(["remission", "LLDAS", "active", "not evaluable",
                                         "no visit"])}
    df = df.sort_values(["visit_week", "state"], key=lambda s: s.map(order) if s.name == "state"
                        else s)
    return df.reset_index(drop=True)


# --- table 1 ------------------------------------------------------------------

TABLE1_NUMERIC = (
    "age_at_onset_years", "age_at_baseline_years", "disease_duration_months",
    "follow_up_months", "weight_kg", "height_cm",
)
TABLE1_CATEGORICAL = (
    "sex", "age_band", "biopsy_class", "class_group", "immunosuppressant", "antimalarial",
    "ana_positive", "baseline_anti_dsdna", "completer", *(f"organ_{o}" for o in schema.ORGANS),
)
TABLE1_BASELINE = (
    "c3_g_l", "c4_g_l", "urine_protein_g_24h", "upcr_g_g", "cd19_pct", "anti_dsdna_positive",
    "sledai2k", "pga", "prednisone_mg_day", "albumin_g_l", "creatinine_umol_l", "egfr_ml_min",
)


def _table1_sql(flt: Filter, group_by: str | None) -> tuple[str, list]:
    """One row per filtered patient: Table 1's patient columns, baseline visit, group."""
    cond, params = flt.where("p")
    base_cols = ", ".join(f'b."{c}" AS "{c}"' for c in TABLE1_BASELINE)
    pcols = ", ".join(f'p."{c}"' for c in (*TABLE1_NUMERIC, *TABLE1_CATEGORICAL))
    grp = f', p."{group_by}" AS "__group"' if group_by else ""
    sql = (
        f"SELECT p.patient_id, {pcols}, {base_cols}{grp} FROM patient_facts p "
        "LEFT JOIN visit_facts b ON b.cohort = p.cohort AND b.patient_id = p.patient_id "
        f"AND b.visit_week = 0 WHERE {cond}"
    )
    return sql, params


def _table1_frame(db: Database, flt: Filter, group_by: str | None) -> pd.DataFrame:
    return db.query(*_table1_sql(flt, group_by))


_T1_COLUMNS = {c.name: c for c in (*schema.columns("patient_facts"), *schema.VISIT_COLUMNS)}


def _dtype_of(var: str) -> str:
    col = _T1_COLUMNS.get(var)
    return col.dtype if col is not None else schema.NUMBER


def _text_sql(expr: str, dtype: str) -> str:
    """A column as the text pandas' astype("string") gives (booleans as True/False)."""
    if dtype == schema.BOOL:
        return f"CASE WHEN {expr} THEN 'True' WHEN NOT {expr} THEN 'False' END"
    return f"CAST({expr} AS VARCHAR)"


@_memo
def table1(db: Database, flt: Filter, group_by: str | None = None) -> pd.DataFrame:
    """Baseline characteristics, overall and per group (group = 'Overall' or a level).

    Aggregated in DuckDB: the numbers unpivoted to (variable, value) and the
    categories to (variable, level), each grouped once over the grouping sets
    (variable) and (variable, group); SPSS type-6 quartiles as analysis.summary.
    """
    if group_by is not None and group_by not in schema.GROUPING_COLUMNS:
        raise ValueError(f"cannot group by {group_by!r}")
    base, params = _table1_sql(flt, group_by)
    grp = (f"""coalesce({_text_sql('"__group"', _dtype_of(group_by))}, '(missing)')"""
           if group_by else "'Overall'")
    # Overall rows have grp NULL; with a split, one pass over both grouping sets.
    if group_by:
        gsel = "CASE WHEN GROUPING(grp) = 1 THEN NULL ELSE grp END AS grp"
        gby = "GROUPING SETS ((variable), (variable, grp))"
        gby_cat = "GROUPING SETS ((variable, level), (variable, grp, level))"
    else:
        gsel, gby, gby_cat = "NULL AS grp", "variable", "variable, level"
    numeric = [v for v in TABLE1_NUMERIC + TABLE1_BASELINE if _var_kind(v) == "numeric"]
    categorical = [v for v in TABLE1_NUMERIC + TABLE1_BASELINE + TABLE1_CATEGORICAL
                   if _var_kind(v) == "categorical"]
    num_select = ", ".join(f'CAST("{v}" AS DOUBLE) AS "{v}"' for v in numeric)
    num_on = ", ".join(f'"{v}"' for v in numeric)
    cat_select = ", ".join(_text_sql('"' + v + '"', _dtype_of(v)) + f' AS "{v}"'
                           for v in categorical)
    cat_on = ", ".join(f'"{v}"' for v in categorical)
    num = db.query(f"""
        WITH t AS ({base}),
        u AS (UNPIVOT (SELECT {grp} AS grp, {num_select} FROM t)
              ON {num_on} INTO NAME variable VALUE value),
        a AS (SELECT variable, {gsel}, count(value) AS n,
                     avg(value) AS mean, stddev_samp(value) AS sd,
                     list_sort(list(value)) AS xs
              FROM u GROUP BY {gby})
        SELECT variable, grp, n, mean, sd,
               {_spss_quantile(0.5)} AS median, {_spss_quantile(0.25)} AS p25,
               {_spss_quantile(0.75)} AS p75
        FROM a
    """, params)
    cat = db.query(f"""
        WITH t AS ({base}),
        u AS (UNPIVOT (SELECT {grp} AS grp, {cat_select} FROM t)
              ON {cat_on} INTO NAME variable VALUE level)
        SELECT variable, {gsel}, level, count(*) AS cnt
        FROM u GROUP BY {gby_cat}
    """, params)
    levels_g = (sorted(db.query(f"SELECT DISTINCT {grp} AS grp FROM ({base})", params)["grp"])
                if group_by else [])
    groups = ["Overall", *levels_g]
    numd = {(r.variable, r.grp if isinstance(r.grp, str) else None): r
            for r in num.itertuples(index=False)}
    catd: dict = {}
    for r in cat.itertuples(index=False):
        catd.setdefault((r.variable, r.grp if isinstance(r.grp, str) else None), {})[r.level] = \
            int(r.cnt)
    labels = {c.name: c.label for c in schema.columns("patient_facts")}
    labels.update({c.name: c.label for c in schema.VISIT_COLUMNS})

    def opt(v):
        return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)

    rows = []
    for gname in groups:
        gkey = None if gname == "Overall" else gname
        for var in TABLE1_NUMERIC + TABLE1_BASELINE + TABLE1_CATEGORICAL:
            label = labels.get(var, var) + (" (baseline)" if var in TABLE1_BASELINE else "")
            if _var_kind(var) == "numeric":
                overall = numd.get((var, None))
                if overall is None or not overall.n:
                    continue  # nobody has a value: the variable is left out
                r = numd.get((var, gkey))
                n = int(r.n) if r is not None else 0
                rows.append({"variable": var, "label": label, "level": None, "group": gname,
                             "n": n, "count": None, "pct": None,
                             "mean": opt(r.mean) if n else None,
                             "sd": opt(r.sd) if n > 1 else None,
                             "median": opt(r.median) if n else None,
                             "p25": opt(r.p25) if n else None,
                             "p75": opt(r.p75) if n else None})
                continue
            all_levels = catd.get((var, None))
            if not all_levels:
                continue
            levels = (["True", "False"] if _dtype_of(var) == schema.BOOL
                      else sorted(all_levels))
            counts = catd.get((var, gkey), {})
            nn = sum(counts.values())
            for lev in levels:
                cnt = counts.get(lev, 0)
                rows.append({"variable": var, "label": label, "level": lev, "group": gname,
                             "n": nn, "count": cnt, "pct": cnt / nn * 100 if nn else None,
                             "mean": None, "sd": None, "median": None, "p25": None,
                             "p75": None})
    return pd.DataFrame(rows, columns=["variable", "label", "level", "group", "n", "count", "pct",
                                       "mean", "sd", "median", "p25", "p75"])


def _var_kind(var: str) -> str:
    if var in TABLE1_CATEGORICAL or var == "anti_dsdna_positive":
        return "categorical"
    return "numeric"


@_memo
def table1_tests(db: Database, flt: Filter, group_by: str) -> pd.DataFrame:
    """p-values across groups, chosen as gtsummary does.

    Numbers: Wilcoxon rank-sum (2 groups) or Kruskal–Wallis; categories: Pearson
    chi-square when every expected count is ≥ 5, else Fisher's exact test.
    """
    df = _table1_frame(db, flt, group_by)
    g = df["__group"].astype("string").to_numpy(dtype=object, na_value=None)
    has_group = np.array([v is not None for v in g], dtype=bool)
    rows = []
    for var in TABLE1_NUMERIC + TABLE1_BASELINE + TABLE1_CATEGORICAL:
        if var == group_by or not df[var].notna().any():
            continue
        mask = has_group & df[var].notna().to_numpy()
        groups = g[mask]
        if _var_kind(var) == "numeric":
            vals = df[var].to_numpy(dtype=float, na_value=np.nan)[mask]
            k = len(set(groups))
            res = (stats.mann_whitney(vals, groups, hodges_lehmann=False) if k == 2
                   else stats.kruskal(vals, groups))
        else:
            text = df[var].astype("string").to_numpy(dtype=object, na_value=None)[mask]
            res = _categorical_test(_crosstab(groups, text))
        rows.append({"variable": var, "method": res.method, "statistic": res.statistic,
                     "p_value": res.p_value, "reason": res.reason})
    return pd.DataFrame(rows, columns=["variable", "method", "statistic", "p_value", "reason"])


def _crosstab(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Counts of each (a, b) pair, rows and columns in sorted label order."""
    ra, ia = np.unique(a.astype(str), return_inverse=True)
    rb, ib = np.unique(b.astype(str), return_inverse=True)
    table = np.zeros((ra.size, rb.size), dtype=np.int64)
    np.add.at(table, (ia, ib), 1)
    return table


def _categorical_test(table: np.ndarray) -> stats.TestResult:
    if table.shape[0] < 2 or table.shape[1] < 2:
        return stats.TestResult("chi2", int(table.sum()), reason="only one level or one group")
    tot = table.sum()
    expected = table.sum(1, keepdims=True) * table.sum(0, keepdims=True) / tot
    if (expected >= 5).all():
        return stats.chi2(table)
    return stats.fisher(table, conf_int=False)  # only the p-value is shown


# --- subgroups ----------------------------------------------------------------


@_memo
def _group_rows(db, flt, group_by, endpoint, weeks):
    """Each filtered patient's group, visit, value and baseline value of one endpoint
    (one row per visit; no patient id, which nothing downstream needs).

    Memoised: the Subgroups page asks for the values, their tests and the changes
    of the same endpoint and grouping in one rerun; one query serves all three.
    """
    cond, params = flt.where("p")
    sql = (
        f'SELECT CAST(p."{group_by}" AS VARCHAR) AS grp, v.visit_week, '
        f'CAST(v."{endpoint}" AS DOUBLE) AS value, CAST(b."{endpoint}" AS DOUBLE) AS base '
        "FROM patient_facts p JOIN visit_facts v ON v.cohort = p.cohort AND "
        "v.patient_id = p.patient_id LEFT JOIN visit_facts b ON b.cohort = p.cohort AND "
        f"b.patient_id = p.patient_id AND b.visit_week = ? WHERE {cond} "
        "AND v.visit_week IN (SELECT unnest(?))"
    )
    df = db.query(sql, [weeks[0], *params, [int(w) for w in weeks]])
    df["grp"] = df["grp"].fillna("(missing)")
    return df


def _group_values(db, flt, group_by, endpoint, weeks, outcome):
    if outcome not in ("value", "change"):
        raise ValueError("outcome must be 'value' or 'change'")
    df = _group_rows(db, flt, group_by, endpoint, list(weeks))
    if outcome == "change":
        df["value"] = df["value"] - df["base"]
        df = df[df["visit_week"] != weeks[0]]
    return df


@_memo
def subgroups(
    db: Database,
    flt: Filter,
    group_by: str,
    endpoints: Sequence[str] | None = None,
    outcome: str = "value",
    adjust: str = "none",
) -> pd.DataFrame:
    """Between-group tests per endpoint × visit, on the value or on change from baseline."""
    if group_by not in schema.GROUPING_COLUMNS:
        raise ValueError(f"cannot group by {group_by!r}; choose from "
                         + ", ".join(schema.GROUPING_COLUMNS))
    weeks = cohort_info(db, flt.cohort)["scheduled_weeks"]
    rows = []
    for ep in _endpoints(db, flt, endpoints):
        if ep.kind == "binary" and outcome == "change":
            continue
        df = _group_values(db, flt, group_by, ep.column, weeks, outcome)
        for w in (weeks if outcome == "value" else weeks[1:]):
            sub = df[(df["visit_week"] == w) & df["value"].notna()]
            vals, grps = sub["value"].to_numpy(float), sub["grp"].to_numpy(object)
            tests = []
            if ep.kind == "binary":
                table = _crosstab(grps, vals) if len(sub) else np.zeros((0, 0))
                tests.append(_categorical_test(table))
            else:
                k = len(set(grps))
                if k == 2:
                    tests += [stats.mann_whitney(vals, grps), stats.welch_t(vals, grps)]
                else:
                    tests.append(stats.kruskal(vals, grps))
            for res in tests:
                rows.append({"endpoint": ep.column, "visit_week": w, "group_by": group_by,
                             "outcome": outcome, "method": res.method, "n": res.n,
                             "statistic": res.statistic, "p_value": res.p_value,
                             "p_adjusted": res.p_value, "mean_diff": res.mean_diff,
                             "ci_low": res.ci_low, "ci_high": res.ci_high,
                             "reason": res.reason})
    out = pd.DataFrame(rows, columns=["endpoint", "visit_week", "group_by", "outcome", "method",
                                      "n", "statistic", "p_value", "p_adjusted", "mean_diff",
                                      "ci_low", "ci_high", "reason"])
    if adjust != "none" and not out.empty:
        for idx in out.groupby(["endpoint", "method"]).groups.values():
            out.loc[idx, "p_adjusted"] = _adjusted(out.loc[idx, "p_value"], adjust)
    return out


@_memo
def subgroup_summary(
    db: Database, flt: Filter, group_by: str, endpoint: str, outcome: str = "value"
) -> pd.DataFrame:
    """Per group × visit: n, mean, SD, 95 % CI, median, quartiles (for trajectories and forest)."""
    if group_by not in schema.GROUPING_COLUMNS:
        raise ValueError(f"cannot group by {group_by!r}")
    weeks = cohort_info(db, flt.cohort)["scheduled_weeks"]
    df = _group_values(db, flt, group_by, endpoint, weeks, outcome)
    rows = []
    for (g, w), sub in df.groupby(["grp", "visit_week"], sort=True):
        d = stats.describe(sub["value"].to_numpy(float))
        n = d["n"]
        t = sps.t.ppf(0.975, n - 1) if n > 1 else math.nan
        se = d["se"] if d["se"] is not None else math.nan
        mean = d["mean"] if d["mean"] is not None else math.nan
        rows.append({"group": g, "visit_week": int(w), "n": n, "mean": d["mean"], "sd": d["sd"],
                     "ci_low": mean - t * se if n > 1 else None,
                     "ci_high": mean + t * se if n > 1 else None,
                     "median": d["median"], "p25": d["p25"], "p75": d["p75"]})
    return pd.DataFrame(rows, columns=["group", "visit_week", "n", "mean", "sd", "ci_low",
                                       "ci_high", "median", "p25", "p75"])


# --- time to event ------------------------------------------------------------


@_memo
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
    test = None
    if group_by and df["grp"].nunique() >= 2:
        test = stats.logrank(df["time"].to_numpy(), df["event"].to_numpy(),
                             df["grp"].to_numpy(object))
    return km, test
