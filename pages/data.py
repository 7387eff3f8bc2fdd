"""Data: import cohort files (validated, every problem located), data dictionary, quality."""

import shutil
import tempfile
from pathlib import Path

import pandas as pd
import streamlit as st

from lupus_dash import charts, ingest, schema, store, ui

ctx = ui.page("Data", need_patients=False)
flt = ctx.flt

tab_import, tab_dict, tab_quality = ui.url_tabs(["Import a cohort", "Data dictionary",
                                                 "Data quality"], "data_tab")

with tab_import:
    st.markdown("Upload `patients.csv` and `visits.csv` (and optionally "
                "`adverse_events.csv`), or one `.xlsx` with one sheet per table, or `.parquet` "
                "files named after the tables. The format is DATA_CONTRACT.md.")
    files = ui.upload_files("Cohort files", type=["csv", "xlsx", "parquet"], key="upload")
    o = st.columns(3)
    comp = o[0].selectbox("C3/C4 unit when the file has no unit column",
                          [None, "g/L", "mg/dL"], format_func=lambda u: u or "g/L (contract)")
    crea = o[1].selectbox("Creatinine unit", [None, "µmol/L", "mg/dL"],
                          format_func=lambda u: u or "µmol/L (contract)")
    sched = o[2].text_input("Scheduled weeks (optional)", placeholder="e.g. 0,4,12,24,52",
                            help="Inferred from the visits when empty")
    if files:
        tmp = Path(tempfile.mkdtemp(prefix="lupus_upload_"))
        try:
            for f in files:
                (tmp / Path(f.name).name).write_bytes(f.getvalue())
            xlsx = [p for p in tmp.iterdir() if p.suffix == ".xlsx"]
            src = xlsx[0] if len(files) == 1 and xlsx else tmp
            res = ingest.read_cohort(src, complement_unit=comp, creatinine_unit=crea,
                                     schedule=sched or None)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        if res.problems:
            st.error(f"{len(res.problems)} problem(s) found — nothing can be imported until they "
                     f"are fixed ({ingest.ROWS_NOTE}).")
            ui.table(pd.DataFrame([p.__dict__ for p in res.problems]), "import_problems")
        else:
            p = res.tables["patients"]
            st.success(f"Valid: {p['cohort'].nunique()} cohort(s) "
                       f"({', '.join(sorted(p['cohort'].dropna().unique()))}), {len(p)} "
                       f"patients, {len(res.tables['visits'])} visits, "
                       f"{len(res.tables['adverse_events'])} adverse events.")
        if res.warnings:
            with st.expander(f"{len(res.warnings)} warning(s)"):
                ui.table(pd.DataFrame([w.__dict__ for w in res.warnings]), "import_warnings")
        if not res.problems:
            target = st.radio("Import into", ["this database", "a new database file"],
                              horizontal=True, key="import_target")
            if target == "this database":
                path = ctx.db.path
                mode = st.radio("If a cohort label already exists",
                                ["append", "replace"], horizontal=True,
                                format_func=lambda m: {"append": "stop (add new cohorts only)",
                                                       "replace": "replace it"}[m])
            else:
                name = st.text_input(f"File name (in {ctx.db.path.parent})", "imported.duckdb",
                                     key="import_name")
                path = ctx.db.path.parent / Path(name).name
                if path.suffix != ".duckdb":
                    path = path.with_suffix(".duckdb")
                mode = "create"
            if st.button("Import", type="primary", key="import_go"):
                try:
                    if path == ctx.db.path:
                        ui.forget_db(path)  # DuckDB allows one writer: close our reader first
                    summary = store.write_database(path, res.tables, mode=mode,
                                                   schedules=res.schedules, source=res.source)
                except (store.StoreError, ValueError) as exc:
                    st.error(f"Nothing was imported: {exc}")
                else:
                    st.session_state["db_path_override"] = str(path)
                    st.success(f"Imported {', '.join(summary['written'])} into {path} "
                               f"({summary['patients']} patients in the file). This session now "
                               "shows that database; pick the cohort in the sidebar.")
                    st.caption(ui.cmd("python", "-m", "lupus_dash", "import", "FOLDER", "--db",
                                      str(path)) + " does the same from the command line.")

with tab_dict:
    dd = pd.DataFrame(schema.data_dictionary())
    tables = ui.url_widget("selectbox", "Table", list(dict.fromkeys(dd["table"])), "dd_table",
                           default="visits")
    ui.table(dd[dd["table"] == tables], f"data_dictionary_{tables}",
             "from lupus_dash import schema\nschema.data_dictionary()",
             ui.cmd("python", "-m", "lupus_dash", "dictionary", "--format", "csv"), xlsx=True,
             height=520)

with tab_quality:
    if tab_quality.open:
        if ctx.k == 0:
            st.info("No patient matches this filter.")
        else:
            miss = ui.compute("explore.missingness", flt)
            st.markdown("**Missing values by visit** (first row: patients without that visit)")
            used = miss["recorded"]
            ui.chart(charts.heatmap(miss[used]), "missingness",
                     ui.py_call("explore.missingness(db, flt)", flt, "explore"))
            st.caption("Variables never recorded in this cohort are left out: "
                       + (", ".join(sorted(set(miss.loc[~used, "label"]))) or "none") + ".")
            st.markdown("**Values at the edges of their plausible ranges** (at the lower limit, or "
                        "within 1 % of the span below the upper limit)")
            summ, listing = ui.compute("explore.range_edges", flt)
            ui.table(summ, "range_edges", ui.py_call("explore.range_edges(db, flt)", flt, "explore"))
            if len(listing):
                with st.expander(f"{len(listing)} value(s) at an edge"):
                    ui.table(listing, "range_edge_values")
