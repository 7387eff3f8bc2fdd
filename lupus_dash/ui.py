"""Streamlit glue: database access, caching, the sidebar filter panel, URL state, outputs.

The only module of `lupus_dash` that imports streamlit. Pages call `ui.page()`
for the shared context, `ui.run(analysis_function, flt, **kwargs)` for every
number (the seam, `results.run`, cached per database version), `ui.show_layout`
for the paper tables and `ui.chart()` / `ui.table()` to render with downloads
and a "Reproduce" expander written from the calls that ran.
"""

from __future__ import annotations

import functools
import io
import json
import math
import numbers
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

from . import access, audit, charts, comparisons, layouts, report, results, scenes, schema
from .access import HostingConfig, Permission, Principal
from .analyses import cohort as cohort_analyses
from .db import Database, DatabaseError, DataStore, Snapshot
from .filters import MISSING, Filter, FilterError

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DB = "data/demo.duckdb"
PREFERRED_COHORT = "csle_belimumab"
LISTING_CAP = cohort_analyses.LISTING_CAP  # rows of a listing shown (downloads hold all)
PICKER_CAP = cohort_analyses.PICKER_CAP

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
[data-testid="stMainBlockContainer"] { padding-top: 5rem; max-width: 100%; }  /* below the top navigation */
</style>
"""
NORMAL_CSS = """
<style>
.lupus-sentence { font-size: 1.05rem; font-weight: 500; color: #31333F;
  border-left: 4px solid #0072B2; padding: 0.15rem 0 0.15rem 0.6rem; margin-bottom: 0.4rem; }
</style>
"""


# --- database -------------------------------------------------------------------


def _default_path() -> Path:
    p = Path(os.environ.get("LUPUS_DASH_DB", DEFAULT_DB))
    return p if p.is_absolute() else ROOT / p


def db_path() -> Path:
    """The database file: one opened on the Data page (or named by the link's `db`), else
    $LUPUS_DASH_DB, else data/demo.duckdb."""
    override = st.session_state.get("db_path_override")
    p = Path(override) if override else _default_path()
    return p if p.is_absolute() else ROOT / p


def database_from_link(name: str | None) -> Path | None:
    """The file a link's `db=NAME` names: only a `.duckdb` file beside the default database
    (a bare name, never a path), so a link cannot open anything else on the server."""
    if not name or Path(name).name != name or not name.endswith(".duckdb"):
        return None
    p = _default_path().parent / name
    return p if p.is_file() else None


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

# Shared mode's numbers pass lupus_dash.disclosure at the output seam (results.run with
# shared.SharedPolicy, set per session by the sign-in gate).
SHARED_MODE_READY = True
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
    _record(st.session_state.get("_hosting") or hosting(),
            who or st.session_state.get("_who"), event, **fields)


def _record(cfg: HostingConfig, who: Principal | None, event: str, **fields) -> None:
    log = _audit_log(cfg)
    if log is None:
        return
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
    """A download's data callable that records the download when it is fetched.

    Streamlit calls it on the click, outside any script run (no session state then): the
    session's settings, person and filter are read now, when the button is drawn."""
    ctx = st.session_state.get("_ctx")
    flt = json.loads(ctx.flt.to_json()) if ctx else None
    cfg = st.session_state.get("_hosting") or hosting()
    person = st.session_state.get("_who")

    def fetch():
        _record(cfg, person, "download", file=file_name, format=fmt, filter=flt)
        return data() if callable(data) else data
    return fetch


def download(where, label: str, data, file_name: str, mime: str, key: str,
             help: str | None = None) -> None:
    """Every download button of the app: its file is built on the click and, in hosted
    mode, the download is recorded in the audit log (who, file, format, filter)."""
    where.download_button(label, data=audited(file_name, file_name.rsplit(".", 1)[-1], data),
                          file_name=file_name, mime=mime, key=key, on_click="ignore",
                          help=help)


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
    # The output policy of this session: a viewer's numbers pass the disclosure rules.
    from .shared import SharedPolicy

    st.session_state["_policy"] = (SharedPolicy(cfg.min_cell) if principal.shared
                                   else results.OPEN)
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


# --- the seam: every number a page shows ---------------------------------------------


@st.cache_data(max_entries=512, show_spinner=False)
def _cached(key: str, version: tuple, policy: str, _call: results.Call, _db: Database):
    return results.run(_db, _call, policy=_policy())


def _policy() -> results.Policy:
    """The output policy of this session (open for local single-user use)."""
    return st.session_state.get("_policy") or results.OPEN


def run(fn_or_call, flt: Filter | None = None, **kwargs) -> results.Result:
    """Run a declared analysis through the seam, cached per database version and call.

    `ui.run(remission.rates, flt, preset="standard")`: the one way a page obtains
    numbers (tests/test_architecture.py checks that pages call no analysis directly).
    """
    return run_on(current().db, fn_or_call, flt, **kwargs)


def permitted(fn) -> bool:
    """Whether this session's output policy lets `fn` run (patient-level views in shared
    mode do not: the page then does not ask for them)."""
    return _policy().permits(results.spec_of(fn)) is None


def run_on(db: Database, fn_or_call, flt: Filter | None = None, **kwargs) -> results.Result:
    """`run` before the page context exists (the filter panel)."""
    call = (fn_or_call if isinstance(fn_or_call, results.Call)
            else results.Call.of(fn_or_call, flt, **kwargs))
    # Every call of this script run, in order: tests compare them with views.PAGES, and
    # the comparison log of presenter sessions reads them.
    st.session_state.setdefault("_calls", []).append(call)
    return _cached(call.key(), db.version, _policy().name, call, db)


def layout(name: str, flt: Filter, render_kw: dict | None = None, **kwargs) -> layouts.Layout:
    """A paper layout (Table 1/2/3) through the seam: the same object `report --layout` prints."""
    return layouts.build(name, run, flt, render_kw=render_kw, **kwargs)


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
    override = st.session_state.get("db_path_override")
    if override and Path(override).parent == _default_path().parent:
        # A cohort imported on the Data page: the link opens the same file for anyone.
        q["db"] = [Path(override).name]
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
    snap = st.session_state.pop("_scene_params", None) or {k: list(qp.get_all(k)) for k in qp}
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
    opts = cohort_analyses.filter_options(db, flt.cohort)
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
    st.session_state["_url_notes"] = [*st.session_state.get("_url_notes", []), *notes]


def _age_limits(db: Database, cohort: str) -> tuple[float | None, float | None]:
    """The cohort's age range, cached per file version (asked three times per rerun)."""
    table = run_on(db, cohort_analyses.age_limits, None, cohort=cohort).table
    if table.empty:  # shared mode, a cohort smaller than k: no age range leaves
        return None, None
    lo, hi = table.iloc[0]["lo"], table.iloc[0]["hi"]
    return (None if pd.isna(lo) else float(lo), None if pd.isna(hi) else float(hi))


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
    """An option's label. Never a count: Streamlit keeps a multiselect's choice by its
    label, so a label that changes with the other filters ("female (19)" → "female
    (21)") silently dropped the choice on the next change."""
    def f(v):
        if v == MISSING:
            return "not biopsied" if col == "biopsy_class" else "(missing)"
        if col == "sex":
            return schema.SEX_LABELS.get(v, v)
        return str(v).replace("_", " ") if col == "organs" else str(v)

    return f


def _facet_caption(col: str, options, counts: dict | None) -> None:
    """What choosing each option would leave, under its box: an empty subgroup shows
    before it is chosen (facet counts, within the other filters)."""
    if not counts:
        return
    fmt = _fmt_option(col)
    # fmt_num passes text through ("<11" in shared mode)
    st.caption(" · ".join(f"{fmt(v)} {layouts.fmt_num(counts.get(v, 0), 0)}"
                          for v in options))


def filter_panel(db: Database) -> tuple[Filter, object, object]:
    """The filter panel (sidebar; a "Filters" menu at the top in presenter mode).

    Returns (filter, patients matching, patients in cohort) as the seam lets them out.
    Each option shows how many patients choosing it would leave (facet counts), so an
    empty subgroup is visible before it is chosen.
    """
    cohorts = list(run_on(db, cohort_analyses.cohorts).table["cohort"])
    if not cohorts:
        raise DatabaseError(f"{db.path} holds no cohort. Import one on the Data page or with "
                            "`python -m lupus_dash import FOLDER --db FILE`.")
    _init_from_url(db, cohorts)
    if st.session_state.get("f_cohort") not in cohorts:
        st.session_state["f_cohort"] = cohorts[0]
        _reset_filters()
    if st.session_state.get("present"):
        _, right = st.columns([5, 1])
        box = right.popover("Filters", width="stretch")
    else:
        box = st.sidebar
    with box:
        st.markdown("### Patients")
        cohort = st.selectbox("Cohort", cohorts, key="f_cohort", on_change=_reset_filters)
        opts = cohort_analyses.filter_options(db, cohort)
        pre = _filter_from_state(db)  # the widgets' state from the last run
        facet = run_on(db, cohort_analyses.option_counts, pre).table
        counts = {c: dict(zip(g["value"], g["n"], strict=True))
                  for c, g in facet.groupby("column", sort=False)}
        for col, label in TEXT_FILTERS:
            if opts.get(col):
                st.multiselect(label, opts[col], key=f"f_{col}",
                               format_func=_fmt_option(col), placeholder="any")
                _facet_caption(col, opts[col], counts.get(col))
        lo, hi = _age_limits(db, cohort)
        if lo is not None:
            a, b = _age_bounds(lo, hi)
            cur = st.session_state.get("f_age")
            if not cur or cur[0] < a or cur[1] > b:
                st.session_state["f_age"] = (a, b)
            st.slider("Age at baseline (years)", a, b, key="f_age", step=1)
        if opts.get("organs"):
            st.multiselect("Organ involvement (all of)", opts["organs"], key="f_organs",
                           format_func=_fmt_option("organs"), placeholder="any")
            _facet_caption("organs", opts["organs"], counts.get("organs"))
        st.checkbox("Completers only", key="f_completer",
                    help="Patients with the cohort's final scheduled visit")
        flt = _filter_from_state(db)
        counted = run_on(db, cohort_analyses.patient_count, flt)
        if counted.table.empty:  # shared mode's denominator gate: no count leaves
            k = n = None
            st.markdown(f"**{counted.notes[0] if counted.notes else 'Not shown.'}**")
        else:
            cnt = counted.table.iloc[0]
            k, n = cnt["n_match"], cnt["n_cohort"]
            st.markdown(f"**{layouts.fmt_num(k, 0)} of {layouts.fmt_num(n, 0)} patients**")
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
    st.session_state["_calls"] = []
    st.session_state.pop("_log_box", None)  # a stopped page's panel is not reused
    if not st.session_state.get("_db_link_checked"):
        st.session_state["_db_link_checked"] = True
        name = st.query_params.get("db")
        linked = database_from_link(name)
        if linked is not None:
            st.session_state["db_path_override"] = str(linked)
        elif name:
            st.session_state.setdefault("_url_notes", []).append(
                f"The link names a database {name!r} that this server does not have; "
                "showing the default one.")
    _deck_from_link()
    _apply_pending_scene()
    try:
        ensure_demo()
        db = get_db()
        flt, k, n = filter_panel(db)
    except DatabaseError as exc:
        st.error(f"**The database cannot be used.** {exc}")
        st.stop()
    presenter = bool(st.session_state.get("present"))
    st.query_params.from_dict(_params_base(flt, presenter))
    stale = db.definitions_warning()
    if stale:
        st.warning(stale)
        if st.button("Rebuild the derived tables now", key="rederive"):
            from . import store

            with st.spinner("Rebuilding the derived tables…"):
                store.rederive(db.path)
            st.rerun()
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


WATCH_SECONDS = 20  # how often an open page checks whether its data changed


def data_changed(db: Database) -> bool:
    """Whether the file behind `db` was replaced or rewritten since it was opened."""
    path = db.path
    try:
        st_ = path.stat()
    except OSError:
        return True
    return (str(path.resolve()), st_.st_mtime_ns, st_.st_size) != tuple(db.version)


@st.fragment(run_every=WATCH_SECONDS)
def _watch_data() -> None:
    """An idle page says so when its data changed (a new import, a refresh) and offers a
    reload, instead of showing old numbers as if they were current."""
    ctx = st.session_state.get("_ctx")
    if ctx is None or not data_changed(ctx.db):
        return
    st.info("The data behind this page changed since it was drawn (a new import or "
            "refresh).")
    if st.button("Reload with the new data", key="reload_data"):
        st.rerun(scope="app")


PAGE_SLUGS = {"Overview": "overview", "Biomarkers": "biomarkers", "Remission": "remission",
              "Treat to target": "targets", "Subgroups": "subgroups", "Patient": "patient",
              "Safety": "safety", "Data": "data", "Methods": "methods"}


def page(title: str, need_patients: bool = True) -> Context:
    """Page header with the filter sentence; stops with a plain message when nobody matches."""
    ctx = current()
    slug = PAGE_SLUGS.get(title, title.lower())
    st.session_state["_page_slug"] = slug
    target = st.session_state.get("_scene_page")
    if target and target != slug:
        # A deck's scene lives on another page: go there (its URL state is in _url).
        st.switch_page(f"pages/{target}.py")
    st.session_state.pop("_scene_page", None)
    _watch_data()
    _presenting_panel(ctx, slug)
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
    _scene_bar(ctx, slug)
    if ctx.k is None and need_patients:
        # Shared mode: a filter matching (or leaving out) fewer than k patients shows
        # nothing but that sentence — no number of it is computed for the page.
        gate = _policy().gate(ctx.db, ctx.flt)
        st.info(gate.message)
        st.stop()
    if need_patients and not isinstance(ctx.k, str) and ctx.k == 0:
        st.info("No patient matches this filter. Widen it in the sidebar or press "
                "**Reset filters**.")
        st.stop()
    return ctx


def controls(label: str = "View settings"):
    """Where a page's widgets go: in place normally; folded into an expander in presenter
    mode, so the first screen shows the result, not a wall of controls."""
    if current().presenter:
        return st.expander(label, expanded=False)
    return st.container()


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


def _actions(slug: str):
    """Where downloads and Reproduce go: a row under the output, or a menu in presenter mode."""
    if current().presenter:
        return st.popover("Export ⋯", key=f"menu_{slug}")
    return st.container()


def chart(ch: alt.TopLevelMixin, name: str, calls=None, then: str | None = None,
          cli: list[str] | None = None, sql: tuple[str, list] | None = None) -> None:
    """An Altair chart sized for the mode, with PNG/SVG downloads and a Reproduce expander.

    `calls`: the seam calls (a `results.Call` or a dict of them) whose results the
    chart shows; the Reproduce snippet and command line are written from them.
    """
    ctx = current()
    final = charts.finalize(ch, ctx.presenter)
    # The Vega-Lite spec without Altair's JSON-schema validation: validating every chart
    # on every rerun was the largest single cost of a page (tests/test_charts.py
    # validates every builder's output instead).
    st.vega_lite_chart(charts.spec(final), width="stretch",
                       theme=None if ctx.presenter else "streamlit")
    slug = _slug(name)
    with _actions(slug):
        _chart_downloads(ch, final, slug)
        reproduce(calls, then, cli, sql, key=slug)


def _chart_downloads(ch, final, slug: str) -> None:
    """PNG / SVG with the context stamped in the image (filter, n, definitions, data version,
    date, pre-specified or exploratory), and a 1920×1080 PNG for a projector."""
    ectx = export_context()
    row = st.container(horizontal=True, gap="small")
    download(row, "PNG", lambda: charts.to_png_stamped(final, ectx), f"{slug}.png",
             "image/png", f"dl_{slug}_png")
    download(row, "SVG", lambda: charts.to_svg_stamped(final, ectx), f"{slug}.svg",
             "image/svg+xml", f"dl_{slug}_svg")
    download(row, "Projector PNG", lambda: charts.to_projector_png(ch, ectx),
             f"{slug}_1920x1080.png", "image/png", f"dl_{slug}_proj")


def chart_grid(panels: list, whole: alt.TopLevelMixin, name: str, columns: int, calls=None,
               then: str | None = None) -> None:
    """Small charts in a grid of Streamlit columns, so they fill the width on any screen
    (a Vega-Lite facet has fixed panel widths); the downloads hold `whole`, one image."""
    ctx = current()
    for start in range(0, len(panels), columns):
        cols = st.columns(columns)
        for box, panel in zip(cols, panels[start:start + columns], strict=False):
            with box:
                st.vega_lite_chart(charts.spec(charts.finalize(panel, ctx.presenter)),
                                   width="stretch",
                                   theme=None if ctx.presenter else "streamlit")
    final = charts.finalize(whole, ctx.presenter)
    slug = _slug(name)
    with _actions(slug):
        _chart_downloads(whole, final, slug)
        reproduce(calls, then, None, None, key=slug)


def to_xlsx(df: pd.DataFrame, sheet: str) -> bytes:
    """One-sheet .xlsx bytes (openpyxl, via report.to_xlsx)."""
    return report.to_xlsx({sheet: df})


def _text_where_mixed(df: pd.DataFrame) -> pd.DataFrame:
    """Columns mixing withheld marks ("<11", shared mode) with numbers, as text: Arrow
    needs one type per column (Streamlit would otherwise log a conversion error)."""
    fix = {}
    for col in df.columns[df.dtypes == object]:
        vals = df[col]
        kinds = {type(v) for v in vals if v is not None and not (isinstance(v, float)
                                                                 and math.isnan(v))}
        if str in kinds and len(kinds) > 1:
            fix[col] = [None if v is None or (isinstance(v, float) and math.isnan(v))
                        else v if isinstance(v, str)
                        else str(int(v)) if isinstance(v, numbers.Real) and float(v).is_integer()
                        else str(v) for v in vals]
    return df.assign(**fix) if fix else df


def table(df: pd.DataFrame, name: str, calls=None, then: str | None = None,
          cli: list[str] | str | None = None, xlsx: bool = False,
          column_config: dict | None = None, sql: tuple[str, list] | None = None,
          height: int | str = "auto", max_rows: int | None = None,
          code: str | None = None, docx: layouts.Layout | None = None) -> None:
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
    shown = _text_where_mixed(shown)  # on the rows shown only (a listing may be long)
    if ctx.presenter and len(shown) <= 120:
        st.table(shown.set_index(shown.columns[0]) if len(shown.columns) else shown)
    else:
        st.dataframe(shown, hide_index=True, column_config=column_config, height=height)
    slug = _slug(name)
    with _actions(slug):
        row = st.container(horizontal=True, gap="small")
        download(row, "CSV", lambda: df.to_csv(index=False).encode("utf-8"), f"{slug}.csv",
                 "text/csv", f"dl_{slug}_csv")
        if xlsx:
            download(row, "Excel", lambda: to_xlsx(df, slug[:31]), f"{slug}.xlsx",
                     "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                     f"dl_{slug}_xlsx")
        if docx is not None:
            # An editable Word table (journal conventions), the same cells as the CSV.
            download(row, "Word", functools.partial(_docx, docx, ctx.db, _preset()),
                     f"{slug}.docx",
                     "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
                     f"dl_{slug}_docx")
        reproduce(calls, then, cli, sql, key=slug, code=code)


def show_layout(name: str, flt: Filter, render_kw: dict | None = None, height="auto",
                **kwargs) -> layouts.Layout:
    """A paper layout (Table 1/2/3) on screen with its footnotes, downloads and Reproduce:
    the same `Layout` object `report --layout` prints."""
    lay = layout(name, flt, render_kw=render_kw, **kwargs)
    spec = layouts.LAYOUTS[name]
    args = "".join(f", {k}={v!r}" for k, v in kwargs.items())
    then = (f"lay = layouts.build({name!r}, lambda c: results.run(db, c), flt{args})\n"
            "print(lay.to_markdown())")
    table(lay.table, name, calls=spec.calls(flt, **kwargs), then=then,
          cli=spec.cli(kwargs), xlsx=True, height=height, docx=lay)
    for note in lay.footnotes:
        st.caption(note)
    return lay


def reproduce(calls=None, then: str | None = None, cli: list[str] | str | None = None,
              sql: tuple[str, list] | None = None, key: str = "",
              code: str | None = None) -> None:
    """Expander with the Python (written from the calls that ran), the command line
    (`cli`: `report` arguments, or a whole command) and the filter's SQL that give the
    same numbers. `code` is for outputs that are not numbers of the data (the data
    dictionary)."""
    if calls is None and cli is None and sql is None and code is None:
        return
    ctx = current()
    path = str(ctx.db.path)
    if isinstance(calls, results.Call):
        calls = {"res": calls}
    if calls:
        code = results.python_snippet(calls, path, then=then,
                                      then_import="layouts" if then and "layouts." in then
                                      else None)
    if isinstance(cli, str):
        cli_text = cli
    elif cli is None and calls:
        firsts = [c.cli(path) for c in calls.values() if c.flt is not None]
        cli_text = next((x for x in firsts if x), None)
    else:
        cli_text = results.report_command(ctx.flt, path, cli) if cli is not None else None
    if sql is None and calls and any(c.flt is not None for c in calls.values()):
        sql = ctx.flt.patients_sql()
    with st.expander("Reproduce"):
        if code:
            st.code(code, language="python")
        if cli_text:
            st.caption("Command line (the same numbers in the report):")
            st.code(cli_text, language="bash")
        if sql:
            st.caption("Patients selected by the filter (SQL with its parameters):")
            st.code(f"{sql[0]}\n-- parameters: {sql[1]!r}", language="sql")


def report_command(flt: Filter, *extra: str) -> str:
    """`python -m lupus_dash report ...` for this filter on this database."""
    return results.report_command(flt, str(current().db.path), extra)


def endpoint_label(col: str) -> str:
    """'C3 (g/L)' for an endpoint column."""
    return layouts.endpoint_name(schema.ENDPOINTS_BY_COLUMN[col])


def metric(box, label: str, value, help: str | None = None) -> None:
    """A headline number in `box` (a column); text from the seam (e.g. "<11") passes through."""
    box.metric(label, layouts.fmt_num(value), help=help)


def cmd(*parts: str) -> str:
    """A shell command, quoted."""
    return " ".join(shlex.quote(p) for p in parts)


def buffer(data: bytes) -> io.BytesIO:
    """Bytes as a file object (for uploads saved to disk)."""
    return io.BytesIO(data)


# --- presenting: scenes and decks, the comparison log (issue 15) ---------------------------

DECKS_DIR = ROOT / "decks"


def _deck() -> scenes.Deck | None:
    return st.session_state.get("_deck")


def comparison_log() -> comparisons.ComparisonLog:
    """Every test this session has displayed (the log behind "comparisons looked at")."""
    return st.session_state.setdefault("_comparisons", comparisons.ComparisonLog())


def _current_scene_status(slug: str, ctx: Context) -> tuple[str, scenes.Scene | None]:
    """("pre-specified" | "exploratory", the deck scene this view is, if any)."""
    deck = _deck()
    if deck is None:
        return scenes.STATUS_EXPLORATORY, None
    match = deck.prespecified_match(slug, ctx.flt, _widget_params(slug))
    return (scenes.STATUS_PRESPECIFIED if match else scenes.STATUS_EXPLORATORY), match


def _widget_params(slug: str) -> dict[str, list[str]]:
    """The page's widget state in URL form (what url_widget writes), read before or after
    the widgets are drawn: their session value, else the value waiting in the URL snapshot."""
    out: dict[str, list[str]] = {}
    snap = _url_snapshot()
    for key in scenes.PAGE_WIDGETS.get(slug, ()):
        if key in st.session_state:
            v = st.session_state[key]
            out[key] = (["1" if v else "0"] if isinstance(v, bool) else
                        [str(x) for x in v] if isinstance(v, list | tuple) else [str(v)])
        elif key in snap:
            out[key] = list(snap[key])
    return out


def log_tests(df: pd.DataFrame, **kw) -> None:
    """Log the tests a page displays (raw p) with the filter and the scene status."""
    ctx = current()
    slug = st.session_state.get("_page_slug", "")
    status, match = _current_scene_status(slug, ctx)
    comparison_log().add_frame(df, ctx.flt, ctx.flt.sentence(ctx.k, ctx.n), page=slug,
                               scene=match.name if match else "",
                               prespecified=status == scenes.STATUS_PRESPECIFIED, **kw)


def _deck_from_link() -> None:
    """`?deck=NAME[&scene=K]` on a session's first run: load the deck and go to scene K."""
    if st.session_state.get("_deck_link_checked"):
        return
    st.session_state["_deck_link_checked"] = True
    ref = st.query_params.get("deck")
    if not ref:
        return
    try:
        deck = scenes.load(scenes.resolve(ref, DECKS_DIR,
                                          allow_paths=_policy() is results.OPEN))
        index = deck.index_of(st.query_params.get("scene") or 1)
    except (scenes.DeckError, OSError) as exc:
        st.session_state.setdefault("_url_notes", []).append(f"The deck could not be opened: "
                                                            f"{exc}")
        return
    st.session_state["_deck"], st.session_state["_deck_ref"] = deck, ref
    st.session_state["_pending_scene"] = index


def _goto_scene(index: int) -> None:
    st.session_state["_pending_scene"] = index


def _apply_pending_scene() -> None:
    """Put a deck's scene on screen: its filter and widgets, its page, its data version."""
    index = st.session_state.pop("_pending_scene", None)
    deck = _deck()
    if index is None or deck is None:
        return
    scene = deck.scenes[index]
    params = scene.query_params(presenter=True, deck=st.session_state.get("_deck_ref"),
                                index=index)
    for key in (*FILTER_KEYS, *scenes.PAGE_WIDGETS.get(scene.page, ())):
        st.session_state.pop(key, None)  # re-read from the scene, not kept from before
    st.session_state["_scene_params"] = params
    st.session_state["_url"] = dict(params)
    st.session_state["_url_loaded"] = False
    st.session_state["present"] = True
    st.session_state["_scene_index"] = index
    st.session_state["_scene_page"] = scene.page
    # A scene pinned to another data version shows that version's numbers when its file
    # is still there (versioned files beside the database), and says so either way.
    restore = st.session_state.pop("_pin_restore", None)
    if restore is not None:
        st.session_state["db_path_override"] = restore or None
    path = db_path()
    try:
        current_version = get_db().data_version() if path.exists() else ""
    except DatabaseError:
        current_version = ""
    pin = scenes.check_pin(scene, current_version, scenes.version_candidates(path))
    st.session_state["_pin_message"] = pin.message
    if pin.old_path is not None:
        st.session_state["_pin_restore"] = st.session_state.get("db_path_override") or ""
        st.session_state["db_path_override"] = str(pin.old_path)


def _scene_bar(ctx: Context, slug: str) -> None:
    """Under the filter sentence: the scene's status, and in a deck its position with
    previous / next (Page Up / Page Down, as presentation clickers send)."""
    status, _match = _current_scene_status(slug, ctx)
    deck = _deck()
    msg = st.session_state.get("_pin_message")
    if msg:
        st.warning(msg)
    if deck is None and not ctx.presenter:
        return
    colour = "#009E73" if status == scenes.STATUS_PRESPECIFIED else "#D55E00"
    m = comparison_log().tested()
    left, prev_col, next_col = st.columns([6, 1, 1], vertical_alignment="center")
    where = ""
    index = st.session_state.get("_scene_index")
    if deck is not None and index is not None:
        where = f"Scene {index + 1} of {len(deck.scenes)}: {deck.scenes[index].name} · "
    left.markdown(f'<span style="color:{colour};font-weight:700">{status.upper()}</span> '
                  f'· {_html(where)}comparisons looked at this session: {m}',
                  unsafe_allow_html=True)
    if deck is not None and index is not None:
        pos = scenes.step(deck, index, 0)
        prev_col.button("◀ Previous", key="scene_prev", disabled=not pos.has_previous,
                        on_click=_goto_scene, args=(index - 1,), shortcut="PageUp")
        next_col.button("Next ▶", key="scene_next", disabled=not pos.has_next,
                        on_click=_goto_scene, args=(index + 1,), shortcut="PageDown")


def _save_scene(slug: str, cohort: str, version: str) -> None:
    name = (st.session_state.get("scene_name") or "").strip()
    if not name:
        st.session_state["_scene_error"] = "Give the view a name first."
        return
    params = {**{k: list(st.query_params.get_all(k)) for k in st.query_params},
              **_widget_params(slug)}
    try:
        scene = scenes.capture(name, slug, params, cohort, data_version=version,
                               prespecified=bool(st.session_state.get("scene_pre")))
    except scenes.DeckError as exc:
        st.session_state["_scene_error"] = str(exc)
        return
    deck = _deck() or scenes.Deck(title="My deck", scenes=[])
    st.session_state["_deck"] = scenes.Deck(title=deck.title, scenes=[*deck.scenes, scene],
                                            description=deck.description)
    st.session_state.pop("_scene_error", None)
    st.session_state["scene_name"] = ""


def _presenting_panel(ctx: Context, slug: str) -> None:
    """Sidebar: save this view, the deck, the comparison log and its exports."""
    if ctx.presenter:
        return
    with st.sidebar:
        st.divider()
        st.markdown("### Presenting")
        st.text_input("Name this view", key="scene_name", placeholder="e.g. C3 in class IV")
        st.checkbox("Pre-specified (in the analysis plan)", key="scene_pre")
        st.button("Save this view", key="scene_save", on_click=_save_scene,
                  args=(slug, ctx.flt.cohort, ctx.db.data_version()), width="stretch")
        if st.session_state.get("_scene_error"):
            st.caption(st.session_state["_scene_error"])
        deck = _deck()
        if deck is not None and deck.scenes:
            st.caption(f"Deck: {deck.title} — {len(deck.scenes)} scene(s)")
            st.button("Present the deck", key="deck_present", on_click=_goto_scene, args=(0,),
                      width="stretch")
            download(st, "Deck (TOML)", scenes.dumps(deck), "deck.toml", "application/toml",
                     "deck_toml")
            download(st, "Slides (PowerPoint)", functools.partial(_pptx, deck, ctx.db, _policy()),
                     "deck.pptx", "application/vnd.openxmlformats-officedocument."
                     "presentationml.presentation", "deck_pptx")
        # Filled by finish() after the page ran, so it counts the tests this page showed.
        st.session_state["_log_box"] = st.container()


def finish() -> None:
    """After the page ran (app.py): the comparison log panel, with this page's tests."""
    box = st.session_state.pop("_log_box", None)
    if box is None:
        return
    log = comparison_log()
    with box:
        st.caption(log.sentence())
        if len(log):
            with st.expander("Comparisons looked at"):
                tbl = log.table()
                st.dataframe(tbl, hide_index=True, height=240)
                row = st.container(horizontal=True, gap="small")
                download(row, "CSV", log.to_csv, "comparisons.csv", "text/csv", "log_csv")
                download(row, "JSON", log.to_json, "comparisons.json", "application/json",
                         "log_json")


# The Word and PowerPoint downloads are built when clicked, by Streamlit outside any script
# run (no session state then): the database, layout, preset and policy are bound when the
# button is drawn.


def _docx(lay: layouts.Layout, db: Database, preset: str) -> bytes:
    from . import office

    return office.layout_docx(db, lay, preset)


def _pptx(deck: scenes.Deck, db: Database, policy: results.Policy) -> bytes:
    from . import office

    return office.build_deck(db, deck, policy=policy).pptx


def _preset() -> str:
    """The definitions preset the page's widgets chose (standard when it has none)."""
    return next((str(st.session_state[k]) for k in ("rem_preset", "t2t_preset", "pt_preset")
                 if k in st.session_state), "standard")


def export_context() -> charts.ExportContext:
    """What an exported figure says about itself (filter, n, preset, data, date, status)."""
    import datetime as dt

    ctx = current()
    slug = st.session_state.get("_page_slug", "")
    status, _ = _current_scene_status(slug, ctx)
    return charts.ExportContext(ctx.flt.sentence(ctx.k, ctx.n), ctx.k, _preset(),
                                ctx.db.data_version(), dt.date.today().isoformat(), status,
                                comparison_log().tested())
