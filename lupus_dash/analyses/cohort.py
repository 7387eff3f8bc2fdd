"""The cohort: who matches the filter, patient flow, Table 1 (baseline characteristics)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .. import dosing, schema, stats
from ..cache import memoize
from ..db import Database
from ..filters import MISSING, Filter
from ..results import Part, analysis
from .common import categorical_test, cohort_info, count_patients, crosstab, spss_quantile

TEXT_FILTER_COLUMNS = ("biopsy_class", "class_group", "immunosuppressant", "sex", "age_band",
                      "baseline_anti_dsdna")


@analysis()
@memoize
def filter_options(db: Database, cohort: str) -> dict[str, list]:
    """Values present in the cohort for every text filter column (MISSING for NULLs),
    and the organs anyone in it has."""
    out: dict[str, list] = {}
    for col in TEXT_FILTER_COLUMNS:
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


@analysis(counts={"n": None})
def option_counts(db: Database, flt: Filter) -> pd.DataFrame:
    """Patients per value of each filter column, within the filter's other restrictions
    (facet counts: what choosing the value would leave), so an empty subgroup shows
    before it is chosen. Columns: column, value (MISSING for NULL), n."""
    # One UNION ALL query, not one per column: on a small cohort DuckDB's cost is per query
    # (planning), not per row (docs/BENCHMARK.md).
    branches, params = [], []
    for col in TEXT_FILTER_COLUMNS:
        cond, ps = flt.with_(col, []).where("p")
        branches.append(f"SELECT ? AS \"column\", CAST(p.\"{col}\" AS VARCHAR) AS value, "
                        f"count(*) AS n FROM patient_facts p WHERE {cond} GROUP BY 2")
        params += [col, *ps]
    organ_flt = flt
    for o in schema.ORGANS:
        organ_flt = organ_flt.with_(f"organ_{o}", [])
    cond, ps = organ_flt.where("p")
    for o in schema.ORGANS:
        branches.append(f"SELECT 'organs', ?, count(*) FILTER (WHERE p.\"organ_{o}\") "
                        f"FROM patient_facts p WHERE {cond}")
        params += [o, *ps]
    out = db.query(" UNION ALL ".join(f"({b})" for b in branches), params)
    out["value"] = out["value"].fillna(MISSING)
    # Each column's values in a stable order (the per-column queries came back grouped).
    order = {c: i for i, c in enumerate([*TEXT_FILTER_COLUMNS, "organs"])}
    out = out.sort_values("column", key=lambda s: s.map(order), kind="stable",
                          ignore_index=True)
    out["n"] = out["n"].astype("int64")
    return out


def _choice_order(col: str) -> dict[str, int]:
    c = _T1_COLUMNS.get(col) or schema.column("patient_facts", col)
    choices = c.choices or ()
    return {c: i for i, c in enumerate(choices)}


def _isnan(v) -> bool:
    return isinstance(v, float) and math.isnan(v)


@analysis(counts={"n_patients": None})
def cohorts(db: Database) -> pd.DataFrame:
    """Cohort labels with their schedules and sizes."""
    return db.cohorts()


@analysis(extremes=("lo", "hi"))
def age_limits(db: Database, cohort: str) -> pd.DataFrame:
    """Youngest and oldest age at baseline in the cohort (lo, hi; NaN when unknown)."""
    return db.query(
        "SELECT min(age_at_baseline_years) AS lo, max(age_at_baseline_years) AS hi "
        "FROM patient_facts WHERE cohort = ?",
        [cohort],
    )


@analysis(counts={"n_match": "n_cohort", "n_cohort": None, "n_outside": "n_cohort"})
def patient_count(db: Database, flt: Filter) -> pd.DataFrame:
    """Patients matching the filter, in the cohort, and outside the filter (one row)."""
    k, n = count_patients(db, flt)
    return pd.DataFrame({"n_match": [k], "n_cohort": [n], "n_outside": [n - k]})


# Above this many matching patients the Patient page asks for an id instead of listing
# them all: a select box sends every option to the browser (1.8 MB for 100,000 ids).
PICKER_CAP = 500
# Rows of a per-patient or per-event listing shown on screen (downloads hold all rows).
LISTING_CAP = 1000


@analysis(patient_level=True)
def patient_ids(db: Database, flt: Filter) -> list[str]:
    """Patients matching the filter, sorted."""
    sql, params = flt.patients_sql()
    return sorted(db.query(sql, params)["patient_id"].astype(str))


@analysis(counts={"n": None}, group="group")
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


FLOW_STAGES = ("Enrolled", "Received induction (3 doses)", "Completed follow-up",
               "Stopped belimumab", "Ongoing")


@analysis(parts={"stages": Part(counts={"n": "n_enrolled"}),
                 "reasons": Part(counts={"n": "n_stopped"})},
          cli=lambda kw: [])
def patient_flow(db: Database, flt: Filter) -> dict[str, pd.DataFrame]:
    """Patient flow: stages and why belimumab was stopped.

    Stages: enrolled → received the 3 induction doses; then each patient in exactly
    one outcome box so the boxes add up to the enrolled: completed follow-up (has
    the cohort's final scheduled visit and did not stop), stopped belimumab
    (discontinued_week set) or ongoing (neither: still on treatment, not yet at the
    final visit). Doses are derived from the IV schedule (dosing.py).
    """
    cond, params = flt.where("p")
    df = db.query(
        "SELECT p.last_week, p.discontinued_week, p.discontinuation_reason, "
        f"p.completer FROM patient_facts p WHERE {cond}",
        params,
    )
    doses = dosing.belimumab_dose_counts(
        df["last_week"].to_numpy(dtype=float, na_value=np.nan),
        df["discontinued_week"].to_numpy(dtype=float, na_value=np.nan))
    n = len(df)
    stopped_mask = df["discontinued_week"].notna().to_numpy()
    completer = df["completer"].fillna(False).astype(bool).to_numpy()
    completed = int((completer & ~stopped_mask).sum())
    stopped = int(stopped_mask.sum())
    induction = int((doses >= len(dosing.INDUCTION_WEEKS)).sum())
    info = cohort_info(db, flt.cohort)
    med = float(np.median(doses)) if n else math.nan
    stages = pd.DataFrame({
        "stage": list(FLOW_STAGES),
        "n": [n, induction, completed, stopped, n - completed - stopped],
        "n_enrolled": n,
        "detail": [
            f"{n} patients started belimumab",
            f"{int(doses.sum())} doses in all, median {med:g} per patient (derived from the "
            "IV schedule)" if n else "",
            f"has the week-{info['final_week']} visit and did not stop",
            "discontinued_week recorded",
            f"still on belimumab, not yet at week {info['final_week']}",
        ],
    })
    reasons = (
        df.loc[stopped_mask, "discontinuation_reason"].fillna("(no reason recorded)")
        .value_counts().rename_axis("reason").reset_index(name="n")
    )
    reasons["n_stopped"] = stopped
    return {"stages": stages, "reasons": reasons}


TABLE1_NUMERIC = (
    "age_at_onset_years", "age_at_baseline_years", "disease_duration_months",
    "follow_up_months", "weight_kg", "height_cm", "cumulative_prednisone_g",
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


def _group_cli(kw: dict) -> list[str]:
    g = kw.get("group_by")
    return ["--group-by", g] if g else []


@analysis(counts={"count": "n"}, n_of={c: "n" for c in ("mean", "sd", "median", "p25", "p75",
                                                        "pct")},
          group="group", cli=_group_cli)
@memoize
def table1(db: Database, flt: Filter, group_by: str | None = None) -> pd.DataFrame:
    """Baseline characteristics, overall and per group (group = 'Overall' or a level).

    Aggregated in DuckDB: the numbers unpivoted to (variable, value) and the
    categories to (variable, level), each grouped once over the grouping sets
    (variable) and (variable, group); SPSS type-6 quartiles as biomarkers.summary.
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
               {spss_quantile(0.5)} AS median, {spss_quantile(0.25)} AS p25,
               {spss_quantile(0.75)} AS p75
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
            label = labels.get(var, var) + (" at baseline" if var in TABLE1_BASELINE else "")
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
            # Levels in their clinical order (age bands young to old, class I to VI),
            # unlisted ones after them alphabetically.
            order = _choice_order(var) if var in _T1_COLUMNS else {}
            levels = (["True", "False"] if _dtype_of(var) == schema.BOOL
                      else sorted(all_levels, key=lambda v: (order.get(v, len(order)), v)))
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


@analysis(p_columns=("p_value",), groups_n=("n_smallest_group",), cli=_group_cli)
@memoize
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
            res = categorical_test(crosstab(groups, text))
        sizes = pd.Series(groups).value_counts()
        rows.append({"variable": var, "method": res.method, "statistic": res.statistic,
                     "p_value": res.p_value,
                     "n_smallest_group": int(sizes.min()) if len(sizes) else 0,
                     "reason": res.reason})
    return pd.DataFrame(rows, columns=["variable", "method", "statistic", "p_value",
                                       "n_smallest_group", "reason"])


