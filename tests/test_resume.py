"""Resumable runs: kill-and-resume equality, checkpoint safety, pruning, logs and the report."""

import json
import os
import pickle
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from datafiles import BAD_TABLE_ROWS, write_bad_table, write_images, write_shards, write_table
from growclip.checkpoint.files import load_trainer_tensors
from growclip.cli import main
from growclip.train import CheckpointError

MODEL = {"width": 32, "heads": 2, "mlp_ratio": 2.0, "vision_layers": 1, "text_layers": 1, "shared_layers": 0,
         "embed_dim": 16, "patch_size": 4, "image_size": 16, "context_length": 12, "vocab_size": 300}


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """A table with bad records plus shards, and a model config file."""
    root = tmp_path_factory.mktemp("data")
    write_bad_table(root / "table" / "pairs.tsv", 30)
    write_shards(root / "shards", 14, per_shard=5, start=40)
    (root / "model.json").write_text(json.dumps(MODEL))
    return root


def train_args(data: Path, output: Path, *extra: str) -> list[str]:
    return ["train", "--model", str(data / "model.json"), "--train-data",
            f"{data}/table/pairs.tsv::{data}/shards/shard-{{000..002}}.tar", "--batch-size", "8",
            "--samples", "160", "--workers", "2", "--warmup", "3", "--log-every", "2", "--precision", "bf16",
            "--output", str(output), "--no-progress", *extra]


def final_weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(run / "checkpoints" / "step_00000020" / "model.safetensors")


@pytest.mark.slow
def test_a_run_killed_at_a_random_step_resumes_to_the_same_weights(data, tmp_path):
    assert main(train_args(data, tmp_path / "whole")) == 0
    killed = tmp_path / "killed"
    kill_after = random.Random(os.getpid()).randint(2, 15)  # a random step, logged if the test fails
    command = [sys.executable, "-m", "growclip", *train_args(data, killed, "--save-every", "1")]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not (killed / "checkpoints" / f"step_{kill_after:08d}").exists() and process.poll() is None:
        assert time.monotonic() < deadline, "the training subprocess made no progress"
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL, f"the run ended before step {kill_after}"
    assert not (killed / "checkpoints" / "step_00000020").exists()
    assert main(train_args(data, killed, "--save-every", "1", "--resume", "latest")) == 0
    whole, resumed = final_weights(tmp_path / "whole"), final_weights(killed)
    assert whole.keys() == resumed.keys()
    for name in whole:
        assert torch.equal(whole[name], resumed[name]), f"{name} differs after a kill at step {kill_after}"
    steps = [r["step"] for r in map(json.loads, (killed / "metrics.jsonl").read_text().splitlines()) if "loss" in r]
    assert steps == list(range(2, 21, 2))  # the log reads as one uninterrupted run


@pytest.mark.slow
def test_keeps_the_last_k_checkpoints_and_logs_skips(data, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(train_args(data, run, "--save-every", "3", "--keep-checkpoints", "2", "--report-to",
                           "tensorboard", "--eval-every", "10")) == 0
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step_00000018", "step_00000020"]
    out = capsys.readouterr().out
    assert "skipped" in out and "2 unreadable image" in out and "1 missing column" in out
    final = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    assert final["final"] and all(final["skipped_by_reason"][k] >= v for k, v in BAD_TABLE_ROWS.items())
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    assert main(["report", str(run)]) == 0
    for name in ("loss.png", "lr.png", "report.md"):
        assert (run / "report" / name).stat().st_size > 0
    assert "unreadable image" in (run / "report" / "report.md").read_text()


def test_resume_reads_nothing_through_pickle(data, tmp_path, monkeypatch):
    run = tmp_path / "run"
    assert main(train_args(data, run, "--samples", "32")) == 0

    def refuse(*args, **kwargs):
        raise AssertionError("a checkpoint was unpickled")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(torch, "load", refuse)
    longer = ("--samples", "48", "--resume", "latest", "--resume-override", "samples")
    assert main(train_args(data, run, *longer, "--workers", "0")) == 2  # lanes
    assert main(train_args(data, run, *longer)) == 0
    assert (run / "checkpoints" / "step_00000006").is_dir()


def test_truncated_training_state_is_a_clear_error(data, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(train_args(data, run, "--samples", "32")) == 0
    trainer = run / "checkpoints" / "step_00000004" / "trainer.safetensors"
    trainer.write_bytes(trainer.read_bytes()[:500])
    with pytest.raises(CheckpointError, match=r"trainer\.safetensors: unreadable or truncated"):
        load_trainer_tensors(run)
    assert main(train_args(data, run, "--samples", "48", "--resume", "latest")) == 2
    assert "trainer.safetensors: changed since the checkpoint was saved" in capsys.readouterr().err


def test_wrong_column_fails_before_training(tmp_path, capsys):
    rows = write_images(tmp_path / "images", 4)
    table = write_table(tmp_path / "pairs.csv", [(f"images/{n}", c) for n, c in rows], separator=",",
                        header=("image", "caption"))
    assert main(["train", "--model", "clip-tiny", "--train-data", str(table), "--output", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "no column 'filepath' (--csv-img-key); the columns are ['image', 'caption']" in err
    assert not (tmp_path / "r" / "checkpoints").exists()


def test_a_crash_while_writing_a_checkpoint_leaves_the_previous_one(data, tmp_path, monkeypatch):
    from growclip.checkpoint import files as checkpoint

    run = tmp_path / "run"
    assert main(train_args(data, run, "--samples", "32")) == 0

    def crash(*args, **kwargs):
        raise OSError("disk full")

    longer = ("--samples", "48", "--resume", "latest", "--resume-override", "samples")
    monkeypatch.setattr(checkpoint.Tokenizer, "save", crash)  # fails half-way through the folder
    assert main(train_args(data, run, *longer)) == 2
    assert [p.name for p in checkpoint.checkpoints_of(run)] == ["step_00000004"]
    assert not list((run / "checkpoints").glob(".step_*"))  # the half-written folder is gone too
    monkeypatch.undo()
    assert main(train_args(data, run, *longer)) == 0
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step_00000004", "step_00000006"]


def test_eval_on_val_data_drops_unreadable_images_with_their_captions(data, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(train_args(data, run, "--samples", "32")) == 0
    rows = write_images(tmp_path / "val", 6)
    (tmp_path / "val" / rows[2][0]).write_bytes(b"broken")
    table = write_table(tmp_path / "val.tsv", [(f"val/{n}", c) for n, c in rows] + [("val/img0000.png", "again")])
    assert main(["eval", "--checkpoint", str(run), "--val-data", str(table), "--output", str(tmp_path / "e.json")]) == 0
    assert "5 images, 6 captions; skipped 1 record: 1 unreadable image" in capsys.readouterr().out
    recall = json.loads((tmp_path / "e.json").read_text())["retrieval"]["val"]
    assert recall["text_to_image_R@5"] == 1.0  # every caption's image among the top 5 of the 5 kept
