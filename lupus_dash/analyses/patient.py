"""One patient: the record, every visit, adverse events (patient-level)."""

from __future__ import annotations

import pandas as pd

from ..db import Database
from ..results import analysis
from .safety import _ae_join


@analysis(patient_level=True)
def record(db: Database, cohort: str, patient_id: str) -> pd.DataFrame:
    """The patient_facts row of one patient (no row when unknown)."""
    return db.query(
        "SELECT * FROM patient_facts WHERE cohort = ? AND patient_id = ?", [cohort, patient_id]
    )


@analysis(patient_level=True)
def visits(db: Database, cohort: str, patient_id: str) -> pd.DataFrame:
    """Every visit_facts row of one patient, by week."""
    return db.query(
        "SELECT * FROM visit_facts WHERE cohort = ? AND patient_id = ? ORDER BY visit_week",
        [cohort, patient_id],
    )


@analysis(patient_level=True)
def events(db: Database, cohort: str, patient_id: str) -> pd.DataFrame:
    """Adverse events of one patient, by onset."""
    join, params = _ae_join(db, cohort)
    return db.query(
        f"SELECT a.* FROM adverse_events a {join} WHERE a.patient_id = ? "
        "ORDER BY a.onset_week NULLS LAST, a.term",
        [*params, patient_id],
    )


