"""Scenes and decks: saved views a presenter steps through, in a plain TOML or JSON file.

A scene is one view of the dashboard: its page, the filter, every widget's state
(the URL query parameters the page writes, see `ui.url_widget`), the data version
it was saved on, whether it was pre-specified before the session, and notes. A
deck is an ordered list of scenes. Decks round-trip through TOML and JSON; a bad
file fails with the file, line, scene and field named.

The data version is the content version `store` writes into the file at import
(not its path or mtime), so a scene pinned to a version can tell whether the numbers it showed can still be
reproduced: `check_pin` says "same data", or "the data changed since" and, when
an older versioned file is still on disk, where its numbers are.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

import duckdb

from .filters import FILTER_COLUMNS, Filter, FilterError

FORMAT_VERSION = 1

# Every widget key a page writes into the URL (ui.url_widget / ui.url_tabs), per page.
# A deck naming another key is refused (a typo would otherwise be ignored silently);
# keep in step with pages/*.py.
PAGE_WIDGETS: dict[str, tuple[str, ...]] = {
    "overview": ("ov_group",),
    "biomarkers": ("bio_tab", "bio_endpoint", "bio_cmp", "bio_method", "bio_adjust",
                   "bio_fixed", "bio_ind"),
    "remission": ("rem_preset", "rem_missing", "rem_noteval", "rem_defs", "rem_who_def",
                  "rem_week", "rem_who_outcome"),
    "targets": ("t2t_preset", "t2t_strategy", "t2t_from", "t2t_def", "t2t_group", "t2t_sort",
                "t2t_mmrm_ep", "t2t_mmrm_group", "t2t_mmrm"),
    "subgroups": ("sub_group", "sub_endpoint", "sub_outcome", "sub_adjust", "sub_fixed",
                  "sub_week"),
    "patient": ("patient", "pt_preset"),
    "safety": (),
    "data": ("data_tab", "dd_table"),
    "methods": (),
}
PAGES = tuple(PAGE_WIDGETS)

# The picture a scene puts on a slide, per page (the first is the default). Pages
# without an entry (patient, data, methods) can be presented live but not exported.
VIEWS: dict[str, tuple[str, ...]] = {
    "overview": ("patient_flow", "table1"),
    "biomarkers": ("trajectory", "figure1", "table2"),
    "remission": ("remission_rates", "disease_states"),
    "targets": ("time_to_target",),
    "subgroups": ("subgroup_trajectory", "forest"),
    "safety": ("table3", "ae_incidence"),
}

# URL keys that are not widget state: the filter, presenter mode, deck navigation.
FILTER_KEYS = frozenset({"cohort", "age", *FILTER_COLUMNS})
CONTROL_KEYS = frozenset({"present", "deck", "scene"})

SCENE_KEYS = ("name", "page", "view", "prespecified", "data_version", "notes", "filter",
              "widgets")
DECK_KEYS = ("format", "title", "description", "scenes")

STATUS_PRESPECIFIED = "pre-specified"
STATUS_EXPLORATORY = "exploratory"


class DeckError(ValueError):
    """A deck file that cannot be used; the message names file, line, scene and field."""

    def __init__(self, message: str, file: str | None = None, line: int | None = None,
                 scene: int | None = None, name: str | None = None, field: str | None = None):
        self.file, self.line, self.scene, self.name, self.field = file, line, scene, name, field
        self.reason = message
        where = []
        if file:
            where.append(str(file) + (f", line {line}" if line else ""))
        if scene is not None:
            where.append(f"scene {scene}" + (f" ({name!r})" if name else ""))
        if field:
            where.append(field)
        super().__init__(": ".join([*where, message]))


# --- scene and deck values ---------------------------------------------------------------


@dataclass
class Scene:
    """One saved view: page, filter, widget state, data version, pre-specified flag, notes."""

    name: str
    page: str
    filter: Filter
    widgets: dict[str, list[str]] = field(default_factory=dict)
    data_version: str | None = None
    prespecified: bool = False
    notes: str = ""
    view: str | None = None

    def __post_init__(self):
        self.widgets = {str(k): _widget_values(k, v) for k, v in self.widgets.items()}

    @property
    def status(self) -> str:
        """'pre-specified' or 'exploratory', the label shown on screen and in exports."""
        return STATUS_PRESPECIFIED if self.prespecified else STATUS_EXPLORATORY

    @property
    def slide_view(self) -> str | None:
        """The view a slide shows: the scene's own, else the page's first (None: no slide)."""
        return self.view or (VIEWS.get(self.page) or (None,))[0]

    def widget(self, key: str, default: str | None = None) -> str | None:
        """One widget's value (the first, for a multiselect), or `default`."""
        v = self.widgets.get(key)
        return v[0] if v else default

    def to_dict(self) -> dict:
        d: dict = {"name": self.name, "page": self.page}
        if self.view:
            d["view"] = self.view
        d["prespecified"] = self.prespecified
        if self.data_version:
            d["data_version"] = self.data_version
        if self.notes:
            d["notes"] = self.notes
        d["filter"] = self.filter.to_dict()
        # One value as a plain string, several as a list: what a person would write.
        d["widgets"] = {k: (v[0] if len(v) == 1 else list(v)) for k, v in self.widgets.items()}
        return d

    def query_params(self, presenter: bool = True, deck: str | None = None,
                     index: int | None = None) -> dict[str, list[str]]:
        """The URL query params that open this view (filter + widgets [+ deck position])."""
        q = self.filter.to_query_params()
        for k, v in self.widgets.items():
            q[k] = list(v)
        if presenter:
            q["present"] = ["1"]
        if deck is not None:
            q["deck"] = [deck]
        if index is not None:
            q["scene"] = [str(index + 1)]
        return q

    def url(self, presenter: bool = True, deck: str | None = None,
            index: int | None = None) -> str:
        """Relative link to the view, e.g. '/remission?cohort=…&rem_preset=standard&present=1'."""
        q = self.query_params(presenter, deck, index)
        return f"/{self.page}?" + urlencode([(k, v) for k, vs in q.items() for v in vs])

    def matches(self, page: str, flt: Filter, params: Mapping) -> bool:
        """True when the screen shows this scene unaltered: same page, filter and widgets."""
        if page != self.page or not same_filter(flt, self.filter):
            return False
        current = widget_state(page, params)
        return all(current.get(k) == v for k, v in self.widgets.items())


@dataclass
class Deck:
    """An ordered list of scenes with a title; `source` is the file it came from."""

    title: str
    scenes: list[Scene]
    description: str = ""
    source: str | None = field(default=None, compare=False)

    def to_dict(self) -> dict:
        d: dict = {"format": FORMAT_VERSION, "title": self.title}
        if self.description:
            d["description"] = self.description
        d["scenes"] = [s.to_dict() for s in self.scenes]
        return d

    def index_of(self, ref: str | int | None) -> int:
        """A scene's 0-based index from a URL `scene=` value: 1-based number or name."""
        if ref is None or ref == "":
            return 0
        text = str(ref).strip()
        if text.isdigit():
            i = int(text) - 1
            if 0 <= i < len(self.scenes):
                return i
            raise DeckError(f"scene {text} does not exist; the deck has {len(self.scenes)}")
        for i, s in enumerate(self.scenes):
            if s.name == text:
                return i
        raise DeckError(f"no scene named {text!r}; the deck has "
                        + ", ".join(repr(s.name) for s in self.scenes))

    def prespecified_match(self, page: str, flt: Filter, params: Mapping) -> Scene | None:
        """The pre-specified scene the screen shows unaltered, if any."""
        for s in self.scenes:
            if s.prespecified and s.matches(page, flt, params):
                return s
        return None


def same_filter(a: Filter, b: Filter) -> bool:
    """Equal restrictions, whatever the order the values were picked in."""

    def canon(f: Filter) -> dict:
        return {k: sorted(map(str, v)) if isinstance(v, list) else v
                for k, v in f.to_dict().items()}

    return canon(a) == canon(b)


def capture(name: str, page: str, params: Mapping, default_cohort: str,
            data_version: str | None = None, prespecified: bool = False, notes: str = "",
            view: str | None = None) -> Scene:
    """'Save this view': a scene from the page and its URL query params (st.query_params)."""
    if page not in PAGE_WIDGETS:
        raise DeckError(f"unknown page {page!r}; pages: {', '.join(PAGES)}", field="page")
    if not str(name).strip():
        raise DeckError("a scene needs a name", field="name")
    flt = Filter.from_query_params(_as_lists(params), default_cohort)
    return Scene(name=str(name).strip(), page=page, filter=flt,
                 widgets=widget_state(page, params), data_version=data_version,
                 prespecified=prespecified, notes=notes, view=view)


def widget_state(page: str, params: Mapping) -> dict[str, list[str]]:
    """The page's widget values among URL params (filter and control keys left out)."""
    allowed = PAGE_WIDGETS.get(page, ())
    lists = _as_lists(params)
    return {k: lists[k] for k in allowed if k in lists}


def _as_lists(params: Mapping) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for k in params:
        if hasattr(params, "get_all"):
            v = list(params.get_all(k))
        else:
            v = params[k]
            v = list(v) if isinstance(v, (list, tuple)) else [v]
        out[str(k)] = [str(x) for x in v]
    return out


def _widget_values(key, v) -> list[str]:
    if isinstance(v, (list, tuple)):
        return [_scalar_text(key, x) for x in v]
    return [_scalar_text(key, v)]


def _scalar_text(key, v) -> str:
    if isinstance(v, bool):
        return "1" if v else "0"  # what ui.url_widget writes for toggles and checkboxes
    if isinstance(v, (int, float, str)):
        return str(v)
    raise DeckError(f"expected text, a number, true/false or a list of them, got {v!r}",
                    field=f"widgets.{key}")


# --- navigation -------------------------------------------------------------------------


@dataclass(frozen=True)
class Position:
    """Where a presenter is in a deck (0-based index) and what the buttons may do."""

    index: int
    total: int

    @property
    def has_previous(self) -> bool:
        return self.index > 0

    @property
    def has_next(self) -> bool:
        return self.index < self.total - 1

    @property
    def label(self) -> str:
        return f"{self.index + 1} / {self.total}"


def step(deck: Deck, index: int, delta: int) -> Position:
    """Move `delta` scenes (±1 for next / previous), staying inside the deck."""
    if not deck.scenes:
        raise DeckError("the deck has no scene")
    i = min(max(index + delta, 0), len(deck.scenes) - 1)
    return Position(i, len(deck.scenes))


# --- files ------------------------------------------------------------------------------


def dumps(deck: Deck, fmt: str = "toml") -> str:
    """The deck as TOML (default; easiest to edit by hand) or JSON text."""
    if fmt == "json":
        return json.dumps(deck.to_dict(), indent=2, ensure_ascii=False) + "\n"
    if fmt != "toml":
        raise ValueError(f"format must be toml or json, not {fmt!r}")
    return _to_toml(deck.to_dict())


def save(deck: Deck, path: str | Path) -> Path:
    """Write the deck; the format follows the extension (.toml or .json)."""
    p = Path(path)
    p.write_text(dumps(deck, _format_of(p)), encoding="utf-8")
    return p


def load(path: str | Path) -> Deck:
    """Read and check a deck file; DeckError names file, line, scene and field."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DeckError("no such deck file", file=str(p)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DeckError(f"cannot read the deck ({exc})", file=str(p)) from None
    deck = loads(text, _format_of(p), source=str(p))
    return deck


def loads(text: str, fmt: str, source: str = "<deck>") -> Deck:
    """Parse deck text (toml or json) and check every field."""
    if fmt == "json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DeckError(f"not valid JSON: {exc.msg} (column {exc.colno})", file=source,
                            line=exc.lineno) from None
    elif fmt == "toml":
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            m = re.search(r"\(at line (\d+), column (\d+)\)", str(exc))
            msg = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(exc))
            raise DeckError(f"not valid TOML: {msg}" + (f" (column {m.group(2)})" if m else ""),
                            file=source, line=int(m.group(1)) if m else None) from None
    else:
        raise DeckError(f"unknown deck format {fmt!r}: use .toml or .json", file=source)
    return from_dict(data, _Locator(text, fmt, source))


def from_dict(data, locator: _Locator | None = None) -> Deck:
    """A Deck from parsed TOML/JSON data, every field checked."""
    loc = locator or _Locator("", "json", None)
    if not isinstance(data, dict):
        raise loc.error("a deck is a table with `title` and `scenes`", None, None)
    unknown = [k for k in data if k not in DECK_KEYS]
    if unknown:
        raise loc.error(f"unknown key {unknown[0]!r}; a deck has {', '.join(DECK_KEYS)}",
                        None, unknown[0])
    fmt = data.get("format", FORMAT_VERSION)
    if fmt != FORMAT_VERSION:
        raise loc.error(f"format {fmt!r} is not supported (expected {FORMAT_VERSION})", None,
                        "format")
    title = data.get("title", "")
    if not isinstance(title, str):
        raise loc.error(f"expected text, got {title!r}", None, "title")
    description = data.get("description", "")
    if not isinstance(description, str):
        raise loc.error(f"expected text, got {description!r}", None, "description")
    raw = data.get("scenes")
    if not isinstance(raw, list) or not raw:
        raise loc.error("a deck needs a list of at least one scene ([[scenes]] in TOML)",
                        None, "scenes")
    scenes = [_scene_from(i, s, loc) for i, s in enumerate(raw)]
    seen: dict[str, int] = {}
    for i, s in enumerate(scenes):
        if s.name in seen:
            raise loc.error(f"the name is already used by scene {seen[s.name] + 1}; names "
                            "must be unique (a link may name a scene)", i, "name", s.name)
        seen[s.name] = i
    return Deck(title=title or "Untitled deck", scenes=scenes, description=description,
                source=loc.source)


def _scene_from(i: int, s, loc: _Locator) -> Scene:
    if not isinstance(s, dict):
        raise loc.error(f"a scene is a table of {', '.join(SCENE_KEYS)}", i, None)
    name = s.get("name")
    for k in s:
        if k not in SCENE_KEYS:
            raise loc.error(f"unknown key; a scene has {', '.join(SCENE_KEYS)}", i, k, name)
    if not isinstance(name, str) or not name.strip():
        raise loc.error(f"every scene needs a name (text), got {name!r}", i, "name")
    page = s.get("page")
    if page not in PAGE_WIDGETS:
        raise loc.error(f"unknown page {page!r}; pages: {', '.join(PAGES)}", i, "page", name)
    view = s.get("view")
    if view is not None and view not in VIEWS.get(page, ()):
        allowed = ", ".join(VIEWS.get(page, ())) or "none (this page has no slide)"
        raise loc.error(f"unknown view {view!r} for page {page}; views: {allowed}", i, "view",
                        name)
    pre = s.get("prespecified", False)
    if not isinstance(pre, bool):
        raise loc.error(f"expected true or false, got {pre!r}", i, "prespecified", name)
    version = s.get("data_version")
    if version is not None and (not isinstance(version, str) or not version.strip()):
        raise loc.error(f"expected the version text, got {version!r}", i, "data_version", name)
    notes = s.get("notes", "")
    if not isinstance(notes, str):
        raise loc.error(f"expected text, got {notes!r}", i, "notes", name)
    fd = s.get("filter")
    if not isinstance(fd, dict) or "cohort" not in fd:
        raise loc.error("every scene needs a filter table with at least `cohort`", i, "filter",
                        name)
    try:
        flt = Filter.from_dict(fd)
    except (FilterError, TypeError) as exc:
        bad = _filter_field(fd, exc)
        raise loc.error(str(exc), i, "filter" + (f".{bad}" if bad else ""), name) from None
    widgets = s.get("widgets", {})
    if not isinstance(widgets, dict):
        raise loc.error("expected a table of widget keys and values", i, "widgets", name)
    allowed = PAGE_WIDGETS[page]
    for k in widgets:
        if k not in allowed:
            raise loc.error(f"unknown widget {k!r} for page {page}; widgets: "
                            + (", ".join(allowed) or "none"), i, f"widgets.{k}", name)
    try:
        scene = Scene(name=name.strip(), page=page, filter=flt, widgets=widgets,
                      data_version=version.strip() if version else None, prespecified=pre,
                      notes=notes, view=view)
    except DeckError as exc:
        raise loc.error(exc.reason, i, exc.field, name) from None
    return scene


def _filter_field(fd: dict, exc: Exception) -> str | None:
    text = str(exc)
    keys = [k for k in fd if k != "cohort"] + ["cohort"]
    for k in keys:
        if re.search(rf"(?<![A-Za-z0-9_]){re.escape(str(k))}(?![A-Za-z0-9_])", text):
            return k
    return None


def validate_against(deck: Deck, db) -> list[DeckError]:
    """Problems of a loaded deck with this database: unknown cohorts or filter values."""
    loc = _Locator(_read_or_empty(deck.source), _format_of(Path(deck.source or "x.toml")),
                   deck.source)
    out = []
    for i, s in enumerate(deck.scenes):
        try:
            s.filter.validate(db)
        except FilterError as exc:
            out.append(loc.error(str(exc), i, "filter", s.name))
    return out


def _read_or_empty(source: str | None) -> str:
    if not source:
        return ""
    try:
        return Path(source).read_text(encoding="utf-8")
    except OSError:
        return ""


def _format_of(p: Path) -> str:
    ext = p.suffix.lower()
    if ext == ".json":
        return "json"
    if ext == ".toml":
        return "toml"
    raise DeckError("a deck file ends in .toml or .json", file=str(p))


_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def resolve(ref: str, decks_dir: str | Path, allow_paths: bool = False) -> Path:
    """The file a `?deck=` value names: a name under `decks_dir` (with or without .toml/.json).

    Paths outside `decks_dir` only with `allow_paths` (a local analyst session); a
    link must never make the server read an arbitrary file.
    """
    ref = str(ref).strip()
    base = Path(decks_dir).resolve()
    if not ref:
        raise DeckError("empty deck reference")
    if "/" in ref or "\\" in ref or ref.startswith("."):
        if not allow_paths:
            raise DeckError(f"deck {ref!r}: give the name of a deck in {base.name}/ "
                            "(paths are not allowed in a link)")
        p = Path(ref).expanduser()
        if not p.is_absolute():
            p = base / p
        if not p.exists():
            raise DeckError("no such deck file", file=str(p))
        return p
    if not _NAME_RE.match(ref):
        raise DeckError(f"deck {ref!r}: a deck name holds letters, digits, '-', '_' and '.'")
    names = [ref] if ref.endswith((".toml", ".json")) else [f"{ref}.toml", f"{ref}.json"]
    for n in names:
        p = base / n
        if p.is_file():
            return p
    have = sorted(q.stem for q in base.glob("*.toml")) + sorted(q.stem for q in
                                                              base.glob("*.json"))
    raise DeckError(f"no deck named {ref!r} in {base}; decks: {', '.join(have) or 'none'}")


class _Locator:
    """Finds the line of a scene's field in the deck's text, for located errors."""

    def __init__(self, text: str, fmt: str, source: str | None):
        self.text, self.fmt, self.source = text, fmt, source

    def error(self, msg: str, scene: int | None, fld: str | None,
              name: str | None = None) -> DeckError:
        line = None
        with contextlib.suppress(Exception):  # a line number is a courtesy, never a crash
            line = self.line(scene, fld)
        return DeckError(msg, file=self.source, line=line,
                         scene=None if scene is None else scene + 1, name=name, field=fld)

    def line(self, scene: int | None, fld: str | None) -> int | None:
        if not self.text:
            return None
        if self.fmt == "toml":
            return self._toml_line(scene, fld)
        return self._json_line(scene, fld)

    def _toml_line(self, scene, fld):
        lines = self.text.splitlines()
        heads = [i for i, ln in enumerate(lines) if re.match(r"\s*\[\[\s*scenes\s*\]\]", ln)]
        if scene is None:
            lo, hi = 0, (heads[0] if heads else len(lines))
        elif scene < len(heads):
            lo = heads[scene]
            hi = heads[scene + 1] if scene + 1 < len(heads) else len(lines)
        else:
            return None
        if not fld:
            return lo + 1
        parts = fld.split(".")
        if len(parts) == 2:
            sub = next((i for i in range(lo, hi) if re.match(
                rf"\s*\[\s*scenes\s*\.\s*{re.escape(parts[0])}\s*\]", lines[i])), None)
            if sub is None:  # an inline table: `filter = { ... }`
                return self._key_line(lines, lo, hi, parts[0])
            nxt = next((i for i in range(sub + 1, hi) if lines[i].lstrip().startswith("[")), hi)
            return self._key_line(lines, sub + 1, nxt, parts[1]) or sub + 1
        first_table = next((i for i in range(lo + 1, hi)
                            if lines[i].lstrip().startswith("[")), hi)
        found = (self._key_line(lines, lo, first_table, parts[0])
                 or self._table_line(lines, lo, hi, parts[0]))
        # A key missing from a scene: point at the scene's header; missing from the deck:
        # there is no line to name.
        return found or (lo + 1 if scene is not None else None)

    @staticmethod
    def _key_line(lines, lo, hi, key):
        pat = re.compile(rf'\s*("{re.escape(key)}"|{re.escape(key)})\s*=')
        return next((i + 1 for i in range(lo, hi) if pat.match(lines[i])), None)

    @staticmethod
    def _table_line(lines, lo, hi, key):
        pat = re.compile(rf"\s*\[\s*scenes\s*\.\s*{re.escape(key)}\s*\]")
        return next((i + 1 for i in range(lo, hi) if pat.match(lines[i])), None)

    def _json_line(self, scene, fld):
        spans = _json_scene_spans(self.text)
        if scene is None:
            lo, hi = 0, len(self.text)
        elif scene < len(spans):
            lo, hi = spans[scene]
        else:
            return None
        pos = lo
        for part in (fld.split(".") if fld else []):
            m = re.compile(rf'"{re.escape(part)}"\s*:').search(self.text, pos, hi)
            if not m:
                break
            pos = m.start()
        return self.text.count("\n", 0, pos) + 1


def _json_scene_spans(text: str) -> list[tuple[int, int]]:
    """Start and end offsets of each object in the top-level "scenes" array."""
    m = re.search(r'"scenes"\s*:\s*\[', text)
    if not m:
        return []
    spans, depth, start, i, in_str = [], 0, None, m.end(), False
    while i < len(text):
        c = text[i]
        if in_str:
            if c == "\\":
                i += 1
            elif c == '"':
                in_str = False
        elif c == '"':
            in_str = True
        elif c in "{[":
            if depth == 0 and c == "{":
                start = i
            depth += 1
        elif c in "}]":
            if depth == 0:
                break  # the end of the scenes array
            depth -= 1
            if depth == 0 and c == "}" and start is not None:
                spans.append((start, i + 1))
                start = None
        i += 1
    return spans


# --- TOML writing (tomllib reads; the standard library does not write) ----------------------


def _toml_str(s: str) -> str:
    out = ['"']
    for ch in s:
        o = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif o < 0x20 or o == 0x7F:
            out.append(f"\\u{o:04X}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _toml_key(k: str) -> str:
    return k if re.match(r"^[A-Za-z0-9_-]+$", k) else _toml_str(k)


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v) or math.isinf(v):
            raise ValueError("a deck holds no NaN or infinite number")
        return repr(v)
    if isinstance(v, str):
        return _toml_str(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def _to_toml(d: dict) -> str:
    lines = ["# lupus-dash deck: scenes in order. Edit freely; `python -m lupus_dash slides",
             "# --deck FILE` checks it. prespecified = true marks a scene fixed before the",
             "# session; every other scene is labelled exploratory.", ""]
    for k, v in d.items():
        if k != "scenes":
            lines.append(f"{_toml_key(k)} = {_toml_value(v)}")
    for s in d["scenes"]:
        lines += ["", "[[scenes]]"]
        for k, v in s.items():
            if not isinstance(v, dict):
                lines.append(f"{_toml_key(k)} = {_toml_value(v)}")
        for k, v in s.items():
            if isinstance(v, dict):
                lines.append(f"[scenes.{_toml_key(k)}]")
                for kk, vv in v.items():
                    lines.append(f"{_toml_key(kk)} = {_toml_value(vv)}")
    return "\n".join(lines) + "\n"


# --- data version -----------------------------------------------------------------------

DATA_VERSION_KEY = "data_version"  # written into meta at import (store.write_database)


def stored_data_version(con: duckdb.DuckDBPyConnection) -> str | None:
    """The content version written into `meta` at import, or None (older files)."""
    try:
        row = con.execute("SELECT value FROM meta WHERE key = ?", [DATA_VERSION_KEY]).fetchone()
    except duckdb.Error:
        return None
    return row[0] if row else None


def data_version(db) -> str:
    """The open file's data version (`Database.data_version`: stored at import)."""
    return db.data_version()


def short_version(version: str | None) -> str:
    """The first 8 characters, for captions."""
    return (version or "unknown")[:8]


def version_candidates(db_path: str | Path) -> list[Path]:
    """DuckDB files that may hold earlier versions of `db_path`: its folder and `versions/`."""
    p = Path(db_path).resolve()
    out = []
    for folder in (p.parent, p.parent / "versions", p.parent / f"{p.stem}.versions"):
        if folder.is_dir():
            out += sorted(q for q in folder.glob("*.duckdb") if q.resolve() != p)
    return out


def find_version(version: str, candidates: Iterable[str | Path],
                 compute_missing: bool = False) -> Path | None:
    """The first candidate file whose data version is `version` (None when none is).

    Reads the version stored in each file's meta; computing it for files that lack
    one (`compute_missing`) reads every row, so it is off by default.
    """
    for c in candidates:
        p = Path(c)
        try:
            con = duckdb.connect(str(p), read_only=True)
        except duckdb.Error:
            continue  # locked, not DuckDB, or open in this process with other settings
        try:
            v = stored_data_version(con)
            if v is None and compute_missing:
                from .store import _content_version

                v = _content_version(con)
        except duckdb.Error:
            v = None
        finally:
            con.close()
        if v == version:
            return p
    return None


@dataclass(frozen=True)
class PinCheck:
    """A scene's data version against the open file's."""

    state: str  # "current" | "changed" | "unpinned"
    message: str
    pinned: str | None
    current: str
    old_path: Path | None = None

    @property
    def changed(self) -> bool:
        return self.state == "changed"


def check_pin(scene: Scene, current: str, candidates: Sequence[str | Path] = ()) -> PinCheck:
    """Whether a scene's numbers can be shown as saved; a plain message when they cannot."""
    if not scene.data_version:
        return PinCheck("unpinned", "", None, current)
    if scene.data_version == current:
        return PinCheck("current", "", scene.data_version, current)
    old = find_version(scene.data_version, candidates) if candidates else None
    was, now = short_version(scene.data_version), short_version(current)
    if old is not None:
        msg = (f"The data changed since this scene was saved (version {was}; the open file is "
               f"version {now}). Showing the numbers of version {was}, from {old.name}.")
    else:
        msg = (f"The data changed since this scene was saved (version {was}; the open file is "
               f"version {now}). The numbers shown are from the current data and may differ "
               "from those shown when the scene was saved; that version's file is no longer "
               "available.")
    return PinCheck("changed", msg, scene.data_version, current, old)


# --- the default deck -------------------------------------------------------------------


def default_deck(flt: Filter, preset: str = "standard", prespecified: bool = False,
                 data_version: str | None = None) -> Deck:
    """The key views for one filter: patient flow and Table 1, biomarker trajectories,
    remission rates, disease states and time to first response."""

    def scene(name, page, view, **widgets):
        return Scene(name=name, page=page, filter=flt, widgets=widgets, view=view,
                     prespecified=prespecified, data_version=data_version)

    return Deck(
        title=f"{flt.cohort}: key views",
        description=f"Default deck for {flt.sentence()}; definitions {preset}.",
        scenes=[
            scene("Patient flow", "overview", "patient_flow"),
            scene("Table 1: baseline characteristics", "overview", "table1", ov_group="none"),
            scene("Biomarker trajectories (Figure 1)", "biomarkers", "figure1",
                  bio_tab="All endpoints (Figure 1)"),
            scene("Remission and LLDAS rates", "remission", "remission_rates",
                  rem_preset=preset, rem_missing="non-responder"),
            scene("Disease states per visit", "remission", "disease_states",
                  rem_preset=preset),
            scene("Time to first LLDAS", "targets", "time_to_target", t2t_preset=preset,
                  t2t_def="lldas", t2t_group="none"),
        ],
    )
