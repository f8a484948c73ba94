"""Growth: operators that turn a trained model into a bigger one without losing what it knows,
with its optimizer state, and PIM (parameter inheriting with momentum) on top."""

from growclip.growth.base import GrowthError, GrowthOp
from growclip.growth.blocks import Depth, Share
from growclip.growth.grow import grow, grow_state, grown_config, is_exact
from growclip.growth.parse import OPERATORS, parse_op
from growclip.growth.pim import inherit_with_momentum
from growclip.growth.state import GrowthState
from growclip.growth.units import EmbedDim, Heads, MlpRatio
from growclip.growth.width import Width

__all__ = [
    "OPERATORS", "Depth", "EmbedDim", "GrowthError", "GrowthOp", "GrowthState", "Heads", "MlpRatio", "Share",
    "Width", "grow", "grow_state", "grown_config", "inherit_with_momentum", "is_exact", "parse_op",
]
