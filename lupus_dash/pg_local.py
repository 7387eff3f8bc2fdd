"""A throwaway PostgreSQL cluster on this machine (tests and the OMOP benchmark).

Uses Debian's ``postgresql`` binaries (``/usr/lib/postgresql/<major>/bin``, or
``initdb`` on PATH). initdb refuses to run as root, so as root the cluster
belongs to the ``postgres`` system user (created by the Debian package) and
its commands run through ``runuser``. Authentication is ``trust`` on
127.0.0.1 only; the server stops (and its folder is removed) on ``stop()``.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Self


def find_bin_dir() -> Path | None:
    """Folder holding initdb/pg_ctl/postgres, highest version first; None if absent."""
    cands = sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                   key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit()
                   else 0, reverse=True)
    for c in cands:
        if (Path(c) / "initdb").exists() and (Path(c) / "pg_ctl").exists():
            return Path(c)
    w = shutil.which("initdb")
    if w and shutil.which("pg_ctl"):
        return Path(os.path.realpath(w)).parent
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalPostgres:
    """initdb + pg_ctl start in a temp folder; `dsn` to connect; `stop()` removes it."""

    def __init__(self, bin_dir: Path | None = None, settings: dict[str, str] | None = None):
        self.bin = bin_dir or find_bin_dir()
        if self.bin is None:
            raise RuntimeError("PostgreSQL binaries not found (apt-get install postgresql)")
        self.root = Path(tempfile.mkdtemp(prefix="lupus_pg_"))
        self.data = self.root / "data"
        self.port = _free_port()
        self.as_root = os.geteuid() == 0
        self.settings = settings or {}
        self.started = False

    def _run(self, *cmd: str, check: bool = True) -> subprocess.CompletedProcess:
        argv = list(cmd)
        if self.as_root:
            argv = ["runuser", "-u", "postgres", "--", *argv]
        return subprocess.run(argv, check=check, capture_output=True, text=True)

    def start(self) -> LocalPostgres:
        if self.as_root:
            shutil.chown(self.root, "postgres", "postgres")
            os.chmod(self.root, 0o700)
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U",
                  "postgres", "-E", "UTF8", "--no-locale")
        opts = (f"-c listen_addresses=127.0.0.1 -c port={self.port} "
                f"-c unix_socket_directories={self.root} -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off")
        for k, v in self.settings.items():
            opts += f" -c {k}={v}"
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", opts, "-l",
                  str(self.root / "log"), "-w", "-t", "60", "start")
        self.started = True
        for _ in range(100):
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    break
            except OSError:
                time.sleep(0.1)
        return self

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def create_database(self, name: str) -> str:
        """A new database; returns its DSN."""
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.dsn, autocommit=True) as con:
            con.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        if self.started:
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w",
                      "stop", check=False)
            self.started = False
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
