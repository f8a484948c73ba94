"""The peer's side of `peer_openclip.py`: runs inside the peer virtual environment, where open_clip
is installed (and growclip with `--no-deps`, for its evaluation).

    python openclip_worker.py train CONFIG_DIR -- OPEN_CLIP_TRAIN_ARGS...
    python openclip_worker.py eval CONFIG_DIR MODEL CHECKPOINT OUTPUT_JSON PRECISION EVAL_SETS_JSON

`train` is open_clip's own trainer (`open_clip_train.main`), with our architecture registered as a
model config. `eval` loads the trained open_clip model and measures it with growclip's evaluation,
on the same sets as `growclip eval`, so both tools are scored by one piece of code.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from types import SimpleNamespace

import open_clip
import torch
import torch.nn.functional as F
from torch import nn

from growclip.data.sources import ReaderOptions
from growclip.eval.sets import EvalSetsConfig, evaluation_sets
from growclip.eval.suite import evaluate_sets


class NormalisedOpenClip(nn.Module):
    """An open_clip model behind growclip's model interface: normalised features, `config.embed_dim`."""

    def __init__(self, model: nn.Module, embed_dim: int) -> None:
        super().__init__()
        self.model = model
        self.config = SimpleNamespace(embed_dim=embed_dim)

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.model.encode_image(images), dim=-1)  # (B, 3, S, S) -> (B, E)

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.model.encode_text(tokens), dim=-1)  # (B, L) -> (B, E)

    def scale(self) -> torch.Tensor:
        """The temperature open_clip's loss uses (its logit scale, clamped at ln 100 as it trains it)."""
        return self.model.logit_scale.clamp(max=math.log(100)).exp()


def train(config_dir: str, argv: list[str]) -> None:
    from open_clip_train.main import main

    open_clip.add_model_config(config_dir)
    main(argv)


def run_eval(config_dir: str, name: str, checkpoint: str, output: str, precision: str, sets_json: str) -> None:
    open_clip.add_model_config(config_dir)
    model = open_clip.create_model(name, pretrained=checkpoint, device="cpu")
    model_config = json.loads((Path(config_dir) / f"{name}.json").read_text())
    sets = json.loads(sets_json)
    sets["reader"] = ReaderOptions(**sets["reader"])
    evals = evaluation_sets(EvalSetsConfig(**sets), model_config["vision_cfg"]["image_size"])
    wrapped = NormalisedOpenClip(model, model_config["embed_dim"])
    results = evaluate_sets(wrapped, open_clip.get_tokenizer(name), evals, precision)
    Path(output).write_text(json.dumps(results.to_dict(), indent=2) + "\n")


if __name__ == "__main__":
    command, rest = sys.argv[1], sys.argv[2:]
    if command == "train":
        train(rest[0], rest[2:] if rest[1:2] == ["--"] else rest[1:])
    elif command == "eval":
        run_eval(*rest)
    else:
        sys.exit(f"unknown command {command!r}: train or eval")
