"""Safety: adverse events as the seed paper's Table 3, incidence, time to first event, listing."""

import streamlit as st

from lupus_dash import charts, explore, ui

ctx = ui.page("Safety")
flt = ctx.flt

t3 = ui.compute("explore.ae_table3", flt)
head = f"Belimumab (n={ctx.k})"
layout = t3.assign(**{
    "Adverse events": [("    " if lv else "") + r for r, lv in zip(t3["row"], t3["level"])],
    head: [f"{n} ({p:.1f} %)" if i == 0 or n else str(n)
           for i, (n, p) in enumerate(zip(t3["n_patients"], t3["pct"]))],
    "Events": t3["n_events"],
})[["Adverse events", head, "Events"]]
st.metric("Patients with adverse events", f"{int(t3['n_patients'].iloc[0])} of {ctx.k}",
          help=f"{t3['pct'].iloc[0]:.1f} %")
st.subheader("Table 3 — treatment-emergent adverse events")
st.caption("Patients with at least one event in each row; n (%) of the filtered patients. "
           "Infection terms follow the seed paper's rows, plus any other term recorded.")
ui.table(layout, "table3_adverse_events",
         ui.py_call("explore.ae_table3(db, flt)", flt, "explore"),
         ui.cli_call(flt, "--layout", "table3"), xlsx=True, height=560)

listing = ui.compute("explore.ae_listing", flt)
if listing.empty:
    st.info("No adverse event is recorded for these patients.")
    st.stop()

st.subheader("Incidence by category")
inc = ui.compute("explore.ae_incidence", flt)
ui.chart(charts.bars(inc, x="rate", y="label", lo="ci_low", hi="ci_high",
                     x_title="Patients with ≥ 1 event (95 % Wilson CI)"),
         "ae_incidence", ui.py_call("explore.ae_incidence(db, flt)", flt, "explore"))
ui.table(inc, "ae_incidence_table", ui.py_call("explore.ae_incidence(db, flt)", flt, "explore"),
         column_config={c: st.column_config.NumberColumn(format="%.3f")
                        for c in ("rate", "ci_low", "ci_high", "per_100_py")})

st.subheader("Time to first adverse event")
km = ui.compute("explore.ae_time_to_first", flt)
ui.chart(charts.km(km, group=None, y_title="With ≥ 1 event (cumulative %)",
                   title="Kaplan–Meier, censored at the last visit"),
         "ae_time_to_first", ui.py_call("explore.ae_time_to_first(db, flt)", flt, "explore"))

st.subheader("Listing")
ui.table(listing, "ae_listing", ui.py_call("explore.ae_listing(db, flt)", flt, "explore"),
         max_rows=explore.LISTING_CAP)
