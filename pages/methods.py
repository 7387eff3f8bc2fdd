"""Methods: the definitions and statistical methods in force, generated from the code."""

import inspect

import pandas as pd
import streamlit as st

from lupus_dash import dosing, endpoints, schema, stats, ui
from lupus_dash.analyses import remission

ctx = ui.page("Methods", need_patients=False)
flt = ctx.flt

st.subheader("Endpoint definitions (presets)")
st.caption("Generated from `lupus_dash.endpoints.PRESETS[...].describe()` — the same objects "
           "that compute the LLDAS and remission columns on import.")
cols = st.columns(len(endpoints.PRESETS))
for c, (name, p) in zip(cols, endpoints.PRESETS.items(), strict=True):
    with c:
        st.markdown(f"**{name}** — {p.label}")
        st.text("\n".join(p.describe()))

st.subheader("Renal response")
renal = [c for c in schema.VISIT_DERIVED if c.name in schema.RENAL_DEFINITIONS]
st.table(pd.DataFrame({"column": [c.name for c in renal],
                       "definition": [c.description for c in renal]}))
st.markdown("**Thresholds in force** (generated from `lupus_dash.endpoints.RENAL_RESPONSES`, "
            "the objects that compute the renal columns on import):")
st.table(pd.DataFrame({
    "definition": [c.name for c in renal],
    "patients counted (baseline proteinuria)": [
        f"≥ {remission.renal_threshold(c.name):g} g/g — "
        f"{endpoints.RENAL_RESPONSES[c.name].eligibility.label}" for c in renal],
}))
st.text("\n".join(endpoints.describe_renal()))

st.subheader("Statistical methods")
METHODS = {
    "paired_t": stats.paired_t, "wilcoxon": stats.wilcoxon,
    "mcnemar_exact": stats.mcnemar_exact, "fisher (visits)": stats.fisher_visits,
    "rm_anova": stats.rm_anova, "rm_anova_bonferroni": stats.rm_anova_bonferroni,
    "friedman": stats.friedman, "mixed_model": stats.mixed_model,
    "mann_whitney": stats.mann_whitney, "kruskal": stats.kruskal, "welch_t": stats.welch_t,
    "chi2": stats.chi2, "fisher": stats.fisher, "kaplan_meier": stats.kaplan_meier,
    "logrank": stats.logrank, "proportion_ci": stats.proportion_ci,
    "adjust_p": stats.adjust_p,
    "descriptives": stats.describe,
}
st.table(pd.DataFrame({
    "method": list(METHODS),
    "what it computes": [inspect.getdoc(f) or "" for f in METHODS.values()],
    "function": [f"lupus_dash.stats.{f.__name__}" for f in METHODS.values()],
}))
st.caption("Descriptive quartiles use the SPSS definition (R quantile type 6). Tests use "
           "available pairs; repeated-measures methods use complete cases (STATISTICS.md).")

st.subheader("Remission rates and missing visits")
st.write(inspect.getdoc(remission.rates))

st.subheader("Belimumab doses (derived)")
st.write(inspect.getdoc(dosing.belimumab_dose_weeks))

st.subheader("Derived columns")
derived = [*schema.PATIENT_DERIVED, *[c for c in schema.VISIT_DERIVED if not
                                      c.name.endswith("_why")]]
st.dataframe(pd.DataFrame({"column": [c.name for c in derived],
                           "label": [c.label for c in derived],
                           "meaning": [c.description for c in derived]}), hide_index=True)

st.subheader("The filter in force")
sql, params = flt.patients_sql()
st.write(flt.sentence(ctx.k, ctx.n))
st.code(f"{sql}\n-- parameters: {params!r}", language="sql")
st.code(ui.report_command(flt), language="bash")
