"""Presenting in the app (issue 15) under AppTest: save views into a deck, open a deck from
a link and step through it, a scene pinned to an older data version, the comparison log."""

import shutil

import pytest
from streamlit.testing.v1 import AppTest
from test_pages import APP, TIMEOUT, _demo_env, assert_clean, db, demo_path, metric, run  # noqa: F401

from lupus_dash import scenes, store
from lupus_dash.db import Database
from lupus_dash.filters import Filter


def _sidebar_caption(at: AppTest, start: str) -> str:
    hits = [c.value for c in at.sidebar.caption if c.value.startswith(start)]
    assert hits, [c.value for c in at.sidebar.caption]
    return hits[0]


def test_save_two_views_then_present_and_step_through_them():
    at = run("overview", cohort="csle_belimumab", completer="true")
    at.text_input(key="scene_name").input("Completers overview").run()
    at.checkbox(key="scene_pre").check().run()
    at.button(key="scene_save").click().run()
    assert_clean(at)
    at.switch_page("pages/biomarkers.py").run()
    at.selectbox(key="bio_endpoint").set_value("c4_g_l").run()
    at.text_input(key="scene_name").input("C4").run()
    at.button(key="scene_save").click().run()
    assert_clean(at)
    deck = at.session_state["_deck"]
    assert [s.name for s in deck.scenes] == ["Completers overview", "C4"]
    assert deck.scenes[0].prespecified and not deck.scenes[1].prespecified
    assert deck.scenes[0].filter == Filter.build("csle_belimumab", completer=[True])
    assert deck.scenes[1].widgets["bio_endpoint"] == ["c4_g_l"]
    assert deck.scenes[0].data_version  # pinned to the data it was saved on
    # The deck file is plain TOML that loads back to the same deck.
    assert scenes.loads(scenes.dumps(deck), "toml") == deck

    at.button(key="deck_present").click().run()
    assert_clean(at)
    assert at.session_state["present"] is True
    assert at.title[0].value == "Overview"
    assert any("PRE-SPECIFIED" in m.value and "Scene 1 of 2" in m.value for m in at.markdown)
    at.button(key="scene_next").click().run()
    assert_clean(at)
    assert at.title[0].value == "Biomarkers"
    assert at.selectbox(key="bio_endpoint").value == "c4_g_l"
    assert any("EXPLORATORY" in m.value and "Scene 2 of 2" in m.value for m in at.markdown)
    at.button(key="scene_prev").click().run()
    assert at.title[0].value == "Overview"
    assert at.checkbox(key="f_completer").value is True


def test_a_deck_opens_from_a_link_on_its_first_scene():
    at = run("overview", deck="demo")
    assert_clean(at)
    deck = scenes.load(scenes.resolve("demo", scenes_dir()))
    first = deck.scenes[0]
    assert at.session_state["_scene_index"] == 0
    assert at.session_state["present"] is True
    assert any(f"Scene 1 of {len(deck.scenes)}: {first.name}" in m.value for m in at.markdown)
    at.button(key="scene_next").click().run()
    assert_clean(at)
    second = deck.scenes[1]
    assert at.title[0].value.lower() == second.page
    assert at.multiselect(key="rem_defs").value == second.widgets["rem_defs"]


def scenes_dir():
    from lupus_dash import ui

    return ui.DECKS_DIR


def test_a_scene_pinned_to_an_older_version_shows_that_version(tmp_path, monkeypatch,
                                                               demo_path):  # noqa: F811
    path = shutil.copy(demo_path, tmp_path / "current.duckdb")
    # An older version of the data: the same cohort before one patient was added.
    cur = Database(path)
    tables = {t: cur.query(f'SELECT * FROM "{t}"') for t in ("patients", "visits",
                                                              "adverse_events")}
    schedules = {r.cohort: list(r.scheduled_weeks) for r in cur.cohorts().itertuples()}
    cur.close()
    drop = "CSLE-026"
    old_tables = {t: df[df["patient_id"] != drop] for t, df in tables.items()}
    (tmp_path / "versions").mkdir()
    old = tmp_path / "versions" / "before.duckdb"
    store.write_database(old, old_tables, schedules=schedules)
    old_version = Database(old).data_version()
    assert old_version != Database(path).data_version()
    deck = scenes.Deck("Pinned", [scenes.Scene("Flow then", "overview",
                                               Filter("csle_belimumab"),
                                               data_version=old_version)])
    deck_file = tmp_path / "pinned.toml"
    scenes.save(deck, deck_file)
    monkeypatch.setenv("LUPUS_DASH_DB", str(path))
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params["deck"] = str(deck_file)  # a path: allowed in local (open) mode
    at.run()
    assert_clean(at)
    assert any("data changed since this scene was saved" in w.value for w in at.warning)
    assert metric(at, "Patients") == "25"  # the numbers of the pinned version
    # A scene without a pin on the current file would show 26: the current data.
    assert Database(path).scalar("SELECT count(*) FROM patient_facts "
                                 "WHERE cohort = 'csle_belimumab'") == 26


def test_the_comparison_log_counts_every_test_displayed():
    at = run("biomarkers", cohort="csle_belimumab")
    assert_clean(at)
    log = at.session_state["_comparisons"]
    first = log.summary()["m"]
    assert first == 4  # C3's pre-specified paired t-test at weeks 4, 12, 24, 52
    at.run()  # showing the same tests again adds no comparison
    assert at.session_state["_comparisons"].summary()["m"] == first
    at.switch_page("pages/subgroups.py").run()
    at.selectbox(key="sub_group").set_value("sex").run()  # two groups with p-values
    assert_clean(at)
    s = at.session_state["_comparisons"].summary()
    assert s["m"] > first
    assert s["expected_by_chance"] == pytest.approx(s["m"] * 0.05)
    text = _sidebar_caption(at, f"{s['m']} comparisons looked at")
    assert "Holm" in text and "Benjamini" in text
    t = at.session_state["_comparisons"].table()
    assert (t["p_holm"].dropna() >= t.loc[t["p_holm"].notna(), "p_value"] - 1e-12).all()


def test_drill_down_from_a_rate_to_its_patients_and_a_timeline(db):  # noqa: F811
    from lupus_dash.analyses import remission

    at = run("remission", cohort="csle_belimumab", rem_preset="seed_paper", rem_week="52")
    assert_clean(at)
    rates = remission.rates(db, Filter("csle_belimumab"), preset="seed_paper")
    r = rates[(rates["visit_week"] == 52) & (rates["definition"] == "lldas")].iloc[0]
    assert (r["n_achieved"], r["n_denominator"]) == (14, 26)  # the seed paper's 14/26
    listed = next(d.value for d in at.dataframe if "Timeline" in d.value.columns
                  or "open" in d.value.columns)
    assert len(listed) == 14 and set(listed["Outcome"]) == {"achieved"}
    pid = listed["Patient"].iloc[0]
    assert listed["open"].iloc[0] == (f"patient?cohort=csle_belimumab&patient={pid}"
                                      "&pt_preset=seed_paper")
    # Following the link opens that patient's timeline.
    pat = run("patient", cohort="csle_belimumab", patient=pid, pt_preset="seed_paper")
    assert_clean(pat)
    assert pat.selectbox(key="patient").value == pid
    at.selectbox(key="rem_who_outcome").set_value("no assessment").run()
    listed = next(d.value for d in at.dataframe if "open" in d.value.columns)
    assert len(listed) == r["n_no_assessment"] == 3


def _scales(at: AppTest) -> tuple[list, list]:
    import json

    spec = json.loads(at.get("vega_lite_chart")[0].proto.spec)
    y = color = None
    for layer in spec.get("layer", []):
        enc = layer.get("encoding", {})
        y = y or enc.get("y", {}).get("scale", {}).get("domain")
        color = color or enc.get("color", {}).get("scale", {}).get("domain")
    return y, color


def test_axes_and_colours_stay_put_while_the_filter_changes():
    at = run("subgroups", cohort="csle_belimumab", sub_group="class_group",
             sub_endpoint="c3_g_l")
    assert_clean(at)
    y0, c0 = _scales(at)
    assert y0 is not None and len(c0) >= 2
    at.multiselect(key="f_immunosuppressant").set_value(["MMF"]).run()  # 13 patients
    assert_clean(at)
    y1, c1 = _scales(at)
    assert c1 == c0  # every group keeps its colour and legend place
    # The whole cohort's axis is kept (widened only where this subgroup's data leave it).
    assert y1[0] <= y0[0] or y1[1] >= y0[1]
    assert min(y0[0], y1[0]) <= y1[0] <= max(y0[0], y1[0])
    at.toggle(key="sub_fixed").set_value(False).run()  # freed: the axis follows the data
    y2, _ = _scales(at)
    assert y2 != y1
