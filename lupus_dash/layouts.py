"""The text of every paper-style table, one layout for the screen, the CLI and the exports.

A layout takes `Result`s (from `results.run`, so the output policy has seen
them) and returns a `Layout`: a title, a table whose cells are text, a caption
(the filter sentence) and footnotes. The Overview, Biomarkers and Safety pages
and `report --layout tableN` render the same object, so the screen and the
command line print identical text. `LAYOUTS` names each layout with the calls
it needs and the `report` arguments that print it.

One number formatter (`fmt_num`) and one p formatter (`fmt_p`) serve the whole
product; a value the output policy replaced with text (e.g. "<11") passes
through both unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

import numpy as np
import pandas as pd

from . import schema
from .analyses import biomarkers, cohort, safety
from .filters import Filter
from .results import Call, Result

MISSING_TEXT = "–"  # a cell with no value (journal convention)

# Decimals per endpoint in the paper tables (the seed paper's precision).
DECIMALS = {"c3_g_l": 2, "c4_g_l": 2, "cd19_pct": 1, "urine_protein_g_24h": 2, "upcr_g_g": 2,
            "sledai2k": 0, "pga": 1, "prednisone_mg_day": 1, "prednisone_mg_kg_day": 2,
            "albumin_g_l": 1, "cumulative_prednisone_g": 1,
            "creatinine_umol_l": 0, "egfr_ml_min": 0, "anti_dsdna_iu_ml": 0,
            "age_at_onset_years": 1, "age_at_baseline_years": 1, "disease_duration_months": 1,
            "follow_up_months": 1, "weight_kg": 1, "height_cm": 1}

METHOD_WORDS = {
    "paired_t": "Paired t-test",
    "wilcoxon": "Wilcoxon signed-rank",
    "mcnemar_exact": "McNemar, exact",
    "fisher": "Fisher's exact",
    "rm_anova": "Repeated-measures ANOVA",
    "rm_anova_bonferroni": "RM-ANOVA pairwise, Bonferroni",
    "friedman": "Friedman",
    "mixed_model": "Mixed model (Satterthwaite df)",
    "mann_whitney": "Mann–Whitney U",
    "kruskal": "Kruskal–Wallis",
    "welch_t": "Welch t-test",
    "binary_contrast": "Fisher's exact (risk difference, odds ratio)",
    "chi2": "Chi-square",
    "logrank": "Log-rank",
}


def is_missing(x) -> bool:
    """None, NA or NaN (a value the table prints as missing)."""
    if x is None or x is pd.NA:
        return True
    try:
        return bool(isinstance(x, float | np.floating) and math.isnan(x))
    except TypeError:
        return False


def _largest(values: pd.Series):
    """The largest number of a column that may hold withheld text; the text if no number."""
    nums = pd.to_numeric(values, errors="coerce")
    if nums.notna().any():
        return nums.max()
    texts = [v for v in values if isinstance(v, str)]
    return texts[0] if texts else None


def fmt_num(x, decimals: int | None = None, missing: str = MISSING_TEXT) -> str:
    """A number as a table prints it: `decimals` places, else 3 significant digits
    (whole numbers from 1,000 up); text (a suppressed cell) passes through."""
    if isinstance(x, str):
        return x
    if is_missing(x):
        return missing
    x = float(x)
    if decimals is not None:
        return f"{x:.{decimals}f}"
    if x == 0:
        return "0"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.3g}"


def fmt_p(p, missing: str = MISSING_TEXT) -> str:
    """A p-value as printed for a clinician; the one p formatter of the product.

    `<0.001` below 0.001 (never 0, never None); three decimals below 0.0995 (0.042,
    0.004; 0.0625 → 0.063, half up as a reader rounds); two decimals from there (0.10,
    0.31, 1.00); a p in [0.0495, 0.05) keeps four significant digits (0.04996) so that
    rounding never moves it onto 0.05. Text (a suppressed cell) passes through.
    """
    if isinstance(p, str):
        return p
    if is_missing(p) or p < 0:
        return missing
    v = float(p)
    if v < 0.001:
        return "<0.001"
    if 0.0495 <= v < 0.05:
        return f"{v:.4g}"
    places = "0.001" if v < 0.0995 else "0.01"
    return str(Decimal(repr(min(v, 1.0))).quantize(Decimal(places), rounding=ROUND_HALF_UP))


def fmt_count(k, n=None, pct: float | None = None, decimals: int = 1) -> str:
    """`k/n (pct %)`, `k (pct %)` or `k`; suppressed text passes through."""
    if isinstance(k, str) or is_missing(k):
        return fmt_num(k)
    text = f"{int(k)}/{fmt_num(n, 0)}" if n is not None else f"{int(k)}"
    if pct is not None and not isinstance(pct, str) and not is_missing(pct):
        text += f" ({pct:.{decimals}f} %)"
    return text


def fmt_pct(rate, decimals: int = 1) -> str:
    """A proportion (0–1) as a percentage, `12.5 %`; text passes through."""
    if isinstance(rate, str) or is_missing(rate):
        return fmt_num(rate)
    return f"{rate * 100:.{decimals}f} %"


def num(x) -> float:
    """A value as a number for arithmetic: withheld text ("<11", "—") and missing as NaN."""
    if isinstance(x, str) or is_missing(x):
        return math.nan
    return float(x)


def has_value(values: pd.Series) -> pd.Series:
    """Rows with something to show: a positive number, or text the output policy put in
    place of one (a withheld "<11" still means someone is there)."""
    return values.map(lambda v: isinstance(v, str) or (not is_missing(v) and float(v) > 0))


def fmt_pct_ci(lo, hi, decimals: int = 1) -> str:
    """A proportion's CI in percent, `12.0 to 30.5`; withheld text passes through."""
    for v in (lo, hi):
        if isinstance(v, str):
            return v
    return fmt_ci(num(lo) * 100, num(hi) * 100, decimals)


def fmt_ci(lo, hi, decimals: int | None = None) -> str:
    """`lo to hi` (blank when either end is missing)."""
    if is_missing(lo) or is_missing(hi):
        return ""
    return f"{fmt_num(lo, decimals)} to {fmt_num(hi, decimals)}"


ESTIMATE_WORDS = {"mean_difference": "mean difference", "hodges_lehmann": "HL shift",
                  "hl_shift": "HL shift", "risk_difference": "risk difference",
                  "odds_ratio": "odds ratio"}


def estimate_text(x, name: str | None = None) -> str:
    """An estimate with what it is, '0.21 (HL shift)'; blank when missing."""
    if isinstance(x, str):
        return x
    if is_missing(x):
        return ""
    words = ESTIMATE_WORDS.get(name or "", name or "")
    return f"{fmt_num(x)} ({words})" if words else fmt_num(x)


def method_words(method: str, p_method: str | None = None) -> str:
    """A method in words, with the kind of p ('Wilcoxon signed-rank, exact')."""
    base = METHOD_WORDS.get(method, method)
    if p_method in ("exact", "asymptotic") and method in ("wilcoxon", "mann_whitney"):
        return f"{base}, {p_method}"
    return base


def week_label(w) -> str:
    return "Baseline" if w == 0 else ("Last assessment" if w == "last" else f"Week {w}")


def yes_no(level: str) -> str:
    return {"True": "Yes", "False": "No"}.get(level, level)


@dataclass
class Layout:
    """A paper-style table: title, text cells, caption (filter sentence) and footnotes."""

    title: str
    table: pd.DataFrame
    caption: str = ""
    footnotes: list[str] = field(default_factory=list)

    def to_markdown(self) -> str:
        """GitHub-flavoured Markdown: title, caption, table, footnotes."""
        cols = [str(c) for c in self.table.columns]
        lines = [f"**{self.title}**", ""]
        if self.caption:
            lines += [self.caption, ""]
        lines.append("| " + " | ".join(cols) + " |")
        lines.append("|" + "|".join("---" for _ in cols) + "|")
        for row in self.table.itertuples(index=False):
            lines.append("| " + " | ".join(str(v).replace("|", "\\|") for v in row) + " |")
        if self.footnotes:
            lines += [""] + [f"{note}" for note in self.footnotes]
        return "\n".join(lines) + "\n"

    def to_csv(self) -> str:
        return self.table.to_csv(index=False)


# --- Table 1 ------------------------------------------------------------------------

# Variables printed as median (P25, P75) in Table 1 (skewed, as the seed paper did).
TABLE1_SKEWED = frozenset({"sledai2k", "urine_protein_g_24h", "upcr_g_g", "prednisone_mg_day",
                           "disease_duration_months", "anti_dsdna_iu_ml", "pga",
                           "cumulative_prednisone_g"})


def _unit_of(var: str) -> str:
    for c in (*schema.columns("patient_facts"), *schema.VISIT_COLUMNS):
        if c.name == var:
            return c.unit or ""
    return ""


def table1_calls(flt: Filter, group_by: str | None = None) -> dict[str, Call]:
    calls = {"t1": Call.of(cohort.table1, flt, group_by=group_by)}
    if group_by:
        calls["tests"] = Call.of(cohort.table1_tests, flt, group_by=group_by)
    return calls


def table1(t1: Result, tests: Result | None = None) -> Layout:
    """Table 1: one row per characteristic (or level), one column per group with its n."""
    df = t1.table
    if df.empty:
        return Layout("Table 1. Baseline characteristics", pd.DataFrame(
            columns=["Characteristic", "Level"]))
    groups = list(dict.fromkeys(df["group"]))
    # n per group column: the number of patients (the largest n of any row in it); in
    # shared mode a withheld n is text ("<11") and stays text.
    group_n = {g: _largest(sub["n"]) for g, sub in df.groupby("group", sort=False)}
    headers = {g: f"{g} (n = {fmt_num(group_n[g], 0)})" for g in groups}
    rows: dict[tuple, dict] = {}
    skewed_used, partial = False, False
    for r in df.itertuples(index=False):
        numeric = is_missing(r.level)
        key = (r.variable, None if numeric else str(r.level))
        if numeric:
            d = DECIMALS.get(r.variable, 1)
            if isinstance(r.n, str) or not r.n:
                cell = fmt_num(r.mean) if isinstance(r.mean, str) else MISSING_TEXT
            elif r.variable in TABLE1_SKEWED:
                skewed_used = True
                cell = f"{fmt_num(r.median, d)} ({fmt_num(r.p25, d)}, {fmt_num(r.p75, d)})"
            else:
                cell = f"{fmt_num(r.mean, d)} ± {fmt_num(r.sd, d)}"
            if (not isinstance(r.n, str) and not isinstance(group_n[r.group], str) and r.n
                    and r.n < group_n[r.group]):
                partial = True
                cell += f" [n = {int(r.n)}]"
        else:
            cell = fmt_count(r.count, None, r.pct)
        unit = _unit_of(r.variable)
        label = f"{r.label} ({unit})" if unit and numeric else r.label
        rows.setdefault(key, {"Characteristic": label,
                              "Level": "" if key[1] is None else yes_no(key[1])})
        rows[key][headers[r.group]] = cell
    out = pd.DataFrame(list(rows.values()),
                       columns=["Characteristic", "Level", *headers.values()]).fillna("")
    notes = ["Numbers: mean ± SD" + ("; median (P25, P75) for skewed variables"
                                     if skewed_used else "")
             + "; categories: n (%). Quartiles as SPSS (R type 6)."]
    if partial:
        notes.append("[n = …]: patients with a value where fewer than the column's n.")
    if tests is not None and not tests.table.empty:
        tt = tests.table
        pmap = dict(zip(tt["variable"], tt["p_value"], strict=True))
        mmap = dict(zip(tt["variable"], tt["method"], strict=True))
        first = ~pd.Series([k[0] for k in rows]).duplicated().to_numpy()
        out["P"] = [fmt_p(pmap[k[0]]) if f and k[0] in pmap else ""
                    for k, f in zip(rows, first, strict=True)]
        reasons = sorted({r for r in tt["reason"] if isinstance(r, str) and r})
        if reasons:
            notes.append("–: no p-value (" + "; ".join(reasons) + ").")
        out["Test"] = [method_words(mmap[k[0]]) if f and k[0] in mmap else ""
                       for k, f in zip(rows, first, strict=True)]
        notes.append("P: Mann–Whitney U (2 groups) or Kruskal–Wallis for numbers; chi-square, "
                     "or Fisher's exact test when an expected count is below 5, for "
                     "categories.")
    return Layout("Table 1. Baseline characteristics", out, footnotes=notes)


# --- Table 2 ------------------------------------------------------------------------


def table2_calls(flt: Filter) -> dict[str, Call]:
    return {"summ": Call.of(biomarkers.summary, flt),
            "lon": Call.of(biomarkers.longitudinal, flt)}


def endpoint_name(ep: schema.Endpoint) -> str:
    """'C3 (g/L)': the label with its unit (a yes/no endpoint has none)."""
    return f"{ep.label} ({ep.unit})" if ep.unit and ep.kind != "binary" else ep.label


def table2(summ: Result, lon: Result, dispersion: Mapping[str, str] | None = None) -> Layout:
    """The seed paper's Table 2: endpoints × visits, n, values, then the test rows.

    Near-normal endpoints: mean ± SD with the repeated-measures ANOVA Bonferroni
    pairwise MD (95 % CI) and P against baseline (complete cases, n named in the
    row); skewed endpoints: median (P25, P75) with the Wilcoxon Z and its asymptotic
    P (as SPSS printed them; the exact p is on the Biomarkers page) over the
    available pairs, n per visit in the row "pairs"; the glucocorticoid dose adds
    Z*/P* against the previous visit; anti-dsDNA: n (%) positive with Fisher's and
    McNemar's P. `dispersion={"cd19_pct": "se"}` prints mean ± SE (as the seed
    paper did for CD19+).
    """
    dispersion = dict(dispersion or {})
    s_all, l_all = summ.table, lon.table
    weeks = sorted(int(w) for w in pd.unique(s_all["visit_week"])) if len(s_all) else []
    cols = [week_label(w) for w in weeks]
    rows: list[dict] = []
    notes: list[str] = []

    def add(name, stat, vals):
        rows.append({"Endpoint": name, "Statistic": stat, **dict(zip(cols, vals, strict=True))})

    for col in dict.fromkeys(s_all["endpoint"]):
        ep = schema.ENDPOINTS_BY_COLUMN[col]
        s = s_all[s_all["endpoint"] == col].set_index("visit_week")
        if not (s["n"].apply(lambda v: isinstance(v, str) or v > 0)).any():
            continue
        d = DECIMALS.get(col, 2)
        name = endpoint_name(ep)
        add(name, "n", [fmt_num(s.at[w, "n"], 0) for w in weeks])
        present = [isinstance(s.at[w, "n"], str) or s.at[w, "n"] > 0 for w in weeks]
        if ep.kind == "binary":
            add(name, "n (%) positive", [
                fmt_count(s.at[w, "n_positive"], None, rate_pct(s.at[w, "rate"]))
                if ok else MISSING_TEXT for w, ok in zip(weeks, present, strict=True)])
            _test_rows(add, l_all, col, "fisher", "baseline", weeks, None, "P (Fisher's exact)")
            _test_rows(add, l_all, col, "mcnemar_exact", "baseline", weeks, None,
                       "P (McNemar, exact)", pairs_row=False)
            continue
        if ep.skewed:
            add(name, "median (P25, P75)", [
                f"{fmt_num(s.at[w, 'median'], d)} ({fmt_num(s.at[w, 'p25'], d)}, "
                f"{fmt_num(s.at[w, 'p75'], d)})" if ok else MISSING_TEXT
                for w, ok in zip(weeks, present, strict=True)])
            _test_rows(add, l_all, col, "wilcoxon", "baseline", weeks, "Z", "P")
            if col == "prednisone_mg_day":
                _test_rows(add, l_all, col, "wilcoxon", "previous", weeks, "Z*", "P*")
        else:
            disp = dispersion.get(col, "sd")
            add(name, f"mean ± {disp.upper()}", [
                f"{fmt_num(s.at[w, 'mean'], d)} ± {fmt_num(s.at[w, disp], d)}" if ok
                else MISSING_TEXT for w, ok in zip(weeks, present, strict=True)])
            _test_rows(add, l_all, col, "rm_anova_bonferroni", "baseline", weeks, "MD (95% CI)",
                       "P")
    out = pd.DataFrame(rows, columns=["Endpoint", "Statistic", *cols])
    notes.append("n: patients with a value at the visit. MD (95% CI) and its P: repeated-"
                 "measures ANOVA pairwise comparisons with Bonferroni adjustment over complete "
                 "cases (the n in the row label). Z and P: Wilcoxon signed-rank over the "
                 "available pairs (n in the row 'pairs'), normal approximation without "
                 "continuity correction as SPSS prints it. * against the previous visit. "
                 "n/c: not computable.")
    return Layout("Table 2. Endpoints by visit", out, footnotes=notes)


def rate_pct(rate) -> float | None:
    """A proportion (0–1) as a percentage number for `fmt_count`; None when missing or
    withheld (text)."""
    return None if isinstance(rate, str) or is_missing(rate) else rate * 100


def _test_rows(add, lon, endpoint, method, comparator, weeks, stat_label, p_label,
               pairs_row: bool = True):
    sel = lon[(lon["endpoint"] == endpoint) & (lon["method"] == method)
              & (lon["comparator"] == comparator)].set_index("visit_week")
    stat_vals, p_vals, n_vals = [""], [""], [""]
    ns = set()
    for w in weeks[1:]:
        if w not in sel.index:
            stat_vals.append(MISSING_TEXT)
            p_vals.append(MISSING_TEXT)
            n_vals.append(MISSING_TEXT)
            continue
        r = sel.loc[w]
        n_vals.append(fmt_num(r["n"], 0))
        ns.add(r["n"])
        if isinstance(r["reason"], str) and r["reason"]:
            stat_vals.append("n/c")
            p_vals.append("n/c")
            continue
        if stat_label == "MD (95% CI)":
            stat_vals.append(f"{fmt_num(r['mean_diff'], 3)} ({fmt_num(r['ci_low'], 3)}, "
                             f"{fmt_num(r['ci_high'], 3)})")
        elif stat_label:
            stat_vals.append(fmt_num(r["statistic"], 3))
        # The paper layout prints the asymptotic p of the printed Z, as SPSS did.
        p = r.get("p_asymptotic") if method == "wilcoxon" else None
        p_vals.append(fmt_p(r["p_value"] if is_missing(p) else p))
    if stat_label == "MD (95% CI)":
        n_txt = (f"complete cases, n = {fmt_num(next(iter(ns)), 0)}" if len(ns) == 1
                 else "complete cases")
        add_label = f"MD (95% CI), {n_txt}"
        row_name = endpoint_name(schema.ENDPOINTS_BY_COLUMN[endpoint])
        add(row_name, add_label, stat_vals)
        add(row_name, p_label, p_vals)
        return
    row_name = endpoint_name(schema.ENDPOINTS_BY_COLUMN[endpoint])
    if pairs_row:
        add(row_name, "pairs" + ("*" if comparator == "previous" else ""), n_vals)
    if stat_label:
        add(row_name, stat_label, stat_vals)
    add(row_name, p_label, p_vals)


# --- Table 3 ------------------------------------------------------------------------


def table3_calls(flt: Filter) -> dict[str, Call]:
    return {"t3": Call.of(safety.table3, flt)}


def table3(t3: Result) -> Layout:
    """Table 3: patients with each adverse event (category, then its terms), n (%), events."""
    df = t3.table
    n = df["n"].iloc[0] if len(df) else 0
    head = f"Belimumab (n = {fmt_num(n, 0)})"
    out = pd.DataFrame({
        "Adverse event": [("    " if lv else "") + r for r, lv in zip(df["row"], df["level"],
                                                                      strict=True)],
        head: [fmt_count(k, None, p) for k, p in zip(df["n_patients"], df["pct"], strict=True)],
        "Events": [fmt_num(e, 0) for e in df["n_events"]],
        "Serious events": [fmt_num(e, 0) for e in df["n_serious"]],
    })
    notes = [("Patients with at least one event in each row, n (% of the patients shown); "
              "events: all events in the row. Every recorded event appears in exactly one "
              "indented term row; the infection terms the seed paper lists are shown even "
              "when nobody had them.")]
    return Layout("Table 3. Adverse events", out, footnotes=notes)


# --- statistics table and Figure 1 (Biomarkers page) -------------------------------------


def summary_columns(kind: str, method: str) -> tuple[str, str, str, str, str]:
    """The summary that matches a test, as (statistics_table display, y, lower, upper,
    words): the share positive of a yes/no endpoint, median (P25, P75) beside a rank test,
    mean (95 % CI) beside a t-test or a model (the trajectory and its statistics table)."""
    if kind == "binary":
        return "rate", "rate", "ci_low", "ci_high", "share positive"
    if method == "wilcoxon":
        return "median", "median", "p25", "p75", "median (P25, P75)"
    return "mean", "mean", "ci_low", "ci_high", "mean (95 % CI)"


def statistics_table(rows: pd.DataFrame, summ: pd.DataFrame, display: str) -> pd.DataFrame:
    """Per visit: the summary matching the test (mean ± SD with t, median (P25, P75) with
    Wilcoxon), the method in words, n, estimate with its CI, statistic, p (text cells)."""
    s = summ.set_index("visit_week")
    out = []
    for r in rows.itertuples(index=False):
        w = r.visit_week
        cur = s.loc[w] if w in s.index else None
        d = DECIMALS.get(getattr(r, "endpoint", ""), None)
        if cur is None or isinstance(cur["n"], str) or not cur["n"]:
            shown = MISSING_TEXT if cur is None else fmt_num(cur["n"])
        elif cur["kind"] == "binary":
            shown = fmt_count(cur["n_positive"], cur["n"], rate_pct(cur["rate"]))
        elif display == "median":
            shown = (f"{fmt_num(cur['median'], d)} ({fmt_num(cur['p25'], d)}, "
                     f"{fmt_num(cur['p75'], d)})")
        else:
            shown = (f"{fmt_num(cur['mean'], d)} ± {fmt_num(cur['sd'], d)}"
                     if isinstance(cur["n"], str) or cur["n"] > 1
                     else fmt_num(cur["mean"], d))
        estimate = getattr(r, "estimate", r.mean_diff)
        note = getattr(r, "note", None)
        reason = r.reason if isinstance(r.reason, str) and r.reason else ""
        out.append({
            "Week": w,
            "vs week": r.comparator_week,
            "Method": method_words(r.method, getattr(r, "p_method", None)),
            "n": fmt_num(r.n, 0),
            "Summary": shown,
            "Estimate": estimate_text(estimate, getattr(r, "estimate_name", None)
                                      or "difference"),
            "95 % CI": fmt_ci(r.ci_low, r.ci_high),
            "Statistic": fmt_num(r.statistic, missing=""),
            "p": fmt_p(r.p_value, missing=""),
            "p adjusted": fmt_p(r.p_adjusted, missing=""),
            "Note": "; ".join(x for x in (f"not computable: {reason}" if reason else "",
                                          note if isinstance(note, str) else "") if x),
        })
    return pd.DataFrame(out, columns=["Week", "vs week", "Method", "n", "Summary", "Estimate",
                                      "95 % CI", "Statistic", "p", "p adjusted", "Note"])


def km_tests_text(tests: pd.DataFrame) -> str:
    """'HR 0.62 (0.31 to 1.25; M vs F), Cox; log-rank p = 0.18' from a KM's test rows."""
    if tests is None or tests.empty:
        return ""
    t = tests.set_index("method")
    text = ""
    if "cox" in t.index and not is_missing(t.at["cox", "estimate"]):
        groups = t.at["cox", "groups"] if "groups" in t.columns else None
        text += (f"HR {fmt_num(t.at['cox', 'estimate'], 2)} "
                 f"({fmt_ci(t.at['cox', 'ci_low'], t.at['cox', 'ci_high'], 2)}"
                 + (f"; {groups}" if isinstance(groups, str) else "") + "), Cox; ")
    if "logrank" in t.index:
        text += f"log-rank p = {fmt_p(t.at['logrank', 'p_value'])}"
    return text


def km_medians(med: pd.DataFrame) -> pd.DataFrame:
    """Median time to the event per group with its 95 % CI, as a table."""
    def median_text(m, lo, hi) -> str:
        text = "not reached" if is_missing(m) else fmt_num(m, 0)
        ci = fmt_ci(lo, hi, 0)
        if ci:
            return f"{text} ({ci})"
        return f"{text} ({fmt_num(lo, 0)} to not reached)" if not is_missing(lo) else text

    return pd.DataFrame({
        "Group": med["group"].astype(str),
        "Patients": [fmt_num(x, 0) for x in med["n"]],
        "Reached": [fmt_num(x, 0) for x in med["events"]],
        "Median weeks (95 % CI)": [median_text(m, lo, hi) for m, lo, hi in
                                   zip(med["median"], med["ci_low"], med["ci_high"],
                                       strict=True)],
    })


def stars(p) -> str:
    """*, ** or *** for p < 0.05, 0.01, 0.001 ('' otherwise or when missing)."""
    if isinstance(p, str) or is_missing(p):
        return ""
    return "***" if p < 0.001 else "**" if p < 0.01 else "*" if p < 0.05 else ""


def figure1_frame(summ: pd.DataFrame, lon: pd.DataFrame) -> pd.DataFrame:
    """Small-multiples data as in the seed paper's Figure 1.

    Skewed endpoints: median with IQR and Wilcoxon stars; others: mean ± 95 % CI
    with Bonferroni-adjusted repeated-measures stars; binary: % positive with
    Wilson CI and Fisher stars (the paper's test). All against baseline.
    """
    rows = []
    for r in summ.itertuples(index=False):
        if isinstance(r.n, str) or not r.n:
            continue
        ep = schema.ENDPOINTS_BY_COLUMN[r.endpoint]
        if ep.kind == "binary":
            c, lo, hi, what, method = num(r.rate) * 100, num(r.ci_low) * 100, \
                num(r.ci_high) * 100, \
                "% positive (95 % CI)", "fisher"
        elif ep.skewed:
            c, lo, hi, what, method = r.median, r.p25, r.p75, "median (IQR)", "wilcoxon"
        else:
            c, lo, hi, what, method = r.mean, r.ci_low, r.ci_high, "mean (95 % CI)", \
                "rm_anova_bonferroni"
        sel = lon[(lon["endpoint"] == r.endpoint) & (lon["method"] == method)
                  & (lon["comparator"] == "baseline") & (lon["visit_week"] == r.visit_week)]
        p = float(sel["p_value"].iloc[0]) if len(sel) and pd.notna(sel["p_value"].iloc[0]) \
            else None
        label = f"{ep.label} ({ep.unit})" if ep.unit and ep.kind != "binary" else \
            f"{ep.label} (%)"
        rows.append({"endpoint": r.endpoint, "label": f"{label}\n{METHOD_WORDS[method]}",
                     "visit_week": int(r.visit_week),
                     "n": int(r.n), "centre": c, "lower": lo, "upper": hi, "summary": what,
                     "method": METHOD_WORDS[method], "p_value": p, "stars": stars(p)})
    return pd.DataFrame(rows, columns=["endpoint", "label", "visit_week", "n", "centre",
                                       "lower", "upper", "summary", "method", "p_value",
                                       "stars"])


# --- registry -----------------------------------------------------------------------


@dataclass(frozen=True)
class LayoutSpec:
    """A named layout: the calls it needs, how it renders, the `report` arguments."""

    name: str
    calls: Callable[..., dict[str, Call]]
    render: Callable[..., Layout]
    cli: Callable[[dict], list[str]]


LAYOUTS = {
    "table1": LayoutSpec("table1", table1_calls, table1,
                         lambda kw: ["--layout", "table1", *(
                             ["--group-by", kw["group_by"]] if kw.get("group_by") else [])]),
    "table2": LayoutSpec("table2", table2_calls, table2, lambda kw: ["--layout", "table2"]),
    "table3": LayoutSpec("table3", table3_calls, table3, lambda kw: ["--layout", "table3"]),
}


def build(name: str, run: Callable[[Call], Result], flt: Filter, render_kw: Mapping | None = None,
          **kwargs) -> Layout:
    """Run a layout's calls with `run` (ui.run or results.run) and render it, captioned
    with the filter sentence."""
    spec = LAYOUTS[name]
    res = {k: run(c) for k, c in spec.calls(flt, **kwargs).items()}
    lay = spec.render(**res, **dict(render_kw or {}))
    lay.caption = caption(run, flt)
    return lay


def caption(run: Callable[[Call], Result], flt: Filter) -> str:
    """The filter sentence with its counts, as the seam lets them out."""
    cnt = run(Call.of(cohort.patient_count, flt)).table.iloc[0]
    return flt.sentence(cnt["n_match"], cnt["n_cohort"])
