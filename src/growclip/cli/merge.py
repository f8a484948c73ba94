"""`growclip merge`: interpolate a trained checkpoint with the model it started from (WiSE-FT), after
mapping the start exactly into the trained model's grown architecture."""

from __future__ import annotations

import argparse

from growclip.checkpoint import read_checkpoint
from growclip.cli.evaluate import add_evaluation_flags, evaluation_sets_of
from growclip.cli.options import add_overwrite_flag, float_list, in_range
from growclip.eval.suite import FORGETTING, MEAN_TOP1, RETAINED_TOP1
from growclip.runtime import resolve_device
from growclip.train.merge import DEFAULT_RATIOS, MergeResult, merge_checkpoints
from growclip.train.settings import Range


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("merge", help=__doc__, description=__doc__ + " Without --ratio, every ratio of "
                                 "--ratios is evaluated and the best kept: the mean of the new data's score and, "
                                 "with --forgetting-data, the start's own tasks.")
    add = parser.add_argument
    add("--start", required=True, help="the checkpoint training started from (an imported model, say)")
    add("--trained", required=True, help="a checkpoint trained (and grown) from it, or its run folder")
    add("--ratio", type=in_range(float, Range(0, 1)), help="weight of the trained model: 0 = the start, 1 = trained")
    add("--ratios", type=float_list, default=DEFAULT_RATIOS, help="ratios to choose from (default 0,0.1,...,1)")
    add("--output", required=True, help="checkpoint folder to write")
    add_evaluation_flags(parser)
    add_overwrite_flag(parser)


def run(args: argparse.Namespace) -> int:
    device = resolve_device(args.device)
    start, trained = read_checkpoint(args.start, device), read_checkpoint(args.trained, device)
    sets = None if args.ratio is not None else evaluation_sets_of(args, trained.model.config.image_size)
    result = merge_checkpoints(start, trained, args.output, args.ratio, sets, args.ratios, args.precision,
                               args.overwrite)
    _print_sweep(result)
    print(f"merged at ratio {result.ratio:g} (0 = {start.path}, 1 = {trained.path}): {result.path}")
    return 0


def _print_sweep(result: MergeResult) -> None:
    if not result.sweep:
        return
    print(f"{'ratio':>6}{'new top1':>10}{'retained':>10}{'forgetting':>12}{'score':>8}")
    for point in result.sweep:
        summary = point.results.summary
        cells = [f"{summary[k]:.3f}" if k in summary else "-" for k in (MEAN_TOP1, RETAINED_TOP1, FORGETTING)]
        print(f"{point.ratio:6.2f}{cells[0]:>10}{cells[1]:>10}{cells[2]:>12}{point.score:8.3f}")
