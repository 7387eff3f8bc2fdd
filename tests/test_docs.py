"""The data dictionary is generated from schema.py, and the committed copy is current."""

from pathlib import Path

from lupus_dash import docs, schema

ROOT = Path(__file__).resolve().parents[1]


def test_dictionary_covers_every_column_once():
    df = docs.dictionary_frame()
    for table in ("patients", "visits", "adverse_events"):
        names = [c.name for c in schema.columns(table)]
        assert df[df["table"] == table]["column"].tolist() == names
    derived = [c.name for c in schema.PATIENT_DERIVED]
    assert df[df["table"] == "patient_facts"]["column"].tolist() == derived
    assert "lldas_seed_paper" in set(df[df["table"] == "visit_facts"]["column"])


def test_committed_dictionary_is_current():
    # Regenerate with: python -m lupus_dash dictionary > docs/DATA_DICTIONARY.md
    committed = (ROOT / "docs" / "DATA_DICTIONARY.md").read_text(encoding="utf-8")
    assert committed == docs.dictionary_markdown() + "\n"


def test_committed_analysis_reference_is_current():
    # Regenerate with: python -m lupus_dash dictionary --analyses > docs/ANALYSIS_API.md
    committed = (ROOT / "docs" / "ANALYSIS_API.md").read_text(encoding="utf-8")
    assert committed == docs.analyses_markdown() + "\n"


COPIES = {
    "docs/DATA_CONTRACT.md": "DATA_CONTRACT.md",
    "docs/STATISTICS.md": "STATISTICS.md",
    "docs/CLINICAL_DEFINITIONS.md": "CLINICAL_DEFINITIONS.md",
    "tests/fixtures/published_targets.json": "reference/published_targets.json",
}


def test_copies_of_shared_specs_are_current():
    # The repository keeps copies so a clone is self-contained; CI has shared/ beside it.
    shared = ROOT.parent / "shared"
    if not shared.is_dir():
        import pytest

        pytest.skip("no shared/ beside this clone")
    stale = [ours for ours, theirs in COPIES.items()
             if (ROOT / ours).read_bytes() != (shared / theirs).read_bytes()]
    assert stale == []
