"""Biomarkers: per-visit summaries, paired tests against baseline or the previous visit,
repeated-measures tests, individual trajectories."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from .. import mmrm, schema, stats, treat_to_target
from ..cache import memoize
from ..db import Database
from ..filters import MISSING, Filter
from ..lazy import LazyModule
from ..results import Part, analysis
from .common import (
    adjusted,
    cohort_info,
    resolve_endpoints,
    spss_quantile,
    visits_sql,
)

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
    "estimate",
    "estimate_name",
    "p_method",
    "p_asymptotic",
    "df",
    "note",
    "reason",
]


def _report_cli(kw: dict) -> list[str]:
    adjust = kw.get("adjust", "none")
    return [] if adjust in (None, "none") else ["--adjust", adjust]


_SUMMARY_N = {c: "n" for c in ("mean", "sd", "se", "ci_low", "ci_high", "median", "p25", "p75",
                               "rate")}


@analysis(counts={"n_positive": "n", "n": None}, n_of=_SUMMARY_N, cli=_report_cli)
@memoize
def summary(
    db: Database,
    flt: Filter,
    endpoints: Sequence[str] | None = None,
    weeks: Sequence[int] | None = None,
) -> pd.DataFrame:
    """n, mean, SD, SE, 95 % CI, median and SPSS quartiles (or rate) per endpoint × visit."""
    eps = resolve_endpoints(db, flt, endpoints)
    cols = [
        "endpoint", "kind", "visit_week", "n", "mean", "sd", "se", "ci_low", "ci_high",
        "median", "p25", "p75", "n_positive", "rate",
    ]
    if not eps:
        return pd.DataFrame(columns=cols)
    if weeks is None:
        weeks = cohort_info(db, flt.cohort)["scheduled_weeks"]
    base, params = visits_sql(flt, [e.column for e in eps])
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
               {spss_quantile(0.5, "a.xs", "a.n")} AS median,
               {spss_quantile(0.25, "a.xs", "a.n")} AS p25,
               {spss_quantile(0.75, "a.xs", "a.n")} AS p75
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


def _wide_values(db: Database, flt: Filter, endpoint: str, weeks: Sequence[int]) -> pd.DataFrame:
    """Patients × weeks array of one endpoint (NaN where missing)."""
    base, params = visits_sql(flt, [endpoint], "AND v.visit_week IN (SELECT unnest(?))")
    df = db.query(base, [*params, [int(w) for w in weeks]])
    if df.empty:
        return pd.DataFrame(columns=list(weeks), dtype=float)
    wide = df.pivot(index="patient_id", columns="visit_week", values=endpoint)
    wide = wide.reindex(columns=list(weeks)).astype(float)
    return wide


@memoize
def _wide_arrays(
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
        # Fields of the small-n statistics (exact p, Hodges–Lehmann estimate, Satterthwaite df).
        "estimate": res.estimate,
        "estimate_name": res.estimate_name,
        "p_method": res.p_method,
        "p_asymptotic": res.p_asymptotic,
        "df": res.df,
        "note": res.extra.get("note"),
        "reason": res.reason,
    }


@analysis(counts={"n": None},
          n_of={c: "n" for c in ("statistic", "mean_diff", "ci_low", "ci_high", "effect",
                                 "estimate")},
          p_columns=("p_value", "p_adjusted", "p_asymptotic"), cli=_report_cli)
@memoize
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
    eps = resolve_endpoints(db, flt, endpoints)
    arrays = _wide_arrays(db, flt, [e.column for e in eps], weeks)
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
    base, params = visits_sql(flt, [endpoint], "AND v.visit_week IN (SELECT unnest(?))")
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
        df.loc[idx, "p_adjusted"] = adjusted(df.loc[idx, "p_value"], adjust)
    return df


@analysis()
def test_choice(db: Database, flt: Filter, endpoint: str) -> pd.DataFrame:
    """The pre-specified test and summary of an endpoint and why (one row; STATISTICS.md).

    Chosen per endpoint before looking at the data, so the test does not flip
    between visits (choosing per visit by Shapiro–Wilk did: t, t, Wilcoxon, t).
    """
    ep = schema.ENDPOINTS_BY_COLUMN[endpoint]
    method, reason = schema.prespecified_test(ep)
    display = "rate" if ep.kind == "binary" else ("median" if ep.skewed else "mean")
    return pd.DataFrame({"endpoint": [endpoint], "method": [method], "display": [display],
                         "reason": [reason]})


@analysis(counts={"n": None}, n_of={"statistic": "n"},
          p_columns=("p_value", "p_greenhouse_geisser", "p_huynh_feldt"), cli=lambda kw: [])
@memoize
def omnibus(db: Database, flt: Filter, endpoints: Sequence[str] | None = None) -> pd.DataFrame:
    """Friedman and repeated-measures ANOVA over the scheduled visits (complete cases).

    rm_anova rows carry the Greenhouse–Geisser and Huynh–Feldt ε and corrected p as SPSS
    prints them (the sphericity correction; ε was 0.26 for prednisone in a check)."""
    weeks = cohort_info(db, flt.cohort)["scheduled_weeks"]
    rows = []
    eps = [e for e in resolve_endpoints(db, flt, endpoints) if e.kind == "continuous"]
    arrays = _wide_arrays(db, flt, [e.column for e in eps], weeks)
    for ep in eps:
        arr = arrays[ep.column]
        for res in (stats.friedman(arr), stats.rm_anova(arr)):
            rows.append({"endpoint": ep.column, "method": res.method, "n": res.n,
                         "statistic": res.statistic, "p_value": res.p_value, "df": res.df,
                         **{k: res.extra.get(k) for k in OMNIBUS_SPHERICITY},
                         "reason": res.reason})
    return pd.DataFrame(rows, columns=["endpoint", "method", "n", "statistic", "p_value", "df",
                                       *OMNIBUS_SPHERICITY, "reason"])


OMNIBUS_SPHERICITY = ("epsilon_gg", "p_greenhouse_geisser", "epsilon_hf", "p_huynh_feldt")
TRAJECTORY_CAP = 60  # patients drawn in the individual-trajectory view


@analysis(parts={"trajectories": Part(patient_level=True),
                 "shown": Part(counts={"n_shown": "n_total", "n_total": None})})
def individual_trajectories(
    db: Database, flt: Filter, endpoint: str, cap: int = TRAJECTORY_CAP
) -> dict[str, pd.DataFrame]:
    """(patient_id, visit_week, value) for at most `cap` patients ("trajectories") and how
    many are shown of how many ("shown": n_shown, n_total, sampled).

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
    shown = pd.DataFrame({"n_shown": [int(df["patient_id"].nunique())], "n_total": [total],
                          "sampled": [total > cap]})
    return {"trajectories": df, "shown": shown}


# --- MMRM (change from baseline, unstructured covariance; the fit: lupus_dash.mmrm) ----

MMRM_STRATEGIES = treat_to_target.STRATEGIES
MMRM_COLUMNS = ["endpoint", "visit_week", "n", "estimate", "se", "df", "ci_low", "ci_high",
                  "p_value"]


def _numeric_patient_columns() -> tuple[str, ...]:
    return tuple(c.name for c in schema.columns("patient_facts")
                 if c.dtype in (schema.NUMBER, schema.INTEGER) and c.name != "discontinued_week")


def _mmrm_load(db, flt, endpoint: str, *, group_by: str | None = None, covariate: str | None = None,
         strategy: str = "composite", weeks=None) -> pd.DataFrame:
    """Post-baseline values of one endpoint with each patient's baseline value (one query).

    Columns: patient (int code), visit_week, value, base [, grp] [, cov]. Scheduled
    weeks only (an unscheduled week is no level of an unstructured covariance).
    Strategy: treatment_policy keeps values after the biologic stopped; while_on_treatment
    drops them; composite has no failure value for a continuous endpoint and is
    analysed as while_on_treatment (the result says so).
    """
    if endpoint not in schema.ENDPOINTS_BY_COLUMN or \
            schema.ENDPOINTS_BY_COLUMN[endpoint].kind != "continuous":
        raise mmrm.MMRMError(f"{endpoint!r} is not a continuous endpoint")
    if strategy not in MMRM_STRATEGIES:
        raise mmrm.MMRMError(f"strategy must be one of {', '.join(MMRM_STRATEGIES)} (got {strategy!r})")
    if group_by is not None and group_by not in schema.GROUPING_COLUMNS:
        raise mmrm.MMRMError(f"cannot group by {group_by!r}")
    if covariate is not None and covariate not in _numeric_patient_columns():
        raise mmrm.MMRMError(f"covariate must be one of {', '.join(_numeric_patient_columns())}")
    if weeks is None:
        weeks = cohort_info(db, flt.cohort)["scheduled_weeks"]
    weeks = [int(w) for w in weeks]
    cond, params = flt.where("p")
    extra = ""
    if group_by:
        extra += f', CAST(p."{group_by}" AS VARCHAR) AS grp'
    if covariate:
        extra += f', CAST(p."{covariate}" AS DOUBLE) AS cov'
    on_treatment = ("" if strategy == "treatment_policy" else
                    "AND (p.discontinued_week IS NULL OR v.visit_week <= p.discontinued_week)")
    sql = f"""
        SELECT CAST(dense_rank() OVER (ORDER BY v.patient_id) AS BIGINT) AS patient,
               v.visit_week, CAST(v."{endpoint}" AS DOUBLE) AS value,
               CAST(b."{endpoint}" AS DOUBLE) AS base{extra}
        FROM patient_facts p
        JOIN visit_facts v ON v.cohort = p.cohort AND v.patient_id = p.patient_id
        JOIN visit_facts b ON b.cohort = p.cohort AND b.patient_id = p.patient_id
             AND b.visit_week = ?
        WHERE {cond} AND v.visit_week IN (SELECT unnest(?))
          AND v."{endpoint}" IS NOT NULL AND b."{endpoint}" IS NOT NULL {on_treatment}
    """
    cur = db.cursor()
    try:
        res = cur.execute(sql, [weeks[0], *params, weeks[1:]]).fetchnumpy()
    finally:
        cur.close()
    out = {k: (np.ma.filled(v.astype(float), np.nan) if np.ma.isMaskedArray(v) and k != "grp"
               else v) for k, v in res.items()}
    df = pd.DataFrame(out)
    if group_by:
        df["grp"] = df["grp"].fillna(MISSING)
    return df


@memoize
def _mmrm_fit(db, flt, endpoint: str, group_by: str | None = None,
                 covariate: str | None = None, strategy: str = "composite") -> mmrm.MMRMResult:
    """`fit` on one endpoint of the filtered cohort (memoised per file version and filter)."""
    df = _mmrm_load(db, flt, endpoint, group_by=group_by, covariate=covariate, strategy=strategy)
    res = mmrm.fit(df, "patient", "visit_week", "value", "base",
              group="grp" if group_by else None, covariate="cov" if covariate else None)
    if strategy == "composite":
        res.notes.append("composite strategy: a continuous endpoint has no failure value, so "
                         "values after the biologic stopped are left out (while on treatment)")
    if group_by and res.lsmeans is not None and "group" in res.lsmeans:
        res.lsmeans = res.lsmeans.rename(columns={"group": group_by})
    return res


def _mmrm_cli(kw: dict) -> list[str]:
    out = [x for ep in kw.get("endpoints", ()) for x in ("--mmrm", ep)]
    if kw.get("strategy", "composite") != "composite":
        out += ["--strategy", kw["strategy"]]
    return out


@analysis(counts={"n": None}, n_of={c: "n" for c in ("estimate", "se", "ci_low", "ci_high")},
          p_columns=("p_value",), cli=_mmrm_cli)
def mmrm_rows(db: Database, flt: Filter, endpoints: Sequence[str],
              strategy: str = "composite") -> pd.DataFrame:
    """`mmrm` rows of the report: one per endpoint × post-baseline visit (LS-mean change)."""
    frames = []
    for ep in endpoints:
        res = _mmrm_fit(db, flt, ep, strategy=strategy)
        ls = res.lsmeans.rename(columns={"visit": "visit_week"})
        if ls.empty:
            ls = pd.DataFrame([{"visit_week": None, "n": 0}])
        ls.insert(0, "endpoint", ep)
        frames.append(ls.reindex(columns=MMRM_COLUMNS))
    if not frames:
        return pd.DataFrame(columns=MMRM_COLUMNS)
    return pd.concat(frames, ignore_index=True)


MMRM_FOREST_COLUMNS = ["label", "estimate", "ci_low", "ci_high", "n"]


@analysis(parts={"rows": Part(counts={"n": None},
                               n_of={"estimate": "n", "ci_low": "n", "ci_high": "n"},
                               group="label"),
                 "tests": Part(p_columns=("p_group", "p_visit_by_group"))},
          cli=lambda kw: None)
def mmrm_forest(db: Database, flt: Filter, endpoint: str, group_by: str,
                visit: int | None = None, strategy: str = "composite",
                overall_label: str = "All patients") -> dict:
    """Rows of a subgroup forest plot of the LS-mean change at one visit (default: the last).

    {"rows": DataFrame(label, estimate, ci_low, ci_high, n) with the overall row first,
    "visit", "p_group": the test that the change at that visit differs between the
    groups (2 groups: the B − A contrast's t test; more: the (G−1)-df F test) — the
    interaction of subgroup and change that a forest plot's "P for interaction" reports —,
    "p_visit_by_group": the visit × group F test over all visits, "notes"}.
    """
    overall = _mmrm_fit(db, flt, endpoint, strategy=strategy)
    grouped = _mmrm_fit(db, flt, endpoint, group_by=group_by, strategy=strategy)
    out = {"rows": pd.DataFrame(columns=MMRM_FOREST_COLUMNS), "visit": visit, "p_group": None,
           "p_visit_by_group": None, "notes": [*overall.notes]}
    if overall.reason or grouped.reason:
        out["notes"].append(overall.reason or grouped.reason)
        return _forest_parts(out)
    if visit is None:
        visit = overall.visits[-1]
    out["visit"] = visit
    o = overall.lsmeans[overall.lsmeans["visit"] == visit]
    g = grouped.lsmeans[grouped.lsmeans["visit"] == visit]
    rows = [{"label": overall_label} | {c: o[c].iloc[0] for c in MMRM_FOREST_COLUMNS[1:]}]
    rows += [{"label": str(r[group_by])} | {c: r[c] for c in MMRM_FOREST_COLUMNS[1:]}
             for _, r in g.iterrows()]
    out["rows"] = pd.DataFrame(rows, columns=MMRM_FOREST_COLUMNS).astype({"n": "int64"})
    gt = grouped.group_tests
    p = gt.loc[gt["visit"] == visit, "p_value"]
    out["p_group"] = float(p.iloc[0]) if len(p) and pd.notna(p.iloc[0]) else None
    out["p_visit_by_group"] = (grouped.interaction or {}).get("p_value")
    return _forest_parts(out)


def _forest_parts(out: dict) -> dict:
    return {"rows": out["rows"],
            "tests": pd.DataFrame([{"visit_week": out["visit"], "p_group": out["p_group"],
                                    "p_visit_by_group": out["p_visit_by_group"],
                                    "notes": "; ".join(out["notes"])}])}
