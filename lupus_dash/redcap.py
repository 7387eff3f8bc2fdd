"""REDCap: the standard CSV export ("raw" codes) plus its data dictionary → contract tables.

What the mapping's ``[redcap]`` section says::

    records = "export.csv"            # the records export (one row per record × event)
    dictionary = "dictionary.csv"     # the project's data dictionary (CSV download)
    cohort = "my_cohort"              # cohort label when no field holds one
    ae_instrument = "adverse_events"  # repeating instrument whose instances are AEs

    [redcap.events]                   # redcap_event_name → visit week ("" = not a visit)
    "baseline_arm_1" = 0
    "week_4_arm_1" = 4

and ``[[columns]]`` entries with ``table = "patients"|"visits"|"adverse_events"``
and ``column`` = a REDCap field name (checkbox choices as ``field___code``).

Decoding (REDCap's export conventions): radio/dropdown codes become their labels
from the dictionary's "Choices, Calculations, OR Slider Labels" (``1, Female | 2,
Male``), then the mapping's value map (or the importer's own spellings) turns a
label into the contract's value; checkbox columns ``field___1`` hold 1/0 per choice;
yesno/truefalse fields hold 1/0. Patient fields are taken from whichever event
holds them (two different values in two events are an error naming both rows);
visit fields from each event row with a week; adverse events from the instances
of the repeating AE instrument. Rows are numbered as in the export file.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from . import mapping, schema

ID_FIELDS = ("record_id", "redcap_event_name", "redcap_repeat_instrument",
             "redcap_repeat_instance", "redcap_data_access_group")
DICT_FIELD = "variable_/_field_name"


def detect(found) -> tuple[str, str] | None:
    """(records file, dictionary file) among (name, raw) tables, if they look like REDCap."""
    records = dictionary = None
    for name, raw in found:
        cols = set(raw.frame.columns)
        if "redcap_event_name" in cols or "redcap_repeat_instrument" in cols:
            records = name
        elif DICT_FIELD in cols or "variable___field_name" in cols:
            dictionary = name
    return (records, dictionary) if records and dictionary else None


def parse_choices(text: str) -> dict[str, str]:
    """'1, Female | 2, Male' → {'1': 'Female', '2': 'Male'}."""
    out = {}
    for part in str(text or "").split("|"):
        if "," in part:
            code, label = part.split(",", 1)
            out[code.strip()] = label.strip()
    return out


def read_dictionary(raw) -> dict[str, dict]:
    """field name → {form, type, label, choices} from a data-dictionary table."""
    f = raw.frame
    col = {k: next((c for c in f.columns if c.startswith(k)), None) for k in
           ("variable", "form_name", "field_type", "field_label", "choices")}
    out = {}
    for i in range(len(f)):
        name = str(f[col["variable"]].iloc[i]).strip()
        if not name:
            continue
        out[name] = {
            "form": str(f[col["form_name"]].iloc[i]).strip() if col["form_name"] else "",
            "type": str(f[col["field_type"]].iloc[i]).strip() if col["field_type"] else "",
            "label": str(f[col["field_label"]].iloc[i]).strip() if col["field_label"] else name,
            "choices": parse_choices(f[col["choices"]].iloc[i]) if col["choices"] else {},
        }
    return out


_EVENT_WEEK = re.compile(r"(?:^|_)(week|wk|woche|semaine|w)[_\s]*(\d+)(?:_|$)")
_EVENT_MONTH = re.compile(r"(?:^|_)(month|mo|monat|mois|m)[_\s]*(\d+)(?:_|$)")


def event_week(name: str) -> int | None:
    """A week guessed from an event's unique name: 'week_12_arm_1' → 12, 'baseline_arm_1' → 0.

    Months count as 4 weeks, the convention of the seed studies' schedules (month 3 =
    week 12); 'screening' is not a visit.
    """
    s = re.sub(r"_arm_\d+$", "", name.lower())
    if "baseline" in s or re.search(r"\b(v0|visit_0|day_0|week_0|bl)\b", s):
        return 0
    m = _EVENT_WEEK.search(s)
    if m:
        return int(m.group(2))
    m = _EVENT_MONTH.search(s)
    if m:
        return 4 * int(m.group(2))
    return None


def _read(path: Path, name: str, sink):
    from . import ingest

    base = path if path.is_dir() else path.parent
    return ingest._read_named(base, name, sink)


def suggest(path: Path, found, rc: tuple[str, str]) -> mapping.Mapping:
    """A first [redcap] mapping: events → weeks, fields → contract columns, AE instrument."""
    rec = dict(found)[rc[0]]
    dic = read_dictionary(dict(found)[rc[1]])
    m = mapping.Mapping()
    # REDCap names exports PROJECT_DATA_<date>.csv: the project's name labels the cohort.
    project = re.sub(r"_DATA(_\d{4}-\d{2}-\d{2}.*)?$", "", Path(rc[0]).stem, flags=re.IGNORECASE)
    m.redcap = {"records": rc[0], "dictionary": rc[1], "cohort": project or "redcap"}
    f = rec.frame
    events = sorted(set(f.get("redcap_event_name", pd.Series([], dtype=str))) - {""})
    m.redcap["events"] = {e: (w if (w := event_week(e)) is not None else "") for e in events}
    rep = set(f.get("redcap_repeat_instrument", pd.Series([], dtype=str))) - {""}
    ae = next((r for r in rep if "adverse" in r or r.startswith("ae")), None)
    if ae:
        m.redcap["ae_instrument"] = ae
    headers = [rec.header_cols.get(c, c) for c in f.columns]
    taken: set[tuple[str, str]] = set()
    for h in headers:
        if h in ID_FIELDS[1:] or h.endswith("_complete"):
            continue
        base, _, code = h.partition("___")
        info = dic.get(base, {"form": "", "type": "", "label": base, "choices": {}})
        samples = [v for v in f[mapping._norm(h).replace(" ", "_")].head(200)] \
            if mapping._norm(h).replace(" ", "_") in f.columns else []
        if h == "record_id" or base == next(iter(dic), None):
            m.columns.append(mapping.ColumnMap("patients", h, "patient_id", confidence=1.0,
                                               note="REDCap record id"))
            m.columns.append(mapping.ColumnMap("visits", h, "patient_id", confidence=1.0))
            m.columns.append(mapping.ColumnMap("adverse_events", h, "patient_id",
                                               confidence=1.0))
            continue
        label = info["choices"].get(code, "") if code else info["label"]
        tables = ["adverse_events"] if ae and info["form"] == ae else ["patients", "visits"]
        best = None
        for t in tables:
            for text in ([label, h] if code else [h, label]):
                g = mapping.match_header(t, text, samples)
                if g is not None and (best is None or g.confidence > best[1].confidence):
                    best = (t, g)
        if best is None or (best[0], best[1].to) in taken:
            m.columns.append(mapping.ColumnMap(tables[0], h, "", note=f"REDCap field "
                                               f"'{info['label']}'; no contract column matched",
                                               samples=list(dict.fromkeys(samples))[:5]))
            continue
        t, g = best
        taken.add((t, g.to))
        cm = mapping.ColumnMap(t, h, g.to, g.unit, confidence=round(g.confidence, 2),
                               note=f"REDCap field '{info['label']}'"
                               + (f", choice '{label}'" if code else ""),
                               samples=list(dict.fromkeys(samples))[:5])
        decoded = list(info["choices"].values()) if info["choices"] and not code else samples
        vm, unresolved = mapping.value_map(g.to, decoded)
        cm.values = vm
        if unresolved:
            cm.note += "; values to map by hand: " + ", ".join(unresolved[:8])
            cm.confidence = min(cm.confidence or 1, 0.6)
        m.columns.append(cm)
    return m


def read_raws(path: Path, m: mapping.Mapping, sink) -> dict:
    """The three contract tables from a REDCap export, as the importer's raw tables."""
    from . import ingest

    rc = m.redcap
    for key in ("records", "dictionary"):
        if key not in rc:
            sink.error(m.path, None, None, key, f"[redcap] needs '{key}' (a file name)")
    if sink.problems:
        return {}
    rec = _read(path, rc["records"], sink)
    dic_raw = _read(path, rc["dictionary"], sink)
    if rec is None or dic_raw is None:
        return {}
    dic = read_dictionary(dic_raw)
    f = rec.frame
    label = rec.label
    if "record_id" not in f.columns and len(f.columns):
        f = f.rename(columns={f.columns[0]: "record_id"})
    n = len(f)
    blank = pd.Series([""] * n, index=f.index)
    event = f.get("redcap_event_name", blank).astype(str)
    instr = f.get("redcap_repeat_instrument", blank).astype(str)
    events = {str(k): v for k, v in rc.get("events", {}).items()}
    ae_instr = rc.get("ae_instrument")
    # Decode coded choices (radio, dropdown) to their labels.
    dec = f.copy()
    for c in f.columns:
        info = dic.get(c)
        if info and info["type"] in ("radio", "dropdown") and info["choices"]:
            codes = info["choices"]
            bad = (f[c] != "") & ~f[c].isin(list(codes))
            for i in np.flatnonzero(bad.to_numpy()):
                sink.error(label, rec.rows[i], c, f[c].iloc[i],
                           "not one of the field's coded choices in the data dictionary ("
                           + " | ".join(f"{k}, {v}" for k, v in codes.items()) + ")")
            dec[c] = f[c].map(lambda v, codes=codes: codes.get(v, v))
    by_table = {t: [cm for cm in m.for_table(t) if cm.to] for t in schema.INPUT_TABLES}
    is_ae = (instr == ae_instr) if ae_instr else pd.Series(False, index=f.index)
    unknown_events = sorted(set(event[(instr == "") & ~event.isin(list(events))]) - {""})
    for e in unknown_events:
        i = int(np.flatnonzero((event == e).to_numpy())[0])
        sink.error(label, rec.rows[i], "redcap_event_name", e,
                   "event not in the mapping's [redcap.events]; give its week (or \"\" if "
                   "it is not a visit)")
    week = event.map(lambda e: events.get(e, ""))
    raws = {}
    # Patients: one row per record, each field from the event that holds it.
    pcols = [ingest.normalise_name(cm.column) for cm in by_table["patients"]
             if ingest.normalise_name(cm.column) in dec.columns]
    base = ~is_ae & (instr == "")
    ids = list(dict.fromkeys(dec["record_id"][base]))
    prow, pdata = [], {c: [] for c in ["record_id", *pcols]}
    for rid in ids:
        rows = np.flatnonzero((base & (dec["record_id"] == rid)).to_numpy())
        prow.append(rec.rows[rows[0]])
        pdata["record_id"].append(rid)
        for c in pcols:
            if c == "record_id":
                continue
            vals = [(dec[c].iloc[i], i) for i in rows if dec[c].iloc[i] != ""]
            if "___" in c and len(vals) > 1:
                # REDCap exports an unticked checkbox as 0 in every event, also in events
                # whose form holds nothing: ticked in any event = ticked.
                ticked = [x for x in vals if x[0] == "1"]
                vals = ticked[:1] or vals[:1]
            if len({v for v, _ in vals}) > 1:
                (v1, i1), (v2, i2) = vals[0], next(x for x in vals if x[0] != vals[0][0])
                sink.error(label, rec.rows[i2], c, v2,
                           f"patient field differs between events: {v1!r} at row "
                           f"{rec.rows[i1]} ({event.iloc[i1]}) and {v2!r} here "
                           f"({event.iloc[i2]})")
            pdata[c].append(vals[0][0] if vals else "")
    pframe = pd.DataFrame(pdata, dtype=object)
    if "cohort" not in [cm.to for cm in by_table["patients"]]:
        pframe["cohort"] = str(rc.get("cohort", "redcap"))
    raws["patients"] = ingest._Raw(label, pframe, np.asarray(prow, dtype=np.int64), False,
                                   {c: rec.header_cols.get(c, c) for c in pframe.columns})
    # Visits: event rows with a week.
    vcols = [ingest.normalise_name(cm.column) for cm in by_table["visits"]
             if ingest.normalise_name(cm.column) in dec.columns]
    vmask = base & (week != "")
    vsel = dec.loc[vmask, list(dict.fromkeys(["record_id", *vcols]))].copy()
    vsel["visit_week"] = week[vmask].astype(str)
    raws["visits"] = ingest._Raw(label, vsel.reset_index(drop=True),
                                 rec.rows[vmask.to_numpy()], False,
                                 {c: rec.header_cols.get(c, c) for c in vsel.columns})
    # Adverse events: instances of the repeating AE instrument.
    acols = [ingest.normalise_name(cm.column) for cm in by_table["adverse_events"]
             if ingest.normalise_name(cm.column) in dec.columns]
    if ae_instr:
        asel = dec.loc[is_ae, list(dict.fromkeys(["record_id", *acols]))].copy()
        if "onset_week" not in [cm.to for cm in by_table["adverse_events"]]:
            sink.warn(label, None, None, None, "no AE field maps to onset_week: adverse events "
                      "are imported without an onset week")
        raws["adverse_events"] = ingest._Raw(label, asel.reset_index(drop=True),
                                             rec.rows[is_ae.to_numpy()], False,
                                             {c: c for c in asel.columns})
    return raws
