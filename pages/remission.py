"""Remission: LLDAS, remission and renal response by visit, states, time to first response."""

import streamlit as st

from lupus_dash import charts, endpoints, explore, schema, ui

ctx = ui.page("Remission")
flt = ctx.flt

c = st.columns([2, 2])
with c[0]:
    preset = ui.url_widget("selectbox", "Definitions", list(schema.PRESETS), "rem_preset",
                           default="standard",
                           format_func=lambda p: endpoints.PRESETS[p].label)
with c[1]:
    imputation = ui.url_widget(
        "radio", "Missing visits", ["non-responder", "observed only"], "rem_missing",
        default="non-responder",
        help="Non-responder imputation (the seed paper's convention): a patient without an "
             "assessment counts as not achieving it and stays in the denominator.")
observed = imputation == "observed only"
with st.expander("Thresholds in force"):
    st.text("\n".join(endpoints.PRESETS[preset].describe()))

rem = ui.compute("analysis.remission", flt, preset=preset, observed=observed)
info = ui.compute("analysis.cohort_info", None, cohort=flt.cohort)
final = str(info["final_week"])
LABELS = {"lldas": "LLDAS", "remission": "Remission", "renal_complete": "Complete renal response",
          "renal_partial": "Partial renal response", "glucocorticoid_off": "Off glucocorticoids",
          "glucocorticoid_le_5": "Prednisone ≤ 5 mg/day"}
rem = rem.assign(week=rem["visit_week"].astype(str),
                 label=rem["definition"].map(LABELS).fillna(rem["definition"]))

m = ui.metric_columns(4)
for i, (d, wk) in enumerate((("lldas", final), ("remission", final), ("lldas", "last"),
                             ("remission", "last"))):
    r = rem[(rem["definition"] == d) & (rem["week"] == wk)].iloc[0]
    m[i].metric(f"{LABELS[d]} at {'week ' + wk if wk != 'last' else 'last assessment'}",
                f"{r['rate'] * 100:.1f} %" if r["n_evaluable"] else "—",
                help=f"{int(r['n_achieved'])} of {int(r['n_evaluable'])} "
                     f"({imputation}); 95 % CI {r['ci_low'] * 100:.1f}–{r['ci_high'] * 100:.1f} %"
                if r["n_evaluable"] else "nobody evaluable")

defs = ui.url_widget("multiselect", "Definitions shown", list(LABELS), "rem_defs",
                     default=["lldas", "remission", "renal_complete", "renal_partial"],
                     format_func=LABELS.get)
# The chart uses the text column `week`; visit_week mixes numbers and "last".
shown = rem[rem["definition"].isin(defs or ["lldas"])].drop(columns=["visit_week"])
ui.chart(charts.rates(shown, x="week", color="label",
                      title=f"Patients reaching each target ({imputation}), 95 % Wilson CI"),
         "remission_rates",
         ui.py_call(f"analysis.remission(db, flt, preset={preset!r}, observed={observed})", flt),
         ui.cli_call(flt, *(["--observed"] if observed else []), preset=preset))
st.caption("Renal responses count only patients with active nephritis at baseline (UPCR or "
           "24-h protein ≥ 0.5). 'last' = each patient's last assessment.")
ui.table(rem.drop(columns=["visit_week"]).rename(columns={"week": "visit_week"}),
         "remission_table",
         ui.py_call(f"analysis.remission(db, flt, preset={preset!r}, observed={observed})", flt),
         column_config={c: st.column_config.NumberColumn(format="%.3f")
                        for c in ("rate", "ci_low", "ci_high")})

st.subheader("Disease state per visit")
states = ui.compute("analysis.remission_states", flt, preset=preset)
ui.chart(charts.stacked_states(states, title="Remission, LLDAS (not remission), active"),
         "disease_states",
         ui.py_call(f"analysis.remission_states(db, flt, preset={preset!r})", flt))

st.subheader("Time to first response")
labels = {c.name: c.label for c in schema.columns("patient_facts")}
c = st.columns(2)
with c[0]:
    definition = ui.url_widget("selectbox", "Target", ["lldas", "remission", "renal_complete",
                                                       "renal_partial"], "rem_km_def",
                               default="lldas", format_func=LABELS.get)
with c[1]:
    split = ui.url_widget("selectbox", "Compare groups", ["none", *schema.GROUPING_COLUMNS],
                          "rem_km_group", default="none",
                          format_func=lambda g: "no grouping" if g == "none"
                          else labels.get(g, g))
    group_by = None if split == "none" else split
km, test = ui.compute("analysis.time_to_event", flt, definition=definition, preset=preset,
                      group_by=group_by)
if km.empty:
    st.info("No follow-up visit to analyse.")
else:
    ui.chart(charts.km(km, title=f"Time to first {LABELS[definition]} (Kaplan–Meier)"),
             f"km_{definition}",
             ui.py_call(f"km, test = analysis.time_to_event(db, flt, definition={definition!r}, "
                        f"preset={preset!r}, group_by={group_by!r})", flt))
    if group_by:
        if test is None or test.p_value is None:
            reason = getattr(test, "reason", None) or "only one group has patients"
            st.warning(f"Log-rank test not computable: {reason}.")
        else:
            st.markdown(f"Log-rank: χ² = {test.statistic:.3f}, df = {ui.fmt_num(test.df)}, "
                        f"p = {test.p_value:.4g} (n = {test.n})")
    st.caption("Patients who never reach the target are censored at their last visit.")

st.subheader("Which criterion failed")
weeks = [*info["scheduled_weeks"][1:], "last"]
week = ui.url_widget("selectbox", "Visit", weeks, "rem_week", default="last",
                     format_func=lambda w: "last assessment" if w == "last" else f"week {w}")
per = ui.compute("explore.endpoint_states", flt, preset=preset, week=week)
ui.table(per, f"criteria_week_{week}",
         ui.py_call(f"explore.endpoint_states(db, flt, preset={preset!r}, week={week!r})", flt,
                    "explore"), height=420, max_rows=explore.LISTING_CAP)
