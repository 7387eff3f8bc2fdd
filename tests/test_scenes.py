"""Scenes and decks: file round trips, located errors, URL state, navigation, the content
data version and scenes pinned to a version that changed."""

import shutil
from contextlib import closing
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import duckdb
import pytest

from lupus_dash import scenes, store
from lupus_dash.db import Database
from lupus_dash.filters import MISSING, Filter
from lupus_dash.scenes import Deck, DeckError, Scene

COMPLETERS = Filter.build("csle_belimumab", completer=[True])


def _deck() -> Deck:
    """Every kind of value a deck holds: lists, booleans, numbers, (missing), notes."""
    return Deck(
        title="Grand rounds — belimumab in cSLE",
        description='Pre-specified first; "exploratory" after.',
        scenes=[
            Scene("Primary: LLDAS at week 52", "remission", COMPLETERS,
                  {"rem_preset": "standard", "rem_defs": ["lldas", "remission"],
                   "rem_missing": "non-responder"}, data_version="abc123def4567890",
                  prespecified=True, notes='Line one.\nSays "52 weeks" — ±, µ, ≤.',
                  view="remission_rates"),
            Scene("C3 in proliferative LN", "biomarkers",
                  Filter.build("csle_belimumab", class_group=["proliferative"],
                               biopsy_class=["IV", MISSING], age_min=10, age_max=15.5),
                  {"bio_endpoint": "c3_g_l", "bio_ind": True, "bio_adjust": "holm"}),
            Scene("By sex", "subgroups", Filter("csle_belimumab"),
                  {"sub_group": "sex", "sub_week": 52}, view="forest"),
            Scene("Safety", "safety", Filter.build("ln_belimumab", organ_kidney=[False])),
        ],
    )


@pytest.mark.parametrize("ext", ["toml", "json"])
def test_deck_round_trips(tmp_path, ext):
    deck = _deck()
    path = scenes.save(deck, tmp_path / f"deck.{ext}")
    back = scenes.load(path)
    assert back == deck
    assert back.source == str(path)
    # Widget values are URL text: a toggle as "1", a number as its digits.
    assert back.scenes[1].widgets["bio_ind"] == ["1"]
    assert back.scenes[2].widgets["sub_week"] == ["52"]
    assert back.scenes[1].filter.get("biopsy_class") == ("IV", MISSING)
    assert back.scenes[1].filter.age_max == 15.5
    # Saving what was loaded gives the same text (stable files diff well).
    assert scenes.dumps(back, ext) == path.read_text(encoding="utf-8")


def test_default_deck_round_trips_and_names_the_key_views(tmp_path):
    deck = scenes.default_deck(COMPLETERS, "paediatric", data_version="v1")
    assert [s.slide_view for s in deck.scenes] == [
        "patient_flow", "table1", "figure1", "remission_rates", "disease_states",
        "time_to_target"]
    assert {s.widget("rem_preset") for s in deck.scenes if s.page == "remission"} == {
        "paediatric"}
    assert scenes.load(scenes.save(deck, tmp_path / "d.toml")) == deck


TOML_OK = scenes.dumps(_deck(), "toml")
JSON_OK = scenes.dumps(_deck(), "json")


def _line_of(text: str, needle: str, nth: int = 1) -> int:
    lines = text.splitlines()
    hits = [i + 1 for i, ln in enumerate(lines) if ln.strip().startswith(needle)]
    return hits[nth - 1]


# (name, format, text, expected line (or None), expected words in the message)
BAD = [
    ("toml syntax", "toml", TOML_OK.replace('page = "biomarkers"', 'page = biomarkers'),
     _line_of(TOML_OK, 'page = "biomarkers"'), ["not valid TOML"]),
    ("unknown page", "toml", TOML_OK.replace('page = "biomarkers"', 'page = "biomarker"'),
     _line_of(TOML_OK, 'page = "biomarkers"'), ["scene 2", "C3 in proliferative LN", "page",
                                                "unknown page 'biomarker'"]),
    ("unknown widget", "toml", TOML_OK.replace("sub_group =", "sub_grup ="),
     _line_of(TOML_OK, "sub_group ="), ["scene 3", "widgets.sub_grup", "sub_group"]),
    ("bad filter column", "toml", TOML_OK.replace("organ_kidney =", "organ_kidny ="),
     _line_of(TOML_OK, "organ_kidney ="), ["scene 4", "filter.organ_kidny"]),
    ("bad filter value", "toml", TOML_OK.replace("organ_kidney = [false]",
                                                 'organ_kidney = ["perhaps"]'),
     _line_of(TOML_OK, "organ_kidney ="), ["scene 4", "expected true or false"]),
    ("prespecified not a bool", "toml", TOML_OK.replace("prespecified = true",
                                                        'prespecified = "yes"'),
     _line_of(TOML_OK, "prespecified = true"), ["scene 1", "prespecified"]),
    ("duplicate name", "toml", TOML_OK.replace('name = "By sex"', 'name = "Safety"'),
     _line_of(TOML_OK, 'name = "Safety"'), ["scene 4", "already used by scene 3"]),
    ("view of another page", "toml", TOML_OK.replace('view = "forest"', 'view = "table1"'),
     _line_of(TOML_OK, 'view = "forest"'), ["scene 3", "unknown view 'table1'"]),
    ("no scenes", "toml", 'title = "x"\n', None, ["at least one scene"]),
    ("unknown deck key", "toml", "titel = 'x'\n" + TOML_OK.split("\n", 4)[-1], 1,
     ["unknown key 'titel'"]),
    ("json syntax", "json", JSON_OK.replace('"page": "safety",', '"page": "safety"'),
     _line_of(JSON_OK, '"page": "safety"') + 1, ["not valid JSON"]),
    ("json unknown page", "json", JSON_OK.replace('"page": "safety"', '"page": "safty"'),
     _line_of(JSON_OK, '"page": "safety"'), ["scene 4", "'Safety'", "unknown page 'safty'"]),
    ("json missing filter", "json", JSON_OK.replace('"cohort": "ln_belimumab"',
                                                    '"cohrt": "ln_belimumab"'),
     _line_of(JSON_OK, '"filter": {', 4), ["scene 4", "filter", "cohort"]),
]


@pytest.mark.parametrize("name,fmt,text,line,words", BAD, ids=[b[0] for b in BAD])
def test_bad_deck_gives_located_error(tmp_path, name, fmt, text, line, words):
    path = tmp_path / f"bad.{fmt}"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DeckError) as exc:
        scenes.load(path)
    msg = str(exc.value)
    assert msg.startswith(str(path))
    assert exc.value.line == line, msg
    if line:
        assert f"line {line}" in msg
    for w in words:
        assert w in msg, msg


def test_missing_and_unknown_format_files(tmp_path):
    with pytest.raises(DeckError, match="no such deck file"):
        scenes.load(tmp_path / "nope.toml")
    (tmp_path / "deck.yaml").write_text("x", encoding="utf-8")
    with pytest.raises(DeckError, match=r"\.toml or \.json"):
        scenes.load(tmp_path / "deck.yaml")


def test_capture_url_and_matching():
    params = {"cohort": ["csle_belimumab"], "completer": ["true"], "present": ["1"],
              "rem_preset": ["seed_paper"], "rem_defs": ["lldas", "remission"],
              "bio_endpoint": ["c3_g_l"],  # another page's key: not this scene's state
              "deck": ["grand_rounds"], "scene": ["2"]}
    s = scenes.capture("Seed-paper rates", "remission", params, "csle_belimumab",
                       data_version="v1", view="remission_rates")
    assert s.filter == COMPLETERS
    assert s.widgets == {"rem_preset": ["seed_paper"], "rem_defs": ["lldas", "remission"]}
    assert s.status == "exploratory"
    # The link opens the same view: filter and widgets back from the query string.
    url = s.url(deck="grand_rounds", index=1)
    parts = urlsplit(url)
    assert parts.path == "/remission"
    q = parse_qs(parts.query)
    assert Filter.from_query_params(q, "x") == COMPLETERS
    assert q["rem_defs"] == ["lldas", "remission"]
    assert q["present"] == ["1"] and q["deck"] == ["grand_rounds"] and q["scene"] == ["2"]
    assert s.matches("remission", COMPLETERS, q)
    assert not s.matches("remission", COMPLETERS, {**q, "rem_preset": ["standard"]})
    assert not s.matches("overview", COMPLETERS, q)
    assert not s.matches("remission", Filter("csle_belimumab"), q)
    # Values picked in another order are the same filter.
    a = Filter.build("csle_belimumab", biopsy_class=["IV", "III"])
    b = Filter.build("csle_belimumab", biopsy_class=["III", "IV"])
    assert a != b and scenes.same_filter(a, b)


def test_prespecified_match_and_navigation():
    deck = _deck()
    first = deck.scenes[0]
    assert deck.prespecified_match("remission", COMPLETERS, first.query_params()) is first
    assert deck.prespecified_match("remission", COMPLETERS,
                                   {**first.query_params(), "rem_preset": ["seed_paper"]}) \
        is None
    assert deck.index_of(None) == 0
    assert deck.index_of("3") == 2
    assert deck.index_of("Safety") == 3
    with pytest.raises(DeckError, match="the deck has 4"):
        deck.index_of("9")
    with pytest.raises(DeckError, match="no scene named"):
        deck.index_of("Nope")
    pos = scenes.step(deck, 0, -1)
    assert (pos.index, pos.has_previous, pos.has_next, pos.label) == (0, False, True, "1 / 4")
    pos = scenes.step(deck, pos.index, +1)
    assert (pos.index, pos.has_previous) == (1, True)
    pos = scenes.step(deck, 3, +1)
    assert (pos.index, pos.has_next, pos.label) == (3, False, "4 / 4")


def test_resolve_deck_reference(tmp_path):
    decks = tmp_path / "decks"
    decks.mkdir()
    scenes.save(_deck(), decks / "grand_rounds.toml")
    scenes.save(_deck(), decks / "clinic.json")
    assert scenes.resolve("grand_rounds", decks) == decks / "grand_rounds.toml"
    assert scenes.resolve("clinic", decks) == decks / "clinic.json"
    assert scenes.resolve("clinic.json", decks) == decks / "clinic.json"
    for ref in ("../secrets", "/etc/passwd", "sub/deck.toml"):
        with pytest.raises(DeckError, match="paths are not allowed"):
            scenes.resolve(ref, decks)
    with pytest.raises(DeckError, match="decks: grand_rounds, clinic"):
        scenes.resolve("other", decks)
    assert scenes.resolve(str(decks / "clinic.json"), tmp_path, allow_paths=True) == \
        decks / "clinic.json"


# --- data version -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_file(tmp_path_factory) -> Path:
    from lupus_dash import synth

    path = tmp_path_factory.mktemp("ver") / "demo.duckdb"
    synth.build_demo(path)
    return path


def _copy(src: Path, dst: Path, sql: str | None = None, params=None, stamp=False) -> Path:
    shutil.copy(src, dst)
    con = duckdb.connect(str(dst))
    try:
        if sql:
            con.execute(sql, params or [])
        if stamp:  # what an import does: the content version into meta
            con.execute("DELETE FROM meta WHERE key = ?", [scenes.DATA_VERSION_KEY])
            con.execute("INSERT INTO meta VALUES (?, ?)",
                        [scenes.DATA_VERSION_KEY, store._content_version(con)])
    finally:
        con.close()
    return dst


def test_data_version_is_content_not_path_or_time(demo_file, tmp_path):
    with closing(Database(demo_file)) as db:
        v = scenes.data_version(db)
        assert v == db.meta()[scenes.DATA_VERSION_KEY]  # written at import
    same = _copy(demo_file, tmp_path / "copy.duckdb")
    with closing(Database(same)) as db2:
        assert db2.version != _open_version(demo_file)   # path and mtime differ
        assert scenes.data_version(db2) == v             # the content does not
    changed = _copy(demo_file, tmp_path / "changed.duckdb",
                    "UPDATE visits SET c3_g_l = c3_g_l + 0.01 WHERE patient_id = ? "
                    "AND visit_week = 52", ["CSLE-001"], stamp=True)
    with closing(Database(changed)) as db3:
        v3 = scenes.data_version(db3)
        assert v3 != v
    # (Database opens files with the hardened read configuration; a plain connection to the
    # same file must wait until that one is closed.)
    with closing(duckdb.connect(str(changed), read_only=True)) as con:
        assert scenes.stored_data_version(con) == v3


def _open_version(path):
    with closing(Database(path)) as db:
        return db.version


@pytest.mark.slow
def test_rebuilt_demo_has_the_same_version(demo_file, tmp_path):
    from lupus_dash import synth

    again = tmp_path / "again.duckdb"
    synth.build_demo(again)
    with closing(Database(demo_file)) as a, closing(Database(again)) as b:
        assert scenes.data_version(a) == scenes.data_version(b)


def test_scene_pinned_to_a_version_that_changed(demo_file, tmp_path):
    versions = tmp_path / "versions"
    versions.mkdir()
    old = _copy(demo_file, versions / "demo-2026-11.duckdb", stamp=True)
    current = _copy(demo_file, tmp_path / "demo.duckdb",
                    "DELETE FROM visits WHERE patient_id = ?", ["CSLE-002"], stamp=True)
    with closing(Database(old)) as db_old, closing(Database(current)) as db_now:
        v_old, v_now = scenes.data_version(db_old), scenes.data_version(db_now)
    assert v_old != v_now
    scene = Scene("Flow", "overview", COMPLETERS, data_version=v_old)

    same = scenes.check_pin(Scene("Flow", "overview", COMPLETERS, data_version=v_now), v_now)
    assert (same.state, same.message, same.changed) == ("current", "", False)
    assert scenes.check_pin(Scene("Flow", "overview", COMPLETERS), v_now).state == "unpinned"

    gone = scenes.check_pin(scene, v_now, candidates=[])
    assert gone.changed and gone.old_path is None
    assert "The data changed since this scene was saved" in gone.message
    assert f"version {v_old[:8]}" in gone.message and f"version {v_now[:8]}" in gone.message
    assert "no longer available" in gone.message

    cands = scenes.version_candidates(current)
    assert old in cands and current not in cands
    kept = scenes.check_pin(scene, v_now, cands)
    assert kept.changed and kept.old_path == old
    assert f"Showing the numbers of version {v_old[:8]}, from demo-2026-11.duckdb" in \
        kept.message
    assert scenes.find_version("0" * 16, cands) is None


def test_shipped_decks_load_and_fit_the_demo(demo_file):
    shipped = sorted((Path(__file__).resolve().parents[1] / "decks").glob("*.toml"))
    assert shipped, "decks/ holds at least the demo deck"
    with closing(Database(demo_file)) as db:
        for p in shipped:
            deck = scenes.load(p)
            assert scenes.validate_against(deck, db) == [], p.name
            assert any(s.prespecified for s in deck.scenes)
            assert all(s.slide_view for s in deck.scenes)


def test_validate_against_names_the_scene_whose_filter_does_not_fit(demo_file, tmp_path):
    deck = _deck()
    deck.scenes[2].filter = Filter.build("csle_belimumab", biopsy_class=["VII"])
    path = scenes.save(deck, tmp_path / "d.toml")
    with closing(Database(demo_file)) as db:
        problems = scenes.validate_against(scenes.load(path), db)
    assert len(problems) == 1
    p = problems[0]
    assert (p.scene, p.name, p.field) == (3, "By sex", "filter")
    assert p.line == _line_of(path.read_text(), "[scenes.filter]", 3)
    assert "no patient in csle_belimumab has 'VII'" in str(p)


def test_page_widgets_list_every_url_widget_of_the_pages():
    # A deck names widget keys; the list must follow the pages (a new widget, a renamed key).
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    for page, keys in scenes.PAGE_WIDGETS.items():
        tree = ast.parse((root / "pages" / f"{page}.py").read_text(encoding="utf-8"))
        found = set()
        for node in ast.walk(tree):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ("url_widget", "url_tabs")):
                key = node.args[3] if node.func.attr == "url_widget" else node.args[1]
                if isinstance(key, ast.Constant):
                    found.add(key.value)
        assert found == set(keys), page
