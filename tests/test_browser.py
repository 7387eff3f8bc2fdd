"""The dashboard in a real browser: `streamlit run app.py` driven by headless Chromium.

Uses Debian's chromium (ENGINEERING_NOTES.md: never `playwright install`). Opens
links with preset filters, changes one filter in the sidebar and waits for the
metric to show the value the seam computes; screenshots go to
artifacts/ (gitignored).
"""

import re
import time
from pathlib import Path

import pytest
from servers import streamlit_server

from lupus_dash.analyses import common, remission
from lupus_dash.db import Database
from lupus_dash.filters import Filter

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "artifacts"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
WAIT_MS = 60_000

if not CHROMIUM.exists():
    pytest.skip("Debian chromium is not installed (/usr/bin/chromium); "
                "apt-get install -y chromium", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")


@pytest.fixture(scope="module")
def demo_path(tmp_path_factory) -> Path:
    from lupus_dash import synth

    path = tmp_path_factory.mktemp("browser") / "demo.duckdb"
    synth.build_demo(path)
    return path


@pytest.fixture(scope="module")
def server(demo_path):
    """A fresh `streamlit run app.py` on a free port; its base URL."""
    with streamlit_server(demo_path, demo_path.parent / "server.log") as base:
        yield base


@pytest.fixture(scope="module")
def page(server):
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        pg = browser.new_page(viewport={"width": 1400, "height": 1000})
        pg.set_default_timeout(WAIT_MS)
        yield pg
        browser.close()


def settle(pg) -> None:
    """Wait until the app has rendered and the script has stopped running for a moment."""
    pg.wait_for_selector('[data-testid="stApp"]')
    stable, deadline = 0, time.time() + WAIT_MS / 1000
    while stable < 6:
        state = pg.evaluate(
            "() => document.querySelector('[data-testid=\"stApp\"]')"
            "?.getAttribute('data-test-script-state')")
        busy = pg.locator('[data-testid="stSkeleton"]').count()
        stable = stable + 1 if state == "notRunning" and not busy else 0
        if time.time() > deadline:
            raise TimeoutError("the app kept running")
        time.sleep(0.25)


def metric_value(pg, label: str) -> str:
    box = pg.locator('[data-testid="stMetric"]').filter(
        has=pg.locator('[data-testid="stMetricLabel"]', has_text=label)).first
    return box.locator('[data-testid="stMetricValue"]').inner_text().strip()


def wait_metric(pg, label: str, want: str) -> None:
    deadline = time.time() + WAIT_MS / 1000
    got = None
    while time.time() < deadline:
        try:
            got = metric_value(pg, label)
        except sync_api.Error:
            got = None
        if got == want:
            return
        time.sleep(0.25)
    raise AssertionError(f"metric {label!r} is {got!r}, expected {want!r}")


def choose(pg, label: str, option: str) -> None:
    """Pick `option` in the sidebar multiselect `label`. The box is scrolled into view
    first: a scroll closes an open menu (the facet captions make the sidebar long)."""
    box = pg.locator('[data-testid="stSidebar"] [data-testid="stMultiSelect"]').filter(
        has_text=label)
    box.scroll_into_view_if_needed()
    time.sleep(0.3)
    box.locator("input").first.click()
    pg.get_by_role("option", name=option, exact=True).click()
    pg.keyboard.press("Escape")


def shot(pg, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    pg.screenshot(path=str(path))
    return path


def test_deep_link_as_first_request_keeps_the_filter(page, server, demo_path):
    # The very first request of a fresh server is a page link with filters: the
    # page must still get the sidebar panel and keep the link's filter.
    db = Database(demo_path)
    flt = Filter.build("ln_belimumab", sex=["F"])
    k, n = common.count_patients(db, flt)
    page.goto(f"{server}/remission?cohort=ln_belimumab&sex=F")
    settle(page)
    assert page.locator("h1").first.inner_text().strip() == "Remission"
    sidebar = page.locator('[data-testid="stSidebar"]')
    sidebar.get_by_text(f"{k} of {n} patients", exact=True).wait_for()
    assert "sex=F" in page.url and "cohort=ln_belimumab" in page.url
    shot(page, "browser_remission_deep_link")
    db.close()


def test_link_with_filters_then_change_one(page, server, demo_path):
    db = Database(demo_path)
    completers = Filter.build("csle_belimumab", completer=[True])
    females = Filter.build("csle_belimumab", completer=[True], sex=["F"])
    k1 = common.count_patients(db, completers)[0]
    k2 = common.count_patients(db, females)[0]
    assert k2 < k1  # the change must show on screen
    final = common.cohort_info(db, "csle_belimumab")["final_week"]
    rem = remission.rates(db, females)
    lldas = rem[(rem["visit_week"].astype(str) == str(final)) & (rem["definition"] == "lldas")]
    db.close()

    page.goto(f"{server}/?cohort=csle_belimumab&completer=true")
    settle(page)
    wait_metric(page, "Patients", str(k1))
    assert page.locator('[data-testid="stSidebar"]').get_by_role("checkbox", name="Completers only").is_checked()
    shot(page, "browser_overview_completers")

    sidebar = page.locator('[data-testid="stSidebar"]')
    choose(page, "Sex", "female")
    wait_metric(page, "Patients", str(k2))
    wait_metric(page, f"LLDAS at week {final}",
                f"{lldas['n_achieved'].iloc[0]}/{lldas['n_denominator'].iloc[0]}")
    assert re.search(r"[?&]sex=F(&|$)", page.url)
    assert "completer=true" in page.url
    shot(page, "browser_overview_completers_female")

    # A page switch keeps the filter in the URL and on screen.
    page.locator('[data-testid="stSidebarNav"]').get_by_text("Safety").click()
    page.wait_for_url(re.compile(r"/safety\?"))
    settle(page)
    assert "sex=F" in page.url and "completer=true" in page.url
    sidebar.get_by_text(f"{k2} of").first.wait_for()
    shot(page, "browser_safety_after_switch")


def test_a_choice_survives_changes_of_the_other_filters(page, server, demo_path):
    """The sex choice stays chosen while the completers box and the class group change
    (it was silently dropped when option labels carried counts that moved)."""
    db = Database(demo_path)
    n_f = common.count_patients(db, Filter.build("csle_belimumab", sex=["F"]))[0]
    n_fc = common.count_patients(db, Filter.build("csle_belimumab", sex=["F"],
                                                  completer=[True]))[0]
    db.close()
    sidebar = page.locator('[data-testid="stSidebar"]')
    page.goto(f"{server}/?cohort=csle_belimumab")
    settle(page)
    choose(page, "Sex", "female")
    wait_metric(page, "Patients", str(n_f))
    for _ in range(2):  # completers on, then off: the women's facet count moves
        sidebar.get_by_text("Completers only", exact=True).click()
        settle(page)
    wait_metric(page, "Patients", str(n_f))
    choose(page, "Class group", "proliferative")
    settle(page)
    sidebar.locator('[aria-label="Remove proliferative"]').click()
    settle(page)
    wait_metric(page, "Patients", str(n_f))
    assert sidebar.locator('[aria-label="Remove female"]').count() == 1
    sidebar.get_by_text("Completers only", exact=True).click()
    wait_metric(page, "Patients", str(n_fc))
    assert re.search(r"[?&]sex=F(&|$)", page.url)


def _download(pg, button) -> tuple[str, bytes]:
    """Click a download button; the file's name and bytes (the data is built on the click,
    outside the script run that drew the button)."""
    button.scroll_into_view_if_needed()
    with pg.expect_download(timeout=WAIT_MS * 2) as dl:
        button.click()
    return dl.value.suggested_filename, Path(dl.value.path()).read_bytes()


def test_word_table_and_powerpoint_slides_download(page, server):
    """Table 1 as Word and the deck as PowerPoint: both are built on the click, outside the
    script run (they failed there when they read the page context at that point)."""
    import io

    from docx import Document
    from pptx import Presentation

    page.goto(f"{server}/?cohort=csle_belimumab&completer=true")
    settle(page)
    main = page.locator('[data-testid="stMain"]')
    name, data = _download(page, main.locator('[data-testid="stDownloadButton"]').filter(
        has_text="Word").first)
    assert name == "table1.docx"
    doc = Document(io.BytesIO(data))
    assert doc.paragraphs[0].text.startswith("Table 1")
    assert any("csle_belimumab: completers" in p.text for p in doc.paragraphs)
    assert len(doc.tables) == 1 and len(doc.tables[0].rows) > 5

    # A new session (on a fresh server the first session's first click drops the link's
    # filters: a separate fault, not what this test is about).
    page.goto(f"{server}/?cohort=csle_belimumab&completer=true")
    settle(page)
    sidebar = page.locator('[data-testid="stSidebar"]')
    box = sidebar.get_by_label("Name this view")
    box.scroll_into_view_if_needed()
    box.fill("Completers overview")
    box.press("Enter")
    settle(page)
    sidebar.get_by_role("button", name="Save this view").click()
    settle(page)
    name, data = _download(page, sidebar.locator('[data-testid="stDownloadButton"]').filter(
        has_text="PowerPoint"))
    assert name == "deck.pptx"
    slides = list(Presentation(io.BytesIO(data)).slides)
    assert len(slides) == 3  # title, the scene, the comparison log
    texts = " ".join(sh.text_frame.text for sh in slides[1].shapes if sh.has_text_frame)
    assert "Completers overview" in texts and "csle_belimumab: completers" in texts


def test_presenter_mode_hides_the_sidebar(page, server):
    page.goto(f"{server}/biomarkers?cohort=csle_belimumab&present=1")
    settle(page)
    assert not page.locator('[data-testid="stSidebar"]').is_visible()
    sentence = page.locator(".lupus-sentence").first
    sentence.wait_for()
    assert sentence.inner_text().startswith("csle_belimumab: all patients")
    size = page.evaluate("() => parseFloat(getComputedStyle("
                         "document.querySelector('.lupus-sentence')).fontSize)")
    assert size >= 28  # projector-sized type (1.9rem of a 22px base; 16.8px on screen normally)
    shot(page, "browser_biomarkers_presenter")
