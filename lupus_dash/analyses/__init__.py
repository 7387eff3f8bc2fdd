"""Every computation a page or the report shows, by concept. Where is a number computed?

| module | what it computes |
|---|---|
| `cohort` | who matches the filter (counts, filter options with counts, group sizes), patient flow, Table 1 and its tests |
| `biomarkers` | per-visit summaries, paired tests against baseline or the previous visit, repeated-measures tests, mixed model, MMRM (LS-mean change, subgroup interaction, forest rows), individual trajectories |
| `remission` | LLDAS / remission / renal response rates with their denominators, disease states per visit, which criterion failed, time to first response |
| `subgroups` | between-group tests per endpoint and visit, per-group summaries (trajectories, forest plot) |
| `targets` | treat-to-target: time in LLDAS / remission, sustained states, flares, intercurrent-event strategies, disease-state flow, time to first target with risk table, median and hazard ratio, swimmer plot |
| `safety` | adverse events: Table 3 counts, incidence, time to first event, listing |
| `patient` | one patient's record, visits and events |
| `quality` | missingness, values at the plausible-range edges |
| `common` | shared SQL pieces: the cohort's schedule, patient counts, endpoints present |

Each public function is declared with `results.analysis` and is run through
`results.run` (pages: `ui.run`), never called directly by a page or the report.
The statistics themselves live in `lupus_dash.stats`; the paper-table text in
`lupus_dash.layouts`.
"""

from . import (
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

__all__ = ["biomarkers", "cohort", "common", "patient", "quality", "remission", "safety",
           "subgroups", "targets"]
