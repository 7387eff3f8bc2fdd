"""Write tests/r/t2t_fixture.csv: the treat-to-target cohort R and the tests both read.

Run from the repository root: python tests/r/make_t2t_fixture.py
48 patients, scheduled weeks 0, 4, 12, 24, 52 plus a few unscheduled visits, tidy
(one row per attended visit):
- value: continuous endpoint, 2 decimals (MMRM: change from baseline);
- lldas, remission: 1 / 0 / NA (NA = attended, not evaluable);
- group (A/B), age: patient-level subgroup and covariate;
- stop_week, stop_reason: the biologic stopped or switched (NA = ongoing); some of
  these patients keep attending after the stop (treatment policy uses those visits);
- dropouts: monotone loss after week 12 or 24, and single missed visits.
P03 is in LLDAS at baseline; P05 is in remission at baseline; P07 is not
evaluable at baseline.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

WEEKS = (0, 4, 12, 24, 52)
N_PATIENTS = 48
SEED = 20261201
# Stops and switches: patient -> (week, reason, keeps attending after the stop)
STOPS = {
    "P04": (16, "switched to telitacicept (inefficacy)", True),
    "P09": (28, "adverse event", True),
    "P14": (12, "switched to rituximab (inefficacy)", False),
    "P21": (36, "patient decision", True),
    "P30": (4, "adverse event", False),
    "P37": (24, "switched to anifrolumab (inefficacy)", True),
}
DROP_AFTER = {"P11": 12, "P18": 24, "P26": 12, "P33": 24, "P41": 4}  # last attended week
UNSCHEDULED = {"P02": 36, "P08": 36, "P21": 40, "P40": 44}


def make_fixture() -> pd.DataFrame:
    """The fixture as a DataFrame (values already rounded as written)."""
    rng = np.random.default_rng(SEED)
    rows = []
    for i in range(N_PATIENTS):
        pid = f"P{i + 1:02d}"
        group = "A" if i % 2 == 0 else "B"
        age = int(rng.integers(16, 60))
        base = rng.normal(8.0, 2.0)
        subj = rng.normal(0, 1.2)
        slope = rng.normal(0, 0.02)
        ar = 0.0
        resp = rng.random()  # propensity to reach the target
        stop = STOPS.get(pid)
        weeks = sorted(set(WEEKS) | ({UNSCHEDULED[pid]} if pid in UNSCHEDULED else set()))
        for w in weeks:
            if pid in DROP_AFTER and w > DROP_AFTER[pid]:
                break
            if stop and w > stop[0] and not stop[2]:
                break
            if w > 0 and w in WEEKS and rng.random() < 0.06:
                continue  # a missed visit
            ar = 0.6 * ar + rng.normal(0, 1.0 + w / 52)
            effect = -(2.0 + (0.8 if group == "B" else 0.0)) * min(w, 24) / 24 \
                - (0.6 if group == "B" and w >= 24 else 0.0)
            value = round(float(base + subj + effect + slope * w + (ar if w else 0.0)), 2)
            if w == 0:
                lldas = 1 if pid in ("P03", "P05") else (None if pid == "P07" else 0)
                rem = 1 if pid == "P05" else (None if pid == "P07" else 0)
            else:
                p = min(0.95, 0.15 + resp * 0.8 * min(w, 24) / 24)
                lldas = int(rng.random() < p)
                rem = int(lldas and rng.random() < 0.45)
                if rng.random() < 0.05:
                    lldas, rem = None, (None if rng.random() < 0.5 else 0)
            rows.append({
                "patient": pid, "week": w, "group": group, "age": age, "value": value,
                "lldas": lldas, "remission": rem,
                "stop_week": stop[0] if stop else None, "stop_reason": stop[1] if stop else None,
            })
    df = pd.DataFrame(rows)
    for c in ("lldas", "remission", "stop_week"):
        df[c] = df[c].astype("Int64")
    return df


if __name__ == "__main__":
    out = Path(__file__).with_name("t2t_fixture.csv")
    make_fixture().to_csv(out, index=False, na_rep="NA", float_format="%.15g")
    print(f"wrote {out}")
