"""A growing run: data arrives in chunks; before each chunk the model may grow, then it trains on.

Every policy runs through this one loop, so comparisons differ only in the decision:
  - auto: successive-halving search over the growth space (operators + PIM), scored on held-out
    pairs of the new chunk and of the old ones (forgetting) with a cost penalty; the winner goes
    on from its proxy training;
  - fixed: never grows; schedule: grows by given operators before given chunks;
  - scratch: searches like auto, then retrains the chosen architecture from zero on all data so far.
The run checkpoints after every search round, during training (`--save-every`) and after every
chunk; `--resume latest` continues from any of them and ends where an uninterrupted run ends.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import asdict
from pathlib import Path
from statistics import mean
from typing import Any

import torch

from growclip.data.chunks import CORPUS_PREFIX, ChunkData, ChunkStream, open_chunk
from growclip.data.corpus import NUM_STAGES, EmbeddedCorpus
from growclip.data.evalsets import RetrievalSet
from growclip.data.sources import PairSources, join_sources
from growclip.data.stream import TrainStream
from growclip.data.tokenizer import Tokenizer
from growclip.data.transforms import normalize
from growclip.eval.encode import encode_texts
from growclip.eval.suite import evaluate
from growclip.growth import GrowthState, grow_state, grown_config
from growclip.growth.search import SuccessiveHalving
from growclip.growth.space import Candidate, growth_space, params_budget
from growclip.model.clip import CLIP
from growclip.model.config import ModelConfig
from growclip.model.cost import model_cost, train_flops_per_sample
from growclip.model.factory import create_model, load_config
from growclip.runtime import autocast, resolve_device, seed_everything, warn_if_slow_precision
from growclip.train.checkpoint import (
    checkpoint_path,
    load_checkpoint,
    load_extra_tensors,
    load_trainer_tensors,
    prune_checkpoints,
    save_checkpoint,
)
from growclip.train.config import TrainConfig
from growclip.train.inputs import RunInputs, evaluation_sets, make_tokenizer, reader_options, train_transform
from growclip.train.loop import Trainer, resume_checkpoint
from growclip.train.loss import clip_loss
from growclip.train.metrics import MetricsLog
from growclip.train.optim import make_optimizer
from growclip.train.state import rng_state, set_rng_state
from growclip.train.step import train_step

MIN_PROXY_STEPS = 8  # shorter proxies rank contenders by noise
CORPUS_STREAM = tuple(f"{CORPUS_PREFIX}{stage}" for stage in range(NUM_STAGES))


def chunk_specs(config: TrainConfig) -> tuple[str, ...]:
    """`corpus` in the chunk list stands for every corpus stage, one chunk each."""
    specs = config.chunks or ()
    return tuple(s for spec in specs for s in (CORPUS_STREAM if spec == "corpus" else (spec,)))


@torch.no_grad()
def heldout_loss(model: CLIP, tokenizer: Tokenizer, heldout: RetrievalSet, precision: str, batch: int = 128) -> float:
    """Mean contrastive loss over batches of held-out pairs (the last partial batch joins the previous)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    images = torch.from_numpy(heldout.images)
    losses = []
    starts = list(range(0, len(images) - batch + 1, batch)) or [0]
    for index, start in enumerate(starts):
        stop = len(images) if index == len(starts) - 1 else start + batch
        with autocast(device, precision):
            image_features = model.encode_image(normalize(images[start:stop]).to(device))
        text_features = encode_texts(model, tokenizer, heldout.texts[start:stop], precision=precision).to(device)
        losses.append(clip_loss(image_features.float(), text_features, model.scale()).item())
    model.train(was_training)
    return mean(losses)


class GrowingRun:
    def __init__(self, config: TrainConfig) -> None:
        self.config, self.output = config, Path(config.output)
        self.output.mkdir(parents=True, exist_ok=True)
        (self.output / "train_config.json").write_text(json.dumps(config.to_dict(), indent=2) + "\n")
        seed_everything(config.seed)
        self.device = resolve_device(config.device)
        warn_if_slow_precision(self.device, config.precision)
        self.stream = ChunkStream(chunk_specs(config), config.watch)
        self.step_samples = config.batch_size * config.accum_freq
        self.checkpoint = resume_checkpoint(config)
        if self.checkpoint is not None:
            model, self.tokenizer, self.saved = load_checkpoint(self.checkpoint)
            tensors = load_trainer_tensors(self.checkpoint)
            self.current = GrowthState.from_tensors(model, tensors)
            self.progress = self.saved["stream"]
            set_rng_state(self.saved["rng"], tensors)
        else:
            self.current = GrowthState.capture(create_model(load_config(config.model), seed=config.seed))
            self.saved, self.progress = {}, {"chunk": 0, "phase": "decide", "global_step": 0, "history": []}
        image_size = self.current.config.image_size
        self.corpus = EmbeddedCorpus(config.corpus_seed, image_size, config.stage_sizes)
        self.chunks: list[ChunkData] = []
        self.counts: dict[int, int] = {}
        uses_corpus = any(s.startswith(CORPUS_PREFIX) for s in self.stream.known())
        self.tasks, self.retrievals, _ = evaluation_sets(config, image_size, self.corpus if uses_corpus else None)
        if self.checkpoint is None:
            self.tokenizer = self._tokenizer(uses_corpus)

    def _tokenizer(self, uses_corpus: bool) -> Tokenizer:
        """The corpus's vocabulary for corpus streams; otherwise `--tokenizer` or the first chunk's captions."""
        config, model_config = self.config, self.current.config
        if uses_corpus and not config.tokenizer:
            return Tokenizer.train(self.corpus.tokenizer_captions(), model_config.vocab_size,
                                   model_config.context_length)
        return make_tokenizer(config, model_config, self._chunk(0).sources)

    # -- data ---------------------------------------------------------------------------------

    def _chunk(self, index: int) -> ChunkData:
        while len(self.chunks) <= index:
            spec = self.stream.get(len(self.chunks))
            self.chunks.append(open_chunk(spec, self.corpus, reader_options(self.config), self.config.heldout,
                                          self.config.seed + len(self.chunks)))
        return self.chunks[index]

    def _records(self, index: int) -> int:
        """Training pairs in chunk `index`, counted once (shards are counted from their tar headers)."""
        if index not in self.counts:
            count = self._chunk(index).sources.count()
            if count is None:
                raise ValueError(f"{self._chunk(index).name}: size unknown (remote shards); give --chunk-samples")
            self.counts[index] = count
        return self.counts[index]

    def _train_data(self, index: int) -> PairSources:
        """Cumulative (every chunk so far), or the new chunk plus `replay` x its size of old pairs."""
        new = self._chunk(index).sources
        if index == 0:
            return new
        old = join_sources([self._chunk(i).sources for i in range(index)])
        if self.config.replay is None:
            return join_sources([old, new])
        fraction = self.config.replay * self._records(index) / sum(self._records(i) for i in range(index))
        return join_sources([new, old.sample(fraction, self.config.seed + index)])

    def _chunk_steps(self, index: int) -> int:
        samples = self.config.chunk_samples or int(self.config.epochs * self._records(index))
        return max(1, samples // self.step_samples)

    # -- decisions ----------------------------------------------------------------------------

    def _decide(self, index: int) -> None:
        config, progress = self.config, self.progress
        before = self.current.config
        if index == 0 or config.growth == "fixed":
            decision = {"ops": [], "momentum": 1.0, "why": "first chunk" if index == 0 else "fixed policy"}
        elif config.growth == "schedule":
            ops = [item.split(":", 1)[1] for item in config.grow_schedule if int(item.split(":", 1)[0]) == index]
            decision = {"ops": ops, "momentum": config.momentum, "why": "schedule"}
            self.current = grow_state(self.current, ops, config.momentum, config.seed + index)
        else:
            decision = self._search(index)
        if config.growth == "scratch" and index > 0:
            self.current = GrowthState.capture(create_model(self.current.config, seed=config.seed + index))
        decision |= {"chunk": index, "from": asdict(before), "to": asdict(self.current.config)}
        progress["global_step"] += decision.get("proxy_steps", 0)  # the winner trained them
        progress.update(phase="train", decision=decision)
        progress.pop("search", None)
        self.log.write({**self._where(), "chunk": index, "decision": _label(decision), "why": decision["why"],
                        "left_out": decision.get("left_out", []), "params": model_cost(self.current.config).params,
                        "search_fraction": decision.get("search_fraction", 0.0)}, "growth")

    def _search(self, index: int) -> dict[str, Any]:
        config = self.config
        pairs_seen = sum(self._records(i) for i in range(index + 1))
        candidates = growth_space(self.current.config, params_budget(pairs_seen, config.params_per_pair),
                                  tuple(config.search_momenta))
        if len(candidates) == 1:
            return {"ops": [], "momentum": 1.0, "why": f"nothing else fits {config.params_per_pair:g} params/pair",
                    "search_fraction": 0.0, "candidates": []}
        if "search" in self.progress:  # resumed in the middle of a search
            search = SuccessiveHalving.from_state(self.progress["search"])
            states = self._load_contenders(search)
        else:
            search = SuccessiveHalving(*self._search_plan(index, candidates))
            states = {i: grow_state(self.current, c.candidate.ops, c.candidate.momentum, config.seed + index)
                      for i, c in enumerate(search.contenders)}
        while not search.done:
            search.run_round(lambda i, contender, steps: self._proxy(index, search.round, i, states, steps))
            self._save_search(index, search, states)
        self.current = states[search.contenders.index(search.winner)]
        searched = {c.candidate for c in search.contenders}
        return self._search_record(index, search) | {"left_out": [c.label for c in candidates if c not in searched]}

    def _search_plan(self, index: int, candidates: list[Candidate]) -> tuple[list[Candidate], int]:
        """The candidates the search can afford and the proxy steps of its first round.

        Successive halving spends about the same in every round, so the whole search costs about
        `search_fraction` of the chunk's training; when that cannot give every candidate
        MIN_PROXY_STEPS, the most expensive candidates are left out (the space lists them last)."""
        base = train_flops_per_sample(self.current.config)
        budget = self.config.search_fraction * self._chunk_steps(index)  # in steps of the current model
        while True:
            rounds = math.ceil(math.log2(len(candidates)))
            units = sum(math.ceil(len(candidates) / 2**r) * 2**r for r in range(rounds))
            ratio = mean(train_flops_per_sample(grown_config(self.current.config, c.ops)) / base for c in candidates)
            steps = int(budget / (units * ratio))
            if steps >= MIN_PROXY_STEPS or len(candidates) == 2:
                return candidates, max(MIN_PROXY_STEPS, steps)
            candidates = candidates[:-1]

    def _search_record(self, index: int, search: SuccessiveHalving) -> dict[str, Any]:
        """The decision: the winner, why, and the search's overhead (every proxy step but the
        winner's, which count as the chunk's training unless scratch retrains, plus the scoring)."""
        winner = search.winner
        proxy_steps = 0 if self.config.growth == "scratch" else sum(r["steps"] for r in winner.rounds)
        spent = sum(r["steps"] * self.step_samples * r["train_flops"] + r["score_flops"]
                    for c in search.contenders for r in c.rounds)
        overhead = spent - proxy_steps * self.step_samples * winner.rounds[-1]["train_flops"]
        train = self._chunk_steps(index) * self.step_samples * train_flops_per_sample(self.current.config)
        return {"ops": list(winner.candidate.ops), "momentum": winner.candidate.momentum, "why": _why(search),
                "proxy_steps": proxy_steps, "search_flops": overhead, "search_fraction": overhead / (overhead + train),
                "candidates": [{"label": c.candidate.label, "rounds": c.rounds, "alive": c.alive}
                               for c in search.contenders]}

    def _proxy(self, index: int, round_: int, which: int, states: dict[int, GrowthState], steps: int
               ) -> dict[str, float]:
        """Train contender `which` `steps` more steps on this round's batches (the same for every
        contender), at the peak learning rate; score it on held-out new and old pairs."""
        config = self.config
        model = states[which].build_model().to(self.device).train()
        optimizer = make_optimizer(model, config.lr, config.wd, (config.beta1, config.beta2), config.eps)
        states[which].load_moments(optimizer, model)
        constant = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
        stream = TrainStream(self._train_data(index), self.tokenizer, train_transform(config, model.config.image_size),
                             config.batch_size, config.seed * 1000 + index * 10 + round_, config.workers)
        batches = iter(stream)
        for _ in range(steps):
            train_step(model, [next(batches) for _ in range(config.accum_freq)], optimizer, constant,
                       config.precision, config.grad_clip_norm)
        states[which] = GrowthState.capture(model, optimizer)
        new, old = self._heldout_losses(model, index)
        flops = train_flops_per_sample(model.config)
        cost = flops / train_flops_per_sample(self.current.config)
        score = (new if old is None else (new + old) / 2) + config.cost_weight * math.log2(cost)
        scored_pairs = sum(len(self._chunk(i).heldout.texts) for i in range(index + 1))
        return {"new_loss": new, "old_loss": old if old is not None else float("nan"), "cost": cost,
                "train_flops": flops, "score": score,
                "score_flops": scored_pairs * model_cost(model.config).forward_flops}

    def _heldout_losses(self, model: CLIP, index: int) -> tuple[float, float | None]:
        precision = self.config.precision
        new = heldout_loss(model, self.tokenizer, self._chunk(index).heldout, precision)
        old = [heldout_loss(model, self.tokenizer, self._chunk(i).heldout, precision) for i in range(index)]
        return new, mean(old) if old else None

    # -- checkpoints --------------------------------------------------------------------------

    def _where(self) -> dict[str, int]:
        step = self.progress["global_step"]
        return {"step": step, "samples": step * self.step_samples}

    def _save(self, extra: dict[str, dict[str, torch.Tensor]] | None = None) -> Path:
        rng_json, rng_tensors = rng_state()
        state = {"step": 0, "global_step": self.progress["global_step"], "samples": self._where()["samples"],
                 "rng": rng_json, "stream": self.progress, "train_config": self.config.to_dict()}
        path = save_checkpoint(checkpoint_path(self.output, self.progress["global_step"]),
                               self.current.build_model(), self.tokenizer, state,
                               self.current.join_moments() | rng_tensors, extra)
        prune_checkpoints(self.output, self.config.keep_checkpoints)
        return path

    def _save_search(self, index: int, search: SuccessiveHalving, states: dict[int, GrowthState]) -> None:
        alive = [i for i, c in enumerate(search.contenders) if c.alive]
        self.progress.update(phase="decide", search=search.state_dict(),
                             contender_configs={str(i): asdict(states[i].config) for i in alive})
        self._save({f"contender_{i}.safetensors": {**{f"model.{k}": v for k, v in states[i].weights.items()},
                                                   **states[i].join_moments()} for i in alive})

    def _load_contenders(self, search: SuccessiveHalving) -> dict[int, GrowthState]:
        states = {}
        for key, config in self.progress["contender_configs"].items():
            tensors = load_extra_tensors(self.checkpoint, f"contender_{key}.safetensors")
            model = create_model(ModelConfig(**config))
            model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
            states[int(key)] = GrowthState.from_tensors(model, tensors)
        return states

    # -- the run ------------------------------------------------------------------------------

    def _train(self, index: int) -> CLIP:
        config = self.config
        data = self._train_data(index)
        steps = self._train_steps(index)
        inputs = RunInputs(data, train_transform(config, self.current.config.image_size), self.tokenizer,
                           self.tasks, self.retrievals)
        model = self.current.build_model().to(self.device).train()
        trainer = Trainer(config, model, inputs, steps, self.log, base_step=self.progress["global_step"],
                          run_state=lambda: {"stream": self.progress}, warmup=min(config.warmup, steps // 5))
        if self.saved.get("step") and self.saved["stream"]["phase"] == "train":  # resumed mid-chunk
            trainer.restore(self.checkpoint, self.saved)
        else:
            self.current.load_moments(trainer.optimizer, model)
        self.saved = {}
        trainer.run()
        self.current = GrowthState.capture(model, trainer.optimizer)
        self.progress["global_step"] += steps
        return model

    def _train_steps(self, index: int) -> int:
        """The chunk's steps, less the winner's proxy steps (already trained); scratch retrains
        from zero for as long as all chunks so far."""
        if self.config.growth == "scratch":
            return sum(self._chunk_steps(i) for i in range(index + 1))
        return max(1, self._chunk_steps(index) - self.progress["decision"].get("proxy_steps", 0))

    def _compute(self, index: int, model: CLIP) -> dict[str, float]:
        """Training FLOPs of the chunk (the winner's proxy steps included) and of the search's overhead."""
        decision = self.progress["decision"]
        steps = self._train_steps(index) + decision.get("proxy_steps", 0)
        train = steps * self.step_samples * train_flops_per_sample(model.config)
        search = decision.get("search_flops", 0.0)
        before = self.progress["history"][-1]["total_tflop"] if self.progress["history"] else 0.0
        return {"train_tflop": train / 1e12, "search_tflop": search / 1e12,
                "total_tflop": before + (train + search) / 1e12}

    def _finish(self, index: int, model: CLIP) -> dict[str, Any]:
        results = evaluate(model, self.tokenizer, self.tasks, self.retrievals, self.config.precision)
        new, old = self._heldout_losses(model, index)
        decision = self.progress["decision"]
        cost = model_cost(model.config)
        record = {**self._where(), "chunk": index, "name": self._chunk(index).name, "pairs": self._records(index),
                  "architecture": asdict(model.config), "decision": _label(decision),
                  "grew": bool(decision["ops"]), "params": cost.params, "gflops_per_pair": cost.forward_flops / 1e9,
                  "search_fraction": decision.get("search_fraction", 0.0), "heldout_new_loss": new,
                  "heldout_old_loss": old, **self._compute(index, model), **results["summary"]}
        self.log.write(record, "chunk")
        self.progress["history"].append({**record, "candidates": decision.get("candidates", [])})
        self.progress.update(chunk=index + 1, phase="decide")
        self.progress.pop("decision", None)
        self._save()
        print(_chunk_line(record))
        return record

    def run(self) -> list[dict[str, Any]]:
        resume = self._where()["step"] if self.checkpoint is not None else None
        with MetricsLog(self.output / "metrics.jsonl", self.config.report_to == "tensorboard", resume) as self.log:
            if self.checkpoint is not None:
                print(f"resumed from {self.checkpoint}: chunk {self.progress['chunk']}, {self.progress['phase']}",
                      file=sys.stderr)
            index = self.progress["chunk"]
            while self.stream.get(index) is not None:
                if self.progress["phase"] == "decide":
                    self._decide(index)
                self._finish(index, self._train(index))
                index += 1
        history = self.progress["history"]
        (self.output / "stream.json").write_text(json.dumps(history, indent=2) + "\n")
        return history


def _label(decision: dict[str, Any]) -> str:
    return "keep" if not decision["ops"] else f"{' '.join(decision['ops'])} (m={decision['momentum']:g})"


def _why(search: SuccessiveHalving) -> str:
    last = max(c.rounds[-1]["round"] for c in search.contenders)
    finalists = sorted((c for c in search.contenders if c.rounds[-1]["round"] == last), key=lambda c: c.score)
    runner = f", ahead of {finalists[1].candidate.label} ({finalists[1].score:.3f})" if len(finalists) > 1 else ""
    return f"best score {finalists[0].score:.3f} after {search.round} rounds{runner}"


def _scores(record: dict[str, Any]) -> tuple[str | None, str | None]:
    """Zero-shot mean top-1 and R@1 both ways, as text; None where the run has no such evaluation."""
    zeroshot = f"{record['zeroshot_mean_top1']:.3f}" if "zeroshot_mean_top1" in record else None
    recall = (f"{record['image_to_text_R@1']:.3f}/{record['text_to_image_R@1']:.3f}"
              if "image_to_text_R@1" in record else None)
    return zeroshot, recall


def _chunk_line(record: dict[str, Any]) -> str:
    zeroshot, recall = _scores(record)
    scores = (f" zero-shot {zeroshot}" if zeroshot else "") + (f" R@1 {recall}" if recall else "")
    old = record["heldout_old_loss"]
    return (f"chunk {record['chunk']} {record['name']}: {record['decision']} -> "
            f"{ModelConfig(**record['architecture']).describe()}: {record['params'] / 1e6:.3f} M params,"
            f"{scores}, held-out loss new {record['heldout_new_loss']:.3f}" + ("" if old is None else f" old {old:.3f}")
            + f", search overhead {record['search_fraction']:.0%}, {record['total_tflop']:.1f} TFLOP so far")


def format_stream(history: list[dict[str, Any]]) -> str:
    """The run in a table, one row per chunk: what was decided, the architecture, its scores, the compute."""
    lines = [f"{'chunk':<16} {'decision':<26} {'params':>8} {'zero-shot':>9} {'R@1 I->T/T->I':>13} "
             f"{'TFLOP':>6} {'search':>6}  architecture"]
    for r in history:
        zeroshot, recall = (score or "-" for score in _scores(r))
        lines.append(f"{r['name']:<16} {r['decision']:<26} {r['params'] / 1e6:>6.3f} M {zeroshot:>9} {recall:>13} "
                     f"{r['total_tflop']:>6.1f} {r['search_fraction']:>6.0%}  "
                     f"{ModelConfig(**r['architecture']).describe()}")
    return "\n".join(lines)


def train_stream(config: TrainConfig) -> list[dict[str, Any]]:
    """A growing run over `config.chunks` or `config.watch`; -> one record per chunk."""
    return GrowingRun(config).run()
