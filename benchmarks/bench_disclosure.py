"""What shared mode costs: every page's calls through the seam, open vs. a viewer's policy.

    python -m benchmarks.bench_disclosure [--db FILE] [--cohort C] [--k 11] [--repeat 3]

For each page view (`lupus_dash.views.PAGES`) and a few filters, times the page's calls
uncached (memos cleared) with the open policy and with `shared.SharedPolicy(k)` (the
patient-level calls a viewer never gets are left out of both), and prints both and the
ratio. The target (issue 12): shared mode ≤ 10 % over the unsuppressed page. With
`--db` unset the demo database is used; `--patients N` builds (once) and uses the scale
cohort of `python -m benchmarks`.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from lupus_dash import cache, disclosure, results, views
from lupus_dash.analyses import common
from lupus_dash.db import Database
from lupus_dash.filters import Filter
from lupus_dash.shared import SharedPolicy

ROOT = Path(__file__).resolve().parents[1]


def page_time(db, flt, view: str, policy: results.Policy, viewer: SharedPolicy) -> float:
    """Seconds to run one page's calls (those a viewer may have) under `policy`, uncached."""
    calls = views.PAGES[view](lambda c: results.run(db, c), flt)
    cache.clear_all()
    t = time.perf_counter()
    for call in calls.values():
        if viewer.permits(call.spec) is None:
            results.run(db, call, policy=policy)
    return time.perf_counter() - t


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--db", default=None)
    p.add_argument("--patients", type=int, default=None)
    p.add_argument("--cohort", default=None)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--k", type=int, default=disclosure.DEFAULT_K)
    p.add_argument("--apptest", action="store_true",
                   help="also time whole page runs (AppTest): an analyst vs. a viewer")
    a = p.parse_args(argv)
    if a.patients:
        from .bench import ensure_cohort

        path, _ = ensure_cohort(a.patients)
    else:
        path = Path(a.db or ROOT / "data" / "demo.duckdb")
    db = Database(path)
    cohort_name = a.cohort or str(db.cohorts()["cohort"].iloc[0])
    top = db.query("SELECT sex, count(*) AS n FROM patient_facts WHERE cohort = ? "
                   "GROUP BY 1 ORDER BY n DESC", [cohort_name])["sex"].tolist()
    filters = [Filter(cohort_name), Filter.build(cohort_name, completer=[True]),
               Filter.build(cohort_name, sex=top[:1])]
    viewer = SharedPolicy(a.k)
    print(f"{'filter':<46} {'page':<22} {'open ms':>8} {'shared ms':>10} {'extra':>7}")
    tot_o = tot_s = 0.0
    for flt in filters:
        k, n = common.count_patients(db, flt)
        label = flt.sentence(k, n)[:46]
        if not viewer.gate(db, flt).ok:
            print(f"{label:<46} gated for a viewer (k = {a.k})")
            continue
        for view in views.PAGES:
            if view == "Patient":
                continue
            t_o = min(page_time(db, flt, view, results.OPEN, viewer) for _ in range(a.repeat))
            t_s = min(page_time(db, flt, view, viewer, viewer) for _ in range(a.repeat))
            tot_o, tot_s = tot_o + t_o, tot_s + t_s
            print(f"{label:<46} {view:<22} {t_o * 1e3:>8.1f} {t_s * 1e3:>10.1f} "
                  f"{(t_s - t_o) / t_o:>7.0%}")
    if tot_o:
        print(f"{'every page and filter':<69} {tot_o * 1e3:>8.1f} {tot_s * 1e3:>10.1f} "
              f"{(tot_s - tot_o) / tot_o:>7.0%}")
    db.close()
    if a.apptest:
        whole_pages(path, cohort_name, top[0], a.repeat)
    return 0


AUTH = {"redirect_uri": "http://localhost:8501/oauth2callback", "cookie_secret": "bench",
        "client_id": "lupus-dash", "client_secret": "x",
        "server_metadata_url": "http://127.0.0.1:9/.well-known/openid-configuration"}
USERS = {"analyst": {"is_logged_in": True, "sub": "a", "email": "ann@example.org"},
         "viewer": {"is_logged_in": True, "sub": "v", "email": "vera@example.org"}}
ALLOW = [{"match": "ann@example.org", "role": "analyst"},
         {"match": "vera@example.org", "role": "viewer"}]
APP_PAGES = ("overview", "biomarkers", "remission", "targets", "subgroups", "safety")


def whole_pages(path: Path, cohort_name: str, sex: str, repeat: int) -> None:
    """A filter change as the server runs it (queries, rules, tables, charts: the whole
    script), signed in as an analyst (open) and as a viewer (shared): the page is opened
    on the whole cohort, every memo is cleared, then sex = `sex` is chosen (timed)."""
    import logging
    import os

    import streamlit as st
    from streamlit.runtime.pages_manager import PagesManager
    from streamlit.testing.v1 import AppTest

    from lupus_dash import charts

    logging.getLogger("streamlit").setLevel(logging.ERROR)
    # As tests/test_pages.py: keep st.navigation mode across AppTest reruns (else a widget
    # change on the second run is not applied).
    init = PagesManager.__init__

    def v2_init(self, *args, **kwargs):
        init(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False

    PagesManager.__init__ = v2_init
    os.environ["LUPUS_DASH_DB"] = str(path)

    db = Database(path)
    n_all = common.count_patients(db, Filter(cohort_name))[1]
    db.close()

    def one(user: str, page: str) -> float:
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=600)
        at.secrets["auth"] = AUTH
        at.secrets["lupus_dash"] = {"allow": ALLOW}
        at.user = {**USERS[user], "iat": time.time() - 60}
        at.query_params["cohort"] = cohort_name
        at.run()
        at.query_params.clear()  # else the link's filter is applied again on every rerun
        if page != "overview":
            at.switch_page(f"pages/{page}.py").run()
        cache.clear_all()  # the analyses' memos (and protected results)
        st.cache_data.clear()  # the page's per-call results (ui._cached)
        charts.clear_memo()
        t = time.perf_counter()
        at.multiselect(key="f_sex").set_value([sex]).run()
        dt = time.perf_counter() - t
        if at.exception:
            raise RuntimeError(f"{user} on {page}: {at.exception[0].message}")
        if any(m.value == f"**{n_all} of {n_all} patients**" for m in at.sidebar.markdown):
            raise RuntimeError(f"the filter change did not reach the page ({user}, {page})")
        return dt

    print(f"\nfilter change → page rerun (AppTest), {cohort_name}: sex = {sex}")
    print(f"{'page':<22} {'analyst ms':>11} {'viewer ms':>10} {'extra':>7}")
    tot_o = tot_s = 0.0
    for page in APP_PAGES:
        t_o = min(one("analyst", page) for _ in range(repeat))
        t_s = min(one("viewer", page) for _ in range(repeat))
        tot_o, tot_s = tot_o + t_o, tot_s + t_s
        print(f"{page:<22} {t_o * 1e3:>11.1f} {t_s * 1e3:>10.1f} {(t_s - t_o) / t_o:>7.0%}")
    print(f"{'every page':<22} {tot_o * 1e3:>11.1f} {tot_s * 1e3:>10.1f} "
          f"{(tot_s - tot_o) / tot_o:>7.0%}")


if __name__ == "__main__":
    sys.exit(main())
