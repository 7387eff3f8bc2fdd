"""Deterministic synthetic demo cohorts, calibrated to the two seed papers, and a scaled cohort.

No real patient is in here: every patient is generated. Two demo cohorts:

- ``csle_belimumab``: 26 children on belimumab (Wang et al., Front Immunol 2022),
  visits at weeks 0, 4, 12, 24, 52 and a last follow-up beyond week 52; 23
  completers, 3 non-completers (one stopped, two switched to telitacicept).
- ``ln_belimumab``: 10 adults with active lupus nephritis, monthly visits
  (thesis abstract, seed document 002).

**Frozen calibration.** Table 2 of the paediatric paper fixes, for the 23
completers, every mean, SD, quartile, paired-comparison CI and Wilcoxon Z of
eight endpoints, while the patients must stay coherent (SLEDAI-2K equal to its
descriptors, descriptors agreeing with the labs, LLDAS/remission counts). Those
23 x 5 matrices were found once by ``calibrate_csle_core()`` (exact-moment
construction for C3, C4, CD19+; seeded simulated annealing over pairings and
lab-row assignments for 24-h protein, SLEDAI-2K, PGA and prednisone, then
``polish_protein`` so no Z depends on how float near-ties are ranked, and a
last search of the PGA/prednisone pairings for fewer dose increases under the
same constraints; about five minutes) and for seed 5 are stored below as ``_CORE``: a frozen table of synthetic
values, so a build takes a second. Everything else (ages, organ involvement,
biopsy classes, regimens, other labs, dates, the last follow-up visit, the
adult cohort) is generated from ``seed`` at build time; the targets hold for
any seed (tests check the default and another one).

Conventions documented here:
- Belimumab dosing is not a table of the contract: 10 mg/kg IV at weeks 0, 2, 4
  and then every 4 weeks, so doses before week w are
  ``len({0, 2, 4} ∩ [0, w)) + len({8, 12, ...} ∩ [0, w))``, capped at
  ``discontinued_week``; the amount is 10 mg/kg × ``weight_kg``. All
  csle patients reach 5 doses by week 12 and 8 by week 24, the 23 completers
  14 before week 52 (Table 1).
- ``follow_up_months`` = last visit week × 12/52. The three non-completers are
  seen once more after stopping (weeks 46–50) and never at week 52, so all 26
  give 19.6 ± 6.4 months; the completers then give 20.7 ± 5.9 (the text says
  20.5 ± 6.1, which with non-completers seen at most to week 51 cannot hold
  together with the 26-patient figure).
- ``ln_belimumab`` schedule = weeks 0–20 (months 0–5, the published UPCR
  comparisons at months 4 and 5), so ``completer`` = reached the month-5
  assessment (6 of the 7 efficacy patients); the efficacy population of the
  thesis is "treated ≥ 4 months" = has a week-16 visit. Later monthly visits
  (to month 9) are recorded as unscheduled visits.
- Anti-dsDNA IU/mL is positive from 30 IU/mL (the belimumab trials' cut-off,
  CLINICAL_DEFINITIONS.md §8); low complement = C3 < 0.9 or C4 < 0.1 g/L (the
  reference limits of schema.ENDPOINTS); the proteinuria descriptor = 24-h
  protein (else UPCR) > 0.5.
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from . import schema
from .schema import ORGANS

DEFAULT_SEED = 20221222
CSLE, LN = "csle_belimumab", "ln_belimumab"
C3_LLN = schema.ENDPOINTS_BY_COLUMN["c3_g_l"].ref_low
C4_LLN = schema.ENDPOINTS_BY_COLUMN["c4_g_l"].ref_low
PROTEINURIA_G = 0.5  # SLEDAI-2K proteinuria: > 0.5 g/24 h (Gladman 2002)
ANTI_DSDNA_POSITIVE_IU = 30.0


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
    np.array(spec["md"])
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
    np.log(X + 0.05)
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

# Non-renal SLEDAI-2K descriptors as bits, and the canonical set for a non-renal score v.
BIT = {
    "leukopenia": 1,
    "thrombocytopenia": 2,
    "rash": 4,
    "alopecia": 8,
    "mucosal_ulcers": 16,
    "arthritis": 32,
    "myositis": 64,
    "pleurisy": 128,
}
WEIGHT = {
    "leukopenia": 1,
    "thrombocytopenia": 1,
    "rash": 2,
    "alopecia": 2,
    "mucosal_ulcers": 2,
    "arthritis": 4,
    "myositis": 4,
    "pleurisy": 2,
}


def ladder(v):
    """Descriptor bitmask of a non-renal score v: blood first, then skin, then joints."""
    base = {0: 0, 1: 1, 2: 3, 3: 5, 4: 7, 5: 13, 6: 15, 7: 29, 8: 31}
    if v <= 8:
        return base[v]
    if v <= 12:
        return 32 | ladder(v - 4)
    if v <= 16:
        return 96 | ladder(v - 8)
    return 224 | ladder(v - 10)


LADDER = np.array([ladder(v) for v in range(60)])


def ds_matrix():
    D = np.zeros((N, K), dtype=bool)
    for k, c in enumerate(DS_COUNTS):
        D[:c, k] = True
    # week 12: one of the week-4 negatives turns positive again (11 = 10 + 1)
    D[10, 2] = True
    return D


def type6(x, q):
    x = np.sort(np.asarray(x, float))
    n = len(x)
    h = q * (n + 1)
    lo = int(np.floor(h))
    if lo < 1:
        return x[0]
    if lo >= n:
        return x[-1]
    return x[lo - 1] + (h - lo) * (x[lo] - x[lo - 1])


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


# Frozen output of calibrate_csle_core(seed=5): the 23 completers x weeks 0, 4, 12, 24, 52,
# then the 24-h protein polished so that float differences never make near-ties
# (R and SciPy rank raw float differences; see polish_protein).
# fmt: off
_CORE = {
    "c3": [
        [1.43, 1.18, 1.14, 1.12, 1.1],
        [0.33, 0.33, 0.71, 0.89, 0.65],
        [0.44, 1.02, 0.95, 1.05, 1.01],
        [0.37, 0.86, 0.99, 0.94, 0.96],
        [0.41, 0.88, 0.97, 1.01, 0.91],
        [0.35, 1.01, 1.0, 1.01, 1.03],
        [0.28, 0.51, 0.43, 0.31, 0.66],
        [0.5, 0.89, 0.62, 1.0, 0.61],
        [0.65, 1.01, 0.8, 1.0, 1.0],
        [1.2, 1.11, 0.95, 1.12, 0.91],
        [0.19, 0.34, 1.07, 0.78, 0.72],
        [1.08, 0.85, 0.72, 0.9, 0.95],
        [0.68, 0.5, 0.67, 0.83, 0.8],
        [0.19, 0.85, 0.95, 0.56, 0.35],
        [0.4, 1.01, 1.0, 1.01, 1.04],
        [0.34, 0.81, 1.01, 0.73, 1.04],
        [0.43, 0.95, 0.96, 0.99, 1.01],
        [1.13, 1.08, 0.95, 1.0, 1.03],
        [1.09, 1.06, 0.95, 0.81, 1.09],
        [0.38, 0.9, 1.05, 0.95, 1.02],
        [0.3, 1.01, 0.94, 1.02, 1.02],
        [0.62, 0.97, 0.94, 1.07, 0.97],
        [1.09, 1.15, 1.08, 1.11, 1.08],
    ],
    "c4": [
        [0.17, 0.2, 0.22, 0.23, 0.22],
        [0.05, 0.06, 0.09, 0.11, 0.08],
        [0.19, 0.18, 0.17, 0.15, 0.11],
        [0.04, 0.11, 0.2, 0.11, 0.21],
        [0.09, 0.19, 0.18, 0.21, 0.12],
        [0.08, 0.12, 0.13, 0.19, 0.23],
        [0.33, 0.24, 0.25, 0.3, 0.3],
        [0.31, 0.33, 0.23, 0.28, 0.36],
        [0.07, 0.12, 0.23, 0.22, 0.18],
        [0.08, 0.18, 0.16, 0.14, 0.16],
        [0.07, 0.15, 0.16, 0.17, 0.27],
        [0.06, 0.11, 0.13, 0.07, 0.14],
        [0.22, 0.37, 0.23, 0.35, 0.28],
        [0.05, 0.05, 0.08, 0.11, 0.07],
        [0.04, 0.12, 0.18, 0.16, 0.2],
        [0.13, 0.05, 0.13, 0.21, 0.15],
        [0.09, 0.12, 0.09, 0.17, 0.14],
        [0.08, 0.14, 0.18, 0.19, 0.15],
        [0.11, 0.19, 0.23, 0.21, 0.33],
        [0.11, 0.2, 0.17, 0.31, 0.32],
        [0.09, 0.16, 0.17, 0.18, 0.19],
        [0.19, 0.22, 0.14, 0.16, 0.25],
        [0.08, 0.11, 0.11, 0.13, 0.18],
    ],
    "cd19": [
        [26.21, 24.28, 25.02, 19.01, 7.57],
        [8.28, 6.63, 5.48, 3.06, 3.13],
        [6.58, 5.53, 4.07, 4.45, 6.14],
        [5.92, 5.18, 8.66, 3.24, 3.1],
        [12.2, 11.47, 5.26, 5.57, 4.26],
        [63.81, 39.98, 20.09, 15.57, 5.05],
        [16.27, 24.01, 14.97, 8.89, 5.93],
        [14.36, 6.57, 9.62, 4.2, 2.77],
        [37.23, 26.66, 14.86, 20.6, 6.55],
        [24.03, 14.37, 5.6, 6.49, 5.17],
        [9.88, 9.88, 9.11, 5.94, 4.28],
        [21.79, 18.44, 10.49, 11.34, 6.16],
        [17.04, 18.35, 6.35, 6.86, 4.57],
        [3.46, 8.28, 6.64, 4.13, 3.97],
        [15.95, 12.88, 5.73, 5.08, 4.1],
        [19.9, 22.22, 10.77, 6.73, 5.68],
        [9.11, 8.72, 5.27, 5.55, 3.72],
        [19.66, 15.88, 8.62, 4.83, 4.2],
        [9.2, 3.87, 3.21, 4.42, 3.54],
        [22.25, 29.81, 16.99, 10.28, 5.79],
        [8.34, 14.43, 11.08, 8.23, 10.85],
        [46.17, 22.68, 22.43, 8.09, 6.28],
        [3.89, 2.16, 2.19, 4.55, 1.56],
    ],
    "prot": [
        [0.15, 2.65, 0.32, 2.51, 1.89],
        [1.05, 4.64, 2.45, 0.03, 0.03],
        [0.03, 3.64, 0.08, 0.03, 0.09],
        [0.25, 0.32, 0.32, 0.03, 0.04],
        [2.57, 1.58, 0.19, 0.05, 0.23],
        [1.44, 2.32, 2.28, 1.24, 0.9],
        [0.12, 0.04, 0.13, 0.06, 0.32],
        [1.58, 1.02, 1.62, 2.67, 1.36],
        [5.5, 0.07, 0.14, 2.15, 1.6],
        [3.14, 2.28, 0.13, 0.38, 0.27],
        [0.21, 0.48, 0.29, 0.02, 0.07],
        [3.75, 0.05, 0.11, 0.04, 0.02],
        [3.33, 0.77, 0.3, 0.03, 0.1],
        [2.19, 2.48, 0.11, 0.13, 0.08],
        [0.06, 2.98, 0.11, 1.69, 4.83],
        [2.29, 0.6, 1.02, 2.18, 0.98],
        [0.07, 0.04, 0.2, 0.09, 0.04],
        [0.07, 0.07, 0.1, 0.04, 0.07],
        [0.13, 0.13, 0.26, 0.06, 0.08],
        [0.05, 0.41, 0.09, 0.06, 0.18],
        [0.13, 0.1, 0.12, 0.21, 0.03],
        [5.23, 0.07, 0.2, 0.03, 0.13],
        [3.17, 1.12, 0.55, 0.03, 0.07],
    ],
    "ds": [
        [0, 0, 0, 0, 0],
        [1, 1, 1, 1, 1],
        [1, 0, 0, 0, 0],
        [1, 1, 1, 1, 1],
        [1, 1, 1, 1, 1],
        [0, 0, 0, 0, 0],
        [1, 1, 1, 1, 1],
        [1, 0, 1, 0, 0],
        [0, 0, 0, 0, 0],
        [1, 1, 1, 1, 1],
        [1, 1, 1, 0, 0],
        [1, 1, 1, 1, 1],
        [1, 1, 1, 0, 0],
        [1, 0, 0, 0, 0],
        [1, 1, 1, 1, 1],
        [0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0],
        [1, 0, 0, 0, 0],
        [0, 0, 0, 0, 0],
        [1, 1, 1, 1, 1],
        [0, 0, 0, 0, 0],
        [1, 0, 0, 0, 0],
    ],
    "sledai": [
        [0, 4, 0, 4, 4],
        [12, 12, 16, 4, 4],
        [17, 4, 6, 4, 0],
        [8, 4, 6, 6, 2],
        [35, 34, 13, 8, 2],
        [28, 17, 8, 4, 5],
        [4, 4, 4, 4, 4],
        [20, 14, 16, 12, 10],
        [10, 0, 2, 4, 4],
        [12, 7, 7, 6, 2],
        [12, 10, 7, 2, 2],
        [12, 4, 4, 4, 2],
        [8, 8, 4, 2, 2],
        [26, 8, 9, 7, 3],
        [4, 6, 2, 6, 6],
        [10, 6, 8, 6, 4],
        [2, 0, 2, 0, 0],
        [3, 1, 0, 1, 0],
        [2, 0, 0, 2, 0],
        [2, 0, 0, 0, 0],
        [12, 4, 6, 6, 2],
        [10, 1, 1, 2, 0],
        [25, 15, 9, 10, 2],
    ],
    "pga": [
        [1.0, 1.2, 0.0, 0.5, 0.5],
        [2.5, 2.0, 2.0, 0.5, 1.2],
        [3.0, 1.0, 1.5, 1.0, 0.0],
        [1.0, 0.8, 1.0, 0.8, 0.5],
        [3.0, 2.5, 2.0, 1.5, 0.3],
        [3.0, 2.0, 1.5, 0.5, 1.2],
        [0.5, 1.0, 1.0, 0.5, 0.3],
        [3.0, 2.0, 2.0, 3.0, 2.0],
        [2.5, 0.0, 0.5, 1.0, 0.8],
        [3.0, 1.5, 1.5, 1.0, 0.3],
        [2.5, 1.5, 1.5, 0.5, 0.3],
        [1.5, 1.0, 1.0, 0.5, 0.5],
        [2.0, 1.5, 1.0, 0.5, 0.5],
        [3.0, 1.5, 1.5, 1.5, 0.5],
        [1.5, 1.0, 0.8, 1.2, 0.8],
        [2.0, 1.5, 1.5, 1.0, 0.5],
        [0.8, 0.0, 0.5, 0.0, 0.0],
        [0.8, 0.3, 0.0, 0.3, 0.0],
        [0.3, 0.0, 0.0, 0.5, 0.0],
        [0.5, 0.0, 0.0, 0.0, 0.0],
        [2.5, 0.8, 1.5, 1.0, 0.3],
        [1.2, 0.5, 0.3, 0.5, 0.0],
        [3.0, 2.0, 1.5, 2.0, 0.3],
    ],
    "pred": [
        [15.0, 5.0, 12.5, 7.5, 0.0],
        [7.5, 27.5, 30.0, 37.5, 12.5],
        [45.0, 35.0, 30.0, 17.5, 0.0],
        [45.0, 40.0, 12.5, 2.5, 2.5],
        [32.5, 25.0, 17.5, 15.0, 5.0],
        [40.0, 30.0, 25.0, 20.0, 0.0],
        [60.0, 50.0, 22.5, 20.0, 15.0],
        [40.0, 37.5, 50.0, 60.0, 50.0],
        [32.5, 10.0, 17.5, 15.0, 12.5],
        [35.0, 25.0, 20.0, 17.5, 2.5],
        [15.0, 5.0, 0.0, 0.0, 0.0],
        [55.0, 45.0, 40.0, 27.5, 25.0],
        [47.5, 37.5, 32.5, 30.0, 5.0],
        [60.0, 50.0, 25.0, 10.0, 2.5],
        [20.0, 10.0, 5.0, 2.5, 2.5],
        [37.5, 27.5, 22.5, 10.0, 10.0],
        [17.5, 7.5, 2.5, 2.5, 2.5],
        [12.5, 2.5, 10.0, 12.5, 5.0],
        [27.5, 17.5, 12.5, 7.5, 0.0],
        [50.0, 40.0, 20.0, 7.5, 0.0],
        [50.0, 40.0, 35.0, 0.0, 0.0],
        [57.5, 32.5, 10.0, 5.0, 5.0],
        [60.0, 50.0, 22.5, 5.0, 5.0],
    ],
    "lldas52": [
        0,
        0,
        1,
        1,
        1,
        0,
        0,
        0,
        0,
        1,
        1,
        0,
        1,
        1,
        0,
        0,
        1,
        1,
        1,
        1,
        1,
        1,
        1,
    ],
}
# fmt: on


# --------------------------------------------------------------------------
# SLEDAI-2K descriptors from scores and labs
# --------------------------------------------------------------------------

_WEIGHT = {k: w for k, w, _, _ in schema.SLEDAI_DESCRIPTORS}
_GROUP = {k: g for k, _, _, g in schema.SLEDAI_DESCRIPTORS}
_MAJOR = ("cns", "vascular", "renal", "serosal", "fever")
# Non-renal descriptors in the bit order of LADDER (blood first, then skin, joints, serosa).
_LADDER_KEYS = (
    "leukopenia",
    "thrombocytopenia",
    "rash",
    "alopecia",
    "mucosal_ulcers",
    "arthritis",
    "myositis",
    "pleurisy",
)
_RENAL_EXTRA = ("haematuria", "urinary_casts", "pyuria")
# Organ (patients table) that a descriptor belongs to.
_ORGAN_OF = {
    "leukopenia": "blood",
    "thrombocytopenia": "blood",
    "rash": "skin",
    "alopecia": "skin",
    "mucosal_ulcers": "skin",
    "arthritis": "musculoskeletal",
    "myositis": "musculoskeletal",
    "pleurisy": "lung",
    "pericarditis": "cardiovascular",
    "vasculitis": "cardiovascular",
    "fever": "fever",
    "proteinuria": "kidney",
    "haematuria": "kidney",
    "urinary_casts": "kidney",
    "pyuria": "kidney",
    "seizure": "cns",
    "psychosis": "cns",
    "organic_brain_syndrome": "cns",
    "visual_disturbance": "cns",
    "cranial_nerve_disorder": "cns",
    "lupus_headache": "cns",
    "cva": "cns",
}


def split_score(score: int, low: bool, dna: bool, prot: bool) -> set[str]:
    """Descriptors of a SLEDAI-2K score given the lab-driven ones (the calibration's rule)."""
    present = set()
    if low:
        present.add("low_complement")
    if dna:
        present.add("increased_dna_binding")
    if prot:
        present.add("proteinuria")
    extra = score - 2 * low - 2 * dna - 4 * prot
    if extra < 0:
        raise ValueError("SLEDAI-2K below the score its labs imply")
    renal = 4 * min(3, extra // 4) if prot else 0
    present.update(_RENAL_EXTRA[: renal // 4])
    mask = int(LADDER[extra - renal])
    present.update(k for b, k in enumerate(_LADDER_KEYS) if mask >> b & 1)
    return present


def _score(present: set[str]) -> int:
    return sum(_WEIGHT[k] for k in present)


def _visit_flags(present: set[str], previous: set[str] | None) -> dict:
    """Descriptor booleans plus major_organ_activity and new_activity (Oon et al.)."""
    row = {f"sledai_{k}": (k in present) for k in _WEIGHT}
    row["major_organ_activity"] = any(_GROUP[k] in _MAJOR for k in present)
    row["new_activity"] = pd.NA if previous is None else bool(present - previous)
    return row


# --------------------------------------------------------------------------
# Small exact-moment helpers
# --------------------------------------------------------------------------


def _exact_sample(
    raw: np.ndarray, mean: float, sd: float, step: float, lo: float, hi: float, tol: float
) -> np.ndarray:
    """Shift and scale `raw` to mean/sd, round to `step`, then repair the rounding greedily."""
    x = (raw - raw.mean()) / raw.std(ddof=1) * sd + mean
    x = np.clip(np.round(x / step) * step, lo, hi)
    n = len(x)
    for _ in range(400):
        s1, s2 = x.sum(), (x**2).sum()
        m = s1 / n
        e = max(abs(m - mean), abs(np.sqrt(max(s2 - n * m * m, 0) / (n - 1)) - sd))
        if e <= tol:
            return np.round(x, 6)
        # every single-step change at once: new sums for x_i ± step
        d = np.array([-step, step])[None, :]
        ok = (x[:, None] + d >= lo - 1e-9) & (x[:, None] + d <= hi + 1e-9)
        n1 = s1 + d
        n2 = s2 + 2 * x[:, None] * d + d * d
        mm = n1 / n
        ss = np.sqrt(np.maximum(n2 - n * mm * mm, 0) / (n - 1))
        err = np.where(ok, np.maximum(np.abs(mm - mean), np.abs(ss - sd)), np.inf)
        i, j = np.unravel_index(int(np.argmin(err)), err.shape)
        if err[i, j] >= e - 1e-12:
            break
        x[i] += d[0, j]
    raise RuntimeError("could not reach the target mean and SD")


def _r(x: float, d: int = 2) -> float:
    return float(np.round(x, d))


# --------------------------------------------------------------------------
# csle_belimumab: 26 children (seed paper 000, Wang et al. 2022)
# --------------------------------------------------------------------------

CSLE_SCHEDULE = [0, 4, 12, 24, 52]
# Non-completers (seed: one stopped herself for economic reasons, two switched to
# telitacicept for poor effect, all after >= 8 doses = week 24): weeks of the
# stop and of the last follow-up visit (after the stop, off belimumab).
_NC = (
    {"reason": "stopped by herself (economic)", "sex": "F", "stop": 36, "last": 48},
    {"reason": "switched to telitacicept for poor effect", "sex": "F", "stop": 28, "last": 50},
    {"reason": "switched to telitacicept for poor effect", "sex": "M", "stop": 28, "last": 46},
)
# Their descriptors at weeks 0, 4, 12, 24 and the last visit (hand-written).
_NC_DESC = (
    [{"rash", "fever"}, {"rash"}, {"rash"}, {"rash"}, {"rash"}],
    [
        {
            "proteinuria",
            "haematuria",
            "urinary_casts",
            "increased_dna_binding",
            "thrombocytopenia",
            "leukopenia",
            "fever",
        },
        {"proteinuria", "haematuria", "urinary_casts", "increased_dna_binding"},
        {
            "proteinuria",
            "haematuria",
            "urinary_casts",
            "increased_dna_binding",
            "leukopenia",
            "thrombocytopenia",
        },
        {"proteinuria", "haematuria", "urinary_casts", "pyuria", "increased_dna_binding"},
        {
            "proteinuria",
            "haematuria",
            "urinary_casts",
            "pyuria",
            "increased_dna_binding",
            "thrombocytopenia",
            "leukopenia",
        },
    ],
    [{"increased_dna_binding", "fever"}] + [{"increased_dna_binding"}] * 4,
)
_NC_PGA = ([1.0, 0.5, 0.5, 0.5, 0.5], [3.0, 2.5, 2.5, 3.0, 3.0], [1.0, 1.0, 1.0, 1.0, 1.0])
_NC_PRED = ([10, 10, 7.5, 7.5, 7.5], [50, 45, 40, 45, 50], [15, 12.5, 10, 10, 10])
_NC_PROT = ([0.08, 0.1, 0.07, 0.09, 0.08], [4.8, 3.9, 5.6, 6.2, 6.9], [0.12, 0.1, 0.14, 0.11, 0.13])
_NC_CD19 = (
    [16.2, 14.8, 11.3, 9.6, 13.1],
    [24.5, 22.1, 17.4, 15.8, 21.0],
    [19.7, 18.2, 14.9, 13.5, 15.2],
)
# Table 3 of the seed paper: completer slot, onset week, term, category, severity.
_CSLE_AES = (
    (2, 20, "fungal pneumonia", "infection", "moderate"),
    (9, 9, "upper respiratory tract infection", "infection", "mild"),
    (9, 31, "gastrointestinal infection", "infection", "mild"),
    (15, 14, "limb pain", "musculoskeletal", "mild"),
)
_CSLE_ORGANS = {
    "fever": 6,
    "skin": 11,
    "cns": 2,
    "kidney": 18,
    "lung": 1,
    "blood": 12,
    "cardiovascular": 3,
    "musculoskeletal": 4,
    "gastrointestinal": 1,
}
_CSLE_BIOPSY = ["IV"] * 7 + ["IV+V", "III+V", "III", "III", "V", "V", "I"]
_CSLE_REGIMENS = ["CYC"] * 5 + ["MMF after CYC"] * 5 + ["MMF+TAC"] * 2 + ["TAC"] + ["MMF"] * 13


def _csle_ages(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Onset age, baseline age and disease duration with Table 1's means and SDs.

    Duration (months) is right-skewed; baseline age = onset + duration/12 minus a
    small constant (the paper's duration runs from the first symptoms, a month
    or so before the diagnosis that fixes the age at onset), so the three agree.
    """
    for _ in range(200):
        try:
            onset = _exact_sample(rng.normal(size=n), 10.3, 2.4, 0.1, 5.0, 15.5, 0.02)
            dur = _exact_sample(rng.gamma(1.3, 1.0, n), 41.6, 37.4, 1.0, 3.0, 150.0, 0.02)
        except RuntimeError:
            continue

        # pair late onsets with short durations (inclusion ended at 18 years): swaps
        def bad(p, onset=onset, dur=dur):
            base = onset + dur[p] / 12 - 0.07
            return (
                abs(base.std(ddof=1) - 2.7)
                + 10 * np.maximum(0, base - 17.9).sum()
                + 10 * np.maximum(0, 6.0 - base).sum()
            )

        perm = np.argsort(np.argsort(-onset))  # start fully anti-correlated
        perm = np.argsort(dur)[perm]
        cur = bad(perm)
        for _ in range(3000):
            i, j = rng.choice(n, 2, replace=False)
            perm[[i, j]] = perm[[j, i]]
            new = bad(perm)
            if new <= cur:
                cur = new
            else:
                perm[[i, j]] = perm[[j, i]]
        best = (cur, perm)
        if best[0] > 0.03:
            continue
        dur = dur[best[1]]
        base = np.round(onset + dur / 12 - 0.07, 1)
        if abs(base.mean() - 13.7) <= 0.02 and abs(base.std(ddof=1) - 2.7) <= 0.03:
            return onset, base, dur
    raise RuntimeError("ages not calibrated")


def _height_weight(age: float, sex: str, rng: np.random.Generator) -> tuple[float, float]:
    """Plausible height (cm) and weight (kg) for a child on glucocorticoids."""
    if sex == "F":
        h = 110 + 6.0 * min(age - 5, 7) + 1.5 * max(0.0, min(age - 12, 4))
    else:
        h = 110 + 5.8 * min(age - 5, 8) + 4.5 * max(0.0, min(age - 13, 4))
    h += rng.normal(0, 4)
    bmi = 16 + 0.45 * (age - 6) + abs(rng.normal(0, 2.0))  # some cushingoid gain
    return _r(h, 1), _r(bmi * (h / 100) ** 2, 1)


def _csle_tables(core: dict, rng: np.random.Generator) -> dict[str, pd.DataFrame]:
    """Patients, visits and adverse events of csle_belimumab from the calibrated core."""
    n = core["sledai"].shape[0]
    c3, c4, cd19, prot = core["c3"], core["c4"], core["cd19"], core["prot"]
    ds, S, G, P = core["ds"].astype(bool), core["sledai"], core["pga"], core["pred"]
    low = (c3 < C3_LLN) | (c4 < C4_LLN)
    protb = prot > PROTEINURIA_G
    present = [
        [split_score(int(S[i, k]), low[i, k], ds[i, k], protb[i, k]) for k in range(5)]
        for i in range(n)
    ]

    # --- last follow-up visit of the completers (beyond week 52) -------------
    nc_months = np.array([d["last"] for d in _NC]) * 12 / 52
    comp_months_target = None
    total_mean, total_sd = 19.6, 6.4
    # completers' weeks: all 26 follow-up months reproduce Table 1 (19.6 ± 6.4)
    s_nc = nc_months.sum()
    m_c = (26 * total_mean - s_nc) / n
    ss = 25 * total_sd**2 + 26 * total_mean**2 - (nc_months**2).sum()
    sd_c = np.sqrt((ss - n * m_c**2) / (n - 1))
    for _ in range(100):
        raw = rng.beta(1.6, 2.2, n)
        try:
            months = _exact_sample(raw, m_c, sd_c, 12 / 52, 56 * 12 / 52, 134 * 12 / 52, 0.004)
        except RuntimeError:
            continue
        comp_months_target = months
        break
    last_week = np.rint(comp_months_target * 52 / 12).astype(int)
    rem52 = (S[:, 4] == 0) & (G[:, 4] < 0.5) & (P[:, 4] < 5)
    lldas52 = core["lldas52"]
    order = sorted(
        range(n), key=lambda i: (not rem52[i], not lldas52[i], S[i, 4], G[i, 4], P[i, 4], i)
    )
    cls = {}
    for r, i in enumerate(order):
        cls[i] = "rem" if r < 10 else "lldas" if r < 16 else "low_gc" if r < 17 else "active"
    rem_ids = [i for i in order if cls[i] == "rem"]
    ll_ids = [i for i in order if cls[i] == "lldas"]
    pred_last = {}
    for j, i in enumerate(rem_ids):
        pred_last[i] = 0.0 if j < 8 else 2.5
    for j, i in enumerate(ll_ids):
        pred_last[i] = 0.0 if j < 3 else 2.5
    last = {}
    for i in range(n):
        p52 = present[i][4]
        lab = {
            "c3": c3[i, 4],
            "c4": c4[i, 4],
            "prot": prot[i, 4],
            "ds": bool(ds[i, 4]),
            "cd19": cd19[i, 4],
        }
        if cls[i] == "rem":
            pr: set[str] = set()
            pga = 0.0 if rng.random() < 0.7 else 0.2
            pred = pred_last[i]
        elif cls[i] == "lldas":
            keep = [
                k for k in ("low_complement", "increased_dna_binding", "leukopenia") if k in p52
            ]
            pr = {keep[0]} if keep else set()
            pga = 0.5 if not pr else float(rng.choice([0.3, 0.5]))
            pred = pred_last[i]
        elif cls[i] == "low_gc":
            pr, pga, pred = set(p52), max(1.0, float(G[i, 4])), 2.5
        else:
            pr, pga = set(p52), float(G[i, 4])
            pred = max(7.5, float(P[i, 4]) - 2.5)
        # labs follow the descriptors kept
        lo = "low_complement" in pr
        if lo:
            lab["c3"] = min(lab["c3"], 0.88) if lab["c3"] < C3_LLN else lab["c3"]
            lab["c4"] = min(lab["c4"], 0.09) if lab["c3"] >= C3_LLN else lab["c4"]
        else:
            lab["c3"] = max(lab["c3"], _r(rng.uniform(0.92, 1.15)))
            lab["c4"] = max(lab["c4"], _r(rng.uniform(0.12, 0.24)))
        lab["ds"] = "increased_dna_binding" in pr
        if "proteinuria" in pr:
            lab["prot"] = max(0.52, _r(lab["prot"] * rng.uniform(0.8, 1.1)))
        else:
            lab["prot"] = min(lab["prot"], _r(rng.uniform(0.05, 0.2)))
        lab["cd19"] = _r(max(1.0, lab["cd19"] * rng.uniform(0.8, 1.2)))
        last[i] = dict(week=int(last_week[i]), present=pr, pga=pga, pred=pred, **lab)

    # --- non-completers' baseline complement: Table 1 (n = 26) means and SDs ----
    def nc_triplet(col: np.ndarray, mean: float, sd: float, lo: float, hi: float, step: float,
                   spread: float):
        grid = np.round(np.arange(lo, hi + step / 2, step), 2)
        a, b, c = np.meshgrid(grid, grid, grid, indexing="ij")
        tri = np.stack([a.ravel(), b.ravel(), c.ravel()], axis=1)
        tri = tri[(tri[:, 0] <= tri[:, 1]) & (tri[:, 1] <= tri[:, 2])]
        s1 = col.sum() + tri.sum(axis=1)
        s2 = (col**2).sum() + (tri**2).sum(axis=1)
        m = s1 / 26
        v = np.sqrt((s2 - 26 * m**2) / 25)
        e = np.maximum(np.abs(m - mean), np.abs(v - sd))
        # Within a 0.02 margin of the published mean and SD (the tolerance is 0.05),
        # prefer three patients who differ as real patients do (range near `spread`)
        # over three near-identical values.
        ok = e <= 0.02
        if ok.any():
            score = np.where(ok, np.abs((tri[:, 2] - tri[:, 0]) - spread) + e, np.inf)
            return tri[int(np.argmin(score))]
        return tri[int(np.argmin(e))]

    nc_c3 = nc_triplet(c3[:, 0], 0.70, 0.40, 0.90, 1.60, 0.01, spread=0.35)
    nc_c4 = nc_triplet(c4[:, 0], 0.14, 0.08, 0.10, 0.40, 0.01, spread=0.10)
    # NC2 (the severe one) gets the lowest values
    nc_c3, nc_c4 = nc_c3[[1, 0, 2]], nc_c4[[1, 0, 2]]

    # --- patient attributes ----------------------------------------------------
    n_all = n + 3
    onset, base_age, dur = _csle_ages(rng, n_all)
    sex = ["F"] * n_all
    males = rng.choice(n, 4, replace=False)
    for i in males:
        sex[i] = "M"
    for j, d in enumerate(_NC):
        sex[n + j] = d["sex"]
    # descriptors ever present -> organ involvement (history includes activity seen here)
    all_present: list[list[set[str]]] = [present[i] + [last[i]["present"]] for i in range(n)]
    all_present += [list(d) for d in _NC_DESC]
    need = {o: set() for o in ORGANS}
    for i, visits_p in enumerate(all_present):
        for p in visits_p:
            for k in p:
                if k in _ORGAN_OF:
                    need[_ORGAN_OF[k]].add(i)
    organs = {o: set(v) for o, v in need.items()}
    for o, target in _CSLE_ORGANS.items():
        if len(organs[o]) > target:
            raise RuntimeError(
                f"organ {o}: {len(organs[o])} patients need it, Table 1 has {target}"
            )
        pool = [i for i in range(n_all) if i not in organs[o]]
        organs[o].update(int(i) for i in rng.choice(pool, target - len(organs[o]), replace=False))
    kidney = sorted(organs["kidney"])
    base_prot = np.r_[prot[:, 0], [v[0] for v in _NC_PROT]]
    # biopsy: the 14 with the most baseline proteinuria among the kidney patients,
    # proliferative classes to the heaviest, class I to the lightest
    by_prot = sorted(kidney, key=lambda i: -base_prot[i])
    biopsied = by_prot[:13] + [by_prot[-1]]
    biopsy = {i: c for i, c in zip(biopsied, _CSLE_BIOPSY, strict=True)}
    regimen = {}
    order_reg = [i for i in by_prot if biopsy.get(i, "").startswith(("IV", "III"))]
    rest = [i for i in range(n_all) if i not in order_reg]
    cyc = order_reg[:5]
    after = order_reg[5:10]
    for i in cyc:
        regimen[i] = "CYC"
    for i in after:
        regimen[i] = "MMF after CYC"
    tac_pool = [i for i in biopsied if biopsy[i] in ("V", "III+V", "IV+V") and i not in regimen]
    for i in tac_pool[:2]:
        regimen[i] = "MMF+TAC"
    tac_left = [i for i in tac_pool[2:]] + [i for i in rest if i not in regimen]
    regimen[tac_left[0]] = "TAC"
    for i in range(n_all):
        regimen.setdefault(i, "MMF")
    no_am = int(rng.choice(n))
    ds0 = np.r_[ds[:, 0], [False, True, True]]
    ana_neg = int(rng.choice([i for i in range(n) if not ds0[i]]))

    ids = [f"CSLE-{j + 1:03d}" for j in rng.permutation(n_all)]
    cutoff = dt.date(2022, 8, 31)
    weeks_last = [last[i]["week"] for i in range(n)] + [d["last"] for d in _NC]
    patients, visits, aes = [], [], []
    hw = [_height_weight(float(base_age[i]), sex[i], rng) for i in range(n_all)]
    for i in range(n_all):
        start = cutoff - dt.timedelta(weeks=int(weeks_last[i]) + int(rng.integers(0, 4)))
        start -= dt.timedelta(days=start.weekday())
        nc = _NC[i - n] if i >= n else None
        patients.append(
            {
                "patient_id": ids[i],
                "cohort": CSLE,
                "sex": sex[i],
                "age_at_onset_years": float(onset[i]),
                "age_at_baseline_years": float(base_age[i]),
                "disease_duration_months": float(dur[i]),
                "treatment_start_date": pd.Timestamp(start),
                "biopsy_class": biopsy.get(i),
                "immunosuppressant": regimen[i],
                "antimalarial": i != no_am,
                **{f"organ_{o}": i in organs[o] for o in ORGANS},
                "ana_positive": i != ana_neg,
                "height_cm": hw[i][0],
                "weight_kg": hw[i][1],
                "discontinued_week": None if nc is None else nc["stop"],
                "discontinuation_reason": None if nc is None else nc["reason"],
            }
        )
        # --- visits ---
        if i < n:
            wk = [*CSLE_SCHEDULE, last[i]["week"]]
            rows = [
                {
                    "c3": c3[i, k],
                    "c4": c4[i, k],
                    "prot": prot[i, k],
                    "cd19": cd19[i, k],
                    "ds": bool(ds[i, k]),
                    "present": present[i][k],
                    "pga": float(G[i, k]),
                    "pred": float(P[i, k]),
                }
                for k in range(5)
            ]
            rows.append(last[i])
        else:
            j = i - n
            wk = [*CSLE_SCHEDULE[:4], _NC[j]["last"]]
            rows = []
            for k in range(5):
                pr = _NC_DESC[j][k]
                rows.append(
                    {
                        "c3": nc_c3[j]
                        if k == 0
                        else max(C3_LLN, _r(nc_c3[j] * (1 + 0.04 * np.sin(k)))),
                        "c4": nc_c4[j]
                        if k == 0
                        else max(C4_LLN, _r(nc_c4[j] * (1 + 0.06 * np.cos(k)))),
                        "prot": _NC_PROT[j][k],
                        "cd19": _NC_CD19[j][k],
                        "ds": "increased_dna_binding" in pr,
                        "present": pr,
                        "pga": _NC_PGA[j][k],
                        "pred": float(_NC_PRED[j][k]),
                    }
                )
        prev = None
        for k, (w, v) in enumerate(zip(wk, rows, strict=True)):
            pr = v["present"]
            score = _score(pr)
            growth = w / 52
            h = hw[i][0] + (3.0 if base_age[i] < 14 else 1.0) * growth
            wt = hw[i][1] * (1 + 0.03 * growth)
            creat = 28 + 2.4 * (base_age[i] + growth) + rng.normal(0, 3)
            if i == n + 1:  # NC2: chronic kidney failure developing
                creat = 150 + 12 * k
            dsv = bool(v["ds"])
            titre = rng.lognormal(np.log(150), 0.6) if dsv else rng.uniform(2, 25)
            visits.append(
                {
                    "patient_id": ids[i],
                    "visit_week": int(w),
                    "visit_date": pd.Timestamp(start + dt.timedelta(weeks=int(w))),
                    "c3_g_l": _r(v["c3"]),
                    "c4_g_l": _r(v["c4"]),
                    "urine_protein_g_24h": _r(v["prot"]),
                    "upcr_g_g": None,
                    "cd19_pct": _r(v["cd19"]),
                    "anti_dsdna_positive": dsv,
                    "anti_dsdna_iu_ml": _r(max(30.0, titre) if dsv else min(titre, 29.0), 1),
                    "sledai2k": score,
                    "pga": float(v["pga"]),
                    "prednisone_mg_day": float(v["pred"]),
                    "albumin_g_l": _r(
                        float(np.clip(43 - 3.2 * min(v["prot"], 6) + rng.normal(0, 1.5), 18, 50)), 1
                    ),
                    "creatinine_umol_l": _r(creat, 0),
                    "egfr_ml_min": None,
                    "weight_kg": _r(wt, 1),
                    "height_cm": _r(h, 1),
                    "haemolytic_anaemia": False,
                    "gi_activity": False,
                    **_visit_flags(pr, prev),
                }
            )
            prev = pr
    for slot, week, term, cat, sev in _CSLE_AES:
        aes.append(
            {
                "patient_id": ids[slot],
                "onset_week": week,
                "term": term,
                "category": cat,
                "severity": sev,
                "serious": False,
            }
        )
    return _frames(patients, visits, aes)


def _frames(patients: list[dict], visits: list[dict], aes: list[dict]) -> dict[str, pd.DataFrame]:
    """DataFrames with exactly the contract's columns, in schema order and dtypes."""
    out = {}
    for name, rows in (("patients", patients), ("visits", visits), ("adverse_events", aes)):
        cols = schema.columns(name)
        df = pd.DataFrame(rows)
        data = {}
        for c in cols:
            v = df[c.name] if c.name in df.columns else pd.Series([None] * len(df))
            data[c.name] = _typed(v.reset_index(drop=True), c.dtype)
        out[name] = pd.DataFrame(data)
    return out


def _typed(v: pd.Series, dtype: str) -> pd.Series:
    if dtype == schema.TEXT:
        return v.astype("string")
    if dtype == schema.NUMBER:
        return pd.to_numeric(v, errors="coerce").astype("float64")
    if dtype == schema.INTEGER:
        return pd.to_numeric(v, errors="coerce").astype("Int64")
    if dtype == schema.BOOL:
        return v.astype("boolean")
    return pd.to_datetime(v)


# --------------------------------------------------------------------------
# ln_belimumab: 10 adults with active lupus nephritis (seed document 002)
# --------------------------------------------------------------------------

LN_SCHEDULE = [0, 4, 8, 12, 16, 20]
# Treatment months: 7 efficacy patients (4-9 months, median 7) and 3 safety-only (<= 3).
_LN_MONTHS = (4, 5, 6, 7, 8, 9, 9, 1, 2, 3)
# Response at the last visit among the 7 (KDIGO): index 5 complete (first at month 8),
# 2, 3 and 6 partial, 0, 1 and 4 none.
_LN_COMPLETE, _LN_PARTIAL = 5, (2, 3, 6)
_LN_UPCR = {
    "m4": {"n": 7, "base": (5.49, 6.54), "follow": (3.61, 6.04), "p": 0.025},
    "m5": {"n": 6, "base": (6.18, 6.88), "follow": (3.03, 4.88), "p": 0.046},
}


def _paired_t_p(x: np.ndarray, y: np.ndarray) -> float:
    d = y - x
    t = d.mean() / (d.std(ddof=1) / np.sqrt(len(d)))
    return float(2 * stats.t.sf(abs(t), len(d) - 1))


def _ln_upcr_errors(x7: np.ndarray, y4: np.ndarray, y5: np.ndarray) -> np.ndarray:
    """Normalised errors of the published UPCR comparisons (|e| <= 1 within tolerance)."""
    x6 = x7[1:]
    e = []
    for xb, yf, t in ((x7, y4, _LN_UPCR["m4"]), (x6, y5, _LN_UPCR["m5"])):
        e += [
            (xb.mean() - t["base"][0]) / 0.005,
            (xb.std(ddof=1) - t["base"][1]) / 0.005,
            (yf.mean() - t["follow"][0]) / 0.005,
            (yf.std(ddof=1) - t["follow"][1]) / 0.005,
            (_paired_t_p(xb, yf) - t["p"]) / 0.003,
        ]
    return np.array(e)


def _ln_upcr(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Baseline (7), month-4 (7) and month-5 (6) UPCR reproducing the thesis's paired tests.

    Patient 0 is the one treated 4 months: the month-5 comparison has the other
    six, which is why its baseline mean and SD differ from month 4's.
    """
    t4, t5 = _LN_UPCR["m4"], _LN_UPCR["m5"]

    def follow(x, mean, sd, p, raw):
        n = len(x)
        tcrit = stats.t.isf(p / 2, n - 1)
        md = mean - x.mean()
        sdd = abs(md) * np.sqrt(n) / tcrit
        cov = (x.std(ddof=1) ** 2 + sd**2 - sdd**2) / 2
        zx = (x - x.mean()) / x.std(ddof=1)
        r = raw - raw.mean()
        r = r - (r @ zx) / (zx @ zx) * zx
        r = r / r.std(ddof=1)
        a = cov / x.std(ddof=1)
        b = np.sqrt(max(sd**2 - a**2, 0.0))
        return mean + a * zx + b * r

    for _ in range(2000):
        try:
            x6 = _exact_sample(
                rng.lognormal(0.9, 1.1, 6), t5["base"][0], t5["base"][1], 0.01, 0.6, 30, 0.003
            )
        except RuntimeError:
            continue
        x1 = _r(7 * t4["base"][0] - x6.sum())
        x7 = np.r_[x1, x6]
        ratio = rng.uniform(0.3, 0.9, 7)
        y4 = np.round(follow(x7, *t4["follow"], t4["p"], x7 * ratio), 2)
        y5 = np.round(follow(x6, *t5["follow"], t5["p"], y4[1:] * rng.uniform(0.6, 1.0, 6)), 2)
        if min(y4.min(), y5.min()) < 0.05 or x1 < 0.6:
            continue
        # patient 0 (4 months) and 1 (5 months) are non-responders at their last visit
        if y4[0] <= max(0.5 * x1, 0.55) or y5[0] <= max(0.5 * x6[0], 0.55) or y5[0] >= x6[0]:
            continue
        for _ in range(200):  # greedy repair of the 2-decimal rounding
            e = _ln_upcr_errors(x7, y4, y5)
            if np.abs(e).max() <= 0.8:
                return x7, y4, y5
            best = (np.abs(e).max(), None)
            for arr in (x7, y4, y5):
                for i in range(len(arr)):
                    for d in (-0.01, 0.01):
                        arr[i] += d
                        m = np.abs(_ln_upcr_errors(x7, y4, y5)).max()
                        arr[i] -= d
                        if m < best[0] - 1e-12:
                            best = (m, (arr, i, d))
            if best[1] is None:
                break
            arr, i, d = best[1]
            arr[i] = _r(arr[i] + d)
    raise RuntimeError("LN UPCR calibration failed")


def _ckd_epi_2021(scr_umol: float, age: float, sex: str) -> float:
    """eGFR (mL/min/1.73 m²), CKD-EPI 2021 race-free (Inker et al. 2021)."""
    scr = scr_umol / 88.4
    k, a = (0.7, -0.241) if sex == "F" else (0.9, -0.302)
    return (
        142
        * min(scr / k, 1) ** a
        * max(scr / k, 1) ** -1.200
        * 0.9938**age
        * (1.012 if sex == "F" else 1.0)
    )


def _ln_tables(rng: np.random.Generator) -> dict[str, pd.DataFrame]:
    """Patients, visits and adverse events of ln_belimumab (10 adults, monthly visits)."""
    for _ in range(50):
        x7, y4, y5 = _ln_upcr(rng)
        rest = sorted(range(2, 7), key=lambda i: -x7[i])
        # the complete responder stays >= 0.5 g/g until month 8
        done = [i for i in rest[1:] if min(y4[i], y5[i - 1]) >= 0.55]
        if not done:
            continue
        rest.remove(done[-1])
        rest.append(done[-1])
        if x7[rest[3]] >= 1.3:
            break
    else:
        raise RuntimeError("LN roles not assignable")
    # roles of the five patients treated > 5 months, by baseline UPCR
    a, b, c, d, e = rest
    months = {0: 4, 1: 5, a: 8, b: 7, c: 9, d: 6, e: 9, 7: 1, 8: 2, 9: 3}
    role = {
        0: "none",
        1: "none",
        a: "none",
        b: "partial",
        c: "partial",
        d: "partial",
        e: "complete",
    }
    n = 10
    base_upcr = np.r_[
        x7, _r(rng.uniform(1.2, 4.5)), _r(rng.uniform(1.2, 4.5)), _r(rng.uniform(1.2, 4.5))
    ]
    upcr: dict[int, dict[int, float]] = {}
    for i in range(n):
        x = base_upcr[i]
        u = {0: x}
        if i < 7:
            for m in (1, 2, 3):
                u[m] = _r(x * (y4[i] / x) ** (m / 4) * rng.uniform(0.92, 1.08))
                if role.get(i) == "complete":
                    u[m] = max(u[m], 0.58)
            u[4] = y4[i]
            if i >= 1:
                u[5] = y5[i - 1]
            last_m = months[i]
            if role.get(i) == "partial":
                goal = max(0.55, min(0.45 * x, 2.8))
            elif role.get(i) == "complete":
                goal = 0.35
            else:
                goal = max(u[max(u)], 0.6 * x)
            for m in range(6, last_m + 1):
                frac = (m - 5) / (last_m - 5)
                u[m] = _r(u[5] * (goal / u[5]) ** frac)
            if role.get(i) == "complete":
                u[7] = max(u[7], 0.62)
                u[8], u[9] = 0.42, 0.35
        else:
            for m in range(1, months[i] + 1):
                u[m] = _r(x * rng.uniform(0.86, 1.0) ** m)  # no response within 3 months
        upcr[i] = u
    sex = ["F"] * n
    sex[8] = "M"
    age = np.round(rng.uniform(22, 48, n), 1)
    dur = np.round(rng.gamma(1.5, 24, n)).clip(3, 180)
    biopsy = ["IV", "IV", "III+V", "IV+V", "V", "III", "IV", "IV+V", "III", "V"]
    regimen = ["MMF", "CYC", "MMF", "MMF+TAC", "TAC", "MMF", "CYC", "MMF+TAC", "MMF", "MMF"]
    rash = {1, 4, 8}
    arthritis = {3}
    leuko = {6}
    ds_base = np.array([True] * 8 + [False, True])
    rng.shuffle(ds_base)
    cutoff = dt.date(2021, 4, 30)
    patients, visits, aes = [], [], []
    for i in range(n):
        pid = f"LN-{i + 1:03d}"
        start = cutoff - dt.timedelta(weeks=4 * months[i] + int(rng.integers(0, 3)))
        start -= dt.timedelta(days=start.weekday())
        h = rng.uniform(152, 168) if sex[i] == "F" else rng.uniform(166, 180)
        w = rng.uniform(48, 68) if sex[i] == "F" else rng.uniform(62, 80)
        patients.append(
            {
                "patient_id": pid,
                "cohort": LN,
                "sex": sex[i],
                "age_at_onset_years": _r(age[i] - dur[i] / 12, 1),
                "age_at_baseline_years": float(age[i]),
                "disease_duration_months": float(dur[i]),
                "treatment_start_date": pd.Timestamp(start),
                "biopsy_class": biopsy[i],
                "immunosuppressant": regimen[i],
                "antimalarial": i != 4,
                **{
                    f"organ_{o}": (
                        o == "kidney"
                        or (o == "skin" and i in rash)
                        or (o == "musculoskeletal" and i in arthritis)
                        or (o == "blood" and i in leuko)
                    )
                    for o in ORGANS
                },
                "ana_positive": True,
                "weight_kg": _r(w, 1),
                "height_cm": _r(h, 1),
                "discontinued_week": None,
                "discontinuation_reason": None,
            }
        )
        c3_0, c4_0 = rng.uniform(0.42, 0.8), rng.uniform(0.04, 0.12)
        alb0 = float(np.clip(33 - 1.1 * min(base_upcr[i], 12) + rng.normal(0, 1.5), 18, 40))
        titre0 = rng.uniform(90, 420) if ds_base[i] else rng.uniform(8, 25)
        creat0 = rng.uniform(58, 105)
        pga0 = float(rng.choice([1.5, 2.0, 2.0, 2.5]))
        pred0 = float(rng.choice([30, 40, 40, 50]))
        prev = None
        base_set: set[str] = set()
        for m in range(months[i] + 1):
            u = upcr[i][m]
            c3 = _r(min(1.25, c3_0 + 0.045 * m + rng.normal(0, 0.02)))
            c4 = _r(min(0.3, c4_0 + 0.012 * m + rng.normal(0, 0.005)))
            titre = titre0 * 0.8**m * rng.uniform(0.9, 1.1)
            pr = set()
            if u > PROTEINURIA_G:
                pr.add("proteinuria")
            if m == 0 or (u > 1.0 and m <= 3):
                pr.add("haematuria")
            if m == 0 and u > 3:
                pr.add("urinary_casts")
            if c3 < C3_LLN or c4 < C4_LLN:
                pr.add("low_complement")
            if titre >= ANTI_DSDNA_POSITIVE_IU:
                pr.add("increased_dna_binding")
            if i in rash and m <= 1:
                pr.add("rash")
            if i in arthritis and m == 0:
                pr.add("arthritis")
            if i in leuko and m <= 2:
                pr.add("leukopenia")
            if m == 0:
                base_set = pr
            pr &= base_set  # improving disease: nothing appears that baseline lacked
            creat = creat0 * (
                1
                + (
                    rng.uniform(-0.05, 0.0)
                    if role.get(i) in ("partial", "complete")
                    else rng.uniform(-0.04, 0.06)
                )
            )
            agev = age[i] + 4 * m / 52
            visits.append(
                {
                    "patient_id": pid,
                    "visit_week": 4 * m,
                    "visit_date": pd.Timestamp(start + dt.timedelta(weeks=4 * m)),
                    "c3_g_l": c3,
                    "c4_g_l": c4,
                    "urine_protein_g_24h": None,
                    "upcr_g_g": u,
                    "cd19_pct": None,
                    "anti_dsdna_positive": "increased_dna_binding" in pr,
                    "anti_dsdna_iu_ml": _r(
                        titre
                        if "increased_dna_binding" in pr
                        else min(titre, ANTI_DSDNA_POSITIVE_IU - 1),
                        1,
                    ),
                    "sledai2k": _score(pr),
                    "pga": max(0.5, pga0 - 0.5 * (m // 2)),
                    "prednisone_mg_day": max(7.5, pred0 - 7.5 * m),
                    "albumin_g_l": _r(min(44.0, alb0 + 1.4 * m + rng.normal(0, 0.8)), 1),
                    "creatinine_umol_l": _r(creat, 0),
                    "egfr_ml_min": _r(_ckd_epi_2021(_r(creat, 0), agev, sex[i]), 1),
                    "weight_kg": _r(w, 1),
                    "height_cm": _r(h, 1),
                    "haemolytic_anaemia": False,
                    "gi_activity": False,
                    **_visit_flags(pr, prev),
                }
            )
            prev = pr
    aes.append(
        {
            "patient_id": "LN-008",
            "onset_week": 3,
            "term": "upper respiratory tract infection",
            "category": "infection",
            "severity": "mild",
            "serious": False,
        }
    )
    aes.append(
        {
            "patient_id": "LN-004",
            "onset_week": 0,
            "term": "infusion reaction",
            "category": "infusion_reaction",
            "severity": "mild",
            "serious": False,
        }
    )
    return _frames(patients, visits, aes)


# --------------------------------------------------------------------------
# --scale N: a large registry-like cohort for benchmarks (vectorised per chunk)
# --------------------------------------------------------------------------

SCALE = "scale_registry"
# Children follow the paediatric schedule, adults the monthly one; the cohort's
# schedule is their union (the final week, 52, decides `completer`).
SCALE_SCHEDULE = [0, 4, 8, 12, 16, 20, 24, 36, 52]
_CHILD_WEEKS = {0, 4, 12, 24, 52}
_CNS_KEYS = (
    "seizure",
    "psychosis",
    "organic_brain_syndrome",
    "visual_disturbance",
    "cranial_nerve_disorder",
    "lupus_headache",
    "cva",
)
_ORGAN_RATE = {
    "fever": 0.25,
    "skin": 0.45,
    "cns": 0.08,
    "kidney": 0.55,
    "lung": 0.05,
    "blood": 0.45,
    "cardiovascular": 0.1,
    "musculoskeletal": 0.35,
    "gastrointestinal": 0.04,
}
_AE_TERMS = (
    ("upper respiratory tract infection", "infection", 0.35),
    ("urinary tract infection", "infection", 0.15),
    ("herpes zoster", "infection", 0.05),
    ("infusion reaction", "infusion_reaction", 0.12),
    ("allergic reaction", "allergic_reaction", 0.05),
    ("leukopenia", "leukopenia", 0.06),
    ("nausea", "gastrointestinal", 0.1),
    ("headache", "nervous_system", 0.07),
    ("depression", "psychiatric", 0.02),
    ("arthralgia", "musculoskeletal", 0.03),
)


def scale_tables(
    n: int, seed: int = DEFAULT_SEED, chunk: int = 20_000
) -> Iterator[dict[str, pd.DataFrame]]:
    """Yield contract tables for n synthetic patients, `chunk` patients at a time."""
    if n < 1:
        raise ValueError("n must be at least 1")
    start = 0
    while start < n:
        m = min(chunk, n - start)
        rng = np.random.default_rng([seed, start])
        yield _scale_chunk(rng, start, m)
        start += m


def _scale_chunk(rng: np.random.Generator, first: int, m: int) -> dict[str, pd.DataFrame]:
    ids = np.array([f"SR-{first + i + 1:07d}" for i in range(m)], dtype=object)
    child = rng.random(m) < 0.35
    age = np.round(np.where(child, rng.uniform(6, 17.9, m), rng.uniform(18, 68, m)), 1)
    female = rng.random(m) < 0.88
    dur = np.round(np.minimum(rng.gamma(1.3, 30, m), (age - 4) * 12).clip(1, None))
    onset = np.round(age - dur / 12, 1)
    organ = {o: rng.random(m) < r for o, r in _ORGAN_RATE.items()}
    organ["kidney"] |= child & (rng.random(m) < 0.3)
    kidney = organ["kidney"]
    biopsied = kidney & (rng.random(m) < 0.6)
    cls = rng.choice(
        np.array(["II", "III", "IV", "V", "III+V", "IV+V", "I", "VI"]),
        m,
        p=[0.08, 0.2, 0.38, 0.16, 0.06, 0.08, 0.02, 0.02],
    )
    regimen = rng.choice(
        np.array(["MMF", "CYC", "MMF after CYC", "TAC", "MMF+TAC", "AZA", "none"]),
        m,
        p=[0.42, 0.1, 0.1, 0.06, 0.07, 0.15, 0.1],
    )
    # height (cm) and weight (kg) from age and sex (rough growth curves, adult plateau)
    a = np.minimum(age, 18)
    height = np.where(
        female,
        110 + 6.0 * np.minimum(a - 5, 7) + 1.5 * np.clip(a - 12, 0, 4),
        110 + 5.8 * np.minimum(a - 5, 8) + 4.5 * np.clip(a - 13, 0, 4),
    )
    height = np.round(height + rng.normal(0, 5, m), 1)
    bmi = np.where(child, 16 + 0.45 * (age - 6), 23) + np.abs(rng.normal(0, 2.5, m))
    weight = np.round(bmi * (height / 100) ** 2, 1)
    start_day = rng.integers(0, 9 * 365, m)
    start = np.datetime64("2014-01-06") + start_day.astype("timedelta64[D]")

    # --- visit grid: scheduled weeks by age group, dropouts, missed visits, extension
    sched = np.array(SCALE_SCHEDULE)
    attend = np.ones((m, len(sched) + 1), dtype=bool)
    child_cols = np.isin(sched, sorted(_CHILD_WEEKS))
    attend[:, :-1] &= np.where(child[:, None], child_cols[None, :], True)
    drop = rng.random(m) < 0.12
    drop_at = rng.integers(3, len(sched), m)  # index of the first scheduled visit missed
    cols = np.arange(len(sched))
    attend[:, :-1] &= ~(drop[:, None] & (cols[None, :] >= drop_at[:, None]))
    miss = rng.random((m, len(sched))) < 0.05
    miss[:, 0] = False
    attend[:, :-1] &= ~miss
    extra_week = 52 + rng.integers(8, 90, m)
    attend[:, -1] = ~drop & (rng.random(m) < 0.6)
    week_grid = np.concatenate([np.broadcast_to(sched, (m, len(sched))), extra_week[:, None]], 1)
    pi, slot = np.nonzero(attend)
    week = week_grid[pi, slot]
    disc_week = np.where(drop, sched[np.clip(drop_at, 0, len(sched) - 1)], -1)
    nv = len(pi)
    t = week / 52.0

    # --- latent activity per patient, decaying with a patient-specific rate
    a0 = rng.uniform(0.3, 1.0, m)
    rate = rng.gamma(2.0, 0.9, m)  # some barely respond
    act = a0[pi] * np.exp(-rate[pi] * t) + np.abs(rng.normal(0, 0.06, nv))
    c3 = np.round(
        np.clip(
            1.18 - 0.75 * act * rng.uniform(0.6, 1.3, m)[pi] + rng.normal(0, 0.08, nv), 0.15, 2.2
        ),
        2,
    )
    c4 = np.round(
        np.clip(
            0.26 - 0.2 * act * rng.uniform(0.5, 1.3, m)[pi] + rng.normal(0, 0.02, nv), 0.02, 0.6
        ),
        2,
    )
    p0 = np.where(kidney, rng.lognormal(0.2, 0.9, m), 0.0)
    prot = np.where(
        kidney[pi], p0[pi] * np.exp(-rate[pi] * 0.8 * t) * rng.uniform(0.7, 1.3, nv), 0
    ) + rng.uniform(0.03, 0.18, nv)
    prot = np.round(np.clip(prot, 0.02, 20), 2)
    pos0 = rng.random(m) < 0.65
    titre0 = np.where(pos0, rng.lognormal(np.log(160), 0.6, m), rng.uniform(2, 25, m))
    titre = np.round(
        titre0[pi] * np.exp(-rng.uniform(0.2, 1.2, m)[pi] * t) * rng.uniform(0.85, 1.15, nv), 1
    )
    dsdna = titre >= ANTI_DSDNA_POSITIVE_IU

    u = rng.random((nv, 12))
    d = {k: np.zeros(nv, dtype=bool) for k in _WEIGHT}
    d["low_complement"] = (c3 < C3_LLN) | (c4 < C4_LLN)
    d["increased_dna_binding"] = dsdna
    d["proteinuria"] = prot > PROTEINURIA_G
    kv = kidney[pi]
    d["haematuria"] = kv & (prot > 1.0) & (u[:, 0] < 0.6)
    d["urinary_casts"] = kv & (prot > 2.0) & (u[:, 1] < 0.4)
    d["pyuria"] = kv & (prot > 1.0) & (u[:, 2] < 0.2)
    for key, org, p in (
        ("rash", "skin", 0.7),
        ("alopecia", "skin", 0.3),
        ("mucosal_ulcers", "skin", 0.25),
        ("arthritis", "musculoskeletal", 0.7),
        ("myositis", "musculoskeletal", 0.05),
        ("pleurisy", "lung", 0.4),
        ("pericarditis", "cardiovascular", 0.3),
        ("vasculitis", "cardiovascular", 0.1),
        ("fever", "fever", 0.3),
        ("thrombocytopenia", "blood", 0.35),
        ("leukopenia", "blood", 0.5),
    ):
        d[key] = organ[org][pi] & (rng.random(nv) < p * act)
    cns = organ["cns"][pi] & (u[:, 3] < 0.2 * act)
    which = rng.integers(0, len(_CNS_KEYS), m)[pi]
    for j, key in enumerate(_CNS_KEYS):
        d[key] = cns & (which == j)
    sledai = np.zeros(nv, dtype=np.int64)
    for k, w in _WEIGHT.items():
        sledai += w * d[k]
    major = np.zeros(nv, dtype=bool)
    for k in _WEIGHT:
        if _GROUP[k] in _MAJOR:
            major |= d[k]
    first = np.r_[True, pi[1:] != pi[:-1]]
    new = np.zeros(nv, dtype=bool)
    for k in _WEIGHT:
        prev = np.r_[False, d[k][:-1]]
        new |= d[k] & ~prev
    new_activity = pd.array(new, dtype="boolean")
    new_activity[first] = pd.NA

    pga = np.clip(np.round((0.11 * sledai + rng.normal(0.2, 0.25, nv)) * 2) / 2, 0, 3)
    pred0 = np.round(rng.uniform(5, 60, m) / 2.5) * 2.5
    floor = np.select([act < 0.15, act < 0.35, act < 0.6], [0.0, 2.5, 5.0], 10.0)
    pred = np.maximum(floor, np.round(pred0[pi] * np.exp(-t * 2.2) / 2.5) * 2.5)
    pred = np.where(week == 0, pred0[pi], pred)
    alb = np.round(np.clip(44 - 2.6 * np.minimum(prot, 8) + rng.normal(0, 2, nv), 15, 52), 1)
    creat = np.where(
        child[pi], 28 + 2.4 * (age[pi] + t), np.where(female[pi], 62, 80) * (1 + 0.35 * act * kv)
    ) * rng.uniform(0.9, 1.1, nv)
    cd19 = np.where(
        child[pi], np.clip(18 * np.exp(-t * 1.6) + 4 + rng.normal(0, 2, nv), 0.5, 60), np.nan
    )

    visits = {
        "patient_id": ids[pi],
        "visit_week": week,
        "visit_date": start[pi] + (week * 7).astype("timedelta64[D]"),
        "c3_g_l": c3,
        "c4_g_l": c4,
        "urine_protein_g_24h": np.where(child[pi], prot, np.nan),
        "upcr_g_g": np.where(child[pi], np.nan, prot),
        "cd19_pct": np.round(cd19, 1),
        "anti_dsdna_positive": dsdna,
        "anti_dsdna_iu_ml": titre,
        "sledai2k": sledai,
        "pga": pga,
        "prednisone_mg_day": pred,
        "albumin_g_l": alb,
        "creatinine_umol_l": np.round(creat),
        "egfr_ml_min": np.full(nv, np.nan),
        "major_organ_activity": major,
        "new_activity": new_activity,
        "weight_kg": weight[pi],
        "height_cm": height[pi],
        "haemolytic_anaemia": organ["blood"][pi] & (u[:, 4] < 0.03 * act),
        "gi_activity": organ["gastrointestinal"][pi] & (u[:, 5] < 0.2 * act),
        **{f"sledai_{k}": d[k] for k in _WEIGHT},
    }
    patients = {
        "patient_id": ids,
        "cohort": np.full(m, SCALE, dtype=object),
        "sex": np.where(female, "F", "M"),
        "age_at_onset_years": onset,
        "age_at_baseline_years": age,
        "disease_duration_months": dur,
        "treatment_start_date": start,
        "biopsy_class": np.where(biopsied, cls, None),
        "immunosuppressant": regimen,
        "antimalarial": rng.random(m) < 0.9,
        **{f"organ_{o}": organ[o] for o in ORGANS},
        "ana_positive": rng.random(m) < 0.97,
        "weight_kg": weight,
        "height_cm": height,
        "discontinued_week": np.where(drop, disc_week, -1),
        "discontinuation_reason": np.where(
            drop,
            rng.choice(
                np.array(["inefficacy", "adverse event", "patient decision", "lost to follow-up"]),
                m,
            ),
            None,
        ),
    }
    # adverse events: Poisson count per patient, onset within the patient's follow-up
    n_ae = rng.poisson(0.35, m)
    ae_p = np.repeat(np.arange(m), n_ae)
    last_week = np.zeros(m, dtype=np.int64)
    np.maximum.at(last_week, pi, week)
    probs = np.array([p for *_, p in _AE_TERMS])
    pick = rng.choice(len(_AE_TERMS), len(ae_p), p=probs / probs.sum())
    sev = rng.choice(np.array(["mild", "moderate", "severe"]), len(ae_p), p=[0.65, 0.3, 0.05])
    aes = {
        "patient_id": ids[ae_p],
        "onset_week": (rng.random(len(ae_p)) * np.maximum(last_week[ae_p], 1)).astype(np.int64),
        "term": np.array([_AE_TERMS[j][0] for j in pick], dtype=object),
        "category": np.array([_AE_TERMS[j][1] for j in pick], dtype=object),
        "severity": sev,
        "serious": sev == "severe",
    }
    out = {}
    for name, cols in (("patients", patients), ("visits", visits), ("adverse_events", aes)):
        data = {}
        for c in schema.columns(name):
            v = cols.get(c.name)
            if v is None:
                v = np.full(len(next(iter(cols.values()))), None, dtype=object)
            s = pd.Series(v)
            if c.name == "discontinued_week":
                s = s.where(s >= 0)
            data[c.name] = _typed(s, c.dtype)
        out[name] = pd.DataFrame(data)
    return out


# --------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------

SCHEDULES = {CSLE: CSLE_SCHEDULE, LN: LN_SCHEDULE}


def _core() -> dict:
    """The frozen calibrated 23 x 5 matrices of the csle completers as arrays."""
    out = {k: np.array(v) for k, v in _CORE.items()}
    out["ds"] = out["ds"].astype(bool)
    out["lldas52"] = out["lldas52"].astype(bool)
    return out


def demo_tables(seed: int = DEFAULT_SEED) -> dict[str, pd.DataFrame]:
    """patients, visits and adverse_events of both demo cohorts (contract columns)."""
    rng = np.random.default_rng(seed)
    a = _csle_tables(_core(), np.random.default_rng(rng.integers(2**63)))
    b = _ln_tables(np.random.default_rng(rng.integers(2**63)))
    return {k: pd.concat([a[k], b[k]], ignore_index=True) for k in a}


def build_demo(path: str | os.PathLike, scale: int | None = None, seed: int | None = None) -> dict:
    """Write the demo (or a scaled cohort of `scale` patients) to `path`, replacing it."""
    from . import store  # imported here: store imports derive, which is heavy to load
    from .db import is_versioned, publish_version

    seed = DEFAULT_SEED if seed is None else int(seed)
    path = Path(path)
    # A hosted pointer (or LUPUS_DASH_VERSIONED=1) gets a new version behind it, so a
    # running dashboard's sessions keep their connections (db.publish_version).
    versioned = is_versioned(path) or os.environ.get("LUPUS_DASH_VERSIONED", "").lower() in (
        "1", "true", "yes")
    path.parent.mkdir(parents=True, exist_ok=True)
    # Build beside the target and move it into place: the old demo stays whole
    # until the new one is complete (store writes its own temp file the same way).
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".build", dir=path.parent)
    os.close(fd)
    os.unlink(tmp)
    try:
        if scale is None:
            info = store.write_database(
                tmp,
                demo_tables(seed),
                mode="create",
                schedules=SCHEDULES,
                source=f"synthetic demo (lupus_dash.synth, seed {seed})",
                versioned=False,
            )
        else:
            info = store.write_database_chunks(
                tmp,
                scale_tables(int(scale), seed),
                mode="create",
                schedules={SCALE: SCALE_SCHEDULE},
                source=f"synthetic scaled cohort of {scale} patients (seed {seed})",
                versioned=False,
            )
        if versioned:
            publish_version(tmp, path)
        else:
            os.replace(tmp, path)
        if isinstance(info, dict):
            info = {**info, "path": str(path)}
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return info


def cli_build_demo(args) -> int:
    """`python -m lupus_dash build-demo [--db PATH] [--scale N] [--seed S]`."""
    import time

    t0 = time.perf_counter()
    info = build_demo(args.db, scale=args.scale, seed=args.seed)
    what = f"{args.scale} synthetic patients" if args.scale else f"demo cohorts {CSLE}, {LN}"
    print(f"wrote {what} to {args.db} in {time.perf_counter() - t0:.1f} s")
    if isinstance(info, dict) and info:
        print(", ".join(f"{k}: {v}" for k, v in info.items() if not isinstance(v, dict | list)))
    return 0


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
