"""`growclip grow`: grow a checkpoint by hand with one or more operators and PIM."""

from __future__ import annotations

import argparse
import time

from growclip.checkpoint import Snapshot, read_checkpoint, write_checkpoint
from growclip.cli.options import SEED_VALUE, add_overwrite_flag, in_range
from growclip.growth import GrowthState, grow_state, is_exact, parse_op
from growclip.growth.lineage import LINEAGE, GrowthLineage, GrowthStep
from growclip.model import model_cost
from growclip.model.config import ModelConfig
from growclip.model.moments import flat_moments, nested_moments
from growclip.runtime import check_output_free
from growclip.train.settings import MOMENTUM


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("grow", help=__doc__, description=__doc__ + " Operators: width=N[,heads=scale], "
                                 "heads=N, mlp_ratio=R, embed_dim=N, vision_layers+K, text_layers+K, "
                                 "shared_layers+K (each with [,at=I][,init=copy]), share[,merge=image|text]; "
                                 "width, heads and mlp_ratio also per tower: vision_width=N, text_heads=N, ...")
    add = parser.add_argument
    add("--checkpoint", required=True, help="a checkpoint folder, or a run folder (its newest checkpoint)")
    add("--op", action="append", required=True, dest="ops", help="a growth operator; repeat for several")
    add("--momentum", type=in_range(float, MOMENTUM), default=1.0,
        help="PIM m: 1 = inherit only (default), 0 = fresh model")
    add("--seed", type=SEED_VALUE, default=0, help="seed of the fresh initialisation new units and PIM draw from")
    add("--output", required=True, help="checkpoint folder to write (resume it with `train --resume`)")
    add_overwrite_flag(parser)


def _describe(config: ModelConfig) -> str:
    cost = model_cost(config)
    return f"{config.describe()}: {cost.params / 1e6:.2f} M params, {cost.forward_flops / 1e9:.3f} GFLOP per pair"


def run(args: argparse.Namespace) -> int:
    check_output_free(args.output, args.overwrite)
    saved = read_checkpoint(args.checkpoint)
    model, ops = saved.model, [parse_op(spec) for spec in args.ops]
    moments = nested_moments(saved.part("optimizer")) if saved.resumable else {}
    start = time.perf_counter()
    grown = grow_state(GrowthState.of(model, moments), ops, args.momentum, args.seed)
    elapsed = time.perf_counter() - start
    exact = is_exact(model.config, ops)
    step = GrowthStep(tuple(op.spec() for op in ops), args.momentum, args.seed, model.config)
    lineage = GrowthLineage.from_part(saved.parts.get(LINEAGE))
    parts = {**saved.parts, LINEAGE: GrowthLineage([*lineage.steps, step]).state_dict()}
    owners = {"optimizer": Snapshot(flat_moments(grown.moments)), "rng": Snapshot(saved.part("rng"))} \
        if saved.resumable else {}
    parts = {name: part for name, part in parts.items() if name not in owners}
    path = write_checkpoint(args.output, grown.build_model(), saved.tokenizer, saved.progress, owners, parts)
    print(f"from  {_describe(model.config)}")
    print(f"to    {_describe(grown.config)}")
    print(f"ops {' '.join(step.ops)}: {'exact' if exact else 'not function preserving'}, "
          f"PIM m={args.momentum:g}, {elapsed * 1000:.0f} ms")
    print(f"checkpoint: {path}" + ("" if saved.resumable else " (the source holds no training state: not resumable)"))
    return 0
