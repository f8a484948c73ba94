"""The subcommands, their parser and the errors each turns into one line and an exit code."""

from __future__ import annotations

import argparse
import difflib
import logging
import sys
from collections.abc import Sequence

from growclip.checkpoint import CheckpointError
from growclip.cli import data, evaluate, export_model, grow, import_model, merge, report, train
from growclip.data.labelled import LabelledDataError
from growclip.data.pairs import DataError
from growclip.data.tokenizer import TokenizerError
from growclip.model.config import ConfigError
from growclip.run_lock import RunFolderError
from growclip.train.faults import NonFiniteError, Preempted

COMMANDS = {"train": train, "eval": evaluate, "grow": grow, "report": report, "data": data, "import": import_model,
            "export": export_model, "merge": merge}
USER_ERRORS = (ConfigError, CheckpointError, TokenizerError, LabelledDataError, DataError, RunFolderError,
               ValueError, FileNotFoundError)


class Parser(argparse.ArgumentParser):
    """argparse that takes no abbreviations of long flags (`--lr` never silently stands for another)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **{"allow_abbrev": False, **kwargs})

    def refuse_unknown(self, unknown: list[str]) -> None:
        """Exit 2 naming the flags it does not know, each with the nearest it does."""
        known = [option for action in self._actions for option in action.option_strings]
        hints = []
        for flag in (arg.split("=")[0] for arg in unknown if arg.startswith("--")):
            starting = [option for option in known if option.startswith(flag)]  # an abbreviation
            near = list(dict.fromkeys(starting + difflib.get_close_matches(flag, known, n=2, cutoff=0.6)))[:3]
            if near:
                hints.append(f"{flag}: did you mean {' or '.join(near)}?")
        self.error(f"unrecognized arguments: {' '.join(unknown)}" + "".join(f"\n  {hint}" for hint in hints))


def build_parser() -> tuple[Parser, dict[str, Parser]]:
    """-> (the `growclip` parser, its subcommands' parsers by name)."""
    parser = Parser(prog="growclip",
                    description="Contrastive language-image pre-training whose model grows with its data.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for module in COMMANDS.values():
        module.add_parser(commands)
    return parser, dict(commands.choices)


def run_command(argv: Sequence[str]) -> int:
    parser, commands = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        commands[args.command].refuse_unknown(unknown)
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
