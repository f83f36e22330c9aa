"""``mnistlab-report PATH...``: report on a sweep directory or on several run directories, and print the table."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence

from mnistlab.errors import EXIT_BAD_INPUT, EXIT_SWEEP_INCOMPLETE, UserError
from mnistlab.reports.sweep import write_report


def cli(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="mnistlab-report", description="Aggregate mnistlab runs into summary.csv, comparison.csv, plots and report.md."
    )
    parser.add_argument("paths", nargs="+", help="a sweep directory, or several run directories")
    parser.add_argument(
        "--baseline",
        metavar="KEY=VALUE",
        help="the group others are compared with (default: regularization=none, else the first value of the first swept key)",
    )
    parser.add_argument(
        "-o", "--out", help="where to write the report (default: the sweep directory; the current directory for several runs)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        report, incomplete = write_report(args.paths, args.out, args.baseline)
    except (UserError, ValueError) as err:
        parser.exit(EXIT_BAD_INPUT, f"mnistlab-report: {err}\n")
    text = report.read_text()
    print(text.split("## Figures")[0].rstrip())
    print(f"\nwritten to {report.parent}")
    return EXIT_SWEEP_INCOMPLETE if incomplete else 0
