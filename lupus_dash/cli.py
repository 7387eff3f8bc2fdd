"""Command line: `python -m lupus_dash {import,validate,suggest-mapping,import-omop,report,
build-demo,rederive,slides,dictionary}`."""

from __future__ import annotations

import argparse
import importlib
import sys

# Exit codes: 0 ok, 1 unexpected failure, 2 bad input (reported, nothing written).
EXIT_OK, EXIT_BAD_INPUT = 0, 2

DEFAULT_DB = "data/demo.duckdb"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m lupus_dash", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    imp = sub.add_parser("import", help="import a cohort folder, .xlsx or .parquet files")
    imp.add_argument("path")
    imp.add_argument("--db", required=True)
    mode = imp.add_mutually_exclusive_group()
    mode.add_argument("--replace", action="store_true", help="replace cohorts with the same label")
    mode.add_argument("--append", action="store_true", help="add cohorts, keep the others")
    _ingest_options(imp)

    val = sub.add_parser("validate", help="check cohort files without writing anything")
    val.add_argument("path")
    _ingest_options(val)

    sug = sub.add_parser("suggest-mapping",
                         help="write a first MAP.toml matching a file's headers to the contract")
    sug.add_argument("path", help="folder, .xlsx or .csv (a REDCap export + dictionary folder "
                                  "or a long-format labs file work too)")
    sug.add_argument("--output", "-o", default=None, help="write MAP.toml here (else stdout)")

    omop = sub.add_parser("import-omop",
                          help="extract a belimumab cohort from an OMOP CDM in PostgreSQL")
    omop.add_argument("--dsn", required=True, help="postgresql://user@host:port/dbname")
    omop.add_argument("--schema", default="cdm", help="schema holding the CDM tables")
    omop.add_argument("--vocab-schema", default=None,
                      help="schema holding concept/concept_ancestor (default: --schema)")
    omop.add_argument("--cohort", required=True, help="cohort label in the dashboard")
    omop.add_argument("--concepts", default=None,
                      help="concept-set file (TOML) to use instead of the built-in one")
    omop.add_argument("--gap-days", type=int, default=None,
                      help="days after the last belimumab exposure before it counts as "
                           "stopped (default 90)")
    omop.add_argument("--db", default=None, help="DuckDB file to write (omit to only check)")
    omode = omop.add_mutually_exclusive_group()
    omode.add_argument("--replace", action="store_true")
    omode.add_argument("--append", action="store_true")
    omop.add_argument("--schedule", default=None, help="scheduled weeks, e.g. '0,4,12,24,52'")
    omop.add_argument("--week-windows", default=None)

    rep = sub.add_parser("report", help="the report JSON/CSV for one cohort and filter")
    rep.add_argument("--db", default=DEFAULT_DB)
    rep.add_argument("--cohort", required=True)
    rep.add_argument("--filter", action="append", default=[], metavar="COL=VAL",
                     help="repeatable; several values as COL=A,B")
    rep.add_argument("--definitions", default="standard",
                     choices=["standard", "seed_paper", "paediatric"])
    rep.add_argument("--format", default="json", choices=["json", "csv", "markdown", "xlsx", "docx"],
                     help="docx: an editable Word table (with --layout and --output)")
    rep.add_argument("--group-by", default=None)
    rep.add_argument("--observed", action="store_true",
                     help="observed-only remission rates instead of non-responder imputation")
    rep.add_argument("--not-evaluable", default="exclude", choices=["exclude", "failure"],
                     help="remission rates: leave visits that cannot be evaluated (a component "
                          "missing) out of the denominator (default) or count them as not "
                          "achieved (sensitivity analysis)")
    rep.add_argument("--adjust", default="none", choices=["none", "bonferroni", "holm", "bh"])
    rep.add_argument("--shared", action="store_true",
                     help="print exactly what a viewer of the shared dashboard sees (the "
                          "disclosure rules applied)")
    rep.add_argument("--min-cell", type=int, default=None, metavar="K",
                     help="with --shared: the minimum cell size (default 11; 5 at OHDSI-style "
                          "sites)")
    rep.add_argument("--mmrm", action="append", default=[], metavar="ENDPOINT",
                     help="add `mmrm` rows: LS-mean change per visit of this continuous "
                          "endpoint (MMRM, unstructured covariance, REML); repeatable")
    rep.add_argument("--time-in-target", action="store_true",
                     help="add `time_in_target` rows (time in LLDAS and remission, sustained)")
    rep.add_argument("--strategy", default="composite",
                     choices=["composite", "treatment_policy", "while_on_treatment"],
                     help="intercurrent events (stop, switch) for --mmrm and --time-in-target")
    rep.add_argument("--layout", default=None, choices=["table1", "table2", "table3"])
    rep.add_argument("--se", action="append", default=[], metavar="ENDPOINT",
                     help="table2 layout: print mean ± SE for this endpoint (the seed paper "
                          "did for cd19_pct); repeatable")
    rep.add_argument("--no-mixed-model", action="store_true", help="skip the mixed model")
    rep.add_argument("--output", "-o", default=None, help="write to a file instead of stdout")

    demo = sub.add_parser("build-demo", help="build the synthetic demo cohorts")
    demo.add_argument("--db", default=DEFAULT_DB)
    demo.add_argument("--scale", type=int, default=None, help="N synthetic patients instead")
    demo.add_argument("--seed", type=int, default=None)

    red = sub.add_parser("rederive", help="rebuild a file's derived tables with the endpoint "
                                          "definitions of this version")
    red.add_argument("--db", required=True)

    dic = sub.add_parser("dictionary", help="print the data dictionary")
    dic.add_argument("--format", default="markdown", choices=["markdown", "csv", "json"])
    dic.add_argument("--analyses", action="store_true",
                     help="the analyses' reference (docs/ANALYSIS_API.md) instead")
    _slides_parser(sub)
    return p


def _slides_parser(sub) -> None:
    """`slides`: a deck of scenes (or the default key views for a filter) as PowerPoint."""
    s = sub.add_parser("slides", help="a deck of scenes as a 16:9 PowerPoint (default: the key "
                                      "views for one filter)")
    s.add_argument("--db", default=DEFAULT_DB)
    s.add_argument("--cohort", default=None,
                   help="required without --deck; with --deck it (and --filter) replaces "
                        "every scene's filter")
    s.add_argument("--filter", action="append", default=[], metavar="COL=VAL",
                   help="repeatable; several values as COL=A,B")
    s.add_argument("--deck", default=None,
                   help="a deck file (.toml or .json) or the name of one under decks/")
    s.add_argument("--definitions", default="standard",
                   choices=["standard", "seed_paper", "paediatric"])
    s.add_argument("--pptx", required=True, help="the .pptx file to write")
    s.add_argument("--png-dir", default=None,
                   help="also write each chart as a 1920×1080 PNG (caption included) here")
    s.add_argument("--log", default=None,
                   help="write the comparison log to this .csv or .json file")
    s.add_argument("--save-deck", default=None,
                   help="write the deck used (the default one too) to this .toml or .json")
    s.add_argument("--prespecified", action="store_true",
                   help="mark the default deck's scenes pre-specified (they were planned)")


def _ingest_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--complement-unit", choices=["g/L", "mg/dL"], default=None,
                   help="unit of c3/c4 columns when the file has no unit column")
    p.add_argument("--creatinine-unit", choices=["umol/L", "mg/dL"], default=None)
    p.add_argument("--week-windows", default=None,
                   help="nominal week windows for dated visits, e.g. '0:-14:7,4:15:42'")
    p.add_argument("--schedule", default=None,
                   help="scheduled weeks of the cohort(s), e.g. '0,4,12,24,52'")
    p.add_argument("--mapping", default=None, metavar="MAP.toml",
                   help="column mapping (python -m lupus_dash suggest-mapping PATH -o MAP.toml)")
    p.add_argument("--date-format", default=None,
                   choices=["auto", "YYYY-MM-DD", "DD/MM/YYYY", "MM/DD/YYYY"],
                   help="dates that are not ISO: day/month order (default auto: ISO, or the "
                        "order a day above 12 proves, with a warning)")


_COMMANDS = {
    "import": ("lupus_dash.ingest", "cli_import"),
    "validate": ("lupus_dash.ingest", "cli_validate"),
    "suggest-mapping": ("lupus_dash.mapping", "cli_suggest_mapping"),
    "import-omop": ("lupus_dash.omop", "cli_import_omop"),
    "report": ("lupus_dash.report", "cli_report"),
    "build-demo": ("lupus_dash.synth", "cli_build_demo"),
    "rederive": ("lupus_dash.store", "cli_rederive"),
    "dictionary": ("lupus_dash.docs", "cli_dictionary"),
    "slides": ("lupus_dash.office", "cli_slides"),
}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    module, func = _COMMANDS[args.command]
    from .db import DatabaseError

    try:
        return int(getattr(importlib.import_module(module), func)(args) or 0)
    except DatabaseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
