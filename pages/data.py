"""Data: import cohort files (validated, every problem located), data dictionary, quality."""

import shutil
import tempfile
from pathlib import Path

import pandas as pd
import streamlit as st

from lupus_dash import charts, ingest, mapping, schema, store, ui
from lupus_dash.analyses import quality

ctx = ui.page("Data", need_patients=False)

_VALUE_SEP = "; "


def _values_text(values: dict[str, str]) -> str:
    return _VALUE_SEP.join(f"{k} → {v}" for k, v in values.items())


def _values_parse(text: str) -> dict[str, str]:
    """'1 → F; 2 → M' (or 1=F, 2=M) back to a value map."""
    out = {}
    for part in str(text or "").replace(",", ";").split(";"):
        for sep in ("→", "->", "="):
            if sep in part:
                k, v = part.split(sep, 1)
                out[k.strip()] = v.strip()
                break
    return out


def _targets(table: str) -> list[str]:
    if table == "labs":
        from lupus_dash import labs

        return ["", *labs.LABS_COLUMNS]
    return ["", *(c.name for c in schema.columns(table)),
            *mapping.EXTRA_TARGETS.get(table, ())]


def mapping_editor(src: Path, saved: list[Path]) -> mapping.Mapping | None:
    """The mapping as an editable table per file; None when the files follow the contract."""
    if saved:
        try:
            base = mapping.load(saved[0])
        except mapping.MappingError as exc:
            st.error(f"The mapping file cannot be used: {exc}")
            return None
        origin = f"from {saved[0].name.split('.', 1)[1]}"
    else:
        base = mapping.suggest(src)
        origin = "suggested from the headers and values"
        plain = (not base.files and not base.redcap and not base.date_format
                 and all(c.note == "contract name" for c in base.columns if c.to)
                 and not [c for c in base.columns if not c.to])
        if plain:
            return None
    st.markdown(f"**Column mapping** ({origin}): each file column → the contract column it "
                "feeds, its unit (converted to the contract's) and value codes. Notes starting "
                "CHECK are guesses below 75 % confidence; an empty contract column is "
                "ignored. The import below is validated with the mapping as edited here.")
    if base.redcap:
        base.redcap["cohort"] = st.text_input(
            "Cohort label", base.redcap.get("cohort", "redcap"), key="redcap_cohort",
            help="REDCap exports hold no cohort field; this labels the imported patients")
        ev = base.redcap.get("events", {})
        st.caption("REDCap export: events → weeks "
                   + ", ".join(f"{k} → {v if v != '' else 'not a visit'}" for k, v in ev.items())
                   + f"; adverse events from the repeating instrument "
                   f"{base.redcap.get('ae_instrument', '—')}.")
    edited: list[mapping.ColumnMap] = []
    order = [*schema.INPUT_TABLES, "labs"]
    tables = sorted(dict.fromkeys(c.table for c in base.columns),
                    key=lambda t: order.index(t) if t in order else len(order))
    for table in tables:
        rows = [c for c in base.columns if c.table == table]
        where = base.files.get(table) or base.redcap.get("records") or f"{table}.csv"
        frame = pd.DataFrame({
            "File column": [c.column for c in rows],
            "Contract column": [c.to for c in rows],
            "Unit": [c.unit or "" for c in rows],
            "Values (as written → contract)": [_values_text(c.values) for c in rows],
            "Note": [("CHECK: " if c.to and (c.confidence or 1) < mapping.CONFIDENT else
                      "ignored: " if not c.to else "") + c.note for c in rows],
            "Sample values": [", ".join(c.samples[:4]) for c in rows],
        })
        st.markdown(f"*{table.replace('_', ' ')}* — `{where}`")
        out = st.data_editor(
            frame, key=f"map_{table}", hide_index=True, width="stretch",
            height=35 * (len(frame) + 1) + 3,  # every column visible without scrolling
            disabled=["File column", "Sample values", "Note"],
            column_config={
                "File column": st.column_config.TextColumn(width="medium"),
                "Contract column": st.column_config.SelectboxColumn(
                    options=_targets(table), help="empty = ignore this column",
                    width="medium"),
                "Unit": st.column_config.TextColumn(
                    help="the unit the values are in, e.g. mg/dL; converted on import",
                    width="small"),
                "Values (as written → contract)": st.column_config.TextColumn(
                    help="e.g. 1 → F; 2 → M", width="medium"),
                "Note": st.column_config.TextColumn(width="large"),
                "Sample values": st.column_config.TextColumn(width="medium"),
            })
        for c, (_, r) in zip(rows, out.iterrows(), strict=True):
            edited.append(mapping.ColumnMap(
                table, c.column, r["Contract column"] or "", (r["Unit"] or None),
                _values_parse(r["Values (as written → contract)"]), c.confidence, c.note,
                c.samples))
    m = mapping.Mapping(files=base.files, columns=edited, date_format=base.date_format,
                        decimal_comma=base.decimal_comma, redcap=base.redcap, labs=base.labs,
                        path="mapping (this page)")
    text = mapping.dumps(m)
    c1, c2 = st.columns([1, 3])
    ui.download(c1, "Save mapping (MAP.toml)", text, "MAP.toml", "application/toml",
                "map_download", help="Upload it with the next export to start from this mapping")
    c2.caption(ui.cmd("python", "-m", "lupus_dash", "import", "FOLDER", "--mapping",
                      "MAP.toml", "--db", "FILE") + " imports with the same mapping.")
    return m

flt = ctx.flt

tab_import, tab_dict, tab_quality = ui.url_tabs(["Import a cohort", "Data dictionary",
                                                 "Data quality"], "data_tab")

with tab_import:
    st.markdown("Upload `patients.csv` and `visits.csv` (and optionally "
                "`adverse_events.csv`), or one `.xlsx` with one sheet per table, or `.parquet` "
                "files named after the tables. The format is DATA_CONTRACT.md. Files with "
                "their own column names (a clinic's spreadsheet, a REDCap export with its data "
                "dictionary, a long `labs.csv`) get a column mapping below; add a saved "
                "`MAP.toml` to reuse one.")
    files = ui.upload_files("Cohort files", type=["csv", "xlsx", "parquet", "toml"],
                            key="upload")
    o = st.columns(4)
    comp = o[0].selectbox("C3/C4 unit when the file has no unit column",
                          [None, "g/L", "mg/dL"], format_func=lambda u: u or "g/L (contract)")
    crea = o[1].selectbox("Creatinine unit", [None, "µmol/L", "mg/dL"],
                          format_func=lambda u: u or "µmol/L (contract)")
    sched = o[2].text_input("Scheduled weeks (optional)", placeholder="e.g. 0,4,12,24,52",
                            help="Inferred from the visits when empty")
    date_fmt = o[3].selectbox(
        "Dates", list(ingest.DATE_FORMATS), key="date_format",
        format_func=lambda f: {"auto": "auto (ISO, or what a day > 12 proves)"}.get(f, f),
        help="Order of day and month in dates like 05/03/2024. 'auto' reads ISO dates and "
             "a file whose dates prove their order (15/03/2024: 15 cannot be a month), and "
             "says which order it assumed.")
    if files:
        tmp = Path(tempfile.mkdtemp(prefix="lupus_upload_"))
        try:
            for f in files:
                (tmp / Path(f.name).name).write_bytes(f.getvalue())
            saved = [p for p in tmp.iterdir() if p.suffix == ".toml"]
            for p in saved:
                p.rename(tmp.parent / f"{tmp.name}.{p.name}")
            data_files = [p for p in tmp.iterdir()]
            xlsx = [p for p in data_files if p.suffix == ".xlsx"]
            src = xlsx[0] if len(data_files) == 1 and xlsx else tmp
            mapped = mapping_editor(src, [tmp.parent / f"{tmp.name}.{p.name}" for p in saved])
            res = ingest.read_cohort(src, complement_unit=comp, creatinine_unit=crea,
                                     schedule=sched or None, mapping=mapped,
                                     date_format=None if mapped is not None
                                     and date_fmt == "auto" else date_fmt)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
            for p in tmp.parent.glob(f"{tmp.name}.*.toml"):
                p.unlink(missing_ok=True)
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
                    summary = store.write_database(path, res.tables, mode=mode,
                                                   schedules=res.schedules, source=res.source)
                except (store.StoreError, ValueError) as exc:
                    st.error(f"Nothing was imported: {exc}")
                else:
                    st.session_state["db_path_override"] = str(path)
                    st.success(f"Imported {', '.join(summary['written'])} into {path} "
                               f"({summary['patients']} patients in the file). This session now "
                               "shows that database; pick the cohort in the sidebar.")
                    extra = ("--mapping", "MAP.toml") if mapped is not None else ()
                    st.caption(ui.cmd("python", "-m", "lupus_dash", "import", "FOLDER", *extra,
                                      "--db", str(path))
                               + " does the same from the command line.")

with tab_dict:
    dd = pd.DataFrame(schema.data_dictionary())
    tables = ui.url_widget("selectbox", "Table", list(dict.fromkeys(dd["table"])), "dd_table",
                           default="visits")
    ui.table(dd[dd["table"] == tables], f"data_dictionary_{tables}",
             code="from lupus_dash import schema\nschema.data_dictionary()",
             cli=ui.cmd("python", "-m", "lupus_dash", "dictionary", "--format", "csv"),
             xlsx=True, height=520)

with tab_quality:
    if tab_quality.open:
        if not isinstance(ctx.k, str) and ctx.k == 0:
            st.info("No patient matches this filter.")
        else:
            miss_res = ui.run(quality.missingness, flt)
            miss = miss_res.table
            st.markdown("**Missing values by visit** (first row: patients without that visit)")
            used = miss["recorded"]
            ui.chart(charts.heatmap(miss[used]), "missingness", calls=miss_res.call)
            st.caption("Variables never recorded in this cohort are left out: "
                       + (", ".join(sorted(set(miss.loc[~used, "label"]))) or "none") + ".")
            st.markdown("**Values at the edges of their plausible ranges** (at the lower limit, or "
                        "within 1 % of the span below the upper limit)")
            edges = ui.run(quality.range_edges, flt)
            summ, listing = edges["summary"], edges["listing"]
            ui.table(summ, "range_edges", calls=edges.call)
            if len(listing):
                with st.expander(f"{len(listing)} value(s) at an edge"):
                    ui.table(listing, "range_edge_values", calls=edges.call)
