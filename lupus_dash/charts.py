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
import pickle
import threading
from collections import OrderedDict

import altair as alt
import pandas as pd

from .layouts import stars

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
    width: int | str = "container",
    height: int = 320,
) -> alt.Chart:
    """Centre line with an interval band per visit (mean ± CI or median with IQR).

    `p_values` (visit_week, p) adds the paper's stars above each visit's upper bound.
    Rows with fewer than `min_n` patients get no centre or interval: `points` (x,
    color, value) draws their single values instead, so a group of 2 cannot stretch
    the axis. `clip` (low, high): intervals are cut at the endpoint's plausible range
    and a triangle marks a cut end. The y scale follows the data (no forced zero).
    """
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
        pad = (allv.max() - allv.min()) * 0.05 or abs(allv.max()) * 0.05 or 1.0
        scale = alt.Scale(zero=False, nice=True,
                          domain=[float(allv.min() - pad), float(allv.max() + pad)])
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
    col_enc = (
        alt.Color(f"{color}:N", scale=alt.Scale(range=list(OKABE_ITO)), title=None)
        if color
        else alt.ColorValue(OKABE_ITO[0])
    )
    offset = {"xOffset": alt.XOffset(f"{color}:N")} if color else {}
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
        pt_color = (alt.Color(f"{color}:N", scale=alt.Scale(range=list(OKABE_ITO)), title=None)
                    if color else alt.ColorValue(OKABE_ITO[0]))
        layers.append(alt.Chart(points).mark_point(shape="diamond", size=60, filled=False,
                                                    strokeWidth=2)
                      .encode(x=enc_x, y=alt.Y("value:Q", scale=scale), color=pt_color,
                              tooltip=[alt.Tooltip(f"{x}:O", title="Week"),
                                       alt.Tooltip("value:Q", title="value", format=".3g")],
                              **({"xOffset": alt.XOffset(f"{color}:N")} if color else {})))
    if p_values is not None and len(p_values):
        marks = df[[x, hi]].groupby(x, as_index=False).max()
        pv = p_values[[x, p_col]].copy()
        pv["stars"] = [stars(p) for p in pv[p_col]]
        marks = marks.merge(pv, on=x, how="inner")
        marks = marks[marks["stars"] != ""]
        if len(marks):
            layers.append(
                alt.Chart(marks)
                .mark_text(dy=-12, fontSize=16, fontWeight="bold", color="#222222")
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
    _check(df, "visit_week", facet, y, lo, hi)
    enc_x = alt.X("visit_week:O", title="Week", axis=alt.Axis(labelAngle=0))
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
    base = alt.Chart()
    layers = [
        base.mark_errorbar(ticks=alt.TickConfig(size=10), color=OKABE_ITO[0]).encode(
            x=enc_x, y=alt.Y(f"{lo}:Q", title=None), y2=alt.Y2(f"{hi}:Q"), tooltip=tips
        ),
        base.mark_line(point=True, color=OKABE_ITO[0]).encode(
            x=enc_x, y=alt.Y(f"{y}:Q", title=None), tooltip=tips
        ),
    ]
    if stars_col and stars_col in df.columns:
        layers.append(
            base.mark_text(dy=-10, fontSize=14, fontWeight="bold", color="#222222").encode(
                x=enc_x, y=alt.Y(f"{hi}:Q"), text=alt.Text(f"{stars_col}:N")
            )
        )
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
    _check(df, "visit_week", "label", y, lo, hi)
    title = str(df["label"].iloc[0]).split("\n") if len(df) else ""
    enc_x = alt.X("visit_week:O", title="Week", axis=alt.Axis(labelAngle=0))
    tips = [alt.Tooltip("visit_week:O", title="Week"),
            alt.Tooltip(f"{y}:Q", title="value", format=".3g"),
            alt.Tooltip(f"{lo}:Q", title="lower", format=".3g"),
            alt.Tooltip(f"{hi}:Q", title="upper", format=".3g")]
    for col, t in (("n", "n"), ("summary", "shown"), ("method", "test")):
        if col in df.columns:
            tips.append(alt.Tooltip(f"{col}:{'Q' if col == 'n' else 'N'}", title=t))
    if "p_value" in df.columns:
        tips.append(alt.Tooltip("p_value:Q", title="p", format=".3g"))
    scale = alt.Scale(zero=False, nice=True)
    base = alt.Chart(df)
    layers = [
        base.mark_errorbar(ticks=alt.TickConfig(size=10), color=OKABE_ITO[0]).encode(
            x=enc_x, y=alt.Y(f"{lo}:Q", title=None, scale=scale), y2=alt.Y2(f"{hi}:Q"),
            tooltip=tips),
        base.mark_line(point=True, color=OKABE_ITO[0]).encode(
            x=enc_x, y=alt.Y(f"{y}:Q", title=None, scale=scale), tooltip=tips),
    ]
    if stars_col and stars_col in df.columns:
        layers.append(base.mark_text(dy=-10, fontWeight="bold", color="#222222").encode(
            x=enc_x, y=alt.Y(f"{hi}:Q", scale=scale), text=alt.Text(f"{stars_col}:N")))
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
            text=alt.MarkConfig(fontSize=18),
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
        text=alt.MarkConfig(fontSize=12),
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
