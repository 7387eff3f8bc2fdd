"""Kaplan–Meier medians and risk tables, and the Cox model for two groups.

The curve itself is `stats.kaplan_meier` (R survfit, conf.type "log"); this module
adds what a clinician reads beside it: the median time with its 95 % CI as
`print(survfit(...))` shows it, the number at risk under the curve, and the hazard
ratio of a Cox proportional-hazards model with Efron ties (R `coxph`'s default),
with its Wald, score (log-rank) and likelihood-ratio tests. References in
tests/r/t2t_reference.R.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from . import stats
from .lazy import LazyModule

sps = LazyModule("scipy.stats")

_TOL = math.sqrt(np.finfo(float).eps)  # survival:::survmean's tolerance


def _minmin(y: np.ndarray, x: np.ndarray) -> float | None:
    """First x where the curve y is below 0.5; the midpoint where it sits at exactly 0.5.

    survival:::survmean's `minmin`, which print.survfit uses for the median and
    both confidence limits.
    """
    keep = ~np.isnan(y) & (y < 0.5 + _TOL)
    if not keep.any():
        return None
    xs, ys = x[keep], y[keep]
    if abs(ys[0] - 0.5) < _TOL and (ys < ys[0]).any():
        return float((xs[0] + xs[np.flatnonzero(ys < ys[0])[0]]) / 2)
    return float(xs[0])


def km_median(time: Any, event: Any, conf_level: float = 0.95) -> dict:
    """Median time with its CI: R print(survfit(Surv(time, event) ~ 1)) (conf.type "log").

    `None` where the curve (or a limit) never falls to 0.5: "not reached".
    """
    return _median_of(stats.kaplan_meier(time, event, conf_level))


def _median_of(km: pd.DataFrame) -> dict:
    """n, events, median and its CI of a `stats.kaplan_meier` table (see km_median)."""
    n = int(km["n_risk"].iloc[0]) if len(km) else 0
    out = {"n": n, "events": int(km["n_event"].sum()) if len(km) else 0,
           "median": None, "ci_low": None, "ci_high": None}
    if km.empty:
        return out
    t = km["time"].to_numpy(float)
    out["median"] = _minmin(km["survival"].to_numpy(float), t)
    out["ci_low"] = _minmin(km["ci_low"].to_numpy(float), t)
    out["ci_high"] = _minmin(km["ci_high"].to_numpy(float), t)
    return out


def at_risk(time: Any, event: Any, times: Sequence[float]) -> list[int]:
    """Patients still at risk at each time (time ≥ t): R summary(fit, times, extend=TRUE)."""
    t = np.asarray(time, dtype=float)
    e = np.asarray(event, dtype=float)
    t = t[~np.isnan(t) & ~np.isnan(e)]
    st = np.sort(t)
    return [int(st.size - np.searchsorted(st, float(x), side="left")) for x in times]


def _efron(beta: float, d_all: np.ndarray, d1: np.ndarray, r_all: np.ndarray,
           r1: np.ndarray):
    """Log partial likelihood, score and information of one binary covariate, Efron ties.

    Per distinct event time: d_all deaths (d1 of them with x = 1), r_all at risk
    (r1 with x = 1). With x binary, S1 = S2 = r1 e^β. The k-th of d tied deaths
    (k = 0..d-1) sees the risk set minus k/d of the tied deaths (Efron 1977).
    """
    eb = math.exp(beta)
    d = d_all.astype(int)
    rep = np.repeat(np.arange(d.size), d)
    k = np.arange(rep.size) - np.repeat(np.cumsum(d) - d, d)
    w = k / d[rep]
    s0 = (r_all - r1)[rep] + r1[rep] * eb - w * ((d_all - d1)[rep] + d1[rep] * eb)
    s1 = r1[rep] * eb - w * d1[rep] * eb
    xbar = s1 / s0
    loglik = beta * float(d1.sum()) - float(np.log(s0).sum())
    score = float(d1.sum() - xbar.sum())
    info = float((xbar - xbar * xbar).sum())  # S2/S0 - (S1/S0)², S2 = S1 for binary x
    return loglik, score, info


def cox_two_groups(time: Any, event: Any, groups: Any, conf_level: float = 0.95) -> dict:
    """Cox proportional hazards, second group against the first (sorted), Efron ties.

    R: summary(coxph(Surv(time, event) ~ group)): `hr` = exp(coef), its CI from the
    Wald SE, `p_wald`, `p_score` (the "Score (logrank) test") and `p_lr`. Fitted by
    Newton–Raphson from β = 0 with step halving, as coxph. `reason` says why no HR
    (one group only, no events, or an infinite coefficient when a group has none).
    """
    t = np.asarray(time, dtype=float)
    e = np.asarray(event, dtype=float)
    g = pd.Series(list(groups) if not isinstance(groups, pd.Series) else groups.to_numpy())
    ok = ~np.isnan(t) & ~np.isnan(e) & g.notna().to_numpy()
    t, e, gv = t[ok], e[ok] != 0, g[ok].to_numpy()
    labels = sorted(pd.unique(gv).tolist())
    out = {"groups": labels, "n": int(t.size), "events": int(e.sum()), "hr": None,
           "ci_low": None, "ci_high": None, "coef": None, "se": None, "p_wald": None,
           "p_score": None, "p_lr": None, "reason": None}
    if len(labels) != 2:
        out["reason"] = f"{len(labels)} groups: the hazard ratio needs exactly two"
        return out
    if not e.any():
        out["reason"] = "no events"
        return out
    x = (gv == labels[1]).astype(float)
    ut = np.unique(t[e])
    # Risk sets: everyone with time ≥ t (sorted search), deaths per distinct event time.
    ts = np.sort(t)
    ts1 = np.sort(t[x == 1])
    r_all = (ts.size - np.searchsorted(ts, ut, side="left")).astype(float)
    r1 = (ts1.size - np.searchsorted(ts1, ut, side="left")).astype(float)
    idx = np.searchsorted(ut, t[e])
    d_all = np.bincount(idx, minlength=ut.size).astype(float)
    d1 = np.bincount(idx, weights=x[e], minlength=ut.size)
    ll0, u0, i0 = _efron(0.0, d_all, d1, r_all, r1)
    if i0 <= 0:
        out["reason"] = "no variance (every event in one group at every time)"
        return out
    out["p_score"] = float(sps.chi2.sf(u0 * u0 / i0, 1))
    out["score_statistic"] = u0 * u0 / i0
    beta, ll, u, info = 0.0, ll0, u0, i0
    for _ in range(50):  # coxph: iter.max 20, eps 1e-9 on the log-likelihood
        step = u / info
        new = beta + step
        ll_new, u_new, i_new = _efron(new, d_all, d1, r_all, r1)
        halvings = 0
        while ll_new < ll and halvings < 30:
            new = (beta + new) / 2
            ll_new, u_new, i_new = _efron(new, d_all, d1, r_all, r1)
            halvings += 1
        done = abs(ll_new - ll) <= 1e-12 * max(1.0, abs(ll))
        beta, ll, u, info = new, ll_new, u_new, i_new
        if done or abs(beta) > 30:
            break
    if abs(beta) > 30 or info <= 1e-12:
        out["reason"] = "a group has no events (or all of them): the hazard ratio is infinite"
        return out
    se = 1 / math.sqrt(info)
    z = float(sps.norm.isf((1 - conf_level) / 2))
    out.update({"coef": beta, "se": se, "hr": math.exp(beta),
                "ci_low": math.exp(beta - z * se), "ci_high": math.exp(beta + z * se),
                "p_wald": float(2 * sps.norm.sf(abs(beta / se))),
                "p_lr": float(sps.chi2.sf(2 * (ll - ll0), 1)), "loglik": [ll0, ll]})
    return out


def km_summary(df: pd.DataFrame, *, time: str = "time", event: str = "event",
               group: str | None = None, times: Sequence[float] | None = None,
               conf_level: float = 0.95) -> dict:
    """Everything a KM figure shows: curves, risk table, medians, log-rank and Cox.

    Returns {"curves": DataFrame(group, time, n_risk, n_event, n_censor, survival,
    ci_low, ci_high), "risk": DataFrame(group, time, n_risk), "medians":
    DataFrame(group, n, events, median, ci_low, ci_high), "logrank": TestResult | None,
    "cox": dict | None}. Without `group` every row's group is "All patients".
    """
    d = df[[time, event] + ([group] if group else [])].dropna(subset=[time, event])
    keys = sorted(d[group].dropna().unique().tolist()) if group else ["All patients"]
    if times is None:
        tmax = float(d[time].max()) if len(d) else 0.0
        times = _risk_times(tmax)
    curves, risk, meds = [], [], []
    for k in keys:
        sub = d[d[group] == k] if group else d
        km = stats.kaplan_meier(sub[time].to_numpy(float), sub[event].to_numpy(float),
                                conf_level)
        meds.append({"group": k, **_median_of(km)})
        km.insert(0, "group", k)
        curves.append(km)
        for tt, n in zip(times, at_risk(sub[time], sub[event], times)):
            risk.append({"group": k, "time": float(tt), "n_risk": n})
    out = {
        "curves": (pd.concat(curves, ignore_index=True) if curves else
                   pd.DataFrame(columns=["group", "time", "n_risk", "n_event", "n_censor",
                                         "survival", "ci_low", "ci_high"])),
        "risk": pd.DataFrame(risk, columns=["group", "time", "n_risk"]),
        "medians": pd.DataFrame(meds, columns=["group", "n", "events", "median", "ci_low",
                                               "ci_high"]),
        "logrank": None, "cox": None,
    }
    if group and len(keys) >= 2:
        out["logrank"] = stats.logrank(d[time].to_numpy(float), d[event].to_numpy(float),
                                       d[group])
        if len(keys) == 2:
            out["cox"] = cox_two_groups(d[time], d[event], d[group], conf_level)
    return out


def _risk_times(tmax: float) -> list[float]:
    """Evenly spaced times for the risk table (0 to tmax, 4-, 12- or 26-week steps)."""
    step = 4.0 if tmax <= 24 else 12.0 if tmax <= 104 else 26.0
    return [float(x) for x in np.arange(0.0, tmax + 1e-9, step)]
