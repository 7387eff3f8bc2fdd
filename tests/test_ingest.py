"""Cohort import: every bad input located and refused, real-world variants accepted."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lupus_dash import cli, ingest, schema, store

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "cohort_external"

# A small valid cohort. Visit rows are spreadsheet rows 2..7 (header = row 1).
PATIENTS = """patient_id,cohort,sex,age_at_baseline_years,treatment_start_date,biopsy_class,antimalarial,immunosuppressant
P1,T,F,14,2022-01-10,IV,yes,MMF
P2,T,M,15,2022-02-07,V,no,CYC
P3,T,F,12,2022-03-07,,yes,arrêt MMF
"""
VISITS = """patient_id,visit_week,visit_date,c3_g_l,sledai2k,pga,prednisone_mg_day,anti_dsdna_positive
P1,0,,0.5,10,2.0,20,true
P1,4,,0.7,6,1.0,10,false
P2,0,,0.6,8,1.5,15,true
P2,4,,0.8,4,0.5,7.5,false
P3,0,,0.4,12,2.5,30,true
P3,,2022-04-04,0.55,8,1.2,20,true
"""
AES = """patient_id,onset_week,term,category,severity,serious
P1,2,upper respiratory tract infection,infection,mild,no
"""


def write_cohort(folder: Path, patients=PATIENTS, visits=VISITS, aes=AES) -> Path:
    """Write the three CSVs (str = UTF-8 text, bytes = as is, None = no file)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in (("patients", patients), ("visits", visits), ("adverse_events", aes)):
        if content is None:
            continue
        data = content if isinstance(content, bytes) else content.encode("utf-8")
        (folder / f"{name}.csv").write_bytes(data)
    return folder


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def base_db(tmp_path_factory) -> Path:
    """A database holding the valid cohort 'T' (built once, copied per test)."""
    d = tmp_path_factory.mktemp("base")
    res = ingest.read_cohort(write_cohort(d / "cohort"))
    assert res.ok, res.problems
    db = d / "base.duckdb"
    store.write_database(db, res.tables)
    return db


@pytest.fixture()
def db(base_db, tmp_path) -> Path:
    target = tmp_path / "cohorts.duckdb"
    target.write_bytes(base_db.read_bytes())
    return target


def _replace_line(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


# --- the bad-input table ----------------------------------------------------------------------
# Each case: how to break the base cohort, then the problem expected:
# (file, row, column, value, reason fragment). Rows are spreadsheet rows (header = 1).


UTF16 = VISITS.encode("utf-16")
BINARY = b"\xff" + bytes(np.random.default_rng(7).integers(0x80, 0x100, 300, dtype=np.uint8))


def _xlsx_missing_sheet(tmp: Path) -> Path:
    path = tmp / "cohort.xlsx"
    with pd.ExcelWriter(path) as xw:
        pd.read_csv(write_cohort(tmp / "csv") / "patients.csv", dtype=str).to_excel(
            xw, sheet_name="patients", index=False
        )
    return path


CASES = {
    "missing_required_column": (
        {"patients": PATIENTS.replace(",sex,", ",gender,", 1)},
        ("patients.csv", 1, "sex", None, "required column is missing"),
    ),
    "duplicate_patient": (
        {"patients": PATIENTS + "P2,T,F,13,2022-02-07,,no,MMF\n"},
        ("patients.csv", 5, "patient_id", "P2", "duplicate patient_id (first at row 3)"),
    ),
    "duplicate_patient_visit": (
        {"visits": VISITS + "P1,4,,0.8,4,0.5,5,false\n"},
        ("visits.csv", 8, "visit_week", "4", "already has week 4 at row 3"),
    ),
    "visit_of_unknown_patient": (
        {"visits": VISITS + "P9,0,,0.8,4,0.5,5,false\n"},
        ("visits.csv", 8, "patient_id", "P9", "unknown patient"),
    ),
    "ae_of_unknown_patient": (
        {"aes": AES + "P7,3,rash,other,mild,no\n"},
        ("adverse_events.csv", 3, "patient_id", "P7", "unknown patient"),
    ),
    "text_in_number_column": (
        {"visits": _replace_line(VISITS, "P1,0,,0.5,", "P1,0,,low,")},
        ("visits.csv", 2, "c3_g_l", "low", "not a number"),
    ),
    "censored_lab_value": (
        {"visits": _replace_line(VISITS, "P1,0,,0.5,", "P1,0,,<0.5,")},
        ("visits.csv", 2, "c3_g_l", "<0.5", "censored"),
    ),
    "decimal_comma_in_comma_file": (
        {"visits": _replace_line(VISITS, "P1,0,,0.5,", 'P1,0,,"0,5",')},
        ("visits.csv", 2, "c3_g_l", "0,5", "decimal comma"),
    ),
    "negative_value": (
        {"visits": _replace_line(VISITS, "P1,4,,0.7,6,1.0,10,", "P1,4,,0.7,6,1.0,-5,")},
        ("visits.csv", 3, "prednisone_mg_day", "-5", "below the plausible range 0–2000"),
    ),
    "implausible_c3": (
        {"visits": _replace_line(VISITS, "P1,0,,0.5,", "P1,0,,7.5,")},
        ("visits.csv", 2, "c3_g_l", "7.5", "above the plausible range 0–5 g/L (read as g/L)"),
    ),
    "implausible_age": (
        {"patients": _replace_line(PATIENTS, "P1,T,F,14,", "P1,T,F,140,")},
        ("patients.csv", 2, "age_at_baseline_years", "140", "above the plausible range 0–120"),
    ),
    "pga_4": (
        {"visits": _replace_line(VISITS, "P2,0,,0.6,8,1.5,", "P2,0,,0.6,8,4,")},
        ("visits.csv", 4, "pga", "4", "above the plausible range 0–3"),
    ),
    "sledai_106": (
        {"visits": _replace_line(VISITS, "P2,0,,0.6,8,", "P2,0,,0.6,106,")},
        ("visits.csv", 4, "sledai2k", "106", "above the plausible range 0–105"),
    ),
    "sledai_not_integer": (
        {"visits": _replace_line(VISITS, "P2,0,,0.6,8,", "P2,0,,0.6,4.5,")},
        ("visits.csv", 4, "sledai2k", "4.5", "not a whole number"),
    ),
    "boolean_maybe": (
        {"visits": _replace_line(VISITS, "P2,4,,0.8,4,0.5,7.5,false", "P2,4,,0.8,4,0.5,7.5,maybe")},
        ("visits.csv", 5, "anti_dsdna_positive", "maybe", "use true/false, yes/no, y/n or 1/0"),
    ),
    "sex_not_a_choice": (
        {"patients": _replace_line(PATIENTS, "P2,T,M,", "P2,T,X,")},
        ("patients.csv", 3, "sex", "X", "not one of F, M"),
    ),
    "ae_category_not_a_choice": (
        {"aes": AES.replace(",infection,", ",infektion,")},
        ("adverse_events.csv", 2, "category", "infektion", "not one of infection"),
    ),
    "impossible_date": (
        {"patients": _replace_line(PATIENTS, "2022-02-07", "2024-02-30")},
        ("patients.csv", 3, "treatment_start_date", "2024-02-30", "not a real calendar date"),
    ),
    "ambiguous_date": (
        {"patients": _replace_line(PATIENTS, "2022-02-07", "07/02/2022")},
        ("patients.csv", 3, "treatment_start_date", "07/02/2022", "ambiguous date"),
    ),
    "not_a_date": (
        {"visits": _replace_line(VISITS, "2022-04-04", "April 4th")},
        ("visits.csv", 7, "visit_date", "April 4th", "not a date; write it as ISO"),
    ),
    "visit_before_treatment_start": (
        # P3 starts 2022-03-07; 2022-01-01 is 65 days before (baseline window opens at -30).
        {"visits": _replace_line(VISITS, "2022-04-04", "2022-01-01")},
        ("visits.csv", 7, "visit_date", "2022-01-01", "visit before treatment start: 65 days"),
    ),
    "dated_visit_fits_no_window": (
        # Default windows: week 4 = day 21–35, week 12 = day 63–105; 2022-04-21 is day 45.
        {"visits": _replace_line(VISITS, "2022-04-04", "2022-04-21")},
        ("visits.csv", 7, "visit_date", "2022-04-21", "day 45 after treatment start fits no"),
    ),
    "dated_visit_without_treatment_start": (
        {"patients": _replace_line(PATIENTS, "P3,T,F,12,2022-03-07,", "P3,T,F,12,,")},
        ("visits.csv", 7, "visit_date", "2022-04-04", "has no treatment_start_date"),
    ),
    "visit_without_week_or_date": (
        {"visits": _replace_line(VISITS, "P3,,2022-04-04,", "P3,,,")},
        ("visits.csv", 7, "visit_week", "", "needs a visit_week or a visit_date"),
    ),
    "ragged_row": (
        {"visits": _replace_line(VISITS, "P1,4,,0.7,6,1.0,10,false", "P1,4,,0.7,6,1.0,10,false,x")},
        ("visits.csv", 3, None, "x", "row has 9 fields but the header has 8"),
    ),
    "unknown_unit": (
        {"visits": VISITS.replace("c3_g_l,", "c3_g_l,c3_unit,", 1).replace(
            "P1,0,,0.5,", "P1,0,,0.5,mmol/L,").replace(
            "\nP1,4,,0.7,", "\nP1,4,,0.7,,").replace("\nP2,0,,0.6,", "\nP2,0,,0.6,,").replace(
            "\nP2,4,,0.8,", "\nP2,4,,0.8,,").replace("\nP3,0,,0.4,", "\nP3,0,,0.4,,").replace(
            "2022-04-04,0.55,", "2022-04-04,0.55,,")},
        ("visits.csv", 2, "c3_unit", "mmol/L", "unknown unit; use g/L or mg/dL"),
    ),
    "empty_file": (
        {"visits": b""},
        ("visits.csv", None, None, None, "the file is empty"),
    ),
    "header_only_file": (
        {"visits": VISITS.splitlines()[0] + "\n"},
        ("visits.csv", None, None, None, "header row but no data rows"),
    ),
    "missing_visits_file": (
        {"visits": None},
        (None, None, None, "visits.csv", "required file visits.csv"),
    ),
    "utf16_encoding": (
        # The value shows the bytes around the first NUL: BOM, 'p', NUL, 'a', NUL, 't'.
        {"visits": UTF16},
        ("visits.csv", 1, None, repr(UTF16[:7]), "NUL bytes"),
    ),
    "random_binary": (
        # Bytes 0x80-0xFF only: no NULs, not UTF-8, and not plausible Latin-1 text.
        {"visits": BINARY},
        ("visits.csv", 1, None, repr(BINARY[:8]), "cannot decode this file"),
    ),
    "sledai_disagrees_with_descriptors": (
        {"visits": "patient_id,visit_week,sledai2k," + ",".join(schema.SLEDAI_COLUMNS) + "\n"
         # Arthritis (4) + rash (2) + low complement (2) = 8, but 10 given.
         + "P1,0,10," + ",".join("1" if c in ("sledai_arthritis", "sledai_rash",
                                              "sledai_low_complement") else "0"
                                 for c in schema.SLEDAI_COLUMNS) + "\n"},
        ("visits.csv", 2, "sledai2k", "10", "weighted sum is 8"),
    ),
    "xlsx_missing_sheet": (
        _xlsx_missing_sheet,
        ("cohort.xlsx", None, None, "visits", "no sheet named 'visits'"),
    ),
    "missing_path": (
        lambda tmp: tmp / "no_such_folder",
        (None, None, None, None, "no such file or folder"),
    ),
}


def _make_case(name: str, tmp: Path) -> Path:
    change, _ = CASES[name]
    if callable(change):
        return change(tmp)
    kwargs = {"patients": PATIENTS, "visits": VISITS, "aes": AES}
    kwargs.update(change)
    return write_cohort(tmp / "cohort", **kwargs)


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_located_refused_database_unchanged(name, tmp_path, db, capsys):
    path = _make_case(name, tmp_path)
    file, row, column, value, reason = CASES[name][1]
    res = ingest.read_cohort(path)
    assert not res.ok
    hits = [p for p in res.problems if reason in p.reason]
    assert hits, [str(p) for p in res.problems]
    p = hits[0]
    assert p.file == (file if file is not None else str(path))
    assert (p.row, p.column, p.value) == (row, column, value)
    text = str(p)
    assert text.startswith(p.file)
    if row is not None:
        assert f" row {row}" in text
    if column is not None:
        assert f"column {column}" in text
    if value is not None:
        assert repr(value) in text
    # The CLI: exit 2, the message printed, no traceback, the database byte-for-byte unchanged.
    before = sha(db)
    rc = cli.main(["import", str(path), "--db", str(db), "--replace"])
    out, err = capsys.readouterr()
    assert rc == 2
    assert "Traceback" not in out + err
    assert text in err
    assert sha(db) == before
    assert [p.name for p in db.parent.iterdir() if p.name.endswith(".tmp")] == []


@pytest.mark.parametrize("name", ["duplicate_patient", "empty_file", "missing_path"])
def test_bad_input_validate_exit_2(name, tmp_path, capsys):
    path = _make_case(name, tmp_path)
    assert cli.main(["validate", str(path)]) == 2
    out, err = capsys.readouterr()
    assert CASES[name][1][4] in err
    assert "Traceback" not in out + err


@pytest.mark.parametrize("name", ["pga_4", "utf16_encoding", "missing_path"])
def test_bad_input_subprocess(name, tmp_path, db):
    path = _make_case(name, tmp_path)
    before = sha(db)
    proc = subprocess.run(
        [sys.executable, "-m", "lupus_dash", "import", str(path), "--db", str(db), "--replace"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert CASES[name][1][4] in proc.stderr
    assert sha(db) == before


def test_cli_message_format(tmp_path, db, capsys):
    path = _make_case("pga_4", tmp_path)
    assert cli.main(["import", str(path), "--db", str(db), "--replace"]) == 2
    err = capsys.readouterr().err
    assert "visits.csv row 4, column pga, value '4': above the plausible range 0–3" in err
    assert "header = row 1, first data row = row 2" in err


def test_two_errors_in_one_file_both_reported(tmp_path):
    visits = _replace_line(VISITS, "P2,0,,0.6,8,1.5,", "P2,0,,0.6,8,4,")
    visits = _replace_line(visits, "P1,4,,0.7,", "P1,4,,abc,")
    res = ingest.read_cohort(write_cohort(tmp_path / "c", visits=visits))
    got = {(p.file, p.row, p.column, p.value) for p in res.problems}
    assert got == {("visits.csv", 4, "pga", "4"), ("visits.csv", 3, "c3_g_l", "abc")}


def test_errors_across_files_all_reported(tmp_path):
    patients = _replace_line(PATIENTS, "P2,T,M,", "P2,T,X,")
    visits = _replace_line(VISITS, "P1,0,,0.5,10,", "P1,0,,0.5,106,")
    aes = AES.replace(",mild,", ",deadly,")
    res = ingest.read_cohort(write_cohort(tmp_path / "c", patients, visits, aes))
    got = {(p.file, p.row, p.column) for p in res.problems}
    assert got == {
        ("patients.csv", 3, "sex"),
        ("visits.csv", 2, "sledai2k"),
        ("adverse_events.csv", 2, "severity"),
    }


def test_unknown_column_warns_and_imports(tmp_path, capsys):
    lines = VISITS.splitlines()
    visits = "\n".join([lines[0] + ",Blood Pressure"] + [ln + ",120/80" for ln in lines[1:]])
    res = ingest.read_cohort(write_cohort(tmp_path / "c", visits=visits + "\n"))
    assert res.ok, res.problems
    assert [(w.file, w.row, w.column, w.value) for w in res.warnings] == [
        ("visits.csv", 1, "blood_pressure", "Blood Pressure")
    ]
    assert "blood_pressure" not in res.tables["visits"].columns
    assert res.tables["visits"]["pga"].tolist() == [2.0, 1.0, 1.5, 0.5, 2.5, 1.2]
    db = tmp_path / "x.duckdb"
    assert cli.main(["import", str(tmp_path / "c"), "--db", str(db)]) == 0
    out, err = capsys.readouterr()
    assert "warning: visits.csv row 1, column blood_pressure" in err
    assert "3 patients, 6 visits, 1 adverse events, 1 warning" in out


def test_lookalike_column_stops_the_import(tmp_path):
    # Issue 16: 'C3 (g/L)' (or a misspelt 'c3_gl') once imported without C3 and a collapsed
    # warning; a column that looks like a contract column must stop the import, located.
    for header in ("c3_gl", "C3 (g/L)", "Complement C3"):
        visits = VISITS.replace("c3_g_l", header, 1)
        res = ingest.read_cohort(write_cohort(tmp_path / header.replace(" ", ""), visits=visits))
        assert [(p.file, p.row, p.column, p.value) for p in res.problems] == [
            ("visits.csv", 1, header, header)
        ]
        assert "looks like the contract column c3_g_l" in res.problems[0].reason
        assert "--mapping" in res.problems[0].reason


# --- valid inputs ---------------------------------------------------------------------------


def test_fixture_folder_imports(tmp_path, capsys):
    res = ingest.read_cohort(FIXTURE)
    assert res.ok, [str(p) for p in res.problems]
    # The one warning (issue 10): LN-adult's week 52, which only A01 attended, is left out
    # of the inferred schedule — named with its attendance, never silently.
    assert [(w.file, w.column, w.value) for w in res.warnings] == [
        ("visits.csv", "visit_week", "52")
    ]
    assert res.warnings[0].reason.startswith(
        "week 52: 1 of 3 patients attended (cohort LN-adult); left out of the inferred schedule "
        "(fewer than 3 patients attended)"
    )
    p, v, a = res.tables["patients"], res.tables["visits"], res.tables["adverse_events"]
    assert (len(p), len(v), len(a)) == (6, 26, 5)
    assert sorted(p["cohort"].unique()) == ["LN-adult", "cSLE-QD"]
    a01 = v[v["patient_id"] == "A01"].set_index("visit_week")
    # Dated visits, treatment start 2021-03-01: 2021-02-22 = day -7 -> week 0,
    # 2021-03-30 = day 29 -> week 4, 2021-05-25 = day 85 -> week 12,
    # 2021-08-16 = day 168 -> week 24; 2022-03-07 had visit_week 52 given.
    assert a01.index.tolist() == [0, 4, 12, 24, 52]
    # c3_unit mg/dL: 62 mg/dL / 100 = 0.62 g/L; creatinine 1.1 mg/dL x 88.4 = 97.24 umol/L.
    assert a01.loc[0, "c3_g_l"] == pytest.approx(0.62)
    assert a01.loc[0, "c4_g_l"] == pytest.approx(0.09)
    assert a01.loc[0, "creatinine_umol_l"] == pytest.approx(97.24)
    # methylprednisolone 16 mg x 1.25 = 20 mg prednisone.
    assert a01.loc[0, "prednisone_mg_day"] == pytest.approx(20.0)
    a03 = v[v["patient_id"] == "A03"].set_index("visit_week")
    # dexamethasone 6 mg x (5 / 0.75) = 40 mg; A03 week 12 gives prednisone 25 directly.
    assert a03.loc[0, "prednisone_mg_day"] == pytest.approx(40.0)
    assert a03.loc[12, "prednisone_mg_day"] == pytest.approx(25.0)
    c01 = v[v["patient_id"] == "C01"].set_index("visit_week")
    assert c01.loc[0, "c3_g_l"] == pytest.approx(0.45)  # g/L rows stay as they are
    assert p.set_index("patient_id").loc["A01", "antimalarial"]  # 'Y'
    db = tmp_path / "ext.duckdb"
    assert cli.main(["import", str(FIXTURE), "--db", str(db)]) == 0
    assert "2 cohorts (LN-adult, cSLE-QD), 6 patients, 26 visits, 5 adverse events" in (
        capsys.readouterr().out
    )


def _dropout_cohort(folder: Path) -> Path:
    """30 patients at weeks 0, 4, 12, 24 (5 leave after week 12); 13 attend week 52."""
    pts = ["patient_id,cohort,sex,age_at_baseline_years"]
    vis = ["patient_id,visit_week,sledai2k,pga,prednisone_mg_day"]
    for i in range(30):
        pts.append(f"D{i:02d},Drop,F,{20 + i}")
        weeks = [0, 4, 12] + ([24] if i < 25 else []) + ([52] if i < 13 else [])
        vis += [f"D{i:02d},{w},{max(0, 8 - w // 8)},1.0,{max(5, 30 - w // 2)}" for w in weeks]
    return write_cohort(folder, "\n".join(pts) + "\n", "\n".join(vis) + "\n", None)


def test_sparse_final_week_is_kept_and_named(tmp_path, capsys):
    # Issue 10: with 13 of 30 patients at week 52 the import used to infer 0-24, say nothing,
    # drop every week-52 result from the visit tables and redefine "completer".
    folder = _dropout_cohort(tmp_path / "drop")
    db = tmp_path / "drop.duckdb"
    assert cli.main(["import", str(folder), "--db", str(db)]) == 0
    err = capsys.readouterr().err
    assert ("warning: visits.csv, column visit_week, value '52': week 52: 13 of 30 patients "
            "attended (cohort Drop); kept as a scheduled week (after dropout: 13 of the 25 "
            "patients still followed at week 24 attended); it is the final week, so "
            "'completer' = has a week-52 visit") in err
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    try:
        weeks, final = con.execute(
            "SELECT scheduled_weeks, final_week FROM cohorts WHERE cohort = 'Drop'").fetchone()
        n_comp = con.execute("SELECT count(*) FROM patient_facts WHERE completer").fetchone()[0]
        n52 = con.execute("SELECT count(*) FROM visit_facts WHERE visit_week = 52").fetchone()[0]
    finally:
        con.close()
    assert (list(weeks), final, n_comp, n52) == ([0, 4, 12, 24, 52], 52, 13, 13)
    # With --schedule the user's schedule holds and the left-out week is still named.
    res = ingest.read_cohort(folder, schedule="0,4,12,24")
    assert [w.reason.split(";")[0] for w in res.warnings] == [
        "week 52: 13 of 30 patients attended (cohort Drop)"
    ]
    assert "not in the given schedule" in res.warnings[0].reason


def _fixture_frames() -> dict[str, pd.DataFrame]:
    return {
        t: pd.read_csv(FIXTURE / f"{t}.csv", dtype=str, keep_default_na=False)
        for t in schema.INPUT_TABLES
    }


def test_xlsx_and_parquet_give_the_same_tables(tmp_path):
    ref = ingest.read_cohort(FIXTURE)
    typed = {}
    for t in schema.INPUT_TABLES:
        # Typed cells as a spreadsheet or Parquet writer holds them: numbers as numbers,
        # dates as dates, the AE 'serious' flag as real booleans.
        df = pd.read_csv(FIXTURE / f"{t}.csv")
        for col in ("visit_date", "treatment_start_date"):
            if col in df:
                df[col] = pd.to_datetime(df[col])
        if "serious" in df:
            df["serious"] = df["serious"].eq("yes")
        typed[t] = df
    book = tmp_path / "cohort.xlsx"
    with pd.ExcelWriter(book) as xw:
        for t, df in typed.items():
            df.to_excel(xw, sheet_name=t.capitalize(), index=False)
    pq = tmp_path / "pq"
    pq.mkdir()
    for t, df in typed.items():
        df.to_parquet(pq / f"{t}.parquet")
    for path in (book, pq):
        res = ingest.read_cohort(path)
        assert res.ok, [str(p) for p in res.problems]
        for t in schema.INPUT_TABLES:
            pd.testing.assert_frame_equal(res.tables[t], ref.tables[t], check_exact=False)


def test_xlsx_problem_names_sheet_and_row(tmp_path):
    frames = _fixture_frames()
    frames["visits"].loc[3, "pga"] = "4"  # frame row 3 = sheet row 5
    book = tmp_path / "cohort.xlsx"
    with pd.ExcelWriter(book) as xw:
        for t, df in frames.items():
            df.to_excel(xw, sheet_name=t, index=False)
    res = ingest.read_cohort(book)
    assert [(p.file, p.row, p.column, p.value) for p in res.problems] == [
        ("cohort.xlsx[visits]", 5, "pga", "4")
    ]


def _european(text: str) -> str:
    """Semicolon separators and decimal commas, as a European Excel exports CSV."""
    out = []
    for line in text.splitlines():
        cells = line.split(",")
        out.append(";".join(c.replace(".", ",") if c.replace(".", "").isdigit() else c
                            for c in cells))
    return "\r\n".join(out) + "\r\n"


@pytest.mark.parametrize(
    "variant",
    ["semicolon_decimal_comma_bom", "latin1", "semicolon_latin1", "yes_no_case", "spaced_headers"],
)
def test_real_world_variants_give_the_same_values(variant, tmp_path):
    ref = ingest.read_cohort(write_cohort(tmp_path / "ref"))
    assert ref.ok
    patients, visits, aes = PATIENTS, VISITS, AES
    enc = "utf-8"
    if variant == "semicolon_decimal_comma_bom":
        patients, visits, aes = _european(patients), _european(visits), _european(aes)
        enc = "utf-8-sig"
    elif variant == "latin1":
        enc = "latin-1"
    elif variant == "semicolon_latin1":
        patients, visits, aes = _european(patients), _european(visits), _european(aes)
        enc = "cp1252"
    elif variant == "yes_no_case":
        patients = patients.replace(",yes,", ",Yes,").replace(",no,", ",NO,")
        visits = visits.replace(",true", ",TRUE").replace(",false", ",False")
        aes = aes.replace(",no", ",N")
    elif variant == "spaced_headers":
        patients = patients.replace("patient_id,cohort,sex", " Patient ID ,Cohort,SEX", 1)
    folder = write_cohort(
        tmp_path / "v", patients.encode(enc), visits.encode(enc), aes.encode(enc)
    )
    res = ingest.read_cohort(folder)
    assert res.ok, [str(p) for p in res.problems]
    for t in schema.INPUT_TABLES:
        pd.testing.assert_frame_equal(res.tables[t], ref.tables[t])
    assert res.tables["patients"]["immunosuppressant"].iloc[2] == "arrêt MMF"
    if "latin1" in variant:
        assert any("read as" in w.reason for w in res.warnings)
    if variant == "semicolon_decimal_comma_bom":
        assert res.tables["visits"]["prednisone_mg_day"].iloc[3] == 7.5  # '7,5'


# --- units ------------------------------------------------------------------------------------


def test_complement_and_creatinine_in_mg_dl_option(tmp_path):
    visits = """patient_id,visit_week,c3_g_l,c4_g_l,creatinine_umol_l
P1,0,90,16,1.0
P1,4,120,20.5,0.85
P1,12,110,18,0.8
"""
    folder = write_cohort(tmp_path / "c", PATIENTS.splitlines()[0] + "\n"
                          + PATIENTS.splitlines()[1] + "\n", visits, None)
    res = ingest.read_cohort(folder, complement_unit="mg/dL", creatinine_unit="mg/dL")
    assert res.ok, res.problems
    v = res.tables["visits"]
    # 90 mg/dL / 100 = 0.9 g/L; 16 -> 0.16; 1.0 mg/dL x 88.4 = 88.4 umol/L; 0.85 x 88.4 = 75.14.
    assert v["c3_g_l"].tolist() == pytest.approx([0.9, 1.2, 1.1])
    assert v["c4_g_l"].tolist() == pytest.approx([0.16, 0.205, 0.18])
    assert v["creatinine_umol_l"].tolist() == pytest.approx([88.4, 75.14, 70.72])
    # Without the option the same file is refused, with a hint naming the unit.
    res = ingest.read_cohort(folder)
    reasons = {(p.row, p.column): p.reason for p in res.problems}
    assert "looks like mg/dL" in reasons[(2, "c3_g_l")]
    assert any("look like mg/dL" in w.reason for w in res.warnings)  # creatinine median < 20


def test_unit_option_of_another_measure_is_reported_not_raised():
    # µmol/L is a unit, but not one of complement: a located option problem, not a KeyError.
    res = ingest.read_cohort(ROOT / "tests" / "fixtures" / "messy_clean", complement_unit="umol/L")
    assert [(p.file, p.value, p.reason) for p in res.problems
            if p.file.startswith("--")] == [
        ("--complement-unit", "umol/L", "unknown unit; use g/L or mg/dL")]
    res = ingest.read_cohort(ROOT / "tests" / "fixtures" / "messy_clean", creatinine_unit="g/L")
    assert [(p.file, p.value, p.reason) for p in res.problems
            if p.file.startswith("--")] == [
        ("--creatinine-unit", "g/L", "unknown unit; use µmol/L or mg/dL")]


def test_unit_columns_per_row_and_range_after_conversion(tmp_path):
    visits = """patient_id,visit_week,c3_g_l,c3_unit,creatinine_umol_l,creatinine_unit
P1,0,0.9,g/L,80,umol/L
P1,4,95,mg/dl,1.2,MG/DL
P1,12,600,mg/dL,,
"""
    folder = write_cohort(tmp_path / "c", PATIENTS.splitlines()[0] + "\n"
                          + PATIENTS.splitlines()[1] + "\n", visits, None)
    res = ingest.read_cohort(folder)
    # 600 mg/dL = 6 g/L > 5 g/L: refused, and the message says how it was read.
    assert [(p.row, p.column, p.value, p.reason) for p in res.problems] == [
        (4, "c3_g_l", "600",
         "above the plausible range 0–5 g/L (read as mg/dL, converted ÷ 100 to 6 g/L)")
    ]
    res = ingest.read_cohort(folder, complement_unit="g/L")
    visits_ok = visits.replace("P1,12,600,mg/dL,,", "P1,12,110,,,")
    res = ingest.read_cohort(write_cohort(tmp_path / "d", PATIENTS.splitlines()[0] + "\n"
                                          + PATIENTS.splitlines()[1] + "\n", visits_ok, None),
                             complement_unit="mg/dL")
    assert res.ok, res.problems
    v = res.tables["visits"]
    # Row units win; the empty unit cell falls back to the option (110 mg/dL -> 1.1 g/L).
    assert v["c3_g_l"].tolist() == pytest.approx([0.9, 0.95, 1.1])
    assert v["creatinine_umol_l"].tolist()[:2] == pytest.approx([80, 1.2 * 88.4])


# --- weeks from dates -------------------------------------------------------------------------


def test_default_windows():
    # week 0: -30..7; week w: 7w +/- max(7, 25 % of 7w), cut at midpoints between targets
    # (12|24 midpoint = (84 + 168) // 2 = 126, so week 24 opens at day 127).
    assert ingest.default_windows([0, 4, 12, 24, 52]) == [
        (0, -30, 7), (4, 21, 35), (12, 63, 105), (24, 127, 210), (52, 273, 455),
    ]
    # Weekly early visits: week 0|1 midpoint = 3, week 1|2 midpoint = 10.
    assert ingest.default_windows([0, 1, 2]) == [(0, -30, 3), (1, 4, 10), (2, 11, 21)]


@pytest.mark.parametrize(
    ("date", "week", "error"),
    [
        ("2022-01-10", 0, None),  # day 0
        ("2021-12-11", 0, None),  # day -30: first day of the baseline window
        ("2021-12-10", None, "visit before treatment start: 31 days"),
        ("2022-01-17", 0, None),  # day 7
        ("2022-01-24", None, "day 14 after treatment start fits no visit window"),
        ("2022-01-31", 4, None),  # day 21
        ("2022-02-14", 4, None),  # day 35
        ("2022-02-15", None, "day 36 after treatment start fits no visit window"),
        ("2022-03-14", 12, None),  # day 63
        ("2023-01-09", 52, None),  # day 364
    ],
)
def test_dated_visit_to_week(date, week, error, tmp_path):
    patients = PATIENTS.splitlines()[0] + "\n" + PATIENTS.splitlines()[1] + "\n"  # start 2022-01-10
    visits = f"patient_id,visit_date,pga\nP1,{date},1\n"
    res = ingest.read_cohort(write_cohort(tmp_path / "c", patients, visits, None),
                             schedule="0,4,12,24,52")
    if error is None:
        assert res.ok, res.problems
        assert res.tables["visits"]["visit_week"].tolist() == [week]
        assert res.schedules == {"T": [0, 4, 12, 24, 52]}
    else:
        assert [(p.row, p.column, p.value) for p in res.problems] == [(2, "visit_date", date)]
        assert error in res.problems[0].reason


def test_custom_week_windows_and_bad_spec(tmp_path):
    patients = PATIENTS.splitlines()[0] + "\n" + PATIENTS.splitlines()[1] + "\n"
    visits = "patient_id,visit_date\nP1,2022-01-24\nP1,2022-02-24\n"  # days 14 and 45
    folder = write_cohort(tmp_path / "c", patients, visits, None)
    res = ingest.read_cohort(folder, week_windows="0:-14:14,6:15:60")
    assert res.ok, res.problems
    assert res.tables["visits"]["visit_week"].tolist() == [0, 6]
    res = ingest.read_cohort(folder, week_windows="0:-14:20,4:15:42")
    assert [(p.file, p.value) for p in res.problems] == [("--week-windows", "0, 4")]
    res = ingest.read_cohort(folder, week_windows="four")
    assert res.problems[0].file == "--week-windows"


def test_week_and_date_both_given_week_wins_with_warning(tmp_path):
    patients = PATIENTS.splitlines()[0] + "\n" + PATIENTS.splitlines()[1] + "\n"
    # 2022-04-04 is day 84 (week 12 window) but the row says week 4.
    visits = "patient_id,visit_week,visit_date\nP1,0,2022-01-10\nP1,4,2022-04-04\n"
    res = ingest.read_cohort(write_cohort(tmp_path / "c", patients, visits, None),
                             schedule="0,4,12")
    assert res.ok
    assert res.tables["visits"]["visit_week"].tolist() == [0, 4]
    assert [(w.row, w.column, w.value) for w in res.warnings] == [(3, "visit_date", "2022-04-04")]
    assert "window of week 12, not week 4" in res.warnings[0].reason


# --- derived inputs ---------------------------------------------------------------------------


def test_sledai_filled_from_descriptors(tmp_path):
    on = {"sledai_seizure", "sledai_proteinuria", "sledai_fever"}  # 8 + 4 + 1 = 13
    header = "patient_id,visit_week,sledai2k," + ",".join(schema.SLEDAI_COLUMNS)
    row = ",".join("yes" if c in on else "no" for c in schema.SLEDAI_COLUMNS)
    visits = f"{header}\nP1,0,,{row}\nP1,4,13,{row}\n"
    patients = PATIENTS.splitlines()[0] + "\n" + PATIENTS.splitlines()[1] + "\n"
    res = ingest.read_cohort(write_cohort(tmp_path / "c", patients, visits, None))
    assert res.ok, res.problems
    assert res.tables["visits"]["sledai2k"].tolist() == [13, 13]


def test_glucocorticoid_columns_and_unknown_drug(tmp_path):
    patients = PATIENTS.splitlines()[0] + "\n" + PATIENTS.splitlines()[1] + "\n"
    visits = """patient_id,visit_week,prednisone_mg_day,glucocorticoid_drug,glucocorticoid_mg_day
P1,0,,Hydrocortisone,20
P1,4,12,methylprednisolone,8
P1,12,,none,
P1,24,,cortisone,25
"""
    res = ingest.read_cohort(write_cohort(tmp_path / "c", patients, visits, None))
    assert [(p.row, p.column, p.value) for p in res.problems] == [
        (5, "glucocorticoid_drug", "cortisone")
    ]
    ok = ingest.read_cohort(write_cohort(tmp_path / "d", patients,
                                         "\n".join(visits.splitlines()[:4]) + "\n", None))
    # hydrocortisone 20 mg x 0.25 = 5 mg; a given prednisone_mg_day (12) is kept; none = 0.
    assert ok.tables["visits"]["prednisone_mg_day"].tolist() == [5.0, 12.0, 0.0]


def test_validate_never_writes(tmp_path, capsys):
    before = set(os.listdir(tmp_path))
    assert cli.main(["validate", str(FIXTURE)]) == 0
    assert "valid: 2 cohorts" in capsys.readouterr().out
    assert set(os.listdir(tmp_path)) == before


def test_sledai_below_the_descriptors_present(tmp_path):
    # Only two descriptor columns: seizure (8) + rash (2) = 10 already, so 6 is impossible;
    # 12 may be right (other descriptors unknown) and is kept; nothing is filled.
    visits = ("patient_id,visit_week,sledai2k,sledai_seizure,sledai_rash\n"
              "P1,0,6,yes,yes\nP1,4,12,yes,yes\nP1,12,,no,no\n")
    patients = PATIENTS.splitlines()[0] + "\n" + PATIENTS.splitlines()[1] + "\n"
    res = ingest.read_cohort(write_cohort(tmp_path / "c", patients, visits, None))
    assert [(p.row, p.column, p.value) for p in res.problems] == [(2, "sledai2k", "6")]
    assert "weighted sum is already 10" in res.problems[0].reason
    assert any("only 2 of 24" in w.reason for w in res.warnings)


def test_r_style_na_and_times_of_day(tmp_path):
    # R's write.csv writes NA for missing values; a lab export may add the sample time.
    visits = _replace_line(VISITS, "P1,4,,0.7,6,1.0,10,false", "P1,4,NA,0.7,NA,1.0,10,NA")
    visits = _replace_line(visits, "2022-04-04", "2022-04-04 09:30")
    res = ingest.read_cohort(write_cohort(tmp_path / "c", visits=visits))
    assert res.ok, [str(p) for p in res.problems]
    v = res.tables["visits"].set_index(["patient_id", "visit_week"])
    assert pd.isna(v.loc[("P1", 4), "sledai2k"])
    assert pd.isna(v.loc[("P1", 4), "anti_dsdna_positive"])
    assert v.loc[("P3", 4), "pga"] == 1.2  # 2022-04-04 09:30 is day 28 -> week 4
    assert sorted((w.column, w.reason) for w in res.warnings) == [
        ("anti_dsdna_positive", "1 cell(s) like this read as missing"),
        ("sledai2k", "1 cell(s) like this read as missing"),
        ("visit_date", "1 cell(s) like this read as missing"),
    ]
    # In a text column 'NA' stays text: here it is not a valid biopsy class.
    patients = _replace_line(PATIENTS, "P2,T,M,15,2022-02-07,V,", "P2,T,M,15,2022-02-07,NA,")
    res = ingest.read_cohort(write_cohort(tmp_path / "d", patients=patients))
    assert [(p.row, p.column, p.value) for p in res.problems] == [(3, "biopsy_class", "NA")]


def test_unreadable_start_date_reported_once(tmp_path):
    # P3's start date is unreadable: its dated visit is not reported a second time.
    patients = _replace_line(PATIENTS, "P3,T,F,12,2022-03-07,", "P3,T,F,12,07/03/2022,")
    res = ingest.read_cohort(write_cohort(tmp_path / "c", patients=patients))
    assert [(p.file, p.row, p.column) for p in res.problems] == [
        ("patients.csv", 4, "treatment_start_date")
    ]


# --- dates: day/month order (issue 16) --------------------------------------------------------


def _start_dates(tmp_path, name, p1, p2, p3="2022-03-07"):
    patients = PATIENTS.replace("2022-01-10", p1).replace("2022-02-07", p2).replace(
        "2022-03-07", p3)
    # P3's dated visit moves with its start date (4 weeks later), so only the format is tested.
    return write_cohort(tmp_path / name, patients=patients,
                        visits=VISITS.replace("2022-04-04", "2022-04-04"))


def test_day_above_12_proves_day_first_and_says_so(tmp_path):
    res = ingest.read_cohort(_start_dates(tmp_path, "a", "15/01/2022", "07/02/2022"))
    assert res.ok, res.problems
    starts = res.tables["patients"]["treatment_start_date"].dt.strftime("%Y-%m-%d").tolist()
    assert starts == ["2022-01-15", "2022-02-07", "2022-03-07"]
    w = [x for x in res.warnings if x.column == "treatment_start_date"]
    assert [(x.file, x.row, x.value) for x in w] == [("patients.csv", 2, "15/01/2022")]
    assert "read as DD/MM/YYYY: in 15/01/2022 the first number, 15, cannot be a month" in \
        w[0].reason


def test_month_first_proven_by_second_number(tmp_path):
    res = ingest.read_cohort(_start_dates(tmp_path, "b", "01/15/2022", "02/07/2022"))
    assert res.ok, res.problems
    starts = res.tables["patients"]["treatment_start_date"].dt.strftime("%Y-%m-%d").tolist()
    assert starts[:2] == ["2022-01-15", "2022-02-07"]
    assert any("read as MM/DD/YYYY" in x.reason for x in res.warnings)


def test_truly_ambiguous_file_refused_until_a_format_is_given(tmp_path):
    folder = _start_dates(tmp_path, "c", "10/01/2022", "07/02/2022")
    res = ingest.read_cohort(folder)
    assert [(p.row, p.column, p.value) for p in res.problems] == [
        (2, "treatment_start_date", "10/01/2022"), (3, "treatment_start_date", "07/02/2022")]
    assert all("--date-format" in p.reason for p in res.problems)
    dmy = ingest.read_cohort(folder, date_format="DD/MM/YYYY")
    assert dmy.ok and dmy.tables["patients"]["treatment_start_date"].iloc[1] == \
        pd.Timestamp("2022-02-07")
    mdy = ingest.read_cohort(folder, date_format="MM/DD/YYYY")
    assert mdy.ok and mdy.tables["patients"]["treatment_start_date"].iloc[1] == \
        pd.Timestamp("2022-07-02")
    assert not [w for w in dmy.warnings if w.column == "treatment_start_date"]


def test_date_format_problems(tmp_path):
    iso_only = ingest.read_cohort(_start_dates(tmp_path, "d", "15/01/2022", "2022-02-07"),
                                  date_format="YYYY-MM-DD")
    assert [(p.row, p.value) for p in iso_only.problems] == [(2, "15/01/2022")]
    assert "not an ISO date" in iso_only.problems[0].reason
    mixed = ingest.read_cohort(_start_dates(tmp_path, "e", "15/01/2022", "01/15/2022"))
    assert {p.value for p in mixed.problems} == {"15/01/2022", "01/15/2022"}
    assert all("day-first and others that must be month-first" in p.reason
               for p in mixed.problems)
    short = ingest.read_cohort(_start_dates(tmp_path, "f", "15/01/22", "2022-02-07"))
    assert [(p.row, p.value) for p in short.problems] == [(2, "15/01/22")]
    assert "two-digit year" in short.problems[0].reason
    impossible = ingest.read_cohort(_start_dates(tmp_path, "g", "31/02/2022", "15/01/2022"))
    assert [(p.row, p.value) for p in impossible.problems] == [(2, "31/02/2022")]
    assert "not a real calendar date (read as DD/MM/YYYY)" in impossible.problems[0].reason
    bad = ingest.read_cohort(_start_dates(tmp_path, "h", "2022-01-10", "2022-02-07"),
                             date_format="DMY")
    assert [(p.file, p.value) for p in bad.problems] == [("--date-format", "DMY")]


def test_date_format_on_the_command_line(tmp_path, capsys):
    folder = _start_dates(tmp_path, "i", "10/01/2022", "07/02/2022")
    assert cli.main(["validate", str(folder)]) == 2
    assert "ambiguous date" in capsys.readouterr().err
    assert cli.main(["validate", str(folder), "--date-format", "DD/MM/YYYY"]) == 0


def test_unit_columns_are_extra_visit_columns():
    # The per-row unit columns the importer converts by are input columns it keeps (and the
    # mapping offers them as visits targets).
    assert tuple(ingest.UNIT_COLUMNS) == schema.EXTRA_VISIT_COLUMNS[:len(ingest.UNIT_COLUMNS)]
