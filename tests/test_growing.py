"""Growing runs on chunk streams: decisions, determinism, resume mid-search, watched folders."""

import json
import math
import threading
import time
from dataclasses import fields

import pytest
import torch
from safetensors.torch import load_file

from conftest import tiny_config
from growclip.checkpoint.files import checkpoints_of
from growclip.cli import main
from growclip.growth import GrowthState, grow_state, grown_config
from growclip.growth.decision import Decision
from growclip.growth.policy import ChunkContext, Search
from growclip.growth.search import (
    MIN_PROXY_STEPS,
    ProxyScore,
    SearchRound,
    SuccessiveHalving,
    plan_search,
    proxy_score,
    search_decision,
)
from growclip.growth.space import Candidate, growth_space
from growclip.model import create_model, model_cost, train_flops_per_sample
from growclip.train import TrainConfig, growing, train
from growclip.train.records import ChunkRecord
from growclip.train.run_state import Phase, StreamProgress

MODEL = tiny_config(width=16, heads=1, mlp_ratio=1.0, vision_layers=1, text_layers=1, shared_layers=0,
                    patch_size=8, embed_dim=16)
# long enough chunks, and a search budget, for four contenders and two successive-halving rounds
SEARCHED = dict(epochs=8, search_fraction=0.5)
# a chunk record in the flat JSON form checkpoints, stream.json and metrics.jsonl have always held
FLAT_RECORD = {"step": 40, "samples": 1280, "chunk": 1, "name": "corpus:1", "pairs": 512,
               "architecture": MODEL.to_dict(), "decision": "width=32 (m=0.9)", "grew": True, "params": 52000,
               "gflops_per_pair": 0.01, "search_fraction": 0.08, "heldout_new_loss": 2.1, "heldout_old_loss": 2.4,
               "train_tflop": 0.02, "search_tflop": 0.002, "total_tflop": 0.03, "samples_per_s": 900.0,
               "tflops_per_s": 0.03, "zeroshot_mean_top1": 0.3, "image_to_text_R@1": 0.2, "text_to_image_R@1": 0.25,
               "heldout_loss": 2.2, "zeroshot_top1": {"shape": 0.4, "colour": 0.2},
               "candidates": [{"label": "keep", "alive": False, "rounds": [{"round": 0, "steps": 8, "score": 2.5}]}]}


def settings(tmp_path, **overrides) -> TrainConfig:
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "model.json").write_text(json.dumps(MODEL.to_dict()))
    base = dict(model=str(tmp_path / "model.json"), stage_sizes=(256, 512, 512, 512), batch_size=32, lr=3e-3,
                warmup=4, heldout=32, eval_images_per_class=4, retrieval_images=32, progress=False,
                search_fraction=0.5, output=str(tmp_path / "run"))
    return TrainConfig.from_dict({**base, **overrides})


def decisions(history):
    return [record.decision for record in history]


def test_growth_space_respects_the_budget_and_always_offers_keep():
    config = tiny_config(vision_layers=2, text_layers=2, shared_layers=0)
    assert growth_space(config, max_params=0) == [Candidate()]
    space = growth_space(config, max_params=1e9, momenta=(1.0, 0.9))
    labels = [c.label for c in space]
    assert labels[0] == "keep" and "share (m=0.9)" in labels and "width=64 shared_layers+1 (m=1)" in labels
    assert len(labels) == len(set(labels))


def test_an_imported_clip_s_space_grows_each_tower_and_its_budget_leaves_the_embeddings_out():
    towered = tiny_config(shared_layers=0, vision_width=64, vision_heads=2, vocab_size=49409)
    ops = {op for c in growth_space(towered, max_params=1e9) for op in c.ops}
    assert {"vision_width=128", "text_width=64", "vision_mlp_ratio=4", "text_mlp_ratio=4"} <= ops
    assert not ops & {"width=64", "shared_layers+1", "share"}
    deeper = grown_config(towered, ["text_layers+1"])
    cost = model_cost(deeper)
    assert cost.params > 49409 * 32 > cost.non_embedding_params  # the vocabulary alone outweighs the rest
    labels = [c.label for c in growth_space(towered, max_params=cost.non_embedding_params)]
    assert "text_layers+1 (m=1)" in labels


def test_more_heads_are_offered_only_while_a_head_keeps_the_minimum_dims():
    config = tiny_config(width=32, heads=1)  # head dim 32
    assert "heads=2" in [op for c in growth_space(config, max_params=1e9, min_head_dim=16) for op in c.ops]
    assert "heads=2" not in [op for c in growth_space(config, max_params=1e9, min_head_dim=32) for op in c.ops]


def test_successive_halving_keeps_the_best_half_and_its_state_round_trips():
    search = SuccessiveHalving([Candidate(), *(Candidate((f"width={w}",)) for w in (64, 96, 128, 160))], 2)
    quality = [3.0, 1.0, 2.0, 0.5, 4.0]
    search.run_round(lambda i, c, steps: ProxyScore(quality[i] / steps))
    assert [c.alive for c in search.contenders] == [False, True, True, True, False]
    restored = SuccessiveHalving.from_state(json.loads(json.dumps(search.state_dict())))
    while not restored.done:
        restored.run_round(lambda i, c, steps: ProxyScore(quality[i]))
    assert restored.winner.candidate.ops == ("width=128",) and restored.round == 3


def test_the_search_fits_its_overhead_cap_by_leaving_out_the_dearest_candidates():
    space = growth_space(MODEL, max_params=1e9)
    assert plan_search(MODEL, space, overhead_steps=0.16, score_steps=0.5) == (space[:1], 0)  # no child affordable
    child = train_flops_per_sample(grown_config(MODEL, space[1].ops)) / train_flops_per_sample(MODEL)
    scoring = 0.5 * 2 * (1 + child) / 2
    kept, steps = plan_search(MODEL, space, overhead_steps=1.05 * MIN_PROXY_STEPS * child + scoring, score_steps=0.5)
    assert kept == space[:2] and steps == MIN_PROXY_STEPS  # "keep" and the cheapest child, at the floor
    kept, steps = plan_search(MODEL, space, overhead_steps=6400, score_steps=0.5)
    assert kept == space and steps > MIN_PROXY_STEPS


def test_the_same_small_data_again_keeps_the_model(tmp_path):
    """The budget grows with the pairs seen; the start model already fills what three passes of one
    small chunk allow, so every decision is "keep" and no search is spent."""
    same = train(settings(tmp_path, chunks=("corpus:0", "corpus:0", "corpus:0"), params_per_pair=5.0)).chunks
    assert decisions(same) == ["keep"] * 3
    assert all(record.search_fraction == 0 for record in same)


@pytest.mark.slow
def test_data_that_outgrows_the_model_makes_the_search_grow(tmp_path):
    """A 16-wide model (32 px images, full captions, so it learns) is too small for a new chunk of
    scenes: with no cost penalty, a bigger child learns it faster and "keep" loses the search."""
    narrow = tiny_config(width=16, heads=1, mlp_ratio=1.0, vision_layers=1, text_layers=1, shared_layers=0,
                         image_size=32, patch_size=8, context_length=32, vocab_size=1000, embed_dim=16)
    (tmp_path / "narrow.json").write_text(json.dumps(narrow.to_dict()))
    history = train(settings(tmp_path, model=str(tmp_path / "narrow.json"), chunks=("corpus:0", "corpus:1"),
                                    lr=2e-3, params_per_pair=1000.0, cost_weight=0.0, **SEARCHED)).chunks
    keep = history[1].candidates[0]
    assert keep["label"] == "keep" and not keep["alive"]
    assert history[1].grew and history[1].params > history[0].params


def test_scheduled_growth_runs_through_the_same_loop(tmp_path):
    history = train(settings(tmp_path, chunks=("corpus:0", "corpus:1"), growth="schedule",
                                    grow_schedule=("1:width=32", "1:shared_layers+1"))).chunks
    assert decisions(history) == ["keep", "width=32 shared_layers+1 (m=0.9)"]
    assert history[1].params > history[0].params
    for record in history:  # speed before and after the growth step, side by side
        assert record.samples_per_s > 0
        flops = train_flops_per_sample(record.architecture)
        assert record.tflops_per_s == pytest.approx(record.samples_per_s * flops / 1e12)
    assert main(["report", str(tmp_path / "run")]) == 0
    report = (tmp_path / "run" / "report" / "report.md").read_text()
    assert "## Stream" in report and "width=32 shared_layers+1 (m=0.9)" in report
    assert all((tmp_path / "run" / "report" / name).stat().st_size > 0 for name in ("size.png", "stream.png"))


@pytest.mark.slow
def test_decisions_are_the_same_on_a_rerun(tmp_path):
    config = dict(chunks=("corpus:0", "corpus:1"), params_per_pair=60.0, **SEARCHED)
    first, second = (train(settings(tmp_path / name, **config)).chunks for name in ("a", "b"))
    assert decisions(first) == decisions(second)
    assert first[1].candidates == second[1].candidates and first[1].candidates


@pytest.mark.slow
def test_resume_in_the_middle_of_a_search_ends_as_an_uninterrupted_run(tmp_path, monkeypatch):
    config = dict(chunks=("corpus:0", "corpus:1"), params_per_pair=60.0, keep_checkpoints=0, **SEARCHED)
    whole = train(settings(tmp_path / "whole", **config)).chunks
    original = SuccessiveHalving.run_round
    calls = []

    def interrupted(self, train_and_score):
        calls.append(self.round)
        if len(calls) == 2:  # after the first round was trained, scored and checkpointed
            raise KeyboardInterrupt
        return original(self, train_and_score)

    monkeypatch.setattr(SuccessiveHalving, "run_round", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train(settings(tmp_path / "cut", **config))
    monkeypatch.setattr(SuccessiveHalving, "run_round", original)
    resumed = train(settings(tmp_path / "cut", resume="latest", **config)).chunks
    assert decisions(resumed) == decisions(whole)
    last = [checkpoints_of(tmp_path / name / "run")[-1] for name in ("whole", "cut")]
    assert last[0].name == last[1].name
    a, b = (load_file(path / "model.safetensors") for path in last)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_watched_folder_picks_up_a_chunk_written_while_the_run_goes_on(tmp_path):
    from datafiles import write_images, write_table

    watch = tmp_path / "incoming"
    for index in (0, 1):
        rows = write_images(tmp_path / f"c{index}" / "images", 48, start=100 * index)
        write_table(tmp_path / f"c{index}" / "pairs.tsv", [(f"images/{n}", c) for n, c in rows])
    watch.mkdir()
    (watch / "00.tsv").write_bytes((tmp_path / "c0" / "pairs.tsv").read_bytes().replace(b"images/", b"../c0/images/"))
    run = growing.GrowingRun(settings(tmp_path, watch=str(watch), growth="fixed", heldout=8, batch_size=16))
    run.chunks.stream.poll_seconds = 0.05
    thread = threading.Thread(target=run.run)
    thread.start()
    deadline = time.monotonic() + 60
    while not list((tmp_path / "run").glob("checkpoints/step_*")) and time.monotonic() < deadline:
        time.sleep(0.05)
    (watch / ".01.tsv").write_bytes((tmp_path / "c1" / "pairs.tsv").read_bytes().replace(b"images/", b"../c1/images/"))
    (watch / ".01.tsv").rename(watch / "01.tsv")  # a new chunk arrives mid-run, complete
    (watch / "END").touch()
    thread.join(timeout=60)
    assert not thread.is_alive()
    history = json.loads((tmp_path / "run" / "stream.json").read_text())
    assert [record["name"] for record in history] == [str(watch / "00.tsv"), str(watch / "01.tsv")]


def test_replay_mixes_the_new_chunk_with_a_sample_of_the_old_ones(tmp_path):
    stream = ("corpus:0", "corpus:1", "corpus:2")
    run = growing.GrowingRun(settings(tmp_path, chunks=stream, replay=0.5, growth="fixed"))
    new, old = run.chunks.records(2), run.chunks.pairs_seen(1)
    mixed = run.chunks.train_data(2).count()
    assert new < mixed < new + old and abs(mixed - 1.5 * new) < 0.1 * new
    cumulative = growing.GrowingRun(settings(tmp_path / "c", chunks=stream, growth="fixed"))
    assert cumulative.chunks.train_data(2).count() == new + old


def test_scratch_retrains_the_chosen_architecture_for_all_chunks_so_far(tmp_path):
    history = train(settings(tmp_path, chunks=("corpus:0", "corpus:1"), growth="scratch",
                                    params_per_pair=60.0)).chunks
    steps = [record.step for record in history]
    assert steps[1] - steps[0] == steps[0] + 512 // 32  # chunk 1 retrains chunks 0 and 1 from zero


def reloaded(progress: StreamProgress) -> StreamProgress:
    """`progress` through its state dict and JSON into a fresh owner, as a checkpoint takes it."""
    restored = StreamProgress()
    restored.load_state_dict(json.loads(json.dumps(progress.state_dict())))
    return restored


def test_stream_progress_survives_a_json_round_trip_field_by_field():
    search = SuccessiveHalving([Candidate(), Candidate(("width=32",), 0.9)], 8)
    search.run_round(lambda i, c, steps: ProxyScore(float(i), 2.0, None if i else 3.0, 2.0, 1e6, 1e3))
    progress = StreamProgress(chunk=2, phase=Phase.TRAIN, global_step=77, history=[ChunkRecord.from_dict(FLAT_RECORD)],
                              decision=Decision(2, ("width=32",), 0.9, "why", 16, 1e9, 0.1,
                                                [{"label": "keep"}], ["share (m=0.9)"], retrain=True),
                              search=search, contenders={1: MODEL}, watched=["in/00.tsv"])
    restored = reloaded(progress)
    for field in fields(StreamProgress):
        value, back = getattr(progress, field.name), getattr(restored, field.name)
        if field.name == "search":
            assert back.state_dict() == value.state_dict() and back.contenders == value.contenders
        else:
            assert back == value, field.name
    assert reloaded(StreamProgress()) == StreamProgress()


def test_a_search_round_saved_before_it_was_typed_reads_back():
    """Checkpoints taken mid-search wrote a missing old loss as NaN; it reads back as None."""
    saved = {"round": 0, "steps": 8, "new_loss": 2.0, "old_loss": float("nan"), "cost": 1.0, "train_flops": 5.0,
             "score": 2.0, "score_flops": 1.0}
    round_ = SearchRound.from_dict(json.loads(json.dumps(saved)))
    assert round_ == SearchRound(0, 8, ProxyScore(2.0, 2.0, None, 1.0, 5.0, 1.0))
    assert round_.to_dict() == {**saved, "old_loss": None}


def test_a_chunk_record_reads_and_writes_the_flat_json_it_always_had():
    """Checkpoints and results written before the record was typed read back, and write the same JSON."""
    record = ChunkRecord.from_dict(json.loads(json.dumps(FLAT_RECORD)))
    assert record.to_dict() == FLAT_RECORD
    assert (record.mean_top1, record.recall, record.total_tflop) == (0.3, (0.2, 0.25), 0.03)
    assert record.architecture == MODEL and record.summary["heldout_loss"] == 2.2
    bare = {k: v for k, v in FLAT_RECORD.items() if k not in ("zeroshot_mean_top1", "image_to_text_R@1",
                                                             "text_to_image_R@1", "total_tflop", "candidates")}
    old = ChunkRecord.from_dict(bare)  # no evaluation, and logged before the compute was counted
    assert old.mean_top1 is None and old.recall is None and math.isnan(old.total_tflop)
    with pytest.raises(KeyError, match="heldout_new_loss"):  # not a chunk record: refused, not read half empty
        ChunkRecord.from_dict({k: v for k, v in FLAT_RECORD.items() if k != "heldout_new_loss"})


def test_the_proxy_score_averages_new_and_old_loss_and_charges_each_doubling_of_cost():
    assert proxy_score(2.0, None, 1.0, 0.05) == 2.0
    assert proxy_score(2.0, 1.0, 1.0, 0.05) == 1.5  # forgetting counts as much as learning
    assert proxy_score(2.0, 1.0, 4.0, 0.05) == pytest.approx(1.6)  # two doublings


def test_the_decision_record_counts_every_proxy_step_but_the_winners_as_overhead():
    search = SuccessiveHalving([Candidate(), Candidate(("width=32",), 0.9)], 10)
    flops = {0: 1.0, 1: 4.0}
    search.run_round(lambda i, c, steps: ProxyScore([2.0, 1.0][i], train_flops=flops[i], score_flops=5.0))
    decision = search_decision(3, search, step_samples=2, chunk_train_flops=1000.0, retrain=False)
    assert decision.ops == ("width=32",) and decision.momentum == 0.9 and decision.proxy_steps == 10
    spent = 10 * 2 * (1.0 + 4.0) + 2 * 5.0
    assert decision.search_flops == spent - 10 * 2 * 4.0 == 30.0
    assert decision.search_fraction == pytest.approx(30 / 1030)
    assert "ahead of keep (2.000)" in decision.why and decision.label == "width=32 (m=0.9)"
    retrained = search_decision(3, search, 2, 1000.0, retrain=True)
    assert retrained.proxy_steps == 0 and retrained.search_flops == spent  # nothing of the search is kept


def test_the_search_picks_the_child_that_is_better_per_flop():
    """A constructed case: doubling the width lowers the held-out loss a little for 4x the FLOPs,
    a wider MLP lowers it a lot for far less; with the cost penalty the MLP child must win, and
    without any benefit from growing, "keep" must."""
    state = GrowthState.capture(create_model(MODEL, seed=0))
    gains = {"width": 0.05, "mlp_ratio": 0.5}

    def proxy(grown: GrowthState, steps: int, round_: int) -> tuple[GrowthState, float, float | None]:
        grew = {dim for dim in gains if getattr(grown.config, dim) != getattr(MODEL, dim)}
        return grown, 3.0 - sum(gains[dim] for dim in grew), 2.0

    context = ChunkContext(1, pairs_seen=1000, chunk_steps=400, step_samples=32, scored_pairs=64, run_proxy=proxy)
    policy = Search(params_per_pair=1e6, momenta=(0.9,), search_fraction=0.5, cost_weight=0.05, seed=0)
    chosen, decision = policy.decide(state, context)
    assert decision.ops == ("mlp_ratio=3",) and chosen.config.mlp_ratio == 3
    scores = {c["label"]: c["rounds"][0]["score"] for c in decision.candidates}
    width_ratio = train_flops_per_sample(grown_config(MODEL, ["width=32"])) / train_flops_per_sample(MODEL)
    assert scores["width=32 (m=0.9)"] == pytest.approx(2.5 - 0.05 / 2 + 0.05 * math.log2(width_ratio))
    gains.update(width=0.0, mlp_ratio=0.0)
    assert policy.decide(state, context)[1].ops == ()


def test_a_chunk_too_small_for_the_overhead_cap_keeps_the_model_without_searching():
    state = GrowthState.capture(create_model(MODEL, seed=0))

    def proxy(grown: GrowthState, steps: int, round_: int) -> tuple[GrowthState, float, float | None]:
        raise AssertionError("no proxy may train when the cap affords no child")

    context = ChunkContext(1, pairs_seen=1000, chunk_steps=40, step_samples=32, scored_pairs=64, run_proxy=proxy)
    policy = Search(params_per_pair=1e6, momenta=(0.9,), search_fraction=0.1, cost_weight=0.05, seed=0)
    chosen, decision = policy.decide(state, context)
    assert chosen is state and decision.ops == () and decision.search_flops == 0
    assert "10% of the chunk" in decision.why and decision.left_out


def test_a_finished_search_resumed_before_the_chunk_goes_on_with_its_winner():
    """A search checkpointed after its last round is done, like one that could afford no child; only
    the second is "keep" without a search."""
    state = GrowthState.capture(create_model(MODEL, seed=0))
    search = SuccessiveHalving([Candidate(), Candidate(("mlp_ratio=3",), 0.9)], MIN_PROXY_STEPS)
    search.run_round(lambda i, c, steps: ProxyScore([2.0, 1.0][i], train_flops=1.0))
    contenders = {0: state, 1: grow_state(state, ["mlp_ratio=3"], 0.9, seed=0)}
    context = ChunkContext(1, pairs_seen=1000, chunk_steps=40, step_samples=32, scored_pairs=64,
                           resumed=(search, contenders))
    policy = Search(params_per_pair=1e6, momenta=(0.9,), search_fraction=0.1, cost_weight=0.05, seed=0)
    chosen, decision = policy.decide(state, context)
    assert decision.ops == ("mlp_ratio=3",) and chosen is contenders[1]


@pytest.mark.slow
def test_search_and_training_add_up_to_the_runs_compute(tmp_path, monkeypatch):
    """Every chunk's total is the previous total plus its training and its search; the training is
    the steps the chunk's model took (the winner's proxy steps included), and the search is every
    proxy step actually trained and every held-out scoring, less the winner's proxy steps."""
    trained = []  # (architecture, steps) of every proxy, as the run trains them
    proxy = growing.train_proxy

    def counting_proxy(optim, workers, state, inputs, steps, *args):
        trained.append((state.config, steps))
        return proxy(optim, workers, state, inputs, steps, *args)

    monkeypatch.setattr(growing, "train_proxy", counting_proxy)
    history = train(settings(tmp_path, chunks=("corpus:0", "corpus:1"), params_per_pair=60.0, **SEARCHED)).chunks
    searched = history[1]
    assert len(searched.candidates) > 1 and trained
    step_samples, total = 32, 0.0
    for before, record in zip([0, *(r.step for r in history)], history):
        flops, compute = train_flops_per_sample(record.architecture), record.compute
        assert compute.train_tflop == pytest.approx((record.step - before) * step_samples * flops / 1e12)
        total += compute.train_tflop + compute.search_tflop
        assert compute.total_tflop == pytest.approx(total)
    proxy_flops = sum(steps * step_samples * train_flops_per_sample(config) for config, steps in trained)
    scoring = sum(r["score_flops"] for c in searched.candidates for r in c["rounds"])
    winner = next(c for c in searched.candidates if c["alive"])
    winner_flops = sum(r["steps"] for r in winner["rounds"]) * step_samples * winner["rounds"][-1]["train_flops"]
    compute = searched.compute
    assert compute.search_tflop == pytest.approx((proxy_flops + scoring - winner_flops) / 1e12)
    assert 0 < searched.search_fraction == pytest.approx(
        compute.search_tflop / (compute.search_tflop + compute.train_tflop))
