"""How each parameter grows: the modules declare it next to their layers (as timm models declare
`no_weight_decay`), and growth reads it from here, so adding a layer is one edit in one place.

Every dimension of a parameter that growth may widen lives in a *space* (the residual width, the
MLP hidden units, the QKV rows, the attention values its output projection reads, a conv-stem
stage's channels, the joint embedding) and is either an *out* dimension (it produces features of
that space: rows of a linear, LayerNorm and embedding entries) or an *in* dimension (it reads
them: the columns of a linear). An empty declaration says the tensor never widens (the logit
scale, the parallel branch's own channels, BatchNorm counters).

Layers declare bare spaces; a model whose towers widen apart names the tower of each part
(`GROWTH_TOWERS`, {child: tower}), and the spaces of that part become the tower's: "vision.residual",
"text.hidden", "shared.qkv". The joint embedding is one space for all.
"""

from __future__ import annotations

from torch import nn

RESIDUAL, HIDDEN, QKV, VALUE, EMBED = "residual", "hidden", "qkv", "value", "embed"
OUT, IN = "out", "in"
Axes = dict[int, tuple[str, str]]  # dim -> (space, OUT | IN)
FIXED: Axes = {}


def residual_out(dim: int = 0) -> Axes:
    return {dim: (RESIDUAL, OUT)}


def layer_norm(prefix: str, space: str = RESIDUAL) -> dict[str, Axes]:
    return {f"{prefix}.weight": {0: (space, OUT)}, f"{prefix}.bias": {0: (space, OUT)}}


def batch_norm(prefix: str, space: str) -> dict[str, Axes]:
    return {**layer_norm(prefix, space), f"{prefix}.running_mean": {0: (space, OUT)},
            f"{prefix}.running_var": {0: (space, OUT)}, f"{prefix}.num_batches_tracked": FIXED}


def fixed(module: nn.Module, prefix: str) -> dict[str, Axes]:
    """Every tensor of `module` (named under `prefix`) as never widening."""
    return {f"{prefix}.{name}": FIXED for name in module.state_dict()}


class UndeclaredParameterError(ValueError):
    pass


def tower_space(tower: str, space: str) -> str:
    """A tower's own copy of a width space (the embedding is shared by all)."""
    return space if space == EMBED else f"{tower}.{space}"


def parameter_axes(model: nn.Module) -> dict[str, Axes]:
    """{state-dict name: axes} from every module's `growth_axes()`; names relative to the module,
    spaces qualified by the tower (see above). Fails on a tensor that no module declares, or a
    declaration that names no tensor."""
    towers: dict[str, str] = getattr(model, "GROWTH_TOWERS", {})
    declared: dict[str, Axes] = {}
    for prefix, module in model.named_modules():
        if hasattr(module, "growth_axes"):
            tower = towers.get(prefix.split(".")[0])
            for name, axes in module.growth_axes().items():
                declared[f"{prefix}.{name}" if prefix else name] = {
                    dim: (tower_space(tower, space) if tower else space, kind) for dim, (space, kind) in axes.items()}
    names = set(model.state_dict())
    missing, stale = sorted(names - set(declared)), sorted(set(declared) - names)
    if missing or stale:
        raise UndeclaredParameterError(f"growth axes undeclared for {missing[:5]}; declared for no tensor: "
                                       f"{stale[:5]} (see model.axes)")
    return declared
