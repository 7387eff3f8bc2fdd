"""Remission: LLDAS, remission and renal response by visit, states, time to first response."""

import streamlit as st

from lupus_dash import charts, endpoints, layouts, schema, ui
from lupus_dash.analyses import common, remission

ctx = ui.page("Remission")
flt = ctx.flt

c = ui.controls().columns([2, 2, 2])
with c[0]:
    preset = ui.url_widget("selectbox", "Definitions", list(schema.PRESETS), "rem_preset",
                           default="standard",
                           format_func=lambda p: endpoints.PRESETS[p].label)
with c[1]:
    imputation = ui.url_widget(
        "radio", "Missing visits", ["non-responder", "observed only"], "rem_missing",
        default="non-responder",
        help="Non-responder imputation (the seed paper's convention): a patient without an "
             "assessment (missed visit, stopped) counts as not achieving it and stays in the "
             "denominator.")
with c[2]:
    not_eval = ui.url_widget(
        "radio", "Visits that cannot be evaluated", ["exclude", "failure"], "rem_noteval",
        default="exclude",
        format_func=lambda v: "left out (shown apart)" if v == "exclude"
        else "counted as not achieved",
        help="A visit attended but missing a component of the definition (e.g. no "
             "new-activity assessment). Sensitivity analysis: count it as not achieved.")
observed = imputation == "observed only"
with st.expander("Thresholds in force"):
    st.text("\n".join(endpoints.PRESETS[preset].describe()))
    st.text("\n".join(endpoints.describe_renal()))

res = ui.run(remission.rates, flt, preset=preset, observed=observed, not_evaluable=not_eval)
rem = res.table
info = ui.run(common.cohort_info, cohort=flt.cohort).table
final = str(info["final_week"])
LABELS = remission.LABELS
rem = rem.assign(week=rem["visit_week"].astype(str),
                 label=rem["definition"].map(LABELS).fillna(rem["definition"]))

m = ui.metric_columns(4)
for i, (d, wk) in enumerate((("lldas", final), ("remission", final), ("lldas", "last"),
                             ("remission", "last"))):
    r = rem[(rem["definition"] == d) & (rem["week"] == wk)].iloc[0]
    # k/n as on the Overview (the n beside the estimate); the % and its CI in the help.
    ui.metric(m[i], f"{LABELS[d]} at {'week ' + wk if wk != 'last' else 'last assessment'}",
              layouts.fmt_count(r["n_achieved"], r["n_denominator"]),
              help=f"{layouts.fmt_pct(r['rate'])} (95 % CI "
                   f"{layouts.fmt_pct_ci(r['ci_low'], r['ci_high'])} %); "
                   f"{r['denominator_rule']}"
              if not isinstance(r["rate"], str) and r["n_denominator"] else
              r["denominator_rule"])

available = [d for d in LABELS if d in set(rem["definition"])]
defs = ui.url_widget("multiselect", "Definitions shown", available, "rem_defs",
                     default=[d for d in ("lldas", "remission", "renal_complete",
                                          "renal_partial") if d in available],
                     format_func=LABELS.get)
# The chart uses the text column `week`; visit_week mixes numbers and "last".
shown = rem[rem["definition"].isin(defs or ["lldas"])].drop(columns=["visit_week"])
ui.chart(charts.rates(shown, x="week", color="label",
                      title=f"Patients reaching each target ({imputation}), 95 % Wilson CI"),
         "remission_rates", calls=res.call)
renal_txt = ", ".join(f"{LABELS.get(d, d)} ≥ {remission.renal_threshold(d):g} g/g"
                      for d in ("renal_complete", "renal_perr"))
st.caption("Renal responses count only patients with active nephritis at baseline (UPCR or "
           f"24-h protein: {renal_txt}). 'last' = each patient's last assessment. "
           "Denominator: " + rem["denominator_rule"].iloc[0] + ".")
table = rem.assign(
    Week=[layouts.week_label(w if w == "last" else int(w)) for w in rem["week"]],
    Definition=rem["label"],
    Achieved=[layouts.fmt_count(a, n) for a, n in zip(rem["n_achieved"], rem["n_denominator"],
                                                      strict=True)],
    **{"Rate (%)": [layouts.fmt_pct(x) for x in rem["rate"]],
       "95 % CI (%)": [layouts.fmt_pct_ci(lo, hi)
                       for lo, hi in zip(rem["ci_low"], rem["ci_high"], strict=True)],
       "Not achieved": [layouts.fmt_num(x, 0) for x in rem["n_not_achieved"]],
       "Not evaluable": [layouts.fmt_num(x, 0) for x in rem["n_not_evaluable"]],
       "No assessment": [layouts.fmt_num(x, 0) for x in rem["n_no_assessment"]],
       "Denominator": rem["denominator_rule"]})
ui.table(table[["Week", "Definition", "Achieved", "Rate (%)", "95 % CI (%)", "Not achieved",
                "Not evaluable", "No assessment", "Denominator"]],
         "remission_table", calls=res.call)

st.subheader("Disease state per visit")
states = ui.run(remission.states, flt, preset=preset)
ui.chart(charts.stacked_states(states.table,
                               title="Remission, LLDAS (not remission), active"),
         "disease_states", calls=states.call)

st.subheader("Time to first response")
st.page_link("pages/targets.py", label="Time to first LLDAS or remission — with the number at "
             "risk, the median time, the hazard ratio and a stated strategy for patients who "
             "stopped — is on the Treat to target page →")

st.subheader("Who are they?")
if not ui.permitted(remission.who):
    st.info("The patients behind a rate are patient-level: not shown in the shared dashboard.")
    st.stop()
weeks = [*info["scheduled_weeks"][1:], "last"]
c = st.columns(3)
with c[0]:
    who_def = ui.url_widget("selectbox", "Definition", available, "rem_who_def",
                            default="lldas", format_func=LABELS.get)
with c[1]:
    week = ui.url_widget("selectbox", "Visit", weeks, "rem_week", default="last",
                         format_func=lambda w: "last assessment" if w == "last"
                         else f"week {w}")
with c[2]:
    outcome = ui.url_widget("selectbox", "Patients", list(remission.OUTCOMES),
                            "rem_who_outcome", default="achieved")
per = ui.run(remission.who, flt, definition=who_def, week=week, preset=preset)
sel = per.table[per.table["outcome"] == outcome]
row = rem[(rem["definition"] == who_def) & (rem["week"] == str(week))].iloc[0]
st.markdown(f"**{LABELS.get(who_def, who_def)} at "
            f"{'the last assessment' if week == 'last' else f'week {week}'}: "
            f"{layouts.fmt_count(row['n_achieved'], row['n_denominator'])} achieved** — "
            f"{len(sel)} patient(s) {outcome}. Open one to see the timeline.")
links = sel.assign(open=[f"patient?cohort={flt.cohort}&patient={pid}&pt_preset={preset}"
                         for pid in sel["patient_id"]])
ui.table(links.rename(columns={"patient_id": "Patient", "visit_week": "Visit week",
                               "outcome": "Outcome", "why": "Why not"})[
    ["Patient", "Visit week", "Outcome", "Why not", "open"]],
    f"who_{who_def}_{week}_{outcome}", calls=per.call, height=360, max_rows=ui.LISTING_CAP,
    column_config={"open": st.column_config.LinkColumn("Timeline", display_text="open ↗")})
