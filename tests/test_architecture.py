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
