"""Treat-to-target: time in LLDAS / remission, sustained states, flares, state flow.

Pure functions take two tidy frames and return small ones:

- `visits`: patient, week, and one column per definition (`lldas`, `remission`):
  True / False, or missing (NaN / None / NA) when the visit could not be evaluated;
- `patients`: patient, stop_week (NaN = still on the biologic), optionally
  stop_reason and group.

Rules (CLINICAL_DEFINITIONS.md, "Additions (2026-12-01)"):

- **Time in target** (Franklyn et al. 2016, Ann Rheum Dis: LLDAS for ≥ 50 % of
  observed time). The state at an assessed visit holds until the next assessed visit;
  observed time runs from the first to the last assessed visit. A visit that could
  not be evaluated is skipped (the previous state carries on).
- **Sustained**: a run of ≥ `min_visits` consecutive assessed visits in the state
  whose first and last visits are ≥ `min_weeks` apart (default 2 visits, 26 weeks =
  6 months).
- **Flare after target**: the state reached at an assessed visit and lost at a later
  assessed visit (`lost_by` = "flare"); under the composite strategy a stop after
  reaching it is a loss too (`lost_by` = "stopped").
- **Intercurrent events** (stop or switch of the biologic, `stop_week`), by strategy:
  `composite` (default): visits after the stop are failures; time in target counts
  the time from the stop to the planned end of follow-up (`end_week`) as not in
  target, and in time-to-target the patient is an event-free failure, censored at
  the planned end (not at the last visit: that would be informative censoring).
  `treatment_policy`: every observed value is used, stop or not.
  `while_on_treatment`: visits after the stop are left out; the patient is
  censored at the last assessed visit on treatment.
  A visit in the stop week itself is on treatment (the assessment that led to it).
- **Time to first target** counts only patients not in the state at baseline;
  those already in it are reported apart (`at_baseline`), never as events at week 0.
  A patient whose baseline could not be evaluated is kept at risk and counted.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from . import stats

STRATEGIES = ("composite", "treatment_policy", "while_on_treatment")
STRATEGY_LABELS = {
    "composite": "Composite: stopping or switching counts as failure from then on",
    "treatment_policy": "Treatment policy: observed values used whatever the treatment",
    "while_on_treatment": "While on treatment: follow-up ends at the stop",
}
DEFINITIONS = ("lldas", "remission")
DEFINITION_LABELS = {"lldas": "LLDAS", "remission": "Remission (DORIS)"}
# Per-visit states, best to worst, then the two without a clinical state.
STATES = ("remission", "LLDAS", "active", "not assessed", "stopped")
REMISSION, LLDAS, ACTIVE, NOT_ASSESSED, STOPPED = range(5)
SUSTAIN_VISITS = 2
SUSTAIN_WEEKS = 26.0  # 6 months

PER_PATIENT_COLUMNS = [
    "patient", "n_assessed", "first_week", "end_week", "observed_weeks", "weeks_in_target",
    "share", "reached", "first_target_week", "sustained", "longest_run_weeks", "lost_week",
    "lost_by", "stopped",
]
SUMMARY_COLUMNS = [
    "definition", "strategy", "n", "median", "p25", "p75", "n_ge_50pct", "share_ge_50pct",
    "ci_low", "ci_high", "n_sustained", "share_sustained", "sustained_ci_low",
    "sustained_ci_high", "n_reached", "n_flare", "n_lost_by_stop", "n_no_observed_time",
]


def _check_strategy(strategy: str) -> None:
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)} (got {strategy!r})")


def _as_state(s: pd.Series) -> np.ndarray:
    """True/False/missing as 1.0/0.0/NaN (accepts booleans, 0/1, pandas NA)."""
    if s.dtype == object:
        s = s.map(lambda v: np.nan if v is None or (isinstance(v, float) and math.isnan(v))
                  else float(bool(v)))
    return pd.to_numeric(s, errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def _codes(visits: pd.DataFrame, patients: pd.DataFrame):
    """Patient codes 0..P-1 in the order of `patients`; visits of unknown patients refused."""
    pids = patients["patient"].to_numpy()
    index = pd.Index(pids)
    if not index.is_unique:
        dup = index[index.duplicated()][0]
        raise ValueError(f"patients: patient {dup!r} appears twice")
    code = index.get_indexer(visits["patient"].to_numpy())
    if (code < 0).any():
        bad = visits["patient"].to_numpy()[np.flatnonzero(code < 0)[0]]
        raise ValueError(f"visits: patient {bad!r} is not in patients")
    stop = pd.to_numeric(patients["stop_week"], errors="coerce").to_numpy(float) \
        if "stop_week" in patients else np.full(len(patients), np.nan)
    return code, stop


def _inputs(visits: pd.DataFrame, patients: pd.DataFrame, strategy: str,
            end_week: float | None = None):
    """(patient codes, stop weeks, visit weeks, end_week) for the functions below, the
    strategy checked; end_week None = the last week in `visits` (0 when there are none)."""
    _check_strategy(strategy)
    code, stop = _codes(visits, patients)
    week = pd.to_numeric(visits["week"], errors="coerce").to_numpy(float)
    if end_week is None:
        end_week = float(np.nanmax(week)) if week.size else 0.0
    return code, stop, week, end_week


def _timeline(visits, patients, column, strategy, end_week):
    """Rows (patient code, week, in state, kind) after the strategy, sorted.

    kind 0 = an assessed visit, 1 = the stop (composite: failure from here), 2 = the
    planned end of follow-up (composite, stopped patients only).
    """
    code, stop, week, end_week = _inputs(visits, patients, strategy, end_week)
    state = _as_state(visits[column])
    keep = ~np.isnan(state) & ~np.isnan(week)
    if strategy != "treatment_policy":
        s = stop[code]
        keep &= np.isnan(s) | (week <= s)
    c, w, st = code[keep], week[keep], state[keep] > 0
    kind = np.zeros(c.size, dtype=np.int8)
    if strategy == "composite":
        stopped = np.flatnonzero(~np.isnan(stop))
        ends = np.maximum(float(end_week), stop[stopped])
        c = np.concatenate([c, stopped, stopped])
        w = np.concatenate([w, stop[stopped], ends])
        st = np.concatenate([st, np.zeros(2 * stopped.size, dtype=bool)])
        kind = np.concatenate([kind, np.ones(stopped.size, np.int8),
                               np.full(stopped.size, 2, np.int8)])
    order = np.lexsort((kind, w, c))
    return c[order], w[order], st[order], kind[order], stop


def per_patient(visits: pd.DataFrame, patients: pd.DataFrame, column: str = "lldas",
                strategy: str = "composite", end_week: float | None = None,
                min_visits: int = SUSTAIN_VISITS, min_weeks: float = SUSTAIN_WEEKS) -> pd.DataFrame:
    """Per patient: time in the state, sustained runs, first target and its loss.

    `share` = weeks_in_target / observed_weeks, NaN when the patient has no observed
    time (one assessed visit or none). `end_week` is the planned end of follow-up
    (composite strategy); None = the last week in `visits`.
    """
    c, w, st, kind, stop = _timeline(visits, patients, column, strategy, end_week)
    n_pat = len(patients)
    out = pd.DataFrame({"patient": patients["patient"].to_numpy()})
    same_next = np.r_[c[1:] == c[:-1], False]
    dur = np.where(same_next, np.r_[w[1:], 0.0] - w, 0.0)
    # The stop's failure segment counts as observed time not in the state.
    in_t = np.bincount(c, weights=dur * st, minlength=n_pat)
    has = np.bincount(c, minlength=n_pat) > 0
    first = np.full(n_pat, np.nan)
    last = np.full(n_pat, np.nan)
    starts = np.flatnonzero(np.r_[True, c[1:] != c[:-1]]) if c.size else np.array([], int)
    ends = np.r_[starts[1:] - 1, c.size - 1] if c.size else np.array([], int)
    first[c[starts]] = w[starts]
    last[c[ends]] = w[ends]
    observed = last - first
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(observed > 0, in_t / observed, np.nan)
    visit = kind == 0
    n_assessed = np.bincount(c[visit], minlength=n_pat)
    # First week in the state (assessed visits only).
    ft = np.full(n_pat, np.inf)
    np.minimum.at(ft, c[st & visit], w[st & visit])
    reached = np.isfinite(ft)
    # First loss after it: a later row not in the state (a visit, or the stop).
    after = (~st) & (kind < 2) & (w > ft[c])
    lost_w = np.full(n_pat, np.inf)
    np.minimum.at(lost_w, c[after], w[after])
    lost_kind = np.full(n_pat, -1)
    hit = np.flatnonzero(after & (w == lost_w[c]))
    # Rows are sorted by (patient, week, kind): at equal weeks an observed loss (a visit)
    # comes before the stop, so the first hit per patient says how the state was lost.
    pat_hit, first_idx = np.unique(c[hit], return_index=True)
    lost_kind[pat_hit] = kind[hit[first_idx]]
    # Runs of consecutive assessed visits in the state (other rows break them).
    in_run = st & visit
    brk = np.r_[True, (c[1:] != c[:-1]) | (in_run[1:] != in_run[:-1])]
    run_id = np.cumsum(brk) - 1
    rid = run_id[in_run]
    if rid.size:
        uniq, inv = np.unique(rid, return_inverse=True)
        r_first = np.full(uniq.size, np.inf)
        r_last = np.full(uniq.size, -np.inf)
        np.minimum.at(r_first, inv, w[in_run])
        np.maximum.at(r_last, inv, w[in_run])
        r_n = np.bincount(inv)
        r_pat = np.zeros(uniq.size, dtype=np.int64)
        r_pat[inv] = c[in_run]
        span = r_last - r_first
        ok = (r_n >= min_visits) & (span >= min_weeks)
        sustained = np.bincount(r_pat[ok], minlength=n_pat) > 0
        longest = np.zeros(n_pat)
        np.maximum.at(longest, r_pat, span)
    else:
        sustained = np.zeros(n_pat, dtype=bool)
        longest = np.zeros(n_pat)
    out["n_assessed"] = n_assessed
    out["first_week"] = first
    out["end_week"] = last
    out["observed_weeks"] = np.where(has, observed, np.nan)
    out["weeks_in_target"] = np.where(has, in_t, np.nan)
    out["share"] = share
    out["reached"] = reached
    out["first_target_week"] = np.where(reached, ft, np.nan)
    out["sustained"] = sustained
    out["longest_run_weeks"] = np.where(reached, longest, np.nan)
    out["lost_week"] = np.where(np.isfinite(lost_w), lost_w, np.nan)
    # object dtype: None (never lost) stays None rather than becoming a string NaN
    out["lost_by"] = pd.Series(np.where(lost_kind == 0, "flare",
                                        np.where(lost_kind == 1, "stopped", None)), dtype=object)
    out["stopped"] = ~np.isnan(stop)
    return out[PER_PATIENT_COLUMNS]


def summarise(pp: pd.DataFrame, definition: str, strategy: str) -> dict:
    """Cohort summary of `per_patient`: the report's `time_in_target` row.

    Over the patients with observed time (n): median and SPSS (type 6) quartiles of
    the share of time in the state, the number and share with ≥ 50 % (Wilson CI,
    R prop.test(correct=FALSE)), and sustained achievement with its Wilson CI.
    """
    obs = pp[pp["share"].notna()]
    n = len(obs)
    share = obs["share"].to_numpy(float)
    d = stats.describe(share)
    k50 = int((share >= 0.5).sum())
    r50, lo, hi = stats.proportion_ci(k50, n)
    ks = int(obs["sustained"].sum())
    rs, slo, shi = stats.proportion_ci(ks, n)
    return {
        "definition": definition, "strategy": strategy, "n": n, "median": d["median"],
        "p25": d["p25"], "p75": d["p75"], "n_ge_50pct": k50, "share_ge_50pct": r50,
        "ci_low": lo, "ci_high": hi, "n_sustained": ks, "share_sustained": rs,
        "sustained_ci_low": slo, "sustained_ci_high": shi,
        "n_reached": int(obs["reached"].sum()),
        "n_flare": int((obs["lost_by"] == "flare").sum()),
        "n_lost_by_stop": int((obs["lost_by"] == "stopped").sum()),
        "n_no_observed_time": int(len(pp) - n),
    }


def time_to_target(visits: pd.DataFrame, patients: pd.DataFrame, column: str = "lldas",
                   strategy: str = "composite", end_week: float | None = None,
                   baseline_week: float = 0) -> pd.DataFrame:
    """Weeks to the first post-baseline visit in the state, per patient, by strategy.

    Columns: patient, time, event, included, at_baseline, baseline_assessed, stopped,
    why (for patients left out). Patients in the state at baseline are not at risk
    (`at_baseline`, `included` False). Censoring: last assessed visit (treatment policy;
    while on treatment: the last one up to the stop); composite: a patient who stopped
    without reaching the state is censored at the planned end (`end_week`, default the
    last week in `visits`). Follow-up is cut at `end_week` for everyone (a later event is
    censored there): the composite strategy holds stopped patients to that week, so
    letting others run on would leave only non-stoppers at risk afterwards. A patient
    with no assessed visit after baseline (and, under composite, no stop) has no
    follow-up and is left out.
    """
    code, stop, week, end_week = _inputs(visits, patients, strategy, end_week)
    n_pat = len(patients)
    state = _as_state(visits[column])
    base = week == baseline_week
    b_state = np.full(n_pat, np.nan)
    bk = base & ~np.isnan(state)
    b_state[code[bk]] = state[bk]
    at_baseline = b_state > 0
    post = (week > baseline_week) & ~np.isnan(state)
    if strategy != "treatment_policy":
        s = stop[code]
        post &= np.isnan(s) | (week <= s)
    ev = np.full(n_pat, np.inf)
    hit = post & (state > 0)
    np.minimum.at(ev, code[hit], week[hit])
    last = np.full(n_pat, -np.inf)
    np.maximum.at(last, code[post], week[post])
    event = np.isfinite(ev)
    stopped = ~np.isnan(stop)
    time = np.where(event, ev, last)
    if strategy == "composite":
        fail = stopped & ~event
        time = np.where(fail, np.maximum(float(end_week), np.where(np.isfinite(last), last, 0)),
                        time)
    late = np.isfinite(time) & (time > end_week)  # administrative censoring at the end
    event = event & ~late
    time = np.where(late, float(end_week), time)
    included = ~at_baseline & np.isfinite(time)
    why = np.where(at_baseline, "in the state at baseline",
                   np.where(~np.isfinite(time), "no assessed visit after baseline", None))
    return pd.DataFrame({
        "patient": patients["patient"].to_numpy(),
        "time": np.where(included, time, np.nan),
        "event": np.where(included, event.astype(float), np.nan),
        "included": included, "at_baseline": at_baseline,
        "baseline_assessed": ~np.isnan(b_state), "stopped": stopped, "why": why,
    })


# --- disease-state flow ----------------------------------------------------------------


def visit_states(visits: pd.DataFrame, patients: pd.DataFrame, weeks: Sequence[int],
                 strategy: str = "composite") -> np.ndarray:
    """Patients × weeks array of state codes (index into STATES).

    remission if in remission; LLDAS if in LLDAS (not remission); active if not in
    LLDAS; not assessed if no visit or not evaluable; stopped after the stop week
    (composite and while on treatment: always; treatment policy: only where no
    state was observed).
    """
    code, stop, wk, _ = _inputs(visits, patients, strategy)
    weeks = [int(w) for w in weeks]
    pos = pd.Index(weeks).get_indexer(wk)
    sel = pos >= 0
    lld = _as_state(visits["lldas"])[sel]
    rem = _as_state(visits["remission"])[sel] if "remission" in visits else np.full(sel.sum(),
                                                                                      np.nan)
    st = np.full(sel.sum(), NOT_ASSESSED, dtype=np.int8)
    st[lld == 0] = ACTIVE
    st[lld > 0] = LLDAS
    st[rem > 0] = REMISSION
    out = np.full((len(patients), len(weeks)), NOT_ASSESSED, dtype=np.int8)
    out[code[sel], pos[sel]] = st
    after = np.asarray(weeks, float)[None, :] > stop[:, None]  # NaN stop → False
    if strategy == "treatment_policy":
        after &= out == NOT_ASSESSED
    out[after] = STOPPED
    return out


def state_counts(states: np.ndarray, weeks: Sequence[int]) -> pd.DataFrame:
    """Patients per visit and state (every state listed, n = 0 included), with pct."""
    nw = len(weeks)
    cnt = np.zeros((nw, len(STATES)), dtype=np.int64)
    for j in range(nw):
        cnt[j] = np.bincount(states[:, j], minlength=len(STATES))
    total = states.shape[0]
    rows = [{"visit_week": int(weeks[j]), "state": STATES[s], "n": int(cnt[j, s]),
             "pct": cnt[j, s] / total * 100 if total else None}
            for j in range(nw) for s in range(len(STATES))]
    return pd.DataFrame(rows, columns=["visit_week", "state", "n", "pct"])


def transitions(states: np.ndarray, weeks: Sequence[int]) -> pd.DataFrame:
    """Patients moving from each state at one visit to each state at the next (n > 0 rows)."""
    k = len(STATES)
    rows = []
    for j in range(len(weeks) - 1):
        t = np.bincount(states[:, j].astype(np.int64) * k + states[:, j + 1],
                        minlength=k * k).reshape(k, k)
        for a, b in zip(*np.nonzero(t)):
            rows.append({"from_week": int(weeks[j]), "to_week": int(weeks[j + 1]),
                         "from_state": STATES[a], "to_state": STATES[b], "n": int(t[a, b])})
    return pd.DataFrame(rows, columns=["from_week", "to_week", "from_state", "to_state", "n"])


def transition_table(trans: pd.DataFrame, from_week: int) -> pd.DataFrame:
    """One visit pair as a from-state × to-state table of counts (rows and columns in
    STATES order, absent states left out)."""
    sub = trans[trans["from_week"] == from_week]
    text = sub["n"].map(lambda v: isinstance(v, str)).any()  # shared mode's "<11", "—"
    tab = sub.pivot_table(index="from_state", columns="to_state", values="n",
                          aggfunc="first" if text else "sum", fill_value=0)
    tab = tab.reindex(index=[s for s in STATES if s in tab.index],
                      columns=[s for s in STATES if s in tab.columns])
    return tab if text else tab.astype(int)


# --- swimmer -------------------------------------------------------------------------

SWIMMER_MAX = 60  # lanes drawn; more cannot be read and would swell the chart
SWIMMER_SORTS = {
    "stopped_first": "patients who stopped or switched first, earliest stop first",
    "time_on_treatment": "longest time on treatment first",
    "time_in_target": "largest share of time in LLDAS first",
    "first_target": "earliest LLDAS first",
    "patient": "patient identifier",
}


def ae_markers(adverse_events: pd.DataFrame, lanes: pd.DataFrame) -> pd.DataFrame:
    """Swimmer markers (patient, lane, week, kind "adverse event", detail = term) of the
    adverse events (patient, week, optionally term) of the patients shown in `lanes`
    (patient, lane); other patients' events are left out."""
    lane_of = dict(zip(lanes["patient"].tolist(), lanes["lane"].tolist()))
    ae = adverse_events[adverse_events["patient"].isin(set(lane_of))]
    return pd.DataFrame({
        "patient": ae["patient"].to_numpy(),
        "lane": np.asarray([lane_of[p] for p in ae["patient"]], dtype=np.int64),
        "week": pd.to_numeric(ae["week"], errors="coerce").to_numpy(float),
        "kind": "adverse event",
        "detail": ae["term"].astype(str).to_numpy() if "term" in ae else None})


def swimmer_data(visits: pd.DataFrame, patients: pd.DataFrame,
                 adverse_events: pd.DataFrame | None = None, *, strategy: str = "composite",
                 sort_by: str = "stopped_first", max_patients: int = SWIMMER_MAX,
                 end_week: float | None = None):
    """(lanes, markers, note) for a swimmer plot, at most `max_patients` lanes.

    lanes: patient, lane (0 = top), start, end (stop week, else last visit), status
    ("stopped", "ongoing" = seen at or after `end_week`, "no further visits"),
    stop_reason, share_lldas. markers: patient, lane, week, kind (a state of STATES
    or "adverse event" / "stop"), detail. `note` says how many lanes of how many
    patients are shown and in which order ('' when all are).
    """
    if sort_by not in SWIMMER_SORTS:
        raise ValueError(f"sort_by must be one of {', '.join(SWIMMER_SORTS)}")
    code, stop, week, end_week = _inputs(visits, patients, strategy, end_week)
    lastv = np.full(len(patients), np.nan)
    if week.size:
        lv = np.full(len(patients), -np.inf)
        np.fmax.at(lv, code, week)  # a visit without a week does not end the lane
        lastv = np.where(np.isfinite(lv), lv, np.nan)
    end = np.where(np.isnan(stop), lastv, stop)
    status = np.where(~np.isnan(stop), "stopped",
                      np.where(lastv >= end_week, "ongoing", "no further visits"))
    # Every patient's time in target only when the order needs it; else the shown lanes'.
    pp = (per_patient(visits, patients, "lldas", strategy, end_week)
          if sort_by in ("time_in_target", "first_target") else None)
    if sort_by == "stopped_first":
        key = (np.where(np.isnan(stop), np.inf, stop), -np.nan_to_num(end, nan=-1.0))
    elif sort_by == "time_on_treatment":
        key = (-np.nan_to_num(end, nan=-1.0),)
    elif sort_by == "time_in_target":
        key = (-np.nan_to_num(pp["share"].to_numpy(float), nan=-1.0),)
    elif sort_by == "first_target":
        key = (np.nan_to_num(pp["first_target_week"].to_numpy(float), nan=np.inf),)
    else:
        key = ()
    ids = patients["patient"].to_numpy()
    rank = pd.factorize(patients["patient"], sort=True)[0]  # ints or strings alike
    # np.lexsort sorts by its last key first: the primary key goes last, ids break ties.
    order = np.lexsort((rank, *key[::-1]))
    total = len(order)
    chosen = order[:max_patients]
    lane = np.full(total, -1)
    lane[chosen] = np.arange(chosen.size)
    # The shown patients' visits (a visit without a week has no place on the lane).
    vis_sel = (lane[code] >= 0) & ~np.isnan(week)
    sub_v = visits[vis_sel]
    sub_p = patients.iloc[chosen]
    share = (pp["share"].to_numpy(float)[chosen] if pp is not None else
             per_patient(sub_v, sub_p, "lldas", strategy, end_week)["share"].to_numpy(float))
    reason = (patients["stop_reason"].astype("string").to_numpy(dtype=object, na_value=None)
              if "stop_reason" in patients else np.full(total, None, dtype=object))
    lanes = pd.DataFrame({
        "patient": ids[chosen], "lane": np.arange(chosen.size),
        "start": np.zeros(chosen.size), "end": end[chosen],
        "status": status[chosen], "stop_reason": reason[chosen],
        "share_lldas": share,
    })
    # States at every attended visit (unscheduled ones included) of the shown patients.
    vweeks = sorted(set(week[vis_sel].astype(int).tolist()))
    st = visit_states(sub_v, sub_p, vweeks, strategy) if vweeks else np.zeros((chosen.size, 0), dtype=int)
    present = np.zeros_like(st, dtype=bool)
    sc, _ = _codes(sub_v, sub_p)
    present[sc, pd.Index(vweeks).get_indexer(pd.to_numeric(sub_v["week"]).to_numpy(float))] = True
    li, wi = np.nonzero(present)
    markers = [pd.DataFrame({"patient": ids[chosen][li], "lane": li,
                             "week": np.asarray(vweeks, float)[wi],
                             "kind": np.asarray(STATES, dtype=object)[st[li, wi]],
                             "detail": None})]
    stop_lane = np.flatnonzero(~np.isnan(stop[chosen]))
    markers.append(pd.DataFrame({"patient": ids[chosen][stop_lane], "lane": stop_lane,
                                 "week": stop[chosen][stop_lane], "kind": "stop",
                                 "detail": reason[chosen][stop_lane]}))
    if adverse_events is not None and len(adverse_events):
        markers.append(ae_markers(adverse_events, lanes))
    markers = pd.concat([m for m in markers if len(m)], ignore_index=True) if any(
        len(m) for m in markers) else pd.DataFrame(columns=["patient", "lane", "week", "kind",
                                                            "detail"])
    note = ""
    if total > chosen.size:
        note = (f"Showing {chosen.size} of {total:,} patients ({SWIMMER_SORTS[sort_by]}); "
                "filter the cohort to see others.")
    return lanes, markers.sort_values(["lane", "week"], kind="stable").reset_index(drop=True), note
