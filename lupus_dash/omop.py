"""A belimumab cohort out of an OMOP CDM (v5.3/5.4) in PostgreSQL, into the ordinary import.

The cohort is selected *in the database* (OHDSI practice: extraction belongs in
the warehouse, the lupus cohort is small): persons with a drug_exposure whose
drug concept descends (concept_ancestor) from the RxNorm ingredient belimumab.
Only their rows leave the server, through psycopg 3 server-side cursors in
batches (memory holds the cohort, never the CDM). Values reach SQL only as
parameters; the schema name only as a quoted identifier.

What becomes what (concept sets: ``omop_concepts.toml`` or ``--concepts FILE``):

* patients: person → sex (gender concept 8532 F / 8507 M), age at the first
  belimumab dose (birth_datetime, else year/month/day of birth with a missing
  month = July and day = 1st: the middle of the year), treatment_start_date =
  first belimumab exposure; discontinued_week = week of the end of the last
  exposure when no exposure follows within ``gap_days`` and the person is still
  observed (observation_period) past that gap; background immunosuppressant
  and antimalarial = exposures within 90 days before the first dose.
* visits: measurements in the concept sets, converted to contract units
  (unit concept's UCUM code, else unit_source_value), dated results mapped to
  weeks with the importer's windows (labs.py: two results for one visit and
  measure are an error naming both measurement_ids); prednisone_mg_day = the
  prednisone-equivalent daily dose (quantity × drug_strength amount ÷
  days_supply × CLINICAL_DEFINITIONS.md §7 factor) of glucocorticoid exposures
  covering the visit's nominal day.
* adverse_events: condition_occurrence after the first dose (minus the
  disease's own concepts), term = concept name, onset week, category from the
  term's words; severity and seriousness are not in the CDM and stay empty.
* SLEDAI-2K, its descriptors and PGA have no standard OMOP measurement in
  routine CDMs: they stay empty, and the import says so (never invented).

Problems name the CDM table, the row's id (measurement_id, person_id, ...),
the column and value, like file problems.
"""

from __future__ import annotations

import datetime as dt
import sys
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from . import endpoints, ingest, labs, schema

DEFAULT_CONCEPTS = Path(__file__).with_name("omop_concepts.toml")
GENDER = {8532: "F", 8507: "M"}  # OMOP Gender vocabulary: FEMALE, MALE
BATCH = 20_000  # rows per fetch from a server-side cursor
BASELINE_LOOKBACK_DAYS = 90  # background therapy = exposure this close before the first dose
# AE category from words of the condition's name (contract categories).
_CATEGORY_WORDS = (
    ("infusion_reaction", ("infusion",)),
    ("infection", ("infection", "infectious", "pneumonia", "zoster", "herpes", "sepsis",
                   "bronchitis", "pharyngitis", "sinusitis", "cystitis", "influenza",
                   "nasopharyngitis", "cellulitis", "covid", "tuberculosis", "candid")),
    ("allergic_reaction", ("allerg", "hypersensitivity", "urticaria", "anaphyla",
                           "angioedema")),
    ("leukopenia", ("leukopenia", "leucopenia", "neutropenia", "lymphopenia")),
    ("gastrointestinal", ("nausea", "vomiting", "diarrh", "abdominal", "gastr", "dyspepsia",
                          "constipation")),
    ("psychiatric", ("depress", "anxiety", "insomnia", "suicid", "psych", "mood")),
    ("nervous_system", ("headache", "migraine", "dizziness", "neuropath", "seizure",
                        "paresthesia")),
    ("musculoskeletal", ("arthralgia", "myalgia", "back pain", "pain in limb", "limb pain",
                         "musculoskeletal", "muscle")),
)


class OmopError(ValueError):
    """The database cannot be read as an OMOP CDM (message says why)."""


@dataclass
class ConceptSets:
    """omop_concepts.toml, parsed."""

    path: str
    gap_days: int = 90
    belimumab: list[str] = field(default_factory=list)
    glucocorticoids: list[str] = field(default_factory=list)
    immunosuppressants: dict[str, list[str]] = field(default_factory=dict)
    antimalarials: list[str] = field(default_factory=list)
    measurements: dict[str, list[str]] = field(default_factory=dict)
    measurement_ids: dict[str, list[int]] = field(default_factory=dict)
    exclude_conditions: list[str] = field(default_factory=list)


def load_concepts(path: str | Path | None, sink) -> ConceptSets | None:
    p = Path(path) if path else DEFAULT_CONCEPTS
    label = p.name
    try:
        doc = tomllib.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        sink.error(label, None, None, None, f"cannot read the concept-set file ({exc.strerror})")
        return None
    except tomllib.TOMLDecodeError as exc:
        sink.error(label, None, None, None, f"not valid TOML ({exc})")
        return None
    cs = ConceptSets(path=label, gap_days=int(doc.get("gap_days", 90)))
    cs.belimumab = [str(x).lower() for x in doc.get("belimumab", {}).get("ingredients", [])]
    cs.glucocorticoids = [str(x).lower()
                          for x in doc.get("glucocorticoids", {}).get("ingredients", [])]
    cs.immunosuppressants = {str(k): [str(x).lower() for x in v]
                             for k, v in doc.get("immunosuppressants", {}).items()}
    cs.antimalarials = [str(x).lower()
                        for x in doc.get("antimalarials", {}).get("ingredients", [])]
    cs.exclude_conditions = [str(x).lower() for x in
                             doc.get("conditions", {}).get("exclude_name_contains", [])]
    visit_cols = {c.name for c in schema.columns("visits")}
    for section, target in (("measurements", cs.measurements),
                            ("measurement_concept_ids", cs.measurement_ids)):
        for col, codes in doc.get(section, {}).items():
            if col not in labs.MEASURES:
                where = "a visits column without a unit" if col in visit_cols else \
                    "not a visits column of the contract"
                sink.error(label, None, f"[{section}] {col}", str(col),
                           f"{where}; use one of {', '.join(labs.MEASURES)}")
                continue
            target[col] = [int(c) if section == "measurement_concept_ids" else str(c)
                           for c in codes]
    if not cs.belimumab:
        sink.error(label, None, "[belimumab] ingredients", None,
                   "names no ingredient: nothing would select the cohort")
    unknown = [g for g in cs.glucocorticoids if g not in endpoints.PREDNISONE_FACTORS]
    for g in unknown:
        sink.error(label, None, "[glucocorticoids] ingredients", g,
                   "no prednisone-equivalent factor for this glucocorticoid; known: "
                   + ", ".join(endpoints.PREDNISONE_FACTORS))
    return cs


@dataclass
class Extract:
    """What came out of the CDM, with counts and timings for the report."""

    n_patients: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


def _ident(name: str):
    from psycopg import sql

    parts = name.split(".")
    return sql.SQL(".").join(sql.Identifier(p) for p in parts)


def _exists(con, schema_name: str, table: str) -> bool:
    row = con.execute("SELECT to_regclass(%s)", [f'"{schema_name}"."{table}"']).fetchone()
    return row[0] is not None


def _stream(con, query, params, name: str, counter: dict, key: str, batch: int = BATCH):
    """Rows of a server-side (named) cursor, fetched `batch` at a time."""
    with con.cursor(name=name) as cur:
        cur.itersize = batch
        cur.execute(query, params)
        while True:
            rows = cur.fetchmany(batch)
            if not rows:
                break
            counter[key] = counter.get(key, 0) + len(rows)
            yield from rows


def _birth(row) -> dt.date | None:
    _, _, _, year, month, day, birth_dt, *_ = row
    if birth_dt is not None:
        return birth_dt.date() if hasattr(birth_dt, "date") else birth_dt
    if year is None:
        return None
    return dt.date(int(year), int(month or 7), int(day or 1))


def _category(term: str) -> str:
    low = term.lower()
    for cat, words in _CATEGORY_WORDS:
        if any(w in low for w in words):
            return cat
    return "other"


def extract(dsn: str, cdm_schema: str, cohort: str, concepts: ConceptSets, sink,
            vocab_schema: str | None = None, batch: int = BATCH) -> tuple[dict, Extract]:
    """Patients, long-format labs, drug exposures and conditions of the belimumab cohort."""
    import psycopg
    from psycopg import sql

    t0 = time.perf_counter()
    info = Extract()
    vocab = vocab_schema or cdm_schema
    s, v = _ident(cdm_schema), _ident(vocab)
    try:
        con = psycopg.connect(dsn, autocommit=False)
    except psycopg.Error as exc:
        raise OmopError(f"cannot connect to the database: {exc}".strip()) from exc
    with con:
        for t in ("person", "drug_exposure", "measurement", "concept"):
            sch = vocab if t == "concept" else cdm_schema
            if not _exists(con, sch, t):
                raise OmopError(f"{sch}.{t} does not exist: is {cdm_schema!r} an OMOP CDM "
                                "schema (--schema, --vocab-schema)?")
        has_ancestor = _exists(con, vocab, "concept_ancestor")
        has_strength = _exists(con, vocab, "drug_strength")
        has_obs = _exists(con, cdm_schema, "observation_period")
        has_cond = _exists(con, cdm_schema, "condition_occurrence")
        # --- concept sets → concept ids (a temp table the queries join) ---------------------
        con.execute("CREATE TEMP TABLE lupus_concepts (concept_id integer, kind text, "
                    "name text, ingredient_id integer) ON COMMIT PRESERVE ROWS")
        ingredients: dict[str, tuple[str, str]] = {}  # lower name → (kind, label)
        for name in concepts.belimumab:
            ingredients[name] = ("belimumab", "belimumab")
        for name in concepts.glucocorticoids:
            ingredients[name] = ("gc", name)
        for label, names in concepts.immunosuppressants.items():
            for name in names:
                ingredients[name] = ("is", label)
        for name in concepts.antimalarials:
            ingredients[name] = ("am", name)
        found = con.execute(
            sql.SQL("SELECT concept_id, lower(concept_name) FROM {}.concept "
                    "WHERE vocabulary_id = %s AND concept_class_id = %s "
                    "AND lower(concept_name) = ANY(%s) AND invalid_reason IS NULL").format(v),
            ["RxNorm", "Ingredient", list(ingredients)]).fetchall()
        got = {n for _, n in found}
        absent: dict[str, list[str]] = {}
        for name, (kind, _label) in ingredients.items():
            if name not in got:
                absent.setdefault(kind, []).append(name)
        for kind, names in absent.items():
            if kind == "belimumab":
                info.notes.append(f"RxNorm ingredient {', '.join(names)} is not in "
                                  f"{vocab}.concept")
            else:
                sink.warn(concepts.path, None, f"[{_section(kind)}]", ", ".join(names),
                          f"RxNorm ingredients not in {vocab}.concept: their exposures "
                          "cannot be found")
        rows = []
        for cid, name in found:
            kind, label = ingredients[name]
            rows.append((cid, kind, label, cid))
        if has_ancestor and found:
            desc = con.execute(
                sql.SQL("SELECT ancestor_concept_id, descendant_concept_id FROM "
                        "{}.concept_ancestor WHERE ancestor_concept_id = ANY(%s) "
                        "AND descendant_concept_id <> ancestor_concept_id").format(v),
                [[cid for cid, _ in found]]).fetchall()
            by_id = {cid: ingredients[name] for cid, name in found}
            rows += [(d, *by_id[a], a) for a, d in desc]
        elif found:
            info.notes.append(f"{vocab}.concept_ancestor is missing: only exposures coded "
                              "with the ingredient concept itself are found")
        # Measurements: LOINC codes → concept ids, and explicit ids.
        codes = {c: col for col, cs in concepts.measurements.items() for c in cs}
        mfound = con.execute(
            sql.SQL("SELECT concept_id, concept_code FROM {}.concept WHERE vocabulary_id = %s "
                    "AND concept_code = ANY(%s)").format(v), ["LOINC", list(codes)]).fetchall()
        for cid, code in mfound:
            rows.append((cid, "measurement", codes[code], None))
        seen_codes = {c for _, c in mfound}
        missing = sorted(set(codes) - seen_codes)
        if missing:
            sink.warn(concepts.path, None, "[measurements]", ", ".join(missing),
                      f"LOINC codes not in {vocab}.concept (results coded so cannot be found): "
                      + ", ".join(f"{c} ({codes[c]})" for c in missing))
        explicit = [i for ids in concepts.measurement_ids.values() for i in ids]
        if explicit:
            have = {r[0] for r in con.execute(
                sql.SQL("SELECT concept_id FROM {}.concept WHERE concept_id = ANY(%s)")
                .format(v), [explicit]).fetchall()}
            for col, ids in concepts.measurement_ids.items():
                for i in ids:
                    if i not in have:
                        sink.error(concepts.path, None, f"[measurement_concept_ids] {col}",
                                   str(i), f"unknown concept: concept_id {i} is not in "
                                   f"{vocab}.concept")
                    else:
                        rows.append((i, "measurement", col, None))
        if sink.problems:
            return {}, info
        with con.cursor().copy("COPY lupus_concepts FROM STDIN") as cp:
            for r in rows:
                cp.write_row(r)
        con.execute("CREATE INDEX ON lupus_concepts (concept_id)")
        con.execute("ANALYZE lupus_concepts")
        # --- the cohort, selected in the database ------------------------------------------
        con.execute("CREATE TEMP TABLE lupus_cohort (person_id integer PRIMARY KEY, "
                    "start_date date, last_date date, obs_end date) ON COMMIT PRESERVE ROWS")
        con.execute(sql.SQL(
            "INSERT INTO lupus_cohort (person_id, start_date, last_date) "
            "SELECT d.person_id, min(d.drug_exposure_start_date), "
            "max(coalesce(d.drug_exposure_end_date, d.drug_exposure_start_date)) "
            "FROM {}.drug_exposure d JOIN lupus_concepts k ON k.concept_id = d.drug_concept_id "
            "AND k.kind = %s GROUP BY d.person_id").format(s), ["belimumab"])
        if has_obs:
            con.execute(sql.SQL(
                "UPDATE lupus_cohort c SET obs_end = o.e FROM (SELECT op.person_id, "
                "max(op.observation_period_end_date) AS e FROM {}.observation_period op "
                "JOIN lupus_cohort c2 ON c2.person_id = op.person_id GROUP BY op.person_id) o "
                "WHERE o.person_id = c.person_id").format(s))
        con.execute("ANALYZE lupus_cohort")
        n = con.execute("SELECT count(*) FROM lupus_cohort").fetchone()[0]
        info.n_patients = int(n)
        if n == 0:
            info.seconds = time.perf_counter() - t0
            return {}, info
        cutoff = con.execute(sql.SQL(
            "SELECT max(drug_exposure_start_date) FROM {}.drug_exposure").format(s)).fetchone()[0]
        counter: dict[str, int] = {}
        persons = list(_stream(con, sql.SQL(
            "SELECT p.person_id, p.person_source_value, p.gender_concept_id, p.year_of_birth, "
            "p.month_of_birth, p.day_of_birth, p.birth_datetime, c.start_date, c.last_date, "
            "c.obs_end FROM {}.person p JOIN lupus_cohort c ON c.person_id = p.person_id "
            "ORDER BY p.person_id").format(s), [], "lupus_person", counter, "person", batch))
        labs_rows = list(_stream(con, sql.SQL(
            "SELECT m.measurement_id, m.person_id, m.measurement_date, k.name, "
            "m.value_as_number, u.concept_code, m.unit_source_value "
            "FROM {s}.measurement m JOIN lupus_cohort c ON c.person_id = m.person_id "
            "JOIN lupus_concepts k ON k.concept_id = m.measurement_concept_id "
            "AND k.kind = %s LEFT JOIN {v}.concept u ON u.concept_id = m.unit_concept_id "
            "AND m.unit_concept_id <> 0 WHERE m.measurement_date >= c.start_date - %s "
            "ORDER BY m.person_id, m.measurement_date, m.measurement_id").format(s=s, v=v),
            ["measurement", ingest.BASELINE_WINDOW[0] * -1], "lupus_measurement", counter,
            "measurement", batch))
        strength = sql.SQL(
            "LEFT JOIN {v}.drug_strength ds ON ds.drug_concept_id = d.drug_concept_id "
            "AND ds.ingredient_concept_id = k.ingredient_id LEFT JOIN {v}.concept au "
            "ON au.concept_id = ds.amount_unit_concept_id").format(v=v) if has_strength \
            else sql.SQL("")
        amount = sql.SQL("ds.amount_value, au.concept_code") if has_strength else \
            sql.SQL("NULL::numeric, NULL::text")
        drugs = list(_stream(con, sql.SQL(
            "SELECT d.drug_exposure_id, d.person_id, k.kind, k.name, "
            "d.drug_exposure_start_date, coalesce(d.drug_exposure_end_date, "
            "d.drug_exposure_start_date), d.quantity, d.days_supply, {amount} "
            "FROM {s}.drug_exposure d JOIN lupus_cohort c ON c.person_id = d.person_id "
            "JOIN lupus_concepts k ON k.concept_id = d.drug_concept_id AND k.kind <> %s "
            "{strength} WHERE coalesce(d.drug_exposure_end_date, d.drug_exposure_start_date) "
            ">= c.start_date - %s").format(amount=amount, s=s, strength=strength),
            ["belimumab", BASELINE_LOOKBACK_DAYS], "lupus_drug", counter, "drug_exposure",
            batch))
        conds = []
        if has_cond:
            conds = list(_stream(con, sql.SQL(
                "SELECT co.condition_occurrence_id, co.person_id, co.condition_start_date, "
                "cc.concept_name FROM {s}.condition_occurrence co JOIN lupus_cohort c "
                "ON c.person_id = co.person_id JOIN {v}.concept cc "
                "ON cc.concept_id = co.condition_concept_id "
                "WHERE co.condition_start_date > c.start_date "
                "AND NOT (lower(cc.concept_name) LIKE ANY(%s)) "
                "ORDER BY co.person_id, co.condition_start_date").format(s=s, v=v),
                [[f"%{w}%" for w in concepts.exclude_conditions] or ["\x00"]],
                "lupus_condition", counter, "condition_occurrence", batch))
        con.rollback()
    info.rows = counter
    tables = _tables(persons, labs_rows, drugs, conds, cohort, concepts, cutoff, cdm_schema)
    info.seconds = time.perf_counter() - t0
    return tables, info


def _section(kind: str) -> str:
    return {"gc": "glucocorticoids", "is": "immunosuppressants", "am": "antimalarials"}.get(
        kind, kind)


def _tables(persons, labs_rows, drugs, conds, cohort, concepts, cutoff, cdm_schema) -> dict:
    """Raw (string) tables in the importer's shape, located by CDM table and row id."""
    src = [p[1] for p in persons]
    use_source = all(src) and len(set(src)) == len(src)
    pid_of = {p[0]: (p[1] if use_source else str(p[0])) for p in persons}
    start_of = {p[0]: p[7] for p in persons}
    drug = pd.DataFrame(drugs, columns=["id", "person_id", "kind", "name", "start", "end",
                                        "quantity", "days", "amount", "amount_unit"])
    out_p = []
    gap = dt.timedelta(days=concepts.gap_days)
    # Background therapy at baseline: exposures overlapping the 90 days before the first dose.
    classes_of: dict[int, list[str]] = {}
    anti_of: set[int] = set()
    if len(drug):
        st = drug["person_id"].map(start_of)
        near = drug[(drug["end"] >= st - dt.timedelta(days=BASELINE_LOOKBACK_DAYS))
                    & (drug["start"] <= st)]
        order = list(concepts.immunosuppressants)
        for pid_, grp in near[near["kind"] == "is"].groupby("person_id"):
            classes_of[pid_] = sorted(set(grp["name"]), key=order.index)
        anti_of = set(near.loc[near["kind"] == "am", "person_id"])
    for row in persons:
        person_id, _, gender, *_rest = row
        start, last, obs_end = row[7], row[8], row[9]
        birth = _birth(row)
        age = "" if birth is None else repr((start - birth).days / 365.25)
        classes = classes_of.get(person_id, [])
        horizon = min(x for x in (obs_end, cutoff) if x is not None) if (obs_end or cutoff) \
            else None
        stopped = horizon is not None and last + gap < horizon
        out_p.append({
            "patient_id": pid_of[person_id], "cohort": cohort,
            "sex": GENDER.get(int(gender), "") if gender is not None else "",
            "age_at_baseline_years": age, "treatment_start_date": start.isoformat(),
            "immunosuppressant": "+".join(classes) if classes else "none",
            "antimalarial": "true" if person_id in anti_of else "false",
            "discontinued_week": str((last - start).days // 7) if stopped else "",
            "discontinuation_reason": (f"no belimumab exposure within {concepts.gap_days} days "
                                       "after the last one (OMOP drug_exposure)")
            if stopped else "",
        })
    pframe = pd.DataFrame(out_p, dtype=object).fillna("")
    if pframe.empty:
        pframe = pd.DataFrame({c: pd.Series([], dtype=object) for c in
                               ("patient_id", "cohort", "sex")})
    prow = np.asarray([p[0] for p in persons], dtype=np.int64)
    patients = ingest._Raw(f"{cdm_schema}.person", pframe, prow, False,
                           {c: c for c in pframe.columns})
    # Labs in long format, rows numbered by measurement_id.
    lab = pd.DataFrame(labs_rows, columns=["id", "person_id", "date", "measure", "value",
                                           "unit_code", "unit_source"])
    lframe = pd.DataFrame({
        "patient_id": lab["person_id"].map(pid_of).astype(object),
        "visit_date": [d.isoformat() for d in lab["date"]],
        "test": lab["measure"].astype(object),
        "value": ["" if x is None else repr(float(x)) for x in lab["value"]],
        "unit": [_ucum(c) or (s or "") for c, s in zip(lab["unit_code"], lab["unit_source"],
                                                      strict=True)],
    }, dtype=object)
    labs_raw = ingest._Raw(f"{cdm_schema}.measurement", lframe,
                           lab["id"].to_numpy(dtype=np.int64), False,
                           {c: c for c in lframe.columns})
    # Conditions after the first dose → adverse events.
    ae = pd.DataFrame(conds, columns=["id", "person_id", "date", "term"])
    aframe = pd.DataFrame({
        "patient_id": ae["person_id"].map(pid_of).astype(object),
        "onset_week": [str((d - start_of[p]).days // 7) for d, p in
                       zip(ae["date"], ae["person_id"], strict=True)],
        "term": ae["term"].astype(object),
        "category": [_category(t) for t in ae["term"]],
    }, dtype=object)
    aes = ingest._Raw(f"{cdm_schema}.condition_occurrence", aframe,
                      ae["id"].to_numpy(dtype=np.int64), False, {c: c for c in aframe.columns})
    return {"patients": patients, "labs": labs_raw, "adverse_events": aes, "drugs": drug,
            "pid_of": pid_of, "start_of": start_of}


# UCUM codes of OMOP unit concepts → spellings mapping.canon_unit() reads.
_UCUM = {"[iu]/ml": "IU/mL", "g/(24.h)": "g/day", "mg/(24.h)": "mg/day", "g/g{creat}": "g/g",
         "mg/g{creat}": "mg/g", "mg/mmol{creat}": "mg/mmol", "ml/min/{1.73_m2}": "ml/min",
         "ml/min/1.73.m2": "ml/min", "[ku]/l": "IU/mL", "%": "%"}


def _ucum(code) -> str | None:
    if code is None or code == "":
        return None
    return _UCUM.get(str(code).lower(), str(code))


def _prednisone(visits: ingest._Raw, drug: pd.DataFrame, pid_of: dict, starts: dict) -> None:
    """prednisone_mg_day of each visit: glucocorticoid daily doses covering its nominal day."""
    gc = drug[drug["kind"] == "gc"] if len(drug) else drug
    if not len(gc):
        return
    person_of = {v: k for k, v in pid_of.items()}
    daily = []
    for r in gc.itertuples(index=False):
        if r.quantity is None or r.days is None or r.amount is None or not r.days:
            daily.append(np.nan)
            continue
        unit = (r.amount_unit or "mg").lower()
        per_unit = float(r.amount) * (1000.0 if unit == "g" else 1.0)
        daily.append(float(r.quantity) * per_unit / float(r.days)
                     * endpoints.PREDNISONE_FACTORS.get(r.name, np.nan))
    gc = gc.assign(daily=daily)
    f = visits.frame
    vis = pd.DataFrame({"person_id": f["patient_id"].map(person_of),
                        "week": pd.to_numeric(f["visit_week"], errors="coerce")})
    vis["row"] = np.arange(len(vis))
    vis["day"] = [None if pd.isna(p) or pd.isna(w) or starts.get(p) is None else
                  starts[p] + dt.timedelta(days=7 * int(w))
                  for p, w in zip(vis["person_id"], vis["week"], strict=True)]
    both = vis.dropna(subset=["day"]).merge(gc[["person_id", "start", "end", "daily"]],
                                            on="person_id")
    on = both[(both["start"] <= both["day"]) & (both["end"] >= both["day"])]
    # A covering dose without quantity/strength makes the day's dose unknown, not 0.
    total = on.groupby("row")["daily"].agg(lambda x: x.sum(min_count=len(x)))
    out = ["" for _ in range(len(vis))]
    known_rows = set(vis.dropna(subset=["day"])["row"])
    for r in known_rows:
        x = total.get(r, 0.0)
        out[r] = "" if pd.isna(x) else repr(float(x))
    f["prednisone_mg_day"] = out


def read_omop(dsn: str, cdm_schema: str, cohort: str, *, concepts: str | Path | None = None,
              vocab_schema: str | None = None, gap_days: int | None = None,
              schedule=None, week_windows=None, batch: int = BATCH
              ) -> tuple[ingest.ReadResult, Extract]:
    """Extract the belimumab cohort and validate it like any import (nothing written)."""
    sink = ingest._Sink()
    cs = load_concepts(concepts, sink)
    if cs is None or sink.problems:
        return ingest.ReadResult({}, sink.problems, sink.warnings, None, dsn), Extract()
    if gap_days is not None:
        cs.gap_days = int(gap_days)
    tables, info = extract(dsn, cdm_schema, cohort, cs, sink, vocab_schema, batch)
    source = f"OMOP CDM {cdm_schema} ({_safe_dsn(dsn)})"
    if sink.problems or info.n_patients == 0:
        return ingest.ReadResult({}, sink.problems, sink.warnings, None, source), info
    # Parsed here for the labs' weeks; _read_validated parses them again and reports them.
    quiet = ingest._Sink()
    sched = ingest.parse_schedule(schedule, quiet)
    wins = ingest.parse_windows(week_windows, quiet)
    raws = {"patients": tables["patients"], "adverse_events": tables["adverse_events"]}
    opts = {"date_format": "auto"}
    labs.merge_into(raws, tables["labs"], None, sink, opts, sched, wins)
    if "visits" in raws:
        _prednisone(raws["visits"], tables["drugs"], tables["pid_of"], tables["start_of"])
    sink.warn(cdm_schema, None, None, None,
              "SLEDAI-2K (and its descriptors) and PGA are not in the OMOP CDM extraction: "
              "left empty, never invented; LLDAS and DORIS remission cannot be evaluated")
    res = ingest._read_validated(Path(source), sink, None, None, None, week_windows, schedule,
                                 None, raws=raws)
    res.source = source
    return res, info


def _safe_dsn(dsn: str) -> str:
    """The DSN without a password (it goes into the cohorts table's source)."""
    try:
        from psycopg.conninfo import conninfo_to_dict

        d = conninfo_to_dict(dsn)
        return f"{d.get('host', '')}:{d.get('port', '')}/{d.get('dbname', '')}"
    except Exception:  # noqa: BLE001 - only for display
        return "postgresql"


def cli_import_omop(args) -> int:
    """`import-omop --dsn ... --schema cdm --cohort NAME [--db FILE]`; exit 0/2."""
    from . import store

    t0 = time.perf_counter()
    try:
        res, info = read_omop(args.dsn, args.schema, args.cohort, concepts=args.concepts,
                              vocab_schema=args.vocab_schema, gap_days=args.gap_days,
                              schedule=args.schedule, week_windows=args.week_windows)
    except OmopError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    ingest._print_report(res)
    for note in info.notes:
        print(f"note: {note}", file=sys.stderr)
    if res.problems:
        print("nothing was imported" + (f"; {args.db} was not touched" if args.db else ""),
              file=sys.stderr)
        return 2
    print(f"{info.n_patients} patients with belimumab in {args.schema} "
          f"({', '.join(f'{k} {v:,} rows' for k, v in info.rows.items()) or 'no rows read'}; "
          f"extracted in {info.seconds:.1f} s)")
    if info.n_patients == 0:
        print("nothing to import" + (f"; {args.db} was not touched" if args.db else ""))
        return 0
    print(f"valid: {ingest._counts(res)}")
    if not args.db:
        return 0
    mode = "replace" if args.replace else ("append" if args.append else "create")
    try:
        summary = store.write_database(args.db, res.tables, mode=mode,
                                       schedules=res.schedules, source=res.source)
    except store.StoreError as exc:
        print(f"error: {exc}; nothing was imported, {args.db} is unchanged", file=sys.stderr)
        return 2
    print(f"imported into {args.db} ({mode}) in {time.perf_counter() - t0:.1f} s; database "
          f"now holds {summary['n_cohorts']} cohorts, {summary['patients']} patients")
    return 0
