"""Growth operators: function preservation, moments, PIM, symmetry breaking, the CLI."""

import json

import pytest
import torch
import torch.nn.functional as F

from conftest import ARCHITECTURES, tiny_config
from growclip.cli import main
from growclip.growth import GrowthError, GrowthState, grow, grow_state, grown_config, is_exact, parse_op
from growclip.growth.width import width_maps
from growclip.model import create_model
from growclip.model.loss import clip_loss
from growclip.train.optim import make_optimizer

EXACT = [["width=64"], ["width=96,heads=scale"], ["width=64,units=fresh"], ["width=96,heads=scale,units=fresh"],
         ["mlp_ratio=3"], ["embed_dim=24"], ["vision_layers+1"],
         ["vision_layers+2,at=0"], ["text_layers+1,at=0"], ["shared_layers+2"], ["shared_layers+1,at=0"],
         ["width=64", "shared_layers+2", "mlp_ratio=4", "embed_dim=32"]]
NOT_EXACT = [["width=48"], ["width=48,units=fresh"], ["heads=4"],
             ["share"], ["vision_layers+1,init=copy"], ["share,merge=text", "heads=8"]]


# towers of their own shape, as released CLIPs have (ViT-B-32: 768 / 512), with OpenAI's QuickGELU
TOWERED = {"plain": dict(), "conv-branch": dict(stem="conv", parallel_branch=True)}
TOWER_EXACT = [["vision_width=96"], ["vision_width=96,units=fresh"], ["text_width=64"],
               ["vision_width=144,heads=scale"], ["vision_mlp_ratio=6"],
               ["text_mlp_ratio=3"], ["vision_layers+1"], ["text_layers+1,at=0"], ["embed_dim=40"],
               ["vision_width=96", "text_width=64", "text_layers+1", "vision_mlp_ratio=3"]]


def towered_config(**overrides):
    return tiny_config(shared_layers=0, vision_layers=2, text_layers=2, vision_width=48, vision_heads=3,
                       activation="quick_gelu", **overrides)


def inputs(config, batch=6):
    generator = torch.Generator().manual_seed(1)
    images = torch.randn(batch, 3, config.image_size, config.image_size, generator=generator)
    tokens = torch.randint(3, config.vocab_size, (batch, config.context_length), generator=generator)
    tokens[:, -3:] = 0
    return images, tokens


def trained(config, steps=3):
    """A model and optimizer with a few steps behind them, so moments and weights are not at init."""
    model = create_model(config, seed=2)
    optimizer = make_optimizer(model, 1e-2, 0.1)
    for step in range(steps):
        optimizer.zero_grad()
        clip_loss(*model(*inputs(config, 8 + step))).backward()
        optimizer.step()
    return model, optimizer


@pytest.mark.parametrize("ops", EXACT, ids=" + ".join)
def test_exact_operators_preserve_embeddings_and_loss(architecture, ops):
    model = trained(architecture)[0].eval()
    assert is_exact(architecture, ops)
    grown = grow(model, ops)
    assert grown.config == grown_config(architecture, ops) and not grown.training
    assert_same_function(model, grown)


def assert_same_function(model, grown):
    """Embeddings (up to appended zero dimensions) and loss as before growth."""
    images, tokens = inputs(model.config)
    with torch.no_grad():
        before, after = model(images, tokens), grown(images, tokens)
    width = after[0].shape[1]  # embed_dim growth appends zero dimensions
    for old, new in zip(before[:2], after[:2]):
        torch.testing.assert_close(F.pad(old, (0, width - old.shape[1])), new, atol=1e-5, rtol=0)
    torch.testing.assert_close(clip_loss(*before), clip_loss(*after), atol=1e-5, rtol=0)


@pytest.mark.parametrize("variant", TOWERED)
@pytest.mark.parametrize("ops", TOWER_EXACT, ids=" + ".join)
def test_a_tower_grows_alone_exactly_and_leaves_the_other_as_it_was(variant, ops):
    config = towered_config(**TOWERED[variant])
    model, optimizer = trained(config)
    assert is_exact(config, ops)
    state = GrowthState.capture(model.eval(), optimizer)
    grown = grow_state(state, ops)
    assert grown.config == grown_config(config, ops)
    assert_same_function(model, grown.build_model().eval())
    if len(ops) == 1 and ops[0].startswith(("vision_width", "text_width", "vision_mlp", "text_mlp")):
        other = "text_" if ops[0].startswith("vision") else "vision_"
        for name, tensor in state.weights.items():  # the other tower, weights and moments, as it was
            if name.startswith(other):
                assert torch.equal(grown.weights[name], tensor), name
                if name in state.moments:
                    assert torch.equal(grown.moments[name]["exp_avg"], state.moments[name]["exp_avg"]), name


def test_tower_operators_are_refused_where_the_towers_must_agree_and_towers_that_meet_can_share():
    towered = towered_config()
    for ops, message in ((["width=64"], "towers have shapes of their own"), (["heads=4"], "vision_heads or text_heads"),
                         (["shared_layers+1"], "needs towers of one shape"), (["share"], "needs towers of one shape")):
        with pytest.raises(GrowthError, match=message):
            grown_config(towered, ops)
    with pytest.raises(GrowthError, match="a shared encoder needs towers of one shape"):
        grown_config(tiny_config(), ["vision_width=64"])
    met = grown_config(towered, ["text_width=48", "text_heads=3"])  # the text tower reaches the vision tower's shape
    assert not met.towers_differ and (met.width, met.heads) == (48, 3)
    assert grown_config(met, ["shared_layers+1"]).shared_layers == 1


@pytest.mark.parametrize("ops", NOT_EXACT, ids=" + ".join)
def test_other_operators_say_so_and_still_build_the_grown_model(ops):
    config = tiny_config(vision_layers=2, text_layers=2, shared_layers=1, parallel_branch=True)
    assert not is_exact(config, ops)
    grown = grow(trained(config)[0], ops)
    assert grown.config == grown_config(config, ops)
    assert torch.isfinite(clip_loss(*grown(*inputs(config)))).all()


def test_share_keeps_each_modality_its_layernorms_and_averages_the_rest():
    config = tiny_config(vision_layers=2, text_layers=2, shared_layers=1)
    model = trained(config)[0]
    old = model.state_dict()
    new = grow(model, ["share"]).state_dict()
    assert torch.equal(new["shared_blocks.0.ln_1.image.weight"], old["vision_blocks.1.ln_1.image.weight"])
    assert torch.equal(new["shared_blocks.0.ln_2.text.bias"], old["text_blocks.1.ln_2.text.bias"])
    expected = (old["vision_blocks.1.mlp.fc1.weight"] + old["text_blocks.1.mlp.fc1.weight"]) / 2
    torch.testing.assert_close(new["shared_blocks.0.mlp.fc1.weight"], expected)
    assert torch.equal(new["shared_blocks.1.attn.qkv.weight"], old["shared_blocks.0.attn.qkv.weight"])


def test_width_moments_follow_the_gradients_of_the_copies():
    config = tiny_config(vision_layers=1, text_layers=1, shared_layers=0)
    model, optimizer = trained(config)
    state = GrowthState.capture(model, optimizer)
    grown = grow_state(state, ["width=64"])
    name = "text_blocks.0.mlp.fc1.weight"  # rows: hidden units (2 copies each), columns: residual (read)
    old, new = state.moments[name], grown.moments[name]
    maps = width_maps(config, grown.config, "text")
    rows, columns = maps["text.hidden"].index, maps["text.residual"].index
    assert sorted(rows.tolist()) == sorted(2 * list(range(config.mlp_hidden)))
    torch.testing.assert_close(new["exp_avg"], old["exp_avg"][rows][:, columns] / 2)
    torch.testing.assert_close(new["exp_avg_sq"], old["exp_avg_sq"][rows][:, columns] / 4)
    assert grown.step == state.step == 3 and int(new["step"]) == 3
    name = "text_blocks.0.attn.qkv.weight"  # query rows are scaled by 1/sqrt(2), so their gradient by sqrt(2)
    queries = maps["text.qkv"].index[:64]
    expected = state.moments[name]["exp_avg"][queries][:, columns] / 2 * 2**0.5
    torch.testing.assert_close(grown.moments[name]["exp_avg"][:64], expected)


@pytest.mark.parametrize("arch", ["clip-branch", "shared"])
def test_identity_inserted_blocks_leave_the_old_parameters_update_unchanged(arch):
    """One AdamW step after inserting identity blocks (zero moments, step count kept): every old
    parameter moves exactly as it would have without growth."""
    config = tiny_config(**ARCHITECTURES[arch])
    model, optimizer = trained(config)
    state = GrowthState.capture(model, optimizer)
    grown_state = grow_state(state, ["vision_layers+1", "shared_layers+1", "text_layers+1"])
    grown = grown_state.build_model()
    grown_optimizer = make_optimizer(grown, 1e-2, 0.1)
    grown_state.load_moments(grown_optimizer, grown)
    batch = inputs(config, 10)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    for net, opt in ((model, optimizer), (grown, grown_optimizer)):
        opt.zero_grad()
        clip_loss(*net(*batch)).backward()
        opt.step()
    new_params = dict(grown.named_parameters())
    for name, p in model.named_parameters():
        torch.testing.assert_close(new_params[name] - before[name], p.detach() - before[name], atol=1e-7, rtol=0)
    inserted = new_params[f"text_blocks.{config.text_layers}.mlp.fc2.weight"]  # the new top block
    assert inserted.abs().sum() > 0  # the new block started at zero and is now learning
    assert int(grown_optimizer.state[inserted]["step"]) == 1  # its Adam state started afresh


def test_new_units_start_with_no_first_moment_and_the_mean_second_moment():
    """New MLP units share their tensor's step count (no bias correction left), so zero moments
    would give them outsized first updates; they take the tensor's mean second moment instead."""
    config = tiny_config(vision_layers=1, text_layers=1, shared_layers=0)
    model, optimizer = trained(config)
    state = GrowthState.capture(model, optimizer)
    grown = grow_state(state, ["mlp_ratio=4"])
    hidden = config.mlp_hidden
    grown_hidden = grown.config.mlp_hidden
    for name, dim in (("text_blocks.0.mlp.fc1.weight", 0), ("text_blocks.0.mlp.fc2.weight", 1)):  # units on dim
        old, new = state.moments[name], grown.moments[name]
        for stat in ("exp_avg", "exp_avg_sq"):
            assert torch.equal(new[stat].narrow(dim, 0, hidden), old[stat])
        assert torch.all(new["exp_avg"].narrow(dim, hidden, grown_hidden - hidden) == 0)
        added = new["exp_avg_sq"].narrow(dim, hidden, grown_hidden - hidden)
        torch.testing.assert_close(added, torch.full_like(added, old["exp_avg_sq"].mean().item()))


def test_pim_interpolates_between_inheritance_and_a_fresh_model():
    config = tiny_config(vision_layers=1, text_layers=1, shared_layers=1)
    model, optimizer = trained(config)
    state = GrowthState.capture(model, optimizer)
    ops = ["width=64", "shared_layers+1"]
    inherited, fresh, half = (grow_state(state, ops, m, seed=5) for m in (1.0, 0.0, 0.5))
    fresh_init = create_model(inherited.config, seed=5).state_dict()
    for name, weight in inherited.weights.items():
        assert torch.equal(fresh.weights[name], fresh_init[name]), name
        if weight.is_floating_point():
            torch.testing.assert_close(half.weights[name], (weight + fresh_init[name]) / 2)
    name = "shared_blocks.0.attn.qkv.weight"
    assert not fresh.moments and fresh.step == 0  # a fresh optimizer
    torch.testing.assert_close(half.moments[name]["exp_avg_sq"], inherited.moments[name]["exp_avg_sq"] / 4)


def trained_on(state, config, steps=10):
    """The grown model of `state` after `steps` AdamW steps from its inherited moments."""
    grown = state.build_model()
    grown_optimizer = make_optimizer(grown, 1e-2, 0.1)
    state.load_moments(grown_optimizer, grown)
    for step in range(steps):
        grown_optimizer.zero_grad()
        clip_loss(*grown(*inputs(config, 8 + step))).backward()
        grown_optimizer.step()
    return grown


def test_pim_zero_trains_as_a_fresh_model_with_a_fresh_optimizer():
    """A kept step count with zeroed moments would turn Adam's bias correction off: the first
    updates several times a fresh start's."""
    config = tiny_config(vision_layers=1, text_layers=1, shared_layers=1)
    model, optimizer = trained(config, steps=20)
    restarted = grow_state(GrowthState.capture(model, optimizer), ["width=64"], 0.0, seed=5)
    fresh = GrowthState.capture(create_model(restarted.config, seed=5))
    expected = trained_on(fresh, config).state_dict()
    for name, weight in trained_on(restarted, config).state_dict().items():
        torch.testing.assert_close(weight, expected[name], rtol=0, atol=0, msg=name)


def test_duplicated_units_stay_symmetric_with_full_inheritance_and_diverge_with_pim():
    config = tiny_config(vision_layers=1, text_layers=1, shared_layers=0)
    model, optimizer = trained(config)
    spread = {}
    for momentum in (1.0, 0.5):
        state = grow_state(GrowthState.capture(model, optimizer), ["width=64"], momentum)
        grown = trained_on(state, config)
        rows = grown.text_blocks[0].mlp.fc1.weight.detach()  # hidden unit i and its copy i + hidden
        spread[momentum] = (rows[: config.mlp_hidden] - rows[config.mlp_hidden :]).norm() / rows.norm()
    assert spread[1.0] < 1e-5 < 1e-2 < spread[0.5]


def test_fresh_units_break_the_residual_copies_symmetry_with_full_inheritance():
    """Widening with fresh units keeps the function (tested above) and the old units, yet the
    residual feature copies it makes come apart in training, where copied units keep them equal."""
    config = tiny_config(vision_layers=1, text_layers=1, shared_layers=0)
    model, optimizer = trained(config)
    spread = {}
    for units in ("copy", "fresh"):
        state = grow_state(GrowthState.capture(model, optimizer), [f"width=64,units={units}"], momentum=1.0)
        grown = trained_on(state, config)
        copied = width_maps(config, state.config, "text")["text.residual"].index  # old feature of each new one
        first, second = (torch.nonzero(copied == feature).flatten() for feature in (0, 1))
        rows = grown.text_blocks[0].attn.proj.weight.detach()  # rows: residual features the MLP then reads
        spread[units] = (rows[first[0]] - rows[first[1]]).norm() / rows[second].norm()
    assert spread["copy"] < 1e-6 < 1e-4 < spread["fresh"]  # apart from the second step: new outputs start at zero
    hidden = config.mlp_hidden
    new_rows = state.weights["text_blocks.0.mlp.fc1.weight"][hidden:]
    assert new_rows.abs().sum() > 0 and not state.weights["text_blocks.0.mlp.fc2.weight"][:, hidden:].any()


def test_operator_spelling_and_errors():
    assert parse_op("shared_layers+2,at=0,init=copy").spec() == "shared_layers+2,at=0,init=copy"
    assert parse_op("width=256,heads=scale").spec() == "width=256,heads=scale"
    assert parse_op("width=256,units=fresh").spec() == "width=256,units=fresh"
    for spec, message in (("depth+1", "unknown growth operator"), ("width+1", "NAME=VALUE"),
                          ("vision_layers=3", "NAME\\+COUNT"), ("width=64,at=1", "unknown option"),
                          ("mlp_ratio=abc", "could not convert"),
                          ("width=64,units=new", "units= must be one of copy, fresh")):
        with pytest.raises(GrowthError, match=message):
            parse_op(spec)
    config = tiny_config()
    with pytest.raises(GrowthError, match="width grows only"):
        grown_config(config, ["width=16"])
    with pytest.raises(GrowthError, match=r"insert position 5 is outside 0\.\.1"):
        grown_config(config, ["text_layers+1,at=5"])


@pytest.mark.slow
@pytest.mark.parametrize("momentum", ["0.9", "0"])  # 0: a fresh optimizer, no moments saved
def test_grow_cli_writes_a_checkpoint_that_eval_and_resume_accept(tmp_path, capsys, momentum):
    config = tiny_config(vision_layers=1, text_layers=1, shared_layers=0, image_size=32, patch_size=8,
                         vocab_size=600, context_length=32)
    (tmp_path / "model.json").write_text(json.dumps(config.to_dict()))
    common = ["--batch-size", "8", "--stage-sizes", "64,64,64,64", "--eval-images-per-class", "4",
              "--retrieval-images", "16", "--no-progress"]
    assert main(["train", "--model", str(tmp_path / "model.json"), "--samples", "32",
                 "--output", str(tmp_path / "run"), *common]) == 0
    grown = tmp_path / "grown" / "step_00000004"
    assert main(["grow", "--checkpoint", str(tmp_path / "run"), "--op", "width=64", "--op", "shared_layers+1",
                 "--momentum", momentum, "--output", str(grown)]) == 0
    out = capsys.readouterr().out
    assert "shared_layers=1" in out and f"exact, PIM m={momentum}" in out
    state = json.loads((grown / "state.json").read_text())
    assert state["growth"]["steps"][0]["ops"] == ["width=64", "shared_layers+1"] and state["step"] == 4
    assert main(["eval", "--checkpoint", str(grown), "--images-per-class", "4", "--retrieval-images", "16"]) == 0
    assert main(["train", "--resume", str(grown), "--samples", "48", "--output", str(tmp_path / "on"), *common]) == 0
    trained_on = tmp_path / "on" / "checkpoints" / "step_00000006"
    assert json.loads((trained_on / "config.json").read_text())["width"] == 64
    assert json.loads((trained_on / "state.json").read_text())["growth"] == state["growth"]  # merge reads it
