"""Streamlit glue: database access, caching, the sidebar filter panel, URL state, outputs.

The only module of `lupus_dash` that imports streamlit. Pages call `ui.page()`
for the shared context, `ui.compute()` for cached `analysis` / `explore`
results and `ui.chart()` / `ui.table()` to render with downloads and a
"Reproduce" expander.
"""

from __future__ import annotations

import io
import json
import math
import os
import shlex
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import altair as alt
import pandas as pd
import streamlit as st
from streamlit import config as st_config

from . import access, analysis, audit, charts, explore, report, schema
from .access import HostingConfig, Permission, Principal
from .db import Database, DatabaseError, DataStore, Snapshot
from .filters import MISSING, Filter, FilterError

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DB = "data/demo.duckdb"
PREFERRED_COHORT = "csle_belimumab"

# Sidebar filter widgets: (filter column, label). Order = panel order.
TEXT_FILTERS = (
    ("biopsy_class", "Biopsy class"),
    ("class_group", "Class group"),
    ("immunosuppressant", "Immunosuppressant"),
    ("sex", "Sex"),
    ("baseline_anti_dsdna", "Baseline anti-dsDNA"),
)
FILTER_KEYS = (
    "f_cohort", *(f"f_{c}" for c, _ in TEXT_FILTERS), "f_age", "f_organs", "f_completer",
)
_SEX = {"F": "female", "M": "male"}

PRESENTER_CSS = """
<style>
html, body, .stApp { font-size: 22px; }
[data-testid="stMarkdownContainer"] p, [data-testid="stMarkdownContainer"] li,
[data-testid="stWidgetLabel"] p, [data-testid="stCaptionContainer"] { font-size: 1.3rem !important; }
[data-testid="stSelectbox"] *, [data-testid="stMultiSelect"] *,
[data-testid="stTextInput"] input, [data-baseweb="tab"] p, .stRadio label p,
[data-testid="stExpander"] summary p { font-size: 1.25rem !important; }
.stApp h1 { font-size: 3.0rem !important; }
.stApp h2 { font-size: 2.3rem !important; }
.stApp h3 { font-size: 1.9rem !important; }
[data-testid="stMetricValue"], [data-testid="stMetricValue"] div,
[data-testid="stMetricValue"] p { font-size: 2.7rem !important; line-height: 1.15; }
[data-testid="stMetricLabel"] p { font-size: 1.05rem !important; }
[data-testid="stSidebar"], [data-testid="stSidebarCollapsedControl"],
[data-testid="stExpandSidebarButton"] { display: none !important; }
.stApp table { font-size: 1.3rem !important; }
.lupus-sentence { font-size: 1.9rem; font-weight: 600; padding: 0.2rem 0 0.6rem 0;
  border-bottom: 3px solid #0072B2; margin-bottom: 0.6rem; }
[data-testid="stMainBlockContainer"] { padding-top: 2.5rem; max-width: 100%; }
</style>
"""
NORMAL_CSS = """
<style>
.lupus-sentence { font-size: 1.05rem; font-weight: 500; color: #31333F;
  border-left: 4px solid #0072B2; padding: 0.15rem 0 0.15rem 0.6rem; margin-bottom: 0.4rem; }
</style>
"""


# --- database -------------------------------------------------------------------


def db_path() -> Path:
    """The database file: one opened on the Data page, $LUPUS_DASH_DB, else data/demo.duckdb."""
    override = st.session_state.get("db_path_override")
    p = Path(override or os.environ.get("LUPUS_DASH_DB", DEFAULT_DB))
    return p if p.is_absolute() else ROOT / p


@st.cache_resource
def _registry() -> dict:
    # One DataStore per path, shared by every session of this process. A refresh
    # never closes a connection under a running query: each script run reads the
    # snapshot it started with (db.DataStore; versioned files in hosted mode).
    return {"lock": threading.Lock(), "stores": {}}


def get_db() -> Snapshot:
    """This run's snapshot of db_path(): one data version for every query of the run."""
    path = db_path()
    if not path.exists():
        raise DatabaseError(
            f"No database at {path}. Build the demo with `python -m lupus_dash build-demo "
            f"--db {path}` or import a cohort with `python -m lupus_dash import FOLDER --db "
            f"{path}`, then reload this page."
        )
    reg = _registry()
    with reg["lock"]:
        store = reg["stores"].get(str(path))
        if store is None:
            store = reg["stores"][str(path)] = DataStore(path)
    return store.snapshot()


def forget_db(path: Path) -> None:
    """Kept for callers written before DataStore: a rewritten file is picked up by itself."""


def ensure_demo() -> None:
    """Build the demo database on first start when the default file is missing."""
    path = db_path()
    if path.exists() or "LUPUS_DASH_DB" in os.environ or st.session_state.get(
            "db_path_override"):
        return
    from . import synth

    with st.spinner("First start: building the demo cohorts (a few seconds)…"):
        path.parent.mkdir(parents=True, exist_ok=True)
        synth.build_demo(path)


# --- hosting: sign-in, roles, audit (issue 12) -------------------------------------------
#
# No [auth] section in the secrets: local mode, one person, no login. With one:
# every session signs in (OIDC, st.login), must match the allow-list, and is
# signed out after max_session_hours (Streamlit never checks token expiry).
# A refused person gets a plain page and nothing is computed for them.

# Shared mode's numbers pass lupus_dash.disclosure at the output seam (issue 11).
# Until that seam applies it, viewers are stopped instead of shown unsuppressed
# numbers; the seam sets this True.
SHARED_MODE_READY = False
# Pages a role must hold a permission to open (never run for anyone else).
PAGE_PERMISSIONS = {"pages/patient.py": Permission.PATIENT_LEVEL}


def _secrets() -> dict:
    try:
        return st.secrets.to_dict() if st.secrets.load_if_toml_exists() else {}
    except FileNotFoundError:
        return {}


def hosting() -> HostingConfig:
    """The hosting settings of this run (secrets.toml and LUPUS_DASH_* variables)."""
    return access.load_config(_secrets())


@st.cache_resource
def _audit_logs() -> dict:
    return {}


def _audit_log(cfg: HostingConfig) -> audit.AuditLog | None:
    path = cfg.audit_log or (str(ROOT / "logs" / "audit.jsonl") if cfg.hosted else None)
    if path is None:
        return None
    logs = _audit_logs()
    return logs.setdefault(path, audit.AuditLog(path))


def record(event: str, who: Principal | None = None, **fields) -> None:
    """Append an audit record for this session (no-op when no log is configured)."""
    cfg = st.session_state.get("_hosting") or hosting()
    log = _audit_log(cfg)
    if log is None:
        return
    who = who or st.session_state.get("_who")
    ident = who.audit_fields() if who else {"subject": None, "email": None, "role": None}
    log.record(event, ident, **fields)


def who() -> Principal:
    """The person this session belongs to (set by the sign-in gate)."""
    return st.session_state["_who"]


def may(permission: Permission) -> bool:
    """Whether this session's role may have `permission` computed."""
    p = st.session_state.get("_who")
    return p is not None and p.may(permission)


def may_open(page_file: str) -> bool:
    """Whether this session's role may open the page file (app.py's navigation)."""
    need = PAGE_PERMISSIONS.get(page_file)
    return need is None or may(need)


def audited(file_name: str, fmt: str, data):
    """A download's data callable that records the download when it is fetched."""
    def fetch():
        ctx = st.session_state.get("_ctx")
        record("download", file=file_name, format=fmt,
               filter=json.loads(ctx.flt.to_json()) if ctx else None)
        return data() if callable(data) else data
    return fetch


def audit_view(page_title: str) -> None:
    """Record a page view when the page or the filter changed since the last record."""
    ctx = st.session_state.get("_ctx")
    flt = ctx.flt.to_json() if ctx else None
    if st.session_state.get("_last_view") == (page_title, flt):
        return
    st.session_state["_last_view"] = (page_title, flt)
    record("view", page=page_title, filter=json.loads(flt) if flt else None)


def upload_files(label: str, **kwargs) -> list:
    """The import uploader for data managers; for anyone else a note and no uploader."""
    if not may(Permission.IMPORT):
        st.info("Imports and refreshes are done by this dashboard's data managers.")
        return []
    return st.file_uploader(label, accept_multiple_files=True, **kwargs) or []


def _stop() -> None:
    """End this run showing only what was written; no page of the app is registered.

    Without a navigation call Streamlit would list the pages/ folder in the sidebar
    (its older multipage mode), e.g. on a deep link that is a fresh server's first
    request.
    """
    st.navigation([st.Page(_stop, title="lupus-dash", default=True)], position="hidden")
    st.stop()


def _sign_in_page(cfg: HostingConfig, message: str) -> None:
    st.title("lupus-dash")
    st.write(message)
    for provider in cfg.providers or (None,):
        label = "Sign in" if provider is None else f"Sign in with {provider}"
        if st.button(label, type="primary", key=f"sign_in_{provider}"):
            st.login(provider) if provider else st.login()


def auth_gate() -> Principal:
    """Admit this session or stop: sign-in page, "no access" page, or sign-out when too old."""
    try:
        cfg = hosting()
    except access.ConfigError as exc:
        st.error(f"**This dashboard's hosting settings cannot be used.** {exc}")
        _stop()
    st.session_state["_hosting"] = cfg
    if cfg.hosted:
        # Tracebacks and exception texts stay in the server log, not the browser.
        st_config.set_option("client.showErrorDetails", "none")
    decision = access.decide(dict(st.user) if cfg.hosted else None, cfg, time.time())
    if decision.status == "signed_out":
        st.session_state.pop("_who", None)
        _sign_in_page(cfg, decision.message)
        _stop()
    if decision.status == "expired":
        log = _audit_log(cfg)
        if log is not None:
            log.record("expired", {"subject": st.user.get("sub"), "email": st.user.get("email"),
                                   "role": None}, reason=decision.message)
        st.session_state.pop("_who", None)
        st.logout()
        _stop()
    if decision.status == "refused":
        if not st.session_state.get("_refused_logged"):
            st.session_state["_refused_logged"] = True
            log = _audit_log(cfg)
            if log is not None:
                log.record("refused", {"subject": st.user.get("sub"),
                                       "email": st.user.get("email"), "role": None},
                           reason=decision.message)
        st.title("No access")
        st.write(decision.message)
        if st.button("Sign out", key="sign_out_refused"):
            st.logout()
        _stop()
    principal = decision.principal
    if st.session_state.get("_who") != principal:
        st.session_state["_who"] = principal
        if cfg.hosted:
            record("sign_in", principal)
    if principal.shared and not SHARED_MODE_READY:
        st.title("Shared mode is not available yet")
        st.write("Your role is *viewer*: you would see numbers with small counts withheld, "
                 "and that protection is not switched on in this version. Ask this "
                 "dashboard's data manager for access.")
        if st.button("Sign out", key="sign_out_viewer"):
            st.logout()
        _stop()
    if cfg.hosted:
        with st.sidebar:
            st.caption(f"Signed in as {principal.email or principal.name or principal.subject}"
                       f" · {principal.role.value.replace('_', ' ')}")
            if st.button("Sign out", key="sign_out"):
                record("sign_out", principal)
                st.logout()
    return principal


# --- cached computations -----------------------------------------------------------

_MODULES = {"analysis": analysis, "explore": explore, "report": report}


@st.cache_data(max_entries=512, show_spinner=False)
def _cached(name: str, version: tuple, flt_json: str | None, kwargs_json: str, _db: Database):
    module, fn = name.split(".")
    func = getattr(_MODULES[module], fn)
    kwargs = json.loads(kwargs_json)
    if flt_json is None:
        return func(_db, **kwargs)
    return func(_db, Filter.from_json(flt_json), **kwargs)


def compute(name: str, flt: Filter | None = None, **kwargs):
    """`module.function(db, flt, **kwargs)` from analysis/explore/report, cached per db version."""
    db = current().db
    return _cached(
        name, db.version, None if flt is None else flt.to_json(),
        json.dumps(kwargs, sort_keys=True, default=list), db,
    )


# --- URL state -------------------------------------------------------------------


def _url_snapshot() -> dict[str, list[str]]:
    """Query params as they were when this browser session started."""
    return st.session_state.setdefault("_url", {})


def url_value(key: str) -> list[str] | None:
    """The URL's value(s) for a page widget, once (later runs keep the widget's own state)."""
    return _url_snapshot().pop(key, None)


def _params_base(flt: Filter, presenter: bool) -> dict[str, list[str]]:
    q = flt.to_query_params()
    if presenter:
        q["present"] = ["1"]
    return q


def url_widget(kind: str, label: str, options, key: str, default=None, **kw):
    """A selectbox / radio / segmented control / toggle / text input whose value lives in the URL.

    The URL is read on the first run of a session; the value is written back on
    every run so a copied link (or a reload after a page switch) shows the same view.
    """
    options = list(options) if options is not None else None
    if key not in st.session_state:
        raw = url_value(key)
        value = default
        if raw:
            if kind in ("toggle", "checkbox"):
                value = raw[0].lower() in ("1", "true", "yes")
            elif kind == "multiselect":
                value = [o for o in options if str(o) in raw]
            elif kind == "text":
                value = raw[0]
            else:
                match = [o for o in options if str(o) == raw[0]]
                value = match[0] if match else default
        if kind not in ("toggle", "checkbox", "multiselect", "text") and value not in options:
            value = options[0] if options else None
        st.session_state[key] = value
    elif (kind not in ("toggle", "checkbox", "multiselect", "text")
          and st.session_state[key] not in options):
        st.session_state[key] = default if default in options else (options[0] if options else None)
    if kind == "selectbox":
        v = st.selectbox(label, options, key=key, **kw)
    elif kind == "radio":
        v = st.radio(label, options, key=key, horizontal=True, **kw)
    elif kind == "segmented":
        v = st.segmented_control(label, options, key=key, required=True, **kw)
    elif kind == "toggle":
        v = st.toggle(label, key=key, **kw)
    elif kind == "checkbox":
        v = st.checkbox(label, key=key, **kw)
    elif kind == "multiselect":
        v = st.multiselect(label, options, key=key, **kw)
    elif kind == "text":
        v = st.text_input(label, key=key, **kw)
    else:
        raise ValueError(f"unknown widget kind {kind!r}")
    if kind in ("toggle", "checkbox"):
        st.query_params[key] = "1" if v else "0"
    elif kind == "multiselect":
        st.query_params[key] = [str(x) for x in v]
    elif v is not None:
        st.query_params[key] = str(v)
    return v


def url_tabs(labels: list[str], key: str) -> list:
    """Tabs whose selection lives in the URL and whose content runs only when open.

    `st.tabs(on_change="rerun")` tracks the open tab, so a page computes the
    open tab's content only (`tab.open`); a closed tab costs nothing on a filter
    change. The open tab is written to the URL so a shared link opens the same tab.
    """
    default = None
    if key not in st.session_state:
        raw = url_value(key)
        if raw and raw[0] in labels:
            default = raw[0]
    tabs = st.tabs(labels, key=key, on_change="rerun", default=default)
    open_label = next((lab for lab, t in zip(labels, tabs, strict=True) if t.open), labels[0])
    if open_label != labels[0]:
        st.query_params[key] = open_label
    return tabs


# --- filter panel ----------------------------------------------------------------


def _init_from_url(db: Database, cohorts: list[str]) -> None:
    """Fill the filter widgets from the URL on the first run of a session."""
    if st.session_state.get("_url_loaded"):
        return
    st.session_state["_url_loaded"] = True
    qp = st.query_params
    snap = {k: list(qp.get_all(k)) for k in qp}
    st.session_state["_url"] = dict(snap)
    default = PREFERRED_COHORT if PREFERRED_COHORT in cohorts else cohorts[0]
    notes = []
    try:
        flt = Filter.from_query_params(snap, default)
    except FilterError as exc:
        notes.append(f"The link's filter was not understood ({exc}); showing all patients.")
        flt = Filter((snap.get("cohort") or [default])[0])
    if flt.cohort not in cohorts:
        notes.append(f"The link names cohort {flt.cohort!r}, which this database does not have; "
                     f"showing {default}.")
        flt = Filter(default)
    st.session_state["f_cohort"] = flt.cohort
    opts = explore.filter_options(db, flt.cohort)
    for col, label in TEXT_FILTERS:
        want = [str(v) for v in flt.get(col)]
        keep = [v for v in want if v in opts[col]]
        if len(keep) < len(want):
            notes.append(f"{label}: no patient in {flt.cohort} has "
                         f"{', '.join(v for v in want if v not in keep)}; dropped.")
        if keep:
            st.session_state[f"f_{col}"] = keep
    lo, hi = _age_limits(db, flt.cohort)
    if lo is not None and (flt.age_min is not None or flt.age_max is not None):
        a, b = _age_bounds(lo, hi)
        st.session_state["f_age"] = (
            max(a, int(flt.age_min) if flt.age_min is not None else a),
            min(b, int(-(-flt.age_max // 1)) if flt.age_max is not None else b),
        )
    organs = [o for o in schema.ORGANS if flt.get(f"organ_{o}") == (True,)]
    if organs:
        st.session_state["f_organs"] = [o for o in organs if o in opts["organs"]]
    if flt.get("completer") == (True,):
        st.session_state["f_completer"] = True
    st.session_state["present"] = (snap.get("present") or ["0"])[0].lower() in ("1", "true")
    st.session_state["_url_notes"] = notes


def _age_limits(db: Database, cohort: str) -> tuple[float | None, float | None]:
    """The cohort's age range, cached per file version (asked three times per rerun)."""
    return _cached("explore.age_limits", db.version, None, json.dumps({"cohort": cohort}), db)


def _age_bounds(lo: float, hi: float) -> tuple[int, int]:
    a, b = int(lo // 1), int(-(-hi // 1))
    return a, max(b, a + 1)


def _reset_filters(keep_cohort: bool = True) -> None:
    for k in FILTER_KEYS:
        if keep_cohort and k == "f_cohort":
            continue
        st.session_state.pop(k, None)


def _exit_presenter() -> None:
    st.session_state["present"] = False


def _filter_from_state(db: Database) -> Filter:
    cohort = st.session_state["f_cohort"]
    values: dict[str, list] = {}
    for col, _ in TEXT_FILTERS:
        v = st.session_state.get(f"f_{col}") or []
        if v:
            values[col] = list(v)
    for o in st.session_state.get("f_organs") or []:
        values[f"organ_{o}"] = [True]
    if st.session_state.get("f_completer"):
        values["completer"] = [True]
    age_min = age_max = None
    lo, hi = _age_limits(db, cohort)
    if lo is not None and st.session_state.get("f_age"):
        a, b = _age_bounds(lo, hi)
        sel = st.session_state["f_age"]
        if (sel[0], sel[1]) != (a, b):
            age_min, age_max = float(sel[0]), float(sel[1])
    return Filter.build(cohort, age_min=age_min, age_max=age_max, **values)


def _fmt_option(col: str):
    def f(v):
        if v == MISSING:
            return "not biopsied" if col == "biopsy_class" else "(missing)"
        if col == "sex":
            return _SEX.get(v, v)
        return str(v)

    return f


def filter_panel(db: Database) -> tuple[Filter, int, int]:
    """The sidebar filter panel; returns (filter, patients matching, patients in cohort)."""
    # Per file version, not per filter: cached so a filter change does not re-ask.
    cohorts = list(_cached("explore.cohorts", db.version, None, "{}", db)["cohort"])
    if not cohorts:
        raise DatabaseError(f"{db.path} holds no cohort. Import one on the Data page or with "
                            "`python -m lupus_dash import FOLDER --db FILE`.")
    _init_from_url(db, cohorts)
    if st.session_state.get("f_cohort") not in cohorts:
        st.session_state["f_cohort"] = cohorts[0]
        _reset_filters()
    with st.sidebar:
        st.markdown("### Patients")
        cohort = st.selectbox("Cohort", cohorts, key="f_cohort", on_change=_reset_filters)
        opts = _cached("explore.filter_options", db.version, None,
                       json.dumps({"cohort": cohort}), db)
        for col, label in TEXT_FILTERS:
            if opts.get(col):
                st.multiselect(label, opts[col], key=f"f_{col}", format_func=_fmt_option(col),
                               placeholder="any")
        lo, hi = _age_limits(db, cohort)
        if lo is not None:
            a, b = _age_bounds(lo, hi)
            cur = st.session_state.get("f_age")
            if not cur or cur[0] < a or cur[1] > b:
                st.session_state["f_age"] = (a, b)
            st.slider("Age at baseline (years)", a, b, key="f_age", step=1)
        if opts.get("organs"):
            st.multiselect("Organ involvement (all of)", opts["organs"], key="f_organs",
                           format_func=lambda o: o.replace("_", " "), placeholder="any")
        st.checkbox("Completers only", key="f_completer",
                    help="Patients with the cohort's final scheduled visit")
        flt = _filter_from_state(db)
        k, n = analysis.count_patients(db, flt)
        st.markdown(f"**{k} of {n} patients**")
        st.caption(flt.sentence(k, n))
        st.button("Reset filters", on_click=_reset_filters, width="stretch")
        st.divider()
        st.toggle("Presenter mode", key="present",
                  help="Large type, sidebar hidden, colour-blind-safe palette. "
                       "Also ?present=1 in the link.")
        st.caption(f"Database: `{db.path.name}`")
    return flt, k, n


# --- page context -------------------------------------------------------------------


@dataclass
class Context:
    """What every page needs: the database, the filter and its counts, presenter mode."""

    db: Database
    flt: Filter
    k: int
    n: int
    presenter: bool


def start() -> Context:
    """Sign-in gate, open the database, render the filter panel, sync the URL.

    Stops with the sign-in page, a "no access" page or a plain error.
    """
    auth_gate()
    try:
        ensure_demo()
        db = get_db()
        flt, k, n = filter_panel(db)
    except DatabaseError as exc:
        st.error(f"**The database cannot be used.** {exc}")
        st.stop()
    presenter = bool(st.session_state.get("present"))
    st.query_params.from_dict(_params_base(flt, presenter))
    st.markdown(PRESENTER_CSS if presenter else NORMAL_CSS, unsafe_allow_html=True)
    ctx = Context(db, flt, k, n, presenter)
    st.session_state["_ctx"] = ctx
    return ctx


def current() -> Context:
    """The context `start()` set up in this run."""
    from streamlit.runtime.pages_manager import PagesManager

    ctx = st.session_state.get("_ctx")
    if ctx is None or PagesManager.uses_pages_directory:
        # The page file runs without app.py: Streamlit saw the pages/ folder and
        # used its v1 multipage mode, as it does for a deep link (/patient?...)
        # as the first request after the server starts. Switch that mode off and
        # rerun before any widget exists, so app.py and st.navigation take over
        # (widgets keep one identity from then on).
        PagesManager.uses_pages_directory = False
        st.rerun()
    return ctx


def page(title: str, need_patients: bool = True) -> Context:
    """Page header with the filter sentence; stops with a plain message when nobody matches."""
    ctx = current()
    for note in st.session_state.pop("_url_notes", []) or []:
        st.warning(note)
    if ctx.presenter:
        left, right = st.columns([4, 1], vertical_alignment="center")
        left.title(title)
        right.button("Normal view", on_click=_exit_presenter, key="exit_presenter",
                     help="Leave presenter mode (shows the sidebar again)")
    else:
        st.title(title)
    st.markdown(f'<div class="lupus-sentence">{_html(ctx.flt.sentence(ctx.k, ctx.n))}</div>',
                unsafe_allow_html=True)
    if need_patients and ctx.k == 0:
        st.info("No patient matches this filter. Widen it in the sidebar or press "
                "**Reset filters**.")
        st.stop()
    return ctx


def metric_columns(n: int) -> list:
    """n columns for metrics: one row on screen, rows of three in presenter mode."""
    if not current().presenter or n <= 3:
        return list(st.columns(n))
    cols: list = []
    while len(cols) < n:
        cols.extend(st.columns(3))
    return cols[:n]


def _html(text: str) -> str:
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;"))


# --- outputs ------------------------------------------------------------------------


def _slug(name: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in name.lower()).strip("_")


def chart(ch: alt.TopLevelMixin, name: str, code: str | None = None,
          cli: str | None = None, sql: tuple[str, list] | None = None) -> None:
    """An Altair chart sized for the mode, with PNG/SVG downloads and a Reproduce expander."""
    ctx = current()
    final = charts.finalize(ch, ctx.presenter)
    # The Vega-Lite spec without Altair's JSON-schema validation: validating every chart
    # on every rerun was the largest single cost of a page (tests/test_charts.py
    # validates every builder's output instead).
    st.vega_lite_chart(charts.spec(final), width="stretch",
                       theme=None if ctx.presenter else "streamlit")
    slug = _slug(name)
    row = st.container(horizontal=True, gap="small")
    row.download_button("PNG", data=lambda: charts.to_png(final), file_name=f"{slug}.png",
                       mime="image/png", key=f"dl_{slug}_png", on_click="ignore")
    row.download_button("SVG", data=lambda: charts.to_svg(final), file_name=f"{slug}.svg",
                       mime="image/svg+xml", key=f"dl_{slug}_svg", on_click="ignore")
    if code or cli:
        reproduce(code, cli, sql, key=slug)


def to_xlsx(df: pd.DataFrame, sheet: str) -> bytes:
    """One-sheet .xlsx bytes (openpyxl, via report.to_xlsx)."""
    return report.to_xlsx({sheet: df})


def table(df: pd.DataFrame, name: str, code: str | None = None, cli: str | None = None,
          xlsx: bool = False, column_config: dict | None = None,
          sql: tuple[str, list] | None = None, height: int | str = "auto",
          max_rows: int | None = None) -> None:
    """A table with CSV (and .xlsx) downloads and a Reproduce expander.

    `max_rows`: a listing shows its first rows only (every row shown is sent to the
    browser: 100,000 patients would be megabytes per rerun); the downloads hold all.
    """
    ctx = current()
    shown = df
    if max_rows is not None and len(df) > max_rows:
        shown = df.head(max_rows)
        st.caption(f"Showing the first {max_rows:,} of {len(df):,} rows; the downloads below "
                   "hold every row.")
    if ctx.presenter and len(shown) <= 120:
        st.table(shown)  # HTML table: its type scales with the presenter CSS
    else:
        st.dataframe(shown, hide_index=True, column_config=column_config, height=height)
    slug = _slug(name)
    row = st.container(horizontal=True, gap="small")
    row.download_button("CSV", data=lambda: df.to_csv(index=False).encode("utf-8"),
                            file_name=f"{slug}.csv", mime="text/csv", key=f"dl_{slug}_csv",
                            on_click="ignore")
    if xlsx:
        row.download_button(
            "Excel", data=lambda: to_xlsx(df, slug[:31]), file_name=f"{slug}.xlsx",
            mime="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            key=f"dl_{slug}_xlsx", on_click="ignore",
        )
    if code or cli:
        reproduce(code, cli, sql, key=slug)


def reproduce(code: str | None, cli: str | None = None, sql: tuple[str, list] | None = None,
              key: str = "") -> None:
    """Expander with the Python call (and CLI / SQL) that gives the same numbers."""
    if sql is None and code and "flt" in code:
        sql = current().flt.patients_sql()
    with st.expander("Reproduce"):
        if code:
            st.code(code, language="python")
        if cli:
            st.caption("Command line (the same numbers in the report):")
            st.code(cli, language="bash")
        if sql:
            st.caption("Patients selected by the filter (SQL with its parameters):")
            st.code(f"{sql[0]}\n-- parameters: {sql[1]!r}", language="sql")


def py_call(call: str, flt: Filter | None = None, imports: str = "analysis") -> str:
    """Python that rebuilds the filter and runs `call` (which uses `db` and `flt`)."""
    ctx = current()
    lines = [
        f"from lupus_dash import {imports}",
        "from lupus_dash.db import Database",
        "from lupus_dash.filters import Filter",
        "",
        f"db = Database({str(ctx.db.path)!r})",
    ]
    if flt is not None:
        lines.append(f"flt = Filter.from_json({flt.to_json()!r})")
    lines.append(call)
    return "\n".join(lines)


def cli_call(flt: Filter, *extra: str, preset: str = "standard") -> str:
    """`python -m lupus_dash report ...` for this filter."""
    return report.report_command(flt, str(current().db.path), preset, list(extra))


def fmt_num(x, digits: int = 3) -> str:
    """A number for a metric or caption (significant digits), '—' when missing."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    return f"{x:.{digits}g}"


def endpoint_label(col: str) -> str:
    """'C3 (g/L)' for an endpoint column."""
    e = schema.ENDPOINTS_BY_COLUMN[col]
    return f"{e.label} ({e.unit})" if e.unit and e.kind != "binary" else e.label


def cmd(*parts: str) -> str:
    """A shell command, quoted."""
    return " ".join(shlex.quote(p) for p in parts)


def buffer(data: bytes) -> io.BytesIO:
    """Bytes as a file object (for uploads saved to disk)."""
    return io.BytesIO(data)
