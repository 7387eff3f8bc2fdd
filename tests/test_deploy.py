"""The deploy/ recipe on loopback: `deploy/run_local.sh 2` starts two Streamlit replicas
behind Caddy. Checks the sticky cookie, the health check, that /_stcore/metrics is not
exposed, the security headers, and a whole websocket session (script runs, a page switch,
a filter change) through the proxy."""

import asyncio
import shutil
import subprocess
import urllib.error
import urllib.request

import pytest

pytestmark = pytest.mark.slow

if shutil.which("caddy") is None:
    pytest.skip("caddy is not installed (apt-get install -y caddy)", allow_module_level=True)

from benchmarks import bench_hosted


@pytest.fixture(scope="module")
def proxy(tmp_path_factory):
    from lupus_dash import synth

    tmp = tmp_path_factory.mktemp("deploy")
    db = tmp / "team.duckdb"
    synth.build_demo(db)
    port = bench_hosted.free_port_block(2)
    proc = bench_hosted.start_stack(2, port, db, tmp)
    try:
        yield port, tmp
    finally:
        bench_hosted.stop_stack(proc)
    assert proc.poll() is not None


def get(port: int, path: str, cookie: str | None = None):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}",
                                 headers={"Cookie": cookie} if cookie else {})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


def test_health_through_the_proxy(proxy):
    port, _ = proxy
    status, _, body = get(port, "/_stcore/health")
    assert status == 200 and body == b"ok"


@pytest.mark.parametrize("path", ["/_stcore/metrics", "/_stcore/metrics/x"])
def test_metrics_are_not_exposed(proxy, path):
    port, _ = proxy
    status, _, body = get(port, path)
    assert status in (403, 404)
    assert b"session" not in body.lower()
    # The replicas themselves do answer it (loopback only): the proxy is what blocks it.
    replica = port + 1
    with urllib.request.urlopen(f"http://127.0.0.1:{replica}/_stcore/metrics", timeout=30) as r:
        assert r.status == 200


def test_security_headers(proxy):
    port, _ = proxy
    _, headers, _ = get(port, "/")
    assert headers["Strict-Transport-Security"].startswith("max-age=31536000")
    assert headers["Content-Security-Policy"] == "frame-ancestors 'none'"
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "strict-origin-when-cross-origin"
    assert "Server" not in headers


def test_sticky_cookie_spreads_new_browsers_and_keeps_returning_ones(proxy):
    port, _ = proxy
    cookies = set()
    for _ in range(24):
        _, headers, _ = get(port, "/")
        sets = [h for h in headers.get_all("Set-Cookie") or [] if h.startswith("lupus_replica=")]
        assert len(sets) == 1
        cookies.add(sets[0].split(";", 1)[0])
    assert len(cookies) == 2  # both replicas get new browsers (2**-23 odds of a false fail)
    for cookie in cookies:
        for path in ("/", "/_stcore/health", "/biomarkers"):
            status, headers, _ = get(port, path, cookie)
            assert status == 200
            # A returning browser keeps its replica: no new cookie is handed out.
            assert not [h for h in headers.get_all("Set-Cookie") or []
                        if h.startswith("lupus_replica=")]


def test_websocket_session_through_the_proxy(proxy):
    port, _ = proxy

    async def session():
        async with bench_hosted.ProxySession(port, "cohort=csle_belimumab") as s:
            first = await s.run(120)
            page = await s.open_page("biomarkers", 120)
            _kind, widget = page.widgets["Completers only"]
            s.set_checkbox(widget, True)
            changed = await s.run(120)
            return s.cookie, first, page, changed

    cookie, first, page, changed = asyncio.run(session())
    assert cookie.startswith("lupus_replica=")
    for r in (first, page, changed):
        assert not r.exceptions and not r.error_alerts
    assert page.charts > 0 and changed.charts > 0


def test_rendered_caddyfile(proxy):
    port, run_dir = proxy
    assert sorted(p.name for p in run_dir.glob("replica-*.log")) == [
        f"replica-{port + 1}.log", f"replica-{port + 2}.log"]
    text = (run_dir / "Caddyfile").read_text()
    assert f"reverse_proxy 127.0.0.1:{port + 1} 127.0.0.1:{port + 2} {{" in text
    assert f"http://127.0.0.1:{port} {{" in text
    out = subprocess.run(["caddy", "validate", "--config", str(run_dir / "Caddyfile"),
                          "--adapter", "caddyfile"], capture_output=True, text=True, check=False)
    assert "Valid configuration" in out.stdout + out.stderr
