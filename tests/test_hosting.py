"""Hosted mode under AppTest: the role matrix (viewer / analyst / data manager / outside the
allow-list / signed out / session too old), what each is computed, and the audit log."""

import json
import re
import threading
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from lupus_dash import audit, ui

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app.py")
AUTH = {"redirect_uri": "http://localhost:8501/oauth2callback",
        "cookie_secret": "not-a-secret-only-a-test",
        "client_id": "lupus-dash", "client_secret": "x",
        "server_metadata_url": "http://127.0.0.1:9/.well-known/openid-configuration"}
ALLOW = [
    {"match": "@example.org", "role": "viewer"},
    {"match": "group:lupus-analysts", "role": "analyst"},
    {"match": "dm@example.org", "role": "data_manager"},
]
NOW = time.time()


@pytest.fixture(scope="module")
def demo_path(tmp_path_factory) -> Path:
    from lupus_dash import synth

    path = tmp_path_factory.mktemp("hosting") / "demo.duckdb"
    synth.build_demo(path)
    return path


@pytest.fixture(autouse=True)
def _env(demo_path, monkeypatch):
    monkeypatch.setenv("LUPUS_DASH_DB", str(demo_path))
    for var in ("LUPUS_DASH_ROLE", "LUPUS_DASH_MIN_CELL", "LUPUS_DASH_AUDIT_LOG"):
        monkeypatch.delenv(var, raising=False)
    # As in test_pages.py: keep Streamlit's st.navigation mode across AppTest runs.
    from streamlit.runtime.pages_manager import PagesManager

    init = PagesManager.__init__

    def v2_init(self, *args, **kwargs):
        init(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False

    monkeypatch.setattr(PagesManager, "__init__", v2_init)


@pytest.fixture
def log_path(tmp_path) -> Path:
    return tmp_path / "audit.jsonl"


def session(log_path: Path, user: dict | None, hosted: bool = True) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=180)
    if hosted:
        at.secrets["auth"] = AUTH
        at.secrets["lupus_dash"] = {"allow": ALLOW, "audit_log": str(log_path)}
    if user is not None:
        at.user = user
    return at.run()


def signed_in(**claims) -> dict:
    return {"is_logged_in": True, "iat": NOW - 600, **claims}


VIEWER = signed_in(sub="v-1", email="vera@example.org")
ANALYST = signed_in(sub="a-1", email="ann@partner.org", groups=["lupus-analysts"])
MANAGER = signed_in(sub="d-1", email="dm@example.org")
OUTSIDER = signed_in(sub="o-1", email="oscar@elsewhere.org", groups=["other"])


def titles(at: AppTest) -> list[str]:
    return [t.value for t in at.title]


def nothing_computed(at: AppTest) -> None:
    """No database number anywhere: no sidebar panel, metric, table or chart."""
    assert len(at.sidebar) == 0
    assert not at.metric and not at.dataframe and not at.get("vega_lite_chart")
    assert not at.multiselect and not at.selectbox


def assert_clean(at: AppTest) -> None:
    assert not at.exception, [e.message for e in at.exception]
    assert not at.error, [e.value for e in at.error]


@pytest.fixture
def shared_ready():
    # Shared mode is wired at the seam (results.run with shared.SharedPolicy).
    assert ui.SHARED_MODE_READY


def test_local_mode_needs_no_login(log_path):
    at = session(log_path, None, hosted=False)
    assert_clean(at)
    assert titles(at) == ["Overview"]
    assert at.session_state["_who"].local  # data manager, no sign-in
    assert not at.sidebar.caption[0].value.startswith("Signed in")


def test_signed_out_sees_only_the_sign_in_page(log_path):
    at = session(log_path, {"is_logged_in": False})
    assert_clean(at)
    assert titles(at) == ["lupus-dash"]
    assert [b.label for b in at.button] == ["Sign in"]
    nothing_computed(at)


def test_outside_the_allow_list_sees_no_access(log_path):
    at = session(log_path, OUTSIDER)
    assert_clean(at)
    assert titles(at) == ["No access"]
    assert "oscar@elsewhere.org" in at.markdown[0].value
    assert "no access" in at.markdown[0].value
    assert [b.label for b in at.button] == ["Sign out"]
    nothing_computed(at)
    recs = audit.read(log_path)
    assert [(r["event"], r["email"]) for r in recs] == [("refused", "oscar@elsewhere.org")]


def test_too_old_a_session_is_signed_out(log_path):
    at = session(log_path, {**VIEWER, "iat": NOW - 12.5 * 3600})
    assert at.user == {"is_logged_in": False}  # st.logout() ran
    nothing_computed(at)
    assert [(r["event"], r["email"], r["role"]) for r in audit.read(log_path)] == [
        ("expired", "vera@example.org", None)]
    at.run()
    assert titles(at) == ["lupus-dash"]  # the next run is the sign-in page


SHARED_PAGES = ("overview", "biomarkers", "remission", "targets", "subgroups", "safety",
                "data", "methods")


@pytest.mark.parametrize("page", SHARED_PAGES)
def test_viewer_sees_every_page_in_shared_mode_without_an_error(log_path, page):
    at = session(log_path, VIEWER)
    if page != "overview":
        at.switch_page(f"pages/{page}.py").run()
    assert_clean(at)
    assert at.session_state["_policy"].name == "shared-k11"
    assert all(c.key() != "patient_ids" for c in at.session_state["_calls"])
    # Nothing patient-level was computed for the viewer.
    assert not [c for c in at.session_state["_calls"] if c.spec.patient_level]


def test_viewer_on_a_small_filter_sees_only_the_gate_sentence(log_path):
    at = AppTest.from_file(APP, default_timeout=180)
    at.secrets["auth"] = AUTH
    at.secrets["lupus_dash"] = {"allow": ALLOW, "audit_log": str(log_path)}
    at.user = VIEWER
    at.query_params["cohort"] = "csle_belimumab"
    at.query_params["sex"] = "M"  # 5 of 26 patients
    at.run()
    assert_clean(at)
    assert [i.value for i in at.info] == ["Fewer than 11 patients match this filter."]
    assert not at.metric and not at.dataframe and not at.get("vega_lite_chart")
    assert any("Fewer than 11 patients match" in m.value for m in at.sidebar.markdown)
    # and its complement (21 of 26: 5 left out) is refused the same way
    at2 = AppTest.from_file(APP, default_timeout=180)
    at2.secrets["auth"] = AUTH
    at2.secrets["lupus_dash"] = {"allow": ALLOW, "audit_log": str(log_path)}
    at2.user = VIEWER
    at2.query_params["cohort"] = "csle_belimumab"
    at2.query_params["sex"] = "F"
    at2.run()
    assert_clean(at2)
    assert "complement" in at2.info[0].value
    assert not at2.metric


def test_viewer_pages_and_no_uploads(log_path, shared_ready):
    at = session(log_path, VIEWER)
    assert_clean(at)
    assert titles(at) == ["Overview"]
    assert at.sidebar.caption[0].value == "Signed in as vera@example.org · viewer"
    # The Patient page is not registered for a viewer: it cannot be run.
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page("pages/patient.py")
    at.switch_page("pages/data.py").run()
    assert_clean(at)
    assert not at.get("file_uploader")
    assert "data managers" in at.info[0].value


def test_analyst_opens_the_patient_page_but_imports_nothing(log_path):
    at = session(log_path, ANALYST)
    assert_clean(at)
    assert at.sidebar.caption[0].value == "Signed in as ann@partner.org · analyst"
    at.switch_page("pages/patient.py").run()
    assert_clean(at)
    assert titles(at) == ["Patient"]
    at.switch_page("pages/data.py").run()
    assert not at.get("file_uploader")


def test_data_manager_gets_the_uploader(log_path):
    at = session(log_path, MANAGER)
    assert_clean(at)
    at.switch_page("pages/data.py").run()
    assert_clean(at)
    assert len(at.get("file_uploader")) == 1


def test_audit_log_names_who_saw_what(log_path, shared_ready):
    viewer = session(log_path, VIEWER)
    viewer.multiselect(key="f_sex").set_value(["F"]).run()
    analyst = session(log_path, ANALYST)
    analyst.switch_page("pages/patient.py").run()
    recs = audit.read(log_path)
    views = [(r["email"], r["role"], r["page"], json.dumps(r["filter"], sort_keys=True))
             for r in recs if r["event"] == "view"]
    assert views == [
        ("vera@example.org", "viewer", "Overview", '{"cohort": "csle_belimumab"}'),
        ("vera@example.org", "viewer", "Overview",
         '{"cohort": "csle_belimumab", "sex": ["F"]}'),
        ("ann@partner.org", "analyst", "Overview", '{"cohort": "csle_belimumab"}'),
        ("ann@partner.org", "analyst", "Patient", '{"cohort": "csle_belimumab"}'),
    ]
    assert [(r["event"], r["subject"]) for r in recs if r["event"] == "sign_in"] == [
        ("sign_in", "v-1"), ("sign_in", "a-1")]


DOWNLOAD_SCRIPT = """
import streamlit as st
from lupus_dash import ui
ui.auth_gate()
data = ui.audited("table_1.csv", "csv", lambda: b"a,b")
st.write(data().decode())
"""


def test_downloads_are_recorded_when_fetched(log_path):
    at = AppTest.from_string(DOWNLOAD_SCRIPT, default_timeout=60)
    at.secrets["auth"] = AUTH
    at.secrets["lupus_dash"] = {"allow": ALLOW, "audit_log": str(log_path)}
    at.user = ANALYST
    at.run()
    assert_clean(at)
    assert at.markdown[-1].value == "a,b"
    dl = [r for r in audit.read(log_path) if r["event"] == "download"]
    assert [(r["email"], r["file"], r["format"]) for r in dl] == [
        ("ann@partner.org", "table_1.csv", "csv")]


CLICK_SCRIPT = """
import streamlit as st
from lupus_dash import ui
ui.auth_gate()
st.session_state["fetch"] = ui.audited("table_1.csv", "csv", lambda: b"a,b")
"""


def test_a_download_fetched_outside_the_script_run_is_recorded(log_path):
    # Streamlit runs a download's data callable on the click, outside any script run (no
    # session state there): the person and settings are bound when the button is drawn.
    at = AppTest.from_string(CLICK_SCRIPT, default_timeout=60)
    at.secrets["auth"] = AUTH
    at.secrets["lupus_dash"] = {"allow": ALLOW, "audit_log": str(log_path)}
    at.user = ANALYST
    at.run()
    assert_clean(at)
    fetch = at.session_state["fetch"]
    out = []
    t = threading.Thread(target=lambda: out.append(fetch()))  # no script run context
    t.start()
    t.join(30)
    assert out == [b"a,b"]
    dl = [r for r in audit.read(log_path) if r["event"] == "download"]
    assert [(r["email"], r["role"], r["file"]) for r in dl] == [
        ("ann@partner.org", "analyst", "table_1.csv")]


def test_bad_hosting_settings_are_a_plain_error(log_path):
    at = AppTest.from_file(APP, default_timeout=180)
    at.secrets["auth"] = AUTH
    at.secrets["lupus_dash"] = {"allow": [{"match": "x@example.org", "role": "admin"}]}
    at.user = VIEWER
    at.run()
    assert "hosting settings cannot be used" in at.error[0].value
    assert "admin" in at.error[0].value
    nothing_computed(at)


def test_viewer_on_a_cohort_smaller_than_k_sees_no_count_of_it(log_path):
    """The 10-patient nephritis cohort at k = 11: its size is itself a small count."""
    at = AppTest.from_file(APP, default_timeout=180)
    at.secrets["auth"] = AUTH
    at.secrets["lupus_dash"] = {"allow": ALLOW, "audit_log": str(log_path)}
    at.user = VIEWER
    at.query_params["cohort"] = "ln_belimumab"
    at.run()
    assert_clean(at)
    assert [i.value for i in at.info] == ["Fewer than 11 patients match this filter."]
    assert not at.metric and not at.dataframe and not at.get("vega_lite_chart")
    shown = [e.value for kind in ("markdown", "caption", "text", "warning", "info")
             for e in getattr(at, kind) if isinstance(e.value, str)]
    shown += [e.value for kind in ("markdown", "caption") for e in getattr(at.sidebar, kind)
              if isinstance(e.value, str)]
    assert not [s for s in shown if re.search(r"\b10\b", s)], shown
