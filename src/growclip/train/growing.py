"""A growing run: data arrives in chunks; before each chunk a growth policy decides how the model
grows (see `growth.policy`), then it trains on, is evaluated and checkpointed. One loop serves
every policy, so comparisons differ only in the decision.

The run checkpoints after every search round, during training (`--save-every`) and after every
chunk; `--resume latest` continues from any of them and ends where an uninterrupted run ends.
"""

from __future__ import annotations

import json
import logging
import statistics
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from growclip.data.chunks import CORPUS_PREFIX, ArrivedChunks, ChunkStream
from growclip.data.corpus import NUM_STAGES, EmbeddedCorpus
from growclip.eval.heldout import new_and_old_loss
from growclip.eval.suite import evaluate_sets
from growclip.growth.decision import Decision
from growclip.growth.policy import (
    ChunkContext,
    Contenders,
    Fixed,
    GrowthPolicy,
    Schedule,
    Search,
    check_schedule,
    parse_schedule,
)
from growclip.growth.search import SuccessiveHalving
from growclip.growth.state import GrowthState
from growclip.model.clip import CLIP
from growclip.model.config import ModelConfig
from growclip.model.cost import model_cost, train_flops_per_sample
from growclip.model.factory import create_model, load_config
from growclip.runtime import derive_seed
from growclip.train.checkpoint import load_checkpoint, load_trainer_tensors
from growclip.train.config import TrainConfig
from growclip.train.distributed import (
    broadcast_object,
    check_same_on_every_rank,
    launched_size,
)
from growclip.train.faults import pause, preemption_signals
from growclip.train.inputs import (
    RunInputs,
    reader_options,
    run_evaluation_sets,
    stream_tokenizer,
    train_transform,
)
from growclip.train.loop import Trainer, metrics_log, resume_checkpoint, start_run
from growclip.train.records import ChunkRecord
from growclip.train.run_folder import STREAM_RECORDS, RunFolder
from growclip.train.run_state import Phase, StreamProgress, chunk_compute, load_contenders, save_progress
from growclip.train.state import set_rng_state

logger = logging.getLogger(__name__)
CORPUS_STREAM = tuple(f"{CORPUS_PREFIX}{stage}" for stage in range(NUM_STAGES))


def chunk_specs(config: TrainConfig) -> tuple[str, ...]:
    """`corpus` in the chunk list stands for every corpus stage, one chunk each."""
    return tuple(s for spec in config.chunks or () for s in (CORPUS_STREAM if spec == "corpus" else (spec,)))


def growth_policy(config: TrainConfig) -> GrowthPolicy:
    """The policy `config.growth` names (auto when unset), its schedule checked against the model."""
    if config.growth == "fixed":
        return Fixed()
    if config.growth == "schedule":
        schedule = parse_schedule(config.grow_schedule)
        check_schedule(schedule, load_config(config.model))
        return Schedule(schedule, config.momentum, config.seed)
    return Search(config.params_per_pair, config.search_momenta, config.search_fraction, config.cost_weight,
                  config.seed, config.min_head_dim, retrain=config.growth == "scratch")


class GrowingRun:
    """Under torchrun every process runs the same loop on identical weights: the search's proxies and
    the chunk's training are data-parallel (each rank reads its own lanes), scores and records come
    from rank 0, and after each decision the ranks' weights are checked bit-identical."""

    def __init__(self, config: TrainConfig) -> None:
        if not config.is_stream:
            raise ValueError("a growing run needs a stream: give chunks (e.g. ('corpus',)) or watch")
        if config.watch and launched_size() > 1:
            raise ValueError("a watched folder is read by one process (ranks could see files arrive at different "
                             "moments); under torchrun list the chunks with --chunks")
        self.config, self.output, self.policy = config, Path(config.output), growth_policy(config)
        self.chunk_speed: float | None = None  # samples/s of the last chunk trained
        start = start_run(config)
        self.world, self.device = start.world, start.device
        self.folder = RunFolder(config, owner=self.world.is_main).claim()
        try:
            self._set_up(start.model)
        except BaseException:
            self.folder.release()
            raise
        self.folder.start()

    def _set_up(self, start_model: ModelConfig) -> None:
        """The model (new or resumed), the stream, the evaluation sets and the tokenizer."""
        config = self.config
        self.step_samples = config.step_samples(self.world.size)
        self.checkpoint, self.tokenizer = resume_checkpoint(config), None
        if self.checkpoint is not None:
            self._resume(self.checkpoint)
        else:
            self.current = GrowthState.capture(create_model(start_model, seed=config.seed))
            self.progress, self.saved = StreamProgress(), {}
        stream = ChunkStream(chunk_specs(config), config.watch, taken=self.progress.watched, sleep=pause)
        uses_corpus = any(s.startswith(CORPUS_PREFIX) for s in stream.known())
        corpus = EmbeddedCorpus(config.corpus_seed, self.current.config.image_size, config.stage_sizes)
        self.chunks = ArrivedChunks(stream, corpus, reader_options(config), config.heldout, config.seed, config.replay)
        self.evals = run_evaluation_sets(config, corpus.image_size, uses_corpus)
        if self.tokenizer is None:
            self.tokenizer = stream_tokenizer(config, self.current.config, corpus if uses_corpus else None,
                                              lambda: self.chunks[0].sources)

    def _resume(self, checkpoint: Path) -> None:
        model, self.tokenizer, self.saved = load_checkpoint(checkpoint)
        if "stream" not in self.saved:  # not a growing run's (an imported or hand-grown model): a stream starts
            self.current, self.progress, self.saved, self.checkpoint = GrowthState.capture(model), StreamProgress(), \
                {}, None
            return
        self.config.check_resume(self.saved.get("train_config", {}), checkpoint)
        if self.saved.get("processes", 1) != self.world.size:
            raise ValueError(f"{checkpoint}: a growing run resumes on as many processes as it was saved by "
                             f"({self.saved.get('processes', 1)}); its step counts are in that global batch")
        tensors = load_trainer_tensors(checkpoint)
        self.current = GrowthState.from_tensors(model, tensors)
        self.progress = StreamProgress.from_state_dict(self.saved["stream"])
        set_rng_state(self.saved["rng"], tensors)

    def run(self, on_chunk: Callable[[ChunkRecord], None] | None = None) -> list[ChunkRecord]:
        """Decide, train, evaluate, checkpoint, chunk after chunk; -> one record per chunk. The run
        folder is released at the end, however the run ends."""
        try:
            self._run(on_chunk)
        finally:
            self.folder.release()
        return self.progress.history

    def _run(self, on_chunk: Callable[[ChunkRecord], None] | None) -> None:
        # the log keeps records up to the checkpoint's step, mid-chunk ones included
        resume = self.saved.get("global_step", self.progress.global_step) if self.checkpoint is not None else None
        with metrics_log(self.output, self.config, resume, self.world) as self.log:
            if self.checkpoint is not None:
                logger.info("resumed from %s: chunk %d, %s", self.checkpoint, self.progress.chunk,
                            self.progress.phase.value)
            with preemption_signals():  # a search's proxies stop at a step too; the last round was saved
                while self.chunks.stream.get(self.progress.chunk) is not None:
                    if self.progress.phase is Phase.DECIDE:
                        self._decide()
                    record = self._finish(self._train())
                    if on_chunk is not None and self.world.is_main:
                        on_chunk(record)
        if self.world.is_main:
            records = [record.to_dict() for record in self.progress.history]
            (self.output / STREAM_RECORDS).write_text(json.dumps(records, indent=2) + "\n")

    def _decide(self) -> None:
        progress, chunk = self.progress, self.progress.chunk
        resumed = (progress.search, load_contenders(self.checkpoint, progress)) if progress.search else None
        context = ChunkContext(chunk, self.chunks.pairs_seen(chunk), self._chunk_steps(chunk), self.step_samples,
                               sum(len(h.texts) for h in self.chunks.heldouts(chunk)), self._proxy,
                               self._save_search, resumed)
        before = self.current.config
        self.current, decision = self.policy.decide(self.current, context)
        check_same_on_every_rank(self.current.weights, self.world, f"chunk {chunk}: the model after {decision.label}")
        progress.global_step += decision.proxy_steps  # the winner trained them
        progress.phase, progress.decision, progress.search, progress.contenders = Phase.TRAIN, decision, None, {}
        self._log({**self._where(), "chunk": chunk, "decision": decision.label, "why": decision.why,
                        "left_out": decision.left_out, "from": asdict(before), "to": asdict(self.current.config),
                        "params": model_cost(self.current.config).params,
                        "search_fraction": decision.search_fraction}, "growth")

    def _proxy(self, state: GrowthState, steps: int, round_: int) -> tuple[GrowthState, float, float | None]:
        """A contender's proxy training: `steps` on this round's batches (the same for every contender)."""
        chunk, model = self.progress.chunk, state.build_model().to(self.device).train()
        trainer = Trainer(self.config, model, self._inputs(chunk, model), steps, None, proxy=True,
                          data_seed=derive_seed(self.config.seed, chunk, round_, 3), world=self.world)
        state.load_moments(trainer.optimizer, model)
        trainer.train()
        losses = self._on_main(lambda: new_and_old_loss(model, self.tokenizer, self.chunks.heldouts(chunk),
                                                        self.config.precision))
        return GrowthState.capture(model, trainer.optimizer), *losses

    def _inputs(self, chunk: int, model: CLIP) -> RunInputs:
        transform = train_transform(self.config, model.config.image_size, self._chunk_passes(chunk))
        return RunInputs(self.chunks.train_data(chunk), transform, self.tokenizer, self.evals)

    def _chunk_passes(self, chunk: int) -> float:
        """How many times the chunk's training reads the new chunk's pairs (what decides the default crop)."""
        return self.config.chunk_samples / self.chunks.records(chunk) if self.config.chunk_samples else \
            self.config.epochs

    def _chunk_steps(self, chunk: int) -> int:
        samples = self.config.chunk_samples or int(self.config.epochs * self.chunks.records(chunk))
        return max(1, samples // self.step_samples)

    def _train_steps(self, decision: Decision) -> int:
        """The chunk's steps less the winner's proxy steps (already trained); a retrained architecture
        trains from zero for as long as every chunk so far."""
        if decision.retrain:
            return sum(self._chunk_steps(i) for i in range(decision.chunk + 1))
        return max(1, self._chunk_steps(decision.chunk) - decision.proxy_steps)

    def _train(self) -> CLIP:
        decision, config = self.progress.decision, self.config
        steps, model = self._train_steps(decision), self.current.build_model().to(self.device).train()
        trainer = Trainer(config, model, self._inputs(decision.chunk, model), steps, self.log,
                          base_step=self.progress.global_step, run_state=lambda: {"stream": self.progress.state_dict()},
                          warmup=min(config.warmup, steps // 5), data_seed=derive_seed(config.seed, decision.chunk, 2),
                          world=self.world)
        if self.saved.get("step") and self.progress.phase is Phase.TRAIN:  # resumed mid-chunk
            trainer.restore(self.checkpoint, self.saved)
        else:
            self.current.load_moments(trainer.optimizer, model)
        self.saved = {}
        trainer.run()
        self.chunk_speed = statistics.median(trainer.pace.speeds) if trainer.pace.speeds else None
        self.current = GrowthState.capture(model, trainer.optimizer)
        self.progress.global_step += steps
        return model

    def _finish(self, model: CLIP) -> ChunkRecord:
        progress = self.progress
        record = self._on_main(lambda: self._chunk_record(model))
        self._log(record.to_dict(), "chunk")
        progress.history.append(replace(record, candidates=tuple(progress.decision.candidates)))
        progress.chunk, progress.phase, progress.decision = progress.chunk + 1, Phase.DECIDE, None
        if self.world.is_main:
            save_progress(self.config, progress, self.current, self.tokenizer, self.step_samples)
        return record

    def _chunk_record(self, model: CLIP) -> ChunkRecord:
        """The finished chunk: architecture, evaluation, held-out losses, compute."""
        decision = self.progress.decision
        results = evaluate_sets(model, self.tokenizer, self.evals, self.config.precision)
        new, old = new_and_old_loss(model, self.tokenizer, self.chunks.heldouts(decision.chunk), self.config.precision)
        cost, flops_per_sample = model_cost(model.config), train_flops_per_sample(model.config)
        compute = chunk_compute(self.progress, self._train_steps(decision), self.step_samples, flops_per_sample)
        return ChunkRecord(**self._where(), chunk=decision.chunk, name=self.chunks[decision.chunk].name,
                           pairs=self.chunks.records(decision.chunk), architecture=model.config,
                           decision=decision.label, grew=decision.grew, params=cost.params,
                           gflops_per_pair=cost.forward_flops / 1e9, search_fraction=decision.search_fraction,
                           heldout_new_loss=new, heldout_old_loss=old, compute=compute,
                           samples_per_s=self.chunk_speed,
                           tflops_per_s=self.chunk_speed and self.chunk_speed * flops_per_sample / 1e12,
                           summary=results.summary, zeroshot_top1=results.top1())

    def _on_main(self, compute: Callable[[], Any]) -> Any:
        """Computed by rank 0 and handed to every rank, so that all decide alike."""
        return broadcast_object(compute() if self.world.is_main else None, self.world)

    def _log(self, record: dict[str, Any], kind: str) -> None:
        if self.log is not None:
            self.log.write(record, kind)

    def _where(self) -> dict[str, int]:
        return {"step": self.progress.global_step, "samples": self.progress.global_step * self.step_samples}

    def _save_search(self, search: SuccessiveHalving, contenders: Contenders) -> None:
        self.progress.search = search
        self.progress.contenders = {i: contenders[i].config for i, c in enumerate(search.contenders) if c.alive}
        if self.world.is_main:
            save_progress(self.config, self.progress, self.current, self.tokenizer, self.step_samples,
                          contenders)


def train_stream(config: TrainConfig, on_chunk: Callable[[ChunkRecord], None] | None = None) -> list[ChunkRecord]:
    """A growing run over `config.chunks` or `config.watch`; -> one record per chunk. `on_chunk`
    sees each chunk's record as it finishes (the CLI prints it). A preemption signal while it sets
    up (waiting for a watched folder's first chunk, say) stops it as one during training does."""
    with preemption_signals():
        return GrowingRun(config).run(on_chunk)
