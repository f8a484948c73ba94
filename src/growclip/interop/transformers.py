"""A plain-CLIP growclip model as a Hugging Face transformers `CLIPModel` folder (`config.json`,
`model.safetensors`, CLIP's tokenizer files), for `CLIPModel.from_pretrained` and
`CLIPTokenizer.from_pretrained`. transformers itself is not needed to write it.

Like open_clip, transformers' CLIP tokenizes with CLIP's BPE and pools text at the end-of-text
token, so only a model whose tokenizer is CLIP's vocabulary (imported from open_clip, or trained with
such a tokenizer) is exported; shared layers and MS-CLIP's parts have no counterpart there.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from growclip.data.tokenizer import END_OF_TEXT, START_OF_TEXT, Tokenizer
from growclip.interop.clip_bpe import ID_SHIFT
from growclip.interop.open_clip import checked_clip_vocabulary, open_clip_config
from growclip.model import ModelConfig
from growclip.model.clip import CLIP, LOGIT_SCALE_INIT
from growclip.train.checkpoint import load_checkpoint

LAYER_NORM_EPS = 1e-5  # torch.nn.LayerNorm's, which growclip uses


def clip_model_config(config: ModelConfig, vocab_size: int, tokenizer: Tokenizer) -> dict[str, Any]:
    """transformers' `CLIPConfig` as JSON, for a plain-CLIP growclip config."""
    open_clip_config(config, vocab_size)  # refuses what neither library can express
    tower = {"hidden_size": config.width, "intermediate_size": config.mlp_hidden, "num_attention_heads": config.heads,
             "hidden_act": "gelu", "layer_norm_eps": LAYER_NORM_EPS, "projection_dim": config.embed_dim}
    start, end = (tokenizer.backend.token_to_id(t) - ID_SHIFT for t in (START_OF_TEXT, END_OF_TEXT))
    text = {**tower, "vocab_size": vocab_size, "num_hidden_layers": config.text_layers,
            "max_position_embeddings": config.context_length, "bos_token_id": start, "eos_token_id": end,
            "pad_token_id": end}
    vision = {**tower, "num_hidden_layers": config.vision_layers, "image_size": config.image_size,
              "patch_size": config.patch_size, "num_channels": 3}
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


def to_transformers(model: CLIP) -> dict[str, torch.Tensor]:
    """growclip model -> transformers `CLIPModel` state dict (the token embedding loses the pad row)."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    vision, text = "vision_model", "text_model"
    tensors = {"logit_scale": state["logit_scale"],
               f"{vision}.embeddings.class_embedding": state["vision_embed.class_embedding"],
               f"{vision}.embeddings.patch_embedding.weight": state["vision_embed.stem.proj.weight"],
               f"{vision}.embeddings.position_embedding.weight": state["vision_embed.positional_embedding"],
               f"{text}.embeddings.token_embedding.weight": state["text_embed.token_embedding.weight"][ID_SHIFT:],
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


def write_clip_tokenizer_files(tokenizer: Tokenizer, output: Path) -> None:
    """CLIP's `vocab.json` and `merges.txt` (its ids, without growclip's shift) and the config that
    makes `CLIPTokenizer` pad with end-of-text, as OpenAI's CLIP folders do."""
    model = json.loads(tokenizer.backend.to_str())["model"]
    vocab = {token: i - ID_SHIFT for token, i in model["vocab"].items() if i >= ID_SHIFT}
    merges = [" ".join(m) if isinstance(m, list) else m for m in model["merges"]]
    (output / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
    (output / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    config = {"tokenizer_class": "CLIPTokenizer", "model_max_length": tokenizer.context_length,
              "bos_token": START_OF_TEXT, "eos_token": END_OF_TEXT, "unk_token": END_OF_TEXT, "pad_token": END_OF_TEXT}
    (output / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")


def export_transformers(checkpoint: str | Path, output: str | Path) -> Path:
    """Write a `CLIPModel.from_pretrained`-able folder of a growclip checkpoint."""
    model, tokenizer, _ = load_checkpoint(checkpoint)
    vocab_size = checked_clip_vocabulary(tokenizer, checkpoint)
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    config = clip_model_config(model.config, vocab_size, tokenizer)
    (output / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    save_file(to_transformers(model), output / "model.safetensors", metadata={"format": "pt"})
    write_clip_tokenizer_files(tokenizer, output)
    return output
