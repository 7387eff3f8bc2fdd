"""Read cohort files per DATA_CONTRACT.md, locate every problem, normalise units and weeks.

Sources
    A folder holding ``patients``, ``visits`` and optionally ``adverse_events``
    as ``.csv`` or ``.parquet`` (names matched case-insensitively), or one
    ``.xlsx`` workbook with one sheet per table (a folder holding only one
    ``.xlsx`` works too). Column and sheet names are normalised: surrounding
    spaces stripped, lower case, runs of spaces/hyphens become ``_``.

Row numbers
    Every problem names file, row, column and value. Rows are numbered as a
    spreadsheet shows them: the header is row 1, the first data row is row 2
    (Parquet files use the same numbering, as if they had a header row).

CSV variants
    Encoding: UTF-8 (with or without BOM); otherwise Windows-1252/Latin-1 when
    the bytes decode to plausible text (a warning says so). NUL bytes (UTF-16,
    binary) or text that is mostly non-ASCII after decoding is an error.
    Separator: ``,``, ``;`` or tab, whichever the header line uses most. With
    ``;`` or tab a decimal comma is accepted (``1,5`` = 1.5); with ``,`` a
    value like ``1,5`` is ambiguous and an error with a hint.

Values
    Empty cell = missing; so are ``NA``, ``N/A``, ``NaN`` and ``NULL`` (any case)
    in number, yes/no and date columns (a warning counts them). Booleans:
    true/false, 1/0, yes/no, y/n in any case (anything else is an error).
    Dates: ISO ``YYYY-MM-DD`` (a time of day after it is ignored) always;
    day/month dates (``/``, ``.`` or ``-``) by ``date_format``: ``DD/MM/YYYY``
    or ``MM/DD/YYYY``; the default ``auto`` reads a file whose dates prove the
    order (``15/03/2024``: 15 cannot be a month; a warning names the file,
    column and that example) and refuses one where nothing decides it
    (``05/03/2024`` only), or that proves both orders; ``YYYY-MM-DD`` accepts ISO
    only. Two-digit years and ``2024-02-30`` (impossible) are refused.
    Integers (``sledai2k``, ``visit_week``, ``onset_week``,
    ``discontinued_week``) must be whole numbers (``12.0`` is accepted).
    ``sex``, ``biopsy_class``, ``category`` and ``severity`` match their
    choices case-insensitively and are stored in the contract's spelling.
    Unknown columns are a warning and are dropped, except a column that looks
    like a contract column under another name (``C3 (g/L)``, ``c3_gl``;
    mapping.looks_like): that is an error naming the contract column, so no
    measurement vanishes silently.

Mappings (``mapping=MAP.toml``; mapping.py)
    Rename a file's columns to the contract's, apply value maps, and convert
    units per column (mapping.UNITS) before the checks; problems in a mapped
    column name the header as written and its contract column
    (``Geschlecht → sex``). A mapping may name the files (``[files]``), a REDCap
    export (``[redcap]``; redcap.py) or a long-format labs file (labs.py). Fully empty rows are
    skipped. A 0-byte file is an error; a header-only ``adverse_events``
    file means "no events" (header-only ``patients`` / ``visits`` are errors).

Units (converted before the range checks; messages say which unit was assumed)
    C3/C4 are g/L unless ``complement_unit="mg/dL"`` (÷ 100) or a per-row
    ``c3_unit`` / ``c4_unit`` column says ``g/L`` or ``mg/dL``. Creatinine is
    µmol/L unless ``creatinine_unit="mg/dL"`` (× 88.4, CLINICAL_DEFINITIONS.md
    §8) or a per-row ``creatinine_unit`` column says so. A unit column's value
    wins over the option; an empty unit cell falls back to the option.

Dated visits
    A visit row needs ``visit_week`` or ``visit_date``. A ``visit_date`` is
    turned into days since the patient's ``treatment_start_date`` (day 0) and
    mapped to the nominal week whose window holds that day. Default windows
    are built from the cohort's schedule: ``schedule=`` / ``--schedule`` if
    given (week 0 always added), else ``DEFAULT_SCHEDULE`` (0, 4, 12, 24, 52,
    then every 26 weeks to 520) together with the ``visit_week`` values the
    cohort's undated rows use:

    * week 0 (baseline): day −30 to +7 — baseline work-up is often done at
      screening up to four weeks before the first infusion;
    * week w > 0: day 7w ± max(7, 25 % of 7w), i.e. ±1 week early on and a
      quarter of the elapsed time later (week 12: day 63–105; week 52:
      day 273–455);
    * neighbouring windows never overlap: each is cut at the midpoint between
      the two target days.

    ``week_windows="0:-14:7,4:15:42"`` (week:first_day:last_day, inclusive)
    replaces the defaults for every cohort. A visit that fits no window is an
    error, as is a visit more than the baseline window before treatment start.
    When both ``visit_week`` and ``visit_date`` are given, ``visit_week`` wins;
    a date outside that week's window is a warning (the row is kept).

Schedule
    The cohort's scheduled weeks are ``--schedule`` if given, else inferred
    (``derive.infer_schedule``: a sparsely attended final week that the patients
    still followed attended is kept). A warning names every week with data that
    the schedule leaves out, and every kept week fewer than half attended, with
    its attendance ("week 52: 13 of 30 patients attended ...").

SLEDAI-2K descriptors
    When ``sledai_*`` columns are present, a row with all 24 filled gets
    ``sledai2k`` = weighted sum (Gladman 2002; weights in
    ``schema.SLEDAI_DESCRIPTORS``); a given ``sledai2k`` that differs is an
    error. With descriptors missing, a given ``sledai2k`` below the sum of the
    descriptors that are present is an error.

Glucocorticoids
    Optional ``glucocorticoid_drug`` + ``glucocorticoid_mg_day`` fill an empty
    ``prednisone_mg_day`` with the prednisone equivalent (CLINICAL_DEFINITIONS.md
    §7, Meikle & Tyler 1977): prednisone/prednisolone × 1, methylprednisolone
    × 1.25, dexamethasone × 6.67, hydrocortisone × 0.25; drug ``none`` = 0 mg.
    A given ``prednisone_mg_day`` is kept as is.
"""

from __future__ import annotations

import csv
import dataclasses
import difflib
import io
import itertools
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from . import derive, endpoints, mapping, schema
from . import mapping as mapping_mod

# Weeks used to build default windows when nothing else says what the schedule is:
# the seed paper's visits (weeks 0, 4, 12, 24, 52), then every 26 weeks to 10 years.
DEFAULT_SCHEDULE: tuple[int, ...] = (0, 4, 12, 24, 52, *range(78, 521, 26))
BASELINE_WINDOW = (-30, 7)  # days around treatment start counted as week 0

# Prednisone-equivalent factors (CLINICAL_DEFINITIONS.md §7; Meikle & Tyler 1977), from
# endpoints.py so there is one table; "none" means no glucocorticoid (0 mg).
PREDNISONE_FACTORS: dict[str, float] = {**endpoints.PREDNISONE_FACTORS, "none": 0.0}

# Unit conversions to the stored unit (CLINICAL_DEFINITIONS.md §8):
# complement 1 g/L = 100 mg/dL; creatinine mg/dL × 88.4 = µmol/L.
UNIT_COLUMNS: dict[str, tuple[str, ...]] = {
    "c3_unit": ("c3_g_l",),
    "c4_unit": ("c4_g_l",),
    "creatinine_unit": ("creatinine_umol_l",),
}
_UNIT_FACTORS: dict[str, dict[str, float]] = {
    "c3_g_l": {"g/L": 1.0, "mg/dL": 0.01},
    "c4_g_l": {"g/L": 1.0, "mg/dL": 0.01},
    "creatinine_umol_l": {"µmol/L": 1.0, "mg/dL": 88.4},
}
_UNIT_SPELLINGS = {
    "g/l": "g/L",
    "mg/dl": "mg/dL",
    "umol/l": "µmol/L",
    "µmol/l": "µmol/L",
    "μmol/l": "µmol/L",
    "micromol/l": "µmol/L",
}
# Extra input columns the importer understands besides the contract's (the unit columns first).
EXTRA_VISIT_COLUMNS = schema.EXTRA_VISIT_COLUMNS

_TRUE = {"true", "1", "yes", "y", "1.0"}
_FALSE = {"false", "0", "no", "n", "0.0"}
_ISO_DATE = re.compile(r"^(\d{4}-\d{2}-\d{2})(?:[ T]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?$")
# Missing-value markers (schema.NA_MARKERS) are accepted as empty in number, integer, yes/no
# and date columns only, where they cannot be a real value.
# Day/month dates (either order), optionally with a time of day after them.
_DM_DATE = re.compile(
    r"^(\d{1,2})([./-])(\d{1,2})\2(\d{2}|\d{4})(?:[ T]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?$"
)
DATE_FORMATS = ("auto", "YYYY-MM-DD", "DD/MM/YYYY", "MM/DD/YYYY")
_DECIMAL_COMMA = re.compile(r"^[+-]?\d*,\d+$")
_CENSORED = re.compile(r"^\s*[<>≤≥]=?\s*[\d.,]+\s*$")
ROWS_NOTE = "rows numbered as in a spreadsheet: header = row 1, first data row = row 2"


@dataclass(frozen=True)
class Problem:
    """One located problem (or warning) in the input."""

    file: str
    row: int | None
    column: str | None
    value: str | None
    reason: str

    def __str__(self) -> str:
        place = self.file + ("" if self.row is None else f" row {self.row}")
        if self.column:
            place += f", column {self.column}"
        if self.value is not None:
            place += f", value {self.value!r}"
        return f"{place}: {self.reason}"


@dataclass
class ReadResult:
    """Validated, normalised tables plus every problem and warning found."""

    tables: dict[str, pd.DataFrame]
    problems: list[Problem]
    warnings: list[Problem]
    schedules: dict[str, list[int]] | None = None  # only when the caller gave a schedule
    source: str = ""

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class _Raw:
    """One table as read: normalised header, string cells, spreadsheet row numbers."""

    label: str
    frame: pd.DataFrame  # all cells str, '' = empty
    rows: np.ndarray  # spreadsheet row number of each frame row
    decimal_comma: bool = False
    header_cols: dict[str, str] = field(default_factory=dict)  # normalised -> as written
    shown: dict[str, str] = field(default_factory=dict)  # contract column -> 'header → col'


class _Sink:
    """Collects problems and warnings."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []
        self.warnings: list[Problem] = []

    def error(self, file, row, column, value, reason) -> None:
        self.problems.append(Problem(file, _int_or_none(row), column, value, reason))

    def warn(self, file, row, column, value, reason) -> None:
        self.warnings.append(Problem(file, _int_or_none(row), column, value, reason))


def _int_or_none(x) -> int | None:
    return None if x is None else int(x)


def normalise_name(name: object) -> str:
    """Column or sheet name as the contract spells it: stripped, lower, `_` for spaces."""
    s = str(name if name is not None else "").replace("\ufeff", "").strip().lower()
    return re.sub(r"[\s\-]+", "_", s)


# --- reading sources -----------------------------------------------------------------------


def _decode(data: bytes, label: str, sink: _Sink) -> str | None:
    """Bytes to text: UTF-8 (BOM ok), else Windows-1252/Latin-1 if it looks like text."""
    if b"\x00" in data:
        pos = data.index(b"\x00")
        sink.error(
            label,
            data[:pos].count(b"\n") + 1,
            None,
            repr(data[max(0, pos - 4) : pos + 4]),
            "contains NUL bytes: this looks like UTF-16 text or a binary file, not CSV; "
            "save it as 'CSV UTF-8' (line number counted from the top of the file)",
        )
        return None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        bad_at = exc.start
    try:
        text = data.decode("cp1252")
        encoding = "Windows-1252"
    except UnicodeDecodeError:
        text = data.decode("latin-1")
        encoding = "Latin-1"
    controls = sum(1 for ch in text if (ord(ch) < 32 and ch not in "\t\r\n") or 127 <= ord(ch) < 160)
    non_ascii = sum(1 for ch in text if ord(ch) > 127)
    if controls or non_ascii > 0.3 * max(1, len(text)):
        sink.error(
            label,
            data[:bad_at].count(b"\n") + 1,
            None,
            repr(data[bad_at : bad_at + 8]),
            "cannot decode this file: it is not UTF-8 and does not read as Latin-1/Windows-1252 "
            "text either; save it as 'CSV UTF-8' (line number counted from the top of the file)",
        )
        return None
    line = data[:bad_at].count(b"\n") + 1
    sink.warn(label, None, None, None,
              f"not UTF-8 (first non-UTF-8 byte on line {line}); read as {encoding}")
    return text


def _sniff_separator(text: str) -> str:
    """The separator the header line uses most: comma, semicolon or tab."""
    first = next((ln for ln in text.splitlines() if ln.strip()), "")
    unquoted = re.sub(r'"[^"]*"', "", first)
    counts = {sep: unquoted.count(sep) for sep in (",", ";", "\t")}
    best = max(counts, key=lambda s: counts[s])
    return best if counts[best] > 0 else ","


def _frame_from_rows(
    label: str,
    records: Iterable[tuple[int, list]],
    sink: _Sink,
    decimal_comma: bool,
    plain: bool = False,
) -> _Raw | None:
    """Build a string frame from (row number, cells) records; first non-empty row is the header."""
    header: list[str] | None = None
    header_row = 1
    data: list[list[str]] = []
    numbers: list[int] = []
    for rownum, cells in records:
        if plain:
            if not any(c.strip() for c in cells):
                continue
        else:
            cells = ["" if c is None else c for c in cells]
            if not any(str(c).strip() for c in cells):
                continue
        if header is None:
            header = [str(c) for c in cells]
            header_row = rownum
            continue
        n = len(header)
        if len(cells) > n:
            extra = [c for c in cells[n:] if str(c).strip()]
            if extra:
                sink.error(
                    label, rownum, None, str(extra[0]),
                    f"row has {len(cells)} fields but the header has {n} "
                    "(a stray separator, or a decimal comma in a comma-separated file?)",
                )
                continue
            cells = cells[:n]
        elif len(cells) < n:
            cells = list(cells) + [""] * (n - len(cells))
        data.append(cells)
        numbers.append(rownum)
    if header is None:
        sink.error(label, None, None, None, "the file is empty (no header row, no data)")
        return None
    names = [normalise_name(h) for h in header]
    raw_names: dict[str, str] = {}
    keep: list[int] = []
    for i, (nm, orig) in enumerate(zip(names, header, strict=True)):
        if not nm:
            if any(str(r[i]).strip() for r in data):
                sink.warn(label, header_row, f"#{i + 1}", None,
                          "column without a name holds values; ignored")
            continue
        if nm in raw_names:
            sink.error(label, header_row, nm, orig,
                       f"column name appears twice (also as {raw_names[nm]!r})")
            continue
        raw_names[nm] = orig
        keep.append(i)
    cols = [names[i] for i in keep]
    if not data:
        frame = pd.DataFrame({c: pd.Series([], dtype=object) for c in cols})
    elif plain:  # CSV cells are already text: build the frame in one go
        frame = pd.DataFrame(data, dtype=object).iloc[:, keep]
        frame.columns = cols
    else:
        frame = pd.DataFrame([[_cell_text(r[i]) for i in keep] for r in data],
                             columns=cols, dtype=object)
    return _Raw(label, frame, np.asarray(numbers, dtype=np.int64), decimal_comma, raw_names)


def _cell_text(v) -> str:
    """A cell from csv/openpyxl/pyarrow as text the validators parse."""
    if v is None:
        return ""
    if isinstance(v, str):
        return v.strip()
    if isinstance(v, bool | np.bool_):
        return "true" if v else "false"
    if isinstance(v, pd.Timestamp) or hasattr(v, "isoformat"):
        if pd.isna(v):
            return ""
        ts = pd.Timestamp(v)
        if ts.hour == ts.minute == ts.second == ts.microsecond == 0:
            return ts.strftime("%Y-%m-%d")
        return ts.isoformat()
    if isinstance(v, float | np.floating):
        if np.isnan(v):
            return ""
        return repr(float(v))
    if v is pd.NA:
        return ""
    return str(v)


def _read_csv(path: Path, label: str, sink: _Sink) -> _Raw | None:
    data = path.read_bytes()
    if not data.strip():
        sink.error(label, None, None, None, "the file is empty (no header row, no data)")
        return None
    text = _decode(data, label, sink)
    if text is None:
        return None
    sep = _sniff_separator(text)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep)
    try:
        records = list(enumerate(reader, start=1))
    except csv.Error as exc:
        sink.error(label, None, None, None, f"not a readable CSV file: {exc}")
        return None
    return _frame_from_rows(label, records, sink, decimal_comma=sep != ",", plain=True)


def _read_parquet(path: Path, label: str, sink: _Sink) -> _Raw | None:
    try:
        df = pd.read_parquet(path)
    except Exception as exc:  # noqa: BLE001 - any reader failure is the file's problem
        sink.error(label, None, None, None, f"not a readable Parquet file: {exc}")
        return None
    header = [str(c) for c in df.columns]
    cols = [df[c].astype(object).tolist() for c in df.columns]
    records = [(1, header)] + [
        (i + 2, [col[i] for col in cols]) for i in range(len(df))
    ]
    return _frame_from_rows(label, records, sink, decimal_comma=False)


def _read_table_file(path: Path, sink: _Sink) -> _Raw | None:
    """A .parquet file, or any other file as CSV; labelled by its name."""
    if path.suffix.lower() == ".parquet":
        return _read_parquet(path, path.name, sink)
    return _read_csv(path, path.name, sink)


BAD_WORKBOOK = "not a readable .xlsx workbook"


def _open_workbook(path: Path, sink: _Sink):
    """The workbook, read-only with cached values; None (a located problem) if unreadable."""
    import openpyxl

    try:
        return openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # noqa: BLE001 - a corrupt workbook is the file's problem
        sink.error(path.name, None, None, None, f"{BAD_WORKBOOK}: {exc}")
        return None


def _sheet_raw(path: Path, wb, name: str, sink: _Sink) -> _Raw | None:
    """Sheet `name` of the open workbook `wb` (read from `path`), labelled book.xlsx[Sheet]."""
    records = ((i, list(r)) for i, r in enumerate(wb[name].iter_rows(values_only=True), start=1))
    return _frame_from_rows(f"{path.name}[{name}]", records, sink, decimal_comma=False)


def _read_xlsx(path: Path, sink: _Sink) -> dict[str, _Raw | None]:
    """One _Raw per contract sheet of a workbook; missing required sheets are problems."""
    out: dict[str, _Raw | None] = {}
    wb = _open_workbook(path, sink)
    if wb is None:
        return out
    try:
        sheets = {normalise_name(n): n for n in wb.sheetnames}
        for table in schema.INPUT_TABLES:
            if table not in sheets:
                if table in schema.REQUIRED_TABLES:
                    sink.error(
                        path.name, None, None, table,
                        f"the workbook has no sheet named {table!r} "
                        f"(sheets found: {', '.join(wb.sheetnames)})",
                    )
                continue
            out[table] = _sheet_raw(path, wb, sheets[table], sink)
        for key, name in sheets.items():
            if key not in schema.INPUT_TABLES:
                sink.warn(path.name, None, None, name, "sheet is not part of the contract; ignored")
    finally:
        wb.close()
    return out


def _read_sources(path: Path, sink: _Sink) -> dict[str, _Raw | None]:
    """Find and read the contract tables at `path`."""
    if not path.exists():
        sink.error(str(path), None, None, None, "no such file or folder")
        return {}
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix == ".xlsx":
            return _read_xlsx(path, sink)
        hint = {
            ".xls": "old .xls workbooks are not read; save it as .xlsx",
            ".csv": "give the folder that holds patients.csv and visits.csv",
            ".parquet": "give the folder that holds patients.parquet and visits.parquet",
        }.get(suffix, "give a folder of .csv or .parquet files, or one .xlsx workbook")
        sink.error(str(path), None, None, None, f"cannot import a single {suffix or 'file'}: {hint}")
        return {}
    files = {f.name.lower(): f for f in path.iterdir() if f.is_file()}
    found: dict[str, _Raw | None] = {}
    for table in schema.INPUT_TABLES:
        hits = [files[n] for n in (f"{table}.csv", f"{table}.parquet") if n in files]
        if len(hits) > 1:
            sink.error(str(path), None, None, ", ".join(h.name for h in hits),
                       f"both a .csv and a .parquet file for {table}; keep one")
            continue
        if not hits:
            continue
        found[table] = _read_table_file(hits[0], sink)
    if not found:
        books = [f for n, f in sorted(files.items()) if n.endswith(".xlsx") and not n.startswith("~$")]
        if len(books) == 1:
            return _read_xlsx(books[0], sink)
    for table in schema.REQUIRED_TABLES:
        if table not in found and not any(p.value == table for p in sink.problems):
            sink.error(str(path), None, None, f"{table}.csv",
                       f"required file {table}.csv (or {table}.parquet) is missing")
    return found


# --- mapping (MAP.toml) ----------------------------------------------------------------------


def _read_named(path: Path, spec: str, sink: _Sink, *, other_as_csv: bool = False
                ) -> _Raw | None:
    """A file named in a mapping's [files]: 'name.csv', 'name.parquet' or 'book.xlsx[Sheet]'.

    `other_as_csv`: a file with another suffix is read as CSV (the labs file always was).
    """
    m = re.match(r"^(.*?)\[(.+)\]$", spec.strip())
    name, sheet = (m.group(1), m.group(2)) if m else (spec.strip(), None)
    base = path if path.is_dir() else path.parent
    f = base / name if name else path
    if path.is_file() and (not name or Path(name).name == path.name):
        f = path
    if not f.is_file():
        sink.error(spec, None, None, None, "the mapping's [files] names this file, which does "
                   f"not exist in {base}")
        return None
    suffix = f.suffix.lower()
    if suffix == ".xlsx":
        return _read_sheet(f, sheet, sink)
    if suffix in (".csv", ".parquet") or (other_as_csv and sheet is None):
        return _read_table_file(f, sink)
    sink.error(spec, None, None, None, "the mapping's [files] entries must be .csv, .parquet "
               "or book.xlsx[Sheet]")
    return None


def _read_sheet(path: Path, sheet: str | None, sink: _Sink) -> _Raw | None:
    """One sheet of a workbook (the first when `sheet` is None)."""
    wb = _open_workbook(path, sink)
    if wb is None:
        return None
    try:
        name = sheet or wb.sheetnames[0]
        if name not in wb.sheetnames:
            sink.error(path.name, None, None, name, "no such sheet (sheets: "
                       f"{', '.join(wb.sheetnames)})")
            return None
        return _sheet_raw(path, wb, name, sink)
    finally:
        wb.close()


def _read_sheets(path: Path, sink: _Sink) -> list[tuple[str, _Raw]]:
    """(book.xlsx[Sheet], table) for every readable sheet, the workbook opened once."""
    wb = _open_workbook(path, sink)
    if wb is None:
        return []
    try:
        raws = [(name, _sheet_raw(path, wb, name, sink)) for name in wb.sheetnames]
    finally:
        wb.close()
    return [(f"{path.name}[{name}]", raw) for name, raw in raws if raw is not None]


def _sources_for_mapping(path: Path, m: mapping.Mapping, sink: _Sink) -> dict[str, _Raw | None]:
    """The contract tables a mapping's [files] names (others found the ordinary way)."""
    named = {t: f for t, f in m.files.items() if t in schema.INPUT_TABLES}
    if not named:
        return _read_sources(path, sink)
    out: dict[str, _Raw | None] = {t: _read_named(path, f, sink) for t, f in named.items()}
    if path.is_dir():
        files = {f.name.lower(): f for f in path.iterdir() if f.is_file()}
        for table in schema.INPUT_TABLES:
            if table in out:
                continue
            for n in (f"{table}.csv", f"{table}.parquet"):
                if n in files:
                    out[table] = _read_table_file(files[n], sink)
    for table in schema.REQUIRED_TABLES:
        if table not in out and not (table == "visits" and "labs" in m.files):
            sink.error(m.path, None, None, table, f"[files] names no file for {table}, and "
                       f"{path} holds no {table}.csv")
    return out


def _value_lookup(values: dict[str, str]) -> dict[str, str]:
    """Value map keys as written, plus case/space-insensitive spellings of them."""
    out = {}
    for k, v in values.items():
        out.setdefault(k.strip().lower(), v)
    return out


def apply_mapping(raws: dict[str, _Raw | None], m: mapping.Mapping, sink: _Sink,
                  opts: dict) -> None:
    """Rename mapped columns to the contract's, apply value maps and record units (in place)."""
    if m.decimal_comma is not None:
        for raw in raws.values():
            if raw is not None:
                raw.decimal_comma = bool(m.decimal_comma)
    units: dict[str, dict[str, tuple[str, float]]] = opts.setdefault("units", {})
    for table, raw in raws.items():
        cms = m.for_table(table)
        if raw is None or not cms:
            continue
        targets = {c.name for c in schema.columns(table)} | set(
            mapping.EXTRA_TARGETS.get(table, ()))
        frame = raw.frame
        new: dict[str, pd.Series] = {}
        source_of: dict[str, str] = {}
        drop: set[str] = set()
        for cm in cms:
            key = normalise_name(cm.column)
            if key not in frame.columns:
                sink.error(m.path, None, cm.column, cm.to or None,
                           f"the mapping names column {cm.column!r} of {raw.label} ({table}), "
                           "which the file does not have (its columns: "
                           f"{', '.join(raw.header_cols.get(c, c) for c in frame.columns)})")
                continue
            drop.add(key)
            if not cm.to:
                continue  # ignored on purpose
            if cm.to not in targets:
                sink.error(m.path, None, cm.column, cm.to,
                           f"not a column of {table} in the data contract")
                continue
            col = frame[key].astype(object).fillna("").astype(str).str.strip()
            if cm.values:
                look = _value_lookup(cm.values)
                col = col.map(lambda v, look=look: look.get(v.lower(), v) if v else v)
            if cm.to in new:
                c = next((x for x in schema.columns(table) if x.name == cm.to), None)
                if c is not None and c.dtype == schema.TEXT and not c.choices:
                    # Indicator columns of one regimen ('MMF', 'TAC') combine: 'MMF+TAC'.
                    a, b = new[cm.to], col
                    both = (a != "") & (b != "") & (b != "none") & (a != "none")
                    new[cm.to] = a.where(~both, a + "+" + b).where(a != "", b)
                    source_of[cm.to] += f" + {cm.column}"
                    continue
                sink.error(m.path, None, cm.column, cm.to,
                           f"two file columns map to {cm.to}: {source_of[cm.to]!r} and "
                           f"{cm.column!r}; map one of them to \"\"")
                continue
            new[cm.to] = col
            source_of[cm.to] = cm.column
            if cm.unit:
                unit, factor = _mapped_unit(cm, m, sink)
                if factor is not None:
                    units.setdefault(table, {})[cm.to] = (unit, factor)
        keep = [c for c in frame.columns if c not in drop]
        clash = [c for c in keep if c in new]
        for c in clash:
            sink.error(raw.label, 1, raw.header_cols.get(c, c), None,
                       f"the file has a column {c} and the mapping also maps "
                       f"{source_of[c]!r} to {c}; map one of them to \"\"")
        out = frame[keep].copy()
        for k, v in new.items():
            out[k] = v.to_numpy()
        raw.frame = out
        for k, src in source_of.items():
            raw.header_cols[k] = src
            if normalise_name(src) != k:
                raw.shown[k] = f"{src} → {k}"


def _mapped_unit(cm: mapping.ColumnMap, m: mapping.Mapping,
                 sink: _Sink) -> tuple[str, float | None]:
    """A mapping's unit for a column → (unit shown in messages, factor to the contract unit)."""
    unit = str(cm.unit).strip()
    drug = None
    words = unit.split()
    if len(words) > 1 and words[-1].lower() in PREDNISONE_FACTORS:
        drug, unit = words[-1].lower(), " ".join(words[:-1])
    if cm.to not in mapping.UNITS:
        sink.error(m.path, None, cm.column, cm.unit,
                   f"{cm.to} has no unit to convert; remove 'unit'")
        return unit, None
    factor = mapping.unit_factor(cm.to, unit)
    if factor is None:
        sink.error(m.path, None, cm.column, cm.unit,
                   f"unit {cm.unit!r} cannot be converted to {cm.to} "
                   f"({next(iter(mapping.UNITS[cm.to]))}); convertible units: "
                   f"{mapping.units_text(cm.to)}")
        return unit, None
    canon = mapping.canon_unit(unit) or unit
    if drug is not None:
        if cm.to != "prednisone_mg_day":
            sink.error(m.path, None, cm.column, cm.unit,
                       "a glucocorticoid name belongs only to prednisone_mg_day's unit")
            return unit, None
        return f"{canon} of {drug}", factor * PREDNISONE_FACTORS[drug]
    return canon, factor


# --- options -------------------------------------------------------------------------------


def parse_schedule(spec: str | Sequence[int] | None, sink: _Sink) -> list[int] | None:
    """'0,4,12,24,52' (or a list) to sorted unique weeks."""
    if spec is None:
        return None
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    weeks: list[int] = []
    for it in items:
        try:
            w = int(str(it).strip())
        except ValueError:
            sink.error("--schedule", None, None, str(it).strip(), "not a whole number of weeks")
            continue
        if not 0 <= w <= 520:
            sink.error("--schedule", None, None, str(w), "weeks must be within 0–520")
            continue
        weeks.append(w)
    return sorted(set(weeks)) or None


def parse_windows(
    spec: str | Sequence[tuple[int, int, int]] | None, sink: _Sink
) -> list[tuple[int, int, int]] | None:
    """'0:-14:7,4:15:42' (week:first_day:last_day) to validated, sorted windows."""
    if spec is None:
        return None
    items = [s for s in spec.split(",") if s.strip()] if isinstance(spec, str) else list(spec)
    out: list[tuple[int, int, int]] = []
    for it in items:
        try:
            w, lo, hi = (int(x) for x in (it.split(":") if isinstance(it, str) else it))
        except (ValueError, TypeError):
            sink.error("--week-windows", None, None, str(it),
                       "each window is week:first_day:last_day, e.g. 4:15:42")
            continue
        if lo > hi:
            sink.error("--week-windows", None, None, str(it), "first day is after last day")
            continue
        out.append((w, lo, hi))
    out.sort(key=lambda t: t[1])
    for a, b in itertools.pairwise(out):
        if b[1] <= a[2]:
            sink.error("--week-windows", None, None, f"{a[0]}, {b[0]}",
                       f"windows of weeks {a[0]} and {b[0]} overlap")
    return out or None


def default_windows(schedule: Sequence[int]) -> list[tuple[int, int, int]]:
    """Day windows (week, first_day, last_day) for a schedule; see the module docstring."""
    weeks = sorted({int(w) for w in schedule})
    wins = []
    for w in weeks:
        t = 7 * w
        if w == 0:
            lo, hi = BASELINE_WINDOW
        else:
            half = max(7, int(0.25 * t))
            lo, hi = t - half, t + half
        wins.append([w, lo, hi])
    for a, b in itertools.pairwise(wins):
        mid = (7 * a[0] + 7 * b[0]) // 2
        a[2] = min(a[2], mid)
        b[1] = max(b[1], mid + 1)
    return [tuple(x) for x in wins]


def _windows_for(schedule: Sequence[int] | None, windows: list[tuple[int, int, int]] | None,
                 seen_weeks: Iterable[int] = ()) -> list[tuple[int, int, int]]:
    """The windows dated visits are mapped with: `windows` (--week-windows) if given, else
    default_windows of the schedule, or without one of DEFAULT_SCHEDULE and the weeks the
    data use (week 0 always)."""
    if windows is not None:
        return windows
    weeks = {0, *schedule} if schedule is not None else {0, *DEFAULT_SCHEDULE, *seen_weeks}
    return default_windows(sorted(weeks))


def _week_of_days(days: np.ndarray, windows: Sequence[tuple[int, int, int]]) -> np.ndarray:
    """The week whose window holds each day since treatment start; -1 = no window."""
    ws = sorted(windows, key=lambda w: w[1])
    los = np.array([w[1] for w in ws])
    his = np.array([w[2] for w in ws])
    weeks = np.array([w[0] for w in ws])
    k = np.searchsorted(los, days, side="right") - 1
    ok = (k >= 0) & (days <= his[np.clip(k, 0, None)])
    return np.where(ok, weeks[np.clip(k, 0, None)], -1)


# --- value parsing (vectorised) ------------------------------------------------------------


def _fmt(x: float) -> str:
    return f"{x:g}"


def _range_text(col: schema.Column) -> str:
    unit = f" {col.unit}" if col.unit and col.unit not in ("points", "0–3") else ""
    if col.hi is None:
        return f"≥ {_fmt(col.lo)}{unit}"
    return f"{_fmt(col.lo)}–{_fmt(col.hi)}{unit}"


def _parse_numbers(s: pd.Series, decimal_comma: bool) -> tuple[pd.Series, pd.Series, pd.Series]:
    """Text to float: (values, empty mask, bad mask)."""
    empty = s == ""
    t = s
    if decimal_comma:
        has_comma = s.str.contains(",", regex=False) & ~s.str.contains(".", regex=False)
        t = s.where(~has_comma, s.str.replace(",", ".", regex=False))
    num = pd.to_numeric(t.where(~empty, None), errors="coerce").astype("float64")
    bad = ~empty & ~np.isfinite(num.to_numpy(dtype="float64", na_value=np.nan))
    return num.where(~bad), empty, pd.Series(bad, index=s.index)


def _number_hint(value: str, decimal_comma: bool) -> str:
    if _CENSORED.match(value):
        return "not a number: censored values such as '<0.5' are not accepted; enter a number"
    if not decimal_comma and _DECIMAL_COMMA.match(value):
        return ("not a number: a decimal comma in a comma-separated file is ambiguous; "
                "use a dot (1.5) or save the file with ';' as separator")
    return "not a number"


def _parse_bools(s: pd.Series) -> tuple[pd.Series, pd.Series]:
    low = s.str.lower()
    val = pd.Series(pd.NA, index=s.index, dtype="boolean")
    val[low.isin(_TRUE)] = True
    val[low.isin(_FALSE)] = False
    bad = (s != "") & val.isna()
    return val, bad


def _parse_dates(s: pd.Series) -> tuple[pd.Series, pd.Series, pd.Series]:
    """ISO dates: (values, not-ISO mask, impossible-date mask)."""
    iso = s.str.extract(_ISO_DATE, expand=False)
    not_iso = (s != "") & iso.isna()
    val = pd.to_datetime(iso, format="%Y-%m-%d", errors="coerce")
    impossible = iso.notna() & val.isna()
    return val.astype("datetime64[s]"), not_iso, impossible


def infer_day_month(values: Iterable[pd.Series]) -> tuple[str | None, str | None]:
    """Day/month order a file's dates prove: ('DD/MM/YYYY' or 'MM/DD/YYYY', example).

    A first number above 12 cannot be a month, so it is the day (and vice versa).
    Returns ('mixed', 'a and b') when the file proves both orders, (None, None) when
    no value decides it.
    """
    day_first, month_first = None, None
    for s in values:
        parts = s.str.extract(_DM_DATE)
        ok = parts[0].notna()
        if not ok.any():
            continue
        a = pd.to_numeric(parts[0][ok])
        b = pd.to_numeric(parts[2][ok])
        d1 = s[ok][(a > 12) & (b <= 12)]
        m1 = s[ok][(b > 12) & (a <= 12)]
        if day_first is None and len(d1):
            day_first = d1.iloc[0]
        if month_first is None and len(m1):
            month_first = m1.iloc[0]
    if day_first is not None and month_first is not None:
        return "mixed", f"{day_first} and {month_first}"
    if day_first is not None:
        return "DD/MM/YYYY", day_first
    if month_first is not None:
        return "MM/DD/YYYY", month_first
    return None, None


def parse_date_series(s: pd.Series, fmt: str | None) -> tuple[pd.Series, pd.Series]:
    """Dates in ISO or (with fmt DD/MM/YYYY or MM/DD/YYYY) day/month order: (values, reasons).

    `reasons` holds '' for good or empty cells and the problem's text otherwise.
    """
    val, not_iso, impossible = _parse_dates(s)
    reasons = pd.Series("", index=s.index, dtype=object)
    reasons[impossible] = "not a real calendar date"
    parts = s.str.extract(_DM_DATE)
    dm = not_iso & parts[0].notna()
    short = dm & (parts[3].str.len() == 2)
    reasons[short] = "two-digit year: write the year in full (e.g. 15/03/2024 or 2024-03-15)"
    dm &= ~short
    if fmt in ("DD/MM/YYYY", "MM/DD/YYYY") and dm.any():
        day, month = (parts[0], parts[2]) if fmt == "DD/MM/YYYY" else (parts[2], parts[0])
        text = parts[3][dm] + "-" + month[dm].str.zfill(2) + "-" + day[dm].str.zfill(2)
        got = pd.to_datetime(text, format="%Y-%m-%d", errors="coerce").astype("datetime64[s]")
        val = val.copy()
        val[dm] = got
        reasons[dm & got.reindex(s.index).isna()] = f"not a real calendar date (read as {fmt})"
    elif dm.any():
        if fmt == "YYYY-MM-DD":
            reasons[dm] = ("not an ISO date (--date-format YYYY-MM-DD); write it as YYYY-MM-DD "
                           "or choose --date-format DD/MM/YYYY or MM/DD/YYYY")
        elif fmt == "mixed":
            reasons[dm] = ("ambiguous date: this file has dates that must be day-first and "
                           "others that must be month-first; give --date-format or write "
                           "YYYY-MM-DD")
        else:
            reasons[dm] = ("ambiguous date (day/month order unknown: no day above 12 in this "
                           "file decides it); use --date-format DD/MM/YYYY or MM/DD/YYYY, or "
                           "write it as ISO YYYY-MM-DD")
    other = not_iso & ~dm & ~short
    reasons[other] = "not a date; write it as ISO YYYY-MM-DD"
    return val, reasons


def _file_date_format(raw: _Raw, date_cols: list[str], option: str | None,
                      sink: _Sink) -> str | None:
    """The day/month order to read this file's dates with (auto: proven by a day > 12)."""
    if option not in (None, "auto"):
        return option
    series = {c: raw.frame[c].astype(str).str.strip() for c in date_cols
              if c in raw.frame.columns}
    order, example = infer_day_month(series.values())
    if order in ("DD/MM/YYYY", "MM/DD/YYYY"):
        where = next(c for c, s in series.items() if (s == example).any())
        i = int(np.flatnonzero((series[where] == example).to_numpy())[0])
        m = _DM_DATE.match(example)
        which, number = ("first", m.group(1)) if order == "DD/MM/YYYY" else ("second", m.group(3))
        sink.warn(raw.label, raw.rows[i], raw.shown.get(where, where), example,
                  f"dates in this file read as {order}: in {example} the {which} number, "
                  f"{int(number)}, cannot be a month (--date-format chooses the order)")
        return order
    return order


def convert(num: pd.Series, factor: pd.Series | float) -> pd.Series:
    """Values × factor; a factor below 1 divides by its (rounded) reciprocal so that
    70 mg/dL ÷ 100 is 0.7 exactly as a typed 0.7 would be (× 0.01 gives 0.7000000000000001)."""
    f = pd.Series(factor, index=num.index, dtype="float64") if np.isscalar(factor) else factor
    inv = (1.0 / f).round(9)
    return num.where(f >= 1, num / inv).where(f < 1, num * f)


def _canon_unit(s: str) -> str | None:
    key = s.strip().lower().replace(" ", "")
    return _UNIT_SPELLINGS.get(key)


def _validate_table(
    table: str, raw: _Raw, opts: dict, sink: _Sink
) -> tuple[pd.DataFrame, dict[str, pd.Series]]:
    """Typed frame with every schema column of `table`; extras the importer uses returned apart."""
    cols = schema.columns(table)
    known = {c.name for c in cols}
    frame = raw.frame
    label, rows = raw.label, raw.rows
    extras_allowed = set(EXTRA_VISIT_COLUMNS) if table == "visits" else set()
    for name in frame.columns:
        if name not in known and name not in extras_allowed:
            header = raw.header_cols.get(name, name)
            samples = [v for v in frame[name].astype(str).head(50) if v]
            like = mapping.looks_like(table, header, samples)
            if like is not None and like.to not in frame.columns:
                # A measurement under another name must never vanish (issue 16).
                unit = f" in {like.unit}" if like.unit else ""
                sink.error(label, 1, header, header,
                           f"looks like the contract column {like.to}{unit} but is not named "
                           f"so, and would be dropped: rename it to {like.to}, or map it "
                           "(python -m lupus_dash suggest-mapping PATH -o MAP.toml, then "
                           "import with --mapping MAP.toml)")
                continue
            close = difflib.get_close_matches(name, list(known | extras_allowed), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            sink.warn(label, 1, name, header,
                      f"unknown column, ignored (not in the data contract){hint}")
    for c in cols:
        if c.required and c.name not in frame.columns:
            sink.error(label, 1, c.name, None,
                       "required column is missing from the header "
                       f"(found: {', '.join(frame.columns) or 'none'})")
    if table == "visits" and not {"visit_week", "visit_date"} & set(frame.columns):
        sink.error(label, 1, "visit_week", None,
                   "the file needs a visit_week or a visit_date column")

    def flag(mask, column: str, reason) -> None:
        idx = np.flatnonzero(np.asarray(mask, dtype=bool))
        values = frame[column].to_numpy() if column in frame.columns else None
        for i in idx:
            v = None if values is None else values[i]
            r = reason(i, v) if callable(reason) else reason
            sink.error(label, rows[i], column, v, r)

    n = len(frame)
    out: dict[str, pd.Series] = {}
    unit_used: dict[str, pd.Series] = {}  # contract column -> unit each row was read in
    unit_mult: dict[str, pd.Series] = {}  # contract column -> factor to the contract unit
    mapped_units = opts.get("units", {}).get(table, {})  # from a mapping: col -> (unit, factor)
    unit_col_of = {t: uc for uc, ts in UNIT_COLUMNS.items() for t in ts}
    for target in [*_UNIT_FACTORS, *mapped_units]:
        if target not in frame.columns or target in unit_used:
            continue
        factors = dict(mapping.UNITS.get(target, {}))
        base = next(iter(factors), "")
        default = base
        if target in mapped_units:
            default, mapped_f = mapped_units[target]
            factors[default] = mapped_f
        elif target in _UNIT_FACTORS:
            option = opts.get("complement_unit" if target != "creatinine_umol_l"
                              else "creatinine_unit")
            if option:
                default = _canon_unit(option)
        units = pd.Series(default, index=frame.index, dtype=object)
        unit_col = unit_col_of.get(target)
        if unit_col and unit_col in frame.columns:
            given = frame[unit_col]
            canon = given.map(lambda u: _canon_unit(u) if u else None)
            bad = (given != "") & (canon.isna() | ~canon.isin(list(_UNIT_FACTORS[target])))
            accepted = " or ".join(_UNIT_FACTORS[target])
            flag(bad, unit_col, f"unknown unit; use {accepted}")
            units = canon.where(canon.notna() & ~bad, default)
        unit_used[target] = units
        unit_mult[target] = units.map(factors).astype("float64")
    date_cols = [c.name for c in cols if c.dtype == schema.DATE]
    date_fmt = _file_date_format(raw, date_cols, opts.get("date_format"), sink) \
        if any(c in frame.columns for c in date_cols) else None

    for c in cols:
        if c.name not in frame.columns:
            out[c.name] = _empty_series(c, n)
            continue
        s = frame[c.name].astype(object).fillna("").astype(str).str.strip()
        if c.dtype != schema.TEXT:
            marker = s.str.lower().isin(schema.NA_MARKERS)
            if marker.any():
                first = int(np.flatnonzero(marker.to_numpy())[0])
                sink.warn(label, rows[first], c.name, s.iloc[first],
                          f"{int(marker.sum())} cell(s) like this read as missing")
                s = s.where(~marker, "")
        if c.required:
            flag(s == "", c.name, "required value is missing")
        if c.dtype in (schema.NUMBER, schema.INTEGER):
            num, _, bad = _parse_numbers(s, raw.decimal_comma)
            dec = raw.decimal_comma
            flag(bad, c.name, lambda i, v, dec=dec: _number_hint(str(v), dec))
            if c.dtype == schema.INTEGER:
                frac = num.notna() & (num != np.floor(num))
                flag(frac, c.name, "not a whole number")
                num = num.where(~frac)
            if c.name in unit_mult:
                num = convert(num, unit_mult[c.name])
            if c.lo is not None or c.hi is not None:
                lo = -np.inf if c.lo is None else c.lo
                hi = np.inf if c.hi is None else c.hi
                low = num.notna() & (num < lo)
                high = num.notna() & (num > hi)
                for mask, word in ((low, "below"), (high, "above")):
                    flag(mask, c.name, _range_reasons(c, word, num, unit_used.get(c.name),
                                                      unit_mult.get(c.name)))
                num = num.where(~(low | high))
            if c.name == "creatinine_umol_l" and c.name in unit_used:
                assumed = unit_used[c.name] == "µmol/L"
                vals = num[assumed & num.notna()]
                if len(vals) >= 3 and float(vals.median()) < 20:
                    sink.warn(label, None, c.name, _fmt(float(vals.median())),
                              "creatinine values read as µmol/L look like mg/dL (median < 20); "
                              "if so, use --creatinine-unit mg/dL or a creatinine_unit column")
            out[c.name] = num.astype("Int64") if c.dtype == schema.INTEGER else num
        elif c.dtype == schema.BOOL:
            val, bad = _parse_bools(s)
            flag(bad, c.name, "not a yes/no value; use true/false, yes/no, y/n or 1/0")
            out[c.name] = val
        elif c.dtype == schema.DATE:
            val, reasons = parse_date_series(s, date_fmt)
            bad = (reasons != "").to_numpy()
            flag(bad, c.name, lambda i, v, r=reasons: r.iloc[i])
            out[c.name] = val.where(~bad)
        else:
            val = pd.Series([x if x else None for x in s], index=s.index, dtype=object)
            if c.choices:
                canon = _canon_choices(c)
                mapped = pd.Series([None if x is None else canon.get(_choice_key(x))
                                    for x in val], index=s.index, dtype=object)
                bad = val.notna() & mapped.isna()
                flag(bad, c.name, f"not one of {', '.join(c.choices)}")
                val = mapped
            out[c.name] = val
    extras = {
        k: frame[k].astype(object).fillna("").astype(str).str.strip()
        for k in extras_allowed if k in frame.columns
    }
    result = pd.DataFrame(out, index=frame.index)
    return result.reset_index(drop=True), {k: v.reset_index(drop=True) for k, v in extras.items()}


def _range_reasons(col: schema.Column, word: str, num: pd.Series, units: pd.Series | None,
                   factors: pd.Series | None = None):
    """Reason builder for range failures: names the range and the unit the value was read in."""
    text = f"{word} the plausible range {_range_text(col)}"
    if units is None:
        return text
    base = next(iter(mapping.UNITS[col.name]))

    def reason(i: int, v) -> str:
        unit = units.iloc[i]
        f = 1.0 if factors is None else float(factors.iloc[i])
        if unit != base:
            how = f"÷ {_fmt(1 / f)}" if f < 1 else f"× {_fmt(f)}"
            return f"{text} (read as {unit}, converted {how} to {_fmt(num.iloc[i])} {base})"
        hint = ""
        if word == "above" and col.name in ("c3_g_l", "c4_g_l"):
            hint = "; looks like mg/dL: use --complement-unit mg/dL or a c3_unit/c4_unit column"
        return f"{text} (read as {base}){hint}"

    return reason


def _out_of_range(col: schema.Column, x: float) -> bool:
    return (col.lo is not None and x < col.lo) or (col.hi is not None and x > col.hi)


def _choice_key(v: str) -> str:
    return re.sub(r"[\s_]+", "", v.lower())


def _canon_choices(col: schema.Column) -> dict[str, str]:
    canon = {_choice_key(ch): ch for ch in col.choices}
    if col.name == "sex":
        canon.update({"female": "F", "male": "M"})
    return canon


def _empty_series(col: schema.Column, n: int) -> pd.Series:
    if col.dtype == schema.NUMBER:
        return pd.Series(np.nan, index=range(n), dtype="float64")
    if col.dtype == schema.INTEGER:
        return pd.Series(pd.NA, index=range(n), dtype="Int64")
    if col.dtype == schema.BOOL:
        return pd.Series(pd.NA, index=range(n), dtype="boolean")
    if col.dtype == schema.DATE:
        return pd.Series(pd.NaT, index=range(n), dtype="datetime64[s]")
    return pd.Series([None] * n, index=range(n), dtype=object)


# --- cross-table rules ---------------------------------------------------------------------


def _check_patients(p: pd.DataFrame, raw: _Raw, sink: _Sink) -> None:
    ids = p["patient_id"]
    dup = ids.notna() & ids.duplicated(keep="first")
    first_row: dict[str, int] = {}
    for i, pid in enumerate(ids):
        if pid is not None and pid not in first_row:
            first_row[pid] = raw.rows[i]
    for i in np.flatnonzero(dup.to_numpy()):
        sink.error(raw.label, raw.rows[i], "patient_id", ids.iloc[i],
                   f"duplicate patient_id (first at row {first_row[ids.iloc[i]]})")


def _sledai(v: pd.DataFrame, raw: _Raw, sink: _Sink) -> None:
    """Fill sledai2k from descriptors and check a given score against them."""
    present = [c for c in schema.SLEDAI_COLUMNS if c in raw.frame.columns]
    if not present:
        return
    weights = {f"sledai_{k}": w for k, w, _, _ in schema.SLEDAI_DESCRIPTORS}
    mat = pd.DataFrame({c: v[c].astype("float64") for c in present})
    partial = sum(mat[c].fillna(0) * weights[c] for c in present)
    complete = mat.notna().all(axis=1) & (len(present) == len(schema.SLEDAI_COLUMNS))
    given = v["sledai2k"].astype("float64")
    mismatch = complete & given.notna() & (given != partial)
    too_low = ~complete & given.notna() & (given < partial)
    for i in np.flatnonzero(mismatch.to_numpy()):
        sink.error(raw.label, raw.rows[i], "sledai2k", raw.frame["sledai2k"].iloc[i],
                   f"does not match the SLEDAI-2K descriptors, whose weighted sum is "
                   f"{int(partial.iloc[i])}")
    for i in np.flatnonzero(too_low.to_numpy()):
        sink.error(raw.label, raw.rows[i], "sledai2k", raw.frame["sledai2k"].iloc[i],
                   f"lower than the descriptors present, whose weighted sum is already "
                   f"{int(partial.iloc[i])}")
    fill = complete & given.isna()
    v.loc[fill, "sledai2k"] = partial[fill].astype("int64")
    if len(present) < len(schema.SLEDAI_COLUMNS):
        sink.warn(raw.label, 1, None, None,
                  f"only {len(present)} of 24 SLEDAI-2K descriptor columns; sledai2k is not "
                  "derived from them")


def _glucocorticoids(v: pd.DataFrame, extras: dict, raw: _Raw, sink: _Sink) -> None:
    """Fill an empty prednisone_mg_day from glucocorticoid_drug + glucocorticoid_mg_day."""
    if "glucocorticoid_drug" not in extras and "glucocorticoid_mg_day" not in extras:
        return
    n = len(v)
    drug = extras.get("glucocorticoid_drug", pd.Series([""] * n)).str.lower()
    dose_raw = extras.get("glucocorticoid_mg_day", pd.Series([""] * n))
    dose, _, bad = _parse_numbers(dose_raw, raw.decimal_comma)
    for i in np.flatnonzero(bad.to_numpy()):
        sink.error(raw.label, raw.rows[i], "glucocorticoid_mg_day", dose_raw.iloc[i], "not a number")
    neg = dose < 0
    for i in np.flatnonzero(neg.fillna(False).to_numpy()):
        sink.error(raw.label, raw.rows[i], "glucocorticoid_mg_day", dose_raw.iloc[i],
                   "negative dose")
    factor = drug.map(PREDNISONE_FACTORS)
    unknown = (drug != "") & factor.isna()
    for i in np.flatnonzero(unknown.to_numpy()):
        sink.error(raw.label, raw.rows[i], "glucocorticoid_drug", extras["glucocorticoid_drug"].iloc[i],
                   "unknown glucocorticoid; use one of " + ", ".join(PREDNISONE_FACTORS))
    need = v["prednisone_mg_day"].isna()
    no_drug = need & (drug == "") & dose.notna()
    for i in np.flatnonzero(no_drug.to_numpy()):
        sink.error(raw.label, raw.rows[i], "glucocorticoid_drug", "",
                   "a glucocorticoid dose needs the drug name to convert it to prednisone")
    eq = dose * factor
    eq = eq.where(drug != "none", 0.0)
    fill = need & eq.notna() & ~neg.fillna(False)
    too_high = fill & (eq > 2000)
    for i in np.flatnonzero(too_high.to_numpy()):
        sink.error(raw.label, raw.rows[i], "glucocorticoid_mg_day", dose_raw.iloc[i],
                   f"prednisone equivalent {_fmt(eq.iloc[i])} mg/day is above the plausible "
                   "range 0–2000 mg/day")
    fill &= ~too_high
    v.loc[fill, "prednisone_mg_day"] = eq[fill]


def _map_weeks(
    v: pd.DataFrame,
    p: pd.DataFrame,
    raw: _Raw,
    sink: _Sink,
    schedule: list[int] | None,
    windows: list[tuple[int, int, int]] | None,
    unreadable_start: set[str],
) -> None:
    """Fill visit_week from visit_date by day windows; check dates against treatment start."""
    starts = dict(zip(p["patient_id"], p["treatment_start_date"], strict=False))
    cohort_of = dict(zip(p["patient_id"], p["cohort"], strict=False))
    date = v["visit_date"]
    week = v["visit_week"]
    vcohort = v["patient_id"].map(cohort_of)
    cohort_windows: dict[str, list[tuple[int, int, int]]] = {}
    for cohort in vcohort.dropna().unique():
        undated = []
        if windows is None and schedule is None:
            undated = week[(vcohort == cohort) & week.notna()].astype(int).unique().tolist()
        cohort_windows[cohort] = _windows_for(schedule, windows, undated)

    def raw_cell(col: str, i: int) -> str:
        return raw.frame[col].iloc[i] if col in raw.frame.columns else ""

    neither = (week.isna() & date.isna()).to_numpy()
    for i in np.flatnonzero(neither):
        if raw_cell("visit_week", i) or raw_cell("visit_date", i):
            continue  # already reported as unparseable
        col = "visit_week" if "visit_week" in raw.frame.columns else "visit_date"
        sink.error(raw.label, raw.rows[i], col, "", "needs a visit_week or a visit_date")

    pid = v["patient_id"]
    start = pd.to_datetime(pid.map(starts)).astype("datetime64[s]")
    known = pid.isin(set(starts)).to_numpy()
    dated = date.notna().to_numpy() & known
    no_start = dated & start.isna().to_numpy()
    # A start date that was given but unreadable is reported once, on patients.
    reported = pid.isin(unreadable_start).to_numpy()
    for i in np.flatnonzero(no_start & week.isna().to_numpy() & ~reported):
        sink.error(raw.label, raw.rows[i], "visit_date", raw_cell("visit_date", i),
                   f"patient {pid.iloc[i]} has no treatment_start_date in patients, which a "
                   "dated visit needs to get its week")
    dated &= ~no_start
    day = np.zeros(len(v), dtype=np.int64)
    day[dated] = (date[dated] - start[dated]).dt.days.to_numpy(dtype=np.int64)
    mapped = np.full(len(v), -1, dtype=np.int64)  # -1 = fits no window
    before = np.zeros(len(v), dtype=bool)
    for cohort, wins in cohort_windows.items():
        rows = dated & (vcohort == cohort).to_numpy()
        mapped[rows] = _week_of_days(day[rows], wins)
        before[rows] = day[rows] < min(w[1] for w in wins)
    given = week.to_numpy(dtype="float64", na_value=np.nan)
    has_week = ~np.isnan(given)
    for i in np.flatnonzero(before):
        first = min(w[1] for w in cohort_windows[vcohort.iloc[i]])
        sink.error(raw.label, raw.rows[i], "visit_date", raw_cell("visit_date", i),
                   f"visit before treatment start: {-day[i]} days before treatment_start_date "
                   f"{pd.Timestamp(start.iloc[i]).date()} (the baseline window opens at day "
                   f"{first})")
    fill = dated & ~before & ~has_week & (mapped >= 0)
    v.loc[fill, "visit_week"] = mapped[fill]
    for i in np.flatnonzero(dated & ~before & ~has_week & (mapped < 0)):
        wins = cohort_windows[vcohort.iloc[i]]
        d = int(day[i])
        near = sorted(wins, key=lambda w: min(abs(d - w[1]), abs(d - w[2])))[:2]
        shown = "; ".join(f"week {w[0]}: day {w[1]}–{w[2]}" for w in sorted(near))
        sink.error(raw.label, raw.rows[i], "visit_date", raw_cell("visit_date", i),
                   f"day {d} after treatment start fits no visit window "
                   f"(nearest: {shown}); give visit_week or widen --week-windows")
    odd = dated & ~before & has_week & (mapped != np.nan_to_num(given, nan=-2).astype(np.int64))
    for i in np.flatnonzero(odd):
        where = f"the window of week {mapped[i]}" if mapped[i] >= 0 else "no visit window"
        sink.warn(raw.label, raw.rows[i], "visit_date", raw_cell("visit_date", i),
                  f"day {day[i]} after treatment start falls in {where}, not week "
                  f"{int(given[i])}; visit_week kept")


def _check_visits(v: pd.DataFrame, known: set, raw: _Raw, sink: _Sink) -> None:
    pid = v["patient_id"]
    unknown = pid.notna() & ~pid.isin(known)
    for i in np.flatnonzero(unknown.to_numpy()):
        sink.error(raw.label, raw.rows[i], "patient_id", pid.iloc[i],
                   "unknown patient: not in patients")
    keyed = pid.notna() & v["visit_week"].notna()
    keys = pd.DataFrame({"p": pid, "w": v["visit_week"]})[keyed]
    dup = keys.duplicated(keep="first")
    if not dup.any():
        return
    first = {}
    for i in keys.index[keys.duplicated(keep=False).to_numpy()]:
        first.setdefault((keys.at[i, "p"], int(keys.at[i, "w"])), raw.rows[i])
    for i in dup.index[dup.to_numpy()]:
        src = "visit_week" if raw.frame.get("visit_week") is not None and \
            raw.frame["visit_week"].iloc[i] else "visit_date"
        val = raw.frame[src].iloc[i] if src in raw.frame.columns else ""
        w = int(v["visit_week"].iloc[i])
        sink.error(raw.label, raw.rows[i], src, val,
                   f"duplicate visit: patient {pid.iloc[i]} already has week {w} at row "
                   f"{first[(pid.iloc[i], w)]}")


def _check_aes(a: pd.DataFrame, known: set, raw: _Raw, sink: _Sink) -> None:
    pid = a["patient_id"]
    unknown = pid.notna() & ~pid.isin(known)
    for i in np.flatnonzero(unknown.to_numpy()):
        sink.error(raw.label, raw.rows[i], "patient_id", pid.iloc[i],
                   "unknown patient: not in patients")


def _schedule_warnings(
    v: pd.DataFrame, p: pd.DataFrame, sched: list[int] | None, label: str, sink: _Sink
) -> None:
    """Name every week with data that the schedule leaves out, and every sparse week kept.

    The schedule is the one the database will hold: ``--schedule`` if given, else
    ``derive.infer_schedule`` (store.write_database infers it from the same tables).
    """
    cohort_of = dict(zip(p["patient_id"], p["cohort"], strict=False))
    vc = v[["patient_id", "visit_week"]].assign(cohort=v["patient_id"].map(cohort_of))
    given = None
    if sched is not None:
        given = {c: list(sched) for c in p["cohort"].dropna().unique()}
    for _cohort, week, text in derive.schedule_warnings(vc, given):
        sink.warn(label, None, "visit_week", str(week), text)


# --- public API ----------------------------------------------------------------------------


def read_cohort(
    path: str | Path,
    *,
    complement_unit: str | None = None,
    creatinine_unit: str | None = None,
    week_windows: str | Sequence[tuple[int, int, int]] | None = None,
    schedule: str | Sequence[int] | None = None,
    mapping: str | Path | mapping_mod.Mapping | None = None,
    date_format: str | None = None,
) -> ReadResult:
    """Read and validate a cohort folder / .xlsx / Parquet folder; never raises on bad input.

    `mapping`: a MAP.toml (path or Mapping) naming files, columns, units and value maps;
    `date_format`: one of DATE_FORMATS (default auto: ISO, or day/month order when a day
    above 12 proves it).
    """
    sink = _Sink()
    path = Path(path)
    m = None
    if mapping is not None:
        try:
            m = mapping if isinstance(mapping, mapping_mod.Mapping) else mapping_mod.load(mapping)
        except mapping_mod.MappingError as exc:
            sink.error(str(mapping), None, None, None, str(exc))
            return ReadResult({}, sink.problems, sink.warnings, None, str(path))
    return _read_validated(path, sink, m, complement_unit, creatinine_unit, week_windows,
                           schedule, date_format)


def _read_validated(path, sink, m, complement_unit, creatinine_unit, week_windows, schedule,
                    date_format, raws=None) -> ReadResult:
    """read_cohort after the mapping is loaded; `raws` given = tables another reader built."""
    date_format = date_format or (m.date_format if m is not None else None) or "auto"
    if date_format not in DATE_FORMATS:
        sink.error("--date-format", None, None, date_format,
                   f"unknown date format; use one of {', '.join(DATE_FORMATS)}")
    for name, val, ok in (
        ("--complement-unit", complement_unit, ("g/L", "mg/dL")),
        ("--creatinine-unit", creatinine_unit, ("µmol/L", "mg/dL")),
    ):
        if val is not None and _canon_unit(val) not in ok:
            sink.error(name, None, None, val, f"unknown unit; use {' or '.join(ok)}")
    opts = {
        "complement_unit": complement_unit if complement_unit and _canon_unit(complement_unit)
        else None,
        "creatinine_unit": creatinine_unit if creatinine_unit and _canon_unit(creatinine_unit)
        else None,
        "date_format": date_format if date_format in DATE_FORMATS else "auto",
    }
    sched = parse_schedule(schedule, sink)
    n_before = len(sink.problems)
    wins = parse_windows(week_windows, sink)
    windows_ok = len(sink.problems) == n_before  # a bad spec would only add noise below
    if raws is None:
        if m is not None and m.redcap:
            from . import redcap

            raws = redcap.read_raws(path, m, sink)
        else:
            raws = _sources_for_mapping(path, m, sink) if m is not None else \
                _read_sources(path, sink)
        if m is not None:
            apply_mapping(raws, m, sink, opts)
        labs_raw = _read_labs(path, m, sink)
        if labs_raw is not None:
            from . import labs

            labs.merge_into(raws, labs_raw, m, sink, opts, sched, wins)
    tables: dict[str, pd.DataFrame] = {}
    extras: dict[str, pd.Series] = {}
    for table, raw in raws.items():
        if raw is None:
            continue
        if len(raw.frame) == 0 and table in schema.REQUIRED_TABLES:
            sink.error(raw.label, None, None, None,
                       "the file has a header row but no data rows")
        tables[table], ex = _validate_table(table, raw, opts, sink)
        if table == "visits":
            extras = ex
    p, v = tables.get("patients"), tables.get("visits")
    if p is not None:
        _check_patients(p, raws["patients"], sink)
    if v is not None:
        _sledai(v, raws["visits"], sink)
        _glucocorticoids(v, extras, raws["visits"], sink)
    if p is not None and v is not None:
        known = set(p["patient_id"].dropna())
        praw = raws["patients"].frame
        unreadable = set()
        if "treatment_start_date" in praw.columns:
            given = praw["treatment_start_date"].astype(str).str.strip().ne("").to_numpy()
            unreadable = set(p["patient_id"][given & p["treatment_start_date"].isna().to_numpy()])
        if windows_ok:
            _map_weeks(v, p, raws["visits"], sink, sched, wins, unreadable)
        _check_visits(v, known, raws["visits"], sink)
        if "adverse_events" in tables:
            _check_aes(tables["adverse_events"], known, raws["adverse_events"], sink)
        no_visits = sorted(known - set(v["patient_id"].dropna()))
        for pid in no_visits:
            sink.warn(raws["patients"].label, None, "patient_id", pid, "patient has no visits")
        _schedule_warnings(v, p, sched, raws["visits"].label, sink)
    if "adverse_events" not in tables:
        tables["adverse_events"] = pd.DataFrame(
            {c.name: _empty_series(c, 0) for c in schema.columns("adverse_events")}
        )
    if v is not None:
        tables["visits"] = v.sort_values(["patient_id", "visit_week"], kind="stable")
    # One set of dtypes for every source (CSV, xlsx, Parquet): derive's schema dtypes.
    tables = {t: derive.coerce(df, t) for t, df in tables.items()}
    order = {t: i for i, t in enumerate(["--complement-unit", "--creatinine-unit",
                                           "--schedule", "--week-windows"])}
    shown = {(r.label, k): v for r in raws.values() if r is not None for k, v in r.shown.items()}
    if shown:
        sink.problems = [_shown(q, shown) for q in sink.problems]
        sink.warnings = [_shown(q, shown) for q in sink.warnings]
    problems = sorted(sink.problems, key=lambda q: (order.get(q.file, 9), q.file, q.row or 0))
    schedules = None
    if sched is not None and p is not None:
        schedules = {c: list(sched) for c in p["cohort"].dropna().unique()}
    return ReadResult(tables, problems, sink.warnings, schedules, str(path))


def _shown(q: Problem, shown: dict[tuple[str, str], str]) -> Problem:
    """A problem in a mapped column names the file's header and the contract column."""
    key = (q.file, q.column)
    return dataclasses.replace(q, column=shown[key]) if key in shown else q


def _read_labs(path: Path, m: mapping_mod.Mapping | None, sink: _Sink) -> _Raw | None:
    """A long-format labs table: named in [files] labs (a file or book.xlsx[Sheet]), or
    labs.csv / labs.parquet in the folder; None when there is none or it is unreadable."""
    if m is not None and "labs" in m.files:
        return _read_named(path, m.files["labs"], sink, other_as_csv=True)
    if path.is_dir():
        for f in path.iterdir():
            if f.name.lower() in ("labs.csv", "labs.parquet"):
                return _read_table_file(f, sink)
    return None


def _read_from_args(args) -> ReadResult:
    return read_cohort(
        args.path,
        complement_unit=getattr(args, "complement_unit", None),
        creatinine_unit=_cli_unit(getattr(args, "creatinine_unit", None)),
        week_windows=getattr(args, "week_windows", None),
        schedule=getattr(args, "schedule", None),
        mapping=getattr(args, "mapping", None),
        date_format=getattr(args, "date_format", None),
    )


def _cli_unit(u: str | None) -> str | None:
    return "µmol/L" if u == "umol/L" else u


def _print_report(res: ReadResult, out=None) -> None:
    out = out or sys.stderr
    for w in res.warnings:
        print(f"warning: {w}", file=out)
    if res.problems:
        n = len(res.problems)
        print(f"{n} problem{'s' if n != 1 else ''} found ({ROWS_NOTE}):", file=out)
        for p in res.problems:
            print(f"  {p}", file=out)


def _counts(res: ReadResult) -> str:
    p = res.tables["patients"]
    cohorts = sorted(p["cohort"].dropna().unique())
    return (
        f"{len(cohorts)} cohort{'s' if len(cohorts) != 1 else ''} ({', '.join(cohorts)}), "
        f"{len(p)} patients, {len(res.tables['visits'])} visits, "
        f"{len(res.tables['adverse_events'])} adverse events, "
        f"{len(res.warnings)} warning{'s' if len(res.warnings) != 1 else ''}"
    )


def cli_validate(args) -> int:
    """`validate PATH`: report every problem, write nothing; exit 0 or 2."""
    try:
        res = _read_from_args(args)
    except Exception as exc:  # noqa: BLE001 - never a traceback for the user
        print(f"error: could not read {args.path}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    _print_report(res)
    if res.problems:
        print("not valid; nothing was written", file=sys.stderr)
        return 2
    print(f"valid: {_counts(res)}")
    return 0


def cli_import(args) -> int:
    """`import PATH --db FILE [--replace|--append]`: validate, then write atomically; exit 0/2."""
    from . import store

    try:
        res = _read_from_args(args)
    except Exception as exc:  # noqa: BLE001 - never a traceback for the user
        print(f"error: could not read {args.path}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    _print_report(res)
    if res.problems:
        print(f"nothing was imported; {args.db} was not touched", file=sys.stderr)
        return 2
    mode = "replace" if getattr(args, "replace", False) else (
        "append" if getattr(args, "append", False) else "create")
    try:
        summary = store.write_database(
            args.db, res.tables, mode=mode, schedules=res.schedules, source=res.source
        )
    except store.StoreError as exc:
        print(f"error: {exc}; nothing was imported, {args.db} is unchanged", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - never a traceback for the user
        print(f"error: import failed ({type(exc).__name__}: {exc}); {args.db} is unchanged",
              file=sys.stderr)
        return 1
    print(f"imported into {args.db} ({mode}): {_counts(res)}; database now holds "
          f"{summary['n_cohorts']} cohorts, {summary['patients']} patients")
    return 0
