"""The dashboard under streamlit.testing.AppTest: every page on both demo cohorts,
numbers on screen equal to the seam's (`results.run`, `layouts`, `report`) for the same
filter, the calls each page makes equal to `views.PAGES` (what the benchmark times),
filter state through the URL, and plain messages for empty filters and bad databases.
"""

import os
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from lupus_dash import layouts, report, results, views
from lupus_dash.analyses import biomarkers, cohort, common, quality, remission, safety, subgroups
from lupus_dash.analyses import cohort as cohort_analyses
from lupus_dash.db import Database
from lupus_dash.filters import Filter

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app.py")
COHORTS = ("csle_belimumab", "ln_belimumab")
PAGES = ("overview", "biomarkers", "remission", "targets", "subgroups", "patient", "safety",
         "data", "methods")
TIMEOUT = 180
TITLES = {"targets": "treat to target"}


@pytest.fixture(scope="session")
def demo_path(tmp_path_factory) -> Path:
    from lupus_dash import synth

    path = tmp_path_factory.mktemp("demo") / "demo.duckdb"
    synth.build_demo(path)
    return path


@pytest.fixture(scope="session")
def db(demo_path):
    d = Database(demo_path)
    yield d
    d.close()


@pytest.fixture(autouse=True)
def _demo_env(demo_path, monkeypatch):
    monkeypatch.setenv("LUPUS_DASH_DB", str(demo_path))
    # AppTest resets PagesManager.uses_pages_directory before every run, so each
    # run would start in Streamlit's v1 multipage mode (a pages/ folder exists)
    # instead of going through app.py's st.navigation as a live server does after
    # its first request. Keep the v2 mode, as the server does.
    from streamlit.runtime.pages_manager import PagesManager

    init = PagesManager.__init__

    def v2_init(self, *args, **kwargs):
        init(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False

    monkeypatch.setattr(PagesManager, "__init__", v2_init)


def run(page: str = "overview", **params) -> AppTest:
    """A fresh session opened with the given URL query params, on one page."""
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    for k, v in params.items():
        at.query_params[k] = v
    at.run()
    if page != "overview":
        at.switch_page(f"pages/{page}.py").run()
    return at


def metric(at: AppTest, label_start: str):
    hits = [m for m in at.metric if m.label.startswith(label_start)]
    assert hits, f"no metric starting {label_start!r}: {[m.label for m in at.metric]}"
    return hits[0].value


def assert_clean(at: AppTest) -> None:
    assert not at.exception, [e.message for e in at.exception]
    assert not at.error, [e.value for e in at.error]


# --- every page, both cohorts -------------------------------------------------------


@pytest.mark.parametrize("cohort", COHORTS)
@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_on_both_demo_cohorts(page, cohort):
    at = run(page, cohort=cohort)
    assert_clean(at)
    assert at.title[0].value.lower() == TITLES.get(page, page)
    assert at.query_params["cohort"] == cohort  # written back after the page switch


def test_ln_cohort_has_no_cd19_endpoint():
    at = run("biomarkers", cohort="ln_belimumab")
    options = at.selectbox(key="bio_endpoint").options
    assert "CD19+ B cells (%)" not in options and "C3 (g/L)" in options
    assert any("CD19+ B cells" in c.value for c in at.caption if c.value.startswith("Not recorded"))
    at_c = run("biomarkers", cohort="csle_belimumab")
    assert "CD19+ B cells (%)" in at_c.selectbox(key="bio_endpoint").options


# --- the calls each page makes = views.PAGES (the benchmark's lists) ----------------------


@pytest.mark.parametrize("cohort", COHORTS)
@pytest.mark.parametrize("view", list(views.PAGES))
def test_each_page_makes_exactly_the_calls_its_view_lists(view, cohort, db):
    page, params = views.PAGE_FILES[view]
    at = run(page, cohort=cohort, **params)
    assert_clean(at)
    made = {c.key() for c in at.session_state["_calls"]}
    flt = Filter(cohort)

    def seam(c):
        return results.run(db, c)

    listed = {c.key() for c in views.PAGES[view](seam, flt).values()}
    listed |= {c.key() for c in views.sidebar(seam, flt).values()}
    listed |= {c.key() for c in views.per_file(flt).values()}
    assert made == listed


# --- numbers on screen = the seam's for the same filter ------------------------------------


def test_sidebar_filter_drives_overview_numbers(db):
    at = run("overview", cohort="csle_belimumab")
    at.multiselect(key="f_sex").set_value(["F"]).run()
    assert_clean(at)
    flt = Filter.build("csle_belimumab", sex=["F"])
    k, n = common.count_patients(db, flt)
    assert 0 < k < n
    assert metric(at, "Patients") == str(k)
    assert any(f"{k} of {n} patients" in md.value for md in at.sidebar.markdown)
    final = common.cohort_info(db, "csle_belimumab")["final_week"]
    rem = remission.rates(db, flt, preset="standard")
    row = rem[(rem["visit_week"].astype(str) == str(final)) & (rem["definition"] == "lldas")]
    assert metric(at, f"LLDAS at week {final}") == (
        f"{row['n_achieved'].iloc[0]}/{row['n_denominator'].iloc[0]}")
    t3 = safety.table3(db, flt)
    assert metric(at, "With adverse events") == f"{t3['n_patients'].iloc[0]}/{k}"


def test_facet_counts_stand_under_the_boxes_and_labels_stay_plain(db):
    at = run("overview", cohort="csle_belimumab")
    assert_clean(at)
    oc = cohort.option_counts(db, Filter("csle_belimumab"))
    n_iv = int(oc[(oc["column"] == "biopsy_class") & (oc["value"] == "IV")]["n"].iloc[0])
    female = int(oc[(oc["column"] == "sex") & (oc["value"] == "F")]["n"].iloc[0])
    captions = [c.value for c in at.sidebar.caption]
    assert any(f"IV {n_iv} ·" in c for c in captions), captions
    assert any(c.startswith(f"female {female} · male ") for c in captions), captions
    # Labels without counts: Streamlit keeps a choice by its label (see ui._fmt_option).
    assert at.multiselect(key="f_sex").options == ["female", "male"]
    # The counts follow the other filters: with completers only, fewer women are left.
    at.checkbox(key="f_completer").check().run()
    oc2 = cohort.option_counts(db, Filter.build("csle_belimumab", completer=[True]))
    female2 = int(oc2[(oc2["column"] == "sex") & (oc2["value"] == "F")]["n"].iloc[0])
    assert female2 < female
    assert any(c.startswith(f"female {female2} · ") for c in
               (c.value for c in at.sidebar.caption))


def test_completers_and_age_filter_drive_remission_page(db):
    at = run("remission", cohort="csle_belimumab")
    lims = cohort.age_limits(db, "csle_belimumab").iloc[0]
    lo, hi = float(lims["lo"]), float(lims["hi"])
    a, b = int(lo), int(-(-hi // 1))
    age = (a + 1, b)
    at.checkbox(key="f_completer").check().run()
    at.slider(key="f_age").set_value(age).run()
    at.selectbox(key="rem_preset").set_value("seed_paper").run()
    assert_clean(at)
    flt = Filter.build("csle_belimumab", completer=[True], age_min=age[0], age_max=age[1])
    rem = remission.rates(db, flt, preset="seed_paper")
    for d, label in (("lldas", "LLDAS"), ("remission", "Remission")):
        r = rem[(rem["visit_week"] == "last") & (rem["definition"] == d)].iloc[0]
        assert metric(at, f"{label} at last assessment") == (
            f"{r['n_achieved']}/{r['n_denominator']}")
        help_ = next(m.help for m in at.metric if m.label == f"{label} at last assessment")
        assert help_.startswith(f"{r['rate'] * 100:.1f} % (95 % CI ")
    assert at.query_params["completer"] == "true"
    assert at.query_params["age"] == f"{age[0]}-{age[1]}"


def test_biomarker_statistics_table_equals_the_seam(db):
    at = run("biomarkers", cohort="csle_belimumab")
    at.selectbox(key="bio_endpoint").set_value("c4_g_l").run()
    at.selectbox(key="bio_method").set_value("wilcoxon").run()
    at.selectbox(key="bio_adjust").set_value("holm").run()
    assert_clean(at)
    flt = Filter("csle_belimumab")
    lon = biomarkers.longitudinal(db, flt, endpoints=["c4_g_l"], comparators=["baseline"],
                                  adjust="holm")
    want = lon[lon["method"] == "wilcoxon"].reset_index(drop=True)
    tables = [d.value for d in at.dataframe if "p adjusted" in d.value.columns]
    assert len(tables) == 1
    got = tables[0]
    assert got["Week"].tolist() == want["visit_week"].tolist()
    assert got["n"].tolist() == [str(n) for n in want["n"]]
    assert got["p"].tolist() == [layouts.fmt_p(p, missing="") for p in want["p_value"]]
    assert got["p adjusted"].tolist() == [layouts.fmt_p(p, missing="")
                                          for p in want["p_adjusted"]]
    assert got["Statistic"].tolist() == [layouts.fmt_num(x, missing="")
                                         for x in want["statistic"]]
    # The method is named in words beside every number, and the summary matches the test.
    assert set(got["Method"]) <= {"Wilcoxon signed-rank", "Wilcoxon signed-rank, exact",
                                  "Wilcoxon signed-rank, asymptotic"}
    assert all("(" in v for v in got["Summary"])  # median (P25, P75) beside a rank test


def test_individual_trajectories_on_demand(db):
    import json

    at = run("biomarkers", cohort="csle_belimumab")
    n_before = len(at.get("vega_lite_chart"))
    at.toggle(key="bio_ind").set_value(True).run()
    assert_clean(at)
    shown = biomarkers.individual_trajectories(db, Filter("csle_belimumab"),
                                               "c3_g_l")["shown"].iloc[0]
    total, sampled = int(shown["n_total"]), bool(shown["sampled"])
    assert not sampled  # 26 patients, under the cap of 60
    assert any(c.value == f"Individual lines: all {total} patients with a value."
               for c in at.caption)
    chart = at.get("vega_lite_chart")[0].proto
    assert len(at.get("vega_lite_chart")) == n_before
    assert "patient_id" in json.dumps(json.loads(chart.spec))  # the spaghetti layer is drawn


FIG1_TAB = "All endpoints (Figure 1)"


def test_figure1_tab_computes_only_when_open_and_opens_from_the_url(db):
    at = run("biomarkers", cohort="csle_belimumab")
    assert_clean(at)
    n_closed = len(at.get("vega_lite_chart"))
    t2 = report.layout(db, Filter("csle_belimumab"), "table2").table

    def table2_shown(app):
        return [d.value for d in app.dataframe if d.value.shape == t2.shape
                and d.value.iloc[:, 0].tolist() == t2.iloc[:, 0].tolist()]

    assert not table2_shown(at)
    assert "bio_tab" not in at.query_params
    at.session_state["bio_tab"] = FIG1_TAB  # what clicking the tab sets (on_change="rerun")
    at.run()
    assert_clean(at)
    n_panels = len(common.available_endpoints(db, Filter("csle_belimumab")))
    # One panel per endpoint, laid out in a grid that fills the width.
    assert len(at.get("vega_lite_chart")) == n_closed + n_panels
    assert table2_shown(at)
    assert at.query_params["bio_tab"] == FIG1_TAB
    # A shared link opens the same tab.
    at2 = run("biomarkers", cohort="csle_belimumab", bio_tab=FIG1_TAB)
    assert_clean(at2)
    assert len(at2.get("vega_lite_chart")) == n_closed + n_panels
    assert table2_shown(at2)


def test_data_quality_tab_computes_only_when_open(db):
    at = run("data", cohort="ln_belimumab")
    assert_clean(at)
    assert not at.get("vega_lite_chart")  # the missingness heatmap is the only chart
    at.session_state["data_tab"] = "Data quality"
    at.run()
    assert_clean(at)
    assert len(at.get("vega_lite_chart")) == 1
    summ = quality.range_edges(db, Filter("ln_belimumab"))["summary"]
    assert any(d.value.shape == summ.shape for d in at.dataframe)


def test_subgroup_tests_equal_the_seam(db):
    at = run("subgroups", cohort="ln_belimumab")
    at.selectbox(key="sub_group").set_value("sex").run()
    at.selectbox(key="sub_endpoint").set_value("c3_g_l").run()
    assert_clean(at)
    lon = subgroups.tests(db, Filter("ln_belimumab"), "sex", endpoints=["c3_g_l"],
                          adjust="holm")
    got = next(d.value for d in at.dataframe if "p (holm)" in d.value.columns)
    assert got["p"].tolist() == [layouts.fmt_p(p, missing="") for p in lon["p_value"]]
    assert got["p (holm)"].tolist() == [layouts.fmt_p(p, missing="") for p in lon["p_adjusted"]]


def test_small_groups_are_flagged(db):
    at = run("subgroups", cohort="csle_belimumab")
    at.selectbox(key="sub_group").set_value("class_group").run()
    assert_clean(at)
    sizes = cohort.group_sizes(db, Filter("csle_belimumab"), "class_group")
    small = sizes[sizes["n"] < 5]
    assert len(small)  # the demo has small biopsy groups
    warning = next(w.value for w in at.warning if "under 5 patients" in w.value)
    for g, n in zip(small["group"], small["n"], strict=True):
        assert f"{g} (n = {n})" in warning


# --- URL state ------------------------------------------------------------------------


def test_url_round_trip_restores_filters_and_page_widgets():
    at = run("biomarkers", cohort="csle_belimumab")
    at.multiselect(key="f_sex").set_value(["F"]).run()
    at.checkbox(key="f_completer").check().run()
    at.selectbox(key="bio_endpoint").set_value("pga").run()
    at.radio(key="bio_cmp").set_value("previous").run()
    params = dict(at.query_params)
    assert params["sex"] == "F" and params["completer"] == "true"
    assert params["bio_endpoint"] == "pga" and params["bio_cmp"] == "previous"

    fresh = run("biomarkers", **params)
    assert_clean(fresh)
    assert fresh.multiselect(key="f_sex").value == ["F"]
    assert fresh.checkbox(key="f_completer").value is True
    assert fresh.selectbox(key="bio_endpoint").value == "pga"
    assert fresh.radio(key="bio_cmp").value == "previous"
    assert [m.value for m in fresh.sidebar.markdown if "patients" in m.value] == \
        [m.value for m in at.sidebar.markdown if "patients" in m.value]


def test_filters_survive_a_page_switch_in_the_url():
    at = run("overview", cohort="ln_belimumab")
    at.multiselect(key="f_sex").set_value(["M"]).run()
    at.switch_page("pages/safety.py").run()
    assert_clean(at)
    assert at.query_params["cohort"] == "ln_belimumab"
    assert at.query_params["sex"] == "M"
    assert at.multiselect(key="f_sex").value == ["M"]


def test_link_with_unknown_values_warns_and_drops_them():
    at = run("overview", cohort="csle_belimumab", biopsy_class="VII")
    assert not at.exception
    assert any("VII" in w.value for w in at.warning)
    assert at.multiselect(key="f_biopsy_class").value == []


def test_reset_clears_filters_but_keeps_cohort():
    at = run("overview", cohort="ln_belimumab", sex="F", completer="true")
    assert at.multiselect(key="f_sex").value == ["F"]
    at.sidebar.button[0].click().run()
    assert at.multiselect(key="f_sex").value == []
    assert at.checkbox(key="f_completer").value is False
    assert at.query_params == {"cohort": "ln_belimumab", "ov_group": "none"}


# --- import on the Data page ------------------------------------------------------------

FIXTURE = ROOT / "tests" / "fixtures" / "cohort_external"


def _upload(at: AppTest, files: dict[str, bytes]) -> None:
    at.get("file_uploader")[0].set_value(
        [(name, data, "text/csv") for name, data in files.items()]).run()


def test_data_page_imports_into_a_new_database_and_every_page_renders(tmp_path, monkeypatch):
    import shutil

    monkeypatch.setenv("LUPUS_DASH_DB", str(shutil.copy(os.environ["LUPUS_DASH_DB"],
                                                       tmp_path / "demo.duckdb")))
    at = run("data", cohort="csle_belimumab")
    _upload(at, {p.name: p.read_bytes() for p in FIXTURE.glob("*.csv")})
    assert_clean(at)
    assert any("Valid: 2 cohort(s)" in s.value for s in at.success)
    at.radio(key="import_target").set_value("a new database file").run()
    at.text_input(key="import_name").input("external").run()
    at.button(key="import_go").click().run()
    assert_clean(at)
    assert (tmp_path / "external.duckdb").exists()
    at.run()  # the session now reads the imported file
    assert at.selectbox(key="f_cohort").options == ["LN-adult", "cSLE-QD"]
    # The link names the imported file, so whoever opens it sees the same cohort.
    assert at.query_params["db"] == "external.duckdb"
    other = run("overview", db="external.duckdb", cohort="cSLE-QD")
    assert_clean(other)
    assert other.selectbox(key="f_cohort").value == "cSLE-QD"
    bad = run("overview", db="../etc/passwd")  # never a path: a plain note, the default file
    assert_clean(bad)
    assert any("does not have" in w.value for w in bad.warning)
    for label in ("cSLE-QD", "LN-adult"):
        at.selectbox(key="f_cohort").set_value(label).run()
        for page in PAGES:
            at.switch_page(f"pages/{page}.py").run()
            assert_clean(at)
            assert at.title[0].value.lower() == TITLES.get(page, page)


def test_data_page_lists_every_problem_and_imports_nothing(tmp_path):
    bad = (FIXTURE / "visits.csv").read_text().replace("C01,4,,0.61", "C01,4,,7.5", 1)
    at = run("data", cohort="csle_belimumab")
    _upload(at, {"patients.csv": (FIXTURE / "patients.csv").read_bytes(),
                 "visits.csv": bad.encode()})
    assert not at.exception
    assert "problem" in at.error[0].value
    problems = next(d.value for d in at.dataframe if "reason" in d.value.columns)
    row = problems[problems["column"] == "c3_g_l"].iloc[0]
    # C01 week 4 is the second data row of visits.csv: spreadsheet row 3 (header = row 1);
    # 7.5 g/L is outside the contract's C3 range 0–5.
    assert (row["file"], int(row["row"]), row["value"]) == ("visits.csv", 3, "7.5")
    assert all(b.key != "import_go" for b in at.button)  # nothing can be imported


# --- empty, tiny, broken ----------------------------------------------------------------


def _empty_filter(db, cohort: str) -> dict:
    """URL params of a filter that matches nobody (all organs at once, else a sex × class cell)."""
    opts = cohort_analyses.filter_options(db, cohort)
    for sex in opts["sex"]:
        for cls in opts["class_group"]:
            flt = Filter.build(cohort, sex=[sex], class_group=[cls], completer=[True])
            if common.count_patients(db, flt)[0] == 0:
                return {"cohort": cohort, "sex": sex, "class_group": cls, "completer": "true"}
    flt = Filter.build(cohort, **{f"organ_{o}": [True] for o in opts["organs"]})
    assert common.count_patients(db, flt)[0] == 0, "no empty filter found"
    return {"cohort": cohort, **{f"organ_{o}": "true" for o in opts["organs"]}}


@pytest.mark.parametrize("page", PAGES)
def test_empty_filter_gives_a_plain_message(page, db):
    params = _empty_filter(db, "csle_belimumab")
    at = run(page, **params)
    assert_clean(at)
    if page not in ("data", "methods"):
        assert any("No patient matches this filter" in i.value for i in at.info)


@pytest.mark.parametrize("cohort_name", ["csle_belimumab", "ln_belimumab"])
def test_every_views_calls_run_on_a_filter_that_matches_nobody(cohort_name, db):
    """The pages stop at the message, but the report and a deck may still ask (the swimmer
    once failed on no patients)."""
    flt = Filter.build(cohort_name, **{k: [v] if k != "completer" else [True]
                                       for k, v in _empty_filter(db, cohort_name).items()
                                       if k != "cohort"})
    assert common.count_patients(db, flt)[0] == 0
    for view in views.PAGES:
        for call in views.PAGES[view](lambda c: results.run(db, c), flt).values():
            results.run(db, call)  # no exception


def test_missing_database_is_a_plain_error(monkeypatch, tmp_path):
    monkeypatch.setenv("LUPUS_DASH_DB", str(tmp_path / "nope.duckdb"))
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    assert not at.exception
    assert "build-demo" in at.error[0].value and "nope.duckdb" in at.error[0].value


def test_invalid_database_file_is_a_plain_error(monkeypatch, tmp_path):
    bad = tmp_path / "bad.duckdb"
    bad.write_text("not a database")
    monkeypatch.setenv("LUPUS_DASH_DB", str(bad))
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    assert not at.exception
    assert "cannot be used" in at.error[0].value


def test_locked_database_is_a_plain_error(monkeypatch, tmp_path, demo_path):
    import shutil
    import subprocess
    import sys

    path = shutil.copy(demo_path, tmp_path / "locked.duckdb")
    # Another process holds the file read-write (an import still running).
    hold = ("import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); "
            "print('ready', flush=True); time.sleep(60)")
    holder = subprocess.Popen([sys.executable, "-c", hold, str(path)], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        monkeypatch.setenv("LUPUS_DASH_DB", str(path))
        at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
        assert not at.exception
        assert "cannot be used" in at.error[0].value and "locked" in at.error[0].value
    finally:
        holder.kill()
        holder.wait(10)


def test_presenter_mode_from_the_link():
    at = run("remission", cohort="csle_belimumab", present="1")
    assert_clean(at)
    assert at.toggle(key="present").value is True
    assert at.query_params["present"] == "1"
    assert any("stSidebar" in m.value for m in at.markdown)  # CSS that hides the sidebar
    at.button(key="exit_presenter").click().run()
    assert at.toggle(key="present").value is False
    assert "present" not in at.query_params


def test_patient_picker_asks_for_an_id_when_too_many_match(db, monkeypatch):
    from lupus_dash import ui

    monkeypatch.setattr(ui, "PICKER_CAP", 5)  # the demo has 26: more than the cap
    at = run("patient", cohort="csle_belimumab")
    assert_clean(at)
    ids = cohort.patient_ids(db, Filter("csle_belimumab"))
    assert not [s for s in at.selectbox if s.key == "patient"]  # no list of 26 options
    box = at.text_input(key="patient")
    assert box.value == ids[0]
    box.set_value(ids[7]).run()
    assert_clean(at)
    assert at.query_params["patient"] == ids[7]
    assert any(ids[7] in str(c.value) for c in at.code) or any(
        ids[7] in str(m.value) for m in at.markdown) or any(
        ids[7] in str(c.value) for c in at.caption)
    at.text_input(key="patient").set_value("nobody").run()
    assert [w.value for w in at.warning] == [
        f"No patient 'nobody' among those matching the filter; showing {ids[0]}."]


def test_long_listings_show_their_first_rows_and_say_so(db, monkeypatch):
    from lupus_dash import ui

    monkeypatch.setattr(ui, "LISTING_CAP", 5)
    at = run("remission", cohort="csle_belimumab", rem_who_outcome="not achieved")
    assert_clean(at)
    full = remission.who(db, Filter("csle_belimumab"), "lldas", "last", "standard")
    full = full[full["outcome"] == "not achieved"]
    assert len(full) > 5
    shown = [d.value for d in at.dataframe if "Why not" in d.value.columns]
    assert len(shown) == 1 and shown[0]["Patient"].tolist() == full["patient_id"][:5].tolist()
    assert (f"Showing the first 5 of {len(full)} rows; the downloads below hold every row."
            in [c.value for c in at.caption])


# --- the screen and the command line print the same paper tables ---------------------------

LAYOUT_FILTERS = [{}, {"completer": "true"}, {"sex": "F"}]


@pytest.mark.parametrize("cohort_name", COHORTS)
@pytest.mark.parametrize("params", LAYOUT_FILTERS, ids=["all", "completers", "female"])
def test_screen_and_cli_print_identical_tables_1_2_3(cohort_name, params, demo_path, capsys):
    import io

    import pandas as pd

    from lupus_dash import cli

    specs = [("overview", {}, "table1"), ("biomarkers", {"bio_tab": FIG1_TAB}, "table2"),
             ("safety", {}, "table3")]
    filters = [f"{k}={v}" for k, v in params.items()]
    for page, extra, layout in specs:
        at = run(page, cohort=cohort_name, **params, **extra)
        assert_clean(at)
        args = ["report", "--db", str(demo_path), "--cohort", cohort_name, "--layout", layout,
                "--format", "csv"]
        for f in filters:
            args += ["--filter", f]
        assert cli.main(args) == 0
        printed = pd.read_csv(io.StringIO(capsys.readouterr().out), dtype=str,
                              keep_default_na=False)
        shown = [d.value.astype(str) for d in at.dataframe
                 if list(d.value.columns) == list(printed.columns)]
        assert len(shown) == 1, (page, layout)
        pd.testing.assert_frame_equal(shown[0].reset_index(drop=True), printed,
                                      check_dtype=False)


def test_an_idle_page_says_when_its_data_changed(tmp_path, monkeypatch, demo_path):
    import shutil

    from lupus_dash import ui

    path = shutil.copy(demo_path, tmp_path / "watched.duckdb")
    db = Database(path)
    assert not ui.data_changed(db)
    os.utime(path, ns=(1, 1))  # rewritten by an import: another mtime
    assert ui.data_changed(db)
    db.close()
    monkeypatch.setenv("LUPUS_DASH_DB", str(path))
    at = run("overview", cohort="csle_belimumab")
    assert_clean(at)
    assert not any("changed since" in i.value for i in at.info)
