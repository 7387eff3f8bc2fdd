"""Fact tables: schedule inference, completer, age band, class group, anti-dsDNA, eGFR fill."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lupus_dash import derive, endpoints, schema
from lupus_dash.schema import SLEDAI_COLUMNS

NA = pd.NA


@pytest.fixture
def cohort() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two small hand-made cohorts; the expected values are spelled out in each test."""
    patients = pd.DataFrame(
        {
            "patient_id": ["a1", "a2", "a3", "a4", "b1", "b2", "b3"],
            "cohort": ["A", "A", "A", "A", "B", "B", "B"],
            "sex": ["F", "M", "F", "F", "M", "F", "F"],
            "age_at_baseline_years": [11.9, 12.0, 17.99, 18.0, 59.9, 60.0, None],
            "biopsy_class": ["IV+V", "III", "V", "II", None, "VI", ""],
            "weight_kg": [35.0, 50.0, 55.0, 60.0, 80.0, 70.0, None],
            "height_cm": [140.0, 150.0, 160.0, 165.0, 180.0, 160.0, None],
        }
    )
    rows = [
        # a1: weeks 0, 12, 24, 52 — completer; child: eGFR by bedside Schwartz
        ("a1", 0, {"anti_dsdna_positive": True, "creatinine_umol_l": 61.88}),
        ("a1", 12, {"egfr_ml_min": 101.0, "creatinine_umol_l": 61.88}),  # reported wins
        ("a1", 24, {}),
        ("a1", 52, {}),
        # a2: weeks 0, 12, 24 — not a completer
        ("a2", 0, {"anti_dsdna_positive": False}),
        ("a2", 12, {}),
        ("a2", 24, {}),
        # a3: weeks 0, 12; anti-dsDNA from the SLEDAI-2K descriptor at week 0
        ("a3", 0, {"sledai_increased_dna_binding": True}),
        ("a3", 12, {}),
        # a4: weeks 0, 30, 52 — completer; adult: eGFR by CKD-EPI 2021
        ("a4", 0, {"creatinine_umol_l": 0.8 * 88.4}),
        ("a4", 30, {}),
        ("a4", 52, {}),
        # b1: no week-0 visit
        ("b1", 12, {"anti_dsdna_positive": True}),
        ("b1", 24, {}),
        # b2: one visit
        ("b2", 12, {}),
        # b3: no visits at all
    ]
    visits = pd.DataFrame([{"patient_id": p, "visit_week": w, **extra} for p, w, extra in rows])
    return patients, visits


def with_cohort(visits: pd.DataFrame, patients: pd.DataFrame) -> pd.DataFrame:
    return visits.assign(cohort=visits["patient_id"].map(patients.set_index("patient_id").cohort))


def test_infer_schedule(cohort):
    patients, visits = cohort
    # A (4 patients): week 0 4/4, 12 3/4, 24 2/4 (= 50 %, kept), 30 1/4, 52 2/4.
    # B (2 patients with visits): 12 2/2, 24 1/2; week 0 always included.
    assert derive.infer_schedule(with_cohort(visits, patients)) == {
        "A": [0, 12, 24, 52],
        "B": [0, 12, 24],
    }


def test_infer_schedule_empty():
    assert derive.infer_schedule(pd.DataFrame(columns=["cohort", "patient_id", "visit_week"])) == {}


def test_columns_and_dtypes(cohort):
    patients, visits = cohort
    pf, vf = derive.build_facts(patients, visits, None)
    assert list(pf.columns) == [c.name for c in schema.columns("patient_facts")]
    assert list(vf.columns) == [c.name for c in schema.columns("visit_facts")]
    expected = {
        schema.BOOL: "boolean",
        schema.INTEGER: "Int64",
        schema.NUMBER: "float64",
        schema.TEXT: "string",
    }
    for table, df in (("patient_facts", pf), ("visit_facts", vf)):
        for c in schema.columns(table):
            if c.dtype in expected:
                assert str(df[c.name].dtype) == expected[c.dtype], (table, c.name)
    assert len(pf) == 7 and len(vf) == len(visits)


def _by_patient(pf: pd.DataFrame, col: str) -> dict:
    return dict(zip(pf["patient_id"], pf[col].tolist(), strict=True))


def test_patient_facts(cohort):
    patients, visits = cohort
    pf, _ = derive.build_facts(patients, visits, None)
    assert _by_patient(pf, "completer") == {
        "a1": True,  # has week 52, A's final scheduled week
        "a2": False,
        "a3": False,
        "a4": True,
        "b1": True,  # B's final scheduled week is 24
        "b2": False,
        "b3": False,  # no visits
    }
    assert _by_patient(pf, "age_band") == {
        "a1": "<12",
        "a2": "12–17",
        "a3": "12–17",
        "a4": "18–39",
        "b1": "40–59",
        "b2": "≥60",
        "b3": "unknown",
    }
    assert _by_patient(pf, "class_group") == {
        "a1": "proliferative",
        "a2": "proliferative",
        "a3": "membranous",
        "a4": "other",
        "b1": "not biopsied",
        "b2": "other",
        "b3": "not biopsied",
    }
    assert _by_patient(pf, "baseline_anti_dsdna") == {
        "a1": "positive",
        "a2": "negative",
        "a3": "positive",  # increased DNA binding descriptor at week 0
        "a4": "unknown",
        "b1": "unknown",  # positive only at week 12: no baseline
        "b2": "unknown",
        "b3": "unknown",
    }
    assert _by_patient(pf, "n_visits") == {
        "a1": 4,
        "a2": 3,
        "a3": 2,
        "a4": 3,
        "b1": 2,
        "b2": 1,
        "b3": 0,
    }
    last = _by_patient(pf, "last_week")
    assert [last[p] for p in ("a1", "a2", "b2")] == [52, 24, 12] and last["b3"] is NA
    fu = _by_patient(pf, "follow_up_months")
    assert fu["a1"] == pytest.approx(12.0)  # 52 × 12/52
    assert fu["a2"] == pytest.approx(24 * 12 / 52)  # 5.538…
    assert np.isnan(fu["b3"])


def test_completer_uses_given_final_week(cohort):
    patients, visits = cohort
    cohorts = pd.DataFrame(
        {"cohort": ["A", "B"], "scheduled_weeks": [[0, 12, 24], [0, 12]], "final_week": [24, 12]}
    )
    pf, _ = derive.build_facts(patients, visits, cohorts)
    comp = _by_patient(pf, "completer")
    assert [comp[p] for p in ("a1", "a2", "a3", "a4", "b1", "b2")] == [
        True,
        True,
        False,
        False,
        True,
        True,
    ]


def test_visit_facts(cohort):
    patients, visits = cohort
    _, vf = derive.build_facts(patients, visits, None)
    vf = vf.set_index(["patient_id", "visit_week"])
    assert vf.loc[("a1", 0), "cohort"] == "A" and vf.loc[("b2", 12), "cohort"] == "B"
    assert vf["is_baseline"].sum() == 4  # a1, a2, a3, a4 have week 0
    assert [vf.loc[("b1", 12), "is_baseline"]] == [False]
    last = vf.index[vf["is_last"].to_numpy(dtype=bool)].tolist()
    assert sorted(last) == [("a1", 52), ("a2", 24), ("a3", 12), ("a4", 52), ("b1", 24), ("b2", 12)]
    # Child (11.9 y, 140 cm, creatinine 61.88 µmol/L = 0.7 mg/dL): 0.413 × 140 / 0.7 = 82.6
    assert vf.loc[("a1", 0), "egfr_ml_min"] == pytest.approx(82.6, rel=1e-12)
    assert vf.loc[("a1", 0), "egfr_source"] == "schwartz_bedside"
    assert vf.loc[("a1", 12), "egfr_ml_min"] == 101.0
    assert vf.loc[("a1", 12), "egfr_source"] == "reported"
    # Adult woman 18 y, 0.8 mg/dL: CKD-EPI 2021 (see test_endpoints for the arithmetic)
    expected = endpoints.egfr_ckd_epi_2021(0.8 * 88.4, 18.0, "F")
    assert vf.loc[("a4", 0), "egfr_ml_min"] == pytest.approx(expected, rel=1e-12)
    assert vf.loc[("a4", 0), "egfr_source"] == "ckd_epi_2021"
    assert vf.loc[("a4", 30), "egfr_source"] is NA


def test_sledai_filled_from_descriptors():
    patients = pd.DataFrame({"patient_id": ["p"], "cohort": ["C"], "sex": ["F"]})
    all_absent = {c: False for c in SLEDAI_COLUMNS}
    visits = pd.DataFrame(
        [
            # complete descriptors, no score: 4 (arthritis) + 2 (low complement) = 6
            {"patient_id": "p", "visit_week": 0, **all_absent, "sledai_arthritis": True,
             "sledai_low_complement": True},
            # one clinical descriptor missing: neither score is known
            {"patient_id": "p", "visit_week": 12, **all_absent, "sledai_fever": None},
            # only the serology descriptor missing: cSLEDAI known (2), total not
            {"patient_id": "p", "visit_week": 24, **all_absent, "sledai_rash": True,
             "sledai_increased_dna_binding": None},
            # reported score only: 0 means cSLEDAI 0; 3 leaves cSLEDAI unknown
            {"patient_id": "p", "visit_week": 36, "sledai2k": 0},
            {"patient_id": "p", "visit_week": 48, "sledai2k": 3},
        ]
    )  # fmt: skip
    _, vf = derive.build_facts(patients, visits, None)
    assert vf["sledai2k"].tolist() == [6, NA, NA, 0, 3]
    assert vf["csledai"].tolist() == [4, NA, 2, 0, NA]


def test_endpoint_columns_match_endpoints_module(cohort):
    patients, visits = cohort
    visits = visits.assign(
        sledai2k=[0, 2, 4, 6, 0, 3, 8, 0, 1, 2, 0, 4, 0, 0, 5],
        pga=[0.2, 0.4, 1.0, 1.1, 0.0, 0.5, 2.0, 0.3, 0.3, 1.0, 0.4, 0.2, 0.1, 0.2, 0.6],
        prednisone_mg_day=[5, 7.5, 7.6, 0, 2.5, 5.0, 10, 0, 0, 5, 5.1, 0, 0, 2, 4],
        new_activity=[False] * 15,
        major_organ_activity=[False] * 15,
    )
    _, vf = derive.build_facts(patients, visits, None)
    # Paediatric limits use the patient's baseline weight where the visit has none.
    w = vf["patient_id"].map(patients.set_index("patient_id")["weight_kg"])
    expected = endpoints.evaluate_all(vf, w.to_numpy())
    for col in expected.columns:
        pd.testing.assert_series_equal(vf[col], expected[col], check_names=False)
    # a1 (35 kg) week 12: 7.5 mg > 0.15 × 35 = 5.25 mg under cLLDAS, but ≤ 7.5 under LLDAS.
    row = vf[(vf.patient_id == "a1") & (vf.visit_week == 12)].iloc[0]
    assert [row["lldas_standard"], row["lldas_paediatric"]] == [True, False]
    assert row["lldas_paediatric_why"] == (
        "prednisone 7.5 mg > 5.25 mg (min(0.15 mg/kg × 35 kg, 7.5 mg))"
    )


def test_input_order_and_index_do_not_matter(cohort):
    patients, visits = cohort
    pf1, vf1 = derive.build_facts(patients, visits, None)
    shuffled = visits.sample(frac=1, random_state=5).set_index(np.arange(100, 100 + len(visits)))
    pf2, vf2 = derive.build_facts(patients.iloc[::-1], shuffled, None)
    pd.testing.assert_frame_equal(
        pf1.sort_values("patient_id").reset_index(drop=True),
        pf2.sort_values("patient_id").reset_index(drop=True),
    )
    pd.testing.assert_frame_equal(vf1, vf2)


def test_coerce_fills_absent_columns():
    df = derive.coerce(pd.DataFrame({"patient_id": ["x"], "visit_week": [3.0]}), "visits")
    assert list(df.columns) == [c.name for c in schema.columns("visits")]
    assert df["visit_week"].dtype == "Int64" and df["visit_week"].iloc[0] == 3
    assert df["pga"].isna().all() and str(df["sledai_fever"].dtype) == "boolean"
