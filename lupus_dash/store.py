"""Write a lupus-dash DuckDB file atomically: build it whole in a temp file, then os.replace().

Modes
    ``create``  the file must not exist, be empty (0 bytes) or hold no cohort;
    ``replace`` cohorts in the new tables replace those with the same label,
                the file's other cohorts are kept;
    ``append``  adds cohorts; a label the file already holds is refused.

Every write reads the kept cohorts' input tables from the old file, writes all
input tables, ``cohorts`` and ``meta`` into ``.<name>.<pid>-<random>.tmp`` in
the same folder, rebuilds ``patient_facts`` / ``visit_facts`` with
``derive.build_facts`` (in chunks of ``CHUNK_PATIENTS`` patients, so memory
stays bounded), fsyncs, and only then ``os.replace()``s the target. Any
failure removes the temp file and leaves the old file byte-for-byte as it
was; a hard crash leaves only a stale temp file, removed by the next write.

Patient ids must be unique across the whole file: ``visits`` and
``adverse_events`` carry no cohort column (DATA_CONTRACT.md), so a second
cohort reusing an id is refused with the ids named.

Rows are inserted ordered by (cohort, patient_id, visit_week). DuckDB keeps
min/max zone maps per row group, so filters on those columns skip most row
groups without the write cost and memory of ART indexes.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import os
import secrets
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from . import definitions, derive, schema
from .db import fsync_path, publish_version, read_config, remove_database_file, wants_versioned

MODES = ("create", "replace", "append")
CHUNK_PATIENTS = 20_000  # patients per build_facts call; bounds peak memory

COHORTS_DDL = (
    'CREATE TABLE "cohorts" (\n  "cohort" VARCHAR,\n  "scheduled_weeks" INTEGER[],\n'
    '  "final_week" INTEGER,\n  "n_patients" INTEGER,\n  "source" VARCHAR,\n'
    '  "imported_at" TIMESTAMP\n)'
)
META_DDL = 'CREATE TABLE "meta" (\n  "key" VARCHAR,\n  "value" VARCHAR\n)'
INPUT_TABLES = tuple(schema.INPUT_TABLES)  # patients, visits, adverse_events
FACT_TABLES = ("patient_facts", "visit_facts")
# Insertion order: helps zone-map pruning for queries by cohort, patient and week.
_ORDER = {
    "patients": ("cohort", "patient_id"),
    "visits": ("patient_id", "visit_week"),
    "adverse_events": ("patient_id", "onset_week"),
    "patient_facts": ("cohort", "patient_id"),
    "visit_facts": ("cohort", "patient_id", "visit_week"),
}


class StoreError(ValueError):
    """A write refused for a reason the user can fix (label clash, not our file, ...)."""


# --- temp files ------------------------------------------------------------------------------


def _temp_path(path: Path) -> Path:
    return path.parent / f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _clean_stale_temps(path: Path) -> list[Path]:
    """Remove temp files of earlier writes to `path` whose process is gone (a crash)."""
    removed = []
    if not path.parent.is_dir():
        return removed
    prefix = f".{path.name}."
    for p in path.parent.iterdir():
        name = p.name
        if not (name.startswith(prefix) and name.endswith((".tmp", ".tmp.wal"))):
            continue
        tag = name[len(prefix):].split("-", 1)[0]
        if tag.isdigit() and int(tag) != os.getpid() and not _pid_alive(int(tag)):
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
                removed.append(p)
    return removed


@contextlib.contextmanager
def _writer_lock(path: Path) -> Iterator[None]:
    """One writer per target at a time: two imports racing would lose one's cohorts."""
    try:
        import fcntl
    except ImportError:  # not on POSIX: no advisory lock available
        yield
        return
    lock = path.parent / f".{path.name}.lock"
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise StoreError(
                f"another import into {path} is running; try again when it has finished"
            ) from exc
        try:
            yield
        finally:
            # Remove it while still held so no lock files pile up next to databases.
            with contextlib.suppress(FileNotFoundError):
                lock.unlink()
    finally:
        os.close(fd)


# --- the old file ------------------------------------------------------------------------------


class _Old:
    """Read access to the file being replaced (if any)."""

    def __init__(self, path: Path):
        self.path = path
        self.con: duckdb.DuckDBPyConnection | None = None
        self.cohorts = pd.DataFrame(
            columns=["cohort", "scheduled_weeks", "final_week", "n_patients", "source",
                     "imported_at"]
        )
        if not path.exists() or path.stat().st_size == 0:
            return
        try:
            # The readers' settings: DuckDB refuses a second connection to a file this
            # process already has open (the app's DataStore) with other settings.
            self.con = duckdb.connect(str(path), read_only=True, config=read_config())
            tables = {r[0] for r in self.con.execute("SHOW TABLES").fetchall()}
        except duckdb.Error as exc:
            self.close()
            if "lock" in str(exc).lower():
                raise StoreError(
                    f"{path} is locked by another program (another import still running?); "
                    "try again when it has finished"
                ) from exc
            raise StoreError(
                f"{path} exists but cannot be opened as a DuckDB file ({exc}); "
                "refusing to overwrite it"
            ) from exc
        needed = {"cohorts", *INPUT_TABLES}
        if not needed <= tables:
            self.close()
            raise StoreError(
                f"{path} exists but is not a lupus-dash database (missing tables: "
                f"{', '.join(sorted(needed - tables))}); refusing to overwrite it"
            )
        self.cohorts = self.con.execute("SELECT * FROM cohorts ORDER BY cohort").df()
        self.columns = {
            t: [r[0] for r in self.con.execute(f'DESCRIBE "{t}"').fetchall()] for t in INPUT_TABLES
        }

    @property
    def labels(self) -> list[str]:
        return [str(c) for c in self.cohorts["cohort"]]

    def _select(self, table: str, alias: str) -> str:
        present = set(self.columns[table])
        return ", ".join(
            f'{alias}."{c.name}"' if c.name in present else f'CAST(NULL AS {c.duck_type}) AS "{c.name}"'
            for c in schema.columns(table)
        )

    def cohort_chunks(self, cohort: str, size: int) -> Iterator[dict[str, pd.DataFrame]]:
        """Input tables of one kept cohort, `size` patients at a time."""
        assert self.con is not None
        ids = [r[0] for r in self.con.execute(
            "SELECT patient_id FROM patients WHERE cohort = ? ORDER BY patient_id", [cohort]
        ).fetchall()]
        for start in range(0, len(ids), size):
            part = ids[start:start + size]
            yield {
                "patients": self.con.execute(
                    f"SELECT {self._select('patients', 'p')} FROM patients p "
                    "WHERE p.cohort = ? AND p.patient_id IN (SELECT unnest(?))",
                    [cohort, part],
                ).df(),
                "visits": self.con.execute(
                    f"SELECT {self._select('visits', 'v')} FROM visits v "
                    "WHERE v.patient_id IN (SELECT unnest(?))",
                    [part],
                ).df(),
                "adverse_events": self.con.execute(
                    f"SELECT {self._select('adverse_events', 'a')} FROM adverse_events a "
                    "WHERE a.patient_id IN (SELECT unnest(?))",
                    [part],
                ).df(),
            }

    def close(self) -> None:
        if self.con is not None:
            with contextlib.suppress(duckdb.Error):
                self.con.close()
            self.con = None


# --- writing ---------------------------------------------------------------------------------


def _insert(con: duckdb.DuckDBPyConnection, table: str, df: pd.DataFrame, strict: bool) -> None:
    """INSERT a frame through a registered view with explicit columns and casts."""
    cols = schema.columns(table)
    missing = [c.name for c in cols if c.name not in df.columns]
    if strict and missing:
        raise RuntimeError(f"{table} frame lacks schema columns: {missing}")
    present = [c for c in cols if c.name in df.columns]
    frame = df[[c.name for c in present]]
    # Object columns holding only missing values scan as NULL type; give them a
    # concrete dtype so the CAST below is well defined.
    for c in present:
        if frame[c.name].dtype == object and frame[c.name].isna().all():
            frame = frame.assign(**{c.name: pd.Series([None] * len(frame), dtype="string")})
    view = f"_frame_{table}"
    try:
        # Arrow scans about twice as fast as DuckDB's pandas scan for nullable dtypes.
        source = pa.Table.from_pandas(frame, preserve_index=False)
    except (pa.ArrowException, TypeError, ValueError):
        source = frame  # e.g. an object column mixing types: let DuckDB's CAST judge it
    con.register(view, source)
    try:
        select = ", ".join(
            f'CAST("{c.name}" AS {c.duck_type})' if c.name in df.columns
            else f"CAST(NULL AS {c.duck_type})"
            for c in cols
        )
        names = ", ".join(f'"{c.name}"' for c in cols)
        order = ", ".join(f'"{k}"' for k in _ORDER[table] if k in df.columns)
        con.execute(
            f'INSERT INTO "{table}" ({names}) SELECT {select} FROM "{view}"'
            + (f" ORDER BY {order}" if order else "")
        )
    finally:
        con.unregister(view)


def _cohorts_frame(schedules: Mapping[str, list[int]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "cohort": list(schedules),
            "scheduled_weeks": [sorted(int(w) for w in s) for s in schedules.values()],
            "final_week": [max(int(w) for w in s) if len(s) else None for s in schedules.values()],
        }
    )


def _split(tables: Mapping[str, pd.DataFrame], size: int) -> Iterator[dict[str, pd.DataFrame]]:
    """The same tables, `size` patients at a time."""
    p = tables["patients"]
    if len(p) <= size:
        yield dict(tables)
        return
    ids = p["patient_id"].to_numpy()
    for start in range(0, len(ids), size):
        part = set(ids[start:start + size])
        yield {
            name: df[df["patient_id"].isin(part)] for name, df in tables.items() if df is not None
        }


def _write_chunk(
    con: duckdb.DuckDBPyConnection,
    chunk: Mapping[str, pd.DataFrame],
    cohorts: pd.DataFrame,
) -> tuple[int, int, int]:
    """Insert one chunk's input tables and its fact rows; returns (patients, visits, AEs)."""
    p, v = chunk["patients"], chunk["visits"]
    ae = chunk.get("adverse_events")
    _insert(con, "patients", p, strict=False)
    _insert(con, "visits", v, strict=False)
    if ae is not None and len(ae):
        _insert(con, "adverse_events", ae, strict=False)
    pf, vf = derive.build_facts(p, v, cohorts)
    _insert(con, "patient_facts", pf, strict=True)
    _insert(con, "visit_facts", vf, strict=True)
    return len(p), len(v), 0 if ae is None else len(ae)


def _with_cohort(visits: pd.DataFrame, patients: pd.DataFrame) -> pd.DataFrame:
    cohort_of = dict(zip(patients["patient_id"], patients["cohort"], strict=False))
    return visits.assign(cohort=visits["patient_id"].map(cohort_of))


def write_database(
    path: str | os.PathLike,
    tables: Mapping[str, pd.DataFrame],
    mode: str = "create",
    schedules: Mapping[str, list[int]] | None = None,
    source: str = "",
    versioned: bool | None = None,
) -> dict:
    """Write validated tables (patients, visits, optional adverse_events) atomically.

    `versioned`: write a new version file behind the pointer `path` (a symlink)
    instead of replacing `path` (db.publish_version), so a running dashboard's
    sessions never lose their connection. None: versioned when `path` already is
    a pointer or LUPUS_DASH_VERSIONED=1.
    """
    if "patients" not in tables or "visits" not in tables:
        raise ValueError("tables need 'patients' and 'visits'")
    if schedules is None:
        schedules = derive.infer_schedule(_with_cohort(tables["visits"], tables["patients"]))
    return write_database_chunks(
        path, _split(tables, CHUNK_PATIENTS), mode=mode, schedules=schedules, source=source,
        versioned=versioned,
    )


def write_database_chunks(
    path: str | os.PathLike,
    chunks: Iterable[Mapping[str, pd.DataFrame]],
    *,
    mode: str = "create",
    schedules: Mapping[str, list[int]] | None = None,
    source: str = "",
    versioned: bool | None = None,
) -> dict:
    """Stream tables in patient chunks (every patient's visits and AEs in the same chunk)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    t0 = time.perf_counter()
    path = Path(path)
    if not path.parent.is_dir():
        raise StoreError(f"folder {path.parent} does not exist")
    if versioned is None:
        versioned = wants_versioned(path)
    with _writer_lock(path):
        return _write(path, chunks, mode, schedules, source, t0, versioned)


def _write(path, chunks, mode, schedules, source, t0, versioned=False) -> dict:
    """write_database_chunks under the writer lock."""
    _clean_stale_temps(path)
    old = _Old(path)
    tmp = _temp_path(path)
    con: duckdb.DuckDBPyConnection | None = None
    try:
        if mode == "create" and old.labels:
            raise StoreError(
                f"{path} already holds cohort(s) {', '.join(old.labels)}; use --append to add "
                "cohorts or --replace to replace cohorts with the same label"
            )
        con = duckdb.connect(str(tmp))
        for t in (*INPUT_TABLES, *FACT_TABLES):
            con.execute(schema.create_table_sql(t))
        con.execute(COHORTS_DDL)
        con.execute(META_DDL)

        sched: dict[str, list[int]] = {k: list(v) for k, v in (schedules or {}).items()}
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
        new_counts: dict[str, int] = {}
        totals = np.zeros(3, dtype=np.int64)
        for chunk in chunks:
            labels = [str(c) for c in pd.unique(chunk["patients"]["cohort"].dropna())]
            clash = sorted(set(labels) & set(old.labels))
            if clash and mode != "replace":
                raise StoreError(
                    f"cohort {', '.join(clash)} already exists in {path}; use --replace to "
                    "replace it"
                )
            unknown = [c for c in labels if c not in sched]
            if unknown:
                # Only the chunked API gets here without a schedule: infer from this chunk.
                sched.update(derive.infer_schedule(
                    _with_cohort(chunk["visits"], chunk["patients"])
                ))
            frame = _cohorts_frame({c: sched[c] for c in labels})
            totals += _write_chunk(con, chunk, frame)
            for c, n in chunk["patients"]["cohort"].value_counts().items():
                new_counts[str(c)] = new_counts.get(str(c), 0) + int(n)

        kept = [c for c in old.labels if c not in new_counts]
        old_rows = {str(r.cohort): r for r in old.cohorts.itertuples(index=False)}
        for c in kept:
            r = old_rows[c]
            frame = pd.DataFrame({
                "cohort": [c],
                "scheduled_weeks": [[int(w) for w in r.scheduled_weeks]],
                "final_week": [r.final_week],
            })
            for chunk in old.cohort_chunks(c, CHUNK_PATIENTS):
                _write_chunk(con, chunk, frame)

        _check_keys(con, path)
        rows = [
            (c, [int(w) for w in sched[c]], max(int(w) for w in sched[c]), n, source, now)
            for c, n in new_counts.items()
        ] + [
            (c, [int(w) for w in old_rows[c].scheduled_weeks], _int(old_rows[c].final_week),
             _int(old_rows[c].n_patients), old_rows[c].source,
             _timestamp(old_rows[c].imported_at))
            for c in kept
        ]
        con.executemany("INSERT INTO cohorts VALUES (?, ?, ?, ?, ?, ?)", rows)
        con.executemany(
            "INSERT INTO meta VALUES (?, ?)",
            [
                ("schema_version", str(schema.SCHEMA_VERSION)),
                ("duckdb_version", duckdb.__version__),
                ("created_at", now.isoformat() + "Z"),
                # Which definitions derived the fact tables (definitions.py) and a content
                # version of the input data (scenes and reports name the data they show).
                ("definitions_hash", definitions.fingerprint()),
                ("data_version", _content_version(con)),
            ],
        )
        counts = {
            t: con.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0]
            for t in INPUT_TABLES
        }
        con.execute("CHECKPOINT")
        con.close()
        con = None
        old.close()
        fsync_path(tmp)
        if versioned:
            version = publish_version(tmp, path)
        else:
            os.replace(tmp, path)
            fsync_path(path.parent)
    except BaseException:
        if con is not None:
            with contextlib.suppress(duckdb.Error):
                con.close()
        old.close()
        remove_database_file(tmp)
        raise
    return {
        "path": str(path),
        "mode": mode,
        "written": sorted(new_counts),
        "replaced": sorted(set(new_counts) & set(old.labels)),
        "kept": sorted(kept),
        "n_cohorts": len(new_counts) + len(kept),
        "patients": int(counts["patients"]),
        "visits": int(counts["visits"]),
        "adverse_events": int(counts["adverse_events"]),
        "new_patients": int(totals[0]),
        "new_visits": int(totals[1]),
        "new_adverse_events": int(totals[2]),
        "seconds": time.perf_counter() - t0,
        **({"version": str(version)} if versioned else {}),
    }


def _content_version(con: duckdb.DuckDBPyConnection) -> str:
    """A digest of the input tables' contents (order-independent: XOR of row hashes)."""
    parts = [str(con.execute(f'SELECT count(*), bit_xor(hash(t)) FROM "{t}" t').fetchone())
             for t in INPUT_TABLES]
    # Of the cohorts, the schedules and sizes (imported_at changes on every write).
    parts.append(str(con.execute(
        "SELECT bit_xor(hash(cohort, scheduled_weeks, final_week, n_patients)) FROM cohorts"
    ).fetchone()))
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:12]


def rederive(path: str | os.PathLike) -> dict:
    """Rebuild every cohort's fact tables from the file's own input tables (same schedules),
    atomically, with the definitions of the running code."""
    path = Path(path)
    if not path.exists():
        raise StoreError(f"no database at {path}")
    old = _Old(path)
    try:
        if not old.labels:
            raise StoreError(f"{path} holds no cohort")
        schedules = {str(r.cohort): [int(w) for w in r.scheduled_weeks]
                     for r in old.cohorts.itertuples(index=False)}
        sources = sorted({str(s) for s in old.cohorts["source"].dropna()})
        # Streamed cohort by cohort from the old file while the new one is written.
        chunks = (chunk for c in old.labels for chunk in old.cohort_chunks(c, CHUNK_PATIENTS))
        return write_database_chunks(path, chunks, mode="replace", schedules=schedules,
                                     source="; ".join(sources))
    finally:
        old.close()


def cli_rederive(args) -> int:
    """`python -m lupus_dash rederive --db FILE`"""
    try:
        info = rederive(args.db)
    except StoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"rebuilt the derived tables of {', '.join(info['written'])} in {info['path']} "
          f"({info['patients']} patients, {info['seconds']:.1f} s) with definitions "
          f"{definitions.fingerprint()}")
    return 0


def _int(x) -> int | None:
    return None if x is None or pd.isna(x) else int(x)


def _timestamp(x):
    return None if x is None or pd.isna(x) else pd.Timestamp(x).to_pydatetime()


def _check_keys(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    """Patient ids unique across cohorts; every visit and AE belongs to a patient."""
    dup = con.execute(
        "SELECT patient_id, string_agg(DISTINCT cohort, ', ') FROM patients "
        "GROUP BY patient_id HAVING count(*) > 1 ORDER BY patient_id LIMIT 6"
    ).fetchall()
    if dup:
        shown = "; ".join(f"{pid} (cohorts {c})" for pid, c in dup[:5])
        raise StoreError(
            f"patient ids must be unique across the whole database, but these appear twice: "
            f"{shown}{' …' if len(dup) > 5 else ''}; give the new cohort distinct ids "
            "(e.g. a prefix)"
        )
    for t in ("visits", "adverse_events"):
        orphan = con.execute(
            f'SELECT count(*), min(patient_id) FROM "{t}" '
            "WHERE patient_id NOT IN (SELECT patient_id FROM patients)"
        ).fetchone()
        if orphan[0]:
            raise StoreError(f"{orphan[0]} {t} rows have no patient (e.g. {orphan[1]})")
