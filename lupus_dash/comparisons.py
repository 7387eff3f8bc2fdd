"""The comparison log: every test a session displays, and what chance alone would give.

Live subgroup exploration multiplies tests: with m independent comparisons at
α = 0.05, about m × 0.05 come out "significant" when nothing is there. The log
keeps each distinct comparison once (endpoint, visit, method, comparator, grouping,
outcome, filter), with its raw p, whether it belonged to a pre-specified scene,
and adjusts every p across the whole log by Holm (family-wise error) and
Benjamini–Hochberg (false discovery rate), as R `p.adjust` does
(STATISTICS.md, "Multiplicity"). The adjusted p sits next to the raw one, never
instead of it.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace

import pandas as pd

from . import stats
from .filters import Filter
from .scenes import STATUS_EXPLORATORY, STATUS_PRESPECIFIED

ALPHA = 0.05
COLUMNS = ("order", "status", "page", "scene", "endpoint", "visit", "comparator", "group_by",
           "outcome", "method", "n", "filter", "filter_json", "p_value", "p_holm", "p_bh",
           "views", "first_seen")


@dataclass(frozen=True)
class Comparison:
    """One displayed test. `visit` is text ('52', 'last', 'all' for an omnibus test)."""

    endpoint: str
    visit: str
    method: str
    filter_json: str
    filter_sentence: str
    p_value: float | None
    comparator: str = ""
    group_by: str = ""
    outcome: str = ""
    n: int | None = None
    page: str = ""
    scene: str = ""
    prespecified: bool = False

    def __post_init__(self):
        p = self.p_value
        if p is not None:
            p = float(p)
            if math.isnan(p):
                p = None
            elif not 0.0 <= p <= 1.0:
                raise ValueError(f"p = {p!r} is not a probability ({self.endpoint}, "
                                 f"visit {self.visit}, {self.method})")
        object.__setattr__(self, "p_value", p)
        object.__setattr__(self, "visit", str(self.visit))
        if self.n is not None:
            object.__setattr__(self, "n", int(self.n))

    @property
    def key(self) -> tuple:
        """What makes two displays the same comparison (scene and page do not)."""
        return (self.endpoint, self.visit, self.method, self.comparator, self.group_by,
                self.outcome, self.filter_json)


@dataclass
class _Entry:
    comparison: Comparison
    views: int = 1
    first_seen: str = field(default_factory=lambda: dt.datetime.now().isoformat(
        timespec="seconds"))


class ComparisonLog:
    """The distinct comparisons of one session, in the order first displayed."""

    def __init__(self, alpha: float = ALPHA):
        if not 0 < alpha < 1:
            raise ValueError(f"alpha must lie in (0, 1), got {alpha!r}")
        self.alpha = alpha
        self._entries: dict[tuple, _Entry] = {}
        self._changes = 0  # bumped by every add: the panel's table is rebuilt only then
        self._table: tuple[int, pd.DataFrame] | None = None

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, c: Comparison) -> bool:
        """Log a displayed test; True when it is new (a rerun showing it again is not)."""
        self._changes += 1
        e = self._entries.get(c.key)
        if e is None:
            self._entries[c.key] = _Entry(c)
            return True
        e.views += 1
        if c.prespecified and not e.comparison.prespecified:
            # Shown once inside a pre-specified scene: it was specified before the session.
            e.comparison = replace(e.comparison, prespecified=True, scene=c.scene)
        return False

    def add_frame(self, df: pd.DataFrame, flt: Filter, sentence: str, *, page: str = "",
                  scene: str = "", prespecified: bool = False, endpoint: str | None = None,
                  visit: str | None = None, group_by: str | None = None) -> int:
        """Log every row of a test table (`analysis.longitudinal`, `subgroups`, `omnibus`,
        `table1_tests`, ...); returns how many were new.

        Reads the columns those tables share: endpoint (or variable), visit_week,
        method, p_value (the raw p, never `p_adjusted`), comparator, group_by,
        outcome, n. Missing columns take the keyword's value or ''.
        """
        if df is None or df.empty:
            return 0
        new = 0
        fj = flt.to_json()
        for r in df.to_dict(orient="records"):
            ep = r.get("endpoint", r.get("variable", endpoint))
            wk = r.get("visit_week", visit if visit is not None else "all")
            new += self.add(Comparison(
                endpoint=str(ep if ep is not None else endpoint or ""),
                visit=str(wk),
                method=str(r.get("method", "")),
                filter_json=fj,
                filter_sentence=sentence,
                p_value=_num(r.get("p_value")),
                comparator=_text(r.get("comparator")),
                group_by=_text(r.get("group_by", group_by)),
                outcome=_text(r.get("outcome")),
                n=_int(r.get("n")),
                page=page,
                scene=scene,
                prespecified=prespecified,
            ))
        return new

    def comparisons(self) -> list[Comparison]:
        return [e.comparison for e in self._entries.values()]

    # --- what the panel shows ------------------------------------------------------------

    def table(self) -> pd.DataFrame:
        """Every logged comparison with its raw, Holm and BH p across the whole log."""
        # Each rerun shows the panel (sentence, summary, table): built once per change of
        # the log, not four times per rerun (a long session's log has hundreds of rows).
        if self._table is None or self._table[0] != self._changes:
            self._table = (self._changes, self._build_table())
        return self._table[1].copy()

    def _build_table(self) -> pd.DataFrame:
        rows = []
        for i, e in enumerate(self._entries.values(), start=1):
            c = e.comparison
            rows.append({
                "order": i,
                "status": STATUS_PRESPECIFIED if c.prespecified else STATUS_EXPLORATORY,
                "page": c.page, "scene": c.scene, "endpoint": c.endpoint, "visit": c.visit,
                "comparator": c.comparator, "group_by": c.group_by, "outcome": c.outcome,
                "method": c.method, "n": c.n, "filter": c.filter_sentence,
                "filter_json": c.filter_json, "p_value": c.p_value,
                "views": e.views, "first_seen": e.first_seen,
            })
        df = pd.DataFrame(rows, columns=[c for c in COLUMNS if c not in ("p_holm", "p_bh")])
        p = [c.p_value for c in self.comparisons()]
        # stats.adjust_p leaves not-computable tests (None) in place and out of the count.
        df.insert(df.columns.get_loc("p_value") + 1, "p_holm", stats.adjust_p(p, "holm"))
        df.insert(df.columns.get_loc("p_holm") + 1, "p_bh", stats.adjust_p(p, "bh"))
        for c in ("p_value", "p_holm", "p_bh"):
            df[c] = pd.to_numeric(df[c], errors="coerce").astype(float)
        df["n"] = df["n"].astype("Int64")
        return df

    def tested(self) -> int:
        """How many logged comparisons have a p (summary()'s m, without building the table)."""
        return sum(e.comparison.p_value is not None for e in self._entries.values())

    def summary(self) -> dict:
        """m tested comparisons, the number expected 'significant' by chance, and the counts."""
        t = self.table()
        tested = t[t["p_value"].notna()]
        m = len(tested)
        a = self.alpha
        return {
            "alpha": a,
            "logged": len(t),
            "m": m,
            "not_computable": int(t["p_value"].isna().sum()),
            "expected_by_chance": m * a,
            "p_below_alpha": int((tested["p_value"] < a).sum()),
            "holm_below_alpha": int((tested["p_holm"] < a).sum()),
            "bh_below_alpha": int((tested["p_bh"] < a).sum()),
            "prespecified": int((tested["status"] == STATUS_PRESPECIFIED).sum()),
            "exploratory": int((tested["status"] == STATUS_EXPLORATORY).sum()),
            "subgroup_comparisons": int((tested["group_by"] != "").sum()),
            "filters": int(tested["filter_json"].nunique()),
        }

    def sentence(self) -> str:
        """The panel's headline, e.g. '24 comparisons looked at: about 1.2 "significant"…'."""
        s = self.summary()
        if not s["m"]:
            return "No test has been looked at yet in this session."
        return (f"{s['m']} comparison{'s' if s['m'] != 1 else ''} looked at "
                f"({s['prespecified']} pre-specified, {s['exploratory']} exploratory): "
                f"about {_fmt(s['expected_by_chance'])} would be \"significant\" at "
                f"α = {_fmt(s['alpha'])} by chance alone; {s['p_below_alpha']} had p < "
                f"{_fmt(s['alpha'])}, {s['holm_below_alpha']} after Holm, "
                f"{s['bh_below_alpha']} after Benjamini–Hochberg.")

    # --- export / restore ----------------------------------------------------------------

    def to_csv(self) -> str:
        return self.table().to_csv(index=False)

    def to_json(self) -> str:
        t = self.table()
        records = [{k: _clean(v) for k, v in r.items()} for r in t.to_dict(orient="records")]
        return json.dumps({"alpha": self.alpha, "summary": self.summary(),
                           "comparisons": records}, indent=2, ensure_ascii=False,
                          allow_nan=False) + "\n"

    @classmethod
    def from_json(cls, text: str) -> ComparisonLog:
        """Restore a log written by `to_json` (adjusted p are recomputed, not read)."""
        d = json.loads(text)
        log = cls(alpha=float(d.get("alpha", ALPHA)))
        for r in d.get("comparisons", []):
            c = Comparison(
                endpoint=r["endpoint"], visit=r["visit"], method=r["method"],
                filter_json=r["filter_json"], filter_sentence=r.get("filter", ""),
                p_value=r.get("p_value"), comparator=r.get("comparator") or "",
                group_by=r.get("group_by") or "", outcome=r.get("outcome") or "",
                n=r.get("n"), page=r.get("page") or "", scene=r.get("scene") or "",
                prespecified=r.get("status") == STATUS_PRESPECIFIED,
            )
            log._entries[c.key] = _Entry(c, views=int(r.get("views") or 1),
                                         first_seen=r.get("first_seen") or "")
            log._changes += 1
        return log

    def merge(self, comparisons: Iterable[Comparison]) -> int:
        return sum(self.add(c) for c in comparisons)

    def as_records(self) -> list[dict]:
        return [asdict(c) for c in self.comparisons()]


def _num(v) -> float | None:
    if v is None or v is pd.NA:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


def _int(v) -> int | None:
    f = _num(v)
    return None if f is None else int(f)


def _text(v) -> str:
    if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)):
        return ""
    return str(v)


def _clean(v):
    if v is None or v is pd.NA:
        return None
    if isinstance(v, float):
        return None if math.isnan(v) else v
    if hasattr(v, "item"):
        return v.item()
    return v


def _fmt(x: float) -> str:
    return f"{x:.2f}".rstrip("0").rstrip(".") if x != int(x) else str(int(x))
