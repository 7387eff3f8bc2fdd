"""Shared mode at the seam: every call of every page, run for a viewer, lets no count under k
leave, refuses patient-level views, gates small filters; and `report --shared` prints the
same protected values (issue 12, on the seam of issue 11)."""

import json

import pandas as pd
import pytest

from lupus_dash import cli, results, synth, views
from lupus_dash.analyses import cohort, remission, safety
from lupus_dash.db import Database
from lupus_dash.filters import Filter
from lupus_dash.shared import SharedPolicy

COHORTS = ("csle_belimumab", "ln_belimumab")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    path = tmp_path_factory.mktemp("shared") / "demo.duckdb"
    synth.build_demo(path)
    db = Database(path)
    yield db
    db.close()


def _count_values(res: results.Result):
    """(part, column, value) of every declared count of a protected result."""
    for name, df in res.parts.items():
        if not isinstance(df, pd.DataFrame):
            continue
        for col in res.part_spec(name).counts:
            if col in df.columns:
                for v in df[col]:
                    yield name, col, v


@pytest.mark.parametrize("k", [5, 11])
@pytest.mark.parametrize("cohort_name", COHORTS)
@pytest.mark.parametrize("view", [v for v in views.PAGES if v != "Patient"])
def test_no_count_under_k_leaves_through_any_page_call(demo, view, cohort_name, k):
    policy = SharedPolicy(k)

    def run(call):
        return results.run(demo, call, policy=policy)

    flt = Filter(cohort_name)
    calls = views.PAGES[view](lambda c: results.run(demo, c), flt)
    gate = policy.gate(demo, flt)
    if not gate.ok:  # the 10-patient nephritis cohort at k = 11: only the message leaves
        for name, call in calls.items():
            if policy.permits(call.spec) is None:
                res = run(call)
                assert res.notes == [gate.message], name
                for part, v in res.parts.items():
                    if isinstance(v, pd.DataFrame):
                        assert v.empty, f"{name}.{part}"
                    elif isinstance(v, dict):
                        assert all(x is None for c, x in v.items() if c.startswith("n_")), name
        return
    checked = 0
    for name, call in calls.items():
        if policy.permits(call.spec) is not None:
            with pytest.raises(results.NotPermitted):
                run(call)
            continue
        res = run(call)
        for part, col, v in _count_values(res):
            checked += 1
            ok = isinstance(v, str) or pd.isna(v) or float(v) == 0 or float(v) >= k
            assert ok, f"{name}.{part}.{col} = {v} (k = {k})"
    assert checked  # the test looked at counts


def test_patient_level_views_are_never_computed_for_a_viewer(demo):
    policy = SharedPolicy(11)
    for fn, kw in ((cohort.patient_ids, {}), (remission.who, {}), (safety.listing, {})):
        with pytest.raises(results.NotPermitted):
            results.run(demo, fn, Filter("csle_belimumab"), policy=policy, **kw)


def test_a_small_filter_and_a_small_complement_are_gated(demo):
    policy = SharedPolicy(11)
    males = Filter.build("csle_belimumab", sex=["M"])  # 5 of 26
    females = Filter.build("csle_belimumab", sex=["F"])  # 21 of 26: 5 left out
    for flt in (males, females):
        res = results.run(demo, remission.rates, flt, policy=policy)
        assert res.table.empty and "Fewer than 11" in res.notes[0]
    assert results.run(demo, remission.rates, Filter("csle_belimumab"),
                       policy=policy).table.shape[0] > 0


def test_no_small_outcome_can_be_worked_out_from_a_rates_row(demo):
    # achieved + not achieved + not evaluable + no assessment = eligible, and the
    # denominator is a sum of some of them: with one of them small, another is withheld.
    res = results.run(demo, remission.rates, Filter("csle_belimumab"), policy=SharedPolicy(5))
    parts = ["n_achieved", "n_not_achieved", "n_not_evaluable", "n_no_assessment"]
    for row in res.table.itertuples(index=False):
        cells = [getattr(row, c) for c in parts]
        small = [c for c in cells if c == "<5"]
        if small and not isinstance(row.n_eligible, str):
            hidden = [c for c in cells if isinstance(c, str)]
            assert len(hidden) >= 2, row  # never the only unknown in the sum


def test_report_shared_prints_what_a_viewer_sees(demo, capsys):
    args = ["report", "--db", str(demo.path), "--cohort", "csle_belimumab", "--shared",
            "--min-cell", "5"]
    assert cli.main(args) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["output_policy"] == "shared-k5"
    seen = results.run(demo, remission.rates, Filter("csle_belimumab"),
                       policy=SharedPolicy(5)).table
    got = pd.DataFrame(rep["remission"])
    for col in ("n_achieved", "n_no_assessment", "rate"):
        want = [v if isinstance(v, str) else (None if pd.isna(v) else float(v))
                for v in seen[col]]
        have = [v if isinstance(v, str) else (None if v is None else float(v))
                for v in got[col]]
        assert have == want, col
    # a small filter prints only the gate (5 boys: under the default k of 11)
    assert cli.main([*args[:-2], "--filter", "sex=M"]) == 0
    gated = json.loads(capsys.readouterr().out)
    assert set(gated) == {"cohort", "filters", "filter_sentence", "output_policy", "gate"}


def test_facet_counts_are_not_given_to_a_viewer(demo):
    """The counts of the filters one choice away (male: 5) with the filter's own count
    would give back what the gate refuses."""
    res = results.run(demo, cohort.option_counts, Filter("csle_belimumab"),
                      policy=SharedPolicy(11))
    assert res.table.empty and res.suppressed
    open_ = results.run(demo, cohort.option_counts, Filter("csle_belimumab"))
    assert (open_.table["n"] < 11).any()  # there were small ones to hide


def test_a_table_naming_the_filter_count_lists_it_as_a_count():
    # The policy fills in the n_filter column for the tables whose counts name it; a spec
    # using it only as a denominator or a partition's total would get no column.
    from lupus_dash import disclosure, shared

    for key, spec in shared.SPECS.items():
        if shared.N_FILTER in disclosure._count_columns(spec):
            assert shared.N_FILTER in spec.counts, key
