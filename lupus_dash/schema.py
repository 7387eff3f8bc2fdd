"""Single source of truth for tables, columns, units, ranges and endpoints.

Everything that names a column — the importer's validation, the DuckDB DDL,
the data dictionary shown in the app, the report, the filter panel — reads
the definitions below; nothing re-declares them.
"""

from __future__ import annotations

from dataclasses import dataclass

from .presets import PRESETS as _PRESETS

# 2: renal_overall, renal eligibility flags, prednisone_mg_kg_day,
# cumulative_prednisone_g; renal_partial no longer includes complete responses;
# eGFR one equation per patient (CKiD U25 / CKD-EPI 2021).
SCHEMA_VERSION = 2

# Column types as the data contract names them.
TEXT, NUMBER, INTEGER, BOOL, DATE = "text", "number", "integer", "bool", "date"

_DUCK_TYPES = {
    TEXT: "VARCHAR",
    NUMBER: "DOUBLE",
    INTEGER: "INTEGER",
    BOOL: "BOOLEAN",
    DATE: "DATE",
}


@dataclass(frozen=True)
class Column:
    """One column of a contract table or of a derived fact table."""

    name: str
    dtype: str
    label: str
    description: str = ""
    unit: str | None = None
    required: bool = False
    lo: float | None = None  # inclusive plausibility range (DATA_CONTRACT.md)
    hi: float | None = None
    choices: tuple[str, ...] | None = None
    derived: bool = False  # computed on import, never read from input files

    @property
    def duck_type(self) -> str:
        return _DUCK_TYPES[self.dtype]


# --- SLEDAI-2K descriptors (Gladman 2002; CLINICAL_DEFINITIONS.md §1) -------
# (column suffix, weight, label, group used by LLDAS criterion 1)
# group: "cns", "vascular", "renal", "serosal", "fever" are major-organ
# activity for LLDAS (Franklyn 2016; pleurisy/pericarditis excluded as
# cardiopulmonary following Parodis et al.); "permitted" may contribute to
# SLEDAI-2K <= 4 without breaking LLDAS.
SLEDAI_DESCRIPTORS: tuple[tuple[str, int, str, str], ...] = (
    ("seizure", 8, "Seizure", "cns"),
    ("psychosis", 8, "Psychosis", "cns"),
    ("organic_brain_syndrome", 8, "Organic brain syndrome", "cns"),
    ("visual_disturbance", 8, "Visual disturbance", "cns"),
    ("cranial_nerve_disorder", 8, "Cranial nerve disorder", "cns"),
    ("lupus_headache", 8, "Lupus headache", "cns"),
    ("cva", 8, "CVA", "cns"),
    ("vasculitis", 8, "Vasculitis", "vascular"),
    ("arthritis", 4, "Arthritis", "permitted"),
    ("myositis", 4, "Myositis", "permitted"),
    ("urinary_casts", 4, "Urinary casts", "renal"),
    ("haematuria", 4, "Haematuria", "renal"),
    ("proteinuria", 4, "Proteinuria", "renal"),
    ("pyuria", 4, "Pyuria", "renal"),
    ("rash", 2, "Rash", "permitted"),
    ("alopecia", 2, "Alopecia", "permitted"),
    ("mucosal_ulcers", 2, "Mucosal ulcers", "permitted"),
    ("pleurisy", 2, "Pleurisy", "serosal"),
    ("pericarditis", 2, "Pericarditis", "serosal"),
    ("low_complement", 2, "Low complement", "serology"),
    ("increased_dna_binding", 2, "Increased DNA binding", "serology"),
    ("fever", 1, "Fever", "fever"),
    ("thrombocytopenia", 1, "Thrombocytopenia", "permitted"),
    ("leukopenia", 1, "Leukopenia", "permitted"),
)
SLEDAI_COLUMNS = tuple(f"sledai_{d[0]}" for d in SLEDAI_DESCRIPTORS)

ORGANS = (
    "fever",
    "skin",
    "cns",
    "kidney",
    "lung",
    "blood",
    "cardiovascular",
    "musculoskeletal",
    "gastrointestinal",
)

BIOPSY_CLASSES = ("I", "II", "III", "IV", "V", "VI", "III+V", "IV+V")
AE_CATEGORIES = (
    "infection",
    "infusion_reaction",
    "allergic_reaction",
    "leukopenia",
    "gastrointestinal",
    "psychiatric",
    "nervous_system",
    "musculoskeletal",
    "other",
)
AE_SEVERITIES = ("mild", "moderate", "severe")

# --- Input tables (DATA_CONTRACT.md) ----------------------------------------

PATIENT_COLUMNS: tuple[Column, ...] = (
    Column("patient_id", TEXT, "Patient", "Unique within the file", required=True),
    Column("cohort", TEXT, "Cohort", "Study or cohort label", required=True),
    Column("sex", TEXT, "Sex", "F or M", required=True, choices=("F", "M")),
    Column("age_at_onset_years", NUMBER, "Age at onset", unit="years", lo=0, hi=120),
    Column(
        "age_at_baseline_years",
        NUMBER,
        "Age at baseline",
        "Age when the biologic started",
        unit="years",
        lo=0,
        hi=120,
    ),
    Column(
        "disease_duration_months",
        NUMBER,
        "Disease duration",
        "At baseline",
        unit="months",
        lo=0,
        hi=1440,
    ),
    Column(
        "treatment_start_date",
        DATE,
        "Treatment start",
        "Needed only when visits come with dates",
    ),
    Column(
        "biopsy_class",
        TEXT,
        "Renal biopsy class",
        "ISN/RPS 2003 class; empty = not biopsied",
        choices=BIOPSY_CLASSES,
    ),
    Column(
        "immunosuppressant",
        TEXT,
        "Immunosuppressant",
        "Background regimen label, e.g. CYC, MMF, MMF+TAC, none",
    ),
    Column("antimalarial", BOOL, "Antimalarial", "Hydroxychloroquine or other at baseline"),
    *(
        Column(
            f"organ_{o}",
            BOOL,
            f"Organ: {o.replace('_', ' ')}",
            f"{o.replace('_', ' ').capitalize()} involvement before baseline",
        )
        for o in ORGANS
    ),
    Column("ana_positive", BOOL, "ANA positive"),
    Column("weight_kg", NUMBER, "Weight", "At baseline", unit="kg", lo=1, hi=300),
    Column("height_cm", NUMBER, "Height", "At baseline", unit="cm", lo=30, hi=250),
    Column(
        "discontinued_week",
        INTEGER,
        "Discontinued (week)",
        "Week the biologic stopped; empty if ongoing",
        lo=0,
        hi=520,
    ),
    Column("discontinuation_reason", TEXT, "Discontinuation reason"),
)

VISIT_COLUMNS: tuple[Column, ...] = (
    Column("patient_id", TEXT, "Patient", "Must exist in patients", required=True),
    Column("visit_week", INTEGER, "Visit week", "Nominal visit; 0 = baseline", lo=0, hi=520),
    Column(
        "visit_date",
        DATE,
        "Visit date",
        "Mapped to a nominal week from treatment_start_date",
    ),
    Column("c3_g_l", NUMBER, "C3", "Complement C3", unit="g/L", lo=0, hi=5),
    Column("c4_g_l", NUMBER, "C4", "Complement C4", unit="g/L", lo=0, hi=2),
    Column(
        "urine_protein_g_24h",
        NUMBER,
        "24-h urine protein",
        "24-hour urine protein",
        unit="g/day",
        lo=0,
        hi=50,
    ),
    Column(
        "upcr_g_g",
        NUMBER,
        "UPCR",
        "Urine protein:creatinine ratio",
        unit="g/g",
        lo=0,
        hi=50,
    ),
    Column("cd19_pct", NUMBER, "CD19+ B cells", unit="% of lymphocytes", lo=0, hi=100),
    Column("anti_dsdna_positive", BOOL, "Anti-dsDNA positive"),
    Column("anti_dsdna_iu_ml", NUMBER, "Anti-dsDNA", unit="IU/mL", lo=0),
    Column("sledai2k", INTEGER, "SLEDAI-2K", unit="points", lo=0, hi=105),
    Column("pga", NUMBER, "PGA", "Physician global assessment", unit="0–3", lo=0, hi=3),
    Column(
        "prednisone_mg_day",
        NUMBER,
        "Glucocorticoid dose",
        "Prednisone-equivalent daily dose",
        unit="mg/day",
        lo=0,
        hi=2000,
    ),
    Column("albumin_g_l", NUMBER, "Albumin", unit="g/L", lo=0, hi=80),
    Column("creatinine_umol_l", NUMBER, "Creatinine", unit="µmol/L", lo=0, hi=3000),
    Column("egfr_ml_min", NUMBER, "eGFR", unit="mL/min/1.73 m²", lo=0, hi=250),
    Column(
        "major_organ_activity",
        BOOL,
        "Major organ activity",
        "Renal, CNS, cardiopulmonary, vasculitis, fever, haemolytic anaemia or GI "
        "activity (LLDAS criterion 1)",
    ),
    Column(
        "new_activity",
        BOOL,
        "New activity",
        "New lupus activity since the previous assessment (LLDAS criterion 2)",
    ),
    Column("weight_kg", NUMBER, "Weight", unit="kg", lo=1, hi=300),
    Column("height_cm", NUMBER, "Height", unit="cm", lo=30, hi=250),
    Column("haemolytic_anaemia", BOOL, "Haemolytic anaemia"),
    Column("gi_activity", BOOL, "GI activity"),
    *(
        Column(f"sledai_{key}", BOOL, f"SLEDAI-2K: {label}", f"Descriptor, weight {w}")
        for key, w, label, _ in SLEDAI_DESCRIPTORS
    ),
)

AE_COLUMNS: tuple[Column, ...] = (
    Column("patient_id", TEXT, "Patient", required=True),
    Column("onset_week", INTEGER, "Onset week", lo=0, hi=520),
    Column("term", TEXT, "Term", "e.g. upper respiratory tract infection"),
    Column("category", TEXT, "Category", choices=AE_CATEGORIES),
    Column("severity", TEXT, "Severity", choices=AE_SEVERITIES),
    Column("serious", BOOL, "Serious"),
)

INPUT_TABLES: dict[str, tuple[Column, ...]] = {
    "patients": PATIENT_COLUMNS,
    "visits": VISIT_COLUMNS,
    "adverse_events": AE_COLUMNS,
}
REQUIRED_TABLES = ("patients", "visits")
# Input columns of visits the importer reads besides the contract's (ingest.py): a row's unit
# of C3/C4 and creatinine, and a glucocorticoid dose it converts to prednisone.
EXTRA_VISIT_COLUMNS = ("c3_unit", "c4_unit", "creatinine_unit", "glucocorticoid_drug",
                       "glucocorticoid_mg_day")
# Missing-value markers statistical software writes (R's write.csv: NA), compared lower-case.
NA_MARKERS = frozenset({"na", "n/a", "nan", "null"})

# --- Derived columns, computed on import (store.py / derive.py) -------------

# Endpoint presets (CLINICAL_DEFINITIONS.md §3–4); thresholds live in endpoints.py.
PRESETS = tuple(_PRESETS)  # the names of presets.PRESETS, the one registry
PRESET_DEFINITIONS = ("lldas", "remission")
# Renal responses (endpoints.RENAL_RESPONSES holds their criteria and eligibility;
# tests/test_endpoints.py checks the two agree).
RENAL_DEFINITIONS = (
    "renal_complete", "renal_partial", "renal_overall", "renal_crr", "renal_perr"
)
REMISSION_DEFINITIONS = (
    "lldas", "remission", "renal_complete", "renal_partial", "renal_overall"
)
# Patient-level eligibility flag of each renal response (endpoints.RenalEligibility).
RENAL_ELIGIBLE_COLUMN = {
    "renal_complete": "renal_eligible_kdigo",
    "renal_partial": "renal_eligible_kdigo",
    "renal_overall": "renal_eligible_kdigo",
    "renal_crr": "renal_eligible_bliss_ln",
    "renal_perr": "renal_eligible_bliss_ln",
}

PATIENT_DERIVED: tuple[Column, ...] = (
    Column(
        "completer",
        BOOL,
        "Completer",
        "Has the cohort's final scheduled visit",
        derived=True,
    ),
    Column(
        "baseline_anti_dsdna",
        TEXT,
        "Baseline anti-dsDNA",
        "positive / negative / unknown at week 0",
        choices=("positive", "negative", "unknown"),
        derived=True,
    ),
    Column(
        "age_band",
        TEXT,
        "Age band",
        "Age at baseline: <12, 12–17, 18–39, 40–59, ≥60, unknown",
        choices=("<12", "12–17", "18–39", "40–59", "≥60", "unknown"),
        derived=True,
    ),
    Column(
        "class_group",
        TEXT,
        "Biopsy class group",
        "proliferative (III/IV ± V), membranous (V), other (I, II, VI), not biopsied",
        choices=("proliferative", "membranous", "other", "not biopsied"),
        derived=True,
    ),
    Column("n_visits", INTEGER, "Visits", "Number of assessed visits", derived=True),
    Column("last_week", INTEGER, "Last visit week", "Week of the last assessment", derived=True),
    Column(
        "follow_up_months",
        NUMBER,
        "Follow-up",
        "Last assessment week × 12/52",
        unit="months",
        derived=True,
    ),
    Column(
        "renal_eligible_kdigo",
        BOOL,
        "Renal response applies (KDIGO)",
        "Active nephritis at baseline: week-0 UPCR (else 24-h protein) ≥ 0.5 g/g; "
        "renal_complete, renal_partial and renal_overall count only these patients; "
        "empty = no week-0 visit or proteinuria",
        derived=True,
    ),
    Column(
        "renal_eligible_bliss_ln",
        BOOL,
        "Renal response applies (BLISS-LN)",
        "Week-0 UPCR (else 24-h protein) ≥ 1 g/g, as BLISS-LN enrolled (Furie et al. 2020); "
        "renal_crr and renal_perr count only these patients; empty = no week-0 visit or "
        "proteinuria",
        derived=True,
    ),
    Column(
        "cumulative_prednisone_g",
        NUMBER,
        "Cumulative glucocorticoid",
        "Prednisone-equivalent exposure from week 0 to the last visit: each visit's daily "
        "dose held until the next visit (Σ dose × days); empty if the week-0 visit or a dose "
        "that starts an interval is missing",
        unit="g",
        derived=True,
    ),
)

VISIT_DERIVED: tuple[Column, ...] = (
    Column("cohort", TEXT, "Cohort", "The patient's cohort, copied for fast filtering", derived=True),
    Column(
        "csledai",
        INTEGER,
        "Clinical SLEDAI",
        "SLEDAI-2K without low complement and increased DNA binding; needs descriptors",
        unit="points",
        derived=True,
    ),
    Column(
        "egfr_source",
        TEXT,
        "eGFR source",
        "reported, or the patient's one equation for the whole follow-up, chosen by age at "
        "baseline: ckid_u25 (CKiD U25, Pierce et al. 2021, Kidney Int 99:948; under 25 with a "
        "height) or ckd_epi_2021 (CKD-EPI 2021 race-free, Inker et al. 2021; 25 and over, or "
        "18–24 without any height); renal responses compare eGFRs of one source only",
        choices=("reported", "ckid_u25", "ckd_epi_2021"),
        derived=True,
    ),
    Column(
        "prednisone_mg_kg_day",
        NUMBER,
        "Glucocorticoid dose per kg",
        "Prednisone-equivalent daily dose ÷ the visit's weight, else the baseline weight; "
        "empty without either",
        unit="mg/kg/day",
        derived=True,
    ),
    Column("is_baseline", BOOL, "Baseline visit", "visit_week = 0", derived=True),
    Column("is_last", BOOL, "Last assessment", "Patient's last assessed visit", derived=True),
    *(
        Column(
            f"{d}_{p}",
            BOOL,
            f"{d.upper() if d == 'lldas' else d.capitalize()} ({p.replace('_', ' ')})",
            f"{d} under the {p} preset; empty = not evaluable",
            derived=True,
        )
        for d in PRESET_DEFINITIONS
        for p in PRESETS
    ),
    *(
        Column(
            f"{d}_{p}_why",
            TEXT,
            f"{d} ({p}) reason",
            "Criteria failed or not evaluable, e.g. 'SLEDAI-2K 6 > 4; PGA missing'",
            derived=True,
        )
        for d in PRESET_DEFINITIONS
        for p in PRESETS
    ),
    *(
        Column(
            d,
            BOOL,
            d.replace("_", " ").capitalize(),
            {
                "renal_complete": "KDIGO complete renal response (CR); patients with active "
                "nephritis (baseline proteinuria ≥ 0.5 g/g) only",
                "renal_partial": "KDIGO partial renal response that is not complete (PR); "
                "patients with active nephritis (baseline proteinuria ≥ 0.5 g/g) only",
                "renal_overall": "Overall renal response: complete or partial (CR + PR); "
                "patients with active nephritis (baseline proteinuria ≥ 0.5 g/g) only",
                "renal_crr": "BLISS-LN complete renal response; patients with baseline UPCR "
                "≥ 1 g/g (BLISS-LN enrolment) only",
                "renal_perr": "BLISS-LN primary efficacy renal response; patients with "
                "baseline UPCR ≥ 1 g/g (BLISS-LN enrolment) only",
            }[d]
            + "; empty = not evaluable at an attended visit, or not applicable (see "
            + RENAL_ELIGIBLE_COLUMN[d]
            + ")",
            derived=True,
        )
        for d in RENAL_DEFINITIONS
    ),
    *(
        Column(f"{d}_why", TEXT, f"{d} reason", derived=True)
        for d in RENAL_DEFINITIONS
    ),
)


# --- Endpoints shown on screen and in the report ----------------------------


@dataclass(frozen=True)
class Endpoint:
    """A longitudinal outcome: a visits column plus how to display and test it."""

    column: str
    label: str
    unit: str
    kind: str  # "continuous" or "binary"
    # Skewed endpoints are summarised as median (P25, P75) and tested with rank tests
    # (Wilcoxon); the others as mean ± SD with t-tests: one test per endpoint, chosen
    # before looking at the data (STATISTICS.md "Small numbers").
    skewed: bool = False
    ref_low: float | None = None  # reference range drawn on patient plots
    ref_high: float | None = None


ENDPOINTS: tuple[Endpoint, ...] = (
    # C3/C4 reference ranges: the Lupus Sci Med lab table quoted in
    # CLINICAL_DEFINITIONS.md §8 (C3 0.9–1.8 g/L, C4 0.1–0.4 g/L).
    Endpoint("c3_g_l", "C3", "g/L", "continuous", ref_low=0.9, ref_high=1.8),
    Endpoint("c4_g_l", "C4", "g/L", "continuous", ref_low=0.1, ref_high=0.4),
    # SLEDAI-2K proteinuria descriptor threshold 0.5 g/day.
    Endpoint("urine_protein_g_24h", "24-h urine protein", "g/day", "continuous", True, 0, 0.5),
    # UPCR normal upper limit 0.2 g/g (CLINICAL_DEFINITIONS.md §8).
    Endpoint("upcr_g_g", "UPCR", "g/g", "continuous", True, 0, 0.2),
    # CD19+ 7–23 % (multisite healthy adults, CLINICAL_DEFINITIONS.md §8).
    Endpoint("cd19_pct", "CD19+ B cells", "%", "continuous", ref_low=7, ref_high=23),
    Endpoint("anti_dsdna_positive", "Anti-dsDNA positive", "", "binary"),
    Endpoint("anti_dsdna_iu_ml", "Anti-dsDNA", "IU/mL", "continuous", True),
    Endpoint("sledai2k", "SLEDAI-2K", "points", "continuous", True),
    Endpoint("pga", "PGA", "0–3", "continuous", True),
    Endpoint("prednisone_mg_day", "Glucocorticoid dose", "mg/day", "continuous", True),
    # Per kg: how paediatric thresholds are written (derived from the visit's weight).
    Endpoint("prednisone_mg_kg_day", "Glucocorticoid dose per kg", "mg/kg/day", "continuous",
             True),
    Endpoint("albumin_g_l", "Albumin", "g/L", "continuous", ref_low=35, ref_high=50),
    Endpoint("creatinine_umol_l", "Creatinine", "µmol/L", "continuous"),
    Endpoint("egfr_ml_min", "eGFR", "mL/min/1.73 m²", "continuous", ref_low=90),
)
ENDPOINTS_BY_COLUMN = {e.column: e for e in ENDPOINTS}
SEX_LABELS = {"F": "female", "M": "male"}  # the one label map for the sex codes


def prespecified_test(e: Endpoint) -> tuple[str, str]:
    """(paired method, reason) pre-specified for an endpoint (STATISTICS.md "Small numbers")."""
    if e.kind == "binary":
        return "mcnemar_exact", "yes/no endpoint: exact McNemar test on the discordant pairs"
    if e.skewed:
        return "wilcoxon", (f"{e.label} is skewed: Wilcoxon signed-rank test, median (P25, "
                            "P75)")
    return "paired_t", f"{e.label} is near-normal: paired t-test, mean ± SD"

# Patient attributes a user can filter or group by (filters.py).
GROUPING_COLUMNS: tuple[str, ...] = (
    "biopsy_class",
    "class_group",
    "immunosuppressant",
    "sex",
    "age_band",
    "baseline_anti_dsdna",
    "completer",
    *(f"organ_{o}" for o in ORGANS),
)


def columns(table: str) -> tuple[Column, ...]:
    """Columns of an input table, or of the derived fact tables."""
    if table == "patient_facts":
        return PATIENT_COLUMNS + PATIENT_DERIVED
    if table == "visit_facts":
        return VISIT_COLUMNS + VISIT_DERIVED
    return INPUT_TABLES[table]


def column(table: str, name: str) -> Column:
    """Look up one column of a table by name."""
    for c in columns(table):
        if c.name == name:
            return c
    raise KeyError(f"{table} has no column {name!r}")


def create_table_sql(table: str, name: str | None = None) -> str:
    """CREATE TABLE statement for a table defined here."""
    cols = ",\n  ".join(f'"{c.name}" {c.duck_type}' for c in columns(table))
    return f'CREATE TABLE "{name or table}" (\n  {cols}\n)'


def data_dictionary() -> list[dict]:
    """Every column of every table, for the app, the docs and `report`."""
    rows = []
    for table in ("patients", "visits", "adverse_events", "patient_facts", "visit_facts"):
        base = {c.name for c in INPUT_TABLES.get(table, ())}
        for c in columns(table):
            if table.endswith("_facts") and not c.derived:
                continue
            rows.append(
                {
                    "table": table,
                    "column": c.name,
                    "type": c.dtype,
                    "label": c.label,
                    "unit": c.unit,
                    "required": c.required,
                    "range": None
                    if c.lo is None and c.hi is None
                    else f"{'' if c.lo is None else c.lo}–{'' if c.hi is None else c.hi}",
                    "choices": ", ".join(c.choices) if c.choices else None,
                    "derived": c.derived or c.name not in base and table in INPUT_TABLES,
                    "description": c.description,
                }
            )
    return rows
