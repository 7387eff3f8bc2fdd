"""Clinical endpoints: every threshold edge under every preset, NA vs not met, reasons.

Values are hand-computed; the arithmetic is in the comments.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from lupus_dash import endpoints as E
from lupus_dash.schema import SLEDAI_COLUMNS, SLEDAI_DESCRIPTORS

NA = pd.NA

# A visit that meets every LLDAS and remission criterion, so each case below
# changes one component and the result depends on that component alone.
_BASE = {
    "patient_id": "p",
    "visit_week": 12,
    "sledai2k": 0,
    "pga": 0.0,
    "prednisone_mg_day": 0.0,
    "major_organ_activity": False,
    "new_activity": False,
}


def visits(*rows: dict, base: dict | None = None) -> pd.DataFrame:
    """One row per dict, each on top of the all-criteria-met visit; a distinct patient each."""
    b = _BASE if base is None else base
    out = []
    for i, r in enumerate(rows):
        row = {**b, "patient_id": f"p{i}", **r}
        out.append(row)
    df = pd.DataFrame(out)
    for c in ("major_organ_activity", "new_activity"):
        if c in df:
            df[c] = df[c].astype("boolean")
    return df


def no_descriptors_but(*present: str, missing: tuple[str, ...] = ()) -> dict:
    """All 24 SLEDAI-2K descriptors recorded absent except `present` (True) and `missing`."""
    d = {c: False for c in SLEDAI_COLUMNS}
    for k in present:
        d[f"sledai_{k}"] = True
    for k in missing:
        d[f"sledai_{k}"] = None
    return d


def one(df: pd.DataFrame, fn, *args, **kw):
    r = fn(df, *args, **kw)
    return r["met"].iloc[0], r["why"].iloc[0]


def same(a, b) -> bool:
    return (a is NA and b is NA) or (a is not NA and b is not NA and bool(a) == bool(b))


# --------------------------------------------------------------------------
# Presets
# --------------------------------------------------------------------------


def test_presets_thresholds_and_operators():
    s, seed, paed = E.PRESETS["standard"], E.PRESETS["seed_paper"], E.PRESETS["paediatric"]
    assert (s.lldas_sledai_max, s.lldas_sledai_op, s.lldas_pga_max, s.lldas_pga_op) == (
        4,
        "le",
        1.0,
        "le",
    )
    assert (s.lldas_pred_max_mg, s.lldas_pred_op) == (7.5, "le")
    assert (s.remission_sledai_basis, s.remission_pga_op, s.remission_pred_op) == (
        "clinical",
        "lt",
        "le",
    )
    assert (seed.lldas_sledai_op, seed.lldas_pga_op, seed.lldas_pred_op) == ("lt", "lt", "lt")
    assert (seed.remission_sledai_basis, seed.remission_pred_op) == ("total", "lt")
    assert (paed.lldas_pred_mg_kg, paed.lldas_pred_max_mg) == (0.15, 7.5)
    assert (paed.remission_pred_mg_kg, paed.remission_pred_max_mg) == (0.1, 5.0)


@pytest.mark.parametrize("name", sorted(E.PRESETS))
def test_describe_and_to_dict(name):
    p = E.PRESETS[name]
    text = "\n".join(p.describe())
    assert "Franklyn" in text or "Smith" in text or "seed" in text
    assert "maintenance" in text and "assumed met" in text
    d = p.to_dict()
    assert d["name"] == name and d["criteria"] == p.describe()
    assert {"lldas_sledai_max", "lldas_pga_op", "remission_pred_max_mg"} <= set(d)


def test_describe_shows_operators():
    assert "SLEDAI-2K ≤ 4" in E.PRESETS["standard"].describe()[1]
    assert "SLEDAI-2K < 4" in E.PRESETS["seed_paper"].describe()[1]
    assert any("min(0.15 mg/kg, 7.5 mg)" in s for s in E.PRESETS["paediatric"].describe())
    assert any("min(0.1 mg/kg, 5 mg)" in s for s in E.PRESETS["paediatric"].describe())


def test_unknown_preset():
    with pytest.raises(ValueError, match="unknown preset"):
        E.get_preset("nope")


# --------------------------------------------------------------------------
# LLDAS threshold edges
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "preset, sledai, expected",
    [
        ("standard", 3, True),
        ("standard", 4, True),  # ≤ 4
        ("standard", 5, False),
        ("seed_paper", 3, True),
        ("seed_paper", 4, False),  # < 4
        ("seed_paper", 5, False),
        ("paediatric", 3, True),
        ("paediatric", 4, True),
        ("paediatric", 5, False),
    ],
)
def test_lldas_sledai_edges(preset, sledai, expected):
    met, _ = one(visits({"sledai2k": sledai}), E.evaluate_lldas, preset, [50.0])
    assert met is not NA and bool(met) is expected


@pytest.mark.parametrize(
    "preset, pga, expected",
    [
        ("standard", 1.0, True),  # ≤ 1
        ("standard", 1.1, False),
        ("seed_paper", 0.9, True),
        ("seed_paper", 1.0, False),  # < 1
        ("paediatric", 1.0, True),
        ("paediatric", 1.1, False),
    ],
)
def test_lldas_pga_edges(preset, pga, expected):
    met, _ = one(visits({"pga": pga}), E.evaluate_lldas, preset, [50.0])
    assert bool(met) is expected


@pytest.mark.parametrize(
    "preset, weight, dose, expected",
    [
        ("standard", None, 7.5, True),  # ≤ 7.5
        ("standard", None, 7.6, False),
        ("seed_paper", None, 7.4, True),
        ("seed_paper", None, 7.5, False),  # < 7.5
        # cLLDAS: ≤ min(0.15 mg/kg, 7.5 mg)
        ("paediatric", 60.0, 7.5, True),  # min(9, 7.5) = 7.5
        ("paediatric", 60.0, 7.6, False),
        ("paediatric", 40.0, 6.0, True),  # 0.15 × 40 = 6
        ("paediatric", 40.0, 6.1, False),
        # 0.15 × 41 = 6.1499999999999995 in binary floating point: 6.15 is at the limit
        ("paediatric", 41.0, 6.15, True),
        ("paediatric", 41.0, 6.16, False),
    ],
)
def test_lldas_prednisone_edges(preset, weight, dose, expected):
    row = {"prednisone_mg_day": dose, "weight_kg": weight}
    met, _ = one(visits(row), E.evaluate_lldas, preset)
    assert bool(met) is expected


# --------------------------------------------------------------------------
# Remission threshold edges
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "preset, dose, weight, expected",
    [
        ("standard", 5.0, None, True),  # DORIS 2021: ≤ 5
        ("standard", 5.1, None, False),
        ("seed_paper", 4.9, None, True),
        ("seed_paper", 5.0, None, False),  # seed paper: < 5
        ("paediatric", 5.0, 60.0, True),  # min(0.1 × 60, 5) = 5
        ("paediatric", 5.1, 60.0, False),
        ("paediatric", 3.0, 30.0, True),  # 0.1 × 30 = 3
        ("paediatric", 3.1, 30.0, False),
    ],
)
def test_remission_prednisone_edges(preset, dose, weight, expected):
    met, _ = one(
        visits({"prednisone_mg_day": dose, "weight_kg": weight}), E.evaluate_remission, preset
    )
    assert bool(met) is expected


@pytest.mark.parametrize("preset", sorted(E.PRESETS))
@pytest.mark.parametrize("pga, expected", [(0.4, True), (0.49, True), (0.5, False)])
def test_remission_pga_edges(preset, pga, expected):
    met, _ = one(visits({"pga": pga}), E.evaluate_remission, preset, [50.0])
    assert bool(met) is expected


@pytest.mark.parametrize(
    "preset, row, expected",
    [
        # Only a total SLEDAI-2K, no descriptors: cSLEDAI ∈ [s − 4, s].
        ("standard", {"sledai2k": 0}, True),  # cSLEDAI must be 0
        ("standard", {"sledai2k": 2}, NA),  # could be serology only
        ("standard", {"sledai2k": 4}, NA),  # low complement + DNA binding = 4
        ("standard", {"sledai2k": 5}, False),  # cSLEDAI ≥ 1
        ("standard", {"sledai2k": 6}, False),
        ("seed_paper", {"sledai2k": 0}, True),
        ("seed_paper", {"sledai2k": 2}, False),  # total SLEDAI-2K must be 0
        ("paediatric", {"sledai2k": 4}, NA),
        # Descriptors: serology only → cSLEDAI 0 (standard) but total 4 (seed paper).
        ("standard", {"sledai2k": None, **no_descriptors_but("low_complement")}, True),
        (
            "seed_paper",
            {"sledai2k": None, **no_descriptors_but("low_complement", "increased_dna_binding")},
            False,
        ),
        ("standard", {"sledai2k": None, **no_descriptors_but("rash")}, False),
        # Serology missing does not matter for cSLEDAI ...
        (
            "standard",
            {"sledai2k": None, **no_descriptors_but(missing=("low_complement",))},
            True,
        ),
        # ... a clinical descriptor missing does.
        ("standard", {"sledai2k": None, **no_descriptors_but(missing=("fever",))}, NA),
        # SLEDAI-2K 2 with serology recorded absent: cSLEDAI = 2.
        (
            "standard",
            {"sledai2k": 2, "sledai_low_complement": False, "sledai_increased_dna_binding": False},
            False,
        ),
    ],
)
def test_remission_sledai_basis(preset, row, expected):
    met, _ = one(visits(row), E.evaluate_remission, preset, [50.0])
    assert same(met, expected)


def test_csledai_reasons():
    df = visits({"sledai2k": 6}, {"sledai2k": 3}, {"sledai2k": None})
    r = E.evaluate_remission(df, "standard")
    assert r["why"].tolist() == [
        "cSLEDAI ≥ 2 > 0 (SLEDAI-2K 6 without serology descriptors)",
        "cSLEDAI not evaluable (SLEDAI-2K 3 without serology descriptors)",
        "cSLEDAI missing",
    ]


# --------------------------------------------------------------------------
# Three-valued logic and the reason texts
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "row, expected, why",
    [
        ({}, True, None),
        ({"pga": None}, NA, "PGA missing"),
        ({"pga": None, "sledai2k": 6}, False, "SLEDAI-2K 6 > 4; PGA missing"),  # failure decides
        ({"sledai2k": 6}, False, "SLEDAI-2K 6 > 4"),
        ({"pga": 1.1, "prednisone_mg_day": 10}, False, "PGA 1.1 > 1; prednisone 10 mg > 7.5 mg"),
        ({"prednisone_mg_day": None}, NA, "prednisone missing"),
        ({"major_organ_activity": True}, False, "major organ activity recorded"),
        ({"major_organ_activity": None, "sledai2k": 2}, NA, "major organ activity not recorded"),
        ({"new_activity": True}, False, "new activity recorded"),
        ({"haemolytic_anaemia": True}, False, "haemolytic anaemia"),
        ({"gi_activity": True}, False, "GI activity"),
        ({"sledai2k": None}, NA, "SLEDAI-2K missing"),
    ],
)
def test_lldas_three_valued_and_why(row, expected, why):
    met, text = one(visits(row), E.evaluate_lldas, "standard")
    assert same(met, expected)
    assert (text if text is not NA else None) == why


def test_seed_paper_reason_uses_strict_operator():
    met, why = one(visits({"sledai2k": 4, "pga": 1.0}), E.evaluate_lldas, "seed_paper")
    assert met is not NA and not met
    assert why == "SLEDAI-2K 4 ≥ 4; PGA 1 ≥ 1"


def test_result_dtypes_and_index():
    df = visits({}, {"pga": None}, {"sledai2k": 9}).set_index(pd.Index([10, 20, 30]))
    r = E.evaluate_lldas(df)
    assert str(r["met"].dtype) == "boolean" and r["why"].dtype == "string"
    assert list(r.index) == [10, 20, 30]
    assert r["met"].tolist() == [True, NA, False]


@pytest.mark.parametrize(
    "weight_visit, weight_fallback, dose, expected, why",
    [
        (None, 40.0, 6.0, True, None),  # baseline weight used when the visit has none
        (None, 40.0, 6.1, False, "prednisone 6.1 mg > 6 mg (min(0.15 mg/kg × 40 kg, 7.5 mg))"),
        (50.0, 40.0, 7.0, True, None),  # the visit's own weight wins: 0.15 × 50 = 7.5
        (None, None, 3.0, NA, "weight missing for the mg/kg limit"),
        (None, None, 0.0, True, None),  # 0 mg meets any weight-based limit
        (None, None, 8.0, False, "prednisone 8 mg > 7.5 mg"),  # above the cap whatever weight
    ],
)
def test_paediatric_weight_fallback(weight_visit, weight_fallback, dose, expected, why):
    df = visits({"weight_kg": weight_visit, "prednisone_mg_day": dose})
    met, text = one(df, E.evaluate_lldas, "paediatric", [weight_fallback])
    assert same(met, expected)
    assert (text if text is not NA else None) == why


# --------------------------------------------------------------------------
# LLDAS criterion 1 and 2 from descriptors
# --------------------------------------------------------------------------

_DESC_BASE = {k: v for k, v in _BASE.items() if k not in ("major_organ_activity", "new_activity")}
_DESC_BASE["sledai2k"] = None


@pytest.mark.parametrize(
    "present, expected, why_part",
    [
        (("arthritis",), True, None),  # permitted, SLEDAI-2K 4
        (("rash", "low_complement"), True, None),  # 4
        (("proteinuria",), False, "major organ activity (proteinuria)"),  # renal, even at 4
        (("pleurisy",), False, "major organ activity (pleurisy)"),  # serosal
        (("fever",), False, "major organ activity (fever)"),
        (("seizure",), False, "SLEDAI-2K 8 > 4"),
    ],
)
def test_major_organ_from_descriptors(present, expected, why_part):
    # Two visits with identical descriptors: the second has no new activity.
    d = no_descriptors_but(*present)
    df = pd.DataFrame(
        [
            {**_DESC_BASE, "patient_id": "a", "visit_week": 0, **d},
            {**_DESC_BASE, "patient_id": "a", "visit_week": 12, **d},
        ]
    )
    r = E.evaluate_lldas(df)
    met, why = r["met"].iloc[1], r["why"].iloc[1]
    assert same(met, expected)
    if why_part:
        assert why_part in why


def test_major_organ_missing_descriptor_not_evaluable_unless_sledai_zero():
    d = no_descriptors_but(missing=("vasculitis",))
    df = pd.DataFrame([{**_DESC_BASE, "new_activity": False, **d}])
    c = E.criteria_breakdown(df, "lldas")
    assert c["major_organ"].iloc[0] == "not evaluable"
    # A reported SLEDAI-2K of 0 means no descriptor can be present.
    c0 = E.criteria_breakdown(df.assign(sledai2k=0), "lldas")
    assert c0["major_organ"].iloc[0] == "met"


def test_new_activity_from_descriptors():
    # rash 2 + alopecia 2: SLEDAI-2K stays ≤ 4, so only criterion 2 decides.
    wk0 = no_descriptors_but("rash")
    wk12 = no_descriptors_but("rash", "alopecia")  # alopecia is new
    wk24 = no_descriptors_but("rash", "alopecia")  # nothing new
    wk36 = {**no_descriptors_but("rash"), "sledai_alopecia": None}  # alopecia unknown now
    wk48 = no_descriptors_but("rash", "alopecia")  # previous alopecia unknown
    rows = [(0, wk0), (12, wk12), (24, wk24), (36, wk36), (48, wk48)]
    df = pd.DataFrame([{**_DESC_BASE, "patient_id": "a", "visit_week": w, **d} for w, d in rows])
    df = df.sample(frac=1, random_state=1)  # row order must not matter
    c = E.criteria_breakdown(df, "lldas").loc[df.sort_values("visit_week").index]
    assert c["new_activity"].tolist() == [
        "not evaluable",  # first assessment with activity present
        "failed",
        "met",
        "not evaluable",
        "not evaluable",
    ]
    assert c["new_activity_detail"].tolist()[:2] == [
        "new activity not evaluable (first assessment)",
        "new activity (alopecia)",
    ]
    lldas = E.evaluate_lldas(df).loc[df.sort_values("visit_week").index, "met"].tolist()
    assert lldas == [NA, False, True, NA, NA]


def test_new_activity_first_visit_quiet_is_met():
    # Nothing present at the first assessment: nothing can be new.
    df = pd.DataFrame([{**_DESC_BASE, "patient_id": "a", "visit_week": 0, **no_descriptors_but()}])
    assert E.evaluate_lldas(df)["met"].iloc[0] is not NA
    assert bool(E.evaluate_lldas(df)["met"].iloc[0])


def test_new_activity_column_overrides_missing_descriptors():
    df = visits({"new_activity": False, "sledai2k": 2})  # no descriptors, no previous visit
    assert E.criteria_breakdown(df, "lldas")["new_activity"].iloc[0] == "met"
    df = visits({"new_activity": None, "sledai2k": 2})
    assert E.criteria_breakdown(df, "lldas")["new_activity"].iloc[0] == "not evaluable"


def test_criteria_breakdown_columns():
    c = E.criteria_breakdown(visits({"pga": 2.0, "prednisone_mg_day": None}), "lldas")
    assert [k for k in c.columns if not k.endswith("_detail")] == [
        "sledai",
        "major_organ",
        "new_activity",
        "pga",
        "prednisone",
        "maintenance",
    ]
    assert c.loc[0, "pga"] == "failed" and c.loc[0, "pga_detail"] == "PGA 2 > 1"
    assert c.loc[0, "prednisone"] == "not evaluable"
    assert c.loc[0, "sledai"] == "met" and c.loc[0, "sledai_detail"] is NA


# --------------------------------------------------------------------------
# SLEDAI-2K sums
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "present, sledai, csledai",
    [
        ((), 0, 0),
        (tuple(k for k, *_ in SLEDAI_DESCRIPTORS), 105, 101),  # 8×8 + 6×4 + 7×2 + 3×1
        (("low_complement", "increased_dna_binding"), 4, 0),
        (("seizure", "arthritis", "rash"), 14, 14),  # 8 + 4 + 2
        (("fever", "thrombocytopenia", "leukopenia"), 3, 3),
        (("urinary_casts", "haematuria", "proteinuria", "pyuria"), 16, 16),
    ],
)
def test_sledai_sums(present, sledai, csledai):
    df = pd.DataFrame([no_descriptors_but(*present)])
    assert E.sledai2k_from_descriptors(df).iloc[0] == sledai
    assert E.csledai_from_descriptors(df).iloc[0] == csledai


def test_sledai_sum_missing_descriptor_is_na():
    df = pd.DataFrame([no_descriptors_but("rash", missing=("fever",))])
    assert E.sledai2k_from_descriptors(df).iloc[0] is NA
    assert E.csledai_from_descriptors(df).iloc[0] is NA
    # Missing serology leaves the clinical score known.
    df = pd.DataFrame([no_descriptors_but("rash", missing=("low_complement",))])
    assert E.sledai2k_from_descriptors(df).iloc[0] is NA
    assert E.csledai_from_descriptors(df).iloc[0] == 2


# --------------------------------------------------------------------------
# Renal response
# --------------------------------------------------------------------------


def renal(follow: dict, base: dict | None = None) -> dict[str, object]:
    """All renal endpoints at one follow-up visit after a week-0 visit."""
    b = {"upcr_g_g": 2.0, "egfr_ml_min": 100.0, **(base or {})}
    df = pd.DataFrame(
        [
            {"patient_id": "a", "visit_week": 0, **b},
            {"patient_id": "a", "visit_week": 24, **follow},
        ]
    )
    out = {}
    for k in E.RENAL_KINDS:
        r = E.evaluate_renal(df, k)
        out[k] = r["met"].iloc[1]
        out[k + "_why"] = r["why"].iloc[1]
    return out


# renal_partial = partial and NOT complete (issue 10: it used to mean "partial or
# better", which is now renal_overall). Expected values: complete, partial,
# overall, crr, perr.
@pytest.mark.parametrize(
    "follow, base, complete, partial, overall, crr, perr",
    [
        # UPCR edges (baseline 2.0 g/g, eGFR 100)
        ({"upcr_g_g": 0.49, "egfr_ml_min": 100}, None, True, False, True, True, True),
        ({"upcr_g_g": 0.5, "egfr_ml_min": 100}, None, False, True, True, False, True),  # < 0.5
        ({"upcr_g_g": 0.7, "egfr_ml_min": 100}, None, False, True, True, False, True),  # ≤ 0.7
        ({"upcr_g_g": 0.71, "egfr_ml_min": 100}, None, False, True, True, False, False),
        # KDIGO partial: ≥ 50 % reduction and < 3 g/g
        ({"upcr_g_g": 1.0, "egfr_ml_min": 100}, None, False, True, True, False, False),  # 50 %
        ({"upcr_g_g": 1.01, "egfr_ml_min": 100}, None, False, False, False, False, False),
        ({"upcr_g_g": 3.0, "egfr_ml_min": 100}, {"upcr_g_g": 8.0}, False, False, False, False,
         False),
        ({"upcr_g_g": 2.99, "egfr_ml_min": 100}, {"upcr_g_g": 8.0}, False, True, True, False,
         False),
        # eGFR 10 % margin: ≥ 0.9 × baseline
        ({"upcr_g_g": 0.3, "egfr_ml_min": 90.0}, None, True, False, True, True, True),
        # < 0.5 g/g with a falling eGFR: neither complete nor partial
        ({"upcr_g_g": 0.3, "egfr_ml_min": 89.9}, None, False, False, False, False, True),
        # 0.9 × 67 = 60.300000000000004 in floating point: 60.3 is exactly at the margin
        ({"upcr_g_g": 0.3, "egfr_ml_min": 60.3}, {"egfr_ml_min": 67.0}, True, False, True, True,
         True),
        ({"upcr_g_g": 0.3, "egfr_ml_min": 60.2}, {"egfr_ml_min": 67.0}, False, False, False,
         False, True),
        # eGFR 20 % margin (PERR), baseline 50 so the ≥ 60 alternative does not apply
        ({"upcr_g_g": 0.3, "egfr_ml_min": 40.0}, {"egfr_ml_min": 50.0}, False, False, False,
         False, True),
        ({"upcr_g_g": 0.3, "egfr_ml_min": 39.9}, {"egfr_ml_min": 50.0}, False, False, False,
         False, False),
        # 0.8 × 41 = 32.800000000000004: 32.8 is at the margin
        ({"upcr_g_g": 0.3, "egfr_ml_min": 32.8}, {"egfr_ml_min": 41.0}, False, False, False,
         False, True),
        # BLISS-LN absolute alternatives: ≥ 90 (CRR) and ≥ 60 (PERR) whatever the baseline
        ({"upcr_g_g": 0.3, "egfr_ml_min": 90.0}, {"egfr_ml_min": 120.0}, False, False, False,
         True, True),
        ({"upcr_g_g": 0.3, "egfr_ml_min": 60.0}, {"egfr_ml_min": 120.0}, False, False, False,
         False, True),
        # 24-h protein stands in for a missing UPCR
        ({"urine_protein_g_24h": 0.4, "egfr_ml_min": 100}, None, True, False, True, True, True),
        # eGFR missing: not evaluable unless proteinuria fails; 0.3 g/g can never be a
        # partial (not complete) response, whatever the eGFR
        ({"upcr_g_g": 0.3}, None, NA, False, NA, NA, NA),
        ({"upcr_g_g": 1.5}, None, False, False, False, False, False),
        # 0.8 g/g with eGFR missing: partial if the eGFR is stable, else none
        ({"upcr_g_g": 0.8}, None, False, NA, NA, False, False),
        # Baseline eGFR missing: relative criteria unknown, absolute ones still decide
        ({"upcr_g_g": 0.3, "egfr_ml_min": 95}, {"egfr_ml_min": None}, NA, False, NA, True, True),
    ],
)
def test_renal_edges(follow, base, complete, partial, overall, crr, perr):
    r = renal(follow, base)
    want = dict(zip(E.RENAL_KINDS, (complete, partial, overall, crr, perr), strict=True))
    for k, e in want.items():
        assert same(r[k], e), (k, r[k], e, r[k + "_why"])


def test_renal_partial_excludes_complete():
    # Baseline 0.6 → 0.45: complete (< 0.5) though only a 25 % reduction; overall too.
    r = renal({"upcr_g_g": 0.45, "egfr_ml_min": 100}, {"upcr_g_g": 0.6})
    assert r["renal_complete"] is not NA and r["renal_complete"]
    assert r["renal_partial"] is not NA and not r["renal_partial"]
    assert r["renal_partial_why"] == (
        "proteinuria 0.45 g/g < 0.5 g/g: complete-response range; "
        "proteinuria 0.45 > 50 % of baseline 0.6 g/g"
    )
    assert r["renal_overall"] is not NA and r["renal_overall"]


def test_renal_overall_is_complete_or_partial():
    # Three-valued: overall = complete OR partial, never complete AND partial, on a grid of
    # proteinuria, eGFR and baseline values with gaps.
    rng = np.random.default_rng(11)
    n = 600
    df = pd.DataFrame(
        {
            "patient_id": [f"p{i // 3}" for i in range(n)],
            "visit_week": [(i % 3) * 12 for i in range(n)],
            "upcr_g_g": rng.choice([0.2, 0.49, 0.5, 0.7, 1.0, 1.5, 2.9, 3.0, 6.0, np.nan], n),
            "egfr_ml_min": rng.choice([50.0, 80.0, 89.9, 90.0, 100.0, np.nan], n),
        }
    )
    out = E.evaluate_all(df)
    c, p, o = (out[k] for k in ("renal_complete", "renal_partial", "renal_overall"))
    assert not (c.fillna(False) & p.fillna(False)).any()
    assert ((c | p).astype(object).fillna("na") == o.astype(object).fillna("na")).all()
    assert o.notna().sum() > 100 and p.fillna(False).sum() > 10 and c.fillna(False).sum() > 10


@pytest.mark.parametrize(
    "base, kdigo_why, bliss_why",
    [
        (
            {"upcr_g_g": 0.3},
            "no active nephritis at baseline (proteinuria 0.3 < 0.5 g/g)",
            "not eligible: baseline proteinuria 0.3 < 1 g/g (BLISS-LN enrolment)",
        ),
        ({"upcr_g_g": None}, "baseline proteinuria missing", "baseline proteinuria missing"),
    ],
)
def test_renal_not_applicable(base, kdigo_why, bliss_why):
    # Even a clearly failing follow-up value is "not applicable", never False.
    r = renal({"upcr_g_g": 4.0, "egfr_ml_min": 20}, base)
    for k in E.RENAL_KINDS:
        assert r[k] is NA
        bliss = E.RENAL_RESPONSES[k].eligibility is E.BLISS_LN_ENROLMENT
        assert r[k + "_why"] == (bliss_why if bliss else kdigo_why)


def test_renal_eligibility_per_definition():
    # Baseline UPCR 0.8 g/g: active nephritis for KDIGO (≥ 0.5) but below the BLISS-LN
    # enrolment threshold (≥ 1): KDIGO responses evaluated, CRR/PERR not applicable.
    r = renal({"upcr_g_g": 0.3, "egfr_ml_min": 100}, {"upcr_g_g": 0.8})
    assert (r["renal_complete"], r["renal_overall"]) == (True, True)
    assert r["renal_crr"] is NA and r["renal_perr"] is NA
    assert r["renal_perr_why"] == (
        "not eligible: baseline proteinuria 0.8 < 1 g/g (BLISS-LN enrolment)"
    )
    # Exactly 1 g/g is eligible (≥).
    r = renal({"upcr_g_g": 0.3, "egfr_ml_min": 100}, {"upcr_g_g": 1.0})
    assert (r["renal_crr"], r["renal_perr"]) == (True, True)
    # The patient-level flags: True / False / unknown (no week-0 visit, or no proteinuria).
    df = pd.DataFrame(
        [
            {"patient_id": "a", "visit_week": 0, "upcr_g_g": 0.8},
            {"patient_id": "a", "visit_week": 12, "upcr_g_g": 0.2},
            {"patient_id": "b", "visit_week": 0, "upcr_g_g": None, "urine_protein_g_24h": 1.0},
            {"patient_id": "c", "visit_week": 0, "upcr_g_g": 0.49},
            {"patient_id": "d", "visit_week": 0, "upcr_g_g": None},
            {"patient_id": "e", "visit_week": 4, "upcr_g_g": 3.0},
        ]
    )
    el = E.renal_eligibility(df)
    assert el["renal_eligible_kdigo"].tolist() == [True, True, True, False, NA, NA]
    assert el["renal_eligible_bliss_ln"].tolist() == [False, False, True, False, NA, NA]


def test_renal_metadata_agrees_with_schema():
    from lupus_dash import schema

    assert E.RENAL_KINDS == schema.RENAL_DEFINITIONS
    for k, r in E.RENAL_RESPONSES.items():
        assert schema.RENAL_ELIGIBLE_COLUMN[k] == r.eligibility.column
        # The schema's description states the eligibility threshold in force.
        desc = schema.column("visit_facts", k).description
        assert f"≥ {E._num(r.eligibility.min_g_g)} g/g" in desc, (k, desc)
    for e in E.RENAL_ELIGIBILITY.values():
        desc = schema.column("patient_facts", e.column).description
        assert f"≥ {E._num(e.min_g_g)} g/g" in desc
    t = E.RENAL_THRESHOLDS
    assert t["definitions"]["renal_perr"]["eligibility_min_g_g"] == 1.0
    assert t["definitions"]["renal_overall"]["eligibility_column"] == "renal_eligible_kdigo"
    assert t["renal_partial_includes_complete"] is False


def test_renal_no_baseline_visit():
    df = pd.DataFrame([{"patient_id": "a", "visit_week": 12, "upcr_g_g": 0.2, "egfr_ml_min": 99}])
    r = E.evaluate_renal(df, "renal_complete")
    assert r["met"].iloc[0] is NA and r["why"].iloc[0] == "no baseline visit"


@pytest.mark.parametrize(
    "follow, kind, why",
    [
        ({"upcr_g_g": 0.5, "egfr_ml_min": 100}, "renal_complete", "proteinuria 0.5 g/g ≥ 0.5 g/g"),
        (
            {"upcr_g_g": 0.3, "egfr_ml_min": 89.9},
            "renal_complete",
            "eGFR 89.9 < 0.9 × baseline 100",
        ),
        (
            {"upcr_g_g": 0.3, "egfr_ml_min": 89.9},
            "renal_crr",
            "eGFR 89.9 < 0.9 × baseline 100 and < 90",
        ),
        ({"upcr_g_g": 0.3}, "renal_complete", "eGFR missing"),
        (
            {"upcr_g_g": 1.2, "egfr_ml_min": 100},
            "renal_overall",
            "proteinuria 1.2 g/g ≥ 0.5 g/g; proteinuria 1.2 > 50 % of baseline 2 g/g",
        ),
        (
            {"upcr_g_g": 1.2, "egfr_ml_min": 100},
            "renal_partial",
            "proteinuria 1.2 > 50 % of baseline 2 g/g",
        ),
    ],
)
def test_renal_why(follow, kind, why):
    assert renal(follow)[kind + "_why"] == why


def test_renal_breakdown():
    df = pd.DataFrame(
        [
            {"patient_id": "a", "visit_week": 0, "upcr_g_g": 2.0, "egfr_ml_min": 100.0},
            {"patient_id": "a", "visit_week": 24, "upcr_g_g": 0.8, "egfr_ml_min": 95.0},
        ]
    )
    c = E.criteria_breakdown(df, "renal_overall")
    assert c.loc[1, ["active_nephritis", "proteinuria", "proteinuria_reduction"]].tolist() == [
        "met",
        "failed",
        "met",
    ]
    assert c.loc[1, ["proteinuria_partial", "egfr"]].tolist() == ["met", "met"]
    c = E.criteria_breakdown(df, "renal_partial")
    assert c.loc[1, ["active_nephritis", "proteinuria_not_complete", "proteinuria_reduction",
                     "proteinuria_partial", "egfr"]].tolist() == ["met"] * 5
    c = E.criteria_breakdown(df, "renal_perr")
    assert c.loc[1, ["bliss_ln_eligible", "proteinuria", "egfr"]].tolist() == [
        "met", "failed", "met"
    ]


def test_renal_never_compares_two_equations():
    # Week 0 reported by the lab, week 24 computed by CKD-EPI 2021: a fall from 100 to 70
    # is not judged (it may be the equations), but an absolute threshold still decides.
    df = pd.DataFrame(
        [
            {"patient_id": "a", "visit_week": 0, "upcr_g_g": 2.0, "egfr_ml_min": 100.0,
             "egfr_source": "reported"},
            {"patient_id": "a", "visit_week": 24, "upcr_g_g": 0.3, "egfr_ml_min": 70.0,
             "egfr_source": "ckd_epi_2021"},
            {"patient_id": "b", "visit_week": 0, "upcr_g_g": 2.0, "egfr_ml_min": 100.0,
             "egfr_source": "ckid_u25"},
            {"patient_id": "b", "visit_week": 24, "upcr_g_g": 0.3, "egfr_ml_min": 70.0,
             "egfr_source": "ckid_u25"},
        ]
    )
    out = E.evaluate_all(df)
    a, b = out.iloc[1], out.iloc[3]
    assert a["renal_complete"] is NA and a["renal_crr"] is NA  # 70 < 90: relative decides
    assert a["renal_perr"] is not NA and a["renal_perr"]  # 70 ≥ 60 whatever the baseline
    assert a["renal_complete_why"] == (
        "eGFR not comparable with baseline (this visit ckd_epi_2021, baseline reported)"
    )
    # Same equation: 70 < 0.9 × 100 fails KDIGO, 70 < 0.8 × 100 but ≥ 60 meets PERR.
    assert (b["renal_complete"], b["renal_crr"], b["renal_perr"]) == (False, False, True)


# --------------------------------------------------------------------------
# Glucocorticoids and eGFR
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "drug, dose, expected",
    [
        ("prednisone", 10, 10.0),
        ("Prednisolone", 7.5, 7.5),
        ("methylprednisolone", 4, 5.0),  # 4 mg ≡ 5 mg prednisone
        ("methylprednisolone", 16, 20.0),
        ("dexamethasone", 0.75, 5.0),  # 0.75 mg ≡ 5 mg
        ("dexamethasone", 4, 4 * 5 / 0.75),  # 26.67
        ("hydrocortisone", 20, 5.0),  # 20 mg ≡ 5 mg
    ],
)
def test_prednisone_equivalent(drug, dose, expected):
    assert E.prednisone_equivalent(drug, dose) == pytest.approx(expected, rel=1e-12)


def test_prednisone_equivalent_vectorised_and_unknown():
    s = E.prednisone_equivalent(pd.Series(["prednisone", "hydrocortisone"]), pd.Series([5, 40]))
    assert s.tolist() == [5.0, 10.0]
    with pytest.raises(ValueError, match="unknown glucocorticoid"):
        E.prednisone_equivalent("cortisone", 25)


@pytest.mark.parametrize(
    "scr_mg_dl, age, sex, expected",
    [
        # Female 40 y, Scr 0.8 mg/dL: κ 0.7, α −0.241; Scr/κ = 1.142857 > 1, so
        # min term = 1 and max term = 1.142857^−1.2 = exp(−1.2 × 0.133531) = 0.851939;
        # 0.9938^40 = exp(40 × ln 0.9938) = 0.779746; × 1.012 (female):
        # 142 × 0.851939 × 0.779746 × 1.012 = 95.464
        (0.8, 40, "F", 95.464),
        # Male 50 y, Scr 1.0 mg/dL: κ 0.9; 1.0/0.9 = 1.111111; 1.111111^−1.2 =
        # exp(−1.2 × 0.105361) = 0.881234; 0.9938^50 = 0.732753;
        # 142 × 0.881234 × 0.732753 = 91.691
        (1.0, 50, "M", 91.691),
        # Female 30 y, Scr 0.6 mg/dL: 0.6/0.7 = 0.857143 < 1, so min term =
        # 0.857143^−0.241 = exp(0.241 × 0.154151) = 1.037849, max term 1;
        # 0.9938^30 = 0.829795; 142 × 1.037849 × 0.829795 × 1.012 = 123.758
        (0.6, 30, "F", 123.758),
        # Male 25 y, Scr 0.7 mg/dL: 0.7/0.9 = 0.777778; 0.777778^−0.302 =
        # exp(0.302 × 0.251314) = 1.078851; 0.9938^25 = 0.856004;
        # 142 × 1.078851 × 0.856004 = 131.137
        (0.7, 25, "M", 131.137),
    ],
)
def test_egfr_ckd_epi_2021(scr_mg_dl, age, sex, expected):
    umol = scr_mg_dl * 88.4
    assert E.egfr_ckd_epi_2021(umol, age, sex) == pytest.approx(expected, rel=2e-5)


@pytest.mark.parametrize(
    "sex, age, height_m, scr_mg_dl, expected",
    [
        # Reference values printed in the CKiD study's own R code (github.com/ckidstudy/
        # CKiD_U25, "Calculated from Shinyapps.io", 1 decimal), Pierce et al. 2021.
        # Male 11 y: K = 39.0 × 1.008^−1 = 38.6905; × 1.2 / 0.9 = 51.587
        ("M", 11, 1.2, 0.9, 51.6),
        # Female 11 y: K = 36.1 / 1.008 = 35.8135; × 1.2 / 0.9 = 47.751
        ("F", 11, 1.2, 0.9, 47.8),
        # Male 15 y: K = 39.0 × 1.045^3 = 44.5055; × 1.6 / 1.9 = 37.479
        ("M", 15, 1.6, 1.9, 37.5),
        # Female 15 y: K = 36.1 × 1.023^3 = 38.6486; × 1.6 / 1.9 = 32.546
        ("F", 15, 1.6, 1.9, 32.5),
        # Male 20 y: K = 50.8; × 1.81 / 2.1 = 43.785
        ("M", 20, 1.81, 2.1, 43.8),
        # Female 20 y: K = 41.4; × 1.81 / 2.1 = 35.683
        ("F", 20, 1.81, 2.1, 35.7),
    ],
)
def test_egfr_ckid_u25_reference_values(sex, age, height_m, scr_mg_dl, expected):
    got = E.egfr_ckid_u25(scr_mg_dl * 88.4, height_m * 100, age, sex)
    assert round(got, 1) == expected


def test_egfr_ckid_u25_exact_and_continuous_at_18():
    # 39.0 × 1.045^(15 − 12) × 1.6 / 1.9 to full precision
    assert E.egfr_ckid_u25(1.9 * 88.4, 160, 15, "M") == pytest.approx(
        39.0 * 1.045**3 * 1.6 / 1.9, rel=1e-12
    )
    # K just below 18 equals the age-18 constant to 3 significant digits (no jump at 18):
    # male 39.0 × 1.045^6 = 50.788 vs 50.8; female 36.1 × 1.023^6 = 41.370 vs 41.4.
    for sex, k18 in (("M", 50.8), ("F", 41.4)):
        below = E.egfr_ckid_u25(88.4, 100, 17.9999, sex)
        at = E.egfr_ckid_u25(88.4, 100, 18.0, sex)
        assert at == pytest.approx(k18, rel=1e-12)
        assert abs(below - at) / at < 0.001
    assert math.isnan(E.egfr_ckid_u25(88.4, 100, 0.5, "F"))  # below age 1
    assert math.isnan(E.egfr_ckid_u25(88.4, np.nan, 10, "F"))  # no height


def test_egfr_equation_by_baseline_age():
    eq = E.egfr_equation([10, 17.9, 24.9, 24.9, 25.0, 40, 12, np.nan],
                         [True, True, True, False, True, False, False, True])
    assert list(eq) == ["ckid_u25", "ckid_u25", "ckid_u25", "ckd_epi_2021", "ckd_epi_2021",
                        "ckd_epi_2021", None, None]


def test_egfr_rowwise():
    val, src = E.egfr(
        [0.8 * 88.4, 61.88, 61.88, 70.0, np.nan],
        [40, 12, 12, 30, 40],
        ["F", "M", "M", "F", "F"],
        [np.nan, 140, np.nan, 160, 160],
        ["ckd_epi_2021", "ckid_u25", "ckid_u25", None, "ckd_epi_2021"],
    )
    assert val[0] == pytest.approx(95.464, rel=2e-5)  # CKD-EPI (see the test above)
    # Male 12 y: K = 39.0 × 1.045^0 = 39.0; × 1.40 m / 0.7 mg/dL = 78.0
    assert val[1] == pytest.approx(78.0, rel=1e-12)
    assert math.isnan(val[2])  # U25 without height
    assert math.isnan(val[3])  # no equation for this patient
    assert math.isnan(val[4])  # no creatinine
    assert list(src) == ["ckd_epi_2021", "ckid_u25", None, None, None]


# --------------------------------------------------------------------------
# Glucocorticoid exposure
# --------------------------------------------------------------------------


def test_prednisone_mg_kg_day():
    # 30 mg ÷ 40 kg = 0.75 mg/kg/day; no weight (or 0 kg) → unknown
    got = E.prednisone_mg_kg_day([30.0, 30.0, 30.0, np.nan], [40.0, np.nan, 0.0, 50.0])
    assert got[0] == pytest.approx(0.75, rel=1e-12)
    assert np.isnan(got[1:]).all()


def test_cumulative_prednisone_by_hand():
    pid = ["a"] * 4 + ["b"] * 3 + ["c"] * 2 + ["d"] + ["e"] * 2 + ["f"] * 3
    week = [0, 4, 12, 24, 0, 12, 24, 4, 12, 0, 0, 52, 0, 12, 24]
    dose = [40, 20, 10, 5, 10, np.nan, 5, 10, 10, 7.5, 60, 0, 30, 20, np.nan]
    got = E.cumulative_prednisone_g(pid, week, dose)
    # a: 40 mg × 28 d (weeks 0→4) + 20 × 56 (4→12) + 10 × 84 (12→24) = 1120 + 1120 + 840
    #    = 3080 mg = 3.08 g; the week-24 dose (5 mg) starts no interval.
    assert got["a"] == pytest.approx(3.08, rel=1e-12)
    assert np.isnan(got["b"])  # the week-12 dose, which runs to week 24, is missing
    assert np.isnan(got["c"])  # no week-0 visit: weeks 0–4 unknown
    assert got["d"] == 0.0  # seen only at week 0: no time on record
    # e: 60 mg × 364 d = 21,840 mg = 21.84 g
    assert got["e"] == pytest.approx(21.84, rel=1e-12)
    # f: 30 × 84 + 20 × 84 = 2520 + 1680 = 4200 mg; the missing last dose starts nothing
    assert got["f"] == pytest.approx(4.2, rel=1e-12)


# --------------------------------------------------------------------------
# Vectorised evaluation
# --------------------------------------------------------------------------


def test_evaluate_all_columns_match_schema():
    from lupus_dash import schema

    df = visits({}, {"pga": None}, {"sledai2k": 7})
    out = E.evaluate_all(df, [50.0, 50.0, 50.0])
    derived = {c.name for c in schema.VISIT_DERIVED}
    assert set(out.columns) <= derived
    expected = {
        f"{d}_{p}{s}"
        for d in schema.PRESET_DEFINITIONS
        for p in schema.PRESETS
        for s in ("", "_why")
    } | {f"{k}{s}" for k in schema.RENAL_DEFINITIONS for s in ("", "_why")}
    assert set(out.columns) == expected
    assert out["lldas_standard"].tolist() == [True, NA, False]


def test_many_rows_same_as_one_by_one():
    rng = np.random.default_rng(7)
    n = 300
    df = pd.DataFrame(
        {
            "patient_id": [f"p{i // 3}" for i in range(n)],
            "visit_week": [(i % 3) * 12 for i in range(n)],
            "sledai2k": rng.choice([0, 2, 4, 5, 8, np.nan], n),
            "pga": rng.choice([0.0, 0.4, 0.5, 1.0, 1.1, np.nan], n),
            "prednisone_mg_day": rng.choice([0, 5, 7.5, 7.6, np.nan], n),
            "weight_kg": rng.choice([30.0, 60.0, np.nan], n),
            "major_organ_activity": pd.array(rng.choice([True, False, None], n), dtype="boolean"),
            "new_activity": pd.array(rng.choice([True, False, None], n), dtype="boolean"),
        }
    )
    for preset in E.PRESETS:
        for fn in (E.evaluate_lldas, E.evaluate_remission):
            whole = fn(df, preset)
            for i in range(0, n, 37):
                # Each patient evaluated alone gives the same result and reason.
                pid = df["patient_id"].iloc[i]
                alone = fn(df[df["patient_id"] == pid], preset)
                assert same(whole["met"].iloc[i], alone["met"].loc[i])
                a, b = whole["why"].iloc[i], alone["why"].loc[i]
                assert (a is NA and b is NA) or a == b


def test_duckdb_join_path_gives_identical_reasons(monkeypatch):
    # Joins with many distinct combinations go through DuckDB's concat_ws;
    # forcing that path must not change a single reason or result.
    rng = np.random.default_rng(3)
    n = 400
    df = pd.DataFrame(
        {
            "patient_id": [f"p{i // 4}" for i in range(n)],
            "visit_week": [(i % 4) * 12 for i in range(n)],
            "sledai2k": rng.choice([0, 2, 4, 6, np.nan], n),
            "pga": rng.uniform(0, 3, n),
            "prednisone_mg_day": rng.choice([0, 2.5, 5, 10, np.nan], n),
            "weight_kg": rng.uniform(20, 90, n),
            "upcr_g_g": rng.uniform(0, 4, n),
            "egfr_ml_min": rng.uniform(30, 130, n),
            "major_organ_activity": pd.array(rng.choice([True, False, None], n), dtype="boolean"),
        }
    )
    fast = E.evaluate_all(df)
    monkeypatch.setattr(E, "_PY_JOIN_MAX", 0)
    slow = E.evaluate_all(df)
    pd.testing.assert_frame_equal(fast, slow)
    assert slow["renal_complete_why"].notna().sum() > 100


def test_egfr_series_in_series_out():
    scr = pd.Series([0.8 * 88.4, 1.0 * 88.4], index=["x", "y"])
    out = E.egfr_ckd_epi_2021(scr, pd.Series([40, 50], index=["x", "y"]), ["F", "M"])
    assert isinstance(out, pd.Series) and list(out.index) == ["x", "y"]
    assert out.tolist() == pytest.approx([95.464, 91.691], rel=2e-5)
    u25 = E.egfr_ckid_u25(pd.Series([61.88], index=[7]), 140.0, 12.0, "M")
    assert isinstance(u25, pd.Series) and u25.loc[7] == pytest.approx(78.0)
    # unknown sex: no equation
    assert math.isnan(E.egfr_ckd_epi_2021(70.0, 40, "X"))
    assert math.isnan(E.egfr_ckid_u25(70.0, 150, 14, "X"))


def test_describe_renal():
    text = "\n".join(E.describe_renal())
    assert "UPCR < 0.5 g/g and eGFR ≥ 0.9 × baseline or ≥ 90" in text
    assert "UPCR ≤ 0.7 g/g and eGFR ≥ 0.8 × baseline or ≥ 60" in text
    # Each definition states the eligibility in force.
    assert "BLISS-LN enrolment: baseline proteinuria ≥ 1 g/g" in text
    assert "active nephritis (KDIGO): baseline proteinuria ≥ 0.5 g/g" in text
    t = E.renal_thresholds()
    assert (t["kdigo_egfr_fraction_of_baseline"], t["perr_egfr_absolute"]) == (0.9, 60.0)


def test_reason_names_the_organ_once():
    row = {**no_descriptors_but("proteinuria", "rash"), "sledai2k": None}
    row["major_organ_activity"] = True  # the flag agrees with the descriptors
    df = pd.DataFrame([{**_DESC_BASE, "new_activity": False, **row}])
    c = E.criteria_breakdown(df, "lldas")
    assert c.loc[0, "major_organ_detail"] == "major organ activity (proteinuria)"
    assert E.evaluate_lldas(df)["why"].iloc[0] == (
        "SLEDAI-2K 6 > 4; major organ activity (proteinuria)"
    )
