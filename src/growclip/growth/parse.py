"""Growth operators as `growclip grow --op` spells them, and the registry behind the spelling.

    width=256            width=256,heads=scale     heads=8        mlp_ratio=4     embed_dim=256
    width=256,units=fresh
    vision_layers+1      text_layers+2,at=0        shared_layers+1,init=copy      share,merge=image
    vision_width=1024    text_heads=12             vision_mlp_ratio=6  (one tower, when no block is shared)
"""

from __future__ import annotations

import re
from collections.abc import Callable

from growclip.growth.base import GrowthError, GrowthOp, field_name
from growclip.growth.blocks import Depth, Share
from growclip.growth.units import EmbedDim, Heads, MlpRatio
from growclip.growth.width import Width

# operator name -> (how the value after '=' or '+' builds it, the options it takes)
OPERATORS: dict[str, tuple[Callable[..., GrowthOp], tuple[str, ...]]] = {
    **{field_name(tower, "width"): (lambda value, tower=tower, **kw: Width(int(value), tower=tower, **kw),
                                    ("heads", "units"))
       for tower in (None, "vision", "text")},
    **{field_name(tower, "heads"): (lambda value, tower=tower: Heads(int(value), tower), ())
       for tower in (None, "vision", "text")},
    **{field_name(tower, "mlp_ratio"): (lambda value, tower=tower: MlpRatio(float(value), tower), ())
       for tower in (None, "vision", "text")},
    "embed_dim": (lambda value: EmbedDim(int(value)), ()),
    "vision_layers": (lambda value, **kw: Depth("vision", int(value), **kw), ("at", "init")),
    "text_layers": (lambda value, **kw: Depth("text", int(value), **kw), ("at", "init")),
    "shared_layers": (lambda value, **kw: Depth("shared", int(value), **kw), ("at", "init")),
    "share": (lambda value=None, **kw: Share(**kw), ("merge",)),
}
_HEAD = re.compile(r"^(\w+)(?:([=+])(.+))?$")


def parse_op(spec: str) -> GrowthOp:
    """`name=value` sets a size, `name+count` adds blocks, `,key=value` options follow."""
    head, *options = [part.strip() for part in spec.split(",")]
    match = _HEAD.match(head)
    if not match or match[1] not in OPERATORS:
        raise GrowthError(f"unknown growth operator {spec!r}; operators: {', '.join(OPERATORS)}")
    name, sign, value = match[1], match[2], match[3]
    build, allowed = OPERATORS[name]
    if (sign == "+") != name.endswith("_layers") or (sign is None) != (name == "share"):
        raise GrowthError(f"{spec!r}: write {'NAME+COUNT' if name.endswith('_layers') else 'NAME=VALUE'}"
                          f"{'' if name != 'share' else ' (share takes no value)'}")
    kwargs = {}
    for option in options:
        key, _, text = option.partition("=")
        if key not in allowed or not text:
            raise GrowthError(f"{spec!r}: unknown option {option!r}; {name} takes {list(allowed) or 'none'}")
        kwargs[key] = int(text) if key == "at" else text
    try:
        return build(value, **kwargs) if value is not None else build(**kwargs)
    except ValueError as err:
        raise GrowthError(f"{spec!r}: {err}") from None
