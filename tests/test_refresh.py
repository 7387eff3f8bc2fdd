"""Hardened read access and refresh under load (lupus_dash.db.DataStore, versioned files).

8 threads run page queries (the Overview's count, Table 1, remission, biomarker
summary, a cursor query) while the data are refreshed 10 times: no error, and
every page run's answers come from one version.
"""

import os
import threading
import time

import duckdb
import pytest

from lupus_dash import store, synth
from lupus_dash.analyses import biomarkers, cohort, common, remission
from lupus_dash.db import (
    Database,
    DatabaseError,
    DataRefreshed,
    DataStore,
    is_versioned,
    prune_versions,
    versions_dir,
)
from lupus_dash.filters import Filter

COHORT = "csle_belimumab"


@pytest.fixture(scope="module")
def tables():
    return synth.demo_tables()


def subset(tables, drop: int) -> dict:
    """The demo without the first `drop` patients of the cSLE cohort (a distinct version)."""
    p = tables["patients"]
    ids = list(p.loc[p["cohort"] == COHORT, "patient_id"])[:drop]
    return {k: v[~v["patient_id"].isin(ids)].reset_index(drop=True) for k, v in tables.items()}


def n_csle(tables) -> int:
    return int((tables["patients"]["cohort"] == COHORT).sum())


def write(path, tabs, versioned=True):
    return store.write_database(path, tabs, mode="replace", schedules=synth.SCHEDULES,
                                versioned=versioned)


# --- hardened connections ------------------------------------------------------------------


@pytest.mark.parametrize("sql", [
    "SELECT * FROM read_csv('/etc/passwd')",
    "ATTACH '/tmp/lupus_attack.duckdb' AS x",
    "COPY patient_facts TO '/tmp/lupus_leak.csv'",
    "INSTALL httpfs",
    "SET enable_external_access = true",
    "SET threads = 64",
    "CREATE TABLE x AS SELECT 1",
])
def test_connections_are_hardened(tmp_path, tables, sql):
    path = tmp_path / "db.duckdb"
    write(path, tables, versioned=False)
    db = Database(path)
    try:
        with pytest.raises(duckdb.Error):
            db.query(sql)
        assert db.scalar("SELECT count(*) FROM patient_facts") == len(tables["patients"])
    finally:
        db.close()
    assert not os.path.exists("/tmp/lupus_leak.csv")


def test_memory_and_thread_limits_from_the_environment(tmp_path, tables, monkeypatch):
    path = tmp_path / "db.duckdb"
    write(path, tables, versioned=False)
    monkeypatch.setenv("LUPUS_DASH_DUCKDB_MEMORY", "300MB")
    monkeypatch.setenv("LUPUS_DASH_DUCKDB_THREADS", "1")
    db = Database(path)
    try:
        assert db.scalar("SELECT current_setting('threads')") == 1
        mem = db.scalar("SELECT current_setting('memory_limit')")
        assert mem.startswith(("286", "300"))  # 300 MB = 286.1 MiB
    finally:
        db.close()


# --- versioned files -----------------------------------------------------------------------


def test_versioned_write_swaps_a_pointer(tmp_path, tables):
    path = tmp_path / "team.duckdb"
    first = write(path, tables)
    assert is_versioned(path)
    assert os.path.realpath(path) == first["version"]
    second = write(path, subset(tables, 3))
    assert os.path.realpath(path) == second["version"] != first["version"]
    assert os.path.exists(first["version"])  # kept until the grace period is over
    db = Database(path)
    try:
        assert db.scalar("SELECT count(*) FROM patient_facts WHERE cohort = ?",
                         [COHORT]) == n_csle(tables) - 3
    finally:
        db.close()
    # A later write to the pointer stays versioned without being asked.
    third = store.write_database(path, subset(tables, 4), mode="replace",
                                 schedules=synth.SCHEDULES)
    assert is_versioned(path) and os.path.realpath(path) == third["version"]
    # Pruning: only superseded files older than the grace period, never the newest two.
    later = time.time() + 3600
    removed = prune_versions(path, now=later)
    assert [str(r) for r in removed] == [first["version"]]
    assert sorted(str(p) for p in versions_dir(path).glob("*.duckdb")) == sorted(
        [second["version"], third["version"]])


def test_snapshot_keeps_its_version_and_old_files_close_when_idle(tmp_path, tables):
    path = tmp_path / "team.duckdb"
    write(path, tables)
    ds = DataStore(path, linger_s=0.0)
    flt = Filter.build(COHORT)
    try:
        old = ds.snapshot()
        write(path, subset(tables, 5))
        # A run that started before the refresh keeps reading its version ...
        assert common.count_patients(old, flt)[1] == n_csle(tables)
        new = ds.snapshot()
        # ... and a run starting after it reads the new one.
        assert common.count_patients(new, flt)[1] == n_csle(tables) - 5
        assert new.version != old.version and new.path == old.path == path
        # The old version is closed once idle; reopened if its run asks again.
        assert ds.open_versions() == [str(new.file)]
        assert common.count_patients(old, flt)[1] == n_csle(tables)
        # Gone from disk (pruned): that run is told to start again.
        for p in (old.file, old.file.with_name(old.file.name + ".wal")):
            if p.exists():
                p.unlink()
        ds.snapshot()
        with pytest.raises(DataRefreshed):
            old.query("SELECT 1")
    finally:
        ds.close()


def test_plain_file_replaced_in_place(tmp_path, tables):
    # Without a pointer: a query running on the old file finishes, the next run waits
    # for it and then sees the new file (DuckDB keeps one instance per path).
    path = tmp_path / "plain.duckdb"
    write(path, tables, versioned=False)
    ds = DataStore(path, linger_s=0.0)
    try:
        snap = ds.snapshot()
        cur = snap.cursor()  # holds the old version like a running query
        write(path, subset(tables, 2), versioned=False)
        assert not is_versioned(path)
        got = {}

        def next_run():
            got["n"] = common.count_patients(ds.snapshot(), Filter.build(COHORT))[1]

        t = threading.Thread(target=next_run)
        t.start()
        time.sleep(0.3)
        assert "n" not in got  # waits for the running query
        assert cur.execute("SELECT count(*) FROM patient_facts WHERE cohort = ?",
                           [COHORT]).fetchone()[0] == n_csle(tables)
        cur.close()
        t.join(30)
        assert got["n"] == n_csle(tables) - 2
    finally:
        ds.close()


def test_missing_database_is_a_plain_error(tmp_path):
    with pytest.raises(DatabaseError, match="No database"):
        DataStore(tmp_path / "none.duckdb").snapshot()


# --- the load test -------------------------------------------------------------------------


@pytest.mark.slow
def test_eight_threads_through_ten_refreshes(tmp_path, tables):
    path = tmp_path / "team.duckdb"
    write(path, tables)
    versions = {n_csle(tables)}
    ds = DataStore(path, linger_s=0.5)
    flt = Filter.build(COHORT)
    stop = threading.Event()
    errors: list[str] = []
    runs: list[list[int]] = [[] for _ in range(8)]

    def page_run(i: int) -> None:
        """One script run of a page: every query on one snapshot, like ui.start()."""
        snap = ds.snapshot()
        k, n = common.count_patients(snap, flt)
        t1 = cohort.table1.__wrapped__(snap, flt)  # uncached: real queries every time
        n_t1 = int(t1.loc[t1["group"] == "Overall", "n"].max())
        rem = remission.rates.__wrapped__(snap, flt)
        summ = biomarkers.summary.__wrapped__(snap, flt)
        cur = snap.cursor()
        try:
            n_cur = cur.execute("SELECT count(*) FROM visit_facts v JOIN patient_facts p USING "
                                "(cohort, patient_id) WHERE p.cohort = ? AND v.is_baseline",
                                [COHORT]).fetchone()[0]
        finally:
            cur.close()
        assert k == n == n_t1 == n_cur, (k, n, n_t1, n_cur)
        assert int(rem["n_eligible"].max()) <= n and int(summ["n"].max()) <= n
        runs[i].append(n)

    def worker(i: int) -> None:
        while not stop.is_set():
            try:
                page_run(i)
            except Exception as exc:  # noqa: BLE001 — every failure is counted
                errors.append(f"{type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    try:
        for r in range(1, 11):
            time.sleep(0.3)
            tabs = subset(tables, r)
            write(path, tabs)
            versions.add(n_csle(tabs))
    finally:
        time.sleep(0.5)
        stop.set()
        for t in threads:
            t.join(120)
    ds.close()
    assert errors == []
    # Every run read one version; runs of a thread never go back to an older version.
    assert all(runs), [len(r) for r in runs]
    for r in runs:
        assert set(r) <= versions
        assert r == sorted(r, reverse=True)  # versions lose one patient each: n decreases
    seen = set().union(*map(set, runs))
    assert min(seen) == n_csle(tables) - 10  # the last version was reached
    assert len(seen) >= 3
    assert sum(map(len, runs)) >= 40, [len(r) for r in runs]  # the refreshes ran under load


def test_a_write_is_versioned_behind_a_pointer_or_when_the_environment_asks(tmp_path,
                                                                           monkeypatch):
    from lupus_dash.db import publish_version, wants_versioned

    monkeypatch.delenv("LUPUS_DASH_VERSIONED", raising=False)
    plain = tmp_path / "plain.duckdb"
    assert not wants_versioned(plain)
    for value, expected in (("1", True), ("yes", True), ("TRUE", True), ("0", False),
                            ("", False)):
        monkeypatch.setenv("LUPUS_DASH_VERSIONED", value)
        assert wants_versioned(plain) is expected, value
    monkeypatch.delenv("LUPUS_DASH_VERSIONED")
    pointer = tmp_path / "hosted.duckdb"
    built = tmp_path / "built.tmp"
    built.write_bytes(b"")
    publish_version(built, pointer)
    assert is_versioned(pointer) and wants_versioned(pointer)
