"""Growth toward the compute-optimal size: the rung read off a frontier, the compound step toward
it, and the policy's choice before a chunk."""

import json
from dataclasses import replace
from types import SimpleNamespace

import pytest

from conftest import tiny_config
from growclip.growth import GrowthError, GrowthState, grow_state, grown_config, is_exact
from growclip.growth.frontier import ComputeFrontier, Rung, TrackFrontier, ops_toward
from growclip.growth.policy import ChunkContext
from growclip.model import create_model, train_flops_per_sample
from growclip.train import train
from growclip.train.chunk_plan import ChunkPlan
from test_growing import MODEL, decisions, settings
from test_growth import assert_same_function, towered_config, trained

SMALL = tiny_config(width=16, heads=1, vision_layers=1, text_layers=1, shared_layers=0, embed_dim=16)
MEDIUM = replace(SMALL, width=32, embed_dim=32, vision_layers=2, text_layers=2)
LARGE = replace(MEDIUM, width=64, heads=2, mlp_ratio=4.0, embed_dim=64, vision_layers=3, text_layers=3)
FRONTIER = ComputeFrontier((Rung(0.0, SMALL, "small"), Rung(3.0, MEDIUM, "medium"), Rung(10.0, LARGE, "large")))


@pytest.mark.parametrize("tflop, rung", [(0.5, SMALL), (2.99, SMALL), (3.0, MEDIUM), (9.9, MEDIUM),
                                         (10.0, LARGE), (1e4, LARGE)])
def test_the_compute_optimal_rung_is_read_off_the_frontier(tflop, rung):
    """With a budget per chunk, the rung is the one the frontier gives for the compute at the chunk's end."""
    policy = TrackFrontier(FRONTIER, momentum=1.0, seed=0)
    at_end = ChunkContext(1, 1000, chunk_steps=10, step_samples=100, scored_pairs=64, flops_before=0.25e12,
                          chunk_flops=tflop * 1e12 - 0.25e12)
    assert policy.decide(GrowthState.capture(create_model(SMALL)), at_end)[0].config == rung


def test_a_frontier_is_a_ladder_in_ascending_compute(tmp_path):
    with pytest.raises(GrowthError, match="ascending"):
        ComputeFrontier((Rung(3.0, MEDIUM), Rung(3.0, LARGE)))
    path = tmp_path / "frontier.json"
    path.write_text(json.dumps({"rungs": [{"tflop": 0, "model": SMALL.to_dict()},
                                          {"tflop": 3, "name": "m", "model": MEDIUM.to_dict()}]}))
    assert ComputeFrontier.load(path).rungs == (Rung(0.0, SMALL), Rung(3.0, MEDIUM, "m"))
    path.write_text(json.dumps({"rungs": [{"tflop": 0}]}))
    with pytest.raises(GrowthError, match="expected"):
        ComputeFrontier.load(path)
    corpus = ComputeFrontier.load()  # the packaged one: growable from its first rung to its last
    assert len(corpus.rungs) >= 2 and ops_toward(corpus.rungs[0].model, corpus.rungs[-1].model)


def test_the_step_toward_a_rung_is_one_compound_step_exact_where_its_parts_are():
    ops = ops_toward(SMALL, MEDIUM)
    assert ops == ["width=32", "embed_dim=32", "vision_layers+1", "text_layers+1"]
    assert is_exact(SMALL, ops) and grown_config(SMALL, ops) == MEDIUM
    model, optimizer = trained(SMALL)
    grown = grow_state(GrowthState.capture(model.eval(), optimizer), ops)
    assert_same_function(model, grown.build_model().eval())
    assert grown_config(MEDIUM, ops_toward(MEDIUM, LARGE)) == LARGE  # heads and MLP too (heads not exact)


def test_towers_of_their_own_grow_tower_by_tower_and_nothing_shrinks():
    config = towered_config()  # vision 48 wide, 3 heads; text 32 wide, 2 heads
    target = replace(config, vision_width=96, text_width=64, text_layers=3, vision_layers=1)
    ops = ops_toward(config, target)
    assert ops == ["vision_width=96", "text_width=64", "text_layers+1"]  # vision depth is not shrunk
    assert is_exact(config, ops)
    model = trained(config)[0].eval()
    assert_same_function(model, grow_state(GrowthState.capture(model), ops).build_model().eval())
    with pytest.raises(GrowthError, match="patch_size"):
        ops_toward(SMALL, replace(MEDIUM, patch_size=8))


def context(flops_before: float, chunk_samples: int = 1000) -> ChunkContext:
    return ChunkContext(1, pairs_seen=1000, chunk_steps=chunk_samples // 100, step_samples=100, scored_pairs=64,
                        flops_before=flops_before)


def test_the_policy_grows_to_the_rung_optimal_at_the_chunks_end():
    policy = TrackFrontier(FRONTIER, momentum=1.0, seed=0)
    state = GrowthState.capture(create_model(SMALL))
    kept, decision = policy.decide(state, context(flops_before=1e12))
    assert not decision.grew and kept is state
    medium_chunk = 1000 * train_flops_per_sample(MEDIUM)  # the chunk's compute if it trains MEDIUM
    grown, decision = policy.decide(state, context(flops_before=3e12 - medium_chunk))
    assert decision.ops == tuple(ops_toward(SMALL, MEDIUM)) and grown.config == MEDIUM
    assert "medium" in decision.why
    grown, decision = policy.decide(state, context(flops_before=50e12))  # straight to the top, in one step
    assert grown.config == LARGE
    kept, decision = policy.decide(GrowthState.capture(create_model(LARGE)), context(flops_before=1e12))
    assert not decision.grew  # past the rung: no shrinking


@pytest.mark.slow
def test_a_growing_run_tracks_a_frontier(tmp_path):
    bigger = replace(MODEL, width=32, embed_dim=32)
    path = tmp_path / "frontier.json"
    path.write_text(json.dumps({"rungs": [{"tflop": 0, "model": MODEL.to_dict()},
                                          {"tflop": 1e-6, "name": "w32", "model": bigger.to_dict()}]}))
    history = train(settings(tmp_path, chunks=("corpus:0", "corpus:1"), growth="frontier",
                             frontier=str(path))).chunks
    assert decisions(history) == ["keep", "width=32 embed_dim=32 (m=0.9)"]
    assert history[1].architecture == bigger


def test_a_frontier_that_does_not_apply_fails_before_training(tmp_path):
    path = tmp_path / "frontier.json"
    path.write_text(json.dumps({"rungs": [{"tflop": 0, "model": MODEL.to_dict()}]}))
    with pytest.raises(ValueError, match="only to --growth frontier"):
        settings(tmp_path, chunks=("corpus:0",), frontier=str(path))
    path.write_text(json.dumps({"rungs": [{"tflop": 0, "model": replace(MODEL, patch_size=4).to_dict()}]}))
    with pytest.raises(GrowthError, match="patch_size"):
        train(settings(tmp_path, chunks=("corpus:0", "corpus:1"), growth="frontier", frontier=str(path)))
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_with_a_compute_budget_per_chunk_the_rung_does_not_depend_on_its_own_cost():
    policy = TrackFrontier(FRONTIER, momentum=1.0, seed=0)
    state = GrowthState.capture(create_model(SMALL))
    budget = ChunkContext(1, 1000, chunk_steps=10, step_samples=100, scored_pairs=64, flops_before=2e12,
                          chunk_flops=2e12)  # 4 TFLOP at the chunk's end, whichever size trains it
    assert policy.decide(state, budget)[0].config == MEDIUM
    assert policy.decide(state, replace(budget, chunk_flops=0.5e12))[0].config == SMALL


def test_a_compute_budget_per_chunk_buys_fewer_pairs_for_a_larger_model(tmp_path):
    config = settings(tmp_path, chunks=("corpus:0", "corpus:1"), chunk_tflop=(1e-4, 3e-4))
    plan = ChunkPlan(SimpleNamespace(records=lambda chunk: 1000), 1.0, config.stream, step_samples=32)
    assert plan.flops(0) == 1e8 and plan.flops(5) == 3e8  # the last budget repeats
    small, large = plan.steps(1, SMALL), plan.steps(1, LARGE)
    assert small == int(3e8 / train_flops_per_sample(SMALL)) // 32 and large < small / 4
    with pytest.raises(ValueError, match="not both"):
        settings(tmp_path, chunks=("corpus:0",), chunk_tflop=(1.0,), chunk_samples=100)
