"""Office exports: a deck of scenes to PowerPoint, the paper tables to Word.

A slide shows one scene: its chart as an image, its key numbers as a native
(editable) table, the context line (filter sentence, n, definitions, data
version, date), the label pre-specified / exploratory, and how many comparisons
the deck looked at. The numbers come from the same `analysis` / `explore` /
`report` calls the pages make, with the scene's widget values (defaults as on
the pages), so a slide equals the screen for the same scene.

Word tables are the paper layouts (`report.layout`, the same `layouts.Layout` the
pages and `report --layout` print) cell for cell: n in the column headers, the test
of each P named in a lettered footnote, p as `<0.001`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from . import charts, layouts, results, scenes, schema, treat_to_target
from .analyses import biomarkers, cohort, common, remission, safety, subgroups, targets
from .comparisons import ComparisonLog
from .db import Database
from .filters import Filter, FilterError

EXIT_BAD_INPUT = 2
ROOT = Path(__file__).resolve().parents[1]
DECKS_DIR = ROOT / "decks"

REMISSION_LABELS = remission.LABELS
REMISSION_DEFAULT = ["lldas", "remission", "renal_complete", "renal_partial"]


# --- scene views: what a slide shows for a scene --------------------------------------------
# Each view runs the calls its page makes (through the seam, `results.run`) with the
# scene's widget values, defaults as on the page, and draws the page's chart.


@dataclass
class View:
    """A scene's picture and numbers: a chart, a key table, tests shown, a note."""

    title: str
    chart: object | None = None  # an Altair chart, not finalized
    table: pd.DataFrame | None = None
    note: str = ""
    tests: list[tuple[pd.DataFrame, dict]] = field(default_factory=list)
    preset: str = "standard"
    message: str = ""  # said in place of picture and table (shared mode's gate)


class _Run:
    """`results.run` bound to one database (and the output policy in force)."""

    def __init__(self, db: Database, policy: results.Policy = results.OPEN):
        self.db, self.policy = db, policy

    def __call__(self, fn, flt: Filter | None = None, **kw) -> results.Result:
        return results.run(self.db, fn, flt, policy=self.policy, **kw)


def _final_week(run: _Run, flt: Filter) -> int:
    return int(run(common.cohort_info, cohort=flt.cohort).table["final_week"])


def view_patient_flow(run: _Run, flt: Filter, w: scenes.Scene, preset: str) -> View:
    """Overview: patient flow with the headline numbers (the Overview page's metrics)."""
    flow = run(cohort.patient_flow, flt)
    stages = flow["stages"]
    final = _final_week(run, flt)
    rem = run(remission.rates, flt, preset=preset).table
    at = rem[rem["visit_week"].astype(str) == str(final)].set_index("definition")
    t3 = run(safety.table3, flt).table
    rows = [{"Measure": s, "Patients": layouts.fmt_num(n, 0)}
            for s, n in zip(stages["stage"], stages["n"], strict=True)]
    for d in ("lldas", "remission"):
        r = at.loc[d]
        rows.append({"Measure": f"{REMISSION_LABELS[d]} at week {final}",
                     "Patients": layouts.fmt_count(r["n_achieved"], r["n_denominator"],
                                                   layouts.rate_pct(r["rate"]))})
    rows.append({"Measure": "With adverse events",
                 "Patients": layouts.fmt_count(t3["n_patients"].iloc[0], t3["n"].iloc[0],
                                               t3["pct"].iloc[0])})
    return View("Patient flow", charts.flow(stages, title=""), pd.DataFrame(rows),
                note="Remission and LLDAS: non-responder imputation (no assessment = not "
                     "achieved), definitions " + preset + ".", preset=preset)


def view_table1(run: _Run, flt: Filter, w: scenes.Scene, preset: str) -> View:
    """Overview: Table 1 (the paper layout), split by the scene's group when it has one."""
    g = w.widget("ov_group", "none")
    group_by = None if g in (None, "none") else g
    lay = layouts.build("table1", run, flt, group_by=group_by)
    t1 = lay.table
    # On a slide a yes/no characteristic shows its 'Yes' row only (the other is n − count);
    # the Word and CSV tables keep both.
    shown = t1[~t1["Level"].astype(str).isin(["No", "False"])].drop(columns=["Test"],
                                                                      errors="ignore")
    v = View("Table 1: baseline characteristics", None, shown.reset_index(drop=True),
             preset=preset, note="Yes/no characteristics: the 'Yes' row; the full table: "
                                 "report --layout table1 --format docx.")
    if group_by:
        tests = run(cohort.table1_tests, flt, group_by=group_by).table
        v.tests.append((tests, {"group_by": group_by, "visit": "baseline"}))
        v.note += " " + " ".join(lay.footnotes[1:])
    return v


def _endpoint_choice(run: _Run, flt: Filter, value: str | None):
    cols = [e.column for e in run(common.available_endpoints, flt).table]
    col = value if value in cols else cols[0]
    return col, schema.ENDPOINTS_BY_COLUMN[col]


def view_trajectory(run: _Run, flt: Filter, w: scenes.Scene, preset: str) -> View:
    """Biomarkers, one endpoint: trajectory with stars and the statistics table (as the page)."""
    col, ep = _endpoint_choice(run, flt, w.widget("bio_endpoint"))
    comparator = w.widget("bio_cmp", "baseline")
    if comparator not in biomarkers.COMPARATORS:
        comparator = "baseline"
    choice = run(biomarkers.test_choice, flt, endpoint=col).table.iloc[0]
    picked = w.widget("bio_method", "pre-specified")
    method = choice["method"] if picked == "pre-specified" else picked
    adjust = w.widget("bio_adjust", "none")
    summ = run(biomarkers.summary, flt, endpoints=[col]).table
    lon = run(biomarkers.longitudinal, flt, endpoints=[col], comparators=[comparator],
              adjust=adjust, include_mixed=method == "mixed_model").table
    rows = lon[lon["method"] == method].reset_index(drop=True)
    display, y, lo, hi, what = layouts.summary_columns(ep.kind, method)
    pv = rows[["visit_week", "p_adjusted"]].rename(columns={"p_adjusted": "p_value"})
    chart = charts.trajectory(summ[layouts.has_value(summ["n"])], y, lo, hi,
                              y_title=layouts.endpoint_name(ep), p_values=pv, title="")
    st = layouts.statistics_table(rows.assign(endpoint=col), summ, display)
    keep = ["Week", "n", "Summary", "Method", "p"] + (["p adjusted"] if adjust != "none" else [])
    v = View(f"{ep.label}: {what}; {layouts.method_words(method)} vs {comparator}", chart,
             st[keep].assign(Week=st["Week"].astype(str)),
             note="Stars: * p<0.05, ** p<0.01, *** p<0.001"
                  + (f" ({adjust}-adjusted)" if adjust != "none" else "") + ".",
             preset=preset)
    v.tests.append((rows, {}))
    return v


def view_figure1(run: _Run, flt: Filter, w: scenes.Scene, preset: str) -> View:
    """Biomarkers, all endpoints: the paper's Figure 1 and each endpoint at the final visit."""
    res = {k: run(c) for k, c in layouts.table2_calls(flt).items()}
    fig = layouts.figure1_frame(res["summ"].table, res["lon"].table)
    final = _final_week(run, flt)
    rows = []
    for label, sub in fig.groupby("label", sort=False):
        b = sub[sub["visit_week"] == 0]
        f = sub[sub["visit_week"] == final]
        rows.append({
            "Endpoint": label.split("\n")[0],  # the chart's facet label: endpoint, then test
            "Test": sub["method"].iloc[0],
            "Baseline": layouts.fmt_num(b["centre"].iloc[0]) if len(b) else "—",
            f"Week {final}": layouts.fmt_num(f["centre"].iloc[0]) if len(f) else "—",
            "P": layouts.fmt_p(f["p_value"].iloc[0]) if len(f) else "—",
        })
    lon = res["lon"].table
    # The tests behind Figure 1's stars, as logged comparisons (raw p of each method row).
    keys = {(r.endpoint, int(r.visit_week)) for r in fig.itertuples() if r.visit_week != 0}
    methods = {r.endpoint: r.method for r in fig.itertuples()}
    shown = lon[[(e, int(wk)) in keys and layouts.method_words(m) == methods.get(e)
                 and c == "baseline" for e, wk, m, c in
                 zip(lon["endpoint"], lon["visit_week"], lon["method"], lon["comparator"],
                     strict=True)]]
    v = View("Biomarker trajectories (Figure 1)", charts.small_multiples(fig, columns=4),
             pd.DataFrame(rows), note=f"P: week {final} against baseline, the test of "
                                      "Figure 1 for each endpoint.", preset=preset)
    v.tests.append((shown, {}))
    return v


def view_table2(run: _Run, flt: Filter, w: scenes.Scene, preset: str) -> View:
    """Biomarkers: the paper's Table 2 (the tests it prints are logged)."""
    lay = layouts.build("table2", run, flt)
    lon = run(layouts.table2_calls(flt)["lon"]).table
    v = View("Table 2: biomarkers by visit", None, lay.table, preset=preset,
             note=" ".join(lay.footnotes))
    v.tests.append((lon, {}))
    return v


def _remission_widgets(w: scenes.Scene, preset: str) -> tuple[str, bool, str]:
    p = w.widget("rem_preset", preset)
    if p not in schema.PRESETS:
        p = preset
    return (p, w.widget("rem_missing", "non-responder") == "observed only",
            w.widget("rem_noteval", "exclude"))


def view_remission_rates(run: _Run, flt: Filter, w: scenes.Scene, preset: str) -> View:
    """Remission: rates per visit with Wilson CIs (as the page), and the final/last numbers."""
    p, observed, not_eval = _remission_widgets(w, preset)
    rem = run(remission.rates, flt, preset=p, observed=observed,
              not_evaluable=not_eval).table
    rem = rem.assign(week=rem["visit_week"].astype(str),
                     label=rem["definition"].map(REMISSION_LABELS).fillna(rem["definition"]))
    available = [d for d in REMISSION_LABELS if d in set(rem["definition"])]
    defs = [d for d in (w.widgets.get("rem_defs") or REMISSION_DEFAULT) if d in available]
    shown = rem[rem["definition"].isin(defs or ["lldas"])].drop(columns=["visit_week"])
    imputation = "observed only" if observed else "non-responder"
    chart = charts.rates(shown, x="week", color="label", title="")
    final = str(_final_week(run, flt))
    rows = []
    for d in defs:
        row = {"Target": REMISSION_LABELS.get(d, d)}
        for wk, head in ((final, f"Week {final}"), ("last", "Last assessment")):
            r = rem[(rem["definition"] == d) & (rem["week"] == wk)]
            if len(r) and not layouts.is_missing(r["rate"].iloc[0]):
                r = r.iloc[0]
                count = layouts.fmt_count(r["n_achieved"], r["n_denominator"],
                                          layouts.rate_pct(r["rate"]))
                row[head] = f"{count}; {layouts.fmt_pct_ci(r['ci_low'], r['ci_high'], 1)}"
            else:
                row[head] = "—"
        rows.append(row)
    return View(f"Patients reaching each target ({imputation})", chart, pd.DataFrame(rows),
                note="n/N (%); 95 % Wilson CI in %. Renal responses count only patients with "
                     "active nephritis at baseline.", preset=p)


def view_disease_states(run: _Run, flt: Filter, w: scenes.Scene, preset: str) -> View:
    """Remission: share of patients in remission / LLDAS / active per visit."""
    p, _, _ = _remission_widgets(w, preset)
    states = run(remission.states, flt, preset=p).table
    chart = charts.stacked_states(states, title="")
    wide = states.assign(cell=[layouts.fmt_count(n, None, pc, 0) for n, pc in
                               zip(states["n"], states["pct"], strict=True)])
    table = wide.pivot_table(index="visit_week", columns="state", values="cell",
                             aggfunc="first").reset_index()
    order = [s for s in charts.STATE_ORDER if s in table.columns]
    table = table[["visit_week", *order]].fillna("0").rename(columns={"visit_week": "Week"})
    table["Week"] = table["Week"].astype(str)
    return View("Disease state per visit", chart, table,
                note="'LLDAS' counts patients in LLDAS but not in remission.", preset=p)


def view_time_to_target(run: _Run, flt: Filter, w: scenes.Scene, preset: str) -> View:
    """Treat to target: time to the first LLDAS or remission after baseline (Kaplan–Meier
    with its risk table), medians, Cox hazard ratio and log-rank when grouped."""
    p = w.widget("t2t_preset", preset) or preset
    strategy = w.widget("t2t_strategy", "composite") or "composite"
    definition = w.widget("t2t_def", "lldas") or "lldas"
    g = w.widget("t2t_group", "none")
    group_by = None if g in (None, "none") else g
    ttf = run(targets.time_to_first, flt, definition=definition, preset=p, strategy=strategy,
              group_by=group_by)
    name = treat_to_target.DEFINITION_LABELS.get(definition, definition)
    med = ttf["medians"]
    test_text = layouts.km_tests_text(ttf["tests"])
    chart = (charts.km_risk(ttf["curves"], ttf["risk"], medians=med, test_text=test_text)
             if len(ttf["curves"]) else None)
    cnt = ttf["counts"].iloc[0]
    return View(f"Time to first {name} (Kaplan–Meier)", chart, layouts.km_medians(med),
                preset=p,
                note=f"{treat_to_target.STRATEGY_LABELS[strategy]}. "
                     f"{layouts.fmt_num(cnt['n_at_baseline'], 0)} already in {name} at "
                     "baseline are reported apart.")


def _subgroup_widgets(run: _Run, flt: Filter, w: scenes.Scene):
    group_by = w.widget("sub_group", "class_group")
    if group_by not in schema.GROUPING_COLUMNS:
        group_by = "class_group"
    col, ep = _endpoint_choice(run, flt, w.widget("sub_endpoint"))
    outcome = "value" if ep.kind == "binary" else w.widget("sub_outcome", "value")
    return group_by, col, ep, outcome


def _group_label(group_by: str) -> str:
    return {c.name: c.label for c in schema.columns("patient_facts")}.get(group_by, group_by)


def view_subgroup_trajectory(run: _Run, flt: Filter, w: scenes.Scene, preset: str) -> View:
    """Subgroups: the endpoint by group over the visits and the between-group tests."""
    group_by, col, ep, outcome = _subgroup_widgets(run, flt, w)
    adjust = w.widget("sub_adjust", "holm")
    ss = run(subgroups.summary, flt, group_by=group_by, endpoint=col, outcome=outcome).table
    chart = charts.trajectory(ss.dropna(subset=["mean"]), "mean", "ci_low", "ci_high",
                              color="group", y_title=layouts.endpoint_name(ep), title="")
    tests = run(subgroups.tests, flt, group_by=group_by, endpoints=[col], outcome=outcome,
                adjust=adjust).table
    table = pd.DataFrame({
        "Week": tests["visit_week"].astype(str),
        "Test": [layouts.method_words(m, pm) for m, pm in
                 zip(tests["method"], tests["p_method"], strict=True)],
        "P": tests["p_value"].map(layouts.fmt_p),
    })
    if adjust != "none":
        table[f"P ({adjust})"] = tests["p_adjusted"].map(layouts.fmt_p)
    what = "change from baseline" if outcome == "change" else "value"
    v = View(f"{ep.label} ({what}) by {_group_label(group_by).lower()}", chart, table,
             note="Mean ± 95 % CI per group; tests compare the groups at each visit.",
             preset=preset)
    v.tests.append((tests, {"group_by": group_by}))
    return v


def view_forest(run: _Run, flt: Filter, w: scenes.Scene, preset: str) -> View:
    """Subgroups: change from baseline at one week per group (forest plot)."""
    group_by, col, ep, _ = _subgroup_widgets(run, flt, w)
    final = _final_week(run, flt)
    try:
        week = int(w.widget("sub_week", str(final)))
    except ValueError:
        week = final
    ch = run(subgroups.summary, flt, group_by=group_by, endpoint=col, outcome="change").table
    at = ch[ch["visit_week"] == week]
    ok = at.dropna(subset=["ci_low", "ci_high"])
    chart = (charts.forest(ok.assign(group=[f"{g} (n = {n})" for g, n in
                                            zip(ok["group"], ok["n"], strict=True)]),
                           x_title=f"Change in {layouts.endpoint_name(ep)} at week {week} "
                                   "(mean, 95 % CI)")
             if len(ok) else None)
    table = pd.DataFrame({
        "Group": at["group"].astype(str), "n": [layouts.fmt_num(n, 0) for n in at["n"]],
        "Mean change (95 % CI)": [
            f"{layouts.fmt_num(m)} ({layouts.fmt_ci(lo, hi)})" if not layouts.is_missing(lo)
            else "—" for m, lo, hi in zip(at["mean"], at["ci_low"], at["ci_high"],
                                          strict=True)],
    })
    return View(f"Change in {ep.label} at week {week} by subgroup", chart, table,
                note="No interval for groups with fewer than two patients.", preset=preset)


def view_table3(run: _Run, flt: Filter, w: scenes.Scene, preset: str) -> View:
    """Safety: the paper's Table 3."""
    lay = layouts.build("table3", run, flt)
    return View("Table 3: adverse events", None, lay.table, preset=preset,
                note=" ".join(lay.footnotes))


def view_ae_incidence(run: _Run, flt: Filter, w: scenes.Scene, preset: str) -> View:
    """Safety: patients with ≥ 1 event per category, Wilson CI."""
    inc = run(safety.incidence, flt).table
    chart = charts.bars(inc, x="rate", y="label", lo="ci_low", hi="ci_high",
                        x_title="Patients with ≥ 1 event (95 % Wilson CI)")
    table = pd.DataFrame({"Category": inc["label"],
                          "Patients": [layouts.fmt_count(n, k) for n, k in
                                       zip(inc["n_patients"], inc["n"], strict=True)],
                          "Events": [layouts.fmt_num(x, 0) for x in inc["n_events"]]})
    return View("Adverse events by category", chart, table, preset=preset)


VIEW_BUILDERS: dict[str, Callable[..., View]] = {
    "patient_flow": view_patient_flow, "table1": view_table1, "trajectory": view_trajectory,
    "figure1": view_figure1, "table2": view_table2, "remission_rates": view_remission_rates,
    "disease_states": view_disease_states, "time_to_target": view_time_to_target,
    "subgroup_trajectory": view_subgroup_trajectory, "forest": view_forest,
    "table3": view_table3, "ae_incidence": view_ae_incidence,
}


# --- rendering a deck ----------------------------------------------------------------------


@dataclass
class SlideContent:
    """One slide: title, chart PNG, key table, context, status, notes."""

    title: str
    scene: scenes.Scene
    context: charts.ExportContext
    view: View | None
    png: bytes | None = None
    pin_message: str = ""
    projector_png: bytes | None = None


@dataclass
class DeckExport:
    """A rendered deck: the .pptx bytes, the comparison log, the slides, projector PNGs."""

    pptx: bytes
    log: ComparisonLog
    slides: list[SlideContent]


def render_scene(run: _Run, scene: scenes.Scene, log: ComparisonLog, version: str,
                 date: str, preset: str = "standard") -> tuple[View | None, charts.ExportContext]:
    """Compute a scene's view through the seam, log the tests it displays, and its context."""
    flt = scene.filter
    counted = run(cohort.patient_count, flt)
    view_name = scene.slide_view
    view = None
    if counted.table.empty:
        # Shared mode's denominator gate: nothing of this filter leaves, not even its count;
        # the slide says why (as the page does).
        k = n = None
        view = View(scene.name, preset=preset,
                    message=counted.notes[0] if counted.notes else "Not shown.")
    else:
        cnt = counted.table.iloc[0]
        # A count the output policy withheld stays its text ("<11"), as on the page.
        k, n = (v if isinstance(v, str) else int(v) for v in (cnt["n_match"], cnt["n_cohort"]))
    sentence = flt.sentence(k, n)
    if view is None and view_name is not None and (isinstance(k, str) or k > 0):
        view = VIEW_BUILDERS[view_name](run, flt, scene, preset)
        for df, extra in view.tests:
            log.add_frame(df, flt, sentence, page=scene.page, scene=scene.name,
                          prespecified=scene.prespecified, **extra)
    used = view.preset if view else preset
    ctx = charts.ExportContext(sentence, "not shown" if k is None else k, used, version, date,
                               scene.status)
    return view, ctx


def build_deck(db: Database, deck: scenes.Deck, preset: str = "standard",
               date: str | None = None, candidates: Sequence[str | Path] | None = None,
               projector: bool = False, policy: results.Policy = results.OPEN) -> DeckExport:
    """Render every scene of a deck (pinned scenes from their version's file when it exists)
    and write the .pptx; `projector` also renders each chart at 1920×1080. `policy` is the
    seam's output policy (shared mode applies its disclosure rules to the slides too)."""
    date = date or dt.date.today().isoformat()
    log = ComparisonLog()
    current = scenes.data_version(db)
    cands = scenes.version_candidates(db.path) if candidates is None else list(candidates)
    slides: list[SlideContent] = []
    opened: dict[Path, Database] = {}
    try:
        for sc in deck.scenes:
            pin = scenes.check_pin(sc, current, cands)
            src, version = db, current
            if pin.changed and pin.old_path is not None:
                src = opened.get(pin.old_path) or Database(pin.old_path)
                opened[pin.old_path] = src
                version = pin.pinned
            view, ctx = render_scene(_Run(src, policy), sc, log, version, date, preset)
            slides.append(SlideContent(sc.name, sc, ctx, view, pin_message=pin.message))
    finally:
        for d in opened.values():
            d.close()
    m = log.tested()
    for s in slides:
        s.context = dataclasses.replace(s.context, comparisons=m)
        if s.view is not None and s.view.chart is not None:
            s.png = slide_png(s.view.chart)
            if projector:
                # Alone on a projector the picture needs its scene's name as a title.
                s.projector_png = charts.to_projector_png(
                    s.view.chart.properties(title=s.title), s.context)
    return DeckExport(deck_pptx(deck, slides, log), log, slides)


def slide_png(chart) -> bytes:
    """The chart for a slide: presenter type, rendered wide and crisp (2×)."""
    import vl_convert as vlc

    final = charts.finalize(chart, presenter=True)
    spec = charts._fixed_width(final, 980)
    if isinstance(spec.get("height"), (int, float)):
        spec["height"] = min(int(spec["height"]), 520)
    return vlc.vegalite_to_png(spec, scale=2)


# --- PowerPoint ------------------------------------------------------------------------------

_STATUS_RGB = {scenes.STATUS_PRESPECIFIED: (0x00, 0x7A, 0x5A),
               scenes.STATUS_EXPLORATORY: (0xC0, 0x4A, 0x00)}


def deck_pptx(deck: scenes.Deck, slides: Sequence[SlideContent], log: ComparisonLog) -> bytes:
    """A 16:9 .pptx: a title slide, one slide per scene, and the comparison log."""
    from pptx import Presentation
    from pptx.util import Inches

    prs = Presentation()
    prs.slide_width, prs.slide_height = Inches(13.333), Inches(7.5)
    prs.core_properties.title = deck.title
    blank = prs.slide_layouts[6]
    summ = log.summary()
    _title_slide(prs.slides.add_slide(blank), deck, slides, summ)
    for s in slides:
        _scene_slide(prs.slides.add_slide(blank), s, summ)
    _log_slide(prs.slides.add_slide(blank), log, summ,
               slides[0].context if slides else None)
    buf = io.BytesIO()
    prs.save(buf)
    return buf.getvalue()


def _text(slide, left, top, width, height, text, size, bold=False, rgb=(0x22, 0x22, 0x22),
          align=None):
    from pptx.dml.color import RGBColor
    from pptx.util import Pt

    box = slide.shapes.add_textbox(left, top, width, height)
    tf = box.text_frame
    tf.word_wrap = True
    lines = text.split("\n")
    for i, line in enumerate(lines):
        p = tf.paragraphs[0] if i == 0 else tf.add_paragraph()
        if align is not None:
            p.alignment = align
        r = p.add_run()
        r.text = line
        r.font.size = Pt(size)
        r.font.bold = bold
        r.font.color.rgb = RGBColor(*rgb)
    return box


def _badge(slide, status: str):
    from pptx.dml.color import RGBColor
    from pptx.enum.shapes import MSO_SHAPE
    from pptx.enum.text import PP_ALIGN
    from pptx.util import Inches, Pt

    shape = slide.shapes.add_shape(MSO_SHAPE.ROUNDED_RECTANGLE, Inches(10.55), Inches(0.3),
                                   Inches(2.45), Inches(0.55))
    shape.fill.solid()
    shape.fill.fore_color.rgb = RGBColor(*_STATUS_RGB.get(status, (0x44, 0x44, 0x44)))
    shape.line.fill.background()
    tf = shape.text_frame
    tf.paragraphs[0].alignment = PP_ALIGN.CENTER
    r = tf.paragraphs[0].add_run()
    r.text = status.upper()
    r.font.size = Pt(18)
    r.font.bold = True
    r.font.color.rgb = RGBColor(0xFF, 0xFF, 0xFF)


def _comparisons_line(summ: dict) -> str:
    m = summ["m"]
    return (f"Comparisons looked at in this deck: {m} · about {m * summ['alpha']:.1f} expected "
            f"p < {summ['alpha']:g} by chance alone · Holm / Benjamini–Hochberg p on the last "
            "slide")


def _footer(slide, s: SlideContent, summ: dict):
    from pptx.util import Inches

    top = 6.55
    if s.pin_message:
        _text(slide, Inches(0.4), Inches(top - 0.45), Inches(12.5), Inches(0.45), s.pin_message,
              11, bold=True, rgb=(0xB0, 0x00, 0x20))
    _text(slide, Inches(0.4), Inches(top), Inches(12.5), Inches(0.4), s.context.line(), 12)
    _text(slide, Inches(0.4), Inches(top + 0.4), Inches(12.5), Inches(0.4),
          _comparisons_line(summ), 12, bold=True,
          rgb=_STATUS_RGB.get(s.context.status, (0x22, 0x22, 0x22)))


def _scene_slide(slide, s: SlideContent, summ: dict):
    from pptx.util import Inches

    _text(slide, Inches(0.4), Inches(0.25), Inches(10.0), Inches(0.75), s.title, 28, bold=True)
    _badge(slide, s.context.status)
    v = s.view
    sub = v.title if v is not None and v.title != s.title else ""
    if sub:
        _text(slide, Inches(0.4), Inches(0.95), Inches(10.0), Inches(0.4), sub, 16,
              rgb=(0x44, 0x44, 0x44))
    top, bottom = 1.45, 6.0
    if v is None or v.message:
        why = (v.message if v is not None else
               "No patient matches this scene's filter." if s.context.n == 0 else
               f"The {s.scene.page} page has no slide view; present it live.")
        _text(slide, Inches(0.4), Inches(2.5), Inches(12.5), Inches(1.0), why, 20)
    elif s.png is not None and v.table is not None and len(v.table):
        # The table takes the width its text needs at 12 pt (3.5–6 in); the chart the rest.
        natural = sum(x * 0.52 * 12 / 72 + 8 / 72 for x in _col_weights(v.table))
        tab_w = min(6.0, max(3.5, natural))
        img_w = 12.5 - 0.2 - tab_w
        _picture(slide, s.png, 0.4, top, img_w, bottom - top)
        _table(slide, v.table, 0.4 + img_w + 0.2, top, tab_w, bottom - top)
    elif s.png is not None:
        _picture(slide, s.png, 0.4, top, 12.5, bottom - top)
    elif v.table is not None:
        left_out = _table(slide, v.table, 0.4, top, 12.5, bottom - top)
        if left_out:
            v.note = (f"{left_out} more rows in the Word table (report --layout … --format "
                      "docx). " + v.note)
    if v is not None and v.note:
        _text(slide, Inches(0.4), Inches(bottom + 0.05), Inches(12.5), Inches(0.45), v.note, 11,
              rgb=(0x44, 0x44, 0x44))
    _footer(slide, s, summ)
    notes = [s.scene.notes, s.pin_message, v.note if v else "",
             f"Open live: {s.scene.url(deck=None)}"]
    slide.notes_slide.notes_text_frame.text = "\n\n".join(t for t in notes if t)


def _picture(slide, png: bytes, left, top, width, height):
    from pptx.util import Inches

    w, h = charts.png_size(png)
    scale = min(width / w, height / h)
    pw, ph = w * scale, h * scale
    slide.shapes.add_picture(io.BytesIO(png), Inches(left + (width - pw) / 2), Inches(top),
                             Inches(pw), Inches(ph))


PANEL_ROWS = 20  # rows per panel of a long table on a slide
MAX_PANELS = 3


def _table(slide, df: pd.DataFrame, left, top, width, height) -> int:
    """A native table; a long narrow one in up to three side-by-side panels. Returns the rows
    left out (said under the table) when even that does not fit."""
    rows = len(df)
    panels = 1
    if rows > PANEL_ROWS and len(df.columns) <= 4 and width > 10:
        panels = min(MAX_PANELS, -(-rows // PANEL_ROWS))
    per = -(-rows // panels)
    per = min(per, PANEL_ROWS) if rows > PANEL_ROWS else per
    gap = 0.15
    pw = (width - gap * (panels - 1)) / panels
    for i in range(panels):
        part = df.iloc[i * per:(i + 1) * per]
        if len(part):
            _native_table(slide, part, left + i * (pw + gap), top, pw, height)
    return max(0, rows - per * panels)


def _col_weights(df: pd.DataFrame) -> list[int]:
    """Characters each column needs: its longest value, or the longest word of its header."""
    out = []
    for c in df.columns:
        head = max((len(w) for w in str(c).split()), default=1)
        vals = max((len(_cell(v)) for v in df[c].tolist()), default=1)
        out.append(max(4, head, min(vals, 44)) + 2)
    return out


def _native_table(slide, df: pd.DataFrame, left, top, width, height):
    from pptx.util import Emu, Inches

    n_rows = len(df) + 1
    weights = _col_weights(df)
    pad = 8 / 72  # a cell's left + right margins (4 pt each), in inches
    # Type that fits: about 0.52 em per character across (plus margins), 1.75 em per row
    # down (measured on LibreOffice's rendering of these tables).
    by_width = (width - pad * len(weights)) * 72 / (0.52 * sum(weights))
    by_height = height * 72 / (1.75 * n_rows)
    size = int(max(7, min(16, by_width, by_height)))
    row_h = Inches(max(size * 1.6 / 72, min(0.45, height / n_rows)))
    shape = slide.shapes.add_table(n_rows, len(df.columns), Inches(left), Inches(top),
                                   Inches(width), row_h * n_rows)
    table = shape.table
    need = [x * 0.52 * size / 72 + pad for x in weights]
    for i, x in enumerate(need):
        table.columns[i].width = Emu(int(Inches(width) * x / sum(need)))
    for r in range(n_rows):
        table.rows[r].height = row_h
    for j, c in enumerate(df.columns):
        _fill(table.cell(0, j), str(c), size, bold=True)
    for i, row in enumerate(df.itertuples(index=False), start=1):
        for j, v in enumerate(row):
            _fill(table.cell(i, j), _cell(v), size)
    return table


def _fill(cell, text: str, size: int, bold: bool = False):
    from pptx.util import Pt

    cell.text = text
    cell.margin_top = cell.margin_bottom = Pt(1)
    cell.margin_left = cell.margin_right = Pt(4)
    for p in cell.text_frame.paragraphs:
        for r in p.runs:
            r.font.size = Pt(size)
            r.font.bold = bold
        # An empty cell's line height comes from its end-of-paragraph properties (18 pt by
        # default), which would make every row with an empty cell tall.
        p._p.get_or_add_endParaRPr().set("sz", str(int(size * 100)))


def _title_slide(slide, deck: scenes.Deck, slides: Sequence[SlideContent], summ: dict):
    from pptx.util import Inches

    size = 40 if len(deck.title) <= 40 else 32  # two lines at most at 32 pt
    _text(slide, Inches(0.8), Inches(1.2), Inches(11.7), Inches(1.5), deck.title, size,
          bold=True)
    if deck.description:
        _text(slide, Inches(0.8), Inches(2.8), Inches(11.7), Inches(0.8), deck.description, 18)
    pre = sum(s.scene.prespecified for s in slides)
    ctx = slides[0].context if slides else None
    lines = [f"{len(slides)} scenes: {pre} pre-specified, {len(slides) - pre} exploratory.",
             _comparisons_line(summ) + "."]
    if ctx is not None:
        lines.append(f"Data version {ctx.data_version[:8]} · {ctx.date}")
    _text(slide, Inches(0.8), Inches(3.8), Inches(11.7), Inches(1.6), "\n".join(lines), 18)


def _log_slide(slide, log: ComparisonLog, summ: dict, ctx: charts.ExportContext | None,
               max_rows: int = 14):
    from pptx.util import Inches

    if ctx is not None:
        _text(slide, Inches(0.4), Inches(7.0), Inches(12.5), Inches(0.35),
              f"Data version {ctx.data_version[:8]} · {ctx.date} · α = {summ['alpha']:g}; "
              "Holm controls the family-wise error, Benjamini–Hochberg the false discovery "
              "rate, both across every comparison of the deck.", 11)

    _text(slide, Inches(0.4), Inches(0.25), Inches(12.5), Inches(0.75),
          "Comparisons looked at", 28, bold=True)
    _text(slide, Inches(0.4), Inches(1.0), Inches(12.5), Inches(0.9), log.sentence(), 14)
    t = log.table()
    t = t[t["p_value"].notna()].sort_values("p_value", kind="stable")
    if t.empty:
        return
    shown = pd.DataFrame({
        "Endpoint": t["endpoint"], "Visit": t["visit"], "Group by": t["group_by"],
        "Test": t["method"], "Filter": t["filter"], "P": t["p_value"].map(layouts.fmt_p),
        "Holm": t["p_holm"].map(layouts.fmt_p), "BH": t["p_bh"].map(layouts.fmt_p),
        "": t["status"],
    }).head(max_rows)
    _native_table(slide, shown, 0.4, 1.95, 12.5, 4.5)
    more = len(t) - len(shown)
    note = (f"The {len(shown)} smallest p of {len(t)}; the whole log: "
            "`slides --log FILE.csv`." if more > 0 else
            "Holm and BH adjust across every comparison of the deck.")
    _text(slide, Inches(0.4), Inches(6.7), Inches(12.5), Inches(0.4), note, 11)


def _cell(v) -> str:
    """A table cell as text (floats to one decimal, as a Markdown table prints them)."""
    if v is None or v is pd.NA:
        return ""
    if isinstance(v, float):
        return "" if math.isnan(v) else f"{v:.1f}"
    return str(v)


# --- Word ------------------------------------------------------------------------------------

def layout_docx(db: Database, lay: layouts.Layout, preset: str = "standard",
                date: str | None = None) -> bytes:
    """A paper layout (`report.layout`: Table 1, 2 or 3) as an editable .docx: its cells, its
    headers (n in each column header), the test of each P named in a lettered footnote, the
    layout's own footnotes, and the context (filter, definitions, data version, date)."""
    df = lay.table
    headers = [str(c) for c in df.columns]
    footnotes: list[str | tuple[str, str]] = []
    marks: dict[int, str] = {}
    if "Test" in df.columns:
        used = [m for m in dict.fromkeys(df["Test"]) if m]
        letters = {m: "abcdefghijklmnop"[i] for i, m in enumerate(used)}
        marks = {i: letters[m] for i, m in enumerate(df["Test"]) if m}
        footnotes += [(letters[m], m) for m in used]
        df = df.drop(columns=["Test"])
        headers = [h for h in headers if h != "Test"]
    footnotes += list(lay.footnotes)
    context = (f"{lay.caption} · definitions: {preset} · data version "
               f"{scenes.short_version(scenes.data_version(db))} · "
               f"{date or dt.date.today().isoformat()}")
    return table_docx(df, lay.title, headers, footnotes, context, marks,
                      landscape=len(df.columns) > 4)


def table_docx(df: pd.DataFrame, title: str, headers: Sequence[str],
               footnotes: Sequence[str | tuple[str, str]], context: str,
               marks: dict[int, str] | None = None, landscape: bool = False) -> bytes:
    """A journal-style table (three rules, no verticals) with a title, context and footnotes;
    a footnote given as (letter, text) is the one a superscript letter in the table points to."""
    from docx import Document
    from docx.enum.section import WD_ORIENT
    from docx.shared import Cm, Pt

    doc = Document()
    doc.core_properties.title = title
    sec = doc.sections[0]
    if landscape:
        sec.orientation = WD_ORIENT.LANDSCAPE
        sec.page_width, sec.page_height = sec.page_height, sec.page_width
    for side in ("left_margin", "right_margin", "top_margin", "bottom_margin"):
        setattr(sec, side, Cm(1.8))
    style = doc.styles["Normal"]
    style.font.name = "Calibri"
    style.font.size = Pt(9)
    style.paragraph_format.space_after = Pt(0)
    style.paragraph_format.space_before = Pt(0)
    p = doc.add_paragraph()
    r = p.add_run(title)
    r.bold = True
    r.font.size = Pt(11)
    cp = doc.add_paragraph(context)
    cp.runs[0].font.size = Pt(9)
    cp.paragraph_format.space_after = Pt(6)
    table = doc.add_table(rows=len(df) + 1, cols=len(df.columns))
    table.autofit = True
    for j, h in enumerate(headers):
        cell = table.cell(0, j)  # a new cell holds one empty paragraph
        run = cell.paragraphs[0].add_run(str(h))
        run.bold = True
        _borders(cell, top=True, bottom=True)
    _repeat_header(table.rows[0])
    # Columns as wide as their text needs (longest value, or the longest header word).
    table.autofit = False
    usable = sec.page_width - sec.left_margin - sec.right_margin
    weights = [max(max((len(w) for w in str(h).split()), default=1),
                   max((len(_cell(v)) for v in df[c].tolist()), default=1))
               for h, c in zip(headers, df.columns)]
    weights = [min(max(w, 8), 40) + 5 for w in weights]  # + the cell margins (~5 characters)
    for j, w in enumerate(weights):
        width = int(usable * w / sum(weights))
        table.columns[j].width = width
        for cell in table.columns[j].cells:
            cell.width = width
    marks = marks or {}
    p_col = list(df.columns).index("P") if "P" in df.columns else None
    for i, row in enumerate(df.itertuples(index=False)):
        last = i == len(df) - 1
        for j, v in enumerate(row):
            cell = table.cell(i + 1, j)
            cell.paragraphs[0].add_run(_cell(v))
            if j == p_col and i in marks and _cell(v) not in ("", "–"):
                sup = cell.paragraphs[0].add_run(marks[i])
                sup.font.superscript = True
            if last:
                _borders(cell, bottom=True)
    for i, note in enumerate(footnotes):
        fp = doc.add_paragraph()
        if i == 0:
            fp.paragraph_format.space_before = Pt(4)
        if isinstance(note, tuple):
            s = fp.add_run(note[0])
            s.font.superscript = True
            fp.add_run(" " + note[1])
        else:
            fp.add_run(note)
        for run in fp.runs:
            run.font.size = Pt(8)
    buf = io.BytesIO()
    doc.save(buf)
    return buf.getvalue()


def _borders(cell, top: bool = False, bottom: bool = False) -> None:
    from docx.oxml import OxmlElement
    from docx.oxml.ns import qn

    tc_pr = cell._tc.get_or_add_tcPr()
    borders = tc_pr.find(qn("w:tcBorders"))
    if borders is None:
        borders = OxmlElement("w:tcBorders")
        tc_pr.append(borders)
    for edge, on in (("top", top), ("bottom", bottom)):
        if on:
            el = OxmlElement(f"w:{edge}")
            el.set(qn("w:val"), "single")
            el.set(qn("w:sz"), "8")
            el.set(qn("w:space"), "0")
            el.set(qn("w:color"), "000000")
            borders.append(el)


def _repeat_header(row) -> None:
    from docx.oxml import OxmlElement
    from docx.oxml.ns import qn

    tr_pr = row._tr.get_or_add_trPr()
    el = OxmlElement("w:tblHeader")
    el.set(qn("w:val"), "true")
    tr_pr.append(el)


# --- CLI -------------------------------------------------------------------------------------


def load_deck(ref: str) -> scenes.Deck:
    """A deck from a file path, or a name under decks/."""
    p = Path(ref)
    if p.suffix.lower() in (".toml", ".json") and p.exists():
        return scenes.load(p)
    return scenes.load(scenes.resolve(ref, DECKS_DIR))


def cli_slides(args) -> int:
    """`python -m lupus_dash slides --db FILE --cohort NAME [--filter ...] [--deck D] --pptx OUT`"""
    db = Database(args.db)
    try:
        flt = None
        if args.cohort:
            flt = Filter.from_cli(args.cohort, args.filter)
            flt.validate(db)
        elif args.filter:
            raise FilterError("--filter needs --cohort")
        if args.deck:
            deck = load_deck(args.deck)
            if flt is not None:
                # The same views for another filter: a scene stays pre-specified only when
                # its filter is unchanged.
                for s in deck.scenes:
                    s.prespecified = s.prespecified and scenes.same_filter(s.filter, flt)
                    s.filter = flt
        else:
            if flt is None:
                raise FilterError("--cohort is required without --deck")
            deck = scenes.default_deck(flt, args.definitions, prespecified=args.prespecified,
                                       data_version=scenes.data_version(db))
        problems = scenes.validate_against(deck, db)
        if problems:
            for p in problems:
                print(f"error: {p}", file=sys.stderr)
            return EXIT_BAD_INPUT
    except (scenes.DeckError, FilterError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    out = build_deck(db, deck, preset=args.definitions, projector=bool(args.png_dir))
    Path(args.pptx).write_bytes(out.pptx)
    if args.png_dir:
        folder = Path(args.png_dir)
        folder.mkdir(parents=True, exist_ok=True)
        for i, s in enumerate(out.slides, start=1):
            if s.projector_png:
                (folder / f"{i:02d}_{_slug(s.title)}.png").write_bytes(s.projector_png)
    if args.log:
        text = out.log.to_json() if args.log.endswith(".json") else out.log.to_csv()
        Path(args.log).write_text(text, encoding="utf-8")
    if args.save_deck:
        scenes.save(deck, args.save_deck)
    print(f"wrote {len(out.slides) + 2} slides to {args.pptx} ({len(out.slides)} scenes; "
          f"{out.log.sentence()})", file=sys.stderr)
    return 0


def _slug(name: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in name.lower()).strip("_")[:60]
