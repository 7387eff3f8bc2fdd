"""The `report`: every number the dashboard shows, as JSON, CSV or a paper-style table."""

from __future__ import annotations

import io
import json
import math
import sys
from collections.abc import Sequence

import numpy as np
import pandas as pd

from . import analysis, schema
from .db import Database
from .filters import Filter, FilterError

EXIT_BAD_INPUT = 2
SECTIONS = ("table1", "summary", "longitudinal", "omnibus", "remission", "subgroups")


def definitions(preset: str) -> dict:
    """The preset and thresholds in force, as the report's `definitions` field."""
    from . import endpoints

    p = endpoints.PRESETS[preset]
    return {"preset": preset, **p.to_dict(), "criteria": p.describe()}


def build_report(
    db: Database,
    flt: Filter,
    preset: str = "standard",
    group_by: str | None = None,
    observed: bool = False,
    adjust: str = "none",
    include_mixed: bool = True,
) -> dict:
    """All report sections for one cohort and filter (DATA_CONTRACT.md)."""
    flt.validate(db)
    k, n_cohort = analysis.count_patients(db, flt)
    rep: dict = {
        "cohort": flt.cohort,
        "filters": flt.to_dict(),
        "filter_sentence": flt.sentence(k, n_cohort),
        "n_patients": k,
        "n_cohort": n_cohort,
        "definitions": definitions(preset),
        "scheduled_weeks": analysis.cohort_info(db, flt.cohort)["scheduled_weeks"],
        "options": {"group_by": group_by, "observed": observed, "adjust": adjust,
                    "mixed_model": include_mixed},
    }
    rep["table1"] = _records(analysis.table1(db, flt, group_by))
    if group_by:
        rep["table1_tests"] = _records(analysis.table1_tests(db, flt, group_by))
    rep["summary"] = _records(analysis.summary(db, flt))
    rep["longitudinal"] = _records(
        analysis.longitudinal(db, flt, adjust=adjust, include_mixed=include_mixed)
    )
    rep["omnibus"] = _records(analysis.omnibus(db, flt))
    rep["remission"] = _records(analysis.remission(db, flt, preset=preset, observed=observed))
    if group_by:
        sub = pd.concat(
            [analysis.subgroups(db, flt, group_by, outcome=o, adjust=adjust)
             for o in ("value", "change")],
            ignore_index=True,
        )
        rep["subgroups"] = _records(sub)
    return rep


def _clean(v):
    if v is None:
        return None
    if isinstance(v, (np.bool_, bool)):
        return bool(v)
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return None if math.isnan(v) or math.isinf(v) else float(v)
    if v is pd.NA or v is pd.NaT:
        return None
    return v


def _records(df: pd.DataFrame) -> list[dict]:
    return [{k: _clean(v) for k, v in row.items()} for row in df.to_dict(orient="records")]


def to_json(rep: dict) -> str:
    return json.dumps(rep, indent=2, ensure_ascii=False, allow_nan=False)


def to_csv(rep: dict) -> str:
    """All table sections stacked, with a `section` column first."""
    frames = []
    for sec in SECTIONS:
        if sec in rep:
            df = pd.DataFrame(rep[sec])
            df.insert(0, "section", sec)
            frames.append(df)
    df = pd.concat(frames, ignore_index=True, sort=False)
    head = pd.DataFrame({"section": ["meta"] * 4,
                         "variable": ["cohort", "filter", "n_patients", "definitions"],
                         "level": [rep["cohort"], rep["filter_sentence"], rep["n_patients"],
                                   rep["definitions"]["preset"]]})
    return pd.concat([head, df], ignore_index=True, sort=False).to_csv(index=False)


# --- paper layouts ------------------------------------------------------------


def _fmt(x, d=2) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x:.{d}f}"


def _fmt_p(p) -> str:
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return "–"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


_DECIMALS = {"c3_g_l": 2, "c4_g_l": 2, "cd19_pct": 1, "urine_protein_g_24h": 2, "upcr_g_g": 2,
             "sledai2k": 0, "pga": 1, "prednisone_mg_day": 1, "albumin_g_l": 1,
             "creatinine_umol_l": 0, "egfr_ml_min": 0, "anti_dsdna_iu_ml": 0}


def table2(db: Database, flt: Filter, dispersion: dict[str, str] | None = None) -> pd.DataFrame:
    """The seed paper's Table 2 shape: endpoints × visits, values then MD (95 % CI) or Z, then P.

    Normally distributed endpoints show mean ± SD with the repeated-measures ANOVA
    Bonferroni pairwise MD (95 % CI) and P against baseline; skewed endpoints show
    median (P25, P75) with the Wilcoxon Z and P; the glucocorticoid dose adds Z*/P*
    against the previous visit; anti-dsDNA shows the positive rate with Fisher's P.
    `dispersion={"cd19_pct": "se"}` prints mean ± SE as the seed paper did for CD19+.
    """
    dispersion = dispersion or {}
    weeks = analysis.cohort_info(db, flt.cohort)["scheduled_weeks"]
    summ = analysis.summary(db, flt)
    lon = analysis.longitudinal(db, flt)
    cols = [f"Week {w}" if w else "Baseline" for w in weeks]
    rows = []
    for ep in analysis.available_endpoints(db, flt):
        s = summ[summ["endpoint"] == ep.column].set_index("visit_week")
        d = _DECIMALS.get(ep.column, 2)
        name = f"{ep.label} ({ep.unit})" if ep.unit and ep.kind != "binary" else ep.label
        if ep.kind == "binary":
            vals = [f"{int(s.at[w, 'n_positive'] or 0)}/{int(s.at[w, 'n'])} "
                    f"({_fmt((s.at[w, 'rate'] or 0) * 100, 1)}%)" if s.at[w, "n"] else "–"
                    for w in weeks]
            rows.append({"Endpoint": name, "Statistic": "n (%) positive", **dict(zip(cols, vals))})
            _test_rows(rows, lon, ep.column, "fisher", "baseline", weeks, cols, name, None)
            _test_rows(rows, lon, ep.column, "mcnemar_exact", "baseline", weeks, cols, name, None)
            continue
        if ep.skewed:
            vals = [f"{_fmt(s.at[w, 'median'], d)} ({_fmt(s.at[w, 'p25'], d)}, "
                    f"{_fmt(s.at[w, 'p75'], d)})" if s.at[w, "n"] else "–" for w in weeks]
            rows.append({"Endpoint": name, "Statistic": "median (P25, P75)",
                         **dict(zip(cols, vals))})
            _test_rows(rows, lon, ep.column, "wilcoxon", "baseline", weeks, cols, name, "Z")
            if ep.column == "prednisone_mg_day":
                _test_rows(rows, lon, ep.column, "wilcoxon", "previous", weeks, cols, name, "Z*")
        else:
            disp = dispersion.get(ep.column, "sd")
            vals = [f"{_fmt(s.at[w, 'mean'], d)} ± {_fmt(s.at[w, disp], d)}"
                    if s.at[w, "n"] else "–" for w in weeks]
            rows.append({"Endpoint": name, "Statistic": f"mean ± {disp.upper()}",
                         **dict(zip(cols, vals))})
            _test_rows(rows, lon, ep.column, "rm_anova_bonferroni", "baseline", weeks, cols,
                       name, "MD (95% CI)")
    n = analysis.count_patients(db, flt)[0]
    out = pd.DataFrame(rows, columns=["Endpoint", "Statistic", *cols])
    out.attrs["caption"] = f"{flt.sentence(n, analysis.count_patients(db, flt)[1])}"
    return out


def _test_rows(rows, lon, endpoint, method, comparator, weeks, cols, name, stat_label):
    sel = lon[(lon["endpoint"] == endpoint) & (lon["method"] == method)
              & (lon["comparator"] == comparator)].set_index("visit_week")
    star = "*" if comparator == "previous" else ""
    stat_vals, p_vals = ["–"], ["–"]
    for w in weeks[1:]:
        if w not in sel.index:
            stat_vals.append("–")
            p_vals.append("–")
            continue
        r = sel.loc[w]
        if isinstance(r["reason"], str) and r["reason"]:
            stat_vals.append("n/c")
            p_vals.append("n/c")
            continue
        if stat_label == "MD (95% CI)":
            stat_vals.append(f"{r['mean_diff']:.3f} ({r['ci_low']:.3f}, {r['ci_high']:.3f})")
        elif stat_label:
            stat_vals.append(f"{r['statistic']:.3f}")
        p_vals.append(_fmt_p(r["p_value"]))
    label = {"fisher": "Fisher", "mcnemar_exact": "McNemar (exact)"}.get(method, "")
    if stat_label:
        rows.append({"Endpoint": name, "Statistic": stat_label, **dict(zip(cols, stat_vals))})
    rows.append({"Endpoint": name, "Statistic": f"P{star}" + (f" ({label})" if label else ""),
                 **dict(zip(cols, p_vals))})


def table1_layout(db: Database, flt: Filter, group_by: str | None = None) -> pd.DataFrame:
    """The seed paper's Table 1 shape: characteristic, then mean ± SD, median (P25, P75) or n (%)."""
    t1 = analysis.table1(db, flt, group_by)
    groups = list(dict.fromkeys(t1["group"]))
    rows: dict[tuple, dict] = {}
    for _, r in t1.iterrows():
        level = None if pd.isna(r["level"]) else r["level"]
        key = (r["label"], level)
        if level is None:
            d = _DECIMALS.get(r["variable"], 1)
            if r["variable"] in ("sledai2k", "urine_protein_g_24h", "upcr_g_g",
                                 "prednisone_mg_day", "disease_duration_months"):
                cell = (f"{_fmt(r['mean'], d)} ± {_fmt(r['sd'], d)}; median "
                        f"{_fmt(r['median'], d)} ({_fmt(r['p25'], d)}, {_fmt(r['p75'], d)})")
            else:
                cell = f"{_fmt(r['mean'], d)} ± {_fmt(r['sd'], d)}"
            cell += f" [n={int(r['n'])}]"
        else:
            cell = f"{int(r['count'])}/{int(r['n'])} ({_fmt(r['pct'], 1)}%)"
        rows.setdefault(key, {"Characteristic": r["label"], "Level": level or ""})
        rows[key][r["group"]] = cell
    out = pd.DataFrame(list(rows.values()), columns=["Characteristic", "Level", *groups])
    if group_by:
        tests = analysis.table1_tests(db, flt, group_by)
        labels = t1.drop_duplicates("variable").set_index("variable")["label"]
        pmap = {labels.get(v, v): (_fmt_p(p), m) for v, p, m in
                zip(tests["variable"], tests["p_value"], tests["method"])}
        first = ~out["Characteristic"].duplicated()
        out["P"] = [pmap.get(c, ("", ""))[0] if f else "" for c, f in
                    zip(out["Characteristic"], first)]
        out["Test"] = [pmap.get(c, ("", ""))[1] if f else "" for c, f in
                       zip(out["Characteristic"], first)]
    return out


def adverse_event_table(db: Database, flt: Filter) -> pd.DataFrame:
    """The seed paper's Table 3 shape: patients with each event category and term, n (%)."""
    cond, params = flt.where("p")
    k, _ = analysis.count_patients(db, flt)
    df = db.query(
        "SELECT a.category, a.term, count(DISTINCT a.patient_id) AS patients, count(*) AS events, "
        "count(*) FILTER (WHERE a.serious) AS serious, "
        "max(CASE a.severity WHEN 'severe' THEN 3 WHEN 'moderate' THEN 2 WHEN 'mild' THEN 1 END) "
        "AS worst FROM adverse_events a JOIN patient_facts p ON p.patient_id = a.patient_id "
        f"WHERE {cond} GROUP BY ALL ORDER BY a.category, a.term",
        params,
    )
    any_pt = int(db.scalar(
        "SELECT count(DISTINCT a.patient_id) FROM adverse_events a JOIN patient_facts p "
        f"ON p.patient_id = a.patient_id WHERE {cond}", params) or 0)
    rows = [{"Category": "Any adverse event", "Term": "", "Patients": any_pt,
             "%": any_pt / k * 100 if k else None, "Events": int(df["events"].sum()),
             "Serious": int(df["serious"].sum()), "Worst severity": ""}]
    sev = {1: "mild", 2: "moderate", 3: "severe"}
    for cat in schema.AE_CATEGORIES:
        sub = df[df["category"] == cat]
        cat_pts = int(db.scalar(
            "SELECT count(DISTINCT a.patient_id) FROM adverse_events a JOIN patient_facts p "
            f"ON p.patient_id = a.patient_id WHERE {cond} AND a.category = ?", [*params, cat]) or 0)
        rows.append({"Category": cat.replace("_", " "), "Term": "(any)", "Patients": cat_pts,
                     "%": cat_pts / k * 100 if k else None, "Events": int(sub["events"].sum()),
                     "Serious": int(sub["serious"].sum()),
                     "Worst severity": sev.get(sub["worst"].max(), "") if len(sub) else ""})
        for _, r in sub.iterrows():
            rows.append({"Category": "", "Term": r["term"], "Patients": int(r["patients"]),
                         "%": r["patients"] / k * 100 if k else None, "Events": int(r["events"]),
                         "Serious": int(r["serious"]),
                         "Worst severity": sev.get(r["worst"], "")})
    return pd.DataFrame(rows)


def layout_table(db: Database, flt: Filter, layout: str, group_by: str | None = None,
                 se: Sequence[str] = ()):
    """One of the seed paper's tables (table1, table2, table3) for this filter."""
    if layout == "table1":
        return table1_layout(db, flt, group_by)
    if layout == "table2":
        return table2(db, flt, dispersion={e: "se" for e in se})
    if layout == "table3":
        return adverse_event_table(db, flt)
    raise ValueError(f"unknown layout {layout!r}")


def to_markdown(df: pd.DataFrame, caption: str = "") -> str:
    """A GitHub-flavoured Markdown table (no extra dependency)."""
    cols = [str(c) for c in df.columns]
    lines = [f"**{caption}**", ""] if caption else []
    lines.append("| " + " | ".join(cols) + " |")
    lines.append("|" + "|".join("---" for _ in cols) + "|")
    for _, r in df.iterrows():
        cells = []
        for v in r.tolist():
            if isinstance(v, float):
                v = "" if math.isnan(v) else f"{v:.1f}"
            cells.append(str(v).replace("|", "\\|"))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def to_xlsx(tables: dict[str, pd.DataFrame]) -> bytes:
    """An .xlsx workbook with one sheet per table (openpyxl)."""
    buf = io.BytesIO()
    with pd.ExcelWriter(buf, engine="openpyxl") as xw:
        for name, df in tables.items():
            df.to_excel(xw, sheet_name=name[:31], index=False)
            ws = xw.sheets[name[:31]]
            for i, col in enumerate(df.columns, start=1):
                width = max([len(str(col))] + [len(str(v)) for v in df[col].tolist()]) + 2
                ws.column_dimensions[ws.cell(1, i).column_letter].width = min(width, 60)
    return buf.getvalue()


# --- CLI ----------------------------------------------------------------------


def cli_report(args) -> int:
    """`python -m lupus_dash report ...`"""
    try:
        db = Database(args.db)
        flt = Filter.from_cli(args.cohort, args.filter)
        flt.validate(db)
        if args.group_by and args.group_by not in schema.GROUPING_COLUMNS:
            raise FilterError(f"--group-by {args.group_by!r}: choose from "
                              + ", ".join(schema.GROUPING_COLUMNS))
    except (FilterError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.layout:
        unknown = [e for e in args.se if e not in schema.ENDPOINTS_BY_COLUMN]
        if unknown:
            print(f"error: --se {', '.join(unknown)}: not an endpoint", file=sys.stderr)
            return EXIT_BAD_INPUT
        df = layout_table(db, flt, args.layout, args.group_by, se=args.se)
        k, n = analysis.count_patients(db, flt)
        caption = f"{args.layout.capitalize()}: {flt.sentence(k, n)}"
        if args.format == "xlsx":
            return _write(args, to_xlsx({args.layout: df}))
        if args.format == "csv":
            return _write(args, df.to_csv(index=False))
        return _write(args, to_markdown(df, caption))
    rep = build_report(db, flt, preset=args.definitions, group_by=args.group_by,
                       observed=args.observed, adjust=args.adjust,
                       include_mixed=not args.no_mixed_model)
    if args.format == "csv":
        return _write(args, to_csv(rep))
    if args.format == "xlsx":
        return _write(args, to_xlsx({s: pd.DataFrame(rep[s]) for s in SECTIONS if s in rep}))
    if args.format == "markdown":
        return _write(args, to_markdown(table2(db, flt), flt.sentence(rep["n_patients"],
                                                                      rep["n_cohort"])))
    return _write(args, to_json(rep))


def _write(args, content) -> int:
    out = getattr(args, "output", None)
    if isinstance(content, bytes):
        if not out:
            print("error: .xlsx output needs --output FILE", file=sys.stderr)
            return EXIT_BAD_INPUT
        with open(out, "wb") as fh:
            fh.write(content)
        return 0
    if out:
        with open(out, "w", encoding="utf-8") as fh:
            fh.write(content)
    else:
        sys.stdout.write(content if content.endswith("\n") else content + "\n")
    return 0


def report_command(flt: Filter, db_path: str, preset: str = "standard",
                   extra: Sequence[str] = ()) -> str:
    """The shell command that reproduces a view's numbers."""
    import shlex

    parts = ["python", "-m", "lupus_dash", "report", "--db", db_path, "--cohort", flt.cohort]
    for a in flt.cli_args():
        parts += ["--filter", a]
    parts += ["--definitions", preset, *extra]
    return " ".join(shlex.quote(p) for p in parts)
