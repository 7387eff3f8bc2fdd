"""Overview: patient flow, Table 1 and headline metrics for the filtered patients."""

import streamlit as st

from lupus_dash import charts, layouts, schema, ui
from lupus_dash.analyses import cohort, common, remission, safety

ctx = ui.page("Overview")
flt = ctx.flt

info = ui.run(common.cohort_info, cohort=flt.cohort).table
final = info["final_week"]
flow = ui.run(cohort.patient_flow, flt)
stages = flow["stages"].set_index("stage")
rem = ui.run(remission.rates, flt, preset="standard").table
at_final = rem[rem["visit_week"].astype(str) == str(final)].set_index("definition")
t3 = ui.run(safety.table3, flt).table

m = ui.metric_columns(5)
ui.metric(m[0], "Patients", ctx.k, help=f"of {layouts.fmt_num(ctx.n, 0)} in {flt.cohort}")
ui.metric(m[1], "Completed follow-up", stages.at["Completed follow-up", "n"],
          help=f"Have the week-{final} visit and did not stop belimumab")
for i, d in ((2, "lldas"), (3, "remission")):
    r = at_final.loc[d]
    ui.metric(m[i], f"{'LLDAS' if d == 'lldas' else 'Remission'} at week {final}",
              layouts.fmt_count(r["n_achieved"], r["n_denominator"]),
              help=f"{layouts.fmt_pct(r['rate'])}; {r['denominator_rule']}; standard "
                   "definitions")
ui.metric(m[4], "With adverse events",
          layouts.fmt_count(t3["n_patients"].iloc[0], t3["n"].iloc[0]))
st.caption(f"Scheduled visits: weeks {', '.join(str(w) for w in info['scheduled_weeks'])}.")

st.subheader("Patient flow")
left, right = st.columns([3, 2])
with left:
    ui.chart(charts.flow(flow["stages"]), "patient_flow", calls=flow.call)
with right:
    st.markdown("**Why belimumab was stopped**")
    reasons = flow["reasons"]
    if reasons.empty:
        st.write("No patient stopped belimumab.")
    else:
        ui.table(reasons.drop(columns=["n_stopped"]).rename(
            columns={"reason": "Reason", "n": "Patients"}),
            "discontinuation_reasons", calls=flow.call)
    st.caption("Doses are derived from the IV schedule (weeks 0, 2, 4, then every 4 weeks up "
               "to the last visit or the stop week); the contract records no infusions.")

st.subheader("Table 1 — baseline characteristics")
group_opts = ["none", *schema.GROUPING_COLUMNS]
labels = {c.name: c.label for c in schema.columns("patient_facts")}
split = ui.url_widget("selectbox", "Split by", group_opts, "ov_group", default="none",
                      format_func=lambda g: "no split (overall only)" if g == "none"
                      else labels.get(g, g))
group_by = None if split == "none" else split
with st.spinner(f"Describing {ctx.k} patients' baseline characteristics…"):
    ui.show_layout("table1", flt, height=520, group_by=group_by)
if group_by:
    ui.log_tests(ui.run(cohort.table1_tests, flt, group_by=group_by).table, visit="baseline",
                 group_by=group_by)
