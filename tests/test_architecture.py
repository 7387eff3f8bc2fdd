"""Layering rules from STYLE.md, enforced."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_only_ui_module_imports_streamlit():
    offenders = [
        p.name for p in (ROOT / "lupus_dash").glob("*.py")
        if p.name != "ui.py" and "streamlit" in _imports(p)
    ]
    assert offenders == []


def test_sql_never_formats_values():
    # Values go through `?` parameters; f-strings may only splice identifiers and
    # clauses built from schema constants. A quoted {placeholder} inside SQL text
    # ('{x}') would mean a value was formatted in.
    pat = re.compile(r"""f["'][^"']*(SELECT|WHERE|INSERT)[^"']*'\{[^}]+\}'""")
    bad = []
    for p in (ROOT / "lupus_dash").glob("*.py"):
        for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
            if pat.search(line):
                bad.append(f"{p.name}:{i}")
    assert bad == []


ANALYSIS_MODULES = {p.stem for p in (ROOT / "lupus_dash" / "analyses").glob("*.py")
                    if p.stem != "__init__"}


def _direct_analysis_calls(path: Path) -> list[str]:
    """Calls like `remission.rates(...)` on an analyses module (instead of ui.run/results.run)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    aliases = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and (
                node.module.endswith("analyses") or node.module.endswith(".analyses")):
            aliases |= {a.asname or a.name for a in node.names if a.name in ANALYSIS_MODULES}
    bad = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Name) and node.func.value.id in aliases):
            bad.append(f"{path.name}:{node.lineno} {node.func.value.id}.{node.func.attr}()")
    return bad


def test_pages_and_report_reach_computations_only_through_the_seam():
    # Every number leaves through results.run (pages: ui.run), where the output policy
    # of a hosted dashboard applies; calling an analysis directly would bypass it.
    files = [*(ROOT / "pages").glob("*.py"), ROOT / "lupus_dash" / "report.py",
             ROOT / "lupus_dash" / "layouts.py", ROOT / "app.py"]
    offenders = [hit for f in files for hit in _direct_analysis_calls(f)]
    # Pure rules and constants are fine (remission.renal_threshold is a clinical constant).
    allowed = {"renal_threshold"}
    assert [o for o in offenders if o.split(".")[-1].rstrip("()") not in allowed] == []


def test_the_seam_catches_a_direct_call(tmp_path):
    # The check above can fail: a page calling an analysis directly is reported.
    page = tmp_path / "bad.py"
    page.write_text("from lupus_dash.analyses import remission\n"
                    "rem = remission.rates(db, flt)\n")
    assert _direct_analysis_calls(page) == ["bad.py:2 remission.rates()"]


def test_every_public_analysis_is_declared_for_the_seam():
    import importlib
    import inspect

    from lupus_dash.results import Spec

    undeclared = []
    for name in sorted(ANALYSIS_MODULES - {"common"}):
        mod = importlib.import_module(f"lupus_dash.analyses.{name}")
        for fname, fn in inspect.getmembers(mod, inspect.isfunction):
            params = list(inspect.signature(fn).parameters)
            if (fname.startswith("_") or fn.__module__ != mod.__name__ or not params
                    or params[0] != "db"):
                continue
            if not isinstance(getattr(fn, "spec", None), Spec):
                undeclared.append(f"{name}.{fname}")
    assert undeclared == []
