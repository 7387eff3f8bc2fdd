"""The one seam every number leaves through: `run(call)` gives a `Result`.

Pages (through `ui.run`), `report`, the slide/Word exports and the benchmark
obtain every computation here, never by calling an analysis directly
(tests/test_architecture.py enforces it for pages and report). An analysis is
a plain function `fn(db, flt, **kwargs)` decorated with `@analysis(...)`,
which declares what its output is made of: for each table ("part"), which
columns are counts and of which denominator, which statistics rest on how
many patients, which columns are p-values, and whether the rows are
patient-level. An output policy (`Policy`) sees every result here before it
reaches a screen, a download or the command line; the open policy of local
use changes nothing, the shared-mode policy of a hosted dashboard applies the
disclosure rules and refuses patient-level analyses before they run.

The same `Call` that ran also writes the Reproduce snippet (`Call.python`)
and the command line (`Call.cli`), so what an expander shows is what ran.
"""

from __future__ import annotations

import inspect
import json
import shlex
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from .filters import Filter

TABLE = "table"  # the part name of a single-table result


@dataclass(frozen=True)
class Part:
    """How to read one table of a result (what the disclosure rules need to know).

    counts: count column → the column holding its denominator (None: the count is
        of patients in the filter, e.g. a group size).
    n_of: statistic column → the column with the number of patients it rests on
        (means, SDs, medians, quartiles, rates, CIs, estimates).
    p_columns: p-value columns; `groups_n` names the columns with the size of each
        compared group when it is not the row's `n`.
    group: the column naming a subgroup, if rows are per group.
    patient_level: rows describe single patients (listings, trajectories, records).
    extremes: columns holding minimum/maximum values (never shown in shared mode).
    """

    counts: Mapping[str, str | None] = field(default_factory=dict)
    n_of: Mapping[str, str] = field(default_factory=dict)
    p_columns: tuple[str, ...] = ()
    groups_n: tuple[str, ...] = ()
    group: str | None = None
    patient_level: bool = False
    extremes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Spec:
    """What an analysis returns and how the command line reproduces it."""

    name: str
    parts: Mapping[str, Part]
    patient_level: bool
    cli: Callable[[dict], list[str] | None] | None
    needs_filter: bool


def analysis(*, parts: Mapping[str, Part] | None = None, patient_level: bool = False,
             cli: Callable[[dict], list[str] | None] | None = None, **table: Any):
    """Declare an analysis: `@analysis(counts={...}, n_of={...})` for one table, or
    `@analysis(parts={"curves": Part(...), "test": Part(...)})` for several.

    `cli(kwargs)` returns the `report` arguments giving the same numbers (None when
    the command line has no equivalent).
    """
    if parts is None:
        parts = {TABLE: Part(patient_level=patient_level, **table)}
    elif table:
        raise ValueError("give either parts=... or the fields of a single table, not both")

    def deco(fn):
        params = list(inspect.signature(fn).parameters)
        fn.spec = Spec(
            name=f"{fn.__module__.rsplit('.', 1)[-1]}.{fn.__name__}",
            parts=dict(parts),
            patient_level=patient_level or any(p.patient_level for p in parts.values()),
            cli=cli,
            needs_filter=len(params) > 1 and params[1] == "flt",
        )
        return fn

    return deco


def spec_of(fn) -> Spec:
    """The analysis declaration of `fn` (TypeError if it was not declared)."""
    spec = getattr(fn, "spec", None)
    if not isinstance(spec, Spec):
        raise TypeError(f"{getattr(fn, '__qualname__', fn)!r} is not a declared analysis "
                         "(decorate it with @results.analysis)")
    return spec


@dataclass(frozen=True)
class Call:
    """One analysis with its filter and arguments: what runs, what Reproduce shows."""

    fn: Callable
    flt: Filter | None = None
    kwargs: tuple = ()

    @classmethod
    def of(cls, fn: Callable, flt: Filter | None = None, **kwargs) -> Call:
        """Call.of(remission.rates, flt, preset="standard")."""
        spec = spec_of(fn)
        if spec.needs_filter and flt is None:
            raise ValueError(f"{spec.name} needs a filter")
        return cls(fn, flt, tuple(sorted((k, tuple(v) if isinstance(v, list) else v)
                                        for k, v in kwargs.items())))

    @property
    def spec(self) -> Spec:
        return spec_of(self.fn)

    @property
    def arguments(self) -> dict:
        return dict(self.kwargs)

    def key(self) -> str:
        """A stable text key (function, filter JSON, arguments) for caches and logs."""
        return json.dumps([self.fn.__module__, self.fn.__name__,
                           None if self.flt is None else self.flt.to_json(),
                           [[k, v] for k, v in self.kwargs]], default=list, sort_keys=True)

    def invoke(self, db):
        args = (db,) if self.flt is None else (db, self.flt)
        return self.fn(*args, **self.arguments)

    def module_alias(self) -> tuple[str, str]:
        """('lupus_dash.analyses.remission', 'remission') for the import line."""
        mod = self.fn.__module__
        return mod, mod.rsplit(".", 1)[-1]

    def cli_args(self) -> list[str] | None:
        spec = self.spec
        return None if spec.cli is None or self.flt is None else spec.cli(self.arguments)

    def cli(self, db_path: str) -> str | None:
        """The `python -m lupus_dash report ...` command printing the same numbers."""
        extra = self.cli_args()
        if extra is None:
            return None
        return report_command(self.flt, db_path, extra)


def report_command(flt: Filter, db_path: str, extra: Iterable[str] = ()) -> str:
    """`python -m lupus_dash report --db ... --cohort ... --filter ... [extra]`, quoted."""
    parts = ["python", "-m", "lupus_dash", "report", "--db", db_path, "--cohort", flt.cohort]
    for a in flt.cli_args():
        parts += ["--filter", a]
    return " ".join(shlex.quote(p) for p in [*parts, *extra])


def python_snippet(calls: Mapping[str, Call] | Call, db_path: str, then: str | None = None,
                   then_import: str | None = None) -> str:
    """Python that rebuilds the filter and runs these calls through the seam (`then`: a
    final expression using the results by name, e.g. `layouts.table1(t1, tests)`)."""
    if isinstance(calls, Call):
        calls = {"res": calls}
    mods = sorted({c.module_alias() for c in calls.values()})
    lines = [f"from {m.rsplit('.', 1)[0]} import {a}" for m, a in mods]
    lines.append("from lupus_dash import results" + (f", {then_import}" if then_import else ""))
    lines += ["from lupus_dash.db import Database", "from lupus_dash.filters import Filter", "",
              f"db = Database({db_path!r})"]
    flts = {c.flt for c in calls.values() if c.flt is not None}
    if flts:
        flt = next(iter(flts))
        lines.append(f"flt = Filter.from_json({flt.to_json()!r})")
    for name, c in calls.items():
        kw = "".join(f", {k}={v!r}" for k, v in c.kwargs)
        target = f"{c.module_alias()[1]}.{c.fn.__name__}"
        flt_arg = ", flt" if c.flt is not None else ""
        lines.append(f"{name} = results.run(db, {target}{flt_arg}{kw})")
    lines.append(then or f"{next(iter(calls))}.table")
    return "\n".join(lines)


@dataclass
class Result:
    """An analysis's output as it may leave the system: its tables and how to read them."""

    call: Call
    parts: dict[str, Any]
    data_version: str
    notes: list[str] = field(default_factory=list)  # what the output policy changed
    suppressed: bool = False  # the policy replaced some values

    @property
    def spec(self) -> Spec:
        return self.call.spec

    @property
    def table(self) -> pd.DataFrame:
        """The single table (or the first part)."""
        return self.parts[TABLE] if TABLE in self.parts else next(iter(self.parts.values()))

    def __getitem__(self, name: str):
        return self.parts[name]

    def part_spec(self, name: str = TABLE) -> Part:
        return self.spec.parts.get(name, Part())


class NotPermitted(PermissionError):
    """The output policy does not let this analysis run for this user."""


class Policy:
    """The open policy of local single-user use: every analysis, every value."""

    name = "open"

    def permits(self, spec: Spec) -> str | None:
        """None when `spec` may run, else the reason it may not."""
        return None

    def prepare(self, call: Call) -> Call:
        """The call as this policy computes it (a viewer's Table 3 folds rare terms)."""
        return call

    def apply(self, result: Result, db=None) -> Result:
        """The result as it may leave the system (`db`: for the policy's own checks)."""
        return result


OPEN = Policy()


def _as_parts(value, spec: Spec) -> dict[str, Any]:
    """A multi-part analysis returns a dict of its parts; any other value is the table."""
    if set(spec.parts) != {TABLE}:
        missing = set(spec.parts) - set(value)
        if missing:
            raise ValueError(f"{spec.name} returned no part(s) {sorted(missing)}")
        return dict(value)
    return {TABLE: value}


def run(db, fn_or_call: Callable | Call, flt: Filter | None = None, *,
        policy: Policy = OPEN, **kwargs) -> Result:
    """Run one declared analysis through the output policy: the only way numbers leave."""
    call = fn_or_call if isinstance(fn_or_call, Call) else Call.of(fn_or_call, flt, **kwargs)
    why = policy.permits(call.spec)
    if why is not None:
        raise NotPermitted(why)
    call = policy.prepare(call)
    value = call.invoke(db)
    res = Result(call, _as_parts(value, call.spec), data_version(db))
    return policy.apply(res, db)


def data_version(db) -> str:
    """A short text naming the data a result came from (content version of the file)."""
    v = getattr(db, "data_version", None)
    if callable(v):
        return v()
    return str(v) if v is not None else ""
