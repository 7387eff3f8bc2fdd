"""Statistics at small n (issue 10) against R: tests/r/small_n_reference.R -> small_n_reference.json.

The fixture (tests/r/make_small_n_fixture.py -> small_n_fixture.csv) has 24
patients with ties, decimal differences that tie only after rounding, dropouts,
a subgroup of 5 (class4) and a group of 1 (group C). Exact p-values are R coin's,
Satterthwaite df lmerTest's, epsilons computed by hand in R (and car's).
Tolerance rel 1e-6 for closed forms and exact distributions, 1e-4 for the mixed
model (4 significant digits, as STATISTICS.md asks). Each assertion names the R call.
Regenerate: python tests/r/make_small_n_fixture.py && Rscript tests/r/small_n_reference.R
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sst

from lupus_dash import stats as S
from lupus_dash.layouts import fmt_p

HERE = Path(__file__).parent / "r"
REF = json.loads((HERE / "small_n_reference.json").read_text())
WEEKS = [0, 4, 12, 24]
REL = 1e-6


def close(a, b, rel=REL, abs_=1e-12):
    return a is not None and a == pytest.approx(b, rel=rel, abs=abs_)


@pytest.fixture(scope="module")
def fx() -> pd.DataFrame:
    return pd.read_csv(HERE / "small_n_fixture.csv")


@pytest.fixture(scope="module")
def pat(fx) -> pd.DataFrame:
    return fx[fx.visit_week == 0].sort_values("patient").set_index("patient")


def wide(fx: pd.DataFrame, col: str, keep=None) -> pd.DataFrame:
    w = fx.pivot(index="patient", columns="visit_week", values=col)[WEEKS].sort_index()
    return w if keep is None else w[keep.reindex(w.index).to_numpy()]


def subset(pat: pd.DataFrame, key: str) -> pd.Series:
    if key.startswith("class4_"):
        return pat["class4"]
    if key.startswith("groupA_"):
        return pat["group"] == "A"
    return pd.Series(True, index=pat.index)


def test_fixture_is_reproducible(fx):
    spec = importlib.util.spec_from_file_location("mk", HERE / "make_small_n_fixture.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    fresh = mod.make_fixture()
    assert len(fresh) == len(fx) == 96
    for col in ("c3", "score", "responder"):
        np.testing.assert_allclose(fresh[col].to_numpy(float), fx[col].to_numpy(float),
                                   rtol=0, atol=1e-12)
    assert (fresh["class4"] == fx["class4"]).all()


# ----------------------------------------------------------------------------- signed-rank


@pytest.mark.parametrize("key", sorted(REF["paired"]))
def test_signed_rank_exact_matches_coin(fx, pat, key):
    ref = REF["paired"][key]
    w = wide(fx, ref["col"], subset(pat, key))
    r = S.wilcoxon(w[ref["fu"]], w[ref["cmp"]])
    assert r.n == ref["n"] and r.extra["n_nonzero"] == ref["n_nonzero"]
    # R: sum(rank(abs(d))[d > 0]) with d = round(x - y, 10)
    assert r.extra["V"] == ref["V"]
    # R: pvalue(coin::wilcoxsign_test(d ~ 0, distribution = "exact", zero.method = "Wilcoxon"))
    assert r.p_method == "exact" and close(r.p_value, ref["p_exact"])
    # R: wilcox.test(d, exact = FALSE, correct = FALSE)$p.value; Z by hand (SPSS)
    assert close(r.p_asymptotic, ref["p_asymptotic"]) and close(r.statistic, ref["z"])
    # R: median of the Walsh averages; wilcox.test(d, conf.int = TRUE)$conf.int
    assert r.estimate_name == "hodges_lehmann" and close(r.estimate, ref["hl"])
    assert r.extra["hl_ci_method"] == ref["ci_method"]
    assert [r.ci_low, r.ci_high] == pytest.approx(ref["ci"], abs=1e-9)
    assert r.extra["hl_conf_level"] == pytest.approx(ref["conf_level"])
    assert r.mean_diff is None


def test_rounding_restores_decimal_ties(fx):
    # R: V on unrounded differences differs from V on round(x - y, 10) in these rows
    changed = [k for k, v in REF["paired"].items() if v.get("V_unrounded") != v.get("V")]
    assert sorted(changed) == ["c3_24_12", "c3_4_0"]
    w = wide(fx, "c3")
    raw = (w[4] - w[0]).dropna().abs().to_numpy()
    assert np.unique(raw).size > np.unique(np.round(raw, S.RANK_DECIMALS)).size
    assert S.wilcoxon(w[4], w[0]).extra["V"] == REF["paired"]["c3_4_0"]["V"]  # not V_unrounded


def test_subgroup_of_five_shows_what_it_cannot_reach(fx, pat):
    ref = REF["paired"]["class4_score_24_0"]
    w = wide(fx, "score", pat["class4"])
    r = S.wilcoxon(w[24], w[0])
    # all 5 differences negative: R coin exact p = 2/2^5, where the asymptotic p was < 0.05
    assert ref["p_asymptotic"] < 0.05 and r.p_value == ref["p_exact"] == 0.0625
    assert r.extra["min_p"] == 0.0625
    assert r.extra["note"] == "n = 5: no result can reach p < 0.05"
    r4 = S.wilcoxon(*[wide(fx, "c3", pat["class4"])[k] for k in (24, 0)])
    # one zero difference dropped: 4 nonzero, min p = 2/2^4
    assert r4.extra["note"] == "n = 5 (4 nonzero): no result can reach p < 0.05"
    assert r4.extra["min_p"] == 0.125 and close(r4.p_value, REF["paired"]["class4_c3_24_0"][
        "p_exact"])


# ----------------------------------------------------------------------------- rank-sum


def _group_args(fx, pat, ref):
    v = fx[fx.visit_week == ref["week"]].sort_values("patient").set_index("patient")[ref["col"]]
    if ref["by"] == "class4":
        return v, pat["class4"]
    keep = pat["group"] != ("C" if ref["by"] == "group_AB" else "B")
    return v[keep], pat["group"][keep]


@pytest.mark.parametrize("key", sorted(k for k in REF["groups"] if k != "group_of_one"))
def test_rank_sum_exact_matches_coin(fx, pat, key):
    ref = REF["groups"][key]
    v, g = _group_args(fx, pat, ref)
    r = S.mann_whitney(v, g)
    assert (r.extra["n1"], r.extra["n2"]) == (ref["n1"], ref["n2"])
    # R: wilcox.test(a, b, exact = FALSE, correct = TRUE): W and p
    assert r.statistic == ref["W"] and close(r.p_asymptotic, ref["p_asymptotic"])
    # R: pvalue(coin::wilcox_test(v ~ g, distribution = "exact"))
    assert r.p_method == "exact" and close(r.p_value, ref["p_exact"])
    # R: median(outer(a, b, "-")); wilcox.test(a, b, conf.int = TRUE)$conf.int
    assert r.estimate_name == "hl_shift" and close(r.estimate, ref["hl"])
    assert r.extra["hl_ci_method"] == ref["ci_method"]
    assert [r.ci_low, r.ci_high] == pytest.approx(ref["ci"], abs=1e-9)
    assert r.mean_diff is None


def test_rank_sum_group_of_one_gives_no_p(fx, pat):
    ref = REF["groups"]["group_of_one"]
    v, g = _group_args(fx, pat, ref)
    r = S.mann_whitney(v, g)
    # R computes W = 5 and p = 1 (wilcox.test(a, b)); we keep W and give no p
    assert r.statistic == ref["W"] and ref["n2"] == 1
    assert r.p_value is None and r.p_asymptotic is None and r.ci_low is None
    assert r.reason == "group C (n = 1) has fewer than 2 patients: no p-value"
    assert close(r.estimate, ref["hl"])  # R: median(outer(a, b, "-"))
    w = S.welch_t(v, g)
    assert w.reason == r.reason and w.p_value is None


# ----------------------------------------------------------------------------- Kruskal-Wallis


@pytest.mark.parametrize("wk", [0, 24])
def test_kruskal_small_groups_note(fx, pat, wk):
    ref = REF["kruskal"][str(wk)]
    v = fx[fx.visit_week == wk].sort_values("patient")["c3"].to_numpy()
    r = S.kruskal(v, pat["arm"].to_numpy())
    # R: kruskal.test(v ~ factor(arm))
    assert close(r.statistic, ref["H"]) and close(r.p_value, ref["p"])
    assert r.extra["sizes"] == ref["sizes"] and r.p_method == "chi_square"
    assert r.extra["note"] == ("Kruskal–Wallis p is a chi-square approximation, unreliable with "
                               "groups under 5: X (n = 3), Y (n = 4)")
    assert r.extra["small_groups"] == {"X": 3, "Y": 4}


def test_kruskal_group_of_one(fx, pat):
    v = fx[fx.visit_week == 0].sort_values("patient")["c3"].to_numpy()
    r = S.kruskal(v, pat["group"].to_numpy())
    assert r.p_value is None and r.statistic is not None
    assert r.reason == "group C (n = 1) has fewer than 2 patients: no p-value"


# ----------------------------------------------------------------------------- mixed model


@pytest.mark.parametrize("engine", ["statsmodels", "closed_form"])
@pytest.mark.parametrize("key", sorted(REF["mixed"]))
def test_mixed_model_satterthwaite_matches_lmertest(fx, pat, key, engine):
    ref = REF["mixed"][key]
    col = key.rsplit("_", 1)[-1]
    keep = subset(pat, key)
    long = fx[fx.patient.isin(keep[keep].index)].rename(
        columns={"patient": "subject", "visit_week": "visit", col: "value"})
    res = S.mixed_model(long[["subject", "visit", "value"]], baseline=0, engine=engine)
    assert [r.extra["visit"] for r in res] == ref["visits"]
    assert res[0].n == ref["n_subjects"] and res[0].extra["n_obs"] == ref["n_obs"]
    for i, r in enumerate(res):
        # R: summary(lmerTest::lmer(value ~ visit + (1 | patient)), ddf = "Satterthwaite")
        assert r.reason is None and r.p_method == "t_satterthwaite"
        assert close(r.estimate, ref["estimate"][i], rel=1e-4)
        assert close(r.extra["se"], ref["se"][i], rel=1e-4)
        assert close(r.df, ref["df"][i], rel=1e-4)
        assert close(r.statistic, ref["t"][i], rel=1e-4)
        assert close(r.p_value, ref["p"][i], rel=1e-4)
        # R: estimate +/- qt(0.975, df) * se
        assert close(r.ci_low, ref["ci_low"][i], rel=1e-4, abs_=1e-6)
        assert close(r.ci_high, ref["ci_high"][i], rel=1e-4, abs_=1e-6)


def test_satterthwaite_hessian_is_the_reml_deviance_curvature(fx):
    # the analytic Hessian equals central differences of the REML deviance
    # (lmerTest: numDeriv::hessian(devfun_vp, c(theta, sigma)))
    long = fx.dropna(subset=["c3"])
    y = long["c3"].to_numpy(float)
    vis = long["visit_week"].to_numpy()
    exog = np.column_stack([np.ones(y.size)] + [(vis == w).astype(float) for w in WEEKS[1:]])
    codes = pd.factorize(long["patient"])[0]
    fit = S._fit_reml_intercept(y, exog, codes)
    _, _, hess = S._satterthwaite(y, exog, codes, fit["var_subject"], fit["var_residual"])
    parts, ni = S._reml_parts(y, exog, codes)
    n_obs, p = exog.shape

    def dev(theta, sigma):
        gam, a, _, rss = parts(theta)
        return (np.sum(np.log1p(ni * gam)) + np.linalg.slogdet(a)[1]
                + (n_obs - p) * math.log(sigma**2) + rss / sigma**2)

    x0 = np.array([math.sqrt(fit["var_subject"] / fit["var_residual"]),
                   math.sqrt(fit["var_residual"])])
    h = 1e-4 * x0
    num = np.zeros((2, 2))
    for i, j in itertools.product(range(2), range(2)):
        ei, ej = np.eye(2)[i] * h[i], np.eye(2)[j] * h[j]
        num[i, j] = (dev(*(x0 + ei + ej)) - dev(*(x0 + ei - ej)) - dev(*(x0 - ei + ej))
                     + dev(*(x0 - ei - ej))) / (4 * h[i] * h[j])
    np.testing.assert_allclose(hess, num, rtol=1e-5)


# ----------------------------------------------------------------------------- RM-ANOVA


@pytest.mark.parametrize("key", sorted(REF["rm_anova"]))
def test_rm_anova_sphericity_matches_r(fx, pat, key):
    ref = REF["rm_anova"][key]
    col = key.rsplit("_", 1)[-1]
    r = S.rm_anova(wide(fx, col, subset(pat, key)))
    e = r.extra
    # R: summary(aov(y ~ visit + Error(patient/visit)))
    assert r.n == ref["n"] and close(r.statistic, ref["F"]) and close(r.p_value, ref["p"])
    # R by hand: double-centred covariance D; (tr D)^2 / ((k-1) tr(D^2)); Huynh-Feldt 1976
    for f in ("epsilon_gg", "epsilon_hf", "epsilon_lb", "p_greenhouse_geisser", "p_huynh_feldt",
              "p_lower_bound", "mauchly_w", "mauchly_chi2", "mauchly_p"):
        assert close(e[f], ref[f]), f
    assert e["mauchly_df"] == ref["mauchly_df"]
    # R: mauchly.test(lm(m ~ 1), X = ~1)$statistic
    assert close(e["mauchly_w"], ref["mauchly_w_r"])
    # R: car::Anova(..., idesign = ~visit) summary: same GG; HF equal once capped at 1
    assert close(e["epsilon_gg"], ref["car_gg"]) and close(e["p_greenhouse_geisser"],
                                                           ref["car_p_gg"])
    assert close(e["epsilon_hf"], min(1.0, ref["car_hf"])) and close(e["p_huynh_feldt"],
                                                                     ref["car_p_hf"])


def test_rm_anova_subgroup_of_five_epsilon(fx, pat):
    # the 5-patient subgroup: GG epsilon 0.39 moves p; Mauchly still computable (n - 1 >= k - 1)
    e = S.rm_anova(wide(fx, "c3", pat["class4"])).extra
    assert e["epsilon_gg"] < 0.5 and e["mauchly_w"] is not None
    too_few = S.rm_anova(np.array([[1.0, 2.0, 4.0, 3.5], [2.0, 2.5, 3.0, 5.0],
                                   [0.5, 1.0, 2.5, 2.0]]))
    assert too_few.extra["mauchly_w"] is None and "needs more complete cases" in (
        too_few.extra["mauchly_note"])
    assert too_few.extra["epsilon_gg"] is not None


# ----------------------------------------------------------------------------- binary


@pytest.mark.parametrize("i", range(len(REF["contrasts"])))
def test_binary_contrast_matches_r(i):
    ref = REF["contrasts"][i]
    r = S.binary_contrast(ref["k1"], ref["n1"], ref["k2"], ref["n2"])
    # R: Newcombe hybrid score from the Wilson limits of prop.test(k, n, correct = FALSE)
    assert r.estimate_name == "risk_difference"
    assert [r.estimate, r.ci_low, r.ci_high] == pytest.approx(ref["rd"], rel=REL, abs=1e-12)
    # R: exp(log(ad/bc) +/- qnorm(0.975) sqrt(1/a + 1/b + 1/c + 1/d)), 0.5 added to zero cells
    assert r.extra["haldane"] == ref["haldane"]
    assert close(r.extra["odds_ratio"], ref["or"])
    assert [r.extra["or_ci_low"], r.extra["or_ci_high"]] == pytest.approx(ref["or_ci"], rel=REL)
    # R: fisher.test(matrix(c(k1, k2, n1 - k1, n2 - k2), 2))$p.value
    assert r.p_method == "exact" and close(r.p_value, ref["p_fisher"])


def test_binary_contrast_small_and_bad():
    r = S.binary_contrast(2, 3, 1, 3)
    # R: fisher.test(matrix(c(2, 1, 1, 2), 2)): the most extreme tables have p = 0.1
    assert close(r.extra["min_p"], 0.1)
    assert r.extra["note"] == "n = group1 3, group2 3: no result can reach p < 0.05"
    one = S.binary_contrast(1, 1, 3, 6, labels=("C", "A"))
    assert one.p_value is None and one.reason.startswith("group C (n = 1)")
    assert one.estimate == pytest.approx(1 - 0.5)
    with pytest.raises(ValueError, match="k1"):
        S.binary_contrast(4, 3, 1, 3)
    with pytest.raises(ValueError, match="n2"):
        S.binary_contrast(1, 3, 1, -2)


@pytest.mark.parametrize("key", ["A", "class4"])
def test_mcnemar_min_p(fx, pat, key):
    ref = REF["mcnemar"][key]
    keep = pat["group"] == "A" if key == "A" else pat["class4"]
    w = wide(fx, "responder", keep)
    r = S.mcnemar_exact(w[24], w[0])
    # R: binom.test(b, b + c)
    assert (r.n, r.extra["b"], r.extra["c"]) == (ref["n"], ref["b"], ref["c"])
    assert r.p_method == "exact" and close(r.p_value, ref["p"])
    disc = ref["b"] + ref["c"]
    assert r.extra["min_p"] == min(1.0, 2 / 2**disc)
    assert ("note" in r.extra) == (2 / 2**disc > 0.05)


# ----------------------------------------------------------------------------- edge cases


def test_n5_all_negative_is_0_0625():
    ref = REF["edge"]["n5_negative"]
    r = S.wilcoxon(ref["d"], [0.0] * 5)
    # R: pvalue(coin::wilcoxsign_test(d ~ 0, distribution = "exact")) = 0.0625
    assert r.p_value == ref["p_exact"] == 0.0625 and r.p_method == "exact"
    assert r.p_asymptotic == pytest.approx(0.0431144, rel=1e-5)  # the misleading SPSS p
    assert fmt_p(r.p_value) == "0.063"


def test_all_differences_tied():
    ref = REF["edge"]["all_tied"]
    r = S.wilcoxon(ref["d"], [0.0] * 4)
    # R: coin exact p = 2/2^4; wilcox.test(d, exact=FALSE, correct=FALSE)$p.value
    assert r.p_value == ref["p_exact"] == 0.125 and close(r.p_asymptotic, ref["p_asymptotic"])
    assert r.extra["note"] == "n = 4: no result can reach p < 0.05"


def test_all_differences_zero():
    r = S.wilcoxon([1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 4.0])
    assert r.reason == "all differences are zero" and r.p_value is None
    # 0.73 - 0.65 - 0.08 is not 0 in binary; after rounding all three differences are 0
    r = S.wilcoxon([0.73, 0.33, 0.58], [0.65 + 0.08, 0.25 + 0.08, 0.50 + 0.08])
    assert r.reason == "all differences are zero" and r.extra["n_zero"] == 3


@pytest.mark.parametrize("n,reason", [
    (1, "fewer than 3 pairs (n = 1): no p-value"),
    (2, "fewer than 3 pairs (n = 2): no p-value"),
    (3, None),
])
def test_minimum_pairs(n, reason):
    x = np.array([1.0, 2.5, 4.0][:n])
    y = np.array([0.2, 0.4, 0.5][:n])
    xb, yb = np.ones(n, bool), np.zeros(n, bool)  # every pair discordant
    for r in (S.wilcoxon(x, y), S.paired_t(x, y), S.mcnemar_exact(xb, yb),
              S.fisher_visits(xb, yb, conf_int=False),
              *S.rm_anova_bonferroni(np.column_stack([y, x, x + y]), [0, 4, 12])):
        assert r.reason == (reason and reason.replace(
            "pairs", "complete cases" if r.method == "rm_anova_bonferroni" else "pairs")), r
        if reason:
            assert r.p_value is None and r.ci_low is None and r.p_method is None
        else:
            assert r.p_value is not None and r.p_method
    if n == 3:
        # all 3 positive: exact p = 2/2^3 (coin), and so for McNemar (R: binom.test(0, 3))
        for r in (S.wilcoxon(x, y), S.mcnemar_exact(xb, yb)):
            assert r.p_value == 0.25 and r.extra["min_p"] == 0.25
            assert r.extra["note"].endswith(": no result can reach p < 0.05")
        t3 = S.paired_t(x, y)
        # SciPy: ttest_rel (= R t.test(x, y, paired = TRUE))
        assert close(t3.p_value, sst.ttest_rel(x, y).pvalue) and t3.ci_low is not None
        assert close(t3.estimate, (x - y).mean())
    elif n == 2:
        # t and Z are still shown, the p is not
        assert S.paired_t(x, y).statistic is not None and S.wilcoxon(x, y).statistic is not None
    for f in (S.rm_anova, S.friedman):
        r = f(np.column_stack([x, y, x + y]))
        assert (r.p_value is None) == (n < 3)
        if n < 3:
            assert r.reason == f"fewer than 3 complete cases (n = {n}): no p-value"


def test_switch_exact_to_asymptotic_signed_rank():
    ref = REF["edge"]["switch_signed"]
    d = np.array(ref["d"])
    r50 = S.wilcoxon(d[:50], np.zeros(50))
    r51 = S.wilcoxon(d, np.zeros(51))
    # R: coin exact p at n = 50; wilcox.test(exact=FALSE, correct=FALSE) at n = 51
    assert r50.p_method == "exact" and close(r50.p_value, ref["p_exact_50"])
    assert close(r50.p_asymptotic, ref["p_asymptotic_50"])
    assert r51.p_method == "asymptotic" and r51.p_value == r51.p_asymptotic
    assert close(r51.p_value, ref["p_asymptotic_51"])
    # raising the limit gives coin's exact p at 51 too
    assert close(S.wilcoxon(d, np.zeros(51), exact_max_n=51).p_value, ref["p_exact_51"])


def test_switch_exact_to_asymptotic_rank_sum():
    ref = REF["edge"]["switch_rank_sum"]
    v, g = np.array(ref["v"]), np.array(ref["g"])
    r50, r51 = S.mann_whitney(v[:50], g[:50]), S.mann_whitney(v, g)
    # R: coin::wilcox_test exact at N = 50; wilcox.test(exact=FALSE, correct=TRUE) at 51
    assert r50.p_method == "exact" and close(r50.p_value, ref["p_exact_50"])
    assert close(r50.p_asymptotic, ref["p_asymptotic_50"])
    assert r51.p_method == "asymptotic" and close(r51.p_value, ref["p_asymptotic_51"])
    assert close(S.mann_whitney(v, g, exact_max_n=51).p_value, ref["p_exact_51"])


def test_exact_max_n_is_checked():
    with pytest.raises(ValueError, match="exact_max_n"):
        S.wilcoxon([1, 2, 3], [0, 0, 0], exact_max_n=5000)


@pytest.mark.parametrize("seed", range(12))
def test_shift_algorithm_equals_enumeration(seed):
    # the exact p is the share of all 2^m sign patterns (C(N, m) splits) at least as far
    # from E(T) as the observed one: enumerated here for m <= 10 with heavy ties
    rng = np.random.default_rng(seed)
    m = int(rng.integers(3, 11))
    d = rng.integers(-3, 4, m).astype(float) / 4
    d[d == 0] = 0.5
    r = S.wilcoxon(d, np.zeros(m))
    ranks, _ = S._rank_ties(np.abs(d))
    t_obs, e = ranks[d > 0].sum(), ranks.sum() / 2
    hits = [abs(ranks[np.array(s, bool)].sum() - e) >= abs(t_obs - e) - 1e-9
            for s in itertools.product([0, 1], repeat=m)]
    assert r.p_value == pytest.approx(np.mean(hits), rel=1e-12)
    v = rng.integers(0, 5, m + 2).astype(float)
    g = np.array(["a"] * (m // 2 + 1) + ["b"] * (m - m // 2 + 1))
    mw = S.mann_whitney(v, g)
    if mw.p_value is None:
        return
    rk, _ = S._rank_ties(v)
    k = int(np.sum(g == "a"))
    obs, e2 = rk[g == "a"].sum(), k * rk.mean()
    hits = [abs(rk[list(c)].sum() - e2) >= abs(obs - e2) - 1e-9
            for c in itertools.combinations(range(v.size), k)]
    assert mw.p_value == pytest.approx(np.mean(hits), rel=1e-12)


def test_min_attainable_p():
    assert S.min_attainable_p("wilcoxon", 5) == 0.0625
    assert S.min_attainable_p("wilcoxon", 4) == 0.125
    assert S.min_attainable_p("mcnemar_exact", 6) == 2 / 64
    assert S.min_attainable_p("mann_whitney", 3, 3) == pytest.approx(0.1)  # 2 / C(6, 3)
    assert S.min_attainable_p("mann_whitney", 1, 1) == 1.0
    # A registry-sized comparison (the 100,000-patient benchmark once overflowed 2.0**n).
    assert S.min_attainable_p("wilcoxon", 100_000) == 0.0
    assert S.min_attainable_p("mann_whitney", 50_000, 50_000) == 0.0
    with pytest.raises(ValueError, match="method"):
        S.min_attainable_p("paired_t", 5)


def test_mcnemar_exact_on_thousands_of_discordant_pairs():
    # R: binom.test(1500, 3000)$p.value == 1 (exactly the expected split)
    x = np.r_[np.ones(1500), np.zeros(1500), np.ones(10)].astype(bool)
    y = np.r_[np.zeros(1500), np.ones(1500), np.ones(10)].astype(bool)
    res = S.mcnemar_exact(x, y)
    assert res.p_value == pytest.approx(1.0) and res.n == 3010


def test_exact_at_n50_with_ties_is_exact_and_n51_is_not():
    """n = 50 with many ties runs the DP (its speed is in the benchmark's output, not
    timed here); one more pair switches to the normal approximation."""
    rng = np.random.default_rng(1)
    d = np.round(rng.normal(0.2, 1, 51), 1)  # many ties
    r50 = S.wilcoxon(d[:50], np.zeros(50), hodges_lehmann=False)
    r51 = S.wilcoxon(d, np.zeros(51), hodges_lehmann=False)
    assert "exact" in r50.p_method and "exact" not in r51.p_method
    assert 0 < r50.p_value <= 1


# ----------------------------------------------------------------------------- words


@pytest.mark.parametrize("p,text", [
    (None, ""), (float("nan"), ""), (0.0, "<0.001"), (1e-12, "<0.001"), (0.000999, "<0.001"),
    (0.001, "0.001"), (0.0042, "0.004"), (0.042, "0.042"), (0.0625, "0.063"),
    (0.04996, "0.04996"), (0.0499, "0.0499"), (0.05, "0.050"), (0.31, "0.31"),
    (0.0996, "0.10"), (0.12345, "0.12"), (1.0, "1.00"),
])
def test_format_p(p, text):
    assert fmt_p(p, missing="") == text


def test_method_labels():
    r = S.wilcoxon([0.0] * 5, [1.0, 2, 3, 4, 5])
    assert S.method_label(r) == "Wilcoxon signed-rank, exact"
    assert S.method_label({"method": "wilcoxon", "p_method": "asymptotic"}) == (
        "Wilcoxon signed-rank, normal approximation")
    assert S.method_label(pd.Series({"method": "mann_whitney", "p_method": "exact"})) == (
        "Mann–Whitney U, exact")
    assert S.method_label({"method": "paired_t"}) == "Paired t-test"
    assert S.method_label({"method": "rm_anova_bonferroni", "p_method": "t_bonferroni"}) == (
        "RM-ANOVA pairwise, Bonferroni")
    assert S.method_label({"method": "mixed_model", "p_method": "t_satterthwaite"}) == (
        "Mixed model (Satterthwaite df)")
    assert S.method_label({"method": "something_new"}) == "something_new"
    frame = S.results_frame([r, S.paired_t([1.0, 2, 4], [0.0, 0, 1])])
    assert list(frame["method_label"]) == ["Wilcoxon signed-rank, exact", "Paired t-test"]
    for col in ("estimate", "estimate_name", "p_method", "p_asymptotic", "ci_low", "min_p"):
        assert col in frame.columns
    # every method the module returns has a label
    for m in ("paired_t", "wilcoxon", "mcnemar_exact", "fisher", "rm_anova",
              "rm_anova_bonferroni", "friedman", "mixed_model", "mann_whitney", "kruskal",
              "welch_t", "chi2", "logrank", "odds_ratio", "risk_difference", "binary_contrast"):
        assert m in S.METHOD_LABELS
    assert set(S.P_METHODS) >= {"exact", "asymptotic", "t", "t_satterthwaite", "t_bonferroni",
                                "F", "chi_square"}


# ----------------------------------------------------------------------------- R's own cohort

EXT = json.loads((HERE / "external_cohort_reference.json").read_text())
EXT_WEEKS = [0, 4, 12, 24, 52]


@pytest.fixture(scope="module")
def ext():
    d = Path(__file__).parent / "fixtures" / "r_cohort"
    return pd.read_csv(d / "visits.csv"), pd.read_csv(d / "patients.csv")


def _ext_wide(visits, ep):
    return visits.pivot(index="patient_id", columns="visit_week", values=ep)[EXT_WEEKS]


def test_external_cohort_rank_tests_equal_coin(ext):
    # tests/r/external_cohort.R: a cohort generated in R; every rank-test p at n <= 50
    # equals coin's exact p (the report test checks the same rows through `report`)
    visits, patients = ext
    rows = [r for r in EXT["longitudinal"] if r["method"] == "wilcoxon"]
    assert len(rows) == 48
    for ref in rows:
        w = _ext_wide(visits, ref["endpoint"])
        i = EXT_WEEKS.index(ref["visit_week"])
        cmp = 0 if ref["comparator"] == "baseline" else EXT_WEEKS[i - 1]
        r = S.wilcoxon(w[ref["visit_week"]], w[cmp])
        # R: coin::wilcoxsign_test(round(x - y, 10) ~ 0, distribution="exact",
        # zero.method="Wilcoxon"); wilcox.test(d, exact=FALSE, correct=FALSE)
        assert r.n == ref["n"] and r.p_method == ref["p_method"] == "exact"
        assert close(r.p_value, ref["p_exact"]) and close(r.p_asymptotic, ref["p_asymptotic"])
        assert close(r.statistic, ref["statistic"])
        # R: Walsh median; wilcox.test(d, conf.int=TRUE) (exact when no ties/zeros)
        assert close(r.estimate, ref["estimate"])
        assert r.extra["hl_ci_method"] == ref["hl_ci_method"]
        assert [r.ci_low, r.ci_high] == pytest.approx([ref["ci_low"], ref["ci_high"]], abs=1e-9)
    mw_rows = [r for r in EXT["subgroups"] if r["method"] == "mann_whitney"]
    pv = visits.merge(patients[["patient_id", "sex"]], on="patient_id")
    for ref in mw_rows:
        s = pv[(pv.visit_week == ref["visit_week"]) & pv[ref["endpoint"]].notna()]
        r = S.mann_whitney(s[ref["endpoint"]], s["sex"])
        # R: coin::wilcox_test(x ~ sex, distribution="exact"); wilcox.test(x ~ sex,
        # exact=FALSE, correct=TRUE)
        assert r.statistic == ref["statistic"] and r.p_method == ref["p_method"]
        assert close(r.p_value, ref["p_exact"]) and close(r.p_asymptotic, ref["p_asymptotic"])
        assert close(r.estimate, ref["estimate"])
        assert [r.ci_low, r.ci_high] == pytest.approx([ref["ci_low"], ref["ci_high"]], abs=1e-9)


def test_external_cohort_rm_anova_and_mixed_model(ext):
    visits, _ = ext
    for ref in [r for r in EXT["omnibus"] if r["method"] == "rm_anova"]:
        r = S.rm_anova(_ext_wide(visits, ref["endpoint"]))
        # R: aov(... Error(patient/visit)); GG/HF by hand from the double-centred covariance
        assert r.n == ref["n"] and close(r.statistic, ref["statistic"])
        for f in ("epsilon_gg", "p_greenhouse_geisser", "epsilon_hf", "p_huynh_feldt",
                  "p_lower_bound", "mauchly_w", "mauchly_chi2", "mauchly_p"):
            assert close(r.extra[f], ref[f]), (ref["endpoint"], f)
    for ep in ("c3_g_l", "sledai2k"):
        refs = [r for r in EXT["longitudinal"] if r["method"] == "mixed_model"
                and r["endpoint"] == ep]
        long = visits[["patient_id", "visit_week", ep]].dropna().rename(
            columns={"patient_id": "subject", "visit_week": "visit", ep: "value"})
        res = S.mixed_model(long, baseline=0, engine="closed_form")
        for r, ref in zip(res, refs):
            # R: summary(lmerTest::lmer(value ~ visit + (1|patient)), ddf="Satterthwaite")
            assert r.extra["visit"] == ref["visit_week"]
            assert close(r.df, ref["df"], rel=1e-4) and close(r.p_value, ref["p_value"], rel=1e-4)
            assert close(r.ci_low, ref["ci_low"], rel=1e-4)
