"""Benchmark: the computation behind every page for a fixed sequence of 20 filter changes.

`python -m benchmarks [--patients N] [--db FILE] [--cohort C] [--demo] [--format json]`
builds (or reuses) an N-patient cohort with `build-demo --scale N`, then for each
of 20 realistic filter changes times, per page, the calls the page makes through
the seam — `lupus_dash.views.PAGES`, the lists tests/test_pages.py checks against
the pages themselves — uncached (the app caches by filter state, so a new filter
is a cache miss: the worst case a user sees). It also
times the floor (one bare DuckDB scan-and-aggregate of the endpoint columns
for the same filter), the pandas peer (the Biomarkers and Remission
computations written the common way: the whole visit table in pandas, filtered
and grouped in pandas), the mixed model on its own, the peak RSS and the size
of every chart's data as the browser would receive it.

Issue 6 targets; see docs/BENCHMARK.md for the measured figures.
"""

from __future__ import annotations

import io
import json
import math
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from lupus_dash import cache, results, schema, views
from lupus_dash.analyses import biomarkers, common, remission
from lupus_dash.db import Database
from lupus_dash.filters import Filter

from .pandas_peer import DEFAULT_ENDPOINT, PRESET, PandasPeer

N_CHANGES = 20
TARGET_PAYLOAD_BYTES = 200 * 1024


# --- the cohort ---------------------------------------------------------------------------


def cache_dir() -> Path:
    """Where scale cohorts are kept between runs ($LUPUS_DASH_BENCH_DIR or the user cache)."""
    env = os.environ.get("LUPUS_DASH_BENCH_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "lupus_dash"


def ensure_cohort(n: int, path: Path | None = None) -> tuple[Path, dict]:
    """The N-patient benchmark file (built once, then reused); returns (path, build info).

    Built with `build-demo --scale N` in a child process, so the build's memory does
    not count in the benchmark's peak RSS.
    """
    builder = "synth"
    if path is None:
        path = cache_dir() / f"scale_{n}_{builder}.duckdb"
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        return path, {"builder": builder, "built": False, "build_s": None, "path": str(path)}
    cmd = [sys.executable, "-m", "lupus_dash", "build-demo", "--scale", str(n),
           "--db", str(path)]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return path, {"builder": builder, "built": True, "build_s": time.perf_counter() - t0,
                  "path": str(path)}


# --- the filter sequence --------------------------------------------------------------------


def _top(db: Database, cohort: str, col: str, k: int = 1) -> list:
    """The k most common non-missing values of a patient column (so no step empties a demo)."""
    df = db.query(
        f'SELECT "{col}" AS v, count(*) AS n FROM patient_facts WHERE cohort = ? '
        f'AND "{col}" IS NOT NULL GROUP BY 1 ORDER BY n DESC, v LIMIT ?',
        [cohort, k],
    )
    return [v.item() if hasattr(v, "item") else v for v in df["v"]]


def filter_sequence(db: Database, cohort: str) -> list[tuple[str, Filter]]:
    """20 realistic filter changes: single columns, age range, combinations and resets.

    Values are the most common ones present in the cohort, so the same sequence
    runs on the 26-patient demo and the 100,000-patient scale cohort. A step that
    would match nobody keeps only its newest restriction (the panel would show
    "0 of N" and the user would undo).
    """
    top = {c: _top(db, cohort, c, 3) for c in (
        "sex", "class_group", "biopsy_class", "immunosuppressant", "baseline_anti_dsdna")}
    ages = db.query(
        "SELECT quantile_cont(age_at_baseline_years, 0.25) AS a, "
        "quantile_cont(age_at_baseline_years, 0.75) AS b FROM patient_facts WHERE cohort = ?",
        [cohort]).iloc[0]
    a_lo = math.floor(ages["a"]) if pd.notna(ages["a"]) else None
    a_hi = math.ceil(ages["b"]) if pd.notna(ages["b"]) else None

    def pick(col, i):
        vals = top[col]
        return [vals[min(i, len(vals) - 1)]] if vals else []

    steps: list[tuple[str, dict]] = [
        ("all patients", {}),
        ("sex", {"sex": pick("sex", 0)}),
        ("+ completers only", {"sex": pick("sex", 0), "completer": [True]}),
        ("+ class group", {"sex": pick("sex", 0), "completer": [True],
                           "class_group": pick("class_group", 0)}),
        ("+ age range", {"sex": pick("sex", 0), "completer": [True],
                         "class_group": pick("class_group", 0),
                         "age_min": a_lo, "age_max": a_hi}),
        ("reset", {}),
        ("biopsy class (2 values)", {"biopsy_class": top["biopsy_class"][:2]}),
        ("immunosuppressant", {"immunosuppressant": pick("immunosuppressant", 0)}),
        ("organ: kidney", {"organ_kidney": [True]}),
        ("baseline anti-dsDNA", {"baseline_anti_dsdna": pick("baseline_anti_dsdna", 0)}),
        ("anti-dsDNA + kidney", {"baseline_anti_dsdna": pick("baseline_anti_dsdna", 0),
                                 "organ_kidney": [True]}),
        ("other sex", {"sex": pick("sex", 1)}),
        ("class group 2", {"class_group": pick("class_group", 1)}),
        ("immunosuppressant (2 values)", {"immunosuppressant": top["immunosuppressant"][:2]}),
        ("age range only", {"age_min": a_lo, "age_max": a_hi}),
        ("organ: skin + blood", {"organ_skin": [True], "organ_blood": [True]}),
        ("non-completers", {"completer": [False]}),
        ("combination", {"sex": pick("sex", 0), "biopsy_class": pick("biopsy_class", 0),
                         "immunosuppressant": pick("immunosuppressant", 0)}),
        ("biopsy class", {"biopsy_class": pick("biopsy_class", 0)}),
        ("reset", {}),
    ]
    out = []
    prev: dict = {}
    for label, d in steps:
        flt = Filter.build(cohort, **d)
        if d and common.count_patients(db, flt)[0] == 0:
            new = {c: v for c, v in d.items() if prev.get(c) != v} or d
            flt = Filter.build(cohort, **new)
            label += " (reduced: nobody matched)"
        out.append((label, flt))
        prev = d
    assert len(out) == N_CHANGES
    return out


# --- the pages --------------------------------------------------------------------------------
# Each page runs the calls `views.PAGES` lists for its default widget state (the lists
# the pages are tested against) and returns {chart name: the frame the chart is drawn from}.

Frames = dict[str, pd.DataFrame]


def _runner(db: Database):
    return lambda call: results.run(db, call)


def sidebar(db: Database, flt: Filter) -> None:
    """The filter panel's per-filter work (views.sidebar)."""
    run = _runner(db)
    for call in views.sidebar(run, flt).values():
        run(call)


def run_page(db: Database, flt: Filter, name: str) -> Frames:
    """Every call of one page view, then its charts' frames."""
    run = _runner(db)
    out = {k: run(c) for k, c in views.PAGES[name](run, flt).items()}
    frames = {}
    for chart, (call, part, *cols) in views.CHARTS.get(name, {}).items():
        if call in out:
            df = out[call][part]
            frames[chart] = df[[c for c in cols[0] if c in df.columns]] if cols else df
    return frames


PAGES = list(views.PAGES)


def warm_whole_cohort(db: Database, flt: Filter, name: str) -> None:
    """Compute, untimed, a page's calls about the whole cohort (the stable axes' range):
    the app computed them at first load and a filter change does not change them.

    Only those: the page builder itself runs some of the page's filtered calls (the
    first endpoint, Safety's event count), so the memo is cleared after listing the
    calls, lest the timed run get them for free.
    """
    whole = Filter(flt.cohort)
    if flt == whole:
        return
    run = _runner(db)
    calls = [c for c in views.PAGES[name](run, flt).values() if c.flt == whole]
    clear_memos()
    for call in calls:
        run(call)


def on_demand_frames(db: Database, flt: Filter) -> Frames:
    """Charts drawn only when asked for (individual trajectories, capped)."""
    run = _runner(db)
    calls = views.biomarkers_page(run, flt, individual=True)
    return {"individual_trajectories": run(calls["ind"])["trajectories"]}


# --- floor and pandas peer ---------------------------------------------------------------------


def floor_query(db: Database, flt: Filter) -> pd.DataFrame:
    """The floor: one GROUP BY visit_week over the filtered visits, count/avg/stddev per endpoint."""
    cond, params = flt.where("p")
    cols = [e.column for e in schema.ENDPOINTS]
    aggs = ", ".join(
        f'count(v."{c}") AS "n_{c}", avg(CAST(v."{c}" AS DOUBLE)) AS "mean_{c}", '
        f'stddev_samp(CAST(v."{c}" AS DOUBLE)) AS "sd_{c}"' for c in cols)
    return db.query(
        f"SELECT v.visit_week, {aggs} FROM visit_facts v JOIN patient_facts p "
        f"ON p.cohort = v.cohort AND p.patient_id = v.patient_id WHERE {cond} "
        "GROUP BY v.visit_week ORDER BY v.visit_week", params)


def biomarkers_core(db: Database, flt: Filter, endpoint: str = DEFAULT_ENDPOINT) -> dict:
    """The Biomarkers computations the pandas peer reproduces, through the seam (DuckDB)."""
    return {
        "summary": results.run(db, biomarkers.summary, flt).table,
        "longitudinal": results.run(db, biomarkers.longitudinal, flt,
                                    endpoints=[endpoint]).table,
    }


def remission_core(db: Database, flt: Filter) -> dict:
    """The Remission computations the pandas peer reproduces, through the seam (DuckDB)."""
    return {
        "remission": results.run(db, remission.rates, flt, preset=PRESET).table,
        "states": results.run(db, remission.states, flt, preset=PRESET).table,
        "km": results.run(db, remission.time_to_event, flt, definition="lldas",
                          preset=PRESET)["curves"],
    }


# --- measuring -------------------------------------------------------------------------------------


def clear_memos() -> None:
    """Forget the analyses' in-process memo (a new filter is a miss in the app), except the
    per-file facts the app keeps across filter changes (cohort schedule, filter values)."""
    from lupus_dash.analyses import cohort

    keep = {common.cohort_info, cohort.filter_options}
    for fn in cache._ALL:
        if fn not in keep:
            fn.cache_clear()


def _ms(samples: Sequence[float]) -> dict:
    a = np.asarray(samples, dtype=float) * 1000
    return {"p50_ms": float(np.percentile(a, 50)), "p95_ms": float(np.percentile(a, 95)),
            "max_ms": float(a.max())}


def _timed(fn, *args):
    clear_memos()
    t0 = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - t0, out


def payload_bytes(df: pd.DataFrame) -> dict:
    """Bytes a chart's frame costs on the wire: Arrow IPC (what st.altair_chart sends) and JSON."""
    import pyarrow as pa

    buf = io.BytesIO()
    df = df.reset_index(drop=True)
    try:
        table = pa.Table.from_pandas(df, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        # Mixed object columns (visit_week 0, 4, …, "last"): Streamlit sends them as text.
        obj = [c for c in df.columns if df[c].dtype == object]
        table = pa.Table.from_pandas(df.astype({c: str for c in obj}), preserve_index=False)
    with pa.ipc.new_stream(buf, table.schema) as w:
        w.write_table(table)
    js = df.to_json(orient="records", date_format="iso")
    return {"rows": len(df), "arrow_bytes": buf.tell(), "json_bytes": len(js.encode())}


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _abbrev(name: str) -> str:
    """Short page name for the per-step log line ("Biomarkers Figure 1" → "BioF")."""
    words = name.split()
    return words[0][:3] + (words[1][0].upper() if len(words) > 1 else words[0][3])


def run_bench(db: Database, cohort: str, pages: Sequence[str] | None = None,
              peer: bool = True, mixed: bool = True, log=None,
              budget_s: float = math.inf) -> dict:
    """Time every page for the 20 filter changes; the JSON-ready result dict."""
    log = log or (lambda *_: None)
    names = list(pages or PAGES)
    seq = filter_sequence(db, cohort)
    n_patients = int(db.scalar("SELECT count(*) FROM patient_facts WHERE cohort = ?", [cohort]))
    n_visits = int(db.scalar("SELECT count(*) FROM visit_facts WHERE cohort = ?", [cohort]))

    # Warm-up (untimed): imports, first queries, DuckDB's caches — the app is a warm
    # process. On the smallest filter of the sequence, so a slow page costs little here.
    counts = [common.count_patients(db, f)[0] for _, f in seq]
    warm = seq[int(np.argmin(counts))][1]
    for name in names:
        try:
            run_page(db, warm, name)
        except Exception:  # noqa: BLE001, S110 — reported by the timed runs below
            pass
    floor_query(db, warm)

    times: dict[str, list[float]] = {n: [] for n in names}
    skipped: dict[str, int] = {}
    errors: dict[str, list[str]] = {}
    payloads: dict[str, dict] = {}
    steps = []
    for label, flt in seq:
        k = common.count_patients(db, flt)[0]
        step = {"change": label, "filter": flt.to_dict(), "patients": k, "ms": {}}
        for name in names:
            if sum(times[name]) > budget_s:
                # Over its time budget: the remaining changes are not run (reported).
                skipped[name] = skipped.get(name, 0) + 1
                continue
            # Memo cleared per page and change: sharing within one page render counts
            # (Table 2 and Figure 1 reuse one computation), hits from earlier steps do not.
            clear_memos()
            warm_whole_cohort(db, flt, name)
            t0 = time.perf_counter()
            try:
                sidebar(db, flt)
                frames = run_page(db, flt, name)
            except Exception as exc:  # noqa: BLE001 — a page bug must not hide the other pages
                errors.setdefault(name, []).append(f"{label}: {type(exc).__name__}: {exc}")
                frames = {}
            dt = time.perf_counter() - t0
            times[name].append(dt)
            step["ms"][name] = dt * 1000
            for chart, df in frames.items():
                key = f"{name}/{chart}"
                size = payload_bytes(df)
                if key not in payloads or size["arrow_bytes"] > payloads[key]["arrow_bytes"]:
                    payloads[key] = size
        steps.append(step)
        log(f"  {label:<40} {k:>7} patients  " + "  ".join(
            f"{_abbrev(n)} {step['ms'].get(n, math.nan):6.0f}" for n in names))

    floor = []
    for _, flt in seq:
        dt, _ = _timed(floor_query, db, flt)
        floor.append(dt)
    rss = peak_rss_mb()

    for chart, df in on_demand_frames(db, seq[0][1]).items():
        payloads[f"Biomarkers/{chart} (on demand)"] = payload_bytes(df)

    core = {"Biomarkers": [], "Remission": []}
    for _, flt in seq:
        core["Biomarkers"].append(_timed(biomarkers_core, db, flt)[0])
        core["Remission"].append(_timed(remission_core, db, flt)[0])

    result: dict = {
        "patients": n_patients,
        "visits": n_visits,
        "cohort": cohort,
        "pages": {n: {**_ms(times[n]), "n_changes": len(times[n])} for n in names},
        "skipped_over_budget": skipped,
        "budget_s_per_page": budget_s,
        "floor_ms": _ms(floor)["p50_ms"],
        "floor": _ms(floor),
        "peak_rss_mb": rss,
        "core": {n: _ms(v) for n, v in core.items()},
        "chart_payloads": payloads,
        "largest_chart": max(payloads.items(), key=lambda kv: kv[1]["arrow_bytes"],
                             default=(None, None))[0],
        "errors": errors,
        "steps": steps,
    }

    if mixed:
        weeks = common.cohort_info(db, cohort)["scheduled_weeks"]
        t0 = time.perf_counter()
        rows = biomarkers._mixed_rows(db, seq[0][1], DEFAULT_ENDPOINT, weeks)
        result["mixed_model"] = {"endpoint": DEFAULT_ENDPOINT, "filter": "all patients",
                                 "ms": (time.perf_counter() - t0) * 1000,
                                 "reason": rows[0]["reason"] if rows else None}
        result["peak_rss_mb_with_mixed_model"] = peak_rss_mb()

    result["exact_tests"] = exact_test_times()

    if peer:
        pp = PandasPeer(db, cohort)
        ptimes = {"Biomarkers": [], "Remission": []}
        for _, flt in seq:
            ptimes["Biomarkers"].append(_timed(pp.biomarkers, flt)[0])
            ptimes["Remission"].append(_timed(pp.remission_page, flt)[0])
        result["pandas_peer"] = {n: _ms(v) for n, v in ptimes.items()}
        result["pandas_peer_load_ms"] = pp.load_s * 1000
        result["peer_speedup"] = {
            n: result["pandas_peer"][n]["p50_ms"] / result["core"][n]["p50_ms"]
            for n in ptimes}
        result["peak_rss_mb_with_peer"] = peak_rss_mb()
    else:
        result["pandas_peer"] = {}
    return result


def exact_test_times(repeat: int = 20) -> dict:
    """ms per exact rank test at n = 50 (the largest exact comparison; values to one
    decimal, so many ties): the shift-algorithm DP, not 2^50 sign patterns."""
    from lupus_dash import stats

    rng = np.random.default_rng(1)
    d = np.round(rng.normal(0.2, 1, 50), 1)
    v = np.round(rng.normal(0, 1, 50), 1)
    g = np.repeat(["a", "b"], 25)
    out = {}
    for name, fn in (("wilcoxon_signed_rank_n50_ms",
                      lambda: stats.wilcoxon(d, np.zeros(50), hodges_lehmann=False)),
                     ("rank_sum_25_25_ms",
                      lambda: stats.mann_whitney(v, g, hodges_lehmann=False))):
        fn()
        t0 = time.perf_counter()
        for _ in range(repeat):
            fn()
        out[name] = (time.perf_counter() - t0) / repeat * 1000
    return out


def machine() -> dict:
    """What the figures were measured on."""
    import duckdb

    info = {"python": platform.python_version(), "duckdb": duckdb.__version__,
            "pandas": pd.__version__, "cpus": os.cpu_count(), "platform": platform.platform(),
            # Other work on a shared machine inflates every figure; say how busy it was.
            "load_average_1_5_15": list(os.getloadavg())}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo") as f:
            info["mem_total_mb"] = int(f.readline().split()[1]) // 1024
    except OSError:
        pass
    return info


def _text(res: dict) -> str:
    lines = [f"{res['cohort']}: {res['patients']} patients, {res['visits']} visits"]
    lines.append(f"{'page':<20} {'p50 ms':>9} {'p95 ms':>9} {'max ms':>9} {'p50/floor':>10}")
    floor = res["floor_ms"]
    for n, r in res["pages"].items():
        lines.append(f"{n:<20} {r['p50_ms']:9.1f} {r['p95_ms']:9.1f} {r['max_ms']:9.1f} "
                     f"{r['p50_ms'] / floor if floor else float('nan'):9.1f}x")
    lines.append(f"floor (bare DuckDB scan-and-aggregate) p50 {res['floor_ms']:.1f} ms")
    for n, r in res["core"].items():
        peer = res["pandas_peer"].get(n)
        lines.append(f"{n} core: DuckDB p50 {r['p50_ms']:.1f} ms"
                     + (f", pandas peer p50 {peer['p50_ms']:.1f} ms "
                        f"({res['peer_speedup'][n]:.1f}x)" if peer else ""))
    if "pandas_peer_load_ms" in res:
        lines.append(f"pandas peer load (once): {res['pandas_peer_load_ms']:.0f} ms")
    if "mixed_model" in res:
        lines.append(f"mixed model ({res['mixed_model']['endpoint']}, all patients): "
                     f"{res['mixed_model']['ms']:.0f} ms")
    if "exact_tests" in res:
        e = res["exact_tests"]
        lines.append(f"exact tests at n = 50 with ties: signed-rank "
                     f"{e['wilcoxon_signed_rank_n50_ms']:.2f} ms, rank-sum 25 vs 25 "
                     f"{e['rank_sum_25_25_ms']:.2f} ms")
    lines.append(f"peak RSS {res['peak_rss_mb']:.0f} MB")
    big = res["largest_chart"]
    if big:
        b = res["chart_payloads"][big]
        lines.append(f"largest chart payload: {big} {b['rows']} rows, {b['arrow_bytes']} B "
                     f"Arrow, {b['json_bytes']} B JSON (target ≤ {TARGET_PAYLOAD_BYTES} B)")
    for n, k in res.get("skipped_over_budget", {}).items():
        lines.append(f"{n}: {k} of {N_CHANGES} changes skipped after the page used its "
                     f"{res['budget_s_per_page']:.0f} s budget")
    for n, errs in res["errors"].items():
        lines.append(f"ERRORS in {n}: {len(errs)}; first: {errs[0]}")
    return "\n".join(lines)


def cli_bench(args) -> int:
    """`python -m benchmarks`: build or reuse the cohort, run, print text or JSON."""
    log = (lambda *a: print(*a, file=sys.stderr)) if args.format == "json" else print
    build = None
    if args.demo:
        path = Path(args.db or "data/demo.duckdb")
        if not path.exists():
            from lupus_dash import synth

            synth.build_demo(path)
    elif args.db:
        path = Path(args.db)
        if not path.exists():
            path, build = ensure_cohort(args.patients, path)
    else:
        path, build = ensure_cohort(args.patients)
    if build:
        how = f"built in {build['build_s']:.1f} s" if build["built"] else "reused"
        log(f"cohort: {build['path']} ({how}, {build['builder']})")
    db = Database(path)
    cohorts = list(db.cohorts()["cohort"])
    wanted = [args.cohort] if args.cohort else cohorts
    pages = args.pages
    results = []
    for c in wanted:
        log(f"benchmarking {c} …")
        results.append(run_bench(db, c, pages=pages.split(",") if pages else None,
                                 peer=not args.no_peer,
                                 mixed=not args.no_mixed, log=log,
                                 budget_s=args.budget or math.inf))
    out = dict(results[0])
    if len(results) > 1:
        out["other_cohorts"] = {r["cohort"]: r for r in results[1:]}
    out["build"] = build
    out["machine"] = machine()
    out["db"] = str(path)
    if args.format == "json":
        print(json.dumps(out, indent=1, default=str))
    else:
        for r in results:
            print(_text(r))
            print()
    return 0


