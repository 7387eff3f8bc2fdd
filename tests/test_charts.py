"""Chart builders (lupus_dash.charts) and page queries (lupus_dash.explore).

The explore tests run on the external fixture cohort (tests/fixtures/cohort_external),
small enough that every expected number is counted by hand from its CSV files.
"""

from pathlib import Path

import altair as alt
import pandas as pd
import pytest

from lupus_dash import charts, dosing, ingest, layouts, results, store
from lupus_dash.analyses import cohort, quality, remission, safety
from lupus_dash.db import Database
from lupus_dash.filters import Filter

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "cohort_external"


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    res = ingest.read_cohort(FIXTURE)
    assert res.ok, res.problems
    path = tmp_path_factory.mktemp("explore") / "ext.duckdb"
    store.write_database(path, res.tables, mode="create", schedules=res.schedules)
    d = Database(path)
    yield d
    d.close()


CSLE = Filter("cSLE-QD")


# --- charts -------------------------------------------------------------------


@pytest.mark.parametrize(
    "p, expected",
    [
        (None, ""),
        (float("nan"), ""),
        (0.05, ""),  # not below 0.05
        (0.0499, "*"),
        (0.01, "*"),
        (0.0099, "**"),
        (0.001, "**"),
        (0.00099, "***"),
    ],
)
def test_stars_follow_the_papers_thresholds(p, expected):
    assert charts.stars(p) == expected


def _summary():
    return pd.DataFrame({
        "visit_week": [0, 4, 12],
        "n": [10, 9, 8],
        "mean": [0.5, 0.7, 0.8],
        "ci_low": [0.4, 0.6, 0.7],
        "ci_high": [0.6, 0.8, 0.9],
    })


def test_trajectory_puts_stars_on_significant_visits_only():
    pv = pd.DataFrame({"visit_week": [4, 12], "p_value": [0.003, 0.2]})
    ch = charts.trajectory(_summary(), "mean", "ci_low", "ci_high", p_values=pv)
    spec = ch.to_dict()
    text_layers = [lyr for lyr in spec["layer"] if lyr["mark"]["type"] == "text"]
    assert len(text_layers) == 1
    rows = spec["datasets"][text_layers[0]["data"]["name"]]
    # week 4: p = 0.003 → "**" placed at its upper CI 0.8; week 12 (p = 0.2) has no mark
    assert [(r["visit_week"], r["stars"], r["ci_high"]) for r in rows] == [(4, "**", 0.8)]
    tips = {t["title"] for t in spec["layer"][1]["encoding"]["tooltip"]}
    assert {"Week", "n", "lower", "upper"} <= tips


def test_builders_refuse_more_than_5000_rows():
    big = pd.DataFrame({"visit_week": range(5001), "value": 1.0, "patient_id": "x"})
    with pytest.raises(ValueError, match="too many"):
        charts.spaghetti(big, "value")


def test_builders_name_a_missing_column():
    with pytest.raises(ValueError, match="ci_high"):
        charts.trajectory(_summary().drop(columns="ci_high"), "mean", "ci_low", "ci_high")


def test_finalize_sizes_for_projector_and_keeps_plot_height():
    ch = charts.rates(pd.DataFrame({"visit_week": ["4"], "definition": ["lldas"], "rate": [0.5],
                                    "ci_low": [0.3], "ci_high": [0.7]}))
    normal = charts.finalize(ch, presenter=False).to_dict()
    big = charts.finalize(ch, presenter=True).to_dict()
    assert normal["config"]["axis"]["labelFontSize"] == 12
    assert big["config"]["axis"]["labelFontSize"] == 20
    assert big["config"]["range"]["category"] == list(charts.OKABE_ITO)
    assert big["autosize"] == {"type": "fit-x", "contains": "padding"}


def test_png_and_svg_export_offline():
    ch = charts.finalize(charts.trajectory(_summary(), "mean", "ci_low", "ci_high"))
    png = charts.to_png(ch, scale=1)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    svg = charts.to_svg(ch)
    assert svg.lstrip().startswith("<svg") and "Week" in svg


def test_small_multiples_facets_with_independent_scales():
    df = pd.DataFrame({
        "label": ["C3", "C3", "PGA", "PGA"], "visit_week": [0, 4, 0, 4],
        "centre": [0.5, 0.8, 2.0, 1.0], "lower": [0.4, 0.7, 1.5, 0.5],
        "upper": [0.6, 0.9, 2.5, 1.5], "stars": ["", "**", "", "*"],
    })
    spec = charts.small_multiples(df).to_dict()
    assert spec["facet"]["field"] == "label"
    assert spec["resolve"]["scale"]["y"] == "independent"
    assert isinstance(charts.small_multiples(df), alt.FacetChart)


def test_km_curves_start_at_zero_weeks_with_nobody_reached():
    km = pd.DataFrame({"group": ["a", "b"], "time": [4.0, 12.0], "n_risk": [5, 3],
                       "n_event": [1, 1], "survival": [0.8, 2 / 3], "ci_low": [0.5, 0.3],
                       "ci_high": [0.9, 0.9]})
    spec = charts.km(km).to_dict()
    rows = spec["datasets"][spec["data"]["name"]] if "data" in spec else \
        next(iter(spec["datasets"].values()))
    starts = sorted((r["group"], r["time"], r["_cum"]) for r in rows if r["time"] == 0)
    assert starts == [("a", 0.0, 0.0), ("b", 0.0, 0.0)]
    assert sorted(r["_cum"] for r in rows if r["time"] > 0) == pytest.approx([0.2, 1 / 3])


# --- explore: dosing ------------------------------------------------------------


@pytest.mark.parametrize(
    "last, stop, expected",
    [
        (None, None, []),
        (0, None, [0]),
        (3, None, [0, 2]),
        (4, None, [0, 2, 4]),
        (13, None, [0, 2, 4, 8, 12]),
        # 52 weeks: 3 induction doses + weeks 8..52 every 4 weeks (12 doses) = 15
        (52, None, [0, 2, 4, *range(8, 53, 4)]),
        (52, 10, [0, 2, 4, 8]),  # stopped at week 10: no dose at or after it
        (24, 24, [0, 2, 4, 8, 12, 16, 20]),
        (52, 2, [0]),
    ],
)
def test_belimumab_dose_weeks(last, stop, expected):
    assert dosing.belimumab_dose_weeks(last, stop) == expected


# --- analyses: fixture cohort -------------------------------------------------------


def test_patient_flow_counts_by_hand(db):
    out = cohort.patient_flow(db, CSLE)
    flow, reasons = out["stages"], out["reasons"]
    # C01, C02 reach week 52 (15 doses each); C03 stopped at week 24 (7 doses).
    assert dict(zip(flow["stage"], flow["n"], strict=True)) == {
        "Enrolled": 3, "Received induction (3 doses)": 3, "Completed follow-up": 2,
        "Stopped belimumab": 1, "Ongoing": 0,
    }
    # 15 + 15 + 7 doses, median 15.
    assert flow.loc[1, "detail"].startswith("37 doses in all, median 15 per patient")
    assert reasons[["reason", "n"]].to_dict("records") == [
        {"reason": "switched to telitacicept for poor effect", "n": 1}]


def test_flow_boxes_add_up_to_the_enrolled(db):
    # Every patient is in exactly one outcome box: completed, stopped or ongoing.
    for flt in (CSLE, Filter.build("cSLE-QD", sex=["F"]), Filter.build("LN-adult")):
        s = cohort.patient_flow(db, flt)["stages"].set_index("stage")["n"]
        assert s["Completed follow-up"] + s["Stopped belimumab"] + s["Ongoing"] == s["Enrolled"]


def test_flow_follows_the_filter(db):
    out = cohort.patient_flow(db, Filter.build("cSLE-QD", sex=["F"]))
    assert out["stages"]["n"].tolist() == [2, 2, 2, 0, 0]
    assert out["reasons"].empty


def test_ae_table3_layout(db):
    full = safety.table3(db, CSLE)
    # Every recorded event is in exactly one term row (issue 16: a term outside the paper's
    # infection rows was lost): term rows' events add up to all events.
    assert full.loc[full["level"] == 1, "n_events"].sum() == full["n_events"].iloc[0] == 3
    cats = full[full["level"] == 0].set_index("row")
    terms = full[full["level"] == 1].set_index("row")
    assert terms.loc["Infusion reaction", "n_patients"] == 1  # C02's term under its category
    t3 = cats.combine_first(terms)
    # Every cSLE-QD patient has one event: C01 URTI (wk 6), C02 infusion reaction (wk 2),
    # C03 herpes zoster (wk 16).
    assert t3.loc["Patients with adverse events", "n_patients"] == 3
    assert t3.loc["Patients with adverse events", "pct"] == pytest.approx(100.0)
    assert t3.loc["Infection", "n_patients"] == 2
    assert t3.loc["Upper respiratory tract infection", "n_patients"] == 1
    assert t3.loc["Herpes zoster", "n_patients"] == 1
    assert t3.loc["Urinary tract infection", "n_patients"] == 0  # paper row kept at 0
    assert t3.loc["Infusion reaction", "n_patients"] == 1
    assert t3.loc["Serious adverse events", "n_patients"] == 0
    assert t3.loc["Leukopenia", "n_patients"] == 0  # A01's leukopenia is in the other cohort
    assert full["row"].tolist()[:3] == ["Patients with adverse events",
                                        "Serious adverse events", "Severe adverse events"]


def test_ae_incidence_and_time_to_first(db):
    inc = safety.incidence(db, CSLE).set_index("category")
    assert inc.loc["infection", "n_patients"] == 2
    assert inc.loc["infection", "rate"] == pytest.approx(2 / 3)
    km = safety.time_to_first(db, CSLE)
    # Events at weeks 2, 6, 16, nobody censored: S = 2/3, 1/3, 0.
    ev = km[km["n_event"] > 0]
    assert ev["time"].tolist() == [2.0, 6.0, 16.0]
    assert ev["survival"].tolist() == pytest.approx([2 / 3, 1 / 3, 0.0])


def test_missingness_counts_missed_visits(db):
    miss = quality.missingness(db, CSLE)
    wk52 = miss[(miss["visit_week"] == 52) & (miss["variable"] == "visit")].iloc[0]
    # C03 stopped at week 24: 1 of 3 patients has no week-52 visit.
    assert (wk52["n_expected"], wk52["n_missing"]) == (3, 1)
    assert wk52["pct_missing"] == pytest.approx(1 / 3)
    upcr = miss[(miss["variable"] == "upcr_g_g")]
    assert not upcr["recorded"].any()  # cSLE-QD records 24-h protein, never UPCR


def test_range_edges(tmp_path):
    # The fixture with two edits: C01 week 52 SLEDAI-2K 2 → 0 (at the lower limit) and
    # C02 week 0 C3 0.52 → 4.98 g/L (within 1 % of the 0–5 span below 5).
    for f in FIXTURE.glob("*.csv"):
        text = f.read_text()
        if f.name == "visits.csv":
            lines = text.splitlines()
            head = lines[0].split(",")
            i_sledai, i_c3 = head.index("sledai2k"), head.index("c3_g_l")
            for k, line in enumerate(lines):
                cells = line.split(",")
                if cells[:2] == ["C01", "52"]:
                    cells[i_sledai] = "0"
                if cells[:2] == ["C02", "0"]:
                    cells[i_c3] = "4.98"
                lines[k] = ",".join(cells)
            text = "\n".join(lines) + "\n"
        (tmp_path / f.name).write_text(text)
    res = ingest.read_cohort(tmp_path)
    assert res.ok, res.problems
    store.write_database(tmp_path / "e.duckdb", res.tables, schedules=res.schedules)
    d = Database(tmp_path / "e.duckdb")
    out = quality.range_edges(d, CSLE)
    summ, listing = out["summary"], out["listing"]
    d.close()
    s = summ.set_index("variable")
    # A SLEDAI-2K of 0 is the natural floor of the score, not a suspect value (issue 16).
    assert (s.loc["sledai2k", "n_at_low"], s.loc["sledai2k", "n_near_high"]) == (0, 0)
    assert (s.loc["c3_g_l", "n_at_low"], s.loc["c3_g_l", "n_near_high"]) == (0, 1)
    assert s.loc["prednisone_mg_day", "n_at_low"] == 0  # lowest dose is 5 mg
    assert sorted(map(tuple, listing[["variable", "patient_id", "visit_week", "edge"]]
                      .itertuples(index=False))) == [("c3_g_l", "C02", 0, "near upper limit")]


def test_individual_trajectories_cap_and_sample(db):
    from lupus_dash.analyses import biomarkers

    def traj(**kw):
        out = biomarkers.individual_trajectories(db, CSLE, "c3_g_l", **kw)
        shown = out["shown"].iloc[0]
        return out["trajectories"], int(shown["n_total"]), bool(shown["sampled"])

    df, total, sampled = traj(cap=2)
    assert (total, sampled) == (3, True)
    assert df["patient_id"].nunique() == 2
    again, _, _ = traj(cap=2)
    assert df.equals(again)  # deterministic sample
    full, total, sampled = traj()
    assert (total, sampled, len(full)) == (3, False, 14)  # 5 + 5 + 4 visits


def test_filter_options_and_group_sizes(db):
    opts = cohort.filter_options(db, "cSLE-QD")
    assert opts["sex"] == ["F", "M"]
    assert opts["biopsy_class"] == ["IV", "III+V", "(missing)"]  # C03 not biopsied
    sizes = cohort.group_sizes(db, CSLE, "sex")
    assert dict(zip(sizes["group"], sizes["n"], strict=True)) == {"F": 2, "M": 1}


def test_option_counts_are_facet_counts_within_the_other_restrictions(db):
    # Choosing sex=F leaves C01, C02; the sex options still count both sexes (their own
    # restriction is left out), the biopsy-class options count among the two women.
    oc = cohort.option_counts(db, Filter.build("cSLE-QD", sex=["F"]))
    got = {(r.column, r.value): r.n for r in oc.itertuples()}
    assert got[("sex", "F")] == 2 and got[("sex", "M")] == 1
    assert sum(n for (c, _), n in got.items() if c == "biopsy_class") == 2


def test_endpoint_states_give_the_reason(db):
    st = remission.criteria(db, CSLE, "standard", week=4).set_index("patient_id")
    # C01 week 4: SLEDAI-2K 10 > 4 and prednisone 25 mg > 7.5: not in LLDAS, with a reason.
    assert bool(st.loc["C01", "lldas"]) is False
    assert "SLEDAI-2K" in st.loc["C01", "lldas_why"]


def test_table1_layout_prints_paper_cells(db):
    lay = layouts.table1(results.run(db, cohort.table1, CSLE, group_by="sex"),
                         results.run(db, cohort.table1_tests, CSLE, group_by="sex"))
    out = lay.table
    assert list(out.columns[2:5]) == ["Overall (n = 3)", "F (n = 2)", "M (n = 1)"]
    row = out[out["Characteristic"] == "Age at baseline (years)"].iloc[0]
    # Ages 12.1, 14.2, 10.9: mean 12.4, SD sqrt(5.58 / 2) = 1.670;
    # F = C01, C02 (12.1, 14.2): mean 13.15, SD sqrt(2 × 1.05²) = 1.485.
    assert row["Overall (n = 3)"] == "12.4 ± 1.7"
    assert row["F (n = 2)"] in ("13.2 ± 1.5", "13.1 ± 1.5")  # 13.15 rounds half-even
    assert row["M (n = 1)"] == "10.9 ± –"
    # A group of one patient: no p-value the data cannot support, and the footnote says why.
    assert row["P"] == "–" and row["Test"] == "Mann–Whitney U"
    assert any("no p-value" in n and "fewer than 2" in n for n in lay.footnotes)
    sex = out[(out["Characteristic"] == "Sex") & (out["Level"] == "F")].iloc[0]
    assert sex["Overall (n = 3)"] == "2 (66.7 %)"


def test_one_p_formatter():
    assert layouts.fmt_p(None) == "–"
    assert layouts.fmt_p(None, missing="") == ""
    assert layouts.fmt_p(0.0004) == "<0.001"
    assert layouts.fmt_p(0.0) == "<0.001"  # never 0
    assert layouts.fmt_p(0.04567) == "0.046"
    assert layouts.fmt_p("<11") == "<11"  # a suppressed cell passes through


def test_memoised_charts_are_reused_for_equal_data_only_and_specs_are_copies():
    charts.clear_memo()
    a = charts.trajectory(_summary(), "mean", "ci_low", "ci_high", title="t")
    b = charts.trajectory(_summary(), "mean", "ci_low", "ci_high", title="t")
    assert a is b  # equal frame and arguments: built once
    changed = _summary()
    changed.loc[2, "mean"] = 0.85
    c = charts.trajectory(changed, "mean", "ci_low", "ci_high", title="t")
    assert c is not a
    other_title = charts.trajectory(_summary(), "mean", "ci_low", "ci_high", title="u")
    assert other_title is not a

    def values(spec):
        import pyarrow as pa

        out = []
        for d in spec["datasets"].values():  # Arrow IPC bytes, as Streamlit sends them
            t = pa.ipc.open_stream(d).read_all()
            if "mean" in t.column_names:
                out += t.column("mean").to_pylist()
        return out

    assert 0.85 in values(charts.spec(charts.finalize(c)))
    assert 0.85 not in values(charts.spec(charts.finalize(a)))
    assert charts.finalize(a) is charts.finalize(a)
    assert charts.finalize(a, presenter=True) is not charts.finalize(a)
    # Streamlit takes the datasets out of the dict it is given: each call is a fresh copy.
    s1 = charts.spec(charts.finalize(a))
    s1.pop("datasets")
    assert "datasets" in charts.spec(charts.finalize(a))
    # The memoised spec is what the uncached builder gives.
    plain = charts._finalize(charts.trajectory.uncached(_summary(), "mean", "ci_low", "ci_high",
                                                       title="t"))
    assert charts.spec(charts.finalize(a)) == charts._arrow_datasets(plain.to_dict(validate=False))


def test_vectorised_dose_counts_equal_the_dose_schedule():
    import numpy as np

    lasts = [None, *range(110)]
    stops = [None, *range(0, 110, 3)]
    pairs = [(lw, sw) for lw in lasts for sw in stops]
    got = dosing.belimumab_dose_counts(
        [np.nan if lw is None else lw for lw, _ in pairs],
        [np.nan if sw is None else sw for _, sw in pairs])
    want = [len(dosing.belimumab_dose_weeks(lw, sw)) for lw, sw in pairs]
    assert got.tolist() == want


def test_trajectory_axis_is_stable_with_a_domain_and_follows_the_data_without():
    df = _summary()
    free = charts.spec(charts.trajectory(df, "mean", "ci_low", "ci_high"))
    fixed = charts.spec(charts.trajectory(df, "mean", "ci_low", "ci_high", y_domain=(0.0, 3.0)))

    def dom(spec):
        return next(layer["encoding"]["y"]["scale"]["domain"] for layer in spec["layer"]
                    if "scale" in layer["encoding"].get("y", {}))

    lo = float(df[["mean", "ci_low"]].min().min())
    hi = float(df[["mean", "ci_high"]].max().max())
    pad = (hi - lo) * 0.05
    assert dom(free) == pytest.approx([lo - pad, hi + pad])  # the data's range, padded
    assert dom(fixed) == pytest.approx([-0.15, 3.15])  # the given axis, 5 % padding
    # data beyond the given axis widen it (never cut)
    wide = charts.spec(charts.trajectory(df, "mean", "ci_low", "ci_high", y_domain=(0.7, 0.8)))
    assert dom(wide)[0] <= lo and dom(wide)[1] >= hi
