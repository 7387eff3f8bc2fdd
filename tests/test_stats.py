"""lupus_dash.stats against R (tests/r/stats_reference.R -> stats_reference.json) and SciPy.

The R numbers are unrounded; closed forms are compared at rel 1e-6, the mixed
model at rel 1e-4 (4 significant digits). Each assertion names the R call.
Regenerate the reference: python tests/r/make_fixture.py && Rscript tests/r/stats_reference.R
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sst

from lupus_dash import stats as S

HERE = Path(__file__).parent / "r"
REF = json.loads((HERE / "stats_reference.json").read_text())
WEEKS = [0, 4, 12, 24, 52]
REL = 1e-6


def close(a, b, rel=REL, abs_=1e-12):
    return a == pytest.approx(b, rel=rel, abs=abs_)


@pytest.fixture(scope="module")
def fx() -> pd.DataFrame:
    # pandas 3 parses decimals correctly rounded, the same doubles as R's read.csv
    return pd.read_csv(HERE / "stats_fixture.csv")


def wide(fx: pd.DataFrame, col: str) -> pd.DataFrame:
    return fx.pivot(index="patient", columns="visit_week", values=col)[WEEKS].sort_index()


def at_visit(fx: pd.DataFrame, wk: int) -> pd.DataFrame:
    return fx[fx.visit_week == wk].sort_values("patient")


def test_fixture_is_reproducible(fx):
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_fixture", HERE / "make_fixture.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    fresh = mod.make_fixture()
    assert len(fresh) == len(fx) == 150
    np.testing.assert_allclose(fresh["value"].to_numpy(float), fx["value"].to_numpy(float),
                               rtol=0, atol=1e-12)


# ----------------------------------------------------------------------------- paired

PAIRED = [("value", 52, 0), ("value", 4, 0), ("score", 24, 0), ("score", 4, 0)]


@pytest.mark.parametrize("col,fu,cmp", PAIRED)
def test_paired_t_matches_r(fx, col, fu, cmp):
    w = wide(fx, col)
    ref = REF["paired"][f"{col}_{fu}_{cmp}"]
    r = S.paired_t(w[fu], w[cmp])
    # R: t.test(x, y, paired=TRUE)
    assert r.n == ref["n"] and r.df == ref["df"]
    assert close(r.statistic, ref["t"])
    assert close(r.p_value, ref["p_t"])
    assert close(r.mean_diff, ref["mean_diff"])
    assert close(r.ci_low, ref["ci_low"]) and close(r.ci_high, ref["ci_high"])
    # R: mean(d) / sd(d)
    assert close(r.effect, ref["dz"]) and r.effect_name == "cohen_dz"


@pytest.mark.parametrize("col,fu,cmp", PAIRED)
def test_wilcoxon_matches_r(fx, col, fu, cmp):
    w = wide(fx, col)
    ref = REF["paired"][f"{col}_{fu}_{cmp}"]
    r = S.wilcoxon(w[fu], w[cmp])
    # R: wilcox.test(round(x - y, 10), exact=FALSE, correct=FALSE)
    assert r.n == ref["n"] and r.extra["n_nonzero"] == ref["n_nonzero"]
    assert r.extra["V"] == ref["V"]
    assert close(r.p_asymptotic, ref["p_w"])
    # R: pvalue(coin::wilcoxsign_test(d ~ 0, distribution="exact", zero.method="Wilcoxon"))
    assert r.p_method == "exact" and close(r.p_value, ref["p_exact"])
    # R: (V - n(n+1)/4) / sigma (tie-corrected), the SPSS signed Z
    assert close(r.statistic, ref["z"])
    assert close(r.effect, ref["z"] / math.sqrt(ref["n"]))
    # R: median of Walsh averages of the nonzero differences
    assert close(r.extra["hl_estimate"], ref["hl_walsh_median"])
    # R's uniroot estimate lands on the same value (tol.root = 1e-12 in the script)
    assert close(r.extra["hl_estimate"], ref["hl_estimate_uniroot"], rel=0, abs_=1e-9)
    # R: wilcox.test(..., conf.int=TRUE, tol.root=1e-12)$conf.int
    assert close(r.extra["hl_ci_low"], ref["hl_ci_low"], rel=0, abs_=1e-9)
    assert close(r.extra["hl_ci_high"], ref["hl_ci_high"], rel=0, abs_=1e-9)
    assert r.extra["hl_conf_level"] == ref["hl_conf_level"]
    # the row's estimate is the HL pseudo-median with that CI, no mean difference
    assert ref["any_ties_or_zeros"] and r.extra["hl_ci_method"] == "asymptotic"
    assert (r.estimate, r.estimate_name) == (r.extra["hl_estimate"], "hodges_lehmann")
    assert (r.ci_low, r.ci_high) == (r.extra["hl_ci_low"], r.extra["hl_ci_high"])
    assert r.mean_diff is None


@pytest.mark.parametrize("col,fu,cmp", PAIRED)
def test_wilcoxon_matches_scipy(fx, col, fu, cmp):
    w = wide(fx, col)
    ok = w[[fu, cmp]].dropna()
    d = np.round(ok[fu] - ok[cmp], 10)
    sp = sst.wilcoxon(d, method="approx", correction=False, zero_method="wilcox")
    r = S.wilcoxon(w[fu], w[cmp])
    # SciPy: wilcoxon(round(d, 10), method="approx", correction=False)
    assert close(r.p_asymptotic, sp.pvalue)
    assert close(abs(r.statistic), abs(sp.zstatistic))


@pytest.mark.parametrize("fu", [52, 4])
def test_mcnemar_and_fisher_visits_match_r(fx, fu):
    w = wide(fx, "positive")
    ref = REF["binary_paired"][str(fu)]
    m = S.mcnemar_exact(w[fu], w[0])
    # R: binom.test(b, b + c)
    assert m.n == ref["n"] and m.extra["b"] == ref["b"] and m.extra["c"] == ref["c"]
    assert close(m.p_value, ref["p_mcnemar"])
    f = S.fisher_visits(w[fu], w[0])
    # R: fisher.test(matrix(c(x pos, y pos, x neg, y neg), 2))
    assert f.method == "fisher" and f.n == ref["n"]
    assert close(f.p_value, ref["p_fisher"])
    # R finds the conditional MLE and its CI with uniroot at its default tolerance
    # (.Machine$double.eps^0.25), so R itself is only good to about 1e-4 here.
    assert close(f.effect, ref["or"], rel=1e-3)
    assert close(f.extra["or_ci_low"], ref["or_low"], rel=1e-3)
    assert close(f.extra["or_ci_high"], ref["or_high"], rel=1e-3)
    # The difference in positive rates has no Fisher CI: ci_low/ci_high stay empty.
    assert f.ci_low is None and f.ci_high is None


# ----------------------------------------------------------------------------- repeated


@pytest.mark.parametrize("col", ["value", "score"])
def test_rm_anova_friedman_match_r(fx, col):
    ref = REF["repeated"][col]
    w = wide(fx, col)
    a = S.rm_anova(w)
    # R: summary(aov(y ~ visit + Error(patient/visit)))
    assert a.n == ref["n"]
    assert a.extra["df1"] == ref["df1"] and a.extra["df2"] == ref["df2"]
    assert close(a.statistic, ref["F"]) and close(a.p_value, ref["p"])
    f = S.friedman(w)
    # R: friedman.test(wide)
    assert f.n == ref["n"] and f.df == ref["friedman_df"]
    assert close(f.statistic, ref["friedman"]) and close(f.p_value, ref["friedman_p"])


def test_friedman_matches_scipy(fx):
    w = wide(fx, "score").dropna()
    sp = sst.friedmanchisquare(*[w[c] for c in WEEKS])
    # SciPy: friedmanchisquare (tie-corrected)
    assert close(S.friedman(w).statistic, sp.statistic)


@pytest.mark.parametrize("col", ["value", "score"])
def test_rm_anova_bonferroni_matches_r(fx, col):
    ref = REF["repeated"][col]["bonferroni"]
    res = S.rm_anova_bonferroni(wide(fx, col), WEEKS)
    assert len(res) == len(ref) == 10
    for r, e in zip(res, ref):
        # R: t.test(wide[, j], wide[, i], paired=TRUE, conf.level = 1 - 0.05/10); p * 10
        assert (r.extra["a"], r.extra["b"], r.extra["m"]) == (e["a"], e["b"], 10)
        assert close(r.mean_diff, e["mean_diff"])
        assert close(r.ci_low, e["ci_low"]) and close(r.ci_high, e["ci_high"])
        assert close(r.statistic, e["t"]) and close(r.p_value, e["p"])


def test_rm_anova_bonferroni_reproduces_seed_paper_c3():
    # Seed paper Table 2, C3 week 4 vs 0: MD 0.278, 95 % CI 0.074-0.483, n = 23, P 0.004.
    # Differences with mean 0.278 and the SD the CI implies:
    # half-width 0.2045 = t(1 - 0.05/20, 22) * sd / sqrt(23).
    q = sst.t.ppf(1 - 0.0025, 22)
    sd = (0.483 - 0.074) / 2 / q * math.sqrt(23)
    z = np.linspace(-1, 1, 23)
    d = 0.278 + (z - z.mean()) / z.std(ddof=1) * sd
    wide_ = np.column_stack([np.zeros(23), d] + [np.zeros(23)] * 3)
    r = S.rm_anova_bonferroni(wide_, WEEKS)[0]
    assert (r.n, r.df) == (23, 22.0)
    assert round(r.mean_diff, 3) == 0.278
    assert (round(r.ci_low, 3), round(r.ci_high, 3)) == (0.074, 0.483)
    assert round(r.p_value, 3) in (0.003, 0.004)  # the paper prints 0.004


def test_mixed_model_matches_lme4(fx):
    ref = REF["mixed"]
    long = fx.rename(columns={"patient": "subject", "visit_week": "visit"})
    res = S.mixed_model(long[["subject", "visit", "value"]], baseline=0)
    assert [r.extra["visit"] for r in res] == ref["visits"]
    for r, est, se, df, t, p in zip(res, ref["estimate"], ref["se"], ref["df"], ref["t"],
                                    ref["p"]):
        assert r.reason is None
        assert r.n == ref["n_subjects"] and r.extra["n_obs"] == ref["n_obs"]
        # R: fixef(lmer(value ~ visit + (1 | patient), REML = TRUE)), 4 significant digits
        assert close(r.mean_diff, est, rel=1e-4) and r.estimate == r.mean_diff
        # R: sqrt(diag(vcov(fit)))
        assert close(r.extra["se"], se, rel=1e-4)
        # R: summary(lmerTest::lmer(...), ddf = "Satterthwaite")$coefficients[, c("df", "t
        # value", "Pr(>|t|)")]; CI est +/- qt(0.975, df) se
        assert r.p_method == "t_satterthwaite"
        assert close(r.df, df, rel=1e-4) and close(r.statistic, t, rel=1e-4)
        assert close(r.p_value, p, rel=1e-4)
        assert close(r.ci_low, est - sst.t.ppf(0.975, df) * se, rel=0, abs_=2e-4 * se)
    assert close(res[0].extra["var_subject"], ref["var_subject"], rel=1e-3)
    assert close(res[0].extra["var_residual"], ref["var_residual"], rel=1e-3)


# ----------------------------------------------------------------------------- groups

GROUP_CASES = [("value", 52), ("score", 24), ("value", 0)]


@pytest.mark.parametrize("col,wk", GROUP_CASES)
def test_between_groups_match_r(fx, col, wk):
    ref = REF["groups"][f"{col}_{wk}"]
    s = at_visit(fx, wk)
    mw = S.mann_whitney(s[col], s["group2"])
    # R: wilcox.test(x ~ g, exact=FALSE, correct=TRUE)
    assert mw.n == ref["n"] and mw.statistic == ref["W"]
    assert close(mw.p_asymptotic, ref["p_mw"])
    # R: pvalue(coin::wilcox_test(v ~ g, distribution = "exact"))
    assert mw.p_method == "exact" and close(mw.p_value, ref["p_exact"])
    assert ref["any_ties"] and mw.extra["hl_ci_method"] == "asymptotic"
    assert (mw.estimate, mw.estimate_name, mw.mean_diff) == (
        mw.extra["hl_estimate"], "hl_shift", None)
    assert (mw.ci_low, mw.ci_high) == (mw.extra["hl_ci_low"], mw.extra["hl_ci_high"])
    # R's estimate is A - B (group1 - group2), and so is ours
    assert close(mw.extra["hl_estimate"], ref["hl_median"])  # R: median(outer(xa, xb, "-"))
    # R's uniroot estimate may land anywhere on the flat step between the two middle
    # differences when n1*n2 is even (value_52: -0.10509 vs the median -0.105)
    assert close(mw.extra["hl_estimate"], ref["hl_estimate_uniroot"], rel=0, abs_=1e-3)
    # R: wilcox.test(..., conf.int=TRUE, tol.root=1e-12)$conf.int
    assert close(mw.extra["hl_ci_low"], ref["hl_ci_low"], rel=0, abs_=1e-9)
    assert close(mw.extra["hl_ci_high"], ref["hl_ci_high"], rel=0, abs_=1e-9)
    wt = S.welch_t(s[col], s["group2"])
    # R: t.test(x ~ g), group1 - group2 as R prints it
    assert close(wt.statistic, ref["t"]) and close(wt.df, ref["df"])
    assert close(wt.p_value, ref["p_t"])
    assert close(wt.mean_diff, ref["diff_AminusB"])
    assert close(wt.ci_low, ref["ci_low"]) and close(wt.ci_high, ref["ci_high"])
    kw = S.kruskal(s[col], s["group3"])
    # R: kruskal.test(x ~ g)
    assert close(kw.statistic, ref["kw"]) and kw.df == ref["kw_df"]
    assert close(kw.p_value, ref["p_kw"])


@pytest.mark.parametrize("col,wk", GROUP_CASES)
def test_between_groups_match_scipy(fx, col, wk):
    s = at_visit(fx, wk).dropna(subset=[col])
    a, b = s.loc[s.group2 == "A", col], s.loc[s.group2 == "B", col]
    # SciPy: mannwhitneyu(method="asymptotic", use_continuity=True)
    assert close(S.mann_whitney(s[col], s.group2).p_asymptotic,
                 sst.mannwhitneyu(a, b, method="asymptotic").pvalue)
    # SciPy: ttest_ind(equal_var=False)
    assert close(S.welch_t(s[col], s.group2).p_value, sst.ttest_ind(a, b, equal_var=False).pvalue)
    groups = [g[col] for _, g in s.groupby("group3")]
    # SciPy: kruskal
    assert close(S.kruskal(s[col], s.group3).statistic, sst.kruskal(*groups).statistic)


@pytest.mark.parametrize("key", ["group2_0", "group3_52", "group2_52"])
def test_tables_match_r(fx, key):
    ref = REF["tables"][key]
    gcol, wk = key.rsplit("_", 1)
    s = at_visit(fx, int(wk)).dropna(subset=["positive"])
    c = S.chi2(s[gcol], s["positive"])
    assert c.extra["table"] == ref["table"]
    # R: chisq.test(table(g, positive)) (Yates on 2x2)
    assert close(c.statistic, ref["chi2"]) and c.df == ref["df"]
    assert close(c.p_value, ref["p_chi2"])
    f = S.fisher(s[gcol], s["positive"])
    # R: fisher.test(table(g, positive))
    assert close(f.p_value, ref["p_fisher"])
    if "or_cond" in ref:
        # R: fisher.test(...)$estimate (conditional MLE) and $conf.int; R solves these
        # with uniroot at tol .Machine$double.eps^0.25, hence rel 1e-3
        assert close(f.effect, ref["or_cond"], rel=1e-3)
        assert close(f.ci_low, ref["or_low"], rel=1e-3)
        assert close(f.ci_high, ref["or_high"], rel=1e-3)
        t = np.array(ref["table"])
        o = S.odds_ratio_ci(t)
        # R: exp(log(ad/bc) +/- qnorm(0.975) * sqrt(1/a + 1/b + 1/c + 1/d))
        assert [o.effect, o.ci_low, o.ci_high] == pytest.approx(ref["woolf"], rel=REL)
        rd = S.risk_difference_ci(t)
        # R: Newcombe hybrid score from prop.test(correct=FALSE)$conf.int of each row
        assert [rd.mean_diff, rd.ci_low, rd.ci_high] == pytest.approx(ref["newcombe"], rel=REL)


def test_chi2_matches_scipy():
    t = np.array([[12, 5], [7, 9]])
    # SciPy: chi2_contingency(correction=True) applies Yates on 2x2
    assert close(S.chi2(t).statistic, sst.chi2_contingency(t, correction=True).statistic)
    t3 = np.array([[12, 5, 3], [7, 9, 8]])
    assert close(S.chi2(t3).p_value, sst.chi2_contingency(t3).pvalue)


# ----------------------------------------------------------------------------- survival


def test_kaplan_meier_matches_r(fx):
    ref = REF["km"]
    p = at_visit(fx, 0)
    km = S.kaplan_meier(p["time_weeks"], p["event"])
    # R: survfit(Surv(time, event) ~ 1) (conf.type = "log", R's default)
    np.testing.assert_allclose(km["time"], ref["time"], rtol=REL)
    assert km["n_risk"].tolist() == ref["n_risk"]
    assert km["n_event"].tolist() == ref["n_event"]
    assert km["n_censor"].tolist() == ref["n_censor"]
    np.testing.assert_allclose(km["survival"], ref["surv"], rtol=REL)
    lo = np.array([np.nan if v is None else v for v in ref["lower"]])
    hi = np.array([np.nan if v is None else v for v in ref["upper"]])
    np.testing.assert_allclose(km["ci_low"], lo, rtol=REL)
    np.testing.assert_allclose(km["ci_high"], hi, rtol=REL)


@pytest.mark.parametrize("gcol", ["group2", "group3"])
def test_logrank_matches_r(fx, gcol):
    ref = REF["logrank"][gcol]
    p = at_visit(fx, 0)
    r = S.logrank(p["time_weeks"], p["event"], p[gcol])
    # R: survdiff(Surv(time, event) ~ g)$chisq, df = k - 1
    assert close(r.statistic, ref["chisq"]) and r.df == ref["df"]
    assert close(r.p_value, ref["p"])
    if "exp" in ref:
        assert r.extra["expected"] == pytest.approx(ref["exp"], rel=REL)


# ----------------------------------------------------------------------------- descriptives


@pytest.mark.parametrize("wk", WEEKS)
def test_describe_matches_r(fx, wk):
    ref = REF["describe"][str(wk)]
    d = S.describe(wide(fx, "value")[wk])
    # R: mean, sd, quantile(type = 6), min, max
    for k in ("n", "mean", "sd", "median", "p25", "p75", "min", "max"):
        assert close(d[k], ref[k]), k
    assert close(d["se"], ref["sd"] / math.sqrt(ref["n"]))


def test_describe_empty_and_single():
    assert S.describe([np.nan, None]) == {"n": 0, "mean": None, "sd": None, "se": None,
                                          "median": None, "p25": None, "p75": None,
                                          "min": None, "max": None}
    d = S.describe([3.0])
    assert d["n"] == 1 and d["mean"] == 3.0 and d["sd"] is None and d["p25"] == 3.0


@pytest.mark.parametrize("i", range(5))
def test_proportion_ci_matches_r(i):
    ref = REF["proportions"][i]
    k, n = int(ref["k"]), int(ref["n"])
    # R: prop.test(k, n, correct=FALSE)$conf.int
    rate, lo, hi = S.proportion_ci(k, n)
    assert rate == k / n and close(lo, ref["wilson"][0]) and close(hi, ref["wilson"][1])
    # R: binom.test(k, n)$conf.int
    _, lo, hi = S.proportion_ci(k, n, method="clopper_pearson")
    assert close(lo, ref["cp"][0]) and close(hi, ref["cp"][1])


def test_proportion_ci_empty_and_bad_method():
    assert S.proportion_ci(0, 0) == (None, None, None)
    with pytest.raises(ValueError, match="method"):
        S.proportion_ci(1, 2, method="wald")


@pytest.mark.parametrize("method,key", [("bonferroni", "bonferroni"), ("holm", "holm"),
                                        ("bh", "bh"), ("BH", "bh")])
def test_adjust_p_matches_r(method, key):
    ref = REF["p_adjust"]
    got = S.adjust_p(ref["p"], method)
    # R: p.adjust(p, method), NA kept in place and not counted
    assert got[1] is None and ref[key][1] is None
    assert [g for g in got if g is not None] == pytest.approx(
        [e for e in ref[key] if e is not None], rel=REL)


def test_adjust_p_none_nan_and_bad_method():
    assert S.adjust_p([0.2, float("nan"), None], "none") == [0.2, None, None]
    with pytest.raises(ValueError, match="method"):
        S.adjust_p([0.1], "sidak")


# ----------------------------------------------------------------------------- choice


def test_choose_paired_method():
    rng = np.random.default_rng(3)
    y = rng.normal(size=40)
    m, why = S.choose_paired_method(y + rng.normal(0.5, 1, 40), y)
    p = sst.shapiro((y + rng.normal(0.5, 1, 40)) - y).pvalue  # noqa: F841 (different draw)
    assert m == "paired_t" and why.startswith("differences look normal (Shapiro-Wilk p = ")
    m, why = S.choose_paired_method(y + rng.exponential(1, 40) ** 3, y)
    assert m == "wilcoxon" and "not normal" in why
    assert S.choose_paired_method([1, 2], [0, 0])[0] == "wilcoxon"
    assert S.choose_paired_method([1, 2, 3], [0, 1, 2])[1].startswith("differences are constant")


def test_choose_group_method():
    rng = np.random.default_rng(4)
    v = np.r_[rng.normal(size=30), rng.normal(1, 1, 30)]
    assert S.choose_group_method(v, ["a"] * 30 + ["b"] * 30)[0] == "welch_t"
    v2 = np.r_[rng.exponential(size=30) ** 3, rng.normal(1, 1, 30)]
    assert S.choose_group_method(v2, ["a"] * 30 + ["b"] * 30)[0] == "mann_whitney"
    assert S.choose_group_method(v, ["a", "b", "c"] * 20)[0] == "kruskal"


# ----------------------------------------------------------------------------- edge cases

NAN = float("nan")
PAIRED_EDGES = [
    ([1.0], [2.0], "fewer than 3 pairs (n = 1): no p-value",
     "fewer than 3 pairs (n = 1): no p-value"),
    ([NAN, NAN, 3.0], [1.0, 2.0, NAN], "fewer than 3 pairs (n = 0): no p-value",
     "fewer than 3 pairs (n = 0): no p-value"),
    ([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], "differences are constant (SD 0)",
     "all differences are zero"),
    ([NAN, NAN], [NAN, 1.0], "fewer than 3 pairs (n = 0): no p-value",
     "fewer than 3 pairs (n = 0): no p-value"),  # all missing
]


@pytest.mark.parametrize("x,y,t_reason,w_reason", PAIRED_EDGES)
def test_paired_edges_give_reason(x, y, t_reason, w_reason):
    t, w = S.paired_t(x, y), S.wilcoxon(x, y)
    for r, reason in ((t, t_reason), (w, w_reason)):
        # no p, no CI; a statistic may stay (Z of one pair is -1 here)
        assert r.reason == reason and r.p_value is None and r.p_asymptotic is None
        assert r.ci_low is None and r.ci_high is None and r.p_method is None
        json.dumps(r.as_dict(), allow_nan=False)
    assert t.statistic is None


def test_constant_differences():
    # R: t.test stops with "data are essentially constant" -> reason, mean_diff kept
    t = S.paired_t([2.0, 3.0, 4.0], [1.0, 2.0, 3.0])
    assert t.reason == "differences are constant (SD 0)" and t.mean_diff == 1.0
    # the signed-rank test is still defined (ties everywhere): V = 6, n = 3,
    # sigma^2 = 3*4*7/24 - (3^3 - 3)/48 = 3, Z = (6 - 3)/sqrt(3) = 1.7320508
    r = S.wilcoxon([2.0, 3.0, 4.0], [1.0, 2.0, 3.0])
    assert r.statistic == pytest.approx(math.sqrt(3))
    assert r.p_asymptotic == pytest.approx(2 * sst.norm.sf(math.sqrt(3)))
    # exact: all three signs positive has probability 1/8, two-sided 2/8
    assert r.p_value == 0.25 and r.extra["min_p"] == 0.25
    assert r.extra["note"] == "n = 3: no result can reach p < 0.05"
    # R: wilcox.test(..., conf.int=TRUE) warns and gives a NaN CI; we give a note
    assert r.extra["hl_estimate"] == 1.0 and "hl_ci_low" not in r.extra


def test_mcnemar_edges():
    r = S.mcnemar_exact([True, False], [True, False])
    assert r.reason == "no discordant pairs" and r.p_value is None
    assert S.mcnemar_exact([None], [True]).reason == "no pairs"
    with pytest.raises(ValueError, match="x_bool"):
        S.mcnemar_exact([2, 0], [1, 0])


GROUP_EDGES = [
    ([1.0, 2.0, 3.0], ["a", "a", "a"], "only one group with values"),
    ([NAN, NAN], ["a", "b"], "all values missing"),
    ([1.0, 1.0, 1.0, 1.0], ["a", "a", "b", "b"], "all values are tied"),
]


@pytest.mark.parametrize("v,g,reason", GROUP_EDGES)
def test_group_edges_give_reason(v, g, reason):
    for f in (S.mann_whitney, S.kruskal):
        r = f(v, g)
        assert r.reason == reason and r.statistic is None and r.p_value is None
    w = S.welch_t(v, g)
    assert w.reason and w.statistic is None


def test_group_of_one():
    r = S.welch_t([1.0, 2.0, 3.0], ["a", "a", "b"])
    assert r.reason == "group b (n = 1) has fewer than 2 patients: no p-value"
    assert r.p_value is None
    # R computes the rank-sum test with a group of one (W = 2 here); we keep W, give no p
    mw = S.mann_whitney([1.0, 2.0, 3.0], ["b", "b", "a"])
    assert mw.statistic == 2.0 and mw.p_value is None and mw.p_asymptotic is None
    assert mw.reason == "group a (n = 1) has fewer than 2 patients: no p-value"
    assert S.mann_whitney([1.0, 2.0, 3.0, 4.0], ["a", "b", "c", "c"]).reason.startswith(
        "needs exactly 2 groups")


def test_welch_constant():
    r = S.welch_t([1.0, 1.0, 1.0, 1.0], ["a", "a", "b", "b"])
    assert r.reason.startswith("constant variable") and r.statistic is None


@pytest.mark.parametrize("wide,reason", [
    (np.array([[1.0, 2.0], [np.nan, 3.0]]), "fewer than 3 complete cases (n = 1): no p-value"),
    (np.ones((4, 3)), "constant variable (no variation)"),
    (np.array([[1.0], [2.0]]), "fewer than 2 visits"),
])
def test_rm_edges(wide, reason):
    r = S.rm_anova(wide)
    assert r.reason == reason and r.statistic is None
    assert S.friedman(wide).statistic is None


def test_table_edges():
    assert S.chi2([[3, 0], [4, 0]]).reason.startswith("table has fewer than 2")
    assert S.fisher([[0, 0], [0, 5]]).reason.startswith("table has fewer than 2")
    assert S.chi2(["a", None], ["x", "y"]).reason.startswith("table has fewer than 2")


@pytest.mark.parametrize("i", range(5))
def test_fisher_rxc_matches_r(i):
    ref = REF["fisher_rxc"][i]
    r = S.fisher(np.array(ref["table"]))
    # R: fisher.test(matrix(..., byrow=TRUE))$p.value (exact r x c)
    assert r.reason is None and close(r.p_value, ref["p"])
    # the transposed table is the same test
    assert close(S.fisher(np.array(ref["table"]).T).p_value, ref["p"])


def test_fisher_rxc_too_large_gives_reason():
    r = S.fisher(np.array([[4000, 3000], [2000, 3500], [2500, 2500], [1000, 3000]]))
    assert r.p_value is None and r.reason.startswith("Fisher's exact r x c too large")


def test_logrank_and_km_edges():
    assert S.logrank([1.0, 2.0], [1, 0], ["a", "a"]).reason == "only one group with values"
    assert S.logrank([1.0, 2.0], [0, 0], ["a", "b"]).reason == "no events"
    km = S.kaplan_meier([], [])
    assert list(km.columns)[:3] == ["time", "n_risk", "n_event"] and km.empty


def test_mixed_model_edges():
    long = pd.DataFrame({"subject": ["a", "a", "b"], "visit": [0, 4, 0], "value": [1.0, 1, 1]})
    res = S.mixed_model(long, baseline=0)
    assert len(res) == 1 and res[0].reason and res[0].statistic is None
    assert S.mixed_model(long, baseline=99)[0].reason.startswith("baseline visit")


@pytest.mark.parametrize("call", [
    lambda: S.paired_t([1, 2, 3], [1, 2]),
    lambda: S.wilcoxon([1, 2], [1, 2, 3]),
    lambda: S.mann_whitney([1, 2], ["a"]),
    lambda: S.logrank([1, 2], [1], ["a", "b"]),
    lambda: S.rm_anova_bonferroni(np.ones((3, 3)), ["a", "b"]),
])
def test_bad_arguments_raise_naming_argument(call):
    with pytest.raises(ValueError, match=r"\b(y|values|groups|event|labels)\b"):
        call()


def test_as_dict_is_json_ready():
    r = S.wilcoxon([1.0, 2.0, 3.5, 4.0], [0.0, 2.5, 1.0, 1.0])
    d = r.as_dict()
    json.dumps(d, allow_nan=False)
    assert d["method"] == "wilcoxon" and d["extra"]["n_nonzero"] == 4
    frame = S.results_frame(S.rm_anova_bonferroni(np.arange(12.0).reshape(4, 3) ** 1.5,
                                                  ["w0", "w4", "w12"]))
    assert list(frame["a"]) == ["w0", "w0", "w4"] and "p_unadjusted" in frame


@pytest.mark.parametrize("engine", ["statsmodels", "closed_form"])
def test_mixed_model_engines_match_lme4(fx, engine):
    ref = REF["mixed"]
    long = fx.rename(columns={"patient": "subject", "visit_week": "visit"})
    res = S.mixed_model(long[["subject", "visit", "value"]], baseline=0, engine=engine)
    assert res[0].extra["engine"] == engine
    # R: fixef(fit), sqrt(diag(vcov(fit))), as.data.frame(VarCorr(fit))$vcov
    assert [r.mean_diff for r in res] == pytest.approx(ref["estimate"], rel=1e-4)
    assert [r.extra["se"] for r in res] == pytest.approx(ref["se"], rel=1e-4)
    assert res[0].extra["var_subject"] == pytest.approx(ref["var_subject"], rel=1e-4)
    assert res[0].extra["var_residual"] == pytest.approx(ref["var_residual"], rel=1e-4)


def test_mixed_model_engines_agree_on_unbalanced_data():
    # 300 patients, ~25 % of visits missing at random: statsmodels and the closed form
    # maximise the same REML criterion, so they agree to optimiser precision.
    rng = np.random.default_rng(11)
    subj = np.repeat(np.arange(300), 5)
    vis = np.tile(WEEKS, 300)
    val = rng.normal(0, 0.4, 300)[subj] + 0.004 * vis + rng.normal(0, 0.3, 1500)
    long = pd.DataFrame({"subject": subj, "visit": vis, "value": val})
    long = long[rng.random(1500) > 0.25]
    a = S.mixed_model(long, 0, engine="statsmodels")
    b = S.mixed_model(long, 0, engine="closed_form")
    assert [r.mean_diff for r in a] == pytest.approx([r.mean_diff for r in b], rel=1e-5)
    # both use lme4's vcov formula s2 (X'V^-1X)^-1 at their variance components
    assert [r.extra["se"] for r in a] == pytest.approx([r.extra["se"] for r in b], rel=1e-5)


def test_mixed_model_boundary_fit():
    # no patient effect at all: the REML variance of the intercept is 0 (lme4 "singular")
    rng = np.random.default_rng(5)
    long = pd.DataFrame({"subject": np.repeat(np.arange(40), 3), "visit": np.tile([0, 1, 2], 40),
                         "value": rng.normal(size=120)})
    long.loc[long.visit == 2, "value"] += 1.0
    r = S.mixed_model(long, 0, engine="closed_form")
    assert all(x.reason is None for x in r)
    if r[0].extra["var_subject"] == 0:
        # gamma = 0 is OLS: the estimate is the plain mean difference
        m = long.groupby("visit")["value"].mean()
        assert r[1].mean_diff == pytest.approx(m[2] - m[0], rel=1e-9)


@pytest.mark.parametrize("i", range(3))
def test_small_sample_hodges_lehmann_matches_r(i):
    ref = REF["small_paired"][i]
    r = S.wilcoxon(ref["x"], ref["y"])
    # R: wilcox.test(x - y, exact=FALSE, correct=FALSE)$p.value; coin exact p
    assert r.extra["V"] == ref["V"] and close(r.p_asymptotic, ref["p"])
    assert close(r.p_value, ref["p_exact"])
    assert close(r.extra["hl_estimate"], ref["hl"])
    if "ci_exact" in ref:
        # no ties, no zeros: R wilcox.test(x - y, exact=TRUE, conf.int=TRUE) (level 88 %,
        # "requested conf.level not achievable" at n = 4)
        assert r.extra["hl_ci_method"] == "exact"
        assert close(r.extra["hl_conf_level"], ref["conf_level_exact"])
        assert [r.ci_low, r.ci_high] == pytest.approx(ref["ci_exact"], abs=1e-9)
    else:
        # R: wilcox.test(..., exact=FALSE, correct=FALSE, conf.int=TRUE): R widens the
        # level (80 %) when 95 % is not achievable
        assert r.extra["hl_ci_method"] == "asymptotic"
        assert close(r.extra["hl_conf_level"], ref["conf_level"])
        assert [r.ci_low, r.ci_high] == pytest.approx(ref["ci"], abs=1e-9)


@pytest.mark.parametrize("i", range(3))
def test_small_group_hodges_lehmann_matches_r(i):
    ref = REF["small_groups"][i]
    a, b = np.atleast_1d(ref["a"]).tolist(), np.atleast_1d(ref["b"]).tolist()
    r = S.mann_whitney(a + b, ["a"] * len(a) + ["b"] * len(b))
    # R: wilcox.test(v ~ g, exact=FALSE, correct=TRUE, conf.int=TRUE); a - b, as R
    assert r.statistic == ref["W"]
    assert close(r.extra["hl_estimate"], ref["hl"])
    if len(a) < 2:
        # a group of 1: R computes a p; we keep W and the shift, no p and no CI
        assert r.p_value is r.p_asymptotic is r.ci_low is None and r.reason
        return
    assert close(r.p_asymptotic, ref["p"])
    # R: pvalue(coin::wilcox_test(v ~ g, distribution = "exact"))
    assert close(r.p_value, ref["p_exact"])
    if "ci_exact" in ref:
        # no ties: R wilcox.test(v ~ g, exact=TRUE, conf.int=TRUE)$conf.int
        assert r.extra["hl_ci_method"] == "exact"
        assert close(r.extra["hl_conf_level"], ref["conf_level_exact"])
        assert [r.ci_low, r.ci_high] == pytest.approx(ref["ci_exact"], abs=1e-9)
    else:
        assert [r.ci_low, r.ci_high] == pytest.approx(ref["ci"], abs=1e-9)


def test_compare_dispatch_with_override():
    rng = np.random.default_rng(3)
    y = rng.normal(size=40)
    x = y + rng.normal(0.5, 1, 40)
    auto = S.compare_paired(x, y)
    assert auto.method == "paired_t" and auto.extra["choice"].startswith("differences look")
    forced = S.compare_paired(x, y, method="wilcoxon")
    assert forced.method == "wilcoxon" and forced.extra["choice"] == "chosen by the user"
    assert forced.p_value == S.wilcoxon(x, y).p_value
    g = ["a", "b", "c"] * 20
    v = rng.normal(size=60)
    assert S.compare_groups(v, g).method == "kruskal"
    assert S.compare_groups(v[:40], g[:40], method="welch_t").method == "welch_t"
    with pytest.raises(ValueError, match="method"):
        S.compare_paired(x, y, method="sign")


def test_non_numeric_values_raise_naming_argument():
    with pytest.raises(ValueError, match="values must be numeric"):
        S.describe(pd.Series(["1.5", None, "high"]))
    with pytest.raises(ValueError, match="x must be numeric"):
        S.paired_t(["a", 1.0], [1.0, 2.0])
    # nullable pandas dtypes and pd.NA are missing values, not errors
    assert S.describe(pd.Series([1.0, None, 3.0], dtype="Float64"))["n"] == 2
    assert S.mcnemar_exact(pd.Series([True, None, False], dtype="boolean"),
                           [True, True, True]).n == 2


def _numbers(obj):
    if isinstance(obj, dict):
        for v in obj.values():
            yield from _numbers(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from _numbers(v)
    elif isinstance(obj, float):
        yield obj


@pytest.mark.parametrize("seed", range(40))
def test_random_small_inputs_never_raise_or_return_nan(seed):
    # tiny samples full of ties, zeros, missing values and single-member groups
    rng = np.random.default_rng(seed)
    n = int(rng.integers(0, 7))
    x = rng.integers(0, 3, n).astype(float)
    y = rng.integers(0, 3, n).astype(float)
    x[rng.random(n) < 0.2] = np.nan
    g = rng.choice(["a", "b", "c"][: int(rng.integers(1, 4))], n)
    g2 = rng.choice(["a", "b"][: int(rng.integers(1, 3))], n)
    wide_ = rng.integers(0, 3, (n, 3)).astype(float)
    xb, yb = (x > 0).astype(float), (y > 0).astype(float)
    results = [
        S.paired_t(x, y), S.wilcoxon(x, y), S.mcnemar_exact(np.where(np.isnan(x), np.nan, xb), yb),
        S.fisher_visits(xb, yb), S.rm_anova(wide_), S.friedman(wide_), S.mann_whitney(x, g2),
        S.kruskal(x, g), S.welch_t(x, g2), S.chi2(g, g2) if n else S.chi2([[0, 0], [0, 0]]),
        S.fisher(g, g2) if n else S.fisher([[0, 0], [0, 0]]), S.logrank(y + 1, xb, g2),
        S.compare_paired(x, y), S.compare_groups(x, g),
        *S.rm_anova_bonferroni(wide_, ["w0", "w1", "w2"]),
    ]
    for r in results:
        d = r.as_dict()
        json.dumps(d, allow_nan=False)
        assert all(math.isfinite(v) for v in _numbers(d))
        # a missing statistic always comes with a reason (Fisher reports no statistic)
        if r.p_value is None:
            assert r.reason, r
    json.dumps(S.describe(x), allow_nan=False)


@pytest.mark.parametrize("table", [[[3, 1], [1, 3]], [[10, 2], [3, 15]], [[0, 5], [5, 0]],
                                   [[120, 80], [95, 105]], [[1, 0], [0, 1]]])
def test_fisher_2x2_matches_scipy(table):
    # SciPy: fisher_exact two-sided p; scipy.stats.contingency.odds_ratio(kind="conditional")
    r = S.fisher(np.array(table))
    assert close(r.p_value, sst.fisher_exact(table).pvalue)
    est = sst.contingency.odds_ratio(table, kind="conditional").statistic
    assert (r.effect is None and not math.isfinite(est)) or close(r.effect, est)
