"""The benchmark runs on a small cohort, emits the documented JSON shape, and its pandas
peer computes exactly what `analysis` computes (so the speed comparison is honest).

No timing assertions: timings depend on the machine and its load.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest

from lupus_dash import analysis, bench, cli
from lupus_dash.db import Database
from lupus_dash.filters import Filter

N = 300


@pytest.fixture(scope="module")
def small_db(tmp_path_factory):
    path = tmp_path_factory.mktemp("bench") / "scale_300.duckdb"
    info = bench.build_fallback(N, path)
    assert info["patients"] == N
    db = Database(path)
    yield path, db
    db.close()


def test_fallback_cohort_has_the_schedule_and_every_patient(small_db):
    _, db = small_db
    # Every patient has a baseline visit; follow-up visits are dropped only for stops
    # and 5 % misses, so visits lie between N (baseline only) and 5 N (full schedule).
    assert db.scalar("SELECT count(*) FROM patient_facts") == N
    assert db.scalar("SELECT count(*) FROM visit_facts WHERE visit_week = 0") == N
    n_vis = db.scalar("SELECT count(*) FROM visit_facts")
    assert N < n_vis <= 5 * N
    assert analysis.cohort_info(db, "scale")["scheduled_weeks"] == list(bench.FALLBACK_WEEKS)


def test_filter_sequence_is_20_nonempty_changes_with_two_resets(small_db):
    _, db = small_db
    seq = bench.filter_sequence(db, "scale")
    assert len(seq) == bench.N_CHANGES == 20
    for label, flt in seq:
        assert analysis.count_patients(db, flt)[0] > 0, label
    resets = [i for i, (label, _) in enumerate(seq) if label == "reset"]
    assert resets == [5, 19]
    assert all(seq[i][1] == Filter.build("scale") for i in resets)
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
    flt = Filter.build("scale", **spec)
    peer = bench.PandasPeer(db, "scale")
    ours = {**bench.biomarkers_core(db, flt), **bench.remission_core(db, flt)}
    theirs = {**peer.biomarkers(flt), **peer.remission_page(flt)}
    assert set(ours) == set(theirs) == {"summary", "longitudinal", "recommended", "remission",
                                         "states", "km"}
    for key, frame in ours.items():
        pd.testing.assert_frame_equal(
            frame.reset_index(drop=True), theirs[key].reset_index(drop=True),
            check_dtype=False, check_exact=False, rtol=1e-9, obj=key,
        )
    # And the numbers are not trivially empty: the summary has one row per endpoint × week.
    assert (ours["summary"]["n"] > 0).any()
    assert len(ours["summary"]) == len(analysis.available_endpoints(db, flt)) * 5


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
    rc = cli.main(["bench", "--db", str(path), "--format", "json", "--no-mixed",
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
