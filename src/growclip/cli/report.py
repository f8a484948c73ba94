"""`growclip report`: PNG plots and a Markdown summary of a run folder."""

from __future__ import annotations

import argparse

from growclip.train.report import write_report


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("report", help=__doc__, description=__doc__)
    parser.add_argument("run", help="a run folder (the --output of `growclip train`)")
    parser.add_argument("--output", help="folder for the report (default RUN/report)")


def run(args: argparse.Namespace) -> int:
    for path in write_report(args.run, args.output):
        print(path)
    return 0
