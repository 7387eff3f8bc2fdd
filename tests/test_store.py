"""Atomic DuckDB writes: create / replace / append, crash safety, facts through derive."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from lupus_dash import cli, derive, ingest, schema, store
from lupus_dash.db import Database

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "cohort_external"


@pytest.fixture(scope="module")
def tables() -> dict[str, pd.DataFrame]:
    res = ingest.read_cohort(FIXTURE)
    assert res.ok, res.problems
    return res.tables


@pytest.fixture(scope="module")
def csle_bytes(tables, tmp_path_factory) -> bytes:
    """A database holding cohort cSLE-QD only (written once, copied per test)."""
    db = tmp_path_factory.mktemp("csle") / "csle.duckdb"
    store.write_database(db, only(tables, "cSLE-QD"), source="first")
    return db.read_bytes()


@pytest.fixture()
def csle_db(csle_bytes, tmp_path) -> Path:
    db = tmp_path / "csle.duckdb"
    db.write_bytes(csle_bytes)
    return db


def only(tables: dict[str, pd.DataFrame], cohort: str) -> dict[str, pd.DataFrame]:
    """The tables restricted to one cohort's patients."""
    ids = set(tables["patients"].loc[tables["patients"]["cohort"] == cohort, "patient_id"])
    return {t: df[df["patient_id"].isin(ids)].reset_index(drop=True) for t, df in tables.items()}


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def q(path: Path, sql: str, params=None) -> pd.DataFrame:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(sql, params or []).df()
    finally:
        con.close()


def leftovers(folder: Path) -> list[str]:
    """Temp or lock files a write left behind."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_create_then_read_back(tables, tmp_path):
    db = tmp_path / "c.duckdb"
    summary = store.write_database(db, tables, source="fixture")
    assert (summary["n_cohorts"], summary["patients"], summary["visits"],
            summary["adverse_events"]) == (2, 6, 26, 5)
    d = Database(db)
    try:
        assert d.counts() == {"cohorts": 2, "patients": 6, "visits": 26, "adverse_events": 5}
        assert d.schema_version() == schema.SCHEMA_VERSION
        cohorts = d.cohorts().set_index("cohort")
        # Inferred (derive.infer_schedule): cSLE-QD has week 52 for 2 of 3 patients; LN-adult
        # only for A01 (1 of 3, fewer than 3 patients: an extra visit, named by an import
        # warning), so its final week is 24.
        assert list(cohorts.loc["cSLE-QD", "scheduled_weeks"]) == [0, 4, 12, 24, 52]
        assert list(cohorts.loc["LN-adult", "scheduled_weeks"]) == [0, 4, 12, 24]
        assert cohorts.loc["LN-adult", "final_week"] == 24
        assert cohorts.loc["cSLE-QD", "source"] == "fixture"
        meta = dict(d.query("SELECT key, value FROM meta").itertuples(index=False))
        assert meta["duckdb_version"] == duckdb.__version__
        pf = d.query("SELECT patient_id, completer, n_visits, last_week FROM patient_facts "
                     "ORDER BY patient_id").set_index("patient_id")
        assert pf["completer"].to_dict() == {
            "A01": True, "A02": True, "A03": False, "C01": True, "C02": True, "C03": False
        }
        assert pf.loc["C03", "n_visits"] == 4 and pf.loc["C03", "last_week"] == 24
        v = d.query("SELECT visit_date, c3_g_l, creatinine_umol_l FROM visits "
                    "WHERE patient_id = ? AND visit_week = ?", ["A01", 0])
        assert v["c3_g_l"].iloc[0] == pytest.approx(0.62)  # 62 mg/dL
        assert v["creatinine_umol_l"].iloc[0] == pytest.approx(97.24)  # 1.1 mg/dL x 88.4
        assert str(v["visit_date"].iloc[0])[:10] == "2021-02-22"
        vf = d.query("SELECT cohort, patient_id, visit_week FROM visit_facts")
        assert len(vf) == 26
        assert set(vf.loc[vf["patient_id"] == "C01", "cohort"]) == {"cSLE-QD"}
    finally:
        d.close()
    assert leftovers(tmp_path) == []


def test_facts_are_derive_build_facts(tables, tmp_path):
    db = tmp_path / "f.duckdb"
    schedules = {"cSLE-QD": [0, 4, 12, 24, 52], "LN-adult": [0, 4, 12, 24, 52]}
    store.write_database(db, tables, schedules=schedules)
    cohorts = store._cohorts_frame(schedules)
    pf, vf = derive.build_facts(tables["patients"], tables["visits"], cohorts)
    got = q(db, "SELECT patient_id, completer, lldas_standard, remission_standard, "
                "egfr_ml_min FROM visit_facts JOIN patient_facts USING (patient_id) "
                "ORDER BY patient_id, visit_week")
    want = vf.merge(pf[["patient_id", "completer"]], on="patient_id").sort_values(
        ["patient_id", "visit_week"])
    assert got["lldas_standard"].tolist() == want["lldas_standard"].tolist()
    assert got["remission_standard"].tolist() == want["remission_standard"].tolist()
    assert got["egfr_ml_min"].tolist() == pytest.approx(want["egfr_ml_min"].tolist(),
                                                         nan_ok=True)
    # With 52 as LN-adult's final week, A02 (last visit week 24) is no longer a completer.
    comp = q(db, "SELECT patient_id, completer FROM patient_facts WHERE cohort = ?",
             ["LN-adult"]).set_index("patient_id")["completer"].to_dict()
    assert comp == {"A01": True, "A02": False, "A03": False}
    assert q(db, "SELECT final_week FROM cohorts WHERE cohort = ?", ["LN-adult"]).iloc[0, 0] == 52


def test_create_refuses_a_file_with_cohorts(tables, tmp_path, csle_db):
    db = csle_db
    before = sha(db)
    with pytest.raises(store.StoreError, match="already holds cohort.*--append.*--replace"):
        store.write_database(db, only(tables, "LN-adult"))
    assert sha(db) == before
    assert leftovers(tmp_path) == []


def test_append_adds_cohorts_and_refuses_an_existing_label(tables, tmp_path, csle_db):
    db = csle_db
    first = q(db, "SELECT * FROM cohorts")
    facts_before = q(db, "SELECT * FROM visit_facts ORDER BY patient_id, visit_week")
    summary = store.write_database(db, only(tables, "LN-adult"), mode="append", source="second")
    assert summary["kept"] == ["cSLE-QD"] and summary["written"] == ["LN-adult"]
    assert (summary["patients"], summary["visits"]) == (6, 26)
    cohorts = q(db, "SELECT * FROM cohorts ORDER BY cohort").set_index("cohort")
    # The kept cohort keeps its source, schedule and import time.
    kept = first.set_index("cohort").loc["cSLE-QD"]
    assert cohorts.loc["cSLE-QD", "source"] == "first"
    assert cohorts.loc["cSLE-QD", "imported_at"] == kept["imported_at"]
    assert list(cohorts.loc["cSLE-QD", "scheduled_weeks"]) == list(kept["scheduled_weeks"])
    assert cohorts.loc["LN-adult", "source"] == "second"
    # Its facts are rebuilt from its input tables and come out the same.
    facts_after = q(db, "SELECT * FROM visit_facts WHERE cohort = ? "
                        "ORDER BY patient_id, visit_week", ["cSLE-QD"])
    pd.testing.assert_frame_equal(facts_after, facts_before)
    before = sha(db)
    with pytest.raises(store.StoreError, match="LN-adult already exists.*--replace"):
        store.write_database(db, only(tables, "LN-adult"), mode="append")
    assert sha(db) == before
    assert leftovers(tmp_path) == []


def test_replace_replaces_same_label_and_keeps_others(tables, tmp_path):
    db = tmp_path / "r.duckdb"
    store.write_database(db, tables)
    ln_before = q(db, "SELECT * FROM visits WHERE patient_id LIKE 'A%' "
                      "ORDER BY patient_id, visit_week")
    new = only(tables, "cSLE-QD")
    new["patients"] = new["patients"][new["patients"]["patient_id"] != "C03"]
    new["visits"] = new["visits"][new["visits"]["patient_id"] != "C03"].copy()
    new["adverse_events"] = new["adverse_events"][new["adverse_events"]["patient_id"] != "C03"]
    new["visits"].loc[new["visits"]["patient_id"] == "C01", "pga"] = 0.25
    summary = store.write_database(db, new, mode="replace")
    assert summary["replaced"] == ["cSLE-QD"] and summary["kept"] == ["LN-adult"]
    assert (summary["patients"], summary["visits"], summary["adverse_events"]) == (5, 22, 4)
    assert q(db, "SELECT n_patients FROM cohorts WHERE cohort = ?", ["cSLE-QD"]).iloc[0, 0] == 2
    assert set(q(db, "SELECT pga FROM visit_facts WHERE patient_id = 'C01'")["pga"]) == {0.25}
    assert q(db, "SELECT count(*) FROM visit_facts WHERE patient_id = 'C03'").iloc[0, 0] == 0
    ln_after = q(db, "SELECT * FROM visits WHERE patient_id LIKE 'A%' "
                     "ORDER BY patient_id, visit_week")
    pd.testing.assert_frame_equal(ln_after, ln_before)


def test_patient_ids_must_be_unique_across_cohorts(tables, tmp_path, csle_db):
    db = csle_db
    before = sha(db)
    other = only(tables, "cSLE-QD")
    other["patients"] = other["patients"].assign(cohort="copy")
    with pytest.raises(store.StoreError, match=r"C01 \(cohorts"):
        store.write_database(db, other, mode="append")
    assert sha(db) == before
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("where", ["build_facts", "os_replace", "insert"])
def test_failure_mid_import_leaves_the_old_file(where, tables, tmp_path, monkeypatch, csle_db):
    db = csle_db
    before = sha(db)
    monkeypatch.setattr(store, "CHUNK_PATIENTS", 2)  # two patients per chunk: several steps
    calls = {"n": 0}

    def boom(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:  # after the first chunk is already in the temp file
            raise RuntimeError("simulated failure")
        return real(*args, **kwargs)

    if where == "build_facts":
        real = derive.build_facts
        monkeypatch.setattr(derive, "build_facts", boom)
    elif where == "insert":
        real = store._insert
        monkeypatch.setattr(store, "_insert", boom)
    else:
        real = None

        def boom(*args, **kwargs):  # the rename itself fails
            raise OSError("simulated rename failure")

        monkeypatch.setattr(store.os, "replace", boom)
    with pytest.raises((RuntimeError, OSError), match="simulated"):
        store.write_database(db, only(tables, "LN-adult"), mode="append")
    assert sha(db) == before
    assert leftovers(tmp_path) == []


def test_hard_crash_mid_import_then_stale_temp_is_cleaned(tables, tmp_path, csle_db):
    db = csle_db
    before = sha(db)
    script = textwrap.dedent(f"""
        import os
        from lupus_dash import derive, ingest, store
        res = ingest.read_cohort({str(FIXTURE)!r})
        store.CHUNK_PATIENTS = 2
        real = derive.build_facts
        n = [0]
        def crash(*a, **k):
            n[0] += 1
            if n[0] == 2:
                os._exit(9)  # killed mid-import: no cleanup runs
            return real(*a, **k)
        derive.build_facts = crash
        store.write_database({str(db)!r}, res.tables, mode="replace")
    """)
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, check=False,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 9, proc.stderr
    assert sha(db) == before
    assert leftovers(tmp_path)  # the dead process's temp file
    store.write_database(db, tables, mode="replace")
    assert leftovers(tmp_path) == []
    assert q(db, "SELECT count(*) FROM patients").iloc[0, 0] == 6


def test_refuses_to_overwrite_a_foreign_file(tables, tmp_path):
    other = tmp_path / "notes.duckdb"
    other.write_text("not a database\n")
    before = sha(other)
    with pytest.raises(store.StoreError, match="refusing to overwrite"):
        store.write_database(other, tables, mode="replace")
    assert sha(other) == before
    foreign = tmp_path / "foreign.duckdb"
    con = duckdb.connect(str(foreign))
    con.execute("CREATE TABLE t (x INTEGER)")
    con.close()
    before = sha(foreign)
    with pytest.raises(store.StoreError, match="not a lupus-dash database"):
        store.write_database(foreign, tables)
    assert sha(foreign) == before
    empty = tmp_path / "empty.duckdb"
    empty.write_bytes(b"")
    assert store.write_database(empty, tables)["patients"] == 6


def test_chunked_write_equals_single_write(tables, tmp_path):
    one, many = tmp_path / "one.duckdb", tmp_path / "many.duckdb"
    schedules = {"cSLE-QD": [0, 4, 12, 24, 52], "LN-adult": [0, 4, 12, 24]}
    store.write_database(one, tables, schedules=schedules)
    ids = tables["patients"]["patient_id"].tolist()
    chunks = (
        {t: df[df["patient_id"].isin(ids[i:i + 3])] for t, df in tables.items()}
        for i in range(0, len(ids), 3)
    )
    summary = store.write_database_chunks(many, chunks, schedules=schedules)
    assert (summary["patients"], summary["visits"]) == (6, 26)
    for t in ("patients", "visits", "adverse_events", "patient_facts", "visit_facts"):
        order = "patient_id" + (", visit_week" if "visit" in t else "")
        if t == "adverse_events":
            order = "patient_id, onset_week"
        pd.testing.assert_frame_equal(q(many, f"SELECT * FROM {t} ORDER BY {order}"),
                                      q(one, f"SELECT * FROM {t} ORDER BY {order}"))
    pd.testing.assert_frame_equal(
        q(many, "SELECT cohort, scheduled_weeks, final_week, n_patients FROM cohorts "
                "ORDER BY cohort"),
        q(one, "SELECT cohort, scheduled_weeks, final_week, n_patients FROM cohorts "
               "ORDER BY cohort"),
    )


def test_cli_modes(tmp_path, capsys):
    db = tmp_path / "cli.duckdb"
    assert cli.main(["import", str(FIXTURE), "--db", str(db)]) == 0
    before = sha(db)
    assert cli.main(["import", str(FIXTURE), "--db", str(db)]) == 2
    assert cli.main(["import", str(FIXTURE), "--db", str(db), "--append"]) == 2
    err = capsys.readouterr().err
    assert "already exists" in err and "unchanged" in err and "Traceback" not in err
    assert sha(db) == before
    assert cli.main(["import", str(FIXTURE), "--db", str(db), "--replace",
                     "--schedule", "0,4,12,24,52"]) == 0
    assert "database now holds 2 cohorts, 6 patients" in capsys.readouterr().out
    assert q(db, "SELECT final_week FROM cohorts WHERE cohort = 'LN-adult'").iloc[0, 0] == 52
    missing = cli.main(["import", str(FIXTURE), "--db", str(tmp_path / "no" / "x.duckdb")])
    assert missing == 2
    assert "does not exist" in capsys.readouterr().err


def test_second_writer_is_refused_while_one_runs(tables, csle_db):
    fcntl = pytest.importorskip("fcntl")
    before = sha(csle_db)
    fd = os.open(csle_db.parent / f".{csle_db.name}.lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # as a running import holds it
        with pytest.raises(store.StoreError, match="another import"):
            store.write_database(csle_db, only(tables, "LN-adult"), mode="append")
    finally:
        os.close(fd)
    assert sha(csle_db) == before
    assert store.write_database(csle_db, only(tables, "LN-adult"), mode="append")["n_cohorts"] == 2
    assert leftovers(csle_db.parent) == []


def test_data_version_is_the_digest_files_already_carry(csle_db):
    # Files written before carry a data_version; computing it again must give the same
    # string (the reference below is the formula those files were written with).
    con = duckdb.connect(str(csle_db), read_only=True)
    try:
        stored = con.execute("SELECT value FROM meta WHERE key = 'data_version'").fetchone()[0]
        parts = [str(con.execute(f'SELECT count(*), bit_xor(hash(t)) FROM "{t}" t').fetchone())
                 for t in (*store.INPUT_TABLES, "cohorts")]
        parts[-1] = str(con.execute(
            "SELECT bit_xor(hash(cohort, scheduled_weeks, final_week, n_patients)) FROM cohorts"
        ).fetchone())
        reference = hashlib.sha256("|".join(parts).encode()).hexdigest()[:12]
        assert store._content_version(con) == stored == reference
    finally:
        con.close()
