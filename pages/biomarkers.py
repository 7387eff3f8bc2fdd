"""Biomarkers: one endpoint's trajectory and statistics, and all endpoints side by side."""

import pandas as pd
import streamlit as st

from lupus_dash import charts, layouts, schema, ui
from lupus_dash.analyses import biomarkers, common
from lupus_dash.filters import Filter
from lupus_dash.results import Call

ctx = ui.page("Biomarkers")
flt = ctx.flt

eps = ui.run(common.available_endpoints, flt).table
cols = [e.column for e in eps]
missing = [e.label for e in schema.ENDPOINTS if e.column not in cols]
if missing:
    st.caption(f"Not recorded in {flt.cohort}: {', '.join(missing)}.")

tab_one, tab_all = ui.url_tabs(["One endpoint", "All endpoints (Figure 1)"], "bio_tab")

with tab_one:
    c = ui.controls().columns([2, 1, 2, 1])
    with c[0]:
        col = ui.url_widget("selectbox", "Endpoint", cols, "bio_endpoint", default=cols[0],
                            format_func=ui.endpoint_label)
    ep = schema.ENDPOINTS_BY_COLUMN[col]
    with c[1]:
        comparator = ui.url_widget("radio", "Compare with", list(biomarkers.COMPARATORS),
                                   "bio_cmp", default="baseline")
    choice = ui.run(biomarkers.test_choice, flt, endpoint=col).table.iloc[0]
    methods = ["pre-specified", *(biomarkers.BINARY_METHODS if ep.kind == "binary"
                                  else (*biomarkers.CONTINUOUS_METHODS, "mixed_model"))]
    if comparator == "previous" and "mixed_model" in methods:
        methods.remove("mixed_model")
    with c[2]:
        picked = ui.url_widget(
            "selectbox", "Test", methods, "bio_method", default="pre-specified",
            format_func=lambda m: (f"pre-specified: {layouts.method_words(choice['method'])}"
                                   if m == "pre-specified" else layouts.method_words(m)),
            help="One test per endpoint, chosen before looking at the data: rank tests for "
                 "skewed endpoints, t-tests for near-normal ones (STATISTICS.md).")
    with c[3]:
        adjust = ui.url_widget("selectbox", "Adjust p", ["none", "bonferroni", "holm", "bh"],
                               "bio_adjust", default="none")
    method = choice["method"] if picked == "pre-specified" else picked
    st.caption(f"Test: {layouts.method_words(method)} — "
               + (choice["reason"] if picked == "pre-specified" else "chosen by the user; the "
                  f"pre-specified test is {layouts.method_words(choice['method'])}") + ".")

    summ_call = Call.of(biomarkers.summary, flt, endpoints=[col])
    lon_call = Call.of(biomarkers.longitudinal, flt, endpoints=[col], comparators=[comparator],
                       adjust=adjust, include_mixed=method == "mixed_model")
    summ, lon = ui.run(summ_call).table, ui.run(lon_call).table
    rows = lon[lon["method"] == method].reset_index(drop=True)

    # The summary matches the test: median (P25, P75) beside a rank test, mean (95 % CI)
    # beside a t-test or a model, the share positive for a yes/no endpoint.
    display, y, lo, hi, what = layouts.summary_columns(ep.kind, method)
    if ep.kind == "binary":
        what += " (Wilson 95 % CI)"
    pv = rows[["visit_week", "p_adjusted"]].rename(columns={"p_adjusted": "p_value"})
    shown_summ = summ[layouts.has_value(summ["n"])]
    fixed = ui.url_widget("toggle", "Fixed axes", None, "bio_fixed", default=True,
                          help="Keep the y axis of the whole cohort while filters change, so "
                               "the picture moves only where the data do")
    y_domain = None
    if fixed:
        whole = ui.run(biomarkers.summary, Filter(flt.cohort), endpoints=[col]).table
        whole = whole[layouts.has_value(whole["n"])]
        ys = [v for c in (y, lo, hi) for v in pd.to_numeric(whole[c], errors="coerce").dropna()]
        y_domain = (min(ys), max(ys)) if ys else None
    traj = charts.trajectory(shown_summ, y, lo, hi, y_title=ui.endpoint_label(col),
                             p_values=pv, y_domain=y_domain,
                             title=f"{ep.label}: {what}; * {layouts.method_words(method)} "
                                   f"vs {comparator}"
                                   + (f", {adjust}-adjusted p" if adjust != "none" else ""))
    show_ind = ep.kind == "continuous" and ui.url_widget(
        "toggle", "Show individual patients", None, "bio_ind", default=False)
    note = None
    calls = {"summ": summ_call}
    if show_ind:
        ind = ui.run(biomarkers.individual_trajectories, flt, endpoint=col)
        shown = ind["shown"].iloc[0]
        spag = charts.spaghetti(ind["trajectories"].rename(columns={"value": y}), y,
                                y_title=ui.endpoint_label(col))
        traj = spag + traj
        calls["ind"] = ind.call
        note = (f"Individual lines: a fixed sample of {layouts.fmt_num(shown['n_shown'], 0)} of "
                f"{layouts.fmt_num(shown['n_total'], 0)} patients (capped for the browser)."
                if shown["sampled"] else
                f"Individual lines: all {layouts.fmt_num(shown['n_total'], 0)} patients with "
                "a value.")
    ui.chart(traj, f"{col}_trajectory", calls=calls)
    if note:
        st.caption(note)

    st.markdown(f"**{layouts.method_words(method)} against the {comparator} visit**")
    ui.log_tests(rows)  # every p shown counts towards "comparisons looked at"
    tbl = layouts.statistics_table(rows.assign(endpoint=col), summ, display)
    ui.table(tbl, f"{col}_statistics", calls={"summ": summ_call, "lon": lon_call},
             then=f"layouts.statistics_table(lon.table[lon.table['method'] == {method!r}], "
                  f"summ.table, {display!r})")
    notes = [n for n in rows["note"].dropna().unique() if n]
    for n_ in notes:
        st.caption(f"Note: {n_}.")
    if ep.kind == "continuous":
        omni = ui.run(biomarkers.omnibus, flt, endpoints=[col]).table

        def _omni(r) -> str:
            text = (f"{layouts.method_words(r.method)} n = {layouts.fmt_num(r.n, 0)}, "
                    f"p = {layouts.fmt_p(r.p_value)}")
            if r.method == "rm_anova" and not layouts.is_missing(r.epsilon_gg):
                text += (f" (Greenhouse–Geisser ε = {layouts.fmt_num(r.epsilon_gg, 2)}, "
                         f"p = {layouts.fmt_p(r.p_greenhouse_geisser)}; Huynh–Feldt ε = "
                         f"{layouts.fmt_num(r.epsilon_hf, 2)}, p = "
                         f"{layouts.fmt_p(r.p_huynh_feldt)})")
            if isinstance(r.reason, str) and r.reason:
                text += f" ({r.reason})"
            return text

        st.caption("Over all visits (complete cases): "
                   + "; ".join(_omni(r) for r in omni.itertuples()))

with tab_all:
    if tab_all.open:
        # Every endpoint × visit with its tests: seconds for a registry-sized cohort.
        with st.spinner(f"Testing every endpoint at every visit for {ctx.k} patients…"):
            calls = layouts.table2_calls(flt)
            res = {k: ui.run(c) for k, c in calls.items()}
        fig = layouts.figure1_frame(res["summ"].table, res["lon"].table)
        ui.log_tests(fig.assign(comparator="baseline"))
        ncol = 3 if ctx.presenter else 4
        ui.chart_grid([charts.figure1_panel(fig[fig["endpoint"] == e])
                       for e in dict.fromkeys(fig["endpoint"])],
                      charts.small_multiples(fig, columns=ncol), "figure1", ncol, calls=calls,
                      then="layouts.figure1_frame(summ.table, lon.table)")
        st.caption("As the seed paper's Figure 1: skewed endpoints median (IQR) with Wilcoxon "
                   "signed-rank stars; others mean (95 % CI) with RM-ANOVA pairwise, "
                   "Bonferroni-adjusted stars; anti-dsDNA % positive with Fisher's exact test. "
                   "* p<0.05, ** p<0.01, *** p<0.001 against baseline. Each panel names its "
                   "test.")
        st.markdown("**Table 2 layout**")
        ui.show_layout("table2", flt)
