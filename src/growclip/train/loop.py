"""The training loop: embedded corpus in, checkpoint and evaluation out."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch.utils.data import DataLoader
from tqdm import tqdm

from growclip.data.corpus import EmbeddedCorpus
from growclip.data.loader import pair_loader
from growclip.data.tokenizer import Tokenizer
from growclip.eval.suite import evaluate, format_results
from growclip.model.clip import CLIP
from growclip.model.factory import create_model, load_config
from growclip.runtime import resolve_device, seed_everything
from growclip.train.checkpoint import CHECKPOINTS, checkpoint_name, save_checkpoint
from growclip.train.config import TrainConfig
from growclip.train.metrics import MetricsLog
from growclip.train.optim import make_optimizer, warmup_cosine
from growclip.train.step import Batch, train_step


@dataclass
class TrainResult:
    checkpoint: Path
    steps: int
    samples: int
    losses: list[float]
    eval: dict[str, Any]


def _step_batches(loader: DataLoader, accum_freq: int, steps: int) -> Iterator[list[Batch]]:
    """`steps` groups of `accum_freq` micro-batches, starting a new epoch whenever one ends."""
    if len(loader) == 0:
        raise ValueError(f"the training data ({len(loader.dataset)} pairs) is smaller than one batch")

    def forever() -> Iterator[Batch]:
        while True:
            yield from loader

    batches = forever()
    for _ in range(steps):
        yield [next(batches) for _ in range(accum_freq)]


def _run_steps(model: CLIP, loader: DataLoader, config: TrainConfig, steps: int, log: MetricsLog,
               losses: list[float]) -> None:
    """Train for `steps` steps, appending each step's loss to `losses` (so an interrupted run
    still tells how far it got)."""
    optimizer = make_optimizer(model, config.lr, config.wd, (config.beta1, config.beta2), config.eps)
    scheduler = warmup_cosine(optimizer, config.warmup, steps)
    step_samples = config.batch_size * config.accum_freq
    progress = tqdm(total=steps, disable=not config.progress, desc="train", unit="step")
    window_start = time.perf_counter()
    for step, micro_batches in enumerate(_step_batches(loader, config.accum_freq, steps), start=1):
        lr = scheduler.get_last_lr()[0]
        losses.append(train_step(model, micro_batches, optimizer, scheduler, config.precision,
                                 config.grad_clip_norm))
        if step % config.log_every == 0 or step == steps:
            elapsed = time.perf_counter() - window_start
            window = step % config.log_every or config.log_every
            speed = window * step_samples / elapsed
            log.write({"step": step, "samples": step * step_samples, "loss": losses[-1], "lr": lr,
                       "logit_scale": model.scale().item(), "samples_per_s": speed})
            progress.set_postfix(loss=f"{losses[-1]:.3f}", samples_s=f"{speed:.0f}")
            window_start = time.perf_counter()
        progress.update()
    progress.close()


def train(config: TrainConfig) -> TrainResult:
    """Train a fixed architecture on the embedded corpus, save it, and evaluate it."""
    output = Path(config.output)
    output.mkdir(parents=True, exist_ok=True)
    (output / "train_config.json").write_text(json.dumps(config.to_dict(), indent=2) + "\n")
    seed_everything(config.seed)
    device = resolve_device(config.device)
    model_config = load_config(config.model)
    corpus = EmbeddedCorpus(config.corpus_seed, model_config.image_size, config.stage_sizes)
    tokenizer = Tokenizer.train(corpus.tokenizer_captions(), model_config.vocab_size, model_config.context_length)
    model = create_model(model_config, seed=config.seed).to(device)
    dataset = corpus.train_data(config.stages)
    loader = pair_loader(dataset, tokenizer, config.batch_size, config.seed, config.workers)
    step_samples = config.batch_size * config.accum_freq
    steps = max(1, (config.samples or len(dataset) * config.epochs) // step_samples)
    losses: list[float] = []

    def save(step: int) -> Path:
        state = {"step": step, "samples": step * step_samples, "train_config": config.to_dict()}
        return save_checkpoint(output / CHECKPOINTS / checkpoint_name(step), model, tokenizer, state)

    with MetricsLog(output / "metrics.jsonl") as log:
        try:
            _run_steps(model, loader, config, steps, log, losses)
        except KeyboardInterrupt:  # Ctrl-C keeps what was trained
            print(f"\ninterrupted: saved {save(len(losses))}", file=sys.stderr)
            raise
        checkpoint = save(steps)
        results = evaluate(model, tokenizer, corpus.zeroshot_tasks(config.eval_images_per_class),
                           [corpus.retrieval_set(config.retrieval_images)], config.precision)
        log.write({"step": steps, "samples": steps * step_samples, **results["summary"]})
    (output / "eval.json").write_text(json.dumps(results, indent=2) + "\n")
    print(format_results(results))
    return TrainResult(checkpoint, steps, steps * step_samples, losses, results)


__all__ = ["TrainConfig", "TrainResult", "train"]
