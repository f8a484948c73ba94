"""Weight-space merging after growth (WiSE-FT, Wortsman et al. 2022): the starting model, mapped into
the grown architecture by the operators the run applied, interpolated with the trained model.

The map replays each recorded step with PIM left out (m = 1) and the step's own seed, so the mapped
start computes the start's function, and its new units hold the fresh initialisations the run's
growth drew. After growth with PIM m < 1 the run trained from m x inherited + (1 - m) x fresh
weights, not from the mapped start: ratio 0 is still exactly the start, but the straight path to the
trained model no longer passes through the point its training began at.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from growclip.growth.grow import grow
from growclip.growth.lineage import GrowthStep, LineageError
from growclip.model.clip import CLIP
from growclip.model.factory import create_model


def map_start(start: CLIP, steps: Sequence[GrowthStep]) -> CLIP:
    """`start` in the architecture `steps` grew it to, computing the same function."""
    model = start
    for step in steps:
        if step.retrain:
            raise LineageError("the trained model was retrained from zero after growing (--growth scratch): its "
                               "weights do not descend from the start's, so no merge is meaningful")
        if not step.exact:
            raise LineageError(f"growth step {' '.join(step.ops)} does not preserve the function: the start has no "
                               f"exact image in the grown architecture")
        model = grow(model, step.ops, momentum=1.0, seed=step.seed)
    return model


def interpolate(start: CLIP, trained: CLIP, ratio: float) -> CLIP:
    """(1 - ratio) x start + ratio x trained, tensor by tensor: ratio 0 is the start, 1 the trained model.
    Both must have one architecture (map the start first)."""
    if start.config != trained.config:
        raise ValueError(f"interpolation needs one architecture: {start.config.describe()} vs "
                         f"{trained.config.describe()}")
    ends = start.state_dict(), trained.state_dict()
    merged = {name: torch.lerp(ends[0][name], tensor, ratio) if tensor.is_floating_point() else tensor
              for name, tensor in ends[1].items()}
    model = create_model(trained.config).to(next(trained.parameters()).device)
    model.load_state_dict(merged)
    return model.eval()
