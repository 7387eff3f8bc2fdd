"""Subgroups: trajectories side by side, between-group tests, forest plot of change."""

import pandas as pd
import streamlit as st

from lupus_dash import charts, layouts, schema, ui
from lupus_dash.analyses import cohort, common, subgroups
from lupus_dash.filters import Filter

ctx = ui.page("Subgroups")
flt = ctx.flt
labels = {c.name: c.label for c in schema.columns("patient_facts")}

eps = ui.run(common.available_endpoints, flt).table
cols = [e.column for e in eps]
c = ui.controls().columns([2, 2, 1, 1])
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

sizes = ui.run(cohort.group_sizes, flt, group_by=group_by).table
st.caption("Groups: " + ", ".join(f"{g} (n = {layouts.fmt_num(n, 0)})"
                                  for g, n in zip(sizes["group"], sizes["n"], strict=True)))
small = sizes[[not isinstance(n, str) and n < subgroups.SMALL_GROUP for n in sizes["n"]]]
if len(sizes) < 2:
    st.warning(f"Only one {labels.get(group_by, group_by).lower()} group among these patients: "
               "there is nothing to compare.")
if len(small):
    st.warning(f"Groups under {subgroups.SMALL_GROUP} patients are drawn as their single "
               "values (no mean or interval), and tests with a group of fewer than 2 give no "
               "p-value: " + ", ".join(f"{g} (n = {n})" for g, n in zip(small["group"],
                                                                          small["n"],
                                                                          strict=True)))

ss = ui.run(subgroups.summary, flt, group_by=group_by, endpoint=col, outcome=outcome)
# Each group keeps its colour and legend place, and (unless freed) the axis keeps the whole
# cohort's range, while filters change: the picture changes only where the data do.
everyone = Filter(flt.cohort)
all_groups = ui.run(cohort.group_sizes, everyone, group_by=group_by).table["group"].tolist()
fixed = ui.url_widget("toggle", "Fixed axes", None, "sub_fixed", default=True,
                      help="Keep the y axis of the whole cohort while filters change")
# Groups under 5 are drawn as their single values (patient-level: not in shared mode).
pts = (ui.run(subgroups.small_group_values, flt, group_by=group_by, endpoint=col,
              outcome=outcome).table if ui.permitted(subgroups.small_group_values) else None)
what = "change from baseline" if outcome == "change" else ("share positive" if ep.kind ==
                                                           "binary" else "value")
spec = schema.column("visit_facts", col)
span = (spec.hi - spec.lo) if spec.lo is not None and spec.hi is not None else None
clip = ((spec.lo, spec.hi) if outcome == "value" and span is not None
        else (-span, span) if span is not None else None)
y_domain = None
if fixed:
    whole = ui.run(subgroups.summary, everyone, group_by=group_by, endpoint=col,
                   outcome=outcome).table
    whole = whole[pd.to_numeric(whole["n"], errors="coerce") >= subgroups.SMALL_GROUP]
    ys = [float(v) for c in ("mean", "ci_low", "ci_high")
          for v in pd.to_numeric(whole[c], errors="coerce").dropna()]
    if clip is not None:
        ys = [min(max(v, clip[0]), clip[1]) for v in ys]
    y_domain = (min(ys), max(ys)) if ys else None
ui.chart(charts.trajectory(ss.table.dropna(subset=["mean"]), "mean", "ci_low", "ci_high",
                           color="group", points=pts, min_n=subgroups.SMALL_GROUP,
                           clip=clip, y_domain=y_domain, color_domain=all_groups, y_title=f"{ui.endpoint_label(col)} — {what}",
                           title=f"{ep.label} by {labels.get(group_by, group_by).lower()}: mean "
                                 "(95 % CI); ◇ single values of groups under "
                                 f"{subgroups.SMALL_GROUP}"),
         f"subgroups_{col}", calls=ss.call)
if pts is None and len(small):
    st.caption(f"Groups under {subgroups.SMALL_GROUP} patients are not drawn here.")
if clip is not None:
    st.caption(f"Intervals are cut at the plausible range of {ep.label} "
               f"({layouts.fmt_num(clip[0])} to {layouts.fmt_num(clip[1])}); ▲▼ mark a cut end.")

st.markdown(f"**Between-group tests per visit ({what})**")
tests = ui.run(subgroups.tests, flt, group_by=group_by, endpoints=[col], outcome=outcome,
               adjust=adjust)
t = tests.table
ui.log_tests(t)
if t.empty:
    st.info("No test could be run.")
else:
    shown = t.assign(
        Week=t["visit_week"], Method=[layouts.method_words(m, pm) for m, pm in
                                      zip(t["method"], t.get("p_method", [None] * len(t)),
                                          strict=True)],
        n=[layouts.fmt_num(x, 0) for x in t["n"]],
        Statistic=[layouts.fmt_num(x, missing="") for x in t["statistic"]],
        p=[layouts.fmt_p(x, missing="") for x in t["p_value"]],
        **{f"p ({adjust})": [layouts.fmt_p(x, missing="") for x in t["p_adjusted"]],
           "Estimate": [layouts.estimate_text(x, nm) for x, nm in
                        zip(t["estimate"], t["estimate_name"], strict=True)],
           "95 % CI": [layouts.fmt_ci(a, b) for a, b in zip(t["ci_low"], t["ci_high"],
                                                            strict=True)],
           "Odds ratio (95 % CI)": [
               "" if layouts.is_missing(o) else
               f"{layouts.fmt_num(o)} ({layouts.fmt_ci(lo, hi)})"
               for o, lo, hi in zip(t["odds_ratio"], t["or_ci_low"], t["or_ci_high"],
                                    strict=True)],
           "Note": ["; ".join(x for x in (f"no p-value: {r}" if isinstance(r, str) and r
                                           else "", nt if isinstance(nt, str) else "") if x)
                    for r, nt in zip(t["reason"], t["note"], strict=True)]})
    keep = ["Week", "Method", "n", "Statistic", "p", f"p ({adjust})", "Estimate", "95 % CI",
            *(["Odds ratio (95 % CI)"] if t["odds_ratio"].notna().any() else []), "Note"]
    ui.table(shown[keep], f"subgroup_tests_{col}", calls=tests.call)

if ep.kind == "continuous":
    st.markdown("**Forest plot: change from baseline by subgroup**")
    info = ui.run(common.cohort_info, cohort=flt.cohort).table
    week = ui.url_widget("selectbox", "At week", info["scheduled_weeks"][1:], "sub_week",
                         default=info["final_week"])
    ch = ui.run(subgroups.summary, flt, group_by=group_by, endpoint=col, outcome="change")
    at = ch.table[(ch.table["visit_week"] == week)]
    ok = at.dropna(subset=["ci_low", "ci_high"])
    if ok.empty:
        st.info("Not computable: no group has two or more patients with a change at this week.")
    else:
        ui.chart(charts.forest(ok.assign(group=[f"{g} (n = {n})" for g, n in
                                                zip(ok["group"], ok["n"], strict=True)]),
                               x_title=f"Change in {ui.endpoint_label(col)} at week {week} "
                                       "(mean, 95 % CI)"),
                 f"forest_{col}_week_{week}", calls=ch.call)
    dropped = at[at["ci_low"].isna()]
    if len(dropped):
        st.caption("No interval for " + ", ".join(f"{g} (n = {n})" for g, n in
                                                    zip(dropped["group"], dropped["n"],
                                                        strict=True))
                   + ": fewer than two patients.")
