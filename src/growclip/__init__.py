"""growclip: contrastive language-image pre-training whose model grows with its data.

The names below load on first use, so that what needs no model (the command line refusing a run
folder in use, say) answers before PyTorch is imported."""

import importlib
import sys
import types

__version__ = "0.1.0"
_HOMES = {
    "CLIP": "growclip.model", "EmbeddedCorpus": "growclip.data", "GrowthState": "growclip.growth",
    "ModelConfig": "growclip.model", "Tokenizer": "growclip.data", "TrainConfig": "growclip.train",
    "create_model": "growclip.model", "evaluate": "growclip.eval", "grow": "growclip.growth",
    "grow_state": "growclip.growth", "list_presets": "growclip.model", "load_checkpoint": "growclip.checkpoint",
    "load_config": "growclip.model", "model_cost": "growclip.model", "save_checkpoint": "growclip.checkpoint",
    "train": "growclip.train",
}
__all__ = sorted(_HOMES)


class _Package(types.ModuleType):
    """Each exported name comes from its home module when first asked for. `growclip.train` stays the
    function (as it was when these were imported eagerly), not the subpackage of the same name."""

    def __getattribute__(self, name: str) -> object:
        if name in _HOMES:
            return getattr(importlib.import_module(_HOMES[name]), name)
        return super().__getattribute__(name)

    def __dir__(self) -> list[str]:
        return sorted({*super().__dir__(), *_HOMES})


sys.modules[__name__].__class__ = _Package
