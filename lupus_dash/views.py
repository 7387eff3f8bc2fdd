"""The calls each page makes through the seam, for a given widget state.

The benchmark times these lists (`python -m benchmarks`), and
tests/test_pages.py checks, page by page under AppTest, that the calls a page
really makes in its default state are exactly the ones listed here — so the
benchmark cannot drift from the pages. `run` is the seam (`ui.run` or
`results.run` bound to a database); it resolves defaults that depend on the
data (the first endpoint recorded, the final week, the first patient).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from . import layouts
from .analyses import (
    biomarkers,
    cohort,
    common,
    patient,
    quality,
    remission,
    safety,
    subgroups,
    targets,
)
from .filters import Filter
from .results import Call, Result

Run = Callable[[Call], Result]
DEFAULT_GROUP = "class_group"
PRESET = "standard"

# Charts each page draws: chart name → (call name, part[, columns drawn]). The benchmark
# measures their payload (what the browser receives).
CHARTS: dict[str, dict[str, tuple]] = {
    "Overview": {"patient_flow": ("flow", "stages")},
    "Biomarkers": {"trajectory": ("summ", "table")},
    "Biomarkers Figure 1": {"trajectory": ("summ", "table"), "figure1": ("summ_all", "table")},
    "Remission": {"rates": ("rates", "table"), "states": ("states", "table")},
    "Subgroups": {"group_trajectories": ("group_summary", "table"),
                  "forest": ("forest", "table")},
    "Patient": {"patient_series": ("visits", "table", ["visit_week", "c3_g_l", "sledai2k",
                                                       "pga", "prednisone_mg_day"])},
    "Safety": {"incidence": ("incidence", "table"), "km_first_ae": ("km", "table")},
    "Treat to target": {"state_flow": ("flow", "counts"), "km_risk": ("ttf", "curves"),
                        "swimmer": ("swimmer", "markers")},
    "Data quality": {"missingness": ("missingness", "table")},
}


def _first_endpoint(run: Run, flt: Filter) -> str:
    eps = run(Call.of(common.available_endpoints, flt)).table
    return eps[0].column if eps else "c3_g_l"


def sidebar(run: Run, flt: Filter) -> dict[str, Call]:
    """The filter panel's per-filter work (the cohort list, filter values and age range are
    per file and cached)."""
    return {"option_counts": Call.of(cohort.option_counts, flt),
            "patient_count": Call.of(cohort.patient_count, flt)}


def per_file(flt: Filter) -> dict[str, Call]:
    """What the filter panel asks once per database file (cached across filter changes)."""
    return {"cohorts": Call.of(cohort.cohorts),
            "age_limits": Call.of(cohort.age_limits, None, cohort=flt.cohort)}


def _page_head(flt: Filter) -> dict[str, Call]:
    """What `ui.page` shows on every page: the filter sentence's counts (the sidebar's)."""
    return {"patient_count": Call.of(cohort.patient_count, flt)}


def overview(run: Run, flt: Filter, group_by: str | None = None) -> dict[str, Call]:
    calls = {
        **_page_head(flt),
        "info": Call.of(common.cohort_info, None, cohort=flt.cohort),
        "flow": Call.of(cohort.patient_flow, flt),
        "rates": Call.of(remission.rates, flt, preset=PRESET),
        "t3": Call.of(safety.table3, flt),
    }
    calls.update({f"table1_{k}": c for k, c in layouts.table1_calls(flt, group_by).items()})
    return calls


def biomarkers_page(run: Run, flt: Filter, endpoint: str | None = None,
                    comparator: str = "baseline", method: str | None = None,
                    adjust: str = "none", individual: bool = False,
                    figure1: bool = False, fixed: bool = True) -> dict[str, Call]:
    endpoint = endpoint or _first_endpoint(run, flt)
    choice = run(Call.of(biomarkers.test_choice, flt, endpoint=endpoint)).table.iloc[0]
    method = method or choice["method"]
    calls = {
        **_page_head(flt),
        "endpoints": Call.of(common.available_endpoints, flt),
        "choice": Call.of(biomarkers.test_choice, flt, endpoint=endpoint),
        "summ": Call.of(biomarkers.summary, flt, endpoints=[endpoint]),
        "lon": Call.of(biomarkers.longitudinal, flt, endpoints=[endpoint],
                       comparators=[comparator], adjust=adjust,
                       include_mixed=method == "mixed_model"),
    }
    if fixed:  # the whole cohort's range for a stable axis
        calls["cohort_summ"] = Call.of(biomarkers.summary, Filter(flt.cohort),
                                       endpoints=[endpoint])
    if individual:
        calls["ind"] = Call.of(biomarkers.individual_trajectories, flt, endpoint=endpoint)
    if choice["display"] != "rate":
        calls["omnibus"] = Call.of(biomarkers.omnibus, flt, endpoints=[endpoint])
    if figure1:
        t2 = layouts.table2_calls(flt)
        calls.update({"summ_all": t2["summ"], "lon_all": t2["lon"]})
    return calls


def remission_page(run: Run, flt: Filter, preset: str = PRESET, observed: bool = False,
                   not_evaluable: str = "exclude",
                   week: int | str = "last") -> dict[str, Call]:
    return {
        **_page_head(flt),
        "rates": Call.of(remission.rates, flt, preset=preset, observed=observed,
                         not_evaluable=not_evaluable),
        "info": Call.of(common.cohort_info, None, cohort=flt.cohort),
        "states": Call.of(remission.states, flt, preset=preset),
        "who": Call.of(remission.who, flt, definition="lldas", week=week, preset=preset),
    }


def subgroups_page(run: Run, flt: Filter, group_by: str = DEFAULT_GROUP,
                   endpoint: str | None = None, outcome: str = "value",
                   adjust: str = "holm", fixed: bool = True) -> dict[str, Call]:
    endpoint = endpoint or _first_endpoint(run, flt)
    calls = {
        **_page_head(flt),
        "endpoints": Call.of(common.available_endpoints, flt),
        "sizes": Call.of(cohort.group_sizes, flt, group_by=group_by),
        "group_summary": Call.of(subgroups.summary, flt, group_by=group_by, endpoint=endpoint,
                                 outcome=outcome),
        "small_groups": Call.of(subgroups.small_group_values, flt, group_by=group_by,
                                endpoint=endpoint, outcome=outcome),
        # every group of the cohort: fixed colours and legend order across filter changes
        "cohort_groups": Call.of(cohort.group_sizes, Filter(flt.cohort), group_by=group_by),
        "tests": Call.of(subgroups.tests, flt, group_by=group_by, endpoints=[endpoint],
                         outcome=outcome, adjust=adjust),
    }
    if fixed:
        calls["cohort_group_summary"] = Call.of(subgroups.summary, Filter(flt.cohort),
                                                group_by=group_by, endpoint=endpoint,
                                                outcome=outcome)
    kind = run(Call.of(biomarkers.test_choice, flt, endpoint=endpoint)).table.iloc[0]["display"]
    if kind != "rate":
        calls["info"] = Call.of(common.cohort_info, None, cohort=flt.cohort)
        calls["forest"] = Call.of(subgroups.summary, flt, group_by=group_by, endpoint=endpoint,
                                  outcome="change")
    return calls


def targets_page(run: Run, flt: Filter, preset: str = PRESET, strategy: str = "composite",
                 definition: str = "lldas", group_by: str | None = None,
                 sort_by: str = "stopped_first", mmrm: bool = False,
                 endpoint: str | None = None) -> dict[str, Call]:
    """The Treat to target page (its MMRM is fitted on demand: `mmrm=True`)."""
    calls = {
        **_page_head(flt),
        "tit": Call.of(targets.time_in_target, flt, preset=preset, strategy=strategy),
        "flow": Call.of(targets.state_flow, flt, preset=preset, strategy=strategy),
        "ttf": Call.of(targets.time_to_first, flt, definition=definition, preset=preset,
                       strategy=strategy, group_by=group_by),
        "swimmer": Call.of(targets.swimmer, flt, preset=preset, strategy=strategy,
                           sort_by=sort_by),
        "endpoints": Call.of(common.available_endpoints, flt),
    }
    if mmrm:
        calls["mmrm"] = Call.of(biomarkers.mmrm_rows, flt,
                                endpoints=[endpoint or _first_continuous(run, flt)],
                                strategy=strategy)
    return calls


def _first_continuous(run: Run, flt: Filter) -> str:
    eps = run(Call.of(common.available_endpoints, flt)).table
    return next(e.column for e in eps if e.kind == "continuous")


def patient_page(run: Run, flt: Filter, patient_id: str | None = None) -> dict[str, Call]:
    calls = {**_page_head(flt), "ids": Call.of(cohort.patient_ids, flt)}
    if patient_id is None:
        ids = run(calls["ids"]).table
        if not ids:
            return calls
        patient_id = ids[0]
    kw = {"cohort": flt.cohort, "patient_id": patient_id}
    calls.update({"record": Call.of(patient.record, None, **kw),
                  "visits": Call.of(patient.visits, None, **kw),
                  "events": Call.of(patient.events, None, **kw)})
    return calls


def safety_page(run: Run, flt: Filter) -> dict[str, Call]:
    calls = {**_page_head(flt), "t3": Call.of(safety.table3, flt)}
    if run(calls["t3"]).table["n_events"].iloc[0] == 0:
        return calls
    calls.update({"incidence": Call.of(safety.incidence, flt),
                  "km": Call.of(safety.time_to_first, flt),
                  "listing": Call.of(safety.listing, flt)})
    return calls


def data_quality(run: Run, flt: Filter) -> dict[str, Call]:
    """The Data page with its "Data quality" tab open (import and dictionary compute nothing
    per filter)."""
    return {**_page_head(flt), "missingness": Call.of(quality.missingness, flt),
            "edges": Call.of(quality.range_edges, flt)}


PAGES: dict[str, Callable[..., dict[str, Call]]] = {
    "Overview": overview,
    "Overview split": partial(overview, group_by=DEFAULT_GROUP),
    "Biomarkers": biomarkers_page,
    "Biomarkers Figure 1": partial(biomarkers_page, figure1=True),
    "Remission": remission_page,
    "Subgroups": subgroups_page,
    "Patient": patient_page,
    "Safety": safety_page,
    "Treat to target": targets_page,
    "Treat to target MMRM": partial(targets_page, mmrm=True),
    "Data quality": data_quality,
}
# The page file and URL state each view stands for (tests/test_pages.py runs them).
PAGE_FILES = {
    "Overview": ("overview", {}),
    "Overview split": ("overview", {"ov_group": DEFAULT_GROUP}),
    "Biomarkers": ("biomarkers", {}),
    "Biomarkers Figure 1": ("biomarkers", {"bio_tab": "All endpoints (Figure 1)"}),
    "Remission": ("remission", {}),
    "Subgroups": ("subgroups", {}),
    "Patient": ("patient", {}),
    "Safety": ("safety", {}),
    "Treat to target": ("targets", {}),
    "Treat to target MMRM": ("targets", {"t2t_mmrm": "true"}),
    "Data quality": ("data", {"data_tab": "Data quality"}),
}
