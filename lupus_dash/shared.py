"""Shared mode: the output policy a viewer's session (and `report --shared`) runs under.

`SharedPolicy` plugs into the seam (`results.run`): it refuses patient-level
analyses before they are computed, applies the denominator gate of the filter,
and passes every declared table of every result through `disclosure`
(small counts "<k", complementary suppression, rates, statistics and tests on
fewer than k patients withheld, no minima or maxima, Kaplan–Meier cut where
fewer than k are at risk). The screen, every download and the command line get
the same protected values because they all leave through the seam.

Each table's `disclosure.TableSpec` comes from its analysis declaration
(`results.Part`: counts with their denominators, statistics with their n,
p-values, extremes); the tables whose rows are linked by sums (a total and its
parts) have their partitions spelt out in `SPECS`, so a suppressed cell cannot
be recovered from a visible total.
"""

from __future__ import annotations

import copy

import pandas as pd

from . import cache, disclosure
from .analyses.cohort import FLOW_STAGES
from .analyses.common import count_patients
from .analyses.safety import SUMMARY_ROWS
from .disclosure import Partition, TableSpec
from .filters import Filter
from .results import Call, Part, Policy, Result, Spec

N_FILTER = "n_filter"  # the filter's patient count, published in the sidebar: pinned


def _derived(part: Part, df: pd.DataFrame) -> TableSpec:
    """A TableSpec from an analysis's declaration of one table."""
    counts = {c: (d if d in df.columns else None) for c, d in part.counts.items()
              if c in df.columns}
    stats = {c: n for c, n in part.n_of.items() if c in df.columns and n in df.columns}
    tests = tuple(c for c in part.p_columns if c in df.columns)
    if tests and "statistic" in df.columns:
        tests += ("statistic",)
    compared = tuple(c for c in (part.groups_n or (("n",) if tests else ())) if c in df.columns)
    return TableSpec(counts=counts, stats=stats, tests=tests, compared_n=compared,
                     extremes=tuple(c for c in part.extremes if c in df.columns))


# Tables whose counts add up (a partition) or repeat one quantity on several rows (same):
# spelt out, so complementary suppression sees the sums a reader could do.
SPECS: dict[tuple[str, str], TableSpec] = {
    ("cohort.table1", "table"): TableSpec(
        counts={"count": "n", "n": None},
        same={"n": ("variable", "group")},
        partitions=(
            Partition("count", by=("variable", "group"), total="n", complete=True),
            Partition("count", by=("variable", "level"), total_row=("group", "Overall")),
            Partition("n", by=("variable",), total_row=("group", "Overall")),
        ),
        rates={"pct": "count"},
        stats={c: "n" for c in ("mean", "sd", "median", "p25", "p75")},
    ),
    ("remission.rates", "table"): TableSpec(
        counts={"n_achieved": "n_denominator", "n_eligible": None},
        same={"n_eligible": ("definition",)},
        # Every eligible patient is in exactly one outcome; the denominator is a sum of
        # some of them (non-responder imputation, observed only, not evaluable counted).
        row_sums=(
            ("n_eligible", (("n_achieved", "n_not_achieved", "n_not_evaluable",
                             "n_no_assessment"),)),
            ("n_denominator", (("n_achieved", "n_not_achieved", "n_no_assessment"),
                               ("n_achieved", "n_not_achieved"),
                               ("n_achieved", "n_not_achieved", "n_not_evaluable",
                                "n_no_assessment"),
                               ("n_achieved", "n_not_achieved", "n_not_evaluable"))),
        ),
        rates={"rate": "n_achieved", "ci_low": "n_achieved", "ci_high": "n_achieved"},
    ),
    ("remission.states", "table"): TableSpec(
        counts={"n": "n_total", "n_total": None},
        same={"n_total": ("visit_week",)},
        partitions=(Partition("n", by=("visit_week",), total="n_total", complete=True),),
        rates={"pct": "n"},
    ),
    ("cohort.group_sizes", "table"): TableSpec(
        counts={"n": N_FILTER, N_FILTER: None}, same={N_FILTER: ()}, pinned=(N_FILTER,),
        partitions=(Partition("n", total=N_FILTER, complete=True),),
    ),
    ("cohort.patient_flow", "stages"): TableSpec(  # protected wide: see _flow_wide
        counts={"induction": "enrolled", "enrolled": None}, pinned=("enrolled",),
        row_sums=(("enrolled", (("completed", "stopped", "ongoing"),)),),
    ),
    ("cohort.patient_flow", "reasons"): TableSpec(
        counts={"n": "n_stopped", "n_stopped": None}, same={"n_stopped": ()},
        partitions=(Partition("n", total="n_stopped", complete=True),),
    ),
    ("safety.table3", "table"): TableSpec(  # helper columns: see _ae_marks
        counts={"n_patients": "n", "n": None, "n_events": None, "n_serious": None},
        same={"n": ()}, pinned=("n",), rates={"pct": "n_patients"},
        partitions=(
            # a category's events are its terms' events; all events are the categories'
            Partition("n_events", by=("_cat",), total_row=("level", 0)),
            Partition("n_events", by=("_all",), total_row=("_total", True)),
            Partition("n_serious", by=("_cat",), total_row=("level", 0)),
            Partition("n_serious", by=("_all",), total_row=("_total", True)),
        ),
    ),
    ("biomarkers.summary", "table"): TableSpec(
        counts={"n": N_FILTER, "n_positive": "n", N_FILTER: None}, same={N_FILTER: ()},
        pinned=(N_FILTER,), rates={"rate": "n_positive"},
        stats={c: "n" for c in ("mean", "sd", "se", "median", "p25", "p75")}
        | {"ci_low": "n", "ci_high": "n"},
    ),
}
FLOW_KEYS = dict(zip(FLOW_STAGES, ("enrolled", "induction", "completed", "stopped", "ongoing"),
                     strict=True))


def _flow_wide(df: pd.DataFrame) -> pd.DataFrame:
    """The flow's stages as one row (its outcome boxes add up to the enrolled)."""
    return pd.DataFrame([{FLOW_KEYS[s]: int(n) for s, n in zip(df["stage"], df["n"],
                                                                  strict=True)}])


def _flow_back(df: pd.DataFrame, shown: pd.DataFrame) -> pd.DataFrame:
    row = shown.iloc[0]
    out = df.copy()
    out["n"] = [row[FLOW_KEYS[s]] for s in df["stage"]]
    out["n_enrolled"] = row["enrolled"]
    # the derived dose totals and medians describe the same patients: not shown
    out["detail"] = ["" if isinstance(row[FLOW_KEYS[s]], str) or FLOW_KEYS[s] == "induction"
                     else d for s, d in zip(df["stage"], df["detail"], strict=True)]
    return out


def _ae_marks(df: pd.DataFrame) -> pd.DataFrame:
    """Table 3 with the columns its partitions group by: a category with its terms (_cat),
    the categories with the all-events row (_all, _total)."""
    top = df["row"] == SUMMARY_ROWS[0]
    is_cat = (df["level"] == 0) & ~df["row"].isin(SUMMARY_ROWS)
    return df.assign(
        _cat=[c if (lv == 1 or ic) else None
              for c, lv, ic in zip(df["category"].fillna("(none)"), df["level"], is_cat,
                                   strict=True)],
        _all=["all" if (t or c) else None for t, c in zip(top, is_cat, strict=True)],
        _total=top)


def _ae_back(df: pd.DataFrame, shown: pd.DataFrame) -> pd.DataFrame:
    return shown.drop(columns=["_cat", "_all", "_total"])


# Tables protected in another shape (their sums run across rows and columns).
WIDE = {("cohort.patient_flow", "stages"): (_flow_wide, _flow_back),
        ("safety.table3", "table"): (_ae_marks, _ae_back)}
# Analyses a viewer gets in their shared form (re-run by the policy with these arguments).
SHARED_ARGS = {"safety.table3": lambda k: {"fold_below": k}}
# Kaplan–Meier tables: groups under k hidden, curves cut where fewer than k are at risk.
KM_PARTS = {("remission.time_to_event", "curves"), ("safety.time_to_first", "table"),
            ("targets.time_to_first", "curves")}
# Tables only about the filter's own patients' count (already gated) or about no patient.
OPEN_PARTS = {("common.cohort_info", "table"), ("common.available_endpoints", "table"),
              ("cohort.filter_options", "table"), ("biomarkers.test_choice", "table")}


# Tables a viewer does not get at all. Facet counts are the counts of the filters one
# choice away (the filter with sex = male, …): exactly what the gate refuses when small,
# and with the filter's own count they would give the small ones back.
WITHHELD_PARTS = {("cohort.option_counts", "table")}


# Minima and maxima a page needs (the age slider's ends) are coarsened to this step rather
# than shown: the youngest and oldest patient's exact ages never leave.
COARSEN = {("cohort.age_limits", "table"): {"lo": ("floor", 5), "hi": ("ceil", 5)}}


# Protected results, cleared with the analyses' memos.
_PROTECTED = cache.LRU()


class SharedPolicy(Policy):
    """Disclosure control for a viewer (threshold k)."""

    name = "shared"

    def __init__(self, k: int = disclosure.DEFAULT_K):
        if int(k) < 2:
            raise ValueError(f"the minimum cell size must be at least 2 (got {k})")
        self.k = int(k)
        self.name = f"shared-k{self.k}"

    def permits(self, spec: Spec) -> str | None:
        if spec.patient_level:
            return ("patient-level view: not shown in the shared dashboard (a viewer sees "
                    "aggregates only)")
        return None

    def gate(self, db, flt) -> disclosure.Gate:
        """The denominator gate of a filter (also for its complement)."""
        k, n = count_patients(db, flt)
        return disclosure.gate(k, n, self.k)

    def prepare(self, call: Call) -> Call:
        """Computed directly in the shape a viewer may see (rare terms folded, say)."""
        shared_args = SHARED_ARGS.get(call.spec.name)
        if shared_args is None:
            return call
        return Call.of(call.fn, call.flt, **{**call.arguments, **shared_args(self.k)})

    def apply(self, result: Result, db=None) -> Result:
        """The result as a viewer may see it; memoised per file version, call and k, so
        every viewer on a filter shares one protection (the greedy search is the cost)."""
        version = getattr(db, "version", None)
        if version is None:
            return self._apply(result, db)
        key = (version, result.call.key(), self.k)
        hit = _PROTECTED.get(key)
        if hit is not None:
            return copy.deepcopy(hit)
        out = self._apply(result, db)
        _PROTECTED.put(key, out)
        return copy.deepcopy(out)

    def _apply(self, result: Result, db=None) -> Result:
        call = result.call
        n_filter = None
        # A cohort-level call (cohort_info) is gated on its whole cohort: a cohort of 10
        # is itself a count under k = 11.
        gate_on = call.flt
        if gate_on is None and isinstance(call.arguments.get("cohort"), str):
            gate_on = Filter(call.arguments["cohort"])
        if gate_on is not None and db is not None:
            n_match, n_all = count_patients(db, gate_on)
            g = disclosure.gate(n_match, n_all, self.k)
            if not g.ok:
                # Nothing of a gated filter leaves: every table is replaced by the message.
                return Result(call, {name: _gated(val) for name, val in result.parts.items()},
                              result.data_version, [g.message], suppressed=True)
            n_filter = n_match
        parts, notes, changed = {}, [], False
        for name, value in result.parts.items():
            key = (result.spec.name, name)
            if key in WITHHELD_PARTS:
                parts[name] = _gated(value)
                changed = True
                continue
            if not isinstance(value, pd.DataFrame) or key in OPEN_PARTS or value.empty:
                parts[name] = value
                continue
            if key in COARSEN:
                parts[name] = disclosure.coarsen(value, COARSEN[key])
                changed = True
                continue
            if key in KM_PARTS:
                kept, km_notes = disclosure.km(value, self.k,
                                               group="group" if "group" in value else None)
                parts[name] = kept
                notes += km_notes
                changed |= len(kept) != len(value)
                continue
            spec = SPECS.get(key) or _derived(result.part_spec(name), value)
            to_wide, from_wide = WIDE.get(key, (None, None))
            df = value
            if N_FILTER in spec.counts and n_filter is not None:
                df = df.assign(**{N_FILTER: n_filter})
            try:
                prot = disclosure.protect_frame(to_wide(df) if to_wide else df, spec, self.k)
            except ValueError as exc:
                # A table whose declared relations do not hold cannot be protected: withhold.
                parts[name] = _gated(value)
                notes.append(f"Not shown in the shared dashboard ({exc}).")
                changed = True
                continue
            shown = prot.display()
            parts[name] = (from_wide(value, shown) if from_wide
                           else shown.drop(columns=[N_FILTER], errors="ignore"))
            notes += prot.notes
            changed |= prot.withheld
        return Result(call, parts, result.data_version, list(dict.fromkeys(notes)),
                      suppressed=changed)


def _gated(value):
    """What a gated filter lets out of a part: no rows, and no counts in a plain dict."""
    if isinstance(value, pd.DataFrame):
        return value.iloc[0:0]
    if isinstance(value, dict):
        # e.g. cohort.info's n_patients: a 10-patient cohort is itself a small count.
        return {k: (None if str(k).startswith("n_") else v) for k, v in value.items()}
    return value


def report_policy(min_cell: int | None) -> SharedPolicy:
    """`report --shared [--min-cell K]`."""
    return SharedPolicy(min_cell or disclosure.DEFAULT_K)


__all__ = ["SPECS", "SharedPolicy", "report_policy"]
