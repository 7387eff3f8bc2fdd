"""Read access to a lupus-dash DuckDB file: one read-only connection, a cursor per call."""

from __future__ import annotations

import contextlib
import os
import secrets
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pandas as pd

from . import schema


class DatabaseError(RuntimeError):
    """A database that cannot be used, with a message a person can act on."""


def read_config() -> dict:
    """DuckDB settings of every read connection (ENGINEERING_NOTES: hosting facts).

    External access off (no read_csv('/etc/passwd'), ATTACH, COPY, INSTALL) and the
    configuration locked (no later SET). Memory and thread limits per instance from
    LUPUS_DASH_DUCKDB_MEMORY (e.g. "1GB" or "25%") and LUPUS_DASH_DUCKDB_THREADS;
    DuckDB's defaults (80 % of RAM, every core) otherwise. Every connection in a
    process must use the same settings: DuckDB refuses a second connection to an
    open file with a different configuration.
    """
    cfg: dict = {"enable_external_access": False, "lock_configuration": True}
    mem = os.environ.get("LUPUS_DASH_DUCKDB_MEMORY", "").strip()
    threads = os.environ.get("LUPUS_DASH_DUCKDB_THREADS", "").strip()
    if mem:
        cfg["memory_limit"] = mem
    if threads:
        cfg["threads"] = int(threads)
    return cfg


class Database:
    """A read-only DuckDB file. Thread-safe: every query runs on its own cursor."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.exists():
            raise DatabaseError(
                f"No database at {self.path}. Build the demo with "
                "`python -m lupus_dash build-demo` or import a cohort with "
                "`python -m lupus_dash import FOLDER --db FILE`."
            )
        st = self.path.stat()
        # Cache key for anything computed from this file: a replaced or
        # rewritten file gets a new version, so stale results are never reused.
        self.version = (str(self.path.resolve()), st.st_mtime_ns, st.st_size)
        self._lock = threading.Lock()
        self._columns: dict[str, frozenset[str]] = {}
        self._meta: dict[str, str] | None = None
        try:
            self._con = duckdb.connect(str(self.path), read_only=True, config=read_config())
        except duckdb.IOException as exc:
            raise DatabaseError(
                f"Cannot open {self.path}: it is locked by another program "
                f"(an import still running?) or unreadable. DuckDB said: {exc}"
            ) from exc
        except duckdb.Error as exc:
            raise DatabaseError(
                f"Cannot open {self.path} with duckdb {duckdb.__version__}: {exc}. "
                "A file written by another DuckDB version may not open; rebuild it."
            ) from exc
        tables = {r[0] for r in self._con.cursor().execute("SHOW TABLES").fetchall()}
        missing = {"patient_facts", "visit_facts", "cohorts"} - tables
        if missing:
            self.close()
            raise DatabaseError(
                f"{self.path} is not a lupus-dash database (missing tables: "
                f"{', '.join(sorted(missing))}). Import a cohort into it first."
            )

    def columns(self, table: str) -> frozenset[str]:
        """Column names of a table or view (remembered: the file is read-only for this object)."""
        cols = self._columns.get(table)
        if cols is None:
            cols = frozenset(self.query(f'SELECT * FROM "{table}" LIMIT 0').columns)
            self._columns[table] = cols
        return cols

    def cursor(self) -> duckdb.DuckDBPyConnection:
        with self._lock:
            return self._con.cursor()

    def query(self, sql: str, params: list | tuple | dict | None = None) -> pd.DataFrame:
        """Run one parameterised query on a fresh cursor and return a DataFrame."""
        cur = self.cursor()
        try:
            return cur.execute(sql, params or []).df()
        finally:
            cur.close()

    def scalar(self, sql: str, params: list | tuple | None = None):
        cur = self.cursor()
        try:
            row = cur.execute(sql, params or []).fetchone()
            return None if row is None else row[0]
        finally:
            cur.close()

    def cohorts(self) -> pd.DataFrame:
        """Cohort labels with their schedules and sizes."""
        return self.query(
            "SELECT cohort, scheduled_weeks, final_week, n_patients, source "
            "FROM cohorts ORDER BY cohort"
        )

    def counts(self) -> dict[str, int]:
        """Cohorts, patients, visits and adverse events in the file."""
        return {
            "cohorts": self.scalar("SELECT count(*) FROM cohorts"),
            "patients": self.scalar("SELECT count(*) FROM patient_facts"),
            "visits": self.scalar("SELECT count(*) FROM visit_facts"),
            "adverse_events": self.scalar("SELECT count(*) FROM adverse_events"),
        }

    def meta(self) -> dict[str, str]:
        """The file's meta table (schema version, definitions hash, data version, …)."""
        if self._meta is None:
            try:
                rows = self.query("SELECT key, value FROM meta")
                self._meta = dict(zip(rows["key"], rows["value"], strict=True))
            except duckdb.Error:
                self._meta = {}
        return self._meta

    def data_version(self) -> str:
        """A content version of the data (written at import); files from before it was
        recorded get one from their modification time and size."""
        return self.meta().get("data_version") or f"file-{self.version[1]}-{self.version[2]}"

    def definitions_warning(self) -> str | None:
        """A plain sentence when the derived tables came from other endpoint definitions."""
        from . import definitions

        return definitions.stale_message(self.meta().get("definitions_hash"), self.path)

    def schema_version(self) -> int | None:
        v = self.scalar("SELECT value FROM meta WHERE key = 'schema_version'")
        return None if v is None else int(v)

    def close(self) -> None:
        try:
            self._con.close()
        except duckdb.Error:
            pass


def available_columns(db: Database, table: str) -> set[str]:
    """Columns of `table` in this file that hold at least one value."""
    names = [c.name for c in schema.columns(table)]
    present = db.columns(table)
    names = [n for n in names if n in present]
    if not names:
        return set()
    counts = db.query(
        "SELECT " + ", ".join(f'count("{n}") AS "{n}"' for n in names) + f' FROM "{table}"'
    )
    return {n for n in names if int(counts.iloc[0][n]) > 0}


# --- versioned files and refresh under running sessions ---------------------------------------
#
# A hosted database is a pointer: `team.duckdb` is a symlink to
# `.team.duckdb.versions/<time>-<pid>-<random>.duckdb`. An import writes a new
# version file and swaps the symlink with os.replace (atomic). Readers resolve
# the pointer when a script run starts and open each version file by its own
# path, so DuckDB's one-instance-per-path cache never hands back old data, and
# nothing is closed under a running query: a version's connection is closed once
# no query uses it and it is no longer current, and the writer removes superseded
# files after a grace period (an unlinked file stays readable by connections that
# have it open).

VERSIONS_GRACE_S = 600.0  # a superseded version file is removed after this long
VERSIONS_KEEP = 2         # ... but the newest two are always kept


class DataRefreshed(DatabaseError):
    """The version a script run started on is gone; the run should start again."""


def versions_dir(path: str | os.PathLike) -> Path:
    """Folder of the version files behind the pointer `path`."""
    p = Path(path)
    return p.parent / f".{p.name}.versions"


def is_versioned(path: str | os.PathLike) -> bool:
    """True when `path` is a pointer (symlink) into its versions folder."""
    p = Path(path)
    if not p.is_symlink():
        return False
    target = Path(os.path.realpath(p))
    return target.parent == Path(os.path.realpath(versions_dir(p)))


def wants_versioned(path: str | os.PathLike) -> bool:
    """A write to `path` goes behind the pointer: it already is one, or LUPUS_DASH_VERSIONED=1."""
    return is_versioned(path) or os.environ.get("LUPUS_DASH_VERSIONED", "").lower() in (
        "1", "true", "yes")


def publish_version(tmp: str | os.PathLike, path: str | os.PathLike) -> Path:
    """Move a finished database file into `path`'s versions and point `path` at it.

    Both steps are renames within one folder tree (atomic); a reader sees the old
    version or the new one, never a half-written file. Returns the version file.
    """
    tmp, path = Path(tmp), Path(path)
    vdir = versions_dir(path)
    vdir.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    target = vdir / f"{stamp}-{os.getpid()}-{secrets.token_hex(3)}.duckdb"
    os.replace(tmp, target)
    link = path.parent / f".{path.name}.{os.getpid()}-{secrets.token_hex(3)}.link"
    os.symlink(os.path.relpath(target, path.parent), link)
    try:
        os.replace(link, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            link.unlink()
        raise
    fsync_path(vdir)
    fsync_path(path.parent)
    prune_versions(path)
    return target


def prune_versions(path: str | os.PathLike, grace_s: float = VERSIONS_GRACE_S,
                   keep: int = VERSIONS_KEEP, now: float | None = None) -> list[Path]:
    """Remove version files superseded more than `grace_s` ago, keeping the newest `keep`."""
    vdir = versions_dir(path)
    if not vdir.is_dir():
        return []
    now = time.time() if now is None else now
    current = Path(os.path.realpath(path))
    files = sorted(vdir.glob("*.duckdb"))  # names start with the UTC time: oldest first
    removed = []
    for older, newer in zip(files[:-keep] if keep else files, files[1:], strict=False):
        if older == current:
            continue
        try:
            superseded_at = newer.stat().st_mtime  # when the next version was written
        except FileNotFoundError:
            continue
        if now - superseded_at > grace_s:
            remove_database_file(older)
            removed.append(older)
    return removed


def fsync_path(p: str | os.PathLike) -> None:
    """Flush a file or folder to disk so a rename never exposes a half-written file
    (best effort: a file system that cannot sync a folder is not an error)."""
    with contextlib.suppress(OSError):
        fd = os.open(p, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def remove_database_file(p: Path) -> None:
    """Remove a DuckDB file and its write-ahead log, where they exist."""
    for q in (p, p.with_name(p.name + ".wal")):
        with contextlib.suppress(FileNotFoundError):
            q.unlink()


class _Handle:
    """One open version: its Database, the queries using it now, when it was last used."""

    def __init__(self, key: tuple, real: Path):
        self.key = key
        self.real = real
        self.db: Database | None = None
        self.refs = 0
        self.last_used = time.monotonic()

    def open(self) -> Database:
        if self.db is None:
            self.db = Database(self.real)
        return self.db

    def close(self) -> None:
        if self.db is not None:
            self.db.close()
            self.db = None


class DataStore:
    """Read access to one database path whose data may be refreshed while sessions query it.

    `snapshot()` at the start of a script run fixes the version that run reads;
    each query leases that version's connection (reference-counted), so a
    refresh never closes a connection under a running query. Works with a
    versioned pointer (no waiting at all) and with a plain file replaced by
    os.replace (new runs wait until the old connection's queries have finished,
    because DuckDB keeps one instance per path).
    """

    def __init__(self, path: str | os.PathLike, linger_s: float = 10.0):
        self.path = Path(path)
        self.linger_s = linger_s
        self._cond = threading.Condition()
        self._handles: dict[tuple, _Handle] = {}
        self._current: tuple | None = None

    def _identify(self) -> tuple[tuple, Path]:
        for _ in range(5):
            real = Path(os.path.realpath(self.path))
            try:
                st = real.stat()
            except FileNotFoundError:
                # The pointer moved between realpath and stat (a refresh); look again.
                continue
            return (str(real), st.st_ino, st.st_mtime_ns, st.st_size), real
        raise DatabaseError(
            f"No database at {self.path}. Build the demo with `python -m lupus_dash build-demo "
            f"--db {self.path}` or import a cohort with `python -m lupus_dash import FOLDER "
            f"--db {self.path}`."
        )

    def snapshot(self) -> Snapshot:
        """The current version, opened if needed; every query of one run should use it."""
        key, real = self._identify()
        with self._cond:
            h = self._handles.get(key)
            if h is None:
                # A plain file replaced in place: DuckDB would hand back the open
                # instance of that path, so let its queries finish and close it first.
                for old in [x for x in self._handles.values() if x.real == real]:
                    self._cond.wait_for(lambda old=old: old.refs == 0, timeout=120)
                    old.close()
                    self._handles.pop(old.key, None)
                h = self._handles[key] = _Handle(key, real)
            try:
                db = h.open()
            except DatabaseError:
                self._handles.pop(key, None)
                raise
            self._current = key
            self._close_idle()
            return Snapshot(self, key, db.version)

    def lease(self, key: tuple) -> Database:
        """Take one reference to version `key` (reopened if it was closed while idle)."""
        with self._cond:
            h = self._handles.get(key)
            if h is None:
                real = Path(key[0])
                try:
                    st = real.stat()
                except FileNotFoundError:
                    st = None
                if st is None or (st.st_ino, st.st_mtime_ns, st.st_size) != key[1:]:
                    raise DataRefreshed(f"The data in {self.path} were refreshed while this "
                                        "page was being computed; it is shown again with the "
                                        "new data.")
                h = self._handles[key] = _Handle(key, real)
            db = h.open()
            h.refs += 1
            return db

    def release(self, key: tuple) -> None:
        """Give back a reference taken by `lease`."""
        with self._cond:
            h = self._handles.get(key)
            if h is not None:
                h.refs -= 1
                h.last_used = time.monotonic()
            self._close_idle()
            self._cond.notify_all()

    def _close_idle(self) -> None:
        now = time.monotonic()
        for key, h in list(self._handles.items()):
            if key != self._current and h.refs == 0 and now - h.last_used >= self.linger_s:
                h.close()
                del self._handles[key]

    def open_versions(self) -> list[str]:
        """Files this store holds open now (for tests and the health page)."""
        with self._cond:
            return [str(h.real) for h in self._handles.values() if h.db is not None]

    def close(self) -> None:
        """Close every connection (when no query runs: at shutdown, in tests)."""
        with self._cond:
            for h in self._handles.values():
                h.close()
            self._handles.clear()
            self._current = None


class _LeasedCursor:
    """A cursor that gives its version's reference back when closed."""

    def __init__(self, store: DataStore, key: tuple, cur: duckdb.DuckDBPyConnection):
        self._store, self._key, self._cur = store, key, cur

    def __getattr__(self, name):
        return getattr(self._cur, name)

    def close(self) -> None:
        if self._cur is not None:
            try:
                self._cur.close()
            finally:
                self._cur = None
                self._store.release(self._key)

    def __del__(self):
        with contextlib.suppress(Exception):
            self.close()


class Snapshot:
    """One version of a DataStore's data with the `Database` interface.

    `path` is the logical path (what a person types: the pointer); `file` the
    version file; `version` the cache key of this version's results.
    """

    def __init__(self, store: DataStore, key: tuple, version: tuple):
        self._store = store
        self._key = key
        self.path = store.path
        self.file = Path(key[0])
        self.version = version
        self._columns: dict[str, frozenset[str]] = {}

    @contextlib.contextmanager
    def _db(self):
        db = self._store.lease(self._key)
        try:
            yield db
        finally:
            self._store.release(self._key)

    def query(self, sql: str, params: list | tuple | dict | None = None) -> pd.DataFrame:
        """Run one parameterised query on this version and return a DataFrame."""
        with self._db() as db:
            return db.query(sql, params)

    def scalar(self, sql: str, params: list | tuple | None = None):
        with self._db() as db:
            return db.scalar(sql, params)

    def cursor(self) -> _LeasedCursor:
        """A cursor on this version; close it to release the version."""
        db = self._store.lease(self._key)
        try:
            return _LeasedCursor(self._store, self._key, db.cursor())
        except BaseException:
            self._store.release(self._key)
            raise

    def columns(self, table: str) -> frozenset[str]:
        cols = self._columns.get(table)
        if cols is None:
            with self._db() as db:
                cols = db.columns(table)
            self._columns[table] = cols
        return cols

    def cohorts(self) -> pd.DataFrame:
        with self._db() as db:
            return db.cohorts()

    def counts(self) -> dict[str, int]:
        with self._db() as db:
            return db.counts()

    def schema_version(self) -> int | None:
        with self._db() as db:
            return db.schema_version()

    def meta(self) -> dict[str, str]:
        with self._db() as db:
            return db.meta()

    def data_version(self) -> str:
        with self._db() as db:
            return db.data_version()

    def definitions_warning(self) -> str | None:
        with self._db() as db:
            msg = db.definitions_warning()
        return msg.replace(str(self.file), str(self.path)) if msg else None

    def close(self) -> None:
        """Nothing to do: the DataStore owns the connections."""
