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
        ("a1", 0, {"anti_dsdna_positive": True, "creatinine_umol_l": 61.88,
                   "prednisone_mg_day": 30.0}),
        ("a1", 12, {"egfr_ml_min": 101.0, "creatinine_umol_l": 61.88,  # reported wins
                    "prednisone_mg_day": 25.0}),
        ("a1", 24, {"prednisone_mg_day": 20.0, "weight_kg": 40.0}),
        ("a1", 52, {"prednisone_mg_day": 10.0}),
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
        ("b1", 12, {"anti_dsdna_positive": True, "creatinine_umol_l": 88.4}),
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
    # Girl 11.9 y, 140 cm, creatinine 61.88 µmol/L = 0.7 mg/dL: CKiD U25,
    # K = 36.1 × 1.008^(11.9 − 12) = 36.0712; × 1.40 m / 0.7 = 72.142
    assert vf.loc[("a1", 0), "egfr_ml_min"] == pytest.approx(
        36.1 * 1.008 ** (11.9 - 12) * 1.4 / 0.7, rel=1e-12
    )
    assert vf.loc[("a1", 0), "egfr_ml_min"] == pytest.approx(72.142, abs=5e-4)
    assert vf.loc[("a1", 0), "egfr_source"] == "ckid_u25"
    assert vf.loc[("a1", 12), "egfr_ml_min"] == 101.0
    assert vf.loc[("a1", 12), "egfr_source"] == "reported"
    # Woman 18 y (under 25, 165 cm), 0.8 mg/dL: CKiD U25, K = 41.4; 41.4 × 1.65 / 0.8 = 85.3875
    assert vf.loc[("a4", 0), "egfr_ml_min"] == pytest.approx(85.3875, rel=1e-12)
    assert vf.loc[("a4", 0), "egfr_source"] == "ckid_u25"
    assert vf.loc[("a4", 30), "egfr_source"] is NA
    # Man 59.9 y at baseline, seen at week 12 (age 59.9 + 12/52): CKD-EPI 2021
    expected = endpoints.egfr_ckd_epi_2021(1.0 * 88.4, 59.9 + 12 / 52, "M")
    assert vf.loc[("b1", 12), "egfr_ml_min"] == pytest.approx(expected, rel=1e-12)
    assert vf.loc[("b1", 12), "egfr_source"] == "ckd_epi_2021"
    # Glucocorticoid per kg: the visit's weight, else the baseline weight, else none.
    assert vf.loc[("a1", 0), "prednisone_mg_kg_day"] == pytest.approx(30 / 35.0, rel=1e-12)
    assert vf.loc[("a1", 24), "prednisone_mg_kg_day"] == pytest.approx(20 / 40.0, rel=1e-12)
    assert np.isnan(vf.loc[("b2", 12), "prednisone_mg_kg_day"])  # no dose


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


def test_glucocorticoid_exposure_in_patient_facts(cohort):
    patients, visits = cohort
    pf, _ = derive.build_facts(patients, visits, None)
    cum = _by_patient(pf, "cumulative_prednisone_g")
    # a1: 30 mg × 84 d (weeks 0→12) + 25 × 84 (12→24) + 20 × 196 (24→52)
    #     = 2520 + 2100 + 3920 = 8540 mg = 8.54 g
    assert cum["a1"] == pytest.approx(8.54, rel=1e-12)
    assert np.isnan(cum["a2"])  # no dose recorded
    assert np.isnan(cum["b3"])  # no visits


def test_egfr_one_equation_across_18():
    # A boy of 17.8 y whose creatinine falls 9 % (100 → 91 µmol/L) by week 52 (age 18.8).
    # Bedside Schwartz at 17.8 then CKD-EPI at 18.8 gave 63.9 → 107.5 (+68 %); one
    # equation (CKiD U25) gives the change the creatinine shows:
    # K(17.8) = 39.0 × 1.045^5.8 = 50.3434, K(18.8) = 50.8;
    # ratio = 50.8 / 50.3434 / 0.91 = 1.10887 (+10.9 %).
    patients = pd.DataFrame({"patient_id": ["t", "u"], "cohort": ["C", "C"], "sex": ["M", "F"],
                             "age_at_baseline_years": [17.8, 24.5],
                             "height_cm": [175.0, 160.0]})
    visits = pd.DataFrame({"patient_id": ["t", "t", "u", "u"], "visit_week": [0, 52, 0, 52],
                           "creatinine_umol_l": [100.0, 91.0, 70.0, 70.0]})
    _, vf = derive.build_facts(patients, visits, None)
    vf = vf.set_index(["patient_id", "visit_week"])
    assert vf.loc[("t", 0), "egfr_source"] == vf.loc[("t", 52), "egfr_source"] == "ckid_u25"
    ratio = vf.loc[("t", 52), "egfr_ml_min"] / vf.loc[("t", 0), "egfr_ml_min"]
    assert ratio == pytest.approx(50.8 / (39.0 * 1.045**5.8) / 0.91, rel=1e-12)
    assert ratio == pytest.approx(1.10887, abs=1e-5)
    # 24.5 y at baseline, 25.5 at week 52: stays on U25 (K 41.4), the same value both times.
    assert vf.loc[("u", 52), "egfr_source"] == "ckid_u25"
    assert vf.loc[("u", 52), "egfr_ml_min"] == vf.loc[("u", 0), "egfr_ml_min"]
    assert vf.loc[("u", 0), "egfr_ml_min"] == pytest.approx(41.4 * 1.6 / (70 / 88.4), rel=1e-12)


def test_renal_eligibility_flags_in_patient_facts():
    patients = pd.DataFrame({"patient_id": list("abcde"), "cohort": ["L"] * 5, "sex": ["F"] * 5})
    visits = pd.DataFrame({
        "patient_id": ["a", "a", "b", "c", "d"],
        "visit_week": [0, 12, 0, 0, 4],
        "upcr_g_g": [0.8, 0.3, 1.0, 0.4, 3.0],
    })
    pf, vf = derive.build_facts(patients, visits, None)
    assert _by_patient(pf, "renal_eligible_kdigo") == {
        "a": True, "b": True, "c": False, "d": NA, "e": NA}
    assert _by_patient(pf, "renal_eligible_bliss_ln") == {
        "a": False, "b": True, "c": False, "d": NA, "e": NA}
    # Where the patient is eligible an outcome is NULL only when a component is missing
    # (here eGFR); where not, NULL = not applicable.
    a12 = vf[(vf.patient_id == "a") & (vf.visit_week == 12)].iloc[0]
    assert a12["renal_complete"] is NA and a12["renal_complete_why"] == "eGFR missing"
    assert a12["renal_perr_why"].startswith("not eligible")


def _dropout_cohort() -> tuple[pd.DataFrame, pd.DataFrame]:
    """30 patients; weeks 0, 4, 12, 24 mostly attended, 13 attend week 52 (issue 10).

    Patients 0–12 attend every week (0, 4, 12, 24, 52); 13–24 leave after week 24;
    25–29 leave after week 12 (so week 24 has 25 of 30). Two extra visits: patients 0 and 1
    at week 8; patient 2 at week 60.
    """
    ids = [f"p{i:02d}" for i in range(30)]
    patients = pd.DataFrame({"patient_id": ids, "cohort": "D", "sex": "F"})
    rows = []
    for i, pid in enumerate(ids):
        weeks = [0, 4, 12] + ([24] if i < 25 else []) + ([52] if i < 13 else [])
        weeks += [8] if i < 2 else []
        weeks += [60] if i == 2 else []
        rows += [{"patient_id": pid, "visit_week": w} for w in weeks]
    return patients, pd.DataFrame(rows)


def test_sparse_final_week_kept():
    patients, visits = _dropout_cohort()
    v = with_cohort(visits, patients)
    assert derive.infer_schedule(v) == {"D": [0, 4, 12, 24, 52]}
    att = derive.schedule_attendance(v).set_index("visit_week")
    # week 52: 13 of 30 attended (43 %), 13 of the 13 still followed (last visit ≥ 52)
    assert att.loc[52, ["n_attended", "n_patients", "n_followed"]].tolist() == [13, 30, 13]
    # ... and 13 of the 25 patients still followed at week 24, the last week half attended
    assert bool(att.loc[52, "scheduled"])
    assert att.loc[52, "rule"] == (
        "after dropout: 13 of the 25 patients still followed at week 24 attended"
    )
    assert not bool(att.loc[8, "scheduled"]) and not bool(att.loc[60, "scheduled"])
    pf, _ = derive.build_facts(patients, visits, None)
    assert int(pf["completer"].sum()) == 13  # completer = has the week-52 visit


def test_schedule_warnings_name_week_and_attendance():
    patients, visits = _dropout_cohort()
    v = with_cohort(visits, patients)
    warn = {w: t for _, w, t in derive.schedule_warnings(v)}
    assert sorted(warn) == [8, 52, 60]
    assert warn[52] == (
        "week 52: 13 of 30 patients attended (cohort D); kept as a scheduled week (after "
        "dropout: 13 of the 25 patients still followed at week 24 attended); it is the final "
        "week, so 'completer' = has a week-52 visit; give --schedule to set another"
    )
    assert warn[8].startswith("week 8: 2 of 30 patients attended (cohort D); left out")
    # week 60: a later visit of one patient, not a scheduled week
    assert warn[60].startswith(
        "week 60: 1 of 30 patients attended (cohort D); left out of the inferred schedule "
        "(fewer than half of the 25 patients still followed at week 24 attended)"
    )
    # A given schedule: every week with data outside it is named, nothing else.
    given = derive.schedule_warnings(v, {"D": [0, 4, 12, 24]})
    assert [(w, t.split(";")[0]) for _, w, t in given] == [
        (8, "week 8: 2 of 30 patients attended (cohort D)"),
        (52, "week 52: 13 of 30 patients attended (cohort D)"),
        (60, "week 60: 1 of 30 patients attended (cohort D)"),
    ]
    assert all("not in the given schedule" in t for *_, t in given)


def test_few_later_visits_are_not_the_final_week():
    # 10 patients at weeks 0-24; 3 of the 10 followed at week 24 come back at week 40 (30 %
    # of those: not a scheduled week); 3 others at week 52 too — left out, named.
    ids = [f"q{i}" for i in range(10)]
    patients = pd.DataFrame({"patient_id": ids, "cohort": "E", "sex": "F"})
    rows = [{"patient_id": p, "visit_week": w} for p in ids for w in (0, 12, 24)]
    rows += [{"patient_id": p, "visit_week": 40} for p in ids[:3]]
    rows += [{"patient_id": p, "visit_week": 52} for p in ids[3:6]]
    v = with_cohort(pd.DataFrame(rows), patients)
    assert derive.infer_schedule(v) == {"E": [0, 12, 24]}
    assert [w for _, w, _ in derive.schedule_warnings(v)] == [40, 52]


def test_sparse_middle_week_not_rescued(cohort):
    # Cohort A's week 30 (1 of 4; 1 of the 2 followed) lies before the last well-attended
    # week (52): an extra visit, named in a warning.
    patients, visits = cohort
    warn = derive.schedule_warnings(with_cohort(visits, patients))
    text = (
        "week 30: 1 of 4 patients attended (cohort A); left out of the inferred schedule "
        "(fewer than half attended): its visits are kept but it is not a scheduled week; "
        "give --schedule with it to include it"
    )
    assert ("A", 30, text) in warn


def test_outcome_null_means_attended_not_evaluable():
    # Issue 10 item 6: an outcome is NULL exactly at an attended visit that could not be
    # judged, and its reason says why; met ⇔ no reason. Renal outcomes are also NULL for
    # a patient the definition does not apply to (the patient-level flag is not True).
    from lupus_dash import synth

    t = synth.demo_tables()
    pf, vf = derive.build_facts(t["patients"], t["visits"], None)
    flags = pf.set_index("patient_id")
    outcomes = [f"{d}_{p}" for d in schema.PRESET_DEFINITIONS for p in schema.PRESETS]
    outcomes += list(schema.RENAL_DEFINITIONS)
    for col in outcomes:
        met, why = vf[col], vf[f"{col}_why"]
        assert (met.fillna(False) == why.isna()).all(), col  # met ⇔ no reason
        assert why[met.isna()].notna().all(), col
        if col in schema.RENAL_DEFINITIONS:
            flag = vf["patient_id"].map(flags[schema.RENAL_ELIGIBLE_COLUMN[col]])
            eligible = flag.fillna(False).astype(bool).to_numpy()
            assert met[~eligible].isna().all(), col  # not applicable
            na_eligible = why[eligible & met.isna().to_numpy()]
            assert not na_eligible.str.contains("eligible|active nephritis").any(), col
    # The LN demo: KDIGO at the last assessment, 1 complete, 3 partial, 4 overall.
    last = vf[(vf["cohort"] == "ln_belimumab") & vf["is_last"].fillna(False)]
    got = [int(last[c].fillna(False).sum()) for c in
           ("renal_complete", "renal_partial", "renal_overall")]
    assert got == [1, 3, 4]
