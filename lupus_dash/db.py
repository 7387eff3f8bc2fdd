"""Read access to a lupus-dash DuckDB file: one read-only connection, a cursor per call."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import duckdb
import pandas as pd

from . import schema


class DatabaseError(RuntimeError):
    """A database that cannot be used, with a message a person can act on."""


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
            self._con = duckdb.connect(str(self.path), read_only=True)
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
