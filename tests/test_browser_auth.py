"""A real sign-in: headless Chromium, `streamlit run app.py` with an [auth] section, and a real
OIDC provider (oidc-provider-mock 0.3.4) whose users' `groups` claim decides the role.

One user is an analyst through the group lupus-analysts and sees the dashboard; one is in
no allowed group and sees only "No access". The audit log names both.
"""

import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from lupus_dash import audit

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
WAIT_MS = 60_000
USERS = [
    {"sub": "ann", "email": "ann@partner.org", "name": "Ann Analyst",
     "groups": ["lupus-analysts", "staff"]},
    {"sub": "oscar", "email": "oscar@elsewhere.org", "groups": ["staff"]},
]

if not CHROMIUM.exists():
    pytest.skip("Debian chromium is not installed (/usr/bin/chromium)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
pytest.importorskip("oidc_provider_mock", reason="pip install oidc-provider-mock==0.3.4")
pytest.importorskip("authlib", reason="pip install 'streamlit[auth]'")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_url(url: str, proc: subprocess.Popen, what: str, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except OSError:
            if time.time() > deadline or proc.poll() is not None:
                raise RuntimeError(f"{what} did not start") from None
            time.sleep(0.3)


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


def write_secrets(path: Path, app_port: int, idp_port: int, log: Path) -> None:
    path.write_text(f"""
[auth]
redirect_uri = "http://127.0.0.1:{app_port}/oauth2callback"
cookie_secret = "{secrets.token_hex(32)}"
client_id = "lupus-dash"
client_secret = "{secrets.token_hex(16)}"
server_metadata_url = "http://127.0.0.1:{idp_port}/.well-known/openid-configuration"

[lupus_dash]
audit_log = "{log}"
max_session_hours = 12
allow = [ {{ match = "group:lupus-analysts", role = "analyst" }} ]
""", encoding="utf-8")


def start_idp(tmp: Path) -> tuple[subprocess.Popen, int, object]:
    port = free_port()
    cmd = [sys.executable, "-m", "oidc_provider_mock", "-p", str(port)]
    for u in USERS:
        cmd += ["--user-claims", json.dumps(u)]
    log = open(tmp / "idp.log", "w")  # noqa: SIM115 - closed by the caller
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    wait_url(f"http://127.0.0.1:{port}/.well-known/openid-configuration", proc, "IdP")
    return proc, port, log


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """OIDC provider + streamlit with secrets naming it; yields (base URL, audit log path)."""
    from lupus_dash import synth

    tmp = tmp_path_factory.mktemp("auth")
    db = tmp / "demo.duckdb"
    synth.build_demo(db)
    idp, idp_port, idp_log = start_idp(tmp)
    app_port = free_port()
    log = tmp / "audit.jsonl"
    write_secrets(tmp / "secrets.toml", app_port, idp_port, log)
    app_log = open(tmp / "server.log", "w")  # noqa: SIM115 - closed below
    app = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
         "--server.port", str(app_port), "--server.address", "127.0.0.1",
         "--secrets.files", str(tmp / "secrets.toml")],
        cwd=ROOT, env={**os.environ, "LUPUS_DASH_DB": str(db)},
        stdout=app_log, stderr=subprocess.STDOUT,
    )
    try:
        wait_url(f"http://127.0.0.1:{app_port}/_stcore/health", app, "streamlit")
        yield f"http://127.0.0.1:{app_port}", log
    finally:
        stop(app)
        stop(idp)
        app_log.close()
        idp_log.close()


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield b
        b.close()


def sign_in(browser, base: str, sub: str):
    """A fresh browser profile signs in as `sub` at the provider; returns the page."""
    ctx = browser.new_context(viewport={"width": 1300, "height": 900})
    pg = ctx.new_page()
    pg.set_default_timeout(WAIT_MS)
    pg.goto(base + "/")
    pg.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]')
    button = pg.get_by_role("button", name="Sign in")
    for attempt in range(3):
        # On a fresh server the first click can land while the session is still
        # connecting; click again if the browser did not leave for the provider.
        button.click()
        try:
            pg.wait_for_url("**/oauth2/authorize**", timeout=15_000)
            break
        except sync_api.TimeoutError:
            if attempt == 2:
                raise
    pg.get_by_role("button", name=sub, exact=True).click()  # the provider's user picker
    pg.wait_for_url(base + "/**")
    pg.wait_for_selector('[data-testid="stApp"]')
    return pg


def test_signed_out_visitor_sees_only_sign_in(browser, stack):
    base, _ = stack
    ctx = browser.new_context()
    pg = ctx.new_page()
    pg.set_default_timeout(WAIT_MS)
    pg.goto(base + "/safety")
    pg.get_by_role("button", name="Sign in").wait_for()
    assert pg.locator("h1").first.inner_text().strip() == "lupus-dash"
    assert pg.locator('[data-testid="stSidebar"]').count() == 0
    assert pg.locator('[data-testid="stMetric"]').count() == 0
    ctx.close()


def test_analyst_by_group_claim_sees_the_dashboard(browser, stack):
    base, log = stack
    pg = sign_in(browser, base, "ann")
    sidebar = pg.locator('[data-testid="stSidebar"]')
    sidebar.get_by_text("Signed in as ann@partner.org · analyst").wait_for()
    sidebar.get_by_text("26 of 26 patients", exact=True).wait_for()
    assert pg.locator("h1").first.inner_text().strip() == "Overview"
    # An analyst may open the Patient page (registered for this role only).
    assert sidebar.locator('[data-testid="stSidebarNav"]').get_by_text("Patient").count() == 1
    # Every download is recorded (issue 12: who, the file, the filter).
    with pg.expect_download() as dl:
        pg.locator('[data-testid="stDownloadButton"]').filter(has_text="CSV").first.click()
    name = dl.value.suggested_filename
    assert name.endswith(".csv") and dl.value.path().stat().st_size > 0
    pg.context.close()
    recs = audit.read(log)
    assert ("sign_in", "ann@partner.org", "analyst") in {
        (r["event"], r["email"], r["role"]) for r in recs}
    assert any(r["event"] == "view" and r["email"] == "ann@partner.org" for r in recs)
    got = [r for r in recs if r["event"] == "download" and r["email"] == "ann@partner.org"]
    assert [(r["file"], r["format"], r["filter"]) for r in got] == [
        (name, "csv", {"cohort": "csle_belimumab"})]


def test_user_outside_the_allow_list_is_refused(browser, stack):
    base, log = stack
    pg = sign_in(browser, base, "oscar")
    pg.get_by_text("No access", exact=True).wait_for()
    pg.get_by_text("Signed in as oscar@elsewhere.org.", exact=False).wait_for()
    assert pg.locator('[data-testid="stSidebar"]').count() == 0
    assert pg.locator('[data-testid="stMetric"]').count() == 0
    # A deep link does not get round it.
    pg.goto(base + "/patient")
    pg.get_by_text("No access", exact=True).wait_for()
    assert pg.locator('[data-testid="stSidebar"]').count() == 0
    pg.context.close()
    refused = [r for r in audit.read(log) if r["event"] == "refused"]
    assert refused and refused[0]["email"] == "oscar@elsewhere.org"
    assert not any(r["event"] == "view" and r["email"] == "oscar@elsewhere.org"
                   for r in audit.read(log))


@pytest.fixture(scope="module")
def proxied(tmp_path_factory):
    """The README's hosted setup on loopback: IdP, deploy/run_local.sh 2 with secrets."""
    import shutil

    if shutil.which("caddy") is None:
        pytest.skip("caddy is not installed")
    from benchmarks import bench_hosted
    from lupus_dash import synth

    tmp = tmp_path_factory.mktemp("proxied")
    db = tmp / "team.duckdb"
    synth.build_demo(db)
    idp, idp_port, idp_log = start_idp(tmp)
    port = bench_hosted.free_port_block(2)
    log = tmp / "audit.jsonl"
    write_secrets(tmp / "secrets.toml", port, idp_port, log)
    stack_proc = None
    try:
        stack_proc = subprocess.Popen(
            ["bash", str(ROOT / "deploy" / "run_local.sh"), "2", "--port", str(port), "--db",
             str(db), "--run-dir", str(tmp), "--secrets", str(tmp / "secrets.toml")],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        wait_url(f"http://127.0.0.1:{port}/_stcore/health", stack_proc, "Caddy", 120)
        for replica in (port + 1, port + 2):
            wait_url(f"http://127.0.0.1:{replica}/_stcore/health", stack_proc, "replica", 120)
        yield f"http://127.0.0.1:{port}", log
    finally:
        if stack_proc is not None:
            bench_hosted.stop_stack(stack_proc)
        stop(idp)
        idp_log.close()


def test_sign_in_through_caddy_with_two_replicas(browser, proxied):
    base, log = proxied
    pg = sign_in(browser, base, "ann")
    pg.locator('[data-testid="stSidebar"]').get_by_text(
        "Signed in as ann@partner.org · analyst").wait_for()
    cookies = {c["name"] for c in pg.context.cookies()}
    assert "lupus_replica" in cookies  # Caddy's stickiness
    assert any(c.startswith("_streamlit_user") for c in cookies)  # Streamlit's identity cookie
    pg.context.close()
    pg = sign_in(browser, base, "oscar")
    pg.get_by_text("No access", exact=True).wait_for()
    pg.context.close()
    events = {(r["event"], r["email"]) for r in audit.read(log)}
    assert ("sign_in", "ann@partner.org") in events and ("refused", "oscar@elsewhere.org") in events
