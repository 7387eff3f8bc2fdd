"""Long-format laboratory results: LOINC codes or local names, units, dates → visits."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from lupus_dash import cli, ingest, labs

PATIENTS = """patient_id,cohort,sex,treatment_start_date
P1,L,F,2022-01-10
P2,L,M,2022-02-07
"""
VISITS = """patient_id,visit_week,sledai2k,pga,prednisone_mg_day
P1,0,10,2,20
P1,4,6,1,10
P2,0,8,1.5,15
P2,4,4,0.5,7.5
"""
# Rows 2..: dates at day 0 / day 27 (week 4 window 21-35) and day -3 (baseline window).
LABS = """patient_id,date,loinc,test,value,unit
P1,2022-01-10,4485-9,Complement C3,45,mg/dL
P1,2022-01-10,4498-2,C4,0.08,g/L
P1,2022-01-10,2160-0,Creatinine,0.6,mg/dL
P1,2022-02-06,4485-9,Complement C3,62,mg/dL
P1,2022-02-06,2890-2,UPCR,30,mg/mmol
P2,2022-02-04,,Komplement C3,0.55,g/l
P2,2022-02-04,33799-8,dsDNA IgG,95,IU/mL
P2,2022-02-04,1751-7,Albumin,4.1,g/dL
P2,2022-03-07,14682-9,Kreatinin,61.88,µmol/L
P2,2022-03-07,2889-4,24h protein,350,mg/24h
"""
CLEAN_VISITS = """patient_id,visit_week,sledai2k,pga,prednisone_mg_day,c3_g_l,c4_g_l,creatinine_umol_l,upcr_g_g,anti_dsdna_iu_ml,albumin_g_l,urine_protein_g_24h
P1,0,10,2,20,0.45,0.08,53.04,,,,
P1,4,6,1,10,0.62,,,0.2652051,,,
P2,0,8,1.5,15,0.55,,,,95,41,
P2,4,4,0.5,7.5,,,61.88,,,,0.35
"""


def _write(folder: Path, **files) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        if text is not None:
            (folder / f"{name}.csv").write_text(text, encoding="utf-8")
    return folder


def test_long_labs_fill_visits_like_a_wide_file(tmp_path):
    res = ingest.read_cohort(_write(tmp_path / "l", patients=PATIENTS, visits=VISITS,
                                    labs=LABS))
    assert res.ok, res.problems
    clean = ingest.read_cohort(_write(tmp_path / "c", patients=PATIENTS, visits=CLEAN_VISITS))
    assert clean.ok, clean.problems
    got = res.tables["visits"].reset_index(drop=True)
    want = clean.tables["visits"].reset_index(drop=True)
    # UPCR: 30 mg/mmol ÷ 113.12 mg creatinine per mmol (the clean twin rounds to 7 digits).
    assert got["upcr_g_g"].iloc[1] == pytest.approx(30 / 113.12, rel=1e-12)
    got["upcr_g_g"] = got["upcr_g_g"].round(7)
    pd.testing.assert_frame_equal(got, want, check_exact=True)


def test_labs_alone_make_the_visits(tmp_path):
    res = ingest.read_cohort(_write(tmp_path / "l", patients=PATIENTS, labs=LABS))
    assert res.ok, res.problems
    v = res.tables["visits"]
    assert v[["patient_id", "visit_week"]].values.tolist() == [
        ["P1", 0], ["P1", 4], ["P2", 0], ["P2", 4]]
    assert v["c3_g_l"].tolist()[:3] == [0.45, 0.62, 0.55]


def test_unknown_test_is_located(tmp_path):
    bad = LABS.replace("P1,2022-01-10,4498-2,C4,0.08,g/L", "P1,2022-01-10,9999-9,Ferritin,80,ng/mL")
    res = ingest.read_cohort(_write(tmp_path / "l", patients=PATIENTS, visits=VISITS, labs=bad))
    assert [(p.file, p.row, p.column, p.value) for p in res.problems] == [
        ("labs.csv", 3, "loinc", "9999-9")]
    assert "unknown test" in res.problems[0].reason and "[labs.codes]" in res.problems[0].reason


def test_unit_that_cannot_convert_is_located(tmp_path):
    bad = LABS.replace("33799-8,dsDNA IgG,95,IU/mL", "33799-8,dsDNA IgG,95,U/mL")
    res = ingest.read_cohort(_write(tmp_path / "l", patients=PATIENTS, visits=VISITS, labs=bad))
    assert [(p.file, p.row, p.column, p.value) for p in res.problems] == [
        ("labs.csv", 8, "unit", "U/mL")]
    assert "cannot be converted to anti_dsdna_iu_ml (IU/mL)" in res.problems[0].reason


def test_titre_code_is_refused(tmp_path):
    bad = LABS.replace("33799-8,dsDNA IgG,95,IU/mL", "11013-0,dsDNA titre,160,")
    res = ingest.read_cohort(_write(tmp_path / "l", patients=PATIENTS, visits=VISITS, labs=bad))
    assert [(p.row, p.value) for p in res.problems] == [(8, "11013-0")]
    assert "a titre is not IU/mL" in res.problems[0].reason


def test_two_results_for_one_visit_name_both_rows(tmp_path):
    # Day 0 and day 3 are both in the baseline window: two C3 results for P1's week 0.
    dup = LABS + "P1,2022-01-13,4485-9,Complement C3,47,mg/dL\n"
    res = ingest.read_cohort(_write(tmp_path / "l", patients=PATIENTS, visits=VISITS, labs=dup))
    assert [(p.file, p.row, p.column, p.value) for p in res.problems] == [
        ("labs.csv", 12, "value", "47")]
    r = res.problems[0].reason
    assert "two results for patient P1, week 0, c3_g_l: rows 2" in r and "and 12" in r


def test_result_in_both_files_is_an_error(tmp_path):
    visits = VISITS.replace("P1,0,10,2,20", "P1,0,10,2,20").replace(
        "patient_id,visit_week,sledai2k,pga,prednisone_mg_day",
        "patient_id,visit_week,sledai2k,pga,prednisone_mg_day,c3_g_l")
    visits = visits.replace("P1,0,10,2,20\n", "P1,0,10,2,20,0.5\n").replace(
        "P1,4,6,1,10\n", "P1,4,6,1,10,\n").replace("P2,0,8,1.5,15\n", "P2,0,8,1.5,15,\n") \
        .replace("P2,4,4,0.5,7.5\n", "P2,4,4,0.5,7.5,\n")
    res = ingest.read_cohort(_write(tmp_path / "l", patients=PATIENTS, visits=visits,
                                    labs=LABS))
    assert [(p.file, p.row, p.column) for p in res.problems] == [("labs.csv", 2, "c3_g_l")]
    assert "visits.csv row 2 already gives c3_g_l" in res.problems[0].reason


def test_out_of_range_and_undated(tmp_path):
    bad = LABS.replace("P1,2022-02-06,4485-9,Complement C3,62,mg/dL",
                       "P1,2022-02-06,4485-9,Complement C3,620,mg/dL").replace(
        "P2,2022-03-07,2889-4", "P2,2021-03-07,2889-4")
    res = ingest.read_cohort(_write(tmp_path / "l", patients=PATIENTS, visits=VISITS, labs=bad))
    got = [(p.row, p.column, p.value) for p in res.problems]
    assert got == [(5, "value", "620"), (11, "date", "2021-03-07")]
    assert "converted to 6.2 g/L" in res.problems[0].reason
    assert "fits no visit window" in res.problems[1].reason


def test_mapping_names_local_codes(tmp_path):
    text = LABS.replace("4498-2,C4", "LC44,Comp-4")
    folder = _write(tmp_path / "l", patients=PATIENTS, visits=VISITS, labs=text)
    res = ingest.read_cohort(folder)
    assert [(p.row, p.value) for p in res.problems] == [(3, "LC44")]
    (folder / "MAP.toml").write_text('[labs.codes]\n"LC44" = "c4_g_l"\n')
    res = ingest.read_cohort(folder, mapping=folder / "MAP.toml")
    assert res.ok, res.problems
    assert res.tables["visits"]["c4_g_l"].iloc[0] == 0.08


def test_labs_on_a_workbook_sheet_as_suggested(tmp_path):
    # suggest names a long-format sheet as book.xlsx[Sheet]; the import reads that sheet.
    import datetime as dt

    import openpyxl

    from lupus_dash import mapping

    folder = _write(tmp_path / "x", patients=PATIENTS, visits=VISITS)
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Lab results"
    lines = LABS.splitlines()
    ws.append(lines[0].split(","))
    for line in lines[1:]:
        pid, date, code, test, value, unit = line.split(",")
        ws.append([pid, dt.datetime.fromisoformat(date), code or None, test, float(value),
                   unit])
    wb.save(folder / "book.xlsx")
    m = mapping.suggest(folder)
    assert m.files["labs"] == "book.xlsx[Lab results]"
    res = ingest.read_cohort(folder, mapping=m)
    assert res.ok, res.problems
    want = ingest.read_cohort(_write(tmp_path / "c", patients=PATIENTS, visits=VISITS,
                                     labs=LABS))
    pd.testing.assert_frame_equal(res.tables["visits"], want.tables["visits"],
                                  check_exact=True)


def test_cli_and_suggest(tmp_path, capsys):
    folder = _write(tmp_path / "l", patients=PATIENTS, visits=VISITS, labs=LABS)
    assert cli.main(["import", str(folder), "--db", str(tmp_path / "x.duckdb")]) == 0
    assert "2 patients, 4 visits" in capsys.readouterr().out
    assert labs.is_long_format(["Patient", "Date", "LOINC", "Result", "Unit"])
    assert not labs.is_long_format(["patient_id", "visit_week", "c3_g_l"])


def test_loinc_code_lists():
    # The codes the issue names, each under its measure.
    want = {"4485-9": "c3_g_l", "4498-2": "c4_g_l", "2889-4": "urine_protein_g_24h",
            "2890-2": "upcr_g_g", "8117-4": "cd19_pct", "5130-0": "anti_dsdna_iu_ml",
            "2160-0": "creatinine_umol_l", "14682-9": "creatinine_umol_l",
            "1751-7": "albumin_g_l"}
    assert {k: labs.CODE_TO_MEASURE[k] for k in want} == want
