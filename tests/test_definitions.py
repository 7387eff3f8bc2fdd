"""The file records which definitions derived it (issue 11): a stale file is said so and
`rederive` rebuilds it; the data version names the content, not the file's mtime."""

import shutil

import duckdb
import pytest

from lupus_dash import cli, definitions, endpoints, synth
from lupus_dash.db import Database


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    path = tmp_path_factory.mktemp("defs") / "demo.duckdb"
    synth.build_demo(path)
    return path


def test_import_writes_the_fingerprint_and_a_content_version(demo, tmp_path):
    db = Database(demo)
    meta = db.meta()
    assert meta["definitions_hash"] == definitions.fingerprint()
    assert db.definitions_warning() is None
    v = db.data_version()
    db.close()
    # The same contents written again (another file, another time) have the same version.
    again = tmp_path / "again.duckdb"
    synth.build_demo(again)
    d2 = Database(again)
    assert d2.data_version() == v
    d2.close()


def test_a_changed_threshold_changes_the_fingerprint(monkeypatch):
    before = definitions.fingerprint()
    p = endpoints.PRESETS["standard"]
    changed = type(p)(**{**p.__dict__, "lldas_pred_max_mg": p.lldas_pred_max_mg + 2.5})
    monkeypatch.setitem(endpoints.PRESETS, "standard", changed)
    definitions.fingerprint.cache_clear()
    try:
        assert definitions.fingerprint() != before
    finally:
        definitions.fingerprint.cache_clear()


def test_a_stale_file_is_said_so_and_rederive_rebuilds_it(demo, tmp_path):
    path = shutil.copy(demo, tmp_path / "stale.duckdb")
    con = duckdb.connect(str(path))
    con.execute("UPDATE meta SET value = 'other' WHERE key = 'definitions_hash'")
    # Pretend the old definitions gave a different LLDAS at one visit.
    con.execute("UPDATE visit_facts SET lldas_standard = NOT lldas_standard "
                "WHERE patient_id = 'CSLE-001' AND visit_week = 52")
    con.close()
    db = Database(path)
    msg = db.definitions_warning()
    db.close()
    assert "other endpoint definitions" in msg and "rederive" in msg
    assert cli.main(["rederive", "--db", str(path)]) == 0
    fixed, orig = Database(path), Database(demo)
    assert fixed.definitions_warning() is None
    q = ("SELECT lldas_standard FROM visit_facts WHERE patient_id = 'CSLE-001' "
         "AND visit_week = 52")
    assert fixed.scalar(q) == orig.scalar(q)
    assert fixed.data_version() == orig.data_version()
    fixed.close()
    orig.close()
