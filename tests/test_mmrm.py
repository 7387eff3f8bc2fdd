"""lupus_dash.mmrm against R nlme::gls + emmeans (tests/r/t2t_reference.R -> t2t_reference.json).

Estimates, SEs and CIs are compared at rel 1e-4 (4 significant digits). Degrees of
freedom: emmeans' Satterthwaite for gls with nlme's own apVar (a finite-difference
Hessian, fdHess) differs from the exact Satterthwaite by up to ~0.5 %; "exact" in the
JSON is emmeans' formula with that Hessian computed by numDeriv::hessian, which these
df match to 4 digits. Regenerate: python tests/r/make_t2t_fixture.py && Rscript
tests/r/t2t_reference.R
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lupus_dash import mmrm, synth
from lupus_dash.analyses import biomarkers
from lupus_dash.db import Database
from lupus_dash.filters import Filter

HERE = Path(__file__).parent / "r"
REF = json.loads((HERE / "t2t_reference.json").read_text())["mmrm"]
WEEKS = [0, 4, 12, 24, 52]
REL = 1e-4


def close(a, b, rel=REL):
    return a == pytest.approx(b, rel=rel, abs=1e-10)


@pytest.fixture(scope="module")
def long() -> pd.DataFrame:
    """Post-baseline rows with the baseline value beside them, as R's data frame `m`."""
    d = pd.read_csv(HERE / "t2t_fixture.csv")
    d = d[d["week"].isin(WEEKS)]
    base = d[d["week"] == 0][["patient", "value"]].rename(columns={"value": "base"})
    return d[d["week"] > 0].merge(base, on="patient")


@pytest.fixture(scope="module")
def fits(long):
    return {
        "basic": mmrm.fit(long, "patient", "week", "value", "base"),
        "covariate": mmrm.fit(long, "patient", "week", "value", "base", covariate="age"),
        "group": mmrm.fit(long, "patient", "week", "value", "base", group="group"),
    }


@pytest.mark.parametrize("key", ["basic", "covariate"])
def test_lsmeans_match_emmeans(fits, key):
    res, ref = fits[key], REF[key]
    assert res.reason is None and res.converged
    assert res.lsmeans["visit"].tolist() == [4, 12, 24, 52]
    for row, e, em in zip(res.lsmeans.itertuples(), ref["lsmeans_exact"], ref["lsmeans_emmeans"]):
        assert str(row.visit) == e["visit"]
        # R: summary(emmeans(fit, ~ visit, mode = "satterthwaite"), infer = TRUE)
        assert close(row.estimate, e["emmean"])
        assert close(row.se, e["SE"])
        # emmeans' formula with an exact Hessian (numDeriv) ...
        assert close(row.df, e["df"])
        assert close(row.ci_low, e["lower.CL"]) and close(row.ci_high, e["upper.CL"])
        assert close(row.p_value, e["p.value"], rel=1e-3)
        # ... and emmeans as printed (nlme's fdHess apVar) within 1 %
        assert close(row.df, em["df"], rel=1e-2)
        assert row.df != pytest.approx(em["df"], rel=1e-5)  # the two really differ


def test_n_per_visit_counts_analysed_observations(fits, long):
    counts = long.groupby("week")["value"].count()
    assert fits["basic"].lsmeans.set_index("visit")["n"].to_dict() == counts.to_dict()
    assert fits["basic"].n_obs == len(long) and fits["basic"].n_patients == long.patient.nunique()


@pytest.mark.parametrize("key", ["basic", "covariate", "group"])
def test_covariance_coefficients_and_loglik_match_gls(fits, key):
    res, ref = fits[key], REF[key]
    # R: logLik(fit) (REML). Ours is never lower: nlme stops a little earlier on the flat
    # top of the likelihood (by 1e-9 to 1e-8 here) ...
    assert close(res.log_lik, ref["logLik"], rel=1e-9)
    assert res.log_lik >= ref["logLik"] - 1e-10
    # ... so the covariance (R: getVarCov(fit, individual = "P01")) agrees to 4 digits of
    # its scale, not of every small off-diagonal element.
    sig = np.array(ref["varcov"])
    np.testing.assert_allclose(res.covariance, sig, rtol=0, atol=1e-4 * np.abs(sig).max())
    # R: coef(fit)["base"], the slope on the baseline value (and on age)
    assert close(res.coef["baseline"], ref["coef"]["base"])
    if key == "covariate":
        assert close(res.coef["age"], ref["coef"]["age"])
        assert close(res.covariate_means["age"], ref["age_mean"], rel=1e-12)
    assert close(res.covariate_means["baseline"], ref["base_mean"], rel=1e-12)


def test_group_lsmeans_contrasts_and_interaction_match_r(fits):
    res, ref = fits["group"], REF["group"]
    ls = res.lsmeans
    assert list(ls.columns) == ["group", *mmrm.LSMEANS_COLUMNS]
    got = {(str(r.visit), r.group): r for r in ls.itertuples()}
    for e in ref["lsmeans_exact"]:
        # R: emmeans(fit, ~ group | visit, mode = "satterthwaite")
        r = got[(e["visit"], e["group"])]
        assert close(r.estimate, e["emmean"]) and close(r.se, e["SE"]) and close(r.df, e["df"])
    for row, e in zip(res.group_tests.itertuples(), ref["group_contrasts_exact"]):
        # R: contrast(emmeans(fit, ~ group | visit), "revpairwise")  (B - A)
        assert row.contrast == "B - A" and str(row.visit) == e["visit"]
        assert close(row.estimate, e["estimate"]) and close(row.se, e["SE"])
        assert close(row.den_df, e["df"]) and close(row.p_value, e["p.value"], rel=1e-3)
        assert close(row.statistic, e["t.ratio"] ** 2)
    it, ri = res.interaction, ref["interaction_exact"]
    # Wald F of the visit:group coefficients = R: anova(fit, type = "marginal")["visit:group"]
    assert close(it["F"], ref["anova_marginal"]["F"], rel=1e-5)
    assert it["num_df"] == ri["num_df"] == 3
    # denominator df: lmerTest::contestMD's rule (eigen-directions, get_Fstat_ddf) on
    # emmeans' per-direction Satterthwaite df with the exact Hessian
    assert close(it["den_df"], ri["den_df"])
    assert close(it["p_value"], ri["p_value"], rel=1e-3)
    # emmeans' joint_tests takes the smallest per-row df instead: close, not equal
    jt = {r["model term"]: r for r in ref["joint_tests"]}["visit:group"]
    assert it["den_df"] == pytest.approx(jt["df2"], rel=2e-2)
    assert it["F"] == pytest.approx(jt["F.ratio"], abs=1e-3)


def test_fit_is_equivariant_to_the_units(long):
    """C3 in g/L or mg/dL: estimates scale, df and p do not move."""
    a = mmrm.fit(long, "patient", "week", "value", "base", group="group")
    scaled = long.assign(value=long["value"] * 100, base=long["base"] * 100)
    b = mmrm.fit(scaled, "patient", "week", "value", "base", group="group")
    np.testing.assert_allclose(b.lsmeans["estimate"], a.lsmeans["estimate"] * 100, rtol=1e-7)
    np.testing.assert_allclose(b.lsmeans["df"], a.lsmeans["df"], rtol=1e-5)
    np.testing.assert_allclose(b.lsmeans["p_value"], a.lsmeans["p_value"], rtol=1e-5)
    assert b.interaction["F"] == pytest.approx(a.interaction["F"], rel=1e-7)


def test_rows_missing_baseline_or_value_are_left_out(long):
    res = mmrm.fit(long, "patient", "week", "value", "base")
    holes = long.copy()
    holes.loc[holes["patient"] == "P01", "base"] = np.nan  # P01 has no baseline: dropped
    holes.loc[holes.index[:3], "value"] = np.nan
    res2 = mmrm.fit(holes, "patient", "week", "value", "base")
    assert res2.n_patients == res.n_patients - 1
    assert res2.n_obs == len(holes.dropna(subset=["value", "base"]))


def test_bad_input_is_located_not_a_crash(long):
    dup = pd.concat([long, long.iloc[[0]]])
    with pytest.raises(mmrm.MMRMError, match=r"patient 'P01' has more than one row at visit 4"):
        mmrm.fit(dup, "patient", "week", "value", "base")
    with pytest.raises(mmrm.MMRMError, match="no column"):
        mmrm.fit(long, "patient", "week", "nope", "base")
    with pytest.raises(mmrm.MMRMError, match="must be numeric"):
        mmrm.fit(long, "patient", "week", "value", "base", covariate="group")
    one = mmrm.fit(long[long["patient"] == "P01"], "patient", "week", "value", "base")
    assert one.reason and "fewer than 2 patients" in one.reason and one.lsmeans.empty
    onegrp = mmrm.fit(long[long["group"] == "A"], "patient", "week", "value", "base",
                      group="group")
    assert "one level" in onegrp.reason
    # group B never seen at week 52: that group × visit cell cannot be estimated
    hole = long[~((long["group"] == "B") & (long["week"] == 52))]
    res = mmrm.fit(hole, "patient", "week", "value", "base", group="group")
    assert "singular" in res.reason and "B at visit 52" in res.reason


def _simulate(n_pat: int, seed: int = 1):
    """n_pat patients x 4 post-baseline visits from a known unstructured covariance, MAR-ish
    dropout; returns (long frame, true LS means, true covariance)."""
    rng = np.random.default_rng(seed)
    sd = np.array([1.0, 1.4, 1.8, 2.5])
    corr = np.array([[1, .6, .4, .2], [.6, 1, .6, .4], [.4, .6, 1, .6], [.2, .4, .6, 1]])
    cov = corr * np.outer(sd, sd)
    base = rng.normal(8, 2, n_pat)
    means = np.array([-0.5, -1.0, -2.5, -2.0])
    err = rng.multivariate_normal(np.zeros(4), cov, n_pat)
    chg = means + 0.1 * (base - 8)[:, None] + err
    keep = rng.random((n_pat, 4)) > np.array([0.02, 0.06, 0.1, 0.15])
    pid, vis = np.nonzero(keep)
    df = pd.DataFrame({"patient": pid, "week": np.array([4, 12, 24, 52])[vis],
                       "base": base[pid], "value": base[pid] + chg[pid, vis]})
    mean_base = df["base"].mean()
    return df, means + 0.1 * (mean_base - 8), cov


def test_recovers_a_known_covariance_and_means():
    df, truth, cov = _simulate(4000)
    res = mmrm.fit(df, "patient", "week", "value", "base")
    z = (res.lsmeans["estimate"].to_numpy() - truth) / res.lsmeans["se"].to_numpy()
    assert np.all(np.abs(z) < 4)
    np.testing.assert_allclose(res.covariance, cov, rtol=0.1, atol=0.06)


@pytest.mark.slow
def test_100000_patients_fit():
    """At registry size the fit converges and recovers the means (its time is in the
    benchmark: the Treat to target MMRM page at 100,000 patients)."""
    df, truth, _ = _simulate(100_000, seed=2)
    res = mmrm.fit(df, "patient", "week", "value", "base")
    assert res.converged
    assert np.all(np.abs(res.lsmeans["estimate"].to_numpy() - truth) < 4 * res.lsmeans["se"])


# --- from the database ----------------------------------------------------------


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    path = tmp_path_factory.mktemp("mmrm") / "demo.duckdb"
    synth.build_demo(path)
    d = Database(path)
    yield d
    d.close()


def test_fit_endpoint_on_the_demo_matches_fit_on_its_rows(demo):
    flt = Filter("csle_belimumab")
    res = biomarkers._mmrm_fit(demo, flt, "c3_g_l", strategy="treatment_policy")
    raw = demo.query(
        "SELECT v.patient_id, v.visit_week, v.c3_g_l AS value, b.c3_g_l AS base "
        "FROM visit_facts v JOIN visit_facts b ON b.patient_id = v.patient_id "
        "AND b.cohort = v.cohort AND b.visit_week = 0 WHERE v.cohort = ? "
        "AND v.visit_week IN (4, 12, 24, 52)", [flt.cohort])
    direct = mmrm.fit(raw, "patient_id", "visit_week", "value", "base")
    np.testing.assert_allclose(res.lsmeans["estimate"], direct.lsmeans["estimate"], rtol=1e-8)
    assert res.lsmeans["n"].tolist() == direct.lsmeans["n"].tolist()
    # while on treatment drops the three non-completers' visits after their stop (28, 36)
    wot = biomarkers._mmrm_fit(demo, flt, "c3_g_l", strategy="while_on_treatment")
    assert wot.lsmeans.set_index("visit")["n"][52] == res.lsmeans.set_index("visit")["n"][52] \
        - int(demo.scalar("SELECT count(*) FROM visit_facts v JOIN patient_facts p USING "
                          "(cohort, patient_id) WHERE v.cohort = ? AND v.visit_week = 52 AND "
                          "p.discontinued_week < 52 AND v.c3_g_l IS NOT NULL", [flt.cohort]))
    comp = biomarkers._mmrm_fit(demo, flt, "c3_g_l")  # composite = while on treatment, said so
    assert comp.lsmeans.equals(wot.lsmeans) and any("composite" in n for n in comp.notes)


def test_fit_endpoint_by_group_and_report_rows(demo):
    flt = Filter("csle_belimumab")
    res = biomarkers._mmrm_fit(demo, flt, "c3_g_l", group_by="sex",
                            covariate="age_at_baseline_years")
    assert "sex" in res.lsmeans.columns and set(res.lsmeans["sex"]) == {"F", "M"}
    assert res.interaction["num_df"] == 3 and 0 <= res.interaction["p_value"] <= 1
    rows = biomarkers.mmrm_rows(demo, flt, ["c3_g_l", "sledai2k"])
    assert list(rows.columns) == biomarkers.MMRM_COLUMNS
    assert rows["endpoint"].tolist() == ["c3_g_l"] * 4 + ["sledai2k"] * 4
    assert rows["visit_week"].tolist() == [4, 12, 24, 52] * 2
    with pytest.raises(mmrm.MMRMError, match="not a continuous endpoint"):
        biomarkers._mmrm_fit(demo, flt, "anti_dsdna_positive")
    with pytest.raises(mmrm.MMRMError, match="covariate must be one of"):
        biomarkers._mmrm_load(demo, flt, "c3_g_l", covariate="sex")


def test_forest_rows_put_the_overall_row_first(demo):
    flt = Filter("csle_belimumab")
    fr = biomarkers.mmrm_forest(demo, flt, "c3_g_l", "sex", strategy="treatment_policy")
    rows, tests = fr["rows"], fr["tests"].iloc[0]
    assert tests["visit_week"] == 52 and rows["label"].tolist() == ["All patients", "F", "M"]
    overall = biomarkers._mmrm_fit(demo, flt, "c3_g_l", strategy="treatment_policy")
    grouped = biomarkers._mmrm_fit(demo, flt, "c3_g_l", group_by="sex",
                                strategy="treatment_policy")
    assert rows["estimate"].iloc[0] == overall.lsmeans.set_index("visit")["estimate"][52]
    assert rows["n"].iloc[1:].sum() == rows["n"].iloc[0]
    assert tests["p_group"] == grouped.group_tests.set_index("visit")["p_value"][52]
    assert tests["p_visit_by_group"] == grouped.interaction["p_value"]
