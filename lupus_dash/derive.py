"""Patient and visit fact tables from validated input tables (calls endpoints.py).

``build_facts`` is run on every database write; its output columns are exactly
``schema.columns("patient_facts")`` and ``schema.columns("visit_facts")`` in
that order, typed as pandas nullable dtypes that map 1:1 onto the DuckDB
types (BOOLEAN → ``boolean``, INTEGER → ``Int64``, DOUBLE → ``float64``,
VARCHAR → ``string``, DATE → ``datetime64``).

Conventions documented here (see also endpoints.py):
- Scheduled weeks of a cohort (``infer_schedule``, ``schedule_attendance``):
  week 0, every week attended by at least 50 % of the cohort's patients that
  have any visit, and — after the last such week W, where dropout thins
  attendance — every week attended by at least 50 % of the patients still
  followed at W (last visit at or after W) and by at least 3 patients
  (``SCHEDULE_TAIL_MIN_PATIENTS``). So a final week attended by 13 of 30
  patients, 25 of them still followed at week 24, stays in the schedule and
  stays the final week; a few patients' later follow-up visits (the paediatric
  demo's last visits at weeks 56–134) do not become the final week.
  ``schedule_warnings`` names every week with data that is left out, and every
  kept week attended by fewer than half, with its attendance; the importer
  shows them.
- ``completer``: has a visit at the cohort's final scheduled week.
- ``is_last`` / ``last_week`` / ``n_visits``: every visit row counts as an
  assessment (the importer drops nothing; a row is a visit that took place).
- ``follow_up_months`` = last_week × 12/52 (52 weeks = 12 months).
- Age at a visit (for eGFR) = age_at_baseline_years + visit_week / 52.
- eGFR: one equation per patient for the whole follow-up, chosen at baseline
  (``endpoints.egfr_equation``: CKiD U25 under 25 with a height, else CKD-EPI
  2021 from 18); ``egfr_source`` names it, or 'reported'.
- Height and weight: the visit's value, else the patient's baseline value
  (also for ``prednisone_mg_kg_day``).
- ``cumulative_prednisone_g``: ``endpoints.cumulative_prednisone_g`` (dose held
  until the next visit, week 0 to the last visit).
- ``renal_eligible_<family>``: ``endpoints.renal_eligibility`` (week-0
  proteinuria at or above the definition family's threshold; <NA> unknown).
- ``sledai2k`` is filled from the descriptors only where it is missing and all
  24 descriptors are recorded (a missing descriptor is unknown, not absent).
- ``csledai`` is filled where it is known exactly: from the 22 clinical
  descriptors, or from a total of 0 (then every descriptor is absent);
  otherwise <NA>.
- ``baseline_anti_dsdna``: the week-0 ``anti_dsdna_positive``, else the week-0
  ``sledai_increased_dna_binding`` descriptor (the same finding), else
  'unknown'. A titre without the lab's cut-off is not interpreted.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from lupus_dash import endpoints, schema

SCHEDULE_MIN_ATTENDANCE = 0.5
SCHEDULE_TAIL_MIN_PATIENTS = 3
WEEKS_PER_MONTH = 52 / 12

_PANDAS_DTYPES = {
    schema.TEXT: "string",
    schema.NUMBER: "float64",
    schema.INTEGER: "Int64",
    schema.BOOL: "boolean",
    schema.DATE: "datetime64[ns]",
}

_PROLIFERATIVE = ("III", "IV", "III+V", "IV+V")
_MEMBRANOUS = ("V",)
_OTHER_CLASS = ("I", "II", "VI")


def pandas_dtype(col: schema.Column) -> str:
    """The pandas dtype a schema column is held in."""
    return _PANDAS_DTYPES[col.dtype]


def coerce(df: pd.DataFrame, table: str) -> pd.DataFrame:
    """Columns of ``table`` in schema order with schema dtypes; absent columns become missing."""
    out = {}
    n = len(df)
    for c in schema.columns(table):
        dt = pandas_dtype(c)
        if c.name not in df.columns:
            out[c.name] = pd.Series(_missing(n, dt), dtype=dt)
            continue
        s = df[c.name].reset_index(drop=True)
        if str(s.dtype) == dt:
            pass
        elif c.dtype == schema.DATE:
            s = pd.to_datetime(s, errors="coerce").astype(dt)
        elif c.dtype in (schema.NUMBER, schema.INTEGER):
            s = pd.to_numeric(s, errors="coerce").astype(dt)
        else:
            s = s.astype(dt)
        out[c.name] = s
    return pd.DataFrame(out, index=pd.RangeIndex(n))


def _missing(n: int, dt: str):
    """An all-missing column of n values in pandas dtype dt."""
    if dt == "float64":
        return np.full(n, np.nan)
    if dt == "boolean":
        return pd.arrays.BooleanArray(np.zeros(n, dtype=bool), np.ones(n, dtype=bool))
    if dt == "Int64":
        return pd.arrays.IntegerArray(np.zeros(n, dtype=np.int64), np.ones(n, dtype=bool))
    if dt.startswith("datetime64"):
        return np.full(n, np.datetime64("NaT"), dtype=dt)
    return pd.array(np.full(n, None, dtype=object), dtype=dt)


def schedule_attendance(visits: pd.DataFrame) -> pd.DataFrame:
    """Attendance of every week with data, per cohort, and whether it is scheduled.

    Columns: cohort, visit_week, n_attended, n_patients (patients of the cohort
    with any visit), n_followed (patients whose last visit is at or after the
    week), scheduled (bool), rule ('week 0', 'attended by ≥ 50 %', 'after
    dropout', or why it is left out). The rule is in the module docstring.
    """
    cols = ["cohort", "visit_week", "n_attended", "n_patients", "n_followed", "scheduled", "rule"]
    if len(visits) == 0:
        return pd.DataFrame(columns=cols)
    v = visits[["cohort", "patient_id", "visit_week"]].dropna().drop_duplicates()
    if len(v) == 0:
        return pd.DataFrame(columns=cols)
    v = v.assign(visit_week=v["visit_week"].astype("int64"), cohort=v["cohort"].astype(str))
    rows = []
    for cohort, g in v.groupby("cohort", sort=True):
        n_pat = g["patient_id"].nunique()
        last = g.groupby("patient_id")["visit_week"].max().to_numpy()
        att = g.groupby("visit_week")["patient_id"].nunique().sort_index()
        core = [int(w) for w, a in att.items() if a >= SCHEDULE_MIN_ATTENDANCE * n_pat]
        last_core = max([0, *core])
        ref = int((last >= last_core).sum())  # still followed at the last well-attended week
        for w, a in att.items():
            w, a = int(w), int(a)
            followed = int((last >= w).sum())
            if w == 0:
                ok, rule = True, "week 0"
            elif a >= SCHEDULE_MIN_ATTENDANCE * n_pat:
                ok, rule = True, "attended by ≥ 50 %"
            elif w < last_core:
                ok, rule = False, "fewer than half attended"
            elif a < SCHEDULE_MIN_ATTENDANCE * ref:
                ok, rule = False, (
                    f"fewer than half of the {ref} patients still followed at week {last_core} "
                    "attended"
                )
            elif a < SCHEDULE_TAIL_MIN_PATIENTS:
                ok, rule = False, f"fewer than {SCHEDULE_TAIL_MIN_PATIENTS} patients attended"
            else:
                ok, rule = True, (
                    f"after dropout: {a} of the {ref} patients still followed at week "
                    f"{last_core} attended"
                )
            rows.append((cohort, w, a, n_pat, followed, ok, rule))
    return pd.DataFrame(rows, columns=cols)


def infer_schedule(visits: pd.DataFrame) -> dict[str, list[int]]:
    """Scheduled weeks per cohort (always with 0): see ``schedule_attendance``."""
    att = schedule_attendance(visits)
    return {
        str(c): sorted({0, *(int(w) for w in g.loc[g["scheduled"], "visit_week"])})
        for c, g in att.groupby("cohort", sort=True)
    }


def schedule_warnings(
    visits: pd.DataFrame, schedules: dict[str, list[int]] | None = None
) -> list[tuple[str, int, str]]:
    """(cohort, week, text) for every week with data left out of a schedule, and every week
    kept in an inferred schedule though fewer than half of the patients attended it.

    ``schedules``: the user's schedule per cohort (e.g. ``--schedule``); None = inferred.
    The text names the week and its attendance ("week 52: 13 of 30 patients attended").
    """
    att = schedule_attendance(visits)
    out: list[tuple[str, int, str]] = []
    for cohort, g in att.groupby("cohort", sort=True):
        given = None if schedules is None else schedules.get(cohort)
        weeks = (
            {0, *(int(w) for w in given)}
            if given is not None
            else {int(w) for w in g.loc[g["scheduled"], "visit_week"]} | {0}
        )
        final = max(weeks)
        for r in g.itertuples(index=False):
            head = (
                f"week {r.visit_week}: {r.n_attended} of {r.n_patients} patients attended "
                f"(cohort {cohort})"
            )
            if r.visit_week not in weeks:
                why = (
                    "it is not in the given schedule"
                    if given is not None
                    else f"left out of the inferred schedule ({r.rule})"
                )
                out.append((cohort, r.visit_week, (
                    f"{head}; {why}: its visits are kept but it is not a scheduled week; "
                    "give --schedule with it to include it"
                )))
            elif given is None and r.n_attended < SCHEDULE_MIN_ATTENDANCE * r.n_patients:
                text = f"{head}; kept as a scheduled week ({r.rule})"
                if r.visit_week == final:
                    text += (
                        f"; it is the final week, so 'completer' = has a week-{r.visit_week} "
                        "visit; give --schedule to set another"
                    )
                out.append((cohort, r.visit_week, text))
    return out


def _final_weeks(visits: pd.DataFrame, cohorts: pd.DataFrame | None) -> dict[str, int]:
    final: dict[str, int] = {}
    if cohorts is not None and len(cohorts):
        for row in cohorts.itertuples(index=False):
            fw = getattr(row, "final_week", None)
            if fw is None or pd.isna(fw):
                sw = getattr(row, "scheduled_weeks", None)
                fw = max(sw) if sw is not None and len(sw) else None
            if fw is not None:
                final[str(row.cohort)] = int(fw)
    missing = set(visits["cohort"].dropna().unique().tolist()) - set(final)
    if missing:
        inferred = infer_schedule(visits[visits["cohort"].isin(list(missing))])
        final.update({c: max(w) for c, w in inferred.items()})
    return final


def _age_band(age: pd.Series) -> pd.Series:
    a = age.to_numpy(dtype="float64", na_value=np.nan)
    band = np.select(
        [np.isnan(a), a < 12, a < 18, a < 40, a < 60],
        ["unknown", "<12", "12–17", "18–39", "40–59"],
        default="≥60",
    )
    return pd.Series(band, index=age.index, dtype="string")


_CLASS_GROUPS = {
    **{c: "proliferative" for c in _PROLIFERATIVE},
    **{c: "membranous" for c in _MEMBRANOUS},
    **{c: "other" for c in _OTHER_CLASS},
}


def _class_group(cls: pd.Series) -> pd.Series:
    vals = cls.astype("string").str.strip().str.upper().to_numpy(dtype=object, na_value=None)
    # Empty = not biopsied (DATA_CONTRACT.md); anything else unlisted is "other".
    grp = [_CLASS_GROUPS.get(v, "other") if v else "not biopsied" for v in vals]
    return pd.Series(grp, index=cls.index, dtype="string")


def build_facts(
    patients: pd.DataFrame, visits: pd.DataFrame, cohorts: pd.DataFrame | None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Patient and visit fact tables (schema order and dtypes), endpoints materialised."""
    pat = coerce(patients, "patients")
    vis_in = visits.drop(columns=["cohort"], errors="ignore")
    vis = coerce(vis_in, "visits")
    # Stable order: patient, week.
    vis = vis.sort_values(["patient_id", "visit_week"], kind="stable").reset_index(drop=True)
    n = len(vis)

    pat_idx = pd.Index(pat["patient_id"])
    pos = pat_idx.get_indexer(vis["patient_id"])
    found = pos >= 0
    posc = np.where(found, pos, 0)

    def from_patient(col: str) -> np.ndarray:
        s = pat[col]
        arr = s.to_numpy(dtype=object) if s.dtype != "float64" else s.to_numpy()
        out = arr[posc] if len(arr) else np.full(n, np.nan, dtype=arr.dtype)
        if not found.all():
            out = out.copy()
            out[~found] = None if out.dtype == object else np.nan
        return out

    vis["cohort"] = pd.array(from_patient("cohort"), dtype="string")

    # SLEDAI-2K and cSLEDAI: exact where known (endpoints.sledai_bounds).
    lo, hi = endpoints.sledai_bounds(vis)
    sl = endpoints.exact_or_na(lo, hi, vis.index, "sledai2k")
    vis["sledai2k"] = vis["sledai2k"].fillna(sl)
    clo, chi = endpoints.csledai_bounds(vis)
    vis["csledai"] = endpoints.exact_or_na(clo, chi, vis.index, "csledai")

    # eGFR where missing and inputs exist, with the patient's one equation.
    weight_fb = from_patient("weight_kg").astype("float64")
    height = vis["height_cm"].to_numpy(dtype="float64", na_value=np.nan)
    height = np.where(np.isnan(height), from_patient("height_cm").astype("float64"), height)
    age0 = from_patient("age_at_baseline_years").astype("float64")
    age = age0 + vis["visit_week"].to_numpy(dtype="float64", na_value=np.nan) / 52.0
    has_height = (
        pd.Series(~np.isnan(height)).groupby(vis["patient_id"].to_numpy(dtype=object)).transform(
            "any"
        ).to_numpy(dtype=bool)
        if n
        else np.zeros(0, dtype=bool)
    )
    equation = endpoints.egfr_equation(age0, has_height) if n else np.empty(0, dtype=object)
    reported = vis["egfr_ml_min"].notna().to_numpy()
    need = ~reported & vis["creatinine_umol_l"].notna().to_numpy()
    src = np.where(reported, "reported", None).astype(object)
    if need.any():
        val, s = endpoints.egfr(
            vis["creatinine_umol_l"].to_numpy(dtype="float64", na_value=np.nan)[need],
            age[need],
            from_patient("sex")[need],
            height[need],
            equation[need],
        )
        eg = vis["egfr_ml_min"].to_numpy(dtype="float64", na_value=np.nan).copy()
        eg[need] = val
        vis["egfr_ml_min"] = eg
        src[need] = s
    vis["egfr_source"] = pd.array(src, dtype="string")

    # Glucocorticoid dose per kg: the visit's weight, else the baseline weight (§7).
    weight = vis["weight_kg"].to_numpy(dtype="float64", na_value=np.nan)
    weight = np.where(np.isnan(weight), weight_fb, weight)
    vis["prednisone_mg_kg_day"] = endpoints.prednisone_mg_kg_day(
        vis["prednisone_mg_day"].to_numpy(dtype="float64", na_value=np.nan), weight
    )

    week = vis["visit_week"]
    vis["is_baseline"] = (week == 0).astype("boolean")
    last_week = vis.groupby("patient_id", sort=False)["visit_week"].transform("max")
    vis["is_last"] = (week == last_week).astype("boolean")

    ends = endpoints.evaluate_all(vis, weight_fb, schema.PRESETS)
    for col in ends.columns:
        vis[col] = ends[col]
    elig = endpoints.renal_eligibility(vis)

    visit_facts = coerce(vis, "visit_facts")

    # Patient facts.
    pf = pat.copy()
    g = vis.groupby("patient_id", sort=False)["visit_week"]
    n_visits = g.size()
    lw = g.max()
    pf["n_visits"] = pd.array(
        pf["patient_id"].map(n_visits).fillna(0).to_numpy(dtype="int64"), dtype="Int64"
    )
    pf["last_week"] = pd.array(pf["patient_id"].map(lw), dtype="Int64")
    pf["follow_up_months"] = pf["last_week"].astype("float64") / WEEKS_PER_MONTH

    final = _final_weeks(vis, cohorts)
    vis_final = vis["cohort"].map(final).astype("Int64")
    at_final = (vis["visit_week"] == vis_final).fillna(False).to_numpy(dtype=bool)
    completers = vis.loc[at_final, "patient_id"].unique().tolist()
    ids = pd.Series(pf["patient_id"].to_numpy(dtype=object, na_value=None))
    pf["completer"] = pd.array(ids.isin(completers).to_numpy(dtype=bool), dtype="boolean")

    base = vis.loc[vis["visit_week"] == 0].set_index("patient_id")
    base = base[~base.index.duplicated()]  # the importer forbids duplicates; be safe anyway
    pos_flag = (
        base["anti_dsdna_positive"]
        .astype("boolean")
        .fillna(base["sledai_increased_dna_binding"].astype("boolean"))
    )
    st = pf["patient_id"].map(pos_flag)
    pf["baseline_anti_dsdna"] = pd.array(
        np.where(
            st.isna(), "unknown", np.where(st.fillna(False).astype(bool), "positive", "negative")
        ),
        dtype="string",
    )
    # Renal eligibility: the same value on every visit of a patient; none without visits.
    first = ~vis["patient_id"].duplicated().to_numpy()
    pids = vis["patient_id"].to_numpy(dtype=object)[first]
    for col in elig.columns:
        flag = pd.Series(elig[col].to_numpy()[first], index=pids, dtype="boolean")
        pf[col] = pd.array(pf["patient_id"].map(flag), dtype="boolean")
    cum = endpoints.cumulative_prednisone_g(
        vis["patient_id"].to_numpy(dtype=object),
        vis["visit_week"].to_numpy(dtype="float64", na_value=np.nan),
        vis["prednisone_mg_day"].to_numpy(dtype="float64", na_value=np.nan),
    )
    pf["cumulative_prednisone_g"] = pf["patient_id"].map(cum).astype("float64")
    pf["age_band"] = _age_band(pf["age_at_baseline_years"])
    pf["class_group"] = _class_group(pf["biopsy_class"])
    patient_facts = coerce(pf, "patient_facts")
    return patient_facts, visit_facts
