"""Subgroups: trajectories side by side, between-group tests, forest plot of change."""

import streamlit as st

from lupus_dash import charts, schema, ui

ctx = ui.page("Subgroups")
flt = ctx.flt
labels = {c.name: c.label for c in schema.columns("patient_facts")}

eps = ui.compute("analysis.available_endpoints", flt)
cols = [e.column for e in eps]
c = st.columns([2, 2, 1, 1])
with c[0]:
    group_by = ui.url_widget("selectbox", "Group by", list(schema.GROUPING_COLUMNS), "sub_group",
                             default="class_group", format_func=lambda g: labels.get(g, g))
with c[1]:
    col = ui.url_widget("selectbox", "Endpoint", cols, "sub_endpoint", default=cols[0],
                        format_func=ui.endpoint_label)
ep = schema.ENDPOINTS_BY_COLUMN[col]
with c[2]:
    outcome = ui.url_widget("radio", "Outcome", ["value", "change"], "sub_outcome",
                            default="value",
                            format_func=lambda o: "value" if o == "value" else "change from "
                                                                               "baseline")
with c[3]:
    adjust = ui.url_widget("selectbox", "Adjust p", ["none", "bonferroni", "holm", "bh"],
                           "sub_adjust", default="holm")
if ep.kind == "binary" and outcome == "change":
    st.info("Change from baseline is not defined for a yes/no endpoint; showing the value.")
    outcome = "value"

sizes = ui.compute("explore.group_sizes", flt, group_by=group_by)
st.caption("Groups: " + ", ".join(f"{g} (n={n})" for g, n in zip(sizes["group"], sizes["n"])))
small = sizes[sizes["n"] < 5]
if len(sizes) < 2:
    st.warning(f"Only one {labels.get(group_by, group_by).lower()} group among these patients: "
               "there is nothing to compare.")
if len(small):
    st.warning("Groups under 5 patients — estimates are unstable and tests may not run: "
               + ", ".join(f"{g} (n={n})" for g, n in zip(small["group"], small["n"])))

ss = ui.compute("analysis.subgroup_summary", flt, group_by=group_by, endpoint=col,
                outcome=outcome)
what = "change from baseline" if outcome == "change" else ("share positive" if ep.kind ==
                                                           "binary" else "value")
ui.chart(charts.trajectory(ss.dropna(subset=["mean"]), "mean", "ci_low", "ci_high",
                           color="group",
                           y_title=f"{ui.endpoint_label(col)} — {what}",
                           title=f"{ep.label} by {labels.get(group_by, group_by).lower()}: mean "
                                 "± 95 % CI"),
         f"subgroups_{col}",
         ui.py_call(f"analysis.subgroup_summary(db, flt, {group_by!r}, {col!r}, "
                    f"outcome={outcome!r})", flt))

st.markdown(f"**Between-group tests per visit ({what})**")
try:
    tests = ui.compute("analysis.subgroups", flt, group_by=group_by, endpoints=[col],
                       outcome=outcome, adjust=adjust)
except TypeError:  # analysis cannot yet adjust when some tests did not run
    st.warning("Adjusted p-values could not be computed because some tests could not run; "
               "showing the raw p only.")
    tests = ui.compute("analysis.subgroups", flt, group_by=group_by, endpoints=[col],
                       outcome=outcome, adjust="none")
if tests.empty:
    st.info("No test could be run.")
else:
    shown = tests.assign(note=tests["reason"].fillna("").map(
        lambda r: f"not computable: {r}" if r else ""))
    ui.table(shown.drop(columns=["reason", "group_by", "outcome", "endpoint"]),
             f"subgroup_tests_{col}",
             ui.py_call(f"analysis.subgroups(db, flt, {group_by!r}, endpoints=[{col!r}], "
                        f"outcome={outcome!r}, adjust={adjust!r})", flt),
             ui.cli_call(flt, "--group-by", group_by, "--adjust", adjust),
             column_config={c: st.column_config.NumberColumn(format="%.4g")
                            for c in ("statistic", "p_value", "p_adjusted", "mean_diff",
                                      "ci_low", "ci_high")})

if ep.kind == "continuous":
    st.markdown("**Forest plot: change from baseline by subgroup**")
    info = ui.compute("analysis.cohort_info", None, cohort=flt.cohort)
    week = ui.url_widget("selectbox", "At week", info["scheduled_weeks"][1:], "sub_week",
                         default=info["final_week"])
    ch = ui.compute("analysis.subgroup_summary", flt, group_by=group_by, endpoint=col,
                    outcome="change")
    at = ch[(ch["visit_week"] == week)]
    ok = at.dropna(subset=["ci_low", "ci_high"])
    if ok.empty:
        st.info("Not computable: no group has two or more patients with a change at this week.")
    else:
        ui.chart(charts.forest(ok.assign(group=[f"{g} (n={n})" for g, n in
                                                zip(ok["group"], ok["n"])]),
                               x_title=f"Change in {ui.endpoint_label(col)} at week {week} "
                                       "(mean, 95 % CI)"),
                 f"forest_{col}_week_{week}",
                 ui.py_call(f"analysis.subgroup_summary(db, flt, {group_by!r}, {col!r}, "
                            "outcome='change')", flt))
    dropped = at[at["ci_low"].isna()]
    if len(dropped):
        st.caption("No interval for " + ", ".join(f"{g} (n={n})" for g, n in
                                                    zip(dropped["group"], dropped["n"]))
                   + ": fewer than two patients.")
