"""lupus_dash.survival against R survival (tests/r/t2t_reference.R -> t2t_reference.json).

Time to first LLDAS on the treat-to-target fixture, derived per strategy by
treat_to_target.time_to_target (the R script derives the same times independently);
KM medians with CI as print(survfit(...)) shows them, number at risk as
summary(survfit, times, extend = TRUE), Cox with Efron ties as coxph's default.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lupus_dash import charts, survival
from lupus_dash import treat_to_target as T

HERE = Path(__file__).parent / "r"
REF = json.loads((HERE / "t2t_reference.json").read_text())
STRATEGIES = ["composite", "treatment_policy", "while_on_treatment"]
RISK_TIMES = [0, 4, 12, 24, 52]


def close(a, b, rel=1e-6):
    if b is None:  # R's NA: not reached (None, or NaN once in a DataFrame column)
        return a is None or (isinstance(a, float) and np.isnan(a))
    return a == pytest.approx(b, rel=rel, abs=1e-12)


@pytest.fixture(scope="module")
def fx():
    d = pd.read_csv(HERE / "t2t_fixture.csv")
    patients = d.groupby("patient", as_index=False).first()[
        ["patient", "stop_week", "stop_reason", "group"]]
    return d[["patient", "week", "lldas", "remission"]], patients


def _times(fx, strategy):
    visits, patients = fx
    tt = T.time_to_target(visits, patients, "lldas", strategy, end_week=52)
    tt["group"] = patients["group"].to_numpy()
    return tt


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_km_median_and_risk_table_match_survfit(fx, strategy):
    ref = REF["time_to_lldas"][strategy]
    inc = _times(fx, strategy).query("included")
    assert len(inc) == ref["n"] and int(inc["event"].sum()) == ref["events"]
    med = survival.km_median(inc["time"], inc["event"])
    # R: summary(survfit(Surv(time, event) ~ 1))$table[c("median", "0.95LCL", "0.95UCL")]
    assert close(med["median"], ref["median"])
    assert close(med["ci_low"], ref["median_lcl"]) and close(med["ci_high"], ref["median_ucl"])
    # R: summary(survfit(...), times = c(0, 4, 12, 24, 52), extend = TRUE)$n.risk
    assert survival.at_risk(inc["time"], inc["event"], RISK_TIMES) == ref["n_risk"]
    summ = survival.km_summary(inc, group="group", times=RISK_TIMES)
    # R: summary(survfit(Surv(time, event) ~ group))$table, per stratum
    for i, row in enumerate(summ["medians"].itertuples()):
        assert close(row.median, ref["group_median"][i])
        assert close(row.ci_low, ref["group_lcl"][i])
        assert close(row.ci_high, ref["group_ucl"][i])
    risk = summ["risk"]
    assert risk[risk.group == "A"]["n_risk"].tolist() == ref["n_risk_A"]
    assert risk[risk.group == "B"]["n_risk"].tolist() == ref["n_risk_B"]
    # R: survfit(Surv(time, event) ~ 1): the curve itself (stats.kaplan_meier)
    one = survival.km_summary(inc)["curves"]
    np.testing.assert_allclose(one["time"], ref["km_time"])
    np.testing.assert_allclose(one["survival"], ref["km_surv"], rtol=1e-10)
    np.testing.assert_allclose(one["ci_low"], [np.nan if v is None else v
                                               for v in ref["km_lower"]], rtol=1e-8)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_cox_and_logrank_match_coxph_and_survdiff(fx, strategy):
    ref = REF["time_to_lldas"][strategy]
    inc = _times(fx, strategy).query("included")
    cx = survival.cox_two_groups(inc["time"], inc["event"], inc["group"])
    # R: summary(coxph(Surv(time, event) ~ group))  (ties = "efron")
    assert cx["groups"] == ["A", "B"] and cx["reason"] is None
    assert close(cx["coef"], ref["cox_coef"], 1e-6) and close(cx["se"], ref["cox_se"], 1e-6)
    assert close(cx["hr"], ref["hr"], 1e-6)
    assert close(cx["ci_low"], ref["hr_lower"], 1e-6) and close(cx["ci_high"], ref["hr_upper"],
                                                                1e-6)
    assert close(cx["p_wald"], ref["p_wald"], 1e-6)
    assert close(cx["score_statistic"], ref["score"], 1e-8)
    assert close(cx["p_score"], ref["p_score"], 1e-8)
    assert close(cx["p_lr"], ref["p_lr"], 1e-6)
    # R: survdiff(Surv(time, event) ~ group): the log-rank test beside the HR. With this
    # many tied visit weeks it differs from coxph's Efron score test: both are shown.
    lr = survival.km_summary(inc, group="group", times=RISK_TIMES)["logrank"]
    assert close(lr.statistic, ref["logrank_chisq"], 1e-8)
    assert close(lr.p_value, ref["logrank_p"], 1e-8)


def test_cox_efron_on_heavy_ties():
    ref = REF["cox_ties"]
    cx = survival.cox_two_groups(ref["t"], ref["e"], ref["g"])
    # R: coxph(Surv(t, e) ~ g) on 20 patients with events tied at 4 visit weeks
    assert close(cx["coef"], ref["coef"], 1e-6) and close(cx["se"], ref["se"], 1e-6)
    assert close(cx["p_wald"], ref["p_wald"], 1e-6)
    assert close(cx["p_score"], ref["p_score"], 1e-8) and close(cx["p_lr"], ref["p_lr"], 1e-6)


def test_median_rules_of_print_survfit():
    # S drops to exactly 0.5 at t = 4 and below it at t = 6: median = (4 + 6) / 2 = 5
    # R: survfit(Surv(c(2, 4, 6, 8), c(1, 1, 1, 1)) ~ 1)
    m = survival.km_median([2, 4, 6, 8], [1, 1, 1, 1])
    ref = REF["median_half"]
    assert m["median"] == ref["median"] == 5
    assert m["ci_low"] == ref["0.95LCL"] and m["ci_high"] is None is ref["0.95UCL"]
    # never reaches 0.5: not reached (None), the lower limit still defined
    m = survival.km_median([3, 5, 7, 9, 11, 13], [1, 0, 0, 1, 0, 0])
    ref = REF["median_not_reached"]
    assert m["median"] is None and ref["median"] is None
    assert m["ci_low"] == ref["0.95LCL"] and m["ci_high"] is None


def test_cox_says_why_it_has_no_hazard_ratio():
    one = survival.cox_two_groups([1, 2, 3], [1, 0, 1], ["A", "A", "A"])
    assert one["hr"] is None and "exactly two" in one["reason"]
    none = survival.cox_two_groups([1, 2, 3, 4], [0, 0, 0, 0], ["A", "B", "A", "B"])
    assert none["hr"] is None and none["reason"] == "no events"
    # every event in group A: the MLE is infinite; no HR, but the score test exists
    inf = survival.cox_two_groups([1, 2, 3, 4, 5, 6], [1, 1, 1, 0, 0, 0],
                                  ["A", "A", "A", "B", "B", "B"])
    assert inf["hr"] is None and "infinite" in inf["reason"]
    assert 0 < inf["p_score"] < 0.1


def test_at_risk_counts_time_at_or_after():
    # at t: patients with time ≥ t (an event or censoring at t is still at risk at t)
    assert survival.at_risk([4, 4, 12, 24, 52], [1, 0, 1, 0, 1], [0, 4, 5, 52, 60]) == \
        [5, 5, 3, 1, 0]


def test_km_risk_chart_holds_the_table_and_validates(fx):
    inc = _times(fx, "composite").query("included")
    summ = survival.km_summary(inc, group="group", times=RISK_TIMES)
    ch = charts.km_risk(summ["curves"], summ["risk"], medians=summ["medians"],
                        test_text="HR 1.18 (95 % CI 0.58–2.40), log-rank p = 0.72",
                        title="Time to first LLDAS")
    spec = ch.to_dict()  # validates against the Vega-Lite schema
    assert spec["title"]["text"] == "Time to first LLDAS"
    sub = spec["title"]["subtitle"]
    assert sub[0].startswith("Median weeks (95 % CI): A: 24 (24–NR); B: 24 (24–NR)")
    assert sub[1].startswith("HR 1.18")
    texts = [lyr for lyr in spec["layer"] if lyr["mark"]["type"] == "text"]
    risk_layer = next(lyr for lyr in texts if lyr["encoding"]["text"]["field"] == "n_risk")
    rows = spec["datasets"][risk_layer["data"]["name"]]
    # R: summary(survfit(~ group), times = ...)$n.risk, drawn under the curve per group
    assert [r["n_risk"] for r in rows if r["group"] == "A"] == \
        REF["time_to_lldas"]["composite"]["n_risk_A"]
    heads = next(lyr for lyr in texts if lyr["encoding"]["text"]["field"] == "text")
    assert [r["text"] for r in spec["datasets"][heads["data"]["name"]]] == \
        ["Week", "Number at risk", "A", "B"]
    lines = [lyr for lyr in spec["layer"] if lyr["mark"]["type"] == "line"]
    assert lines[0]["mark"]["interpolate"] == "step-after"
    assert charts.to_png(charts.finalize(ch), scale=1)[:4] == b"\x89PNG"
