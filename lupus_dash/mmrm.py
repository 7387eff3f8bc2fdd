"""Mixed model for repeated measures (MMRM): change from baseline by visit.

Model: change = visit + baseline value (+ one numeric covariate) (+ visit × group),
errors correlated within a patient with an unstructured covariance over the
post-baseline visits, fitted by REML on every available observation (no
imputation). Reference: R
``nlme::gls(chg ~ visit + base, correlation = corSymm(form = ~ visit_index | patient),
weights = varIdent(form = ~ 1 | visit), method = "REML")`` with ``emmeans``
(tests/r/t2t_reference.R).

Why this module and not a library: statsmodels has no generalised least squares
with an estimated unstructured covariance (its GLS takes the covariance as known,
MixedLM has random effects only), and neither pymer4 nor an R bridge may be a
dependency of the dashboard. So the REML criterion is written once here:

- vectorised by missingness pattern. Patients with the same set of observed visits
  share Σ_P = Σ[P, P], so every quantity the criterion needs is a sum over patients
  of Z_i' W_P Z_i with Z_i = [X_i | y_i]. The cross-products T_P = Σ_i Z_i ⊗ Z_i are
  computed once (one matrix product per pattern), after which one evaluation of
  the criterion costs O(patterns), not O(patients): 100,000 patients cost what
  100 do, once T_P is built;
- Σ = L L' with L lower triangular, log of its diagonal (log-Cholesky, as the R
  package mmrm does), optimised with an analytic gradient (BFGS), then polished by
  Newton steps on the numeric Hessian of that gradient;
- Satterthwaite degrees of freedom for a contrast l: 2 (l'Φl)² / (g' A g), with Φ the
  covariance of the fixed effects, g_j = ∂(l'Φl)/∂θ_j (analytic) and A the inverse
  of the observed REML information (numeric Hessian), as lmerTest and mmrm compute
  it. Multi-df F tests use the eigen-decomposition of LΦL' and lmerTest's
  ``get_Fstat_ddf``. Kenward–Roger is not offered (no kept Python library has it).

Estimates are invariant to the parametrisation; the Satterthwaite df is too, at
the optimum with exact derivatives. emmeans computes it for gls objects with a
numeric Jacobian in nlme's parametrisation, so its df differ from these in the
third or fourth digit; the tests say by how much.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .lazy import LazyModule

sps = LazyModule("scipy.stats")
sopt = LazyModule("scipy.optimize")

LSMEANS_COLUMNS = ["visit", "n", "estimate", "se", "df", "ci_low", "ci_high", "p_value"]
GROUP_LSMEANS_COLUMNS = ["group", *LSMEANS_COLUMNS]
GROUP_TEST_COLUMNS = ["visit", "contrast", "estimate", "se", "num_df", "den_df", "statistic",
                      "p_value", "ci_low", "ci_high"]


class MMRMError(ValueError):
    """Input the model cannot use (a duplicate visit, a non-numeric covariate)."""


@dataclass
class MMRMResult:
    """What `fit` returns. `reason` is set (and the frames empty) when no model was fitted."""

    lsmeans: pd.DataFrame
    interaction: dict | None = None
    group_tests: pd.DataFrame | None = None
    visits: list = field(default_factory=list)
    groups: list = field(default_factory=list)
    n_patients: int = 0
    n_obs: int = 0
    covariance: np.ndarray | None = None
    coef: dict = field(default_factory=dict)
    covariate_means: dict = field(default_factory=dict)
    log_lik: float | None = None
    iterations: int = 0
    converged: bool = False
    reason: str | None = None
    notes: list = field(default_factory=list)


# --- data ------------------------------------------------------------------------


@dataclass
class _Data:
    visits: list
    groups: list
    names: list            # fixed-effect column names
    y_scale: float
    base_mean: float
    cov_mean: float | None
    cov_sd: float | None
    n_obs: int
    n_patients: int
    n_visit: np.ndarray             # observations per visit
    n_cell: np.ndarray | None       # observations per group × visit
    q: int                          # indicator columns (visit, visit × group)
    patterns: list                  # [(visit index array, group, n, S1 (k, r), S2 (k, r, k, r))]


def _prepare(long_df, subject, visit, value, baseline, group, covariate, visits) -> _Data | str:
    cols = [subject, visit, value, baseline] + [c for c in (group, covariate) if c]
    missing = [c for c in cols if c not in long_df.columns]
    if missing:
        raise MMRMError(f"long_df has no column(s) {', '.join(missing)}")
    df = long_df[cols]
    y_raw = pd.to_numeric(df[value], errors="coerce").to_numpy(dtype=float)
    b_raw = pd.to_numeric(df[baseline], errors="coerce").to_numpy(dtype=float)
    keep = ~np.isnan(y_raw) & ~np.isnan(b_raw)
    if covariate:
        if not pd.api.types.is_numeric_dtype(df[covariate]) or \
                pd.api.types.is_bool_dtype(df[covariate]):
            raise MMRMError(f"covariate {covariate!r} must be numeric (got {df[covariate].dtype})")
        c_raw = df[covariate].to_numpy(dtype=float, na_value=np.nan)
        keep &= ~np.isnan(c_raw)
    g_codes = None
    if group:
        gser = df[group]
        keep &= gser.notna().to_numpy()
    vis = df[visit].to_numpy()
    if visits is None:
        levels = sorted(pd.unique(vis[keep]).tolist())
    else:
        levels = list(visits)
        keep &= pd.Series(vis).isin(levels).to_numpy()
    if not keep.any():
        return "no observation has both a value and a baseline value"
    vidx = pd.Series(vis[keep]).map({v: i for i, v in enumerate(levels)}).to_numpy(dtype=np.int64)
    pcodes, puniq = pd.factorize(df[subject].to_numpy()[keep])
    y = y_raw[keep] - b_raw[keep]
    base = b_raw[keep]
    n_obs, n_pat = y.size, puniq.size
    key = pcodes.astype(np.int64) * len(levels) + vidx
    ks = np.sort(key)
    dup = ks[1:] == ks[:-1]
    if dup.any():
        k0 = int(ks[1:][dup][0])
        raise MMRMError(f"patient {puniq[k0 // len(levels)]!r} has more than one row at visit "
                        f"{levels[k0 % len(levels)]!r} (column {visit!r})")
    # Visits nobody attended are dropped from the levels (R drops unused factor levels).
    used = np.bincount(vidx, minlength=len(levels))
    if (used == 0).any():
        remap = np.cumsum(used > 0) - 1
        levels = [v for v, u in zip(levels, used) if u > 0]
        vidx = remap[vidx]
    nv = len(levels)
    groups: list = []
    if group:
        g_codes, guniq = pd.factorize(df[group].to_numpy()[keep], sort=True)
        groups = [_py(g) for g in guniq]
        if len(groups) < 2:
            return f"group {group!r} has one level only among the analysed observations"
    if n_pat < 2:
        return "fewer than 2 patients with a baseline and a post-baseline value"
    # Scale: y and the baseline in units of SD(y) (the fit is equivariant; this keeps the
    # optimiser's steps alike for C3 in g/L and anti-dsDNA in IU/mL). Baseline and covariate
    # are centred at their mean over the analysed observations, the point emmeans takes.
    s = float(np.std(y)) or 1.0
    base_mean = float(base.mean())
    ng = max(len(groups), 1)
    # Columns: visit cell means, then visit × group (non-reference groups), then the
    # baseline value and the covariate. The first two blocks are indicators fixed by a
    # patient's visit pattern and group; only the last ones (and y) vary between patients.
    names = [f"visit[{v}]" for v in levels]
    if group:
        names += [f"visit[{v}]:{group}[{g}]" for g in groups[1:] for v in levels]
    q = len(names)
    varying = [(base - base_mean) / s]
    names.append("baseline")
    cov_mean = cov_sd = None
    if covariate:
        c = c_raw[keep]
        cov_mean = float(c.mean())
        cov_sd = float(c.std()) or 1.0
        varying.append((c - cov_mean) / cov_sd)
        names.append(covariate)
    varying.append(y / s)
    Vr = np.column_stack(varying)  # per row: base, [cov], y
    r = Vr.shape[1]
    p = len(names)
    if n_obs <= p:
        return f"{n_obs} observations for {p} fixed effects"
    gcode = np.zeros(n_obs, dtype=np.int64) if g_codes is None else g_codes.astype(np.int64)
    pat_g = np.zeros(n_pat, dtype=np.int64)
    pat_g[pcodes] = gcode
    if group and (pat_g[pcodes] != gcode).any():
        i = int(np.flatnonzero(pat_g[pcodes] != gcode)[0])
        raise MMRMError(f"patient {puniq[pcodes[i]]!r} has more than one {group!r}; the "
                        "group must be a patient attribute")
    n_cell = np.bincount(gcode * nv + vidx, minlength=ng * nv).reshape(ng, nv) if group \
        else None
    # Keys: (visit bitmask, group) of each patient. Rows sorted by (key, patient, visit) so
    # each key's rows form one (n, k, r) block of the varying columns.
    mask = np.zeros(n_pat, dtype=np.int64)
    np.bitwise_or.at(mask, pcodes, np.left_shift(1, vidx))
    pkey = mask * ng + pat_g
    order = np.argsort((pkey[pcodes] * n_pat + pcodes) * nv + vidx, kind="stable")
    Vs, ks = Vr[order], pkey[pcodes[order]]
    patterns = []
    starts = np.flatnonzero(np.r_[True, ks[1:] != ks[:-1]])
    ends = np.r_[starts[1:], ks.size]
    for a, b in zip(starts, ends):
        m, g = divmod(int(ks[a]), ng)
        idx = np.array([j for j in range(nv) if m >> j & 1], dtype=np.int64)
        k = idx.size
        block = Vs[a:b].reshape(-1, k * r)
        # Sufficient statistics of the varying columns: Σ_i V_i and Σ_i V_i ⊗ V_i.
        patterns.append((idx, g, block.shape[0], block.sum(0).reshape(k, r),
                         (block.T @ block).reshape(k, r, k, r)))
    return _Data(levels, groups, names, s, base_mean, cov_mean, cov_sd, n_obs, n_pat,
                 np.bincount(vidx, minlength=nv), n_cell, q, patterns)


def _py(v):
    return v.item() if isinstance(v, np.generic) else v


# --- REML -------------------------------------------------------------------------


class _Reml:
    """-2 REML log-likelihood from the pattern sums, its gradient, and what Satterthwaite needs.

    Each patient's design is Z_i = [F | V_i]: F (k × q) the visit and visit × group
    indicators, fixed by the patient's visit pattern and group, and V_i (k × r) the
    baseline, covariate and outcome. So Σ_i Z_i' W Z_i needs only n, Σ V_i and
    Σ V_i ⊗ V_i per (pattern, group), whatever the number of patients; patterns are
    batched by their number of visits k and every sum below is a batched matrix product.
    """

    def __init__(self, data: _Data):
        self.nv = len(data.visits)
        self.p = len(data.names)
        self.q = data.q
        self.tril = np.tril_indices(self.nv)
        self.diag = self.tril[0] == self.tril[1]
        self.n_obs = data.n_obs
        nv, q = self.nv, self.q
        by_k: dict[int, list] = {}
        for pat in data.patterns:
            by_k.setdefault(pat[0].size, []).append(pat)
        self.batches = []
        for k, lst in by_k.items():
            m = len(lst)
            idx = np.stack([b[0] for b in lst])
            F = np.zeros((m, k, q))
            rows = np.arange(k)
            for i, (ix, g, *_rest) in enumerate(lst):
                F[i, rows, ix] = 1.0
                if g:
                    F[i, rows, nv * g + ix] = 1.0
            n = np.array([b[2] for b in lst], dtype=float)
            S1 = np.stack([b[3] for b in lst])                          # (m, k, r)
            r = S1.shape[2]
            S2 = np.stack([b[4] for b in lst]).transpose(0, 1, 3, 2, 4).reshape(m, k * k, r * r)
            self.batches.append((idx, n, F, S1, S2, k))

    def chol(self, theta: np.ndarray) -> np.ndarray:
        L = np.zeros((self.nv, self.nv))
        t = theta.copy()
        t[self.diag] = np.exp(t[self.diag])
        L[self.tril] = t
        return L

    def theta_of(self, sigma: np.ndarray) -> np.ndarray:
        L = np.linalg.cholesky(sigma)
        t = L[self.tril].copy()
        t[self.diag] = np.log(t[self.diag])
        return t

    def cross(self, Ws) -> np.ndarray:
        """M = Σ_i Z_i' W_i Z_i ((p+1) × (p+1)) for per-batch stacks of W."""
        q, P = self.q, self.p + 1
        M = np.zeros((P, P))
        for (_idx, n, F, S1, S2, _k), W in zip(self.batches, Ws):
            FW = F.transpose(0, 2, 1) @ W                                  # (m, q, k)
            M[:q, :q] += np.einsum("m,mab->ab", n, FW @ F)
            M[:q, q:] += (FW @ S1).sum(0)
            r = S1.shape[2]
            M[q:, q:] += (W.reshape(1, -1) @ S2.reshape(-1, r * r)).reshape(r, r)
        M[q:, :q] = M[:q, q:].T
        return M

    def inner(self, B: np.ndarray) -> list:
        """Per batch C = Σ_i Z_i B Z_i' (m, k, k) for a symmetric (p+1) × (p+1) B."""
        q = self.q
        out = []
        for _idx, n, F, S1, S2, k in self.batches:
            r = S1.shape[2]
            FB = F @ B[:q, q:]                                             # (m, k, r)
            C = n[:, None, None] * (F @ B[:q, :q] @ F.transpose(0, 2, 1))
            C += FB @ S1.transpose(0, 2, 1)
            C += S1 @ FB.transpose(0, 2, 1)
            C += (S2 @ B[q:, q:].reshape(r * r)).reshape(-1, k, k)
            out.append(C)
        return out

    def parts(self, theta: np.ndarray):
        """(-2 REML, M, per-batch W, L, A, beta) at theta, or None if not PD."""
        L = self.chol(theta)
        sigma = L @ L.T
        p = self.p
        logdet = 0.0
        Ws = []
        for idx, n, *_rest in self.batches:
            S = sigma[idx[:, :, None], idx[:, None, :]]
            try:
                C = np.linalg.cholesky(S)
            except np.linalg.LinAlgError:
                return None
            logdet += float(2 * (n * np.log(np.diagonal(C, axis1=1, axis2=2)).sum(1)).sum())
            W = np.linalg.inv(S)
            Ws.append((W + W.transpose(0, 2, 1)) / 2)
        M = self.cross(Ws)
        A = M[:p, :p]
        try:
            cA = np.linalg.cholesky(A)
        except np.linalg.LinAlgError:
            return None
        beta = np.linalg.solve(A, M[:p, p])
        q = float(M[p, p] - M[:p, p] @ beta)
        f = logdet + 2 * float(np.log(np.diag(cA)).sum()) + q + \
            (self.n_obs - p) * math.log(2 * math.pi)
        return f, M, Ws, L, A, beta

    def _grad_from_sigma(self, G: np.ndarray, L: np.ndarray) -> np.ndarray:
        """Gradient in theta of a function whose differential is tr(G dΣ), G symmetric."""
        D = 2 * G @ L
        g = D[self.tril].copy()
        g[self.diag] *= L[self.tril][self.diag]
        return g

    def _sandwich(self, Ws, B, scale_n: bool) -> np.ndarray:
        """Σ_P embed(n_P W_P - W_P C_P W_P) (scale_n) or Σ_P embed(W_P C_P W_P),
        C_P = Σ_i Z_i B Z_i'."""
        G = np.zeros((self.nv, self.nv))
        for (idx, n, *_rest), W, C in zip(self.batches, Ws, self.inner(B)):
            WCW = W @ C @ W
            GP = n[:, None, None] * W - WCW if scale_n else WCW
            np.add.at(G, (idx[:, :, None], idx[:, None, :]), GP)
        return G

    def value_grad(self, theta: np.ndarray):
        pr = self.parts(theta)
        if pr is None:
            return np.inf, np.zeros_like(theta)
        f, _M, Ws, L, A, beta = pr
        p = self.p
        # d(-2 REML) = Σ_P n_P tr(W_P dΣ_P) + tr(B dM),  B = diag(A^-1, 0) + u u',
        # u = (-beta, 1), dM = -Σ_P Σ_i Z_i' W dΣ W Z_i  =>  tr(G dΣ) with
        # G = Σ_P embed(n_P W_P - W_P (Σ_i Z_i B Z_i') W_P).
        B = np.zeros((p + 1, p + 1))
        B[:p, :p] = np.linalg.inv(A)
        u = np.r_[-beta, 1.0]
        B += np.outer(u, u)
        return f, self._grad_from_sigma(self._sandwich(Ws, B, True), L)

    def value(self, theta: np.ndarray) -> float:
        pr = self.parts(theta)
        return np.inf if pr is None else pr[0]

    @functools.cached_property
    def ols_cross(self) -> np.ndarray:
        """M at W = I (Σ_i Z_i' Z_i): the start values' OLS and the singularity check."""
        return self.cross([np.broadcast_to(np.eye(k), (b[0].shape[0], k, k))
                           for *b, k in self.batches])

    def dvar_dtheta(self, parts, Lc: np.ndarray) -> np.ndarray:
        """Jacobian of l' A^-1 l in theta for each column l of Lc (p × m): (m, n_theta),
        at the theta of `parts` (what `parts(theta)` returned)."""
        _, _, Ws, L, A, _ = parts
        a = np.linalg.solve(A, Lc)  # p × m
        out = np.zeros((Lc.shape[1], self.tril[0].size))
        for j in range(Lc.shape[1]):
            ap = np.r_[a[:, j], 0.0]
            # dA = -Σ X'W dΣ W X, so d(l'A^-1 l) = a'(Σ X'W dΣ W X)a = tr(G dΣ) with
            # G = Σ_P embed(W_P (Σ_i X_i a a' X_i') W_P).
            out[j] = self._grad_from_sigma(self._sandwich(Ws, np.outer(ap, ap), False), L)
        return out

    def hessian(self, theta: np.ndarray) -> np.ndarray:
        """Central differences of the analytic gradient (error O(h²) ≈ 1e-8 relative)."""
        n = theta.size
        H = np.zeros((n, n))
        for j in range(n):
            h = 1e-4 * max(1.0, abs(theta[j]))
            tp, tm = theta.copy(), theta.copy()
            tp[j] += h
            tm[j] -= h
            H[:, j] = (self.value_grad(tp)[1] - self.value_grad(tm)[1]) / (2 * h)
        return (H + H.T) / 2


def _start(reml: _Reml) -> np.ndarray:
    """Start from the OLS residual covariance (pairwise, from the pattern sums), made PD."""
    p, nv = reml.p, reml.nv
    M = reml.ols_cross
    beta = np.linalg.lstsq(M[:p, :p], M[:p, p], rcond=None)[0]
    u = np.r_[-beta, 1.0]
    S = np.zeros((nv, nv))
    cnt = np.zeros((nv, nv))
    for (idx, n, *_rest), C in zip(reml.batches, reml.inner(np.outer(u, u))):
        np.add.at(S, (idx[:, :, None], idx[:, None, :]), C)
        np.add.at(cnt, (idx[:, :, None], idx[:, None, :]),
                  np.broadcast_to(n[:, None, None], C.shape))
    with np.errstate(invalid="ignore", divide="ignore"):
        S = np.where(cnt > 0, S / cnt, 0.0)
    d = np.sqrt(np.clip(np.diag(S), 1e-8, None))
    R = np.clip(S / np.outer(d, d), -0.95, 0.95)
    np.fill_diagonal(R, 1.0)
    w, v = np.linalg.eigh(R)
    R = (v * np.clip(w, 0.05, None)) @ v.T
    R /= np.sqrt(np.outer(np.diag(R), np.diag(R)))
    return reml.theta_of(R * np.outer(d, d))


def _singular(reml: _Reml, data: _Data) -> str | None:
    """Why X'X is singular (an empty group × visit cell), or None when it is not."""
    ev = np.linalg.eigvalsh(reml.ols_cross[:reml.p, :reml.p])
    # X is centred and scaled, so the eigenvalues of X'X are O(n) or 0.
    if ev[0] > 1e-9 * max(ev[-1], 1.0):
        return None
    empty = ([f"{data.groups[gi]} at visit {data.visits[vi]}"
              for gi, vi in np.argwhere(data.n_cell == 0)] if data.n_cell is not None else [])
    return "the design is singular" + (f" (no observation for {', '.join(empty)})"
                                       if empty else "")


def _optimise(reml: _Reml, theta0: np.ndarray):
    """BFGS on -2 REML / N (gradients O(1) whatever the cohort size), then Newton steps.

    Convergence is judged by the Newton decrement g'H⁻¹g, the predicted distance of
    -2 REML from its minimum: below 1e-6 the log-likelihood is within 5e-7 of it. The
    Newton steps reuse one numeric Hessian (recomputed at the end only if theta moved),
    which brings theta close enough that the estimates agree with nlme beyond 4 digits.
    """
    scale = 1.0 / max(reml.n_obs, 1)

    def obj(t):
        f, g = reml.value_grad(t)
        return f * scale, g * scale

    res = sopt.minimize(obj, theta0, jac=True, method="BFGS",
                        options={"gtol": 1e-6, "maxiter": 1000})
    theta, iters = res.x, int(res.nit)
    if not np.isfinite(reml.value(theta)):
        theta = theta0
    H = reml.hessian(theta)
    at_h = theta.copy()
    dec = np.inf
    for _ in range(10):
        f, g = reml.value_grad(theta)
        try:
            step = np.linalg.solve(H, g)
        except np.linalg.LinAlgError:
            break
        dec = float(g @ step)
        if not np.isfinite(dec) or dec < 1e-10:
            break
        t = 1.0
        while t > 1e-3:  # step halving, as coxph and nlme do
            new = theta - t * step
            if reml.value(new) < f:
                break
            t /= 2
        else:
            break
        theta = new
        iters += 1
    if np.max(np.abs(theta - at_h)) > 1e-4:
        H = reml.hessian(theta)
        f, g = reml.value_grad(theta)
        try:
            dec = float(g @ np.linalg.solve(H, g))
        except np.linalg.LinAlgError:
            dec = np.inf
    f, g = reml.value_grad(theta)
    return theta, f, g, H, iters, dec


# --- inference --------------------------------------------------------------------


def _satterthwaite(reml: _Reml, parts, A_theta, Lc) -> np.ndarray:
    """Satterthwaite df of each contrast column of Lc (scaled units; df is scale-free), at
    the fit's `parts` (reml.parts(theta))."""
    A = parts[4]
    var = np.einsum("pm,pm->m", Lc, np.linalg.solve(A, Lc))
    J = reml.dvar_dtheta(parts, Lc)
    with np.errstate(divide="ignore", invalid="ignore"):
        return 2 * var ** 2 / np.einsum("mi,ij,mj->m", J, A_theta, J)


def _fstat_ddf(nu: np.ndarray, tol: float = 1e-8) -> float:
    """lmerTest::get_Fstat_ddf: the F denominator df from the df of independent t's."""
    if nu.size == 1:
        return float(nu[0])
    if np.all(np.abs(np.diff(nu)) < tol):
        return float(nu.mean())
    if np.any(nu <= 2):
        return 2.0
    E = float(np.sum(nu / (nu - 2)))
    return 2 * E / (E - nu.size)


def _f_test(reml, parts, A_theta, beta, Phi, Lmat) -> dict:
    """Wald F of L beta = 0 with Satterthwaite df as lmerTest::contestMD (eigen of L Φ L')."""
    VL = Lmat @ Phi @ Lmat.T
    d, P = np.linalg.eigh(VL)
    d, P = d[::-1], P[:, ::-1]  # descending, as R's eigen()
    pos = d > max(np.sqrt(np.finfo(float).eps) * d[0], 0)
    q = int(pos.sum())
    PtL = (P.T @ Lmat)[:q]
    t2 = (PtL @ beta) ** 2 / d[:q]
    F = float(t2.sum() / q)
    nu = _satterthwaite(reml, parts, A_theta, PtL.T)
    ddf = _fstat_ddf(nu)
    return {"F": F, "num_df": q, "den_df": ddf,
            "p_value": float(sps.f.sf(F, q, ddf)) if np.isfinite(ddf) else None}


def fit(long_df: pd.DataFrame, subject: str, visit: str, value: str, baseline: str,
        group: str | None = None, covariate: str | None = None, *,
        visits: list | None = None, conf_level: float = 0.95) -> MMRMResult:
    """MMRM of the change from baseline (value − baseline) by visit; LS means per visit.

    `long_df` has one row per patient × post-baseline visit (`value` there, `baseline`
    the patient's baseline value repeated); rows missing the value, the baseline, the
    group or the covariate are left out, as R's na.omit. LS means are at the baseline
    (and covariate) mean over the analysed observations, as emmeans. With `group`, the
    model adds group × visit (visit * group) and the result carries LS means per group
    × visit, the group contrast at each visit and the visit × group interaction F test.
    """
    cols = GROUP_LSMEANS_COLUMNS if group else LSMEANS_COLUMNS
    empty = pd.DataFrame(columns=cols)
    data = _prepare(long_df, subject, visit, value, baseline, group, covariate, visits)
    if isinstance(data, str):
        return MMRMResult(empty, reason=data)
    reml = _Reml(data)
    why = _singular(reml, data)
    if why:
        return MMRMResult(empty, reason=why)
    theta, f, _grad, H, iters, dec = _optimise(reml, _start(reml))
    res = MMRMResult(empty, visits=list(data.visits), groups=list(data.groups),
                     n_patients=data.n_patients, n_obs=data.n_obs, iterations=iters)
    if not np.isfinite(f):
        res.reason = "the REML fit failed (covariance not positive definite)"
        return res
    parts = reml.parts(theta)
    _, _, _, L, A, beta = parts
    s = data.y_scale
    res.converged = bool(np.isfinite(dec) and dec < 1e-6)
    if not res.converged:
        res.notes.append(f"REML not converged: Newton decrement {dec:.2g} after {iters} "
                         "iterations (estimates may be off in the last digits)")
    res.covariance = (L @ L.T) * s * s
    # -2 REML (Harville, as nlme's logLik) in y/s units with the baseline column / s and
    # the covariate column / its SD; back to the original units: |Σ| scales by s^(2N),
    # |X'Σ⁻¹X| by s^(-2p) times the squared column scales.
    f_orig = f + (data.n_obs - reml.p) * math.log(s * s) + 2 * math.log(s) + \
        (2 * math.log(data.cov_sd) if covariate else 0.0)
    res.log_lik = -0.5 * f_orig
    Phi = np.linalg.inv(A)
    try:
        A_theta = 2 * np.linalg.inv(H)  # inverse observed information of -REML log-lik
        if np.any(np.linalg.eigvalsh(H) <= 0):
            raise np.linalg.LinAlgError
    except np.linalg.LinAlgError:
        A_theta = np.full_like(H, np.nan)
        res.notes.append("REML Hessian not positive definite: no Satterthwaite df")
    nv, p = len(data.visits), reml.p
    unscale = np.full(p, s)
    ib = data.names.index("baseline")
    unscale[ib] = 1.0  # baseline slope is dimensionless (baseline scaled by s too)
    if covariate:
        unscale[ib + 1] = s / data.cov_sd
    res.coef = {n: float(b * u) for n, b, u in zip(data.names, beta, unscale)}
    res.covariate_means = {"baseline": data.base_mean}
    if covariate:
        res.covariate_means[covariate] = data.cov_mean

    def rows(Lc, extra):
        est = Lc.T @ beta * s
        se = np.sqrt(np.einsum("pm,pm->m", Lc, Phi @ Lc)) * s
        df = _satterthwaite(reml, parts, A_theta, Lc)
        with np.errstate(invalid="ignore"):
            tq = sps.t.isf((1 - conf_level) / 2, df)
            p_val = 2 * sps.t.sf(np.abs(est / se), df)
        return [{**e, "estimate": float(est[i]), "se": float(se[i]), "df": float(df[i]),
                 "ci_low": float(est[i] - tq[i] * se[i]), "ci_high": float(est[i] + tq[i] * se[i]),
                 "p_value": float(p_val[i]) if np.isfinite(p_val[i]) else None}
                for i, e in enumerate(extra)]

    # Centred covariates: an LS mean is the visit (and group × visit) coefficient alone.
    if not group:
        Lc = np.zeros((p, nv))
        Lc[np.arange(nv), np.arange(nv)] = 1.0
        res.lsmeans = pd.DataFrame(
            rows(Lc, [{"visit": v, "n": int(data.n_visit[i])} for i, v in enumerate(data.visits)]),
            columns=cols)
        return res
    ng = len(data.groups)
    first = nv  # column of visit[v1]:group[g2]; visit × group columns follow the visits
    cells, extra = [], []
    for gi, g in enumerate(data.groups):
        for vi, v in enumerate(data.visits):
            col = np.zeros(p)
            col[vi] = 1.0
            if gi:
                col[first + (gi - 1) * nv + vi] = 1.0
            cells.append(col)
            extra.append({"group": g, "visit": v, "n": int(data.n_cell[gi, vi])})
    res.lsmeans = pd.DataFrame(rows(np.array(cells).T, extra), columns=cols)
    # Visit × group interaction: the group differences at visits 2..V minus at visit 1,
    # the rows R's treatment coding gives the visit:group coefficients.
    Lint = []
    for gi in range(1, ng):
        for vi in range(1, nv):
            r = np.zeros(p)
            r[first + (gi - 1) * nv + vi] = 1.0
            r[first + (gi - 1) * nv] = -1.0
            Lint.append(r)
    if Lint:
        res.interaction = {"term": f"visit:{group}",
                           **_f_test(reml, parts, A_theta, beta, Phi, np.array(Lint))}
    # Group contrasts at each visit: each group against the first (2 groups: the
    # difference with its CI; more: the (G-1)-df F test of equal LS means).
    trows = []
    for vi, v in enumerate(data.visits):
        Lg = np.zeros((ng - 1, p))
        for gi in range(1, ng):
            Lg[gi - 1, first + (gi - 1) * nv + vi] = 1.0
        if ng == 2:
            r = rows(Lg.T, [{"visit": v}])[0]
            t = r["estimate"] / r["se"]
            trows.append({"visit": v, "contrast": f"{data.groups[1]} - {data.groups[0]}",
                          "estimate": r["estimate"], "se": r["se"], "num_df": 1,
                          "den_df": r["df"], "statistic": t * t, "p_value": r["p_value"],
                          "ci_low": r["ci_low"], "ci_high": r["ci_high"]})
        else:
            ft = _f_test(reml, parts, A_theta, beta, Phi, Lg)
            trows.append({"visit": v, "contrast": f"equal across {ng} groups", "estimate": None,
                          "se": None, "num_df": ft["num_df"], "den_df": ft["den_df"],
                          "statistic": ft["F"], "p_value": ft["p_value"], "ci_low": None,
                          "ci_high": None})
    res.group_tests = pd.DataFrame(trows, columns=GROUP_TEST_COLUMNS)
    return res
