"""Screenshots of every page, both demo cohorts, at 1280 and 1920 px, normal and presenter.

    python scripts/screenshots.py [--out artifacts/screens] [--pages overview,safety]
        [--cohorts csle_belimumab] [--widths 1280,1920] [--modes normal,presenter]

Starts `streamlit run app.py` on the demo database (built when missing) and drives
Debian's chromium with Playwright (never `playwright install`). Prints one line per
shot with any exception shown on the page; exits 1 if a page showed one. The PNGs
are for a person to look at before calling UI work done.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "scripts"))
from bench_browser import CHROMIUM, CHROMIUM_ARGS
from servers import streamlit_server

PAGES = {"overview": "", "biomarkers": "biomarkers", "remission": "remission",
         "targets": "targets", "subgroups": "subgroups", "patient": "patient",
         "safety": "safety", "data": "data", "methods": "methods"}


def settle(pg, timeout: float = 90) -> None:
    """Until the script has stopped and nothing is loading, for a moment."""
    pg.wait_for_selector('[data-testid="stApp"]')
    stable, deadline = 0, time.time() + timeout
    while stable < 8:
        state = pg.evaluate("() => document.querySelector('[data-testid=\"stApp\"]')"
                            "?.getAttribute('data-test-script-state')")
        busy = pg.locator('[data-testid="stSkeleton"], [data-testid="stSpinner"]').count()
        stable = stable + 1 if state == "notRunning" and not busy else 0
        if time.time() > deadline:
            return
        time.sleep(0.25)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", default=str(ROOT / "artifacts" / "screens"))
    p.add_argument("--db", default=str(ROOT / "data" / "demo.duckdb"))
    p.add_argument("--pages", default=",".join(PAGES))
    p.add_argument("--cohorts", default="csle_belimumab,ln_belimumab")
    p.add_argument("--widths", default="1280,1920")
    p.add_argument("--modes", default="normal,presenter")
    p.add_argument("--extra", default="", help="more query parameters, e.g. bio_tab=...")
    p.add_argument("--tall", type=int, default=4200, help="viewport height of the full shot")
    a = p.parse_args(argv)
    from playwright.sync_api import sync_playwright

    db = Path(a.db)
    if not db.exists():
        sys.path.insert(0, str(ROOT))
        from lupus_dash import synth

        db.parent.mkdir(parents=True, exist_ok=True)
        synth.build_demo(db)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    failures = 0
    with streamlit_server(db, out / "server.log") as base, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for width in (int(w) for w in a.widths.split(",")):
            height = 1080 if width >= 1920 else 800
            pg = browser.new_page(viewport={"width": width, "height": height})
            pg.set_default_timeout(90_000)
            for cohort in a.cohorts.split(","):
                for mode in a.modes.split(","):
                    for page in a.pages.split(","):
                        q = f"cohort={cohort}" + ("&present=1" if mode == "presenter"
                                                  else "")
                        if a.extra:
                            q += "&" + a.extra
                        pg.goto(f"{base}/{PAGES[page]}?{q}")
                        settle(pg)
                        errors = pg.locator('[data-testid="stException"]').count()
                        name = f"{page}_{cohort}_{width}_{mode}.png"
                        # The first screen as a person sees it, then the whole page (the
                        # app scrolls inside its own container, so a tall viewport).
                        pg.screenshot(path=str(out / f"first_{name}"))
                        pg.set_viewport_size({"width": width, "height": a.tall})
                        settle(pg)
                        pg.screenshot(path=str(out / name))
                        pg.set_viewport_size({"width": width, "height": height})
                        failures += bool(errors)
                        print(f"{name}: {'EXCEPTION' if errors else 'ok'}", flush=True)
            pg.close()
        browser.close()
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
