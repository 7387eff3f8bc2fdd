"""lupus-dash: the Streamlit entry point (navigation, shared filter panel, URL state)."""

import streamlit as st

from lupus_dash import ui
from lupus_dash.db import DataRefreshed

st.set_page_config(page_title="lupus-dash", page_icon="🩺", layout="wide")

# Sign-in gate (hosted mode), database, sidebar filter panel, URL sync; a plain page if unusable
ctx = ui.start()

# No page icons: Material icons fetch a font from an unreachable host, and emoji show as
# empty boxes on machines without an emoji font (headless Chromium here).
PAGES = [
    ("pages/overview.py", "Overview"),
    ("pages/biomarkers.py", "Biomarkers"),
    ("pages/remission.py", "Remission"),
    ("pages/targets.py", "Treat to target"),
    ("pages/subgroups.py", "Subgroups"),
    ("pages/patient.py", "Patient"),
    ("pages/safety.py", "Safety"),
    ("pages/data.py", "Data"),
    ("pages/methods.py", "Methods"),
]
# A page this session's role may not open is not registered at all, so Streamlit never
# runs it (a link to it opens the default page).
pages = [st.Page(f, title=t, default=(f == "pages/overview.py"))
         for f, t in PAGES if ui.may_open(f)]
# Presenter mode hides the sidebar, so the page links move to the top bar.
page = st.navigation(pages, position="top" if ctx.presenter else "sidebar")
ui.audit_view(page.title)
try:
    page.run()
    ui.finish()  # panels that sum up what the page showed (the comparison log)
except DataRefreshed:
    st.rerun()  # the data were refreshed mid-run and this run's version is gone: start again
