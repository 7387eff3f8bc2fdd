"""Who may see what: hosting configuration, the allow-list, roles and session age (pure).

Configuration comes from `.streamlit/secrets.toml` (passed in as a plain mapping)
and the environment. An `[auth]` section means *hosted*: every visitor signs in
with OIDC and must match the allow-list. Without it the app runs in *local* mode
for one person at their own machine, with no login (README's first command).

    [lupus_dash]
    min_cell = 11               # disclosure threshold k (5 at OHDSI-style sites)
    max_session_hours = 12      # sign out this long after the identity provider's login
    audit_log = "/var/log/lupus-dash/audit.jsonl"
    groups_claim = "groups"     # ID-token claim listing the user's groups
    role_claim = ""             # optional ID-token claim naming a role directly
    allow = [
      { match = "alice@example.org", role = "data_manager" },
      { match = "@example.org", role = "viewer" },          # a whole e-mail domain
      { match = "group:lupus-analysts", role = "analyst" }, # a value of the groups claim
    ]

A user is admitted when at least one entry (or the role claim) grants a role;
with several grants the widest role wins. E-mail and domain entries ignore an
e-mail the provider marks `email_verified = false`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

LOCAL = "local"
DEFAULT_MIN_CELL = 11  # CMS and PCORnet publish no cell under 11
DEFAULT_MAX_SESSION_HOURS = 12.0


class Permission(StrEnum):
    """What a role may have computed on the server (hiding a widget is not enough)."""

    AGGREGATE = "aggregate"          # aggregate tables and charts (with disclosure control)
    UNSUPPRESSED = "unsuppressed"    # aggregates without disclosure control
    PATIENT_LEVEL = "patient_level"  # Patient page, trajectories, listings, row-level downloads
    IMPORT = "import"                # Data page import, data refresh


class Role(StrEnum):
    """Roles in order of widening rights."""

    VIEWER = "viewer"
    ANALYST = "analyst"
    DATA_MANAGER = "data_manager"

    @property
    def rank(self) -> int:
        return list(Role).index(self)

    @property
    def permissions(self) -> frozenset[Permission]:
        return ROLE_PERMISSIONS[self]


ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    # viewer: shared mode, aggregates only, every number through the disclosure rules
    Role.VIEWER: frozenset({Permission.AGGREGATE}),
    # analyst: everything a study team member reads, patient level included
    Role.ANALYST: frozenset({Permission.AGGREGATE, Permission.UNSUPPRESSED,
                             Permission.PATIENT_LEVEL}),
    # data manager: the analyst's rights plus imports and refresh
    Role.DATA_MANAGER: frozenset({Permission.AGGREGATE, Permission.UNSUPPRESSED,
                                  Permission.PATIENT_LEVEL, Permission.IMPORT}),
}


class ConfigError(ValueError):
    """A hosting setting that cannot be used, named by its key."""


@dataclass(frozen=True)
class AllowEntry:
    """One allow-list entry: an e-mail, '@domain' or 'group:NAME', and the role it grants."""

    match: str
    role: Role

    @property
    def kind(self) -> str:
        if self.match.startswith("group:"):
            return "group"
        if self.match.startswith("@"):
            return "domain"
        return "email"

    def grants(self, email: str | None, email_ok: bool, groups: frozenset[str]) -> bool:
        if self.kind == "group":
            return self.match[len("group:"):] in groups
        if not email or not email_ok:
            return False
        email = email.strip().lower()
        if self.kind == "domain":
            return email.endswith(self.match.lower()) and email.count("@") == 1
        return email == self.match.lower()


@dataclass(frozen=True)
class HostingConfig:
    """The hosting settings: hosted or local, the allow-list, k, session age, audit log."""

    hosted: bool = False
    allow: tuple[AllowEntry, ...] = ()
    min_cell: int = DEFAULT_MIN_CELL
    max_session_hours: float = DEFAULT_MAX_SESSION_HOURS
    groups_claim: str = "groups"
    role_claim: str | None = None
    local_role: Role = Role.DATA_MANAGER
    audit_log: str | None = None
    providers: tuple[str, ...] = ()  # named providers ([auth.<name>]); empty = the default one

    @property
    def max_session_seconds(self) -> float:
        return self.max_session_hours * 3600.0


@dataclass(frozen=True)
class Principal:
    """The person a session belongs to and the role they act in."""

    role: Role
    subject: str = LOCAL
    email: str | None = None
    name: str | None = None
    groups: frozenset[str] = field(default_factory=frozenset)
    login_at: float | None = None  # seconds since the epoch (the token's auth_time / iat)
    local: bool = False

    def may(self, permission: Permission) -> bool:
        return permission in self.role.permissions

    @property
    def shared(self) -> bool:
        """True when every number this person sees must pass the disclosure rules."""
        return not self.may(Permission.UNSUPPRESSED)

    def audit_fields(self) -> dict[str, Any]:
        return {"subject": self.subject, "email": self.email, "role": str(self.role)}


@dataclass(frozen=True)
class Decision:
    """The gate's answer for one session: allowed, signed_out, refused or expired."""

    status: str
    principal: Principal | None = None
    message: str = ""

    @property
    def allowed(self) -> bool:
        return self.status == "allowed"


# --- configuration ------------------------------------------------------------------------


def _role(value: Any, where: str) -> Role:
    try:
        return Role(str(value).strip().lower())
    except ValueError:
        raise ConfigError(f"{where}: role {value!r} is not one of "
                          f"{', '.join(r.value for r in Role)}") from None


def _entries(raw: Any) -> tuple[AllowEntry, ...]:
    if raw is None:
        return ()
    if isinstance(raw, Mapping):  # [lupus_dash.allow] as a table: match = role
        raw = [{"match": k, "role": v} for k, v in raw.items()]
    if isinstance(raw, str) or not isinstance(raw, Iterable):
        raise ConfigError("[lupus_dash] allow: expected a list of {match = ..., role = ...}")
    out = []
    for i, e in enumerate(raw):
        where = f"[lupus_dash] allow[{i}]"
        if not isinstance(e, Mapping) or "match" not in e or "role" not in e:
            raise ConfigError(f"{where}: expected {{match = ..., role = ...}}, got {e!r}")
        match = str(e["match"]).strip()
        if not match or match in ("@", "group:"):
            raise ConfigError(f"{where}: empty match")
        if not match.startswith(("@", "group:")) and "@" not in match:
            raise ConfigError(f"{where}: {match!r} is neither an e-mail, '@domain' nor "
                              "'group:NAME'")
        out.append(AllowEntry(match, _role(e["role"], where)))
    return tuple(out)


def _number(value: Any, where: str, lo: float, integer: bool = False) -> float:
    try:
        x = int(value) if integer else float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: {value!r} is not a number") from None
    if isinstance(x, float) and not math.isfinite(x) or x < lo:
        raise ConfigError(f"{where}: {value!r} must be at least {lo:g}")
    return x


def load_config(secrets: Mapping[str, Any] | None,
                env: Mapping[str, str] | None = None) -> HostingConfig:
    """Hosting settings from secrets (`[auth]`, `[lupus_dash]`) and LUPUS_DASH_* variables."""
    secrets = secrets or {}
    env = os.environ if env is None else env
    auth = secrets.get("auth")
    hosted = isinstance(auth, Mapping) and len(auth) > 0
    sec = secrets.get("lupus_dash") or {}
    if not isinstance(sec, Mapping):
        raise ConfigError("[lupus_dash] must be a table")

    def get(key: str, env_key: str, default: Any) -> tuple[Any, str]:
        if env.get(env_key) not in (None, ""):
            return env[env_key], env_key
        return sec.get(key, default), f"[lupus_dash] {key}"

    k, where = get("min_cell", "LUPUS_DASH_MIN_CELL", DEFAULT_MIN_CELL)
    min_cell = int(_number(k, where, 2, integer=True))
    h, where = get("max_session_hours", "LUPUS_DASH_MAX_SESSION_HOURS",
                   DEFAULT_MAX_SESSION_HOURS)
    max_hours = _number(h, where, 0.01)
    lr, where = get("local_role", "LUPUS_DASH_ROLE", Role.DATA_MANAGER.value)
    audit, _ = get("audit_log", "LUPUS_DASH_AUDIT_LOG", None)
    providers = tuple(sorted(k for k, v in (auth or {}).items() if isinstance(v, Mapping))) \
        if hosted else ()
    allow = _entries(sec.get("allow"))
    role_claim = str(sec.get("role_claim") or "").strip() or None
    if hosted and not allow and role_claim is None:
        raise ConfigError("[auth] is set but [lupus_dash] allow is empty: nobody could sign in. "
                          "Add entries such as { match = \"@example.org\", role = \"viewer\" }")
    return HostingConfig(
        hosted=hosted,
        allow=allow,
        min_cell=min_cell,
        max_session_hours=max_hours,
        groups_claim=str(sec.get("groups_claim") or "groups"),
        role_claim=role_claim,
        local_role=_role(lr, where),
        audit_log=str(audit) if audit else None,
        providers=providers,
    )


# --- the gate -------------------------------------------------------------------------------


def local_principal(cfg: HostingConfig) -> Principal:
    """The one person of local mode (no login); data manager unless configured otherwise."""
    return Principal(role=cfg.local_role, subject=LOCAL, name="local user", local=True)


def _groups(value: Any) -> frozenset[str]:
    if value is None:
        return frozenset()
    if isinstance(value, str):
        # Some providers send one group, or several separated by spaces/commas.
        return frozenset(g for g in value.replace(",", " ").split() if g)
    if isinstance(value, Iterable):
        return frozenset(str(g) for g in value if g is not None)
    return frozenset({str(value)})


def _login_time(user: Mapping[str, Any]) -> float | None:
    # OIDC Core §2: iat is required in every ID token; auth_time, when sent, is
    # the moment the person actually authenticated (iat may be a silent renewal).
    for key in ("auth_time", "iat"):
        v = user.get(key)
        if v is not None:
            try:
                return float(v)
            except (TypeError, ValueError):
                return None
    return None


def grants(user: Mapping[str, Any], cfg: HostingConfig) -> list[Role]:
    """Every role the allow-list entries and the role claim grant this user."""
    email = user.get("email")
    email_ok = user.get("email_verified") not in (False, "false", "False", 0)
    groups = _groups(user.get(cfg.groups_claim))
    out = [e.role for e in cfg.allow if e.grants(email, email_ok, groups)]
    if cfg.role_claim:
        for r in _groups(user.get(cfg.role_claim)):
            try:
                out.append(Role(r.lower()))
            except ValueError:
                continue  # a claim value that names no role of ours grants nothing
    return out


def decide(user: Mapping[str, Any] | None, cfg: HostingConfig, now: float) -> Decision:
    """Admit, refuse or sign out one session from its ID-token claims (`st.user`)."""
    if not cfg.hosted:
        return Decision("allowed", local_principal(cfg))
    if not user or not user.get("is_logged_in"):
        return Decision("signed_out", message="Sign in to open the dashboard.")
    who = user.get("email") or user.get("name") or user.get("sub") or "this account"
    login_at = _login_time(user)
    if login_at is None:
        return Decision("refused", message=f"Signed in as {who}, but the identity provider did "
                        "not say when (no iat claim), so the session age cannot be checked.")
    if now - login_at > cfg.max_session_seconds:
        return Decision("expired", message=f"The session of {who} is older than "
                        f"{cfg.max_session_hours:g} h; sign in again.")
    roles = grants(user, cfg)
    if not roles:
        return Decision("refused", message=f"Signed in as {who}. This account has no access to "
                        "this dashboard; ask its data manager to add you.")
    role = max(roles, key=lambda r: r.rank)
    return Decision("allowed", Principal(
        role=role,
        subject=str(user.get("sub") or who),
        email=user.get("email"),
        name=user.get("name"),
        groups=_groups(user.get(cfg.groups_claim)),
        login_at=login_at,
    ))
