"""Safety: adverse events (the seed paper's Table 3 counts), incidence, time to first
event, listing."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .. import schema, stats
from ..cache import memoize
from ..db import Database
from ..filters import Filter
from ..results import analysis
from .common import count_patients

# Adverse-event categories, in the order of the rows of the seed paper's Table 3
# (Wang et al. 2022).
AE_LABELS = {
    "infusion_reaction": "Infusion reaction",
    "allergic_reaction": "Allergic reaction",
    "infection": "Infection",
    "leukopenia": "Leukopenia",
    "gastrointestinal": "Gastrointestinal disorders",
    "psychiatric": "Psychiatric disorders",
    "nervous_system": "Nervous system disorders",
    "musculoskeletal": "Musculoskeletal disorders",
    "other": "Other",
}
TABLE3_ORDER = tuple(AE_LABELS)  # the category rows of Table 3, in order


# Table 3's summary rows, before the categories (shared mode tells them apart by label).
SUMMARY_ROWS = ("Patients with adverse events", "Serious adverse events",
                "Severe adverse events")

# The infection terms the paper's Table 3 lists: shown even when nobody had them.
TABLE3_INFECTION_TERMS = (
    "upper respiratory tract infection",
    "lower respiratory tract infection",
    "urinary tract infection",
    "herpes simplex",
    "herpes zoster",
    "gastrointestinal infection",
)


def _ae_join(db: Database, cohort: str) -> tuple[str, list]:
    """Join adverse_events to the cohort's patients (by cohort too when the table has it)."""
    cols = db.columns("adverse_events")
    if "cohort" in cols:
        return ("JOIN patient_facts pf ON pf.patient_id = a.patient_id "
                "AND pf.cohort = a.cohort AND pf.cohort = ?"), [cohort]
    return "JOIN patient_facts pf ON pf.patient_id = a.patient_id AND pf.cohort = ?", [cohort]


@memoize
def _ae_rows(db: Database, flt: Filter) -> tuple[pd.DataFrame, int]:
    """The filtered patients' adverse events and the patient count (Safety uses them thrice)."""
    cond, params = flt.where("p")
    join, jparams = _ae_join(db, flt.cohort)
    df = db.query(
        f"SELECT a.* FROM adverse_events a {join} "
        f"WHERE a.patient_id IN (SELECT p.patient_id FROM patient_facts p WHERE {cond}) "
        "ORDER BY a.patient_id, a.onset_week NULLS LAST",
        [*jparams, *params],
    )
    return df, count_patients(db, flt)[0]


TABLE3_COLUMNS = ["row", "level", "category", "term", "n_patients", "n", "pct", "n_events",
                  "n_serious", "worst_severity"]
_SEVERITY_RANK = {"mild": 1, "moderate": 2, "severe": 3}


def _term_label(t: str) -> str:
    return t[0].upper() + t[1:] if t else t


@analysis(counts={"n_patients": "n", "n": None, "n_events": None, "n_serious": None},
          n_of={"pct": "n"}, cli=lambda kw: ["--layout", "table3"])
def table3(db: Database, flt: Filter, fold_below: int | None = None) -> pd.DataFrame:
    """Adverse events as the seed paper's Table 3: patients with ≥ 1 event per row.

    Summary rows (any, serious, severe adverse events), then for each category in
    the paper's order its row and, beneath it (level 1), one row per term recorded;
    the infection terms the paper lists appear even when nobody had them. Every
    recorded event is counted in exactly one term row (a missing term or category
    gets its own "(not recorded)" row), so the term rows' events add up to the
    total. n_patients counts distinct patients; pct is of the n filtered patients.
    `fold_below=k` (shared mode): a term fewer than k patients had is counted as its
    category's "other terms" row instead of by name.
    """
    ae, k = _ae_rows(db, flt)
    if fold_below is not None and len(ae):
        from ..disclosure import fold_rare

        ae = ae.assign(term=ae["term"].astype(object).where(ae["term"].notna(), None))
        folded = fold_rare(ae.dropna(subset=["term"]), "term", "patient_id", fold_below,
                           other="other terms")
        ae.loc[folded.index, "term"] = folded["term"]
    pid = ae["patient_id"].to_numpy(dtype=object)

    def col(name):
        if name not in ae.columns:
            return np.full(len(ae), None, dtype=object)
        return ae[name].astype(object).where(ae[name].notna(), None).to_numpy(dtype=object)

    serious = np.array([bool(x) for x in col("serious")], dtype=bool)
    severity = col("severity")
    cat = np.array([c if c in TABLE3_ORDER else None for c in col("category")], dtype=object)
    term = np.array([t.strip().lower() if isinstance(t, str) and t.strip() else None
                     for t in col("term")], dtype=object)

    def row(label, mask, level=0, category=None, term_=None):
        mask = np.asarray(mask, dtype=bool)
        n_pat = len(set(pid[mask])) if mask.any() else 0
        worst = max((_SEVERITY_RANK.get(v, 0) for v in severity[mask]), default=0)
        return {"row": label, "level": level, "category": category, "term": term_,
                "n_patients": n_pat, "n": k, "pct": n_pat / k * 100 if k else math.nan,
                "n_events": int(mask.sum()), "n_serious": int((mask & serious).sum()),
                "worst_severity": {v: s for s, v in _SEVERITY_RANK.items()}.get(worst)}

    everyone = np.ones(len(ae), dtype=bool)
    rows = [row(label, mask) for label, mask in
            zip(SUMMARY_ROWS, (everyone, serious, severity == "severe"), strict=True)]
    groups = [*TABLE3_ORDER, None] if (cat == None).any() else list(TABLE3_ORDER)
    for c in groups:
        is_c = np.array([x == c for x in cat], dtype=bool)
        rows.append(row(AE_LABELS[c] if c else "Category not recorded", is_c, 0, c))
        seen = {t for t in term[is_c] if t is not None}
        listed = (TABLE3_INFECTION_TERMS if c == "infection" and fold_below is None else ())
        for t in (*listed, *sorted(seen - set(listed))):
            rows.append(row(_term_label(t), is_c & (term == t), 1, c, t))
        if (is_c & (term == None)).any():
            rows.append(row("(term not recorded)", is_c & (term == None), 1, c))
    return pd.DataFrame(rows, columns=TABLE3_COLUMNS)


@analysis(counts={"n_patients": "n", "n": None, "n_events": None},
          n_of={"rate": "n", "ci_low": "n", "ci_high": "n", "per_100_py": "n"},
          cli=lambda kw: None)
def incidence(db: Database, flt: Filter) -> pd.DataFrame:
    """Per category: patients with ≥ 1 event, % with Wilson 95 % CI, events, events per 100 PY.

    Person-years: each filtered patient's follow_up_months / 12 (last assessment).
    """
    ae, k = _ae_rows(db, flt)
    cond, params = flt.where("p")
    py = float(db.scalar(
        f"SELECT coalesce(sum(p.follow_up_months), 0) / 12.0 FROM patient_facts p WHERE {cond}",
        params,
    ) or 0.0)
    rows = []
    for c in TABLE3_ORDER:
        sub = ae[ae["category"] == c] if len(ae) else ae
        n_pat = int(sub["patient_id"].nunique()) if len(sub) else 0
        rate, lo, hi = stats.proportion_ci(n_pat, k) if k else (math.nan,) * 3
        rows.append({"category": c, "label": AE_LABELS[c], "n_patients": n_pat, "n": k,
                     "rate": rate, "ci_low": lo, "ci_high": hi, "n_events": len(sub),
                     "per_100_py": len(sub) / py * 100 if py else math.nan})
    return pd.DataFrame(rows)


@analysis(counts={"n_risk": None, "n_event": "n_risk", "n_censor": "n_risk"},
          n_of={"survival": "n_risk", "ci_low": "n_risk", "ci_high": "n_risk"},
          cli=lambda kw: None)
def time_to_first(db: Database, flt: Filter) -> pd.DataFrame:
    """Kaplan–Meier of weeks to the first adverse event; no event → censored at the last visit."""
    cond, params = flt.where("p")
    join, jparams = _ae_join(db, flt.cohort)
    df = db.query(
        f"""
        WITH first AS (
            SELECT a.patient_id, min(a.onset_week) AS first_week
            FROM adverse_events a {join} GROUP BY a.patient_id
        )
        SELECT p.patient_id, f.first_week, p.last_week
        FROM patient_facts p LEFT JOIN first f ON f.patient_id = p.patient_id
        WHERE {cond}
        """,
        [*jparams, *params],
    )
    if df.empty:
        return pd.DataFrame(columns=["group", "time", "n_risk", "n_event", "survival",
                                     "ci_low", "ci_high"])
    event = df["first_week"].notna().to_numpy(dtype=int)
    time = df["first_week"].fillna(df["last_week"]).fillna(0).to_numpy(dtype=float)
    km = stats.kaplan_meier(time, event)
    km.insert(0, "group", "All")
    return km


@analysis(patient_level=True)
def listing(db: Database, flt: Filter) -> pd.DataFrame:
    """Every adverse event of the filtered patients."""
    ae, _ = _ae_rows(db, flt)
    keep = [c.name for c in schema.AE_COLUMNS if c.name in ae.columns]
    return ae[keep].reset_index(drop=True)


