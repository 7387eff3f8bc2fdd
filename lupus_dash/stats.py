"""Statistical methods of STATISTICS.md: arrays or tidy frames in, `TestResult` out.

Every method reproduces a named R call (given in its docstring) to the last
digits; nothing is rounded for display here (the one rounding, RANK_DECIMALS
before ranking, restores ties). A method that cannot give a p on the data it
was given (too few pairs, a constant variable, one group, ...) returns a
`TestResult` whose `reason` says why and whose p is None (a statistic or
estimate that is still defined may stay): it never raises on data and never
returns NaN. Bad *arguments* (arrays of
different lengths, unknown method names) raise ``ValueError`` naming the
argument.

Direction conventions (so a reader can match R):
- paired methods: follow-up ``x`` minus comparator ``y``;
- two-group methods: ``group1 - group2`` where group1/group2 are the two
  labels in sorted order (R's factor level order), exactly as R prints them:
  Welch's t and its CI equal R ``t.test(x ~ g)``; the Mann-Whitney ``W`` is
  R's (rank sum of group1 minus n1(n1+1)/2) and the HL shift R's estimate.

Effect sizes: paired Cohen's dz = mean(d)/sd(d); r = Z/sqrt(n) with n the
pairs used (zeros included) for the signed-rank test and the total N for the
rank-sum test; Hodges-Lehmann estimates (the rank tests' `estimate`, also
extra["hl_*"]) with R's CI (exact where R's exact wilcox.test applies, else
asymptotic, exact to the Walsh average / pairwise difference R's root finder aims at);
odds ratio (Fisher: conditional MLE as R prints it; odds_ratio_ci: sample OR
with Woolf CI) and risk difference (Newcombe hybrid score CI).

Every result says what its p is (`p_method`) and what its estimate is
(`estimate`, `estimate_name`; `ci_low`/`ci_high` are always the estimate's
CI). Small numbers (STATISTICS.md "Small numbers"):
- values and differences are rounded to RANK_DECIMALS decimals before any
  ranking, so decimal noise (0.73 - 0.65 != 0.08 in binary) never breaks a tie;
- the rank tests give the exact conditional p (Streitberg-Roehmel shift
  algorithm over mid-ranks, as R coin) up to EXACT_MAX_N patients and keep
  the normal approximation as `p_asymptotic`;
- no p-value for fewer than MIN_PAIRS pairs or a group of fewer than
  MIN_GROUP (the statistic may stay, `reason` says why); exact tests carry
  extra["min_p"], the smallest p the data could give, and extra["note"] when
  it exceeds 0.05.
"""

from __future__ import annotations

import functools
import math
import statistics
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

from .lazy import LazyModule

_st = LazyModule("scipy.stats")
_special = LazyModule("scipy.special")

__all__ = [
    "EXACT_MAX_N",
    "METHOD_LABELS",
    "MIN_GROUP",
    "MIN_PAIRS",
    "P_METHODS",
    "RANK_DECIMALS",
    "TestResult",
    "adjust_p",
    "binary_contrast",
    "chi2",
    "choose_group_method",
    "choose_paired_method",
    "compare_groups",
    "compare_paired",
    "describe",
    "fisher",
    "fisher_visits",
    "friedman",
    "kaplan_meier",
    "kruskal",
    "logrank",
    "mann_whitney",
    "mcnemar_exact",
    "method_label",
    "min_attainable_p",
    "mixed_model",
    "odds_ratio_ci",
    "paired_t",
    "proportion_ci",
    "results_frame",
    "risk_difference_ci",
    "rm_anova",
    "rm_anova_bonferroni",
    "welch_t",
    "wilcoxon",
]


@functools.lru_cache(maxsize=1)
def _z975() -> float:
    """The normal 97.5 % quantile (SciPy's, imported on first use)."""
    return float(_st.norm.ppf(0.975))


# Hodges-Lehmann enumerates pairs of distinct values; above this many pairs it
# is skipped (quadratic memory) and extra["hl_note"] says so.
HL_MAX_PAIRS = 1_000_000

# Values and differences are rounded to this many decimals before any ranking
# (STATISTICS.md "Small numbers"): lab values carry at most 4 decimals, and
# binary noise in a difference of two decimals is ~1e-16, so 10 decimals merge
# every tie that decimal arithmetic split and never merge two real values.
RANK_DECIMALS = 10

# Rank tests give the exact conditional p up to this many patients (pairs for
# the signed-rank test, n1 + n2 for the rank-sum test) and the normal
# approximation above; the shift algorithm costs O(n x sum of scores).
EXACT_MAX_N = 50
# Callers may raise EXACT_MAX_N per call up to here: the rank-sum table is
# (N/2 + 1) x N(N+1) floats (32 MB and ~0.5 s at N = 200), and float64 counts
# stay exact only up to 2^53 (n <= 50), relative to 1e-16 beyond.
EXACT_HARD_MAX_N = 200

# Minimum numbers for a p-value (STATISTICS.md "Small numbers").
MIN_PAIRS = 3  # paired and repeated-measures methods: pairs / complete cases / patients
MIN_GROUP = 2  # every group of a between-group method
KRUSKAL_SMALL_GROUP = 5  # below this the chi-square p of Kruskal-Wallis is approximate


@dataclass
class TestResult:
    """One test's outcome; `reason` is set (and p is None) when no p-value can be given.

    `estimate` is the effect the row reports (`estimate_name`: mean_difference,
    hodges_lehmann, hl_shift, proportion_difference, odds_ratio,
    risk_difference) and `ci_low`/`ci_high` are always its CI. `mean_diff` is
    kept for the methods whose estimate is a difference in means (and the
    proportion/risk differences); it is None beside a rank test. `p_method`
    says what `p_value` is (P_METHODS); `p_asymptotic` keeps a rank test's
    normal-approximation p beside an exact one. `df` is the t / F / chi-square
    degrees of freedom (Satterthwaite for the mixed model).
    """

    method: str
    n: int
    statistic: float | None = None
    p_value: float | None = None
    p_method: str | None = None  # what p_value is: see P_METHODS
    p_asymptotic: float | None = None  # rank tests: the normal-approximation p (SPSS Z / R)
    estimate: float | None = None  # the effect ci_low/ci_high belong to
    estimate_name: str | None = None  # mean_difference, hodges_lehmann, hl_shift, ...
    mean_diff: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    df: float | None = None
    effect: float | None = None
    effect_name: str | None = None
    reason: str | None = None
    extra: dict = field(default_factory=dict)

    __test__ = False  # keep pytest from collecting this class

    def as_dict(self) -> dict:
        """Plain JSON-ready dict: the fields, with `extra` as a nested dict."""
        d = {k: _clean(v) for k, v in asdict(self).items() if k != "extra"}
        d["extra"] = {k: _clean(v) for k, v in self.extra.items()}
        return d


def results_frame(results: Sequence[TestResult]) -> pd.DataFrame:
    """One row per result: the fields, `method_label`, and `extra` keys spread into columns.

    Columns: method, method_label, n, statistic, p_value, p_method,
    p_asymptotic, estimate, estimate_name, mean_diff, ci_low, ci_high, df,
    effect, effect_name, reason, then the extra keys.
    """
    rows = []
    for r in results:
        d = r.as_dict()
        extra = d.pop("extra")
        d = {"method": d.pop("method"), "method_label": method_label(r), **d}
        d.update({k: v for k, v in extra.items() if k not in d})
        rows.append(d)
    return pd.DataFrame(rows)


# What a result's p_value is (TestResult.p_method).
P_METHODS = {
    "exact": "exact conditional or exact binomial/hypergeometric p",
    "asymptotic": "normal approximation",
    "t": "t distribution",
    "t_bonferroni": "t distribution, Bonferroni-adjusted",
    "t_satterthwaite": "t distribution with Satterthwaite degrees of freedom",
    "F": "F distribution (sphericity assumed)",
    "chi_square": "chi-square approximation",
}

# Method names in words for a clinician; "<method>/<p_method>" beats "<method>".
METHOD_LABELS = {
    "paired_t": "Paired t-test",
    "wilcoxon": "Wilcoxon signed-rank",
    "wilcoxon/exact": "Wilcoxon signed-rank, exact",
    "wilcoxon/asymptotic": "Wilcoxon signed-rank, normal approximation",
    "mcnemar_exact": "McNemar, exact",
    "fisher": "Fisher's exact test",
    "rm_anova": "Repeated-measures ANOVA",
    "rm_anova_bonferroni": "RM-ANOVA pairwise, Bonferroni",
    "friedman": "Friedman test",
    "mixed_model": "Mixed model (Satterthwaite df)",
    "mixed_model/asymptotic": "Mixed model (Wald z)",
    "mmrm": "MMRM (unstructured covariance)",
    "mann_whitney": "Mann–Whitney U",
    "mann_whitney/exact": "Mann–Whitney U, exact",
    "mann_whitney/asymptotic": "Mann–Whitney U, normal approximation",
    "kruskal": "Kruskal–Wallis",
    "welch_t": "Welch t-test",
    "chi2": "Chi-square test",
    "logrank": "Log-rank test",
    "odds_ratio": "Odds ratio (Woolf CI)",
    "risk_difference": "Risk difference (Newcombe CI)",
    "binary_contrast": "Risk difference (Newcombe CI), odds ratio (Woolf CI), Fisher's exact p",
}


def method_label(result_or_row: Any) -> str:
    """The method in words ("Wilcoxon signed-rank, exact"), from a TestResult, dict or row.

    Uses `method` and `p_method`; an unknown method comes back as its name.
    """
    if isinstance(result_or_row, TestResult):
        method, pm = result_or_row.method, result_or_row.p_method
    else:
        get = result_or_row.get
        method, pm = get("method"), get("p_method")
    if method is None or (isinstance(method, float) and math.isnan(method)):
        return ""
    if isinstance(pm, str) and f"{method}/{pm}" in METHOD_LABELS:
        return METHOD_LABELS[f"{method}/{pm}"]
    return METHOD_LABELS.get(str(method), str(method))


# --------------------------------------------------------------------------- helpers


def _f(v: Any) -> float | None:
    """A finite Python float or None (never NaN/inf in a result)."""
    if v is None:
        return None
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _clean(v: Any) -> Any:
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return _f(v)
    if isinstance(v, np.ndarray):
        return [_clean(x) for x in v.tolist()]
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    return v


def _as_float(a: Any, name: str) -> np.ndarray:
    """1-D float array; pd.NA / None become NaN, booleans become 0/1."""
    if isinstance(a, (pd.Series, pd.Index)):
        return _coerce(pd.Series(a), name)
    try:
        arr = np.asarray(a, dtype=float)
    except (TypeError, ValueError):
        arr = _coerce(pd.Series(list(a), dtype=object), name)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional (got shape {arr.shape})")
    return arr


def _coerce(s: pd.Series, name: str) -> np.ndarray:
    if s.dtype == object:
        s = s.where(s.notna(), None)
    num = pd.to_numeric(s, errors="coerce")
    bad = num.isna().to_numpy() & s.notna().to_numpy()
    if bad.any():
        raise ValueError(f"{name} must be numeric (found {s[bad].iloc[0]!r})")
    return num.astype("Float64").to_numpy(dtype=float, na_value=np.nan)


def _same_length(**arrays: np.ndarray) -> None:
    names = list(arrays)
    n0 = len(arrays[names[0]])
    for nm in names[1:]:
        if len(arrays[nm]) != n0:
            raise ValueError(
                f"{nm} must have the same length as {names[0]} ({len(arrays[nm])} vs {n0})"
            )


def _pairs(x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    xa, ya = _as_float(x, "x"), _as_float(y, "y")
    _same_length(x=xa, y=ya)
    ok = ~(np.isnan(xa) | np.isnan(ya))
    return xa[ok], ya[ok]


def _p_norm2(z: float) -> float:
    """Two-sided normal p, as R's 2 * min(pnorm(z), pnorm(-z))."""
    return float(2.0 * min(_special.ndtr(z), _special.ndtr(-z)))


def _rank_ties(a: np.ndarray) -> tuple[np.ndarray, float]:
    """Average ranks (as R's rank) and the tie sum of t^3 - t, from one sort."""
    o = np.argsort(a)  # ties get one average rank, so stability does not matter
    sa = a[o]
    starts = np.concatenate(([0], np.flatnonzero(sa[1:] != sa[:-1]) + 1))
    t = np.diff(np.append(starts, a.size))
    avg = starts + (t + 1) / 2.0
    ranks = np.empty(a.size)
    ranks[o] = np.repeat(avg, t)
    tf = t.astype(float)
    return ranks, float(np.sum(tf**3 - tf))


def _tie_sum(sorted_vals: np.ndarray) -> float:
    """Sum of t^3 - t over groups of equal values in a sorted array."""
    if sorted_vals.size == 0:
        return 0.0
    brk = np.flatnonzero(np.diff(sorted_vals)) + 1
    t = np.diff(np.concatenate(([0], brk, [sorted_vals.size]))).astype(float)
    return float(np.sum(t**3 - t))


def _row_tie_sum(sorted_rows: np.ndarray) -> float:
    """Sum of t^3 - t over runs of equal values within each row of a row-sorted matrix."""
    n, k = sorted_rows.shape
    brk = np.ones((n, k), dtype=bool)  # True where a new run starts
    brk[:, 1:] = sorted_rows[:, 1:] != sorted_rows[:, :-1]
    starts = np.flatnonzero(brk.ravel())
    t = np.diff(np.append(starts, n * k)).astype(float)
    return float(np.sum(t**3 - t))


def _round_rank(a: np.ndarray) -> np.ndarray:
    """Values or differences rounded to RANK_DECIMALS before ranking (ties survive decimal noise)."""
    return np.round(a, RANK_DECIMALS)


def _check_exact_max_n(exact_max_n: int) -> None:
    if not 0 <= exact_max_n <= EXACT_HARD_MAX_N:
        raise ValueError(f"exact_max_n must be between 0 and {EXACT_HARD_MAX_N} "
                         f"(got {exact_max_n})")


def _scores2(ranks: np.ndarray) -> np.ndarray:
    """Mid-ranks times 2: integers, the scale the shift algorithm counts on."""
    return np.rint(2.0 * ranks).astype(np.int64)


def _signed_rank_counts(scores: np.ndarray) -> np.ndarray:
    """counts[t] = number of the 2^m sign patterns whose positive scores sum to t.

    Streitberg & Roehmel (1986) shift algorithm, as R coin's SR_shift_1sample:
    each pair either adds nothing or shifts the distribution by its (integer)
    score. m vector additions of length <= sum(scores); float64 counts are
    exact integers up to 2^53 (m <= 50), within rounding beyond.
    """
    total = int(scores.sum())
    c = np.zeros(total + 1)
    c[0] = 1.0
    top = 0
    for s in np.sort(scores).tolist():
        # NumPy evaluates overlapping in-place ufunc operands as if copied first.
        c[s: top + s + 1] += c[: top + 1]
        top += s
    return c


def _rank_sum_counts(scores: np.ndarray, m: int) -> np.ndarray:
    """counts[t] = number of the C(N, m) subsets of size m whose scores sum to t.

    Shift algorithm for two independent samples (coin's SR_shift_2sample):
    row k holds the distribution over subsets of size k; each observation
    shifts row k-1 into row k by its integer score.
    """
    total, n_all = int(scores.sum()), int(scores.size)
    c = np.zeros((m + 1, total + 1))
    c[0, 0] = 1.0
    top = 0
    for j, s in enumerate(np.sort(scores).tolist()):
        # only sizes that can still reach m with the n_all - j observations left,
        # and at most j so far, take part: about half the table
        lo, hi = max(0, m - (n_all - j)), min(j, m - 1)
        if lo <= hi:
            c[lo + 1: hi + 2, s: top + s + 1] += c[lo: hi + 1, : top + 1]
        top += s
    return c[m]


def _exact_two_sided(counts: np.ndarray, scale: int, center2: int, t_obs: int) -> tuple[
        float, float]:
    """(p, min_p) two-sided from counts over t = 0..len-1, as coin's exact pvalue.

    coin: P(T <= -|t|) + P(T >= |t|) on the standardised statistic, i.e.
    P(|T - E| >= |t_obs - E|). Here in integers: |scale * t - center2| with
    E = center2 / scale, so no tolerance is needed. min_p is the p of the most
    extreme attainable value: the smallest p these numbers and ties allow.
    """
    t = np.arange(counts.size, dtype=np.int64)
    dev = np.abs(scale * t - center2)
    total = float(counts.sum())
    obs = abs(scale * t_obs - center2)
    p = float(counts[dev >= obs].sum()) / total
    support = counts > 0
    dmax = int(dev[support].max())
    min_p = float(counts[support & (dev >= dmax)].sum()) / total
    return min(1.0, p), min(1.0, min_p)


def _signed_rank_exact(ranks: np.ndarray, positive: np.ndarray) -> tuple[float, float]:
    """Exact conditional two-sided p and min p of the signed-rank test (mid-ranks, zeros dropped)."""
    s2 = _scores2(ranks)
    counts = _signed_rank_counts(s2)
    # E(T) = sum(s) / 2  ->  |2 T - sum(s)|
    return _exact_two_sided(counts, 2, int(s2.sum()), int(s2[positive].sum()))


def _rank_sum_exact(ranks: np.ndarray, in_first: np.ndarray) -> tuple[float, float]:
    """Exact conditional two-sided p and min p of the rank-sum test (mid-ranks), as coin::wilcox_test."""
    s2 = _scores2(ranks)
    n_all, m1 = s2.size, int(in_first.sum())
    # the smaller group's sum carries the same deviation (T1 + T2 = sum(s)): fewer rows
    first = m1 <= n_all - m1
    m = m1 if first else n_all - m1
    t_obs = int(s2[in_first].sum()) if first else int(s2[~in_first].sum())
    counts = _rank_sum_counts(s2, m)
    # E(T) = m sum(s) / N  ->  |N T - m sum(s)|
    return _exact_two_sided(counts, n_all, m * int(s2.sum()), t_obs)


def min_attainable_p(method: str, n: int, n2: int | None = None) -> float:
    """Smallest two-sided exact p reachable with n untied observations (ties only raise it).

    "wilcoxon": n nonzero pairs, 2 / 2^n; "mcnemar_exact": n discordant pairs,
    2 / 2^n; "mann_whitney": groups of n and n2, 2 / C(n + n2, n). Each capped at 1.
    """
    if n < 0 or (n2 is not None and n2 < 0):
        raise ValueError(f"n must be non-negative (got n={n}, n2={n2})")
    # Integer arithmetic, not 2.0**n: at 100,000 pairs 2.0**n overflows a float.
    if method in ("wilcoxon", "mcnemar_exact"):
        return min(1.0, math.ldexp(1.0, 1 - n))
    if method == "mann_whitney":
        if n2 is None:
            raise ValueError("n2 (the second group's size) is needed for mann_whitney")
        return min(1.0, 2 / math.comb(n + n2, n))  # int / int: no float overflow
    raise ValueError(f"method must be 'wilcoxon', 'mcnemar_exact' or 'mann_whitney' "
                     f"(got {method!r})")


def _note(extra: dict, text: str) -> None:
    """Append a note for the reader to extra["note"]."""
    extra["note"] = f"{extra['note']}; {text}" if extra.get("note") else text


def _min_p_note(extra: dict, min_p: float, who: str) -> None:
    """extra["min_p"], and the note when no result of these numbers can reach p < 0.05."""
    extra["min_p"] = min_p
    if min_p > 0.05:
        _note(extra, f"{who}: no result can reach p < 0.05")


def _too_few_pairs(n: int, what: str = "pairs") -> str:
    return f"fewer than {MIN_PAIRS} {what} (n = {n}): no p-value"


def _small_groups_reason(labels: Sequence[Any], sizes: Sequence[int]) -> str | None:
    """Reason naming every group under MIN_GROUP, or None."""
    small = [(lab, k) for lab, k in zip(labels, sizes) if k < MIN_GROUP]
    if not small:
        return None
    names = ", ".join(f"{lab} (n = {k})" for lab, k in small)
    if len(small) == 1:
        return f"group {names} has fewer than {MIN_GROUP} patients: no p-value"
    return f"groups {names} have fewer than {MIN_GROUP} patients: no p-value"


def _none(method: str, n: int, reason: str, **extra: Any) -> TestResult:
    return TestResult(method=method, n=int(n), reason=reason, extra=dict(extra))


def _groups(values: Any, groups: Any) -> tuple[list[Any], list[np.ndarray]]:
    """Drop missing values/labels; return sorted labels and their value arrays."""
    v = _as_float(values, "values")
    g = pd.Series(groups.to_numpy() if isinstance(groups, pd.Series) else list(groups))
    if len(g) != len(v):
        raise ValueError(f"groups must have the same length as values ({len(g)} vs {len(v)})")
    ok = ~np.isnan(v) & g.notna().to_numpy()
    v, g = v[ok], g[ok].to_numpy()
    if v.size == 0:
        return [], []
    codes, labels = pd.factorize(g, sort=True)
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(len(labels) + 1))
    arrays = [v[order[bounds[i] : bounds[i + 1]]] for i in range(len(labels))]
    keep = [i for i, a in enumerate(arrays) if a.size > 0]
    return [_clean(labels[i]) for i in keep], [arrays[i] for i in keep]


# --------------------------------------------------------------------------- paired


def paired_t(x: Any, y: Any, conf_level: float = 0.95) -> TestResult:
    """Paired t-test of x - y over available pairs; R t.test(x, y, paired=TRUE).

    estimate = mean difference with its t CI. Fewer than MIN_PAIRS pairs: t and
    the mean difference stay, p and CI do not (reason says so).
    """
    xa, ya = _pairs(x, y)
    n = xa.size
    if n < 2:
        return _none("paired_t", n, _too_few_pairs(n))
    d = xa - ya
    return _paired_t_from(n, float(d.mean()), float(d.std(ddof=1)), conf_level)


def _paired_t_from(n: int, md: float, sd: float, conf_level: float,
                   what: str = "pairs") -> TestResult:
    """Paired t from the number of pairs, mean and SD of the differences (`what` the pairs
    are called in the reason when there are too few)."""
    se = sd / math.sqrt(n)
    # R stops with "data are essentially constant" on the same condition.
    if se < 10 * np.finfo(float).eps * abs(md) or sd == 0.0:
        r = _none("paired_t", n, "differences are constant (SD 0)")
        r.mean_diff = r.estimate = md
        r.estimate_name = "mean_difference"
        return r
    df = n - 1
    t = md / se
    r = TestResult(
        method="paired_t",
        n=n,
        statistic=t,
        estimate=md,
        estimate_name="mean_difference",
        mean_diff=md,
        df=float(df),
        effect=md / sd,
        effect_name="cohen_dz",
        extra={"sd_diff": sd, "se_diff": se, "conf_level": conf_level},
    )
    if n < MIN_PAIRS:
        r.reason = _too_few_pairs(n, what)
        return r
    q = float(_st.t.ppf(1 - (1 - conf_level) / 2, df))
    r.p_value, r.p_method = float(2 * _st.t.sf(abs(t), df)), "t"
    r.ci_low, r.ci_high = md - q * se, md + q * se
    return r


def _walsh_table(u: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Sorted Walsh averages of a sample given as unique values u with counts c, or None."""
    if u.size * (u.size + 1) // 2 > HL_MAX_PAIRS:
        return None
    i, j = np.triu_indices(u.size)
    vals = (u[i] + u[j]) / 2.0
    w = np.where(i == j, c[i] * (c[i] + 1) // 2, c[i] * c[j]).astype(np.int64)
    o = np.argsort(vals, kind="stable")
    return vals[o], np.cumsum(w[o])


def _diff_table(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Sorted pairwise differences a_i - b_j with multiplicity weights, or None if too many."""
    ua, ca = np.unique(a, return_counts=True)
    ub, cb = np.unique(b, return_counts=True)
    if ua.size * ub.size > HL_MAX_PAIRS:
        return None
    vals = (ua[:, None] - ub[None, :]).ravel()
    w = (ca[:, None] * cb[None, :]).ravel().astype(np.int64)
    o = np.argsort(vals, kind="stable")
    return vals[o], np.cumsum(w[o])


def _kth(table: tuple[np.ndarray, np.ndarray], k: float) -> float:
    """k-th smallest (1-based, clamped) element of a weighted sorted table."""
    vals, cw = table
    k = min(max(int(k), 1), int(cw[-1]))
    return float(vals[np.searchsorted(cw, k, side="left")])


def _median_table(table: tuple[np.ndarray, np.ndarray]) -> float:
    n = int(table[1][-1])
    if n % 2:
        return _kth(table, (n + 1) // 2)
    return (_kth(table, n // 2) + _kth(table, n // 2 + 1)) / 2.0


@lru_cache(maxsize=64)
def _untied_cdf(n1: int, n2: int | None = None) -> np.ndarray:
    """CDF of R's psignrank(., n1) (n2 None) or pwilcox(., n1, n2): untied ranks, exact."""
    if n2 is None:
        counts = _signed_rank_counts(np.arange(1, n1 + 1, dtype=np.int64))
    else:
        m = min(n1, n2)
        # rank sums of m of the ranks 1..N, shifted to U = sum - m(m+1)/2
        counts = _rank_sum_counts(np.arange(1, n1 + n2 + 1, dtype=np.int64), m)
        counts = counts[m * (m + 1) // 2:]
    cdf = np.cumsum(counts) / counts.sum()
    cdf.flags.writeable = False
    return cdf


def _exact_ci_ranks(cdf: np.ndarray, n_pairs: int, conf_level: float) -> tuple[int, int, float]:
    """(k_low, k_high, level): R's exact wilcox.test CI as order statistics of the n_pairs averages.

    R: qu <- q(alpha/2) (0 -> 1), ql <- n_pairs - qu, CI = (diffs[qu], diffs[ql + 1]),
    achieved alpha = 2 p(qu - 1); q() finds the first value whose CDF reaches
    alpha/2 - 10 eps, as R's qsignrank / qwilcox do.
    """
    alpha = 1 - conf_level
    qu = max(int(np.searchsorted(cdf, alpha / 2 - 10 * np.finfo(float).eps, side="left")), 1)
    achieved = 2 * float(cdf[qu - 1])
    return qu, n_pairs - qu + 1, (conf_level if achieved - alpha <= alpha / 2 else
                                  1 - achieved)


def _hl_one_sample(x: np.ndarray, conf_level: float = 0.95, exact: bool = False) -> dict:
    """Hodges-Lehmann pseudo-median and CI as R's wilcox.test computes them.

    exact=True (no ties, no zeros, n <= EXACT_MAX_N): R wilcox.test(exact=TRUE,
    conf.int=TRUE), order statistics of the Walsh averages from the exact
    signed-rank distribution (R prints 1 - signif(achieved alpha, 2) as the level
    when 95 % is not achievable). Otherwise the asymptotic CI of R
    wilcox.test(exact=FALSE, correct=FALSE, conf.int=TRUE): R finds its limits
    with uniroot on a step function whose roots are Walsh averages, returned
    exactly here. The estimate is the median of the Walsh averages (R's uniroot
    lands anywhere on a flat step when their count is even; the midpoint is the
    textbook value). x holds the nonzero differences, as in R.
    """
    n = x.size
    if n == 0:
        return {}
    u, c = np.unique(x, return_counts=True)
    table = _walsh_table(u, c)
    if table is None:
        return {"hl_note": f"Hodges-Lehmann skipped: more than {HL_MAX_PAIRS} value pairs"}
    mumin, mumax = float(u[0]), float(u[-1])
    cf = c.astype(float)
    ties_all = float(np.sum(cf**3 - cf))

    def w_end(k: float) -> float:
        # R's W(d) at d = min (or max) of x: the k values equal to d drop out as
        # zeros, all others have one sign, so zd = +-nx(nx+1)/4 exactly.
        nx = n - k
        var = nx * (nx + 1) * (2 * nx + 1) / 24.0 - (ties_all - (k**3 - k)) / 48.0
        return nx * (nx + 1) / 4.0 / math.sqrt(var) if nx > 0 and var > 0 else math.nan

    wmin = w_end(cf[0])
    wmax = -w_end(cf[-1]) if math.isfinite(wmin) else math.nan
    if not (math.isfinite(wmin) and math.isfinite(wmax)):
        return {
            "hl_estimate": (mumin + mumax) / 2.0,
            "hl_note": "CI not computable: all nonzero differences are tied",
        }
    out: dict[str, Any] = {"hl_estimate": _median_table(table)}
    if exact:
        lo_k, hi_k, level = _exact_ci_ranks(_untied_cdf(n), n * (n + 1) // 2, conf_level)
        if level != conf_level:
            level = 1 - float(f"{1 - level:.2g}")  # R: 1 - signif(achieved.alpha, 2)
        out.update({"hl_ci_low": _kth(table, lo_k), "hl_ci_high": _kth(table, hi_k),
                    "hl_conf_level": level, "hl_ci_method": "exact"})
        return out
    out["hl_ci_method"] = "asymptotic"
    alpha = 1 - conf_level
    while True:
        if wmin - _st.norm.isf(alpha / 2) < 0 or wmax - _st.norm.ppf(alpha / 2) > 0:
            alpha *= 2
        else:
            break
    level = conf_level
    if alpha >= 1 or 1 - conf_level < alpha * 0.75:
        level = 1 - min(1.0, alpha)
    out["hl_conf_level"] = level
    if alpha >= 1:
        out["hl_ci_low"] = out["hl_ci_high"] = float(np.median(x))
        return out
    nn = n * (n + 1) / 2.0
    sigma = math.sqrt(n * (n + 1) * (2 * n + 1) / 24.0 - ties_all / 48.0)
    zq = float(_st.norm.isf(alpha / 2))
    out["hl_ci_low"] = _kth(table, math.ceil(nn / 2 - zq * sigma))
    out["hl_ci_high"] = _kth(table, math.ceil(nn / 2 + zq * sigma))
    return out


def wilcoxon(x: Any, y: Any, hodges_lehmann: bool = True, exact_max_n: int = EXACT_MAX_N,
             conf_level: float = 0.95) -> TestResult:
    """Wilcoxon signed-rank test of x - y: exact conditional p up to exact_max_n pairs.

    Differences are rounded to RANK_DECIMALS, zeros dropped (Wilcoxon's
    method), mid-ranks for ties. p_value: the exact conditional p (shift
    algorithm; R coin::wilcoxsign_test(distribution="exact",
    zero.method="Wilcoxon")) when n <= exact_max_n, else the normal p.
    statistic: the SPSS signed Z = (W+ - m(m+1)/4) / sigma over the m nonzero
    differences, tie-corrected, no continuity correction, so a fall gives a
    negative Z; its p is p_asymptotic (R wilcox.test(x, y, paired=TRUE,
    exact=FALSE, correct=FALSE)). estimate: Hodges-Lehmann pseudo-median of
    the nonzero differences with its CI (exact when p is exact and there are
    no ties or zeros, as R's exact wilcox.test; else R's asymptotic CI);
    mean_diff stays empty beside a rank test. extra: V (= W+), n_nonzero,
    median_diff, min_p and a note when p < 0.05 is out of reach.
    """
    _check_exact_max_n(exact_max_n)
    xa, ya = _pairs(x, y)
    n = xa.size
    if n == 0:
        return _none("wilcoxon", 0, _too_few_pairs(0))
    d = _round_rank(xa - ya)
    nz = d[d != 0]
    m = nz.size
    extra: dict[str, Any] = {"n_nonzero": m, "n_zero": n - m,
                             "median_diff": float(np.median(d))}
    if m == 0:
        return _none("wilcoxon", n, "all differences are zero", **extra)
    ranks, ties = _rank_ties(np.abs(nz))
    pos = nz > 0
    w_plus = float(ranks[pos].sum())
    sigma = math.sqrt(m * (m + 1) * (2 * m + 1) / 24.0 - ties / 48.0)
    z = (w_plus - m * (m + 1) / 4.0) / sigma
    extra.update({"V": w_plus, "w_plus": w_plus})
    exact = n <= exact_max_n
    r = TestResult(method="wilcoxon", n=n, statistic=z, effect=z / math.sqrt(n),
                   effect_name="r", extra=extra)
    if hodges_lehmann:
        extra.update(_hl_one_sample(nz, conf_level,
                                    exact=exact and ties == 0 and m == n and n >= MIN_PAIRS))
        r.estimate, r.estimate_name = extra.get("hl_estimate"), "hodges_lehmann"
    if n < MIN_PAIRS:
        r.reason = _too_few_pairs(n)
        return r
    r.ci_low, r.ci_high = extra.get("hl_ci_low"), extra.get("hl_ci_high")
    r.p_asymptotic = _p_norm2(z)
    if exact:
        r.p_value, min_p = _signed_rank_exact(ranks, pos)
        r.p_method = "exact"
        _min_p_note(extra, min_p, f"n = {n}" + (f" ({m} nonzero)" if m < n else ""))
    else:
        r.p_value, r.p_method = r.p_asymptotic, "asymptotic"
    return r


def _as_bool_float(a: Any, name: str) -> np.ndarray:
    arr = _as_float(a, name)
    bad = ~np.isnan(arr) & (arr != 0) & (arr != 1)
    if bad.any():
        raise ValueError(f"{name} must be boolean (True/False/missing)")
    return arr


def mcnemar_exact(x_bool: Any, y_bool: Any) -> TestResult:
    """Exact McNemar on discordant pairs; R binom.test(b, b + c).

    b = positive at the comparator y and negative at the follow-up x,
    c = negative at y and positive at x. mean_diff = proportion positive at
    x minus at y over the pairs.
    """
    xa, ya = _as_bool_float(x_bool, "x_bool"), _as_bool_float(y_bool, "y_bool")
    _same_length(x_bool=xa, y_bool=ya)
    ok = ~(np.isnan(xa) | np.isnan(ya))
    xa, ya = xa[ok], ya[ok]
    n = xa.size
    b = int(np.sum((ya == 1) & (xa == 0)))
    c = int(np.sum((ya == 0) & (xa == 1)))
    extra = {"b": b, "c": c, "p_followup": _f(xa.mean()) if n else None,
             "p_comparator": _f(ya.mean()) if n else None}
    if n < 1:
        return _none("mcnemar_exact", n, "no pairs", **extra)
    md = float(xa.mean() - ya.mean())
    if b + c == 0:
        r = _none("mcnemar_exact", n, "no discordant pairs", **extra)
        r.mean_diff = r.estimate = md
        r.estimate_name = "proportion_difference"
        return r
    r = TestResult("mcnemar_exact", n, statistic=float(b), estimate=md,
                   estimate_name="proportion_difference", mean_diff=md, extra=extra)
    if n < MIN_PAIRS:
        r.reason = _too_few_pairs(n)
        return r
    r.p_value = float(_st.binomtest(b, b + c, 0.5).pvalue)
    r.p_method = "exact"
    # all discordant pairs one way: binom.test's p is 2 / 2^(b + c)
    _min_p_note(extra, min_attainable_p("mcnemar_exact", b + c),
                f"n = {n} ({b + c} discordant)")
    return r


def fisher_visits(x_bool: Any, y_bool: Any, conf_int: bool = True) -> TestResult:
    """Fisher's exact test on visit x positive over available pairs; R fisher.test.

    The table is [[x positive, x negative], [y positive, y negative]], so the
    odds ratio (conditional MLE, as R prints it) is follow-up vs comparator; it is
    the `effect`, its CI goes to extra["or_ci_low"/"or_ci_high"] (`conf_int=False`
    skips that root-finding). `mean_diff` is the difference in positive rates;
    Fisher's test gives no CI for it, so ci_low/ci_high stay empty.
    """
    xa, ya = _as_bool_float(x_bool, "x_bool"), _as_bool_float(y_bool, "y_bool")
    _same_length(x_bool=xa, y_bool=ya)
    ok = ~(np.isnan(xa) | np.isnan(ya))
    xa, ya = xa[ok], ya[ok]
    n = xa.size
    if n < 1:
        return _none("fisher", 0, "no pairs")
    table = np.array([[np.sum(xa == 1), np.sum(xa == 0)], [np.sum(ya == 1), np.sum(ya == 0)]])
    r = fisher(table, conf_int=conf_int)
    r.n = n
    r.mean_diff = r.estimate = float(xa.mean() - ya.mean())
    r.estimate_name = "proportion_difference"
    r.extra["or_ci_low"], r.extra["or_ci_high"] = r.ci_low, r.ci_high
    r.ci_low = r.ci_high = None
    r.extra["n_pairs"] = n
    if n < MIN_PAIRS and r.p_value is not None:
        r.p_value, r.p_method, r.reason = None, None, _too_few_pairs(n)
        r.extra.pop("min_p", None)
        r.extra.pop("note", None)
    elif "note" in r.extra:
        r.extra["note"] = r.extra["note"].replace(f"n = {int(table.sum())}", f"n = {n} pairs")
    return r


# --------------------------------------------------------------------------- repeated measures


def _complete(wide: Any) -> np.ndarray:
    w = wide.to_numpy(dtype=float) if isinstance(wide, pd.DataFrame) else np.asarray(wide, float)
    if w.ndim != 2:
        raise ValueError(f"wide must be two-dimensional (patients x visits), got {w.shape}")
    return w[~np.isnan(w).any(axis=1)]


def rm_anova(wide: Any) -> TestResult:
    """One-way repeated-measures ANOVA, complete cases, with the sphericity table SPSS prints.

    statistic: F with the uncorrected p; R aov(value ~ visit + Error(patient/visit)).
    extra, as SPSS's "Mauchly's Test of Sphericity" and "Tests of
    Within-Subjects Effects": epsilon_gg (Greenhouse-Geisser, from the
    double-centred covariance matrix), epsilon_hf (Huynh & Feldt 1976, the
    original formula SPSS uses, capped at 1; R car prints Lecoutre's 1991
    correction instead), epsilon_lb (lower bound 1/(k-1)), p_greenhouse_geisser,
    p_huynh_feldt, p_lower_bound (F on df1*eps, df2*eps), and Mauchly's W with
    SPSS's chi-square approximation (mauchly_w, mauchly_chi2, mauchly_df,
    mauchly_p; not computable when complete cases <= visits - 1).
    """
    w = _complete(wide)
    n, k = w.shape
    if k < 2:
        return _none("rm_anova", n, "fewer than 2 visits")
    if n < 2:
        return _none("rm_anova", n, _too_few_pairs(n, "complete cases"))
    gm = w.mean()
    ss_tot = float(((w - gm) ** 2).sum())
    ss_visit = float(n * ((w.mean(axis=0) - gm) ** 2).sum())
    ss_subj = float(k * ((w.mean(axis=1) - gm) ** 2).sum())
    ss_err = ss_tot - ss_visit - ss_subj
    df1, df2 = k - 1, (n - 1) * (k - 1)
    extra: dict[str, Any] = {"df1": df1, "df2": df2, "ss_visit": ss_visit,
                             "ss_subject": ss_subj, "ss_error": ss_err, "k": k}
    if ss_tot == 0:
        return _none("rm_anova", n, "constant variable (no variation)", **extra)
    if ss_err <= 1e-12 * ss_tot:
        return _none("rm_anova", n, "residual variance is zero", **extra)
    f = (ss_visit / df1) / (ss_err / df2)
    r = TestResult("rm_anova", n, statistic=f, df=float(df1),
                   effect=ss_visit / (ss_visit + ss_err), effect_name="partial_eta_sq",
                   extra=extra)
    if n < MIN_PAIRS:
        r.reason = _too_few_pairs(n, "complete cases")
        return r
    r.p_value, r.p_method = float(_st.f.sf(f, df1, df2)), "F"
    extra.update(_sphericity(w, f))
    return r


def _sphericity(w: np.ndarray, f: float) -> dict:
    """Epsilons, corrected p and Mauchly's test of a complete-case matrix (patients x visits)."""
    n, k = w.shape
    p = k - 1
    s = np.cov(w, rowvar=False, ddof=1)
    # orthonormal contrasts: any basis of the space orthogonal to the ones vector
    c = np.linalg.qr(np.column_stack([np.ones(k), np.eye(k)[:, :p]]))[0][:, 1:]
    m = c.T @ s @ c  # = the double-centred covariance expressed in that basis
    tr, tr2 = float(np.trace(m)), float(np.sum(m * m))
    eps_gg = tr * tr / (p * tr2) if tr2 > 0 else 1.0
    # Huynh & Feldt (1976), one group: (n p eps - 2) / (p (n - 1 - p eps)), capped at 1
    den = p * (n - 1 - p * eps_gg)
    eps_hf = min(1.0, (n * p * eps_gg - 2) / den) if den > 0 else 1.0
    eps_lb = 1.0 / p
    df1, df2 = p, (n - 1) * p
    out: dict[str, Any] = {"epsilon_gg": eps_gg, "epsilon_hf": eps_hf, "epsilon_lb": eps_lb}
    for key, e in (("greenhouse_geisser", eps_gg), ("huynh_feldt", eps_hf),
                   ("lower_bound", eps_lb)):
        out[f"p_{key}"] = float(_st.f.sf(f, df1 * e, df2 * e))
        out[f"df1_{key}"], out[f"df2_{key}"] = df1 * e, df2 * e
    # Mauchly (1940): W = det(M) / (tr M / p)^p; SPSS's chi-square approximation
    # -(n - 1 - (2p^2 + p + 2) / (6p)) log W on p(p+1)/2 - 1 df (R's mauchly.test
    # adds a second-order term to the p).
    out["mauchly_df"] = p * (p + 1) // 2 - 1
    sign, logdet = np.linalg.slogdet(m)
    if p == 1:
        out.update({"mauchly_w": 1.0, "mauchly_chi2": 0.0, "mauchly_p": None})
    elif n - 1 < p or sign <= 0 or tr <= 0:
        out.update({"mauchly_w": None, "mauchly_chi2": None, "mauchly_p": None})
        out["mauchly_note"] = (f"Mauchly's test needs more complete cases than visits - 1 "
                               f"(n = {n}, visits = {k})")
    else:
        log_w = logdet - p * math.log(tr / p)
        chi2_ = -(n - 1 - (2 * p * p + p + 2) / (6 * p)) * log_w
        out.update({"mauchly_w": math.exp(log_w), "mauchly_chi2": chi2_,
                    "mauchly_p": float(_st.chi2.sf(chi2_, out["mauchly_df"]))})
    return out


def rm_anova_bonferroni(wide: Any, labels: Sequence[Any]) -> list[TestResult]:
    """SPSS pairwise comparisons: paired t on complete cases, Bonferroni CI and p; R t.test(conf.level=1-0.05/m)."""
    w = _complete(wide)
    k = w.shape[1]
    if len(labels) != k:
        raise ValueError(f"labels must have one entry per column of wide ({len(labels)} vs {k})")
    m = k * (k - 1) // 2
    out = []
    ii, jj = np.triu_indices(k, 1)
    # All pair differences at once (one array op instead of m paired_t calls).
    if w.shape[0] >= 2:
        d = w[:, jj] - w[:, ii]
        mds, sds = d.mean(axis=0), d.std(axis=0, ddof=1)
    for p_idx, (i, j) in enumerate(zip(ii.tolist(), jj.tolist())):
        if w.shape[0] >= 2:
            r = _paired_t_from(w.shape[0], float(mds[p_idx]), float(sds[p_idx]),
                               1 - 0.05 / m, what="complete cases")
        else:
            r = _none("rm_anova_bonferroni", w.shape[0],
                      _too_few_pairs(w.shape[0], "complete cases"))
        r.method = "rm_anova_bonferroni"
        r.extra.update({"a": _clean(labels[i]), "b": _clean(labels[j]), "m": m,
                        "p_unadjusted": r.p_value})
        if r.p_value is not None:
            r.p_value, r.p_method = min(1.0, r.p_value * m), "t_bonferroni"
        out.append(r)
    return out


def friedman(wide: Any) -> TestResult:
    """Friedman rank test over visits, complete cases, tie-corrected; R friedman.test.

    Values are rounded to RANK_DECIMALS before ranking within each patient.
    """
    w = _complete(wide)
    n, k = w.shape
    if k < 2:
        return _none("friedman", n, "fewer than 2 visits")
    if n < 2:
        return _none("friedman", n, _too_few_pairs(n, "complete cases"))
    w = _round_rank(w)
    r = _st.rankdata(w, axis=1)
    ties = _row_tie_sum(np.sort(w, axis=1))
    denom = n * k * (k + 1) - ties / (k - 1)
    if denom <= 0:
        return _none("friedman", n, "all values tied within every patient")
    stat = 12 * float(((r.sum(axis=0) - n * (k + 1) / 2) ** 2).sum()) / denom
    res = TestResult("friedman", n, statistic=stat, df=float(k - 1), extra={"k": k})
    if n < MIN_PAIRS:
        res.reason = _too_few_pairs(n, "complete cases")
        return res
    res.p_value, res.p_method = float(_st.chi2.sf(stat, k - 1)), "chi_square"
    return res


# Above this many patients mixed_model(engine="auto") uses the closed-form REML
# fit: statsmodels MixedLM loops over patients in Python (about 0.7 s per
# 1,000 patients here), the closed form costs a few ms per 100,000.
MIXED_STATSMODELS_MAX_SUBJECTS = 2000


def _reml_parts(y: np.ndarray, exog: np.ndarray, codes: np.ndarray):
    """parts(theta) -> (gamma, A, beta, RSS) of the random-intercept model, from patient sums.

    With V_i = s2 (I + g J), V_i^-1 = (I - w_i J) / s2, w_i = g / (1 + n_i g), so
    A = X'V^-1X * s2, beta and RSS = r'V^-1r * s2 are patient-level sums.
    """
    p = exog.shape[1]
    g = int(codes.max()) + 1
    ni = np.bincount(codes, minlength=g).astype(float)
    sx = np.column_stack([np.bincount(codes, weights=exog[:, j], minlength=g) for j in range(p)])
    sy = np.bincount(codes, weights=y, minlength=g)
    xtx, xty, yty = exog.T @ exog, exog.T @ y, float(y @ y)

    def parts(theta: float):
        gam = theta * theta
        w = gam / (1 + ni * gam)
        a = xtx - (sx * w[:, None]).T @ sx
        b = xty - (sx * w[:, None]).T @ sy
        c = yty - float(np.sum(w * sy * sy))
        beta = np.linalg.solve(a, b)
        return gam, a, beta, c - float(b @ beta)

    return parts, ni


def _satterthwaite(y: np.ndarray, exog: np.ndarray, codes: np.ndarray, var_subject: float,
                   var_residual: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(vcov(beta), Satterthwaite df per coefficient, Hessian) at the given variance components.

    As lmerTest (Kuznetsova et al. 2017, contest1D): the variance parameters are
    varpar = (theta, sigma), theta = sqrt(var_subject / var_residual);
    v_j(varpar) = sigma^2 [A(theta)^-1]_jj; vcov(varpar) = 2 H^-1 with H the
    Hessian of the REML deviance (Moore-Penrose over eigenvalues > 1e-8, as
    lmerTest); df_j = 2 v_j^2 / (g_j' vcov(varpar) g_j), g_j = dv_j/dvarpar.
    lmerTest differentiates numerically; here the derivatives are analytic in
    gamma = theta^2 from the patient sums of the closed form and chained to theta:
    with w_i = gamma / (1 + n_i gamma), A = X'X - S'diag(w)S, b = X'y - S'(w sy),
    c = y'y - sum w sy^2, RSS = c - b'A^-1 b, the deviance is
    D = sum log(1 + n_i gamma) + log det A + (N - p) log sigma^2 + RSS / sigma^2.
    """
    n_obs, p = exog.shape
    g = int(codes.max()) + 1
    ni = np.bincount(codes, minlength=g).astype(float)
    sx = np.column_stack([np.bincount(codes, weights=exog[:, j], minlength=g) for j in range(p)])
    sy = np.bincount(codes, weights=y, minlength=g)
    s2 = var_residual
    sigma = math.sqrt(s2)
    theta = math.sqrt(max(var_subject, 0.0) / s2)
    gam = theta * theta
    den = 1 + ni * gam
    w0, w1, w2 = gam / den, 1 / den**2, -2 * ni / den**3
    a = exog.T @ exog - (sx * w0[:, None]).T @ sx
    a1, a2 = -(sx * w1[:, None]).T @ sx, -(sx * w2[:, None]).T @ sx
    b = exog.T @ y - sx.T @ (w0 * sy)
    b1, b2 = -sx.T @ (w1 * sy), -sx.T @ (w2 * sy)
    c = float(y @ y) - float(np.sum(w0 * sy * sy))
    c1, c2 = -float(np.sum(w1 * sy * sy)), -float(np.sum(w2 * sy * sy))
    ainv = np.linalg.inv(a)
    beta = ainv @ b
    beta1 = ainv @ (b1 - a1 @ beta)
    rss = c - float(b @ beta)
    rss1 = c1 - 2 * float(b1 @ beta) + float(beta @ a1 @ beta)
    rss2 = (c2 - 2 * float(b2 @ beta) - 2 * float(b1 @ beta1) + 2 * float(beta1 @ a1 @ beta)
            + float(beta @ a2 @ beta))
    ia1 = ainv @ a1
    d_g = float(np.sum(ni / den)) + float(np.trace(ia1)) + rss1 / s2
    d_gg = (-float(np.sum(ni**2 / den**2)) + float(np.trace(ainv @ a2))
            - float(np.sum(ia1 * ia1.T)) + rss2 / s2)
    d_gs = -2 * rss1 / sigma**3
    d_ss = -2 * (n_obs - p) / s2 + 6 * rss / s2**2
    # chain rule to theta (gamma = theta^2): D_tt = 4 theta^2 D_gg + 2 D_g
    hess = np.array([[4 * gam * d_gg + 2 * d_g, 2 * theta * d_gs],
                     [2 * theta * d_gs, d_ss]])
    ev, vec = np.linalg.eigh(hess)
    keep = ev > 1e-8
    vcov_vp = 2 * (vec[:, keep] / ev[keep]) @ vec[:, keep].T
    cov = s2 * ainv
    dv_theta = 2 * theta * s2 * np.diag(-ainv @ a1 @ ainv)
    dv_sigma = 2 * sigma * np.diag(ainv)
    grad = np.column_stack([dv_theta, dv_sigma])  # one row per coefficient
    denom = np.einsum("ij,jk,ik->i", grad, vcov_vp, grad)
    with np.errstate(divide="ignore", invalid="ignore"):
        df = np.where(denom > 0, 2 * np.diag(cov) ** 2 / denom, np.nan)
    return cov, df, hess


def _reml_crit(y: np.ndarray, exog: np.ndarray, codes: np.ndarray):
    """(crit(theta), parts): the profiled -2 REML (+ const) lme4 minimises over theta."""
    n_obs, p = exog.shape
    parts, ni = _reml_parts(y, exog, codes)

    def crit(theta: float) -> float:
        gam, a, _, rss = parts(theta)
        sign, logdet = np.linalg.slogdet(a)
        if sign <= 0 or rss <= 0:
            return math.inf
        return float(np.sum(np.log1p(ni * gam)) + logdet + (n_obs - p) * math.log(rss))

    return crit, parts


def _fit_at(parts, theta: float, n_obs: int, p: int, msgs: list[str]) -> dict:
    """Fixed effects (GLS) and variance components at theta (the vcov is _satterthwaite's)."""
    gam, _, beta, rss = parts(theta)
    s2 = rss / (n_obs - p)
    return {"fe": beta, "var_subject": gam * s2, "var_residual": s2, "warnings": msgs}


def _fit_statsmodels(y: np.ndarray, exog: np.ndarray, codes: np.ndarray) -> dict:
    """REML fit with statsmodels MixedLM, trying optimisers until one converges cleanly.

    statsmodels' optimisers stop with variance components ~1e-5 (relative) off
    the REML optimum, which moves a small Satterthwaite p in its 4th digit; so
    the converged theta = sqrt(var_subject / var_residual) is refined by bounded
    Brent on the same REML criterion within +-10 % of statsmodels' value (a
    boundary fit, theta = 0, is kept). Fixed effects, vcov (lme4's s2 (X'V^-1X)^-1)
    and components are then those at the refined theta; extra["engine"] still
    says statsmodels found the optimum.
    """
    from scipy.optimize import minimize_scalar
    from statsmodels.regression.mixed_linear_model import MixedLM

    model = MixedLM(y, exog, groups=codes, exog_re=np.ones((y.size, 1)))
    caught: list[str] = []
    for method in ("lbfgs", "bfgs", "powell", "nm"):
        with warnings.catch_warnings(record=True) as wlist:
            warnings.simplefilter("always")
            try:
                res = model.fit(reml=True, method=method)
            except (np.linalg.LinAlgError, ValueError) as exc:
                caught.append(f"{method}: {exc}")
                continue
        msgs = [str(w.message) for w in wlist
                if "converge" in str(w.message).lower() or "boundary" in str(w.message).lower()]
        if res.converged and not [m for m in msgs if "boundary" not in m.lower()]:
            s2, tau2 = float(res.scale), max(float(np.asarray(res.cov_re)[0, 0]), 0.0)
            theta = math.sqrt(tau2 / s2)
            crit, parts = _reml_crit(y, exog, codes)
            if theta > 0:
                opt = minimize_scalar(crit, bounds=(0.9 * theta, 1.1 * theta),
                                      method="bounded", options={"xatol": 1e-12})
                if opt.fun <= crit(theta):
                    theta = float(opt.x)
            return _fit_at(parts, theta, *exog.shape, msgs)
        caught.extend(f"{method}: {m}" for m in msgs or ["did not converge"])
    return {"reason": "mixed model did not converge (" + "; ".join(caught[:3]) + ")"}


def _fit_reml_intercept(y: np.ndarray, exog: np.ndarray, codes: np.ndarray) -> dict:
    """Closed-form REML of the random-intercept model, profiled over theta = sqrt(var_u / var_e).

    -2 REML = sum log(1 + n_i g) + log det A + (N - p) log RSS (+ const), the
    criterion lme4 minimises over theta; vcov(beta) = s2 A^-1 as lme4's vcov().
    """
    from scipy.optimize import minimize_scalar

    crit, parts = _reml_crit(y, exog, codes)
    # a coarse log grid finds the basin, bounded Brent refines it; theta = 0 is
    # the boundary fit lme4 reports as "singular".
    grid = np.concatenate(([0.0], np.logspace(-3, 2, 41)))
    vals = np.array([crit(t) for t in grid])
    if not np.isfinite(vals).any():
        return {"reason": "residual variance is zero or the design is singular"}
    i = int(np.argmin(vals))
    lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, grid.size - 1)]
    opt = minimize_scalar(crit, bounds=(lo, hi), method="bounded",
                          options={"xatol": 1e-10, "maxiter": 500})
    theta = float(opt.x) if opt.fun <= vals[i] else float(grid[i])
    return _fit_at(parts, theta, *exog.shape,
                   [] if theta > 0 else ["boundary (singular) fit"])


def mixed_model(long: pd.DataFrame, baseline: Any, subject: str = "subject",
                visit: str = "visit", value: str = "value",
                engine: str = "auto") -> list[TestResult]:
    """Random-intercept LMM value ~ visit (baseline reference), REML, Satterthwaite t.

    R lmerTest::lmer(value ~ visit + (1 | patient)), summary(m, ddf = "Satterthwaite"):
    estimate (= mean_diff) per visit vs baseline, statistic t = estimate / SE
    (SE from lme4's vcov), df (Satterthwaite), p and 95 % CI from that t.
    engine: "statsmodels" (MixedLM), "closed_form" (exact profiled REML, fast
    for large cohorts) or "auto" (statsmodels up to
    MIXED_STATSMODELS_MAX_SUBJECTS patients). Both match lmerTest to 4+ digits.
    Fewer than MIN_PAIRS patients: estimates only, no p.
    """
    if engine not in ("auto", "statsmodels", "closed_form"):
        raise ValueError(f"engine must be 'auto', 'statsmodels' or 'closed_form' (got {engine!r})")
    for col in (subject, visit, value):
        if col not in long.columns:
            raise ValueError(f"long must have a column {col!r}")
    df = long[[subject, visit, value]].copy()
    df[value] = _as_float(df[value], "value")
    df = df.dropna()
    levels = sorted(pd.unique(df[visit]).tolist())
    n_subj = int(df[subject].nunique())
    if baseline not in levels:
        return [_none("mixed_model", n_subj, f"baseline visit {baseline!r} has no observations")]
    others = [v for v in levels if v != baseline]
    n_obs = len(df)
    if engine == "auto":
        engine = "statsmodels" if n_subj <= MIXED_STATSMODELS_MAX_SUBJECTS else "closed_form"
    base_extra = {"n_obs": n_obs, "n_subjects": n_subj, "baseline": _clean(baseline),
                  "engine": engine}

    def fail(reason: str) -> list[TestResult]:
        return [_none("mixed_model", n_subj, reason, visit=_clean(v), **base_extra)
                for v in others]

    if not others:
        return []
    if n_subj < 2 or df[value].nunique() < 2:
        return fail("fewer than 2 patients or a constant variable")
    vis = df[visit].to_numpy()
    exog = np.column_stack([np.ones(n_obs)] + [(vis == v).astype(float) for v in others])
    if n_obs <= exog.shape[1] or np.linalg.matrix_rank(exog.T @ exog) < exog.shape[1]:
        return fail("too few observations for the visit effects")
    y = df[value].to_numpy(dtype=float)
    codes = pd.factorize(df[subject])[0]
    fit = (_fit_statsmodels(y, exog, codes) if engine == "statsmodels"
           else _fit_reml_intercept(y, exog, codes))
    if "reason" in fit:
        return fail(fit["reason"])
    fe = fit["fe"]
    cov, ddf, _ = _satterthwaite(y, exog, codes, fit["var_subject"], fit["var_residual"])
    out = []
    for i, v in enumerate(others, start=1):
        est, se = float(fe[i]), math.sqrt(max(float(cov[i, i]), 0.0))
        dfi = _f(ddf[i])
        r = TestResult("mixed_model", n_subj, estimate=est, estimate_name="mean_difference",
                       mean_diff=est,
                       extra={**base_extra, "visit": _clean(v), "se": se,
                              "n_obs_visit": int(np.sum(vis == v)),
                              "var_subject": fit["var_subject"],
                              "var_residual": fit["var_residual"],
                              "warnings": list(fit["warnings"])})
        out.append(r)
        if not se > 0:
            r.reason = "standard error is zero"
            continue
        t = est / se
        r.statistic = t
        if n_subj < MIN_PAIRS:
            r.reason = _too_few_pairs(n_subj, "patients")
            continue
        if dfi is None:
            # no curvature in the variance parameters: Wald z, said so
            r.p_value, r.p_method = _p_norm2(t), "asymptotic"
            r.ci_low, r.ci_high = est - _z975() * se, est + _z975() * se
            _note(r.extra, "Satterthwaite df not computable; Wald z used")
            continue
        q = float(_st.t.ppf(0.975, dfi))
        r.df = dfi
        r.p_value, r.p_method = float(2 * _st.t.sf(abs(t), dfi)), "t_satterthwaite"
        r.ci_low, r.ci_high = est - q * se, est + q * se
    return out


# --------------------------------------------------------------------------- between groups


def _two_groups(method: str, values: Any, groups: Any):
    labels, arrays = _groups(values, groups)
    n = int(sum(a.size for a in arrays))
    if not arrays:
        return None, _none(method, 0, "all values missing")
    if len(arrays) == 1:
        return None, _none(method, n, "only one group with values", groups=labels)
    if len(arrays) > 2:
        return None, _none(method, n, f"needs exactly 2 groups (found {len(arrays)})",
                           groups=labels)
    return (labels, arrays, n), None


def _rank_sum_z(a: np.ndarray, b: np.ndarray, d: float, correct: bool) -> float:
    """R's W(d) in wilcox.test's two-sample CI code (a - d rounded, so a_i - d ties b_j)."""
    allv = _round_rank(np.concatenate([a - d, b]))
    r = _st.rankdata(allv)
    na, nb = a.size, b.size
    dz = r[:na].sum() - na * (na + 1) / 2.0 - na * nb / 2.0
    corr = math.copysign(0.5, dz) if (correct and dz != 0) else 0.0
    var = (na * nb / 12.0) * ((na + nb + 1) - _tie_sum(np.sort(allv)) / ((na + nb) * (na + nb - 1)))
    return (dz - corr) / math.sqrt(var) if var > 0 else math.nan


def _hl_two_sample(a: np.ndarray, b: np.ndarray, conf_level: float = 0.95,
                   exact: bool = False) -> dict:
    """HL shift a - b (median of the pairwise differences) and its CI as R's wilcox.test.

    exact=True (no ties, n1 + n2 <= EXACT_MAX_N): R wilcox.test(exact=TRUE,
    conf.int=TRUE), order statistics of the differences from the exact
    rank-sum distribution (level 1 - achieved alpha when 95 % is not
    achievable, as R). Else R wilcox.test(exact=FALSE, correct=TRUE,
    conf.int=TRUE), whose uniroot limits are pairwise differences, returned exactly.
    """
    table = _diff_table(a, b)
    if table is None:
        return {"hl_note": f"Hodges-Lehmann skipped: more than {HL_MAX_PAIRS} value pairs"}
    na, nb = a.size, b.size
    nn = float(na * nb)
    out: dict[str, Any] = {"hl_estimate": _median_table(table)}
    if exact:
        lo_k, hi_k, level = _exact_ci_ranks(_untied_cdf(na, nb), na * nb, conf_level)
        out.update({"hl_ci_low": _kth(table, lo_k), "hl_ci_high": _kth(table, hi_k),
                    "hl_conf_level": level, "hl_ci_method": "exact"})
        return out
    out["hl_ci_method"] = "asymptotic"
    mumin, mumax = float(a.min() - b.max()), float(a.max() - b.min())
    wmin, wmax = _rank_sum_z(a, b, mumin, True), _rank_sum_z(a, b, mumax, True)
    if not (math.isfinite(wmin) and math.isfinite(wmax)):
        out["hl_note"] = "CI not computable: all observations tied"
        return out
    alpha = 1 - conf_level
    zq = float(_st.norm.isf(alpha / 2))
    sigma = math.sqrt((na * nb / 12.0) * ((na + nb + 1) - (
        _tie_sum(np.sort(a)) + _tie_sum(np.sort(b))) / ((na + nb) * (na + nb - 1))))
    # root(zq): R returns an endpoint when the sign does not change inside.
    lo = mumin if wmin - zq <= 0 else (mumax if wmax - zq >= 0 else
                                       _kth(table, math.ceil(nn / 2 - 0.5 - zq * sigma)))
    hi = mumin if wmin + zq <= 0 else (mumax if wmax + zq >= 0 else
                                       _kth(table, math.ceil(nn / 2 + 0.5 + zq * sigma)))
    out.update({"hl_ci_low": lo, "hl_ci_high": hi})
    return out


def mann_whitney(values: Any, groups: Any, hodges_lehmann: bool = True,
                 exact_max_n: int = EXACT_MAX_N, conf_level: float = 0.95) -> TestResult:
    """Wilcoxon rank-sum (Mann-Whitney) test: exact conditional p up to exact_max_n patients.

    Values are rounded to RANK_DECIMALS, mid-ranks for ties. p_value: the
    exact conditional p (shift algorithm; R coin::wilcox_test(v ~ g,
    distribution="exact")) when n1 + n2 <= exact_max_n, else the normal
    approximation with continuity correction, tie-corrected (R
    wilcox.test(x ~ g, exact=FALSE, correct=TRUE)), which is kept as
    p_asymptotic either way. statistic is R's W (group1 rank sum minus
    n1(n1+1)/2, group1 = first label in sorted order); extra["z"], effect
    r = z/sqrt(N). estimate: the Hodges-Lehmann shift group1 - group2 with its
    CI (exact when p is exact and nothing is tied); no mean difference. A group
    of fewer than MIN_GROUP: W and the shift stay, no p and no CI.
    """
    _check_exact_max_n(exact_max_n)
    ok, bad = _two_groups("mann_whitney", values, groups)
    if bad:
        return bad
    labels, (a, b), n = ok
    a, b = _round_rank(a), _round_rank(b)
    na, nb = a.size, b.size
    r, ts = _rank_ties(np.concatenate([a, b]))
    w = float(r[:na].sum() - na * (na + 1) / 2.0)
    var = (na * nb / 12.0) * ((na + nb + 1) - ts / ((na + nb) * (na + nb - 1))) if n > 1 else 0.0
    extra: dict[str, Any] = {"group1": labels[0], "group2": labels[1], "n1": na, "n2": nb,
                             "W": w, "median1": float(np.median(a)),
                             "median2": float(np.median(b))}
    if var <= 0:
        return _none("mann_whitney", n, "all values are tied", **extra)
    zr = w - na * nb / 2.0
    z = (zr - math.copysign(0.5, zr) * (zr != 0)) / math.sqrt(var)  # group1 - group2, as R
    extra["z"] = z
    exact = n <= exact_max_n
    res = TestResult("mann_whitney", n, statistic=w, effect=z / math.sqrt(n), effect_name="r",
                     extra=extra)
    small = _small_groups_reason(labels, (na, nb))
    if hodges_lehmann:
        extra.update(_hl_two_sample(a, b, conf_level, exact=exact and ts == 0 and not small))
        res.estimate, res.estimate_name = extra.get("hl_estimate"), "hl_shift"
    if small:
        res.reason = small
        return res
    res.ci_low, res.ci_high = extra.get("hl_ci_low"), extra.get("hl_ci_high")
    res.p_asymptotic = _p_norm2(z)
    if exact:
        res.p_value, min_p = _rank_sum_exact(r, np.arange(n) < na)
        res.p_method = "exact"
        _min_p_note(extra, min_p, f"n = {labels[0]} {na}, {labels[1]} {nb}")
    else:
        res.p_value, res.p_method = res.p_asymptotic, "asymptotic"
    return res


def kruskal(values: Any, groups: Any) -> TestResult:
    """Kruskal-Wallis rank test, tie-corrected; R kruskal.test(x ~ g).

    Values rounded to RANK_DECIMALS before ranking. A group of fewer than
    MIN_GROUP: H stays, no p (reason names the groups). Any group under
    KRUSKAL_SMALL_GROUP: extra["note"] says the chi-square p is approximate and
    names the small groups.
    """
    labels, arrays = _groups(values, groups)
    n = int(sum(a.size for a in arrays))
    if not arrays:
        return _none("kruskal", 0, "all values missing")
    if len(arrays) < 2:
        return _none("kruskal", n, "only one group with values", groups=labels)
    r, ts = _rank_ties(_round_rank(np.concatenate(arrays)))
    sizes = np.array([a.size for a in arrays])
    idx = np.repeat(np.arange(len(arrays)), sizes)
    rs = np.bincount(idx, weights=r)
    denom = 1 - ts / (n**3 - n) if n > 1 else 0.0
    extra: dict[str, Any] = {"groups": labels, "sizes": sizes.tolist(), "df": len(arrays) - 1}
    if denom <= 0:
        return _none("kruskal", n, "all values are tied", **extra)
    h = (12.0 / (n * (n + 1)) * float(np.sum(rs**2 / sizes)) - 3 * (n + 1)) / denom
    k = len(arrays)
    res = TestResult("kruskal", n, statistic=h, df=float(k - 1),
                     effect=(h - k + 1) / (n - k) if n > k else None,
                     effect_name="eta_sq_h" if n > k else None, extra=extra)
    small = _small_groups_reason(labels, sizes.tolist())
    if small:
        res.reason = small
        return res
    res.p_value, res.p_method = float(_st.chi2.sf(h, k - 1)), "chi_square"
    under = [(lab, int(m)) for lab, m in zip(labels, sizes) if m < KRUSKAL_SMALL_GROUP]
    if under:
        _note(extra, "Kruskal–Wallis p is a chi-square approximation, unreliable with groups "
              f"under {KRUSKAL_SMALL_GROUP}: " + ", ".join(f"{lab} (n = {m})" for lab, m in under))
        extra["small_groups"] = {str(lab): m for lab, m in under}
    return res


def welch_t(values: Any, groups: Any, conf_level: float = 0.95) -> TestResult:
    """Welch two-sample t-test; R t.test(x ~ g): mean_diff = group1 - group2."""
    ok, bad = _two_groups("welch_t", values, groups)
    if bad:
        return bad
    labels, (a, b), n = ok
    extra: dict[str, Any] = {"group1": labels[0], "group2": labels[1], "n1": a.size,
                             "n2": b.size, "mean1": float(a.mean()), "mean2": float(b.mean())}
    small = _small_groups_reason(labels, (a.size, b.size))
    if small:
        return _none("welch_t", n, small, **extra)
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    se = math.sqrt(va + vb)
    md = float(a.mean() - b.mean())
    if se < 10 * np.finfo(float).eps * max(abs(a.mean()), abs(b.mean())) or se == 0:
        r = _none("welch_t", n, "constant variable (SD 0 in both groups)", **extra)
        r.mean_diff = r.estimate = md
        r.estimate_name = "mean_difference"
        return r
    df = (va + vb) ** 2 / (va**2 / (a.size - 1) + vb**2 / (b.size - 1))
    t = md / se
    q = float(_st.t.ppf(1 - (1 - conf_level) / 2, df))
    sp = math.sqrt(((a.size - 1) * a.var(ddof=1) + (b.size - 1) * b.var(ddof=1)) / (n - 2))
    return TestResult("welch_t", n, statistic=t, p_value=float(2 * _st.t.sf(abs(t), df)),
                      p_method="t", estimate=md, estimate_name="mean_difference",
                      mean_diff=md, ci_low=md - q * se, ci_high=md + q * se, df=float(df),
                      effect=md / sp if sp > 0 else None,
                      effect_name="cohen_d" if sp > 0 else None, extra=extra)


def _table(table_or_a: Any, b: Any = None) -> tuple[np.ndarray, list, list]:
    """Contingency table from a 2-D array/DataFrame, or from two label arrays (NA pairs dropped)."""
    if b is not None:
        sa = pd.Series(list(table_or_a))
        sb = pd.Series(list(b))
        if len(sa) != len(sb):
            raise ValueError(f"b must have the same length as a ({len(sb)} vs {len(sa)})")
        ok = sa.notna() & sb.notna()
        ct = pd.crosstab(sa[ok].to_numpy(), sb[ok].to_numpy())
        return ct.to_numpy(dtype=float), [_clean(x) for x in ct.index], [
            _clean(x) for x in ct.columns]
    if isinstance(table_or_a, pd.DataFrame):
        t = table_or_a.to_numpy(dtype=float)
        rows, cols = list(table_or_a.index), list(table_or_a.columns)
    else:
        t = np.asarray(table_or_a, dtype=float)
        if t.ndim != 2:
            raise ValueError(f"table must be two-dimensional (got shape {t.shape})")
        rows, cols = list(range(t.shape[0])), list(range(t.shape[1]))
    if np.isnan(t).any() or (t < 0).any():
        raise ValueError("table must hold non-negative counts")
    return t, [_clean(x) for x in rows], [_clean(x) for x in cols]


def _drop_empty(t: np.ndarray, rows: list, cols: list):
    rk, ck = t.sum(axis=1) > 0, t.sum(axis=0) > 0
    return t[rk][:, ck], [r for r, k in zip(rows, rk) if k], [c for c, k in zip(cols, ck) if k]


def chi2(table_or_a: Any, b: Any = None) -> TestResult:
    """Pearson chi-square, Yates-corrected on 2x2; R chisq.test. Empty rows/columns dropped."""
    t, rows, cols = _drop_empty(*_table(table_or_a, b))
    n = int(t.sum())
    extra: dict[str, Any] = {"rows": rows, "cols": cols, "table": t.astype(int).tolist()}
    if t.shape[0] < 2 or t.shape[1] < 2:
        return _none("chi2", n, "table has fewer than 2 non-empty rows or columns", **extra)
    e = np.outer(t.sum(axis=1), t.sum(axis=0)) / n
    yates = t.shape == (2, 2)
    if yates:
        diff = np.abs(t - e)
        stat = float(np.sum((diff - np.minimum(0.5, diff)) ** 2 / e))
    else:
        stat = float(np.sum((t - e) ** 2 / e))
    dof = (t.shape[0] - 1) * (t.shape[1] - 1)
    extra.update({"yates": yates, "min_expected": float(e.min()),
                  "expected_below_5": int(np.sum(e < 5))})
    if e.min() < 5:
        extra["warning"] = "Chi-squared approximation may be incorrect (expected count < 5)"
    v = math.sqrt(stat / (n * (min(t.shape) - 1)))
    return TestResult("chi2", n, statistic=stat, p_value=float(_st.chi2.sf(stat, dof)),
                      p_method="chi_square", df=float(dof), effect=v, effect_name="cramers_v", extra=extra)


def fisher(table_or_a: Any, b: Any = None, conf_int: bool = True) -> TestResult:
    """Fisher's exact test, 2x2 (conditional-MLE odds ratio and CI, as R prints) or r x c; R fisher.test."""
    t, rows, cols = _drop_empty(*_table(table_or_a, b))
    n = int(t.sum())
    extra: dict[str, Any] = {"rows": rows, "cols": cols, "table": t.astype(int).tolist()}
    if t.shape[0] < 2 or t.shape[1] < 2:
        return _none("fisher", n, "table has fewer than 2 non-empty rows or columns", **extra)
    ti = t.astype(np.int64)
    if ti.shape == (2, 2):
        p, min_p = _fisher_2x2_p(ti)
        _min_p_note(extra, min_p, f"n = {n}")
        if n > FISHER_CONDITIONAL_OR_MAX_N:
            # SciPy's conditional-MLE odds ratio evaluates the noncentral
            # hypergeometric pmf in a Python loop (about 2 s per table at n = 20,000),
            # so large tables get the sample odds ratio with Woolf's CI instead.
            w = odds_ratio_ci(ti)
            extra["odds_ratio_note"] = (f"sample odds ratio with Woolf CI (n > "
                                        f"{FISHER_CONDITIONAL_OR_MAX_N}; R prints the "
                                        "conditional MLE, which converges to it)")
            return TestResult("fisher", n, p_value=p, p_method="exact", estimate=w.effect,
                              estimate_name="odds_ratio", ci_low=w.ci_low, ci_high=w.ci_high,
                              effect=w.effect, effect_name="odds_ratio", extra=extra)
        orr = _st.contingency.odds_ratio(ti, kind="conditional")
        ci = orr.confidence_interval(0.95) if conf_int else None
        est = float(orr.statistic)
        if not math.isfinite(est):
            extra["odds_ratio_note"] = "odds ratio is infinite (a zero cell)"
        return TestResult("fisher", n, p_value=p, p_method="exact", estimate=_f(est),
                          estimate_name="odds_ratio", ci_low=_f(ci.low) if ci else None,
                          ci_high=_f(ci.high) if ci else None,
                          effect=_f(est), effect_name="odds_ratio", extra=extra)
    # SciPy's r x c fisher_exact is Monte Carlo by default (not reproducible) and
    # its exact permutation mode takes minutes, so the tables are enumerated here.
    p = _fisher_rxc_exact(ti)
    if p is None:
        return _none("fisher", n, f"Fisher's exact r x c too large to enumerate "
                     f"(more than {FISHER_MAX_TABLES} tables); use chi2", **extra)
    return TestResult("fisher", n, p_value=p, p_method="exact", extra=extra)


def _fisher_2x2_p(ti: np.ndarray) -> tuple[float, float]:
    """(p, min_p) of Fisher's exact 2x2 test as R's fisher.test: tables with d <= d_obs (1 + 1e-7).

    SciPy's own tolerance is 1e-14, so the sum is taken here to match R exactly.
    min_p is the p of the least probable table with these margins.
    """
    m, nn, k = int(ti[0].sum()), int(ti[1].sum()), int(ti[:, 0].sum())
    support = np.arange(max(0, k - nn), min(k, m) + 1)
    logd = _st.hypergeom.logpmf(support, m + nn, m, k)
    obs = float(_st.hypergeom.logpmf(ti[0, 0], m + nn, m, k))
    p = float(min(1.0, np.exp(logd[logd <= obs + math.log1p(1e-7)]).sum()))
    lo = float(logd.min())
    min_p = float(min(1.0, np.exp(logd[logd <= lo + math.log1p(1e-7)]).sum()))
    return p, min_p


FISHER_CONDITIONAL_OR_MAX_N = 2_000  # above: sample OR + Woolf CI (see fisher)
FISHER_MAX_TABLES = 5_000_000  # partial tables enumerated before giving up (~1 s)


@lru_cache(maxsize=4096)
def _compositions(m: int, bounds: tuple[int, ...]) -> np.ndarray:
    """All vectors x with sum m and 0 <= x_i <= bounds_i (one per row)."""
    head = [np.arange(min(b, m) + 1) for b in bounds[:-1]]
    if not head:
        return np.array([[m]]) if m <= bounds[0] else np.empty((0, 1), dtype=np.int64)
    grid = np.stack([g.ravel() for g in np.meshgrid(*head, indexing="ij")], axis=1)
    last = m - grid.sum(axis=1)
    ok = (last >= 0) & (last <= bounds[-1])
    return np.column_stack([grid[ok], last[ok]]).astype(np.int64)


def _fisher_rxc_exact(t: np.ndarray) -> float | None:
    """Exact two-sided r x c Fisher p (tables no more probable than the observed), as R's.

    Enumerates the table column by column; partial tables are grouped by their
    remaining row sums (coded as one integer). None when more than
    FISHER_MAX_TABLES partial tables would be needed.
    """
    from scipy.special import gammaln

    if t.shape[0] > t.shape[1]:
        t = t.T
    rows, cols = t.sum(axis=1).astype(np.int64), t.sum(axis=0).astype(np.int64)
    n = int(t.sum())
    const = float(gammaln(rows + 1).sum() + gammaln(cols + 1).sum() - gammaln(n + 1))
    obs = const - float(gammaln(t + 1).sum())
    radix = np.concatenate(([1], np.cumprod(rows[:-1] + 1))).astype(np.int64)
    states = rows[None, :]  # distinct remaining row sums
    state_of = np.zeros(1, dtype=np.int64)  # state index of each partial table
    cost = np.zeros(1)  # sum of log(x!) over the partial table's cells
    for c in cols[:-1]:
        order = np.argsort(state_of, kind="stable")
        state_of, cost = state_of[order], cost[order]
        bounds = np.searchsorted(state_of, np.arange(len(states) + 1))
        # cheap upper bound on the work (box size, ignoring the sum constraint)
        box = np.prod(np.minimum(states[:, :-1], c) + 1, axis=1).astype(float)
        if float(np.diff(bounds) @ box) > 2 * FISHER_MAX_TABLES:
            return None
        comps = [_compositions(int(c), tuple(int(v) for v in st)) for st in states]
        if sum((bounds[i + 1] - bounds[i]) * len(cp) for i, cp in enumerate(comps)) > (
                FISHER_MAX_TABLES):
            return None
        new_codes, new_cost = [], []
        for i, cp in enumerate(comps):
            if not len(cp):
                continue
            part = cost[bounds[i]: bounds[i + 1]]
            new_cost.append((part[:, None] + gammaln(cp + 1).sum(axis=1)[None, :]).ravel())
            codes = (states[i] - cp) @ radix
            new_codes.append(np.tile(codes, part.size))
        uniq, state_of = np.unique(np.concatenate(new_codes), return_inverse=True)
        cost = np.concatenate(new_cost)
        states = (uniq[:, None] // radix[None, :]) % (rows + 1)[None, :]
    # the last column is forced: its cells are the remaining row sums
    logp = const - (cost + gammaln(states + 1).sum(axis=1)[state_of])
    # R: fisher.test counts tables with d <= d_obs * (1 + 1e-7)
    keep = logp <= obs + math.log1p(1e-7)
    return float(min(1.0, np.exp(logp[keep]).sum()))


def odds_ratio_ci(table: Any, conf_level: float = 0.95) -> TestResult:
    """Sample odds ratio ad/bc of a 2x2 [[a, b], [c, d]] with Woolf (log) CI.

    Rows are the two groups, columns (event, no event): OR = odds of the event
    in row 1 over row 2. A zero cell adds 0.5 to every cell (Haldane-Anscombe)
    and extra["haldane"] says so.
    """
    t, _, _ = _table(table)
    if t.shape != (2, 2):
        raise ValueError(f"table must be 2x2 (got {t.shape})")
    n = int(t.sum())
    if (t.sum(axis=1) == 0).any() or (t.sum(axis=0) == 0).any():
        return _none("odds_ratio", n, "a row or column of the table is empty")
    haldane = bool((t == 0).any())
    tt = t + 0.5 if haldane else t
    a, b_, c, d = tt.ravel()
    lor = math.log(a * d / (b_ * c))
    se = math.sqrt(1 / a + 1 / b_ + 1 / c + 1 / d)
    q = float(_st.norm.isf((1 - conf_level) / 2))
    return TestResult("odds_ratio", n, estimate=math.exp(lor), estimate_name="odds_ratio",
                      ci_low=math.exp(lor - q * se),
                      ci_high=math.exp(lor + q * se), effect=math.exp(lor),
                      effect_name="odds_ratio", extra={"haldane": haldane, "se_log_or": se})


def risk_difference_ci(table: Any, conf_level: float = 0.95) -> TestResult:
    """Risk difference row1 - row2 of a 2x2 [[events, non-events], ...] with Newcombe hybrid-score CI.

    Newcombe (1998) method 10: combines the two Wilson intervals (R
    prop.test(correct=FALSE)$conf.int for each row).
    """
    t, _, _ = _table(table)
    if t.shape != (2, 2):
        raise ValueError(f"table must be 2x2 (got {t.shape})")
    n1, n2 = t[0].sum(), t[1].sum()
    n = int(n1 + n2)
    if n1 == 0 or n2 == 0:
        return _none("risk_difference", n, "a group has no patients")
    p1, l1, u1 = proportion_ci(int(t[0, 0]), int(n1), conf_level=conf_level)
    p2, l2, u2 = proportion_ci(int(t[1, 0]), int(n2), conf_level=conf_level)
    rd = p1 - p2
    return TestResult("risk_difference", n, estimate=rd, estimate_name="risk_difference",
                      mean_diff=rd,
                      ci_low=rd - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2),
                      ci_high=rd + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2),
                      effect=rd, effect_name="risk_difference",
                      extra={"risk1": p1, "risk2": p2, "method": "newcombe_hybrid_score"})


def binary_contrast(k1: int, n1: int, k2: int, n2: int, conf_level: float = 0.95,
                    labels: Sequence[Any] = ("group1", "group2")) -> TestResult:
    """Response in group 1 (k1 of n1) vs group 2 (k2 of n2): risk difference, odds ratio, Fisher p.

    estimate: risk difference k1/n1 - k2/n2 with Newcombe's hybrid-score CI
    (ci_low/ci_high; risk_difference_ci); extra: odds_ratio with Woolf CI
    (or_ci_low/or_ci_high; Haldane 0.5 added to every cell when one is zero,
    extra["haldane"]), risk1, risk2; p_value: Fisher's exact test of the
    2x2 table (R fisher.test) with min_p and its note. A group of fewer than
    MIN_GROUP: estimates, no p.
    """
    for name, v in (("k1", k1), ("n1", n1), ("k2", k2), ("n2", n2)):
        if isinstance(v, bool) or int(v) != v or v < 0:
            raise ValueError(f"{name} must be a non-negative integer (got {v!r})")
    if k1 > n1 or k2 > n2:
        raise ValueError(f"k1 and k2 must not exceed n1 and n2 (got {k1}/{n1}, {k2}/{n2})")
    if len(labels) != 2:
        raise ValueError(f"labels must name the 2 groups (got {labels!r})")
    table = np.array([[k1, n1 - k1], [k2, n2 - k2]], dtype=np.int64)
    n = int(n1 + n2)
    extra: dict[str, Any] = {"group1": _clean(labels[0]), "group2": _clean(labels[1]),
                             "k1": int(k1), "n1": int(n1), "k2": int(k2), "n2": int(n2)}
    if n1 == 0 or n2 == 0:
        return _none("binary_contrast", n, "a group has no patients", **extra)
    rd = risk_difference_ci(table, conf_level)
    res = TestResult("binary_contrast", n, estimate=rd.estimate,
                     estimate_name="risk_difference", mean_diff=rd.estimate,
                     ci_low=rd.ci_low, ci_high=rd.ci_high, effect=rd.estimate,
                     effect_name="risk_difference", extra=extra)
    extra.update({"risk1": rd.extra["risk1"], "risk2": rd.extra["risk2"],
                  "rd_method": "newcombe_hybrid_score"})
    o = odds_ratio_ci(table, conf_level)
    if o.reason:
        extra["or_note"] = o.reason
    else:
        extra.update({"odds_ratio": o.estimate, "or_ci_low": o.ci_low, "or_ci_high": o.ci_high,
                      "haldane": o.extra["haldane"], "or_method": "woolf"})
    small = _small_groups_reason(labels, (int(n1), int(n2)))
    if small:
        res.reason = small
        return res
    if (table.sum(axis=0) == 0).any():
        _note(extra, "no test: every patient has the same outcome")
        res.reason = "every patient has the same outcome: no p-value"
        return res
    res.p_value, min_p = _fisher_2x2_p(table)
    res.p_method = "exact"
    _min_p_note(extra, min_p, f"n = {labels[0]} {n1}, {labels[1]} {n2}")
    return res


# --------------------------------------------------------------------------- survival


def _surv_inputs(time: Any, event: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ta, ea = _as_float(time, "time"), _as_float(event, "event")
    _same_length(time=ta, event=ea)
    ok = ~(np.isnan(ta) | np.isnan(ea))
    if np.any(ta[ok] < 0):
        raise ValueError("time must be non-negative")
    return ta, ea, ok


def kaplan_meier(time: Any, event: Any, conf_level: float = 0.95) -> pd.DataFrame:
    """Kaplan-Meier table at each distinct time; R survfit(Surv(time, event) ~ 1), conf.type "log" (R's default)."""
    ta, ea, ok = _surv_inputs(time, event)
    ta, ea = ta[ok], ea[ok] != 0
    cols = ["time", "n_risk", "n_event", "n_censor", "survival", "ci_low", "ci_high"]
    if ta.size == 0:
        return pd.DataFrame(columns=cols)
    ut, inv = np.unique(ta, return_inverse=True)
    n_event = np.bincount(inv, weights=ea.astype(float), minlength=ut.size)
    n_all = np.bincount(inv, minlength=ut.size).astype(float)
    n_risk = ta.size - np.concatenate(([0.0], np.cumsum(n_all)[:-1]))
    with np.errstate(divide="ignore", invalid="ignore"):
        surv = np.cumprod(1 - n_event / n_risk)
        # Greenwood variance of the cumulative hazard, as survfit's std.err.
        se = np.sqrt(np.cumsum(n_event / (n_risk * (n_risk - n_event))))
        q = float(_st.norm.isf((1 - conf_level) / 2))
        lo = np.exp(np.log(surv) - q * se)
        hi = np.minimum(1.0, np.exp(np.log(surv) + q * se))
    bad = ~np.isfinite(se) | (surv <= 0)
    lo[bad], hi[bad] = np.nan, np.nan
    return pd.DataFrame({"time": ut, "n_risk": n_risk.astype(int), "n_event": n_event.astype(int),
                         "n_censor": (n_all - n_event).astype(int), "survival": surv,
                         "ci_low": lo, "ci_high": hi})


def logrank(time: Any, event: Any, groups: Any) -> TestResult:
    """Log-rank test across groups; R survival::survdiff(Surv(time, event) ~ g)."""
    ta, ea, ok = _surv_inputs(time, event)
    g = pd.Series(groups.to_numpy() if isinstance(groups, pd.Series) else list(groups))
    if len(g) != len(ta):
        raise ValueError(f"groups must have the same length as time ({len(g)} vs {len(ta)})")
    ok &= g.notna().to_numpy()
    ta, ea, gv = ta[ok], ea[ok] != 0, g[ok].to_numpy()
    n = int(ta.size)
    if n == 0:
        return _none("logrank", 0, "all values missing")
    codes, labels = pd.factorize(gv, sort=True)
    k = len(labels)
    labels = [_clean(x) for x in labels]
    if k < 2:
        return _none("logrank", n, "only one group with values", groups=labels)
    ut, inv = np.unique(ta, return_inverse=True)
    nt = ut.size
    # d[t, g] events, c[t, g] all leaving at t; at risk = those with time >= t.
    d = np.zeros((nt, k))
    np.add.at(d, (inv, codes), ea.astype(float))
    c = np.zeros((nt, k))
    np.add.at(c, (inv, codes), 1.0)
    risk = c[::-1].cumsum(axis=0)[::-1]
    dt, rt = d.sum(axis=1), risk.sum(axis=1)
    obs = d.sum(axis=0)
    if dt.sum() == 0:
        return _none("logrank", n, "no events", groups=labels)
    exp = (risk * (dt / rt)[:, None]).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        f = np.where(rt > 1, dt * (rt - dt) / (rt**2 * (rt - 1)), 0.0)
    v = np.diag((f[:, None] * risk * rt[:, None]).sum(axis=0)) - (
        (f[:, None] * risk).T @ risk)
    oe = (obs - exp)[:-1]
    vv = v[:-1, :-1]
    stat = float(oe @ np.linalg.pinv(vv) @ oe)
    df = int(np.linalg.matrix_rank(vv))
    return TestResult("logrank", n, statistic=stat,
                      p_value=float(_st.chi2.sf(stat, df)) if df > 0 else None,
                      p_method="chi_square" if df > 0 else None,
                      df=float(df), reason=None if df > 0 else "no variance",
                      extra={"groups": labels, "observed": obs.tolist(),
                             "expected": exp.tolist()})


# --------------------------------------------------------------------------- descriptives


def describe(values: Any) -> dict:
    """n, mean, SD (n-1), SE, median, SPSS quartiles (R quantile type 6), min, max."""
    v = _as_float(values, "values")
    v = v[~np.isnan(v)]
    n = int(v.size)
    keys = ["mean", "sd", "se", "median", "p25", "p75", "min", "max"]
    if n == 0:
        return {"n": 0, **{k: None for k in keys}}
    sd = float(v.std(ddof=1)) if n > 1 else None
    p25, med, p75 = np.percentile(v, [25, 50, 75], method="weibull")
    return {"n": n, "mean": float(v.mean()), "sd": sd,
            "se": sd / math.sqrt(n) if sd is not None else None,
            "median": float(med), "p25": float(p25), "p75": float(p75),
            "min": float(v.min()), "max": float(v.max())}


@functools.lru_cache(maxsize=8)
def _z(conf_level: float) -> float:
    """Two-sided normal quantile (1.959964 for 95 %); cached, pages ask for it hundreds of times.

    The standard library's inverse normal (Wichura's AS241, within one unit in the last
    place of SciPy's), so a page showing only rates never has to import SciPy.
    """
    return statistics.NormalDist().inv_cdf((1 + conf_level) / 2)


def proportion_ci(k: int, n: int, method: str = "wilson",
                  conf_level: float = 0.95) -> tuple[float | None, float | None, float | None]:
    """(rate, low, high): Wilson = R prop.test(k, n, correct=FALSE); clopper_pearson = R binom.test."""
    if method not in ("wilson", "clopper_pearson"):
        raise ValueError(f"method must be 'wilson' or 'clopper_pearson' (got {method!r})")
    if n is None or n <= 0:
        return (None, None, None)
    if not 0 <= k <= n:
        raise ValueError(f"k must be between 0 and n (k={k}, n={n})")
    p = k / n
    alpha = 1 - conf_level
    if method == "clopper_pearson":
        lo = 0.0 if k == 0 else float(_st.beta.ppf(alpha / 2, k, n - k + 1))
        hi = 1.0 if k == n else float(_st.beta.ppf(1 - alpha / 2, k + 1, n - k))
        return (p, lo, hi)
    z = _z(conf_level)
    z22n = z * z / (2 * n)
    half = z * math.sqrt(p * (1 - p) / n + z22n / (2 * n))
    hi = 1.0 if p >= 1 else (p + z22n + half) / (1 + 2 * z22n)
    lo = 0.0 if p <= 0 else (p + z22n - half) / (1 + 2 * z22n)
    return (p, lo, hi)


_ADJUST = {"none", "bonferroni", "holm", "bh"}


def adjust_p(pvalues: Sequence[float | None], method: str) -> list[float | None]:
    """Multiplicity-adjusted p-values as R p.adjust; None/NaN kept in place and not counted."""
    m = method.lower()
    m = {"fdr": "bh", "benjamini-hochberg": "bh"}.get(m, m)
    if m not in _ADJUST:
        raise ValueError(f"method must be one of {sorted(_ADJUST)} (got {method!r})")
    p = np.array([np.nan if v is None else float(v) for v in pvalues], dtype=float)
    ok = ~np.isnan(p)
    q = p[ok]
    n = q.size
    if m == "none" or n == 0:
        adj = q
    elif m == "bonferroni":
        adj = np.minimum(1.0, q * n)
    elif m == "holm":
        o = np.argsort(q, kind="stable")
        a = np.minimum(1.0, np.maximum.accumulate((n - np.arange(n)) * q[o]))
        adj = np.empty(n)
        adj[o] = a
    else:
        o = np.argsort(-q, kind="stable")
        i = np.arange(n, 0, -1)
        a = np.minimum(1.0, np.minimum.accumulate(n / i * q[o]))
        adj = np.empty(n)
        adj[o] = a
    out: list[float | None] = [None] * len(p)
    for pos, val in zip(np.flatnonzero(ok), adj):
        out[pos] = float(val)
    return out


# --------------------------------------------------------------------------- automatic choice


def _shapiro(v: np.ndarray) -> float | None:
    if v.size < 3 or np.ptp(v) == 0:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p = _st.shapiro(v).pvalue
    return _f(p)


def choose_paired_method(x: Any, y: Any, alpha: float = 0.05) -> tuple[str, str]:
    """("paired_t" | "wilcoxon", reason) from Shapiro-Wilk on the differences at alpha."""
    xa, ya = _pairs(x, y)
    d = xa - ya
    if d.size < 3:
        return "wilcoxon", f"too few pairs (n = {d.size}) to check normality; rank test used"
    p = _shapiro(d)
    if p is None:
        return "wilcoxon", "differences are constant; normality cannot be checked"
    if p >= alpha:
        return "paired_t", f"differences look normal (Shapiro-Wilk p = {p:.2g})"
    return "wilcoxon", f"differences are not normal (Shapiro-Wilk p = {p:.2g})"


def choose_group_method(values: Any, groups: Any, alpha: float = 0.05) -> tuple[str, str]:
    """("welch_t" | "mann_whitney" | "kruskal", reason) from Shapiro-Wilk within each group."""
    _labels, arrays = _groups(values, groups)
    if len(arrays) > 2:
        return "kruskal", f"{len(arrays)} groups: Kruskal-Wallis (no parametric test offered)"
    if len(arrays) < 2:
        return "mann_whitney", "fewer than 2 groups with values"
    ps = [_shapiro(a) for a in arrays]
    if any(p is None for p in ps):
        return "mann_whitney", "a group is too small or constant to check normality; rank test used"
    worst = min(ps)
    if worst >= alpha:
        return "welch_t", f"values look normal in both groups (smallest Shapiro-Wilk p = {worst:.2g})"
    return "mann_whitney", f"values are not normal in a group (Shapiro-Wilk p = {worst:.2g})"


PAIRED_METHODS = ("paired_t", "wilcoxon")
GROUP_METHODS = ("welch_t", "mann_whitney", "kruskal")


def compare_paired(x: Any, y: Any, method: str = "auto") -> TestResult:
    """Paired comparison by `method` ("auto" picks via choose_paired_method); extra["choice"] says why."""
    if method not in ("auto", *PAIRED_METHODS):
        raise ValueError(f"method must be 'auto' or one of {PAIRED_METHODS} (got {method!r})")
    if method == "auto":
        method, why = choose_paired_method(x, y)
    else:
        why = "chosen by the user"
    r = paired_t(x, y) if method == "paired_t" else wilcoxon(x, y)
    r.extra["choice"] = why
    return r


def compare_groups(values: Any, groups: Any, method: str = "auto") -> TestResult:
    """Between-group comparison by `method` ("auto" via choose_group_method); extra["choice"] says why."""
    if method not in ("auto", *GROUP_METHODS):
        raise ValueError(f"method must be 'auto' or one of {GROUP_METHODS} (got {method!r})")
    if method == "auto":
        method, why = choose_group_method(values, groups)
    else:
        why = "chosen by the user"
    fn = {"welch_t": welch_t, "mann_whitney": mann_whitney, "kruskal": kruskal}[method]
    r = fn(values, groups)
    r.extra["choice"] = why
    return r
