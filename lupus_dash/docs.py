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
    if getattr(args, "analyses", False):
        sys.stdout.write(analyses_markdown() + "\n")
    elif args.format == "csv":
        sys.stdout.write(dictionary_frame().to_csv(index=False))
    elif args.format == "json":
        sys.stdout.write(json.dumps(schema.data_dictionary(), indent=2, ensure_ascii=False) + "\n")
    else:
        sys.stdout.write(dictionary_markdown() + "\n")
    return 0


def analyses_markdown() -> str:
    """docs/ANALYSIS_API.md: every declared analysis, where it lives, what its tables hold."""
    import importlib
    import inspect

    from . import analyses
    from .results import spec_of

    out = ["# Analyses: where every number is computed", "",
           ("Generated from the `@results.analysis` declarations by "
           "`python -m lupus_dash dictionary --analyses`; do not edit by hand. Every function "
           "runs through the seam: `results.run(db, fn, flt, **kwargs)` (pages: "
           "`ui.run(fn, flt, **kwargs)`), which applies the output policy to the parts "
           "declared here."), ""]
    for name in analyses.__all__:
        mod = importlib.import_module(f"lupus_dash.analyses.{name}")
        fns = [f for _, f in inspect.getmembers(mod, inspect.isfunction)
               if f.__module__ == mod.__name__ and hasattr(f, "spec")]
        if not fns:
            continue
        out += [f"## `analyses.{name}`", "",
                " ".join((mod.__doc__ or "").strip().split("\n\n")[0].split()), "",
                "| function | what | parts: counts (of denominator) | patient-level |",
                "|---|---|---|---|"]
        for f in sorted(fns, key=lambda f: inspect.unwrap(f).__code__.co_firstlineno):
            spec = spec_of(f)
            sig = str(inspect.signature(f)).replace("|", "\\|")
            doc = (inspect.getdoc(f) or "").split("\n\n")[0].replace("\n", " ").replace("|", "/")
            parts = "; ".join(
                f"{p}: " + (", ".join(f"{c} ({d or 'patients'})" for c, d in part.counts.items())
                            or "–")
                for p, part in spec.parts.items())
            out.append(f"| `{f.__name__}{sig}` | {doc} | {parts} | "
                       f"{'yes' if spec.patient_level else ''} |")
        out.append("")
    return "\n".join(out)
