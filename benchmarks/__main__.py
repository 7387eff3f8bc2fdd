"""`python -m benchmarks [--patients N] [--db FILE] [--demo] [--format json] ...`"""

import argparse
import sys

from .bench import cli_bench


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    p.add_argument("--patients", type=int, default=100_000)
    p.add_argument("--db", default=None)
    p.add_argument("--format", default="text", choices=["text", "json"])
    p.add_argument("--demo", action="store_true",
                   help="bench the demo database (--db, default data/demo.duckdb)")
    p.add_argument("--cohort", default=None, help="one cohort (default: every cohort)")
    p.add_argument("--pages", default=None, help="comma-separated page names")
    p.add_argument("--no-peer", action="store_true", help="skip the pandas peer")
    p.add_argument("--no-mixed", action="store_true", help="skip the mixed-model timing")
    p.add_argument("--budget", type=float, default=None, metavar="SECONDS",
                   help="stop timing a page once it has used this much time in all")
    return cli_bench(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
