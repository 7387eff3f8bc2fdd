"""Safety: adverse events as the seed paper's Table 3, incidence, time to first event, listing."""

import streamlit as st

from lupus_dash import charts, layouts, ui
from lupus_dash.analyses import safety

ctx = ui.page("Safety")
flt = ctx.flt

t3 = ui.run(safety.table3, flt).table
top = t3.iloc[0]
ui.metric(st, "Patients with adverse events", layouts.fmt_count(top["n_patients"], top["n"]),
          help=layouts.fmt_pct(top["pct"] / 100 if not isinstance(top["pct"], str)
                               else top["pct"]))
st.subheader("Table 3 — adverse events")
ui.show_layout("table3", flt, height=560)

if not isinstance(top["n_events"], str) and top["n_events"] == 0:
    st.info("No adverse event is recorded for these patients.")
    st.stop()

st.subheader("Incidence by category")
inc = ui.run(safety.incidence, flt)
ui.chart(charts.bars(inc.table, x="rate", y="label", lo="ci_low", hi="ci_high",
                     x_title="Patients with ≥ 1 event (95 % Wilson CI)"),
         "ae_incidence", calls=inc.call)
it = inc.table
ui.table(it.assign(**{
    "Category": it["label"],
    "Patients": [layouts.fmt_count(k, n) for k, n in zip(it["n_patients"], it["n"],
                                                         strict=True)],
    "Rate (%)": [layouts.fmt_pct(r) for r in it["rate"]],
    "95 % CI (%)": [layouts.fmt_pct_ci(lo, hi) for lo, hi in
                    zip(it["ci_low"], it["ci_high"], strict=True)],
    "Events": [layouts.fmt_num(e, 0) for e in it["n_events"]],
    "Events per 100 patient-years": [layouts.fmt_num(x, 1) for x in it["per_100_py"]],
})[["Category", "Patients", "Rate (%)", "95 % CI (%)", "Events",
    "Events per 100 patient-years"]], "ae_incidence_table", calls=inc.call)

st.subheader("Time to first adverse event")
km = ui.run(safety.time_to_first, flt)
ui.chart(charts.km(km.table, group=None, y_title="With ≥ 1 event (cumulative %)",
                   title="Kaplan–Meier, censored at the last visit"),
         "ae_time_to_first", calls=km.call)

st.subheader("Listing")
if ui.permitted(safety.listing):
    listing = ui.run(safety.listing, flt)
    ui.table(listing.table, "ae_listing", calls=listing.call, max_rows=ui.LISTING_CAP)
else:
    st.info("The listing of single events is patient-level: not shown in the shared "
            "dashboard.")
