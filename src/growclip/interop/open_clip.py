"""open_clip's ViT CLIP in and out: its model config and state dict to a growclip checkpoint
(`import_open_clip`) and back (`export_open_clip`), keeping the function. open_clip itself is not
needed: configs are JSON, weights safetensors (or, when allowed, a `.pt` read tensors-only), and
CLIP's tokenizer is built from its merges file (`interop.clip_bpe`).

growclip builds pre-LN ViT towers, each of its own width, heads and MLP ratio, with GELU or QuickGELU,
pooling the class token and the end-of-text token: OpenAI's and LAION's ViT CLIPs (B-32, B-16, L-14 and
their -quickgelu variants). An open_clip config is accepted where it says the same; anything else
(layer scale, attentional pooling, timm or Hugging Face towers, ...) is refused with what differs.
Shared layers and MS-CLIP's parts have no open_clip counterpart: such models are refused on export.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from growclip.checkpoint import load_checkpoint, save_checkpoint
from growclip.data.transforms import MEAN, STD
from growclip.interop.clip_bpe import ID_SHIFT, clip_tokenizer
from growclip.interop.tokenizer_files import text_ids, write_tokenizer_files
from growclip.model import ConfigError, ModelConfig, create_model
from growclip.model.clip import CLIP
from growclip.runtime import check_output_free

# open_clip's defaults (CLIPVisionCfg, CLIPTextCfg, CLIP) for the fields growclip can express
VISION_DEFAULTS = {"layers": 12, "width": 768, "head_width": 64, "mlp_ratio": 4.0, "patch_size": 16, "image_size": 224}
TEXT_DEFAULTS = {"context_length": 77, "vocab_size": 49408, "width": 512, "heads": 8, "layers": 12, "mlp_ratio": 4.0}
# fields growclip follows only at these values (open_clip's defaults): another value is refused
VISION_FIXED = {"ls_init_value": None, "patch_dropout": 0.0, "attentional_pool": False, "no_ln_pre": False,
                "pos_embed_type": "learnable", "final_ln_after_pool": False, "pool_type": "tok",
                "output_tokens": False, "timm_model_name": None, "act_kwargs": None, "norm_kwargs": None}
TEXT_FIXED = {"ls_init_value": None, "embed_cls": False, "pad_id": 0, "no_causal_mask": False,
              "final_ln_after_pool": False, "pool_type": "argmax", "proj_bias": False, "proj_type": "linear",
              "output_tokens": False, "hf_model_name": None, "hf_tokenizer_name": None, "act_kwargs": None,
              "norm_kwargs": None}
TOP_FIXED = {"init_logit_bias": None, "custom_text": False}
TOP_IGNORED = {"cast_dtype"}  # a dtype choice, not architecture


class InteropError(ValueError):
    pass


def _checked(section: str, given: dict[str, Any], defaults: dict[str, Any], fixed: dict[str, Any]) -> dict[str, Any]:
    """`given` over `defaults`, refusing unknown fields and fixed ones at another value."""
    unknown = sorted(set(given) - set(defaults) - set(fixed))
    if unknown:
        raise InteropError(f"open_clip {section} fields growclip cannot express: {', '.join(unknown)}")
    differs = [f"{k}={given[k]!r} (growclip: {v!r})" for k, v in fixed.items() if given.get(k, v) != v]
    if differs:
        raise InteropError(f"open_clip {section} differs from what growclip builds: {'; '.join(differs)}")
    return {**defaults, **{k: v for k, v in given.items() if k in defaults}}


def model_config_from_open_clip(open_clip_config: dict[str, Any]) -> ModelConfig:
    """growclip's config for an open_clip model config (its `model_cfg`), or an InteropError naming
    every field growclip cannot express."""
    config = open_clip_config.get("model_cfg", open_clip_config)
    top = {k: v for k, v in config.items()
           if k not in ("embed_dim", "vision_cfg", "text_cfg", "quick_gelu", *TOP_IGNORED)}
    _checked("model", top, {}, TOP_FIXED)
    vision = _checked("vision_cfg", config.get("vision_cfg", {}), VISION_DEFAULTS, VISION_FIXED)
    text = _checked("text_cfg", config.get("text_cfg", {}), TEXT_DEFAULTS, TEXT_FIXED)
    if vision["width"] % vision["head_width"]:
        raise InteropError(f"open_clip vision_cfg width {vision['width']} is not a whole number of heads of "
                           f"head_width {vision['head_width']}")
    try:
        return ModelConfig(width=text["width"], heads=text["heads"], mlp_ratio=text["mlp_ratio"],
                           vision_width=vision["width"], vision_heads=vision["width"] // vision["head_width"],
                           vision_mlp_ratio=vision["mlp_ratio"], vision_layers=vision["layers"],
                           text_layers=text["layers"], shared_layers=0, embed_dim=config["embed_dim"],
                           patch_size=vision["patch_size"], image_size=vision["image_size"],
                           context_length=text["context_length"], vocab_size=text["vocab_size"] + ID_SHIFT,
                           activation="quick_gelu" if config.get("quick_gelu", False) else "gelu")
    except ConfigError as err:
        raise InteropError(f"open_clip config: {err}") from None


def check_plain_clip(config: ModelConfig) -> None:
    """open_clip and transformers hold a plain CLIP only: refuse anything else, saying so."""
    if config.shared_layers or config.stem != "patch" or config.parallel_branch:
        raise InteropError("open_clip and transformers have no shared encoder, conv stem or parallel branch: only "
                           f"a plain CLIP (shared_layers=0, stem=patch, no branch) can go there, not "
                           f"{config.describe()}; it stays a growclip checkpoint (see docs/interop.md)")


def open_clip_config(config: ModelConfig, vocab_size: int, text: dict[str, Any] | None = None) -> dict[str, Any]:
    """open_clip's model config for a plain-CLIP growclip config (its text vocabulary: `vocab_size`;
    `text`: more text_cfg fields)."""
    check_plain_clip(config)
    vision_tower, text_tower = config.vision, config.text
    return {"embed_dim": config.embed_dim, "quick_gelu": config.activation == "quick_gelu",
            "vision_cfg": {"image_size": config.image_size, "layers": vision_tower.layers, "width": vision_tower.width,
                           "head_width": vision_tower.head_dim, "mlp_ratio": vision_tower.mlp_ratio,
                           "patch_size": config.patch_size},
            "text_cfg": {"context_length": config.context_length, "vocab_size": vocab_size, "width": text_tower.width,
                         "heads": text_tower.heads, "layers": text_tower.layers, "mlp_ratio": text_tower.mlp_ratio,
                         **(text or {})}}


def _block_names(growclip_prefix: str, open_clip_prefix: str) -> dict[str, str]:
    """growclip name -> open_clip name for one transformer block (both store W as (out, in))."""
    pairs = {"attn.qkv": "attn.in_proj_", "attn.proj": "attn.out_proj.", "mlp.fc1": "mlp.c_fc.",
             "mlp.fc2": "mlp.c_proj."}
    modality = "image" if growclip_prefix.startswith("vision") else "text"
    names = {}
    for kind in ("weight", "bias"):
        for ours, theirs in pairs.items():
            names[f"{growclip_prefix}.{ours}.{kind}"] = f"{open_clip_prefix}.{theirs}{kind}"
        for norm in ("ln_1", "ln_2"):
            names[f"{growclip_prefix}.{norm}.{modality}.{kind}"] = f"{open_clip_prefix}.{norm}.{kind}"
    return names


def name_map(config: ModelConfig) -> dict[str, str]:
    """growclip parameter name -> open_clip state-dict name, for every tensor but the two projections
    and the token embedding (which change layout; see `to_growclip`)."""
    names = {"logit_scale": "logit_scale", "vision_embed.class_embedding": "visual.class_embedding",
             "vision_embed.positional_embedding": "visual.positional_embedding",
             "vision_embed.stem.proj.weight": "visual.conv1.weight",
             "text_embed.positional_embedding": "positional_embedding"}
    for kind in ("weight", "bias"):
        names |= {f"vision_embed.ln_pre.{kind}": f"visual.ln_pre.{kind}",
                  f"image_head.ln.{kind}": f"visual.ln_post.{kind}", f"text_head.ln.{kind}": f"ln_final.{kind}"}
    for i in range(config.vision_layers):
        names |= _block_names(f"vision_blocks.{i}", f"visual.transformer.resblocks.{i}")
    for i in range(config.text_layers):
        names |= _block_names(f"text_blocks.{i}", f"transformer.resblocks.{i}")
    return names


def to_growclip(state: dict[str, torch.Tensor], config: ModelConfig) -> dict[str, torch.Tensor]:
    """open_clip state dict -> growclip's. The projections are stored transposed by open_clip
    (x @ proj), and the token embedding gains the pad row 0 (zero: pads are never read)."""
    state = {k.removeprefix("module."): v for k, v in state.items()}  # saved from DDP
    names = name_map(config)
    missing = sorted((set(names.values()) | {"visual.proj", "text_projection", "token_embedding.weight"}) - set(state))
    if missing:
        raise InteropError(f"not an open_clip ViT CLIP state dict for this config: missing {', '.join(missing[:5])}")
    tokens = state["token_embedding.weight"]
    return {**{ours: state[theirs] for ours, theirs in names.items()},
            "image_head.proj.weight": state["visual.proj"].t().contiguous(),
            "text_head.proj.weight": state["text_projection"].t().contiguous(),
            "text_embed.token_embedding.weight": torch.cat([tokens.new_zeros(1, tokens.shape[1]), tokens])}


def to_open_clip(model: CLIP, shift: int = ID_SHIFT) -> dict[str, torch.Tensor]:
    """growclip model -> open_clip state dict (the inverse of `to_growclip`); `shift`: token-embedding
    rows to drop, growclip's pad row for CLIP's vocabulary, none for growclip's own."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    return {**{theirs: state[ours].contiguous() for ours, theirs in name_map(model.config).items()},
            "visual.proj": state["image_head.proj.weight"].t().contiguous(),
            "text_projection": state["text_head.proj.weight"].t().contiguous(),
            "token_embedding.weight": state["text_embed.token_embedding.weight"][shift:].contiguous()}


def read_weights(path: str | Path, allow_pickle: bool = False) -> dict[str, torch.Tensor]:
    """A state dict from safetensors, or from a `.pt`/`.bin` only when `allow_pickle` (a training
    checkpoint's "state_dict" is taken). Pickles are read with `weights_only=True`: tensors and plain
    values only, so a crafted file cannot run code through them."""
    path = Path(path)
    if path.suffix == ".safetensors":
        try:
            return load_file(path)
        except (SafetensorError, OSError) as err:
            raise InteropError(f"{path}: unreadable safetensors file ({err})") from None
    if is_torchscript(path):
        raise InteropError(
            f"{path}: a TorchScript archive (OpenAI's own ViT-B-32.pt and the like), which holds code, not only "
            "tensors; growclip does not run it. Convert it once where you trust the file, with open_clip: "
            "`m = open_clip.load_openai_model(FILE, jit=False)`, then `safetensors.torch.save_file(m.state_dict(), "
            "'weights.safetensors')`, and import that with `--open-clip ViT-B-32-quickgelu` (OpenAI's are QuickGELU)")
    if not allow_pickle:
        raise InteropError(f"{path}: not safetensors; a {path.suffix} file is a pickle, which can run code when "
                           "loaded from an untrusted source: convert it to safetensors, or pass --allow-pickle")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated, not a pickle, or holding more than tensors and plain values
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise InteropError(f"{path}: not a readable PyTorch state dict ({reason})") from None
    state = loaded.get("state_dict", loaded) if isinstance(loaded, dict) else loaded
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InteropError(f"{path}: holds a {type(state).__name__}, not a state dict of tensors (or a checkpoint "
                           f"with one under 'state_dict')")
    return state


def is_torchscript(path: Path) -> bool:
    """A TorchScript (`torch.jit.save`) zip archive: it keeps its code under `code/` and constants beside it."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.endswith("constants.pkl") or "/code/" in name for name in archive.namelist())


def read_open_clip_config(name_or_path: str | Path) -> dict[str, Any]:
    """An open_clip model config: a JSON file (a model config, or an `open_clip_config.json` with
    its `model_cfg`), or the name of one of open_clip's own configs when open_clip is installed."""
    path = Path(name_or_path)
    if path.is_file():
        return json.loads(path.read_text())
    try:
        import open_clip
    except ImportError:
        raise InteropError(f"{name_or_path}: no such file; an open_clip config name needs open_clip installed, "
                           "else give the config's JSON file") from None
    config = open_clip.get_model_config(str(name_or_path))
    if config is None:
        raise InteropError(f"{name_or_path}: neither a file nor one of open_clip's model configs")
    return config


def default_bpe_path() -> Path:
    """CLIP's merges file as open_clip ships it, when open_clip is installed."""
    try:
        from open_clip.tokenizer import default_bpe
    except ImportError:
        raise InteropError("CLIP's merges file (bpe_simple_vocab_16e6.txt.gz) comes with open_clip: install it, "
                           "or give the file's path (--bpe)") from None
    return Path(default_bpe())


def import_open_clip(open_clip_config: dict[str, Any], weights: str | Path, output: str | Path,
                     bpe_path: str | Path | None = None, allow_pickle: bool = False, overwrite: bool = False) -> Path:
    """Write a growclip checkpoint of an open_clip model: its weights, config and CLIP's tokenizer
    (from `bpe_path`, default open_clip's own file); `growclip train --resume OUTPUT` grows it."""
    check_output_free(output, overwrite)
    config = model_config_from_open_clip(open_clip_config)
    model = create_model(config)
    try:
        model.load_state_dict(to_growclip(read_weights(weights, allow_pickle), config))
    except RuntimeError as err:  # tensors of other shapes than the config says
        raise InteropError(f"{weights}: weights do not fit the config: {str(err).splitlines()[-1].strip()}") from None
    tokenizer = clip_tokenizer(bpe_path or default_bpe_path(), config.context_length)
    return save_checkpoint(output, model, tokenizer, {"imported_from": {"open_clip": open_clip_config,
                                                                        "weights": str(weights)}})


def export_open_clip(checkpoint: str | Path, output: str | Path, overwrite: bool = False) -> Path:
    """Write `open_clip_config.json` and `open_clip_model.safetensors` for
    `open_clip.create_model_and_transforms("local-dir:OUTPUT")`. On CLIP's vocabulary open_clip's own
    tokenizer reads the text; a growclip BPE goes with it as `tokenizer.json` (open_clip's
    `HFTokenizer`), and text pools at its end-of-text id (`pool_type` eos)."""
    check_output_free(output, overwrite)
    model, tokenizer, _ = load_checkpoint(checkpoint)
    ids = text_ids(tokenizer, model.config.vocab_size)
    own_bpe = {} if ids["shift"] else {"pool_type": "eos", "eos_id": ids["eos"], "pad_id": ids["pad"],
                                        "hf_tokenizer_name": "."}  # with local-dir: the folder's tokenizer
    model_cfg = open_clip_config(model.config, ids["vocab_size"], own_bpe)
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    if own_bpe:
        write_tokenizer_files(tokenizer, output)
    preprocess = {"mean": MEAN, "std": STD, "interpolation": "bicubic", "resize_mode": "shortest"}  # as growclip
    (output / "open_clip_config.json").write_text(json.dumps({"model_cfg": model_cfg, "preprocess_cfg": preprocess},
                                                             indent=2) + "\n")
    save_file(to_open_clip(model, ids["shift"]), output / "open_clip_model.safetensors")
    return output
