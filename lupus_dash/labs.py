"""Long-format laboratory results (one row per result) → visit columns of the contract.

A labs file (``labs.csv`` in the cohort folder, or ``[files] labs = "..."`` in a
mapping) holds one result per row: patient, ``visit_date`` or ``visit_week``,
the test as a LOINC code and/or a local name, the value and its unit. Each
result is matched to a contract measure (LOINC code lists below, then the
mapping's ``[labs.codes]`` / ``[labs.tests]``, then the visits synonym table for
local names), converted to the contract unit (mapping.UNITS), range-checked,
and a dated result is mapped to a nominal week with the importer's windows
(ingest.default_windows: the same rule as dated visits). Two results for one
patient, visit and measure are an error naming both rows. The results then
fill the visits table (new visit rows where the visits file has none; a value
in both files is an error naming both) and go through the ordinary validation.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from . import mapping, schema

# LOINC codes per contract measure. Long common names as LOINC gives them; checked against
# laboratory catalogues that print the LOINC code next to the test (ARUP, Labcorp, Mayo,
# Cleveland Clinic, HL7 FHIR value sets) where marked "seen".
LOINC: dict[str, dict[str, str]] = {
    "c3_g_l": {"4485-9": "Complement C3 [Mass/volume] in Serum or Plasma"},  # seen
    "c4_g_l": {"4498-2": "Complement C4 [Mass/volume] in Serum or Plasma"},  # seen
    "urine_protein_g_24h": {"2889-4": "Protein [Mass/time] in 24 hour Urine"},
    "upcr_g_g": {"2890-2": "Protein/Creatinine [Mass Ratio] in Urine"},  # seen
    "cd19_pct": {"8117-4": "CD19 cells/100 cells in Blood"},
    "anti_dsdna_iu_ml": {
        "5130-0": "DNA double strand Ab [Units/volume] in Serum",
        "33799-8": "DNA double strand Ab.IgG [Units/volume] in Serum by Immunoassay",  # seen
        "32677-7": "DNA double strand IgG Ab [Units/volume] in Serum",  # seen
        "47299-3": "DNA double strand Ab [Units/volume] in Serum by Radioimmunoassay",  # seen
        "11563-4": "DNA double strand Ab [Units/volume] in Serum (deprecated)",  # seen
    },
    "creatinine_umol_l": {
        "2160-0": "Creatinine [Mass/volume] in Serum or Plasma",  # seen
        "14682-9": "Creatinine [Moles/volume] in Serum or Plasma",  # seen
        "77140-2": "Creatinine [Moles/volume] in Serum, Plasma or Blood",  # seen
    },
    "albumin_g_l": {"1751-7": "Albumin [Mass/volume] in Serum or Plasma"},
    "egfr_ml_min": {
        "62238-1": "GFR/1.73 sq M.predicted by CKD-EPI (creatinine)",
        "98979-8": "GFR/1.73 sq M.predicted by CKD-EPI 2021 (creatinine)",
        "33914-3": "GFR/1.73 sq M.predicted by MDRD",
    },
}
# Codes that name a measure whose result cannot become the contract's number.
NOT_CONVERTIBLE: dict[str, str] = {
    "11013-0": "anti-dsDNA titre (DNA double strand Ab [Titer] in Serum): a titre is not IU/mL",
}
CODE_TO_MEASURE = {code: m for m, codes in LOINC.items() for code in codes}
MEASURES = tuple(LOINC)

# Columns of a labs file (names the importer recognises without a mapping).
LABS_COLUMNS = ("patient_id", "visit_week", "visit_date", "test", "code", "value", "unit")
LABS_SYNONYMS: dict[str, tuple[str, ...]] = {
    "patient_id": mapping._PATIENT_ID,
    "visit_week": ("week", "visit week", "study week"),
    "visit_date": ("date", "result date", "collection date", "sample date", "specimen date",
                   "observation date", "datum", "lab date", "measurement date", "draw date",
                   "effective date", "visit date"),
    "test": ("test", "test name", "analyte", "parameter", "name", "lab test", "component",
             "observation", "description", "untersuchung", "analyse", "examen", "item"),
    "code": ("code", "loinc", "loinc code", "loinc num", "loinc_num", "test code",
             "observation code"),
    "value": ("value", "result", "result value", "value as number", "numeric result", "wert",
              "ergebnis", "valeur", "resultat", "valor", "value numeric"),
    "unit": ("unit", "units", "uom", "unit of measure", "result unit", "einheit", "unite",
             "unidad"),
}


def is_long_format(headers) -> bool:
    """A file with a value column and a test or code column is long-format labs."""
    found = {_labs_match(h) for h in headers}
    return "value" in found and ("test" in found or "code" in found)


def _labs_match(header: str) -> str | None:
    key = mapping._norm(header)
    for col, words in LABS_SYNONYMS.items():
        if key == col.replace("_", " ") or key in [mapping._norm(w) for w in words]:
            return col
    return None


def suggest_columns(headers, samples) -> list[mapping.ColumnMap]:
    out = []
    for h in headers:
        to = _labs_match(h) or ""
        out.append(mapping.ColumnMap("labs", str(h), to, confidence=0.95 if to else None,
                                     note="" if to else "not a labs column; ignored",
                                     samples=list(dict.fromkeys(samples.get(h, [])))[:5]))
    return out


def measure_of(code: str, test: str, m: mapping.Mapping | None) -> tuple[str | None, str]:
    """(contract measure, how it was matched) for a result's code and local test name."""
    extra_codes = {str(k): str(v) for k, v in (m.labs.get("codes", {}) if m else {}).items()}
    extra_tests = {mapping._norm(k): str(v)
                   for k, v in (m.labs.get("tests", {}) if m else {}).items()}
    if code:
        if code in extra_codes:
            return extra_codes[code], "mapping [labs.codes]"
        if code in CODE_TO_MEASURE:
            return CODE_TO_MEASURE[code], f"LOINC {code}"
    if test:
        if mapping._norm(test) in extra_tests:
            return extra_tests[mapping._norm(test)], "mapping [labs.tests]"
        g = mapping.match_header("visits", test)
        if g is not None and g.to in MEASURES and g.confidence >= 0.8:
            return g.to, f"name '{test}'"
    return None, ""


def merge_into(raws: dict, raw, m, sink, opts: dict, sched, wins) -> None:
    """Check every result of the labs table as read (ingest._read_labs, or a raw table another
    reader built) and put them into raws['visits']."""
    from . import ingest

    label = raw.label
    frame = raw.frame
    # Which file column holds what: the mapping's table "labs", else recognised names.
    cols: dict[str, str] = {}
    cms = m.for_table("labs") if m is not None else []
    for cm in cms:
        key = ingest.normalise_name(cm.column)
        if key not in frame.columns:
            sink.error(m.path, None, cm.column, cm.to or None,
                       f"the mapping names column {cm.column!r} of {label} (labs), which the "
                       f"file does not have (its columns: "
                       f"{', '.join(raw.header_cols.get(c, c) for c in frame.columns)})")
            continue
        if cm.to:
            if cm.to not in LABS_COLUMNS:
                sink.error(m.path, None, cm.column, cm.to,
                           f"not a labs column; use one of {', '.join(LABS_COLUMNS)}")
                continue
            cols[cm.to] = key
    if not cms:
        for c in frame.columns:
            hit = _labs_match(raw.header_cols.get(c, c))
            if hit and hit not in cols:
                cols[hit] = c
    for need in ("patient_id", "value"):
        if need not in cols:
            sink.error(label, 1, need, None, f"a labs file needs a {need} column")
    if "test" not in cols and "code" not in cols:
        sink.error(label, 1, "test", None, "a labs file needs a test (name) or code (LOINC) "
                   "column")
    if "visit_week" not in cols and "visit_date" not in cols:
        sink.error(label, 1, "visit_date", None, "a labs file needs a visit_date or visit_week")
    if sink.problems and any(p.file == label and p.row == 1 for p in sink.problems):
        return
    shown = {v: raw.header_cols.get(v, v) for v in cols.values()}

    def cell(col: str) -> pd.Series:
        return frame[cols[col]].astype(str).str.strip() if col in cols else \
            pd.Series([""] * len(frame), index=frame.index)

    pid, code, test, value, unit = (cell(c) for c in ("patient_id", "code", "test", "value",
                                                      "unit"))
    n_before = len(sink.problems)

    def err(i, col, val, reason):
        sink.error(label, raw.rows[i], shown.get(cols.get(col, col), col), val, reason)

    # Patients: start dates and ids, from the patients table as read.
    praw = raws.get("patients")
    known, starts = set(), {}
    if praw is not None:
        pf = praw.frame
        if "patient_id" in pf.columns:
            known = set(pf["patient_id"].astype(str).str.strip())
            if "treatment_start_date" in pf.columns:
                fmt = ingest._file_date_format(praw, ["treatment_start_date"],
                                               opts.get("date_format"), ingest._Sink())
                d, _ = ingest.parse_date_series(
                    pf["treatment_start_date"].astype(str).str.strip(), fmt)
                starts = dict(zip(pf["patient_id"].astype(str).str.strip(), d, strict=False))
    # Measures: each distinct (code, test) pair is matched once.
    pairs = pd.DataFrame({"c": code, "t": test})
    uniq = pairs.drop_duplicates()
    meas_of: dict[tuple[str, str], str | None] = {}
    reason_of: dict[tuple[str, str], tuple[str, str, str]] = {}
    for c, t in uniq.itertuples(index=False, name=None):
        if c in NOT_CONVERTIBLE:
            meas_of[(c, t)] = None
            reason_of[(c, t)] = ("code", c, f"cannot be used: {NOT_CONVERTIBLE[c]}")
            continue
        meas, _how = measure_of(c, t, m)
        if meas is None:
            col, val = ("code", c) if c else ("test", t)
            reason_of[(c, t)] = (col, val, "no test name or code" if not c and not t else
                                 "unknown test: not in the LOINC code lists ("
                                 + "; ".join(f"{k} {', '.join(v)}" for k, v in LOINC.items())
                                 + ") nor a known name; add it under [labs.codes] or "
                                 "[labs.tests] in the mapping, e.g. \"LOCAL1\" = \"c3_g_l\"")
        elif meas not in MEASURES:
            reason_of[(c, t)] = ("code" if c else "test", c or t,
                                 (f"mapped to {meas}, which is not a lab measure of the "
                                 f"contract ({', '.join(MEASURES)})"))
            meas = None
        meas_of[(c, t)] = meas
    keys = list(zip(code, test, strict=True))
    measure = pd.Series([meas_of[k] for k in keys], index=frame.index, dtype=object)
    for i in np.flatnonzero(measure.isna().to_numpy()):
        err(i, *reason_of[keys[i]])
    # Values and units (factors per distinct measure × unit).
    num, _, bad = ingest._parse_numbers(value, raw.decimal_comma)
    has = measure.notna()
    for i in np.flatnonzero((has & (value == "")).to_numpy()):
        err(i, "value", "", "no result value")
    for i in np.flatnonzero((has & bad).to_numpy()):
        err(i, "value", value.iloc[i], ingest._number_hint(value.iloc[i], raw.decimal_comma))
    mu = pd.DataFrame({"m": measure, "u": unit})
    factor_of = {}
    for meas, u in mu[has].drop_duplicates().itertuples(index=False, name=None):
        factor_of[(meas, u)] = 1.0 if not u else mapping.unit_factor(meas, u)
    fac = pd.Series([factor_of.get((a, u)) if a is not None else None
                     for a, u in zip(measure, unit, strict=True)], index=frame.index,
                    dtype="float64")
    nounit = has & (value != "") & ~bad & fac.isna()
    for i in np.flatnonzero(nounit.to_numpy()):
        meas = measure.iloc[i]
        err(i, "unit", unit.iloc[i], f"cannot be converted to {meas} "
            f"({next(iter(mapping.UNITS[meas]))}); convertible units: "
            f"{mapping.units_text(meas)}")
    conv = ingest.convert(num, fac.fillna(1.0)).where(has & ~bad & (value != "") & fac.notna())
    lo = measure.map({c: schema.column("visits", c).lo for c in MEASURES}).astype("float64")
    hi = measure.map({c: schema.column("visits", c).hi for c in MEASURES}).astype("float64")
    out_lo, out_hi = conv < lo.fillna(-np.inf), conv > hi.fillna(np.inf)
    for i in np.flatnonzero((out_lo | out_hi).to_numpy()):
        meas, u, x = measure.iloc[i], unit.iloc[i], float(conv.iloc[i])
        col = schema.column("visits", meas)
        read = f" (read as {mapping.canon_unit(u)}, converted to {x:g} " \
               f"{next(iter(mapping.UNITS[meas]))})" if u and fac.iloc[i] != 1.0 else ""
        err(i, "value", value.iloc[i],
            f"{'below' if out_lo.iloc[i] else 'above'} the plausible range "
            f"{ingest._range_text(col)} for {meas}{read}")
    conv = conv.where(~(out_lo | out_hi))
    # Patients and weeks.
    wk = cell("visit_week")
    wnum, _, wbad = ingest._parse_numbers(wk, False)
    dt = cell("visit_date")
    dfmt = ingest._file_date_format(raw, [cols["visit_date"]], opts.get("date_format"), sink) \
        if "visit_date" in cols else None
    dval, dreason = ingest.parse_date_series(dt, dfmt)
    visit_weeks = set()
    vraw = raws.get("visits")
    if vraw is not None and "visit_week" in vraw.frame.columns:
        vw, _, _ = ingest._parse_numbers(vraw.frame["visit_week"].astype(str).str.strip(), False)
        visit_weeks = {int(x) for x in vw.dropna() if float(x).is_integer()}
    windows = ingest._windows_for(sched, wins, visit_weeks | {int(x) for x in wnum.dropna()
                                                            if float(x).is_integer()})
    weeks = pd.Series(np.nan, index=frame.index)
    live = measure.notna()
    for i in np.flatnonzero((live & (pid == "")).to_numpy()):
        err(i, "patient_id", "", "required value is missing")
    live &= pid != ""
    if praw is not None:
        unknown = live & ~pid.isin(known)
        for i in np.flatnonzero(unknown.to_numpy()):
            err(i, "patient_id", pid.iloc[i], "unknown patient: not in patients")
        live &= ~unknown
    given = live & (wk != "")
    badw = given & (wbad | (wnum != np.floor(wnum)))
    for i in np.flatnonzero(badw.to_numpy()):
        err(i, "visit_week", wk.iloc[i], "not a whole number of weeks")
    weeks[given & ~badw] = wnum[given & ~badw]
    dated = live & (wk == "")
    for i in np.flatnonzero((dated & (dt == "")).to_numpy()):
        err(i, "visit_date", "", "needs a visit_week or a visit_date")
    dated &= dt != ""
    for i in np.flatnonzero((dated & (dreason != "")).to_numpy()):
        err(i, "visit_date", dt.iloc[i], dreason.iloc[i])
    dated &= dreason == ""
    start = pd.to_datetime(pid.map(starts)).astype("datetime64[s]")
    nostart = dated & start.isna()
    for i in np.flatnonzero(nostart.to_numpy()):
        err(i, "visit_date", dt.iloc[i], f"patient {pid.iloc[i]} has no treatment_start_date in "
            "patients, which a dated result needs to get its week")
    dated &= ~nostart
    if dated.any():
        idx = np.flatnonzero(dated.to_numpy())
        days = (dval.iloc[idx].to_numpy() - start.iloc[idx].to_numpy()).astype(
            "timedelta64[D]").astype(np.int64)
        w = ingest._week_of_days(days, windows)
        for j in np.flatnonzero(w < 0):
            i = idx[j]
            err(i, "visit_date", dt.iloc[i], f"day {days[j]} after treatment start fits no "
                "visit window; give visit_week or widen --week-windows")
        okw = w >= 0
        weeks.iloc[idx[okw]] = w[okw]
    ok = measure.notna() & conv.notna() & weeks.notna()
    # Two results for one visit and measure: an error naming both rows.
    key = pd.DataFrame({"p": pid, "w": weeks, "m": measure})[ok]
    dup = key.duplicated(keep="first")
    if dup.any():
        first_of = {}
        for i in key.index[key.duplicated(keep=False).to_numpy()]:
            k = (key.at[i, "p"], int(key.at[i, "w"]), key.at[i, "m"])
            first_of.setdefault(k, i)
        for i in key.index[dup.to_numpy()]:
            p, w, meas = key.at[i, "p"], int(key.at[i, "w"]), key.at[i, "m"]
            j = first_of[(p, w, meas)]
            err(i, "value", value.iloc[i],
                f"two results for patient {p}, week {w}, {meas}: rows {raw.rows[j]} "
                f"({value.iloc[j]} {unit.iloc[j]}, {dt.iloc[j] or 'week ' + wk.iloc[j]}) and "
                f"{raw.rows[i]} ({value.iloc[i]} {unit.iloc[i]}, "
                f"{dt.iloc[i] or 'week ' + wk.iloc[i]}); keep one")
    if len(sink.problems) > n_before:
        return
    wide = _pivot(pid[ok], weeks[ok], measure[ok], conv[ok], raw.rows[ok.to_numpy()])
    _merge(raws, wide, label, sink, windows, starts, opts)


def _pivot(pid, weeks, measure, values, rows) -> pd.DataFrame:
    df = pd.DataFrame({"patient_id": pid.to_numpy(), "visit_week": weeks.astype(int).to_numpy(),
                       "m": measure.to_numpy(), "v": values.to_numpy(), "row": rows})
    wide = df.pivot(index=["patient_id", "visit_week"], columns="m", values="v")
    first_row = df.groupby(["patient_id", "visit_week"])["row"].min()
    wide = wide.assign(_row=first_row).reset_index()
    wide.columns.name = None
    return wide


def _text(x) -> str:
    return "" if x is None or (isinstance(x, float) and np.isnan(x)) else repr(float(x))


def _merge(raws, wide: pd.DataFrame, label: str, sink, windows, starts, opts) -> None:
    """Lab values into raws['visits']: fill its rows, add rows for visits it lacks."""
    from . import ingest

    measures = [c for c in wide.columns if c in MEASURES]
    vraw = raws.get("visits")
    if vraw is None:
        frame = pd.DataFrame({"patient_id": wide["patient_id"].astype(str),
                              "visit_week": wide["visit_week"].astype(str)})
        for c in measures:
            frame[c] = [_text(x) for x in wide[c]]
        raws["visits"] = ingest._Raw(label, frame, wide["_row"].to_numpy(dtype=np.int64),
                                     False, {c: c for c in frame.columns})
        sink.problems[:] = [p for p in sink.problems
                            if not (p.value == "visits.csv" and "required file" in p.reason)]
        return
    vf = vraw.frame.copy()
    n = len(vf)
    pid = vf["patient_id"].astype(str).str.strip() if "patient_id" in vf.columns else \
        pd.Series([""] * n)
    wk = pd.Series(np.nan, index=vf.index)
    if "visit_week" in vf.columns:
        wnum, _, _ = ingest._parse_numbers(vf["visit_week"].astype(str).str.strip(), False)
        wk = wnum
    if "visit_date" in vf.columns:
        fmt = ingest._file_date_format(vraw, ["visit_date"], opts.get("date_format"),
                                       ingest._Sink())
        d, reason = ingest.parse_date_series(vf["visit_date"].astype(str).str.strip(), fmt)
        for i in np.flatnonzero((wk.isna() & d.notna() & (reason == "")).to_numpy()):
            s = starts.get(pid.iloc[i])
            if s is not None and not pd.isna(s):
                day = int((pd.Timestamp(d.iloc[i]) - pd.Timestamp(s)).days)
                w = int(ingest._week_of_days(np.array([day]), windows)[0])
                if w >= 0:
                    wk.iloc[i] = w
    where = {(p, int(w)): i for i, (p, w) in enumerate(zip(pid, wk, strict=True))
             if not pd.isna(w)}
    for c in measures:
        if c not in vf.columns:
            vf[c] = ""
    add = []
    for _, r in wide.iterrows():
        i = where.get((r["patient_id"], int(r["visit_week"])))
        if i is None:
            add.append(r)
            continue
        for c in measures:
            x = r[c]
            if pd.isna(x):
                continue
            have = str(vf.at[vf.index[i], c]).strip()
            if have and have.lower() not in schema.NA_MARKERS:
                sink.error(label, int(r["_row"]), c, _text(x),
                           f"{vraw.label} row {vraw.rows[i]} already gives {c} for patient "
                           f"{r['patient_id']} at week {int(r['visit_week'])} ({have}); keep "
                           "one of them")
                continue
            vf.at[vf.index[i], c] = _text(x)
    rows = list(vraw.rows)
    if add:
        extra = pd.DataFrame({c: [""] * len(add) for c in vf.columns})
        extra["patient_id"] = [r["patient_id"] for r in add]
        if "visit_week" not in extra.columns:
            vf["visit_week"] = ["" if pd.isna(w) else str(int(w)) for w in wk]
        extra["visit_week"] = [str(int(r["visit_week"])) for r in add]
        for c in measures:
            extra[c] = [_text(r[c]) for r in add]
        vf = pd.concat([vf, extra[vf.columns]], ignore_index=True)
        rows += [int(r["_row"]) for r in add]
        sink.warn(label, None, None, None,
                  f"{len(add)} visit(s) have lab results but no row in {vraw.label}; added "
                  f"as visits (rows named here are {label}'s)")
    vraw.frame = vf
    vraw.rows = np.asarray(rows, dtype=np.int64)
