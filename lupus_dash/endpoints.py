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
margin (e.g. 0.9 × 70 = 63.00000000000001 in binary floating point, and
eGFR 63.0 must count as "within 10 %" of a baseline of 70; 0.1 mg/kg × 30 kg =
3.0000000000000004 mg and a 3 mg dose must count as "≤"). No clinical value is
recorded to nine significant digits, so the tolerance never changes a real
decision.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

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

_OPS = {"le": "≤", "lt": "<"}
_FAIL_OPS = {"le": ">", "lt": "≥"}


@dataclass(frozen=True)
class Preset:
    """A named set of LLDAS and remission thresholds with their operators."""

    name: str
    label: str
    # LLDAS (Franklyn et al. 2016, Ann Rheum Dis, Table 1)
    lldas_sledai_max: int = 4
    lldas_sledai_op: str = "le"
    lldas_pga_max: float = 1.0
    lldas_pga_op: str = "le"
    lldas_pred_max_mg: float = 7.5
    lldas_pred_op: str = "le"
    lldas_pred_mg_kg: float | None = None  # paediatric: limit = min(k × weight, max)
    lldas_source: str = "Franklyn et al. 2016, Ann Rheum Dis (LLDAS)"
    # Remission (DORIS 2021, van Vollenhoven et al., Lupus Sci Med)
    remission_sledai_basis: str = "clinical"  # "clinical" = cSLEDAI, "total" = SLEDAI-2K
    remission_pga_max: float = 0.5
    remission_pga_op: str = "lt"
    remission_pred_max_mg: float = 5.0
    remission_pred_op: str = "le"
    remission_pred_mg_kg: float | None = None
    remission_source: str = "van Vollenhoven et al. 2021, Lupus Sci Med (DORIS remission)"

    def describe(self) -> list[str]:
        """Human-readable criteria with their sources, for the Methods page and the report."""
        lo, ro = _OPS[self.lldas_sledai_op], _OPS[self.lldas_pga_op]
        out = [
            f"LLDAS [{self.lldas_source}], all of:",
            (
                f"  1. SLEDAI-2K {lo} {self.lldas_sledai_max} with no major organ activity "
                "(renal, CNS, serosal/cardiopulmonary, vasculitis, fever; from the "
                "major_organ_activity column or the SLEDAI-2K descriptors) and no haemolytic "
                "anaemia or GI activity (counted when recorded as present)"
            ),
            (
                "  2. no new lupus activity since the previous assessment (new_activity column, "
                "or a SLEDAI-2K descriptor present that was absent at the previous assessment; "
                "not evaluable at a patient's first assessment unless no descriptor is active)"
            ),
            f"  3. PGA (0–3) {ro} {_num(self.lldas_pga_max)}",
            "  4. " + _pred_text(self.lldas_pred_op, self.lldas_pred_max_mg, self.lldas_pred_mg_kg),
            (
                "  5. standard maintenance immunosuppressants/biologics: not recorded in the "
                "data contract, assumed met"
            ),
        ]
        if self.remission_sledai_basis == "clinical":
            s = "clinical SLEDAI (SLEDAI-2K without low complement and increased DNA binding) = 0"
        else:
            s = "total SLEDAI-2K = 0 (serological activity also excluded)"
        out += [
            f"Remission [{self.remission_source}], all of:",
            f"  1. {s}",
            f"  2. PGA (0–3) {_OPS[self.remission_pga_op]} {_num(self.remission_pga_max)}",
            "  3. "
            + _pred_text(
                self.remission_pred_op, self.remission_pred_max_mg, self.remission_pred_mg_kg
            ),
            (
                "  4. stable antimalarials, immunosuppressants and biologics allowed "
                "(not recorded, assumed met)"
            ),
        ]
        return out

    def to_dict(self) -> dict:
        """Thresholds, operators and the criteria text, JSON-serialisable."""
        d = asdict(self)
        d["criteria"] = self.describe()
        return d


def _pred_text(op: str, max_mg: float, mg_kg: float | None) -> str:
    if mg_kg is None:
        return f"prednisone-equivalent {_OPS[op]} {_num(max_mg)} mg/day"
    return (
        f"prednisone-equivalent {_OPS[op]} min({_num(mg_kg)} mg/kg, {_num(max_mg)} mg)/day "
        "(weight of the visit, else the patient's baseline weight; no weight → not evaluable "
        f"unless the dose is 0 or above {_num(max_mg)} mg)"
    )


PRESETS: dict[str, Preset] = {
    # Published definitions (CLINICAL_DEFINITIONS.md §3, §4).
    "standard": Preset("standard", "Published definitions (LLDAS 2016, DORIS 2021)"),
    # As written in the paediatric seed paper: strict operators, total SLEDAI-2K.
    "seed_paper": Preset(
        "seed_paper",
        "Seed paper (strict: SLEDAI-2K < 4, PGA < 1, prednisone < 7.5; remission on total "
        "SLEDAI-2K, prednisone < 5)",
        lldas_sledai_op="lt",
        lldas_pga_op="lt",
        lldas_pred_op="lt",
        lldas_source="seed paper's wording of Franklyn et al. 2016 (LLDAS)",
        remission_sledai_basis="total",
        remission_pred_op="lt",
        remission_source="seed paper's wording of DORIS remission",
    ),
    # Paediatric weight-based variants (Smith et al. 2023 cLLDAS; Smith et al. 2024 cCR).
    "paediatric": Preset(
        "paediatric",
        "Paediatric (cLLDAS 2023, cCR 2024; weight-based prednisone limits)",
        lldas_pred_mg_kg=0.15,
        lldas_source="Smith et al. 2023, Clin Immunol (childhood LLDAS, cLLDAS)",
        remission_pred_mg_kg=0.1,
        remission_source="Smith et al. 2024, Clin Immunol (childhood clinical remission, cCR)",
    ),
}


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


def _num(x: float) -> str:
    """Display a number without trailing zeros (display only, never used in computation)."""
    x = float(x)
    return str(int(x)) if x.is_integer() else f"{x:g}"


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
    return x >= lim - _TOL * np.maximum(1.0, np.abs(lim))


def _cmp(x: np.ndarray, lim: np.ndarray | float, op: str) -> np.ndarray:
    return _le(x, lim) if op == "le" else _lt(x, lim)


def _join(parts: Sequence[np.ndarray], n: int) -> np.ndarray:
    """Row-wise '; '.join of object arrays holding str or None."""
    out = np.full(n, None, dtype=object)
    have = np.zeros(n, dtype=bool)
    for p in parts:
        pm = pd.notna(p)
        both, only = have & pm, ~have & pm
        if both.any():
            out[both] = out[both] + "; " + p[both]
        out[only] = p[only]
        have |= pm
    return out


def _msgs(n: int, mask: np.ndarray, fn, *arrays: np.ndarray) -> np.ndarray:
    """Object array with fn(*values) where mask, None elsewhere (only masked rows formatted)."""
    out = np.full(n, None, dtype=object)
    idx = np.flatnonzero(mask)
    if idx.size:
        out[idx] = [fn(*vals) for vals in zip(*(a[idx] for a in arrays))] if arrays else fn()
    return out


def _const(n: int, mask: np.ndarray, text: str) -> np.ndarray:
    out = np.full(n, None, dtype=object)
    out[mask] = text
    return out


@dataclass
class Criterion:
    """One criterion evaluated over visits: known/ok arrays plus a message per row."""

    name: str
    label: str
    known: np.ndarray  # bool: could be judged
    ok: np.ndarray  # bool: met (meaningful where known)
    message: np.ndarray  # object: text where failed or not evaluable, else None

    @property
    def failed(self) -> np.ndarray:
        return self.known & ~self.ok

    @property
    def met(self) -> np.ndarray:
        return self.known & self.ok


def _criterion(name, label, ok, fail, fail_msg, na_msg) -> Criterion:
    """Build a Criterion from ok/fail masks; rows in neither are not evaluable."""
    known = ok | fail
    msg = np.where(fail, fail_msg, np.where(known, None, na_msg))
    return Criterion(name, label, known, ok & ~fail, msg)


def combine(criteria: Sequence[Criterion], index: pd.Index) -> pd.DataFrame:
    """Kleene AND of criteria → DataFrame(met: boolean, why: string)."""
    n = len(index)
    any_fail = np.zeros(n, dtype=bool)
    any_na = np.zeros(n, dtype=bool)
    for c in criteria:
        any_fail |= c.failed
        any_na |= ~c.known
    met = pd.array(np.where(any_fail | any_na, False, True), dtype="boolean")
    met[any_na & ~any_fail] = pd.NA
    # why: failures first, then what could not be judged.
    fails = [np.where(c.failed, c.message, None) for c in criteria]
    nas = [np.where(~c.known, c.message, None) for c in criteria]
    why = _join(fails + nas, n)
    return pd.DataFrame({"met": met, "why": pd.array(why, dtype="string")}, index=index)


def breakdown(criteria: Sequence[Criterion], index: pd.Index) -> pd.DataFrame:
    """Per-criterion status ('met' / 'failed' / 'not evaluable') and detail text."""
    data = {}
    for c in criteria:
        status = np.where(c.failed, FAILED, np.where(c.known, MET, NOT_EVALUABLE))
        data[c.name] = pd.array(status, dtype="string")
        data[f"{c.name}_detail"] = pd.array(c.message, dtype="string")
    return pd.DataFrame(data, index=index)


# --------------------------------------------------------------------------
# SLEDAI-2K and clinical SLEDAI (§1)
# --------------------------------------------------------------------------


def _descriptor_sums(df: pd.DataFrame, keys: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(weight of descriptors recorded True, weight of descriptors missing) per row."""
    n = len(df)
    true_w = np.zeros(n)
    na_w = np.zeros(n)
    weights = {k: w for k, w, _, _ in SLEDAI_DESCRIPTORS}
    for k in keys:
        t, f = _bool(df, f"sledai_{k}")
        true_w += weights[k] * t
        na_w += weights[k] * ~(t | f)
    return true_w, na_w


_ALL = tuple(d[0] for d in SLEDAI_DESCRIPTORS)
_CLINICAL = tuple(k for k in _ALL if k not in SEROLOGY)


def sledai_bounds(df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper bound of SLEDAI-2K per visit from the reported score and descriptors.

    A reported ``sledai2k`` is exact (the importer rejects one that disagrees
    with complete descriptors); otherwise the bounds run from the weight of the
    descriptors recorded present to that plus the weight of missing ones.
    """
    t, na = _descriptor_sums(df, _ALL)
    s = _col(df, "sledai2k")
    have = ~np.isnan(s)
    return np.where(have, s, t), np.where(have, s, t + na)


def csledai_bounds(df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper bound of clinical SLEDAI per visit (§1: SLEDAI-2K minus serology).

    From descriptors: [present clinical weight, + missing clinical weight].
    From a reported SLEDAI-2K s: cSLEDAI ∈ [s − possible serology, s − serology
    recorded present], the possible serology being at most 4 points. So with no
    descriptors, s = 0 gives cSLEDAI = 0 and s > 4 gives cSLEDAI ≥ s − 4 > 0,
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
    out = a[np.maximum(pos, 0)].copy() if a.size else a.copy()
    out[pos < 0] = fill
    return out


# --------------------------------------------------------------------------
# LLDAS (§3) and remission (§4)
# --------------------------------------------------------------------------


def _sledai_criterion(df, lo, hi, limit: float, op: str, label: str, name: str) -> Criterion:
    n = len(df)
    ok = _cmp(hi, limit, op)
    fail = ~_cmp(lo, limit, op) & ~np.isnan(lo)
    sym = _FAIL_OPS[op]

    def fmsg(a, b):
        v = _num(a) if a == b else f"≥ {_num(a)}"
        return f"{label} {v} {sym} {_num(limit)}"

    return _criterion(
        name,
        f"{label} {_OPS[op]} {_num(limit)}",
        ok,
        fail,
        _msgs(n, fail, fmsg, lo, hi),
        _const(n, ~(ok | fail), f"{label} missing"),
    )


def _major_organ_criterion(df: pd.DataFrame, total_hi: np.ndarray) -> Criterion:
    """No major organ activity, no haemolytic anaemia, no GI activity (LLDAS criterion 1)."""
    n = len(df)
    col_t, col_f = _bool(df, "major_organ_activity")
    ha_t, _ = _bool(df, "haemolytic_anaemia")
    gi_t, _ = _bool(df, "gi_activity")
    active_names = np.full(n, None, dtype=object)
    desc_active = np.zeros(n, dtype=bool)
    desc_all_false = np.ones(n, dtype=bool)
    for key, _w, label, group in SLEDAI_DESCRIPTORS:
        if group not in MAJOR_ORGAN_GROUPS:
            continue
        t, f = _bool(df, f"sledai_{key}")
        desc_active |= t
        desc_all_false &= f
        if t.any():
            lab = label.lower()
            add = t & pd.notna(active_names)
            active_names[add] = active_names[add] + ", " + lab
            active_names[t & ~add] = lab
    # Any source recording activity decides; the column, complete negative
    # descriptors, or a SLEDAI-2K of 0 (no descriptor can be present) show absence.
    fail = col_t | desc_active | ha_t | gi_t
    ok = (col_f | desc_all_false | (total_hi == 0)) & ~fail
    parts = [
        _msgs(n, col_t, lambda: "major organ activity recorded"),
        _msgs(n, desc_active, lambda s: f"major organ activity ({s})", active_names),
        _const(n, ha_t, "haemolytic anaemia"),
        _const(n, gi_t, "GI activity"),
    ]
    return _criterion(
        "major_organ",
        "no major organ activity, haemolytic anaemia or GI activity",
        ok,
        fail,
        _join(parts, n),
        _const(n, ~(ok | fail), "major organ activity not recorded"),
    )


def _new_activity_criterion(df: pd.DataFrame, total_hi: np.ndarray) -> Criterion:
    """No new activity since the previous assessment (LLDAS criterion 2; Oon et al.)."""
    n = len(df)
    col_t, col_f = _bool(df, "new_activity")
    prev = previous_row(df)
    has_prev = prev >= 0
    prev_zero = _take(total_hi, prev, np.nan) == 0  # previous SLEDAI-2K 0: nothing present
    new_any = np.zeros(n, dtype=bool)
    unknown_any = np.zeros(n, dtype=bool)
    new_names = np.full(n, None, dtype=object)
    cur_zero = total_hi == 0
    for key, _w, label, _g in SLEDAI_DESCRIPTORS:
        t, f = _bool(df, f"sledai_{key}")
        f = f | cur_zero
        t = t & ~cur_zero
        pf = _take(f, prev, False) | prev_zero
        pt = _take(t, prev, False)
        new = t & pf
        # Not decided: the descriptor itself is missing, or present now with the
        # previous state unknown (or no previous assessment at all).
        unknown = ~(t | f) | (t & ~pf & ~pt)
        new_any |= new
        unknown_any |= unknown
        if new.any():
            lab = label.lower()
            add = new & pd.notna(new_names)
            new_names[add] = new_names[add] + ", " + lab
            new_names[new & ~add] = lab
    fail = col_t | new_any
    ok = (col_f | ~unknown_any) & ~fail
    na = ~(ok | fail)
    na_msg = np.where(
        has_prev, "new activity not recorded", "new activity not evaluable (first assessment)"
    ).astype(object)
    parts = [
        _msgs(n, col_t, lambda: "new activity recorded"),
        _msgs(n, new_any, lambda s: f"new activity ({s})", new_names),
    ]
    return _criterion(
        "new_activity",
        "no new activity since the previous assessment",
        ok,
        fail,
        _join(parts, n),
        np.where(na, na_msg, None),
    )


def _pga_criterion(df: pd.DataFrame, limit: float, op: str) -> Criterion:
    n = len(df)
    pga = _col(df, "pga")
    have = ~np.isnan(pga)
    ok = have & _cmp(pga, limit, op)
    fail = have & ~ok
    sym = _FAIL_OPS[op]
    return _criterion(
        "pga",
        f"PGA {_OPS[op]} {_num(limit)}",
        ok,
        fail,
        _msgs(n, fail, lambda v: f"PGA {_num(v)} {sym} {_num(limit)}", pga),
        _const(n, ~have, "PGA missing"),
    )


def _pred_criterion(
    df: pd.DataFrame,
    max_mg: float,
    op: str,
    mg_kg: float | None,
    fallback_weight_kg: np.ndarray | None,
) -> Criterion:
    n = len(df)
    dose = _col(df, "prednisone_mg_day")
    have = ~np.isnan(dose)
    sym = _FAIL_OPS[op]
    if mg_kg is None:
        ok = have & _cmp(dose, max_mg, op)
        fail = have & ~ok
        return _criterion(
            "prednisone",
            f"prednisone {_OPS[op]} {_num(max_mg)} mg/day",
            ok,
            fail,
            _msgs(n, fail, lambda v: f"prednisone {_num(v)} mg {sym} {_num(max_mg)} mg", dose),
            _const(n, ~have, "prednisone missing"),
        )
    weight = _col(df, "weight_kg")
    if fallback_weight_kg is not None:
        fb = np.asarray(fallback_weight_kg, dtype="float64")
        weight = np.where(np.isnan(weight), fb, weight)
    wt = ~np.isnan(weight)
    limit = np.minimum(mg_kg * weight, max_mg)  # NaN where no weight
    # Without weight the dose still decides at the extremes: above the cap fails,
    # and a dose of 0 meets any positive limit.
    over_cap = have & ~_cmp(dose, max_mg, op)
    ok = have & wt & _cmp(dose, limit, op)
    ok |= have & ~wt & (dose == 0) & (op == "le")
    fail = (have & wt & ~ok) | over_cap

    def fmsg(v, lim, w):
        if np.isnan(w):
            return f"prednisone {_num(v)} mg {sym} {_num(max_mg)} mg"
        return (
            f"prednisone {_num(v)} mg {sym} {_num(lim)} mg "
            f"(min({_num(mg_kg)} mg/kg × {_num(w)} kg, {_num(max_mg)} mg))"
        )

    na = ~(ok | fail)
    na_msg = np.where(have, "weight missing for the mg/kg limit", "prednisone missing")
    return _criterion(
        "prednisone",
        f"prednisone {_OPS[op]} min({_num(mg_kg)} mg/kg, {_num(max_mg)} mg)/day",
        ok,
        fail,
        _msgs(n, fail, fmsg, dose, limit, weight),
        np.where(na, na_msg.astype(object), None),
    )


def _maintenance_criterion(n: int) -> Criterion:
    """LLDAS criterion 5: maintenance therapy is not in the data contract, assumed met."""
    ones = np.ones(n, dtype=bool)
    return Criterion(
        "maintenance",
        "standard maintenance therapy (assumed: not recorded)",
        ones,
        ones.copy(),
        np.full(n, None, dtype=object),
    )


def _as_weight(fallback_weight_kg, n: int) -> np.ndarray | None:
    if fallback_weight_kg is None:
        return None
    return pd.to_numeric(pd.Series(np.asarray(fallback_weight_kg)), errors="coerce").to_numpy(
        dtype="float64", na_value=np.nan
    )[:n]


def lldas_criteria(
    visits: pd.DataFrame,
    preset: Preset | str = "standard",
    fallback_weight_kg: Sequence[float] | pd.Series | None = None,
) -> list[Criterion]:
    """The five LLDAS criteria evaluated per visit under a preset."""
    p = get_preset(preset)
    n = len(visits)
    lo, hi = sledai_bounds(visits)
    return [
        _sledai_criterion(
            visits, lo, hi, p.lldas_sledai_max, p.lldas_sledai_op, "SLEDAI-2K", "sledai"
        ),
        _major_organ_criterion(visits, hi),
        _new_activity_criterion(visits, hi),
        _pga_criterion(visits, p.lldas_pga_max, p.lldas_pga_op),
        _pred_criterion(
            visits,
            p.lldas_pred_max_mg,
            p.lldas_pred_op,
            p.lldas_pred_mg_kg,
            _as_weight(fallback_weight_kg, n),
        ),
        _maintenance_criterion(n),
    ]


def remission_criteria(
    visits: pd.DataFrame,
    preset: Preset | str = "standard",
    fallback_weight_kg: Sequence[float] | pd.Series | None = None,
) -> list[Criterion]:
    """The remission criteria (DORIS 2021 or the preset's variant) evaluated per visit."""
    p = get_preset(preset)
    n = len(visits)
    if p.remission_sledai_basis == "clinical":
        lo, hi = csledai_bounds(visits)
        crit = _csledai_criterion(visits, lo, hi)
    else:
        lo, hi = sledai_bounds(visits)
        crit = _sledai_criterion(visits, lo, hi, 0, "le", "SLEDAI-2K", "sledai")
    return [
        crit,
        _pga_criterion(visits, p.remission_pga_max, p.remission_pga_op),
        _pred_criterion(
            visits,
            p.remission_pred_max_mg,
            p.remission_pred_op,
            p.remission_pred_mg_kg,
            _as_weight(fallback_weight_kg, n),
        ),
    ]


def _csledai_criterion(df: pd.DataFrame, lo: np.ndarray, hi: np.ndarray) -> Criterion:
    n = len(df)
    ok = hi == 0
    fail = lo > 0
    s = _col(df, "sledai2k")

    def fmsg(a, b, total):
        if a == b:
            return f"cSLEDAI {_num(a)} > 0"
        if not np.isnan(total):
            return f"cSLEDAI ≥ {_num(a)} > 0 (SLEDAI-2K {_num(total)} without descriptors)"
        return f"cSLEDAI ≥ {_num(a)} > 0"

    def namsg(total):
        if np.isnan(total):
            return "cSLEDAI missing"
        return f"cSLEDAI not evaluable (SLEDAI-2K {_num(total)} without serology descriptors)"

    na = ~(ok | fail)
    return _criterion(
        "csledai",
        "clinical SLEDAI = 0",
        ok,
        fail,
        _msgs(n, fail, fmsg, lo, hi, s),
        _msgs(n, na, namsg, s),
    )


def evaluate_lldas(
    visits: pd.DataFrame,
    preset: Preset | str = "standard",
    fallback_weight_kg: Sequence[float] | pd.Series | None = None,
) -> pd.DataFrame:
    """LLDAS per visit: DataFrame(met: boolean with <NA> = not evaluable, why: string)."""
    return combine(lldas_criteria(visits, preset, fallback_weight_kg), visits.index)


def evaluate_remission(
    visits: pd.DataFrame,
    preset: Preset | str = "standard",
    fallback_weight_kg: Sequence[float] | pd.Series | None = None,
) -> pd.DataFrame:
    """Remission per visit: DataFrame(met: boolean with <NA> = not evaluable, why: string)."""
    return combine(remission_criteria(visits, preset, fallback_weight_kg), visits.index)


def criteria_breakdown(
    visits: pd.DataFrame,
    definition: str,
    preset: Preset | str = "standard",
    fallback_weight_kg: Sequence[float] | pd.Series | None = None,
) -> pd.DataFrame:
    """Per-criterion status and detail for 'lldas', 'remission' or a renal definition."""
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

# Active nephritis at baseline: proteinuria ≥ 0.5 g/g (the complete-response
# threshold); below it a patient cannot "respond", so renal endpoints are not
# applicable.
RENAL_ACTIVE_MIN_G_G = 0.5
# KDIGO 2021/2024: complete = UPCR < 0.5 g/g; partial = ≥ 50 % reduction and
# < 3 g/g; kidney function "stable (±10–15 %)" — we take the stricter 10 %:
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

RENAL_KINDS = ("renal_complete", "renal_partial", "renal_crr", "renal_perr")


def _proteinuria(df: pd.DataFrame) -> np.ndarray:
    """UPCR (g/g), or 24-h urine protein (g/day ≈ g/g, §8) when UPCR is absent."""
    upcr = _col(df, "upcr_g_g")
    u24 = _col(df, "urine_protein_g_24h")
    return np.where(np.isnan(upcr), u24, upcr)


def _baseline_values(df: pd.DataFrame, values: np.ndarray) -> np.ndarray:
    """Each row's patient's value at visit_week 0 (NaN if no baseline visit)."""
    n = len(df)
    if n == 0 or "patient_id" not in df.columns or "visit_week" not in df.columns:
        return np.full(n, np.nan)
    codes, uniq = pd.factorize(df["patient_id"])
    base = np.full(len(uniq), np.nan)
    is0 = _col(df, "visit_week") == 0
    base[codes[is0]] = values[is0]
    return base[codes]


def _has_baseline(df: pd.DataFrame) -> np.ndarray:
    n = len(df)
    if n == 0 or "patient_id" not in df.columns or "visit_week" not in df.columns:
        return np.zeros(n, dtype=bool)
    codes, uniq = pd.factorize(df["patient_id"])
    has = np.zeros(len(uniq), dtype=bool)
    has[codes[_col(df, "visit_week") == 0]] = True
    return has[codes]


def renal_criteria(visits: pd.DataFrame, kind: str) -> list[Criterion]:
    """Criteria of one renal definition per visit, relative to the patient's week-0 visit.

    ``kind``: renal_complete (KDIGO complete), renal_partial (KDIGO partial
    **or better**: a complete responder counts as partial too, so
    renal_partial ⊇ renal_complete), renal_crr, renal_perr (BLISS-LN, with
    the week-0 value as the pre-flare reference; treatment failure and the
    steroid-taper rule are not recorded and not applied, as in mCRR/mPERR).
    A patient whose baseline proteinuria is < 0.5 g/g has no active nephritis
    and is not applicable (<NA>). Proteinuria = UPCR, else 24-h protein.
    """
    if kind == "renal_partial":
        comp = renal_criteria(visits, "renal_complete")
        part = _renal_partial_only(visits)
        return [_or_criterion("partial_or_better", "KDIGO partial or complete", comp, part)]
    n = len(visits)
    prot = _proteinuria(visits)
    egfr = _col(visits, "egfr_ml_min")
    base_prot = _baseline_values(visits, prot)
    base_egfr = _baseline_values(visits, egfr)
    applic = _applicability(visits, base_prot)
    if kind == "renal_complete":
        crits = [
            _threshold(prot, KDIGO_COMPLETE_UPCR, "lt", "proteinuria", "g/g"),
            _egfr_relative(egfr, base_egfr, KDIGO_EGFR_FRACTION, None),
        ]
    elif kind == "renal_crr":
        crits = [
            _threshold(prot, CRR_UPCR, "lt", "proteinuria", "g/g"),
            _egfr_relative(egfr, base_egfr, CRR_EGFR_FRACTION, CRR_EGFR_ABS),
        ]
    elif kind == "renal_perr":
        crits = [
            _threshold(prot, PERR_UPCR, "le", "proteinuria", "g/g"),
            _egfr_relative(egfr, base_egfr, PERR_EGFR_FRACTION, PERR_EGFR_ABS),
        ]
    else:
        raise ValueError(f"unknown renal definition {kind!r}")
    return [applic, *crits] if n else crits


def _applicability(df: pd.DataFrame, base_prot: np.ndarray) -> Criterion:
    """Active nephritis at baseline; otherwise the endpoint is not applicable (NA)."""
    n = len(df)
    has_base = _has_baseline(df)
    active = _ge(base_prot, RENAL_ACTIVE_MIN_G_G)
    inactive = ~np.isnan(base_prot) & ~active

    def m(b, hb):
        if not hb:
            return "no baseline visit"
        if np.isnan(b):
            return "baseline proteinuria missing"
        return (
            f"no active nephritis at baseline (proteinuria {_num(b)} < "
            f"{_num(RENAL_ACTIVE_MIN_G_G)} g/g)"
        )

    na = ~active
    # Not applicable is "not evaluable" whatever else happens: never False.
    return Criterion(
        "active_nephritis",
        f"baseline proteinuria ≥ {_num(RENAL_ACTIVE_MIN_G_G)} g/g",
        active,
        active,
        _msgs(n, na | inactive, m, base_prot, has_base),
    )


def _threshold(x: np.ndarray, limit: float, op: str, label: str, unit: str) -> Criterion:
    n = len(x)
    have = ~np.isnan(x)
    ok = have & _cmp(x, limit, op)
    fail = have & ~ok
    sym = _FAIL_OPS[op]
    return _criterion(
        label.replace(" ", "_"),
        f"{label} {_OPS[op]} {_num(limit)} {unit}",
        ok,
        fail,
        _msgs(n, fail, lambda v: f"{label} {_num(v)} {sym} {_num(limit)} {unit}", x),
        _const(n, ~have, f"{label} missing"),
    )


def _egfr_relative(
    egfr: np.ndarray, base: np.ndarray, fraction: float, absolute: float | None
) -> Criterion:
    """eGFR ≥ fraction × baseline (or ≥ absolute, when given); Kleene OR of the two."""
    n = len(egfr)
    have, have_b = ~np.isnan(egfr), ~np.isnan(base)
    rel_ok = have & have_b & _ge(egfr, fraction * base)
    rel_fail = have & have_b & ~rel_ok
    if absolute is None:
        ok, fail = rel_ok, rel_fail
    else:
        abs_ok = have & _ge(egfr, absolute)
        ok = rel_ok | abs_ok
        fail = rel_fail & ~abs_ok
    pct = _num((1 - fraction) * 100)
    alt = "" if absolute is None else f" and < {_num(absolute)}"

    def fmsg(v, b):
        return f"eGFR {_num(v)} < {_num(fraction)} × baseline {_num(b)}{alt}"

    na_msg = np.where(~have, "eGFR missing", "baseline eGFR missing").astype(object)
    label = f"eGFR ≥ {_num(fraction)} × baseline (within {pct} %)"
    if absolute is not None:
        label += f" or ≥ {_num(absolute)}"
    return _criterion(
        "egfr",
        label,
        ok,
        fail,
        _msgs(n, fail, fmsg, egfr, base),
        np.where(~(ok | fail), na_msg, None),
    )


def _renal_partial_only(visits: pd.DataFrame) -> list[Criterion]:
    """KDIGO partial: ≥ 50 % reduction from baseline and < 3 g/g, eGFR ≥ 0.9 × baseline."""
    n = len(visits)
    prot = _proteinuria(visits)
    egfr = _col(visits, "egfr_ml_min")
    base_prot = _baseline_values(visits, prot)
    base_egfr = _baseline_values(visits, egfr)
    have = ~np.isnan(prot) & ~np.isnan(base_prot)
    red_ok = have & _le(prot, KDIGO_PARTIAL_REDUCTION * base_prot)
    red_fail = have & ~red_ok

    def rmsg(v, b):
        return f"proteinuria {_num(v)} > 50 % of baseline {_num(b)} g/g"

    reduction = _criterion(
        "proteinuria_reduction",
        "proteinuria reduced ≥ 50 % from baseline",
        red_ok,
        red_fail,
        _msgs(n, red_fail, rmsg, prot, base_prot),
        _const(n, ~have, "proteinuria missing"),
    )
    return [
        _applicability(visits, base_prot),
        reduction,
        _threshold(prot, KDIGO_PARTIAL_UPCR, "lt", "proteinuria", "g/g"),
        _egfr_relative(egfr, base_egfr, KDIGO_EGFR_FRACTION, None),
    ]


def _and_state(crits: Sequence[Criterion], n: int) -> tuple[np.ndarray, np.ndarray]:
    fail = np.zeros(n, dtype=bool)
    na = np.zeros(n, dtype=bool)
    for c in crits:
        fail |= c.failed
        na |= ~c.known
    return fail, na & ~fail


def _or_criterion(
    name: str, label: str, a: Sequence[Criterion], b: Sequence[Criterion]
) -> Criterion:
    """Kleene OR of two criterion conjunctions (for 'partial or better')."""
    n = len(a[0].known)
    fa, na_a = _and_state(a, n)
    fb, na_b = _and_state(b, n)
    ta, tb = ~fa & ~na_a, ~fb & ~na_b
    ok = ta | tb
    fail = fa & fb
    # The applicability criterion is shared: keep NA when not applicable.
    app_na = ~a[0].known if a[0].name == "active_nephritis" else np.zeros(n, dtype=bool)
    fail &= ~app_na
    msg_a = combine(a, pd.RangeIndex(n))["why"].to_numpy(dtype=object, na_value=None)
    msg_b = combine(b, pd.RangeIndex(n))["why"].to_numpy(dtype=object, na_value=None)
    msg = np.full(n, None, dtype=object)
    for i in np.flatnonzero(~ok):
        parts = (msg_a[i] or "").split("; ") + (msg_b[i] or "").split("; ")
        msg[i] = "; ".join(dict.fromkeys(p for p in parts if p)) or None
    return Criterion(name, label, ok | fail, ok, msg)


def evaluate_renal(visits: pd.DataFrame, kind: str) -> pd.DataFrame:
    """One renal definition per visit: DataFrame(met: boolean, why: string).

    Not applicable (no active nephritis at baseline, no baseline visit or
    baseline proteinuria missing) is always <NA> with only that reason, even
    where a later value would fail a threshold.
    """
    crits = renal_criteria(visits, kind)
    out = combine(crits, visits.index)
    n = len(visits)
    if n:
        prot = _proteinuria(visits)
        app = _applicability(visits, _baseline_values(visits, prot))
        na = ~app.known
        out.loc[na, "met"] = pd.NA
        out.loc[na, "why"] = pd.array(app.message[na], dtype="string")
    return out


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


def egfr_ckd_epi_2021(creatinine_umol_l, age, sex):
    """CKD-EPI 2021 race-free eGFR (mL/min/1.73 m²), adults (Inker et al. 2021, NEJM).

    eGFR = 142 × min(Scr/κ, 1)^α × max(Scr/κ, 1)^−1.200 × 0.9938^age × 1.012 [F];
    κ 0.7 (F) / 0.9 (M), α −0.241 (F) / −0.302 (M), Scr in mg/dL. Accepts
    scalars or array-likes; NaN where an input is missing or sex is not F/M.
    """
    scalar = np.ndim(creatinine_umol_l) == 0 and np.ndim(age) == 0 and np.ndim(sex) == 0
    scr = np.asarray(creatinine_umol_l, dtype="float64") / UMOL_PER_MG_DL_CREATININE
    age_a = np.asarray(age, dtype="float64")
    sex_s = pd.Series(np.atleast_1d(np.asarray(sex, dtype=object))).astype("string")
    sex_s = sex_s.str.strip().str.upper()
    female = (sex_s == "F").fillna(False).to_numpy(dtype=bool)
    male = (sex_s == "M").fillna(False).to_numpy(dtype=bool)
    if np.ndim(sex) == 0:
        female, male = female[0], male[0]
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
    return float(val) if scalar else val


def egfr_schwartz_bedside(height_cm, creatinine_umol_l):
    """Bedside Schwartz eGFR (mL/min/1.73 m²) for children: 0.413 × height (cm) / Scr (mg/dL)."""
    scalar = np.ndim(height_cm) == 0 and np.ndim(creatinine_umol_l) == 0
    scr = np.asarray(creatinine_umol_l, dtype="float64") / UMOL_PER_MG_DL_CREATININE
    with np.errstate(divide="ignore", invalid="ignore"):
        val = 0.413 * np.asarray(height_cm, dtype="float64") / scr
    val = np.where(scr > 0, val, np.nan)
    return float(val) if scalar else val


def egfr(
    creatinine_umol_l: Sequence[float],
    age_years: Sequence[float],
    sex: Sequence[str],
    height_cm: Sequence[float] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise eGFR and its source: age < 18 → bedside Schwartz (needs height), else CKD-EPI.

    Returns (values, source) where source is 'ckd_epi_2021', 'schwartz_bedside'
    or None (NaN value) when the inputs do not suffice.
    """
    scr = np.asarray(creatinine_umol_l, dtype="float64")
    age = np.asarray(age_years, dtype="float64")
    n = scr.shape[0]
    h = np.full(n, np.nan) if height_cm is None else np.asarray(height_cm, dtype="float64")
    adult = age >= 18
    child = age < 18
    adult_v = egfr_ckd_epi_2021(scr, age, np.asarray(sex, dtype=object))
    child_v = egfr_schwartz_bedside(h, scr)
    val = np.where(adult, adult_v, np.where(child, child_v, np.nan))
    ok = ~np.isnan(val)
    src = np.where(ok & adult, "ckd_epi_2021", np.where(ok & child, "schwartz_bedside", None))
    return val, src.astype(object)
