"""Disclosure control for shared mode: the rules every number passes before a viewer sees it.

Pure functions; the output seam applies them to each result it sends to a viewer
(screen, downloads and `report --shared` alike). Threshold k (default 11, the
CMS / PCORnet cell-size rule; 5 at OHDSI-style sites):

- denominator gate (`gate`): a filter matching 1…k−1 patients, or leaving 1…k−1
  outside it (differencing against the cohort), shows only "fewer than k
  patients match";
- counts 1…k−1 are shown as "<k", 0 is shown (`Status.SMALL`);
- complementary suppression (`protect`, `protect_frame`): more counts are
  withheld ("—", `Status.SUPPRESSED`) until no small count can be narrowed from
  the visible totals, margins and denominators — the attacker learns nothing
  beyond "<k" about any small cell (checked by linear programming);
- percentages and rates only where numerator and denominator are both shown,
  neither is under k and neither is their difference (`rates` in `TableSpec`);
- means, SD, SE, medians, quartiles only where n ≥ k (`stats`); minima and
  maxima never (`extremes`);
- p-values, test statistics and model estimates only when every compared group
  has n ≥ k (`tests`, `compared_n`, or `tests_allowed`);
- Kaplan–Meier (`km`): groups under k hidden, curves cut where the number at
  risk falls under k, no censoring (nor event) counts;
- adverse-event terms with 1…k−1 patients folded into "Other" (`fold_rare`);
- patient-level tables are never shown (`TableSpec.kind`).

The attacker model of `protect`: they know the algorithm, every displayed
number, every linear relation declared (a total is the sum of its parts, a
denominator is numerator plus complement), that a "<k" cell lies in 1…k−1,
that a "—" cell is at least k (complements are only chosen among cells ≥ k),
and — conservatively — that an implicit cell (a complement d − x or an unseen
remainder) which is small lies in 1…k−1. For tables whose relations form a
two-way table with margins the LP bounds are the exact integer bounds (the
constraint matrix is totally unimodular); for other linked relations they are
the LP relaxation's (an attacker with integer programming could sometimes do
slightly better).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np
import pandas as pd

from .access import DEFAULT_MIN_CELL
from .lazy import LazyModule

_optimize = LazyModule("scipy.optimize")

DEFAULT_K = DEFAULT_MIN_CELL  # one default for the hosting setting and the rules (11)
SUPPRESSED_MARK = "—"
WITHHELD_MARK = "—"
_EPS = 1e-6
MAX_TRIALS = 4  # candidates tried per step (each costs two small LPs)


class Status(StrEnum):
    """What happens to one value of a table in shared mode."""

    SHOWN = "shown"            # printed as it is
    SMALL = "small"            # a count 1…k−1, printed "<k"
    SUPPRESSED = "suppressed"  # a count ≥ k withheld to protect a small one ("—")
    HIDDEN = "hidden"          # an implicit cell (d − x, a remainder): never printed
    WITHHELD = "withheld"      # a rate, statistic or test withheld by a rule ("—")


def small_label(k: int) -> str:
    """How a count 1…k−1 is printed."""
    return f"<{k}"


def is_small(n: Any, k: int) -> bool:
    """A count 1…k−1 (0 is not small: zero cells are shown)."""
    return n is not None and not _isnan(n) and 1 <= n < k


def _isnan(x: Any) -> bool:
    try:
        return bool(pd.isna(x))
    except (TypeError, ValueError):
        return False


def count_label(n: Any, k: int) -> str:
    """A single count as a viewer sees it: '<k' for 1…k−1, the number otherwise."""
    if n is None or _isnan(n):
        return ""
    return small_label(k) if is_small(n, k) else f"{int(n)}"


# --- the simple rules -------------------------------------------------------------------------


@dataclass(frozen=True)
class Gate:
    """The denominator gate's answer for a filter: show results, or only `message`."""

    ok: bool
    message: str = ""


def gate(matching: int, total: int, k: int = DEFAULT_K) -> Gate:
    """Results for a filter matching `matching` of `total` patients, or only a message.

    Differencing: a filter leaving 1…k−1 patients outside it lets anyone subtract
    its counts from the unfiltered cohort's, so it is refused like a small one.
    """
    if matching < 0 or total < matching:
        raise ValueError(f"matching {matching} must lie in 0…total ({total})")
    if matching == 0:
        return Gate(False, "No patient matches this filter.")
    if matching < k:
        return Gate(False, f"Fewer than {k} patients match this filter.")
    if 0 < total - matching < k:
        return Gate(False, f"Fewer than {k} patients match this filter's complement (the "
                           "patients it leaves out), so its numbers could be subtracted from "
                           "the whole cohort's. Widen or remove a criterion.")
    return Gate(True)


def split_gate(group_ns: Iterable[int], total: int, k: int = DEFAULT_K) -> Gate:
    """Results split by a grouping only when every group passes the denominator gate.

    A group of 1…k−1 patients, or one leaving 1…k−1 outside it, would print its
    counts directly or as the difference from the unsplit column.
    """
    for n in group_ns:
        if n and not gate(int(n), int(total), k).ok:
            return Gate(False, f"Split this way, a group has fewer than {k} patients (or "
                               f"leaves fewer than {k} outside it); choose another grouping "
                               "or widen the filter.")
    return Gate(True)


def percent_allowed(numerator: Any, denominator: Any, k: int = DEFAULT_K) -> bool:
    """A proportion may be shown: denominator ≥ k, numerator and d − numerator not 1…k−1."""
    if numerator is None or denominator is None or _isnan(numerator) or _isnan(denominator):
        return False
    if denominator < k:
        return False
    return not is_small(numerator, k) and not is_small(denominator - numerator, k)


def stats_allowed(n: Any, k: int = DEFAULT_K) -> bool:
    """Mean, SD, SE, median, quartiles of n values may be shown (n ≥ k)."""
    return n is not None and not _isnan(n) and n >= k


def tests_allowed(group_ns: Iterable[Any], k: int = DEFAULT_K) -> bool:
    """A p-value or model comparing these groups may be shown (every group n ≥ k)."""
    ns = list(group_ns)
    return bool(ns) and all(stats_allowed(n, k) for n in ns)


# --- complementary suppression --------------------------------------------------------------


class Unprotectable(ValueError):
    """No choice of withheld cells protects every small count (e.g. a small pinned cell)."""


@dataclass
class CountProblem:
    """Counts and the linear relations a reader can use on them.

    `values[i]` is cell i's true count; `shown[i]` False marks an implicit cell
    (a complement d − x or an unseen remainder) that is never printed but can be
    derived; `pinned[i]` marks a count published elsewhere (the sidebar total),
    which must stay visible. Each line says sum(values[m] for m in members) ==
    values[total].
    """

    values: list[int] = field(default_factory=list)
    shown: list[bool] = field(default_factory=list)
    pinned: list[bool] = field(default_factory=list)
    lines: list[tuple[tuple[int, ...], int]] = field(default_factory=list)

    def cell(self, value: int, shown: bool = True, pinned: bool = False) -> int:
        """Add a cell; returns its index."""
        v = int(value)
        if v < 0:
            raise ValueError(f"a count cannot be negative ({value})")
        self.values.append(v)
        self.shown.append(bool(shown))
        self.pinned.append(bool(pinned))
        return len(self.values) - 1

    def by_cell(self) -> dict[int, list[int]]:
        """Lines each cell is in (cached until a line is added)."""
        cache = getattr(self, "_by_cell", None)
        if cache is None or cache[0] != len(self.lines):
            idx: dict[int, list[int]] = {}
            for li, (members, total) in enumerate(self.lines):
                for c in {*members, total}:
                    idx.setdefault(c, []).append(li)
            cache = self._by_cell = (len(self.lines), idx)
        return cache[1]

    def line(self, members: Sequence[int], total: int) -> None:
        """Declare values[total] == sum(values[members])."""
        members = tuple(int(m) for m in members)
        if sum(self.values[m] for m in members) != self.values[total]:
            raise ValueError(f"cells {members} add up to "
                             f"{sum(self.values[m] for m in members)}, not to their total "
                             f"{self.values[total]} (cell {total})")
        self.lines.append((members, int(total)))


class _Bounds:
    """What a reader knows about each cell from the marks (computed per cell on demand)."""

    def __init__(self, p: CountProblem, status: Sequence[Status], k: int):
        self.values, self.status, self.k = p.values, status, k

    def __getitem__(self, i: int) -> tuple[float, float | None]:
        v, s, k = self.values[i], self.status[i], self.k
        if s == Status.SHOWN:
            return (v, v)
        if s == Status.SMALL:
            return (1, k - 1)
        if s == Status.SUPPRESSED:
            return (k, None)  # complements are chosen only among cells >= k
        if 1 <= v < k:
            return (1, k - 1)  # conservative: assume the reader knows it is small
        return (0, None)


def _bounds(p: CountProblem, status: Sequence[Status], k: int) -> _Bounds:
    return _Bounds(p, status, k)


def _component(p: CountProblem, status: list[Status], start: int) -> tuple[list[int], list[int]]:
    """Cells and lines linked to `start` through lines holding an unprinted cell."""
    by_cell = p.by_cell()
    cells, lines, todo = {start}, set(), [start]
    while todo:
        c = todo.pop()
        for li in by_cell.get(c, []):
            if li in lines:
                continue
            lines.add(li)
            members, total = p.lines[li]
            for d in (*members, total):
                if d not in cells and status[d] != Status.SHOWN:
                    cells.add(d)
                    todo.append(d)
    return sorted(cells), sorted(lines)


class _Cycle(Exception):
    """The unprinted cells around a target form a cycle: interval propagation is not exact."""


def _tree_range(p: CountProblem, status: list[Status], bounds: list, target: int,
                by_cell: dict[int, list[int]]) -> tuple[float, float]:
    """Exact interval of `target` when its unprinted cells and lines form a tree.

    Rooted at the target, every line's other unprinted cells lead into disjoint
    subtrees, so the values a line allows are a sum of independent intervals
    (exact), intersected over the target's lines and its own bounds. Raises
    _Cycle when a cell is reached twice (then the LP decides).
    """
    seen = {target}

    def coef(c: int, li: int) -> float:
        return -1.0 if c == p.lines[li][1] else 1.0

    def interval(v: int, parent: int | None) -> tuple[float, float]:
        lo, hi = bounds[v]
        hi = math.inf if hi is None else hi
        for li in by_cell.get(v, ()):
            if li == parent:
                continue
            members, total = p.lines[li]
            s_lo = s_hi = 0.0
            for u in (*members, total):
                if u == v:
                    continue
                cu = coef(u, li)
                if status[u] == Status.SHOWN:
                    s_lo += cu * p.values[u]
                    s_hi += cu * p.values[u]
                    continue
                if u in seen:
                    raise _Cycle
                seen.add(u)
                u_lo, u_hi = interval(u, li)
                if cu > 0:
                    s_lo, s_hi = s_lo + u_lo, s_hi + u_hi
                else:
                    s_lo, s_hi = s_lo - u_hi, s_hi - u_lo
            # coef(v) * v + S = 0
            c_lo, c_hi = (-s_hi, -s_lo) if coef(v, li) > 0 else (s_lo, s_hi)
            lo, hi = max(lo, c_lo), min(hi, c_hi)
        return lo, hi

    return interval(target, None)


def _lp_range(p: CountProblem, status: list[Status], bounds: list,
              t: int) -> tuple[float, float]:
    """Interval of cell t by two linear programmes over its component (min and max)."""
    comp, lines = _component(p, status, t)
    var = {c: j for j, c in enumerate(comp)}
    rows, rhs = [], []
    for li in lines:
        members, total = p.lines[li]
        coef = np.zeros(len(comp))
        b = 0.0
        for c, sign in [*((m, 1.0) for m in members), (total, -1.0)]:
            if c in var:
                coef[var[c]] += sign
            else:
                b -= sign * p.values[c]
        if np.any(coef):
            rows.append(coef)
            rhs.append(b)
    box = [bounds[x] for x in comp]
    a_eq = np.array(rows) if rows else np.zeros((0, len(comp)))
    b_eq = np.array(rhs)
    fast = _highs_model(a_eq, b_eq, box)
    lo_hi = []
    for sense in (1.0, -1.0):
        c = np.zeros(len(comp))
        c[var[t]] = sense
        status_, fun = fast(c) if fast is not None else _linprog(c, a_eq, b_eq, box)
        if status_ == "unbounded":  # the reader cannot bound it at all
            lo_hi.append(math.inf * -sense)
        elif status_ != "optimal":
            raise RuntimeError(f"disclosure LP failed ({status_}); the true values "
                               "always satisfy it, so the declared lines are inconsistent")
        else:
            lo_hi.append(sense * fun)
    return lo_hi[0], lo_hi[1]


def _linprog(c, a_eq, b_eq, box) -> tuple[str, float]:
    """SciPy's linprog (HiGHS): the reference the fast path is tested against."""
    res = _optimize.linprog(c, A_eq=a_eq if len(a_eq) else None,
                            b_eq=b_eq if len(a_eq) else None, bounds=box, method="highs")
    return {0: "optimal", 3: "unbounded"}.get(res.status, res.message), res.fun


_HIGHS = threading.local()  # per thread: a HiGHS object is not thread-safe
_HIGHS_KEEP = 64


def _highs_model(a_eq: np.ndarray, b_eq: np.ndarray, box: list):
    """A solver for min c·x over one component, its model built once and reused.

    The same component is asked about for every cell in it and for every trial
    complement (the greedy loop): HiGHS re-solves a changed objective from the
    last basis in ~50 µs, where `linprog` re-validates and rebuilds in ~900 µs
    (Table 1 split in shared mode: ~1,000 programmes). Uses SciPy's bundled HiGHS
    (`scipy.optimize._highspy`, SciPy pinned in requirements.txt); None (then
    `linprog`) if that module is not there.
    """
    try:
        from scipy.optimize._highspy import _core as hc
    except ImportError:  # pragma: no cover — another SciPy: the public path
        return None
    key = (a_eq.shape, a_eq.tobytes(), b_eq.tobytes(), tuple(box))
    models = getattr(_HIGHS, "models", None)
    if models is None:
        models = _HIGHS.models = {}
    h = models.get(key)
    if h is None:
        n, m = a_eq.shape[1], a_eq.shape[0]
        lp = hc.HighsLp()
        lp.num_col_, lp.num_row_ = n, m
        lp.col_cost_ = np.zeros(n)
        lp.col_lower_ = np.array([lo for lo, _ in box], dtype=float)
        lp.col_upper_ = np.array([hc.kHighsInf if hi is None else hi for _, hi in box],
                                 dtype=float)
        lp.row_lower_ = lp.row_upper_ = b_eq.astype(float)
        cols = [np.flatnonzero(a_eq[:, j]) for j in range(n)]
        lp.a_matrix_.format_ = hc.MatrixFormat.kColwise
        lp.a_matrix_.start_ = np.cumsum([0, *map(len, cols)]).astype(np.int32)
        lp.a_matrix_.index_ = (np.concatenate(cols) if cols else np.zeros(0)).astype(np.int32)
        lp.a_matrix_.value_ = np.concatenate(
            [a_eq[r, j] for j, r in enumerate(cols)]) if cols else np.zeros(0)
        lp.a_matrix_.num_col_, lp.a_matrix_.num_row_ = n, m
        h = hc._Highs()
        h.setOptionValue("output_flag", False)
        h.passModel(lp)
        if len(models) >= _HIGHS_KEEP:
            models.pop(next(iter(models)))
        models[key] = h
    idx = np.arange(a_eq.shape[1], dtype=np.int32)
    optimal, unbounded = hc.HighsModelStatus.kOptimal, hc.HighsModelStatus.kUnbounded

    def solve(c: np.ndarray) -> tuple[str, float]:
        h.changeColsCost(len(idx), idx, c.astype(float))
        h.run()
        st = h.getModelStatus()
        if st == optimal:
            return "optimal", h.getInfo().objective_function_value
        if st == unbounded or st == hc.HighsModelStatus.kUnboundedOrInfeasible:
            return "unbounded", math.nan
        return str(st), math.nan

    return solve


def _nested_lines_reduced(p: CountProblem) -> CountProblem:
    """The same relations with nested sums written as steps (cached on `p`).

    Where one line's members are a proper subset of another's (a denominator that
    is some of the outcomes of the eligible: D = A + B + C, E = A + B + C + N), the
    larger line is rewritten through the smaller one's total (E = D + N). That is a
    row operation: the solutions, hence every range, are the same. But the
    unprinted cells now form a tree, so exact interval propagation decides instead
    of two linear programmes per cell (remission rates: 428 LPs → none).
    """
    cached = getattr(p, "_reduced", None)
    if cached is not None and cached[0] == len(p.lines):
        return cached[1]
    lines = [(tuple(m), t) for m, t in p.lines]
    order = sorted(range(len(lines)), key=lambda i: len(lines[i][0]))
    changed = False
    for i in order:
        members, total = lines[i]
        if len(set(members)) != len(members):
            continue
        rest = set(members)
        for j in order:
            sub, t_sub = lines[j]
            if j == i or not 2 <= len(sub) < len(members) or len(set(sub)) != len(sub):
                continue
            if set(sub) <= rest and t_sub not in rest and t_sub != total:
                rest = (rest - set(sub)) | {t_sub}
                changed = True
        if rest != set(members):
            lines[i] = (tuple(sorted(rest)), total)
    q = p
    if changed:
        q = CountProblem(p.values, p.shown, p.pinned, lines)
    p._reduced = (len(p.lines), q)
    return q


def ranges(p: CountProblem, status: Sequence[Status], k: int,
           cells: Iterable[int] | None = None) -> dict[int, tuple[float, float]]:
    """The interval a reader can narrow each unprinted cell to, given the declared lines.

    Exact interval propagation where the unprinted cells around a target form a
    tree (most tables: a numerator and its complement, one partition); a linear
    programme (HiGHS) where they form cycles (a two-way table with margins).
    """
    status = list(status)
    p = _nested_lines_reduced(p)
    targets = [i for i in (range(len(p.values)) if cells is None else cells)
               if status[i] != Status.SHOWN]
    bounds = _bounds(p, status, k)
    by_cell = p.by_cell()
    out: dict[int, tuple[float, float]] = {}
    for t in targets:
        try:
            out[t] = _tree_range(p, status, bounds, t, by_cell)
            continue
        except _Cycle:
            pass
        out[t] = _lp_range(p, status, bounds, t)
    return out


def _sensitive(p: CountProblem, status: list[Status], k: int) -> list[int]:
    return [i for i, (v, s) in enumerate(zip(p.values, status, strict=True))
            if 1 <= v < k and s in (Status.SMALL, Status.HIDDEN)]


def _candidates(p: CountProblem, status: list[Status], k: int, cell: int,
                depth: int = 2) -> list[int]:
    """Printed cells ≥ k within `depth` lines of `cell`, widening through unprinted cells.

    Depth 2 reaches the cell that closes a rectangle in a two-way table (the
    fourth corner), which protects better than a margin in the first line.
    """
    by_cell = p.by_cell()
    seen_lines: set[int] = set()
    frontier = {cell}
    visited = {cell}
    found: list[int] = []
    level = 0
    while frontier and (level < depth or not found):
        level += 1
        nxt: set[int] = set()
        for f in frontier:
            for li in by_cell.get(f, ()):
                if li in seen_lines:
                    continue
                seen_lines.add(li)
                members, total = p.lines[li]
                for c in (*members, total):
                    if status[c] == Status.SHOWN:
                        if p.values[c] >= k and not p.pinned[c] and c not in visited:
                            visited.add(c)
                            found.append(c)
                            nxt.add(c)
                    elif c not in visited:
                        visited.add(c)
                        nxt.add(c)
        frontier = nxt
    return found


def _all_withheld(p: CountProblem, status: list[Status], k: int) -> list[Status]:
    """The statuses with every printable cell ≥ k withheld (zeros and pinned stay)."""
    return [Status.SUPPRESSED if s == Status.SHOWN and v >= k and not pin else s
            for v, s, pin in zip(p.values, status, p.pinned, strict=True)]


def protect(p: CountProblem, k: int = DEFAULT_K) -> list[Status]:
    """Status of every cell: small ones "<k", complements withheld until none can be narrowed.

    Target: for every small cell, the interval a reader can derive is as wide as
    it would be with every count ≥ k withheld — the totals add nothing to what
    the marks say (usually the full 1…k−1; less only where the marks themselves
    bound it, e.g. two "<k" cells under a "<k" total).

    Greedy with an exact check (LP): while a small cell can be narrowed, try the
    printed cells ≥ k near it (members before totals, cells closing a cycle with
    another withheld cell first, then the smallest that could alone give it the
    full range, ≥ 2k − 1 − value) and withhold the first that protects it, else
    the one that widens its interval most. Raises Unprotectable when no
    candidate is left (a small count that is published elsewhere).
    """
    if k < 2:
        raise ValueError("k must be at least 2")
    status = [Status.SHOWN if s else Status.HIDDEN for s in p.shown]
    for i, v in enumerate(p.values):
        if status[i] == Status.SHOWN and 1 <= v < k:
            if p.pinned[i]:
                raise Unprotectable(f"cell {i} ({v}) is under {k} but published elsewhere")
            status[i] = Status.SMALL
    sensitive = _sensitive(p, status, k)
    if not sensitive:
        return status
    best_case = ranges(p, _all_withheld(p, status, k), k, sensitive)

    def protected(cell: int, r: tuple[float, float]) -> bool:
        lo, hi = best_case[cell]
        return r[0] <= lo + _EPS and r[1] >= hi - _EPS

    totals = {t for _, t in p.lines}
    # One pass suffices: withholding a cell only relaxes the reader's constraints
    # (its bound widens from its value to [k, ∞), which contains it), so a cell
    # once protected stays protected.
    for cell in sensitive:
        while not protected(cell, ranges(p, status, k, [cell])[cell]):
            cand = _candidates(p, status, k, cell)
            if not cand:
                raise Unprotectable(f"cell {cell} (value {p.values[cell]}) cannot be protected")
            need = 2 * k - 1 - p.values[cell]
            by_cell = p.by_cell()
            near = {c for u, st_u in enumerate(status) if st_u != Status.SHOWN and u != cell
                    for li in by_cell.get(u, ()) for c in (*p.lines[li][0], p.lines[li][1])}
            cand.sort(key=lambda c: (c in totals, c not in near, p.values[c] < need,
                                     p.values[c] if p.values[c] >= need else -p.values[c], c))
            best, best_width = cand[0], -1.0
            for c in cand[:MAX_TRIALS]:
                trial = list(status)
                trial[c] = Status.SUPPRESSED
                r = ranges(p, trial, k, [cell])[cell]
                if protected(cell, r):
                    best = c
                    break
                if r[1] - r[0] > best_width + _EPS:
                    best, best_width = c, r[1] - r[0]
            status[best] = Status.SUPPRESSED
    return status


def crosstab_problem(counts: Any, pin_grand_total: bool = False) -> tuple[CountProblem, dict]:
    """An r×c table with its row totals, column totals and grand total as a CountProblem.

    Returns the problem and the cell index of each position: (i, j) inner cells,
    ("row", i), ("col", j) and "total".
    """
    a = np.asarray(counts, dtype=np.int64)
    if a.ndim != 2:
        raise ValueError("counts must be a 2-D table")
    p = CountProblem()
    at: dict = {}
    r, c = a.shape
    for i in range(r):
        for j in range(c):
            at[(i, j)] = p.cell(a[i, j])
    for i in range(r):
        at[("row", i)] = p.cell(a[i].sum())
    for j in range(c):
        at[("col", j)] = p.cell(a[:, j].sum())
    at["total"] = p.cell(a.sum(), pinned=pin_grand_total)
    for i in range(r):
        p.line([at[(i, j)] for j in range(c)], at[("row", i)])
    for j in range(c):
        p.line([at[(i, j)] for i in range(r)], at[("col", j)])
    p.line([at[("row", i)] for i in range(r)], at["total"])
    p.line([at[("col", j)] for j in range(c)], at["total"])
    return p, at


# --- tables ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Partition:
    """Rows with equal `by` values split one total: their `count` cells add up to it.

    The total is either the column `total` of those rows (one shared quantity,
    e.g. the group's n), or the `count` cell of the row where column
    `total_row[0]` equals `total_row[1]` (e.g. the "Overall" row of a table split
    by group; that row is not a member). With `complete=False` an unseen
    remainder (missing values, patients outside every group) closes the sum.
    """

    count: str
    by: tuple[str, ...] = ()
    total: str | None = None
    total_row: tuple[str, Any] | None = None
    complete: bool = False

    def __post_init__(self):
        if (self.total is None) == (self.total_row is None):
            raise ValueError("a Partition needs exactly one of total= or total_row=")


@dataclass(frozen=True)
class TableSpec:
    """What each column of a result is, for the disclosure rules.

    counts      count column -> its denominator column in the same row (or None);
                a denominator implies the unseen complement d − x
    same        column -> key columns: rows with equal keys hold one quantity
                (e.g. a group's n repeated on every row of that group)
    partitions  rows whose counts add up to a total (Partition)
    pinned      count columns whose values are published elsewhere (the filter's
                patient count in the sidebar): never withheld
    rates       rate / percent / CI column -> the count column it is computed from
    stats       mean / SD / SE / median / quartile / CI column -> its n column
    extremes    minimum / maximum columns: never shown
    tests       p-value, statistic and model columns
    compared_n  per-row n columns of the groups a test compares
    row_sums    within one row, a total column and the sets of its parts: the first set
                whose counts add up to the total in that row is declared (a rate's
                denominator is achieved + not achieved + no assessment, say)
    kind        "aggregate" or "patient_level" (never shown in shared mode)
    """

    counts: Mapping[str, str | None] = field(default_factory=dict)
    same: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    partitions: tuple[Partition, ...] = ()
    pinned: tuple[str, ...] = ()
    rates: Mapping[str, str] = field(default_factory=dict)
    stats: Mapping[str, str] = field(default_factory=dict)
    extremes: tuple[str, ...] = ()
    tests: tuple[str, ...] = ()
    compared_n: tuple[str, ...] = ()
    row_sums: tuple[tuple[str, tuple[tuple[str, ...], ...]], ...] = ()
    kind: str = "aggregate"


@dataclass
class Protected:
    """A table after the rules: values withheld as missing, the status of every cell, notes."""

    frame: pd.DataFrame
    status: pd.DataFrame
    k: int
    notes: list[str] = field(default_factory=list)

    def display(self) -> pd.DataFrame:
        """The table as printed: '<k' for small counts, '—' for withheld values."""
        out = self.frame.astype(object)
        small = self.status == Status.SMALL
        gone = self.status.isin([Status.SUPPRESSED, Status.WITHHELD])
        out = out.mask(small, small_label(self.k)).mask(gone, WITHHELD_MARK)
        return out

    @property
    def withheld(self) -> bool:
        """True when at least one value was not printed as it is."""
        return bool((self.status != Status.SHOWN).to_numpy().any())


class _UnionFind:
    def __init__(self):
        self.parent: dict[Hashable, Hashable] = {}

    def find(self, x: Hashable) -> Hashable:
        self.parent.setdefault(x, x)
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, a: Hashable, b: Hashable) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[rb] = ra


def _count_columns(spec: TableSpec) -> list[str]:
    cols = list(spec.counts)
    for total, member_sets in spec.row_sums:
        for c in (total, *(m for ms in member_sets for m in ms)):
            if c not in cols:
                cols.append(c)
    for d in spec.counts.values():
        if d is not None and d not in cols:
            cols.append(d)
    for part in spec.partitions:
        for c in (part.count, part.total):
            if c is not None and c not in cols:
                cols.append(c)
    return cols


def protect_frame(df: pd.DataFrame, spec: TableSpec, k: int = DEFAULT_K,
                  group_ns: Sequence[int] | None = None) -> Protected:
    """Apply every rule of `spec` to a result table for a viewer (threshold k).

    `group_ns`: sizes of the groups the table's tests compare when they are not
    columns of the table (Table 1 split by sex: the two sexes' n).
    """
    if spec.kind != "aggregate":
        raise ValueError(f"a {spec.kind} table is never shown in shared mode; do not compute it")
    df = df.drop(columns=[c for c in spec.extremes if c in df.columns]).reset_index(drop=True)
    status = pd.DataFrame(Status.SHOWN.value, index=df.index, columns=df.columns, dtype=object)
    notes: list[str] = []
    # Plain lists: cell-by-cell pandas access was most of this function's time.
    vals = {c: df[c].tolist() for c in df.columns}
    count_cols = _count_columns(spec)
    missing = [c for c in count_cols if c not in df.columns]
    if missing:
        raise ValueError(f"TableSpec names count columns the table lacks: {missing}")

    # 1. Cell identities: repeated quantities (same, partition totals) are one cell.
    uf = _UnionFind()
    for c in count_cols:
        for i in df.index:
            if not _isnan(vals[c][i]):
                uf.find((c, i))
        if c in spec.same:
            first: dict[tuple, tuple] = {}
            for i in df.index:
                if _isnan(vals[c][i]):
                    continue
                key = tuple(None if _isnan(vals[x][i]) else vals[x][i] for x in spec.same[c])
                if key in first:
                    uf.union(first[key], (c, i))
                else:
                    first[key] = (c, i)
    groups: list[tuple[Partition, list[int]]] = []
    for part in spec.partitions:
        by = list(part.by)
        keys = df.groupby(by, dropna=False, sort=False).indices if by else {(): np.arange(len(df))}
        for rows in keys.values():
            rows = [int(r) for r in rows]
            groups.append((part, rows))
            if part.total is not None:
                live = [r for r in rows if not _isnan(vals[part.total][r])]
                for r in live[1:]:
                    uf.union((part.total, live[0]), (part.total, r))

    prob = CountProblem()
    index: dict[Hashable, int] = {}
    where: dict[int, list[tuple[int, str]]] = {}
    for c in count_cols:
        for i in df.index:
            v = vals[c][i]
            if _isnan(v):
                continue
            if float(v) != int(v):
                raise ValueError(f"count column {c!r} row {i} holds {v!r}, not a whole number")
            root = uf.find((c, i))
            if root not in index:
                index[root] = prob.cell(int(v), pinned=c in spec.pinned)
            elif prob.values[index[root]] != int(v):
                raise ValueError(f"{c!r} row {i} = {v} but the same quantity is "
                                 f"{prob.values[index[root]]} elsewhere (TableSpec.same)")
            where.setdefault(index[root], []).append((i, c))

    def cell_of(c: str, i: int) -> int | None:
        if _isnan(vals[c][i]):
            return None
        return index[uf.find((c, i))]

    # 2. Relations: partitions; numerator + complement = denominator where no partition
    # already links the two (the complement would only repeat the partition's other cells
    # and add cycles the LP then has to solve).
    covered: set[tuple[int, int]] = set()
    for part, rows in groups:
        if part.total_row is not None:
            tcol, val = part.total_row
            tot_rows = [r for r in rows if vals[tcol][r] == val]
            mem_rows = [r for r in rows if vals[tcol][r] != val]
            if not tot_rows:
                continue
            total = cell_of(part.count, tot_rows[0])
        else:
            mem_rows = rows
            live = [r for r in rows if not _isnan(vals[part.total][r])]
            total = cell_of(part.total, live[0]) if live else None
        if total is None:
            continue
        members = sorted({m for r in mem_rows if (m := cell_of(part.count, r)) is not None})
        if not members:  # e.g. a numeric variable's rows: no counts to split the total
            continue
        gap = prob.values[total] - sum(prob.values[m] for m in members)
        if gap < 0 or (part.complete and gap != 0):
            raise ValueError(f"partition of {part.count!r} by {part.by}: members add up to "
                             f"{sum(prob.values[m] for m in members)}, total is "
                             f"{prob.values[total]}")
        covered |= {(m, total) for m in members}
        if not part.complete:
            members.append(prob.cell(gap, shown=False))
        prob.line(members, total)
    for total, member_sets in spec.row_sums:
        for i in df.index:
            t = cell_of(total, i)
            if t is None:
                continue
            for members in member_sets:
                cells = [cell_of(m, i) for m in members]
                if any(x is None for x in cells):
                    continue
                if sum(prob.values[x] for x in cells) == prob.values[t]:
                    covered |= {(x, t) for x in cells}
                    prob.line(cells, t)
                    break
    for c, d in spec.counts.items():
        if d is None:
            continue
        for i in df.index:
            x, t = cell_of(c, i), cell_of(d, i)
            if x is None or t is None or (x, t) in covered:
                continue
            covered.add((x, t))
            rest = prob.values[t] - prob.values[x]
            if rest < 0:
                raise ValueError(f"{c!r} row {i} ({prob.values[x]}) exceeds its denominator "
                                 f"{d!r} ({prob.values[t]})")
            prob.line([x, prob.cell(rest, shown=False)], t)

    # 3. Small counts and their complements.
    try:
        cell_status = protect(prob, k)
    except Unprotectable:
        out = pd.DataFrame(np.nan, index=df.index, columns=df.columns, dtype=object)
        status[:] = Status.WITHHELD.value
        return Protected(out, status, k, [(f"This table cannot be shown without revealing a "
                                          f"count under {k}.")])
    frame = df.copy()
    for cell, places in where.items():
        s = cell_status[cell]
        for i, c in places:
            status.at[i, c] = s.value
    for c in count_cols:
        withheld = status[c] != Status.SHOWN
        if withheld.any():
            frame[c] = frame[c].astype("Float64").mask(withheld)

    def withhold(col: str, rows: pd.Series) -> None:
        if col not in frame.columns:
            return
        rows = rows & df[col].notna()  # a missing value has nothing to withhold
        if rows.any():
            status.loc[rows, col] = Status.WITHHELD.value
            frame[col] = frame[col].mask(rows)

    # 4. Rates: numerator and denominator printed, neither small, nor their difference.
    for col, num in spec.rates.items():
        den = spec.counts.get(num)
        bad = status[num] != Status.SHOWN
        if den is not None:
            bad |= status[den] != Status.SHOWN
            bad |= ~pd.Series([percent_allowed(vals[num][i], vals[den][i], k)
                               for i in df.index], index=df.index)
        else:
            bad |= df[num].map(lambda n: is_small(n, k))
        withhold(col, bad)
    # 5. Statistics of n values: n ≥ k and n printed.
    for col, ncol in spec.stats.items():
        n = df[ncol]
        bad = ~n.map(lambda x: stats_allowed(x, k))
        if ncol in status.columns:
            bad |= status[ncol] != Status.SHOWN
        withhold(col, bad)
    # 6. Tests and models: every compared group n ≥ k.
    if spec.tests:
        bad = pd.Series(False, index=df.index)
        for ncol in spec.compared_n:
            bad |= ~df[ncol].map(lambda x: stats_allowed(x, k))
        if group_ns is not None and not tests_allowed(group_ns, k):
            bad[:] = True
        for col in spec.tests:
            withhold(col, bad)

    if (status == Status.SMALL).to_numpy().any():
        notes.append(f"Counts of 1 to {k - 1} patients are shown as {small_label(k)}.")
    if (status == Status.SUPPRESSED).to_numpy().any():
        notes.append(f"{SUPPRESSED_MARK} marks a count withheld so that no count under {k} "
                     "can be worked out from the totals.")
    if (status == Status.WITHHELD).to_numpy().any():
        notes.append(f"{WITHHELD_MARK} marks a percentage, statistic or test withheld because "
                     f"it rests on fewer than {k} patients.")
    if spec.extremes:
        notes.append("Minimum and maximum are not shown.")
    return Protected(frame, status, k, notes)


# --- Kaplan–Meier and adverse-event terms ---------------------------------------------------


def km(df: pd.DataFrame, k: int = DEFAULT_K, *, group: str | None = "group",
       time: str = "time", n_risk: str = "n_risk",
       drop: Sequence[str] = ("n_event", "n_censor")) -> tuple[pd.DataFrame, list[str]]:
    """Kaplan–Meier rows a viewer may see: groups under k gone, curves cut at risk < k.

    A group's size is its number at risk at its first time. Event and censoring
    counts are dropped (no censoring ticks can be drawn from what is left).
    """
    notes: list[str] = []
    parts = []
    keys = list(pd.unique(df[group])) if group else [None]
    for g in keys:
        sub = (df[df[group] == g] if group else df).sort_values(time)
        if sub.empty:
            continue
        if sub[n_risk].iloc[0] < k:
            notes.append(f"Group {g} has fewer than {k} patients and is not shown."
                         if group else f"Fewer than {k} patients: no curve is shown.")
            continue
        below = (sub[n_risk] < k).to_numpy()
        if below.any():
            cut = int(np.argmax(below))
            notes.append(f"{'Group ' + str(g) + ': c' if group else 'C'}urve stops at "
                         f"{sub[time].iloc[cut - 1]:g}, the last time with at least {k} "
                         "patients at risk.")
            sub = sub.iloc[:cut]
        parts.append(sub)
    out = (pd.concat(parts, ignore_index=True) if parts
           else df.iloc[0:0].reset_index(drop=True))
    return out.drop(columns=[c for c in drop if c in out.columns]), notes


def fold_rare(rows: pd.DataFrame, term: str, patient: str, k: int = DEFAULT_K,
              other: str = "Other") -> pd.DataFrame:
    """Event rows with every term that 1…k−1 patients had relabelled `other`.

    Works on the event rows (before counting), so "Other" counts distinct
    patients correctly; a patient with two rare terms counts once.
    """
    if rows.empty:
        return rows.copy()
    per_term = rows.dropna(subset=[term]).groupby(term)[patient].nunique()
    rare = set(per_term[(per_term >= 1) & (per_term < k)].index)
    out = rows.copy()
    out[term] = out[term].where(~out[term].isin(rare), other)
    return out


def coarsen(df: pd.DataFrame, rule: Mapping[str, tuple[str, float]]) -> pd.DataFrame:
    """Minima and maxima a page needs, rounded outward instead of shown exactly.

    `rule`: column -> ("floor" or "ceil", step); e.g. an age slider's ends to the
    multiple of 5 below the youngest and above the oldest patient. Missing stays missing.
    """
    out = df.copy()
    for col, (how, step) in rule.items():
        fn = math.floor if how == "floor" else math.ceil
        out[col] = [None if pd.isna(v) else float(fn(float(v) / step) * step) for v in out[col]]
    return out
