"""The subgroup filter: one value that becomes SQL, a sentence, a URL and JSON.

The sentence a person reads and the SQL that runs come from the same object,
so what the screen says is what was computed (datasette's habit).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from . import schema

# Filterable patient_facts columns, in the order the panel and sentence use.
FILTER_COLUMNS: tuple[str, ...] = schema.GROUPING_COLUMNS
BOOL_COLUMNS = frozenset(c.name for c in schema.columns("patient_facts") if c.dtype == schema.BOOL)
MISSING = "(missing)"  # matches NULL, e.g. patients never biopsied


class FilterError(ValueError):
    """A filter that names an unknown column or value."""


def _parse_bool(column: str, text: str) -> bool:
    t = str(text).strip().lower()
    if t in ("true", "1", "yes", "y"):
        return True
    if t in ("false", "0", "no", "n"):
        return False
    raise FilterError(f"{column}={text!r}: expected true or false")


@dataclass(frozen=True)
class Filter:
    """A cohort plus per-column allowed values (OR within a column, AND across)."""

    cohort: str
    values: tuple[tuple[str, tuple], ...] = ()
    age_min: float | None = None
    age_max: float | None = None
    _lookup: dict = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self):
        if not self.cohort:
            raise FilterError("a filter needs a cohort")
        seen = set()
        for col, vals in self.values:
            if col not in FILTER_COLUMNS:
                raise FilterError(
                    f"unknown filter column {col!r}; choose from {', '.join(FILTER_COLUMNS)}"
                )
            if col in seen:
                raise FilterError(f"filter column {col!r} given twice")
            seen.add(col)
            if not vals:
                raise FilterError(f"filter column {col!r} has no values")
        if self.age_min is not None and self.age_max is not None and self.age_min > self.age_max:
            raise FilterError(f"age range {self.age_min}–{self.age_max} is empty")
        self._lookup.update(dict(self.values))

    # --- construction -------------------------------------------------------

    @classmethod
    def build(cls, cohort: str, age_min=None, age_max=None, **values) -> Filter:
        """Filter from keyword lists, dropping empty ones: build("c", sex=["F"])."""
        items = []
        for col in FILTER_COLUMNS:
            v = values.pop(col, None)
            if v is None or (isinstance(v, (list, tuple)) and len(v) == 0):
                continue
            if not isinstance(v, (list, tuple)):
                v = [v]
            if col in BOOL_COLUMNS:
                v = [x if isinstance(x, bool) or x == MISSING else _parse_bool(col, x) for x in v]
            items.append((col, tuple(dict.fromkeys(v))))
        if values:
            raise FilterError(f"unknown filter column(s): {', '.join(sorted(values))}")
        return cls(cohort, tuple(items), _num(age_min), _num(age_max))

    @classmethod
    def from_cli(cls, cohort: str, specs: list[str]) -> Filter:
        """Parse repeated `COL=VAL[,VAL]` (and `age=MIN-MAX`, `age_min=`, `age_max=`)."""
        values: dict[str, list] = {}
        age_min = age_max = None
        for spec in specs:
            if "=" not in spec:
                raise FilterError(f"--filter {spec!r}: expected COL=VALUE")
            col, _, val = spec.partition("=")
            col = col.strip()
            if col == "age":
                age_min, age_max = _parse_range(val)
            elif col == "age_min":
                age_min = _num(val)
            elif col == "age_max":
                age_max = _num(val)
            elif col in ("completers", "completers_only"):
                values["completer"] = [_parse_bool(col, val)]
            else:
                if col not in FILTER_COLUMNS:
                    raise FilterError(
                        f"unknown filter column {col!r}; choose from age, "
                        + ", ".join(FILTER_COLUMNS)
                    )
                parts = [p.strip() for p in val.split(",") if p.strip()]
                values.setdefault(col, []).extend(parts)
        return cls.build(cohort, age_min=age_min, age_max=age_max, **values)

    @classmethod
    def from_query_params(cls, params, default_cohort: str) -> Filter:
        """Filter from URL query params (a mapping of str → str or list[str])."""

        def get_all(key):
            if hasattr(params, "get_all"):
                return list(params.get_all(key))
            v = params.get(key)
            if v is None:
                return []
            return list(v) if isinstance(v, (list, tuple)) else [v]

        cohort = (get_all("cohort") or [default_cohort])[0]
        values = {}
        for col in FILTER_COLUMNS:
            vals = get_all(col)
            if vals:
                values[col] = vals
        age = get_all("age")
        age_min, age_max = _parse_range(age[0]) if age else (None, None)
        return cls.build(cohort, age_min=age_min, age_max=age_max, **values)

    @classmethod
    def from_dict(cls, d: dict) -> Filter:
        d = dict(d)
        return cls.build(
            d.pop("cohort"), age_min=d.pop("age_min", None), age_max=d.pop("age_max", None), **d
        )

    @classmethod
    def from_json(cls, text: str) -> Filter:
        return cls.from_dict(json.loads(text))

    # --- use ----------------------------------------------------------------

    def get(self, column: str) -> tuple:
        return self._lookup.get(column, ())

    def with_(self, column: str, values) -> Filter:
        """A copy with one column's values replaced (empty = no restriction)."""
        d = self.to_dict()
        d[column] = list(values) if values else []
        return Filter.from_dict(d)

    def to_dict(self) -> dict:
        d: dict = {"cohort": self.cohort}
        for col, vals in self.values:
            d[col] = list(vals)
        if self.age_min is not None:
            d["age_min"] = self.age_min
        if self.age_max is not None:
            d["age_max"] = self.age_max
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def to_query_params(self) -> dict[str, list[str]]:
        """URL form: repeated keys for several values, `age=MIN-MAX`."""
        q: dict[str, list[str]] = {"cohort": [self.cohort]}
        for col, vals in self.values:
            q[col] = [_fmt_value(v) for v in vals]
        if self.age_min is not None or self.age_max is not None:
            q["age"] = [f"{_fmt_num(self.age_min)}-{_fmt_num(self.age_max)}"]
        return q

    def cli_args(self) -> list[str]:
        """The `--filter` arguments that reproduce this filter on the command line."""
        out = []
        for col, vals in self.values:
            out.append(f"{col}={','.join(_fmt_value(v) for v in vals)}")
        if self.age_min is not None or self.age_max is not None:
            out.append(f"age={_fmt_num(self.age_min)}-{_fmt_num(self.age_max)}")
        return out

    def where(self, alias: str = "p") -> tuple[str, list]:
        """SQL condition on patient_facts (aliased) and its parameters."""
        a = f"{alias}." if alias else ""
        clauses = [f"{a}cohort = ?"]
        params: list = [self.cohort]
        for col, vals in self.values:
            ident = f'{a}"{col}"'  # col is checked against FILTER_COLUMNS
            real = [v for v in vals if v != MISSING]
            parts = []
            if real:
                parts.append(f"{ident} IN (SELECT unnest(?))")
                params.append(list(real))
            if len(real) != len(vals):
                parts.append(f"{ident} IS NULL")
            clauses.append("(" + " OR ".join(parts) + ")")
        if self.age_min is not None:
            clauses.append(f"{a}age_at_baseline_years >= ?")
            params.append(float(self.age_min))
        if self.age_max is not None:
            clauses.append(f"{a}age_at_baseline_years <= ?")
            params.append(float(self.age_max))
        return " AND ".join(clauses), params

    def patients_sql(self) -> tuple[str, list]:
        """`SELECT patient_id FROM patient_facts WHERE ...` for this filter."""
        cond, params = self.where("p")
        return f"SELECT p.patient_id FROM patient_facts p WHERE {cond}", params

    def describe(self) -> str:
        """The restrictions in words, without counts ('' when none)."""
        parts = []
        for col, vals in self.values:
            parts.append(_describe_one(col, vals))
        if self.age_min is not None and self.age_max is not None:
            parts.append(f"aged {_fmt_num(self.age_min)}–{_fmt_num(self.age_max)} at baseline")
        elif self.age_min is not None:
            parts.append(f"aged ≥ {_fmt_num(self.age_min)} at baseline")
        elif self.age_max is not None:
            parts.append(f"aged ≤ {_fmt_num(self.age_max)} at baseline")
        return ", ".join(parts)

    def sentence(self, k: int | None = None, n: int | None = None) -> str:
        """E.g. 'csle_belimumab: biopsy class IV or IV+V, female — 20 of 26 patients'."""
        desc = self.describe() or "all patients"
        s = f"{self.cohort}: {desc}"
        if k is not None and n is not None:
            s += f" — {k} of {n} patients"
        return s

    def validate(self, db) -> None:
        """Raise FilterError when the cohort or a value does not exist in the database."""
        cohorts = set(db.query("SELECT cohort FROM cohorts")["cohort"])
        if self.cohort not in cohorts:
            raise FilterError(
                f"unknown cohort {self.cohort!r}; the database has {', '.join(sorted(cohorts))}"
            )
        for col, vals in self.values:
            if col in BOOL_COLUMNS:
                continue
            present = set(
                db.query(
                    f'SELECT DISTINCT "{col}" AS v FROM patient_facts WHERE cohort = ?',
                    [self.cohort],
                )["v"]
                .dropna()
                .astype(str)
            )
            bad = [v for v in vals if v != MISSING and str(v) not in present]
            if bad:
                raise FilterError(
                    f"{col}: no patient in {self.cohort} has {', '.join(map(repr, bad))}; "
                    f"values present: {', '.join(sorted(present)) or 'none'}"
                )


# --- helpers ----------------------------------------------------------------

_LABELS = {c.name: c.label for c in schema.columns("patient_facts")}


def _describe_one(col: str, vals: tuple) -> str:
    if col == "completer":
        return " or ".join("completers" if v is True else "non-completers" for v in vals)
    if col.startswith("organ_"):
        organ = col.removeprefix("organ_").replace("_", " ")
        return " or ".join(
            f"{organ} involvement" if v is True else f"no {organ} involvement" for v in vals
        )
    if col == "sex":
        return " or ".join(schema.SEX_LABELS.get(v, str(v)) for v in vals)
    label = _LABELS.get(col, col).lower()
    if col == "baseline_anti_dsdna":
        return " or ".join(f"anti-dsDNA {v} at baseline" for v in vals)
    if col == "class_group":
        return " or ".join(str(v) for v in vals) + " nephritis"
    if col == "age_band":
        return "age " + " or ".join(str(v) for v in vals)
    return f"{label} " + " or ".join(str(v) for v in vals)


def _fmt_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _fmt_num(x) -> str:
    if x is None:
        return ""
    x = float(x)
    return str(int(x)) if x.is_integer() else f"{x:g}"


def _num(x):
    if x is None or x == "":
        return None
    try:
        return float(x)
    except (TypeError, ValueError):
        raise FilterError(f"not a number: {x!r}") from None


def _parse_range(text: str) -> tuple[float | None, float | None]:
    lo, sep, hi = str(text).partition("-")
    if not sep:
        raise FilterError(f"age={text!r}: expected MIN-MAX, e.g. 10-15 or 18-")
    return _num(lo.strip()), _num(hi.strip())
