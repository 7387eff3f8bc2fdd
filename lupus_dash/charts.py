"""Altair chart builders: a tidy DataFrame and column names in, an `alt.Chart` out.

The builders never aggregate: the data arrive summarised by `lupus_dash.analyses`
(DuckDB) through the seam, so a chart never carries more than a few hundred rows.
`finalize` sizes type and marks for the screen or a projector; `to_png` and
`to_svg` export offline through vl-convert.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import io
import pickle
import textwrap
import threading
from collections import OrderedDict
from dataclasses import dataclass

import altair as alt
import pandas as pd

from .layouts import fmt_p, is_missing, stars

# Okabe & Ito (2008) colour-blind-safe palette, ordered so the first two
# colours (blue, orange) stay distinct under every common colour deficiency.
OKABE_ITO = (
    "#0072B2",
    "#E69F00",
    "#009E73",
    "#D55E00",
    "#CC79A7",
    "#56B4E9",
    "#F0E442",
    "#000000",
)
# Endpoint states, ordered from best to worst; fixed colours so a figure reads
# the same whatever subset is present.
STATE_ORDER = ("remission", "LLDAS", "active", "not evaluable", "no visit")
STATE_COLOURS = ("#009E73", "#56B4E9", "#D55E00", "#BBBBBB", "#EEEEEE")

MAX_ROWS = 5000  # never send more rows than this to a browser chart


# --- memo of built charts and their specs ------------------------------------------
# Building an Altair chart (encodings validated, layers deep-copied) and turning it
# into a Vega-Lite spec cost more server time per rerun than the DuckDB queries
# behind it. A builder called again with equal data and arguments (another session
# with the same filter, a rerun from an unrelated widget) reuses the chart, its
# finalised form and its spec. Keys hash the frames' content; anything unhashable
# is simply not memoised. Charts are never mutated after building (Altair copies on
# every change), so sharing one between sessions is safe.

_MEMO: OrderedDict = OrderedDict()
_MEMO_LOCK = threading.Lock()
_MEMO_SIZE = 512
_KEY_ATTR = "_lupus_key"


def _fingerprint(v):
    if isinstance(v, pd.DataFrame):
        # The pickle holds every value, so different data never share a key (equal data
        # laid out differently in memory may miss, which costs only a rebuild). Ten
        # times faster than pd.util.hash_pandas_object on Arrow-backed strings.
        return ("frame", hashlib.sha1(pickle.dumps(v, protocol=5)).hexdigest())
    if isinstance(v, (list, tuple)):
        return tuple(_fingerprint(x) for x in v)
    if isinstance(v, dict):
        return tuple(sorted((str(k), _fingerprint(x)) for k, x in v.items()))
    if v is None or isinstance(v, (str, int, float, bool)):
        return v
    raise TypeError(f"not memoisable: {type(v).__name__}")


def _memo_get(key):
    with _MEMO_LOCK:
        if key in _MEMO:
            _MEMO.move_to_end(key)
            return _MEMO[key]
    return None


def _memo_put(key, value):
    with _MEMO_LOCK:
        _MEMO[key] = value
        while len(_MEMO) > _MEMO_SIZE:
            _MEMO.popitem(last=False)
    return value


def _tag(chart, key):
    # object.__setattr__: Altair's own __setattr__ would make it a spec property.
    object.__setattr__(chart, _KEY_ATTR, key)
    return chart


def _key_of(chart):
    return chart.__dict__.get(_KEY_ATTR)


def memoised(builder):
    """Reuse a builder's chart for equal data and arguments (see above)."""

    @functools.wraps(builder)
    def wrapper(*args, **kwargs):
        try:
            key = ("build", builder.__name__, _fingerprint(args), _fingerprint(kwargs))
        except (TypeError, ValueError):
            return builder(*args, **kwargs)
        hit = _memo_get(key)
        if hit is not None:
            return hit
        return _memo_put(key, _tag(builder(*args, **kwargs), key))

    wrapper.uncached = builder
    return wrapper


def clear_memo() -> None:
    with _MEMO_LOCK:
        _MEMO.clear()


def _numeric(df: pd.DataFrame) -> pd.DataFrame:
    """Text in a numeric column (a value shared mode withheld: "<11", "—") as missing, so a
    chart draws nothing there — the seam already decided the value may not be shown."""
    obj = [c for c in df.columns if df[c].dtype == object
           and df[c].map(lambda v: isinstance(v, str)).any()
           and df[c].map(lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)).any()]
    if not obj:
        return df
    out = df.copy()
    for c in obj:
        out[c] = pd.to_numeric(out[c], errors="coerce")
    return out


def _check(df: pd.DataFrame, *cols: str | None) -> None:
    missing = [c for c in cols if c and c not in df.columns]
    if missing:
        raise ValueError(f"chart data lacks column(s) {', '.join(missing)}")
    if len(df) > MAX_ROWS:
        raise ValueError(f"{len(df)} rows is too many for a chart; aggregate first")


def _week_axis(title: str = "Week") -> alt.X:
    return alt.X("visit_week:O", title=title, axis=alt.Axis(labelAngle=0))


@memoised
def trajectory(
    df: pd.DataFrame,
    y: str,
    lo: str,
    hi: str,
    *,
    x: str = "visit_week",
    n: str | None = "n",
    color: str | None = None,
    y_title: str = "",
    title: str = "",
    p_values: pd.DataFrame | None = None,
    p_col: str = "p_value",
    points: pd.DataFrame | None = None,
    min_n: int = 0,
    clip: tuple[float, float] | None = None,
    y_domain: tuple[float, float] | None = None,
    color_domain: list | None = None,
    width: int | str = "container",
    height: int = 320,
) -> alt.Chart:
    """Centre line with an interval band per visit (mean ± CI or median with IQR).

    `p_values` (visit_week, p) adds the paper's stars above each visit's upper bound.
    Rows with fewer than `min_n` patients get no centre or interval: `points` (x,
    color, value) draws their single values instead, so a group of 2 cannot stretch
    the axis. `clip` (low, high): intervals are cut at the endpoint's plausible range
    and a triangle marks a cut end. The y scale follows the data (no forced zero), or
    `y_domain` when given (a stable axis across filter changes; widened, never cut, when
    the data leave it). `color_domain` fixes each group's colour and the legend order.
    """
    df = _numeric(df)
    _check(df, x, y, lo, hi, color, n)
    df = df.copy()
    if min_n and n:
        small = df[n] < min_n
        df = df[~small]
    df["_lo_cut"] = False
    df["_hi_cut"] = False
    if clip is not None:
        lo_v, hi_v = df[lo].astype(float), df[hi].astype(float)
        df["_lo_cut"], df["_hi_cut"] = lo_v < clip[0], hi_v > clip[1]
        df[lo], df[hi] = lo_v.clip(lower=clip[0]), hi_v.clip(upper=clip[1])
    vals = [df[c].astype(float) for c in (y, lo, hi)]
    if points is not None and len(points):
        vals.append(points["value"].astype(float))
    allv = pd.concat(vals).dropna()
    scale = alt.Scale(zero=False, nice=True)
    if len(allv):
        lo_d, hi_d = float(allv.min()), float(allv.max())
        if y_domain is not None:
            # The stable axis: its own padding, widened only by data that leave it.
            pad = (y_domain[1] - y_domain[0]) * 0.05 or abs(y_domain[1]) * 0.05 or 1.0
            lo_d = min(lo_d, y_domain[0] - pad)
            hi_d = max(hi_d, y_domain[1] + pad)
        else:
            pad = (hi_d - lo_d) * 0.05 or abs(hi_d) * 0.05 or 1.0
            lo_d, hi_d = lo_d - pad, hi_d + pad
        scale = alt.Scale(zero=False, nice=True, domain=[lo_d, hi_d])
    base = alt.Chart(df)
    enc_x = alt.X(f"{x}:O", title="Week", axis=alt.Axis(labelAngle=0))
    tips = [
        alt.Tooltip(f"{x}:O", title="Week"),
        alt.Tooltip(f"{y}:Q", title=y_title or y, format=".3g"),
        alt.Tooltip(f"{lo}:Q", title="lower", format=".3g"),
        alt.Tooltip(f"{hi}:Q", title="upper", format=".3g"),
    ]
    if n:
        tips.append(alt.Tooltip(f"{n}:Q", title="n"))
    if color:
        tips.insert(0, alt.Tooltip(f"{color}:N", title=color.replace("_", " ")))
    cscale = (alt.Scale(domain=list(color_domain), range=list(OKABE_ITO)[:len(color_domain)]
                        if len(color_domain) <= len(OKABE_ITO) else list(OKABE_ITO))
              if color_domain else alt.Scale(range=list(OKABE_ITO)))
    col_enc = (
        alt.Color(f"{color}:N", scale=cscale, title=None)
        if color
        else alt.ColorValue(OKABE_ITO[0])
    )
    offset = ({"xOffset": alt.XOffset(f"{color}:N", scale=alt.Scale(domain=list(color_domain)))
               if color_domain else alt.XOffset(f"{color}:N")} if color else {})
    bars = base.mark_errorbar(ticks=alt.TickConfig(size=12)).encode(
        x=enc_x, y=alt.Y(f"{lo}:Q", title=y_title, scale=scale), y2=alt.Y2(f"{hi}:Q"),
        color=col_enc, tooltip=tips, **offset,
    )
    line = base.mark_line(point=alt.OverlayMarkDef(filled=True, size=70)).encode(
        x=enc_x, y=alt.Y(f"{y}:Q", title=y_title, scale=scale), color=col_enc, tooltip=tips,
        **({"detail": alt.Detail(f"{color}:N")} if color else {}), **offset,
    )
    layers = [bars, line]
    if clip is not None and (df["_lo_cut"].any() or df["_hi_cut"].any()):
        for flag, end, shape in (("_lo_cut", lo, "triangle-down"), ("_hi_cut", hi, "triangle-up")):
            cut = df[df[flag]]
            if len(cut):
                layers.append(alt.Chart(cut).mark_point(shape=shape, size=90, filled=True)
                              .encode(x=enc_x, y=alt.Y(f"{end}:Q", scale=scale), color=col_enc,
                                      tooltip=[alt.Tooltip(f"{x}:O", title="Week"),
                                               alt.Tooltip(f"{end}:Q", title="interval cut at",
                                                           format=".3g")], **offset))
    if points is not None and len(points):
        layers.append(alt.Chart(points).mark_point(shape="diamond", size=60, filled=False,
                                                    strokeWidth=2)
                      .encode(x=enc_x, y=alt.Y("value:Q", scale=scale), color=col_enc,
                              tooltip=[alt.Tooltip(f"{x}:O", title="Week"),
                                       alt.Tooltip("value:Q", title="value", format=".3g")],
                              **offset))
    if p_values is not None and len(p_values):
        marks = df[[x, hi]].groupby(x, as_index=False).max()
        pv = p_values[[x, p_col]].copy()
        pv["stars"] = [stars(p) for p in pv[p_col]]
        marks = marks.merge(pv, on=x, how="inner")
        marks = marks[marks["stars"] != ""]
        if len(marks):
            layers.append(
                alt.Chart(marks)
                .mark_text(dy=-12, fontWeight="bold", color="#222222")
                .encode(
                    x=enc_x,
                    y=alt.Y(f"{hi}:Q", scale=scale),
                    text=alt.Text("stars:N"),
                    tooltip=[
                        alt.Tooltip(f"{x}:O", title="Week"),
                        alt.Tooltip(f"{p_col}:Q", title="p", format=".3g"),
                    ],
                )
            )
    return alt.layer(*layers).properties(title=title, width=width, height=height)


@memoised
def spaghetti(
    df: pd.DataFrame,
    y: str,
    *,
    x: str = "visit_week",
    detail: str = "patient_id",
    y_title: str = "",
    title: str = "",
    width: int | str = "container",
    height: int = 320,
) -> alt.Chart:
    """One thin line per patient (the caller caps the number of patients)."""
    df = _numeric(df)
    _check(df, x, y, detail)
    return (
        alt.Chart(df)
        .mark_line(point=True, opacity=0.45, strokeWidth=1)
        .encode(
            x=alt.X(f"{x}:O", title="Week", axis=alt.Axis(labelAngle=0)),
            y=alt.Y(f"{y}:Q", title=y_title),
            detail=alt.Detail(f"{detail}:N"),
            color=alt.ColorValue("#555555"),
            tooltip=[
                alt.Tooltip(f"{detail}:N", title="Patient"),
                alt.Tooltip(f"{x}:O", title="Week"),
                alt.Tooltip(f"{y}:Q", title=y_title or y, format=".3g"),
            ],
        )
        .properties(title=title, width=width, height=height)
    )


def _figure1_layers(base: alt.Chart, y: str, lo: str, hi: str, stars_col: str | None, tips,
                    *, scale=alt.Undefined, star_size=alt.Undefined) -> list:
    """Figure 1's marks on the week axis: the interval, the centre line with its points, and
    the stars above the interval (small_multiples and figure1_panel)."""
    enc_x = _week_axis()
    layers = [
        base.mark_errorbar(ticks=alt.TickConfig(size=10), color=OKABE_ITO[0]).encode(
            x=enc_x, y=alt.Y(f"{lo}:Q", title=None, scale=scale), y2=alt.Y2(f"{hi}:Q"),
            tooltip=tips),
        base.mark_line(point=True, color=OKABE_ITO[0]).encode(
            x=enc_x, y=alt.Y(f"{y}:Q", title=None, scale=scale), tooltip=tips),
    ]
    if stars_col:
        layers.append(base.mark_text(dy=-10, fontSize=star_size, fontWeight="bold",
                                     color="#222222").encode(
            x=enc_x, y=alt.Y(f"{hi}:Q", scale=scale), text=alt.Text(f"{stars_col}:N")))
    return layers


@memoised
def small_multiples(
    df: pd.DataFrame,
    *,
    facet: str = "label",
    y: str = "centre",
    lo: str = "lower",
    hi: str = "upper",
    stars_col: str | None = "stars",
    columns: int = 4,
    width: int = 210,
    height: int = 150,
) -> alt.FacetChart:
    """All endpoints side by side, each with its own y scale (the paper's Figure 1)."""
    df = _numeric(df)
    _check(df, "visit_week", facet, y, lo, hi)
    tips = [
        alt.Tooltip(f"{facet}:N", title="Endpoint"),
        alt.Tooltip("visit_week:O", title="Week"),
        alt.Tooltip(f"{y}:Q", title="value", format=".3g"),
        alt.Tooltip(f"{lo}:Q", title="lower", format=".3g"),
        alt.Tooltip(f"{hi}:Q", title="upper", format=".3g"),
    ]
    if "summary" in df.columns:
        tips.insert(2, alt.Tooltip("summary:N", title="shown"))
    if "method" in df.columns:
        tips += [alt.Tooltip("method:N", title="test"),
                 alt.Tooltip("p_value:Q", title="p", format=".3g")]
    layers = _figure1_layers(alt.Chart(), y, lo, hi,
                             stars_col if stars_col in df.columns else None, tips,
                             star_size=14)
    return (
        alt.layer(*layers, data=df)
        .properties(width=width, height=height)
        # Panel titles may hold two lines ("C3 (g/L)\nPaired t-test"): each names its test.
        .facet(facet=alt.Facet(f"{facet}:N", title=None,
                               header=alt.Header(labelFontSize=13,
                                                 labelExpr="split(datum.label, '\\n')"),
                               sort=list(dict.fromkeys(df[facet]))),
               columns=columns)
        .resolve_scale(y="independent")
    )


@memoised
def figure1_panel(
    df: pd.DataFrame,
    *,
    y: str = "centre",
    lo: str = "lower",
    hi: str = "upper",
    stars_col: str | None = "stars",
    height: int = 170,
) -> alt.LayerChart:
    """One endpoint of Figure 1 (a panel the page lays out in a grid that fills the width).

    The title's first line names the endpoint, the second its test.
    """
    df = _numeric(df)
    _check(df, "visit_week", "label", y, lo, hi)
    title = str(df["label"].iloc[0]).split("\n") if len(df) else ""
    tips = [alt.Tooltip("visit_week:O", title="Week"),
            alt.Tooltip(f"{y}:Q", title="value", format=".3g"),
            alt.Tooltip(f"{lo}:Q", title="lower", format=".3g"),
            alt.Tooltip(f"{hi}:Q", title="upper", format=".3g")]
    for col, t in (("n", "n"), ("summary", "shown"), ("method", "test")):
        if col in df.columns:
            tips.append(alt.Tooltip(f"{col}:{'Q' if col == 'n' else 'N'}", title=t))
    if "p_value" in df.columns:
        tips.append(alt.Tooltip("p_value:Q", title="p", format=".3g"))
    layers = _figure1_layers(alt.Chart(df), y, lo, hi,
                             stars_col if stars_col in df.columns else None, tips,
                             scale=alt.Scale(zero=False, nice=True))
    return alt.layer(*layers).properties(title=alt.TitleParams(title, anchor="start"),
                                         width="container", height=height)


@memoised
def rates(
    df: pd.DataFrame,
    *,
    x: str = "visit_week",
    y: str = "rate",
    lo: str = "ci_low",
    hi: str = "ci_high",
    color: str = "definition",
    title: str = "",
    width: int | str = "container",
    height: int = 320,
) -> alt.Chart:
    """Proportions per visit with 95 % CIs, one colour per definition."""
    df = _numeric(df)
    _check(df, x, y, lo, hi, color)
    tips = [
        alt.Tooltip(f"{color}:N", title="Definition"),
        alt.Tooltip(f"{x}:O", title="Week"),
        alt.Tooltip(f"{y}:Q", title="Rate", format=".1%"),
        alt.Tooltip(f"{lo}:Q", title="95 % CI low", format=".1%"),
        alt.Tooltip(f"{hi}:Q", title="95 % CI high", format=".1%"),
    ]
    for extra, name in (("n_achieved", "achieved"), ("n_denominator", "denominator")):
        if extra in df.columns:
            tips.append(alt.Tooltip(f"{extra}:Q", title=name))
    enc_x = alt.X(f"{x}:N", title="Week", sort=None, axis=alt.Axis(labelAngle=0))
    col = alt.Color(f"{color}:N", scale=alt.Scale(range=list(OKABE_ITO)), title=None)
    base = alt.Chart(df)
    return alt.layer(
        base.mark_errorbar(ticks=alt.TickConfig(size=12)).encode(
            x=enc_x, xOffset=alt.XOffset(f"{color}:N"), y=alt.Y(f"{lo}:Q", title="Patients (%)",
                                                    axis=alt.Axis(format="%")),
            y2=alt.Y2(f"{hi}:Q"), color=col, tooltip=tips,
        ),
        base.mark_point(filled=True, size=90).encode(
            x=enc_x, xOffset=alt.XOffset(f"{color}:N"), y=alt.Y(f"{y}:Q", scale=alt.Scale(domain=[0, 1])),
            color=col, tooltip=tips,
        ),
    ).properties(title=title, width=width, height=height)


@memoised
def stacked_states(
    df: pd.DataFrame,
    *,
    x: str = "visit_week",
    state: str = "state",
    pct: str = "pct",
    n: str = "n",
    title: str = "",
    width: int | str = "container",
    height: int = 320,
) -> alt.Chart:
    """Share of patients per state at each visit, stacked to 100 % (the paper's Figure 2)."""
    df = _numeric(df)
    _check(df, x, state, pct, n)
    order = {s: i for i, s in enumerate(STATE_ORDER)}
    data = df.assign(_order=[order.get(s, 99) for s in df[state]])
    return (
        alt.Chart(data)
        .mark_bar()
        .encode(
            x=alt.X(f"{x}:N", title="Week", sort=None, axis=alt.Axis(labelAngle=0)),
            y=alt.Y(f"{pct}:Q", stack="normalize", title="Patients (%)",
                    axis=alt.Axis(format="%")),
            color=alt.Color(
                f"{state}:N",
                scale=alt.Scale(domain=list(STATE_ORDER), range=list(STATE_COLOURS)),
                title=None,
            ),
            order=alt.Order("_order:Q"),
            tooltip=[
                alt.Tooltip(f"{x}:N", title="Week"),
                alt.Tooltip(f"{state}:N", title="State"),
                alt.Tooltip(f"{n}:Q", title="Patients"),
                alt.Tooltip(f"{pct}:Q", title="Share", format=".1%"),
            ],
        )
        .properties(title=title, width=width, height=height)
    )


@memoised
def km(
    df: pd.DataFrame,
    *,
    time: str = "time",
    survival: str = "survival",
    lo: str = "ci_low",
    hi: str = "ci_high",
    group: str | None = "group",
    title: str = "",
    x_title: str = "Week",
    y_title: str = "Reached (cumulative %)",
    width: int | str = "container",
    height: int = 320,
) -> alt.Chart:
    """Kaplan–Meier step curves drawn as cumulative incidence, 1 − S(t), with CI band."""
    df = _numeric(df)
    _check(df, time, survival, lo, hi, group)
    # Every curve starts at time 0 with nobody reached, so the first step is drawn.
    keys = list(df[group].unique()) if group else [None]
    starts = []
    for g in keys:
        sub = df[df[group] == g] if group else df
        if not (sub[time] == 0).any():
            row = {time: 0.0, survival: 1.0, lo: 1.0, hi: 1.0}
            if group:
                row[group] = g
            if "n_risk" in df.columns and len(sub):
                row["n_risk"] = sub["n_risk"].max()
            if "n_event" in df.columns:
                row["n_event"] = 0
            starts.append(row)
    if starts:
        df = pd.concat([pd.DataFrame(starts), df], ignore_index=True)
    data = df.assign(
        _cum=1 - df[survival], _cum_lo=1 - df[hi], _cum_hi=1 - df[lo]
    )
    col = (
        alt.Color(f"{group}:N", scale=alt.Scale(range=list(OKABE_ITO)), title=None)
        if group
        else alt.ColorValue(OKABE_ITO[0])
    )
    tips = [
        alt.Tooltip(f"{time}:Q", title=x_title),
        alt.Tooltip("_cum:Q", title="Reached", format=".1%"),
        alt.Tooltip("_cum_lo:Q", title="95 % CI low", format=".1%"),
        alt.Tooltip("_cum_hi:Q", title="95 % CI high", format=".1%"),
    ]
    for extra in ("n_risk", "n_event"):
        if extra in df.columns:
            tips.append(alt.Tooltip(f"{extra}:Q", title=extra.replace("_", " ")))
    if group:
        tips.insert(0, alt.Tooltip(f"{group}:N", title="Group"))
    base = alt.Chart(data)
    # Every layer carries the same titled axes and % scale, whatever the number of groups
    # (a layer without them made Vega-Lite print the raw field names `_cum` and `time`).
    x_enc = alt.X(f"{time}:Q", title=x_title)
    y_scale = alt.Scale(domain=[0, 1])
    y_axis = alt.Axis(format="%")
    detail = {"detail": alt.Detail(f"{group}:N")} if group else {}
    band = base.mark_area(interpolate="step-after",
                          opacity=0.15 if len(keys) <= 2 else 0.08).encode(
        x=x_enc,
        y=alt.Y("_cum_lo:Q", title=y_title, axis=y_axis, scale=y_scale),
        y2=alt.Y2("_cum_hi:Q"),
        color=col,
        **detail,
    )
    line = base.mark_line(interpolate="step-after", strokeWidth=2.5).encode(
        x=x_enc, y=alt.Y("_cum:Q", title=y_title, axis=y_axis, scale=y_scale), color=col,
        tooltip=tips, **detail,
    )
    pts = base.mark_point(filled=True, size=30, opacity=0.7).encode(
        x=x_enc, y=alt.Y("_cum:Q", title=y_title, axis=y_axis, scale=y_scale), color=col,
        tooltip=tips,
    )
    return alt.layer(band, line, pts).properties(title=title, width=width, height=height)


@memoised
def forest(
    df: pd.DataFrame,
    *,
    y: str = "group",
    est: str = "mean",
    lo: str = "ci_low",
    hi: str = "ci_high",
    n: str | None = "n",
    x_title: str = "Change from baseline (95 % CI)",
    title: str = "",
    width: int | str = "container",
    height: int | None = None,
) -> alt.Chart:
    """Estimate with CI per subgroup, a reference line at zero."""
    df = _numeric(df)
    _check(df, y, est, lo, hi, n)
    h = height or max(120, 38 * max(1, len(df)))
    tips = [
        alt.Tooltip(f"{y}:N", title="Group"),
        alt.Tooltip(f"{est}:Q", title="Estimate", format=".3g"),
        alt.Tooltip(f"{lo}:Q", title="95 % CI low", format=".3g"),
        alt.Tooltip(f"{hi}:Q", title="95 % CI high", format=".3g"),
    ]
    if n:
        tips.append(alt.Tooltip(f"{n}:Q", title="n"))
    base = alt.Chart(df)
    enc_y = alt.Y(f"{y}:N", title=None, sort=None)
    return alt.layer(
        alt.Chart(pd.DataFrame({"zero": [0]})).mark_rule(color="#888888", strokeDash=[4, 4])
        .encode(x=alt.X("zero:Q")),
        base.mark_rule(strokeWidth=2.5, color=OKABE_ITO[0]).encode(
            x=alt.X(f"{lo}:Q", title=x_title), x2=alt.X2(f"{hi}:Q"), y=enc_y, tooltip=tips
        ),
        base.mark_point(filled=True, size=120, shape="square", color=OKABE_ITO[0]).encode(
            x=alt.X(f"{est}:Q"), y=enc_y, tooltip=tips
        ),
    ).properties(title=title, width=width, height=h)


@memoised
def flow(
    df: pd.DataFrame,
    *,
    stage: str = "stage",
    n: str = "n",
    title: str = "",
    width: int | str = "container",
) -> alt.Chart:
    """Patient flow as horizontal bars in the given stage order, labelled with n."""
    df = _numeric(df)
    _check(df, stage, n)
    enc_y = alt.Y(f"{stage}:N", sort=list(df[stage]), title=None,
                  axis=alt.Axis(labelLimit=320, labelOverlap=False))
    tips = [alt.Tooltip(f"{stage}:N", title="Stage"), alt.Tooltip(f"{n}:Q", title="Patients")]
    if "detail" in df.columns:
        tips.append(alt.Tooltip("detail:N", title="Detail"))
    base = alt.Chart(df)
    return alt.layer(
        base.mark_bar(color=OKABE_ITO[0]).encode(
            x=alt.X(f"{n}:Q", title="Patients", axis=alt.Axis(format="d", tickMinStep=1)),
            y=enc_y, tooltip=tips
        ),
        base.mark_text(align="left", dx=4).encode(
            x=alt.X(f"{n}:Q"), y=enc_y, text=alt.Text(f"{n}:Q")
        ),
    ).properties(title=title, width=width, height=max(160, 44 * len(df)))


@memoised
def bars(
    df: pd.DataFrame,
    *,
    x: str,
    y: str,
    lo: str | None = None,
    hi: str | None = None,
    x_title: str = "",
    y_title: str = "",
    pct: bool = True,
    title: str = "",
    width: int | str = "container",
) -> alt.Chart:
    """Horizontal bars of a value per category, with optional CI whiskers."""
    df = _numeric(df)
    _check(df, x, y, lo, hi)
    fmt = ".1%" if pct else ".3g"
    tips = [alt.Tooltip(f"{y}:N", title=y_title or y),
            alt.Tooltip(f"{x}:Q", title=x_title or x, format=fmt)]
    for extra in ("n_patients", "n_events", "n"):
        if extra in df.columns:
            tips.append(alt.Tooltip(f"{extra}:Q", title=extra.replace("_", " ")))
    if lo and hi:
        tips += [alt.Tooltip(f"{lo}:Q", title="95 % CI low", format=fmt),
                 alt.Tooltip(f"{hi}:Q", title="95 % CI high", format=fmt)]
    enc_y = alt.Y(f"{y}:N", sort=list(df[y]), title=None, axis=alt.Axis(labelLimit=260))
    axis = alt.Axis(format="%") if pct else alt.Axis()
    layers = [
        alt.Chart(df).mark_bar(color=OKABE_ITO[0]).encode(
            x=alt.X(f"{x}:Q", title=x_title, axis=axis), y=enc_y, tooltip=tips
        )
    ]
    if lo and hi:
        layers.append(
            alt.Chart(df).mark_errorbar(ticks=alt.TickConfig(size=10), color="#222222").encode(
                x=alt.X(f"{lo}:Q", title=x_title, axis=axis), x2=alt.X2(f"{hi}:Q"), y=enc_y, tooltip=tips
            )
        )
    return alt.layer(*layers).properties(
        title=title, width=width, height=max(100, 30 * len(df))
    )


@memoised
def heatmap(
    df: pd.DataFrame,
    *,
    x: str = "visit_week",
    y: str = "label",
    value: str = "pct_missing",
    title: str = "",
    width: int | str = "container",
) -> alt.Chart:
    """Share missing per visit × variable."""
    df = _numeric(df)
    _check(df, x, y, value)
    tips = [
        alt.Tooltip(f"{y}:N", title="Variable"),
        alt.Tooltip(f"{x}:O", title="Week"),
        alt.Tooltip(f"{value}:Q", title="Missing", format=".0%"),
    ]
    for extra in ("n_missing", "n_expected"):
        if extra in df.columns:
            tips.append(alt.Tooltip(f"{extra}:Q", title=extra.replace("_", " ")))
    base = alt.Chart(df).encode(
        x=alt.X(f"{x}:O", title="Week", axis=alt.Axis(labelAngle=0)),
        y=alt.Y(f"{y}:N", title=None, sort=None),
    )
    return alt.layer(
        base.mark_rect().encode(
            color=alt.Color(f"{value}:Q", title="Missing",
                            scale=alt.Scale(domain=[0, 1], scheme="blues"),
                            legend=alt.Legend(format="%")),
            tooltip=tips,
        ),
        base.mark_text().encode(
            text=alt.Text(f"{value}:Q", format=".0%"),
            color=alt.condition(f"datum.{value} > 0.5", alt.value("white"), alt.value("black")),
        ),
    ).properties(title=title, width=width, height=max(120, 22 * df[y].nunique()))


@memoised
def patient_series(
    df: pd.DataFrame,
    y: str,
    *,
    x: str = "visit_week",
    y_title: str = "",
    ref_low: float | None = None,
    ref_high: float | None = None,
    thresholds: list[tuple[float, str]] | None = None,
    x_max: float | None = None,
    title: str = "",
    width: int | str = "container",
    height: int = 200,
) -> alt.Chart:
    """One patient's values over time against a reference band and threshold lines.

    `thresholds` is [(value, label)]: dashed lines labelled at the right end.
    """
    df = _numeric(df)
    _check(df, x, y)
    right = float(x_max if x_max is not None else (df[x].max() if len(df) else 0))
    enc_x = alt.X(f"{x}:Q", title="Week", scale=alt.Scale(domain=[0, max(right, 1)]),
                  axis=alt.Axis(format="d", tickMinStep=1))
    layers = []
    if ref_low is not None or ref_high is not None:
        top = float(df[y].max()) * 1.1 if len(df) else 1.0
        band = pd.DataFrame({
            "lo": [ref_low if ref_low is not None else 0.0],
            "hi": [ref_high if ref_high is not None else max(top, (ref_low or 0) * 1.2)],
            "label": [(f"reference {'' if ref_low is None else ref_low}–"
                       f"{'' if ref_high is None else ref_high}")],
        })
        layers.append(
            alt.Chart(band).mark_rect(color="#009E73", opacity=0.12).encode(
                y=alt.Y("lo:Q"), y2=alt.Y2("hi:Q"), tooltip=alt.Tooltip("label:N", title="Range")
            )
        )
    for i, (value, label) in enumerate(thresholds or []):
        t = pd.DataFrame({"v": [value], "label": [label], "x": [right]})
        layers.append(
            alt.Chart(t).mark_rule(color="#D55E00", strokeDash=[6, 3], strokeWidth=1.5)
            .encode(y=alt.Y("v:Q"), tooltip=alt.Tooltip("label:N", title="Threshold"))
        )
        layers.append(
            alt.Chart(t).mark_text(align="right", dy=-7 if i % 2 == 0 else 12, color="#D55E00")
            .encode(y=alt.Y("v:Q"), x=alt.X("x:Q", scale=alt.Scale(domain=[0, max(right, 1)])),
                    text=alt.Text("label:N"))
        )
    layers.append(
        alt.Chart(df).mark_line(point=alt.OverlayMarkDef(filled=True, size=60),
                                color=OKABE_ITO[0]).encode(
            x=enc_x,
            y=alt.Y(f"{y}:Q", title=y_title),
            tooltip=[alt.Tooltip(f"{x}:Q", title="Week"),
                     alt.Tooltip(f"{y}:Q", title=y_title or y, format=".3g")],
        )
    )
    return alt.layer(*layers).properties(title=title, width=width, height=height)


@memoised
def treatment_strip(
    doses: list[int],
    events: pd.DataFrame | None,
    *,
    x_max: float | None = None,
    title: str = "",
    width: int | str = "container",
) -> alt.Chart:
    """Belimumab doses and adverse events of one patient on a shared week axis."""
    rows = [{"track": "belimumab dose", "week": w, "what": f"dose at week {w}"} for w in doses]
    if events is not None:
        for r in events.itertuples(index=False):
            rows.append({"track": "adverse event", "week": r.onset_week, "what": str(r.term)})
    df = pd.DataFrame(rows, columns=["track", "week", "what"])
    right = float(x_max if x_max is not None else (df["week"].max() if len(df) else 1))
    return (
        alt.Chart(df)
        .mark_point(filled=True, size=110)
        .encode(
            x=alt.X("week:Q", title="Week", scale=alt.Scale(domain=[0, max(right, 1)]),
                    axis=alt.Axis(format="d", tickMinStep=1)),
            y=alt.Y("track:N", title=None, sort=["belimumab dose", "adverse event"]),
            shape=alt.Shape("track:N", legend=None,
                            scale=alt.Scale(domain=["belimumab dose", "adverse event"],
                                            range=["diamond", "triangle-down"])),
            color=alt.Color("track:N", legend=None,
                            scale=alt.Scale(domain=["belimumab dose", "adverse event"],
                                            range=["#CC79A7", "#E69F00"])),
            tooltip=[alt.Tooltip("track:N", title="What"), alt.Tooltip("week:Q", title="Week"),
                     alt.Tooltip("what:N", title="Detail")],
        )
        .properties(title=title, width=width, height=90)
    )


def finalize(chart: alt.TopLevelMixin, presenter: bool = False) -> alt.TopLevelMixin:
    """Set type and mark sizes for the screen, or large ones for a projector (memoised)."""
    key = _key_of(chart)
    if key is None:
        return _finalize(chart, presenter)
    fkey = ("final", key, presenter)
    hit = _memo_get(fkey)
    if hit is not None:
        return hit
    return _memo_put(fkey, _tag(_finalize(chart, presenter), fkey))


def _finalize(chart: alt.TopLevelMixin, presenter: bool = False) -> alt.TopLevelMixin:
    """Set type and mark sizes for the screen, or large ones for a projector.

    Also fixes the autosize: with Vega-Lite's "fit" (Streamlit's default) a
    chart's height includes its title and axes, so small charts collapse;
    "fit-x" stretches the width only and keeps the plot height as given.
    """
    kind = "pad" if isinstance(chart, alt.FacetChart) else "fit-x"
    chart = chart.properties(autosize=alt.AutoSizeParams(type=kind, contains="padding"))
    height = getattr(chart, "height", alt.Undefined)
    if presenter and isinstance(height, int) and not isinstance(chart, alt.FacetChart):
        chart = chart.properties(height=int(height * 1.5))  # taller plots for a projector
    # One configure() call: each configure_* copies the chart.
    if presenter:
        return chart.configure(
            axis=alt.AxisConfig(labelFontSize=20, titleFontSize=22),
            legend=alt.LegendConfig(labelFontSize=20, titleFontSize=20, symbolSize=260,
                                    labelLimit=400),
            title=alt.TitleConfig(fontSize=26),
            text=alt.MarkConfig(fontSize=20),
            header=alt.HeaderConfig(labelFontSize=20, titleFontSize=20),
            line=alt.LineConfig(strokeWidth=4),
            point=alt.MarkConfig(size=160),
            errorbar=alt.ErrorBarConfig(thickness=3),
            rule=alt.MarkConfig(strokeWidth=3),
            range=alt.RangeConfig(category=list(OKABE_ITO)),
        )
    return chart.configure(
        axis=alt.AxisConfig(labelFontSize=12, titleFontSize=13),
        legend=alt.LegendConfig(labelFontSize=12, titleFontSize=12),
        text=alt.MarkConfig(fontSize=14),
        title=alt.TitleConfig(fontSize=15),
        range=alt.RangeConfig(category=list(OKABE_ITO)),
    )


def spec(chart: alt.TopLevelMixin) -> dict:
    """The chart's Vega-Lite spec for the browser, memoised (see the memo note above).

    Unvalidated (the builders' specs are validated in the tests), and with each
    dataset already in Arrow IPC stream bytes, the form Streamlit sends: it would
    otherwise rebuild a DataFrame and convert it on every rerun. A fresh dict every
    call, because Streamlit moves the datasets out of the dict it is given.
    """
    key = _key_of(chart)
    if key is None:
        return _arrow_datasets(chart.to_dict(validate=False))
    skey = ("spec", key)
    hit = _memo_get(skey)
    if hit is None:
        hit = _memo_put(skey, _arrow_datasets(chart.to_dict(validate=False)))
    return copy.deepcopy(hit)


def _arrow_datasets(spec: dict) -> dict:
    """Replace the spec's record lists by Arrow IPC stream bytes (left as is if not tabular)."""
    import pyarrow as pa

    datasets = spec.get("datasets")
    if not datasets:
        return spec
    out = {}
    for name, rows in datasets.items():
        if not isinstance(rows, list) or not rows or not all(isinstance(r, dict) for r in rows):
            out[name] = rows
            continue
        try:
            table = pa.Table.from_pylist(rows)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
            out[name] = rows  # mixed types in a column: Streamlit's own conversion fixes it
            continue
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        out[name] = sink.getvalue().to_pybytes()
    spec["datasets"] = out
    return spec


def _fixed_width(chart: alt.TopLevelMixin, width: int = 760) -> dict:
    """Spec with 'container' widths replaced: an exported file has no container."""
    spec = chart.to_dict()

    def walk(node):
        if isinstance(node, dict):
            if node.get("width") == "container":
                node["width"] = width
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(spec)
    return spec


def to_png(chart: alt.TopLevelMixin, scale: float = 2.0) -> bytes:
    """PNG bytes of a chart, rendered offline by vl-convert."""
    import vl_convert as vlc

    return vlc.vegalite_to_png(_fixed_width(chart), scale=scale)


def to_svg(chart: alt.TopLevelMixin) -> str:
    """SVG text of a chart, rendered offline by vl-convert."""
    import vl_convert as vlc

    return vlc.vegalite_to_svg(_fixed_width(chart))


# --- treat-to-target (issue 13) ------------------------------------------------------
# Builders for the treat-to-target page: disease-state flow (Sankey), swimmer plot,
# Kaplan–Meier with its number-at-risk table, and the forest plot papers draw. Data
# arrive aggregated (treat_to_target, survival, mmrm); the Sankey layout is computed
# here from counts and transitions (≤ 5 states × visits rows whatever the cohort size).

T2T_STATES = ("remission", "LLDAS", "active", "not assessed", "stopped")
# Fixed colours: the same state has the same colour in every figure, whatever is present.
T2T_COLOURS = ("#009E73", "#56B4E9", "#D55E00", "#BBBBBB", "#444444")
_T2T_TEXT = ("#000000", "#000000", "#FFFFFF", "#000000", "#FFFFFF")  # readable on each
_SWIM_KINDS = (*T2T_STATES[:4], "adverse event", "stop", "ongoing")
_SWIM_COLOURS = (*T2T_COLOURS[:4], "#E69F00", "#000000", "#444444")
_SWIM_SHAPES = ("circle", "circle", "circle", "circle", "triangle-down", "cross",
                "triangle-right")


def _week_labels(weeks) -> str:
    """labelExpr naming visit positions 0..k-1 'Week w'."""
    names = ", ".join(f"'Week {int(w)}'" for w in weeks)
    return f"[{names}][datum.value]"


def sankey_layout(counts: pd.DataFrame, trans: pd.DataFrame, *, node_width: float = 0.34,
                  gap_px: float = 16, height: int = 360, approx_width: int = 900):
    """(nodes, ribbons, flows) in plot units: x = visit position, y from the top.

    nodes: week, x, x2, y, y2, state, n, pct, label (count, '' where the node is
    shorter than a line of text or narrower than the count at `approx_width` pixels;
    those get `side_label`, left of the node, instead), text colour. Gaps between nodes are `gap_px` pixels at `height`, so the side labels of
    two small neighbouring nodes never overlap. ribbons: flow id, x, y, y2 (4 points
    per flow, drawn with a basis curve). flows: flow id, from/to week and state, n,
    pct of the from-node (joined to the ribbons by a lookup, so ribbons stay thin).
    """
    weeks = sorted(int(w) for w in counts["visit_week"].unique())
    total = float(counts[counts["visit_week"] == weeks[0]]["n"].sum()) if weeks else 0.0
    k = len(T2T_STATES) - 1
    # gap px = g * height / (total + k g)  =>  g = gap_px total / (height - k gap_px)
    g = gap_px * max(total, 1.0) / max(height - k * gap_px, 1.0)
    span = total + g * k
    px_per_unit = height / span if span else 0.0
    order = {s: i for i, s in enumerate(T2T_STATES)}
    cnt = {(int(r.visit_week), r.state): int(r.n) for r in counts.itertuples(index=False)}
    top: dict = {}
    nodes = []
    node_px = node_width * approx_width / (max(len(weeks), 1) - 1 + 0.7)
    for i, w in enumerate(weeks):
        y = 0.0
        for s in T2T_STATES:
            n = cnt.get((w, s), 0)
            if n <= 0:
                continue
            top[(w, s)] = y
            big = n * px_per_unit >= 14 and 7.5 * len(f"{n:,}") + 8 <= node_px
            nodes.append({"week": w, "x": i - node_width / 2, "x2": i + node_width / 2,
                          "y": y, "y2": y + n, "state": s, "n": n,
                          "pct": n / total if total else None,
                          "label": f"{n:,}" if big else "",
                          "side_label": "" if big else f"{n:,}",
                          "text_colour": _T2T_TEXT[order[s]],
                          "ym": y + n / 2, "xm": float(i), "xs": i - node_width / 2})
            y += n + g
    pos = {w: i for i, w in enumerate(weeks)}
    t = trans[trans["n"] > 0].copy()
    t["_fo"] = t["from_state"].map(order)
    t["_to"] = t["to_state"].map(order)
    out_off = dict(top)
    ribbons, flows = [], []
    # Outgoing ribbons leave a node in the order of their target; incoming ones arrive
    # in the order of their source, so ribbons do not cross inside a node.
    t = t.sort_values(["from_week", "_fo", "_to"])
    in_off = dict(top)
    start_of: dict = {}
    for r in t.itertuples(index=False):
        a = out_off[(r.from_week, r.from_state)]
        out_off[(r.from_week, r.from_state)] = a + r.n
        start_of[(r.from_week, r.from_state, r.to_state)] = a
    for fid, r in enumerate(t.sort_values(["from_week", "_to", "_fo"]).itertuples(index=False)):
        b = in_off[(r.to_week, r.to_state)]
        in_off[(r.to_week, r.to_state)] = b + r.n
        a = start_of[(r.from_week, r.from_state, r.to_state)]
        x0, x1 = pos[r.from_week] + node_width / 2, pos[r.to_week] - node_width / 2
        d = (x1 - x0) * 0.5
        for x, yy in ((x0, a), (x0 + d * 0.6, a), (x1 - d * 0.6, b), (x1, b)):
            ribbons.append({"flow": fid, "x": round(x, 4), "y": yy, "y2": yy + r.n})
        fn = cnt.get((r.from_week, r.from_state), 0)
        flows.append({"flow": fid, "from_week": int(r.from_week), "to_week": int(r.to_week),
                      "from_state": r.from_state, "to_state": r.to_state, "n": int(r.n),
                      "pct_of_from": r.n / fn if fn else None})
    return (pd.DataFrame(nodes), pd.DataFrame(ribbons, columns=["flow", "x", "y", "y2"]),
            pd.DataFrame(flows, columns=["flow", "from_week", "to_week", "from_state",
                                         "to_state", "n", "pct_of_from"]))


@memoised
def sankey(
    counts: pd.DataFrame,
    trans: pd.DataFrame,
    *,
    title: str = "",
    subtitle: str | list | None = None,
    width: int | str = "container",
    height: int = 360,
) -> alt.LayerChart:
    """Disease states per visit as an alluvial (Sankey) chart: stacked nodes with counts,
    ribbons for the patients moving between consecutive visits, fixed state colours.

    counts: visit_week, state, n (treat_to_target.state_counts); trans: from_week,
    to_week, from_state, to_state, n (treat_to_target.transitions).
    """
    counts = _numeric(counts)
    _check(counts, "visit_week", "state", "n")
    trans = _numeric(trans)
    _check(trans, "from_week", "to_week", "from_state", "to_state", "n")
    nodes, ribbons, flows = sankey_layout(counts, trans, height=height)
    weeks = sorted(int(w) for w in counts["visit_week"].unique())
    span = float(nodes["y2"].max()) if len(nodes) else 1.0
    xs = alt.Scale(domain=[-0.35, max(len(weeks) - 1, 0) + 0.35], nice=False, zero=False)
    ys = alt.Scale(domain=[0, span], reverse=True, nice=False, zero=False)
    colour = alt.Scale(domain=list(T2T_STATES), range=list(T2T_COLOURS))
    # One legend definition on every layer: a layer with legend=None would drop it.
    legend = alt.Legend(orient="bottom", direction="horizontal", title=None, symbolOpacity=1,
                        symbolType="square")
    x_axis = alt.Axis(values=list(range(len(weeks))), labelExpr=_week_labels(weeks),
                      labelAngle=0, grid=False, domain=False, ticks=False, title=None,
                      orient="top", labelFontWeight="bold", offset=6)
    enc_x = alt.X("x:Q", scale=xs, axis=x_axis)
    no_y = alt.Y("y:Q", scale=ys, axis=None)
    flow_fields = ["from_week", "to_week", "from_state", "to_state", "n", "pct_of_from"]
    ribbon = (
        alt.Chart(ribbons)
        .transform_lookup(lookup="flow", from_=alt.LookupData(flows, "flow", flow_fields))
        .mark_area(interpolate="basis", opacity=0.42)
        .encode(
            x=enc_x, y=no_y, y2=alt.Y2("y2:Q"), detail=alt.Detail("flow:N"),
            color=alt.Color("from_state:N", scale=colour, legend=legend, title=None),
            tooltip=[alt.Tooltip("from_week:Q", title="From week"),
                     alt.Tooltip("from_state:N", title="From"),
                     alt.Tooltip("to_week:Q", title="To week"),
                     alt.Tooltip("to_state:N", title="To"),
                     alt.Tooltip("n:Q", title="Patients", format=",d"),
                     alt.Tooltip("pct_of_from:Q", title="Share of the from-state", format=".1%")],
        )
    )
    node_tips = [alt.Tooltip("week:Q", title="Week"), alt.Tooltip("state:N", title="State"),
                 alt.Tooltip("n:Q", title="Patients", format=",d"),
                 alt.Tooltip("pct:Q", title="Share", format=".1%")]
    node = alt.Chart(nodes).mark_rect(stroke="white", strokeWidth=0.5).encode(
        x=alt.X("x:Q", scale=xs, axis=x_axis), x2=alt.X2("x2:Q"), y=no_y, y2=alt.Y2("y2:Q"),
        color=alt.Color("state:N", scale=colour, title=None, legend=legend),
        tooltip=node_tips,
    )
    labels = alt.Chart(nodes).mark_text(fontWeight="bold").encode(
        x=alt.X("xm:Q", scale=xs), y=alt.Y("ym:Q", scale=ys), text=alt.Text("label:N"),
        color=alt.Color("text_colour:N", scale=None), tooltip=node_tips,
    )
    side = alt.Chart(nodes).mark_text(align="right", dx=-4, fontSize=11).encode(
        x=alt.X("xs:Q", scale=xs), y=alt.Y("ym:Q", scale=ys), text=alt.Text("side_label:N"),
        color=alt.value("#222222"), tooltip=node_tips,
    )
    props = {"width": width, "height": height, "view": alt.ViewBackground(stroke=None)}
    if title or subtitle:
        props["title"] = alt.TitleParams(title, subtitle=subtitle or alt.Undefined)
    return alt.layer(ribbon, node, labels, side).properties(**props)


@memoised
def swimmer(
    lanes: pd.DataFrame,
    markers: pd.DataFrame,
    *,
    label: str = "patient",
    note: str = "",
    title: str = "",
    x_title: str = "Week",
    width: int | str = "container",
    lane_height: int = 16,
) -> alt.LayerChart:
    """One lane per patient: time on treatment (bar), states at visits (circles in the state
    colours), adverse events (triangles), the stop with its reason (cross), treatment
    still ongoing at the end of follow-up (arrow). Lanes keep the order of `lanes.lane`;
    `note` says what is capped.

    lanes: lane, start, end, status ("stopped", "ongoing", "no further visits"),
    stop_reason and `label` (patient id, or a code in shared mode); markers: lane, week,
    kind (a state, "adverse event" or "stop"), detail (treat_to_target.swimmer_data).
    """
    lanes = _numeric(lanes)
    _check(lanes, "lane", "start", "end", "status", "stop_reason", label)
    markers = _numeric(markers)
    _check(markers, "lane", "week", "kind", "detail")
    order = lanes.sort_values("lane")[label].astype(str).tolist()
    names = dict(zip(lanes["lane"], lanes[label].astype(str)))
    lane_df = lanes.assign(_label=lanes[label].astype(str))
    mk = markers.assign(_label=markers["lane"].map(names))
    right = float(max(lane_df["end"].max() if len(lane_df) else 0,
                      mk["week"].max() if len(mk) else 0, 1))
    ongoing = lane_df[lane_df["status"] == "ongoing"]
    # The arrow just after the lane's end, clear of the last visit's marker.
    arrows = pd.DataFrame({"_label": ongoing["_label"], "week": ongoing["end"] + right * 0.025,
                           "kind": "ongoing", "detail": "on treatment at the end of follow-up"})
    mk = pd.concat([mk[["_label", "week", "kind", "detail"]], arrows], ignore_index=True)
    enc_y = alt.Y("_label:N", sort=order, title=None,
                  axis=alt.Axis(labelLimit=140, ticks=False, domain=False))
    xs = alt.Scale(domain=[-right * 0.02, right * 1.04], nice=False, zero=False)
    kind_scale = {"domain": list(_SWIM_KINDS)}
    bar = alt.Chart(lane_df).mark_bar(height=max(4, lane_height // 3), color="#C9D4E3").encode(
        x=alt.X("start:Q", scale=xs, title=x_title, axis=alt.Axis(format="d", tickMinStep=1)),
        x2=alt.X2("end:Q"), y=enc_y,
        tooltip=[alt.Tooltip("_label:N", title="Patient"),
                 alt.Tooltip("end:Q", title="Followed to week"),
                 alt.Tooltip("status:N", title="Status"),
                 alt.Tooltip("stop_reason:N", title="Stop reason")],
    )
    points = alt.Chart(mk).mark_point(filled=True, size=70, opacity=1).encode(
        x=alt.X("week:Q", scale=xs), y=enc_y,
        color=alt.Color("kind:N", scale=alt.Scale(range=list(_SWIM_COLOURS), **kind_scale),
                        title=None, legend=alt.Legend(orient="bottom", columns=4)),
        shape=alt.Shape("kind:N", scale=alt.Scale(range=list(_SWIM_SHAPES), **kind_scale),
                        title=None),
        tooltip=[alt.Tooltip("_label:N", title="Patient"), alt.Tooltip("week:Q", title="Week"),
                 alt.Tooltip("kind:N", title="What"), alt.Tooltip("detail:N", title="Detail")],
    )
    props = {"width": width, "height": max(80, lane_height * len(order))}
    if title or note:
        props["title"] = alt.TitleParams(title, subtitle=note or alt.Undefined)
    return alt.layer(bar, points).properties(**props)


@memoised
def km_risk(
    curves: pd.DataFrame,
    risk: pd.DataFrame,
    *,
    medians: pd.DataFrame | None = None,
    test_text: str = "",
    title: str = "",
    x_title: str = "Week",
    y_title: str = "Reached (cumulative %)",
    width: int | str = "container",
    height: int = 340,
) -> alt.LayerChart:
    """Kaplan–Meier as clinicians read it: cumulative incidence (1 − S) step curves with
    95 % CI, and the number at risk under the curve, one row per group, aligned with the
    weeks. Medians with CI (`medians`: group, median, ci_low, ci_high) and `test_text`
    (HR, log-rank p) go in the subtitle.

    curves: group, time, survival, ci_low, ci_high, n_risk (survival.km_summary);
    risk: group, time, n_risk.
    """
    curves = _numeric(curves)
    _check(curves, "group", "time", "survival", "ci_low", "ci_high")
    risk = _numeric(risk)
    _check(risk, "group", "time", "n_risk")
    groups = list(dict.fromkeys(risk["group"].tolist() or curves["group"].tolist()))
    rows = []
    for g in groups:  # every curve starts at (0, nobody reached)
        sub = curves[curves["group"] == g]
        if not (sub["time"] == 0).any():
            rows.append({"group": g, "time": 0.0, "survival": 1.0, "ci_low": 1.0,
                         "ci_high": 1.0, "n_risk": float(sub["n_risk"].max()) if len(sub)
                         and "n_risk" in sub else None})
    data = pd.concat([pd.DataFrame(rows), curves], ignore_index=True) if rows else curves
    data = data.assign(cum=1 - data["survival"], cum_lo=1 - data["ci_high"],
                       cum_hi=1 - data["ci_low"])
    tmax = float(max(data["time"].max(), risk["time"].max() if len(risk) else 0, 1))
    # Each curve runs on to the right edge, so a step at the last time shows its level.
    tails = data.sort_values("time").groupby("group", sort=False).tail(1)
    data = pd.concat([data, tails.assign(time=tmax * 1.02)], ignore_index=True)
    row = 0.085  # one table row in y units (the curve takes 0..1)
    ymin = -row * (len(groups) + 2.6)
    x0 = -0.03 * tmax  # room for the numbers at week 0; row names sit left of it
    xs = alt.Scale(domain=[x0, tmax * 1.02], nice=False, zero=False)
    ys = alt.Scale(domain=[ymin, 1], nice=False)
    colour = alt.Scale(domain=groups, range=list(OKABE_ITO[: max(1, len(groups))]))
    tips = [alt.Tooltip("group:N", title="Group"), alt.Tooltip("time:Q", title=x_title),
            alt.Tooltip("cum:Q", title="Reached", format=".1%"),
            alt.Tooltip("cum_lo:Q", title="95 % CI low", format=".1%"),
            alt.Tooltip("cum_hi:Q", title="95 % CI high", format=".1%")]
    if "n_risk" in data:
        tips.append(alt.Tooltip("n_risk:Q", title="At risk"))
    base = alt.Chart(data)
    y_axis = alt.Axis(format="%", values=[0, 0.25, 0.5, 0.75, 1], title=y_title, domain=False)
    # The same legend on every coloured layer (a layer with legend=None would drop it).
    legend = (alt.Legend(orient="top-left", symbolType="stroke", symbolOpacity=1,
                         symbolStrokeWidth=3) if len(groups) > 1 else None)
    layers = []
    if len(groups) <= 2:
        layers.append(base.mark_area(interpolate="step-after", opacity=0.15).encode(
            x=alt.X("time:Q", scale=xs, axis=None), y=alt.Y("cum_lo:Q", scale=ys, axis=y_axis),
            y2=alt.Y2("cum_hi:Q"), color=alt.Color("group:N", scale=colour, title=None,
                                                   legend=legend),
            detail=alt.Detail("group:N")))
    layers.append(base.mark_line(interpolate="step-after", strokeWidth=2.5).encode(
        x=alt.X("time:Q", scale=xs, axis=None), y=alt.Y("cum:Q", scale=ys, axis=y_axis),
        color=alt.Color("group:N", scale=colour, title=None, legend=legend),
        tooltip=tips))
    # The x axis drawn by hand at y = 0 (ticks labelled at the risk-table times), so the
    # table sits under it and everything stays one layered chart that fits its container.
    times = []
    for t in sorted({float(t) for t in risk["time"]}):
        if not times or t - times[-1] >= 0.045 * (tmax - x0):  # no two labels on each other
            times.append(t)
    risk = risk[risk["time"].astype(float).isin(times)]
    axis_rows = pd.DataFrame({"time": times, "y": -row * 0.9,
                              "label": [f"{t:g}" for t in times]})
    layers.append(alt.Chart(pd.DataFrame({"y": [0.0]})).mark_rule(color="#888888").encode(
        y=alt.Y("y:Q", scale=ys)))
    layers.append(alt.Chart(axis_rows).mark_text(baseline="middle").encode(
        x=alt.X("time:Q", scale=xs), y=alt.Y("y:Q", scale=ys), text=alt.Text("label:N")))
    heads = [{"y": -row * 0.9, "text": x_title}, {"y": -row * 2.0, "text": "Number at risk"}]
    for i, g in enumerate(groups):
        heads.append({"y": -row * (2.9 + i), "text": str(g)})
    layers.append(alt.Chart(pd.DataFrame(heads)).mark_text(align="right", dx=-10,
                                                              fontWeight="bold").encode(
        x=alt.datum(x0, scale=xs), y=alt.Y("y:Q", scale=ys), text=alt.Text("text:N")))
    rk = risk.assign(y=[-row * (2.9 + groups.index(g)) for g in risk["group"]])
    layers.append(alt.Chart(rk).mark_text(baseline="middle").encode(
        x=alt.X("time:Q", scale=xs), y=alt.Y("y:Q", scale=ys),
        text=alt.Text("n_risk:Q", format=",d"),
        color=alt.Color("group:N", scale=colour, title=None, legend=legend),
        tooltip=[alt.Tooltip("group:N", title="Group"), alt.Tooltip("time:Q", title=x_title),
                 alt.Tooltip("n_risk:Q", title="At risk")]))
    sub = []
    if medians is not None and len(medians):
        parts = []
        for r in medians.itertuples(index=False):
            def f(v):
                return "NR" if is_missing(v) else f"{v:g}"
            parts.append(f"{r.group}: {f(r.median)} ({f(r.ci_low)}–{f(r.ci_high)})")
        sub.append(f"Median {x_title.lower()}s (95 % CI): " + "; ".join(parts)
                   + " (NR = not reached)")
    if test_text:
        sub.append(test_text)
    props = {"width": width, "height": height, "view": alt.ViewBackground(stroke=None)}
    if title or sub:
        props["title"] = alt.TitleParams(title, subtitle=sub or alt.Undefined)
    return alt.layer(*layers).properties(**props)


@memoised
def forest_t2t(
    df: pd.DataFrame,
    *,
    label: str = "label",
    est: str = "estimate",
    lo: str = "ci_low",
    hi: str = "ci_high",
    n: str = "n",
    events: str | None = None,
    overall_label: str = "All patients",
    interaction_p: float | None = None,
    interaction_label: str = "Interaction",
    null_value: float | None = 0.0,
    x_title: str = "Estimate (95 % CI)",
    est_format: str = ".2f",
    title: str = "",
    width: int | str = "container",
) -> alt.LayerChart:
    """Forest plot as papers draw it: one row per subgroup with n (and events) on the left,
    the estimate and CI in words on the right, the "All patients" row first as a diamond,
    a dashed line at the overall estimate, and the interaction p (not a p per subgroup).

    df: one row per subgroup plus the overall row (label == overall_label).
    """
    df = _numeric(df)
    _check(df, label, est, lo, hi, n, events)
    if not (df[label] == overall_label).any():
        raise ValueError(f"forest data lacks the {overall_label!r} row")
    d = pd.concat([df[df[label] == overall_label], df[df[label] != overall_label]],
                  ignore_index=True)

    def left(r):
        s = f"{r[label]} (n = {int(r[n]):,}"
        if events:
            s += f", events {int(r[events]):,}"
        return s + ")"

    def num(v):
        return "–" if is_missing(v) else format(float(v), est_format)

    d["_left"] = [left(r) for _, r in d.iterrows()]
    # Zero-width spaces keep equal texts apart (the right axis is a band scale of labels).
    d["_right"] = [f"{num(r[est])} ({num(r[lo])} to {num(r[hi])})" + "\u200b" * i
                   for i, (_, r) in enumerate(d.iterrows())]
    d["_overall"] = d[label] == overall_label
    order_l, order_r = d["_left"].tolist(), d["_right"].tolist()
    overall = float(d.loc[d["_overall"], est].iloc[0])
    tips = [alt.Tooltip(f"{label}:N", title="Group"),
            alt.Tooltip(f"{est}:Q", title="Estimate", format=".3g"),
            alt.Tooltip(f"{lo}:Q", title="95 % CI low", format=".3g"),
            alt.Tooltip(f"{hi}:Q", title="95 % CI high", format=".3g"),
            alt.Tooltip(f"{n}:Q", title="n")]
    if events:
        tips.append(alt.Tooltip(f"{events}:Q", title="events"))
    y_left = alt.Y("_left:N", sort=order_l, title=None,
                   axis=alt.Axis(labelLimit=320, ticks=False, domain=False, labelFontWeight="normal"))
    y_right = alt.Y("_right:N", sort=order_r, title=None,
                    axis=alt.Axis(orient="right", labelLimit=220, ticks=False, domain=False))
    base = alt.Chart(d)
    refs = [alt.Chart(pd.DataFrame({"v": [overall]})).mark_rule(
        color="#555555", strokeDash=[5, 4]).encode(x=alt.X("v:Q"))]
    if null_value is not None:
        refs.append(alt.Chart(pd.DataFrame({"v": [float(null_value)]})).mark_rule(
            color="#BBBBBB").encode(x=alt.X("v:Q")))
    left_layer = alt.layer(
        *refs,
        base.mark_rule(strokeWidth=2.2, color=OKABE_ITO[0]).encode(
            x=alt.X(f"{lo}:Q", title=x_title), x2=alt.X2(f"{hi}:Q"), y=y_left, tooltip=tips),
        base.transform_filter("!datum._overall").mark_point(
            filled=True, shape="square", size=110, color=OKABE_ITO[0]).encode(
            x=alt.X(f"{est}:Q"), y=y_left, tooltip=tips),
        base.transform_filter("datum._overall").mark_point(
            filled=True, shape="diamond", size=260, color="#000000").encode(
            x=alt.X(f"{est}:Q"), y=y_left, tooltip=tips),
    )
    right_layer = base.mark_point(opacity=0).encode(x=alt.X(f"{est}:Q"), y=y_right)
    sub = (f"{interaction_label} p = {fmt_p(interaction_p)}"
           if interaction_p is not None else alt.Undefined)
    return alt.layer(left_layer, right_layer).resolve_scale(y="independent").properties(
        title=alt.TitleParams(title, subtitle=sub), width=width,
        height=max(120, 34 * len(d)))


# --- export stamps (issue 15) -----------------------------------------------------------
# An exported figure travels alone (pasted into slides, mailed): it must say which
# patients, which definitions, which data and whether it was planned. The caption is
# drawn INTO the image (a text view under the chart, rendered by vl-convert with the
# chart's own fonts), not only written into the file name.

PROJECTOR = (1920, 1080)
STATUS_COLOURS = {"pre-specified": "#007A5A", "exploratory": "#C04A00"}  # Okabe–Ito, darkened


@dataclass(frozen=True)
class ExportContext:
    """What an exported figure says about itself: filter, n, definitions, data, date, status."""

    filter_sentence: str
    n: int
    preset: str
    data_version: str
    date: str
    status: str = "exploratory"
    comparisons: int | None = None

    def caption(self, width_chars: int = 110) -> list[tuple[str, bool]]:
        """Caption lines and whether each is the status (drawn bold, in colour): the status,
        then the filter sentence, then n, definitions, data version and date."""
        head = self.status.upper()
        if self.comparisons is not None:
            head += (f" · comparisons looked at: {self.comparisons} (about "
                     f"{self.comparisons * 0.05:.1f} expected p < 0.05 by chance)")
        tail = (f"n = {self.n} · definitions: {self.preset} · data version "
                f"{(self.data_version or 'unknown')[:8]} · {self.date}")
        out = [(t, True) for t in textwrap.wrap(head, width_chars)]
        for text in (self.filter_sentence, tail):
            out += [(t, False) for t in textwrap.wrap(text, width_chars) or [""]]
        return out

    def lines(self, width_chars: int = 110) -> list[str]:
        """The caption's text lines."""
        return [t for t, _ in self.caption(width_chars)]

    def line(self) -> str:
        """The context as one line (slides, Word footers)."""
        return " · ".join([self.filter_sentence, f"n = {self.n}",
                           f"definitions: {self.preset}",
                           f"data version {(self.data_version or 'unknown')[:8]}", self.date,
                           self.status])


_TOP_LEVEL = ("$schema", "config", "datasets", "background", "padding", "usermeta")


def stamp(chart: alt.TopLevelMixin, ctx: ExportContext, width: int = 760,
          height: int | None = None, font_size: int = 13) -> dict:
    """The chart's Vega-Lite spec with the context caption drawn under it (vconcat).

    `width`/`height` set the plot size of a single (non-facet) chart; a facet chart
    keeps its cell sizes.
    """
    spec = _fixed_width(chart, width)
    top = {k: spec.pop(k) for k in _TOP_LEVEL if k in spec}
    spec.pop("autosize", None)  # only the top level may size; a vconcat pads
    if height is not None and "height" in spec:
        spec["height"] = height
    if isinstance(spec.get("width"), (int, float)):
        spec["width"] = width
        cap_w = width
    else:
        cap_w = 10  # a facet: the caption's text sets its own extent (autosize pad)
    chars = max(40, int(width / (font_size * 0.55)))
    lines = ctx.caption(chars)
    step = round(font_size * 1.45)
    rows = [{"y": i * step, "t": t, "first": bold} for i, (t, bold) in enumerate(lines)]
    colour = STATUS_COLOURS.get(ctx.status, "#333333")

    def text_layer(first: bool) -> dict:
        return {
            "transform": [{"filter": f"datum.first == {'true' if first else 'false'}"}],
            "mark": {"type": "text", "align": "left", "baseline": "top",
                     "fontSize": font_size, "fontWeight": "bold" if first else "normal",
                     "color": colour if first else "#333333", "limit": 0},
            "encoding": {"x": {"value": 0},
                         "y": {"field": "y", "type": "quantitative", "scale": None},
                         "text": {"field": "t", "type": "nominal"}},
        }

    caption = {"width": cap_w, "height": step * len(lines), "view": {"stroke": None},
               "data": {"values": rows}, "layer": [text_layer(True), text_layer(False)]}
    out = {k: top[k] for k in ("$schema",) if k in top}
    out.update({"vconcat": [spec, caption], "spacing": max(10, font_size),
                "autosize": {"type": "pad"}, "background": "white"})
    for k in ("config", "datasets", "padding", "usermeta"):
        if k in top:
            out[k] = top[k]
    return out


def to_png_stamped(chart: alt.TopLevelMixin, ctx: ExportContext, scale: float = 2.0,
                   width: int = 760) -> bytes:
    """PNG bytes of a chart with its context caption in the image."""
    import vl_convert as vlc

    return vlc.vegalite_to_png(stamp(chart, ctx, width), scale=scale)


def to_svg_stamped(chart: alt.TopLevelMixin, ctx: ExportContext, width: int = 760) -> str:
    """SVG text of a chart with its context caption in the image."""
    import vl_convert as vlc

    return vlc.vegalite_to_svg(stamp(chart, ctx, width))


def png_size(png: bytes) -> tuple[int, int]:
    """Width and height of a PNG, from its IHDR header."""
    if png[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")


def to_projector_png(chart: alt.TopLevelMixin, ctx: ExportContext,
                     size: tuple[int, int] = PROJECTOR) -> bytes:
    """A PNG of exactly `size` (1920×1080) for a projector: presenter type, caption included.

    Rendered at scale 1 so type sizes are pixels (presenter axis labels 20 px, ≥ 18 px
    at 1080p); the plot is sized to fill the frame, then centred on a white canvas.
    """
    import vl_convert as vlc
    from PIL import Image

    big_w, big_h = size
    final = chart if _configured(chart) else finalize(chart, presenter=True)
    facet = _is_facet(final)
    w0, h0 = 1200, 560
    spec = stamp(final, ctx, width=w0, height=None if facet else h0, font_size=22)
    png = vlc.vegalite_to_png(spec, scale=1)
    w, h = png_size(png)
    if not facet:
        # What axes, legend, title and caption add around the plot, measured, then removed
        # from the frame to give the plot size that fills it.
        margin = 24
        pw = max(300, w0 + (big_w - margin) - w)
        ph = max(200, h0 + (big_h - margin) - h)
        spec = stamp(final, ctx, width=pw, height=ph, font_size=22)
        png = vlc.vegalite_to_png(spec, scale=1)
        w, h = png_size(png)
    elif isinstance(spec["vconcat"][0].get("spec", {}).get("width"), (int, float)):
        # A facet keeps its cell sizes: widen the cells to the frame's aspect, then scale.
        cell = spec["vconcat"][0]["spec"]
        cell["width"] = int(cell["width"] * (big_w / big_h) / (w / h))
        png = vlc.vegalite_to_png(spec, scale=1)
        w, h = png_size(png)
    if w < big_w and h < big_h:
        png = vlc.vegalite_to_png(spec, scale=min(big_w / w, big_h / h) * 0.98)
    img = Image.open(io.BytesIO(png)).convert("RGB")
    if img.width > big_w or img.height > big_h:
        img.thumbnail((big_w, big_h), Image.LANCZOS)
    canvas = Image.new("RGB", (big_w, big_h), "white")
    canvas.paste(img, ((big_w - img.width) // 2, (big_h - img.height) // 2))
    buf = io.BytesIO()
    canvas.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def _configured(chart: alt.TopLevelMixin) -> bool:
    return getattr(chart, "config", alt.Undefined) is not alt.Undefined


def _is_facet(chart: alt.TopLevelMixin) -> bool:
    return isinstance(chart, alt.FacetChart)
