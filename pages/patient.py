"""Patient: one patient's labs, activity, glucocorticoid dose, doses, events and states."""

import pandas as pd
import streamlit as st

from lupus_dash import charts, dosing, endpoints, schema, ui
from lupus_dash.analyses import cohort, patient

ctx = ui.page("Patient")
flt = ctx.flt

ids = ui.run(cohort.patient_ids, flt).table
c = st.columns([2, 2])
with c[0]:
    if len(ids) <= ui.PICKER_CAP:
        pid = ui.url_widget("selectbox", f"Patient ({len(ids)} match the filter)", ids,
                            "patient", default=ids[0])
    else:
        # Too many to list (every option would be sent to the browser): ask for the id.
        typed = ui.url_widget("text", f"Patient id ({len(ids)} match the filter)", None,
                              "patient", default=ids[0],
                              help=f"Type an id, or narrow the filter to {ui.PICKER_CAP} "
                                   "patients or fewer to pick from a list.").strip()
        known = set(ids)
        pid = typed if typed in known else ids[0]
        if typed not in known:
            st.warning(f"No patient {typed!r} among those matching the filter; showing {pid}.")
with c[1]:
    preset = ui.url_widget("selectbox", "Definitions", list(schema.PRESETS), "pt_preset",
                           default="standard", format_func=lambda p: endpoints.PRESETS[p].label)
p = endpoints.PRESETS[preset]
OPS = {"le": "≤", "lt": "<"}

rec_res = ui.run(patient.record, cohort=flt.cohort, patient_id=pid)
rec = rec_res.table.iloc[0].to_dict() if len(rec_res.table) else {}
visits_res = ui.run(patient.visits, cohort=flt.cohort, patient_id=pid)
visits = visits_res.table
events_res = ui.run(patient.events, cohort=flt.cohort, patient_id=pid)
events = events_res.table
last = None if pd.isna(rec.get("last_week")) else int(rec["last_week"])
stop = None if pd.isna(rec.get("discontinued_week")) else int(rec["discontinued_week"])
doses = dosing.belimumab_dose_weeks(last, stop)

m = ui.metric_columns(6)
m[0].metric("Sex", schema.SEX_LABELS.get(rec.get("sex"), "—"))
age = rec.get("age_at_baseline_years")
m[1].metric("Age at baseline", "—" if pd.isna(age) else f"{age:.0f} y")
m[2].metric("Biopsy class", rec.get("biopsy_class") or "not biopsied")
m[3].metric("Immunosuppressant", rec.get("immunosuppressant") or "—")
m[4].metric("Follow-up", "—" if last is None else f"week {last}")
m[5].metric("Belimumab doses", len(doses), help="Derived: weeks 0, 2, 4, then every 4 weeks "
                                                "until the last visit or the stop week")
if stop is not None:
    st.warning(f"Belimumab stopped at week {stop}: "
               f"{rec.get('discontinuation_reason') or 'no reason recorded'}.")

ev = events[["onset_week", "term"]].dropna(subset=["onset_week"]) if len(events) else None


x_max = max([last or 0, *doses, *(ev["onset_week"].tolist() if ev is not None else [])])


def series(col, thresholds=None):
    e = schema.ENDPOINTS_BY_COLUMN.get(col)
    if col not in visits.columns or visits[col].notna().sum() == 0:
        return
    data = visits[["visit_week", col]].dropna()
    data = data.assign(**{col: data[col].astype(float)})
    title = ui.endpoint_label(col) if e else schema.column("visit_facts", col).label
    ui.chart(charts.patient_series(
        data, col, y_title=title, ref_low=e.ref_low if e else None,
        ref_high=e.ref_high if e else None, thresholds=thresholds, x_max=x_max, title=title,
        height=260 if ctx.presenter else 200),
        f"patient_{pid}_{col}", calls=visits_res.call)


st.subheader("Disease activity and treatment")
ui.chart(charts.treatment_strip(doses, ev, x_max=x_max,
                                title="Belimumab doses (derived from the IV schedule) and adverse "
                                      "events"),
         f"patient_{pid}_treatment", calls=rec_res.call,
         then="import lupus_dash.dosing as dosing\nr = res.table.iloc[0]\n"
              "dosing.belimumab_dose_weeks(r['last_week'], r['discontinued_week'])")
a, b = st.columns(2)
with a:
    sledai_l = f"LLDAS SLEDAI-2K {OPS[p.lldas_sledai_op]} {p.lldas_sledai_max}"
    series("sledai2k", [(p.lldas_sledai_max, sledai_l)])
    pred_l = (f"LLDAS {OPS[p.lldas_pred_op]} {p.lldas_pred_max_mg:g} mg" if p.lldas_pred_mg_kg is None else
              f"LLDAS min({p.lldas_pred_mg_kg:g} mg/kg, {p.lldas_pred_max_mg:g}) mg")
    pred_r = (f"remission {OPS[p.remission_pred_op]} {p.remission_pred_max_mg:g} mg" if p.remission_pred_mg_kg is None else
              f"remission min({p.remission_pred_mg_kg:g} mg/kg, {p.remission_pred_max_mg:g}) mg")
    series("prednisone_mg_day", [(p.lldas_pred_max_mg, pred_l),
                                 (p.remission_pred_max_mg, pred_r)])
with b:
    pga_l = f"LLDAS PGA {OPS[p.lldas_pga_op]} {p.lldas_pga_max:g}"
    pga_r = f"remission PGA {OPS[p.remission_pga_op]} {p.remission_pga_max:g}"
    series("pga", [(p.lldas_pga_max, pga_l), (p.remission_pga_max, pga_r)])
    series("anti_dsdna_iu_ml")
st.caption("Green band: reference range; dashed lines: thresholds of the chosen definitions.")

st.subheader("Laboratory values against reference ranges")
labs = [e.column for e in schema.ENDPOINTS if e.kind == "continuous" and e.column not in
        ("sledai2k", "pga", "prednisone_mg_day", "anti_dsdna_iu_ml")]
present = [c for c in labs if c in visits.columns and visits[c].notna().any()]
grid = st.columns(2)
for i, col in enumerate(present):
    with grid[i % 2]:
        series(col)

st.subheader("State per visit")
lld, rem_c = f"lldas_{preset}", f"remission_{preset}"
HEADERS = {"visit_week": "Week", "sledai2k": "SLEDAI-2K", "pga": "PGA (0–3)",
           "prednisone_mg_day": "Prednisone (mg/day)",
           "prednisone_mg_kg_day": "Prednisone (mg/kg/day)", lld: "LLDAS",
           f"{lld}_why": "LLDAS: why not", rem_c: "Remission", f"{rem_c}_why": "Remission: why not",
           "renal_complete": "Complete renal response",
           "renal_complete_why": "Complete renal response: why not",
           "renal_overall": "Overall renal response",
           "renal_overall_why": "Overall renal response: why not"}
state = visits[[c for c in HEADERS if c in visits.columns]].copy()
for c in (lld, rem_c, "renal_complete", "renal_overall"):
    if c in state.columns:  # Yes / No / not evaluable, not True / False / None
        state[c] = state[c].map({True: "Yes", False: "No"}).fillna("not evaluable")
for c in state.columns:
    if c.endswith("_why"):
        state[c] = state[c].fillna("")
state = state.rename(columns=HEADERS)
ui.table(state, f"patient_{pid}_states", calls=visits_res.call)

st.subheader("Adverse events")
if events.empty:
    st.write("No adverse event recorded.")
else:
    ui.table(events, f"patient_{pid}_adverse_events", calls=events_res.call)
