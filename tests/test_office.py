"""Exports opened as a reader would: .pptx with python-pptx, .docx with python-docx, PNG/SVG
with their caption; the numbers in them equal `report` / `analysis` for the same filter."""

import io
import json
import math
import shutil
from contextlib import closing

import duckdb
import pandas as pd
import pytest

from lupus_dash import charts, cli, layouts, office, report, results, scenes, store
from lupus_dash.analyses import biomarkers, cohort, common, remission
from lupus_dash.db import Database
from lupus_dash.filters import Filter

COMPLETERS = Filter.build("csle_belimumab", completer=[True])
SENTENCE = "csle_belimumab: completers — 23 of 26 patients"


@pytest.fixture(scope="module")
def demo_path(tmp_path_factory):
    from lupus_dash import synth

    path = tmp_path_factory.mktemp("office") / "demo.duckdb"
    synth.build_demo(path)
    return path


@pytest.fixture(scope="module")
def db(demo_path):
    d = Database(demo_path)
    yield d
    d.close()


def _docx_rows(data: bytes) -> tuple[list[list[str]], list[str], list[str]]:
    """Table cells (first run only: the value without a footnote mark), headers, paragraphs."""
    from docx import Document

    doc = Document(io.BytesIO(data))
    t = doc.tables[0]
    headers = [c.text for c in t.rows[0].cells]
    cells = [[c.paragraphs[0].runs[0].text if c.paragraphs[0].runs else "" for c in r.cells]
             for r in t.rows[1:]]
    return cells, headers, [p.text for p in doc.paragraphs]


def _as_csv_text(v) -> str:
    """A CSV layout cell as report.to_markdown prints it."""
    if isinstance(v, float):
        return "" if math.isnan(v) else f"{v:.1f}"
    return str(v)


@pytest.mark.parametrize("layout,group_by", [("table1", None), ("table1", "sex"),
                                             ("table2", None), ("table3", None)])
def test_docx_holds_the_layout_cells(db, layout, group_by):
    kw = {"group_by": group_by} if layout == "table1" else {}
    lay = report.layout(db, COMPLETERS, layout, **kw)   # what `report --layout` prints
    cells, headers, paras = _docx_rows(office.layout_docx(db, lay, date="2026-12-01"))
    shown = lay.table.drop(columns=["Test"], errors="ignore")  # the test: a footnote letter
    assert headers == list(shown.columns)
    assert len(cells) == len(shown)
    for got, (_, want) in zip(cells, shown.iterrows(), strict=True):
        assert got == [_as_csv_text(v) for v in want.tolist()]
    assert paras[0] == lay.title
    v = scenes.data_version(db)
    assert paras[1] == (f"{SENTENCE} · definitions: standard · data version {v[:8]} · "
                        "2026-12-01")
    for note in lay.footnotes:
        assert note in paras


@pytest.mark.slow
def test_docx_headers_carry_n_and_footnotes_name_the_tests(db):
    # Table 1 by sex: n per column from patient_facts, read here without the package.
    pf = db.query("SELECT sex FROM patient_facts WHERE cohort = ? AND completer",
                  ["csle_belimumab"])
    lay = report.layout(db, COMPLETERS, "table1", group_by="sex")
    t1_docx = office.layout_docx(db, lay)
    _, headers, paras = _docx_rows(t1_docx)
    assert headers[2:] == [f"Overall (n = {len(pf)})",
                           f"F (n = {(pf['sex'] == 'F').sum()})",
                           f"M (n = {(pf['sex'] == 'M').sum()})", "P"]
    # P cells carry the footnote letter of their test as a superscript run after the value.
    from docx import Document

    t = Document(io.BytesIO(t1_docx)).tables[0]
    age = t.rows[1].cells[-1].paragraphs[0].runs
    assert age[0].text == lay.table["P"].iloc[0]
    assert age[1].text == "a" and age[1].font.superscript
    assert f"a {lay.table['Test'].iloc[0]}" in paras
    tests = set(lay.table["Test"]) - {""}
    assert len([p for p in paras if p[:2] in {f"{c} " for c in "abcdefgh"}]) == len(tests)


def _pptx_slides(data: bytes) -> list[dict]:
    from pptx import Presentation
    from pptx.enum.shapes import MSO_SHAPE_TYPE

    prs = Presentation(io.BytesIO(data))
    out = []
    for slide in prs.slides:
        texts, tables, pictures = [], [], 0
        for sh in slide.shapes:
            if sh.has_text_frame:
                texts.append(sh.text_frame.text)
            if sh.has_table:
                tables.append([[c.text for c in r.cells] for r in sh.table.rows])
            if sh.shape_type == MSO_SHAPE_TYPE.PICTURE:
                pictures += 1
        out.append({"text": "\n".join(texts), "tables": tables, "pictures": pictures,
                    "notes": slide.notes_slide.notes_text_frame.text,
                    "size": (prs.slide_width, prs.slide_height)})
    return out


@pytest.fixture(scope="module")
def default_export(db):
    deck = scenes.default_deck(COMPLETERS, "standard", data_version=scenes.data_version(db))
    return deck, office.build_deck(db, deck, date="2026-12-01")


@pytest.mark.slow
def test_default_deck_slides_equal_the_report(db, default_export):
    deck, out = default_export
    slides = _pptx_slides(out.pptx)
    assert len(slides) == len(deck.scenes) + 2  # title, one per scene, the comparison log
    from pptx.util import Inches

    assert slides[0]["size"] == (Inches(13.333), Inches(7.5))  # 16:9
    v = scenes.data_version(db)
    rep = report.build_report(db, COMPLETERS)

    def run(fn, **kw):
        return results.run(db, fn, COMPLETERS, **kw)

    # Comparisons looked at: the deck shows Figure 1, whose stars are the baseline tests
    # of each endpoint's figure method at every follow-up visit (counted from the report).
    lon = pd.DataFrame(rep["longitudinal"])
    fig_method = {e.column: ("fisher" if e.kind == "binary" else "wilcoxon" if e.skewed
                             else "rm_anova_bonferroni")
                  for e in run(common.available_endpoints).table}
    shown = lon[(lon["comparator"] == "baseline")
                & (lon["method"] == lon["endpoint"].map(fig_method)) & lon["p_value"].notna()]
    m = len(shown)
    assert out.log.summary()["m"] == m == 52  # 13 endpoints × 4 follow-up visits
    for s, scene in zip(slides[1:-1], deck.scenes, strict=True):
        assert scene.name in s["text"]
        assert "EXPLORATORY" in s["text"]
        assert (f"{SENTENCE} · n = 23 · definitions: standard · data version {v[:8]} · "
                f"2026-12-01 · exploratory") in s["text"]
        assert f"Comparisons looked at in this deck: {m} · about {m * 0.05:.1f}" in s["text"]
        assert s["pictures"] == (0 if scene.slide_view == "table1" else 1)
        assert s["tables"], scene.name
        assert "Open live: /" in s["notes"]

    flow = {r[0]: r[1] for r in slides[1]["tables"][0][1:]}
    rem = pd.DataFrame(rep["remission"])
    r52 = rem[(rem["visit_week"].astype(str) == "52")].set_index("definition")
    for d, label in (("lldas", "LLDAS"), ("remission", "Remission")):
        r = r52.loc[d]
        want = f"{int(r['n_achieved'])}/{int(r['n_denominator'])} ({r['rate'] * 100:.1f} %)"
        assert flow[f"{label} at week 52"] == want
    assert flow["LLDAS at week 52"] == "14/23 (60.9 %)"
    assert flow["Enrolled"] == str(rep["n_patients"])

    # Table 1 slide: its panels hold the report's Table 1 layout cells (True rows of yes/no).
    t1 = report.layout(db, COMPLETERS, "table1").table
    rows = [r for panel in slides[2]["tables"] for r in panel[1:]]
    want = t1[~t1["Level"].isin(["No", "False"])].drop(columns=["Test"], errors="ignore")
    assert rows == [[str(x) for x in r] for r in want.itertuples(index=False)]

    # Figure 1 slide: P at week 52 equals Table 2's P row of the same endpoint.
    t2 = report.layout(db, COMPLETERS, "table2").table
    fig_rows = {r[0]: r for r in slides[3]["tables"][0][1:]}
    for ep in ("C3 (g/L)", "C4 (g/L)", "CD19+ B cells (%)"):
        p_row = t2[(t2["Endpoint"] == ep) & (t2["Statistic"] == "P")]
        assert fig_rows[ep][4] == p_row["Week 52"].iloc[0]
        assert fig_rows[ep][1] == "RM-ANOVA pairwise, Bonferroni"

    # Remission rates slide: LLDAS row, week 52 and last assessment.
    rates = {r[0]: r for r in slides[4]["tables"][0][1:]}
    r = r52.loc["lldas"]
    assert rates["LLDAS"][1] == (f"{int(r['n_achieved'])}/{int(r['n_denominator'])} "
                                 f"({r['rate'] * 100:.1f} %); {r['ci_low'] * 100:.1f} to "
                                 f"{r['ci_high'] * 100:.1f}")

    # Disease states slide: counts per week equal remission.states.
    states = run(remission.states).table
    table = slides[5]["tables"][0]
    head = table[0]
    for row in table[1:]:
        for state, cell in zip(head[1:], row[1:], strict=True):
            sel = states[(states["visit_week"].astype(str) == row[0])
                         & (states["state"] == state)]
            n = int(sel["n"].iloc[0]) if len(sel) else 0
            assert cell.split(" ")[0] == str(n)

    # Time to first LLDAS: patients reaching it = events in the Kaplan–Meier medians table.
    from lupus_dash.analyses import targets

    med = run(targets.time_to_first, definition="lldas")["medians"]
    assert slides[6]["tables"][0][1][2] == str(int(med["events"].sum()))

    # The log slide names the smallest p with its Holm and BH values.
    t = out.log.table().sort_values("p_value", kind="stable")
    first = slides[-1]["tables"][0][1]
    assert first[5:8] == [layouts.fmt_p(t["p_value"].iloc[0]), layouts.fmt_p(t["p_holm"].iloc[0]),
                          layouts.fmt_p(t["p_bh"].iloc[0])]
    assert out.log.sentence() in slides[-1]["text"]


def test_a_viewers_deck_passes_the_disclosure_rules(db):
    """Shared mode's slides (a viewer's PowerPoint): withheld counts stay "<k" text, and a
    scene whose filter the denominator gate refuses says so instead of any number."""
    from lupus_dash.shared import SharedPolicy

    k = 5
    deck = scenes.default_deck(Filter("csle_belimumab"), "standard")
    three = Filter.build("csle_belimumab", immunosuppressant=["TAC", "MMF+TAC"])
    deck.scenes.append(scenes.Scene("Three patients", "overview", three, view="patient_flow"))
    out = office.build_deck(db, deck, date="2026-12-01", policy=SharedPolicy(k))
    slides = _pptx_slides(out.pptx)
    assert len(slides) == len(deck.scenes) + 2
    gated = slides[-2]
    assert f"Fewer than {k} patients match this filter." in gated["text"]
    assert "n = not shown" in gated["text"] and "3 of" not in gated["text"]
    assert not gated["tables"] and gated["pictures"] == 0
    flow, states = slides[1]["tables"][0], slides[5]["tables"][0]
    assert flow[0] == ["Measure", "Patients"] and states[0][0] == "Week"
    cells = [c for r in flow[1:] for c in r[1:]] + [c for r in states[1:] for c in r[1:]]
    assert f"<{k}" in cells
    for c in cells:
        if c in (f"<{k}", "—"):
            continue
        n = int(c.split("/")[0].split(" ")[0])
        assert n == 0 or n >= k, c


def test_prespecified_scene_is_labelled_and_its_tests_logged_so(db):
    deck = scenes.Deck("One", [scenes.Scene(
        "C3 by visit", "biomarkers", COMPLETERS, {"bio_endpoint": "c3_g_l",
                                                  "bio_method": "paired_t"},
        prespecified=True, view="trajectory")])
    out = office.build_deck(db, deck, date="2026-12-01")
    s = _pptx_slides(out.pptx)[1]
    assert "PRE-SPECIFIED" in s["text"] and "EXPLORATORY" not in s["text"]
    lon = results.run(db, biomarkers.longitudinal, COMPLETERS, endpoints=["c3_g_l"],
                      comparators=["baseline"], include_mixed=False).table
    want = lon[lon["method"] == "paired_t"]
    summ = out.log.summary()
    assert summ["m"] == summ["prespecified"] == len(want) == 4
    table = s["tables"][0]
    assert [r[4] for r in table[1:]] == [layouts.fmt_p(p) for p in want["p_value"]]


def test_pinned_scene_shows_the_numbers_of_its_version(demo_path, tmp_path):
    old = tmp_path / "versions" / "old.duckdb"
    old.parent.mkdir()
    now = tmp_path / "now.duckdb"
    shutil.copy(demo_path, old)
    shutil.copy(demo_path, now)
    con = duckdb.connect(str(now))
    for t in ("patients", "patient_facts", "visits", "visit_facts"):
        con.execute(f'DELETE FROM "{t}" WHERE patient_id = ?', ["CSLE-003"])
    # What an import writes: the new content version in meta.
    con.execute("UPDATE meta SET value = ? WHERE key = ?",
                [store._content_version(con), scenes.DATA_VERSION_KEY])
    con.close()
    with closing(Database(old)) as db_old:
        v_old = scenes.data_version(db_old)
        k_old = _count(db_old, Filter("csle_belimumab"))
    scene = scenes.Scene("Flow", "overview", Filter("csle_belimumab"), data_version=v_old,
                         view="patient_flow")
    with closing(Database(now)) as db_now:
        k_now = _count(db_now, Filter("csle_belimumab"))
        assert k_now == k_old - 1
        kept = office.build_deck(db_now, scenes.Deck("d", [scene]), date="2026-12-01")
        gone = office.build_deck(db_now, scenes.Deck("d", [scene]), date="2026-12-01",
                                 candidates=[])
    s = _pptx_slides(kept.pptx)[1]
    flow = {r[0]: r[1] for r in s["tables"][0][1:]}
    assert flow["Enrolled"] == str(k_old)            # the old version's numbers
    assert f"data version {v_old[:8]}" in s["text"]
    assert "Showing the numbers of version" in s["text"] and "old.duckdb" in s["text"]
    s = _pptx_slides(gone.pptx)[1]
    assert {r[0]: r[1] for r in s["tables"][0][1:]}["Enrolled"] == str(k_now)
    assert "The data changed since this scene was saved" in s["text"]
    assert "no longer available" in s["text"]


def _count(db, flt) -> int:
    return int(results.run(db, cohort.patient_count, flt).table["n_match"].iloc[0])


def test_stamped_png_svg_and_projector_png(db):
    k, n = _count(db, COMPLETERS), 26
    ctx = charts.ExportContext(COMPLETERS.sentence(k, n), k, "standard",
                               scenes.data_version(db), "2026-12-01", "pre-specified", 7)
    rem = results.run(db, remission.rates, COMPLETERS).table.assign(
        week=lambda d: d["visit_week"].astype(str))
    ch = charts.finalize(charts.rates(rem.drop(columns=["visit_week"]), x="week"))
    svg = charts.to_svg_stamped(ch, ctx)
    for text in ("PRE-SPECIFIED · comparisons looked at: 7", SENTENCE,
                 (f"n = 23 · definitions: standard · data version {ctx.data_version[:8]} · "
                 "2026-12-01")):
        assert text in svg.replace("&amp;", "&"), text
    _plain_w, plain_h = charts.png_size(charts.to_png(ch, scale=1))
    _w, h = charts.png_size(charts.to_png_stamped(ch, ctx, scale=1))
    assert h > plain_h + 3 * 13  # three caption lines under the chart
    spec = charts.stamp(ch, ctx)
    assert spec["vconcat"][1]["data"]["values"][0]["t"].startswith("PRE-SPECIFIED")
    assert spec["datasets"]  # the chart's data travel with it
    assert charts.png_size(charts.to_projector_png(ch, ctx)) == (1920, 1080)
    fig = charts.small_multiples(pd.DataFrame({
        "visit_week": [0, 4, 0, 4], "label": ["a", "a", "b", "b"], "centre": [1, 2, 3, 4],
        "lower": [0, 1, 2, 3], "upper": [2, 3, 4, 5], "stars": ["", "*", "", ""]}))
    assert charts.png_size(charts.to_projector_png(fig, ctx)) == (1920, 1080)


@pytest.mark.slow
def test_cli_slides_with_a_deck_and_report_docx(demo_path, tmp_path, capsys):
    deck = scenes.Deck("Two scenes", [
        scenes.Scene("Rates", "remission", COMPLETERS, view="remission_rates"),
        scenes.Scene("C3", "biomarkers", COMPLETERS, {"bio_endpoint": "c3_g_l"}),
    ])
    path = scenes.save(deck, tmp_path / "two.toml")
    out, log, pngs = tmp_path / "d.pptx", tmp_path / "log.json", tmp_path / "png"
    rc = cli.main(["slides", "--db", str(demo_path), "--deck", str(path), "--pptx", str(out),
                   "--log", str(log), "--png-dir", str(pngs)])
    assert rc == 0
    assert len(_pptx_slides(out.read_bytes())) == 4
    logged = json.loads(log.read_text())
    assert logged["summary"]["m"] == len(logged["comparisons"]) > 0
    assert sorted(p.name for p in pngs.iterdir()) == ["01_rates.png", "02_c3.png"]
    assert charts.png_size((pngs / "01_rates.png").read_bytes()) == (1920, 1080)
    # --cohort with --deck: the same views for another subgroup.
    rc = cli.main(["slides", "--db", str(demo_path), "--deck", str(path), "--cohort",
                   "csle_belimumab", "--filter", "sex=F", "--pptx", str(out)])
    assert rc == 0 and "csle_belimumab: female" in "".join(
        s["text"] for s in _pptx_slides(out.read_bytes()))

    bad = tmp_path / "bad.toml"
    bad.write_text(path.read_text().replace('page = "biomarkers"', 'page = "biomarker"'))
    capsys.readouterr()
    assert cli.main(["slides", "--db", str(demo_path), "--deck", str(bad), "--pptx",
                     str(tmp_path / "x.pptx")]) == 2
    err = capsys.readouterr().err
    assert f"{bad}, line " in err and "scene 2 ('C3'): page: unknown page 'biomarker'" in err
    assert cli.main(["slides", "--db", str(demo_path), "--pptx", str(out)]) == 2
    assert "--cohort is required without --deck" in capsys.readouterr().err
    assert cli.main(["slides", "--db", str(demo_path), "--cohort", "nope", "--pptx",
                     str(out)]) == 2

    docx = tmp_path / "t2.docx"
    assert cli.main(["report", "--db", str(demo_path), "--cohort", "csle_belimumab",
                     "--filter", "completer=true", "--layout", "table2", "--format", "docx",
                     "-o", str(docx)]) == 0
    cells, _, _ = _docx_rows(docx.read_bytes())
    with closing(Database(demo_path)) as db:
        t2 = report.layout(db, COMPLETERS, "table2").table
    assert cells == [[str(v) for v in r] for r in t2.itertuples(index=False)]
    assert cli.main(["report", "--db", str(demo_path), "--cohort", "csle_belimumab",
                     "--format", "docx"]) == 2
    assert "--format docx needs --layout" in capsys.readouterr().err
