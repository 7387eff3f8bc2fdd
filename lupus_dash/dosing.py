"""Belimumab dosing rule (derived: the data contract records no infusions)."""

from __future__ import annotations

import math

import numpy as np

# Belimumab IV (US prescribing information; CLINICAL_DEFINITIONS.md §11):
# 10 mg/kg at weeks 0, 2 and 4, then every 4 weeks.
INDUCTION_WEEKS = (0, 2, 4)


MAINTENANCE_INTERVAL = 4


def _isnan(v) -> bool:
    return isinstance(v, float) and math.isnan(v)


def belimumab_dose_weeks(last_week: int | None, discontinued_week: int | None) -> list[int]:
    """Weeks of belimumab IV doses a patient received.

    Weeks 0, 2, 4, then every 4 weeks (US label), up to and including the last
    assessed visit (an infusion is given at each visit), and strictly before
    `discontinued_week` when the drug was stopped (the stop visit has no dose).
    The data contract records no infusions, so this is derived, not observed.
    """
    if last_week is None or _isnan(last_week):
        return []
    end = int(last_week)
    weeks = [w for w in INDUCTION_WEEKS if w <= end]
    w = INDUCTION_WEEKS[-1] + MAINTENANCE_INTERVAL
    while w <= end:
        weeks.append(w)
        w += MAINTENANCE_INTERVAL
    if discontinued_week is not None and not _isnan(discontinued_week):
        weeks = [x for x in weeks if x < int(discontinued_week)] or [0]
    return weeks


def belimumab_dose_counts(last_week, discontinued_week) -> np.ndarray:
    """len(belimumab_dose_weeks(l, d)) for arrays of patients at once (NaN = missing)."""
    last = np.asarray(last_week, dtype=float)
    stop = np.asarray(discontinued_week, dtype=float)
    # Doses are given at integer weeks: "strictly before the stop week" = up to stop − 1.
    end = np.where(np.isnan(stop), last, np.minimum(last, stop - 1))
    safe = np.nan_to_num(end, nan=-1.0)
    induction = sum((safe >= w).astype(int) for w in INDUCTION_WEEKS)
    first = INDUCTION_WEEKS[-1] + MAINTENANCE_INTERVAL
    maintenance = np.where(safe >= first, (safe - first) // MAINTENANCE_INTERVAL + 1, 0)
    count = (induction + maintenance).astype(int)
    # A patient who stopped before any counted dose still had the first one (week 0).
    count = np.where(~np.isnan(stop) & (count == 0), 1, count)
    return np.where(np.isnan(last), 0, count)


