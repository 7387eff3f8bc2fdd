"""Write tests/r/stats_fixture.csv: the deterministic cohort both R and the tests read.

Run from the repository root: python tests/r/make_fixture.py
30 patients x 5 visits (weeks 0, 4, 12, 24, 52), tidy (one row per visit):
- value: continuous, 2 decimals, rising over time, ~8 % missing;
- score: integer 0-12 (many ties and zero differences), some missing;
- positive: binary 1/0, some missing;
- group2 (A/B), group3 (X/Y/Z): patient-level groups;
- time_weeks, event: patient-level time to first event (censored at 52).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

WEEKS = (0, 4, 12, 24, 52)
N_PATIENTS = 30
SEED = 20261122


def make_fixture() -> pd.DataFrame:
    """The fixture as a DataFrame (values already rounded as written)."""
    rng = np.random.default_rng(SEED)
    rows = []
    for i in range(N_PATIENTS):
        pid = f"P{i + 1:02d}"
        g2 = "A" if i % 2 == 0 else "B"
        g3 = "XYZ"[i % 3]
        base = rng.normal(0.7, 0.25)
        subj = rng.normal(0, 0.15)
        score0 = int(rng.integers(2, 13))
        pos0 = rng.random() < 0.65
        t = float(np.round(rng.exponential(30 if g2 == "A" else 55), 0)) + 1
        event = int(t <= 52)
        t = min(t, 52.0)
        for w in WEEKS:
            value = base + subj + 0.0015 * w + 0.04 * (w > 0) + rng.normal(0, 0.2)
            value = round(float(value), 2)
            if rng.random() < 0.08 and w > 0:
                value = np.nan
            score = max(0, score0 + int(rng.integers(-2, 2)) * (w > 0) - (w >= 24))
            score = float(score) if rng.random() > 0.05 else np.nan
            pos = pos0 if w == 0 else (pos0 and rng.random() < 0.7) or rng.random() < 0.08
            pos = float(pos) if rng.random() > 0.05 else np.nan
            rows.append({"patient": pid, "visit_week": w, "value": value, "score": score,
                         "positive": pos, "group2": g2, "group3": g3,
                         "time_weeks": t, "event": event})
    return pd.DataFrame(rows)


if __name__ == "__main__":
    out = Path(__file__).with_name("stats_fixture.csv")
    make_fixture().to_csv(out, index=False, na_rep="NA", float_format="%.15g")
    print(f"wrote {out}")
