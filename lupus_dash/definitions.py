"""Which endpoint definitions produced a file's derived tables: a fingerprint kept in the file.

Endpoint results (LLDAS, remission, renal response, eGFR, SLEDAI-2K from its
descriptors, …) are materialised at import. The fingerprint of the definitions
in force — the schema version, every preset's thresholds, and the code of the
modules that evaluate them (`endpoints`, `derive`; docstrings and comments do
not count) — is written into the file's `meta` table. A file whose fingerprint
differs from the running code's was derived with other definitions: the app
says so and `python -m lupus_dash rederive --db FILE` rebuilds it.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import inspect
import json


def _code_digest(module) -> str:
    """The module's code without docstrings or comments (so rewording them changes nothing)."""
    tree = ast.parse(inspect.getsource(module))
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(body, list) and body and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value,
                                                                           str)):
            body.pop(0)
    return ast.dump(tree, annotate_fields=False, include_attributes=False)


@functools.lru_cache(maxsize=1)
def fingerprint() -> str:
    """A short hash of the definitions in force in this version of the code."""
    from . import derive, endpoints, schema

    doc = {
        "schema_version": schema.SCHEMA_VERSION,
        "presets": {name: p.to_dict() for name, p in endpoints.PRESETS.items()},
        "code": [_code_digest(endpoints), _code_digest(derive)],
    }
    text = json.dumps(doc, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def stale_message(stored: str | None, path) -> str | None:
    """A plain sentence when a file's derived tables came from other definitions, else None."""
    if stored == fingerprint():
        return None
    when = "an older version of lupus-dash" if stored else "a version that did not record it"
    return (f"{path} was derived with other endpoint definitions ({when}); LLDAS, remission, "
            "renal response and eGFR shown here may not match the definitions printed beside "
            f"them. Rebuild its derived tables: python -m lupus_dash rederive --db {path}")
