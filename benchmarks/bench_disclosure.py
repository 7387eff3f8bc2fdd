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
    return 0


if __name__ == "__main__":
    sys.exit(main())
