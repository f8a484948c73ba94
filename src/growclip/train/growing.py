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
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from growclip.checkpoint import Checkpointer, SavedRun, read_checkpoint, restore
from growclip.data.chunks import CORPUS_PREFIX, ArrivedChunks, ChunkStream, expand_corpus
from growclip.data.corpus import EmbeddedCorpus
from growclip.eval.heldout import new_and_old_loss
from growclip.eval.suite import EvalResults, evaluate_sets
from growclip.growth.lineage import LINEAGE, GrowthLineage
from growclip.growth.policy import ChunkContext, Contenders
from growclip.growth.search import SuccessiveHalving
from growclip.growth.state import GrowthState
from growclip.model.clip import CLIP
from growclip.model.config import ModelConfig
from growclip.model.cost import model_cost, train_flops_per_sample
from growclip.model.factory import create_model
from growclip.model.moments import nested_moments
from growclip.runtime import derive_seed
from growclip.train.chunk_plan import ChunkPlan, growth_policy
from growclip.train.config import TrainConfig
from growclip.train.distributed import broadcast_object, check_same_on_every_rank, launched_size
from growclip.train.faults import pause, preemption_signals
from growclip.train.inputs import RunInputs, reader_options, run_evaluation_sets, stream_tokenizer, train_transform
from growclip.train.loop import Trainer
from growclip.train.owners import GlobalRNG
from growclip.train.proxy import train_proxy
from growclip.train.records import ChunkRecord
from growclip.train.run_folder import STREAM_RECORDS, RunFolder
from growclip.train.run_state import Phase, StreamProgress, load_contenders, save_progress
from growclip.train.start import TrainResult, count_forgetting, metrics_log, resume_checkpoint, start_run

logger = logging.getLogger(__name__)


class GrowingRun:
    """Under torchrun every process runs the same loop on identical weights: the search's proxies and
    the chunk's training are data-parallel (each rank reads its own lanes), scores and records come
    from rank 0, and after each decision the ranks' weights are checked bit-identical."""

    def __init__(self, config: TrainConfig) -> None:
        if not config.stream.active:
            raise ValueError("a growing run needs a stream: give chunks (e.g. ('corpus',)) or watch")
        if config.stream.watch and launched_size() > 1:
            raise ValueError("a watched folder is read by one process (ranks could see files arrive at different "
                             "moments); under torchrun list the chunks with --chunks")
        self.config, self.output = config, Path(config.run.output)
        self.chunk_speed: float | None = None  # samples/s of the last chunk trained
        self.losses: list[float] = []  # this invocation's training steps (proxies not included)
        self.skipped: Counter[str] = Counter()  # records skipped while training, this invocation
        self.final_eval: EvalResults | None = None
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
        """The model (new or resumed), its policy (checked before any data is read), stream, eval sets, tokenizer."""
        config = self.config
        self.step_samples = config.optim.step_samples(self.world.size)
        self.saved: SavedRun | None = None  # the checkpoint resumed from, until its chunk trains on
        self.tokenizer = None
        self.lineage = GrowthLineage()  # the growth steps since the model was built or imported
        checkpoint = resume_checkpoint(config.run)
        if checkpoint is not None:
            self._resume(read_checkpoint(checkpoint))
        else:
            self.current = GrowthState.capture(create_model(start_model, seed=config.optim.seed))
            self.progress = StreamProgress()
        self.policy = growth_policy(config.stream, self.current.config, config.optim.seed, self.progress.undecided)
        settings = config.stream
        stream = ChunkStream(expand_corpus(settings.chunks or ()), settings.watch, taken=self.progress.watched,
                             sleep=pause)
        uses_corpus = any(s.startswith(CORPUS_PREFIX) for s in stream.known())
        corpus = EmbeddedCorpus(config.data.corpus_seed, self.current.config.image_size, config.data.stage_sizes)
        self.chunks = ArrivedChunks(stream, corpus, reader_options(config.data), settings.heldout, config.optim.seed,
                                    settings.replay)
        self.plan = ChunkPlan(self.chunks, config.optim.epochs, settings, self.step_samples)
        self.evals = run_evaluation_sets(config.data, config.eval, corpus.image_size, uses_corpus)
        if self.tokenizer is None:
            self.tokenizer = stream_tokenizer(config.data, self.current.config, corpus if uses_corpus else None,
                                              lambda: self.chunks[0].sources)
        forgetting = count_forgetting(config, self.evals, lambda: self.current.build_model().to(self.device),
                                      self.tokenizer, self.saved, self.world)
        self.owners = {"stream": self.progress, LINEAGE: self.lineage, **forgetting}  # the run's own state

    def _resume(self, saved: SavedRun) -> None:
        """A growing run's checkpoint continues; any other (an imported, hand-grown or fixed run's
        model) starts a stream from its weights."""
        self.tokenizer, self.progress = saved.tokenizer, StreamProgress()
        self.lineage = GrowthLineage.from_part(saved.parts.get(LINEAGE))
        if saved.progress is None or not saved.has("stream"):
            self.current = GrowthState.capture(saved.model)
            return
        self.config.check_resume(saved.settings, saved.path)
        if saved.progress.processes != self.world.size:
            raise ValueError(f"{saved.path}: a growing run resumes on as many processes as it was saved by "
                             f"({saved.progress.processes}); its step counts are in that global batch")
        self.current = GrowthState.of(saved.model, nested_moments(saved.part("optimizer")))
        restore(saved, {"stream": self.progress, "rng": GlobalRNG()})
        self.saved = saved

    def run(self, on_chunk: Callable[[ChunkRecord], None] | None = None) -> TrainResult:
        """Decide, train, evaluate, checkpoint, chunk after chunk. The run folder is released at the
        end, however the run ends."""
        try:
            model = self._run(on_chunk)
        finally:
            self.folder.release()
        saved = Checkpointer(self.config.run.output).path(self.progress.global_step)
        return TrainResult(model.eval(), saved, self.progress.global_step,
                           self.progress.global_step * self.step_samples, self.losses, self.final_eval,
                           dict(self.skipped), self.progress.history)

    def _run(self, on_chunk: Callable[[ChunkRecord], None] | None) -> CLIP:
        """-> the model the last chunk trained."""
        # the log keeps records up to the checkpoint's step, mid-chunk ones included
        resume = self.saved.progress.global_step if self.saved is not None else None
        model = None
        with metrics_log(self.config.run, resume, self.world) as self.log:
            if self.saved is not None:
                logger.info("resumed from %s: chunk %d, %s", self.saved.path, self.progress.chunk,
                            self.progress.phase.value)
            with preemption_signals():  # a search's proxies stop at a step too; the last round was saved
                while self.chunks.stream.get(self.progress.chunk) is not None:
                    if self.progress.phase is Phase.DECIDE:
                        self._decide()
                    model = self._train()
                    record = self._finish(model)
                    if on_chunk is not None and self.world.is_main:
                        on_chunk(record)
        if self.world.is_main:
            records = [record.to_dict() for record in self.progress.history]
            (self.output / STREAM_RECORDS).write_text(json.dumps(records, indent=2) + "\n")
        return model if model is not None else self.current.build_model()  # every chunk trained before: as saved

    def _decide(self) -> None:
        progress, chunk = self.progress, self.progress.chunk
        resumed = (progress.search, load_contenders(self.saved, progress)) if progress.search else None
        context = ChunkContext(chunk, self.chunks.pairs_seen(chunk), self.plan.steps(chunk, self.current.config),
                               self.step_samples, sum(len(h.texts) for h in self.chunks.heldouts(chunk)), self._proxy,
                               self._save_search, resumed, progress.total_tflop * 1e12, self.plan.flops(chunk))
        before = self.current.config
        self.current, decision = self.policy.decide(self.current, context)
        self.lineage.add(decision, before)
        check_same_on_every_rank(self.current.weights, self.world, f"chunk {chunk}: the model after {decision.label}")
        progress.global_step += decision.proxy_steps  # the winner trained them
        progress.phase, progress.decision, progress.search, progress.contenders = Phase.TRAIN, decision, None, {}
        self._log({**self._where(), "chunk": chunk, "decision": decision.label, "why": decision.why,
                   "left_out": decision.left_out, "from": before.to_dict(), "to": self.current.config.to_dict(),
                   "params": model_cost(self.current.config).params,
                   "search_fraction": decision.search_fraction}, "growth")

    def _proxy(self, state: GrowthState, steps: int, round_: int) -> tuple[GrowthState, float, float | None]:
        """A contender's proxy training: `steps` on this round's batches (the same for every contender)."""
        chunk, optim = self.progress.chunk, self.config.optim
        model, trained = train_proxy(optim, self.config.run.workers, state, self._inputs(chunk, state.config), steps,
                                     derive_seed(optim.seed, chunk, round_, 3), self.world, self.device)
        losses = self._on_main(lambda: new_and_old_loss(model, self.tokenizer, self.chunks.heldouts(chunk),
                                                        optim.precision))
        return trained, *losses

    def _inputs(self, chunk: int, model: ModelConfig) -> RunInputs:
        transform = train_transform(self.config.data, model.image_size, self.plan.passes(chunk, model))
        return RunInputs(self.chunks.train_data(chunk), transform, self.tokenizer, self.evals)

    def _train(self) -> CLIP:
        decision, config = self.progress.decision, self.config
        steps = self.plan.train_steps(decision, self.current.config)
        model = self.current.build_model().to(self.device).train()
        trainer = Trainer(config, model, self._inputs(decision.chunk, model.config), steps, self.log,
                          base_step=self.progress.global_step, owners=self.owners,
                          warmup=min(config.optim.warmup, steps // 5),
                          data_seed=derive_seed(config.optim.seed, decision.chunk, 2), world=self.world)
        if self.saved is not None and self.saved.progress.step and self.progress.phase is Phase.TRAIN:  # mid-chunk
            trainer.restore(self.saved)
        else:
            self.current.load_moments(trainer.optimizer, model)
        self.saved = None
        trainer.run()
        self.chunk_speed = statistics.median(trainer.pace.speeds) if trainer.pace.speeds else None
        self.losses += trainer.losses
        self.skipped += trainer.batches.total_skipped
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
            save_progress(self.config, progress, self.current, self.tokenizer, self.step_samples, self.owners)
        return record

    def _chunk_record(self, model: CLIP) -> ChunkRecord:
        """The finished chunk: architecture, evaluation, held-out losses, compute."""
        decision, precision = self.progress.decision, self.config.optim.precision
        results = self.final_eval = evaluate_sets(model, self.tokenizer, self.evals, precision)
        new, old = new_and_old_loss(model, self.tokenizer, self.chunks.heldouts(decision.chunk), precision)
        cost, flops_per_sample = model_cost(model.config), train_flops_per_sample(model.config)
        compute = self.plan.compute(self.progress, model.config)
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
                          self.owners, contenders)
