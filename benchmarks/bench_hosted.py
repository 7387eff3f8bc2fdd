"""Hosted load: S simultaneous sessions × K filter changes through Caddy with N replicas,
with one data refresh (a new database version) half-way through.

    python -m benchmarks.bench_hosted [--sessions 40] [--changes 5] [--replicas 2]
        [--no-refresh] [--json]

Starts `deploy/run_local.sh N` (Caddy on a free loopback port, replicas behind it,
cookie-sticky) against a fresh demo database written as a versioned pointer. Each
session fetches the app page through Caddy (which sets the `lupus_replica` cookie),
opens the websocket with that cookie (scripts/ws_client.py speaking Streamlit's
protobufs), opens the Biomarkers page, and waits; all sessions then make K sidebar
filter changes at once, each sent when the previous run finished (the cycle of
scripts/bench_concurrency.py, session i starting at step i). When half the changes
are done, `python -m lupus_dash build-demo` writes a new version of the data behind
the pointer while the sessions keep going.

Reports p50 / p95 / max latency of a filter change (sent → script finished, the
server's share), errors (exceptions or error alerts on the page, failed runs,
timeouts), how the sessions spread over the replicas, the refresh's duration and
the latency of changes made while it ran, and the server CPU used.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import ClassVar

import psutil
import websockets

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import bench_concurrency
from bench_browser import pct
from bench_concurrency import cpu_s, machine_busy_s
from ws_client import Session

COOKIE = "lupus_replica"


def free_port_block(n: int) -> int:
    """A port P with P … P+n free on loopback (Caddy on P, replicas after it)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base + n > 65535:
            continue
        ok = True
        for p in range(base, base + n + 1):
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", p))
                except OSError:
                    ok = False
                    break
        if ok:
            return base
    raise RuntimeError("no block of free ports")


def replica_cookie(port: int, timeout: float = 30.0) -> str:
    """GET the app page through Caddy; the sticky cookie it sets ('name=value')."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=timeout) as r:
        for h in r.headers.get_all("Set-Cookie") or []:
            if h.startswith(COOKIE + "="):
                return h.split(";", 1)[0]
    raise RuntimeError("Caddy set no sticky cookie")


class ProxySession(Session):
    """A ws_client Session through the proxy: fetches the page first, keeps its cookie."""

    cookies: ClassVar[list[str]] = []  # the sticky cookie of every session opened

    async def __aenter__(self):
        self.cookie = await asyncio.to_thread(replica_cookie, int(self.uri.split(":")[2]
                                                                   .split("/")[0]))
        ProxySession.cookies.append(self.cookie)
        self.ws = await websockets.connect(
            self.uri, subprotocols=["streamlit"], max_size=None, open_timeout=60,
            ping_interval=None, additional_headers={"Cookie": self.cookie})
        return self


def start_stack(replicas: int, port: int, db: Path, run_dir: Path) -> subprocess.Popen:
    """deploy/run_local.sh in its own process group; returns once Caddy and replicas answer."""
    log = open(run_dir / "run_local.log", "w")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(
        ["bash", str(ROOT / "deploy" / "run_local.sh"), str(replicas), "--port", str(port),
         "--db", str(db), "--run-dir", str(run_dir)],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        env={**os.environ, "LUPUS_DASH_VERSIONED": "1"},
    )
    end = time.monotonic() + 120
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError("run_local.sh stopped: " + (run_dir / "run_local.log").read_text())
        if "replicas behind Caddy" in (run_dir / "run_local.log").read_text():
            return proc
        time.sleep(0.2)
    raise TimeoutError("the stack did not become healthy")


def stop_stack(proc: subprocess.Popen) -> None:
    """SIGTERM to the stack's process group (run_local.sh stops what it started)."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def server_procs(proc: subprocess.Popen) -> list[psutil.Process]:
    try:
        return psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


async def refresh_when_half_done(db: Path, lat: list, total: int, res: dict,
                                 enabled: bool) -> None:
    """Write a new data version behind the pointer once half the changes are done."""
    if not enabled:
        return
    while len(lat) < total // 2:
        await asyncio.sleep(0.05)
    t0 = time.perf_counter()
    res["refresh_started_at_change"] = len(lat)
    res["refresh_wall_start"] = time.perf_counter()
    done = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "lupus_dash", "build-demo", "--db", str(db)],
        cwd=ROOT, capture_output=True, text=True,
        env={**os.environ, "LUPUS_DASH_VERSIONED": "1"})
    res["refresh_s"] = time.perf_counter() - t0
    res["refresh_wall_end"] = time.perf_counter()
    res["refresh_ok"] = done.returncode == 0
    if done.returncode:
        res["refresh_error"] = done.stderr[-500:]


async def run(sessions: int, changes: int, replicas: int, refresh: bool,
              timeout_s: float) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="bench_hosted_"))
    db = tmp / "team.duckdb"
    await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "lupus_dash", "build-demo", "--db", str(db)],
        cwd=ROOT, check=True, capture_output=True, env={**os.environ, "LUPUS_DASH_VERSIONED": "1"})
    port = free_port_block(replicas)
    res: dict = {"sessions": sessions, "changes_per_session": changes, "replicas": replicas,
                 "refresh": refresh, "port": port}
    proc = start_stack(replicas, port, db, tmp)
    bench_concurrency.Session = ProxySession  # ws_session opens sessions through Caddy
    ProxySession.cookies = []
    try:
        # Warm every replica once (imports, first queries), as a running service would be.
        for _ in range(replicas * 3):
            async with ProxySession(port, "cohort=csle_belimumab") as w:
                await w.run(timeout_s)
                await w.open_page("biomarkers", timeout_s)
        ProxySession.cookies = []
        start = asyncio.Event()
        lat: list = []
        errors: list = []
        ready: list = []
        tasks = [asyncio.create_task(bench_concurrency.ws_session(
            port, changes, timeout_s, start, lat, errors, i, ready, i))
            for i in range(sessions)]
        t_load = time.perf_counter()
        while (time.perf_counter() - t_load < 240
               and len(ready) + sum(t.done() for t in tasks) < sessions):
            await asyncio.sleep(0.1)
        res["sessions_open_s"] = time.perf_counter() - t_load
        procs = server_procs(proc)
        cpu0, busy0 = cpu_s(procs), machine_busy_s()
        t0 = time.perf_counter()
        for r in lat:
            r["t"] = None
        start.set()
        watcher = asyncio.create_task(
            refresh_when_half_done(db, lat, sessions * changes, res, refresh))
        stamped = 0
        while not all(t.done() for t in tasks):
            await asyncio.sleep(0.05)
            while stamped < len(lat):  # when each change finished, for the refresh window
                lat[stamped]["t_done"] = time.perf_counter()
                stamped += 1
            if time.perf_counter() - t0 > 900:
                for t in tasks:
                    t.cancel()
                errors.append({"error": "run exceeded 900 s; sessions cancelled"})
                break
        for r in lat[stamped:]:
            r["t_done"] = time.perf_counter()
        await watcher
        res["wall_s"] = time.perf_counter() - t0
        res["cpu_servers_s"] = cpu_s(procs) - cpu0
        res["cpu_machine_busy_s"] = machine_busy_s() - busy0
        s = [r["s"] for r in lat]
        res.update({
            "n_changes_ok": len(s), "p50_s": pct(s, 0.5), "p95_s": pct(s, 0.95),
            "max_s": max(s) if s else float("nan"), "errors": len(errors),
            "error_detail": errors[:10],
            "sessions_per_replica": sorted(
                {c: ProxySession.cookies.count(c) for c in ProxySession.cookies}.values()),
        })
        if refresh and "refresh_wall_start" in res:
            a, b = res.pop("refresh_wall_start"), res.pop("refresh_wall_end")
            during = [r["s"] for r in lat if a <= r["t_done"] <= b + r["s"]]
            after = [r["s"] for r in lat if r["t_done"] - r["s"] > b]
            res["changes_during_refresh"] = len(during)
            res["p95_s_during_refresh"] = pct(during, 0.95)
            # Sent after the pointer moved: these runs read the new version (cold caches).
            res["changes_after_refresh"] = len(after)
            res["p95_s_after_refresh"] = pct(after, 0.95)
    finally:
        stop_stack(proc)
    return res


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sessions", type=int, default=40)
    p.add_argument("--changes", type=int, default=5)
    p.add_argument("--replicas", type=int, default=2)
    p.add_argument("--no-refresh", action="store_true")
    p.add_argument("--timeout", type=float, default=120.0, help="per change")
    p.add_argument("--json", action="store_true")
    a = p.parse_args(argv)
    res = asyncio.run(run(a.sessions, a.changes, a.replicas, not a.no_refresh, a.timeout))
    if a.json:
        print(json.dumps(res, indent=1, default=str))
        return 0
    print(f"{a.sessions} sessions × {a.changes} changes through Caddy, {a.replicas} replicas"
          f"{', one refresh' if not a.no_refresh else ''}: p50 {res['p50_s']:.2f} s, "
          f"p95 {res['p95_s']:.2f} s, max {res['max_s']:.2f} s, errors {res['errors']} "
          f"({res['n_changes_ok']} ok) in {res['wall_s']:.1f} s")
    print(f"sessions per replica: {res['sessions_per_replica']}")
    if not a.no_refresh:
        print(f"refresh (build-demo behind the pointer) took {res.get('refresh_s', float('nan')):.1f}"
              f" s, started after {res.get('refresh_started_at_change')} changes, ok "
              f"{res.get('refresh_ok')}; {res.get('changes_during_refresh')} changes finished "
              f"during it, p95 {res.get('p95_s_during_refresh', float('nan')):.2f} s; "
              f"{res.get('changes_after_refresh')} changes sent after it (new version), p95 "
              f"{res.get('p95_s_after_refresh', float('nan')):.2f} s")
    cores = psutil.cpu_count() or 1
    print(f"CPU during the changes: replicas + Caddy {res['cpu_servers_s']:.1f} s, whole machine "
          f"{res['cpu_machine_busy_s']:.1f} s (of {res['wall_s'] * cores:.0f} core-seconds)")
    for e in res["error_detail"][:5]:
        print("  error:", e)
    return 0 if res["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
