"""What shared mode's disclosure rules cost next to the computations they protect.

    python -m benchmarks.bench_disclosure [--db data/demo.duckdb] [--repeat 5]

For each filter and each table a viewer would see (Table 1 overall and split by
sex, remission rates, biomarker summary, adverse events), times the computation
itself (uncached: the analysis functions' real queries) and
`disclosure.protect_frame` with the TableSpec the output seam would declare,
and prints both and the ratio. The specs below are the integration plan's
(docs/HOSTING.md) in executable form.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from lupus_dash import disclosure
from lupus_dash.analyses import biomarkers, cohort, common, remission, safety
from lupus_dash.db import Database
from lupus_dash.disclosure import Partition, TableSpec
from lupus_dash.filters import Filter

ROOT = Path(__file__).resolve().parents[1]
STATS = ("mean", "sd", "se", "ci_low", "ci_high", "median", "p25", "p75")

# Table 1, long format: levels of a variable add up to its n within a group; the groups
# add up to the Overall row (with an unseen remainder: a missing group value); n is one
# quantity per (variable, group).
TABLE1 = TableSpec(
    counts={"count": "n", "n": None},
    same={"n": ("variable", "group")},
    partitions=(
        Partition("count", by=("variable", "group"), total="n", complete=True),
        Partition("count", by=("variable", "level"), total_row=("group", "Overall")),
        Partition("n", by=("variable",), total_row=("group", "Overall")),
    ),
    rates={"pct": "count"},
    stats={c: "n" for c in ("mean", "sd", "median", "p25", "p75")},
)
REMISSION = TableSpec(
    counts={"n_achieved": "n_evaluable", "n_evaluable": "n_filter", "n_filter": None},
    same={"n_filter": ()},
    pinned=("n_filter",),
    rates={"rate": "n_achieved", "ci_low": "n_achieved", "ci_high": "n_achieved"},
)
SUMMARY = TableSpec(
    counts={"n": "n_filter", "n_positive": "n", "n_filter": None},
    same={"n_filter": ()},
    pinned=("n_filter",),
    rates={"rate": "n_positive"},
    stats=dict.fromkeys(STATS, "n"),
)
AE = TableSpec(
    counts={"n_patients": "n_filter", "n_filter": None, "n_events": None},
    same={"n_filter": ()},
    pinned=("n_filter",),
    rates={"pct": "n_patients"},
)


def tables(db: Database, flt: Filter, k_match: int) -> dict:
    """name -> (compute callable, spec, extra columns to add)."""
    def with_n(df):
        return df.assign(n_filter=k_match)

    return {
        "table1": (lambda: cohort.table1.__wrapped__(db, flt), TABLE1),
        "table1 by sex": (lambda: cohort.table1.__wrapped__(db, flt, "sex"), TABLE1),
        "remission": (lambda: with_n(remission.rates.__wrapped__(db, flt)), REMISSION),
        "biomarker summary": (lambda: with_n(biomarkers.summary.__wrapped__(db, flt)), SUMMARY),
        "adverse events": (lambda: with_n(safety.table3(db, flt)), AE),
    }


def best_of(fn, repeat: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--db", default=str(ROOT / "data" / "demo.duckdb"))
    p.add_argument("--cohort", default="csle_belimumab")
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--k", type=int, default=disclosure.DEFAULT_K)
    a = p.parse_args(argv)
    db = Database(a.db)
    filters = [
        Filter.build(a.cohort),
        Filter.build(a.cohort, completer=[True]),
        Filter.build(a.cohort, sex=["F"]),
        Filter.build(a.cohort, sex=["F"], completer=[True]),
    ]
    disclosure.ranges(*disclosure.crosstab_problem([[3, 20], [20, 20]])[:1],
                      [disclosure.Status.SMALL] * 9, 11, [0])  # import SciPy's LP once
    print(f"{'filter':<44} {'table':<18} {'compute ms':>10} {'rules ms':>9} {'ratio':>6}"
          f"  small/withheld")
    tot_c = tot_r = 0.0
    for flt in filters:
        k_match, n = common.count_patients(db, flt)
        gate = disclosure.gate(k_match, n, a.k)
        label = flt.sentence(k_match, n)[:44]
        if not gate.ok:
            print(f"{label:<44} gate: {gate.message}")
            continue
        for name, (fn, spec) in tables(db, flt, k_match).items():
            if name == "table1 by sex":
                sizes = cohort.group_sizes(db, flt, "sex")["n"]
                split = disclosure.split_gate(sizes, k_match, a.k)
                if not split.ok:
                    print(f"{label:<44} {name:<18} split gate: groups {list(sizes)}")
                    continue
            t_c, df = best_of(fn, a.repeat)
            t_r, res = best_of(lambda df=df, spec=spec: disclosure.protect_frame(df, spec, a.k),
                               a.repeat)
            st = res.status.to_numpy()
            small = int((st == "small").sum())
            gone = int(((st == "suppressed") | (st == "withheld")).sum())
            tot_c, tot_r = tot_c + t_c, tot_r + t_r
            print(f"{label:<44} {name:<18} {t_c * 1e3:>10.1f} {t_r * 1e3:>9.1f} "
                  f"{t_r / t_c:>6.0%}  {small}/{gone}")
    print(f"{'all tables':<63} {tot_c * 1e3:>10.1f} {tot_r * 1e3:>9.1f} {tot_r / tot_c:>6.0%}")
    db.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
