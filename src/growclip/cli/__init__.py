"""The `growclip` command: `train`, `eval`, `grow`, `report`, `data`, `import` and `export`.

Flags become frozen configs here, at the edge."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from growclip.cli import data, evaluate, export_model, grow, import_model, report, train
from growclip.data.labelled import LabelledDataError
from growclip.data.pairs import DataError
from growclip.data.tokenizer import TokenizerError
from growclip.model.config import ConfigError
from growclip.train.checkpoint import CheckpointError
from growclip.train.faults import NonFiniteError, Preempted

COMMANDS = {"train": train, "eval": evaluate, "grow": grow, "report": report, "data": data, "import": import_model,
            "export": export_model}
USER_ERRORS = (ConfigError, CheckpointError, TokenizerError, LabelledDataError, DataError, ValueError,
               FileNotFoundError)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="growclip", description="Contrastive language-image pre-training whose model grows with its data.")
    commands = parser.add_subparsers(dest="command", required=True)
    for module in COMMANDS.values():
        module.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")  # the library's notes, on stderr
    try:
        return COMMANDS[args.command].run(args)
    except USER_ERRORS as err:
        print(f"growclip {args.command}: error: {err}", file=sys.stderr)
        return 2
    except NonFiniteError as err:
        print(f"growclip {args.command}: stopped: {err}", file=sys.stderr)
        return 1
    except Preempted as stop:
        print(f"growclip {args.command}: {stop}; resume with --resume latest", file=sys.stderr)
        return stop.exit_code
    except KeyboardInterrupt:
        return 130
