"""The data dictionary as Markdown, CSV or JSON, generated from `schema`."""

from __future__ import annotations

import json
import sys

import pandas as pd

from . import schema


def dictionary_frame() -> pd.DataFrame:
    """Every column of every table with type, unit, range and meaning."""
    return pd.DataFrame(schema.data_dictionary())


def dictionary_markdown() -> str:
    """One Markdown table per table, for docs/DATA_DICTIONARY.md and the app."""
    rows = schema.data_dictionary()
    note = ("Generated from `lupus_dash/schema.py` by `python -m lupus_dash dictionary`; "
            "do not edit by hand.")
    out = ["# Data dictionary", "", note, ""]
    for table in dict.fromkeys(r["table"] for r in rows):
        out += [f"## {table}", "", "| column | type | unit | range / choices | required | meaning |",
                "|---|---|---|---|---|---|"]
        for r in (r for r in rows if r["table"] == table):
            rng = r["range"] or r["choices"] or ""
            meaning = r["label"] + (f": {r['description']}" if r["description"] else "")
            out.append(f"| `{r['column']}` | {r['type']} | {r['unit'] or ''} | {rng} | "
                       f"{'yes' if r['required'] else ''} | {meaning} |")
        out.append("")
    return "\n".join(out)


def cli_dictionary(args) -> int:
    if args.format == "csv":
        sys.stdout.write(dictionary_frame().to_csv(index=False))
    elif args.format == "json":
        sys.stdout.write(json.dumps(schema.data_dictionary(), indent=2, ensure_ascii=False) + "\n")
    else:
        sys.stdout.write(dictionary_markdown() + "\n")
    return 0
