from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from growclip.model import ModelConfig

TINY = dict(width=32, heads=2, mlp_ratio=2.0, embed_dim=16, image_size=16, patch_size=4, context_length=12,
            vocab_size=300, branch_width=8)


def tiny_config(**overrides) -> ModelConfig:
    """A model small enough for a unit test; any field can be overridden."""
    return ModelConfig(**{**TINY, "vision_layers": 1, "text_layers": 1, "shared_layers": 1, **overrides})


# The architectures every model test runs on: plain CLIP, shared encoder, MS-CLIP, each branch on/off.
ARCHITECTURES = {
    "clip": dict(vision_layers=2, text_layers=2, shared_layers=0),
    "clip-branch": dict(vision_layers=2, text_layers=2, shared_layers=0, parallel_branch=True),
    "shared": dict(vision_layers=1, text_layers=1, shared_layers=2),
    "msclip": dict(vision_layers=1, text_layers=1, shared_layers=2, stem="conv", parallel_branch=True),
    "msclip-nobranch": dict(vision_layers=1, text_layers=1, shared_layers=2, stem="conv"),
}


@pytest.fixture(params=sorted(ARCHITECTURES))
def architecture(request) -> ModelConfig:
    return tiny_config(**ARCHITECTURES[request.param])


@pytest.fixture(autouse=True)
def _seeded():
    torch.manual_seed(0)


# -- short training runs for the fault and run-folder tests --------------------------------------

FAULT_MODEL = tiny_config(vision_layers=1, text_layers=1, shared_layers=0)


@pytest.fixture
def model_json(tmp_path) -> Path:
    FAULT_MODEL.to_json(tmp_path / "model.json")
    return tmp_path / "model.json"


def train_settings(model_json: Path, output: Path, **overrides) -> dict:
    """A run of 20 steps of 16 pairs on the corpus (a few seconds), as TrainConfig settings."""
    return {"model": str(model_json), "stage_sizes": (64, 64, 64, 64), "batch_size": 16, "samples": 320,
            "warmup": 2, "log_every": 1, "eval_images_per_class": 2, "retrieval_images": 8, "progress": False,
            "output": str(output), **overrides}


def cli_args(config: dict) -> list[str]:
    """`growclip train` flags for settings (as `train_settings` gives)."""
    args = ["train"]
    for name, value in config.items():
        if name == "progress":
            args.append("--no-progress")
        elif isinstance(value, bool):
            args += [f"--{name.replace('_', '-')}"] if value else []
        else:
            text = ",".join(map(str, value)) if isinstance(value, tuple) else str(value)
            args += [f"--{name.replace('_', '-')}", text]
    return args


def run_weights(run: Path) -> dict[str, torch.Tensor]:
    """The weights of a run's newest checkpoint."""
    from growclip.checkpoint.files import checkpoints_of

    return load_file(checkpoints_of(run)[-1] / "model.safetensors")


def signal_during_step(monkeypatch, step: int, signum: int) -> None:
    """A signal arrives while the training step `step` runs (as SLURM's warning would)."""
    import os

    from growclip.train import step as stepping

    steps, real_step = [], stepping.train_step

    def step_then_signal(*args, **kwargs):
        steps.append(1)
        if len(steps) == step:
            os.kill(os.getpid(), signum)
        return real_step(*args, **kwargs)

    monkeypatch.setattr(stepping, "train_step", step_then_signal)
