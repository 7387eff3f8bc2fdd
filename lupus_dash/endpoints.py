"""Clinical endpoints: SLEDAI-2K, cSLEDAI, LLDAS, DORIS remission, renal response, eGFR.

Pure and vectorised: every evaluation takes a visits DataFrame (columns as in
``schema.VISIT_COLUMNS``; any optional column may be absent) and returns one
row per visit, aligned to the input index. Definitions and their sources are in
``../shared/CLINICAL_DEFINITIONS.md``; the section numbers below refer to it.

Three-valued logic everywhere (Kleene): a composite endpoint is
- False as soon as one criterion is known to FAIL (a known failure decides,
  even if other components are missing);
- otherwise <NA> (not evaluable) if any criterion could not be judged;
- otherwise True.
A missing component therefore never silently counts as "not met".

Floating-point comparisons: every threshold comparison tolerates a relative
error of 1e-9 (``_TOL``) so that a value exactly at a computed margin is at the
margin (e.g. 0.9 × 67 = 60.300000000000004 in binary floating point, and
eGFR 60.3 must count as "within 10 %" of a baseline of 67; 0.15 mg/kg × 41 kg =
6.1499999999999995 mg and a 6.15 mg dose must count as "≤"). No clinical value
is recorded to nine significant digits, so the tolerance never changes a real
decision.

Reasons ("why" texts) are built per distinct value, not per row, and long
joins are materialised by an in-memory DuckDB connection private to the
thread (a string engine only: no file, no shared state), so 600,000 visits
evaluate in seconds.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from lupus_dash.presets import _FAIL_OPS, _OPS, PRESETS, Preset, _num  # the one registry
from lupus_dash.schema import SLEDAI_DESCRIPTORS

_TOL = 1e-9

# Status labels of the per-criterion breakdown.
MET, FAILED, NOT_EVALUABLE = "met", "failed", "not evaluable"

# LLDAS criterion 1: SLEDAI-2K groups that are "major organ activity"
# (Franklyn 2016: renal, CNS, cardiopulmonary, vasculitis, fever; serosal items
# count as cardiopulmonary following Parodis et al.; schema.SLEDAI_DESCRIPTORS).
MAJOR_ORGAN_GROUPS = ("cns", "vascular", "renal", "serosal", "fever")
SEROLOGY = ("low_complement", "increased_dna_binding")


# --------------------------------------------------------------------------
# Presets
# --------------------------------------------------------------------------



def get_preset(preset: Preset | str) -> Preset:
    """A preset by name (or the preset itself)."""
    if isinstance(preset, Preset):
        return preset
    try:
        return PRESETS[preset]
    except KeyError:
        raise ValueError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}") from None


# --------------------------------------------------------------------------
# Small vectorised helpers
# --------------------------------------------------------------------------
#
# Reason texts ("why") are built without a Python loop over rows: a message
# column is held as integer ids into a list of distinct texts (``Msg``), each
# distinct text is formatted once, and joining message columns factorises the
# distinct combinations of ids. Where a join has many distinct combinations
# (per-patient values such as a baseline eGFR), it is done by DuckDB's
# concat_ws in one multi-threaded pass and kept as an Arrow array.

# Above this many distinct combinations a join is handed to DuckDB.
_PY_JOIN_MAX = 20_000


def _d(x: float, digits: int = 3) -> str:
    """Display a measured value rounded to `digits` decimals (display only)."""
    x = float(x)
    return "?" if np.isnan(x) else _num(round(x, digits))


def _factorize_rows(arrays: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(code per row, first row of each code) for the distinct tuples across arrays."""
    n = len(arrays[0])
    key = np.zeros(n, dtype=np.int64)
    for a in arrays:
        c, u = pd.factorize(a, use_na_sentinel=False)
        key = key * max(len(u), 1) + c
        key, _ = pd.factorize(key)
    k = int(key.max()) + 1 if n else 0
    first = np.full(k, -1, dtype=np.int64)
    first[key[::-1]] = np.arange(n - 1, -1, -1)
    return key.astype(np.int64), first


class Msg:
    """A text column, either ids into distinct ``texts`` (−1 = none) or a lazy join.

    A lazy join (``children`` joined with ``sep``, masked by ``keep``) is not
    computed until ``materialize``: then every lazy column asked for is built
    in a single DuckDB query, however deeply the joins nest.
    """

    def __init__(
        self,
        ids: np.ndarray | None,
        texts: list[str],
        *,
        children: Sequence[Msg] = (),
        sep: str = "",
        keep: np.ndarray | None = None,
        n: int = 0,
    ):
        self.ids, self.texts = ids, texts
        self.children, self.sep, self.keep, self._n = list(children), sep, keep, n

    def __len__(self) -> int:
        return self._n if self.ids is None else len(self.ids)

    @property
    def lazy(self) -> bool:
        return self.ids is None

    def where(self, mask: np.ndarray) -> Msg:
        """This text where mask, none elsewhere."""
        if self.lazy:
            keep = mask if self.keep is None else (self.keep & mask)
            return Msg(None, [], children=self.children, sep=self.sep, keep=keep, n=self._n)
        return Msg(np.where(mask, self.ids, -1), self.texts)

    def map(self, fn) -> Msg:
        """Transform every distinct text (id form only)."""
        return Msg(self.ids, [fn(t) for t in self.texts])

    def to_arrow(self) -> pa.Array:
        """Plain Arrow string array (null = no text)."""
        return materialize([self])[0]

    def to_list(self) -> list[str | None]:
        return self.to_arrow().to_pylist()


_NULL = pa.scalar(None, pa.string())


def _m_none(n: int) -> Msg:
    return Msg(np.full(n, -1, dtype=np.int64), [])


def _m_const(mask: np.ndarray, text: str) -> Msg:
    return Msg(np.where(mask, 0, -1).astype(np.int64), [text])


def _m_fmt(mask: np.ndarray, fn, *arrays: np.ndarray, digits: int = 3) -> Msg:
    """fn(*values) where mask, formatted once per distinct tuple of displayed values.

    Floats are grouped as displayed (rounded to `digits` decimals), so keep
    each call to one or two low-cardinality values and join parts with _m_cat.
    """
    n = len(mask)
    sel = np.flatnonzero(mask)
    if sel.size == 0:
        return _m_none(n)
    cols = [np.asarray(a)[sel] for a in arrays]
    keys = [np.round(c, digits) if c.dtype.kind == "f" else c for c in cols]
    codes, first = _factorize_rows(keys)
    texts = [fn(*(c[f] for c in cols)) for f in first]
    ids = np.full(n, -1, dtype=np.int64)
    ids[sel] = codes
    return Msg(ids, texts)


def _m_choose(cond: np.ndarray, a: Msg, b: Msg) -> Msg:
    """a where cond, else b."""
    if a.lazy or b.lazy:
        return _m_join([a.where(cond), b.where(~cond)], len(cond), "")
    off = len(a.texts)
    ids = np.where(cond, a.ids, np.where(b.ids >= 0, b.ids + off, -1))
    return Msg(ids, a.texts + b.texts)


def _m_join(msgs: Sequence[Msg], n: int, sep: str = "; ") -> Msg:
    """Row-wise join of the present texts with sep (none where no text is present)."""
    msgs = [m for m in msgs if m.lazy or (m.texts and (m.ids >= 0).any())]
    if not msgs:
        return _m_none(n)
    if len(msgs) == 1:
        return msgs[0]
    if not any(m.lazy for m in msgs):
        ids = np.stack([m.ids for m in msgs])
        sel = np.flatnonzero((ids >= 0).any(axis=0))
        codes, first = _factorize_rows([row[sel] for row in ids])
        if len(first) <= _PY_JOIN_MAX:
            texts = [sep.join(m.texts[m.ids[c]] for m in msgs if m.ids[c] >= 0) for c in sel[first]]
            out = np.full(n, -1, dtype=np.int64)
            out[sel] = codes
            return Msg(out, texts)
    return Msg(None, [], children=msgs, sep=sep, n=n)


def _m_cat(*parts: Msg) -> Msg:
    """Row-wise concatenation of message parts (present where any part is)."""
    return _m_join(parts, len(parts[0]), "")


_local = threading.local()


def _duck() -> duckdb.DuckDBPyConnection:
    """This thread's private in-memory DuckDB connection (never a file, never shared)."""
    con = getattr(_local, "con", None)
    if con is None:
        con = _local.con = duckdb.connect()
    return con


def materialize(msgs: Sequence[Msg]) -> list[pa.Array]:
    """Arrow string arrays for message columns; all lazy joins in one DuckDB query.

    DuckDB's concat_ws skips NULLs and builds the strings in one multi-threaded
    pass. Leaves are passed as dictionary arrays (ids + distinct texts, no
    copy); column and parameter names are generated here, every separator is
    a parameter.
    """
    out: list[pa.Array | None] = [None] * len(msgs)
    cols: dict[str, pa.Array] = {}
    params: dict[str, str] = {}
    leaf_names: dict[int, str] = {}

    def leaf(m: Msg) -> str:
        key = id(m)
        if key not in leaf_names:
            name = f"c{len(cols)}"
            idx = pa.array(np.maximum(m.ids, 0).astype(np.int32), mask=m.ids < 0)
            texts = pa.array(m.texts or [""], pa.string())
            cols[name] = pa.DictionaryArray.from_arrays(idx, texts)
            leaf_names[key] = name
        return leaf_names[key]

    def sql(m: Msg) -> str:
        if not m.lazy:
            expr = leaf(m)
        else:
            pname = f"s{len(params)}"
            params[pname] = m.sep
            inner = ", ".join(sql(c) for c in m.children)
            expr = f"nullif(concat_ws(${pname}, {inner}), '')"
        if m.keep is not None:
            kname = f"k{len(cols)}"
            cols[kname] = pa.array(np.asarray(m.keep, dtype=bool))
            expr = f"CASE WHEN {kname} THEN {expr} END"
        return expr

    exprs = []
    for i, m in enumerate(msgs):
        if m.lazy:
            exprs.append((i, sql(m)))
        else:
            table = pa.array([*m.texts, None], pa.string())
            out[i] = table.take(pa.array(np.where(m.ids < 0, len(m.texts), m.ids)))
    if exprs:
        select = ", ".join(f"{e} AS w{j}" for j, (_, e) in enumerate(exprs))
        con = _duck()
        con.register("msg_parts", pa.table(cols))
        try:
            res = con.sql(f"SELECT {select} FROM msg_parts", params=params).to_arrow_table()
        finally:
            con.unregister("msg_parts")
        for j, (i, _) in enumerate(exprs):
            out[i] = res.column(j).combine_chunks().cast(pa.string())
    return out


def _col(df: pd.DataFrame, name: str) -> np.ndarray:
    """Numeric column as float64 with NaN for missing; all-NaN if absent."""
    if name not in df.columns:
        return np.full(len(df), np.nan)
    return pd.to_numeric(df[name], errors="coerce").to_numpy(dtype="float64", na_value=np.nan)


def _bool(df: pd.DataFrame, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(is_true, is_false) arrays for a nullable boolean column; both False if missing/absent."""
    if name not in df.columns:
        z = np.zeros(len(df), dtype=bool)
        return z, z.copy()
    s = df[name].astype("boolean")
    known = s.notna().to_numpy()
    val = s.fillna(False).to_numpy(dtype=bool)
    return known & val, known & ~val


def _le(x: np.ndarray, lim: np.ndarray | float) -> np.ndarray:
    """x ≤ lim with relative tolerance (NaN → False)."""
    return x <= lim + _TOL * np.maximum(1.0, np.abs(lim))


def _lt(x: np.ndarray, lim: np.ndarray | float) -> np.ndarray:
    """x < lim with relative tolerance (NaN → False)."""
    return x < lim - _TOL * np.maximum(1.0, np.abs(lim))


def _ge(x: np.ndarray, lim: np.ndarray | float) -> np.ndarray:
    """x ≥ lim with relative tolerance (NaN → False)."""
    return x >= lim - _TOL * np.maximum(1.0, np.abs(lim))


def _cmp(x: np.ndarray, lim: np.ndarray | float, op: str) -> np.ndarray:
    return _le(x, lim) if op == "le" else _lt(x, lim)


def _pd_string(a: pa.Array, index: pd.Index) -> pd.Series:
    return pd.Series(pd.array(a, dtype="string"), index=index)


@dataclass
class Criterion:
    """One criterion evaluated over visits: known/ok arrays plus a reason per row."""

    name: str
    label: str
    known: np.ndarray  # bool: could be judged
    ok: np.ndarray  # bool: met (meaningful where known)
    message: Msg  # reason where failed or not evaluable, none where met

    @property
    def failed(self) -> np.ndarray:
        return self.known & ~self.ok

    @property
    def met(self) -> np.ndarray:
        return self.known & self.ok


def _criterion(name: str, label: str, ok, fail, fail_msg: Msg, na_msg: Msg) -> Criterion:
    """Build a Criterion from ok/fail masks; rows in neither are not evaluable."""
    fail = np.asarray(fail, dtype=bool)
    ok = np.asarray(ok, dtype=bool) & ~fail
    known = ok | fail
    msg = _m_choose(fail, fail_msg, na_msg.where(~known))
    return Criterion(name, label, known, ok, msg)


def _kleene_and(criteria: Sequence[Criterion], n: int) -> tuple[np.ndarray, np.ndarray]:
    """(met, failed) of the conjunction; neither = not evaluable."""
    fail = np.zeros(n, dtype=bool)
    na = np.zeros(n, dtype=bool)
    for c in criteria:
        fail |= c.failed
        na |= ~c.known
    return ~fail & ~na, fail


def _why(criteria: Sequence[Criterion], n: int) -> Msg:
    """Reasons of every criterion failed or not judged, in criterion order."""
    return _m_join([c.message for c in criteria], n)


def _met_array(met: np.ndarray, failed: np.ndarray) -> pd.arrays.BooleanArray:
    """True / False / <NA> (neither met nor failed = not evaluable)."""
    return pd.arrays.BooleanArray(met.copy(), ~met & ~failed)


def _lazy_and(criteria: Sequence[Criterion], n: int) -> tuple[np.ndarray, np.ndarray, Msg]:
    """(met, failed, reason) of the conjunction; the reason not yet materialised.

    A criterion's reason is absent where it is met, so the joined reason is
    absent exactly where the endpoint is met.
    """
    met, failed = _kleene_and(criteria, n)
    return met, failed, _why(criteria, n)


def _frames(
    results: dict[str, tuple[np.ndarray, np.ndarray, Msg]], index: pd.Index
) -> dict[str, tuple[pd.Series, pd.Series]]:
    """Materialise every reason in one pass: name → (met, why) Series."""
    names = list(results)
    whys = materialize([results[k][2] for k in names])
    return {
        k: (
            pd.Series(_met_array(results[k][0], results[k][1]), index=index),
            _pd_string(w, index),
        )
        for k, w in zip(names, whys, strict=True)
    }


def combine(criteria: Sequence[Criterion], index: pd.Index) -> pd.DataFrame:
    """Kleene AND of criteria → DataFrame(met: boolean, why: string)."""
    met, why = _frames({"x": _lazy_and(criteria, len(index))}, index)["x"]
    return pd.DataFrame({"met": met, "why": why}, index=index)


def breakdown(criteria: Sequence[Criterion], index: pd.Index) -> pd.DataFrame:
    """Per-criterion status ('met' / 'failed' / 'not evaluable') and detail text."""
    details = materialize([c.message for c in criteria])
    data = {}
    for c, d in zip(criteria, details, strict=True):
        status = np.where(c.failed, FAILED, np.where(c.known, MET, NOT_EVALUABLE))
        data[c.name] = pd.array(status, dtype="string")
        data[f"{c.name}_detail"] = _pd_string(d, index)
    return pd.DataFrame(data, index=index)


# --------------------------------------------------------------------------
# SLEDAI-2K and clinical SLEDAI (§1)
# --------------------------------------------------------------------------

_WEIGHTS = {k: w for k, w, _, _ in SLEDAI_DESCRIPTORS}
_ALL = tuple(d[0] for d in SLEDAI_DESCRIPTORS)
_CLINICAL = tuple(k for k in _ALL if k not in SEROLOGY)


def _descriptor_sums(df: pd.DataFrame, keys: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(weight of descriptors recorded True, weight of descriptors missing) per row."""
    n = len(df)
    true_w = np.zeros(n)
    na_w = np.zeros(n)
    for k in keys:
        t, f = _bool(df, f"sledai_{k}")
        true_w += _WEIGHTS[k] * t
        na_w += _WEIGHTS[k] * ~(t | f)
    return true_w, na_w


def sledai_bounds(df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper bound of SLEDAI-2K per visit from the reported score and descriptors.

    A reported ``sledai2k`` is exact (the importer rejects one that disagrees
    with complete descriptors); otherwise the bounds run from the weight of the
    descriptors recorded present to that plus the weight of missing ones
    (a missing descriptor is unknown, not absent).
    """
    t, na = _descriptor_sums(df, _ALL)
    s = _col(df, "sledai2k")
    have = ~np.isnan(s)
    return np.where(have, s, t), np.where(have, s, t + na)


def csledai_bounds(df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper bound of clinical SLEDAI per visit (§1: SLEDAI-2K minus serology).

    From descriptors: [present clinical weight, + missing clinical weight].
    From a reported SLEDAI-2K s: cSLEDAI ∈ [s − possible serology, s − serology
    recorded present], possible serology being at most 4 points (low
    complement 2 + increased DNA binding 2). So with no descriptors, s = 0
    gives cSLEDAI = 0 and s > 4 gives cSLEDAI ≥ s − 4 > 0 (not in remission),
    while 1 ≤ s ≤ 4 leaves cSLEDAI unknown.
    """
    ct, cna = _descriptor_sums(df, _CLINICAL)
    st, sna = _descriptor_sums(df, SEROLOGY)
    s = _col(df, "sledai2k")
    have = ~np.isnan(s)
    lo = np.where(have, np.maximum(ct, s - st - sna), ct)
    hi = np.where(have, np.minimum(ct + cna, s - st), ct + cna)
    return lo, hi


def sledai2k_from_descriptors(df: pd.DataFrame) -> pd.Series:
    """SLEDAI-2K (0–105) from the 24 descriptors; <NA> unless every descriptor is recorded."""
    t, na = _descriptor_sums(df, _ALL)
    out = pd.array(t.astype("int64"), dtype="Int64")
    out[na > 0] = pd.NA
    return pd.Series(out, index=df.index, name="sledai2k")


def csledai_from_descriptors(df: pd.DataFrame) -> pd.Series:
    """Clinical SLEDAI (0–101) from the 22 non-serological descriptors; <NA> if any missing."""
    t, na = _descriptor_sums(df, _CLINICAL)
    out = pd.array(t.astype("int64"), dtype="Int64")
    out[na > 0] = pd.NA
    return pd.Series(out, index=df.index, name="csledai")


def exact_or_na(lo: np.ndarray, hi: np.ndarray, index: pd.Index, name: str) -> pd.Series:
    """Integer Series where the bounds coincide (value known exactly), <NA> elsewhere."""
    out = pd.array(np.nan_to_num(lo).astype("int64"), dtype="Int64")
    out[~(lo == hi)] = pd.NA
    return pd.Series(out, index=index, name=name)


# --------------------------------------------------------------------------
# Visit order: previous assessment of the same patient
# --------------------------------------------------------------------------


def previous_row(df: pd.DataFrame) -> np.ndarray:
    """Position of the same patient's previous visit (by visit_week), −1 if none."""
    n = len(df)
    prev = np.full(n, -1, dtype=np.int64)
    if n == 0 or "patient_id" not in df.columns or "visit_week" not in df.columns:
        return prev
    codes, _ = pd.factorize(df["patient_id"])
    week = _col(df, "visit_week")
    order = np.lexsort((week, codes))
    same = codes[order][1:] == codes[order][:-1]
    prev[order[1:][same]] = order[:-1][same]
    return prev


def _take(a: np.ndarray, pos: np.ndarray, fill) -> np.ndarray:
    out = a[np.maximum(pos, 0)] if a.size else a.copy()
    out[pos < 0] = fill
    return out


# --------------------------------------------------------------------------
# LLDAS (§3) and remission (§4)
# --------------------------------------------------------------------------


def _sledai_criterion(
    lo: np.ndarray, hi: np.ndarray, limit: float, op: str, label: str, name: str
) -> Criterion:
    """Score within the limit: met if the upper bound is, failed if the lower bound is not."""
    ok = _cmp(hi, limit, op)
    fail = ~np.isnan(lo) & ~_cmp(lo, limit, op)
    sym = _FAIL_OPS[op]

    def fmt(a, b):
        v = _num(a) if a == b else f"≥ {_num(a)}"
        return f"{label} {v} {sym} {_num(limit)}"

    return _criterion(
        name,
        f"{label} {_OPS[op]} {_num(limit)}",
        ok,
        fail,
        _m_fmt(fail, fmt, lo, hi),
        _m_const(~(ok | fail), f"{label} missing"),
    )


def _descriptor_names(masks: Sequence[tuple[np.ndarray, str]], n: int) -> Msg:
    """Comma-separated labels of the masks true in each row (none if no mask is)."""
    code = np.zeros(n, dtype=np.int64)
    for i, (m, _) in enumerate(masks):
        code |= m.astype(np.int64) << i
    return _m_fmt(
        code > 0,
        lambda c: ", ".join(lab for i, (_, lab) in enumerate(masks) if (int(c) >> i) & 1),
        code,
    )


def _major_organ_criterion(df: pd.DataFrame, total_hi: np.ndarray) -> Criterion:
    """No major organ activity, haemolytic anaemia or GI activity (LLDAS criterion 1).

    Activity recorded by any source fails (major_organ_activity column, a
    major-organ SLEDAI-2K descriptor, haemolytic_anaemia, gi_activity). Absence
    is shown by the column being False, by every major descriptor being
    recorded absent, or by SLEDAI-2K = 0 (no descriptor can then be present).
    Haemolytic anaemia and GI activity are not SLEDAI items: when not recorded
    they are taken as absent (otherwise no file without those columns could
    ever reach LLDAS).
    """
    n = len(df)
    col_t, col_f = _bool(df, "major_organ_activity")
    ha_t, _ = _bool(df, "haemolytic_anaemia")
    gi_t, _ = _bool(df, "gi_activity")
    desc_active = np.zeros(n, dtype=bool)
    desc_all_false = np.ones(n, dtype=bool)
    names = []
    for key, _w, label, group in SLEDAI_DESCRIPTORS:
        if group not in MAJOR_ORGAN_GROUPS:
            continue
        t, f = _bool(df, f"sledai_{key}")
        desc_active |= t
        desc_all_false &= f
        names.append((t, label.lower()))
    fail = col_t | desc_active | ha_t | gi_t
    ok = col_f | desc_all_false | (total_hi == 0)
    msg = _m_join(
        [
            # The descriptors name the organ; the bare flag only where they do not.
            _m_const(col_t & ~desc_active, "major organ activity recorded"),
            _descriptor_names(names, n).map(lambda s: f"major organ activity ({s})"),
            _m_const(ha_t, "haemolytic anaemia"),
            _m_const(gi_t, "GI activity"),
        ],
        n,
    )
    return _criterion(
        "major_organ",
        "no major organ activity, haemolytic anaemia or GI activity",
        ok,
        fail,
        msg,
        _m_const(np.ones(n, dtype=bool), "major organ activity not recorded"),
    )


def _new_activity_criterion(df: pd.DataFrame, total_hi: np.ndarray) -> Criterion:
    """No new activity since the previous assessment (LLDAS criterion 2; Oon et al.).

    ``new_activity`` column where recorded; otherwise (and additionally: any
    source recording new activity fails) from descriptors: a descriptor present
    now that was recorded absent at the same patient's previous visit. A
    descriptor present now whose previous state is unknown (in particular at
    the first assessment) leaves the criterion not evaluable; with nothing
    present now (all descriptors absent, or SLEDAI-2K 0) nothing can be new.
    """
    n = len(df)
    col_t, col_f = _bool(df, "new_activity")
    prev = previous_row(df)
    has_prev = prev >= 0
    prev_zero = _take(total_hi, prev, np.nan) == 0  # previous SLEDAI-2K 0: nothing present
    cur_zero = total_hi == 0
    new_any = np.zeros(n, dtype=bool)
    unknown_any = np.zeros(n, dtype=bool)
    names = []
    for key, _w, label, _g in SLEDAI_DESCRIPTORS:
        t, f = _bool(df, f"sledai_{key}")
        f = f | cur_zero
        t = t & ~cur_zero
        pf = _take(f, prev, False) | prev_zero
        pt = _take(t, prev, False)
        new = t & pf
        unknown = ~(t | f) | (t & ~pf & ~pt)
        new_any |= new
        unknown_any |= unknown
        names.append((new, label.lower()))
    fail = col_t | new_any
    ok = col_f | ~unknown_any
    msg = _m_join(
        [
            _m_const(col_t & ~new_any, "new activity recorded"),
            _descriptor_names(names, n).map(lambda s: f"new activity ({s})"),
        ],
        n,
    )
    na_msg = _m_choose(
        has_prev,
        _m_const(has_prev, "new activity not recorded"),
        _m_const(~has_prev, "new activity not evaluable (first assessment)"),
    )
    return _criterion(
        "new_activity", "no new activity since the previous assessment", ok, fail, msg, na_msg
    )


def _threshold(
    x: np.ndarray, limit: float, op: str, label: str, unit: str = "", name: str | None = None
) -> Criterion:
    """x {≤,<} limit; missing x → not evaluable."""
    have = ~np.isnan(x)
    ok = have & _cmp(x, limit, op)
    fail = have & ~ok
    u = f" {unit}" if unit else ""
    sym = _FAIL_OPS[op]
    return _criterion(
        name or label.lower().replace(" ", "_"),
        f"{label} {_OPS[op]} {_num(limit)}{u}",
        ok,
        fail,
        _m_fmt(fail, lambda v: f"{label} {_d(v)}{u} {sym} {_num(limit)}{u}", x),
        _m_const(~have, f"{label} missing"),
    )


def _pga_criterion(df: pd.DataFrame, limit: float, op: str) -> Criterion:
    return _threshold(_col(df, "pga"), limit, op, "PGA", name="pga")


def _pred_criterion(
    df: pd.DataFrame,
    max_mg: float,
    op: str,
    mg_kg: float | None,
    fallback_weight_kg: np.ndarray | None,
) -> Criterion:
    """Prednisone-equivalent dose within a fixed or weight-based (min(k × kg, max)) limit."""
    dose = _col(df, "prednisone_mg_day")
    if mg_kg is None:
        return _threshold(dose, max_mg, op, "prednisone", "mg", name="prednisone")
    have = ~np.isnan(dose)
    weight = _col(df, "weight_kg")
    if fallback_weight_kg is not None:
        weight = np.where(np.isnan(weight), fallback_weight_kg, weight)
    wt = ~np.isnan(weight)
    limit = np.minimum(mg_kg * weight, max_mg)  # NaN where no weight
    # Without weight the dose still decides at the extremes: above the cap
    # fails, and a dose of 0 meets any positive "≤" limit.
    over_cap = have & ~_cmp(dose, max_mg, op)
    ok = have & ((wt & _cmp(dose, limit, op)) | (~wt & (dose == 0) & (op == "le")))
    fail = (have & wt & ~ok) | over_cap
    sym = _FAIL_OPS[op]

    def limit_text(w):
        if np.isnan(w):
            return f"{_num(max_mg)} mg"
        lim = min(mg_kg * w, max_mg)
        return f"{_d(lim)} mg (min({_num(mg_kg)} mg/kg × {_d(w, 2)} kg, {_num(max_mg)} mg))"

    # Two parts, each formatted once per distinct value, then joined.
    fail_msg = _m_cat(
        _m_fmt(fail, lambda v: f"prednisone {_d(v)} mg {sym} ", dose),
        _m_fmt(fail, limit_text, weight, digits=2),
    )

    na_msg = _m_choose(
        have,
        _m_const(have, "weight missing for the mg/kg limit"),
        _m_const(~have, "prednisone missing"),
    )
    return _criterion(
        "prednisone",
        f"prednisone {_OPS[op]} min({_num(mg_kg)} mg/kg, {_num(max_mg)} mg)/day",
        ok,
        fail,
        fail_msg,
        na_msg,
    )


def _maintenance_criterion(n: int) -> Criterion:
    """LLDAS criterion 5: maintenance therapy is not in the data contract, assumed met."""
    ones = np.ones(n, dtype=bool)
    return Criterion(
        "maintenance",
        "standard maintenance therapy (assumed: not recorded)",
        ones,
        ones.copy(),
        _m_none(n),
    )


def _as_weight(fallback_weight_kg, n: int) -> np.ndarray | None:
    if fallback_weight_kg is None:
        return None
    w = fallback_weight_kg
    if isinstance(w, pd.Series):
        w = pd.to_numeric(w, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    elif not (isinstance(w, np.ndarray) and w.dtype == np.float64):
        w = pd.to_numeric(pd.Series(list(w), dtype=object), errors="coerce")
        w = w.to_numpy(dtype="float64", na_value=np.nan)
    if len(w) != n:
        raise ValueError(f"fallback_weight_kg has {len(w)} values for {n} visits")
    return w


def lldas_criteria(
    visits: pd.DataFrame,
    preset: Preset | str = "standard",
    fallback_weight_kg: Sequence[float] | pd.Series | None = None,
    *,
    cache: dict | None = None,
) -> list[Criterion]:
    """The five LLDAS criteria (Franklyn 2016 or the preset's variant) per visit.

    ``cache``: a dict shared between calls on the same visits frame, so that
    criteria that do not depend on the preset are computed once.
    """
    p = get_preset(preset)
    n = len(visits)
    c = {} if cache is None else cache
    lo, hi = _memo(c, ("sledai_bounds",), lambda: sledai_bounds(visits))
    return [
        _memo(
            c,
            ("sledai", p.lldas_sledai_max, p.lldas_sledai_op),
            lambda: _sledai_criterion(
                lo, hi, p.lldas_sledai_max, p.lldas_sledai_op, "SLEDAI-2K", "sledai"
            ),
        ),
        _memo(c, ("major_organ",), lambda: _major_organ_criterion(visits, hi)),
        _memo(c, ("new_activity",), lambda: _new_activity_criterion(visits, hi)),
        _memo(
            c,
            ("pga", p.lldas_pga_max, p.lldas_pga_op),
            lambda: _pga_criterion(visits, p.lldas_pga_max, p.lldas_pga_op),
        ),
        _memo(
            c,
            ("pred", p.lldas_pred_max_mg, p.lldas_pred_op, p.lldas_pred_mg_kg),
            lambda: _pred_criterion(
                visits,
                p.lldas_pred_max_mg,
                p.lldas_pred_op,
                p.lldas_pred_mg_kg,
                _as_weight(fallback_weight_kg, n),
            ),
        ),
        _maintenance_criterion(n),
    ]


def _memo(cache: dict, key: tuple, fn):
    if key not in cache:
        cache[key] = fn()
    return cache[key]


def _csledai_criterion(df: pd.DataFrame) -> Criterion:
    """Clinical SLEDAI = 0 (DORIS 2021), judged from its bounds (see csledai_bounds)."""
    lo, hi = csledai_bounds(df)
    s = _col(df, "sledai2k")
    ok = hi == 0
    fail = lo > 0

    def fmt(a, b, total):
        if a == b:
            return f"cSLEDAI {_num(a)} > 0"
        if np.isnan(total):
            return f"cSLEDAI ≥ {_num(a)} > 0"
        return f"cSLEDAI ≥ {_num(a)} > 0 (SLEDAI-2K {_num(total)} without serology descriptors)"

    def namsg(total):
        if np.isnan(total):
            return "cSLEDAI missing"
        return f"cSLEDAI not evaluable (SLEDAI-2K {_num(total)} without serology descriptors)"

    return _criterion(
        "csledai",
        "clinical SLEDAI = 0",
        ok,
        fail,
        _m_fmt(fail, fmt, lo, hi, s),
        _m_fmt(~(ok | fail), namsg, s),
    )


def remission_criteria(
    visits: pd.DataFrame,
    preset: Preset | str = "standard",
    fallback_weight_kg: Sequence[float] | pd.Series | None = None,
    *,
    cache: dict | None = None,
) -> list[Criterion]:
    """The remission criteria (DORIS 2021 or the preset's variant) per visit."""
    p = get_preset(preset)
    n = len(visits)
    c = {} if cache is None else cache
    if p.remission_sledai_basis == "clinical":
        first = _memo(c, ("csledai",), lambda: _csledai_criterion(visits))
    else:
        lo, hi = _memo(c, ("sledai_bounds",), lambda: sledai_bounds(visits))
        first = _memo(
            c,
            ("sledai", 0, "le"),
            lambda: _sledai_criterion(lo, hi, 0, "le", "SLEDAI-2K", "sledai"),
        )
    return [
        first,
        _memo(
            c,
            ("pga", p.remission_pga_max, p.remission_pga_op),
            lambda: _pga_criterion(visits, p.remission_pga_max, p.remission_pga_op),
        ),
        _memo(
            c,
            ("pred", p.remission_pred_max_mg, p.remission_pred_op, p.remission_pred_mg_kg),
            lambda: _pred_criterion(
                visits,
                p.remission_pred_max_mg,
                p.remission_pred_op,
                p.remission_pred_mg_kg,
                _as_weight(fallback_weight_kg, n),
            ),
        ),
    ]


def evaluate_lldas(
    visits: pd.DataFrame,
    preset: Preset | str = "standard",
    fallback_weight_kg: Sequence[float] | pd.Series | None = None,
    *,
    cache: dict | None = None,
) -> pd.DataFrame:
    """LLDAS per visit: DataFrame(met: boolean with <NA> = not evaluable, why: string).

    ``visits`` needs patient_id and visit_week for criterion 2 (previous
    assessment); ``fallback_weight_kg`` (aligned to visits) is the patient's
    baseline weight used by the paediatric preset where the visit has none.
    """
    crits = lldas_criteria(visits, preset, fallback_weight_kg, cache=cache)
    return combine(crits, visits.index)


def evaluate_remission(
    visits: pd.DataFrame,
    preset: Preset | str = "standard",
    fallback_weight_kg: Sequence[float] | pd.Series | None = None,
    *,
    cache: dict | None = None,
) -> pd.DataFrame:
    """Remission per visit: DataFrame(met: boolean with <NA> = not evaluable, why: string)."""
    crits = remission_criteria(visits, preset, fallback_weight_kg, cache=cache)
    return combine(crits, visits.index)


def criteria_breakdown(
    visits: pd.DataFrame,
    definition: str,
    preset: Preset | str = "standard",
    fallback_weight_kg: Sequence[float] | pd.Series | None = None,
) -> pd.DataFrame:
    """Per-criterion status ('met'/'failed'/'not evaluable') and detail, for the patient page.

    ``definition``: 'lldas', 'remission' or one of RENAL_KINDS. Columns: one per
    criterion (status) and ``<criterion>_detail`` (the reason text).
    """
    if definition == "lldas":
        crits = lldas_criteria(visits, preset, fallback_weight_kg)
    elif definition == "remission":
        crits = remission_criteria(visits, preset, fallback_weight_kg)
    elif definition in RENAL_KINDS:
        crits = renal_criteria(visits, definition)
    else:
        raise ValueError(f"unknown definition {definition!r}")
    return breakdown(crits, visits.index)


# --------------------------------------------------------------------------
# Renal response (§5)
# --------------------------------------------------------------------------

# KDIGO 2021/2024: complete = UPCR < 0.5 g/g; partial = ≥ 50 % reduction and
# < 3 g/g; kidney function "stable (±10–15 %)": we take the stricter 10 %,
# eGFR ≥ 0.9 × baseline.
KDIGO_COMPLETE_UPCR = 0.5
KDIGO_PARTIAL_UPCR = 3.0
KDIGO_PARTIAL_REDUCTION = 0.5
KDIGO_EGFR_FRACTION = 0.9
# BLISS-LN (Furie et al. 2020, NEJM): CRR = UPCR < 0.5 and eGFR no more than
# 10 % below reference or ≥ 90; PERR = UPCR ≤ 0.7 and eGFR no more than 20 %
# below reference or ≥ 60.
CRR_UPCR, CRR_EGFR_FRACTION, CRR_EGFR_ABS = 0.5, 0.9, 90.0
PERR_UPCR, PERR_EGFR_FRACTION, PERR_EGFR_ABS = 0.7, 0.8, 60.0


@dataclass(frozen=True)
class RenalEligibility:
    """Who a renal response applies to: baseline proteinuria at or above a threshold.

    A patient below it cannot "respond", so the response is not applicable
    (<NA>) at every visit, and ``column`` in patient_facts is False.
    """

    name: str
    column: str  # patient-level flag in patient_facts
    min_g_g: float  # baseline UPCR (or 24-h protein, g/day) at or above which it applies
    label: str
    source: str

    def describe(self) -> str:
        return f"{self.label}: baseline proteinuria ≥ {_num(self.min_g_g)} g/g [{self.source}]"


# KDIGO active nephritis: proteinuria ≥ 0.5 g/g, the complete-response threshold
# (CLINICAL_DEFINITIONS.md, Additions 2026-12-01).
KDIGO_ACTIVE = RenalEligibility(
    "kdigo",
    "renal_eligible_kdigo",
    0.5,
    "active nephritis (KDIGO)",
    "KDIGO 2021/2024: a patient already below the complete-response UPCR of 0.5 g/g cannot "
    "respond",
)
# BLISS-LN enrolled UPCR ≥ 1 g/g (Furie et al. 2020, NEJM); CRR and PERR are
# applied to the population the trial defined them in.
BLISS_LN_ENROLMENT = RenalEligibility(
    "bliss_ln",
    "renal_eligible_bliss_ln",
    1.0,
    "BLISS-LN enrolment",
    "Furie et al. 2020, NEJM: the trial enrolled UPCR ≥ 1 g/g",
)
RENAL_ELIGIBILITY: dict[str, RenalEligibility] = {
    e.name: e for e in (KDIGO_ACTIVE, BLISS_LN_ENROLMENT)
}


@dataclass(frozen=True)
class RenalResponse:
    """One renal response definition: its column, criteria, source and eligibility."""

    name: str
    label: str
    criteria: str
    source: str
    eligibility: RenalEligibility

    def describe(self) -> str:
        return (
            f"{self.name} ({self.label}) [{self.source}]: {self.criteria}; only patients with "
            f"{self.eligibility.describe()}"
        )

    def to_dict(self) -> dict:
        """JSON-serialisable metadata (Methods page, report)."""
        d = asdict(self)
        d["eligibility_min_g_g"] = self.eligibility.min_g_g
        d["eligibility_column"] = self.eligibility.column
        d["text"] = self.describe()
        return d


_KDIGO = "KDIGO 2021/2024 lupus nephritis guideline"
_BLISS = "BLISS-LN, Furie et al. 2020, NEJM"
_EGFR_KDIGO = f"eGFR ≥ {_num(KDIGO_EGFR_FRACTION)} × baseline"
RENAL_RESPONSES: dict[str, RenalResponse] = {
    r.name: r
    for r in (
        RenalResponse(
            "renal_complete",
            "complete renal response",
            f"proteinuria < {_num(KDIGO_COMPLETE_UPCR)} g/g and {_EGFR_KDIGO} (stable within "
            "10 %; KDIGO allows 10–15 %, the stricter bound is used)",
            _KDIGO,
            KDIGO_ACTIVE,
        ),
        RenalResponse(
            "renal_partial",
            "partial renal response (not complete)",
            f"proteinuria reduced by ≥ 50 % from baseline to < {_num(KDIGO_PARTIAL_UPCR)} g/g "
            f"but still ≥ {_num(KDIGO_COMPLETE_UPCR)} g/g (otherwise it is a complete "
            f"response), and {_EGFR_KDIGO}",
            _KDIGO,
            KDIGO_ACTIVE,
        ),
        RenalResponse(
            "renal_overall",
            "overall renal response (complete or partial)",
            "renal_complete or renal_partial: " + _EGFR_KDIGO + " and either proteinuria < "
            f"{_num(KDIGO_COMPLETE_UPCR)} g/g or a ≥ 50 % reduction to < "
            f"{_num(KDIGO_PARTIAL_UPCR)} g/g",
            _KDIGO,
            KDIGO_ACTIVE,
        ),
        RenalResponse(
            "renal_crr",
            "BLISS-LN complete renal response (CRR)",
            f"UPCR < {_num(CRR_UPCR)} g/g and eGFR ≥ {_num(CRR_EGFR_FRACTION)} × baseline or "
            f"≥ {_num(CRR_EGFR_ABS)}",
            _BLISS,
            BLISS_LN_ENROLMENT,
        ),
        RenalResponse(
            "renal_perr",
            "BLISS-LN primary efficacy renal response (PERR)",
            f"UPCR ≤ {_num(PERR_UPCR)} g/g and eGFR ≥ {_num(PERR_EGFR_FRACTION)} × baseline or "
            f"≥ {_num(PERR_EGFR_ABS)}",
            _BLISS,
            BLISS_LN_ENROLMENT,
        ),
    )
}
RENAL_KINDS = tuple(RENAL_RESPONSES)


def describe_renal() -> list[str]:
    """Human-readable renal response criteria with sources and eligibility (Methods, report)."""
    return [
        (
            "Renal response, relative to the patient's week-0 visit, and only for the patients "
            "its definition applies to (otherwise not applicable): "
            + "; ".join(e.describe() for e in RENAL_ELIGIBILITY.values())
            + ". Proteinuria = UPCR (g/g), else 24-h urine protein (g/day ≈ g/g). eGFR is "
            "compared with the baseline eGFR only when both come from the same source "
            "(egfr_source: one equation per patient, or both reported)."
        ),
        *(f"  {r.describe()}" for r in RENAL_RESPONSES.values()),
        (
            "  BLISS-LN treatment failure and the steroid-taper rule are not recorded in the data "
            "contract and not applied (as in the Toronto mCRR/mPERR); week 0 stands in for the "
            "pre-flare reference."
        ),
    ]


def renal_thresholds() -> dict:
    """Renal thresholds in force, JSON-serialisable (the report's `definitions`)."""
    return {
        "eligibility": {e.name: asdict(e) for e in RENAL_ELIGIBILITY.values()},
        "definitions": {k: r.to_dict() for k, r in RENAL_RESPONSES.items()},
        "kdigo_complete_upcr_lt": KDIGO_COMPLETE_UPCR,
        "kdigo_partial_upcr_lt": KDIGO_PARTIAL_UPCR,
        "kdigo_partial_reduction_to_at_most": KDIGO_PARTIAL_REDUCTION,
        "kdigo_egfr_fraction_of_baseline": KDIGO_EGFR_FRACTION,
        "crr_upcr_lt": CRR_UPCR,
        "crr_egfr_fraction_of_baseline": CRR_EGFR_FRACTION,
        "crr_egfr_absolute": CRR_EGFR_ABS,
        "perr_upcr_le": PERR_UPCR,
        "perr_egfr_fraction_of_baseline": PERR_EGFR_FRACTION,
        "perr_egfr_absolute": PERR_EGFR_ABS,
        "renal_partial_includes_complete": False,
        "criteria": describe_renal(),
    }


# Every renal threshold in force, for the Methods page and the report.
RENAL_THRESHOLDS = renal_thresholds()


def _proteinuria(df: pd.DataFrame) -> np.ndarray:
    """UPCR (g/g), or 24-h urine protein (g/day ≈ g/g, §8) where UPCR is missing."""
    upcr = _col(df, "upcr_g_g")
    u24 = _col(df, "urine_protein_g_24h")
    return np.where(np.isnan(upcr), u24, upcr)


def _baseline(df: pd.DataFrame, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(patient's value at visit_week 0, patient has a week-0 visit) per row.

    Float values give NaN, other values None, where the patient has no week-0 visit.
    """
    n = len(df)
    fill = np.nan if values.dtype.kind == "f" else None
    if n == 0 or "patient_id" not in df.columns or "visit_week" not in df.columns:
        return np.full(n, fill, dtype=values.dtype), np.zeros(n, dtype=bool)
    codes, uniq = pd.factorize(df["patient_id"])
    base = np.full(len(uniq), fill, dtype=values.dtype)
    has = np.zeros(len(uniq), dtype=bool)
    is0 = _col(df, "visit_week") == 0
    base[codes[is0]] = values[is0]
    has[codes[is0]] = True
    return base[codes], has[codes]


def _eligibility(
    base_prot: np.ndarray, has_base: np.ndarray, elig: RenalEligibility
) -> Criterion:
    """Baseline proteinuria ≥ the definition's threshold; otherwise not applicable."""
    active = _ge(base_prot, elig.min_g_g)

    def fmt(b, hb):
        if not hb:
            return "no baseline visit"
        if np.isnan(b):
            return "baseline proteinuria missing"
        if elig is KDIGO_ACTIVE:
            return (
                f"no active nephritis at baseline (proteinuria {_d(b)} < "
                f"{_num(elig.min_g_g)} g/g)"
            )
        return f"not eligible: baseline proteinuria {_d(b)} < {_num(elig.min_g_g)} g/g ({elig.label})"

    # Never "failed": not applicable is not evaluable, whatever else happens.
    return Criterion(
        "active_nephritis" if elig is KDIGO_ACTIVE else f"{elig.name}_eligible",
        elig.describe(),
        active,
        active.copy(),
        _m_fmt(~active, fmt, base_prot, has_base),
    )


def renal_eligibility(visits: pd.DataFrame) -> pd.DataFrame:
    """Per visit, the patient's eligibility for each renal definition family (boolean).

    Columns ``RenalEligibility.column`` (``renal_eligible_kdigo``,
    ``renal_eligible_bliss_ln``): True if the week-0 proteinuria is at or above
    the threshold, False if below, <NA> if the patient has no week-0 visit or
    its proteinuria is missing. The same value on every row of a patient.
    """
    prot = _proteinuria(visits)
    base, _ = _baseline(visits, prot)
    known = ~np.isnan(base)
    return pd.DataFrame(
        {
            e.column: pd.arrays.BooleanArray(_ge(base, e.min_g_g) & known, ~known)
            for e in RENAL_ELIGIBILITY.values()
        },
        index=visits.index,
    )


def _egfr_relative(
    egfr: np.ndarray,
    base: np.ndarray,
    fraction: float,
    absolute: float | None,
    comparable: np.ndarray,
    sources: tuple[np.ndarray, np.ndarray],
) -> Criterion:
    """eGFR ≥ fraction × baseline, or (when given) ≥ absolute: Kleene OR of the two.

    The relative part needs the baseline eGFR from the same source as this
    visit's (``comparable``): a ratio of two equations' estimates is not a change
    in kidney function (CLINICAL_DEFINITIONS.md, Additions 2026-12-01).
    """
    have, have_b = ~np.isnan(egfr), ~np.isnan(base)
    rel = have & have_b & comparable
    rel_ok = rel & _ge(egfr, fraction * base)
    rel_fail = rel & ~rel_ok
    if absolute is None:
        ok, fail = rel_ok, rel_fail
        alt = ""
    else:
        abs_ok = have & _ge(egfr, absolute)
        ok, fail = rel_ok | abs_ok, rel_fail & ~abs_ok
        alt = f" and < {_num(absolute)}"
    label = f"eGFR ≥ {_num(fraction)} × baseline"
    if absolute is not None:
        label += f" or ≥ {_num(absolute)}"
    mixed = have & have_b & ~comparable
    src, base_src = sources
    na_msg = _m_join(
        [
            _m_const(~have, "eGFR missing"),
            _m_const(have & ~have_b, "baseline eGFR missing"),
            _m_fmt(
                mixed,
                lambda s, b: f"eGFR not comparable with baseline (this visit {s}, baseline {b})",
                src,
                base_src,
            ),
        ],
        len(egfr),
    )
    return _criterion(
        "egfr",
        label,
        ok,
        fail,
        _m_cat(
            _m_fmt(fail, lambda v: f"eGFR {_d(v, 1)} < {_num(fraction)} × ", egfr, digits=1),
            _m_fmt(fail, lambda b: f"baseline {_d(b, 1)}{alt}", base, digits=1),
        ),
        na_msg,
    )


def _reduction(prot: np.ndarray, base: np.ndarray) -> Criterion:
    """Proteinuria reduced by ≥ 50 % from baseline (KDIGO partial)."""
    have = ~np.isnan(prot) & ~np.isnan(base)
    ok = have & _le(prot, KDIGO_PARTIAL_REDUCTION * base)
    fail = have & ~ok
    p_na = np.isnan(prot)
    na_msg = _m_choose(
        p_na, _m_const(p_na, "proteinuria missing"), _m_const(~p_na, "baseline proteinuria missing")
    )
    return _criterion(
        "proteinuria_reduction",
        "proteinuria ≤ 50 % of baseline",
        ok,
        fail,
        _m_cat(
            _m_fmt(fail, lambda v: f"proteinuria {_d(v)} > 50 % of ", prot),
            _m_fmt(fail, lambda b: f"baseline {_d(b)} g/g", base),
        ),
        na_msg,
    )


def _not_complete(prot: np.ndarray) -> Criterion:
    """Proteinuria ≥ 0.5 g/g: a partial response that is not a complete one.

    With proteinuria < 0.5 g/g the visit is either a complete response (eGFR
    stable) or no response (eGFR fell): never a partial one, whatever else is
    unknown.
    """
    have = ~np.isnan(prot)
    complete_range = have & _lt(prot, KDIGO_COMPLETE_UPCR)
    lim = _num(KDIGO_COMPLETE_UPCR)
    return _criterion(
        "proteinuria_not_complete",
        f"proteinuria ≥ {lim} g/g (not a complete response)",
        have & ~complete_range,
        complete_range,
        _m_fmt(
            complete_range,
            lambda v: f"proteinuria {_d(v)} g/g < {lim} g/g: complete-response range",
            prot,
        ),
        _m_const(~have, "proteinuria missing"),
    )


def renal_criteria(
    visits: pd.DataFrame, kind: str, *, cache: dict | None = None
) -> list[Criterion]:
    """Criteria of one renal definition per visit, relative to the patient's week-0 visit.

    - renal_complete (KDIGO): proteinuria < 0.5 g/g and eGFR ≥ 0.9 × baseline.
    - renal_partial (KDIGO partial, **not** complete): eGFR ≥ 0.9 × baseline,
      ≥ 50 % reduction from baseline, < 3 g/g and ≥ 0.5 g/g.
    - renal_overall (complete or partial): eGFR ≥ 0.9 × baseline and either
      proteinuria < 0.5 g/g or (≥ 50 % reduction and < 3 g/g).
    - renal_crr / renal_perr (BLISS-LN): proteinuria < 0.5 / ≤ 0.7 g/g and
      eGFR ≥ 0.9 / 0.8 × baseline or ≥ 90 / 60; the week-0 value stands in for
      the pre-flare reference; treatment failure and the steroid-taper rule
      are not recorded and not applied (as in the Toronto mCRR/mPERR).
    The first criterion is the definition's eligibility (``RENAL_RESPONSES[kind]
    .eligibility``: KDIGO active nephritis ≥ 0.5 g/g, BLISS-LN enrolment ≥ 1 g/g
    at baseline); otherwise the response is not applicable (<NA>). Proteinuria
    = UPCR, else 24-h urine protein (g/day ≈ g/g). eGFR is compared with the
    baseline only when both have the same ``egfr_source`` (when that column is
    given). eGFR missing → not evaluable unless the proteinuria criterion
    already fails.
    """
    if kind not in RENAL_RESPONSES:
        raise ValueError(f"unknown renal definition {kind!r}; choose one of {RENAL_KINDS}")
    c = {} if cache is None else cache

    def inputs():
        prot = _proteinuria(visits)
        egfr = _col(visits, "egfr_ml_min")
        base_prot, has_base = _baseline(visits, prot)
        base_egfr, _ = _baseline(visits, egfr)
        n = len(visits)
        if "egfr_source" in visits.columns:
            src = visits["egfr_source"].astype(object).to_numpy()
            src = np.where(pd.isna(src), None, src).astype(object)
            base_src, _ = _baseline(visits, src)
            comparable = (src == base_src) | pd.isna(src) | pd.isna(base_src)
            comparable = np.asarray(comparable, dtype=bool)
        else:
            src = base_src = np.full(n, None, dtype=object)
            comparable = np.ones(n, dtype=bool)
        return prot, egfr, base_prot, has_base, base_egfr, comparable, (src, base_src)

    prot, egfr, base_prot, has_base, base_egfr, comparable, sources = _memo(
        c, ("renal_inputs",), inputs
    )
    elig = RENAL_RESPONSES[kind].eligibility
    applic = _memo(
        c, ("renal_eligibility", elig.name), lambda: _eligibility(base_prot, has_base, elig)
    )

    def egfr_crit(fraction, absolute):
        return _memo(
            c,
            ("renal_egfr", fraction, absolute),
            lambda: _egfr_relative(egfr, base_egfr, fraction, absolute, comparable, sources),
        )

    p5 = _memo(
        c,
        ("renal_p5",),
        lambda: _threshold(prot, KDIGO_COMPLETE_UPCR, "lt", "proteinuria", "g/g"),
    )
    if kind == "renal_complete":
        return [applic, p5, egfr_crit(KDIGO_EGFR_FRACTION, None)]
    if kind in ("renal_partial", "renal_overall"):
        red = _memo(c, ("renal_reduction",), lambda: _reduction(prot, base_prot))
        p3 = _memo(
            c,
            ("renal_p3",),
            lambda: _threshold(
                prot, KDIGO_PARTIAL_UPCR, "lt", "proteinuria", "g/g", name="proteinuria_partial"
            ),
        )
        eg = egfr_crit(KDIGO_EGFR_FRACTION, None)
        if kind == "renal_partial":
            return [applic, _memo(c, ("renal_not_p5",), lambda: _not_complete(prot)), red, p3, eg]
        return [applic, p5, red, p3, eg]
    if kind == "renal_crr":
        return [
            applic,
            _threshold(prot, CRR_UPCR, "lt", "proteinuria", "g/g"),
            egfr_crit(CRR_EGFR_FRACTION, CRR_EGFR_ABS),
        ]
    return [
        applic,
        _threshold(prot, PERR_UPCR, "le", "proteinuria", "g/g"),
        egfr_crit(PERR_EGFR_FRACTION, PERR_EGFR_ABS),
    ]


def _renal_lazy(
    visits: pd.DataFrame, kind: str, cache: dict | None
) -> tuple[np.ndarray, np.ndarray, Msg]:
    crits = renal_criteria(visits, kind, cache=cache)
    n = len(visits)
    applic = crits[0]
    if kind == "renal_overall":
        _, p5, red, p3, eg = crits
        # complete or partial = applicable ∧ eGFR ∧ (P < 0.5 ∨ (reduction ∧ P < 3)).
        part_met, part_fail = _kleene_and([red, p3], n)
        inner_met = p5.met | part_met
        inner_fail = p5.failed & part_fail
        inner_msg = _m_join([p5.message, red.message, p3.message], n).where(~inner_met)
        inner = Criterion("proteinuria_any", "", inner_met | inner_fail, inner_met, inner_msg)
        crits = [applic, inner, eg]
    met, failed = _kleene_and(crits, n)
    na = ~applic.known
    failed &= ~na
    # Not applicable: that reason alone (applic.message is present exactly there).
    why = _m_join([applic.message, *(c.message.where(~na) for c in crits[1:])], n)
    return met, failed, why


def evaluate_renal(visits: pd.DataFrame, kind: str, *, cache: dict | None = None) -> pd.DataFrame:
    """One renal definition per visit: DataFrame(met: boolean, why: string).

    Not applicable (no baseline visit, baseline proteinuria missing or below
    the definition's eligibility threshold) is always <NA> with only that
    reason, even where a later value would fail a threshold.
    """
    met, why = _frames({"x": _renal_lazy(visits, kind, cache)}, visits.index)["x"]
    return pd.DataFrame({"met": met, "why": why}, index=visits.index)


def evaluate_all(
    visits: pd.DataFrame,
    fallback_weight_kg: Sequence[float] | pd.Series | None = None,
    presets: Sequence[str] = tuple(PRESETS),
) -> pd.DataFrame:
    """Every endpoint per visit, named as in schema.VISIT_DERIVED.

    Columns ``lldas_<preset>``, ``remission_<preset>`` (boolean, <NA> = not
    evaluable) with ``_why`` text, then every ``RENAL_KINDS`` column and its
    ``_why``. Criteria shared between presets or definitions are computed once
    and every reason text is built in one pass.
    """
    cache: dict = {}
    n = len(visits)
    lazy: dict[str, tuple[np.ndarray, np.ndarray, Msg]] = {}
    for p in presets:
        lazy[f"lldas_{p}"] = _lazy_and(
            lldas_criteria(visits, p, fallback_weight_kg, cache=cache), n
        )
        lazy[f"remission_{p}"] = _lazy_and(
            remission_criteria(visits, p, fallback_weight_kg, cache=cache), n
        )
    for k in RENAL_KINDS:
        lazy[k] = _renal_lazy(visits, k, cache)
    out: dict[str, pd.Series] = {}
    for k, (met, why) in _frames(lazy, visits.index).items():
        out[k], out[f"{k}_why"] = met, why
    return pd.DataFrame(out, index=visits.index)


# --------------------------------------------------------------------------
# Glucocorticoids (§7) and eGFR (§8)
# --------------------------------------------------------------------------

# Factor to prednisone-equivalent mg (Meikle & Tyler 1977): dose equivalent to
# 5 mg prednisone is 5 (prednisone, prednisolone), 4 (methylprednisolone),
# 0.75 (dexamethasone), 20 (hydrocortisone) mg. Factor = 5 / that dose, kept
# exact (dexamethasone 6.666…, which the table prints as 6.67).
PREDNISONE_FACTORS: dict[str, float] = {
    "prednisone": 1.0,
    "prednisolone": 1.0,
    "methylprednisolone": 5 / 4,
    "dexamethasone": 5 / 0.75,
    "hydrocortisone": 5 / 20,
}


def prednisone_equivalent(drug, dose_mg):
    """Prednisone-equivalent mg for a glucocorticoid dose (scalars or Series, §7)."""
    if isinstance(drug, str):
        key = drug.strip().lower()
        if key not in PREDNISONE_FACTORS:
            raise ValueError(
                f"unknown glucocorticoid {drug!r}; known: {sorted(PREDNISONE_FACTORS)}"
            )
        return dose_mg * PREDNISONE_FACTORS[key]
    drugs = pd.Series(drug).astype("string").str.strip().str.lower()
    factor = drugs.map(PREDNISONE_FACTORS).astype("float64")
    unknown = drugs.notna() & factor.isna()
    if unknown.any():
        raise ValueError(f"unknown glucocorticoid(s): {sorted(set(drugs[unknown]))}")
    return pd.Series(factor.to_numpy() * np.asarray(dose_mg, dtype="float64"), index=drugs.index)


UMOL_PER_MG_DL_CREATININE = 88.4  # §8: mg/dL × 88.4 = µmol/L


def _like(val: np.ndarray, *inputs):
    """A Series on the first Series input's index, else the array."""
    for x in inputs:
        if isinstance(x, pd.Series):
            return pd.Series(val, index=x.index)
    return val


def _sex_masks(sex) -> tuple[np.ndarray, np.ndarray]:
    """(female, male) boolean arrays (scalars for a scalar) from 'F'/'M' in any case."""
    s = pd.Series(np.atleast_1d(np.asarray(sex, dtype=object))).astype("string")
    s = s.str.strip().str.upper()
    female = (s == "F").fillna(False).to_numpy(dtype=bool)
    male = (s == "M").fillna(False).to_numpy(dtype=bool)
    if np.ndim(sex) == 0:
        return female[0], male[0]
    return female, male


def egfr_ckd_epi_2021(creatinine_umol_l, age, sex):
    """CKD-EPI 2021 race-free eGFR (mL/min/1.73 m²), adults (Inker et al. 2021, NEJM).

    eGFR = 142 × min(Scr/κ, 1)^α × max(Scr/κ, 1)^−1.200 × 0.9938^age × 1.012 [F];
    κ 0.7 (F) / 0.9 (M), α −0.241 (F) / −0.302 (M), Scr in mg/dL. Accepts
    scalars or array-likes; NaN where an input is missing or sex is not F/M.
    The one implementation in the package (synth.py uses it too).
    """
    scalar = np.ndim(creatinine_umol_l) == 0 and np.ndim(age) == 0 and np.ndim(sex) == 0
    scr = np.asarray(creatinine_umol_l, dtype="float64") / UMOL_PER_MG_DL_CREATININE
    age_a = np.asarray(age, dtype="float64")
    female, male = _sex_masks(sex)
    kappa = np.where(female, 0.7, 0.9)
    alpha = np.where(female, -0.241, -0.302)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = scr / kappa
        val = (
            142.0
            * np.minimum(r, 1.0) ** alpha
            * np.maximum(r, 1.0) ** -1.200
            * 0.9938**age_a
            * np.where(female, 1.012, 1.0)
        )
    val = np.where((female | male) & (scr > 0), val, np.nan)
    return float(val) if scalar else _like(val, creatinine_umol_l, age, sex)


# CKiD U25 creatinine equation (Pierce et al. 2021, Kidney Int 99:948–956;
# the CKiD study's reference code, github.com/ckidstudy/CKiD_U25):
# eGFR = K × height (m) / Scr (mg/dL), K by sex and age —
#   male:   age < 12: 39.0 × 1.008^(age − 12); 12–18: 39.0 × 1.045^(age − 12); ≥ 18: 50.8
#   female: age < 12: 36.1 × 1.008^(age − 12); 12–18: 36.1 × 1.023^(age − 12); ≥ 18: 41.4
# Validated for ages 1–25. K is continuous at 18 (39.0 × 1.045^6 = 50.79;
# 36.1 × 1.023^6 = 41.37), so a child who turns 18 on it sees no jump.
U25_MIN_AGE, U25_MAX_AGE = 1.0, 25.0


def egfr_ckid_u25(creatinine_umol_l, height_cm, age, sex):
    """CKiD U25 eGFR (mL/min/1.73 m²): K(sex, age) × height (m) / Scr (mg/dL).

    NaN where an input is missing, sex is not F/M or age < 1. Beyond 25 the
    age-18 constant is kept (a patient started on U25 before 25 stays on it,
    see ``egfr_equation``).
    """
    scalar = all(np.ndim(x) == 0 for x in (creatinine_umol_l, height_cm, age, sex))
    scr = np.asarray(creatinine_umol_l, dtype="float64") / UMOL_PER_MG_DL_CREATININE
    h_m = np.asarray(height_cm, dtype="float64") / 100.0
    a = np.asarray(age, dtype="float64")
    female, male = _sex_masks(sex)
    with np.errstate(invalid="ignore"):
        k_m = np.where(a < 12, 39.0 * 1.008 ** (a - 12),
                       np.where(a < 18, 39.0 * 1.045 ** (a - 12), 50.8))
        k_f = np.where(a < 12, 36.1 * 1.008 ** (a - 12),
                       np.where(a < 18, 36.1 * 1.023 ** (a - 12), 41.4))
    k = np.where(female, k_f, np.where(male, k_m, np.nan))
    with np.errstate(divide="ignore", invalid="ignore"):
        val = k * h_m / scr
    val = np.where((scr > 0) & (a >= U25_MIN_AGE), val, np.nan)
    return float(val) if scalar else _like(val, creatinine_umol_l, height_cm, age, sex)


# One eGFR equation per patient, chosen at baseline (CLINICAL_DEFINITIONS.md,
# Additions 2026-12-01; docs/CLINICAL_CHOICES.md): under 25 → CKiD U25, which
# covers children and young adults with one continuous equation (Pierce 2021);
# 25 and over → CKD-EPI 2021. A patient 18–24 with no height anywhere gets
# CKD-EPI 2021 (valid from 18; needs no height) rather than no eGFR at all.
EGFR_EQUATIONS = ("ckid_u25", "ckd_epi_2021")


def egfr_equation(age_at_baseline_years, has_height) -> np.ndarray:
    """The equation for each patient: 'ckid_u25', 'ckd_epi_2021' or None (none applies).

    ``has_height``: the patient has a height at baseline or at any visit.
    """
    age = np.atleast_1d(np.asarray(age_at_baseline_years, dtype="float64"))
    h = np.atleast_1d(np.asarray(has_height, dtype=bool))
    u25 = (age < U25_MAX_AGE) & h
    adult = age >= 18
    return np.where(u25, "ckid_u25", np.where(adult, "ckd_epi_2021", None)).astype(object)


def egfr(
    creatinine_umol_l: Sequence[float],
    age_years: Sequence[float],
    sex: Sequence[str],
    height_cm: Sequence[float] | None,
    equation: Sequence[str | None],
) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise eGFR with each row's (the patient's) equation; see ``egfr_equation``.

    Returns (values, source) where source is the equation used, or None (NaN
    value) when the inputs do not suffice.
    """
    scr = np.asarray(creatinine_umol_l, dtype="float64")
    age = np.asarray(age_years, dtype="float64")
    n = scr.shape[0]
    h = np.full(n, np.nan) if height_cm is None else np.asarray(height_cm, dtype="float64")
    eq = np.asarray(equation, dtype=object)
    sx = np.asarray(sex, dtype=object)
    u25, epi = eq == "ckid_u25", eq == "ckd_epi_2021"
    val = np.where(
        u25,
        egfr_ckid_u25(scr, h, age, sx),
        np.where(epi, egfr_ckd_epi_2021(scr, age, sx), np.nan),
    )
    ok = ~np.isnan(val)
    src = np.where(ok & u25, "ckid_u25", np.where(ok & epi, "ckd_epi_2021", None))
    return val, src.astype(object)


# --------------------------------------------------------------------------
# Glucocorticoid exposure (§7; issue 16)
# --------------------------------------------------------------------------


def prednisone_mg_kg_day(dose_mg_day, weight_kg) -> np.ndarray:
    """Prednisone-equivalent mg/kg/day = mg/day ÷ weight (kg) (§7); NaN without a weight."""
    dose = np.asarray(dose_mg_day, dtype="float64")
    w = np.asarray(weight_kg, dtype="float64")
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(w > 0, dose / w, np.nan)


def cumulative_prednisone_g(
    patient_id: Sequence, visit_week: Sequence[float], dose_mg_day: Sequence[float]
) -> pd.Series:
    """Cumulative prednisone-equivalent exposure (g) per patient over follow-up.

    Step function: the daily dose recorded at a visit is taken every day until
    the next visit (a visit records the dose prescribed at it, and doses are
    changed at visits), so exposure = Σ dose_i × 7 × (week_{i+1} − week_i) mg
    from week 0 to the last visit; the last visit's dose starts no interval.
    Chosen over the trapezoid because it uses only doses that were prescribed:
    the trapezoid invents intermediate doses and understates a high dose held
    until a visit and then cut. It overstates a taper done between visits.
    NaN (unknown) where the patient has no week-0 visit or a dose that starts
    an interval is missing; 0 g for a patient seen only at week 0. Nominal
    weeks are used (visit_week × 7 days), like follow_up_months.
    """
    df = pd.DataFrame(
        {
            "p": np.asarray(patient_id, dtype=object),
            "w": pd.to_numeric(pd.Series(visit_week), errors="coerce").to_numpy(dtype="float64"),
            "d": pd.to_numeric(pd.Series(dose_mg_day), errors="coerce").to_numpy(
                dtype="float64"
            ),
        }
    ).dropna(subset=["p", "w"])
    df = df.sort_values(["p", "w"], kind="stable")
    nxt = df.groupby("p", sort=False)["w"].shift(-1)
    days = (nxt - df["w"]) * 7.0
    contrib = df["d"] * days  # NaN where the dose is missing; NaN for the last visit
    starts = nxt.notna()
    g = pd.DataFrame({"p": df["p"], "c": contrib.where(starts, 0.0), "w": df["w"]})
    total = g.groupby("p", sort=False)["c"].sum(min_count=1)
    missing = g.assign(m=g["c"].isna()).groupby("p", sort=False)["m"].any()
    has0 = g.assign(z=g["w"] == 0).groupby("p", sort=False)["z"].any()
    out = total.where(~missing & has0) / 1000.0
    out.name = "cumulative_prednisone_g"
    return out
