"""Checkpoints written before run state had owners (main of 2026-12-02) still resume.

`data/checkpoints_before_owners` holds a fixed run saved at step 10 of 20 and a growing run saved
in the middle of its second chunk, both trained on the embedded corpus (see its README)."""

import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file

from growclip.checkpoint import Progress, Snapshot, checkpoints_of, read_checkpoint, restore, write_checkpoint
from growclip.train import TrainConfig, train

OLD = Path(__file__).parent / "data" / "checkpoints_before_owners"
SETTINGS = dict(stage_sizes=(64, 64, 64, 64), batch_size=16, warmup=2, log_every=1, eval_images_per_class=2,
                retrieval_images=8, progress=False, keep_checkpoints=0, resume="latest",
                resume_override=("model",))  # the model file lay elsewhere when they were saved
FIXED = dict(samples=320, save_every=10)
GROWING = dict(chunks=("corpus:0", "corpus:1"), growth="fixed", epochs=4, heldout=16, save_every=4)


def old_run(tmp_path: Path, name: str, **settings) -> TrainConfig:
    """A copy of the saved run, and the settings it was trained under."""
    shutil.copytree(OLD / name, tmp_path / name)
    return TrainConfig.from_dict({**SETTINGS, **settings, "model": str(OLD / "model.json"),
                                  "output": str(tmp_path / name)})


def logged_steps(run: Path) -> list[int]:
    records = map(json.loads, (run / "metrics.jsonl").read_text().splitlines())
    return [r["step"] for r in records if "loss" in r]


def test_a_fixed_run_saved_before_state_owners_resumes_where_it_stopped(tmp_path):
    config = old_run(tmp_path, "fixed", **FIXED)
    saved = load_file(OLD / "fixed/checkpoints/step_00000010/model.safetensors")
    result = train(config)
    assert result.steps == 20 and len(result.losses) == 10  # steps 11-20 only
    assert logged_steps(Path(config.run.output)) == list(range(11, 21))
    final = load_file(checkpoints_of(config.run.output)[-1] / "model.safetensors")
    assert final.keys() == saved.keys() and any(not torch.equal(final[k], saved[k]) for k in saved)


def test_a_growing_run_saved_mid_chunk_before_state_owners_finishes_its_stream(tmp_path):
    config = old_run(tmp_path, "growing", **GROWING)
    state = json.loads((OLD / "growing/checkpoints/step_00000020/state.json").read_text())
    records = train(config).chunks
    assert [r.chunk for r in records] == [0, 1] and records[-1].step == 32
    assert records[0].to_dict() == state["stream"]["history"][0]  # the first chunk's record as it was saved
    assert logged_steps(Path(config.run.output)) == list(range(21, 33))


def test_an_old_checkpoint_hands_each_owner_its_part_and_writes_back_the_same_files(tmp_path):
    """The layout did not change: every owner's part, read from the old files and written again,
    gives the same state.json and the same training tensors."""
    old = OLD / "growing/checkpoints/step_00000020"
    saved = read_checkpoint(old)
    assert saved.progress == Progress(step=4, global_step=20, samples=320, processes=1)
    owners = {name: Snapshot() for name in ("optimizer", "schedule", "rng", "grad_scaler", "data", "stream")}
    restore(saved, owners)
    assert owners["stream"].state["chunk"] == 1 and owners["data"].state["epoch"] >= 0
    settings = {name: part for name, part in saved.parts.items() if name not in owners}
    copy = write_checkpoint(tmp_path / "copy", saved.model, saved.tokenizer, saved.progress, owners, settings)
    assert json.loads((copy / "state.json").read_text()) == json.loads((old / "state.json").read_text())
    before, after = (load_file(path / "trainer.safetensors") for path in (old, copy))
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
