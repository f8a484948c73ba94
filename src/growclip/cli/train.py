"""`growclip train`: train a fixed architecture, or grow one over a stream of chunks (--chunks/--watch);
the embedded corpus when no data is given. Its flags are `TrainConfig`'s fields."""

from __future__ import annotations

import argparse
from dataclasses import Field
from typing import Any

from growclip.cli.options import float_list, float_pair, int_list, merged_settings, separator
from growclip.data.pairs import format_skipped
from growclip.eval.suite import FORGETTING, RETAINED_TOP1, format_results
from growclip.train import train as run_training
from growclip.train.config import TrainConfig, section_of, setting_fields
from growclip.train.records import ChunkRecord
from growclip.train.run_folder import saved_settings
from growclip.train.sections import RunConfig
from growclip.train.settings import flag_of

GROUP_TITLES = {None: "model", "data": "data (default: the embedded corpus)",
                "stream": "growing run on a stream of chunks", "optim": "optimization", "run": "run and checkpoints",
                "eval": "evaluation"}
PARSERS = {"int": int, "int | None": int, "float": float, "float | None": float, "str": str, "str | None": str,
           "tuple[int, ...]": int_list, "tuple[int, ...] | None": int_list, "tuple[float, float] | None": float_pair,
           "tuple[float, ...]": float_list}


def _flag_options(field: Field) -> dict[str, Any]:
    """argparse keywords for one setting: its parser (or nargs), choices and help with the default."""
    meta, default = field.metadata, field.default
    if field.type == "bool":
        return {"action": "store_false" if default else "store_true", "help": meta["help"]}
    options: dict[str, Any] = {"nargs": "+"} if field.type.startswith("tuple[str") else {"type": PARSERS[field.type]}
    if field.name == "csv_separator":
        options["type"] = separator
    shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
    suffix = f" (default {shown})" if default not in (None, ()) and "default" not in meta["help"] else ""
    return {**options, "choices": meta["choices"], "help": meta["help"] + suffix}


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("train", help=__doc__.splitlines()[0], argument_default=argparse.SUPPRESS,
                                 description="Flags override settings from --config; unset ones keep "
                                             "their defaults.")
    parser.add_argument("--config", default=None, help="YAML or JSON file of settings (flag names, dashes or "
                                                        "underscores)")
    parser.add_argument("--list-models", action="store_true", help="print the model presets and exit")
    groups = {name: parser.add_argument_group(title) for name, title in GROUP_TITLES.items()}
    for field in setting_fields():
        groups[section_of(field.name)].add_argument(flag_of(field), dest=field.name, **_flag_options(field))


def _scores(record: ChunkRecord) -> tuple[str | None, str | None]:
    """Zero-shot mean top-1 and R@1 both ways, as text; None where the run has no such evaluation."""
    zeroshot = None if record.mean_top1 is None else f"{record.mean_top1:.3f}"
    recall = None if record.recall is None else "{:.3f}/{:.3f}".format(*record.recall)
    return zeroshot, recall


def _retained(record: ChunkRecord) -> str:
    """The starting model's own tasks (`--forgetting-data`): top-1 now, and what was lost since the start."""
    summary = record.summary
    if RETAINED_TOP1 not in summary:
        return ""
    lost = f" (forgetting {summary[FORGETTING]:+.3f})" if FORGETTING in summary else ""
    return f", retained {summary[RETAINED_TOP1]:.3f}{lost}"


def chunk_line(record: ChunkRecord) -> str:
    """One finished chunk: the decision, the architecture, its scores and the compute so far."""
    zeroshot, recall = _scores(record)
    scores = (f", zero-shot {zeroshot}" if zeroshot else "") + (f" R@1 {recall}" if recall else "") \
        + _retained(record)
    old = record.heldout_old_loss
    return (f"chunk {record.chunk} {record.name}: {record.decision} -> {record.architecture.describe()}: "
            f"{record.params / 1e6:.3f} M params{scores}, held-out loss new {record.heldout_new_loss:.3f}"
            + ("" if old is None else f" old {old:.3f}")
            + f", search overhead {record.search_fraction:.0%}, {record.total_tflop:.1f} TFLOP so far")


def format_stream(history: list[ChunkRecord]) -> str:
    """The run in a table, one row per chunk: what was decided, the architecture, its scores, the compute."""
    name = max([16, *(len(r.name) for r in history)])  # columns as wide as their longest entry
    decision = max([26, *(len(r.decision) for r in history)])
    lines = [f"{'chunk':<{name}} {'decision':<{decision}} {'params':>8} {'zero-shot':>9} {'R@1 I->T/T->I':>13} "
             f"{'TFLOP':>6} {'search':>6}  architecture"]
    for r in history:
        zeroshot, recall = (score or "-" for score in _scores(r))
        lines.append(f"{r.name:<{name}} {r.decision:<{decision}} {r.params / 1e6:>6.3f} M {zeroshot:>9} {recall:>13} "
                     f"{r.total_tflop:>6.1f} {r.search_fraction:>6.0%}  {r.architecture.describe()}")
    return "\n".join(lines)


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    """Flags given over the config file; with --resume, both over the settings the run was saved with,
    so that `--resume latest --output RUN` alone continues it and only what is typed counts as a change."""
    settings = merged_settings(args, check=TrainConfig.check_settings)
    if not settings.get("resume"):
        return settings
    output = settings.get("output", RunConfig.output)
    known = {f.name for f in setting_fields()} - {"resume", "resume_override", "output", "overwrite"}
    saved = {name: value for name, value in saved_settings(settings["resume"], output).items() if name in known}
    return {**saved, **settings}


def run(args: argparse.Namespace) -> int:
    if getattr(args, "list_models", False):
        from growclip.model import list_presets

        print("\n".join(list_presets()))
        return 0
    config = TrainConfig.from_dict(_settings(args))
    result = run_training(config, on_chunk=lambda record: print(chunk_line(record), flush=True))
    if config.stream.active:
        print(format_stream(result.chunks))
    elif result.eval is not None:  # rank 0 of a torchrun job (or the only process)
        print(format_results(result.eval) if result.eval.measured else
              "not evaluated: give --val-data (retrieval on held-out pairs) or --zeroshot-data (labelled images)")
        print(format_skipped(result.skipped))
    if config.stream.active or result.eval is not None:
        print(f"checkpoint: {result.checkpoint}")
    return 0
