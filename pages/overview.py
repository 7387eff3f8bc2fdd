"""Overview: patient flow, Table 1 and headline metrics for the filtered patients."""

import streamlit as st

from lupus_dash import charts, explore, schema, ui

ctx = ui.page("Overview")
flt = ctx.flt

info = ui.compute("analysis.cohort_info", None, cohort=flt.cohort)
final = info["final_week"]
flow, reasons, _doses = ui.compute("explore.patient_flow", flt)
rem = ui.compute("analysis.remission", flt, preset="standard")
at_final = rem[rem["visit_week"].astype(str) == str(final)].set_index("definition")
ae = ui.compute("explore.ae_table3", flt)

m = ui.metric_columns(5)
m[0].metric("Patients", f"{ctx.k}", help=f"of {ctx.n} in {flt.cohort}")
m[1].metric("Completed follow-up", int(flow.loc[flow["stage"] == "Completed follow-up", "n"]
                                       .iloc[0]), help=f"Have the week-{final} visit")
for i, d in ((2, "lldas"), (3, "remission")):
    r = at_final.loc[d]
    m[i].metric(f"{'LLDAS' if d == 'lldas' else 'Remission'} at week {final}",
                f"{r['rate'] * 100:.1f} %" if r["n_evaluable"] else "—",
                help=f"{int(r['n_achieved'])} of {int(r['n_evaluable'])} patients; published "
                     "definitions, non-responder imputation (missing = not achieved)")
m[4].metric("Patients with adverse events", int(ae["n_patients"].iloc[0]),
            help=f"{ae['pct'].iloc[0]:.1f} % of {ctx.k}")
st.caption(f"Scheduled visits: weeks {', '.join(str(w) for w in info['scheduled_weeks'])}.")

st.subheader("Patient flow")
left, right = st.columns([3, 2])
with left:
    ui.chart(charts.flow(flow), "patient_flow",
             ui.py_call("flow, reasons, doses = explore.patient_flow(db, flt)", flt, "explore"),
             sql=flt.patients_sql())
with right:
    st.markdown("**Why belimumab was stopped**")
    if reasons.empty:
        st.write("No patient stopped belimumab.")
    else:
        ui.table(reasons, "discontinuation_reasons",
                 ui.py_call("flow, reasons, doses = explore.patient_flow(db, flt)", flt,
                            "explore"))
    st.caption("Doses are derived from the IV schedule (weeks 0, 2, 4, then every 4 weeks up "
               "to the last visit or the stop week); the contract records no infusions.")

st.subheader("Table 1 — baseline characteristics")
group_opts = ["none", *schema.GROUPING_COLUMNS]
labels = {c.name: c.label for c in schema.columns("patient_facts")}
split = ui.url_widget("selectbox", "Split by", group_opts, "ov_group", default="none",
                      format_func=lambda g: "no split (overall only)" if g == "none"
                      else labels.get(g, g))
group_by = None if split == "none" else split
t1 = ui.compute("analysis.table1", flt, group_by=group_by)
tests = None
if group_by:
    with st.spinner(f"Testing {ctx.k:,} patients' baseline characteristics across groups…"):
        tests = ui.compute("analysis.table1_tests", flt, group_by=group_by)
if group_by:
    st.caption("P: Wilcoxon rank-sum (2 groups) or Kruskal–Wallis for numbers; chi-square, or "
               "Fisher's exact test when an expected count is below 5, for categories.")
code = f"t1 = analysis.table1(db, flt, group_by={group_by!r})"
if group_by:
    code += f"\ntests = analysis.table1_tests(db, flt, {group_by!r})"
ui.table(explore.table1_display(t1, tests), "table1",
         ui.py_call(code + "\nexplore.table1_display(t1" + (", tests)" if group_by else ")"), flt,
                    "analysis, explore"),
         ui.cli_call(flt, "--layout", "table1", *(["--group-by", group_by] if group_by else [])),
         xlsx=True, height=520)
