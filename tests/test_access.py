"""Hosting configuration, the allow-list, roles and session age (lupus_dash.access), and the
audit log read back (lupus_dash.audit)."""

import json
import threading

import pytest

from lupus_dash import access, audit
from lupus_dash.access import Permission, Role

NOW = 1_800_000_000.0
AUTH = {"redirect_uri": "http://localhost:8501/oauth2callback", "cookie_secret": "s",
        "client_id": "c", "client_secret": "x",
        "server_metadata_url": "http://idp/.well-known/openid-configuration"}
ALLOW = [
    {"match": "dm@example.org", "role": "data_manager"},
    {"match": "@example.org", "role": "viewer"},
    {"match": "group:lupus-analysts", "role": "analyst"},
]


def cfg(**extra) -> access.HostingConfig:
    return access.load_config({"auth": AUTH, "lupus_dash": {"allow": ALLOW, **extra}}, env={})


def user(**claims) -> dict:
    return {"is_logged_in": True, "sub": "u1", "iat": NOW - 60, **claims}


# --- configuration -----------------------------------------------------------------------------


def test_no_auth_section_is_local_mode():
    c = access.load_config({}, env={})
    assert not c.hosted and c.min_cell == 11 and c.max_session_hours == 12
    d = access.decide(None, c, NOW)
    assert d.allowed and d.principal.local and d.principal.role == Role.DATA_MANAGER
    assert not d.principal.shared


def test_local_role_can_be_a_viewer_to_try_shared_mode():
    c = access.load_config({}, env={"LUPUS_DASH_ROLE": "viewer", "LUPUS_DASH_MIN_CELL": "5"})
    d = access.decide(None, c, NOW)
    assert d.principal.role == Role.VIEWER and d.principal.shared and c.min_cell == 5


def test_settings_from_secrets_and_env():
    c = cfg(min_cell=5, max_session_hours=8, audit_log="/tmp/a.jsonl", groups_claim="grp")
    assert c.hosted and c.min_cell == 5 and c.max_session_seconds == 8 * 3600
    assert c.audit_log == "/tmp/a.jsonl" and c.groups_claim == "grp"
    assert [e.kind for e in c.allow] == ["email", "domain", "group"]
    env = access.load_config({"auth": AUTH, "lupus_dash": {"allow": ALLOW, "min_cell": 5}},
                             env={"LUPUS_DASH_MIN_CELL": "11"})
    assert env.min_cell == 11  # the environment wins (systemd unit overrides)


def test_named_providers_are_listed():
    c = access.load_config({"auth": {**AUTH, "okta": {"client_id": "x"}},
                            "lupus_dash": {"allow": ALLOW}}, env={})
    assert c.providers == ("okta",)


@pytest.mark.parametrize(("section", "says"), [
    ({"allow": [{"match": "x@y.org", "role": "admin"}]}, "role 'admin'"),
    ({"allow": [{"match": "nobody", "role": "viewer"}]}, "neither an e-mail"),
    ({"allow": [{"role": "viewer"}]}, "expected {match"),
    ({"allow": "alice@example.org"}, "expected a list"),
    ({"allow": ALLOW, "min_cell": 1}, "min_cell"),
    ({"allow": ALLOW, "min_cell": "many"}, "not a number"),
    ({"allow": ALLOW, "max_session_hours": 0}, "max_session_hours"),
    ({}, "allow is empty"),
])
def test_bad_settings_are_named(section, says):
    with pytest.raises(access.ConfigError, match=says):
        access.load_config({"auth": AUTH, "lupus_dash": section}, env={})


def test_allow_as_a_table():
    c = access.load_config({"auth": AUTH, "lupus_dash": {"allow": {"@example.org": "analyst"}}},
                           env={})
    assert c.allow == (access.AllowEntry("@example.org", Role.ANALYST),)


# --- the allow-list and roles ------------------------------------------------------------------


@pytest.mark.parametrize(("claims", "status", "role"), [
    ({"email": "dm@example.org"}, "allowed", Role.DATA_MANAGER),     # widest of two grants
    ({"email": "DM@Example.org"}, "allowed", Role.DATA_MANAGER),     # e-mails ignore case
    ({"email": "ann@example.org"}, "allowed", Role.VIEWER),          # domain
    ({"email": "ann@sub.example.org"}, "refused", None),             # not the same domain
    ({"email": "ann@example.org.evil.com"}, "refused", None),
    ({"email": "ann@other.org", "groups": ["lupus-analysts"]}, "allowed", Role.ANALYST),
    ({"email": "ann@example.org", "groups": ["lupus-analysts"]}, "allowed", Role.ANALYST),
    ({"email": "ann@other.org", "groups": "lupus-analysts other"}, "allowed", Role.ANALYST),
    ({"email": "ann@other.org", "groups": ["lupus"]}, "refused", None),
    ({"email": "ann@other.org"}, "refused", None),
    ({"email": "dm@example.org", "email_verified": False}, "refused", None),  # unverified
    ({"sub": "x"}, "refused", None),                                 # no e-mail at all
])
def test_allow_list(claims, status, role):
    d = access.decide(user(**claims), cfg(), NOW)
    assert d.status == status
    assert (d.principal.role if d.principal else None) == role
    if status == "refused":
        assert "no access" in d.message


def test_role_claim():
    c = cfg(role_claim="lupus_role")
    d = access.decide(user(email="z@other.org", lupus_role="analyst"), c, NOW)
    assert d.allowed and d.principal.role == Role.ANALYST
    assert not access.decide(user(email="z@other.org", lupus_role="admin"), c, NOW).allowed


def test_signed_out():
    assert access.decide({"is_logged_in": False}, cfg(), NOW).status == "signed_out"
    assert access.decide(None, cfg(), NOW).status == "signed_out"


@pytest.mark.parametrize(("age_h", "status"), [
    (11.99, "allowed"), (12.0, "allowed"), (12.01, "expired"), (30 * 24, "expired"),
])
def test_session_age(age_h, status):
    d = access.decide(user(email="ann@example.org", iat=NOW - age_h * 3600), cfg(), NOW)
    assert d.status == status


def test_auth_time_is_the_login_moment():
    # A token renewed silently (fresh iat) still carries the original auth_time.
    u = user(email="ann@example.org", iat=NOW - 60, auth_time=NOW - 13 * 3600)
    assert access.decide(u, cfg(), NOW).status == "expired"


def test_missing_iat_is_refused():
    u = {"is_logged_in": True, "email": "ann@example.org"}
    d = access.decide(u, cfg(), NOW)
    assert d.status == "refused" and "iat" in d.message


@pytest.mark.parametrize(("role", "allowed"), [
    (Role.VIEWER, {Permission.AGGREGATE}),
    (Role.ANALYST, {Permission.AGGREGATE, Permission.UNSUPPRESSED, Permission.PATIENT_LEVEL}),
    (Role.DATA_MANAGER, set(Permission)),
])
def test_role_permissions(role, allowed):
    p = access.Principal(role=role)
    assert {perm for perm in Permission if p.may(perm)} == allowed
    assert p.shared is (role == Role.VIEWER)


# --- audit log ---------------------------------------------------------------------------------


def test_audit_log_reads_back(tmp_path):
    log = audit.AuditLog(tmp_path / "logs" / "audit.jsonl")
    viewer = access.Principal(role=Role.VIEWER, subject="s1", email="v@example.org")
    flt = {"cohort": "csle_belimumab", "values": {"sex": ["F"]}}
    log.record("view", viewer.audit_fields(), page="Overview", filter=flt)
    log.record("download", viewer.audit_fields(), page="Overview", filter=flt,
               file="table_1.csv", format="csv")
    recs = audit.read(tmp_path / "logs" / "audit.jsonl")
    assert [r["event"] for r in recs] == ["view", "download"]
    assert recs[0]["email"] == "v@example.org" and recs[0]["subject"] == "s1"
    assert recs[0]["role"] == "viewer" and recs[0]["filter"] == flt
    assert recs[1]["file"] == "table_1.csv" and recs[1]["ts"].endswith("+00:00")
    with pytest.raises(ValueError):
        log.record("peek", viewer.audit_fields())


def test_audit_log_many_threads(tmp_path):
    path = tmp_path / "audit.jsonl"
    logs = [audit.AuditLog(path), audit.AuditLog(path)]  # two writers, like two replicas
    who = {"subject": "s", "email": "e@x.org", "role": "analyst"}

    def write(i):
        for j in range(50):
            logs[i % 2].record("view", who, page="P" * 2000, n=i * 1000 + j)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 400
    assert sorted(json.loads(x)["n"] for x in lines) == sorted(
        i * 1000 + j for i in range(8) for j in range(50))


def test_example_settings_load():
    # deploy/secrets.toml.example is what the README tells a new host to copy.
    import tomllib
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    c = access.load_config(tomllib.loads(
        (root / "deploy" / "secrets.toml.example").read_text(encoding="utf-8")), env={})
    assert c.hosted and c.min_cell == 11 and c.max_session_hours == 12
    assert [e.role for e in c.allow] == [Role.DATA_MANAGER, Role.ANALYST, Role.VIEWER]
    env = dict(line.split("=", 1) for line in
               (root / "deploy" / "env.example").read_text(encoding="utf-8").splitlines()
               if line and not line.startswith("#"))
    assert set(env) == {"LUPUS_DASH_DB", "LUPUS_DASH_VERSIONED", "LUPUS_DASH_DUCKDB_MEMORY",
                        "LUPUS_DASH_DUCKDB_THREADS", "LUPUS_DASH_AUDIT_LOG",
                        "STREAMLIT_SERVER_COOKIE_SECRET"}
