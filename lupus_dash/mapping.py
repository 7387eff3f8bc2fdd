"""Column mapping: a file's own headers, units and value codes → the data contract.

A mapping (``MAP.toml``) says, per input table, which file holds it and, per
file column, the contract column it feeds (``to``), the unit its values are in
(``unit``, converted to the contract's unit before the range checks), and a
value map (``values``, e.g. ``{"1" = "F", "2" = "M"}``). ``to = ""`` ignores a
column on purpose. ``suggest(path)`` writes a first mapping from the headers
and sample values, each guess with a confidence (1 = the contract's own name,
below 0.75 = check it) and a note; columns it cannot place are listed with
``to = ""`` so nothing is dropped silently.

Sources of the synonym table: headers seen in clinicians' exports of lupus
cohorts (units in brackets, German/French/Spanish words, drug names for a
class), the names the clinical literature uses for each measure (SLEDAI-2K:
Gladman 2002; PGA; ISN/RPS 2003 classes: Weening 2004; LLDAS: Franklyn 2016),
LOINC long common names (labs.py) and MedDRA system organ classes for adverse
event categories.
"""

from __future__ import annotations

import difflib
import functools
import re
import tomllib
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from . import schema

CONFIDENT = 0.75  # below this a suggestion is marked "check"

# --- units ---------------------------------------------------------------------------------
# Factor that turns a value in the given unit into the contract's unit (CLINICAL_DEFINITIONS.md
# §8 for complement and creatinine). Keys are unit spellings as written; lookups go through
# canon_unit() so "mg/dl", "mg / dL" and "mg/100ml" are one unit.
# UPCR mg/mmol: creatinine 113.12 g/mol, so 1 mg/mmol = 1 mg / 113.12 mg = 0.00884 g/g
# (KDIGO 2012: 30 mg/mmol ≈ 300 mg/g).
_CREATININE_MG_PER_MMOL = 113.12
UNITS: dict[str, dict[str, float]] = {
    "c3_g_l": {"g/L": 1.0, "mg/dL": 0.01, "mg/L": 0.001},
    "c4_g_l": {"g/L": 1.0, "mg/dL": 0.01, "mg/L": 0.001},
    "urine_protein_g_24h": {"g/day": 1.0, "mg/day": 0.001},
    "upcr_g_g": {"g/g": 1.0, "mg/mg": 1.0, "mg/g": 0.001,
                 "mg/mmol": 1 / _CREATININE_MG_PER_MMOL, "g/mmol": 1000 / _CREATININE_MG_PER_MMOL},
    "cd19_pct": {"%": 1.0},
    "anti_dsdna_iu_ml": {"IU/mL": 1.0},
    "prednisone_mg_day": {"mg/day": 1.0},
    "albumin_g_l": {"g/L": 1.0, "g/dL": 10.0, "mg/dL": 0.01},
    "creatinine_umol_l": {"µmol/L": 1.0, "mg/dL": 88.4, "mg/L": 8.84, "mmol/L": 1000.0},
    "egfr_ml_min": {"mL/min/1.73 m²": 1.0},
    "weight_kg": {"kg": 1.0, "g": 0.001, "lb": 0.45359237},
    "height_cm": {"cm": 1.0, "m": 100.0, "mm": 0.1, "in": 2.54},
    "age_at_onset_years": {"years": 1.0, "months": 1 / 12},
    "age_at_baseline_years": {"years": 1.0, "months": 1 / 12},
    "disease_duration_months": {"months": 1.0, "years": 12.0, "weeks": 12 / 52.1775},
}
# Spelling (lower case, spaces removed, µ/μ → u) → canonical unit.
_UNIT_ALIASES: dict[str, str] = {
    "g/l": "g/L", "mg/dl": "mg/dL", "mg/100ml": "mg/dL", "mg%": "mg/dL", "mg/l": "mg/L",
    "g/dl": "g/dL", "g/100ml": "g/dL",
    "g/24h": "g/day", "g/24hr": "g/day", "g/24hrs": "g/day", "g/d": "g/day", "g/day": "g/day",
    "g/24hours": "g/day", "g/die": "g/day", "g/24std": "g/day", "g/j": "g/day",
    "mg/24h": "mg/day", "mg/24hr": "mg/day", "mg/d": "mg/day", "mg/day": "mg/day",
    "mg/die": "mg/day", "mg/24hours": "mg/day",
    "g/g": "g/g", "mg/mg": "mg/mg", "mg/g": "mg/g", "mg/gcr": "mg/g", "mg/gcreat": "mg/g",
    "mg/mmol": "mg/mmol", "mg/mmolcr": "mg/mmol", "mg/mmolcreat": "mg/mmol", "g/mmol": "g/mmol",
    "%": "%", "pct": "%", "percent": "%", "%lymphocytes": "%", "%oflymphocytes": "%",
    "%lymph": "%", "%ly": "%",
    "iu/ml": "IU/mL", "kiu/l": "IU/mL", "ui/ml": "IU/mL", "ie/ml": "IU/mL",
    "u/ml": "U/mL", "au/ml": "AU/mL", "titer": "titre", "titre": "titre",
    "mg": "mg/day",
    "umol/l": "µmol/L", "micromol/l": "µmol/L", "mmol/l": "mmol/L",
    "ml/min/1.73m2": "mL/min/1.73 m²", "ml/min/1.73m²": "mL/min/1.73 m²",
    "ml/min": "mL/min/1.73 m²", "ml/min/1,73m2": "mL/min/1.73 m²",
    "ml/min/1.73": "mL/min/1.73 m²",
    "kg": "kg", "g": "g", "lb": "lb", "lbs": "lb", "cm": "cm", "m": "m", "mm": "mm",
    "in": "in", "inch": "in", "inches": "in",
    "y": "years", "yr": "years", "yrs": "years", "years": "years", "year": "years",
    "a": "years", "jahre": "years", "ans": "years", "años": "years",
    "mo": "months", "mon": "months", "month": "months", "months": "months", "monate": "months",
    "mois": "months", "meses": "months",
    "wk": "weeks", "wks": "weeks", "week": "weeks", "weeks": "weeks",
}


def canon_unit(text: str | None) -> str | None:
    """A unit as written → its canonical spelling (None when unknown or empty)."""
    if not text:
        return None
    key = unicodedata.normalize("NFKC", str(text)).strip().lower().replace(" ", "")
    key = key.replace("µ", "u").replace("μ", "u")
    return _UNIT_ALIASES.get(key)


def unit_factor(column: str, unit: str | None) -> float | None:
    """Factor turning `unit` into `column`'s contract unit; None if it cannot convert."""
    table = UNITS.get(column)
    canon = canon_unit(unit)
    if table is None or canon is None:
        return None
    return table.get(canon)


def units_text(column: str) -> str:
    return ", ".join(UNITS.get(column, {}))


# --- synonyms --------------------------------------------------------------------------------


def _norm(text: object) -> str:
    """Header text for matching: accents off, lower case, punctuation → spaces."""
    s = unicodedata.normalize("NFKD", str(text)).encode("ascii", "ignore").decode()
    s = s.lower().replace("+", " plus ").replace("%", " pct ")
    s = re.sub(r"[^a-z0-9]+", " ", s)
    return re.sub(r"\s+", " ", s).strip()


# Words that decorate a header without changing what it holds.
_NOISE = {"involvement", "organ", "organs", "manifestation", "manifestations", "history", "of",
          "y", "n", "yn", "yes", "no", "0", "1", "the", "at", "level", "value", "result",
          "serum", "plasma", "s", "p", "baseline", "bl", "score", "total", "status",
          "beteiligung", "atteinte", "afectacion", "any", "ever", "patient"}
# Further words that may surround a measure's name in a header.
_FILLER = {"visit", "current", "measured", "lab", "laboratory", "mean", "daily", "dose", "day",
           "d", "mg", "actual", "latest", "last", "first", "initial", "test", "conc",
           "concentration", "on", "in", "per", "aktuell", "dosis", "taglich", "j", "belimumab",
           "benlysta", "biologic", "treatment", "therapy", "drug", "study"}
_ORGAN_WORDS: dict[str, tuple[str, ...]] = {
    "fever": ("fever", "pyrexia", "fieber", "fievre", "fiebre", "constitutional"),
    "skin": ("skin", "cutaneous", "mucocutaneous", "dermatologic", "dermatological", "haut",
             "peau", "piel", "rash", "malar rash", "acle", "scle", "dle", "discoid"),
    "cns": ("cns", "neuropsychiatric", "npsle", "np sle", "neurological", "neurologic", "neuro",
            "central nervous system", "neuropsychiatric lupus", "nervous system", "zns"),
    "kidney": ("kidney", "renal", "nephritis", "lupus nephritis", "ln", "nephro", "niere",
               "rein", "renale", "rinon", "nephropathy"),
    "lung": ("lung", "pulmonary", "pleural", "respiratory", "pleuropulmonary", "lunge",
             "poumon", "pulmon", "serositis", "pleuritis", "pleurisy"),
    "blood": ("blood", "haematological", "hematological", "hematologic", "haematologic",
              "haematology", "hematology", "cytopenia", "cytopenias", "blut", "sang"),
    "cardiovascular": ("cardiovascular", "cardiac", "heart", "cardio", "herz", "coeur",
                       "pericarditis", "myocarditis", "cardiopulmonary"),
    "musculoskeletal": ("musculoskeletal", "joint", "joints", "articular", "arthritis", "msk",
                        "arthralgia", "gelenk", "gelenke", "musculo skeletal", "rheumatic"),
    "gastrointestinal": ("gastrointestinal", "gi", "abdominal", "gut", "bowel", "intestinal",
                         "magen darm", "digestive", "enteritis", "hepatic", "liver"),
}
_PATIENT_ID = ("patient id", "patient", "pat id", "patid", "pid", "subject", "subject id",
               "subjid", "usubjid", "record id", "study id", "participant", "participant id",
               "mrn", "case id", "case", "id", "patient number", "patient no", "pt id", "pt",
               "patienten id", "patienten nr", "code patient", "numero patient", "n patient",
               "id paciente", "identifier", "person id", "screening number", "subject number")

SYNONYMS: dict[str, dict[str, tuple[str, ...]]] = {
    "patients": {
        "patient_id": _PATIENT_ID,
        "cohort": ("cohort", "study", "study name", "studie", "cohorte", "cohort name",
                   "dataset", "registry", "study arm", "cohort label"),
        "sex": ("sex", "gender", "geschlecht", "sexe", "sexo", "sex m f", "m f", "f m",
                "biological sex", "sex at birth"),
        "age_at_onset_years": ("age at onset", "age at diagnosis", "onset age", "age of onset",
                               "age at sle diagnosis", "age at dx", "age dx", "age diagnosis",
                               "alter bei diagnose", "alter bei erstdiagnose",
                               "age au diagnostic", "edad al diagnostico", "diagnosis age",
                               "age at sle onset", "age at disease onset"),
        "age_at_baseline_years": ("age", "age at baseline", "baseline age", "age at start",
                                  "age at treatment start", "age at first infusion",
                                  "age at belimumab start", "age at inclusion",
                                  "age at enrolment", "age at enrollment", "alter", "edad",
                                  "age at start of treatment", "age at belimumab initiation",
                                  "current age", "age years", "age at start of belimumab",
                                  "age at start of therapy", "age at first dose"),
        "disease_duration_months": ("disease duration", "duration of disease", "sle duration",
                                    "time since diagnosis", "krankheitsdauer",
                                    "duree de la maladie", "duracion de la enfermedad",
                                    "disease duration at baseline", "duration of sle",
                                    "lupus duration", "time from diagnosis"),
        "treatment_start_date": ("start of treatment", "treatment start", "start date",
                                 "belimumab start", "date of first infusion", "first infusion",
                                 "first dose date", "date of first dose", "baseline date",
                                 "date of baseline", "index date", "therapy start",
                                 "therapiebeginn", "start belimumab", "bel start",
                                 "belimumab start date", "treatment start date",
                                 "date started", "start of belimumab", "initiation date",
                                 "date of initiation", "debut traitement",
                                 "date debut belimumab", "fecha inicio", "start of therapy",
                                 "biologic start", "date of treatment start"),
        "biopsy_class": ("biopsy class", "isn rps class", "isn rps", "ln class",
                         "lupus nephritis class", "renal biopsy class", "biopsy",
                         "renal biopsy", "histology", "histological class", "who class",
                         "nephritis class", "class", "kidney biopsy", "histologic class",
                         "isn rps 2003", "biopsy result", "renal histology", "nierenbiopsie",
                         "classe histologique", "clase histologica"),
        "immunosuppressant": ("immunosuppressant", "immunosuppression", "background therapy",
                              "background treatment", "concomitant immunosuppressant",
                              "immunosuppressive", "immunosuppressive therapy",
                              "background immunosuppression", "maintenance therapy",
                              "standard therapy", "concomitant therapy", "dmard",
                              "immunosuppressants", "is", "other immunosuppressant",
                              "immunosuppressive agent", "induction therapy",
                              "immunsuppression", "immunosuppresseur", "inmunosupresor",
                              "concomitant medication", "background", "isx"),
        "antimalarial": ("antimalarial", "antimalarials", "anti malarial", "hydroxychloroquine",
                         "hcq", "plaquenil", "quensyl", "chloroquine", "hydroxychloroquin",
                         "antimalarial use", "on hcq", "hcq use", "antimalarique"),
        **{f"organ_{o}": words for o, words in _ORGAN_WORDS.items()},
        "ana_positive": ("ana", "ana positive", "antinuclear antibodies", "antinuclear antibody",
                         "ana status", "ana pos", "anti nuclear antibody", "ana result",
                         "antinukleare antikorper", "anticorps antinucleaires"),
        "weight_kg": ("weight", "body weight", "bw", "gewicht", "poids", "peso", "wt",
                      "koerpergewicht", "korpergewicht"),
        "height_cm": ("height", "body height", "length", "grosse", "groesse", "taille", "talla",
                      "ht", "stature", "korpergrosse", "body length"),
        "discontinued_week": ("discontinued week", "stopped", "stop week", "week stopped",
                              "discontinuation week", "week of discontinuation",
                              "withdrawal week", "week discontinued", "stopped at week",
                              "discontinued", "stop", "discontinuation", "week of stopping",
                              "treatment stopped", "belimumab stopped", "stopped week",
                              "abbruch woche", "arret semaine", "stop belimumab"),
        "discontinuation_reason": ("discontinuation reason", "reason for discontinuation",
                                   "reason stopped", "stop reason", "why stopped",
                                   "reason for stopping", "withdrawal reason", "abbruchgrund",
                                   "motif arret", "motivo suspension", "reason",
                                   "reason for withdrawal", "stopping reason"),
    },
    "visits": {
        "patient_id": _PATIENT_ID,
        "visit_week": ("week", "visit week", "wk", "weeks", "study week", "week of visit",
                       "follow up week", "woche", "semaine", "semana", "visit wk", "time week",
                       "weeks since start", "week number", "weeks from baseline",
                       "weeks on treatment", "timepoint week", "time point week"),
        "visit_date": ("visit date", "date", "date of visit", "sample date", "collection date",
                       "datum", "exam date", "assessment date", "date of assessment",
                       "lab date", "visit", "date visite", "fecha visita", "untersuchungsdatum",
                       "blood draw date", "consultation date", "encounter date"),
        "c3_g_l": ("c3", "complement c3", "complement 3", "c3c", "c3 complement", "serum c3",
                   "komplement c3", "complement c3c", "c3 level", "complement component 3",
                   "c3 serum", "c3 komplement", "complement c3 serum", "c 3"),
        "c4_g_l": ("c4", "complement c4", "complement 4", "c4 complement", "serum c4",
                   "komplement c4", "c4 level", "complement component 4", "c4 serum",
                   "c4 komplement", "c 4"),
        "urine_protein_g_24h": ("24h proteinuria", "24 h urine protein", "24 hour urine protein",
                                "proteinuria", "urine protein", "24h urine protein",
                                "24 h proteinuria", "proteinuria 24h", "24hr protein",
                                "24 hr urine protein", "daily proteinuria", "utp",
                                "24h up", "total urine protein", "eiweiss im urin",
                                "proteinurie", "proteinuria 24 h", "24 hour proteinuria",
                                "24h protein", "protein 24h", "urine protein 24h",
                                "24 hr proteinuria", "sammelurin eiweiss", "24h uprot",
                                "urinary protein excretion", "24h urinary protein",
                                "24 hour urinary protein", "proteinuria g 24h", "prot 24h"),
        "upcr_g_g": ("upcr", "urine protein creatinine ratio", "protein creatinine ratio",
                     "pcr", "urine pcr", "protein creatinine", "uprot ucrea", "spot upcr",
                     "up uc", "upcr ratio", "upc", "urinary protein creatinine ratio",
                     "protein to creatinine ratio", "uprot crea", "eiweiss kreatinin quotient",
                     "rapport proteinurie creatininurie", "upcr spot", "uacr"),
        "cd19_pct": ("cd19", "cd19 plus", "cd19 pct", "cd19 plus b cells", "b cells",
                     "b cell pct", "cd19 b cells", "cd19 percentage", "cd19 plus pct",
                     "b lymphocytes", "cd19 b", "b cell", "cd19 cells", "cd19 lymphocytes",
                     "b zellen", "lymphocytes b", "cd19 of lymphocytes"),
        "anti_dsdna_positive": ("anti dsdna positive", "dsdna positive", "anti dsdna status",
                                "dsdna plus", "anti dsdna pos neg", "ds dna positive",
                                "anti ds dna positive", "dsdna status", "anti dsdna pos",
                                "dsdna pos", "anti dsdna result", "anti dsdna plus",
                                "anti dsdna positivity", "dsdna positivity"),
        "anti_dsdna_iu_ml": ("anti dsdna", "dsdna", "ds dna", "anti ds dna",
                             "dsdna antibodies", "anti dsdna titre", "anti dsdna titer",
                             "anti dna", "dna antibodies", "ds dna ab", "anti dsdna antibody",
                             "anti dsdna antibodies", "dsdna ab", "ds dna antikorper",
                             "anti ds dna antikorper", "anti adn natif", "anti adn",
                             "anticuerpos anti dsdna", "dsdna titre", "dsdna titer",
                             "anti dsdna level", "farr", "crithidia"),
        "sledai2k": ("sledai", "sledai 2k", "sledai2k", "sledai score", "sledai 2000",
                     "sle disease activity index", "sle disease activity index 2000",
                     "sledai 2k score", "sledai total", "disease activity sledai",
                     "selena sledai", "sle dai"),
        "pga": ("pga", "physician global assessment", "physicians global assessment",
                "phga", "physician global", "global assessment", "pga 0 3", "md global",
                "physician s global assessment", "arztliches globalurteil"),
        "prednisone_mg_day": ("prednisone", "pred", "pred dose", "prednisone dose",
                              "prednisolone", "pdn", "gc dose", "glucocorticoid dose",
                              "steroid dose", "steroids", "corticosteroid dose",
                              "prednisone equivalent", "pred eq", "daily prednisone",
                              "ocs dose", "oral steroids", "glucocorticoids", "glucocorticoid",
                              "corticosteroids", "prednisolone dose", "pred mg", "gc",
                              "prednisone mg", "prednisone equivalent dose", "steroid",
                              "prednison", "prednisolon", "cortisone dose", "corticoides",
                              "corticoides dose", "prednisone daily dose", "pdn dose",
                              "glucocorticoid dose prednisone equivalent", "pse",
                              "prednisolone equivalent", "gc pred eq"),
        "albumin_g_l": ("albumin", "serum albumin", "alb", "albumine", "albumina",
                        "albumin serum", "s albumin"),
        "creatinine_umol_l": ("creatinine", "serum creatinine", "creat", "crea", "scr",
                              "kreatinin", "creatinine serum", "cr", "s creatinine",
                              "creatinina", "s crea", "p creatinine"),
        "egfr_ml_min": ("egfr", "gfr", "estimated gfr", "ckd epi", "schwartz",
                        "estimated glomerular filtration rate", "mdrd", "egfr ckd epi",
                        "bedside schwartz", "dfg", "dfge", "glomerular filtration rate"),
        "major_organ_activity": ("major organ activity", "major organ involvement active",
                                 "active major organ", "major organ", "moa"),
        "new_activity": ("new activity", "new lupus activity", "new disease activity",
                         "new features", "new activity since last visit"),
        "weight_kg": ("weight", "body weight", "bw", "gewicht", "poids", "peso", "wt"),
        "height_cm": ("height", "body height", "length", "grosse", "taille", "talla", "ht",
                      "stature"),
        "haemolytic_anaemia": ("haemolytic anaemia", "hemolytic anemia", "haemolysis",
                               "hemolysis", "aiha", "autoimmune haemolytic anaemia",
                               "autoimmune hemolytic anemia"),
        "gi_activity": ("gi activity", "gastrointestinal activity", "lupus enteritis",
                        "mesenteric vasculitis", "gi involvement active"),
        "glucocorticoid_drug": ("glucocorticoid drug", "steroid type", "steroid drug",
                                "gc drug", "corticosteroid type", "which steroid"),
        "glucocorticoid_mg_day": ("glucocorticoid mg day", "steroid mg", "gc mg"),
        **{f"sledai_{key}": (label.lower(), f"sledai {label.lower()}", key.replace("_", " "))
           for key, _w, label, _g in schema.SLEDAI_DESCRIPTORS},
    },
    "adverse_events": {
        "patient_id": _PATIENT_ID,
        "onset_week": ("onset week", "week of onset", "ae week", "week", "onset", "event week",
                       "week of event", "onset wk", "start week", "week ae"),
        "term": ("term", "adverse event", "event", "ae", "ae term", "description",
                 "preferred term", "meddra pt", "ae description", "reported term",
                 "verbatim term", "event term", "nebenwirkung", "evenement indesirable",
                 "evento adverso", "adverse event term", "diagnosis"),
        "category": ("category", "soc", "system organ class", "ae category", "type",
                     "event type", "ae type", "class", "meddra soc", "body system"),
        "severity": ("severity", "grade", "intensity", "ctcae grade", "ae grade",
                     "schweregrad", "gravite", "severidad", "toxicity grade"),
        "serious": ("serious", "sae", "serious ae", "serious adverse event", "is serious",
                    "schwerwiegend", "grave", "serio", "seriousness"),
    },
}
# Extra input columns the importer reads count as visits targets.
EXTRA_TARGETS = {"visits": schema.EXTRA_VISIT_COLUMNS}

# Glucocorticoids named in a header: the column holds that drug's dose → prednisone equivalent.
GLUCOCORTICOID_NAMES: dict[str, str] = {
    "methylprednisolone": "methylprednisolone", "methylpred": "methylprednisolone",
    "medrol": "methylprednisolone", "urbason": "methylprednisolone",
    "solumedrol": "methylprednisolone", "mp": "methylprednisolone",
    "dexamethasone": "dexamethasone", "dexa": "dexamethasone", "dex": "dexamethasone",
    "fortecortin": "dexamethasone", "hydrocortisone": "hydrocortisone",
    "cortisol": "hydrocortisone", "hydrocortison": "hydrocortisone",
}

# --- values ---------------------------------------------------------------------------------
# Spelled-out values clinicians write, mapped to the contract's value (normalised with _norm).
SEX_VALUES = {
    "f": "F", "female": "F", "w": "F", "weiblich": "F", "woman": "F", "girl": "F", "fem": "F",
    "femme": "F", "mujer": "F", "femenino": "F", "feminin": "F", "femminile": "F", "frau": "F",
    "m": "M", "male": "M", "mannlich": "M", "maennlich": "M", "man": "M", "boy": "M",
    "homme": "M", "hombre": "M", "masculino": "M", "masculin": "M", "maschile": "M", "h": "M",
    "mann": "M", "v": "F", "vrouw": "F", "d": None,
}
BOOL_VALUES = {
    "true": "true", "yes": "true", "y": "true", "1": "true", "ja": "true", "j": "true",
    "oui": "true", "o": "true", "si": "true", "positive": "true", "pos": "true",
    "plus": "true", "present": "true", "detected": "true", "x": "true", "checked": "true",
    "positiv": "true", "positif": "true", "positivo": "true", "vorhanden": "true",
    "false": "false", "no": "false", "n": "false", "0": "false", "nein": "false",
    "non": "false", "negative": "false", "neg": "false", "absent": "false",
    "not detected": "false", "negativ": "false", "negatif": "false", "negativo": "false",
    "unchecked": "false", "nicht vorhanden": "false", "none": "false",
}
# Drug names → the immunosuppressant class labels the contract uses (DATA_CONTRACT.md).
DRUG_CLASSES: dict[str, str] = {
    "mmf": "MMF", "mycophenolate": "MMF", "mycophenolate mofetil": "MMF", "cellcept": "MMF",
    "mycophenolic acid": "MMF", "myfortic": "MMF", "mpa": "MMF", "mycophenolat": "MMF",
    "mycophenolate sodium": "MMF", "ems": "MMF",
    "cyc": "CYC", "cyclophosphamide": "CYC", "endoxan": "CYC", "cytoxan": "CYC",
    "ivcyc": "CYC", "iv cyc": "CYC", "cp": "CYC", "ctx": "CYC", "eurolupus": "CYC",
    "nih cyc": "CYC", "cyclophosphamid": "CYC",
    "tac": "TAC", "tacrolimus": "TAC", "prograf": "TAC", "advagraf": "TAC", "fk506": "TAC",
    "tacro": "TAC",
    "aza": "AZA", "azathioprine": "AZA", "imuran": "AZA", "imurel": "AZA", "azathioprin": "AZA",
    "mtx": "MTX", "methotrexate": "MTX", "methotrexat": "MTX",
    "csa": "CsA", "ciclosporin": "CsA", "cyclosporine": "CsA", "cyclosporin": "CsA",
    "neoral": "CsA", "sandimmun": "CsA",
    "vcs": "VCS", "voclosporin": "VCS", "lupkynis": "VCS",
    "lef": "LEF", "leflunomide": "LEF", "arava": "LEF",
    "rtx": "RTX", "rituximab": "RTX", "mabthera": "RTX",
    "none": "none", "no": "none", "nil": "none", "keine": "none", "aucun": "none",
    "ninguno": "none", "nothing": "none", "0": "none",
}
SEVERITY_VALUES = {
    "mild": "mild", "1": "mild", "grade 1": "mild", "g1": "mild", "leicht": "mild",
    "leger": "mild", "leve": "mild", "moderate": "moderate", "2": "moderate",
    "grade 2": "moderate", "g2": "moderate", "mittel": "moderate", "moderee": "moderate",
    "moderado": "moderate", "severe": "severe", "3": "severe", "grade 3": "severe",
    "g3": "severe", "4": "severe", "grade 4": "severe", "5": "severe", "grade 5": "severe",
    "schwer": "severe", "severe grave": "severe", "grave": "severe",
}
# MedDRA system organ classes and common words → contract AE categories.
CATEGORY_VALUES = {
    "infections and infestations": "infection", "infection": "infection",
    "infections": "infection", "infektion": "infection",
    "infusion reaction": "infusion_reaction", "infusion related reaction": "infusion_reaction",
    "infusion": "infusion_reaction",
    "injury poisoning and procedural complications": "infusion_reaction",
    "hypersensitivity": "allergic_reaction", "allergy": "allergic_reaction",
    "allergic": "allergic_reaction", "immune system disorders": "allergic_reaction",
    "leukopenia": "leukopenia", "leucopenia": "leukopenia", "neutropenia": "leukopenia",
    "gastrointestinal disorders": "gastrointestinal", "gi": "gastrointestinal",
    "psychiatric disorders": "psychiatric", "psychiatric": "psychiatric",
    "nervous system disorders": "nervous_system", "neurological": "nervous_system",
    "musculoskeletal and connective tissue disorders": "musculoskeletal",
    "musculoskeletal": "musculoskeletal",
}
_ROMAN = {"1": "I", "2": "II", "3": "III", "4": "IV", "5": "V", "6": "VI"}


def biopsy_class_value(text: str) -> str | None:
    """'Class IV-G (A)', 'class 4', '3+5', 'IV/V' → the ISN/RPS label; None if not a class."""
    s = str(text).upper()
    s = re.sub(r"ISN\s*/?\s*RPS|WHO|CLASS|KLASSE|CLASSE|CLASE|LN|LUPUS NEPHRITIS", " ", s)
    s = re.sub(r"\([^)]*\)", " ", s)  # activity/chronicity (A), (A/C), (C)
    s = re.sub(r"-\s*[SG]\b", " ", s)  # segmental/global subclass of III/IV
    parts = [p for p in re.split(r"[\s+/&,]+|AND|PLUS|MIT|ET|Y", s) if p.strip()]
    out = []
    for p in parts:
        p = _ROMAN.get(p, p)
        if p in ("I", "II", "III", "IV", "V", "VI"):
            out.append(p)
        else:
            return None
    label = "+".join(dict.fromkeys(out))
    return label if label in schema.BIOPSY_CLASSES else None


def immunosuppressant_value(text: str) -> str | None:
    """'Mycophenolate mofetil + tacrolimus' → 'MMF+TAC'; None when a part is unknown."""
    s = _norm(text)
    if not s:
        return None
    if s in DRUG_CLASSES:
        return DRUG_CLASSES[s]
    for word in ("after", "following", "then", "followed by", "switched to", "nach"):
        if f" {word} " in f" {s} ":
            a, b = re.split(rf"\b{word}\b", s, maxsplit=1)
            la, lb = immunosuppressant_value(a), immunosuppressant_value(b)
            if word in ("then", "followed by", "switched to"):
                la, lb = lb, la  # 'CYC then MMF' = 'MMF after CYC'
            return f"{la} after {lb}" if la and lb else None
    parts = [p.strip() for p in re.split(r"\bplus\b|\band\b|\bund\b|\bet\b|\bwith\b|,", s)
             if p.strip()]
    labels = []
    for p in parts:
        if p not in DRUG_CLASSES:
            return None
        labels.append(DRUG_CLASSES[p])
    return "+".join(labels) if labels else None


def value_map(column: str, values: Iterable[str]) -> tuple[dict[str, str], list[str]]:
    """Values → contract values for `column`: (map of the values that need one, unresolved)."""
    col = _any_column(column)
    out: dict[str, str] = {}
    unresolved: list[str] = []
    for v in dict.fromkeys(str(x).strip() for x in values):
        if not v or v.lower() in schema.NA_MARKERS:
            continue
        key = _norm(v)
        target: str | None = None
        if column == "sex":
            if v in ("F", "M"):
                continue
            target = SEX_VALUES.get(key)
        elif column == "biopsy_class":
            if v in schema.BIOPSY_CLASSES:
                continue
            target = biopsy_class_value(v)
            if target is None and key in ("none", "no", "not done", "nicht", "0", "na"):
                target = ""
        elif column == "immunosuppressant":
            target = immunosuppressant_value(v)
            if target == v:
                continue
        elif column == "severity":
            if v in schema.AE_SEVERITIES:
                continue
            target = SEVERITY_VALUES.get(key)
        elif column == "category":
            if v in schema.AE_CATEGORIES:
                continue
            target = CATEGORY_VALUES.get(key)
        elif col is not None and col.dtype == schema.BOOL:
            if v.lower() in ("true", "false", "yes", "no", "y", "n", "1", "0"):
                continue
            target = BOOL_VALUES.get(key) if v not in ("+", "-") else \
                {"+": "true", "-": "false"}[v]
        else:
            continue
        if target is None:
            unresolved.append(v)
        else:
            out[v] = target
    return out, unresolved


def _any_column(name: str) -> schema.Column | None:
    for table in schema.INPUT_TABLES:
        for c in schema.columns(table):
            if c.name == name:
                return c
    return None


# --- header matching ------------------------------------------------------------------------

_UNIT_IN_HEADER = re.compile(
    r"^(?P<name>.*?)\s*(?:[\(\[\{]\s*(?P<unit>[^\)\]\}]*)\s*[\)\]\}]|,\s*(?P<unit2>[^,]+))\s*$"
)


def split_header(header: str) -> tuple[str, str | None]:
    """'C3 (mg/dL)' → ('C3', 'mg/dL'); 'Creatinine, µmol/L' → ('Creatinine', 'µmol/L')."""
    h = str(header).strip()
    m = _UNIT_IN_HEADER.match(h)
    if m:
        unit = (m.group("unit") or m.group("unit2") or "").strip()
        if canon_unit(unit) or unit in ("0-3", "0–3", "y/n", "Y/N", "1/0", "0/1"):
            return m.group("name").strip(), unit if canon_unit(unit) else None
    # A unit glued on with _ or a space: 'c3_mg_dl', 'Creatinine mg/dL', 'weight kg'.
    words = re.split(r"[\s_]+", h)
    for k in (3, 2, 1):
        if len(words) > k:
            tail = "/".join(words[-k:]) if k > 1 else words[-1]
            for cand in {tail, " ".join(words[-k:]), "".join(words[-k:])}:
                if canon_unit(cand):
                    return " ".join(words[:-k]), cand
    return h, None


@dataclass
class Guess:
    """One header's best contract column."""

    to: str
    confidence: float
    unit: str | None = None
    note: str = ""


def _targets(table: str) -> dict[str, tuple[str, ...]]:
    syn = dict(SYNONYMS[table])
    for c in schema.columns(table):
        syn.setdefault(c.name, ())
    for extra in EXTRA_TARGETS.get(table, ()):
        syn.setdefault(extra, ())
    return syn


@functools.cache
def _phrases(table: str, col: str) -> tuple[str, ...]:
    """The normalised names of a contract column (its own, its label, its synonyms)."""
    names = [_norm(col)]
    c = next((x for x in schema.columns(table) if x.name == col), None)
    if c is not None:
        names.append(_norm(c.label))
    names += [_norm(s) for s in _targets(table).get(col, ())]
    return tuple(n for n in dict.fromkeys(names) if n)


def _ratio_at_least(a: str, b: str, cutoff: float) -> float | None:
    """difflib's ratio() of a and b if it reaches `cutoff`, else None. Its exact upper
    bounds are tried first, as difflib.get_close_matches does: the same answers, cheaper."""
    la, lb = len(a), len(b)
    if la + lb and 2.0 * min(la, lb) / (la + lb) < cutoff:  # = real_quick_ratio()
        return None
    sm = difflib.SequenceMatcher(None, a, b)
    if sm.quick_ratio() < cutoff:
        return None
    ratio = sm.ratio()
    return ratio if ratio >= cutoff else None


def _looks_numeric(samples: Sequence[str]) -> float:
    vals = [s for s in samples if s and s.lower() not in schema.NA_MARKERS]
    if not vals:
        return 0.5
    ok = sum(bool(re.fullmatch(r"[<>]?\s*[+-]?\d+([.,]\d+)?", v.strip())) for v in vals)
    return ok / len(vals)


def _looks_bool(samples: Sequence[str]) -> float:
    vals = [s for s in samples if s]
    if not vals:
        return 0.5
    ok = sum(_norm(v) in BOOL_VALUES or v in ("+", "-") for v in vals)
    return ok / len(vals)


def match_header(table: str, header: str, samples: Sequence[str] = ()) -> Guess | None:
    """Best contract column of `table` for a file header (with sample values), or None."""
    raw_name = str(header).strip()
    name, unit = split_header(raw_name)
    key = _norm(name)
    full = _norm(raw_name)
    targets = _targets(table)
    best: Guess | None = None

    def offer(col: str, conf: float, note: str = "") -> None:
        nonlocal best
        if best is None or conf > best.confidence:
            best = Guess(col, conf, None, note)

    # The contract's own spelling (as ingest normalises it) is certain.
    contract_key = re.sub(r"[\s\-]+", "_", raw_name.lower())
    if contract_key in targets:
        return Guess(contract_key, 1.0, None, "contract name")
    for col in targets:
        phrases = _phrases(table, col)
        if key in phrases or full in phrases:
            conf = 0.98 if key == _norm(col) else 0.95
            offer(col, conf, "synonym")
            continue
        # Noise words dropped: 'Renal involvement (Y/N)' → 'renal'.
        core = " ".join(w for w in key.split() if w not in _NOISE)
        if core and core in phrases:
            offer(col, 0.9, "synonym")
            continue
        for ph in phrases:
            if len(ph) >= 3 and (f" {ph} " in f" {key} "):
                # 'Serum C3 level at visit' holds 'c3'; 'Height of flare' is not a height.
                rest = set(f" {key} ".replace(f" {ph} ", " ").split())
                if rest <= _NOISE | _FILLER:
                    offer(col, 0.8 if len(ph) >= 6 else 0.75, f"contains '{ph}'")
            ratio = _ratio_at_least(core or key, ph, 0.84)
            if ratio is not None:
                offer(col, round(0.8 * ratio, 2), f"spelled like '{ph}'")
    # A drug's name as a header in patients: an indicator of that immunosuppressant.
    if table == "patients" and key in DRUG_CLASSES and DRUG_CLASSES[key] != "none":
        offer("immunosuppressant", 0.85, f"indicator column for {DRUG_CLASSES[key]}")
        if best.to == "immunosuppressant" and best.note.startswith("indicator"):
            return best
    # A glucocorticoid other than prednisone named in the header.
    if table == "visits":
        words = set(key.split())
        drug = next((GLUCOCORTICOID_NAMES[w] for w in words if w in GLUCOCORTICOID_NAMES), None)
        if drug:
            offer("prednisone_mg_day", 0.9, f"{drug} dose, converted to prednisone equivalent")
            best.note = f"{drug} dose, converted to prednisone equivalent"
            best.unit = f"mg/day {drug}"
            return best
    if best is None:
        return None
    # anti-dsDNA: a number column is the level, a yes/no column the status.
    if best.to in ("anti_dsdna_iu_ml", "anti_dsdna_positive") and samples:
        if _looks_bool(samples) > 0.8:
            best.to = "anti_dsdna_positive"
        elif _looks_numeric(samples) > 0.8:
            best.to = "anti_dsdna_iu_ml"
    if best.to == "discontinued_week" and samples and _looks_bool(samples) > 0.8:
        best.confidence = min(best.confidence, 0.5)
        best.note = "values look yes/no, but the contract wants the week the biologic stopped"
    if unit is not None:
        f = unit_factor(best.to, unit)
        if f is not None:
            best.unit = canon_unit(unit)
        elif best.to in UNITS:
            best.unit = unit
            best.note = (f"unit {unit!r} cannot be converted to {best.to}'s unit "
                         f"(convertible: {units_text(best.to)})")
            best.confidence = min(best.confidence, 0.6)
    return best


def looks_like(table: str, header: str, samples: Sequence[str] = ()) -> Guess | None:
    """The contract column an unknown header probably means (confident guesses only)."""
    g = match_header(table, header, samples)
    if g is None or g.confidence < 0.7 or g.note == "contract name":
        return None
    return g


# --- the mapping file -----------------------------------------------------------------------


@dataclass
class ColumnMap:
    """One file column → one contract column."""

    table: str
    column: str  # as written in the file's header
    to: str = ""  # contract column; "" = ignore
    unit: str | None = None
    values: dict[str, str] = field(default_factory=dict)
    confidence: float | None = None
    note: str = ""
    samples: list[str] = field(default_factory=list)


@dataclass
class Mapping:
    """A whole MAP.toml."""

    files: dict[str, str] = field(default_factory=dict)  # table → file (or workbook[sheet])
    columns: list[ColumnMap] = field(default_factory=list)
    date_format: str | None = None
    decimal_comma: bool | None = None
    redcap: dict = field(default_factory=dict)
    labs: dict = field(default_factory=dict)
    path: str = "mapping"  # where it was read from, for located errors

    def for_table(self, table: str) -> list[ColumnMap]:
        return [c for c in self.columns if c.table == table]


def _toml_str(s: str) -> str:
    return '"' + str(s).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _toml_section(name: str, section: dict) -> list[str]:
    """TOML lines of one table: its plain keys, then one sub-table per dict value."""
    out = ["", f"[{name}]"] + [f"{k} = {_toml_value(v)}" for k, v in section.items()
                               if not isinstance(v, dict)]
    for k, v in section.items():
        if isinstance(v, dict):
            out += ["", f"[{name}.{k}]"] + [f"{_toml_str(a)} = {_toml_value(b)}"
                                            for a, b in v.items()]
    return out


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{_toml_str(k)} = {_toml_value(x)}" for k, x in v.items()) + " }"
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return _toml_str(v)


def dumps(m: Mapping) -> str:
    """The mapping as TOML (read back by load())."""
    out = ["# lupus-dash column mapping: file column -> contract column (docs/DATA_CONTRACT.md).",
           "# Edit 'to' (\"\" = ignore the column), 'unit' (converted to the contract's unit) and",
           "# 'values' (value as written -> contract value). confidence < 0.75 = check it.",
           "# Use: python -m lupus_dash import PATH --mapping THIS_FILE --db FILE", ""]
    if m.date_format:
        out.append(f"date_format = {_toml_str(m.date_format)}")
    if m.decimal_comma is not None:
        out.append(f"decimal_comma = {_toml_value(m.decimal_comma)}")
    if m.files:
        out += ["", "[files]"] + [f"{t} = {_toml_str(f)}" for t, f in m.files.items()]
    for name, section in (("redcap", m.redcap), ("labs", m.labs)):
        if section:
            out += _toml_section(name, section)
    for c in m.columns:
        out += ["", "[[columns]]", f"table = {_toml_str(c.table)}",
                f"column = {_toml_str(c.column)}", f"to = {_toml_str(c.to)}"]
        if c.unit:
            out.append(f"unit = {_toml_str(c.unit)}")
        if c.values:
            out.append(f"values = {_toml_value(c.values)}")
        if c.confidence is not None:
            out.append(f"confidence = {c.confidence:.2f}")
        if c.note:
            out.append(f"note = {_toml_str(c.note)}")
        if c.samples:
            out.append(f"samples = {_toml_value(c.samples[:5])}")
    return "\n".join(out) + "\n"


class MappingError(ValueError):
    """A mapping file that cannot be read; the message says where."""


def loads(text: str, path: str = "mapping") -> Mapping:
    """Parse MAP.toml text; structural mistakes raise MappingError naming the place."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise MappingError(f"{path}: not valid TOML ({exc})") from exc
    m = Mapping(path=path)
    m.date_format = doc.get("date_format")
    m.decimal_comma = doc.get("decimal_comma")
    m.files = {str(k): str(v) for k, v in doc.get("files", {}).items()}
    m.redcap = dict(doc.get("redcap", {}))
    m.labs = dict(doc.get("labs", {}))
    for i, c in enumerate(doc.get("columns", []), start=1):
        where = f"{path} [[columns]] #{i}"
        if not isinstance(c, dict) or "column" not in c or "table" not in c:
            raise MappingError(f"{where}: needs 'table' and 'column'")
        if c["table"] not in (*schema.INPUT_TABLES, "labs", "redcap"):
            raise MappingError(f"{where}: table {c['table']!r} is not one of "
                               f"{', '.join(schema.INPUT_TABLES)}")
        values = c.get("values", {})
        if not isinstance(values, dict):
            raise MappingError(f"{where}: 'values' must be a table like {{ \"1\" = \"F\" }}")
        m.columns.append(ColumnMap(
            table=str(c["table"]), column=str(c["column"]), to=str(c.get("to", "") or ""),
            unit=c.get("unit") or None, values={str(k): str(v) for k, v in values.items()},
            confidence=c.get("confidence"), note=str(c.get("note", "")),
            samples=[str(s) for s in c.get("samples", [])],
        ))
    return m


def load(path: str | Path) -> Mapping:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise MappingError(f"{p}: cannot read the mapping file ({exc.strerror})") from exc
    return loads(text, p.name)


def save(m: Mapping, path: str | Path) -> None:
    Path(path).write_text(dumps(m), encoding="utf-8")


# --- suggesting a mapping -------------------------------------------------------------------

_TABLE_HINTS = {
    "patients": ("patient", "patients", "demograph", "baseline", "stamm", "patienten"),
    "visits": ("visit", "visits", "follow", "labs", "verlauf", "besuch", "longitudinal"),
    "adverse_events": ("adverse", "ae", "aes", "safety", "events", "nebenwirkung"),
}


def guess_table(name: str, headers: Sequence[str]) -> str:
    """Which contract table a file (by name and headers) most likely holds."""
    return _guess_table(name, headers, match_header)


def _guess_table(name: str, headers: Sequence[str], match) -> str:
    scores = {}
    low = _norm(name)
    for table in schema.INPUT_TABLES:
        hits = 0.0
        for h in headers:
            g = match(table, h)
            if g and g.confidence >= 0.7 and g.to != "patient_id":
                hits += g.confidence
        if any(w in low.split() or low.startswith(w) for w in _TABLE_HINTS[table]):
            hits += 2
        scores[table] = hits
    return max(scores, key=lambda t: scores[t])


def suggest_columns(table: str, headers: Sequence[str],
                    samples: dict[str, list[str]]) -> list[ColumnMap]:
    """One ColumnMap per header: the best guess, or to = '' with a note."""
    out: list[ColumnMap] = []
    taken: dict[str, ColumnMap] = {}
    for h in headers:
        if not str(h).strip():
            continue
        vals = samples.get(h, [])
        g = match_header(table, h, vals)
        cm = ColumnMap(table, str(h), samples=_distinct(vals)[:5])
        out.append(cm)
        if g is None:
            cm.note = "no contract column matched; set 'to' or leave \"\" to ignore"
        else:
            cm.to, cm.confidence, cm.unit, cm.note = g.to, round(g.confidence, 2), g.unit, g.note
            prev = taken.get(g.to)
            if prev is not None:
                # Two headers for one contract column: keep the more confident, flag both.
                loser = cm if (prev.confidence or 0) >= g.confidence else prev
                winner = prev if loser is cm else cm
                loser.note = f"also matched {loser.to}, taken by {winner.column!r}; check"
                loser.to, loser.confidence = "", None
                if loser is prev:
                    taken[g.to] = cm
            else:
                taken[g.to] = cm
            if cm.to == "immunosuppressant" and cm.note.startswith("indicator"):
                label = cm.note.rsplit(" ", 1)[-1]
                cm.values = {v: (label if BOOL_VALUES.get(_norm(v)) == "true" else "")
                             for v in _distinct(vals) if _norm(v) in BOOL_VALUES}
                cm.note += "; several indicator columns combine (e.g. MMF+TAC)"
            elif cm.to:
                vm, unresolved = value_map(cm.to, _distinct(vals))
                cm.values = vm
                if unresolved:
                    cm.note = (cm.note + "; " if cm.note else "") + (
                        "values to map by hand: " + ", ".join(unresolved[:8]))
                    cm.confidence = min(cm.confidence or 1.0, 0.6)
            if cm.to in UNITS and cm.unit is None and cm.confidence is not None \
                    and cm.note != "contract name":
                first = next(iter(UNITS[cm.to]))
                cm.note = (cm.note + "; " if cm.note else "") + f"no unit in the header: {first} assumed"
    return out


def _distinct(vals: Sequence[str]) -> list[str]:
    return [v for v in dict.fromkeys(str(x).strip() for x in vals) if v]


def _file_samples(raw, limit: int = 200) -> tuple[list[str], dict[str, list[str]]]:
    headers = [raw.header_cols.get(c, c) for c in raw.frame.columns]
    samples = {raw.header_cols.get(c, c): [v for v in raw.frame[c].astype(str).head(limit) if v]
               for c in raw.frame.columns}
    return headers, samples


def _tables_in(path: Path, sink) -> list[tuple[str, object]]:
    """(name as [files] spells it, raw table) for every readable table at `path`."""
    from . import ingest

    out = []
    files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
    for f in files:
        suf = f.suffix.lower()
        if suf in (".csv", ".parquet"):
            raw = ingest._read_table_file(f, sink)
            if raw is not None:
                out.append((f.name, raw))
        elif suf == ".xlsx" and not f.name.startswith("~$"):
            out += ingest._read_sheets(f, sink)  # an unreadable workbook: a problem in sink
    return out


def suggest(path: str | Path, sink=None) -> Mapping:
    """A first mapping for the files at `path` (folder, .xlsx, .csv): guesses + confidences.

    A file that cannot be read (a corrupt workbook, ...) is left out; `sink` (an
    ingest._Sink) collects the located problems of reading the files.
    """
    from . import ingest, labs, redcap

    path = Path(path)
    sink = ingest._Sink() if sink is None else sink
    found = _tables_in(path, sink)
    rc = redcap.detect(found)
    if rc is not None:
        return redcap.suggest(path, found, rc)
    m = Mapping()
    guesses: dict[tuple[str, str], Guess | None] = {}

    def match(table: str, header: str) -> Guess | None:  # each header matched once per table
        if (table, header) not in guesses:
            guesses[table, header] = match_header(table, header)
        return guesses[table, header]

    claimed: dict[str, tuple[float, str, object, list[str], dict[str, list[str]]]] = {}
    for name, raw in found:
        headers, samples = _file_samples(raw)
        if labs.is_long_format(headers):
            m.files["labs"] = name
            m.columns += labs.suggest_columns(headers, samples)
            continue
        table = _guess_table(name, headers, match)
        score = sum((match(table, h) or Guess("", 0)).confidence for h in headers)
        if table not in claimed or score > claimed[table][0]:
            claimed[table] = (score, name, raw, headers, samples)
    for table, (_score, name, raw, headers, samples) in claimed.items():
        if name.lower() not in (f"{table}.csv", f"{table}.parquet"):
            m.files[table] = name
        m.columns += suggest_columns(table, headers, samples)
        if raw.decimal_comma is False and any(
            re.fullmatch(r"[+-]?\d+,\d+", v) for c in m.for_table(table)
            if c.to and (_any_column(c.to) or schema.Column("", schema.TEXT, "")).dtype
            == schema.NUMBER for v in samples.get(c.column, [])
        ):
            m.decimal_comma = True
        date_cols = [c.column for c in m.for_table(table)
                     if c.to in ("treatment_start_date", "visit_date")]
        order, _ = ingest.infer_day_month(
            [raw.frame[ingest.normalise_name(c)].astype(str) for c in date_cols])
        if order in ("DD/MM/YYYY", "MM/DD/YYYY"):
            m.date_format = order
    return m


def unmatched(m: Mapping) -> list[ColumnMap]:
    return [c for c in m.columns if not c.to]


def to_check(m: Mapping) -> list[ColumnMap]:
    return [c for c in m.columns if c.to and (c.confidence or 0) < CONFIDENT]


def summary(m: Mapping) -> str:
    """What a suggestion found, for the terminal."""
    mapped = [c for c in m.columns if c.to]
    lines = [f"{len(mapped)} of {len(m.columns)} columns mapped"
             + (f"; {len(to_check(m))} to check (confidence < {CONFIDENT})" if to_check(m)
                else "")]
    for c in to_check(m):
        lines.append(f"  check   {c.table}: {c.column!r} -> {c.to} ({c.confidence}): {c.note}")
    for c in unmatched(m):
        lines.append(f"  ignored {c.table}: {c.column!r}" + (f" ({c.note})" if c.note else ""))
    return "\n".join(lines)


def cli_suggest_mapping(args) -> int:
    """`suggest-mapping PATH [-o MAP.toml]`: write a first mapping; exit 0, or 2 if unreadable."""
    import sys

    path = Path(args.path)
    if not path.exists():
        print(f"error: {path}: no such file or folder", file=sys.stderr)
        return 2
    from . import ingest

    sink = ingest._Sink()
    try:
        m = suggest(path, sink)
    except Exception as exc:  # noqa: BLE001 - never a traceback for the user
        print(f"error: could not read {path}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    bad = [p for p in sink.problems if p.reason.startswith(ingest.BAD_WORKBOOK)]
    for p in bad:
        print(f"error: {p}", file=sys.stderr)
    if bad:
        return 2
    text = dumps(m)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"wrote {args.output}: {summary(m)}", file=sys.stderr)
        print(f"next: python -m lupus_dash import {path} --mapping {args.output} --db FILE",
              file=sys.stderr)
    else:
        sys.stdout.write(text)
        print(summary(m), file=sys.stderr)
    return 0
