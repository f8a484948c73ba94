"""A growth search's proxy training: a contender trained a few steps so that it can be scored."""

from __future__ import annotations

import signal

import torch

from growclip.growth.state import GrowthState
from growclip.model.clip import CLIP
from growclip.train.distributed import World, sync_flags
from growclip.train.faults import NonFiniteError, Preempted, stop_requested
from growclip.train.inputs import RunInputs
from growclip.train.optim import constant_lr
from growclip.train.sections import OptimConfig
from growclip.train.step import Stepper


def train_proxy(optim: OptimConfig, workers: int, state: GrowthState, inputs: RunInputs, steps: int, data_seed: int,
                world: World, device: torch.device) -> tuple[CLIP, GrowthState]:
    """`steps` more steps of `state` at the peak learning rate throughout (no warm-up to repeat), its
    moments carried on; no logs, evaluations or checkpoints (the search saves between rounds), and
    a preemption signal stops it at a step as it stops training. -> (the model, its new state)."""
    model = state.build_model().to(device).train()
    stepper = Stepper(optim, model, inputs, constant_lr, data_seed, world, workers)
    state.load_moments(stepper.optimizer, model)
    for _ in range(steps):
        stepper.step()
        if stepper.diverged:
            raise NonFiniteError(f"a growth search's proxy training of {model.config.describe()}: loss or gradients "
                                 f"non-finite for {stepper.nonfinite_in_a_row} steps in a row; lower --lr")
        if sync_flags([stop_requested()], world)[0]:
            raise Preempted(stop_requested() or signal.SIGTERM)
    return model, GrowthState.capture(model, stepper.optimizer)
