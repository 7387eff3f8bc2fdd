"""Deterministic synthetic demo cohorts, calibrated to the two seed papers, and a scaled cohort.

No real patient is in here: every patient is generated. Two demo cohorts:

- ``csle_belimumab``: 26 children on belimumab (Wang et al., Front Immunol 2022),
  visits at weeks 0, 4, 12, 24, 52 and a last follow-up beyond week 52; 23
  completers, 3 non-completers (one stopped, two switched to telitacicept).
- ``ln_belimumab``: 10 adults with active lupus nephritis, monthly visits
  (thesis abstract, seed document 002).

**Frozen calibration.** Table 2 of the paediatric paper fixes, for the 23
completers, every mean, SD, quartile, paired-comparison CI and Wilcoxon Z of
eight endpoints, while the patients must stay coherent (SLEDAI-2K equal to its
descriptors, descriptors agreeing with the labs, LLDAS/remission counts). Those
23 x 5 matrices were found once by ``tools/calibrate_synth.py`` (exact-moment
construction for C3, C4, CD19+; seeded simulated annealing over pairings and
lab-row assignments for 24-h protein, SLEDAI-2K, PGA and prednisone, then
``polish_protein`` so no Z depends on how float near-ties are ranked, and a
last search of the PGA/prednisone pairings for fewer dose increases under the
same constraints; about five minutes) and for seed 5 are stored below as
``_CORE``: a frozen table of synthetic values, so a build takes a second. Everything else (ages, organ involvement,
biopsy classes, regimens, other labs, dates, the last follow-up visit, the
adult cohort) is generated from ``seed`` at build time; the targets hold for
any seed (tests check the default and another one).

Conventions documented here:
- Belimumab dosing is not a table of the contract: 10 mg/kg IV at weeks 0, 2, 4
  and then every 4 weeks, so doses before week w are
  ``len({0, 2, 4} ∩ [0, w)) + len({8, 12, ...} ∩ [0, w))``, capped at
  ``discontinued_week``; the amount is 10 mg/kg × ``weight_kg``. All
  csle patients reach 5 doses by week 12 and 8 by week 24, the 23 completers
  14 before week 52 (Table 1).
- ``follow_up_months`` = last visit week × 12/52. The three non-completers are
  seen once more after stopping (weeks 46–50) and never at week 52, so all 26
  give 19.6 ± 6.4 months; the completers then give 20.7 ± 5.9 (the text says
  20.5 ± 6.1, which with non-completers seen at most to week 51 cannot hold
  together with the 26-patient figure).
- ``ln_belimumab`` schedule = weeks 0–20 (months 0–5, the published UPCR
  comparisons at months 4 and 5), so ``completer`` = reached the month-5
  assessment (6 of the 7 efficacy patients); the efficacy population of the
  thesis is "treated ≥ 4 months" = has a week-16 visit. Later monthly visits
  (to month 9) are recorded as unscheduled visits.
- Anti-dsDNA IU/mL is positive from 30 IU/mL (the belimumab trials' cut-off,
  CLINICAL_DEFINITIONS.md §8); low complement = C3 < 0.9 or C4 < 0.1 g/L (the
  reference limits of schema.ENDPOINTS); the proteinuria descriptor = 24-h
  protein (else UPCR) > 0.5.
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from . import endpoints, schema
from .schema import ORGANS

DEFAULT_SEED = 20221222
CSLE, LN = "csle_belimumab", "ln_belimumab"
C3_LLN = schema.ENDPOINTS_BY_COLUMN["c3_g_l"].ref_low
C4_LLN = schema.ENDPOINTS_BY_COLUMN["c4_g_l"].ref_low
PROTEINURIA_G = 0.5  # SLEDAI-2K proteinuria: > 0.5 g/24 h (Gladman 2002)
ANTI_DSDNA_POSITIVE_IU = 30.0


# --------------------------------------------------------------------------
# Non-renal SLEDAI-2K descriptors as a bit ladder (the frozen core's coding;
# the search that produced it is tools/calibrate_synth.py)
# --------------------------------------------------------------------------


def ladder(v):
    """Descriptor bitmask of a non-renal score v: blood first, then skin, then joints."""
    base = {0: 0, 1: 1, 2: 3, 3: 5, 4: 7, 5: 13, 6: 15, 7: 29, 8: 31}
    if v <= 8:
        return base[v]
    if v <= 12:
        return 32 | ladder(v - 4)
    if v <= 16:
        return 96 | ladder(v - 8)
    return 224 | ladder(v - 10)


LADDER = np.array([ladder(v) for v in range(60)])


# Frozen output of calibrate_csle_core(seed=5): the 23 completers x weeks 0, 4, 12, 24, 52,
# then the 24-h protein polished so that float differences never make near-ties
# (R and SciPy rank raw float differences; see polish_protein).
# fmt: off
_CORE = {
    "c3": [
        [1.43, 1.18, 1.14, 1.12, 1.1],
        [0.33, 0.33, 0.71, 0.89, 0.65],
        [0.44, 1.02, 0.95, 1.05, 1.01],
        [0.37, 0.86, 0.99, 0.94, 0.96],
        [0.41, 0.88, 0.97, 1.01, 0.91],
        [0.35, 1.01, 1.0, 1.01, 1.03],
        [0.28, 0.51, 0.43, 0.31, 0.66],
        [0.5, 0.89, 0.62, 1.0, 0.61],
        [0.65, 1.01, 0.8, 1.0, 1.0],
        [1.2, 1.11, 0.95, 1.12, 0.91],
        [0.19, 0.34, 1.07, 0.78, 0.72],
        [1.08, 0.85, 0.72, 0.9, 0.95],
        [0.68, 0.5, 0.67, 0.83, 0.8],
        [0.19, 0.85, 0.95, 0.56, 0.35],
        [0.4, 1.01, 1.0, 1.01, 1.04],
        [0.34, 0.81, 1.01, 0.73, 1.04],
        [0.43, 0.95, 0.96, 0.99, 1.01],
        [1.13, 1.08, 0.95, 1.0, 1.03],
        [1.09, 1.06, 0.95, 0.81, 1.09],
        [0.38, 0.9, 1.05, 0.95, 1.02],
        [0.3, 1.01, 0.94, 1.02, 1.02],
        [0.62, 0.97, 0.94, 1.07, 0.97],
        [1.09, 1.15, 1.08, 1.11, 1.08],
    ],
    "c4": [
        [0.17, 0.2, 0.22, 0.23, 0.22],
        [0.05, 0.06, 0.09, 0.11, 0.08],
        [0.19, 0.18, 0.17, 0.15, 0.11],
        [0.04, 0.11, 0.2, 0.11, 0.21],
        [0.09, 0.19, 0.18, 0.21, 0.12],
        [0.08, 0.12, 0.13, 0.19, 0.23],
        [0.33, 0.24, 0.25, 0.3, 0.3],
        [0.31, 0.33, 0.23, 0.28, 0.36],
        [0.07, 0.12, 0.23, 0.22, 0.18],
        [0.08, 0.18, 0.16, 0.14, 0.16],
        [0.07, 0.15, 0.16, 0.17, 0.27],
        [0.06, 0.11, 0.13, 0.07, 0.14],
        [0.22, 0.37, 0.23, 0.35, 0.28],
        [0.05, 0.05, 0.08, 0.11, 0.07],
        [0.04, 0.12, 0.18, 0.16, 0.2],
        [0.13, 0.05, 0.13, 0.21, 0.15],
        [0.09, 0.12, 0.09, 0.17, 0.14],
        [0.08, 0.14, 0.18, 0.19, 0.15],
        [0.11, 0.19, 0.23, 0.21, 0.33],
        [0.11, 0.2, 0.17, 0.31, 0.32],
        [0.09, 0.16, 0.17, 0.18, 0.19],
        [0.19, 0.22, 0.14, 0.16, 0.25],
        [0.08, 0.11, 0.11, 0.13, 0.18],
    ],
    "cd19": [
        [26.21, 24.28, 25.02, 19.01, 7.57],
        [8.28, 6.63, 5.48, 3.06, 3.13],
        [6.58, 5.53, 4.07, 4.45, 6.14],
        [5.92, 5.18, 8.66, 3.24, 3.1],
        [12.2, 11.47, 5.26, 5.57, 4.26],
        [63.81, 39.98, 20.09, 15.57, 5.05],
        [16.27, 24.01, 14.97, 8.89, 5.93],
        [14.36, 6.57, 9.62, 4.2, 2.77],
        [37.23, 26.66, 14.86, 20.6, 6.55],
        [24.03, 14.37, 5.6, 6.49, 5.17],
        [9.88, 9.88, 9.11, 5.94, 4.28],
        [21.79, 18.44, 10.49, 11.34, 6.16],
        [17.04, 18.35, 6.35, 6.86, 4.57],
        [3.46, 8.28, 6.64, 4.13, 3.97],
        [15.95, 12.88, 5.73, 5.08, 4.1],
        [19.9, 22.22, 10.77, 6.73, 5.68],
        [9.11, 8.72, 5.27, 5.55, 3.72],
        [19.66, 15.88, 8.62, 4.83, 4.2],
        [9.2, 3.87, 3.21, 4.42, 3.54],
        [22.25, 29.81, 16.99, 10.28, 5.79],
        [8.34, 14.43, 11.08, 8.23, 10.85],
        [46.17, 22.68, 22.43, 8.09, 6.28],
        [3.89, 2.16, 2.19, 4.55, 1.56],
    ],
    "prot": [
        [0.15, 2.65, 0.32, 2.51, 1.89],
        [1.05, 4.64, 2.45, 0.03, 0.03],
        [0.03, 3.64, 0.08, 0.03, 0.09],
        [0.25, 0.32, 0.32, 0.03, 0.04],
        [2.57, 1.58, 0.19, 0.05, 0.23],
        [1.44, 2.32, 2.28, 1.24, 0.9],
        [0.12, 0.04, 0.13, 0.06, 0.32],
        [1.58, 1.02, 1.62, 2.67, 1.36],
        [5.5, 0.07, 0.14, 2.15, 1.6],
        [3.14, 2.28, 0.13, 0.38, 0.27],
        [0.21, 0.48, 0.29, 0.02, 0.07],
        [3.75, 0.05, 0.11, 0.04, 0.02],
        [3.33, 0.77, 0.3, 0.03, 0.1],
        [2.19, 2.48, 0.11, 0.13, 0.08],
        [0.06, 2.98, 0.11, 1.69, 4.83],
        [2.29, 0.6, 1.02, 2.18, 0.98],
        [0.07, 0.04, 0.2, 0.09, 0.04],
        [0.07, 0.07, 0.1, 0.04, 0.07],
        [0.13, 0.13, 0.26, 0.06, 0.08],
        [0.05, 0.41, 0.09, 0.06, 0.18],
        [0.13, 0.1, 0.12, 0.21, 0.03],
        [5.23, 0.07, 0.2, 0.03, 0.13],
        [3.17, 1.12, 0.55, 0.03, 0.07],
    ],
    "ds": [
        [0, 0, 0, 0, 0],
        [1, 1, 1, 1, 1],
        [1, 0, 0, 0, 0],
        [1, 1, 1, 1, 1],
        [1, 1, 1, 1, 1],
        [0, 0, 0, 0, 0],
        [1, 1, 1, 1, 1],
        [1, 0, 1, 0, 0],
        [0, 0, 0, 0, 0],
        [1, 1, 1, 1, 1],
        [1, 1, 1, 0, 0],
        [1, 1, 1, 1, 1],
        [1, 1, 1, 0, 0],
        [1, 0, 0, 0, 0],
        [1, 1, 1, 1, 1],
        [0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0],
        [1, 0, 0, 0, 0],
        [0, 0, 0, 0, 0],
        [1, 1, 1, 1, 1],
        [0, 0, 0, 0, 0],
        [1, 0, 0, 0, 0],
    ],
    "sledai": [
        [0, 4, 0, 4, 4],
        [12, 12, 16, 4, 4],
        [17, 4, 6, 4, 0],
        [8, 4, 6, 6, 2],
        [35, 34, 13, 8, 2],
        [28, 17, 8, 4, 5],
        [4, 4, 4, 4, 4],
        [20, 14, 16, 12, 10],
        [10, 0, 2, 4, 4],
        [12, 7, 7, 6, 2],
        [12, 10, 7, 2, 2],
        [12, 4, 4, 4, 2],
        [8, 8, 4, 2, 2],
        [26, 8, 9, 7, 3],
        [4, 6, 2, 6, 6],
        [10, 6, 8, 6, 4],
        [2, 0, 2, 0, 0],
        [3, 1, 0, 1, 0],
        [2, 0, 0, 2, 0],
        [2, 0, 0, 0, 0],
        [12, 4, 6, 6, 2],
        [10, 1, 1, 2, 0],
        [25, 15, 9, 10, 2],
    ],
    "pga": [
        [1.0, 1.2, 0.0, 0.5, 0.5],
        [2.5, 2.0, 2.0, 0.5, 1.2],
        [3.0, 1.0, 1.5, 1.0, 0.0],
        [1.0, 0.8, 1.0, 0.8, 0.5],
        [3.0, 2.5, 2.0, 1.5, 0.3],
        [3.0, 2.0, 1.5, 0.5, 1.2],
        [0.5, 1.0, 1.0, 0.5, 0.3],
        [3.0, 2.0, 2.0, 3.0, 2.0],
        [2.5, 0.0, 0.5, 1.0, 0.8],
        [3.0, 1.5, 1.5, 1.0, 0.3],
        [2.5, 1.5, 1.5, 0.5, 0.3],
        [1.5, 1.0, 1.0, 0.5, 0.5],
        [2.0, 1.5, 1.0, 0.5, 0.5],
        [3.0, 1.5, 1.5, 1.5, 0.5],
        [1.5, 1.0, 0.8, 1.2, 0.8],
        [2.0, 1.5, 1.5, 1.0, 0.5],
        [0.8, 0.0, 0.5, 0.0, 0.0],
        [0.8, 0.3, 0.0, 0.3, 0.0],
        [0.3, 0.0, 0.0, 0.5, 0.0],
        [0.5, 0.0, 0.0, 0.0, 0.0],
        [2.5, 0.8, 1.5, 1.0, 0.3],
        [1.2, 0.5, 0.3, 0.5, 0.0],
        [3.0, 2.0, 1.5, 2.0, 0.3],
    ],
    "pred": [
        [15.0, 5.0, 12.5, 7.5, 0.0],
        [7.5, 27.5, 30.0, 37.5, 12.5],
        [45.0, 35.0, 30.0, 17.5, 0.0],
        [45.0, 40.0, 12.5, 2.5, 2.5],
        [32.5, 25.0, 17.5, 15.0, 5.0],
        [40.0, 30.0, 25.0, 20.0, 0.0],
        [60.0, 50.0, 22.5, 20.0, 15.0],
        [40.0, 37.5, 50.0, 60.0, 50.0],
        [32.5, 10.0, 17.5, 15.0, 12.5],
        [35.0, 25.0, 20.0, 17.5, 2.5],
        [15.0, 5.0, 0.0, 0.0, 0.0],
        [55.0, 45.0, 40.0, 27.5, 25.0],
        [47.5, 37.5, 32.5, 30.0, 5.0],
        [60.0, 50.0, 25.0, 10.0, 2.5],
        [20.0, 10.0, 5.0, 2.5, 2.5],
        [37.5, 27.5, 22.5, 10.0, 10.0],
        [17.5, 7.5, 2.5, 2.5, 2.5],
        [12.5, 2.5, 10.0, 12.5, 5.0],
        [27.5, 17.5, 12.5, 7.5, 0.0],
        [50.0, 40.0, 20.0, 7.5, 0.0],
        [50.0, 40.0, 35.0, 0.0, 0.0],
        [57.5, 32.5, 10.0, 5.0, 5.0],
        [60.0, 50.0, 22.5, 5.0, 5.0],
    ],
    "lldas52": [
        0,
        0,
        1,
        1,
        1,
        0,
        0,
        0,
        0,
        1,
        1,
        0,
        1,
        1,
        0,
        0,
        1,
        1,
        1,
        1,
        1,
        1,
        1,
    ],
}
# fmt: on


# --------------------------------------------------------------------------
# SLEDAI-2K descriptors from scores and labs
# --------------------------------------------------------------------------

_WEIGHT = {k: w for k, w, _, _ in schema.SLEDAI_DESCRIPTORS}
_GROUP = {k: g for k, _, _, g in schema.SLEDAI_DESCRIPTORS}
_MAJOR = ("cns", "vascular", "renal", "serosal", "fever")
# Non-renal descriptors in the bit order of LADDER (blood first, then skin, joints, serosa).
_LADDER_KEYS = (
    "leukopenia",
    "thrombocytopenia",
    "rash",
    "alopecia",
    "mucosal_ulcers",
    "arthritis",
    "myositis",
    "pleurisy",
)
_RENAL_EXTRA = ("haematuria", "urinary_casts", "pyuria")
# Organ (patients table) that a descriptor belongs to.
_ORGAN_OF = {
    "leukopenia": "blood",
    "thrombocytopenia": "blood",
    "rash": "skin",
    "alopecia": "skin",
    "mucosal_ulcers": "skin",
    "arthritis": "musculoskeletal",
    "myositis": "musculoskeletal",
    "pleurisy": "lung",
    "pericarditis": "cardiovascular",
    "vasculitis": "cardiovascular",
    "fever": "fever",
    "proteinuria": "kidney",
    "haematuria": "kidney",
    "urinary_casts": "kidney",
    "pyuria": "kidney",
    "seizure": "cns",
    "psychosis": "cns",
    "organic_brain_syndrome": "cns",
    "visual_disturbance": "cns",
    "cranial_nerve_disorder": "cns",
    "lupus_headache": "cns",
    "cva": "cns",
}


def split_score(score: int, low: bool, dna: bool, prot: bool) -> set[str]:
    """Descriptors of a SLEDAI-2K score given the lab-driven ones (the calibration's rule)."""
    present = set()
    if low:
        present.add("low_complement")
    if dna:
        present.add("increased_dna_binding")
    if prot:
        present.add("proteinuria")
    extra = score - 2 * low - 2 * dna - 4 * prot
    if extra < 0:
        raise ValueError("SLEDAI-2K below the score its labs imply")
    renal = 4 * min(3, extra // 4) if prot else 0
    present.update(_RENAL_EXTRA[: renal // 4])
    mask = int(LADDER[extra - renal])
    present.update(k for b, k in enumerate(_LADDER_KEYS) if mask >> b & 1)
    return present


def _score(present: set[str]) -> int:
    return sum(_WEIGHT[k] for k in present)


def _visit_flags(present: set[str], previous: set[str] | None) -> dict:
    """Descriptor booleans plus major_organ_activity and new_activity (Oon et al.)."""
    row = {f"sledai_{k}": (k in present) for k in _WEIGHT}
    row["major_organ_activity"] = any(_GROUP[k] in _MAJOR for k in present)
    row["new_activity"] = pd.NA if previous is None else bool(present - previous)
    return row


# --------------------------------------------------------------------------
# Small exact-moment helpers
# --------------------------------------------------------------------------


def _exact_sample(
    raw: np.ndarray, mean: float, sd: float, step: float, lo: float, hi: float, tol: float
) -> np.ndarray:
    """Shift and scale `raw` to mean/sd, round to `step`, then repair the rounding greedily."""
    x = (raw - raw.mean()) / raw.std(ddof=1) * sd + mean
    x = np.clip(np.round(x / step) * step, lo, hi)
    n = len(x)
    for _ in range(400):
        s1, s2 = x.sum(), (x**2).sum()
        m = s1 / n
        e = max(abs(m - mean), abs(np.sqrt(max(s2 - n * m * m, 0) / (n - 1)) - sd))
        if e <= tol:
            return np.round(x, 6)
        # every single-step change at once: new sums for x_i ± step
        d = np.array([-step, step])[None, :]
        ok = (x[:, None] + d >= lo - 1e-9) & (x[:, None] + d <= hi + 1e-9)
        n1 = s1 + d
        n2 = s2 + 2 * x[:, None] * d + d * d
        mm = n1 / n
        ss = np.sqrt(np.maximum(n2 - n * mm * mm, 0) / (n - 1))
        err = np.where(ok, np.maximum(np.abs(mm - mean), np.abs(ss - sd)), np.inf)
        i, j = np.unravel_index(int(np.argmin(err)), err.shape)
        if err[i, j] >= e - 1e-12:
            break
        x[i] += d[0, j]
    raise RuntimeError("could not reach the target mean and SD")


def _r(x: float, d: int = 2) -> float:
    return float(np.round(x, d))


# --------------------------------------------------------------------------
# csle_belimumab: 26 children (seed paper 000, Wang et al. 2022)
# --------------------------------------------------------------------------

CSLE_SCHEDULE = [0, 4, 12, 24, 52]
# Non-completers (seed: one stopped herself for economic reasons, two switched to
# telitacicept for poor effect, all after >= 8 doses = week 24): weeks of the
# stop and of the last follow-up visit (after the stop, off belimumab).
_NC = (
    {"reason": "stopped by herself (economic)", "sex": "F", "stop": 36, "last": 48},
    {"reason": "switched to telitacicept for poor effect", "sex": "F", "stop": 28, "last": 50},
    {"reason": "switched to telitacicept for poor effect", "sex": "M", "stop": 28, "last": 46},
)
# Their descriptors at weeks 0, 4, 12, 24 and the last visit (hand-written).
_NC_DESC = (
    [{"rash", "fever"}, {"rash"}, {"rash"}, {"rash"}, {"rash"}],
    [
        {
            "proteinuria",
            "haematuria",
            "urinary_casts",
            "increased_dna_binding",
            "thrombocytopenia",
            "leukopenia",
            "fever",
        },
        {"proteinuria", "haematuria", "urinary_casts", "increased_dna_binding"},
        {
            "proteinuria",
            "haematuria",
            "urinary_casts",
            "increased_dna_binding",
            "leukopenia",
            "thrombocytopenia",
        },
        {"proteinuria", "haematuria", "urinary_casts", "pyuria", "increased_dna_binding"},
        {
            "proteinuria",
            "haematuria",
            "urinary_casts",
            "pyuria",
            "increased_dna_binding",
            "thrombocytopenia",
            "leukopenia",
        },
    ],
    [{"increased_dna_binding", "fever"}] + [{"increased_dna_binding"}] * 4,
)
_NC_PGA = ([1.0, 0.5, 0.5, 0.5, 0.5], [3.0, 2.5, 2.5, 3.0, 3.0], [1.0, 1.0, 1.0, 1.0, 1.0])
_NC_PRED = ([10, 10, 7.5, 7.5, 7.5], [50, 45, 40, 45, 50], [15, 12.5, 10, 10, 10])
_NC_PROT = ([0.08, 0.1, 0.07, 0.09, 0.08], [4.8, 3.9, 5.6, 6.2, 6.9], [0.12, 0.1, 0.14, 0.11, 0.13])
_NC_CD19 = (
    [16.2, 14.8, 11.3, 9.6, 13.1],
    [24.5, 22.1, 17.4, 15.8, 21.0],
    [19.7, 18.2, 14.9, 13.5, 15.2],
)
# Table 3 of the seed paper: completer slot, onset week, term, category, severity.
_CSLE_AES = (
    (2, 20, "fungal pneumonia", "infection", "moderate"),
    (9, 9, "upper respiratory tract infection", "infection", "mild"),
    (9, 31, "gastrointestinal infection", "infection", "mild"),
    (15, 14, "limb pain", "musculoskeletal", "mild"),
)
_CSLE_ORGANS = {
    "fever": 6,
    "skin": 11,
    "cns": 2,
    "kidney": 18,
    "lung": 1,
    "blood": 12,
    "cardiovascular": 3,
    "musculoskeletal": 4,
    "gastrointestinal": 1,
}
_CSLE_BIOPSY = ["IV"] * 7 + ["IV+V", "III+V", "III", "III", "V", "V", "I"]
_CSLE_REGIMENS = ["CYC"] * 5 + ["MMF after CYC"] * 5 + ["MMF+TAC"] * 2 + ["TAC"] + ["MMF"] * 13


def _csle_ages(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Onset age, baseline age and disease duration with Table 1's means and SDs.

    Duration (months) is right-skewed; baseline age = onset + duration/12 minus a
    small constant (the paper's duration runs from the first symptoms, a month
    or so before the diagnosis that fixes the age at onset), so the three agree.
    """
    for _ in range(200):
        try:
            onset = _exact_sample(rng.normal(size=n), 10.3, 2.4, 0.1, 5.0, 15.5, 0.02)
            dur = _exact_sample(rng.gamma(1.3, 1.0, n), 41.6, 37.4, 1.0, 3.0, 150.0, 0.02)
        except RuntimeError:
            continue

        # pair late onsets with short durations (inclusion ended at 18 years): swaps
        def bad(p, onset=onset, dur=dur):
            base = onset + dur[p] / 12 - 0.07
            return (
                abs(base.std(ddof=1) - 2.7)
                + 10 * np.maximum(0, base - 17.9).sum()
                + 10 * np.maximum(0, 6.0 - base).sum()
            )

        perm = np.argsort(np.argsort(-onset))  # start fully anti-correlated
        perm = np.argsort(dur)[perm]
        cur = bad(perm)
        for _ in range(3000):
            i, j = rng.choice(n, 2, replace=False)
            perm[[i, j]] = perm[[j, i]]
            new = bad(perm)
            if new <= cur:
                cur = new
            else:
                perm[[i, j]] = perm[[j, i]]
        best = (cur, perm)
        if best[0] > 0.03:
            continue
        dur = dur[best[1]]
        base = np.round(onset + dur / 12 - 0.07, 1)
        if abs(base.mean() - 13.7) <= 0.02 and abs(base.std(ddof=1) - 2.7) <= 0.03:
            return onset, base, dur
    raise RuntimeError("ages not calibrated")


def _height_weight(age: float, sex: str, rng: np.random.Generator) -> tuple[float, float]:
    """Plausible height (cm) and weight (kg) for a child on glucocorticoids."""
    if sex == "F":
        h = 110 + 6.0 * min(age - 5, 7) + 1.5 * max(0.0, min(age - 12, 4))
    else:
        h = 110 + 5.8 * min(age - 5, 8) + 4.5 * max(0.0, min(age - 13, 4))
    h += rng.normal(0, 4)
    bmi = 16 + 0.45 * (age - 6) + abs(rng.normal(0, 2.0))  # some cushingoid gain
    return _r(h, 1), _r(bmi * (h / 100) ** 2, 1)


def _csle_tables(core: dict, rng: np.random.Generator) -> dict[str, pd.DataFrame]:
    """Patients, visits and adverse events of csle_belimumab from the calibrated core."""
    n = core["sledai"].shape[0]
    c3, c4, cd19, prot = core["c3"], core["c4"], core["cd19"], core["prot"]
    ds, S, G, P = core["ds"].astype(bool), core["sledai"], core["pga"], core["pred"]
    low = (c3 < C3_LLN) | (c4 < C4_LLN)
    protb = prot > PROTEINURIA_G
    present = [
        [split_score(int(S[i, k]), low[i, k], ds[i, k], protb[i, k]) for k in range(5)]
        for i in range(n)
    ]

    # --- last follow-up visit of the completers (beyond week 52) -------------
    nc_months = np.array([d["last"] for d in _NC]) * 12 / 52
    comp_months_target = None
    total_mean, total_sd = 19.6, 6.4
    # completers' weeks: all 26 follow-up months reproduce Table 1 (19.6 ± 6.4)
    s_nc = nc_months.sum()
    m_c = (26 * total_mean - s_nc) / n
    ss = 25 * total_sd**2 + 26 * total_mean**2 - (nc_months**2).sum()
    sd_c = np.sqrt((ss - n * m_c**2) / (n - 1))
    for _ in range(100):
        raw = rng.beta(1.6, 2.2, n)
        try:
            months = _exact_sample(raw, m_c, sd_c, 12 / 52, 56 * 12 / 52, 134 * 12 / 52, 0.004)
        except RuntimeError:
            continue
        comp_months_target = months
        break
    last_week = np.rint(comp_months_target * 52 / 12).astype(int)
    rem52 = (S[:, 4] == 0) & (G[:, 4] < 0.5) & (P[:, 4] < 5)
    lldas52 = core["lldas52"]
    order = sorted(
        range(n), key=lambda i: (not rem52[i], not lldas52[i], S[i, 4], G[i, 4], P[i, 4], i)
    )
    cls = {}
    for r, i in enumerate(order):
        cls[i] = "rem" if r < 10 else "lldas" if r < 16 else "low_gc" if r < 17 else "active"
    rem_ids = [i for i in order if cls[i] == "rem"]
    ll_ids = [i for i in order if cls[i] == "lldas"]
    pred_last = {}
    for j, i in enumerate(rem_ids):
        pred_last[i] = 0.0 if j < 8 else 2.5
    for j, i in enumerate(ll_ids):
        pred_last[i] = 0.0 if j < 3 else 2.5
    last = {}
    for i in range(n):
        p52 = present[i][4]
        lab = {
            "c3": c3[i, 4],
            "c4": c4[i, 4],
            "prot": prot[i, 4],
            "ds": bool(ds[i, 4]),
            "cd19": cd19[i, 4],
        }
        if cls[i] == "rem":
            pr: set[str] = set()
            pga = 0.0 if rng.random() < 0.7 else 0.2
            pred = pred_last[i]
        elif cls[i] == "lldas":
            keep = [
                k for k in ("low_complement", "increased_dna_binding", "leukopenia") if k in p52
            ]
            pr = {keep[0]} if keep else set()
            pga = 0.5 if not pr else float(rng.choice([0.3, 0.5]))
            pred = pred_last[i]
        elif cls[i] == "low_gc":
            pr, pga, pred = set(p52), max(1.0, float(G[i, 4])), 2.5
        else:
            pr, pga = set(p52), float(G[i, 4])
            pred = max(7.5, float(P[i, 4]) - 2.5)
        # labs follow the descriptors kept
        lo = "low_complement" in pr
        if lo:
            lab["c3"] = min(lab["c3"], 0.88) if lab["c3"] < C3_LLN else lab["c3"]
            lab["c4"] = min(lab["c4"], 0.09) if lab["c3"] >= C3_LLN else lab["c4"]
        else:
            lab["c3"] = max(lab["c3"], _r(rng.uniform(0.92, 1.15)))
            lab["c4"] = max(lab["c4"], _r(rng.uniform(0.12, 0.24)))
        lab["ds"] = "increased_dna_binding" in pr
        if "proteinuria" in pr:
            lab["prot"] = max(0.52, _r(lab["prot"] * rng.uniform(0.8, 1.1)))
        else:
            lab["prot"] = min(lab["prot"], _r(rng.uniform(0.05, 0.2)))
        lab["cd19"] = _r(max(1.0, lab["cd19"] * rng.uniform(0.8, 1.2)))
        last[i] = dict(week=int(last_week[i]), present=pr, pga=pga, pred=pred, **lab)

    # --- non-completers' baseline complement: Table 1 (n = 26) means and SDs ----
    def nc_triplet(col: np.ndarray, mean: float, sd: float, lo: float, hi: float, step: float,
                   spread: float):
        grid = np.round(np.arange(lo, hi + step / 2, step), 2)
        a, b, c = np.meshgrid(grid, grid, grid, indexing="ij")
        tri = np.stack([a.ravel(), b.ravel(), c.ravel()], axis=1)
        tri = tri[(tri[:, 0] <= tri[:, 1]) & (tri[:, 1] <= tri[:, 2])]
        s1 = col.sum() + tri.sum(axis=1)
        s2 = (col**2).sum() + (tri**2).sum(axis=1)
        m = s1 / 26
        v = np.sqrt((s2 - 26 * m**2) / 25)
        e = np.maximum(np.abs(m - mean), np.abs(v - sd))
        # Within a 0.02 margin of the published mean and SD (the tolerance is 0.05),
        # prefer three patients who differ as real patients do (range near `spread`)
        # over three near-identical values.
        ok = e <= 0.02
        if ok.any():
            score = np.where(ok, np.abs((tri[:, 2] - tri[:, 0]) - spread) + e, np.inf)
            return tri[int(np.argmin(score))]
        return tri[int(np.argmin(e))]

    nc_c3 = nc_triplet(c3[:, 0], 0.70, 0.40, 0.90, 1.60, 0.01, spread=0.35)
    nc_c4 = nc_triplet(c4[:, 0], 0.14, 0.08, 0.10, 0.40, 0.01, spread=0.10)
    # NC2 (the severe one) gets the lowest values
    nc_c3, nc_c4 = nc_c3[[1, 0, 2]], nc_c4[[1, 0, 2]]

    # --- patient attributes ----------------------------------------------------
    n_all = n + 3
    onset, base_age, dur = _csle_ages(rng, n_all)
    sex = ["F"] * n_all
    males = rng.choice(n, 4, replace=False)
    for i in males:
        sex[i] = "M"
    for j, d in enumerate(_NC):
        sex[n + j] = d["sex"]
    # descriptors ever present -> organ involvement (history includes activity seen here)
    all_present: list[list[set[str]]] = [present[i] + [last[i]["present"]] for i in range(n)]
    all_present += [list(d) for d in _NC_DESC]
    need = {o: set() for o in ORGANS}
    for i, visits_p in enumerate(all_present):
        for p in visits_p:
            for k in p:
                if k in _ORGAN_OF:
                    need[_ORGAN_OF[k]].add(i)
    organs = {o: set(v) for o, v in need.items()}
    for o, target in _CSLE_ORGANS.items():
        if len(organs[o]) > target:
            raise RuntimeError(
                f"organ {o}: {len(organs[o])} patients need it, Table 1 has {target}"
            )
        pool = [i for i in range(n_all) if i not in organs[o]]
        organs[o].update(int(i) for i in rng.choice(pool, target - len(organs[o]), replace=False))
    kidney = sorted(organs["kidney"])
    base_prot = np.r_[prot[:, 0], [v[0] for v in _NC_PROT]]
    # biopsy: the 14 with the most baseline proteinuria among the kidney patients,
    # proliferative classes to the heaviest, class I to the lightest
    by_prot = sorted(kidney, key=lambda i: -base_prot[i])
    biopsied = by_prot[:13] + [by_prot[-1]]
    biopsy = {i: c for i, c in zip(biopsied, _CSLE_BIOPSY, strict=True)}
    regimen = {}
    order_reg = [i for i in by_prot if biopsy.get(i, "").startswith(("IV", "III"))]
    rest = [i for i in range(n_all) if i not in order_reg]
    cyc = order_reg[:5]
    after = order_reg[5:10]
    for i in cyc:
        regimen[i] = "CYC"
    for i in after:
        regimen[i] = "MMF after CYC"
    tac_pool = [i for i in biopsied if biopsy[i] in ("V", "III+V", "IV+V") and i not in regimen]
    for i in tac_pool[:2]:
        regimen[i] = "MMF+TAC"
    tac_left = [i for i in tac_pool[2:]] + [i for i in rest if i not in regimen]
    regimen[tac_left[0]] = "TAC"
    for i in range(n_all):
        regimen.setdefault(i, "MMF")
    no_am = int(rng.choice(n))
    ds0 = np.r_[ds[:, 0], [False, True, True]]
    ana_neg = int(rng.choice([i for i in range(n) if not ds0[i]]))

    ids = [f"CSLE-{j + 1:03d}" for j in rng.permutation(n_all)]
    cutoff = dt.date(2022, 8, 31)
    weeks_last = [last[i]["week"] for i in range(n)] + [d["last"] for d in _NC]
    patients, visits, aes = [], [], []
    hw = [_height_weight(float(base_age[i]), sex[i], rng) for i in range(n_all)]
    for i in range(n_all):
        start = cutoff - dt.timedelta(weeks=int(weeks_last[i]) + int(rng.integers(0, 4)))
        start -= dt.timedelta(days=start.weekday())
        nc = _NC[i - n] if i >= n else None
        patients.append(
            {
                "patient_id": ids[i],
                "cohort": CSLE,
                "sex": sex[i],
                "age_at_onset_years": float(onset[i]),
                "age_at_baseline_years": float(base_age[i]),
                "disease_duration_months": float(dur[i]),
                "treatment_start_date": pd.Timestamp(start),
                "biopsy_class": biopsy.get(i),
                "immunosuppressant": regimen[i],
                "antimalarial": i != no_am,
                **{f"organ_{o}": i in organs[o] for o in ORGANS},
                "ana_positive": i != ana_neg,
                "height_cm": hw[i][0],
                "weight_kg": hw[i][1],
                "discontinued_week": None if nc is None else nc["stop"],
                "discontinuation_reason": None if nc is None else nc["reason"],
            }
        )
        # --- visits ---
        if i < n:
            wk = [*CSLE_SCHEDULE, last[i]["week"]]
            rows = [
                {
                    "c3": c3[i, k],
                    "c4": c4[i, k],
                    "prot": prot[i, k],
                    "cd19": cd19[i, k],
                    "ds": bool(ds[i, k]),
                    "present": present[i][k],
                    "pga": float(G[i, k]),
                    "pred": float(P[i, k]),
                }
                for k in range(5)
            ]
            rows.append(last[i])
        else:
            j = i - n
            wk = [*CSLE_SCHEDULE[:4], _NC[j]["last"]]
            rows = []
            for k in range(5):
                pr = _NC_DESC[j][k]
                rows.append(
                    {
                        "c3": nc_c3[j]
                        if k == 0
                        else max(C3_LLN, _r(nc_c3[j] * (1 + 0.04 * np.sin(k)))),
                        "c4": nc_c4[j]
                        if k == 0
                        else max(C4_LLN, _r(nc_c4[j] * (1 + 0.06 * np.cos(k)))),
                        "prot": _NC_PROT[j][k],
                        "cd19": _NC_CD19[j][k],
                        "ds": "increased_dna_binding" in pr,
                        "present": pr,
                        "pga": _NC_PGA[j][k],
                        "pred": float(_NC_PRED[j][k]),
                    }
                )
        prev = None
        for k, (w, v) in enumerate(zip(wk, rows, strict=True)):
            pr = v["present"]
            score = _score(pr)
            growth = w / 52
            h = hw[i][0] + (3.0 if base_age[i] < 14 else 1.0) * growth
            wt = hw[i][1] * (1 + 0.03 * growth)
            creat = 28 + 2.4 * (base_age[i] + growth) + rng.normal(0, 3)
            if i == n + 1:  # NC2: chronic kidney failure developing
                creat = 150 + 12 * k
            dsv = bool(v["ds"])
            titre = rng.lognormal(np.log(150), 0.6) if dsv else rng.uniform(2, 25)
            visits.append(
                {
                    "patient_id": ids[i],
                    "visit_week": int(w),
                    "visit_date": pd.Timestamp(start + dt.timedelta(weeks=int(w))),
                    "c3_g_l": _r(v["c3"]),
                    "c4_g_l": _r(v["c4"]),
                    "urine_protein_g_24h": _r(v["prot"]),
                    "upcr_g_g": None,
                    "cd19_pct": _r(v["cd19"]),
                    "anti_dsdna_positive": dsv,
                    "anti_dsdna_iu_ml": _r(max(30.0, titre) if dsv else min(titre, 29.0), 1),
                    "sledai2k": score,
                    "pga": float(v["pga"]),
                    "prednisone_mg_day": float(v["pred"]),
                    "albumin_g_l": _r(
                        float(np.clip(43 - 3.2 * min(v["prot"], 6) + rng.normal(0, 1.5), 18, 50)), 1
                    ),
                    "creatinine_umol_l": _r(creat, 0),
                    "egfr_ml_min": None,
                    "weight_kg": _r(wt, 1),
                    "height_cm": _r(h, 1),
                    "haemolytic_anaemia": False,
                    "gi_activity": False,
                    **_visit_flags(pr, prev),
                }
            )
            prev = pr
    for slot, week, term, cat, sev in _CSLE_AES:
        aes.append(
            {
                "patient_id": ids[slot],
                "onset_week": week,
                "term": term,
                "category": cat,
                "severity": sev,
                "serious": False,
            }
        )
    return _frames(patients, visits, aes)


def _frames(patients: list[dict], visits: list[dict], aes: list[dict]) -> dict[str, pd.DataFrame]:
    """DataFrames with exactly the contract's columns, in schema order and dtypes."""
    out = {}
    for name, rows in (("patients", patients), ("visits", visits), ("adverse_events", aes)):
        cols = schema.columns(name)
        df = pd.DataFrame(rows)
        data = {}
        for c in cols:
            v = df[c.name] if c.name in df.columns else pd.Series([None] * len(df))
            data[c.name] = _typed(v.reset_index(drop=True), c.dtype)
        out[name] = pd.DataFrame(data)
    return out


def _typed(v: pd.Series, dtype: str) -> pd.Series:
    if dtype == schema.TEXT:
        return v.astype("string")
    if dtype == schema.NUMBER:
        return pd.to_numeric(v, errors="coerce").astype("float64")
    if dtype == schema.INTEGER:
        return pd.to_numeric(v, errors="coerce").astype("Int64")
    if dtype == schema.BOOL:
        return v.astype("boolean")
    return pd.to_datetime(v)


# --------------------------------------------------------------------------
# ln_belimumab: 10 adults with active lupus nephritis (seed document 002)
# --------------------------------------------------------------------------

LN_SCHEDULE = [0, 4, 8, 12, 16, 20]
# Treatment months: 7 efficacy patients (4-9 months, median 7) and 3 safety-only (<= 3).
_LN_MONTHS = (4, 5, 6, 7, 8, 9, 9, 1, 2, 3)
# Response at the last visit among the 7 (KDIGO): index 5 complete (first at month 8),
# 2, 3 and 6 partial, 0, 1 and 4 none.
_LN_COMPLETE, _LN_PARTIAL = 5, (2, 3, 6)
_LN_UPCR = {
    "m4": {"n": 7, "base": (5.49, 6.54), "follow": (3.61, 6.04), "p": 0.025},
    "m5": {"n": 6, "base": (6.18, 6.88), "follow": (3.03, 4.88), "p": 0.046},
}


def _paired_t_p(x: np.ndarray, y: np.ndarray) -> float:
    d = y - x
    t = d.mean() / (d.std(ddof=1) / np.sqrt(len(d)))
    return float(2 * stats.t.sf(abs(t), len(d) - 1))


def _ln_upcr_errors(x7: np.ndarray, y4: np.ndarray, y5: np.ndarray) -> np.ndarray:
    """Normalised errors of the published UPCR comparisons (|e| <= 1 within tolerance)."""
    x6 = x7[1:]
    e = []
    for xb, yf, t in ((x7, y4, _LN_UPCR["m4"]), (x6, y5, _LN_UPCR["m5"])):
        e += [
            (xb.mean() - t["base"][0]) / 0.005,
            (xb.std(ddof=1) - t["base"][1]) / 0.005,
            (yf.mean() - t["follow"][0]) / 0.005,
            (yf.std(ddof=1) - t["follow"][1]) / 0.005,
            (_paired_t_p(xb, yf) - t["p"]) / 0.003,
        ]
    return np.array(e)


def _ln_upcr(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Baseline (7), month-4 (7) and month-5 (6) UPCR reproducing the thesis's paired tests.

    Patient 0 is the one treated 4 months: the month-5 comparison has the other
    six, which is why its baseline mean and SD differ from month 4's.
    """
    t4, t5 = _LN_UPCR["m4"], _LN_UPCR["m5"]

    def follow(x, mean, sd, p, raw):
        n = len(x)
        tcrit = stats.t.isf(p / 2, n - 1)
        md = mean - x.mean()
        sdd = abs(md) * np.sqrt(n) / tcrit
        cov = (x.std(ddof=1) ** 2 + sd**2 - sdd**2) / 2
        zx = (x - x.mean()) / x.std(ddof=1)
        r = raw - raw.mean()
        r = r - (r @ zx) / (zx @ zx) * zx
        r = r / r.std(ddof=1)
        a = cov / x.std(ddof=1)
        b = np.sqrt(max(sd**2 - a**2, 0.0))
        return mean + a * zx + b * r

    for _ in range(2000):
        try:
            x6 = _exact_sample(
                rng.lognormal(0.9, 1.1, 6), t5["base"][0], t5["base"][1], 0.01, 0.6, 30, 0.003
            )
        except RuntimeError:
            continue
        x1 = _r(7 * t4["base"][0] - x6.sum())
        x7 = np.r_[x1, x6]
        ratio = rng.uniform(0.3, 0.9, 7)
        y4 = np.round(follow(x7, *t4["follow"], t4["p"], x7 * ratio), 2)
        y5 = np.round(follow(x6, *t5["follow"], t5["p"], y4[1:] * rng.uniform(0.6, 1.0, 6)), 2)
        if min(y4.min(), y5.min()) < 0.05 or x1 < 0.6:
            continue
        # patient 0 (4 months) and 1 (5 months) are non-responders at their last visit
        if y4[0] <= max(0.5 * x1, 0.55) or y5[0] <= max(0.5 * x6[0], 0.55) or y5[0] >= x6[0]:
            continue
        for _ in range(200):  # greedy repair of the 2-decimal rounding
            e = _ln_upcr_errors(x7, y4, y5)
            if np.abs(e).max() <= 0.8:
                return x7, y4, y5
            best = (np.abs(e).max(), None)
            for arr in (x7, y4, y5):
                for i in range(len(arr)):
                    for d in (-0.01, 0.01):
                        arr[i] += d
                        m = np.abs(_ln_upcr_errors(x7, y4, y5)).max()
                        arr[i] -= d
                        if m < best[0] - 1e-12:
                            best = (m, (arr, i, d))
            if best[1] is None:
                break
            arr, i, d = best[1]
            arr[i] = _r(arr[i] + d)
    raise RuntimeError("LN UPCR calibration failed")


def _ln_tables(rng: np.random.Generator) -> dict[str, pd.DataFrame]:
    """Patients, visits and adverse events of ln_belimumab (10 adults, monthly visits)."""
    for _ in range(50):
        x7, y4, y5 = _ln_upcr(rng)
        rest = sorted(range(2, 7), key=lambda i: -x7[i])
        # the complete responder stays >= 0.5 g/g until month 8
        done = [i for i in rest[1:] if min(y4[i], y5[i - 1]) >= 0.55]
        if not done:
            continue
        rest.remove(done[-1])
        rest.append(done[-1])
        if x7[rest[3]] >= 1.3:
            break
    else:
        raise RuntimeError("LN roles not assignable")
    # roles of the five patients treated > 5 months, by baseline UPCR
    a, b, c, d, e = rest
    months = {0: 4, 1: 5, a: 8, b: 7, c: 9, d: 6, e: 9, 7: 1, 8: 2, 9: 3}
    role = {
        0: "none",
        1: "none",
        a: "none",
        b: "partial",
        c: "partial",
        d: "partial",
        e: "complete",
    }
    n = 10
    base_upcr = np.r_[
        x7, _r(rng.uniform(1.2, 4.5)), _r(rng.uniform(1.2, 4.5)), _r(rng.uniform(1.2, 4.5))
    ]
    upcr: dict[int, dict[int, float]] = {}
    for i in range(n):
        x = base_upcr[i]
        u = {0: x}
        if i < 7:
            for m in (1, 2, 3):
                u[m] = _r(x * (y4[i] / x) ** (m / 4) * rng.uniform(0.92, 1.08))
                if role.get(i) == "complete":
                    u[m] = max(u[m], 0.58)
            u[4] = y4[i]
            if i >= 1:
                u[5] = y5[i - 1]
            last_m = months[i]
            if role.get(i) == "partial":
                goal = max(0.55, min(0.45 * x, 2.8))
            elif role.get(i) == "complete":
                goal = 0.35
            else:
                goal = max(u[max(u)], 0.6 * x)
            for m in range(6, last_m + 1):
                frac = (m - 5) / (last_m - 5)
                u[m] = _r(u[5] * (goal / u[5]) ** frac)
            if role.get(i) == "complete":
                u[7] = max(u[7], 0.62)
                u[8], u[9] = 0.42, 0.35
        else:
            for m in range(1, months[i] + 1):
                u[m] = _r(x * rng.uniform(0.86, 1.0) ** m)  # no response within 3 months
        upcr[i] = u
    sex = ["F"] * n
    sex[8] = "M"
    age = np.round(rng.uniform(22, 48, n), 1)
    dur = np.round(rng.gamma(1.5, 24, n)).clip(3, 180)
    biopsy = ["IV", "IV", "III+V", "IV+V", "V", "III", "IV", "IV+V", "III", "V"]
    regimen = ["MMF", "CYC", "MMF", "MMF+TAC", "TAC", "MMF", "CYC", "MMF+TAC", "MMF", "MMF"]
    rash = {1, 4, 8}
    arthritis = {3}
    leuko = {6}
    ds_base = np.array([True] * 8 + [False, True])
    rng.shuffle(ds_base)
    cutoff = dt.date(2021, 4, 30)
    patients, visits, aes = [], [], []
    for i in range(n):
        pid = f"LN-{i + 1:03d}"
        start = cutoff - dt.timedelta(weeks=4 * months[i] + int(rng.integers(0, 3)))
        start -= dt.timedelta(days=start.weekday())
        h = rng.uniform(152, 168) if sex[i] == "F" else rng.uniform(166, 180)
        w = rng.uniform(48, 68) if sex[i] == "F" else rng.uniform(62, 80)
        patients.append(
            {
                "patient_id": pid,
                "cohort": LN,
                "sex": sex[i],
                "age_at_onset_years": _r(age[i] - dur[i] / 12, 1),
                "age_at_baseline_years": float(age[i]),
                "disease_duration_months": float(dur[i]),
                "treatment_start_date": pd.Timestamp(start),
                "biopsy_class": biopsy[i],
                "immunosuppressant": regimen[i],
                "antimalarial": i != 4,
                **{
                    f"organ_{o}": (
                        o == "kidney"
                        or (o == "skin" and i in rash)
                        or (o == "musculoskeletal" and i in arthritis)
                        or (o == "blood" and i in leuko)
                    )
                    for o in ORGANS
                },
                "ana_positive": True,
                "weight_kg": _r(w, 1),
                "height_cm": _r(h, 1),
                "discontinued_week": None,
                "discontinuation_reason": None,
            }
        )
        c3_0, c4_0 = rng.uniform(0.42, 0.8), rng.uniform(0.04, 0.12)
        alb0 = float(np.clip(33 - 1.1 * min(base_upcr[i], 12) + rng.normal(0, 1.5), 18, 40))
        titre0 = rng.uniform(90, 420) if ds_base[i] else rng.uniform(8, 25)
        creat0 = rng.uniform(58, 105)
        pga0 = float(rng.choice([1.5, 2.0, 2.0, 2.5]))
        pred0 = float(rng.choice([30, 40, 40, 50]))
        prev = None
        base_set: set[str] = set()
        for m in range(months[i] + 1):
            u = upcr[i][m]
            c3 = _r(min(1.25, c3_0 + 0.045 * m + rng.normal(0, 0.02)))
            c4 = _r(min(0.3, c4_0 + 0.012 * m + rng.normal(0, 0.005)))
            titre = titre0 * 0.8**m * rng.uniform(0.9, 1.1)
            pr = set()
            if u > PROTEINURIA_G:
                pr.add("proteinuria")
            if m == 0 or (u > 1.0 and m <= 3):
                pr.add("haematuria")
            if m == 0 and u > 3:
                pr.add("urinary_casts")
            if c3 < C3_LLN or c4 < C4_LLN:
                pr.add("low_complement")
            if titre >= ANTI_DSDNA_POSITIVE_IU:
                pr.add("increased_dna_binding")
            if i in rash and m <= 1:
                pr.add("rash")
            if i in arthritis and m == 0:
                pr.add("arthritis")
            if i in leuko and m <= 2:
                pr.add("leukopenia")
            if m == 0:
                base_set = pr
            pr &= base_set  # improving disease: nothing appears that baseline lacked
            creat = creat0 * (
                1
                + (
                    rng.uniform(-0.05, 0.0)
                    if role.get(i) in ("partial", "complete")
                    else rng.uniform(-0.04, 0.06)
                )
            )
            agev = age[i] + 4 * m / 52
            visits.append(
                {
                    "patient_id": pid,
                    "visit_week": 4 * m,
                    "visit_date": pd.Timestamp(start + dt.timedelta(weeks=4 * m)),
                    "c3_g_l": c3,
                    "c4_g_l": c4,
                    "urine_protein_g_24h": None,
                    "upcr_g_g": u,
                    "cd19_pct": None,
                    "anti_dsdna_positive": "increased_dna_binding" in pr,
                    "anti_dsdna_iu_ml": _r(
                        titre
                        if "increased_dna_binding" in pr
                        else min(titre, ANTI_DSDNA_POSITIVE_IU - 1),
                        1,
                    ),
                    "sledai2k": _score(pr),
                    "pga": max(0.5, pga0 - 0.5 * (m // 2)),
                    "prednisone_mg_day": max(7.5, pred0 - 7.5 * m),
                    "albumin_g_l": _r(min(44.0, alb0 + 1.4 * m + rng.normal(0, 0.8)), 1),
                    "creatinine_umol_l": _r(creat, 0),
                    "egfr_ml_min": _r(endpoints.egfr_ckd_epi_2021(_r(creat, 0), agev, sex[i]), 1),
                    "weight_kg": _r(w, 1),
                    "height_cm": _r(h, 1),
                    "haemolytic_anaemia": False,
                    "gi_activity": False,
                    **_visit_flags(pr, prev),
                }
            )
            prev = pr
    aes.append(
        {
            "patient_id": "LN-008",
            "onset_week": 3,
            "term": "upper respiratory tract infection",
            "category": "infection",
            "severity": "mild",
            "serious": False,
        }
    )
    aes.append(
        {
            "patient_id": "LN-004",
            "onset_week": 0,
            "term": "infusion reaction",
            "category": "infusion_reaction",
            "severity": "mild",
            "serious": False,
        }
    )
    return _frames(patients, visits, aes)


# --------------------------------------------------------------------------
# --scale N: a large registry-like cohort for benchmarks (vectorised per chunk)
# --------------------------------------------------------------------------

SCALE = "scale_registry"
# Children follow the paediatric schedule, adults the monthly one; the cohort's
# schedule is their union (the final week, 52, decides `completer`).
SCALE_SCHEDULE = [0, 4, 8, 12, 16, 20, 24, 36, 52]
_CHILD_WEEKS = {0, 4, 12, 24, 52}
_CNS_KEYS = (
    "seizure",
    "psychosis",
    "organic_brain_syndrome",
    "visual_disturbance",
    "cranial_nerve_disorder",
    "lupus_headache",
    "cva",
)
_ORGAN_RATE = {
    "fever": 0.25,
    "skin": 0.45,
    "cns": 0.08,
    "kidney": 0.55,
    "lung": 0.05,
    "blood": 0.45,
    "cardiovascular": 0.1,
    "musculoskeletal": 0.35,
    "gastrointestinal": 0.04,
}
_AE_TERMS = (
    ("upper respiratory tract infection", "infection", 0.35),
    ("urinary tract infection", "infection", 0.15),
    ("herpes zoster", "infection", 0.05),
    ("infusion reaction", "infusion_reaction", 0.12),
    ("allergic reaction", "allergic_reaction", 0.05),
    ("leukopenia", "leukopenia", 0.06),
    ("nausea", "gastrointestinal", 0.1),
    ("headache", "nervous_system", 0.07),
    ("depression", "psychiatric", 0.02),
    ("arthralgia", "musculoskeletal", 0.03),
)


def scale_tables(
    n: int, seed: int = DEFAULT_SEED, chunk: int = 20_000
) -> Iterator[dict[str, pd.DataFrame]]:
    """Yield contract tables for n synthetic patients, `chunk` patients at a time."""
    if n < 1:
        raise ValueError("n must be at least 1")
    start = 0
    while start < n:
        m = min(chunk, n - start)
        rng = np.random.default_rng([seed, start])
        yield _scale_chunk(rng, start, m)
        start += m


def _scale_chunk(rng: np.random.Generator, first: int, m: int) -> dict[str, pd.DataFrame]:
    ids = np.array([f"SR-{first + i + 1:07d}" for i in range(m)], dtype=object)
    child = rng.random(m) < 0.35
    age = np.round(np.where(child, rng.uniform(6, 17.9, m), rng.uniform(18, 68, m)), 1)
    female = rng.random(m) < 0.88
    dur = np.round(np.minimum(rng.gamma(1.3, 30, m), (age - 4) * 12).clip(1, None))
    onset = np.round(age - dur / 12, 1)
    organ = {o: rng.random(m) < r for o, r in _ORGAN_RATE.items()}
    organ["kidney"] |= child & (rng.random(m) < 0.3)
    kidney = organ["kidney"]
    biopsied = kidney & (rng.random(m) < 0.6)
    cls = rng.choice(
        np.array(["II", "III", "IV", "V", "III+V", "IV+V", "I", "VI"]),
        m,
        p=[0.08, 0.2, 0.38, 0.16, 0.06, 0.08, 0.02, 0.02],
    )
    regimen = rng.choice(
        np.array(["MMF", "CYC", "MMF after CYC", "TAC", "MMF+TAC", "AZA", "none"]),
        m,
        p=[0.42, 0.1, 0.1, 0.06, 0.07, 0.15, 0.1],
    )
    # height (cm) and weight (kg) from age and sex (rough growth curves, adult plateau)
    a = np.minimum(age, 18)
    height = np.where(
        female,
        110 + 6.0 * np.minimum(a - 5, 7) + 1.5 * np.clip(a - 12, 0, 4),
        110 + 5.8 * np.minimum(a - 5, 8) + 4.5 * np.clip(a - 13, 0, 4),
    )
    height = np.round(height + rng.normal(0, 5, m), 1)
    bmi = np.where(child, 16 + 0.45 * (age - 6), 23) + np.abs(rng.normal(0, 2.5, m))
    weight = np.round(bmi * (height / 100) ** 2, 1)
    start_day = rng.integers(0, 9 * 365, m)
    start = np.datetime64("2014-01-06") + start_day.astype("timedelta64[D]")

    # --- visit grid: scheduled weeks by age group, dropouts, missed visits, extension
    sched = np.array(SCALE_SCHEDULE)
    attend = np.ones((m, len(sched) + 1), dtype=bool)
    child_cols = np.isin(sched, sorted(_CHILD_WEEKS))
    attend[:, :-1] &= np.where(child[:, None], child_cols[None, :], True)
    drop = rng.random(m) < 0.12
    drop_at = rng.integers(3, len(sched), m)  # index of the first scheduled visit missed
    cols = np.arange(len(sched))
    attend[:, :-1] &= ~(drop[:, None] & (cols[None, :] >= drop_at[:, None]))
    miss = rng.random((m, len(sched))) < 0.05
    miss[:, 0] = False
    attend[:, :-1] &= ~miss
    extra_week = 52 + rng.integers(8, 90, m)
    attend[:, -1] = ~drop & (rng.random(m) < 0.6)
    week_grid = np.concatenate([np.broadcast_to(sched, (m, len(sched))), extra_week[:, None]], 1)
    pi, slot = np.nonzero(attend)
    week = week_grid[pi, slot]
    disc_week = np.where(drop, sched[np.clip(drop_at, 0, len(sched) - 1)], -1)
    nv = len(pi)
    t = week / 52.0

    # --- latent activity per patient, decaying with a patient-specific rate
    a0 = rng.uniform(0.3, 1.0, m)
    rate = rng.gamma(2.0, 0.9, m)  # some barely respond
    act = a0[pi] * np.exp(-rate[pi] * t) + np.abs(rng.normal(0, 0.06, nv))
    c3 = np.round(
        np.clip(
            1.18 - 0.75 * act * rng.uniform(0.6, 1.3, m)[pi] + rng.normal(0, 0.08, nv), 0.15, 2.2
        ),
        2,
    )
    c4 = np.round(
        np.clip(
            0.26 - 0.2 * act * rng.uniform(0.5, 1.3, m)[pi] + rng.normal(0, 0.02, nv), 0.02, 0.6
        ),
        2,
    )
    p0 = np.where(kidney, rng.lognormal(0.2, 0.9, m), 0.0)
    prot = np.where(
        kidney[pi], p0[pi] * np.exp(-rate[pi] * 0.8 * t) * rng.uniform(0.7, 1.3, nv), 0
    ) + rng.uniform(0.03, 0.18, nv)
    prot = np.round(np.clip(prot, 0.02, 20), 2)
    pos0 = rng.random(m) < 0.65
    titre0 = np.where(pos0, rng.lognormal(np.log(160), 0.6, m), rng.uniform(2, 25, m))
    titre = np.round(
        titre0[pi] * np.exp(-rng.uniform(0.2, 1.2, m)[pi] * t) * rng.uniform(0.85, 1.15, nv), 1
    )
    dsdna = titre >= ANTI_DSDNA_POSITIVE_IU

    u = rng.random((nv, 12))
    d = {k: np.zeros(nv, dtype=bool) for k in _WEIGHT}
    d["low_complement"] = (c3 < C3_LLN) | (c4 < C4_LLN)
    d["increased_dna_binding"] = dsdna
    d["proteinuria"] = prot > PROTEINURIA_G
    kv = kidney[pi]
    d["haematuria"] = kv & (prot > 1.0) & (u[:, 0] < 0.6)
    d["urinary_casts"] = kv & (prot > 2.0) & (u[:, 1] < 0.4)
    d["pyuria"] = kv & (prot > 1.0) & (u[:, 2] < 0.2)
    for key, org, p in (
        ("rash", "skin", 0.7),
        ("alopecia", "skin", 0.3),
        ("mucosal_ulcers", "skin", 0.25),
        ("arthritis", "musculoskeletal", 0.7),
        ("myositis", "musculoskeletal", 0.05),
        ("pleurisy", "lung", 0.4),
        ("pericarditis", "cardiovascular", 0.3),
        ("vasculitis", "cardiovascular", 0.1),
        ("fever", "fever", 0.3),
        ("thrombocytopenia", "blood", 0.35),
        ("leukopenia", "blood", 0.5),
    ):
        d[key] = organ[org][pi] & (rng.random(nv) < p * act)
    cns = organ["cns"][pi] & (u[:, 3] < 0.2 * act)
    which = rng.integers(0, len(_CNS_KEYS), m)[pi]
    for j, key in enumerate(_CNS_KEYS):
        d[key] = cns & (which == j)
    sledai = np.zeros(nv, dtype=np.int64)
    for k, w in _WEIGHT.items():
        sledai += w * d[k]
    major = np.zeros(nv, dtype=bool)
    for k in _WEIGHT:
        if _GROUP[k] in _MAJOR:
            major |= d[k]
    first = np.r_[True, pi[1:] != pi[:-1]]
    new = np.zeros(nv, dtype=bool)
    for k in _WEIGHT:
        prev = np.r_[False, d[k][:-1]]
        new |= d[k] & ~prev
    new_activity = pd.array(new, dtype="boolean")
    new_activity[first] = pd.NA

    pga = np.clip(np.round((0.11 * sledai + rng.normal(0.2, 0.25, nv)) * 2) / 2, 0, 3)
    pred0 = np.round(rng.uniform(5, 60, m) / 2.5) * 2.5
    floor = np.select([act < 0.15, act < 0.35, act < 0.6], [0.0, 2.5, 5.0], 10.0)
    pred = np.maximum(floor, np.round(pred0[pi] * np.exp(-t * 2.2) / 2.5) * 2.5)
    pred = np.where(week == 0, pred0[pi], pred)
    alb = np.round(np.clip(44 - 2.6 * np.minimum(prot, 8) + rng.normal(0, 2, nv), 15, 52), 1)
    creat = np.where(
        child[pi], 28 + 2.4 * (age[pi] + t), np.where(female[pi], 62, 80) * (1 + 0.35 * act * kv)
    ) * rng.uniform(0.9, 1.1, nv)
    cd19 = np.where(
        child[pi], np.clip(18 * np.exp(-t * 1.6) + 4 + rng.normal(0, 2, nv), 0.5, 60), np.nan
    )

    visits = {
        "patient_id": ids[pi],
        "visit_week": week,
        "visit_date": start[pi] + (week * 7).astype("timedelta64[D]"),
        "c3_g_l": c3,
        "c4_g_l": c4,
        "urine_protein_g_24h": np.where(child[pi], prot, np.nan),
        "upcr_g_g": np.where(child[pi], np.nan, prot),
        "cd19_pct": np.round(cd19, 1),
        "anti_dsdna_positive": dsdna,
        "anti_dsdna_iu_ml": titre,
        "sledai2k": sledai,
        "pga": pga,
        "prednisone_mg_day": pred,
        "albumin_g_l": alb,
        "creatinine_umol_l": np.round(creat),
        "egfr_ml_min": np.full(nv, np.nan),
        "major_organ_activity": major,
        "new_activity": new_activity,
        "weight_kg": weight[pi],
        "height_cm": height[pi],
        "haemolytic_anaemia": organ["blood"][pi] & (u[:, 4] < 0.03 * act),
        "gi_activity": organ["gastrointestinal"][pi] & (u[:, 5] < 0.2 * act),
        **{f"sledai_{k}": d[k] for k in _WEIGHT},
    }
    patients = {
        "patient_id": ids,
        "cohort": np.full(m, SCALE, dtype=object),
        "sex": np.where(female, "F", "M"),
        "age_at_onset_years": onset,
        "age_at_baseline_years": age,
        "disease_duration_months": dur,
        "treatment_start_date": start,
        "biopsy_class": np.where(biopsied, cls, None),
        "immunosuppressant": regimen,
        "antimalarial": rng.random(m) < 0.9,
        **{f"organ_{o}": organ[o] for o in ORGANS},
        "ana_positive": rng.random(m) < 0.97,
        "weight_kg": weight,
        "height_cm": height,
        "discontinued_week": np.where(drop, disc_week, -1),
        "discontinuation_reason": np.where(
            drop,
            rng.choice(
                np.array(["inefficacy", "adverse event", "patient decision", "lost to follow-up"]),
                m,
            ),
            None,
        ),
    }
    # adverse events: Poisson count per patient, onset within the patient's follow-up
    n_ae = rng.poisson(0.35, m)
    ae_p = np.repeat(np.arange(m), n_ae)
    last_week = np.zeros(m, dtype=np.int64)
    np.maximum.at(last_week, pi, week)
    probs = np.array([p for *_, p in _AE_TERMS])
    pick = rng.choice(len(_AE_TERMS), len(ae_p), p=probs / probs.sum())
    sev = rng.choice(np.array(["mild", "moderate", "severe"]), len(ae_p), p=[0.65, 0.3, 0.05])
    aes = {
        "patient_id": ids[ae_p],
        "onset_week": (rng.random(len(ae_p)) * np.maximum(last_week[ae_p], 1)).astype(np.int64),
        "term": np.array([_AE_TERMS[j][0] for j in pick], dtype=object),
        "category": np.array([_AE_TERMS[j][1] for j in pick], dtype=object),
        "severity": sev,
        "serious": sev == "severe",
    }
    out = {}
    for name, cols in (("patients", patients), ("visits", visits), ("adverse_events", aes)):
        data = {}
        for c in schema.columns(name):
            v = cols.get(c.name)
            if v is None:
                v = np.full(len(next(iter(cols.values()))), None, dtype=object)
            s = pd.Series(v)
            if c.name == "discontinued_week":
                s = s.where(s >= 0)
            data[c.name] = _typed(s, c.dtype)
        out[name] = pd.DataFrame(data)
    return out


# --------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------

SCHEDULES = {CSLE: CSLE_SCHEDULE, LN: LN_SCHEDULE}


def _core() -> dict:
    """The frozen calibrated 23 x 5 matrices of the csle completers as arrays."""
    out = {k: np.array(v) for k, v in _CORE.items()}
    out["ds"] = out["ds"].astype(bool)
    out["lldas52"] = out["lldas52"].astype(bool)
    return out


def demo_tables(seed: int = DEFAULT_SEED) -> dict[str, pd.DataFrame]:
    """patients, visits and adverse_events of both demo cohorts (contract columns)."""
    rng = np.random.default_rng(seed)
    a = _csle_tables(_core(), np.random.default_rng(rng.integers(2**63)))
    b = _ln_tables(np.random.default_rng(rng.integers(2**63)))
    return {k: pd.concat([a[k], b[k]], ignore_index=True) for k in a}


def build_demo(path: str | os.PathLike, scale: int | None = None, seed: int | None = None) -> dict:
    """Write the demo (or a scaled cohort of `scale` patients) to `path`, replacing it."""
    from . import store  # imported here: store imports derive, which is heavy to load
    from .db import publish_version, wants_versioned

    seed = DEFAULT_SEED if seed is None else int(seed)
    path = Path(path)
    # A hosted pointer (or LUPUS_DASH_VERSIONED=1) gets a new version behind it, so a
    # running dashboard's sessions keep their connections (db.publish_version).
    versioned = wants_versioned(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Build beside the target and move it into place: the old demo stays whole
    # until the new one is complete (store writes its own temp file the same way).
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".build", dir=path.parent)
    os.close(fd)
    os.unlink(tmp)
    try:
        if scale is None:
            info = store.write_database(
                tmp,
                demo_tables(seed),
                mode="create",
                schedules=SCHEDULES,
                source=f"synthetic demo (lupus_dash.synth, seed {seed})",
                versioned=False,
            )
        else:
            info = store.write_database_chunks(
                tmp,
                scale_tables(int(scale), seed),
                mode="create",
                schedules={SCALE: SCALE_SCHEDULE},
                source=f"synthetic scaled cohort of {scale} patients (seed {seed})",
                versioned=False,
            )
        if versioned:
            publish_version(tmp, path)
        else:
            os.replace(tmp, path)
        if isinstance(info, dict):
            info = {**info, "path": str(path)}
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return info


def cli_build_demo(args) -> int:
    """`python -m lupus_dash build-demo [--db PATH] [--scale N] [--seed S]`."""
    import time

    t0 = time.perf_counter()
    info = build_demo(args.db, scale=args.scale, seed=args.seed)
    what = f"{args.scale} synthetic patients" if args.scale else f"demo cohorts {CSLE}, {LN}"
    print(f"wrote {what} to {args.db} in {time.perf_counter() - t0:.1f} s")
    if isinstance(info, dict) and info:
        print(", ".join(f"{k}: {v}" for k, v in info.items() if not isinstance(v, dict | list)))
    return 0
