"""The comparison log: distinct comparisons counted once, chance expectation, Holm and BH
across the whole log against R `p.adjust` (tests/r/padjust_reference.R)."""

import io
import json
from pathlib import Path

import pandas as pd
import pytest

from lupus_dash import results
from lupus_dash.analyses import biomarkers, cohort
from lupus_dash.comparisons import Comparison, ComparisonLog
from lupus_dash.db import Database
from lupus_dash.filters import Filter

ROOT = Path(__file__).resolve().parents[1]
REF = json.loads((ROOT / "tests" / "r" / "padjust_reference.json").read_text())
FLT = Filter.build("csle_belimumab", completer=[True])


def _comparison(i: int, p, flt: Filter = FLT, **kw) -> Comparison:
    return Comparison(endpoint=f"endpoint_{i}", visit="52", method="wilcoxon",
                      filter_json=flt.to_json(), filter_sentence=flt.sentence(), p_value=p, **kw)


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory):
    from lupus_dash import synth

    path = tmp_path_factory.mktemp("cmp") / "demo.duckdb"
    synth.build_demo(path)
    d = Database(path)
    yield d
    d.close()


@pytest.mark.parametrize("name", sorted(REF["logs"]))
def test_log_adjusts_as_r_p_adjust(name):
    ref = REF["logs"][name]
    log = ComparisonLog(alpha=REF["alpha"])
    for i, p in enumerate(ref["p"]):
        assert log.add(_comparison(i, p))
    # The same comparisons shown again (a rerun, a scene revisited) are not new tests.
    for i, p in enumerate(ref["p"][:3]):
        assert not log.add(_comparison(i, p))
    t = log.table()
    assert len(t) == len(ref["p"])
    assert t["views"].tolist()[:3] == [2, 2, 2]
    for col, key in (("p_holm", "holm"), ("p_bh", "bh")):
        for got, want in zip(t[col], ref[key], strict=True):
            if want is None:
                assert pd.isna(got)
            else:
                # R: p.adjust(p, method = "holm") / p.adjust(p, method = "BH")
                assert got == pytest.approx(want, rel=1e-12, abs=1e-15)
    s = log.summary()
    assert s["m"] == ref["m"]                                   # R: sum(!is.na(p))
    assert s["expected_by_chance"] == pytest.approx(ref["expected_by_chance"])  # m × α
    assert s["p_below_alpha"] == ref["p_below_alpha"]
    assert s["holm_below_alpha"] == ref["holm_below_alpha"]
    assert s["bh_below_alpha"] == ref["bh_below_alpha"]
    assert s["not_computable"] == sum(p is None for p in ref["p"])


def test_distinct_comparisons_are_counted_by_filter_visit_method_and_grouping():
    log = ComparisonLog()
    other = FLT.with_("sex", ["F"])
    base = {"endpoint": "c3_g_l", "visit": "52", "method": "wilcoxon", "p_value": 0.04}
    a = {"filter_json": FLT.to_json(), "filter_sentence": "a"}
    variants = [
        a,
        {"filter_json": other.to_json(), "filter_sentence": "b"},  # another subgroup
        {**a, "visit": "24"},                                      # another visit
        {**a, "method": "paired_t"},                               # another test
        {**a, "group_by": "sex"},                                  # between groups
        {**a, "comparator": "previous"},                           # another comparator
    ]
    for v in variants:
        assert log.add(Comparison(**{**base, **v}))
    # Same comparison from another page or scene: still the same test.
    assert not log.add(Comparison(**{**base, **variants[0]}, page="subgroups", scene="x"))
    s = log.summary()
    assert s["m"] == 6
    assert s["subgroup_comparisons"] == 1
    assert s["filters"] == 2
    assert s["expected_by_chance"] == pytest.approx(0.3)


def test_the_panel_table_follows_every_addition_and_repeat():
    """table() is built once per change of the log (the panel asks four times a rerun):
    a new test, a repeat view and a copy handed out must all stay right."""
    log = ComparisonLog()
    c = Comparison(endpoint="c3_g_l", visit="52", method="wilcoxon", p_value=0.01,
                   filter_json=FLT.to_json(), filter_sentence="a")
    log.add(c)
    t1 = log.table()
    t1.loc[0, "p_value"] = 0.9  # a caller's copy: the log is not changed by it
    assert log.table()["p_value"].tolist() == [0.01]
    log.add(c)
    assert log.table()["views"].tolist() == [2]
    log.add(Comparison(endpoint="c4_g_l", visit="52", method="wilcoxon", p_value=0.04,
                       filter_json=FLT.to_json(), filter_sentence="a"))
    assert log.table()["p_holm"].tolist() == pytest.approx([0.02, 0.04])
    assert log.summary()["m"] == 2


def test_prespecified_label_sticks_once_shown_in_a_prespecified_scene():
    log = ComparisonLog()
    log.add(_comparison(1, 0.01))
    log.add(_comparison(2, 0.2))
    assert log.summary()["exploratory"] == 2
    log.add(_comparison(1, 0.01, prespecified=True, scene="Primary endpoint"))
    t = log.table()
    assert t["status"].tolist() == ["pre-specified", "exploratory"]
    assert t["scene"].tolist() == ["Primary endpoint", ""]
    s = log.summary()
    assert (s["prespecified"], s["exploratory"]) == (1, 1)


def test_bad_p_is_refused_and_nan_is_not_computable():
    with pytest.raises(ValueError, match="not a probability"):
        _comparison(1, 1.5)
    c = _comparison(1, float("nan"))
    assert c.p_value is None
    log = ComparisonLog()
    log.add(c)
    assert log.summary()["m"] == 0
    assert log.summary()["not_computable"] == 1
    assert "No test" in ComparisonLog().sentence()


def test_tested_counts_what_summary_calls_m():
    log = ComparisonLog()
    for i, p in enumerate([0.01, float("nan"), None, 0.5, 1.0, 0.0], start=1):
        log.add(_comparison(i, p))
        assert log.tested() == log.summary()["m"]
    assert (log.tested(), len(log)) == (4, 6)
    back = ComparisonLog.from_json(log.to_json())
    assert back.tested() == back.summary()["m"] == 4
    back.table()
    back.add(_comparison(7, 0.2))  # the cached table follows the log
    assert back.tested() == back.summary()["m"] == 5 and len(back.table()) == 7


def test_add_frame_logs_raw_p_of_a_real_result(demo_db):
    lon = results.run(demo_db, biomarkers.longitudinal, FLT, endpoints=["c3_g_l", "sledai2k"],
                      comparators=["baseline"], adjust="holm", include_mixed=False).table
    cnt = results.run(demo_db, cohort.patient_count, FLT).table.iloc[0]
    k, n = int(cnt["n_match"]), int(cnt["n_cohort"])
    log = ComparisonLog()
    new = log.add_frame(lon, FLT, FLT.sentence(k, n), page="biomarkers")
    assert new == len(lon)
    assert log.add_frame(lon, FLT, FLT.sentence(k, n)) == 0  # a rerun adds nothing
    t = log.table()
    # The raw p is logged, never the page's adjusted one.
    assert t["p_value"].tolist() == pytest.approx(lon["p_value"].tolist(), nan_ok=True)
    assert not (t["p_value"] == lon["p_adjusted"]).all()
    assert t["visit"].tolist() == [str(w) for w in lon["visit_week"]]
    assert t["n"].tolist() == lon["n"].tolist()
    assert set(t["filter"]) == {"csle_belimumab: completers — 23 of 26 patients"}
    assert set(t["comparator"]) == {"baseline"}


def test_export_csv_json_and_restore():
    log = ComparisonLog()
    for i, p in enumerate([0.01, 0.2, None, 0.04]):
        log.add(_comparison(i, p, prespecified=i == 0, page="biomarkers"))
    csv = pd.read_csv(io.StringIO(log.to_csv()))
    assert list(csv.columns)[:3] == ["order", "status", "page"]
    assert {"p_value", "p_holm", "p_bh", "filter", "filter_json"} <= set(csv.columns)
    d = json.loads(log.to_json())
    assert d["summary"]["m"] == 3
    assert d["comparisons"][2]["p_value"] is None
    back = ComparisonLog.from_json(log.to_json())
    pd.testing.assert_frame_equal(back.table(), log.table())
