"""`growclip export`: a plain-CLIP growclip checkpoint for open_clip or Hugging Face transformers."""

from __future__ import annotations

import argparse

from growclip.checkpoint import resolve_checkpoint
from growclip.cli.options import add_overwrite_flag
from growclip.interop.open_clip import export_open_clip
from growclip.interop.transformers import export_transformers

EXPORTERS = {"open_clip": export_open_clip, "transformers": export_transformers}
HOW_TO_LOAD = {"open_clip": "open_clip.create_model_and_transforms('local-dir:{0}'); "
                            "open_clip.get_tokenizer('local-dir:{0}')",
               "transformers": "transformers.CLIPModel.from_pretrained('{0}'); AutoTokenizer.from_pretrained('{0}')"}


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("export", help=__doc__, description=__doc__ + " Shared layers and MS-CLIP's "
                                 "parts have no counterpart there: such models stay growclip checkpoints.")
    add = parser.add_argument
    add("--checkpoint", required=True, help="a checkpoint folder, or a run folder (its newest checkpoint)")
    add("--to", required=True, choices=sorted(EXPORTERS), help="the library to load it")
    add("--output", required=True, help="folder to write")
    add_overwrite_flag(parser)


def run(args: argparse.Namespace) -> int:
    checkpoint = resolve_checkpoint(args.checkpoint)
    output = EXPORTERS[args.to](checkpoint, args.output, args.overwrite)
    print(f"exported {checkpoint} for {args.to}: {output}")
    print("load it with " + HOW_TO_LOAD[args.to].format(output))
    return 0
