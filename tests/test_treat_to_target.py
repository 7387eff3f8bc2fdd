"""lupus_dash.treat_to_target: hand-checked rules, R cross-checks, charts and loaders.

The hand fixture (HAND) has seven patients whose arithmetic is written beside each
assertion. The R fixture (tests/r/t2t_fixture.csv) is checked against
tests/r/t2t_reference.R, which derives time in target and time to first LLDAS by the
same rules, written out independently in R.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lupus_dash import charts, synth
from lupus_dash import treat_to_target as T
from lupus_dash.analyses import targets
from lupus_dash.db import Database
from lupus_dash.filters import Filter

HERE = Path(__file__).parent / "r"
REF = json.loads((HERE / "t2t_reference.json").read_text())
NA = np.nan
WEEKS = [0, 4, 12, 24, 52]

# patient: [(week, lldas, remission)], stop week, stop reason
HAND_ROWS = {
    "a": ([(0, 0, 0), (4, 1, 0), (12, NA, NA), (24, 1, 1), (52, 0, 0)], NA, None),
    "b": ([(0, 1, 0), (4, 1, 0), (12, 1, 0), (24, 0, 0), (52, 1, 0)], NA, None),
    "c": ([(0, 0, 0), (4, 0, 0), (12, 1, 0), (24, 1, 0), (36, 1, 0), (52, 1, 0)], 40,
          "switched to rituximab"),
    "d": ([(0, NA, NA), (4, 0, 0), (12, 0, 0)], NA, None),
    "e": ([(0, 0, 0)], 2, "adverse event"),
    "f": ([(0, 0, 0), (4, 1, 0), (12, 0, 0), (24, 1, 0), (52, 1, 0)], NA, None),
    "g": ([(0, 0, 0), (4, 0, 0), (12, 1, 0), (24, 1, 0), (52, 1, 0)], 24, "inefficacy"),
}


@pytest.fixture(scope="module")
def hand():
    visits = pd.DataFrame([{"patient": p, "week": w, "lldas": ll, "remission": rm}
                           for p, (rows, _, _) in HAND_ROWS.items() for w, ll, rm in rows])
    patients = pd.DataFrame([{"patient": p, "stop_week": s, "stop_reason": r}
                             for p, (_, s, r) in HAND_ROWS.items()])
    return visits, patients


def pp_of(hand, strategy, **kw):
    return T.per_patient(*hand, "lldas", strategy, end_week=52, **kw).set_index("patient")


# --- time in target, by hand ----------------------------------------------------------


def test_time_in_target_rules_by_hand(hand):
    pp = pp_of(hand, "composite")
    # a: assessed 0 F, 4 T, (12 not evaluable: skipped, 4's state holds), 24 T, 52 F.
    #    in target 4→24 = 20 plus 24→52 = 28 → 48 of 0→52 = 52 weeks: 48/52 = 0.923077
    assert pp.loc["a", "weeks_in_target"] == 48 and pp.loc["a", "observed_weeks"] == 52
    assert pp.loc["a", "share"] == pytest.approx(48 / 52)
    assert pp.loc["a", "n_assessed"] == 4
    # b: 0 T, 4 T, 12 T, 24 F, 52 T: 0→24 = 24 of 52 (52's state holds nowhere: last visit)
    assert pp.loc["b", "share"] == pytest.approx(24 / 52)
    # c (composite, stop 40, end 52): 12→24 + 24→36 + 36→40 = 28 in target; 40→52 failure;
    #    observed 0→52 = 52 → 28/52
    assert pp.loc["c", "weeks_in_target"] == 28 and pp.loc["c", "share"] == pytest.approx(28 / 52)
    # d: baseline not evaluable, 4 F, 12 F: observed 4→12 = 8, none in target → 0
    assert pp.loc["d", "first_week"] == 4 and pp.loc["d", "share"] == 0
    # e (composite): one visit then the stop at 2: failure 2→52 → observed 52, share 0
    assert pp.loc["e", "observed_weeks"] == 52 and pp.loc["e", "share"] == 0
    # f: 4→12 (8) + 24→52 (28) = 36 → 36/52
    assert pp.loc["f", "share"] == pytest.approx(36 / 52)
    # g (stop 24, the week-24 visit is on treatment): 12→24 = 12; failure 24→52 → 12/52
    assert pp.loc["g", "share"] == pytest.approx(12 / 52)


def test_strategies_change_time_in_target_by_hand(hand):
    tp, wot = pp_of(hand, "treatment_policy"), pp_of(hand, "while_on_treatment")
    # c, treatment policy: 12→24 + 24→36 + 36→52 = 40 of 52 (the stop at 40 ignored)
    assert tp.loc["c", "share"] == pytest.approx(40 / 52)
    # c, while on treatment: visits ≤ 40: 12→24 + 24→36 = 24 of 0→36 = 36
    assert wot.loc["c", "share"] == pytest.approx(24 / 36)
    assert wot.loc["c", "end_week"] == 36
    # e: one assessed visit and no failure segment: no observed time → NaN, left out
    assert math.isnan(tp.loc["e", "share"]) and math.isnan(wot.loc["e", "share"])
    # g, treatment policy: 12→24 + 24→52 = 40 of 52
    assert tp.loc["g", "share"] == pytest.approx(40 / 52)


def test_sustained_flare_and_loss_by_stop_by_hand(hand):
    pp = pp_of(hand, "composite")
    # f: runs {4} (span 0) and {24, 52} (2 visits, span 28 ≥ 26 weeks) → sustained
    assert pp.loc["f", "sustained"] and pp.loc["f", "longest_run_weeks"] == 28
    # a: run {4, 24} (the not-evaluable week 12 does not break it): span 20 < 26 → not
    assert not pp.loc["a", "sustained"] and pp.loc["a", "longest_run_weeks"] == 20
    # b: run {0, 4, 12}: span 12; c (composite): {12, 24, 36} up to the stop: span 24
    assert not pp.loc["b", "sustained"] and not pp.loc["c", "sustained"]
    # treatment policy: c's run {12, 24, 36, 52} spans 40 → sustained
    assert pp_of(hand, "treatment_policy").loc["c", "sustained"]
    # configurable: 20 weeks makes a sustained; 3 visits takes f's 2-visit run away
    assert pp_of(hand, "composite", min_weeks=20).loc["a", "sustained"]
    assert not pp_of(hand, "composite", min_visits=3).loc["f", "sustained"]
    # flare = loss at an assessed visit after reaching: a (T at 4, F at 52), b (F at 24),
    # f (F at 12); c and g lose it by the stop (composite), d and e never reach it
    assert pp["lost_by"].to_dict() == {"a": "flare", "b": "flare", "c": "stopped", "d": None,
                                       "e": None, "f": "flare", "g": "stopped"}
    assert pp.loc["a", "lost_week"] == 52 and pp.loc["b", "lost_week"] == 24
    assert pp.loc["c", "lost_week"] == 40 and pp.loc["g", "lost_week"] == 24
    assert pp.loc["b", "first_target_week"] == 0 and pp.loc["c", "first_target_week"] == 12


def test_cohort_summary_by_hand(hand):
    s = T.summarise(pp_of(hand, "composite").reset_index(), "lldas", "composite")
    # shares sorted: 0, 0, 12/52, 24/52, 28/52, 36/52, 48/52 (n = 7)
    # SPSS type 6: P25 at rank 0.25 × 8 = 2 → 0; median rank 4 → 24/52; P75 rank 6 → 36/52
    # R: quantile(c(0, 0, 12/52, 24/52, 28/52, 36/52, 48/52), c(.25, .5, .75), type = 6)
    assert (s["n"], s["p25"], s["median"]) == (7, 0.0, pytest.approx(24 / 52))
    assert s["p75"] == pytest.approx(36 / 52)
    # ≥ 50 %: a (0.92), c (0.54), f (0.69) → 3 of 7; R: prop.test(3, 7, correct = FALSE)
    assert s["n_ge_50pct"] == 3 and s["share_ge_50pct"] == pytest.approx(3 / 7)
    assert s["ci_low"] == pytest.approx(0.1582198553) and s["ci_high"] == pytest.approx(
        0.7495416355)
    # sustained: f only → 1 of 7; R: prop.test(1, 7, correct = FALSE)
    assert s["n_sustained"] == 1
    assert (s["sustained_ci_low"], s["sustained_ci_high"]) == (
        pytest.approx(0.02567962434), pytest.approx(0.51312782927))
    assert (s["n_reached"], s["n_flare"], s["n_lost_by_stop"]) == (5, 3, 2)
    tp = T.summarise(pp_of(hand, "treatment_policy").reset_index(), "lldas", "treatment_policy")
    assert tp["n"] == 6 and tp["n_no_observed_time"] == 1  # e has no observed time


# --- time to first LLDAS, by hand -------------------------------------------------------


def test_time_to_first_lldas_by_hand(hand):
    comp = T.time_to_target(*hand, "lldas", "composite", end_week=52).set_index("patient")
    # b is in LLDAS at baseline: reported apart, never an event at week 0
    assert comp.loc["b", "at_baseline"] and not comp.loc["b", "included"]
    assert comp.loc["b", "why"] == "in the state at baseline" and math.isnan(comp.loc["b", "time"])
    # a, f: first LLDAS at 4; c, g: at 12 (g's week-12 visit is before its stop at 24)
    assert comp.loc[["a", "c", "f", "g"], "time"].tolist() == [4, 12, 4, 12]
    assert comp.loc[["a", "c", "f", "g"], "event"].tolist() == [1, 1, 1, 1]
    # d: baseline not evaluable, kept at risk, censored at its last visit (12)
    assert comp.loc["d", "included"] and not comp.loc["d", "baseline_assessed"]
    assert (comp.loc["d", "time"], comp.loc["d", "event"]) == (12, 0)
    # e (composite): stopped at 2 without LLDAS → event-free failure censored at the planned
    # end (52), not at its last visit (0): censoring it early would be informative
    assert (comp.loc["e", "time"], comp.loc["e", "event"]) == (52, 0)
    for strategy in ("treatment_policy", "while_on_treatment"):
        other = T.time_to_target(*hand, "lldas", strategy, end_week=52).set_index("patient")
        # e has no assessed visit after baseline: no follow-up, left out
        assert not other.loc["e", "included"]
        assert other.loc["e", "why"] == "no assessed visit after baseline"


def test_events_after_the_stop_count_only_under_treatment_policy():
    visits = pd.DataFrame({"patient": ["h"] * 4, "week": [0, 4, 12, 24],
                           "lldas": [0, 0, 0, 1]})
    patients = pd.DataFrame({"patient": ["h"], "stop_week": [8]})
    t = {s: T.time_to_target(visits, patients, "lldas", s, end_week=52).iloc[0]
         for s in T.STRATEGIES}
    # LLDAS at 24, after the stop at 8:
    assert (t["treatment_policy"]["time"], t["treatment_policy"]["event"]) == (24, 1)
    assert (t["while_on_treatment"]["time"], t["while_on_treatment"]["event"]) == (4, 0)
    assert (t["composite"]["time"], t["composite"]["event"]) == (52, 0)
    # follow-up is cut at the planned end: LLDAS first seen at 60 is censored at 52
    late = pd.DataFrame({"patient": ["i"] * 3, "week": [0, 24, 60], "lldas": [0, 0, 1]})
    for s in T.STRATEGIES:
        r = T.time_to_target(late, pd.DataFrame({"patient": ["i"], "stop_week": [NA]}),
                             "lldas", s, end_week=52).iloc[0]
        assert (r["time"], r["event"]) == (52, 0)


# --- against R on the fixture ------------------------------------------------------------


@pytest.fixture(scope="module")
def fx():
    d = pd.read_csv(HERE / "t2t_fixture.csv")
    patients = d.groupby("patient", as_index=False).first()[
        ["patient", "stop_week", "stop_reason", "group"]]
    return d[["patient", "week", "lldas", "remission"]], patients


@pytest.mark.parametrize("strategy", T.STRATEGIES)
@pytest.mark.parametrize("column", ["lldas", "remission"])
def test_time_in_target_matches_r(fx, strategy, column):
    ref = REF["time_in_target"][f"{strategy}_{column}"]
    pp = T.per_patient(*fx, column, strategy, end_week=52)
    np.testing.assert_allclose(pp["share"].to_numpy(float),
                               [NA if v is None else v for v in ref["share"]], rtol=1e-12)
    s = T.summarise(pp, column, strategy)
    # R: quantile(share, c(.25, .5, .75), type = 6); prop.test(k, n, correct = FALSE)
    assert [s["p25"], s["median"], s["p75"]] == pytest.approx(ref["quantiles"], rel=1e-12)
    assert (s["n"], s["n_ge_50pct"]) == (ref["n"], ref["n_ge_50pct"])
    assert [s["ci_low"], s["ci_high"]] == pytest.approx(ref["ci"], rel=1e-9)


@pytest.mark.parametrize("strategy", T.STRATEGIES)
def test_time_to_first_lldas_matches_r_per_patient(fx, strategy):
    ref = pd.DataFrame(REF["time_to_lldas"][strategy]["per_patient"]).set_index("patient")
    tt = T.time_to_target(*fx, "lldas", strategy, end_week=52).set_index("patient")
    assert tt["at_baseline"].to_dict() == ref["at_baseline"].to_dict()
    inc = tt[tt["included"]]
    assert inc["time"].to_dict() == ref.loc[inc.index, "time"].astype(float).to_dict()
    assert inc["event"].to_dict() == ref.loc[inc.index, "event"].astype(float).to_dict()
    # R gives no time to those with no follow-up; here they are left out
    gone = tt[~tt["included"] & ~tt["at_baseline"]].index
    assert ref.loc[gone, "time"].isna().all()
    assert int(tt["at_baseline"].sum()) == REF["time_to_lldas"][strategy]["n_at_baseline"] == 2


# --- disease-state flow -------------------------------------------------------------------


def test_states_counts_and_transitions_by_hand(hand):
    st = T.visit_states(*hand, WEEKS, "composite")
    names = np.asarray(T.STATES, dtype=object)[st]
    # rows in patient order a..g, columns weeks 0, 4, 12, 24, 52
    assert names[0].tolist() == ["active", "LLDAS", "not assessed", "remission", "active"]
    assert names[2].tolist() == ["active", "active", "LLDAS", "LLDAS", "stopped"]  # c, stop 40
    assert names[4].tolist() == ["active", "stopped", "stopped", "stopped", "stopped"]  # e
    assert names[6].tolist() == ["active", "active", "LLDAS", "LLDAS", "stopped"]  # g, stop 24
    counts = T.state_counts(st, WEEKS)
    at52 = counts[counts.visit_week == 52].set_index("state")["n"].to_dict()
    # 52: LLDAS b, f; active a; not assessed d; stopped c, e, g
    assert at52 == {"remission": 0, "LLDAS": 2, "active": 1, "not assessed": 1, "stopped": 3}
    assert counts.groupby("visit_week")["n"].sum().tolist() == [7] * 5
    tr = T.transitions(st, WEEKS)
    t24 = T.transition_table(tr, 24)
    # 24 → 52: a remission→active, b active→LLDAS, c and g LLDAS→stopped, f LLDAS→LLDAS,
    # d not assessed→not assessed, e stopped→stopped
    assert t24.loc["LLDAS", "stopped"] == 2 and t24.loc["LLDAS", "LLDAS"] == 1
    assert t24.loc["remission", "active"] == 1 and int(t24.to_numpy().sum()) == 7
    # treatment policy shows what was observed after a stop: c and g were in LLDAS at 52
    tp = T.state_counts(T.visit_states(*hand, WEEKS, "treatment_policy"), WEEKS)
    assert tp[tp.visit_week == 52].set_index("state")["n"].to_dict() == {
        "remission": 0, "LLDAS": 4, "active": 1, "not assessed": 1, "stopped": 1}


def test_sankey_spec_has_counts_colours_and_validates(hand):
    st = T.visit_states(*hand, WEEKS, "composite")
    ch = charts.sankey(T.state_counts(st, WEEKS), T.transitions(st, WEEKS),
                       title="Disease states by visit", subtitle="Composite strategy")
    spec = ch.to_dict()  # validates against the Vega-Lite schema
    assert spec["title"] == {"text": "Disease states by visit", "subtitle": "Composite strategy"}
    rect = next(lyr for lyr in spec["layer"] if lyr["mark"]["type"] == "rect")
    colour = rect["encoding"]["color"]["scale"]
    assert colour == {"domain": list(T.STATES), "range": list(charts.T2T_COLOURS)}
    nodes = spec["datasets"][rect["data"]["name"]]
    assert {(r["week"], r["state"]): r["n"] for r in nodes}[(52, "stopped")] == 3
    assert sum(r["n"] for r in nodes if r["week"] == 24) == 7
    # each node's count is written on it or beside it
    assert all((r["label"] or r["side_label"]) == f"{r['n']:,}" for r in nodes)
    area = next(lyr for lyr in spec["layer"] if lyr["mark"]["type"] == "area")
    assert area["mark"]["interpolate"] == "basis"
    assert {t["title"] for t in area["encoding"]["tooltip"]} >= {"From", "To", "Patients"}
    ribbons = spec["datasets"][area["data"]["name"]]
    assert len(ribbons) == 4 * len(T.transitions(st, WEEKS))  # 4 points per ribbon
    axis = spec["layer"][0]["encoding"]["x"]["axis"]
    assert "'Week 52'" in axis["labelExpr"]


def test_sankey_and_swimmer_stay_small_at_100000_patients():
    """≤ 200 KB of chart data for the browser whatever the cohort size (issue 13)."""
    rng = np.random.default_rng(3)
    n, weeks = 100_000, [0, 4, 8, 12, 16, 20, 24, 36, 52]
    pid = np.repeat(np.arange(n), len(weeks))
    wk = np.tile(weeks, n).astype(float)
    attend = rng.random(pid.size) < 0.8
    lld = np.where(rng.random(pid.size) < 0.05, NA, (rng.random(pid.size) < 0.4).astype(float))
    rem = np.where(np.isnan(lld), NA, lld * (rng.random(pid.size) < 0.4))
    visits = pd.DataFrame({"patient": pid, "week": wk, "lldas": lld, "remission": rem})[attend]
    stop = np.where(rng.random(n) < 0.12, rng.choice(weeks[1:], n), NA)
    patients = pd.DataFrame({"patient": np.arange(n), "stop_week": stop,
                             "stop_reason": np.where(np.isnan(stop), None, "inefficacy")})
    st = T.visit_states(visits, patients, weeks, "composite")
    sankey = charts.sankey(T.state_counts(st, weeks), T.transitions(st, weeks))
    lanes, markers, note = T.swimmer_data(visits, patients, end_week=52)
    swim = charts.swimmer(lanes, markers, note=note)
    for ch in (sankey, swim):
        assert len(json.dumps(ch.to_dict())) < 200_000
    assert len(lanes) == T.SWIMMER_MAX and note.startswith("Showing 60 of 100,000 patients")


# --- swimmer ---------------------------------------------------------------------------------


def test_swimmer_lanes_sorting_cap_and_markers(hand):
    ae = pd.DataFrame({"patient": ["g", "a"], "week": [10, 30], "term": ["infection", "rash"]})
    lanes, markers, note = T.swimmer_data(*hand, ae, max_patients=3, end_week=52)
    # stopped first, earliest stop first: e (2), g (24), c (40); four patients not shown
    assert lanes["patient"].tolist() == ["e", "g", "c"]
    assert lanes["status"].tolist() == ["stopped"] * 3
    assert lanes["end"].tolist() == [2, 24, 40]
    assert note == ("Showing 3 of 7 patients (patients who stopped or switched first, earliest "
                    "stop first); filter the cohort to see others.")
    g = markers[markers.patient == "g"]
    assert g[["week", "kind"]].values.tolist() == [
        [0, "active"], [4, "active"], [10, "adverse event"], [12, "LLDAS"], [24, "LLDAS"],
        [24, "stop"], [52, "stopped"]]
    assert g[g.kind == "stop"]["detail"].tolist() == ["inefficacy"]
    assert "a" not in set(markers.patient)  # not shown: its adverse event is left out
    lanes, _, note = T.swimmer_data(*hand, sort_by="time_on_treatment", end_week=52)
    # stop week, else last visit: a, b, f 52 (ties by id), c 40, g 24, d 12, e 2
    assert lanes["patient"].tolist() == ["a", "b", "f", "c", "g", "d", "e"] and note == ""
    assert lanes.set_index("patient")["status"].to_dict()["d"] == "no further visits"
    assert lanes.set_index("patient")["status"].to_dict()["a"] == "ongoing"
    lanes, _, _ = T.swimmer_data(*hand, sort_by="time_in_target", end_week=52)
    assert lanes["patient"].tolist()[:3] == ["a", "f", "c"]  # 48/52, 36/52, 28/52
    with pytest.raises(ValueError, match="sort_by"):
        T.swimmer_data(*hand, sort_by="age")


def test_swimmer_visit_without_a_week_draws_no_marker():
    # A visit of a shown patient whose week is unknown has no place on the lane: it must
    # not turn into a marker at the last week drawn.
    visits = pd.DataFrame({"patient": ["p", "p", "q", "q"], "week": [0, 52, 0, NA],
                           "lldas": [0.0, 1.0, 1.0, 1.0], "remission": [0.0, 0.0, 0.0, 0.0]})
    patients = pd.DataFrame({"patient": ["p", "q"], "stop_week": [NA, NA]})
    lanes, markers, _ = T.swimmer_data(visits, patients, end_week=52)
    assert lanes.set_index("patient")["end"].to_dict() == {"p": 52, "q": 0}
    assert markers[markers.patient == "q"][["week", "kind"]].values.tolist() == [[0, "LLDAS"]]
    assert markers[markers.patient == "p"][["week", "kind"]].values.tolist() == [
        [0, "active"], [52, "LLDAS"]]


def test_swimmer_spec_validates_and_looks_right(hand):
    ae = pd.DataFrame({"patient": ["g"], "week": [10], "term": ["infection"]})
    lanes, markers, note = T.swimmer_data(*hand, ae, max_patients=5, end_week=52)
    spec = charts.swimmer(lanes, markers, note=note, title="Patients").to_dict()
    assert spec["title"] == {"text": "Patients", "subtitle": note}
    bar, pts = spec["layer"]
    assert bar["encoding"]["y"]["sort"] == lanes["patient"].tolist()
    shapes = pts["encoding"]["shape"]["scale"]
    assert dict(zip(shapes["domain"], shapes["range"]))["stop"] == "cross"
    assert dict(zip(shapes["domain"], shapes["range"]))["adverse event"] == "triangle-down"
    kinds = {r["kind"] for r in spec["datasets"][pts["data"]["name"]]}
    assert {"stop", "adverse event", "LLDAS", "stopped"} <= kinds
    assert spec["height"] == 16 * 5


def test_forest_plot_has_overall_row_dashed_line_and_interaction_p():
    df = pd.DataFrame({"label": ["A", "B", "All patients"], "estimate": [-2.02, -1.91, -1.98],
                       "ci_low": [-3.25, -3.19, -2.85], "ci_high": [-0.80, -0.63, -1.10],
                       "n": [20, 18, 38], "events": [12, 9, 21]})
    spec = charts.forest_t2t(df, events="events", interaction_p=0.2418,
                             interaction_label="Visit × group interaction").to_dict()
    assert spec["title"]["subtitle"] == "Visit × group interaction p = 0.24"
    left = spec["layer"][0]
    dashed = left["layer"][0]
    assert dashed["mark"]["strokeDash"] == [5, 4]
    assert spec["datasets"][dashed["data"]["name"]] == [{"v": -1.98}]
    rows = spec["datasets"][left["layer"][2]["data"]["name"]]
    assert [r["_left"] for r in rows] == ["All patients (n = 38, events 21)",
                                          "A (n = 20, events 12)", "B (n = 18, events 9)"]
    assert rows[0]["_right"] == "-1.98 (-2.85 to -1.10)"
    assert spec["resolve"]["scale"]["y"] == "independent"
    assert charts.fmt_p(0.0004) == "<0.001" and charts.fmt_p(0.0123) == "0.012"
    with pytest.raises(ValueError, match="All patients"):
        charts.forest_t2t(df[df.label != "All patients"])


# --- from the database -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    path = tmp_path_factory.mktemp("t2t") / "demo.duckdb"
    synth.build_demo(path)
    d = Database(path)
    yield d
    d.close()


def test_loaders_on_the_demo(demo):
    flt = Filter("csle_belimumab")
    tit = targets.time_in_target(demo, flt)
    assert list(tit.columns) == T.SUMMARY_COLUMNS
    assert tit["definition"].tolist() == ["lldas", "remission"]
    assert (tit["n"] + tit["n_no_observed_time"]).tolist() == [26, 26]
    # the same numbers from the pure functions on the frames the loader pulls
    visits, patients = targets._frames(demo, flt, "standard")
    pp = T.per_patient(visits, patients, "lldas", "composite", end_week=52)
    assert tit.iloc[0]["median"] == pytest.approx(T.summarise(pp, "lldas", "composite")["median"])
    flow = targets.state_flow(demo, flt)
    counts, trans = flow["counts"], flow["transitions"]
    assert counts.groupby("visit_week")["n"].sum().tolist() == [26] * 5
    assert trans.groupby("from_week")["n"].sum().tolist() == [26] * 4
    # the three non-completers (stops at 28, 28, 36) are "stopped" at week 52
    assert counts.set_index(["visit_week", "state"]).loc[(52, "stopped"), "n"] == 3
    ttf = targets.time_to_first(demo, flt, group_by="sex")
    c = ttf["counts"].iloc[0]
    assert c["n_patients"] == 26 and c["n_at_risk"] + c["n_at_baseline"] + \
        c["n_no_follow_up"] == 26
    assert set(ttf["medians"]["group"]) == {"F", "M"}
    assert ttf["tests"]["method"].tolist() == ["logrank", "cox"]
    sw = targets.swimmer(demo, flt)
    lanes, markers, note = sw["lanes"], sw["markers"], sw["note"]["note"].iloc[0]
    assert note == "" and len(lanes) == 26
    assert lanes["patient"].tolist()[:3] == ["CSLE-013", "CSLE-016", "CSLE-023"]
    assert lanes["stop_reason"].tolist()[0] == "switched to telitacicept for poor effect"
    ae = markers[markers.kind == "adverse event"]
    assert sorted(ae["detail"]) == sorted(["limb pain", "fungal pneumonia",
                                           "upper respiratory tract infection",
                                           "gastrointestinal infection"])
    with pytest.raises(ValueError, match="strategy"):
        targets.time_in_target(demo, flt, strategy="hypothetical")
    with pytest.raises(ValueError, match="preset"):
        targets.state_flow(demo, flt, preset="nope")


def test_r_fixture_is_reproducible():
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_t2t_fixture", HERE / "make_t2t_fixture.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    fresh = mod.make_fixture()
    saved = pd.read_csv(HERE / "t2t_fixture.csv")
    assert len(fresh) == len(saved) == 219
    np.testing.assert_allclose(fresh["value"].to_numpy(float), saved["value"].to_numpy(float),
                               rtol=0, atol=1e-12)
    assert fresh["lldas"].astype("Float64").equals(saved["lldas"].astype("Float64"))
