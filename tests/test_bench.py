"""The benchmark runs on a small cohort, emits the documented JSON shape, times the pages'
own call lists (views.PAGES), and its pandas peer computes exactly what the seam computes
(so the speed comparison is honest).

No timing assertions: timings depend on the machine and its load.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest

from benchmarks import bench
from benchmarks.__main__ import main as bench_main
from lupus_dash import synth, views
from lupus_dash.analyses import common
from lupus_dash.db import Database
from lupus_dash.filters import Filter

N = 300
COHORT = synth.SCALE


@pytest.fixture(scope="module")
def small_db(tmp_path_factory):
    path = tmp_path_factory.mktemp("bench") / "scale_300.duckdb"
    info = synth.build_demo(path, scale=N)
    assert info["patients"] == N
    db = Database(path)
    yield path, db
    db.close()


def test_filter_sequence_is_20_nonempty_changes_with_two_resets(small_db):
    _, db = small_db
    seq = bench.filter_sequence(db, COHORT)
    assert len(seq) == bench.N_CHANGES == 20
    for label, flt in seq:
        assert common.count_patients(db, flt)[0] > 0, label
    resets = [i for i, (label, _) in enumerate(seq) if label == "reset"]
    assert resets == [5, 19]
    assert all(seq[i][1] == Filter.build(COHORT) for i in resets)
    # The sequence exercises every kind of restriction the panel offers.
    used = {c for _, f in seq for c, _ in f.values}
    assert {"sex", "class_group", "biopsy_class", "immunosuppressant", "completer",
            "organ_kidney", "baseline_anti_dsdna"} <= used
    assert any(f.age_min is not None for _, f in seq)


FILTERS = [
    {},
    {"sex": ["F"], "organ_kidney": [True]},
    {"biopsy_class": ["IV", "(missing)"], "age_min": 20, "age_max": 40},
    {"completer": [False]},
]


@pytest.mark.parametrize("spec", FILTERS, ids=["all", "F+kidney", "IV-or-missing+age", "noncomp"])
def test_pandas_peer_gives_the_same_numbers_as_analysis(small_db, spec):
    _, db = small_db
    flt = Filter.build(COHORT, **spec)
    peer = bench.PandasPeer(db, COHORT)
    ours = {**bench.biomarkers_core(db, flt), **bench.remission_core(db, flt)}
    theirs = {**peer.biomarkers(flt), **peer.remission_page(flt)}
    assert set(ours) == set(theirs) == {"summary", "longitudinal", "remission", "states", "km"}
    ours["remission"] = ours["remission"].drop(columns=["denominator_rule"])
    ours["states"] = ours["states"].drop(columns=["n_total"])
    for key, frame in ours.items():
        pd.testing.assert_frame_equal(
            frame.reset_index(drop=True), theirs[key].reset_index(drop=True),
            check_dtype=False, check_exact=False, rtol=1e-9, obj=key,
        )
    # And the numbers are not trivially empty: the summary has one row per endpoint × week.
    assert (ours["summary"]["n"] > 0).any()
    weeks = common.cohort_info(db, COHORT)["scheduled_weeks"]
    assert len(ours["summary"]) == len(common.available_endpoints(db, flt)) * len(weeks)


def test_payload_bytes_counts_arrow_and_json():
    df = pd.DataFrame({"visit_week": [0, 4, "last"], "rate": [0.5, 0.25, 0.125]})
    size = bench.payload_bytes(df)
    assert size["rows"] == 3
    # JSON: [{"visit_week":0,"rate":0.5},…] written out exactly.
    assert size["json_bytes"] == len(
        '[{"visit_week":0,"rate":0.5},{"visit_week":4,"rate":0.25},'
        '{"visit_week":"last","rate":0.125}]')
    assert size["arrow_bytes"] > 0


def test_cli_bench_emits_the_json_shape(small_db, capsys):
    path, _ = small_db
    rc = bench_main(["--db", str(path), "--format", "json", "--no-mixed",
                     "--pages", "Remission,Patient,Data quality"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    for key in ("patients", "visits", "pages", "floor_ms", "pandas_peer", "peak_rss_mb"):
        assert key in out, key
    assert out["patients"] == N
    assert out["visits"] == Database(path).scalar("SELECT count(*) FROM visit_facts")
    assert set(out["pages"]) == {"Remission", "Patient", "Data quality"}
    for page in out["pages"].values():
        assert 0 < page["p50_ms"] <= page["p95_ms"]
    assert set(out["pandas_peer"]) >= {"Biomarkers", "Remission"}
    assert out["pandas_peer"]["Remission"]["p50_ms"] > 0
    assert out["floor_ms"] > 0 and out["peak_rss_mb"] > 0
    assert len(out["steps"]) == 20
    assert out["errors"] == {}
    assert out["chart_payloads"]["Remission/rates"]["rows"] > 0


def test_the_benchmark_times_the_pages_own_call_lists():
    # Nothing page-specific is written in the benchmark: it runs views.PAGES (which
    # tests/test_pages.py checks against what each page really calls).
    assert bench.PAGES == list(views.PAGES)
    assert not [n for n in vars(bench) if n.startswith("page_")]
