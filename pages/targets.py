"""Treat to target: time in LLDAS and remission, sustained states, what became of patients
who stopped, disease-state flow, time to first target, the swimmer plot, MMRM change."""

import streamlit as st

from lupus_dash import charts, endpoints, layouts, schema, treat_to_target, ui
from lupus_dash.analyses import biomarkers, common, targets

ctx = ui.page("Treat to target")
flt = ctx.flt
labels = {c.name: c.label for c in schema.columns("patient_facts")}

c = ui.controls().columns([2, 3])
with c[0]:
    preset = ui.url_widget("selectbox", "Definitions", list(schema.PRESETS), "t2t_preset",
                           default="standard", format_func=lambda p: endpoints.PRESETS[p].label)
with c[1]:
    strategy = ui.url_widget(
        "radio", "Patients who stopped or switched belimumab",
        list(treat_to_target.STRATEGIES), "t2t_strategy", default="composite",
        format_func=lambda s: treat_to_target.STRATEGY_LABELS[s].split(":")[0],
        help="Composite (the default): after a stop or switch the patient counts as not in "
             "target at every later visit and never reaches the target later. Treatment "
             "policy: the observed values are used whatever the treatment. While on "
             "treatment: follow-up ends at the stop.")
st.markdown(f"**Strategy in force:** {treat_to_target.STRATEGY_LABELS[strategy]}.")

# --- time in target -------------------------------------------------------------------
st.subheader("Time in target")
tit = ui.run(targets.time_in_target, flt, preset=preset, strategy=strategy)
t = tit.table


def _share(k_col: str, share_col: str, lo_col: str, hi_col: str) -> list[str]:
    """'k/n (p %; 95 % CI lo to hi %)' per row; a withheld share stays its text."""
    return [f"{layouts.fmt_count(k, n)} ({layouts.fmt_pct(r)}; 95 % CI "
            f"{layouts.fmt_pct_ci(lo, hi, 0)} %)" if not isinstance(r, str) else r
            for k, n, r, lo, hi in zip(t[k_col], t["n"], t[share_col], t[lo_col], t[hi_col],
                                       strict=True)]


ui.table(t.assign(**{
    "Target": [treat_to_target.DEFINITION_LABELS[d] for d in t["definition"]],
    "Patients (n)": [layouts.fmt_num(x, 0) for x in t["n"]],
    "Time in target, median (P25, P75)": [
        f"{layouts.fmt_pct(m, 0)} ({layouts.fmt_pct(a, 0)}, {layouts.fmt_pct(b, 0)})"
        for m, a, b in zip(t["median"], t["p25"], t["p75"], strict=True)],
    "≥ 50 % of observed time": _share("n_ge_50pct", "share_ge_50pct", "ci_low", "ci_high"),
    "Sustained": _share("n_sustained", "share_sustained", "sustained_ci_low",
                        "sustained_ci_high"),
    "Reached": [layouts.fmt_num(x, 0) for x in t["n_reached"]],
    "Flare after target": [layouts.fmt_num(x, 0) for x in t["n_flare"]],
    "Lost by stopping": [layouts.fmt_num(x, 0) for x in t["n_lost_by_stop"]],
})[["Target", "Patients (n)", "Time in target, median (P25, P75)", "≥ 50 % of observed time",
    "Sustained", "Reached", "Flare after target", "Lost by stopping"]],
    "time_in_target", calls=tit.call)
st.caption("Time weighted between assessed visits: the state at a visit holds until the next "
           "assessed visit, over the time from the first to the last (Franklyn 2016 validated "
           "LLDAS in ≥ 50 % of observed time). Sustained: in the state at ≥ "
           f"{treat_to_target.SUSTAIN_VISITS} consecutive assessed visits spanning ≥ "
           f"{treat_to_target.SUSTAIN_WEEKS:g} weeks. Flare: the state lost after it was "
           "reached. Wilson 95 % CIs.")

# --- disease-state flow -----------------------------------------------------------------
st.subheader("Disease state at each visit")
flow = ui.run(targets.state_flow, flt, preset=preset, strategy=strategy)
if flow.suppressed:
    # Shared mode withheld some counts: ribbons cannot be drawn without them, so the states
    # per visit are shown as bars (withheld counts not drawn) and the flow as its table.
    ui.chart(charts.stacked_states(flow["counts"], title="Disease state per visit"),
             "state_flow", calls=flow.call)
    st.caption("The flow between visits is not drawn here: some of its counts concern fewer "
               "patients than the shared dashboard shows. " + " ".join(flow.notes))
else:
    ui.chart(charts.sankey(flow["counts"], flow["transitions"],
                           title="Remission, LLDAS (not remission), active, not assessed, "
                                 "stopped",
                           subtitle=treat_to_target.STRATEGY_LABELS[strategy]),
             "state_flow", calls=flow.call)
weeks = sorted(int(w) for w in flow["counts"]["visit_week"].unique())
if len(weeks) > 1:
    frm = ui.url_widget("selectbox", "Transitions from", weeks[:-1], "t2t_from",
                        default=weeks[0], format_func=lambda w: f"week {w}")
    tt = treat_to_target.transition_table(flow["transitions"], frm)
    nxt = weeks[weeks.index(frm) + 1]
    tt = tt.rename(columns=lambda c: f"{c} at week {nxt}")
    tt.insert(0, f"State at week {frm}", tt.index)
    ui.table(tt.reset_index(drop=True), f"transitions_week_{frm}", calls=flow.call)

# --- time to first target --------------------------------------------------------------
st.subheader("Time to first target")
c = st.columns(2)
with c[0]:
    definition = ui.url_widget("selectbox", "Target", list(treat_to_target.DEFINITIONS),
                               "t2t_def", default="lldas",
                               format_func=treat_to_target.DEFINITION_LABELS.get)
with c[1]:
    split = ui.url_widget("selectbox", "Compare groups", ["none", *schema.GROUPING_COLUMNS],
                          "t2t_group", default="none",
                          format_func=lambda g: "no grouping" if g == "none"
                          else labels.get(g, g))
group_by = None if split == "none" else split
ttf = ui.run(targets.time_to_first, flt, definition=definition, preset=preset,
             strategy=strategy, group_by=group_by)
cnt = ttf["counts"].iloc[0]
tests = ttf["tests"]
ui.log_tests(tests.assign(endpoint=f"time to {definition}", group_by=group_by or ""))
test_text = layouts.km_tests_text(tests)
if ttf["curves"].empty:
    st.info("No patient can be followed for this target.")
else:
    ui.chart(charts.km_risk(ttf["curves"], ttf["risk"], medians=ttf["medians"],
                            test_text=test_text,
                            title=f"Time to first {treat_to_target.DEFINITION_LABELS[definition]}"
                                  " after baseline (Kaplan–Meier)"),
             f"time_to_{definition}", calls=ttf.call)
ui.table(layouts.km_medians(ttf["medians"]), f"median_time_to_{definition}", calls=ttf.call)
st.caption(
    f"{layouts.fmt_num(cnt['n_at_baseline'], 0)} patient(s) already in "
    f"{treat_to_target.DEFINITION_LABELS[definition]} at baseline are reported apart (not an "
    f"event at week 0); {layouts.fmt_num(cnt['n_no_follow_up'], 0)} without an assessed visit "
    "after baseline are left out. "
    + ("Under the composite strategy a patient who stopped never reaches the target later: "
       "followed to the final scheduled week without the event."
       if strategy == "composite" else ""))

# --- swimmer plot (patient-level) ------------------------------------------------------------
st.subheader("Each patient's course")
sort_by = ui.url_widget("selectbox", "Order", list(treat_to_target.SWIMMER_SORTS), "t2t_sort",
                        default="stopped_first",
                        format_func=treat_to_target.SWIMMER_SORTS.get)
if ui.permitted(targets.swimmer):
    sw = ui.run(targets.swimmer, flt, preset=preset, strategy=strategy, sort_by=sort_by)
    note = sw["note"]["note"].iloc[0]
    ui.chart(charts.swimmer(sw["lanes"], sw["markers"], note=note,
                            title="On belimumab, state at each visit, adverse events, stop"),
             "swimmer", calls=sw.call)
else:
    st.info("One lane per patient is patient-level: not shown in the shared dashboard.")

# --- MMRM --------------------------------------------------------------------------------
st.subheader("Change from baseline (MMRM)")
eps = [e for e in ui.run(common.available_endpoints, flt).table if e.kind == "continuous"]
c = st.columns(2)
with c[0]:
    endpoint = ui.url_widget("selectbox", "Endpoint", [e.column for e in eps], "t2t_mmrm_ep",
                             default=eps[0].column if eps else None,
                             format_func=ui.endpoint_label)
with c[1]:
    mgroup = ui.url_widget("selectbox", "Subgroups (forest plot)",
                           ["none", *schema.GROUPING_COLUMNS], "t2t_mmrm_group",
                           default="none", format_func=lambda g: "none" if g == "none"
                           else labels.get(g, g))
run_mmrm = ui.url_widget("toggle", "Fit the model", None, "t2t_mmrm", default=False,
                         help="REML with an unstructured covariance over the visits; a few "
                              "seconds for a registry-sized cohort")
if run_mmrm and endpoint:
    with st.spinner("Fitting the mixed model for repeated measures…"):
        mm = ui.run(biomarkers.mmrm_rows, flt, endpoints=[endpoint], strategy=strategy)
    m = mm.table
    ui.log_tests(m.assign(method="mmrm"))
    ui.table(m.assign(**{
        "Week": m["visit_week"], "n": [layouts.fmt_num(x, 0) for x in m["n"]],
        "LS-mean change": [layouts.fmt_num(x) for x in m["estimate"]],
        "SE": [layouts.fmt_num(x) for x in m["se"]],
        "df": [layouts.fmt_num(x, 1) for x in m["df"]],
        "95 % CI": [layouts.fmt_ci(a, b) for a, b in zip(m["ci_low"], m["ci_high"],
                                                         strict=True)],
        "p": [layouts.fmt_p(x) for x in m["p_value"]],
    })[["Week", "n", "LS-mean change", "SE", "df", "95 % CI", "p"]], f"mmrm_{endpoint}",
        calls=mm.call)
    st.caption("Change from baseline ~ visit + baseline value, unstructured covariance, REML, "
               "all available observations (no imputation); least-squares means at the mean "
               "baseline, Satterthwaite df (as nlme::gls with emmeans).")
    if mgroup != "none":
        with st.spinner("Fitting the subgroup model…"):
            fr = ui.run(biomarkers.mmrm_forest, flt, endpoint=endpoint, group_by=mgroup,
                        strategy=strategy)
        ft = fr["tests"].iloc[0]
        if fr["rows"].empty:
            st.info(f"Not computable: {ft['notes']}")
        else:
            ui.chart(charts.forest_t2t(
                fr["rows"], interaction_p=ft["p_group"],
                interaction_label=f"{labels.get(mgroup, mgroup)} × change at week "
                                  f"{ft['visit_week']}",
                x_title=f"LS-mean change in {ui.endpoint_label(endpoint)} at week "
                        f"{ft['visit_week']} (95 % CI)"),
                f"mmrm_forest_{endpoint}_{mgroup}", calls=fr.call)
            st.caption("The p printed is the test that the change differs between the "
                       "subgroups (interaction), not a p per subgroup; visit × subgroup over "
                       f"all visits: p = {layouts.fmt_p(ft['p_visit_by_group'])}.")
