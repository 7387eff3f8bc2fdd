"""lupus-dash: the Streamlit entry point (navigation, shared filter panel, URL state)."""

import streamlit as st

from lupus_dash import ui

st.set_page_config(page_title="lupus-dash", page_icon="🩺", layout="wide")

ctx = ui.start()  # database, sidebar filter panel, URL sync; a plain error if unusable

# No page icons: Material icons fetch a font from an unreachable host, and emoji show as
# empty boxes on machines without an emoji font (headless Chromium here).
PAGES = [
    st.Page("pages/overview.py", title="Overview", default=True),
    st.Page("pages/biomarkers.py", title="Biomarkers"),
    st.Page("pages/remission.py", title="Remission"),
    st.Page("pages/targets.py", title="Treat to target"),
    st.Page("pages/subgroups.py", title="Subgroups"),
    st.Page("pages/patient.py", title="Patient"),
    st.Page("pages/safety.py", title="Safety"),
    st.Page("pages/data.py", title="Data"),
    st.Page("pages/methods.py", title="Methods"),
]
# Presenter mode hides the sidebar, so the page links move to the top bar.
st.navigation(PAGES, position="top" if ctx.presenter else "sidebar").run()
ui.finish()  # panels that sum up what the page showed (the comparison log)
