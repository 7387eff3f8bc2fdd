"""Biomarkers: one endpoint's trajectory and statistics, and all endpoints side by side."""

import streamlit as st

from lupus_dash import analysis, charts, explore, schema, ui

ctx = ui.page("Biomarkers")
flt = ctx.flt

eps = ui.compute("analysis.available_endpoints", flt)
cols = [e.column for e in eps]
missing = [e.label for e in schema.ENDPOINTS if e.column not in cols]
if missing:
    st.caption(f"Not recorded in {flt.cohort}: {', '.join(missing)}.")

tab_one, tab_all = ui.url_tabs(["One endpoint", "All endpoints (Figure 1)"], "bio_tab")

with tab_one:
    c = st.columns([2, 1, 2, 1])
    with c[0]:
        col = ui.url_widget("selectbox", "Endpoint", cols, "bio_endpoint", default=cols[0],
                            format_func=ui.endpoint_label)
    ep = schema.ENDPOINTS_BY_COLUMN[col]
    with c[1]:
        comparator = ui.url_widget("radio", "Compare with", list(analysis.COMPARATORS),
                                   "bio_cmp", default="baseline")
    methods = ["auto", *(analysis.BINARY_METHODS if ep.kind == "binary"
                         else (*analysis.CONTINUOUS_METHODS, "mixed_model"))]
    if comparator == "previous" and "mixed_model" in methods:
        methods.remove("mixed_model")
    with c[2]:
        method = ui.url_widget("selectbox", "Test", methods, "bio_method", default="auto",
                               help="auto: Shapiro–Wilk on the paired differences picks the "
                                    "paired t-test or Wilcoxon (STATISTICS.md)")
    with c[3]:
        adjust = ui.url_widget("selectbox", "Adjust p", ["none", "bonferroni", "holm", "bh"],
                               "bio_adjust", default="none")

    summ = ui.compute("analysis.summary", flt, endpoints=[col])
    rec = ui.compute("analysis.recommended_methods", flt, endpoint=col, comparator=comparator)
    lon = ui.compute("analysis.longitudinal", flt, endpoints=[col], comparators=[comparator],
                     adjust=adjust, include_mixed=method == "mixed_model")
    rows = explore.pick_methods(lon, method, rec)

    if ep.kind == "binary":
        display, y, lo, hi = "rate", "rate", "ci_low", "ci_high"
        st.caption("Share positive per visit with Wilson 95 % CI.")
    else:
        nonpar = int((rec["method"] == "wilcoxon").sum())
        auto = "median" if nonpar else "mean"
        why = (f"Shapiro–Wilk rejected normal paired differences at {nonpar} of {len(rec)} "
               "visits → median (IQR)" if nonpar else
               "paired differences look normal at every visit (Shapiro–Wilk p ≥ 0.05) → "
               "mean ± 95 % CI")
        choice = ui.url_widget("radio", "Show", ["auto", "mean ± 95 % CI", "median (IQR)"],
                               "bio_display", default="auto")
        display = auto if choice == "auto" else ("mean" if choice.startswith("mean") else
                                                 "median")
        st.caption(f"Automatic choice: {why}." + ("" if choice == "auto" else
                                                   f" Overridden: showing {choice}."))
        y, lo, hi = (("mean", "ci_low", "ci_high") if display == "mean"
                     else ("median", "p25", "p75"))
    pv = rows[["visit_week", "p_adjusted"]].rename(columns={"p_adjusted": "p_value"})
    traj = charts.trajectory(summ[summ["n"] > 0], y, lo, hi, y_title=ui.endpoint_label(col),
                             p_values=pv,
                             title=f"{ep.label}: {display} by visit (* vs {comparator}, "
                                   f"{'adjusted ' if adjust != 'none' else ''}p)")
    show_ind = ep.kind == "continuous" and ui.url_widget(
        "toggle", "Show individual patients", None, "bio_ind", default=False)
    note = None
    if show_ind:
        ind, total, sampled = ui.compute("explore.individual_trajectories", flt, endpoint=col)
        spag = charts.spaghetti(ind.rename(columns={"value": y}), y,
                                y_title=ui.endpoint_label(col))
        traj = spag + traj
        note = (f"Individual lines: a fixed sample of {ind['patient_id'].nunique()} of {total} "
                "patients (capped for the browser)." if sampled else
                f"Individual lines: all {total} patients with a value.")
    ui.chart(traj, f"{col}_trajectory",
             ui.py_call(f"analysis.summary(db, flt, endpoints=[{col!r}])", flt),
             ui.cli_call(flt))
    if note:
        st.caption(note)

    st.markdown(f"**Statistics against the {comparator} visit**")
    tbl = explore.stats_table(rows, summ, display)
    ui.table(tbl, f"{col}_statistics",
             ui.py_call(f"analysis.longitudinal(db, flt, endpoints=[{col!r}], "
                        f"comparators=[{comparator!r}], adjust={adjust!r}, "
                        f"include_mixed={method == 'mixed_model'})", flt),
             ui.cli_call(flt, "--adjust", adjust),
             column_config={c: st.column_config.NumberColumn(format="%.4g")
                            for c in ("statistic", "p", "p adjusted", "difference", "CI low",
                                      "CI high")})
    if method == "auto" and ep.kind == "continuous":
        st.caption("Method per visit: " + "; ".join(
            f"week {r.visit_week}: {r.method} ({r.reason})" for r in rec.itertuples()))
    if ep.kind == "continuous":
        omni = ui.compute("analysis.omnibus", flt, endpoints=[col])
        st.caption("Over all visits (complete cases): " + "; ".join(
            f"{r.method} n={r.n}, p={explore.fmt_p(r.p_value)}"
            + (f" ({r.reason})" if isinstance(r.reason, str) and r.reason else "")
            for r in omni.itertuples()))

with tab_all:
    if tab_all.open:
        # Every endpoint × visit with its tests: seconds for a registry-sized cohort.
        with st.spinner(f"Testing every endpoint at every visit for {ctx.k:,} patients…"):
            summ_all = ui.compute("analysis.summary", flt)
            lon_all = ui.compute("analysis.longitudinal", flt, comparators=["baseline"])
        fig = explore.figure1_frame(summ_all, lon_all)
        ui.chart(charts.small_multiples(fig, columns=3 if ctx.presenter else 4), "figure1",
                 ui.py_call("summ = analysis.summary(db, flt)\n"
                            "lon = analysis.longitudinal(db, flt, comparators=['baseline'])\n"
                            "explore.figure1_frame(summ, lon)", flt, "analysis, explore"),
                 ui.cli_call(flt, "--format", "markdown"))
        st.caption("As the seed paper's Figure 1: skewed endpoints median (IQR) with Wilcoxon; "
                   "others mean (95 % CI) with Bonferroni-adjusted repeated-measures pairs; "
                   "anti-dsDNA % positive with Fisher's test. * p<0.05, ** p<0.01, *** p<0.001 "
                   "against baseline.")
        t2 = ui.compute("report.table2", flt)
        st.markdown("**Table 2 layout**")
        ui.table(t2, "table2", ui.py_call("report.table2(db, flt)", flt, "report"),
                 ui.cli_call(flt, "--layout", "table2"), xlsx=True)
