"""Shared mode in a real browser (issue 12): a viewer on a 3-patient filter sees only
"fewer than k patients match" — no count on the page, no download — and on the whole
cohort every table cell that is a count is 0, at least k, or "<k" (downloads included)."""

import csv
import io
import re
from pathlib import Path

import pytest
from servers import streamlit_server
from test_browser import ARGS, CHROMIUM, WAIT_MS, settle

pytestmark = pytest.mark.browser
sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
ROOT = Path(__file__).resolve().parents[1]
K = 5


@pytest.fixture(scope="module")
def viewer_server(tmp_path_factory):
    """`streamlit run app.py` in local mode with the viewer role: shared mode at k = 5."""
    from lupus_dash import synth

    demo = tmp_path_factory.mktemp("shared_browser") / "demo.duckdb"
    synth.build_demo(demo)
    with streamlit_server(demo, demo.parent / "server.log", LUPUS_DASH_ROLE="viewer",
                          LUPUS_DASH_MIN_CELL=str(K)) as base:
        yield base


@pytest.fixture(scope="module")
def page(viewer_server):
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        pg = browser.new_page(viewport={"width": 1400, "height": 1000},
                              accept_downloads=True)
        pg.set_default_timeout(WAIT_MS)
        yield pg
        browser.close()


def test_a_three_patient_filter_shows_only_the_gate(page, viewer_server):
    # csle_belimumab, biopsy class III: 2 patients; with class V: 2 more... a filter of 3
    # patients: immunosuppressant MMF+TAC (2) or TAC (1).
    page.goto(f"{viewer_server}/?cohort=csle_belimumab&immunosuppressant=MMF%2BTAC"
              "&immunosuppressant=TAC")
    settle(page)
    main = page.locator('[data-testid="stMain"]')
    text = main.inner_text()
    assert f"Fewer than {K} patients match this filter." in text
    assert page.locator('[data-testid="stMetric"]').count() == 0
    assert page.locator('[data-testid="stDataFrame"], [data-testid="stTable"]').count() == 0
    assert page.locator('[data-testid="stVegaLiteChart"]').count() == 0
    assert page.locator('[data-testid="stDownloadButton"]').count() == 0
    sidebar = page.locator('[data-testid="stSidebar"]').inner_text()
    assert "3 of" not in sidebar and f"Fewer than {K} patients" in sidebar
    page.screenshot(path=str(ROOT / "artifacts" / "browser_shared_gate.png"))


def test_on_the_whole_cohort_small_counts_are_shown_as_less_than_k(page, viewer_server):
    page.goto(f"{viewer_server}/safety?cohort=csle_belimumab")
    settle(page)
    tables = page.locator('[data-testid="stDataFrame"], [data-testid="stTable"]')
    assert tables.count() >= 1
    with page.expect_download() as dl:
        page.locator('[data-testid="stDownloadButton"]').filter(has_text="CSV").first.click()
    rows = list(csv.reader(io.StringIO(Path(dl.value.path()).read_text(encoding="utf-8"))))
    head, body = rows[0], rows[1:]
    n_col = next(i for i, h in enumerate(head) if h.startswith("Belimumab"))
    for r in body:
        cell = r[n_col]
        if cell.startswith("<") or cell in ("—", "–"):
            continue
        n = int(re.match(r"\d+", cell).group())
        assert n == 0 or n >= K, r  # no count under k in the download
    assert any(r[n_col] == f"<{K}" for r in body)  # the demo has small rows: shown as <k
    page.screenshot(path=str(ROOT / "artifacts" / "browser_shared_safety.png"),
                    full_page=True)


def test_a_viewers_slides_keep_small_counts_withheld(page, viewer_server):
    """The PowerPoint of a viewer's deck is built on the click, outside the script run: it
    still passes the viewer's disclosure rules (small counts shown as <k)."""
    from pptx import Presentation

    page.goto(f"{viewer_server}/?cohort=csle_belimumab")
    settle(page)
    sidebar = page.locator('[data-testid="stSidebar"]')
    box = sidebar.get_by_label("Name this view")
    box.scroll_into_view_if_needed()
    box.fill("Patient flow")
    box.press("Enter")
    settle(page)
    sidebar.get_by_role("button", name="Save this view").click()
    settle(page)
    button = sidebar.locator('[data-testid="stDownloadButton"]').filter(has_text="PowerPoint")
    button.scroll_into_view_if_needed()
    with page.expect_download(timeout=WAIT_MS * 2) as dl:
        button.click()
    slides = list(Presentation(dl.value.path()).slides)
    table = next(sh.table for sh in slides[1].shapes if sh.has_table)
    flow = {r.cells[0].text: r.cells[1].text for r in list(table.rows)[1:]}
    assert flow["Enrolled"] == "26"
    assert f"<{K}" in flow.values()  # the demo's few who stopped: withheld
    for cell in flow.values():
        if cell.startswith("<") or cell in ("—", "–"):
            continue
        n = int(re.match(r"\d+", cell).group())
        assert n == 0 or n >= K, flow
