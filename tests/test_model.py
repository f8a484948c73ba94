import dataclasses
import json

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from conftest import tiny_config
from growclip.model import (
    PAD_ID,
    ConfigError,
    ModelConfig,
    create_model,
    list_presets,
    load_config,
    model_cost,
    train_flops_per_sample,
)
from growclip.model.axes import UndeclaredParameterError, parameter_axes
from growclip.model.loss import clip_loss
from growclip.model.memory import activation_bytes


def _inputs(config: ModelConfig, batch: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    images = torch.randn(batch, 3, config.image_size, config.image_size)
    tokens = torch.randint(3, config.vocab_size, (batch, config.context_length))
    tokens[:, -2:] = PAD_ID  # end-of-text at position L-3
    return images, tokens


def test_forward_shapes_and_normalised(architecture):
    model = create_model(architecture).eval()
    image_features, text_features, scale = model(*_inputs(architecture))
    assert image_features.shape == text_features.shape == (3, architecture.embed_dim)
    torch.testing.assert_close(image_features.norm(dim=-1), torch.ones(3))
    torch.testing.assert_close(text_features.norm(dim=-1), torch.ones(3))
    assert scale.item() == pytest.approx(1 / 0.07, rel=1e-5)


def test_gradient_checkpointing_gives_the_same_loss_and_gradients(architecture):
    model = create_model(architecture)
    inputs = _inputs(architecture, batch=4)

    def loss_and_grads() -> tuple[torch.Tensor, list[torch.Tensor]]:
        model.zero_grad()
        image_features, text_features, scale = model(*inputs)
        loss = clip_loss(image_features, text_features, scale)
        loss.backward()
        return loss.detach(), [p.grad.clone() for p in model.parameters()]

    plain_loss, plain_grads = loss_and_grads()
    model.set_grad_checkpointing()
    checkpointed_loss, checkpointed_grads = loss_and_grads()
    torch.testing.assert_close(checkpointed_loss, plain_loss, rtol=0, atol=0)
    torch.testing.assert_close(checkpointed_grads, plain_grads, rtol=1e-6, atol=1e-7)


def test_gradient_checkpointing_lowers_the_memory_estimate():
    config = load_config("clip-base")
    assert activation_bytes(config, 128, checkpointed=True) < activation_bytes(config, 128) / 3


def test_logit_scale_is_clamped_at_100():
    model = create_model(tiny_config())
    with torch.no_grad():
        model.logit_scale.fill_(10.0)
    assert model.scale().item() == pytest.approx(100.0)


def test_text_is_causal(architecture):
    """Output at position i must not change when tokens after i change."""
    model = create_model(architecture).eval()
    _, tokens = _inputs(architecture)
    changed = tokens.clone()
    position = 4
    changed[:, position + 1 :] = torch.randint(3, architecture.vocab_size, changed[:, position + 1 :].shape)
    hidden = {}

    def capture(name):
        return lambda module, args, output: hidden.__setitem__(name, output)

    last_block = (list(model.text_blocks) + list(model.shared_blocks))[-1]
    with torch.no_grad():
        handle = last_block.register_forward_hook(capture("a"))
        model.encode_text(tokens)
        handle.remove()
        handle = last_block.register_forward_hook(capture("b"))
        model.encode_text(changed)
        handle.remove()
    torch.testing.assert_close(hidden["a"][:, : position + 1], hidden["b"][:, : position + 1])
    assert not torch.allclose(hidden["a"][:, position + 1 :], hidden["b"][:, position + 1 :])


def test_text_pools_at_end_of_text():
    config = tiny_config()
    model = create_model(config).eval()
    _, tokens = _inputs(config)
    padded_differently = tokens.clone()
    padded_differently[:, -2:] = PAD_ID
    with torch.no_grad():
        reference = model.encode_text(tokens)
        torch.testing.assert_close(model.encode_text(padded_differently), reference)
        shorter = tokens.clone()
        shorter[:, -3] = PAD_ID  # end-of-text now one earlier: a different pooled token
        assert not torch.allclose(model.encode_text(shorter), reference)


def test_shared_blocks_use_one_tensor_for_both_modalities():
    config = tiny_config(vision_layers=1, text_layers=1, shared_layers=2)
    model = create_model(config)
    block = model.shared_blocks[0]
    seen = {}

    def record(module, args, output):  # tokens seen -> the weight tensor that served them
        seen[args[0].shape[1]] = module.weight

    block.attn.qkv.register_forward_hook(record)
    images, tokens = _inputs(config)
    model.encode_image(images)
    model.encode_text(tokens)
    assert set(seen) == {config.image_tokens, config.context_length}
    assert seen[config.image_tokens] is seen[config.context_length]
    # LayerNorms differ per modality: separate tensors that may take separate values
    for norms in (block.ln_1, block.ln_2):
        assert norms["image"].weight is not norms["text"].weight
        assert norms["image"].weight.data_ptr() != norms["text"].weight.data_ptr()
    # both modalities' losses reach the one shared weight
    model.encode_image(images).sum().backward()
    image_grad = block.mlp.fc1.weight.grad.clone()
    model.zero_grad()
    model.encode_text(tokens).sum().backward()
    assert image_grad.abs().sum() > 0 and block.mlp.fc1.weight.grad.abs().sum() > 0
    assert block.ln_1["image"].weight.grad is None  # the text pass never touched the image LayerNorm


def test_plain_clip_shares_nothing():
    model = create_model(tiny_config(vision_layers=2, text_layers=2, shared_layers=0))
    vision = {id(p) for p in model.vision_blocks.parameters()}
    text = {id(p) for p in model.text_blocks.parameters()}
    assert len(model.shared_blocks) == 0 and not vision & text


@pytest.mark.parametrize("name", list_presets())
def test_preset_param_and_flop_counts_match_module(name):
    config = load_config(name)
    _check_counts(config)


def test_param_and_flop_counts_match_module(architecture):
    _check_counts(architecture)


def _check_counts(config: ModelConfig) -> None:
    model = create_model(config)
    cost = model_cost(config)
    assert cost.params == sum(p.numel() for p in model.parameters())
    images, tokens = _inputs(config, batch=2)
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        model.encode_image(images)
    assert counter.get_total_flops() == 2 * cost.image_flops
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        model.encode_text(tokens)
    assert counter.get_total_flops() == 2 * cost.text_flops
    if not config.parallel_branch:  # the flop counter over-counts grouped-conv backward
        with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
            image_features, text_features, _ = model(images, tokens)
            (image_features.sum() + text_features.sum()).backward()
        assert counter.get_total_flops() == 2 * train_flops_per_sample(config)


def test_config_json_round_trip(tmp_path, architecture):
    path = tmp_path / "config.json"
    architecture.to_json(path)
    assert ModelConfig.from_json(path) == architecture


@pytest.mark.parametrize("field, value, message", [
    ("heads", 3, "not divisible by heads"),
    ("patch_size", 5, "not a multiple of patch_size"),
    ("stem", "resnet", "stem must be one of"),
    ("vision_layers", -1, "non-negative"),
    ("width", 0, "positive integer"),
])
def test_invalid_config_says_what_is_wrong(field, value, message):
    with pytest.raises(ConfigError, match=message):
        dataclasses.replace(tiny_config(), **{field: value})


def test_config_file_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"width": 64, "heads": 2, "depth": 3}')
    with pytest.raises(ConfigError, match=r"bad.json.*unknown model config keys \['depth'\]"):
        load_config(bad)
    with pytest.raises(ConfigError, match="unknown model 'nope'"):
        load_config("nope")


def test_same_seed_same_weights_and_global_rng_untouched():
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    a = create_model(tiny_config(), seed=7)
    assert torch.equal(torch.rand(1), expected_next)
    b = create_model(tiny_config(), seed=7)
    c = create_model(tiny_config(), seed=8)
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(pa, pb), name
    assert not all(torch.equal(pa, pc) for pa, pc in zip(a.parameters(), c.parameters()))


def test_initial_weights_follow_clips_width_scaled_scheme():
    """clip-small (width 128, 4 + 4 layers): the documented std per layer kind, biases zero."""
    model = create_model("clip-small", seed=3)
    width, depth = 128, 4
    expected = {
        "attn.qkv.weight": width**-0.5,
        "attn.proj.weight": width**-0.5 / (2 * depth) ** 0.5,
        "mlp.fc1.weight": (2 * width) ** -0.5,
        "mlp.fc2.weight": width**-0.5 / (2 * depth) ** 0.5,
        "head.proj.weight": width**-0.5,
        "token_embedding.weight": 0.02,
        "text_embed.positional_embedding": 0.01,
        "vision_embed.positional_embedding": width**-0.5,
        "class_embedding": width**-0.5,
    }
    seen = set()
    for name, param in model.named_parameters():
        kind = next((k for k in expected if name.endswith(k)), None)
        if kind is not None:
            seen.add(kind)
            spread = 4 / (2 * param.numel()) ** 0.5  # four standard errors of a sample std
            assert param.std().item() == pytest.approx(expected[kind], rel=max(0.12, spread)), name
            assert param.mean().abs().item() < 3 * expected[kind] / param.numel() ** 0.5, name
        elif name.endswith("bias") and "blocks" in name:
            assert torch.count_nonzero(param) == 0, name
    assert seen == set(expected)


@pytest.mark.parametrize("name", list_presets())
def test_every_tensor_of_every_preset_declares_how_it_grows(name):
    """A new layer without a `growth_axes` declaration (or one naming a tensor that is gone) fails here."""
    config = load_config(name)
    for variant in (config, dataclasses.replace(config, stem="conv"),
                    dataclasses.replace(config, parallel_branch=True, branch_width=8)):
        axes = parameter_axes(create_model(variant))
        assert axes["logit_scale"] == {}
        assert axes["text_head.proj.weight"] == {0: ("embed", "out"), 1: ("text.residual", "in")}
        assert axes["vision_blocks.0.mlp.fc1.weight"] == {0: ("vision.hidden", "out"), 1: ("vision.residual", "in")}


def test_an_undeclared_parameter_is_refused():
    model = create_model(tiny_config())
    model.text_head.extra = torch.nn.Parameter(torch.zeros(3))
    with pytest.raises(UndeclaredParameterError, match=r"text_head\.extra"):
        parameter_axes(model)


def test_towers_of_their_own_shape_are_stored_in_one_canonical_form():
    vit_b_32 = ModelConfig(width=512, heads=8, vision_width=768, vision_heads=12, vision_layers=12, text_layers=12,
                           patch_size=32, image_size=224, context_length=77, activation="quick_gelu")
    assert (vit_b_32.vision.width, vit_b_32.vision.heads, vit_b_32.text.width, vit_b_32.text.heads) == (768, 12, 512, 8)
    assert vit_b_32 == ModelConfig(**{**vit_b_32.to_dict(), "width": 64, "text_width": 512})  # text's is the shorthand
    assert ModelConfig.from_dict(json.loads(json.dumps(vit_b_32.to_dict()))) == vit_b_32
    agreeing = ModelConfig(width=64, vision_width=128, text_width=128)
    assert agreeing == ModelConfig(width=128) and not agreeing.towers_differ
    assert set(ModelConfig().to_dict()) == {f.name for f in dataclasses.fields(ModelConfig)} - {
        "activation", "vision_width", "vision_heads", "vision_mlp_ratio", "text_width", "text_heads", "text_mlp_ratio"}
    with pytest.raises(ConfigError, match="vision_width 100 is not divisible by vision_heads 3"):
        ModelConfig(vision_width=100, vision_heads=3)
    with pytest.raises(ConfigError, match="shared_layers=1 needs towers of one shape"):
        ModelConfig(shared_layers=1, vision_width=256)
    with pytest.raises(ConfigError, match="activation must be one of"):
        ModelConfig(activation="relu")


def test_each_tower_is_built_at_its_own_width_and_quick_gelu_is_x_sigmoid_1702x():
    config = tiny_config(shared_layers=0, vision_width=48, vision_heads=3, activation="quick_gelu")
    model = create_model(config)
    assert model.vision_blocks[0].attn.qkv.weight.shape == (3 * 48, 48)
    assert model.text_blocks[0].mlp.fc1.weight.shape == (64, 32) and model.image_head.proj.weight.shape == (16, 48)
    x = torch.linspace(-4, 4, 9)
    torch.testing.assert_close(model.vision_blocks[0].mlp.act(x), x * torch.sigmoid(1.702 * x))
    images, tokens = torch.randn(2, 3, 16, 16), torch.randint(1, 300, (2, 12))
    assert model(images, tokens)[0].shape == (2, 16) == model(images, tokens)[1].shape
