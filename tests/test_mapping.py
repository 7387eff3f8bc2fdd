"""Column mapping: a clinician's spreadsheet imports through a suggested-then-edited MAP.toml."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from lupus_dash import cli, ingest, mapping

ROOT = Path(__file__).resolve().parents[1]
MESSY = ROOT / "tests" / "fixtures" / "messy_spreadsheet"
CLEAN = ROOT / "tests" / "fixtures" / "messy_clean"


def _content(db: Path) -> dict[str, pd.DataFrame]:
    """Every table of a lupus-dash file, ordered, without the import's time and source."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        out = {}
        for t in ("patients", "visits", "adverse_events", "patient_facts", "visit_facts"):
            df = con.execute(f'SELECT * FROM "{t}"').df()
            out[t] = df.sort_values(list(df.columns[:2])).reset_index(drop=True)
        out["cohorts"] = con.execute(
            "SELECT cohort, scheduled_weeks, final_week, n_patients FROM cohorts").df()
        return out
    finally:
        con.close()


def _edit_sex(path: Path) -> None:
    """The one edit a user makes: say which code is which sex (1/2 is not guessed)."""
    m = mapping.load(path)
    sex = [c for c in m.columns if c.to == "sex"]
    assert len(sex) == 1 and sex[0].confidence < mapping.CONFIDENT
    assert "values to map by hand: 1, 2" in sex[0].note
    sex[0].values = {"1": "F", "2": "M"}
    mapping.save(m, path)


def test_suggested_then_edited_mapping_equals_clean_twin(tmp_path, capsys):
    map_file = tmp_path / "MAP.toml"
    assert cli.main(["suggest-mapping", str(MESSY), "-o", str(map_file)]) == 0
    err = capsys.readouterr().err
    assert "32 of 33 columns mapped; 1 to check" in err
    assert "ignored visits: 'Blood pressure'" in err
    m = mapping.load(map_file)
    got = {(c.table, c.column): (c.to, c.unit) for c in m.columns}
    # Headers as clinicians write them (units in brackets, German words, a drug for a class,
    # an organ's adjective, a classification's name, 'start of treatment', 'stopped').
    assert got[("patients", "Geschlecht")] == ("sex", None)
    assert got[("patients", "Start of treatment")] == ("treatment_start_date", None)
    assert got[("patients", "ISN/RPS class")] == ("biopsy_class", None)
    assert got[("patients", "HCQ")] == ("antimalarial", None)
    assert got[("patients", "Renal involvement (Y/N)")] == ("organ_kidney", None)
    assert got[("patients", "Height (m)")] == ("height_cm", "m")
    assert got[("patients", "Stopped at week")] == ("discontinued_week", None)
    assert got[("visits", "C3 (mg/dL)")] == ("c3_g_l", "mg/dL")
    assert got[("visits", "24h proteinuria (mg/day)")] == ("urine_protein_g_24h", "mg/day")
    assert got[("visits", "Pred dose (mg/d)")] == ("prednisone_mg_day", "mg/day")
    assert got[("visits", "Albumin (g/dL)")] == ("albumin_g_l", "g/dL")
    assert got[("visits", "anti-dsDNA positive")] == ("anti_dsdna_positive", None)
    assert got[("visits", "Anti-dsDNA (IU/mL)")] == ("anti_dsdna_iu_ml", "IU/mL")
    assert got[("visits", "Blood pressure")] == ("", None)
    assert m.date_format == "DD/MM/YYYY"
    values = {c.column: c.values for c in m.columns if c.table == "patients"}
    assert values["Background therapy"] == {"Mycophenolate mofetil": "MMF",
                                            "cyclophosphamide then MMF": "MMF after CYC"}
    assert values["ISN/RPS class"] == {"Class IV-G (A)": "IV", "class 5": "V"}
    assert values["HCQ"] == {"ja": "true", "nein": "false"}

    _edit_sex(map_file)
    messy_db, clean_db = tmp_path / "messy.duckdb", tmp_path / "clean.duckdb"
    assert cli.main(["import", str(MESSY), "--mapping", str(map_file), "--db",
                     str(messy_db)]) == 0
    assert cli.main(["import", str(CLEAN), "--db", str(clean_db)]) == 0
    a, b = _content(messy_db), _content(clean_db)
    for t in a:
        pd.testing.assert_frame_equal(a[t], b[t], check_exact=True, obj=t)
    assert len(a["visits"]) == 6 and a["visits"]["creatinine_umol_l"].tolist()[0] == 53.04


def test_unedited_mapping_refuses_coded_sex(tmp_path):
    m = mapping.suggest(MESSY)
    res = ingest.read_cohort(MESSY, mapping=m)
    assert [(p.file, p.row, p.column, p.value) for p in res.problems] == [
        ("baseline.csv", 2, "Geschlecht → sex", "1"),
        ("baseline.csv", 3, "Geschlecht → sex", "2"),
        ("baseline.csv", 4, "Geschlecht → sex", "1"),
    ]
    assert all("not one of F, M" in p.reason for p in res.problems)


def test_mapping_naming_a_missing_column_is_located(tmp_path):
    m = mapping.suggest(MESSY)
    for c in m.columns:
        if c.to == "sex":
            c.values = {"1": "F", "2": "M"}
    m.columns.append(mapping.ColumnMap("visits", "C3c [g/L]", "c3_g_l"))
    m.path = "MAP.toml"
    res = ingest.read_cohort(MESSY, mapping=m)
    assert [(p.file, p.row, p.column, p.value) for p in res.problems] == [
        ("MAP.toml", None, "C3c [g/L]", "c3_g_l")]
    assert "which the file does not have" in res.problems[0].reason
    assert "C3 (mg/dL)" in res.problems[0].reason  # lists the columns it does have


def test_mapping_unit_that_cannot_convert_is_located(tmp_path):
    m = mapping.suggest(MESSY)
    for c in m.columns:
        if c.to == "sex":
            c.values = {"1": "F", "2": "M"}
        if c.to == "anti_dsdna_iu_ml":
            c.unit = "U/mL"  # a kit's arbitrary units are not WHO IU/mL
    m.path = "MAP.toml"
    res = ingest.read_cohort(MESSY, mapping=m)
    assert [(p.file, p.column, p.value) for p in res.problems] == [
        ("MAP.toml", "Anti-dsDNA (IU/mL)", "U/mL")]
    assert "cannot be converted to anti_dsdna_iu_ml (IU/mL)" in res.problems[0].reason


def test_mapping_file_errors(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[[columns]]\ntable = "vists"\ncolumn = "C3"\nto = "c3_g_l"\n')
    res = ingest.read_cohort(MESSY, mapping=bad)
    assert len(res.problems) == 1 and "table 'vists' is not one of" in res.problems[0].reason
    bad.write_text("this is = = not toml")
    res = ingest.read_cohort(MESSY, mapping=bad)
    assert "not valid TOML" in res.problems[0].reason
    m = mapping.Mapping(columns=[mapping.ColumnMap("visits", "Week", "visit_wk")],
                        files={"patients": "baseline.csv", "visits": "followup.csv"})
    res = ingest.read_cohort(MESSY, mapping=m)
    assert ("Week", "visit_wk") in [(p.column, p.value) for p in res.problems]


def test_mapping_round_trips_through_toml():
    m = mapping.suggest(MESSY)
    back = mapping.loads(mapping.dumps(m))
    assert [(c.table, c.column, c.to, c.unit, c.values) for c in back.columns] == \
        [(c.table, c.column, c.to, c.unit, c.values) for c in m.columns]
    assert back.files == m.files and back.date_format == m.date_format


def test_out_of_range_after_conversion_names_header_and_unit(tmp_path):
    d = tmp_path / "m"
    shutil.copytree(MESSY, d)
    text = (d / "followup.csv").read_text().replace("P1;4;62;", "P1;4;620;")
    (d / "followup.csv").write_text(text)
    m = mapping.suggest(d)
    for c in m.columns:
        if c.to == "sex":
            c.values = {"1": "F", "2": "M"}
    res = ingest.read_cohort(d, mapping=m)
    assert [(p.file, p.row, p.column, p.value) for p in res.problems] == [
        ("followup.csv", 3, "C3 (mg/dL) → c3_g_l", "620")]
    assert "read as mg/dL, converted ÷ 100 to 6.2 g/L" in res.problems[0].reason


@pytest.mark.parametrize(
    ("header", "samples", "to", "unit"),
    [
        ("C3 (g/L)", [], "c3_g_l", "g/L"),
        ("Complement 3", [], "c3_g_l", None),
        ("C3c", [], "c3_g_l", None),
        ("C4 [mg/dl]", [], "c4_g_l", "mg/dL"),
        ("24h proteinuria", [], "urine_protein_g_24h", None),
        ("Proteinuria (g/24h)", [], "urine_protein_g_24h", "g/day"),
        ("UPCR (mg/mmol)", [], "upcr_g_g", "mg/mmol"),
        ("uPCR (mg/g)", [], "upcr_g_g", "mg/g"),
        ("CD19+ B cells (%)", [], "cd19_pct", "%"),
        ("Anti-dsDNA", ["pos", "neg"], "anti_dsdna_positive", None),
        ("anti-dsDNA", ["12", "300"], "anti_dsdna_iu_ml", None),
        ("Pred", [], "prednisone_mg_day", None),
        ("Prednisolone (mg/day)", [], "prednisone_mg_day", "mg/day"),
        ("Methylprednisolone (mg)", [], "prednisone_mg_day", "mg/day methylprednisolone"),
        ("SLEDAI-2K", [], "sledai2k", None),
        ("Physician Global Assessment", [], "pga", None),
        ("Kreatinin (µmol/l)", [], "creatinine_umol_l", "µmol/L"),
        ("Serum creatinine, mg/dL", [], "creatinine_umol_l", "mg/dL"),
        ("eGFR (CKD-EPI)", [], "egfr_ml_min", None),
        ("Datum", [], "visit_date", None),
        ("Woche", [], "visit_week", None),
    ],
)
def test_visit_headers(header, samples, to, unit):
    g = mapping.match_header("visits", header, samples)
    assert (g.to, g.unit) == (to, unit) and g.confidence >= mapping.CONFIDENT


@pytest.mark.parametrize(
    ("header", "to"),
    [
        ("Patient ID", "patient_id"), ("Subject", "patient_id"), ("Gender", "sex"),
        ("Age at diagnosis", "age_at_onset_years"), ("Age at start of treatment",
                                                     "age_at_baseline_years"),
        ("Disease duration (years)", "disease_duration_months"),
        ("Start of treatment", "treatment_start_date"), ("Date of first infusion",
                                                         "treatment_start_date"),
        ("Lupus nephritis class", "biopsy_class"), ("WHO class", "biopsy_class"),
        ("Background immunosuppression", "immunosuppressant"), ("Hydroxychloroquine",
                                                               "antimalarial"),
        ("Neuropsychiatric", "organ_cns"), ("Haematological involvement", "organ_blood"),
        ("Cutaneous", "organ_skin"), ("Cardiac", "organ_cardiovascular"),
        ("Arthritis", "organ_musculoskeletal"), ("Renal", "organ_kidney"),
        ("ANA", "ana_positive"), ("Stopped", "discontinued_week"),
        ("Reason for stopping", "discontinuation_reason"), ("MMF", "immunosuppressant"),
    ],
)
def test_patient_headers(header, to):
    assert mapping.match_header("patients", header).to == to


@pytest.mark.parametrize("header", ["Blood pressure", "Comments", "Height of flare", "BMI"])
def test_headers_that_are_not_contract_columns(header):
    assert mapping.looks_like("visits", header) is None


def test_value_maps():
    assert mapping.value_map("sex", ["female", "Female", "w", "männlich", "F", "1"]) == (
        {"female": "F", "Female": "F", "w": "F", "männlich": "M"}, ["1"])
    assert mapping.immunosuppressant_value("Mycophenolate mofetil + tacrolimus") == "MMF+TAC"
    assert mapping.immunosuppressant_value("MMF after cyclophosphamide") == "MMF after CYC"
    assert mapping.immunosuppressant_value("Azathioprine") == "AZA"
    assert mapping.biopsy_class_value("IV-S (A/C)") == "IV"
    assert mapping.biopsy_class_value("III + V") == "III+V"
    assert mapping.biopsy_class_value("Class 4/5") == "IV+V"
    assert mapping.biopsy_class_value("not done") is None
    assert mapping.value_map("severity", ["Grade 3", "2"])[0] == {"Grade 3": "severe",
                                                                  "2": "moderate"}


def test_unit_factors():
    # CLINICAL_DEFINITIONS.md §8: complement 1 g/L = 100 mg/dL; creatinine mg/dL × 88.4.
    assert mapping.unit_factor("c3_g_l", "mg/dl") == 0.01
    assert mapping.unit_factor("creatinine_umol_l", "mg/dL") == 88.4
    # KDIGO 2012: 30 mg/mmol ≈ 0.3 g/g (creatinine 113.12 g/mol).
    assert 30 * mapping.unit_factor("upcr_g_g", "mg/mmol") == pytest.approx(0.2652, abs=1e-4)
    assert mapping.unit_factor("anti_dsdna_iu_ml", "U/mL") is None
    assert mapping.unit_factor("height_cm", "m") == 100.0


def test_workbook_with_its_own_sheet_names(tmp_path):
    # The same spreadsheet as one .xlsx (sheets 'Baseline', 'Follow-up', 'Adverse events';
    # numbers typed as text with decimal commas, as clinics' workbooks often hold them).
    book = tmp_path / "Lupus cohort.xlsx"
    with pd.ExcelWriter(book) as w:
        for name, sheet in (("baseline.csv", "Baseline"), ("followup.csv", "Follow-up"),
                            ("AE.csv", "Adverse events")):
            pd.read_csv(MESSY / name, sep=";", dtype=str).to_excel(w, sheet_name=sheet,
                                                                    index=False)
    m = mapping.suggest(book)
    assert m.files == {"patients": "Lupus cohort.xlsx[Baseline]",
                       "visits": "Lupus cohort.xlsx[Follow-up]",
                       "adverse_events": "Lupus cohort.xlsx[Adverse events]"}
    assert m.decimal_comma is True and m.date_format == "DD/MM/YYYY"
    for c in m.columns:
        if c.to == "sex":
            c.values = {"1": "F", "2": "M"}
    got = ingest.read_cohort(book, mapping=m)
    want = ingest.read_cohort(CLEAN)
    assert got.ok, got.problems
    for t in ("patients", "visits", "adverse_events"):
        pd.testing.assert_frame_equal(got.tables[t].reset_index(drop=True),
                                      want.tables[t].reset_index(drop=True), check_exact=True)


def test_corrupt_workbook_is_a_located_problem(tmp_path, capsys):
    # A corrupt .xlsx beside the files: suggest leaves it out and says so (it raised before).
    folder = tmp_path / "f"
    shutil.copytree(MESSY, folder)
    book = folder / "old export.xlsx"
    book.write_bytes(b"PK\x03\x04 not a workbook")
    sink = ingest._Sink()
    assert mapping.suggest(folder, sink) == mapping.suggest(MESSY)
    assert [(p.file, p.row, p.reason.split(":")[0]) for p in sink.problems] == [
        ("old export.xlsx", None, "not a readable .xlsx workbook")]
    assert mapping.suggest(book).columns == []
    assert cli.main(["suggest-mapping", str(folder)]) == 2
    assert "error: old export.xlsx: not a readable .xlsx workbook" in capsys.readouterr().err
    res = ingest.read_cohort(book)
    assert [(p.file, p.reason.split(":")[0]) for p in res.problems] == [
        ("old export.xlsx", "not a readable .xlsx workbook")]
