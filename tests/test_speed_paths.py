"""The paths that make training fast: fp16 with its loss scaler, torch.compile (also after growth),
the data-wait warning and the per-chunk speed of a growing run. They run on the CPU here; on CUDA
the same code adds pinned memory and fused AdamW."""

import logging
import math

import pytest
import torch

from conftest import tiny_config
from growclip.growth import GrowthState, grow_state
from growclip.model import PAD_ID, create_model
from growclip.model.layers import attention_by_matmuls, cpu_bf16_autocast
from growclip.model.loss import clip_loss
from growclip.runtime import autocast, grad_scaler, resolve_device
from growclip.train import TrainConfig, train
from growclip.train.metrics import read_metrics
from growclip.train.optim import make_optimizer, warmup_cosine
from growclip.train.pace import Pace, PaceWindow
from growclip.train.step import train_step


def batch(config, size=8, seed=0):
    generator = torch.Generator().manual_seed(seed)
    images = torch.randn(size, 3, config.image_size, config.image_size, generator=generator)
    tokens = torch.randint(3, config.vocab_size, (size, config.context_length), generator=generator)
    tokens[:, 6:] = PAD_ID
    return images, tokens


def test_autocast_dtype_follows_the_precision():
    device = resolve_device("cpu")
    for precision, dtype in (("bf16", torch.bfloat16), ("fp16", torch.float16)):
        with autocast(device, precision):
            assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == dtype
    with autocast(device, "fp32"):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32
    assert grad_scaler(device, "fp16").is_enabled()
    assert not grad_scaler(device, "bf16").is_enabled() and not grad_scaler(device, "fp32").is_enabled()


def test_fp16_steps_learn_and_an_overflowing_scale_skips_the_update_without_counting_as_non_finite():
    config = tiny_config()
    model = create_model(config, seed=0)
    optimizer, device = make_optimizer(model, 1e-3, 0.1), torch.device("cpu")
    scheduler = warmup_cosine(optimizer, 1, 100)
    scaler = torch.amp.GradScaler(device.type, init_scale=2.0**40)  # the first step's gradients overflow
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    data = [batch(config)]
    loss = train_step(model, data, optimizer, scheduler, "fp16", 1.0, scaler=scaler)
    assert math.isfinite(loss)  # the loss was fine: the scaler, not the run, handles the overflow
    assert all(torch.equal(before[n], p) for n, p in model.named_parameters())  # update skipped
    assert scaler.get_scale() < 2.0**40  # and the scale lowered
    losses = [train_step(model, data, optimizer, scheduler, "fp16", 1.0, scaler=scaler) for _ in range(80)]
    assert losses[-1] < 0.5 * losses[0]


@pytest.mark.slow  # about a minute of compilation on 2 cores
def test_a_compiled_model_gives_the_eager_loss_also_after_growth():
    config = tiny_config(vision_layers=2, text_layers=2, shared_layers=0)
    model = create_model(config, seed=0)
    grown = grow_state(GrowthState.capture(model), ["width=64", "shared_layers+1"], momentum=0.9).build_model()
    for each in (model, grown):
        images, tokens = batch(each.config)
        eager = clip_loss(*each(images, tokens))
        compiled = clip_loss(*torch.compile(each)(images, tokens))
        torch.testing.assert_close(compiled, eager, atol=1e-5, rtol=1e-5)


def test_a_grown_model_is_laid_out_as_one_built_fresh():
    """A grown model must not be slower per FLOP than the same architecture built fresh: its
    tensors have the fresh model's shapes, strides and dtypes (no views left over from slicing)."""
    model = create_model(tiny_config(), seed=0)
    grown = grow_state(GrowthState.capture(model), ["width=48", "mlp_ratio=3", "vision_layers+1"]).build_model()
    fresh = create_model(grown.config, seed=1)
    for (name, a), (_, b) in zip(grown.named_parameters(), fresh.named_parameters(), strict=True):
        assert (a.shape, a.stride(), a.dtype, a.is_contiguous()) == (b.shape, b.stride(), b.dtype, True), name


def test_an_unknown_precision_is_refused():
    with pytest.raises(ValueError, match="precision"):
        TrainConfig(precision="fp8")


def test_a_loader_bound_run_is_warned_once_with_the_flag_that_helps(caplog):
    """Two windows of 10 s that waited 9 s for batches, then one that did not: one warning, at 90%."""
    ticks = iter(range(0, 100, 10))  # each window lasts 10 s
    window = PaceWindow(step_samples=16, workers=0, clock=lambda: next(ticks))
    with caplog.at_level(logging.WARNING, logger="growclip.train.pace"):
        paces = []
        for waited in (9.0, 9.0, 0.0):
            window.stepped(waited / 2)
            window.stepped(waited / 2)
            paces.append(window.close())
    assert paces[0] == Pace(samples_per_s=3.2, data_wait=0.9) and paces[2].data_wait == 0.0
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "90%" in warnings[0] and "raise --workers (now 0)" in warnings[0]
    assert window.speeds == [3.2, 3.2, 3.2]


def test_a_run_logs_its_pace_in_every_window(tmp_path):
    tiny_config(shared_layers=0).to_json(tmp_path / "tiny.json")
    config = TrainConfig(model=str(tmp_path / "tiny.json"), stages=(0,), stage_sizes=(64, 64, 64, 64),
                         batch_size=16, samples=96, log_every=2, output=str(tmp_path / "run"), progress=False,
                         eval_images_per_class=2, retrieval_images=16)
    train(config)
    windows = [r for r in read_metrics(tmp_path / "run" / "metrics.jsonl") if "samples_per_s" in r]
    assert [r["step"] for r in windows] == [2, 4, 6]
    assert all(r["samples_per_s"] > 0 and 0 <= r["data_wait"] < 1 for r in windows)


@pytest.mark.parametrize("causal", [False, True])
def test_attention_by_matmuls_equals_sdpa(causal):
    q, k, v = (torch.randn(2, 3, 7, 8) for _ in range(3))
    expected = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal)
    torch.testing.assert_close(attention_by_matmuls(q, k, v, causal), expected, atol=1e-5, rtol=1e-5)


def test_bf16_autocast_on_cpu_takes_the_written_out_attention_with_the_same_result():
    x = torch.randn(2, 5, 8)
    assert not cpu_bf16_autocast(x)
    with autocast(torch.device("cpu"), "bf16"):
        assert cpu_bf16_autocast(x)
    model = create_model(tiny_config(), seed=0)
    images, tokens = batch(model.config)
    with torch.no_grad():
        reference = model(images, tokens)[:2]
        with autocast(torch.device("cpu"), "bf16"):
            written_out = model(images, tokens)[:2]
    for a, b in zip(written_out, reference):
        torch.testing.assert_close(a.float(), b, atol=0.05, rtol=0.05)
