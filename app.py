"""lupus-dash: the Streamlit entry point (navigation, shared filter panel, URL state)."""

import streamlit as st

from lupus_dash import ui

st.set_page_config(page_title="lupus-dash", page_icon="🩺", layout="wide")

ctx = ui.start()  # database, sidebar filter panel, URL sync; a plain error if unusable

# Emoji icons: Material icons would make the browser fetch an unreachable font.
PAGES = [
    st.Page("pages/overview.py", title="Overview", icon="🏠", default=True),
    st.Page("pages/biomarkers.py", title="Biomarkers", icon="🧪"),
    st.Page("pages/remission.py", title="Remission", icon="🎯"),
    st.Page("pages/subgroups.py", title="Subgroups", icon="👥"),
    st.Page("pages/patient.py", title="Patient", icon="🧍"),
    st.Page("pages/safety.py", title="Safety", icon="⚠️"),
    st.Page("pages/data.py", title="Data", icon="🗂️"),
    st.Page("pages/methods.py", title="Methods", icon="📖"),
]
# Presenter mode hides the sidebar, so the page links move to the top bar.
st.navigation(PAGES, position="top" if ctx.presenter else "sidebar").run()
