"""Shared-mode disclosure rules: one parametrised table per rule, edges at k−1 / k,
complementary suppression on 2×2 and r×c tables checked by an independent brute-force
reader (every integer table consistent with what is printed), and the complement gate.
"""

import math

import numpy as np
import pandas as pd
import pytest

from lupus_dash import disclosure as d
from lupus_dash.disclosure import Partition, Status, TableSpec

# --- denominator gate (incl. the sidebar's "k of N") -----------------------------------------


@pytest.mark.parametrize(("matching", "total", "k", "ok", "says"), [
    (0, 26, 11, False, "No patient matches"),
    (1, 26, 11, False, "Fewer than 11 patients match this filter."),
    (3, 26, 11, False, "Fewer than 11 patients match this filter."),
    (10, 26, 11, False, "Fewer than 11 patients match this filter."),  # k − 1
    (11, 26, 11, True, ""),                                            # k; 15 outside
    (15, 26, 11, True, ""),                                            # 11 outside: k
    (16, 26, 11, False, "complement"),                                 # 10 outside: k − 1
    (25, 26, 11, False, "complement"),                                 # 1 outside
    (26, 26, 11, True, ""),                                            # nobody outside
    (10, 10, 11, False, "Fewer than 11 patients match"),               # tiny cohort
    (4, 26, 5, False, "Fewer than 5 patients match"),                  # OHDSI k = 5
    (5, 26, 5, True, ""),
    (22, 26, 5, False, "complement"),                                  # 4 outside
    (21, 26, 5, True, ""),                                             # 5 outside
])
def test_gate(matching, total, k, ok, says):
    g = d.gate(matching, total, k)
    assert g.ok is ok
    assert says in g.message


def test_gate_rejects_impossible_counts():
    with pytest.raises(ValueError):
        d.gate(27, 26)


# --- single values -----------------------------------------------------------------------------


@pytest.mark.parametrize(("n", "k", "label"), [
    (0, 11, "0"), (1, 11, "<11"), (10, 11, "<11"), (11, 11, "11"), (250, 11, "250"),
    (4, 5, "<5"), (5, 5, "5"), (float("nan"), 11, ""),
])
def test_count_label(n, k, label):
    assert d.count_label(n, k) == label


@pytest.mark.parametrize(("num", "den", "k", "ok"), [
    (0, 26, 11, True),      # 0 is printed, so is 0 %
    (1, 26, 11, False),
    (10, 26, 11, False),    # numerator k − 1
    (11, 26, 11, True),     # numerator k, difference 15
    (15, 26, 11, True),     # difference k
    (16, 26, 11, False),    # difference k − 1
    (26, 26, 11, True),     # difference 0 (everybody)
    (0, 10, 11, False),     # denominator k − 1
    (11, 11, 11, True),     # denominator k
    (3, 8, 5, False),       # k = 5: difference 5 but numerator 3
    (5, 10, 5, True),
    (float("nan"), 26, 11, False),
])
def test_percent_allowed(num, den, k, ok):
    assert d.percent_allowed(num, den, k) is ok


@pytest.mark.parametrize(("n", "k", "ok"), [
    (10, 11, False), (11, 11, True), (0, 11, False), (4, 5, False), (5, 5, True),
    (float("nan"), 11, False),
])
def test_stats_allowed(n, k, ok):
    assert d.stats_allowed(n, k) is ok


@pytest.mark.parametrize(("ns", "ok"), [
    ([11, 11], True), ([11, 10], False), ([40, 30, 10], False), ([40, 30, 11], True), ([], False),
])
def test_tests_allowed(ns, ok):
    assert d.tests_allowed(ns, 11) is ok


# --- complementary suppression: an independent reader ---------------------------------------


def brute_force_2d(table: np.ndarray, status: dict, k: int) -> dict:
    """Every value each unprinted inner cell can take, over all integer tables that print
    the same (printed cells equal, '<k' cells in 1…k−1, '—' cells ≥ k, margins as printed).

    A depth-first search, independent of the LP: the last unknown cell of a row or column
    with a printed total is fixed by it; partial sums are pruned against printed totals.
    """
    r, c = table.shape
    unknown = [(i, j) for i in range(r) for j in range(c) if status[(i, j)] != Status.SHOWN]
    row_tot = {i: int(table[i].sum()) for i in range(r) if status[("row", i)] == Status.SHOWN}
    col_tot = {j: int(table[:, j].sum()) for j in range(c) if status[("col", j)] == Status.SHOWN}
    grand = int(table.sum())
    cap = min([grand, *row_tot.values(), *col_tot.values()])

    def fits(s, v):
        return v >= k if s == Status.SUPPRESSED else (1 <= v < k if s == Status.SMALL else True)

    seen = {ij: set() for ij in unknown}
    t = table.astype(np.int64).copy()
    for ij in unknown:
        t[ij] = -1

    def last_in(line_cells, pos):
        return all(t[x] >= 0 for x in line_cells if x != pos)

    def search(n):
        if n == len(unknown):
            for i in range(r):
                if not fits(status[("row", i)], int(t[i].sum())):
                    return
            for j in range(c):
                if not fits(status[("col", j)], int(t[:, j].sum())):
                    return
            if status["total"] == Status.SHOWN and t.sum() != grand:
                return
            for ij in unknown:
                seen[ij].add(int(t[ij]))
            return
        i, j = unknown[n]
        row = [(i, x) for x in range(c)]
        col = [(x, j) for x in range(r)]
        if i in row_tot and last_in(row, (i, j)):
            values = [row_tot[i] - sum(int(t[x]) for x in row if x != (i, j))]
        elif j in col_tot and last_in(col, (i, j)):
            values = [col_tot[j] - sum(int(t[x]) for x in col if x != (i, j))]
        elif status["total"] == Status.SHOWN and n == len(unknown) - 1:
            values = [grand - int(t.sum()) - 1]  # t[i, j] is -1 here
        else:
            values = range(1, k) if status[(i, j)] == Status.SMALL else range(k, cap + 1)
        for v in values:
            if not fits(status[(i, j)], v):
                continue
            t[i, j] = v
            ok = all(sum(max(int(t[x]), 0) for x in row) <= row_tot[i] for _ in [0]
                     if i in row_tot) and all(
                sum(max(int(t[x]), 0) for x in col) <= col_tot[j] for _ in [0] if j in col_tot)
            if ok and status["total"] == Status.SHOWN:
                ok = int(np.maximum(t, 0).sum()) <= grand
            if ok:
                search(n + 1)
            t[i, j] = -1

    search(0)
    return seen


@pytest.mark.parametrize(("table", "k"), [
    ([[3, 40], [50, 60]], 11),      # one small cell: the rectangle is withheld
    ([[3, 12], [14, 20]], 11),
    ([[3, 8], [30, 25]], 11),       # two small cells in a row
    ([[2, 13], [11, 4]], 11),       # small cells on the diagonal
    ([[10, 11], [11, 10]], 11),     # edges: k − 1 and k
    ([[0, 14], [12, 13]], 11),      # a zero is printed and protects nothing
    ([[2, 6], [7, 9]], 5),          # k = 5
])
def test_2x2_no_small_cell_can_be_narrowed(table, k):
    t = np.array(table)
    p, at = d.crosstab_problem(t, pin_grand_total=True)
    s = d.protect(p, k)
    status = {pos: s[i] for pos, i in at.items()}
    # Every count 1…k−1 is printed as "<k"; every withheld complement is ≥ k; zeros print.
    for (i, j), v in np.ndenumerate(t):
        assert (status[(i, j)] == Status.SMALL) == (1 <= v < k)
        if status[(i, j)] == Status.SUPPRESSED:
            assert v >= k
        if v == 0:
            assert status[(i, j)] == Status.SHOWN
    assert status["total"] == Status.SHOWN  # pinned: the sidebar shows it
    seen = brute_force_2d(t, status, k)
    for pos, v in np.ndenumerate(t):
        if status[pos] == Status.SMALL:
            # The reader's set holds the true value and at least two values.
            assert v in seen[pos] and len(seen[pos]) >= 2, (pos, sorted(seen[pos]))
            lo, hi = d.ranges(p, s, k, [at[pos]])[at[pos]]
            assert (min(seen[pos]), max(seen[pos])) == (lo, hi)  # LP bounds are exact here


def test_2x2_one_small_cell_withholds_the_rectangle_not_the_margins():
    p, at = d.crosstab_problem([[3, 40], [50, 60]], pin_grand_total=True)
    s = d.protect(p, 11)
    got = {pos: s[i].value for pos, i in at.items()}
    assert got == {(0, 0): "small", (0, 1): "suppressed", (1, 0): "suppressed",
                   (1, 1): "suppressed", ("row", 0): "shown", ("row", 1): "shown",
                   ("col", 0): "shown", ("col", 1): "shown", "total": "shown"}
    # The reader learns nothing beyond "<11": 3 could be anything 1…10.
    assert d.ranges(p, s, 11, [at[(0, 0)]])[at[(0, 0)]] == (1, 10)


def test_without_complements_the_small_cell_is_recovered():
    # The attack the complements prevent: print only "<11" and the margins give it back.
    p, at = d.crosstab_problem([[3, 40], [50, 60]], pin_grand_total=True)
    naive = [Status.SHOWN] * len(p.values)
    naive[at[(0, 0)]] = Status.SMALL
    assert d.ranges(p, naive, 11, [at[(0, 0)]])[at[(0, 0)]] == (3, 3)


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("k", [5, 11])
def test_rxc_random_tables(seed, k):
    rng = np.random.default_rng(seed)
    shape = [(3, 2), (4, 3), (5, 4), (6, 2)][seed % 4]
    t = rng.integers(0, 3 * k, size=shape)
    p, _at = d.crosstab_problem(t, pin_grand_total=True)
    s = d.protect(p, k)
    small = [i for i, v in enumerate(p.values) if 1 <= v < k]
    assert all(s[i] == Status.SMALL for i in small)
    assert all(p.values[i] >= k for i, x in enumerate(s) if x == Status.SUPPRESSED)
    # Each small count's interval is as wide as if every count ≥ k were withheld.
    got = d.ranges(p, s, k, small)
    best = d.ranges(p, d._all_withheld(p, s, k), k, small)
    for i in small:
        assert got[i] == pytest.approx(best[i]), i
        assert got[i][1] - got[i][0] >= 1  # never recovered exactly


@pytest.mark.slow
def test_3x2_brute_force_reader():
    t = np.array([[4, 20], [15, 2], [30, 12]])
    p, at = d.crosstab_problem(t, pin_grand_total=True)
    s = d.protect(p, 11)
    status = {pos: s[i] for pos, i in at.items()}
    seen = brute_force_2d(t, status, 11)
    for pos in [(0, 0), (1, 1)]:
        assert status[pos] == Status.SMALL
        assert seen[pos] == set(range(1, 11)), (pos, sorted(seen[pos]))


def test_one_line_numerator_and_complement():
    # 24 of 26 reached remission: 2 did not, and 26 − 24 would print it.
    p = d.CountProblem()
    x, n = p.cell(24), p.cell(26, pinned=True)
    rest = p.cell(2, shown=False)
    p.line([x, rest], n)
    s = d.protect(p, 11)
    assert s[x] == Status.SUPPRESSED and s[n] == Status.SHOWN and s[rest] == Status.HIDDEN
    assert d.ranges(p, s, 11, [rest])[rest] == (1, 10)


@pytest.mark.parametrize(("x", "n", "status"), [
    (0, 26, Status.SHOWN), (3, 26, Status.SMALL), (10, 26, Status.SMALL),
    (11, 26, Status.SHOWN), (15, 26, Status.SHOWN), (16, 26, Status.SUPPRESSED),
    (26, 26, Status.SHOWN),
])
def test_numerator_status_edges(x, n, status):
    p = d.CountProblem()
    a, t = p.cell(x), p.cell(n, pinned=True)
    p.line([a, p.cell(n - x, shown=False)], t)
    assert d.protect(p, 11)[a] == status


def test_small_pinned_count_is_unprotectable():
    p = d.CountProblem()
    a, t = p.cell(3), p.cell(3, pinned=True)
    p.line([a], t)
    with pytest.raises(d.Unprotectable):
        d.protect(p, 11)


def test_lines_must_add_up():
    p = d.CountProblem()
    a, b, t = p.cell(3), p.cell(4), p.cell(8)
    with pytest.raises(ValueError, match="add up"):
        p.line([a, b], t)


# --- whole result tables -----------------------------------------------------------------------

T1_SPEC = TableSpec(
    counts={"count": "n", "n": None},
    same={"n": ("group",)},
    partitions=(Partition("count", by=("variable", "group"), total="n"),
                Partition("count", by=("variable", "level"), total_row=("group", "Overall"))),
    pinned=("n",),
    rates={"pct": "count"},
    stats={"mean": "n_values", "sd": "n_values", "median": "n_values"},
    extremes=("min", "max"),
)


def table1_frame(f_counts, m_counts, groups=("A", "B")) -> pd.DataFrame:
    """A long-format Table 1 (sex split by a two-level group) with its Overall rows."""
    rows = []
    ns = {g: f + m for g, f, m in zip(groups, f_counts, m_counts, strict=True)}
    n_all = sum(ns.values())
    for g, f, m in zip(("Overall", *groups), (sum(f_counts), *f_counts),
                       (sum(m_counts), *m_counts), strict=True):
        n = n_all if g == "Overall" else ns[g]
        for level, c in (("F", f), ("M", m)):
            rows.append({"variable": "sex", "level": level, "group": g, "n": n, "count": c,
                         "pct": 100 * c / n, "n_values": np.nan, "mean": np.nan, "sd": np.nan,
                         "median": np.nan, "min": np.nan, "max": np.nan})
    for g in ("Overall", *groups):
        n = n_all if g == "Overall" else ns[g]
        rows.append({"variable": "age", "level": None, "group": g, "n": n, "count": np.nan,
                     "pct": np.nan, "n_values": n - 1, "mean": 14.2, "sd": 2.5, "median": 14.0,
                     "min": 8.1, "max": 17.9})
    return pd.DataFrame(rows)


def test_table1_sex_by_group_two_way_suppression():
    df = table1_frame(f_counts=(30, 25), m_counts=(4, 20))   # 4 men in group A
    res = d.protect_frame(df, T1_SPEC, 11)
    st = res.status.set_index([df["variable"], df["level"], df["group"]])["count"]
    assert st[("sex", "M", "A")] == "small"
    # A's n is pinned (printed with the group); F of A then gives M of A back: withheld.
    assert st[("sex", "F", "A")] == "suppressed"
    # The Overall row would give M of A back from M of B: one more cell of the rectangle.
    assert (st.loc["sex"] == "suppressed").sum() >= 2
    shown = res.display()
    assert "<11" in set(shown["count"]) and "—" in set(shown["count"])
    # Percentages follow their counts.
    pct = res.status.set_index([df["variable"], df["level"], df["group"]])["pct"]
    assert pct[("sex", "M", "A")] == "withheld" and pct[("sex", "F", "A")] == "withheld"
    # Minimum and maximum are never shown; a statistic of 33 values is.
    assert "min" not in res.frame.columns and "max" not in res.frame.columns
    assert res.frame.loc[df["variable"] == "age", "mean"].notna().all()
    for note in ("shown as <11", "— marks a count withheld"):
        assert any(note in n for n in res.notes), res.notes


def test_table1_nothing_small_is_untouched():
    df = table1_frame(f_counts=(30, 25), m_counts=(14, 20))
    res = d.protect_frame(df, T1_SPEC, 11)
    assert not res.withheld
    pd.testing.assert_frame_equal(res.frame, df.drop(columns=["min", "max"]))


@pytest.mark.parametrize(("n_values", "shown"), [(10, False), (11, True)])
def test_statistics_need_k_values(n_values, shown):
    df = pd.DataFrame({"n_values": [n_values], "mean": [1.5], "sd": [0.3], "median": [1.4],
                       "min": [0.1], "max": [3.0]})
    res = d.protect_frame(df, TableSpec(stats={"mean": "n_values", "sd": "n_values",
                                               "median": "n_values"}, extremes=("min", "max")))
    assert res.frame[["mean", "sd", "median"]].notna().all(axis=None) == shown
    assert list(res.frame.columns) == ["n_values", "mean", "sd", "median"]


REMISSION_SPEC = TableSpec(
    counts={"n_achieved": "n_evaluable", "n_evaluable": None},
    rates={"rate": "n_achieved", "ci_low": "n_achieved", "ci_high": "n_achieved"},
)


@pytest.mark.parametrize(("achieved", "evaluable", "count", "rate"), [
    (0, 26, "shown", "shown"),
    (3, 26, "small", "withheld"),
    (10, 26, "small", "withheld"),
    (11, 26, "shown", "shown"),
    (15, 26, "shown", "shown"),
    (16, 26, "suppressed", "withheld"),   # 10 did not reach it
    (24, 26, "suppressed", "withheld"),
    (26, 26, "shown", "shown"),
    (5, 8, "small", "withheld"),          # denominator under k
])
def test_rates_and_their_counts(achieved, evaluable, count, rate):
    df = pd.DataFrame({"definition": ["lldas"], "n_achieved": [achieved],
                       "n_evaluable": [evaluable], "rate": [achieved / evaluable],
                       "ci_low": [0.1], "ci_high": [0.9]})
    res = d.protect_frame(df, REMISSION_SPEC, 11)
    assert res.status.at[0, "n_achieved"] == count
    assert res.status.at[0, "rate"] == rate and res.status.at[0, "ci_high"] == rate
    if rate == "withheld":
        assert pd.isna(res.frame.at[0, "rate"])


TESTS_SPEC = TableSpec(tests=("statistic", "p_value"), compared_n=("n_a", "n_b"))


@pytest.mark.parametrize(("n_a", "n_b", "shown"), [(11, 11, True), (10, 30, False),
                                                   (30, 10, False), (40, 30, True)])
def test_p_values_need_every_group_at_k(n_a, n_b, shown):
    df = pd.DataFrame({"n_a": [n_a], "n_b": [n_b], "statistic": [2.1], "p_value": [0.03]})
    res = d.protect_frame(df, TESTS_SPEC, 11)
    assert res.frame["p_value"].notna().all() == shown
    assert res.frame["statistic"].notna().all() == shown


def test_p_values_gated_by_group_sizes_outside_the_table():
    df = pd.DataFrame({"variable": ["age"], "p_value": [0.01]})
    spec = TableSpec(tests=("p_value",))
    assert d.protect_frame(df, spec, 11, group_ns=[20, 10]).frame["p_value"].isna().all()
    assert d.protect_frame(df, spec, 11, group_ns=[20, 11]).frame["p_value"].notna().all()


def test_patient_level_tables_are_refused():
    with pytest.raises(ValueError, match="never shown"):
        d.protect_frame(pd.DataFrame({"patient_id": ["a"]}), TableSpec(kind="patient_level"))


def test_inconsistent_declaration_is_an_error():
    df = pd.DataFrame({"n_achieved": [30], "n_evaluable": [26]})
    with pytest.raises(ValueError, match="exceeds its denominator"):
        d.protect_frame(df, REMISSION_SPEC)


def test_unprotectable_table_is_withheld_whole():
    # 3 patients, all of them in one cell, and the 3 printed elsewhere (pinned).
    df = pd.DataFrame({"level": ["F", "M"], "count": [3, 0], "n": [3, 3]})
    spec = TableSpec(counts={"count": "n", "n": None}, same={"n": ()}, pinned=("n",))
    res = d.protect_frame(df, spec, 11)
    assert (res.status == "withheld").all(axis=None)
    assert res.frame.isna().all(axis=None)
    assert "cannot be shown" in res.notes[0]


# --- Kaplan–Meier ------------------------------------------------------------------------------


def km_frame() -> pd.DataFrame:
    return pd.DataFrame({
        "group": ["A"] * 5 + ["B"] * 3,
        "time": [4, 12, 24, 52, 60, 4, 12, 24],
        "n_risk": [26, 20, 11, 10, 4, 10, 8, 5],   # A falls under 11 at week 52; B starts at 10
        "n_event": [2, 3, 1, 2, 1, 1, 1, 1],
        "n_censor": [4, 6, 0, 4, 3, 1, 2, 0],
        "survival": [0.92, 0.78, 0.71, 0.57, 0.43, 0.9, 0.79, 0.63],
    })


def test_km_cuts_curves_and_hides_small_groups():
    out, notes = d.km(km_frame(), 11)
    assert list(out["group"].unique()) == ["A"]              # B (10 patients) is hidden
    assert list(out["time"]) == [4, 12, 24]                   # at risk 11 kept, 10 cut
    assert "n_censor" not in out.columns and "n_event" not in out.columns
    assert any("Group B" in n for n in notes) and any("stops at 24" in n for n in notes)


def test_km_at_k_is_kept_whole():
    df = km_frame()
    df.loc[df["group"] == "B", "n_risk"] = [11, 11, 11]
    out, _ = d.km(df, 11)
    assert (out["group"] == "B").sum() == 3


# --- adverse-event terms -----------------------------------------------------------------------


def test_fold_rare_terms_into_other():
    rows = pd.DataFrame({
        "patient_id": [f"p{i}" for i in range(11)] + [f"p{i}" for i in range(10)]
        + ["p0", "p0", "p1"],
        "term": ["pneumonia"] * 11 + ["zoster"] * 10 + ["sinusitis", "otitis", "otitis"],
    })
    out = d.fold_rare(rows, "term", "patient_id", 11)
    per = out.groupby("term")["patient_id"].nunique()
    assert per["pneumonia"] == 11                  # exactly k: kept
    assert "zoster" not in per and "sinusitis" not in per and "otitis" not in per
    assert per["Other"] == 10                      # p0 had two rare terms: counted once
    assert len(out) == len(rows)


def test_fold_rare_keeps_empty_and_missing_terms():
    rows = pd.DataFrame({"patient_id": ["a", "b"], "term": [None, None]})
    out = d.fold_rare(rows, "term", "patient_id", 11)
    assert out["term"].isna().all()
    assert d.fold_rare(rows.iloc[0:0], "term", "patient_id").empty


def test_display_marks():
    df = pd.DataFrame({"count": [3, 24], "n": [26, 26], "pct": [11.5, 92.3]})
    spec = TableSpec(counts={"count": "n", "n": None}, pinned=("n",), rates={"pct": "count"})
    shown = d.protect_frame(df, spec, 11).display()
    assert list(shown["count"]) == ["<11", "—"]
    assert list(shown["pct"]) == ["—", "—"]
    assert list(shown["n"]) == [26, 26]
    assert not math.isnan(float(shown["n"].iloc[0]))


def random_hierarchy(rng, k: int) -> d.CountProblem:
    """A total split into parts, some parts split again (a tree of lines), plus complements."""
    p = d.CountProblem()
    root = p.cell(int(rng.integers(20, 120)))
    todo = [root]
    while todo and len(p.values) < 30:
        t = todo.pop()
        n = int(rng.integers(2, 4))
        cuts = np.sort(rng.integers(0, p.values[t] + 1, size=n - 1))
        parts = np.diff(np.concatenate([[0], cuts, [p.values[t]]]))
        members = [p.cell(int(v), shown=bool(rng.random() < 0.85)) for v in parts]
        p.line(members, t)
        todo += [m for m in members if p.values[m] >= 4 and rng.random() < 0.5]
    return p


@pytest.mark.parametrize("seed", range(20))
def test_interval_propagation_equals_the_lp_on_trees(seed):
    rng = np.random.default_rng(100 + seed)
    k = 11
    p = random_hierarchy(rng, k)
    status = [Status.SHOWN if s else Status.HIDDEN for s in p.shown]
    for i, v in enumerate(p.values):
        if status[i] == Status.SHOWN and rng.random() < 0.5 and i != 0:
            status[i] = Status.SMALL if 1 <= v < k else (
                Status.SUPPRESSED if v >= k else Status.SHOWN)
    bounds = d._bounds(p, status, k)
    by_cell = {}
    for li, (members, total) in enumerate(p.lines):
        for c in {*members, total}:
            by_cell.setdefault(c, []).append(li)
    checked = 0
    for t in range(len(p.values)):
        if status[t] == Status.SHOWN:
            continue
        tree = d._tree_range(p, status, bounds, t, by_cell)  # a hierarchy has no cycle
        lp = d._lp_range(p, status, bounds, t)
        assert tree == pytest.approx(lp), (t, tree, lp)
        checked += 1
    assert checked


def test_cycles_go_to_the_lp():
    p, at = d.crosstab_problem([[3, 40], [50, 60]], pin_grand_total=True)
    s = d.protect(p, 11)
    bounds = d._bounds(p, s, 11)
    by_cell = {}
    for li, (members, total) in enumerate(p.lines):
        for c in {*members, total}:
            by_cell.setdefault(c, []).append(li)
    with pytest.raises(d._Cycle):
        d._tree_range(p, s, bounds, at[(0, 0)], by_cell)


@pytest.mark.parametrize(("groups", "total", "ok"), [
    ([20, 6], 26, False),     # a group of 6
    ([15, 11], 26, True),     # both at least k, and each leaves at least k outside
    ([11, 10, 5], 26, False),
    ([26], 26, True),         # one group: everybody
    ([0, 26], 26, True),      # an empty group prints 0
    ([12, 12, 2], 26, False), # 2 patients missing the grouping value: 24 + 2
    ([40, 30, 30], 100, True),
])
def test_split_gate(groups, total, ok):
    assert d.split_gate(groups, total, 11).ok is ok


def nested_rows(rng, k: int, rows: int = 4) -> d.CountProblem:
    """Rows like remission rates: E = A + B + C + N, a denominator D = a subset of them,
    and E repeated on every row (one quantity)."""
    p = d.CountProblem()
    first_e = None
    e_total = int(rng.integers(8, 40))
    for _ in range(rows):
        parts = rng.multinomial(e_total, rng.dirichlet(np.ones(4)))
        cells = [p.cell(int(v)) for v in parts]
        e = p.cell(e_total)
        p.line(cells, e)
        sub = [c for c in cells if rng.random() < 0.75] or cells[:2]
        if len(sub) >= 2:
            p.line(sub, p.cell(sum(p.values[c] for c in sub)))
        if first_e is None:
            first_e = e
        else:
            p.line([first_e], e)
    return p


@pytest.mark.parametrize("seed", range(30))
def test_nested_sums_rewritten_give_the_lps_ranges(seed):
    """The rewrite of nested lines (E = D + N) is a row operation: same ranges as the LP on
    the lines as declared, for random statuses."""
    rng = np.random.default_rng(500 + seed)
    k = 11
    p = nested_rows(rng, k)
    status = [Status.SHOWN] * len(p.values)
    for i, v in enumerate(p.values):
        if rng.random() < 0.5:
            status[i] = Status.SMALL if 1 <= v < k else (
                Status.SUPPRESSED if v >= k else Status.SHOWN)
    bounds = d._bounds(p, status, k)
    got = d.ranges(p, status, k)
    assert got
    for t, r in got.items():
        assert r == pytest.approx(d._lp_range(p, status, bounds, t)), t


def test_rates_rows_need_no_linear_programme(monkeypatch):
    """The remission-rates shape is a tree once nested sums are rewritten."""
    calls = []
    monkeypatch.setattr(d, "_lp_range", lambda *a: calls.append(a) or (0, 0))
    p = nested_rows(np.random.default_rng(7), 11, rows=1)
    status = [Status.SMALL if 1 <= v < 11 else Status.SUPPRESSED if v else Status.SHOWN
              for v in p.values]
    assert d.ranges(p, status, 11)
    assert not calls


@pytest.mark.parametrize("seed", range(12))
def test_reused_highs_model_equals_scipy_linprog(seed, monkeypatch):
    """The fast path (one HiGHS model per component, objective changed) gives linprog's
    intervals, unbounded ones included, on two-way tables with random marks."""
    rng = np.random.default_rng(900 + seed)
    k = 11
    t = rng.integers(0, 3 * k, size=[(3, 2), (4, 3), (5, 4)][seed % 3])
    p, _at = d.crosstab_problem(t, pin_grand_total=bool(seed % 2))
    status = [Status.SHOWN] * len(p.values)
    for i, v in enumerate(p.values):
        if rng.random() < 0.6:
            status[i] = Status.SMALL if 1 <= v < k else (
                Status.SUPPRESSED if v >= k else Status.HIDDEN)
    bounds = d._bounds(p, status, k)
    cells = [i for i, s in enumerate(status) if s != Status.SHOWN]
    fast = {c: d._lp_range(p, status, bounds, c) for c in cells}
    monkeypatch.setattr(d, "_highs_model", lambda *a: None)
    slow = {c: d._lp_range(p, status, bounds, c) for c in cells}
    assert fast == pytest.approx(slow)
    assert cells


def test_coarsen_rounds_the_ends_outward_and_keeps_missing():
    df = pd.DataFrame({"lo": [18.4, 20.0, None], "hi": [61.2, 65.0, None], "n": [1, 2, 3]})
    out = d.coarsen(df, {"lo": ("floor", 5), "hi": ("ceil", 5)})
    assert out["lo"].tolist()[:2] == [15.0, 20.0] and out["hi"].tolist()[:2] == [65.0, 65.0]
    assert pd.isna(out["lo"].iloc[2]) and pd.isna(out["hi"].iloc[2])
    assert out["n"].tolist() == [1, 2, 3] and df["lo"].iloc[0] == 18.4  # input untouched
