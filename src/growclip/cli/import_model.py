"""`growclip import`: an open_clip ViT CLIP as a growclip checkpoint, ready to grow and train on."""

from __future__ import annotations

import argparse

from growclip.checkpoint import load_checkpoint
from growclip.cli.options import add_overwrite_flag
from growclip.interop.clip_bpe import ID_SHIFT
from growclip.interop.open_clip import import_open_clip, read_open_clip_config
from growclip.model import model_cost


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("import", help=__doc__, description=__doc__)
    add = parser.add_argument
    add("--open-clip", required=True, metavar="CONFIG",
        help="open_clip model config: a JSON file, or a config name such as ViT-S-16 (needs open_clip installed)")
    add("--weights", required=True, help="its state dict: .safetensors (or .pt/.bin with --allow-pickle)")
    add("--bpe", help="CLIP's merges file bpe_simple_vocab_16e6.txt.gz (default: open_clip's own copy)")
    add("--allow-pickle", action="store_true",
        help="read a .pt/.bin pickle (tensors and plain values only); never one from an untrusted source")
    add("--output", required=True, help="checkpoint folder to write (train it with `train --resume`)")
    add_overwrite_flag(parser)


def run(args: argparse.Namespace) -> int:
    path = import_open_clip(read_open_clip_config(args.open_clip), args.weights, args.output, args.bpe,
                            args.allow_pickle, args.overwrite)
    model, tokenizer, _ = load_checkpoint(path)
    print(f"imported {args.open_clip}: {model.config.describe()}, {model_cost(model.config).params / 1e6:.2f} M "
          f"params, CLIP tokenizer ({tokenizer.vocab_size - ID_SHIFT} tokens and growclip's pad)")
    print(f"checkpoint: {path}")
    return 0
