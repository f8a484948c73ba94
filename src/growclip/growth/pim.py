"""PIM, parameter inheriting with momentum: theta = m * theta_inherited + (1 - m) * theta_fresh.

m = 1 keeps the operator's result (the function, for exact operators, and the symmetry of
duplicated units); m = 0 is a fresh model. The AdamW moments are scaled by m (first) and m^2
(second), so that each update keeps its size. At m = 0 the optimizer starts afresh as well, its
step count included: scaled to zero under a kept step count, the moments would lose Adam's bias
correction and the first few hundred updates would be several times larger than a fresh start's.
"""

from __future__ import annotations

import torch

from growclip.growth.state import GrowthState
from growclip.model.clip import CLIP


def inherit_with_momentum(state: GrowthState, fresh: CLIP, momentum: float) -> GrowthState:
    if not 0 <= momentum <= 1:
        raise ValueError(f"PIM momentum must be in [0, 1], got {momentum}")
    if momentum == 1:
        return state
    init = fresh.state_dict()
    weights = {name: torch.lerp(init[name], t, momentum) if t.is_floating_point() else t
               for name, t in state.weights.items()}
    if momentum == 0:  # no moments, step 0: a fresh optimizer
        return GrowthState(state.config, weights)
    moments = {name: {stat: t if stat == "step" else t * momentum ** (2 if stat == "exp_avg_sq" else 1)
                      for stat, t in stats.items()}
               for name, stats in state.moments.items()}
    return GrowthState(state.config, weights, moments, state.step)
