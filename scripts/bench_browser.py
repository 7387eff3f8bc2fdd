"""End-to-end timing in a real browser: cold start and filter change → updated chart.

    python scripts/bench_browser.py [--db data/demo.duckdb] [--changes 20] [--json]
        [-- extra streamlit args, e.g. --runner.postScriptGC false]

Starts `streamlit run app.py` on a free localhost port against the database,
drives Debian's chromium through Playwright (never `playwright install`), and
measures
  * cold start: from launching streamlit to the first chart visible on the
    default page (Overview), and to the first Biomarkers chart;
  * filter change: on the Biomarkers page, 20 sidebar widget changes
    (completers only, sex, class group; add and remove), each from the click to the
    chart's content having changed and the script having finished.
Every wait is bounded; the server and browser are stopped on exit.

It also reports when the app shell appeared and how long the same first page
takes in a new session once the server is warm (the cold start's import and
first-query share is the difference).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
CHART = '[data-testid="stVegaLiteChart"]'
MAIN = '[data-testid="stMain"]'
SIDEBAR = '[data-testid="stSidebar"]'
WAIT_MS = 60_000  # any single wait


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(db: str, port: int, extra: list[str], app: str = "app.py") -> subprocess.Popen:
    """`streamlit run app.py` on 127.0.0.1:port with LUPUS_DASH_DB=db."""
    env = {**os.environ, "LUPUS_DASH_DB": str(Path(db).resolve())}
    cmd = [sys.executable, "-m", "streamlit", "run", app, "--server.port", str(port),
           "--server.address", "127.0.0.1", "--server.headless", "true",
           "--browser.gatherUsageStats", "false", *extra]
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)


def stop_server(proc: subprocess.Popen) -> None:
    """Stop the server we started (its own process group), bounded."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 15)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, 9)
            proc.wait(5)


def wait_health(port: int, proc: subprocess.Popen, timeout: float = 60) -> None:
    url = f"http://127.0.0.1:{port}/_stcore/health"
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError("streamlit exited: " + proc.stderr.read().decode()[-2000:])
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1) as r:
            if r.status == 200:
                return
        time.sleep(0.05)
    raise TimeoutError("streamlit did not answer /_stcore/health")


# JS: a signature of every chart in the main area (the vega canvas pixels or SVG markup),
# plus whether the script is running. A change of signature means the chart was redrawn
# with other data.
SIGNATURE_JS = """() => {
  const app = document.querySelector('[data-testid="stApp"]');
  const state = app ? app.getAttribute('data-test-script-state') : null;
  const parts = [];
  document.querySelectorAll('[data-testid="stMain"] [data-testid="stVegaLiteChart"]')
    .forEach(el => {
      const c = el.querySelector('canvas');
      if (c) { try { parts.push(c.toDataURL()); } catch (e) { parts.push('x'); } }
      else { const s = el.querySelector('svg'); parts.push(s ? s.outerHTML : ''); }
    });
  return {state: state, n: parts.length, sig: parts.join('|')};
}"""


def signature(page) -> tuple[str | None, int, str]:
    r = page.evaluate(SIGNATURE_JS)
    return r["state"], r["n"], hashlib.sha1(r["sig"].encode()).hexdigest()


def wait_settled(page, timeout_ms: int = WAIT_MS) -> None:
    """The script finished and at least one chart is visible in the main area."""
    page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]',
                           timeout=timeout_ms)
    page.wait_for_selector(f"{MAIN} {CHART}", state="visible", timeout=timeout_ms)


def wait_changed(page, before: str, timeout_s: float = WAIT_MS / 1000) -> float:
    """Seconds until the charts' signature differs from `before` and the script is idle."""
    t0 = time.perf_counter()
    end = t0 + timeout_s
    while time.perf_counter() < end:
        state, n, sig = signature(page)
        if n and sig != before and state == "notRunning":
            return time.perf_counter() - t0
        time.sleep(0.02)
    raise TimeoutError("chart did not change")


def exceptions_on_page(page) -> int:
    return page.locator('[data-testid="stException"]').count()


class Widgets:
    """The sidebar filter widgets by their labels (ui.filter_panel)."""

    def __init__(self, page):
        self.page = page
        self.side = page.locator(SIDEBAR)

    def toggle_completers(self) -> None:
        self.side.get_by_text("Completers only", exact=True).click()

    def multiselect_add(self, label: str, option: str) -> None:
        box = self.side.locator('[data-testid="stMultiSelect"]').filter(has_text=label)
        try:
            box.scroll_into_view_if_needed()  # a scroll would close the menu it opens
            time.sleep(0.3)
            box.locator("input").first.click()
            self.page.keyboard.type(option)
            # Option labels are the plain values (ui._fmt_option: no counts).
            self.page.get_by_role("option", name=option, exact=True).click(timeout=10_000)
        finally:
            # An open listbox hides the rest of the page from the accessibility tree.
            self.page.keyboard.press("Escape")

    def multiselect_remove(self, label: str, option: str) -> None:
        box = self.side.locator('[data-testid="stMultiSelect"]').filter(has_text=label)
        # The chip's remove control (a button) is labelled with the plain option.
        box.locator(f'[aria-label="Remove {option}"]').click()

    def reset(self) -> None:
        self.side.get_by_role("button", name="Reset filters").click()


def change_sequence(n: int) -> list[tuple[str, callable]]:
    """n widget changes cycling through completers only, sex and class group (add/remove).

    Every step changes the patient set on the demo cohort (removing "female" while
    "proliferative" is selected would not: all proliferative patients there are female).
    """
    cycle = [
        ("completers only on", lambda w: w.toggle_completers()),
        ("sex: + female", lambda w: w.multiselect_add("Sex", "female")),
        ("completers only off", lambda w: w.toggle_completers()),
        ("class group: + proliferative", lambda w: w.multiselect_add("Class group",
                                                                     "proliferative")),
        ("class group: − proliferative", lambda w: w.multiselect_remove("Class group",
                                                                        "proliferative")),
        ("sex: − female", lambda w: w.multiselect_remove("Sex", "female")),
    ]
    return [cycle[i % len(cycle)] for i in range(n)]


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    if not xs:
        return float("nan")
    k = (len(xs) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def run(db: str, changes: int, extra: list[str], page_path: str = "biomarkers") -> dict:
    from playwright.sync_api import sync_playwright

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    out: dict = {"db": db, "port": port, "streamlit_args": extra, "changes": []}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        proc = None
        try:
            ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
            page = ctx.new_page()
            t0 = time.perf_counter()
            proc = start_server(db, port, extra)
            wait_health(port, proc)
            out["server_ready_s"] = time.perf_counter() - t0
            page.goto(base + "/", timeout=WAIT_MS)
            page.wait_for_selector('[data-testid="stApp"]', timeout=WAIT_MS)
            out["app_shell_s"] = time.perf_counter() - t0  # the frontend is up, script runs
            page.wait_for_selector(f"{MAIN} {CHART}", state="visible", timeout=WAIT_MS)
            out["cold_start_first_chart_s"] = time.perf_counter() - t0
            # The same first page in a new session (a fresh browser context, so nothing is
            # cached in the browser either) on the now warm server: what the first session
            # paid for imports and DuckDB's first queries is the difference.
            fresh = browser.new_context(viewport={"width": 1400, "height": 1000})
            t_warm = time.perf_counter()
            p2 = fresh.new_page()
            p2.goto(base + "/", timeout=WAIT_MS)
            p2.wait_for_selector(f"{MAIN} {CHART}", state="visible", timeout=WAIT_MS)
            out["warm_server_first_chart_s"] = time.perf_counter() - t_warm
            fresh.close()
            t1 = time.perf_counter()
            page.goto(f"{base}/{page_path}", timeout=WAIT_MS)
            wait_settled(page)
            out["biomarkers_first_load_s"] = time.perf_counter() - t1
            w = Widgets(page)
            lat = []
            for label, act in change_sequence(changes):
                _, _, before = signature(page)
                t = time.perf_counter()
                try:
                    act(w)
                    dt = wait_changed(page, before)
                    rec = {"change": label, "s": dt, "click_s": time.perf_counter() - t - dt}
                    lat.append(time.perf_counter() - t)
                except Exception as exc:  # noqa: BLE001 — recorded, the run continues
                    rec = {"change": label, "error": f"{type(exc).__name__}: {exc}"[:300]}
                rec["exceptions_on_page"] = exceptions_on_page(page)
                out["changes"].append(rec)
            out["filter_change_p50_s"] = pct(lat, 0.5)
            out["filter_change_p95_s"] = pct(lat, 0.95)
            out["errors"] = sum(1 for r in out["changes"] if "error" in r)
            out["n_ok"] = len(lat)
            page.screenshot(path=str(Path(os.environ.get("TMPDIR", "/tmp"))
                                     / "bench_browser_last.png"))
            ctx.close()
        finally:
            browser.close()
            if proc is not None:
                stop_server(proc)
    return out


# Streamlit's own floor on this machine: one title and one three-point Altair chart.
BASELINE_APP = """import altair as alt
import pandas as pd
import streamlit as st

st.title("baseline")
st.altair_chart(alt.Chart(pd.DataFrame({"x": [1, 2, 3], "y": [1, 3, 2]}))
                .mark_line().encode(x="x", y="y"))
"""


def baseline_cold_start() -> dict:
    """Cold start → first chart of the one-chart app above, measured as `run` measures ours."""
    import tempfile

    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        app = Path(tmp) / "baseline.py"
        app.write_text(BASELINE_APP)
        port = free_port()
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            proc = None
            try:
                page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
                t0 = time.perf_counter()
                proc = start_server(str(ROOT / "data" / "demo.duckdb"), port, [], str(app))
                wait_health(port, proc)
                ready = time.perf_counter() - t0
                page.goto(f"http://127.0.0.1:{port}/", timeout=WAIT_MS)
                page.wait_for_selector(f"{MAIN} {CHART}", state="visible", timeout=WAIT_MS)
                return {"server_ready_s": ready, "first_chart_s": time.perf_counter() - t0}
            finally:
                browser.close()
                if proc is not None:
                    stop_server(proc)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, extra = argv[:i], argv[i + 1:]
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--db", default="data/demo.duckdb")
    p.add_argument("--changes", type=int, default=20)
    p.add_argument("--json", action="store_true")
    p.add_argument("--baseline", action="store_true",
                   help="also time the cold start of a one-chart Streamlit app (the floor)")
    a = p.parse_args(argv)
    if not Path(a.db).exists():
        print(f"no database at {a.db}: run `python -m lupus_dash build-demo` first",
              file=sys.stderr)
        return 2
    res = run(a.db, a.changes, extra)
    if a.baseline:
        res["baseline_one_chart_app"] = baseline_cold_start()
    if a.json:
        print(json.dumps(res, indent=1))
    else:
        print(f"cold start → first chart (Overview): {res['cold_start_first_chart_s']:.2f} s "
              f"(server healthy after {res['server_ready_s']:.2f} s, app shell after "
              f"{res['app_shell_s']:.2f} s; the same page in a new session on the warm server "
              f"{res['warm_server_first_chart_s']:.2f} s)")
        if "baseline_one_chart_app" in res:
            b = res["baseline_one_chart_app"]
            print(f"  Streamlit floor (a one-chart app, same measure): {b['first_chart_s']:.2f} s "
                  f"(server healthy after {b['server_ready_s']:.2f} s)")
        print(f"Biomarkers first load: {res['biomarkers_first_load_s']:.2f} s")
        print(f"filter change → updated chart over {res['n_ok']} changes: "
              f"p50 {res['filter_change_p50_s']:.2f} s, p95 {res['filter_change_p95_s']:.2f} s, "
              f"errors {res['errors']}")
        for r in res["changes"]:
            if "error" in r:
                print(f"  {r['change']}: {r['error']}")
        if res["changes"]:
            print("  per change (s): " + ", ".join(
                f"{r['s'] + r['click_s']:.2f}" if "s" in r else "ERR" for r in res["changes"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
