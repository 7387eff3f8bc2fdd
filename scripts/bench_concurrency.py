"""Concurrency: N simultaneous sessions each making K filter changes on one server.

    python scripts/bench_concurrency.py [--db data/demo.duckdb] [--sessions 20] [--changes 5]
        [--client websocket|browser] [--settle 150] [--json]
        [-- extra streamlit args, e.g. --runner.postScriptGC false]

One `streamlit run app.py` on a free localhost port. Every session opens the
Biomarkers page, then all sessions make K sidebar filter changes at the same
moment, each change sent as soon as the previous one finished (no think time:
the worst case).

--client websocket (default): each session is a websocket speaking Streamlit's
  protobufs (ws_client.py), sending the widget states a browser would send.
  Latency is from the change being sent to the script run having finished:
  the server's share of a filter change. On this 2-core machine this is the
  honest measure: 20 headless browsers leave the server no CPU.
--client browser: one Debian chromium, one browser context per session, clicks
  in the sidebar (the same widget cycle as bench_browser.py); latency includes
  drawing the chart, but the browsers compete with the server for the 2 cores.

Reports p50/p95 latency, errors (timeouts, exceptions or error alerts in the
run, non-success script status), CPU used by the server and by the machine,
and the server's RSS (psutil, process and children) before, at peak, after
the changes, and after the sessions closed plus --settle seconds. Streamlit
keeps a disconnected session for server.disconnectedSessionTTL (120 s by
default) before freeing it, so the default settle is 150 s. Every wait is
bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_browser import (
    CHART,
    CHROMIUM,
    CHROMIUM_ARGS,
    MAIN,
    SIDEBAR,
    SIGNATURE_JS,
    WAIT_MS,
    free_port,
    pct,
    start_server,
    stop_server,
    wait_health,
)
from ws_client import Session


def cpu_s(procs: list[psutil.Process]) -> float:
    """User + system CPU seconds of these processes (vanished ones count 0)."""
    total = 0.0
    for q in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            t = q.cpu_times()
            total += t.user + t.system
    return total


def machine_busy_s() -> float:
    """CPU seconds the whole machine spent busy (all cores, all processes)."""
    t = psutil.cpu_times()
    return t.user + t.nice + t.system + getattr(t, "irq", 0) + getattr(t, "softirq", 0)


def rss_mb(pid: int) -> float:
    """Resident memory of the server process and its children."""
    try:
        p = psutil.Process(pid)
        procs = [p, *p.children(recursive=True)]
    except psutil.NoSuchProcess:
        return float("nan")
    total = 0
    for q in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            total += q.memory_info().rss
    return total / 2**20


async def _signature(page) -> tuple[str | None, int, str]:
    r = await page.evaluate(SIGNATURE_JS)
    return r["state"], r["n"], r["sig"]


async def _wait_changed(page, before: str, timeout_s: float) -> None:
    end = time.perf_counter() + timeout_s
    while time.perf_counter() < end:
        state, n, sig = await _signature(page)
        if n and sig != before and state == "notRunning":
            return
        await asyncio.sleep(0.05)
    raise TimeoutError("chart did not change")


async def _act(page, step: int) -> str:
    """One widget change of the cycle: completers on, + female, completers off, − female."""
    side = page.locator(SIDEBAR)
    kind = step % 4
    if kind in (0, 2):
        await side.get_by_text("Completers only", exact=True).click()
        return "completers on" if kind == 0 else "completers off"
    if kind == 1:
        box = side.locator('[data-testid="stMultiSelect"]').filter(has_text="Sex")
        try:
            await box.locator("input").first.click()
            await page.keyboard.type("female")
            await page.get_by_role("option", name="female", exact=True).click(timeout=10_000)
        finally:
            await page.keyboard.press("Escape")
        return "sex female"
    box = side.locator('[data-testid="stMultiSelect"]').filter(has_text="Sex")
    await box.get_by_role("button", name="Remove female").first.click()
    return "sex − female"


async def session(browser, base: str, changes: int, timeout_s: float, start: asyncio.Event,
                  out: list, errors: list, idx: int, ready: list) -> None:
    ctx = await browser.new_context(viewport={"width": 1300, "height": 900})
    try:
        page = await ctx.new_page()
        await page.goto(f"{base}/biomarkers", timeout=WAIT_MS)
        await page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]',
                                     timeout=WAIT_MS)
        await page.wait_for_selector(f"{MAIN} {CHART}", state="visible", timeout=WAIT_MS)
        ready.append(idx)
        await start.wait()  # every session starts changing filters at the same moment
        for step in range(changes):
            _, _, before = await _signature(page)
            t = time.perf_counter()
            try:
                label = await _act(page, step)
                await _wait_changed(page, before, timeout_s)
                out.append({"session": idx, "change": label, "s": time.perf_counter() - t})
            except Exception as exc:  # noqa: BLE001 — counted as an error, the session goes on
                errors.append({"session": idx, "step": step,
                               "error": f"{type(exc).__name__}: {exc}"[:200]})
            n_exc = await page.locator('[data-testid="stException"]').count()
            if n_exc:
                errors.append({"session": idx, "step": step, "error": "exception on page"})
    except Exception as exc:  # noqa: BLE001
        errors.append({"session": idx, "step": None, "error": f"{type(exc).__name__}: {exc}"[:200]})
    finally:
        await ctx.close()


async def release_and_watch(tasks: list, ready: list, start: asyncio.Event, proc, res: dict,
                            errors: list, poll_s: float) -> None:
    """Wait (bounded) until every session is on its page, release them together, and
    record wall time, CPU and peak/after RSS of the server while they run."""
    sessions = len(tasks)
    t_load = time.perf_counter()
    while (time.perf_counter() - t_load < 180
           and len(ready) + sum(t.done() for t in tasks) < sessions):
        await asyncio.sleep(poll_s)
    res["sessions_open_s"] = time.perf_counter() - t_load
    server = psutil.Process(proc.pid)
    cpu0 = (cpu_s([server]), machine_busy_s())
    t0 = time.perf_counter()
    start.set()
    peak = res["rss_before_mb"]
    while not all(t.done() for t in tasks):
        peak = max(peak, rss_mb(proc.pid))
        await asyncio.sleep(poll_s)
        if time.perf_counter() - t0 > 600:
            for t in tasks:
                t.cancel()
            errors.append({"error": "run exceeded 600 s; sessions cancelled"})
            break
    res["wall_s"] = time.perf_counter() - t0
    # On 2 cores browsers compete with the server: show who used the CPU.
    res["cpu_server_s"] = cpu_s([server]) - cpu0[0]
    res["cpu_machine_busy_s"] = machine_busy_s() - cpu0[1]
    res["rss_peak_mb"] = peak
    res["rss_after_mb"] = rss_mb(proc.pid)


def summarise(res: dict, lat: list, errors: list, settle_s: float) -> dict:
    """Latency percentiles, errors and memory figures into `res`."""
    s = [r["s"] for r in lat]
    res.update({
        "n_changes_ok": len(s),
        "p50_s": pct(s, 0.5),
        "p95_s": pct(s, 0.95),
        "max_s": max(s) if s else float("nan"),
        "errors": len(errors),
        "error_detail": errors[:20],
        "rss_growth_mb": res["rss_after_mb"] - res["rss_before_mb"],
        "rss_returned_mb": res["rss_after_mb"] - res["rss_after_close_mb"],
        "settle_s": settle_s,
    })
    return res


# The filter changes a websocket session cycles through: (label, widget label, value).
WS_CYCLE = [
    ("completers only on", "Completers only", True),
    ("sex: + female", "Sex", ["female"]),
    ("completers only off", "Completers only", False),
    ("class group: + proliferative", "Class group", ["proliferative"]),
    ("sex: − female", "Sex", []),
    ("class group: − proliferative", "Class group", []),
]


async def ws_session(port: int, changes: int, timeout_s: float, start: asyncio.Event,
                     out: list, errors: list, idx: int, ready: list, offset: int = 0) -> None:
    """One websocket session: Overview, then Biomarkers, then K changes once released.

    `offset` starts the session elsewhere in the cycle, so simultaneous sessions ask
    for different filters as real users would.
    """
    try:
        async with Session(port, "cohort=csle_belimumab") as s:
            await s.run(timeout_s)
            r = await s.open_page("biomarkers", timeout_s)
            widgets = dict(r.widgets)
            ready.append(idx)
            await start.wait()
            for step in range(changes):
                label, wlabel, value = WS_CYCLE[(step + offset) % len(WS_CYCLE)]
                try:
                    kind, w = widgets[wlabel]
                    if kind == "checkbox":
                        s.set_checkbox(w, value)
                    else:
                        s.set_multiselect(w, value)
                    r = await s.run(timeout_s)
                    widgets.update(r.widgets)
                    problems = r.exceptions + r.error_alerts
                    if problems:
                        errors.append({"session": idx, "step": step, "error": problems[0]})
                    elif not r.charts:
                        errors.append({"session": idx, "step": step, "error": "no chart drawn"})
                    else:
                        out.append({"session": idx, "step": step, "change": label,
                                    "s": r.seconds, "bytes": r.bytes_received})
                except Exception as exc:  # noqa: BLE001 — counted, the session goes on
                    errors.append({"session": idx, "step": step,
                                   "error": f"{type(exc).__name__}: {exc}"[:200]})
    except Exception as exc:  # noqa: BLE001
        errors.append({"session": idx, "step": None, "error": f"{type(exc).__name__}: {exc}"[:200]})


async def run_ws(db: str, sessions: int, changes: int, extra: list[str], settle_s: float,
                 timeout_s: float, same_sequence: bool = False) -> dict:
    """The websocket variant of `run` (same result keys)."""
    port = free_port()
    proc = start_server(db, port, extra)
    res: dict = {"db": db, "client": "websocket", "sessions": sessions,
                 "changes_per_session": changes, "streamlit_args": extra,
                 "same_sequence": same_sequence}
    try:
        wait_health(port, proc)
        # Warm the server once (imports, first queries) before measuring memory.
        async with Session(port, "cohort=csle_belimumab") as w:
            await w.run(timeout_s)
            await w.open_page("biomarkers", timeout_s)
        await asyncio.sleep(2)
        res["rss_before_mb"] = rss_mb(proc.pid)
        start = asyncio.Event()
        lat: list = []
        errors: list = []
        ready: list = []
        tasks = [asyncio.create_task(ws_session(port, changes, timeout_s, start, lat, errors, i,
                                                ready, 0 if same_sequence else i))
                 for i in range(sessions)]
        await release_and_watch(tasks, ready, start, proc, res, errors, 0.1)
        await asyncio.sleep(settle_s)  # the websockets closed when the sessions ended
        res["rss_after_close_mb"] = rss_mb(proc.pid)
        summarise(res, lat, errors, settle_s)
        res.update({
            "max_message_bytes_per_change": max((r["bytes"] for r in lat), default=0),
            # The first wave asks for filters nobody computed yet; later ones hit caches.
            "p95_s_by_step": [pct([r["s"] for r in lat if r["step"] == k], 0.95)
                              for k in range(changes)],
        })
    finally:
        stop_server(proc)
    return res


async def run(db: str, sessions: int, changes: int, extra: list[str], settle_s: float,
              timeout_s: float) -> dict:
    from playwright.async_api import async_playwright

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = start_server(db, port, extra)
    res: dict = {"db": db, "sessions": sessions, "changes_per_session": changes,
                 "streamlit_args": extra}
    try:
        wait_health(port, proc)
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                # Warm the server once (imports, first queries) before measuring memory.
                warm = await browser.new_context()
                p = await warm.new_page()
                await p.goto(f"{base}/biomarkers", timeout=WAIT_MS)
                await p.wait_for_selector(f"{MAIN} {CHART}", state="visible", timeout=WAIT_MS)
                await warm.close()
                await asyncio.sleep(2)
                res["rss_before_mb"] = rss_mb(proc.pid)
                start = asyncio.Event()
                lat: list = []
                errors: list = []
                ready: list = []
                tasks = [asyncio.create_task(session(browser, base, changes, timeout_s, start,
                                                     lat, errors, i, ready))
                         for i in range(sessions)]
                # Let every session load its page, then release them together (bounded).
                await release_and_watch(tasks, ready, start, proc, res, errors, 0.25)
            finally:
                await browser.close()
        await asyncio.sleep(settle_s)
        res["rss_after_close_mb"] = rss_mb(proc.pid)
        summarise(res, lat, errors, settle_s)
    finally:
        stop_server(proc)
    return res


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, extra = argv[:i], argv[i + 1:]
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--db", default="data/demo.duckdb")
    p.add_argument("--sessions", type=int, default=20)
    p.add_argument("--changes", type=int, default=5)
    p.add_argument("--client", choices=["websocket", "browser"], default="websocket")
    p.add_argument("--same-sequence", action="store_true",
                   help="websocket: every session makes the same changes at the same moment "
                        "(default: session i starts at step i of the cycle)")
    p.add_argument("--settle", type=float, default=150.0,
                   help="seconds to wait after the sessions close before the last RSS")
    p.add_argument("--timeout", type=float, default=60.0, help="per change")
    p.add_argument("--json", action="store_true")
    a = p.parse_args(argv)
    if not Path(a.db).exists():
        print(f"no database at {a.db}: run `python -m lupus_dash build-demo` first",
              file=sys.stderr)
        return 2
    if a.client == "websocket":
        res = asyncio.run(run_ws(a.db, a.sessions, a.changes, extra, a.settle, a.timeout,
                                 a.same_sequence))
    else:
        res = asyncio.run(run(a.db, a.sessions, a.changes, extra, a.settle, a.timeout))
    if a.json:
        print(json.dumps(res, indent=1))
    else:
        seq = " (same sequence)" if a.client == "websocket" and a.same_sequence else ""
        print(f"{a.sessions} {a.client} sessions{seq} × {a.changes} changes {' '.join(extra)}: "
              f"p50 {res['p50_s']:.2f} s, p95 {res['p95_s']:.2f} s, max {res['max_s']:.2f} s, "
              f"errors {res['errors']} ({res['n_changes_ok']} ok) in {res['wall_s']:.1f} s")
        print(f"server RSS: before {res['rss_before_mb']:.0f} MB, peak {res['rss_peak_mb']:.0f} MB, "
              f"after {res['rss_after_mb']:.0f} MB, {a.settle:.0f} s after closing "
              f"{res['rss_after_close_mb']:.0f} MB")
        if "p95_s_by_step" in res:
            print("p95 by step (s): " + ", ".join(f"{x:.2f}" for x in res["p95_s_by_step"]))
        print(f"CPU during the changes: server {res['cpu_server_s']:.1f} s, whole machine "
              f"{res['cpu_machine_busy_s']:.1f} s (of "
              f"{res['wall_s'] * (psutil.cpu_count() or 1):.0f} core-seconds)")
        for e in res["error_detail"][:5]:
            print("  error:", e)
    return 0


if __name__ == "__main__":
    sys.exit(main())
