"""Write tests/r/small_n_fixture.csv: a small cohort built to break naive small-n statistics.

Run from the repository root: python tests/r/make_small_n_fixture.py
Then: Rscript tests/r/small_n_reference.R (writes small_n_reference.json).

24 patients x 4 visits (weeks 0, 4, 12, 24), tidy (one row per visit):
- c3: 2 decimals; the week-4 changes are drawn from a few deltas (+0.08,
  -0.05, ...) added to different baselines, so several differences are equal
  as decimals but not as binary doubles (0.73 - 0.65 != 0.33 - 0.25): they tie
  only after rounding; make_fixture() asserts that this happens;
- score: integer 0-12, many ties and zero changes;
- responder: 1/0 at each visit;
- dropouts: 4 patients stop after week 4 or 12 (no rows' values after that);
- group: A (12), B (11), C (1): a group of one;
- class4: True for a subgroup of 5 patients;
- arm: X (3), Y (4), Z (17) for Kruskal-Wallis with groups under 5.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

WEEKS = (0, 4, 12, 24)
N_PATIENTS = 24
SEED = 20261210
DELTAS = (0.08, -0.05, 0.12, -0.08, 0.05, 0.03, 0.08, -0.12)
DROPOUT = {5: 12, 11: 4, 17: 12, 20: 4}  # patient index -> last attended week


def make_fixture() -> pd.DataFrame:
    """The fixture as a DataFrame (values already rounded as written)."""
    rng = np.random.default_rng(SEED)
    rows = []
    for i in range(N_PATIENTS):
        pid = f"S{i + 1:02d}"
        group = "C" if i == N_PATIENTS - 1 else ("A" if i % 2 == 0 else "B")
        class4 = i in (1, 4, 8, 13, 19)
        arm = "X" if i in (2, 9, 15) else ("Y" if i in (3, 7, 12, 21) else "Z")
        base = round(float(rng.uniform(0.40, 0.95)), 2)
        score0 = int(rng.integers(3, 13))
        resp0 = int(rng.random() < 0.2)
        trend = 0.02 if class4 else 0.05
        for w in WEEKS:
            if w == 0:
                c3 = base
            elif w == 4:
                c3 = round(base + DELTAS[i % len(DELTAS)], 2)
            else:
                c3 = round(base + trend * WEEKS.index(w) + float(rng.normal(0, 0.06)), 2)
            score = max(0, score0 - int(rng.integers(0, 3)) * (w > 0) - (w >= 12))
            resp = resp0 if w == 0 else int(rng.random() < (0.25 + 0.015 * w))
            gone = i in DROPOUT and w > DROPOUT[i]
            rows.append({
                "patient": pid, "visit_week": w,
                "c3": np.nan if gone else c3,
                "score": np.nan if gone else float(score),
                "responder": np.nan if gone else float(resp),
                "group": group, "class4": class4, "arm": arm,
            })
    df = pd.DataFrame(rows)
    _check_decimal_ties(df)
    return df


def _check_decimal_ties(df: pd.DataFrame) -> None:
    """Fail unless some week-4 changes are equal decimals but unequal doubles."""
    w = df.pivot(index="patient", columns="visit_week", values="c3")
    d = (w[4] - w[0]).dropna().to_numpy()
    raw = np.unique(np.abs(d)).size
    rounded = np.unique(np.round(np.abs(d), 10)).size
    if not rounded < raw:
        raise AssertionError("fixture lost its decimal-noise ties; change SEED or DELTAS")


if __name__ == "__main__":
    out = Path(__file__).with_name("small_n_fixture.csv")
    df = make_fixture()
    df["class4"] = df["class4"].map({True: "TRUE", False: "FALSE"})  # R's logical spelling
    df.to_csv(out, index=False, na_rep="NA", float_format="%.15g")
    print(f"wrote {out}")
