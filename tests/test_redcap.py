"""REDCap export + data dictionary: events → weeks, checkboxes, coded choices, repeating AEs."""

from __future__ import annotations

import shutil
from pathlib import Path

from lupus_dash import cli, ingest, mapping, redcap

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "redcap"


def test_suggested_mapping_imports_without_edits(tmp_path, capsys):
    map_file = tmp_path / "MAP.toml"
    assert cli.main(["suggest-mapping", str(FIXTURE), "-o", str(map_file)]) == 0
    assert "21 of 21 columns mapped" in capsys.readouterr().err
    m = mapping.load(map_file)
    assert m.redcap["events"] == {"baseline_arm_1": 0, "week_4_arm_1": 4}
    assert m.redcap["ae_instrument"] == "adverse_events"
    to = {(c.table, c.column): c.to for c in m.columns}
    assert to[("patients", "organs___1")] == "organ_kidney"  # checkbox choice 'Kidney'
    assert to[("patients", "organs___3")] == "organ_musculoskeletal"  # 'Joints'
    assert to[("patients", "start_date")] == "treatment_start_date"
    assert to[("patients", "age_start")] == "age_at_baseline_years"
    assert to[("adverse_events", "ae_severity")] == "severity"
    res = ingest.read_cohort(FIXTURE, mapping=map_file)
    assert res.ok, res.problems
    p, v, a = (res.tables[t] for t in ("patients", "visits", "adverse_events"))
    assert p["patient_id"].tolist() == ["101", "102"]
    assert p["cohort"].tolist() == ["LupusBelimumab"] * 2  # the export's project name
    assert p["sex"].tolist() == ["F", "M"]  # radio '1, Female | 2, Male' decoded
    assert p["biopsy_class"].tolist() == ["IV", "IV+V"]  # dropdown label → ISN/RPS class
    assert p["organ_kidney"].tolist() == [True, True]
    assert p["organ_skin"].tolist() == [False, True]
    assert p["organ_musculoskeletal"].tolist() == [True, False]
    assert p["antimalarial"].tolist() == [True, False]
    assert v[["patient_id", "visit_week", "c3_g_l", "sledai2k"]].values.tolist() == [
        ["101", 0, 0.5, 10], ["101", 4, 0.7, 6], ["102", 0, 0.6, 8], ["102", 4, 0.8, 4]]
    assert a[["patient_id", "onset_week", "term", "severity", "serious"]].values.tolist() == [
        ["101", 2, "upper respiratory tract infection", "mild", False],
        ["102", 0, "infusion reaction", "moderate", False],
        ["102", 3, "herpes zoster", "severe", True]]
    db = tmp_path / "r.duckdb"
    assert cli.main(["import", str(FIXTURE), "--mapping", str(map_file), "--db", str(db)]) == 0
    assert "2 patients, 4 visits, 3 adverse events" in capsys.readouterr().out


def _copy(tmp_path) -> Path:
    d = tmp_path / "rc"
    shutil.copytree(FIXTURE, d)
    return d


def test_bad_export_values_are_located(tmp_path):
    d = _copy(tmp_path)
    data = d / "LupusBelimumab_DATA.csv"
    text = data.read_text()
    text = text.replace("101,baseline_arm_1,,,1,14", "101,baseline_arm_1,,,7,14")  # no code 7
    text = text.replace("102,week_4_arm_1,,,,,,,0,0,0,0,,0,0.8",
                        "102,week_8_arm_1,,,,,,,0,0,0,0,,0,0.8")  # event not in the map
    text = text.replace("102,week_4_arm_1,,,,,,,", "102,week_4_arm_1,,,,,,,")
    data.write_text(text)
    m = mapping.suggest(FIXTURE)
    res = ingest.read_cohort(d, mapping=m)
    got = [(p.file, p.row, p.column, p.value) for p in res.problems]
    assert ("LupusBelimumab_DATA.csv", 2, "sex", "7") in got
    assert ("LupusBelimumab_DATA.csv", 6, "redcap_event_name", "week_8_arm_1") in got
    assert any("coded choices" in p.reason and "1, Female | 2, Male" in p.reason
               for p in res.problems)


def test_patient_field_differing_between_events(tmp_path):
    d = _copy(tmp_path)
    data = d / "LupusBelimumab_DATA.csv"
    data.write_text(data.read_text().replace("101,week_4_arm_1,,,,,,,", "101,week_4_arm_1,,,2,,,,"))
    res = ingest.read_cohort(d, mapping=mapping.suggest(FIXTURE))
    assert [(p.row, p.column, p.value) for p in res.problems] == [(3, "sex", "Male")]
    assert "differs between events" in res.problems[0].reason


def test_mapping_naming_a_missing_field(tmp_path):
    m = mapping.suggest(FIXTURE)
    m.columns.append(mapping.ColumnMap("visits", "c4", "c4_g_l"))
    m.path = "MAP.toml"
    res = ingest.read_cohort(FIXTURE, mapping=m)
    assert [(p.file, p.column, p.value) for p in res.problems] == [("MAP.toml", "c4", "c4_g_l")]


def test_helpers():
    assert redcap.parse_choices("1, Yes | 2, No") == {"1": "Yes", "2": "No"}
    assert redcap.parse_choices("0, None | 1, Class I, mesangial") == {
        "0": "None", "1": "Class I, mesangial"}
    assert [redcap.event_week(e) for e in ("baseline_arm_1", "week_12_arm_1", "month_6_arm_1",
                                           "screening_arm_1")] == [0, 12, 24, None]
