"""The Data page's mapping editor in a real browser, as a new user would use it.

Uploads the messy spreadsheet (other headers, mg/dL, 1/2 sex, decimal commas), sees the
suggested mapping refuse the coded sex, types the value map into the editor, sees the
import become valid and imports it into a new database file whose patients match the
clean twin. Screenshots go to artifacts/ (gitignored).
"""

from __future__ import annotations

import time
from pathlib import Path

import duckdb
import pytest
from servers import streamlit_server

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
MESSY = ROOT / "tests" / "fixtures" / "messy_spreadsheet"
ARTIFACTS = ROOT / "artifacts"
WAIT_MS = 90_000

if not CHROMIUM.exists():
    pytest.skip("Debian chromium is not installed (/usr/bin/chromium)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from lupus_dash import synth

    folder = tmp_path_factory.mktemp("mapping_browser")
    db = folder / "demo.duckdb"
    synth.build_demo(db)
    with streamlit_server(db, folder / "server.log") as base:
        yield base, folder


def settle(pg) -> None:
    """Wait until the script has stopped running for a moment (as tests/test_browser.py)."""
    stable, deadline = 0, time.time() + WAIT_MS / 1000
    while stable < 6:
        state = pg.evaluate(
            "() => document.querySelector('[data-testid=\"stApp\"]')"
            "?.getAttribute('data-test-script-state')")
        stable = stable + 1 if state == "notRunning" else 0
        if time.time() > deadline:
            raise TimeoutError("the app kept running")
        time.sleep(0.25)


def test_mapping_editor_edit_validate_import(server):
    base, folder = server
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM),
                                    args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1920, "height": 1080})
        page.set_default_timeout(WAIT_MS)
        valid = "text=Valid: 1 cohort(s) (MESSY), 3 patients, 6 visits, 2 adverse events."
        ARTIFACTS.mkdir(exist_ok=True)
        for attempt in range(3):
            # Each attempt in a fresh session: on a loaded machine the grid may swallow an
            # arrow key, and the value map then lands in the wrong cell of that session.
            page.goto(f"{base}/data")
            page.wait_for_selector("input[type=file]", state="attached")
            page.set_input_files("input[type=file]",
                                 [str(f) for f in sorted(MESSY.iterdir())])
            page.wait_for_selector("text=Column mapping")
            page.wait_for_selector("text=3 problem(s) found")  # the coded sex, 3 rows
            if attempt == 0:
                page.screenshot(path=str(ARTIFACTS / "data_mapping_suggested.png"))
            settle(page)
            grid = page.locator("[data-testid=stDataFrame]").first  # patients
            grid.scroll_into_view_if_needed()
            time.sleep(0.5)
            box = grid.bounding_box()
            # Row 3 (Geschlecht), column 4 (values): header and rows are 35 px high.
            page.mouse.click(box["x"] + 20, box["y"] + 35 + 35 * 2 + 17)
            for _ in range(3):
                time.sleep(0.3)
                page.keyboard.press("ArrowRight")
            time.sleep(0.3)
            page.keyboard.press("Enter")
            time.sleep(1)
            page.keyboard.type("1 → F; 2 → M")
            page.keyboard.press("Enter")
            page.mouse.click(5, 5)
            try:
                page.wait_for_selector(valid, timeout=30_000)
                break
            except sync_api.Error:
                page.screenshot(path=str(ARTIFACTS / f"data_mapping_attempt{attempt}.png"),
                                full_page=True)
        page.wait_for_selector(valid)
        settle(page)
        page.get_by_text("a new database file").click()
        name = page.get_by_label(f"File name (in {folder})")
        name.fill("messy.duckdb")
        name.press("Enter")
        time.sleep(1)
        settle(page)
        page.get_by_role("button", name="Import").click()
        page.wait_for_selector("text=Imported MESSY into")
        page.screenshot(path=str(ARTIFACTS / "data_mapping_imported.png"))
        browser.close()
    con = duckdb.connect(str(folder / "messy.duckdb"), read_only=True)
    try:
        rows = con.execute("SELECT patient_id, sex, height_cm, immunosuppressant FROM patients "
                           "ORDER BY patient_id").fetchall()
    finally:
        con.close()
    assert rows == [("P1", "F", 152.0, "MMF"), ("P2", "M", 161.0, "MMF after CYC"),
                    ("P3", "F", 148.0, "none")]
