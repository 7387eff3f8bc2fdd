"""The audit log: one JSON line per page view, download, sign-in refusal and import.

Written by the app, not the proxy: behind Caddy a whole session is one
websocket, so only the app knows which page, filter and download a person
asked for. Appends are serialised by a lock within the process and by
`flock` across replicas writing the same file; each record is one `write` of
one line.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

EVENTS = ("view", "download", "sign_in", "refused", "expired", "sign_out", "import")


class AuditLog:
    """Append-only JSON-lines file; safe from many threads and processes."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._lock = threading.Lock()

    def record(self, event: str, who: Mapping[str, Any], **fields: Any) -> dict:
        """Append one record: event, who (subject, email, role), UTC time and `fields`."""
        if event not in EVENTS:
            raise ValueError(f"unknown audit event {event!r}; one of {EVENTS}")
        rec = {
            "ts": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"),
            "event": event,
            "subject": who.get("subject"),
            "email": who.get("email"),
            "role": who.get("role"),
            **fields,
        }
        line = (json.dumps(rec, ensure_ascii=False, default=str, separators=(",", ":"))
                + "\n").encode("utf-8")
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            try:
                with _flock(fd):
                    os.write(fd, line)
            finally:
                os.close(fd)
        return rec


@contextlib.contextmanager
def _flock(fd: int) -> Iterator[None]:
    try:
        import fcntl
    except ImportError:  # not POSIX: the in-process lock is all there is
        yield
        return
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)


def read(path: str | os.PathLike) -> list[dict]:
    """Every record of an audit log, oldest first."""
    p = Path(path)
    if not p.exists():
        return []
    with p.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
