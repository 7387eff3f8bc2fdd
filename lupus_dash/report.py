"""The `report`: every number the dashboard shows, as JSON, CSV or a paper-style table.

Every section is obtained through the seam (`results.run`) with the same calls
the pages make, and the paper tables through `layouts`, so the report and the
screen never disagree and an output policy applies to both alike.
"""

from __future__ import annotations

import io
import json
import math
import sys
from collections.abc import Sequence

import numpy as np
import pandas as pd

from . import layouts, results, schema
from .analyses import biomarkers, cohort, common, remission, subgroups, targets
from .db import Database
from .filters import Filter, FilterError
from .results import OPEN, Call, Policy

EXIT_BAD_INPUT = 2
SECTIONS = ("table1", "table1_tests", "summary", "longitudinal", "omnibus", "remission",
            "subgroups", "time_in_target", "mmrm")


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
    not_evaluable: str = "exclude",
    policy: Policy = OPEN,
    mmrm: Sequence[str] = (),
    time_in_target: bool = False,
    strategy: str = "composite",
) -> dict:
    """All report sections for one cohort and filter (DATA_CONTRACT.md).

    Optional sections: `mmrm` (LS-mean change per visit of these continuous endpoints)
    and `time_in_target`; `strategy` is the intercurrent-event strategy both use.
    """
    flt.validate(db)

    def run(fn, **kw) -> results.Result:
        return results.run(db, Call.of(fn, flt, **kw), policy=policy)

    counted = run(cohort.patient_count)
    if counted.table.empty:
        # Shared mode's denominator gate: a viewer sees this sentence and nothing else.
        return {"cohort": flt.cohort, "filters": flt.to_dict(),
                "filter_sentence": flt.sentence(), "output_policy": policy.name,
                "gate": counted.notes[0] if counted.notes else "not shown"}
    cnt = counted.table.iloc[0]
    k, n_cohort = _clean(cnt["n_match"]), _clean(cnt["n_cohort"])
    info = results.run(db, Call.of(common.cohort_info, None, cohort=flt.cohort),
                       policy=policy).table
    rep: dict = {
        "cohort": flt.cohort,
        "filters": flt.to_dict(),
        "filter_sentence": flt.sentence(k, n_cohort),
        "n_patients": k,
        "n_cohort": n_cohort,
        "definitions": definitions(preset),
        "scheduled_weeks": info["scheduled_weeks"],
        "data_version": results.data_version(db),
        "output_policy": policy.name,
        "options": {"group_by": group_by, "observed": observed, "adjust": adjust,
                    "mixed_model": include_mixed, "not_evaluable": not_evaluable,
                    "strategy": strategy},
    }
    rep["table1"] = _records(run(cohort.table1, group_by=group_by).table)
    if group_by:
        rep["table1_tests"] = _records(run(cohort.table1_tests, group_by=group_by).table)
    rep["summary"] = _records(run(biomarkers.summary).table)
    rep["longitudinal"] = _records(run(biomarkers.longitudinal, adjust=adjust,
                                       include_mixed=include_mixed).table)
    rep["omnibus"] = _records(run(biomarkers.omnibus).table)
    rep["remission"] = _records(run(remission.rates, preset=preset, observed=observed,
                                    not_evaluable=not_evaluable).table)
    if group_by:
        rep["subgroups"] = _records(pd.concat(
            [run(subgroups.tests, group_by=group_by, outcome=o, adjust=adjust,
                 methods="all").table
             for o in ("value", "change")], ignore_index=True))
    if time_in_target:
        rep["time_in_target"] = _records(run(targets.time_in_target, preset=preset,
                                             strategy=strategy).table)
    if mmrm:
        rep["mmrm"] = _records(run(biomarkers.mmrm_rows, endpoints=list(mmrm),
                                   strategy=strategy).table)
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
    if isinstance(v, (list, tuple, np.ndarray)):
        return [_clean(x) for x in v]
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


def layout(db: Database, flt: Filter, name: str, policy: Policy = OPEN,
           se: tuple[str, ...] = (), **kwargs) -> layouts.Layout:
    """A paper layout for this filter through the seam (what `--layout` prints)."""
    render_kw = {"dispersion": {e: "se" for e in se}} if name == "table2" else None
    return layouts.build(name, lambda c: results.run(db, c, policy=policy), flt,
                         render_kw=render_kw, **kwargs)


def cli_report(args) -> int:
    """`python -m lupus_dash report ...`"""
    if args.format == "docx" and not args.layout:
        print("error: --format docx needs --layout table1, table2 or table3", file=sys.stderr)
        return EXIT_BAD_INPUT
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
    policy = OPEN
    if getattr(args, "shared", False):
        from .shared import report_policy

        policy = report_policy(args.min_cell)
    if args.layout:
        unknown = [e for e in args.se if e not in schema.ENDPOINTS_BY_COLUMN]
        if unknown:
            print(f"error: --se {', '.join(unknown)}: not an endpoint", file=sys.stderr)
            return EXIT_BAD_INPUT
        kw = {"group_by": args.group_by} if args.layout == "table1" else {}
        if policy is not OPEN:
            gate = policy.gate(db, flt)
            if not gate.ok:
                return _write(args, gate.message)
        lay = layout(db, flt, args.layout, policy=policy, se=tuple(args.se), **kw)
        if args.format == "xlsx":
            return _write(args, to_xlsx({args.layout: lay.table}))
        if args.format == "docx":
            from . import office

            return _write(args, office.layout_docx(db, lay, preset=args.definitions))
        if args.format == "csv":
            return _write(args, lay.to_csv())
        return _write(args, lay.to_markdown())
    try:
            rep = build_report(db, flt, preset=args.definitions, group_by=args.group_by,
                           observed=args.observed, adjust=args.adjust,
                           include_mixed=not args.no_mixed_model,
                           not_evaluable=args.not_evaluable, mmrm=args.mmrm,
                           time_in_target=args.time_in_target, strategy=args.strategy,
                           policy=policy)
    except ValueError as exc:  # an endpoint the MMRM cannot take, an unknown strategy
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if "gate" in rep:
        return _write(args, to_json(rep) if args.format == "json" else rep["gate"])
    if args.format == "csv":
        return _write(args, to_csv(rep))
    if args.format == "xlsx":
        return _write(args, to_xlsx({s: pd.DataFrame(rep[s]) for s in SECTIONS if s in rep}))
    if args.format == "markdown":
        return _write(args, layout(db, flt, "table2", policy=policy).to_markdown())
    return _write(args, to_json(rep))


def _write(args, content) -> int:
    out = getattr(args, "output", None)
    if isinstance(content, bytes):
        if not out:
            print("error: .xlsx and .docx output need --output FILE", file=sys.stderr)
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
