"""A plain-CLIP growclip model as a Hugging Face transformers `CLIPModel` folder (`config.json`,
`model.safetensors`, the tokenizer's files), for `CLIPModel.from_pretrained` and
`AutoTokenizer.from_pretrained`. transformers itself is not needed to write it. Shared layers and
MS-CLIP's parts have no counterpart there, so such models are refused.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from growclip.checkpoint import load_checkpoint
from growclip.interop.open_clip import check_plain_clip
from growclip.interop.tokenizer_files import swapped_ids, text_ids, write_tokenizer_files
from growclip.model import ModelConfig
from growclip.model.clip import CLIP, LOGIT_SCALE_INIT
from growclip.model.config import TowerShape
from growclip.runtime import check_output_free

LAYER_NORM_EPS = 1e-5  # torch.nn.LayerNorm's, which growclip uses
TOKEN_EMBEDDING = "text_model.embeddings.token_embedding.weight"
LEGACY_EOS_ID = 2  # transformers' CLIP pools text at the highest id when eos_token_id is 2 (old CLIP configs)


def clip_model_config(config: ModelConfig, ids: dict[str, int]) -> dict[str, Any]:
    """transformers' `CLIPConfig` as JSON, for a plain-CLIP growclip config and its text ids
    (`tokenizer_files.text_ids`). transformers pools text at the first end-of-text id (any id but 2)."""
    def tower(shape: TowerShape) -> dict[str, Any]:
        return {"hidden_size": shape.width, "intermediate_size": shape.mlp_hidden, "num_attention_heads": shape.heads,
                "num_hidden_layers": shape.layers, "hidden_act": config.activation, "layer_norm_eps": LAYER_NORM_EPS,
                "projection_dim": config.embed_dim}

    text = {**tower(config.text), "vocab_size": ids["vocab_size"], "max_position_embeddings": config.context_length,
            "bos_token_id": ids["bos"], "eos_token_id": ids["eos"], "pad_token_id": ids["pad"]}
    vision = {**tower(config.vision), "image_size": config.image_size, "patch_size": config.patch_size,
              "num_channels": 3}
    return {"architectures": ["CLIPModel"], "model_type": "clip", "projection_dim": config.embed_dim,
            "logit_scale_init_value": LOGIT_SCALE_INIT, "text_config": text, "vision_config": vision}


def _block(state: dict[str, torch.Tensor], ours: str, theirs: str, modality: str) -> dict[str, torch.Tensor]:
    """One block: growclip's fused QKV split into transformers' q, k, v projections."""
    tensors = {}
    for kind in ("weight", "bias"):
        for name, part in zip(("q_proj", "k_proj", "v_proj"), state[f"{ours}.attn.qkv.{kind}"].chunk(3)):
            tensors[f"{theirs}.self_attn.{name}.{kind}"] = part
        tensors |= {f"{theirs}.self_attn.out_proj.{kind}": state[f"{ours}.attn.proj.{kind}"],
                    f"{theirs}.layer_norm1.{kind}": state[f"{ours}.ln_1.{modality}.{kind}"],
                    f"{theirs}.layer_norm2.{kind}": state[f"{ours}.ln_2.{modality}.{kind}"],
                    f"{theirs}.mlp.fc1.{kind}": state[f"{ours}.mlp.fc1.{kind}"],
                    f"{theirs}.mlp.fc2.{kind}": state[f"{ours}.mlp.fc2.{kind}"]}
    return tensors


def to_transformers(model: CLIP, shift: int) -> dict[str, torch.Tensor]:
    """growclip model -> transformers `CLIPModel` state dict (`shift`: token-embedding rows to drop)."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    vision, text = "vision_model", "text_model"
    tensors = {"logit_scale": state["logit_scale"],
               f"{vision}.embeddings.class_embedding": state["vision_embed.class_embedding"],
               f"{vision}.embeddings.patch_embedding.weight": state["vision_embed.stem.proj.weight"],
               f"{vision}.embeddings.position_embedding.weight": state["vision_embed.positional_embedding"],
               TOKEN_EMBEDDING: state["text_embed.token_embedding.weight"][shift:],
               f"{text}.embeddings.position_embedding.weight": state["text_embed.positional_embedding"],
               "visual_projection.weight": state["image_head.proj.weight"],
               "text_projection.weight": state["text_head.proj.weight"]}
    for kind in ("weight", "bias"):
        tensors |= {f"{vision}.pre_layrnorm.{kind}": state[f"vision_embed.ln_pre.{kind}"],  # sic, transformers' name
                    f"{vision}.post_layernorm.{kind}": state[f"image_head.ln.{kind}"],
                    f"{text}.final_layer_norm.{kind}": state[f"text_head.ln.{kind}"]}
    for i in range(model.config.vision_layers):
        tensors |= _block(state, f"vision_blocks.{i}", f"{vision}.encoder.layers.{i}", "image")
    for i in range(model.config.text_layers):
        tensors |= _block(state, f"text_blocks.{i}", f"{text}.encoder.layers.{i}", "text")
    return {name: tensor.contiguous() for name, tensor in tensors.items()}


def export_transformers(checkpoint: str | Path, output: str | Path, overwrite: bool = False) -> Path:
    """Write a `CLIPModel.from_pretrained`-able folder of a growclip checkpoint."""
    check_output_free(output, overwrite)
    model, tokenizer, _ = load_checkpoint(checkpoint)
    check_plain_clip(model.config)
    ids = text_ids(tokenizer, model.config.vocab_size)
    weights = to_transformers(model, ids["shift"])
    if ids["eos"] == LEGACY_EOS_ID:  # growclip's own BPE: end-of-text trades places with the last id
        last = ids["vocab_size"] - 1
        tokenizer = swapped_ids(tokenizer, LEGACY_EOS_ID, last)
        order = torch.arange(ids["vocab_size"])
        order[[LEGACY_EOS_ID, last]] = order[[last, LEGACY_EOS_ID]]
        weights[TOKEN_EMBEDDING] = weights[TOKEN_EMBEDDING][order].contiguous()
        ids = text_ids(tokenizer, model.config.vocab_size)
    config = clip_model_config(model.config, ids)
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    (output / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    save_file(weights, output / "model.safetensors", metadata={"format": "pt"})
    write_tokenizer_files(tokenizer, output)
    return output
