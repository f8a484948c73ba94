"""A run folder has one owner, and growclip deletes or overwrites only what it wrote: concurrent
runs, a user's own folders, finished runs, a kill in the middle of a save, failed starts, resuming
with nothing retyped (docs/reliability.md)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import FAULT_MODEL, cli_args, run_weights, signal_during_step, train_settings
from growclip.checkpoint import files as checkpoint
from growclip.checkpoint.files import (
    checkpoints_of,
    load_checkpoint,
    load_trainer_tensors,
    prune_checkpoints,
    resolve_checkpoint,
    save_checkpoint,
)
from growclip.cli import main
from growclip.data.tokenizer import Tokenizer
from growclip.model import create_model
from growclip.run_lock import LOCK_FILE, Holder, RunFolderError
from growclip.train import TrainConfig, train

SHORT = {"samples": 32}  # 2 steps
# `growclip ARGS` in a process that says whether it imported PyTorch (seconds of start-up) before answering
REPORTS_TORCH = ("import sys; from growclip.cli import main; code = main(sys.argv[1:]); "
                 "print('torch loaded:', 'torch' in sys.modules); sys.exit(code)")


def _wait_for(condition, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.mark.slow
def test_a_second_run_on_a_held_folder_is_refused_at_once_and_the_first_finishes(model_json, tmp_path):
    run = tmp_path / "run"
    first = train_settings(model_json, run, samples=960, save_every=5, keep_checkpoints=2)
    process = subprocess.Popen([sys.executable, "-m", "growclip", *cli_args(first)], stderr=subprocess.PIPE,
                               text=True)
    _wait_for(lambda: (run / LOCK_FILE).is_file() and (run / LOCK_FILE).read_text())  # claimed
    second = subprocess.run([sys.executable, "-c", REPORTS_TORCH, *cli_args(train_settings(model_json, run, seed=1))],
                            capture_output=True, text=True)
    assert second.returncode == 2 and second.stdout == "torch loaded: False\n"  # answered before PyTorch is loaded
    assert f"{run} is in use by pid {process.pid} on" in second.stderr and "choose another --output" in second.stderr
    with pytest.raises(RunFolderError, match=f"in use by pid {process.pid}"):  # the library's own check
        train(TrainConfig.from_dict(train_settings(model_json, run, seed=1)))
    _, first_err = process.communicate(timeout=300)
    assert process.returncode == 0, first_err
    assert [c.name for c in checkpoints_of(run)] == ["step_00000055", "step_00000060"]
    assert json.loads((run / "train_config.json").read_text())["seed"] == 0  # the first run's, untouched
    assert (run / LOCK_FILE).read_text() == ""  # released: no holder named


def test_the_lock_of_a_run_that_died_is_taken_over(model_json, tmp_path, caplog):
    run = tmp_path / "run"
    run.mkdir()
    dead = Holder("somehost", 999_999, "2026-01-01T00:00:00+00:00", "growclip train ...")
    (run / LOCK_FILE).write_text(json.dumps(dead.__dict__))  # named, but nobody holds the lock
    train(TrainConfig.from_dict(train_settings(model_json, run, **SHORT)))
    assert "taking over from pid 999999 on somehost" in caplog.text
    assert checkpoints_of(run) and (run / LOCK_FILE).read_text() == ""


def test_rotation_and_resume_leave_folders_growclip_did_not_write(model_json, tmp_path):
    run = tmp_path / "run"
    for name in ("step_0", "step_best", "step_00000007"):  # a user's, whatever their names
        (run / "checkpoints" / name).mkdir(parents=True)
        (run / "checkpoints" / name / "notes.txt").write_text("mine")
    train(TrainConfig.from_dict(train_settings(model_json, run, save_every=5, keep_checkpoints=2)))
    assert [c.name for c in checkpoints_of(run)] == ["step_00000015", "step_00000020"]
    for name in ("step_0", "step_best", "step_00000007"):
        assert (run / "checkpoints" / name / "notes.txt").read_text() == "mine"
    assert resolve_checkpoint(run).name == "step_00000020"


def _tiny_checkpoint(folder: Path) -> Path:
    model = create_model(FAULT_MODEL)
    tokenizer = Tokenizer.train(["a red square", "a blue circle"], FAULT_MODEL.vocab_size, FAULT_MODEL.context_length)
    return save_checkpoint(folder, model, tokenizer, {})


def test_rotation_keeps_a_checkpoint_holding_a_users_file_and_saving_never_replaces_a_users_folder(tmp_path):
    run = tmp_path / "run"
    steps = [_tiny_checkpoint(checkpoint.checkpoint_path(run, step)) for step in (1, 2, 3)]
    (steps[0] / "my_eval.txt").write_text("mine")
    prune_checkpoints(run, keep=1)
    assert [c.name for c in checkpoints_of(run)] == ["step_00000001", "step_00000003"]
    (tmp_path / "user").mkdir()
    (tmp_path / "user" / "data.txt").write_text("mine")
    with pytest.raises(checkpoint.CheckpointError, match="holds files growclip did not write"):
        _tiny_checkpoint(tmp_path / "user")
    assert (tmp_path / "user" / "data.txt").read_text() == "mine"


def test_a_finished_run_is_refused_without_resume_and_overwrite_deletes_only_what_growclip_wrote(model_json,
                                                                                                  tmp_path, capsys):
    run = tmp_path / "run"
    command = cli_args(train_settings(model_json, run, **SHORT))
    assert main(command) == 0
    kept = {p: p.read_bytes() for p in run.rglob("*") if p.is_file() and p.name != LOCK_FILE}
    capsys.readouterr()
    assert main(command) == 2  # the same command again
    assert "already holds a run (checkpoints/step_00000002" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in kept} == kept
    (run / "notes.txt").write_text("mine")
    (run / "checkpoints" / "step_best").mkdir()
    assert main([*command, "--overwrite", "--model", "clip-tinny"]) == 2  # a start that fails deletes nothing
    on_files = {k: v for k, v in train_settings(model_json, run, **SHORT).items() if k != "stage_sizes"}
    assert main([*cli_args({**on_files, "train_data": str(tmp_path / "missing.tsv")}), "--overwrite"]) == 2
    assert {p: p.read_bytes() for p in kept} == kept
    assert main([*command, "--overwrite", "--seed", "1"]) == 0
    assert (run / "notes.txt").read_text() == "mine" and (run / "checkpoints" / "step_best").is_dir()
    assert json.loads((run / "train_config.json").read_text())["seed"] == 1
    assert [c.name for c in checkpoints_of(run)] == ["step_00000002"]


class Killed(BaseException):
    """Stands for SIGKILL: nothing after it runs, no handler saves."""


def test_a_kill_between_retiring_a_checkpoint_and_renaming_its_replacement_loses_nothing(model_json, tmp_path,
                                                                                          monkeypatch):
    run = tmp_path / "run"
    train(TrainConfig.from_dict(train_settings(model_json, run, samples=64, save_every=2, keep_checkpoints=0)))
    newest = checkpoints_of(run)[-1]
    before = run_weights(run)
    model, tokenizer, state = load_checkpoint(newest)
    renames, rename = [], os.replace

    def rename_then_die(source, target):  # the save's second rename: its replacement into place
        renames.append(target)
        if len(renames) == 2:
            raise Killed
        rename(source, target)

    monkeypatch.setattr(checkpoint.os, "replace", rename_then_die)
    with pytest.raises(Killed):
        save_checkpoint(newest, model, tokenizer, state, load_trainer_tensors(newest))
    monkeypatch.undo()
    assert not newest.exists() and len(list(newest.parent.glob(f".{newest.name}.*"))) == 2  # both hidden
    assert main(["train", "--resume", "latest", "--output", str(run), "--no-progress"]) == 0
    assert checkpoints_of(run)[-1] == newest and not list(newest.parent.glob(".*"))
    after = run_weights(run)
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_a_start_that_fails_leaves_the_runs_settings_as_they_were(model_json, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(cli_args(train_settings(model_json, run, **SHORT))) == 0
    saved = (run / "train_config.json").read_bytes()
    resume = ["train", "--resume", "latest", "--output", str(run)]
    for mistake in (["--model", "clip-tinny"], ["--batch-size", "8"],
                    ["--train-data", str(tmp_path / "missing.tsv"), "--resume-override", "train_data"]):
        assert main([*resume, *mistake]) == 2
        assert (run / "train_config.json").read_bytes() == saved
    new = tmp_path / "new"
    on_files = {k: v for k, v in train_settings(model_json, new).items() if k != "stage_sizes"}
    assert main(cli_args({**on_files, "train_data": str(tmp_path / "missing.tsv")})) == 2
    assert not new.exists()  # a start that failed leaves no folder behind
    assert "Traceback" not in capsys.readouterr().err


@pytest.mark.slow
def test_resume_latest_alone_continues_the_run_with_its_saved_settings(model_json, tmp_path, monkeypatch):
    from growclip.train.faults import Preempted

    settings = train_settings(model_json, tmp_path / "cut", samples=160, save_every=3, lr=2e-3, seed=3)
    whole = train(TrainConfig.from_dict({**settings, "output": str(tmp_path / "whole")}))
    signal_during_step(monkeypatch, 5, signal.SIGUSR1)
    with pytest.raises(Preempted):
        train(TrainConfig.from_dict(settings))
    monkeypatch.undo()
    assert main(["train", "--resume", "latest", "--output", str(tmp_path / "cut")]) == 0
    resumed = run_weights(tmp_path / "cut")
    assert all(torch.equal(v, resumed[k]) for k, v in whole.model.state_dict().items())


@pytest.mark.slow
def test_sigterm_while_a_watched_folder_is_awaited_exits_143_at_once(model_json, tmp_path):
    watch, run = tmp_path / "incoming", tmp_path / "run"
    watch.mkdir()
    command = [sys.executable, "-m", "growclip", *cli_args(train_settings(model_json, run, watch=str(watch)))]
    command.remove("--samples")
    command.remove("320")
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    _wait_for(lambda: (run / LOCK_FILE).is_file() and (run / LOCK_FILE).read_text())
    time.sleep(1.0)  # into the wait
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)  # the wait never ends by itself: only the signal stops it
    assert process.returncode == 143 and "stopped by SIGTERM" in err, err
