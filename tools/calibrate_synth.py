"""Re-run the one-off search that produced the demo's frozen calibration (`synth._CORE`).

Maintainers only: `python tools/calibrate_synth.py [--seed 5]` prints a new `_CORE`
(about five minutes). The product never runs this: `lupus_dash.synth` builds the demo
from the frozen table in a second. tests/test_synth.py checks that the frozen table
still meets every target this search aims at (`check_frozen_core`), and
tests/test_demo_targets.py that the built demo reproduces the published tables.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone, not installed

from lupus_dash.synth import _CORE, LADDER  # the frozen result, the descriptor coding

# --------------------------------------------------------------------------
# Calibration of the csle completers' core (run once; see calibrate_csle_core)
# --------------------------------------------------------------------------

N = 23
K = 5
M = 10  # Bonferroni pairs over 5 visits
TCRIT = stats.t.ppf(1 - 0.05 / M / 2, N - 1)


def rm_vs_baseline(X):
    """rm_anova_bonferroni rows for each follow-up column vs column 0: md, lo, hi, p."""
    d = X[:, 1:] - X[:, :1]
    md = d.mean(axis=0)
    se = d.std(axis=0, ddof=1) / np.sqrt(X.shape[0])
    t = md / se
    p = np.minimum(1.0, M * 2 * stats.t.sf(np.abs(t), X.shape[0] - 1))
    return md, md - TCRIT * se, md + TCRIT * se, p


CONT = {
    # printed values of Table 2 (seed 000): mean, SD (CD19: SE), MD, CI, P
    "c3_g_l": {
        "mean": [0.60, 0.88, 0.91, 0.92, 0.91],
        "sd": [0.37, 0.24, 0.17, 0.19, 0.19],
        "md": [0.278, 0.302, 0.319, 0.308],
        "ci": [(0.074, 0.483), (0.054, 0.55), (0.102, 0.537), (0.093, 0.522)],
        "p": [0.004, 0.011, 0.002, 0.002],
        "dec": 2,
        "lo": 0.12,
        "hi": 2.0,
        "skew": [0.9, -1.2, -1.4, -1.4, -1.6],
        "se": False,
    },
    "c4_g_l": {
        "mean": [0.12, 0.16, 0.17, 0.19, 0.20],
        "sd": [0.08, 0.08, 0.05, 0.07, 0.08],
        "md": [0.044, 0.049, 0.071, 0.084],
        "ci": [(0.008, 0.08), (0.005, 0.093), (0.03, 0.112), (0.035, 0.133)],
        "p": [0.01, 0.022, "<0.001", "<0.001"],
        "dec": 2,
        "lo": 0.02,
        "hi": 0.6,
        "skew": [0.8, 0.3, 0.0, 0.0, 0.0],
        "se": False,
    },
    "cd19_pct": {
        "mean": [18.3, 15.3, 10.1, 7.7, 5.0],
        "sd": [3.0, 2.0, 1.3, 1.0, 0.4],
        "md": [-3.011, -8.218, -10.626, -13.356],
        "ci": [(-8.266, 2.244), (-15.162, -1.274), (-18.19, -3.063), (-22.429, -4.282)],
        "p": [0.878, 0.013, 0.002, 0.001],
        "dec": 1,
        "store": 2,
        "lo": 0.8,
        "hi": 65.0,
        "skew": [0.6, 0.6, 0.7, 0.8, 0.4],
        "se": True,
    },
}


def _cont_targets(spec):
    half = 0.5 * 10.0 ** -spec["dec"]
    lo = np.array([c[0] for c in spec["ci"]])
    hi = np.array([c[1] for c in spec["ci"]])
    mdc = (lo + hi) / 2
    # baseline mean: the value that keeps every visit mean furthest inside its rounding interval
    pm = np.array(spec["mean"], float)
    best = (np.inf, None)
    for m0 in np.linspace(pm[0] - half, pm[0] + half, 401):
        mu = [m0]
        worst = abs(m0 - pm[0]) / half
        for k in range(1, K):
            # follow-up mean balancing its printed value against the printed MD
            cand = np.linspace(pm[k] - half, pm[k] + half, 201)
            err = np.maximum(np.abs(cand - pm[k]) / half, np.abs(cand - m0 - mdc[k - 1]) / 0.002)
            j = int(np.argmin(err))
            mu.append(cand[j])
            worst = max(worst, err[j])
        if worst < best[0]:
            best = (worst, np.array(mu))
    mu = best[1]
    sd = np.array(spec["sd"], float) * (np.sqrt(N) if spec["se"] else 1.0)
    sdd = (hi - lo) / 2 * np.sqrt(N) / TCRIT
    cov0 = (sd[0] ** 2 + sd[1:] ** 2 - sdd**2) / 2
    r0 = cov0 / (sd[0] * sd[1:])
    c = 0.5
    R = np.eye(K)
    R[0, 1:] = R[1:, 0] = r0
    for j in range(1, K):
        for k in range(1, K):
            if j != k:
                R[j, k] = r0[j - 1] * r0[k - 1] + c * np.sqrt(
                    (1 - r0[j - 1] ** 2) * (1 - r0[k - 1] ** 2)
                )
    C = R * np.outer(sd, sd)
    return mu, sd, C, R


def cont_errors(X, spec):
    """Normalised errors (|e| <= 1 means within tolerance) of one continuous endpoint."""
    half = 0.5 * 10.0 ** -spec["dec"]
    n = X.shape[0]
    m = X.mean(axis=0)
    s = X.std(axis=0, ddof=1)
    if spec["se"]:
        s = s / np.sqrt(n)
    e = [(m - np.array(spec["mean"])) / half, (s - np.array(spec["sd"])) / half]
    md, lo, hi, p = rm_vs_baseline(X)
    e.append((md - np.array(spec["md"])) / 0.002)
    e.append((lo - np.array([c[0] for c in spec["ci"]])) / 0.002)
    e.append((hi - np.array([c[1] for c in spec["ci"]])) / 0.002)
    pe = []
    for pv, pt in zip(p, spec["p"], strict=True):
        pe.append(max(0.0, pv - 0.0009) / 0.0005 if pt == "<0.001" else (pv - pt) / 0.002)
    e.append(np.array(pe))
    return np.concatenate(e)


def _loss(e, aim=0.7):
    return float((np.maximum(0.0, np.abs(e) - aim) ** 2).sum())


def make_continuous(name, rng, tries=400):
    spec = CONT[name]
    mu, _sd, C, R = _cont_targets(spec)
    Lr = np.linalg.cholesky(R)
    Lc = np.linalg.cholesky(C)
    unit = 10.0 ** -spec.get("store", spec["dec"])
    for _ in range(tries):
        g = rng.standard_normal((N, K)) @ Lr.T
        # marginal shapes: skew > 0 right-skewed (lognormal), < 0 left-skewed
        raw = np.empty_like(g)
        for k in range(K):
            a = spec["skew"][k]
            raw[:, k] = g[:, k] if a == 0 else np.sign(a) * np.expm1(abs(a) * g[:, k] * np.sign(a))
        Z = raw - raw.mean(axis=0)
        Lx = np.linalg.cholesky(np.cov(Z, rowvar=False))
        W = np.linalg.solve(Lx, Z.T).T  # sample covariance = I exactly
        X = mu + W @ Lc.T
        X = np.round(X / unit) * unit
        if X.min() < spec["lo"] or X.max() > spec["hi"]:
            continue
        X = repair(X, spec, unit)
        if X is not None:
            return X
    raise RuntimeError(f"calibration of {name} failed")


def repair(X, spec, unit, steps=300):
    X = X.copy()
    cur = _loss(cont_errors(X, spec))
    for _ in range(steps):
        if cur == 0:
            return X
        best = (cur, None)
        for i in range(X.shape[0]):
            for k in range(X.shape[1]):
                for dv in (-unit, unit):
                    v = X[i, k] + dv
                    if v < spec["lo"] or v > spec["hi"]:
                        continue
                    X[i, k] = v
                    ls = _loss(cont_errors(X, spec))
                    X[i, k] = v - dv
                    if ls < best[0] - 1e-12:
                        best = (ls, (i, k, dv))
        if best[1] is None:
            return None
        i, k, dv = best[1]
        X[i, k] = np.round((X[i, k] + dv) / unit) * unit
        cur = best[0]
    return X if cur == 0 else None


def ztol(z):
    """|Z error| allowed so that both Z (±0.05) and its P (±0.003) stay in tolerance."""
    return min(0.05, 0.003 / (2 * stats.norm.pdf(z))) * 0.8


RANK = {
    "urine_protein_g_24h": {
        "median": [1.05, 0.6, 0.2, 0.06, 0.1],
        "p25": [0.12, 0.07, 0.11, 0.03, 0.07],
        "p75": [3.14, 2.32, 0.32, 1.24, 0.9],
        "z": [-0.681, -1.014, -2.521, -2.52],
    },
    "sledai2k": {
        "median": [10, 4, 6, 4, 2],
        "p25": [4, 1, 2, 2, 0],
        "p75": [17, 10, 8, 6, 4],
        "z": [-3.416, -3.64, -3.726, -3.885],
    },
    "pga": {
        "median": [2, 1, 1, 0.5, 0.3],
        "p25": [1, 0.5, 0.5, 0.5, 0],
        "p75": [3, 1.5, 1.5, 1, 0.5],
        "z": [-3.96, -3.95, -3.938, -4.208],
    },
    "prednisone_mg_day": {
        "median": [40, 30, 20, 10, 2.5],
        "p25": [20, 10, 12.5, 5, 0],
        "p75": [50, 40, 30, 20, 10],
        "z": [-3.764, -3.706, -3.266, -4.08],
        "z_prev": [-3.761, -2.34, -3.029, -3.42],
    },
}
Q = (5, 11, 17)  # 0-based order statistics = SPSS P25, median, P75 for n = 23


def protein_columns(rng):
    """Sorted 24-h protein values per visit with the printed quartiles at ranks 6, 12, 18."""
    t = RANK["urine_protein_g_24h"]
    top = [6.6, 5.2, 3.6, 4.2, 3.2]
    cols = []
    for k in range(K):
        a = [0.02, t["p25"][k], t["median"][k], t["p75"][k], top[k]]
        v = np.empty(N)
        for seg in range(4):
            lo, hi = np.log(a[seg]), np.log(a[seg + 1])
            idx = list(range(seg * 6, seg * 6 + 5)) if seg < 3 else list(range(18, 23))
            if seg < 3:
                v[seg * 6 + 5] = a[seg + 1]
            if seg in (1, 2) and a[seg] < 0.5 < a[seg + 1]:
                hi = np.log(0.5)  # keep the proteinuria descriptor (> 0.5 g) to the upper ranks
            v[idx] = np.exp(np.sort(rng.uniform(lo, hi, len(idx))))
        v[17] = a[3]
        v = np.round(v, 2)
        v[[5, 11, 17]] = [a[1], a[2], a[3]]
        v = np.sort(np.clip(v, 0.02, None))
        assert np.allclose(v[list(Q)], a[1:4])
        cols.append(v)
    return np.array(cols).T


def anneal_protein(rng, iters=40000):
    """Pair the sorted protein columns so each visit's Wilcoxon Z hits its target."""
    X = protein_columns(rng)
    z_t = np.array(RANK["urine_protein_g_24h"]["z"])
    tol = np.array([ztol(z) for z in z_t])
    # start from rank-preserving pairing (smooth trajectories)

    def loss(X):
        Xi = np.rint(X * 100).astype(np.int64)
        z = zint(Xi[:, 1:] - Xi[:, :1])
        lz = (np.maximum(0, np.abs(z - z_t) - tol) / 0.01).sum() * 10
        L = np.log(X + 0.05)
        rough = np.abs(np.diff(L, axis=1)).sum() * 0.1
        prot = (X > 0.5).any(axis=1).sum()
        lk = max(0, prot - 15) * 50 + max(0, 11 - (X[:, 0] > 0.5).sum()) * 20
        return lz + lk + rough, lz + lk

    anchors = [X[list(Q), k].copy() for k in range(K)]
    cur, hard = loss(X)
    T0 = 0.3
    for it in range(iters):
        if hard == 0 and it > iters // 2:
            break
        T = T0 * (1 - it / iters) + 0.005
        k = rng.integers(0, K)
        if rng.random() < 0.7:
            i, j = rng.choice(N, 2, replace=False)
            X[[i, j], k] = X[[j, i], k]
            undo = ("swap", i, j, k)
        else:
            i = rng.integers(0, N)
            old = X[i, k]
            X[i, k] = min(
                6.8,
                max(0.02, round(old + rng.choice([-0.02, -0.01, 0.01, 0.02]) * max(1, old * 5), 2)),
            )
            if not np.array_equal(np.sort(X[:, k])[list(Q)], anchors[k]) or (old > 0.5) != (
                X[i, k] > 0.5
            ):
                X[i, k] = old
                continue
            undo = ("set", i, old, k)
        new, nh = loss(X)
        if new <= cur or rng.random() < np.exp((cur - new) / T):
            cur, hard = new, nh
        elif undo[0] == "swap":
            X[[i, j], k] = X[[j, i], k]
        else:
            X[i, k] = undo[2]
    return X, hard


PGA_GRID = np.array([0, 0.2, 0.3, 0.5, 0.8, 1.0, 1.2, 1.5, 2.0, 2.5, 3.0])
PRED_STEP = 2.5
NC_SLEDAI0 = np.array([3, 17, 3])  # the three non-completers' baseline SLEDAI-2K
NC_PGA0 = np.array([1.0, 3.0, 1.0])
DS_COUNTS = (15, 10, 11, 8, 8)


def ds_matrix():
    D = np.zeros((N, K), dtype=bool)
    for k, c in enumerate(DS_COUNTS):
        D[:c, k] = True
    # week 12: one of the week-4 negatives turns positive again (11 = 10 + 1)
    D[10, 2] = True
    return D


def type6(x, q):
    """SPSS / R type-6 quantile: the project's one definition (stats.describe, NumPy weibull)."""
    return float(np.percentile(np.asarray(x, float), q * 100, method="weibull"))


class Big:
    """The joint search over SLEDAI-2K, PGA and prednisone matrices and lab row assignments."""

    def __init__(self, C3, C4, PROT, rng):
        self.C3, self.C4, self.PROT, self.D = C3, C4, PROT, ds_matrix()
        self.rng = rng
        self.perm = {k: rng.permutation(N) for k in ("c3", "c4", "prot", "ds")}
        t = RANK
        self.zS, self.zG = np.array(t["sledai2k"]["z"]), np.array(t["pga"]["z"])
        self.zP, self.zPp = (
            np.array(t["prednisone_mg_day"]["z"]),
            np.array(t["prednisone_mg_day"]["z_prev"]),
        )
        self.tol = {
            k: np.array([ztol(z) for z in v])
            for k, v in {"S": self.zS, "G": self.zG, "P": self.zP, "Pp": self.zPp}.items()
        }
        self.qS = np.array([t["sledai2k"][q] for q in ("p25", "median", "p75")]).T
        self.qG = np.array([t["pga"][q] for q in ("p25", "median", "p75")]).T
        self.qP = np.array([t["prednisone_mg_day"][q] for q in ("p25", "median", "p75")]).T
        self.labs()
        # initial values: anchored columns matched to minimum scores by rank
        S = np.zeros((N, K), int)
        G = np.zeros((N, K), int)
        P = np.zeros((N, K), int)
        tops = [26, 16, 14, 12, 8]
        for k in range(K):
            order = np.argsort(self.smin[:, k] + rng.random(N) * 0.5)
            S[order, k] = self._anchored(self.qS[k], 0, tops[k], int)
            G[order, k] = np.searchsorted(
                PGA_GRID, self._anchored(self.qG[k], 0, 3.0, float, PGA_GRID)
            )
            P[order, k] = np.round(
                self._anchored(self.qP[k], 0, 60, float, np.arange(0, 62.5, 2.5)) / PRED_STEP
            ).astype(int)
        self.S, self.G, self.P = S, G, P

    def _anchored(self, q, lo, hi, typ, grid=None):
        a = [lo, *q, hi]
        v = np.empty(N)
        for seg in range(4):
            idx = list(range(seg * 6, seg * 6 + 5)) if seg < 3 else list(range(18, 23))
            vals = self.rng.uniform(a[seg], a[seg + 1], len(idx))
            if grid is None:
                vals = np.round(vals)
            else:
                vals = grid[np.abs(grid[None, :] - vals[:, None]).argmin(axis=1)]
            v[idx] = np.sort(vals)
        v[[5, 11, 17]] = q
        return np.sort(v)

    def labs(self):
        c3 = self.C3[self.perm["c3"]]
        c4 = self.C4[self.perm["c4"]]
        self.low = (c3 < 0.9) | (c4 < 0.1)
        self.ds = self.D[self.perm["ds"]]
        self.prot = self.PROT[self.perm["prot"]] > 0.5
        self.smin = 2 * self.low + 2 * self.ds + 4 * self.prot

    stage = 0  # 0 = everything, 1 = SLEDAI-2K and labs only, 2 = PGA and prednisone given SLEDAI

    def parts(self):
        S, Gv, Pv = self.S, PGA_GRID[self.G], self.P * PRED_STEP
        out = {}
        st = self.stage
        # quartiles
        sS, sG, sP = np.sort(S, axis=0), np.sort(Gv, axis=0), np.sort(Pv, axis=0)
        qs = np.abs(sS[list(Q)].T - self.qS).sum() * 20
        qgp = np.abs(sG[list(Q)].T - self.qG).sum() * 20 + np.abs(sP[list(Q)].T - self.qP).sum() * 2
        out["quart"] = (qs if st != 2 else 0) + (qgp if st != 1 else 0)
        Gi, Pi = np.rint(Gv * 10).astype(np.int64), self.P
        zs = zint(S[:, 1:] - S[:, :1])
        zg = zint(Gi[:, 1:] - Gi[:, :1])
        zp = zint(Pi[:, 1:] - Pi[:, :1])
        zpp = zint(np.diff(Pi, axis=1))
        self.z = {"S": zs, "G": zg, "P": zp, "Pp": zpp}
        zl = 0.0
        for key, zt in (("S", self.zS), ("G", self.zG), ("P", self.zP), ("Pp", self.zPp)):
            if (st == 1 and key != "S") or (st == 2 and key == "S"):
                continue
            zl += (np.maximum(0, np.abs(self.z[key] - zt) - self.tol[key]) / 0.01).sum()
        out["z"] = zl * 3
        out["smin"] = np.maximum(0, self.smin - S).sum() * 20
        # feasibility of the quartiles: enough patients whose labs allow a score that low
        feas = 0
        for k in range(K):
            for r, q in zip(Q, self.qS[k], strict=True):
                feas += max(0, r + 1 - int((self.smin[:, k] <= q).sum()))
        feas += max(0, 5 - int((self.smin[:, 0] <= 3).sum()))
        out["feas"] = feas * 10
        extra = S - self.smin
        renal = np.where(self.prot, 4 * np.minimum(3, np.maximum(extra, 0) // 4), 0)
        nonren = np.clip(extra - renal, 0, 59)
        self.nonren = nonren
        out["nonren_max"] = np.maximum(0, nonren - 16).sum() * 5
        # organ caps from the canonical ladder (completers; NCs take one skin, two blood)
        blood = (nonren > 0).any(axis=1).sum()
        skin = (nonren >= 3).any(axis=1).sum()
        msk = (nonren >= 9).any(axis=1).sum()
        out["organs"] = (max(0, blood - 11) + max(0, skin - 10) + max(0, msk - 4)) * 10
        # week-52 outcomes (seed_paper definitions)
        s52, g52, p52 = S[:, 4], Gv[:, 4], Pv[:, 4]
        m52, m24 = LADDER[nonren[:, 4]], LADDER[nonren[:, 3]]
        new = (
            (self.low[:, 4] & ~self.low[:, 3])
            | (self.ds[:, 4] & ~self.ds[:, 3])
            | ((m52 & ~m24) != 0)
        )
        lldas = (s52 < 4) & ~self.prot[:, 4] & ~new & (g52 < 1) & (p52 < 7.5)
        rem = (s52 == 0) & (g52 < 0.5) & (p52 < 5)
        self.lldas52, self.rem52 = lldas, rem
        cand = (s52 < 4) & ~self.prot[:, 4] & ~new
        self.cand52 = cand
        if st == 1:
            out["outcomes"] = (
                abs((s52 < 6).sum() - 21)
                + max(0, 15 - cand.sum())
                + max(0, 5 - (cand & (s52 == 0)).sum())
            ) * 10
        else:
            out["outcomes"] = (
                abs((s52 < 6).sum() - 21)
                + abs((g52 < 1).sum() - 20)
                + abs(lldas.sum() - 14)
                + abs(rem.sum() - 4)
            ) * 10
        # Table 1 over 26 with the non-completers
        s26 = np.r_[S[:, 0], NC_SLEDAI0]
        g26 = np.r_[Gv[:, 0], NC_PGA0]
        t1 = (
            abs(type6(s26, 0.25) - 3) + abs(type6(s26, 0.5) - 10) + abs(type6(s26, 0.75) - 17)
        ) * 20
        if st == 2:
            t1 = 0.0
        if st != 1:
            t1 += (
                max(0, abs(g26.mean() - 1.9) - 0.02) * 200
                + max(0, abs(g26.std(ddof=1) - 1.0) - 0.02) * 200
            )
        out["table1"] = t1
        # soft realism
        f = 3 * S / (S + 7.0)
        soft = ((Gv - f) ** 2).sum() * 0.3 if st != 1 else 0.0
        if st != 1:
            soft += ((Gv >= 1) & (S == 0)).sum() * 2 + ((Gv == 0) & (S >= 4)).sum() * 2
            soft += np.maximum(0, np.diff(self.P, axis=1)).sum() * 0.3
            soft += (((Pv >= 30) & (S <= 2)).sum()) * 0.5
        soft += np.maximum(0, np.diff(S, axis=1) - 2).sum() * 0.2
        out["soft"] = soft
        return out

    def loss(self):
        p = self.parts()
        hard = sum(v for k, v in p.items() if k != "soft")
        return hard + p["soft"], hard

    def anneal(self, iters=60000, T0=3.0):
        rng = self.rng
        cur, hard = self.loss()
        for it in range(iters):
            T = T0 * (1 - it / iters) ** 2 + 0.02
            u = rng.random()
            k = int(rng.integers(0, K))
            i, j = (int(v) for v in rng.choice(N, 2, replace=False))
            if self.stage == 2:
                u = 0.0
            if u < 0.6:
                M_ = (self.S, self.G, self.P)[
                    int(rng.integers(0, 3))
                    if self.stage == 0
                    else (0 if self.stage == 1 else 1 + int(rng.integers(0, 2)))
                ]
                if rng.random() < 0.7:
                    old = M_[i, k]
                    step = int(rng.choice([-2, -1, 1, 2]))
                    hi = len(PGA_GRID) - 1 if M_ is self.G else (24 if M_ is self.P else 40)
                    nv = min(hi, max(0, old + step))
                    if nv == old:
                        continue
                    M_[i, k] = nv

                    def undo(M_=M_, i=i, k=k, old=old):
                        M_[i, k] = old
                else:
                    M_[[i, j], k] = M_[[j, i], k]

                    def undo(M_=M_, i=i, j=j, k=k):
                        M_[[i, j], k] = M_[[j, i], k]
            else:
                name = ("c3", "c4", "prot", "ds")[int(rng.integers(0, 4))]
                pm = self.perm[name]
                pm[[i, j]] = pm[[j, i]]
                # the patient keeps its scores: swap the rows of the lab only, then lift
                # the two patients' SLEDAI-2K to what their new labs imply
                self.labs()
                rows = self.S[[i, j]].copy()
                self.S[[i, j]] = np.maximum(self.S[[i, j]], self.smin[[i, j]])

                def undo(pm=pm, i=i, j=j, rows=rows):
                    pm[[i, j]] = pm[[j, i]]
                    self.S[[i, j]] = rows
                    self.labs()

            new, nh = self.loss()
            if new <= cur or rng.random() < np.exp((cur - new) / T):
                cur, hard = new, nh
            else:
                undo()
        return cur, hard


def zint(D):
    """Wilcoxon signed Z per column of an integer difference matrix (same convention)."""
    D = np.asarray(D, dtype=np.int64)
    m = D.shape[1]
    a = np.abs(D)
    mv = int(a.max()) + 1
    cnt = np.bincount((a + np.arange(m) * mv).ravel(), minlength=m * mv).reshape(m, mv)
    cnt[:, 0] = 0
    cum = np.cumsum(cnt, axis=1)
    rk = cum - (cnt - 1) / 2.0
    r = rk[np.arange(m)[None, :], a]
    wplus = np.where(D > 0, r, 0).sum(axis=0)
    nn = cnt.sum(axis=1)
    var = nn * (nn + 1) * (2 * nn + 1) / 24 - (cnt**3 - cnt).sum(axis=1) / 48
    with np.errstate(invalid="ignore", divide="ignore"):
        z = (wplus - nn * (nn + 1) / 4) / np.sqrt(var)
    return np.where(var > 0, z, 0.0)


def big_core(self, cd19):
    """The calibrated matrices with the lab rows assigned to patients, as plain lists."""
    self.parts()
    return {
        "c3": self.C3[self.perm["c3"]].round(2).tolist(),
        "c4": self.C4[self.perm["c4"]].round(2).tolist(),
        "cd19": np.asarray(cd19).round(2).tolist(),
        "prot": self.PROT[self.perm["prot"]].round(2).tolist(),
        "ds": self.D[self.perm["ds"]].astype(int).tolist(),
        "sledai": self.S.astype(int).tolist(),
        "pga": PGA_GRID[self.G].round(1).tolist(),
        "pred": (self.P * PRED_STEP).tolist(),
        "lldas52": self.lldas52.astype(int).tolist(),
    }


def _sledai_multisets(rng):
    """Sorted SLEDAI-2K values per visit: printed quartiles, Table 1 (n = 26) and week-52 counts."""
    q = np.array([RANK["sledai2k"][k] for k in ("p25", "median", "p75")]).T
    tops = [28, 20, 18, 14, 8]
    cols = []
    for k in range(K):
        a = [0, *q[k], tops[k]]
        v = np.empty(N)
        for seg in range(4):
            idx = list(range(seg * 6, seg * 6 + 5)) if seg < 3 else list(range(18, 23))
            lo, hi = a[seg], a[seg + 1]
            if k == 0 and seg == 0:
                lo, hi = 1, 3  # with the non-completers' 3, 3: P25 of the 26 is 3
            v[idx] = np.sort(rng.integers(lo, hi + 1, len(idx)))
        v[[5, 11, 17]] = q[k]
        if k == 0:
            v[10] = 10  # the 26-patient median (x13 + x14) / 2 = 10
        if k == 4:
            v[18:21] = np.sort(rng.integers(4, 6, 3))  # SLEDAI-2K < 6 in 21 of 23 at week 52
            v[21:] = np.sort(rng.integers(6, 9, 2))
        cols.append(np.sort(v).astype(int))
    return np.array(cols).T


def init_feasible(b, iters=20000):
    """Choose lab-row assignments that admit the SLEDAI-2K multisets, then place them."""
    rng = b.rng
    A = _sledai_multisets(rng)
    sA = np.sort(A, axis=0)

    def loss():
        sm = np.sort(b.smin, axis=0)
        l1 = np.maximum(0, sm - sA).sum()
        new = (b.low[:, 4] & ~b.low[:, 3]) | (b.ds[:, 4] & ~b.ds[:, 3])
        cand = ~b.prot[:, 4] & (b.smin[:, 4] <= 2) & ~new
        zeros = (b.smin[:, 4] == 0).sum()
        return l1 * 10 + max(0, 16 - cand.sum()) * 5 + max(0, 7 - zeros) * 5

    cur = loss()
    for it in range(iters):
        if cur == 0:
            break
        T = 2.0 * (1 - it / iters) + 0.05
        name = ("c3", "c4", "prot", "ds")[int(rng.integers(0, 4))]
        i, j = (int(v) for v in rng.choice(N, 2, replace=False))
        pm = b.perm[name]
        pm[[i, j]] = pm[[j, i]]
        b.labs()
        new = loss()
        if new <= cur or rng.random() < np.exp((cur - new) / T):
            cur = new
        else:
            pm[[i, j]] = pm[[j, i]]
            b.labs()
    # place each column's values: smallest values to the patients with the smallest minimum
    for k in range(K):
        order = np.lexsort((rng.random(N), b.smin[:, k]))
        b.S[order, k] = sA[:, k]
    return cur




def calibrate_csle_core(seed: int = 5) -> dict:
    """Re-run the search that produced ``_CORE`` (about five minutes; prints progress).

    ``_CORE`` holds the result for seed 5 (the first seed tried that converged
    within the round limits below).
    """
    rng = np.random.default_rng(seed)
    c3 = make_continuous("c3_g_l", rng)
    c4 = make_continuous("c4_g_l", rng)
    cd19 = make_continuous("cd19_pct", rng)
    for _ in range(8):
        prot, hard = anneal_protein(rng, 20000)
        if hard == 0:
            break
    big = Big(c3, c4, prot, rng)
    init_feasible(big)
    for stage, rounds, first_t in ((1, 8, 1.0), (2, 6, 2.0)):
        big.stage = stage
        for r in range(rounds):
            t0 = first_t if r == 0 else (0.3 if stage == 1 else 0.4)
            cur, hard = big.anneal(15000 if r or stage == 1 else 20000, t0)
            print(f"stage {stage} round {r}: loss {cur:.2f}, hard {hard:.2f}", flush=True)
            if hard == 0:
                break
    big.stage = 0
    if big.loss()[1] != 0:
        raise RuntimeError("calibration did not converge; try another seed")
    core = big_core(big, cd19)
    prot = np.array(core["prot"])
    for r in range(5):
        prot, miss = polish_protein(prot, np.random.default_rng(r + 1))
        if miss == 0:
            break
    core["prot"] = prot.round(2).tolist()
    return core


def polish_protein(X: np.ndarray, rng: np.random.Generator, iters: int = 20000):
    """Make the 24-h protein Z values hold however ties are ranked (returns matrix, miss).

    R and SciPy rank the raw float differences, so 0.12 - 0.07 and 0.20 - 0.15
    are not a tie there, while they are in exact decimals. The search keeps
    every proteinuria status (> 0.5 g) and every printed quartile, and asks
    that Z (and its P) be in tolerance both ways; a tie that survives is one
    of bit-identical differences (the same two values, or mirrored).
    """
    X = np.array(X, dtype=float)
    zt = np.array(RANK["urine_protein_g_24h"]["z"])
    pt = np.array([0.496, 0.309, 0.012, 0.012])  # Table 2 P of the same rows
    lo = np.maximum(np.abs(zt) - 0.05, stats.norm.isf((pt + 0.003) / 2))
    hi = np.minimum(np.abs(zt) + 0.05, stats.norm.isf((pt - 0.003) / 2))
    margin = (hi - lo) * 0.15
    lo, hi = lo + margin, hi - margin
    anchors = [np.sort(X[:, k])[list(Q)].copy() for k in range(K)]

    def out(z):
        a = np.abs(z)
        return (np.maximum(0, lo - a) + np.maximum(0, a - hi)).sum()

    def loss(X):
        xi = np.rint(X * 100).astype(np.int64)
        zf = np.array(
            [
                stats.wilcoxon(X[:, k], X[:, 0], method="approx", correction=False).zstatistic
                for k in range(1, K)
            ]
        )
        return (out(zint(xi[:, 1:] - xi[:, :1])) + out(zf)) * 100

    def keeps(k):
        return np.allclose(np.sort(X[:, k])[list(Q)], anchors[k])

    cur = loss(X)
    for it in range(iters):
        if cur == 0:
            break
        temp = 0.5 * (1 - it / iters) + 0.005
        i, j = (int(v) for v in rng.choice(N, 2, replace=False))
        k = int(rng.integers(0, K))
        u = rng.random()
        if u < 0.1:  # mirror patient i's (baseline, week 12) pair onto patient j
            old = (X[j, 0], X[j, 2])
            new = (X[i, 2], X[i, 0])
            if (old[0] > 0.5) != (new[0] > 0.5) or (old[1] > 0.5) != (new[1] > 0.5):
                continue
            X[j, 0], X[j, 2] = new
            if not (keeps(0) and keeps(2)):
                X[j, 0], X[j, 2] = old
                continue

            def undo(j=j, old=old):
                X[j, 0], X[j, 2] = old
        elif u < 0.55:  # swap within a visit, same side of the proteinuria threshold
            if (X[i, k] > 0.5) != (X[j, k] > 0.5):
                continue
            X[[i, j], k] = X[[j, i], k]

            def undo(i=i, j=j, k=k):
                X[[i, j], k] = X[[j, i], k]
        else:  # nudge one value
            old = X[i, k]
            nv = round(old + float(rng.choice([-0.02, -0.01, 0.01, 0.02])), 2)
            if nv < 0.02 or (old > 0.5) != (nv > 0.5):
                continue
            X[i, k] = nv
            if not keeps(k):
                X[i, k] = old
                continue

            def undo(i=i, k=k, old=old):
                X[i, k] = old

        new_loss = loss(X)
        if new_loss <= cur or rng.random() < np.exp((cur - new_loss) / temp):
            cur = new_loss
        else:
            undo()
    return X, cur


def check_frozen_core() -> dict[str, list]:
    """The frozen `_CORE` against the search's own targets: {endpoint: errors} (all empty)."""
    out = {}
    for name, key in (("c3_g_l", "c3"), ("c4_g_l", "c4"), ("cd19_pct", "cd19")):
        X = np.array(_CORE[key], dtype=float)
        # cont_errors are normalised: |e| <= 1 is within the published precision.
        out[name] = [float(e) for e in cont_errors(X, CONT[name]) if abs(e) > 1]
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--seed", type=int, default=5)
    p.add_argument("--check", action="store_true", help="only check the frozen table")
    a = p.parse_args(argv)
    if a.check:
        bad = {k: v for k, v in check_frozen_core().items() if v}
        print("frozen calibration meets its targets" if not bad else f"misses: {bad}")
        return 1 if bad else 0
    print(json.dumps(calibrate_csle_core(a.seed)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
