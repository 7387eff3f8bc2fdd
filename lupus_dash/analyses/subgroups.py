"""Subgroups: between-group tests per endpoint and visit, per-group summaries."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from .. import schema, stats
from ..cache import memoize
from ..db import Database
from ..filters import Filter
from ..lazy import LazyModule
from ..results import analysis
from .common import adjusted, categorical_test, cohort_info, crosstab, resolve_endpoints

sps = LazyModule("scipy.stats")

@memoize
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


def _tests_cli(kw: dict) -> list[str]:
    # The report's subgroups section holds every test ("all"): a superset of the screen's.
    adjust = kw.get("adjust", "none")
    return ["--group-by", kw["group_by"], *([] if adjust == "none" else ["--adjust", adjust])]


@analysis(counts={"n": None},
          n_of={c: "n" for c in ("statistic", "mean_diff", "ci_low", "ci_high", "estimate",
                                 "odds_ratio", "or_ci_low", "or_ci_high")},
          p_columns=("p_value", "p_adjusted", "p_asymptotic"), groups_n=("n_smallest_group",),
          cli=_tests_cli)
@memoize
def tests(
    db: Database,
    flt: Filter,
    group_by: str,
    endpoints: Sequence[str] | None = None,
    outcome: str = "value",
    adjust: str = "none",
    methods: str = "prespecified",
) -> pd.DataFrame:
    """Between-group tests per endpoint × visit, on the value or on change from baseline.

    Two groups: the endpoint's pre-specified test (`methods="prespecified"`: Mann–Whitney
    for skewed endpoints, Welch's t otherwise; "all" gives both, as the report does); a
    yes/no endpoint gets the risk difference (Newcombe CI), the odds ratio (Woolf CI) and
    Fisher's exact p. More groups: Kruskal–Wallis, or chi-square / Fisher for yes/no.
    """
    if methods not in ("prespecified", "all"):
        raise ValueError("methods must be 'prespecified' or 'all'")
    if group_by not in schema.GROUPING_COLUMNS:
        raise ValueError(f"cannot group by {group_by!r}; choose from "
                         + ", ".join(schema.GROUPING_COLUMNS))
    weeks = cohort_info(db, flt.cohort)["scheduled_weeks"]
    rows = []
    for ep in resolve_endpoints(db, flt, endpoints):
        if ep.kind == "binary" and outcome == "change":
            continue
        df = _group_values(db, flt, group_by, ep.column, weeks, outcome)
        for w in (weeks if outcome == "value" else weeks[1:]):
            sub = df[(df["visit_week"] == w) & df["value"].notna()]
            vals, grps = sub["value"].to_numpy(float), sub["grp"].to_numpy(object)
            tests = []
            labels = sorted(set(grps))
            if ep.kind == "binary" and len(labels) == 2:
                a, b = (vals[grps == g] for g in labels)
                res = stats.binary_contrast(int(a.sum()), a.size, int(b.sum()), b.size,
                                            labels=labels)
                res.method = "fisher"  # its p is Fisher's exact test of the 2 × 2 table
                tests.append(res)
            elif ep.kind == "binary":
                table = crosstab(grps, vals) if len(sub) else np.zeros((0, 0))
                tests.append(categorical_test(table))
            elif len(labels) == 2:
                if methods == "all" or ep.skewed:
                    tests.append(stats.mann_whitney(vals, grps))
                if methods == "all" or not ep.skewed:
                    tests.append(stats.welch_t(vals, grps))
            else:
                tests.append(stats.kruskal(vals, grps))
            for res in tests:
                rows.append({"endpoint": ep.column, "visit_week": w, "group_by": group_by,
                             "outcome": outcome, "method": res.method, "n": res.n,
                             "statistic": res.statistic, "p_value": res.p_value,
                             "p_adjusted": res.p_value, "mean_diff": res.mean_diff,
                             "ci_low": res.ci_low, "ci_high": res.ci_high,
                             "estimate": res.estimate,
                             "estimate_name": res.estimate_name,
                             "p_method": res.p_method,
                             "p_asymptotic": res.p_asymptotic,
                             "odds_ratio": res.extra.get("odds_ratio"),
                             "or_ci_low": res.extra.get("or_ci_low"),
                             "or_ci_high": res.extra.get("or_ci_high"),
                             "note": res.extra.get("note"),
                             # the smallest compared group: shared mode shows no test
                             # comparing a group under its minimum cell size
                             "n_smallest_group": _smallest_group(grps),
                             "reason": res.reason})
    out = pd.DataFrame(rows, columns=["endpoint", "visit_week", "group_by", "outcome", "method",
                                      "n", "statistic", "p_value", "p_adjusted", "mean_diff",
                                      "ci_low", "ci_high", "estimate", "estimate_name",
                                      "p_method", "p_asymptotic", "odds_ratio", "or_ci_low",
                                      "or_ci_high", "note", "n_smallest_group", "reason"])
    if adjust != "none" and not out.empty:
        for idx in out.groupby(["endpoint", "method"]).groups.values():
            out.loc[idx, "p_adjusted"] = adjusted(out.loc[idx, "p_value"], adjust)
    return out


def _smallest_group(groups: np.ndarray) -> int:
    """Patients in the smallest group compared (0 when nobody has a value)."""
    if not len(groups):
        return 0
    return int(pd.Series(groups).value_counts().min())


SMALL_GROUP = 5  # below this many patients a group is drawn as its values, not a mean ± CI


@analysis(n_of={c: "n" for c in ("mean", "sd", "ci_low", "ci_high", "median", "p25", "p75")},
          counts={"n": None}, group="group", cli=lambda kw: None)
@memoize
def summary(
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


@analysis(patient_level=True, group="group", cli=lambda kw: None)
def small_group_values(
    db: Database, flt: Filter, group_by: str, endpoint: str, outcome: str = "value"
) -> pd.DataFrame:
    """The single values of the groups with fewer than SMALL_GROUP patients at a visit
    (group, visit_week, value): a chart draws them instead of a mean whose CI would span
    the whole scale. Patient-level."""
    if group_by not in schema.GROUPING_COLUMNS:
        raise ValueError(f"cannot group by {group_by!r}")
    weeks = cohort_info(db, flt.cohort)["scheduled_weeks"]
    df = _group_values(db, flt, group_by, endpoint, weeks, outcome).dropna(subset=["value"])
    sizes = df.groupby(["grp", "visit_week"])["value"].transform("size")
    out = df.loc[sizes < SMALL_GROUP, ["grp", "visit_week", "value"]]
    return out.rename(columns={"grp": "group"}).reset_index(drop=True)


