"""`growclip grow`: grow a checkpoint by hand with one or more operators and PIM."""

from __future__ import annotations

import argparse
import time

from growclip.cli.options import SEED_VALUE, add_overwrite_flag, check_output_free, in_range
from growclip.growth import GrowthState, grow_state, is_exact, parse_op
from growclip.model import model_cost
from growclip.model.config import ModelConfig
from growclip.train.checkpoint import (
    TRAINER,
    load_checkpoint,
    load_trainer_tensors,
    resolve_checkpoint,
    save_checkpoint,
)
from growclip.train.config import MOMENTUM
from growclip.train.state import RNG_PREFIX


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("grow", help=__doc__, description=__doc__ + " Operators: width=N[,heads=scale], "
                                 "heads=N, mlp_ratio=R, embed_dim=N, vision_layers+K, text_layers+K, "
                                 "shared_layers+K (each with [,at=I][,init=copy]), share[,merge=image|text].")
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
    source = resolve_checkpoint(args.checkpoint)
    model, tokenizer, state = load_checkpoint(source)
    ops = [parse_op(spec) for spec in args.ops]
    resumable = (source / TRAINER).is_file()
    trainer = load_trainer_tensors(source) if resumable else {}
    start = time.perf_counter()
    grown = grow_state(GrowthState.from_tensors(model, trainer), ops, args.momentum, args.seed)
    elapsed = time.perf_counter() - start
    exact = is_exact(model.config, ops)
    record = {"ops": [op.spec() for op in ops], "momentum": args.momentum, "seed": args.seed,
              "function_preserving": exact and args.momentum == 1, "from": model.config.to_dict()}
    state = {**state, "growth": [*state.get("growth", []), record]}
    rng = {name: t for name, t in trainer.items() if name.startswith(RNG_PREFIX)}
    tensors = grown.join_moments() | rng if resumable else None
    path = save_checkpoint(args.output, grown.build_model(), tokenizer, state, tensors)
    print(f"from  {_describe(model.config)}")
    print(f"to    {_describe(grown.config)}")
    print(f"ops {' '.join(record['ops'])}: {'exact' if exact else 'not function preserving'}, "
          f"PIM m={args.momentum:g}, {elapsed * 1000:.0f} ms")
    print(f"checkpoint: {path}" + ("" if resumable else f" (no {TRAINER} in the source: not resumable)"))
    return 0
