"""Fault injection: every ordinary fault either keeps the run and its records, or stops with one
clear line; nothing is lost silently (docs/reliability.md)."""

import io
import json
import os
import signal
import subprocess
import sys
import time
from functools import partial

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from conftest import FAULT_MODEL as MODEL
from conftest import cli_args, signal_during_step, tiny_config
from conftest import run_weights as weights
from conftest import train_settings as settings
from datafiles import write_shards
from growclip.checkpoint import files as checkpoint
from growclip.checkpoint.files import checkpoints_of, save_checkpoint
from growclip.cli import main
from growclip.data.chunks import ChunkStream
from growclip.data.pairs import DataError, Skip, decode_image
from growclip.data.sources.shards import ShardSource
from growclip.data.sources.table import TableSource
from growclip.data.transforms import CenterCrop
from growclip.train import CheckpointError, TrainConfig, load_checkpoint, train
from growclip.train.faults import NonFiniteError, Preempted

RECORD_RNG = partial(np.random.default_rng, 0)  # a record's augmentation generator, as the loader passes it

# -- preemption ---------------------------------------------------------------------------------

@pytest.mark.slow
def test_sigterm_saves_exits_143_and_the_resumed_run_is_bit_identical(model_json, tmp_path):
    """The preemption recipe of docs/reliability.md: the same command, with --resume latest, run again."""
    whole = tmp_path / "whole"
    assert main(cli_args(settings(model_json, whole))) == 0
    cut = tmp_path / "cut"
    command = [sys.executable, "-m", "growclip", *cli_args(settings(model_json, cut, resume="latest"))]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        metrics = cut / "metrics.jsonl"
        if metrics.is_file() and len(metrics.read_text().splitlines()) >= 3:
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 143, err
    assert "stopped by SIGTERM" in err and checkpoints_of(cut)
    assert checkpoints_of(cut)[-1].name < "step_00000020"  # stopped before the end
    assert subprocess.run(command, capture_output=True).returncode == 0
    a, b = weights(whole), weights(cut)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_sigusr1_stops_at_the_next_step_with_a_checkpoint(model_json, tmp_path, monkeypatch):
    signal_during_step(monkeypatch, 5, signal.SIGUSR1)  # SLURM's warning arrives during step 5
    with pytest.raises(Preempted) as stop:
        train(TrainConfig.from_dict(settings(model_json, tmp_path / "run")))
    assert stop.value.exit_code == 128 + signal.SIGUSR1
    assert [c.name for c in checkpoints_of(tmp_path / "run")] == ["step_00000005"]
    assert signal.getsignal(signal.SIGUSR1) is signal.SIG_DFL  # the usual handler is back


def test_checkpoints_every_few_minutes(model_json, tmp_path):
    train(TrainConfig.from_dict(settings(model_json, tmp_path / "run", samples=160, save_every_minutes=1e-9,
                                         keep_checkpoints=0)))
    assert len(checkpoints_of(tmp_path / "run")) == 10  # every step, at this rate


# -- non-finite steps ---------------------------------------------------------------------------

def _loss_turning_nan(monkeypatch, from_call: int, to_call: int = 10**9) -> None:
    from growclip.train import step

    calls = []

    def loss(*args, **kwargs):
        calls.append(1)
        value = step_loss(*args, **kwargs)
        return value * float("nan") if from_call <= len(calls) < to_call else value

    step_loss = step.clip_loss
    monkeypatch.setattr(step, "clip_loss", loss)


def test_a_nan_step_is_skipped_and_counted(model_json, tmp_path, monkeypatch):
    _loss_turning_nan(monkeypatch, 5, 6)
    result = train(TrainConfig.from_dict(settings(model_json, tmp_path / "run", samples=160)))
    lines = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert lines[-2]["nonfinite_steps"] == 1 and np.isnan(result.losses[4])
    assert all(torch.isfinite(t).all() for t in weights(tmp_path / "run").values())


def test_divergence_stops_and_keeps_the_last_good_checkpoint(model_json, tmp_path, monkeypatch):
    _loss_turning_nan(monkeypatch, 8)
    run = tmp_path / "run"
    config = settings(model_json, run, save_every=2, keep_checkpoints=1)
    with pytest.raises(NonFiniteError, match=r"step 12: loss or gradients non-finite for 5 steps in a row"):
        train(TrainConfig.from_dict(config))
    assert [c.name for c in checkpoints_of(run)] == ["step_00000010"]  # the rotation kept the good one
    model, _, _ = load_checkpoint(run)
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_non_finite_weights_are_never_saved_nor_loaded(tmp_path):
    from growclip.data.tokenizer import Tokenizer
    from growclip.model import create_model

    model = create_model(MODEL)
    tokenizer = Tokenizer.train(["a red square", "a blue circle"], MODEL.vocab_size, MODEL.context_length)
    path = save_checkpoint(tmp_path / "ok", model, tokenizer, {})
    with torch.no_grad():
        model.text_head.proj.weight[0, 0] = float("nan")
    with pytest.raises(CheckpointError, match="non-finite weights"):
        save_checkpoint(tmp_path / "nan", model, tokenizer, {})
    assert not (tmp_path / "nan").exists()
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, path / "model.safetensors")
    (path / "hashes.json").unlink()  # an older checkpoint, without hashes
    assert main(["eval", "--checkpoint", str(path)]) == 2


# -- records --------------------------------------------------------------------------------------

def test_a_stray_quote_in_a_tsv_is_a_character_not_a_field(tmp_path):
    rows = [(f"img{i:04d}.png", f"caption {i}") for i in range(600)]
    rows[10] = (rows[10][0], 'a "quoted word and no end')
    path = tmp_path / "pairs.tsv"
    path.write_text("filepath\ttitle\n" + "".join(f"{p}\t{c}\n" for p, c in rows))
    table = TableSource(path)
    assert len(table) == 600 and table.texts[10] == 'a "quoted word and no end' and not table.skipped


def test_an_unclosed_quote_in_a_csv_is_skipped_and_every_swallowed_line_counted(tmp_path):
    lines = [f"img{i:04d}.png,caption {i}" for i in range(50)]
    lines[20] = 'img0020.png,"an unclosed quote'
    lines[30] = 'img0030.png,"a closing one" here'  # the reader ends the field here
    path = tmp_path / "pairs.csv"
    path.write_text("filepath,title\n" + "\n".join(lines) + "\n")
    table = TableSource(path)
    assert len(table) + sum(table.skipped.values()) == 50
    assert table.skipped["malformed row"] == 11 and len(table) == 39


def test_a_repeated_header_is_refused(tmp_path):
    path = tmp_path / "pairs.csv"
    path.write_text("filepath,title,title\na.png,x,y\n")
    with pytest.raises(DataError, match=r"header names \['title'\] more than once"):
        TableSource(path)


def test_a_tar_cut_in_the_middle_is_counted(tmp_path):
    write_shards(tmp_path, 20, per_shard=20)
    shard = next(tmp_path.glob("*.tar"))
    data = shard.read_bytes()
    shard.write_bytes(data[: len(data) // 2 + 700])  # inside a member
    source = ShardSource(str(shard))
    records = list(source.records(str(shard)))
    crop = CenterCrop(16)
    loaded = [source.load(r, crop, RECORD_RNG) if isinstance(r, dict) else r for r in records]
    reasons = [item.reason for item in loaded if isinstance(item, Skip)]
    assert "cut-off shard" in reasons
    assert len(loaded) - reasons.count("cut-off shard") == source.count()  # every sample with a header


@pytest.mark.parametrize("pixels", [np.full((8, 8), 60_000, dtype=np.uint16), np.full((8, 8), 0.5, dtype=np.float32)])
def test_images_that_would_be_altered_by_the_conversion_are_skipped(pixels):
    """16-bit and float images: converting them to 8-bit RGB would clip them to white."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="tiff")
    result = decode_image(buffer.getvalue(), CenterCrop(8), RECORD_RNG)
    assert isinstance(result, Skip) and result.reason == "unsupported image mode"


def _encoded(image: Image.Image, format: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format, **options)
    return buffer.getvalue()


def test_images_are_read_as_a_viewer_shows_them():
    """Turned upright by their EXIF orientation; transparent parts over white, not their hidden colour."""
    pixels = np.zeros((16, 16, 3), dtype=np.uint8)
    pixels[:8] = (255, 0, 0)  # stored: red on top
    exif = Image.Exif()
    exif[0x0112] = 3  # "rotated 180": a viewer shows red at the bottom
    upright = decode_image(_encoded(Image.fromarray(pixels), "jpeg", exif=exif), CenterCrop(16), RECORD_RNG)
    assert upright[0, 8, 0] < 50 and upright[15, 8, 0] > 200
    clear = np.zeros((8, 8, 4), dtype=np.uint8)  # transparent black
    over_white = decode_image(_encoded(Image.fromarray(clear), "png"), CenterCrop(8), RECORD_RNG)
    assert (over_white == 255).all()


def test_a_gzipped_shard_is_read_whole_and_a_cut_one_is_counted(tmp_path):
    import gzip

    write_shards(tmp_path, 10, per_shard=10)
    plain = next(tmp_path.glob("*.tar"))
    packed = tmp_path / "packed.tar.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    reasons = [r.reason for r in ShardSource(str(packed)).records(str(packed)) if isinstance(r, Skip)]
    assert reasons == []
    packed.write_bytes(packed.read_bytes()[: packed.stat().st_size // 2])
    reasons = [r.reason for r in ShardSource(str(packed)).records(str(packed)) if isinstance(r, Skip)]
    assert "cut-off shard" in reasons


def test_captions_whose_image_cannot_be_read_are_counted_not_dropped(tmp_path):
    from growclip.data.sources.folder import FolderSource

    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    for name in ("a", "b", "c"):
        (tmp_path / f"{name}.txt").write_text(f"caption {name}")
    (tmp_path / "b.heic").write_bytes(b"a format the folder reader does not take")
    (tmp_path / "a.json").write_text("{}")  # metadata beside a pair: not a pair
    source = FolderSource(tmp_path)
    assert len(source) == 1 and source.skipped == {"unsupported image format": 1, "missing image": 1}


def test_a_sidecar_caption_saved_with_a_byte_order_mark_reads_as_its_words():
    from growclip.data.pairs import clean_caption

    assert clean_caption("\ufeffa red circle\r\n".encode()) == "a red circle"


def test_a_csv_field_over_the_size_limit_is_a_malformed_row(tmp_path):
    path = tmp_path / "pairs.csv"
    path.write_text("filepath,title\na.png,fine\nb.png," + "x" * 200_000 + "\nc.png,fine too\n")
    table = TableSource(path)
    assert table.texts == ["fine", "fine too"] and table.skipped["malformed row"] == 1


def test_a_16_bit_labelled_image_is_skipped_not_clipped(tmp_path):
    from growclip.data.labelled import LabelledImages

    Image.fromarray(np.full((8, 8), 60_000, dtype=np.uint16)).save(tmp_path / "deep.tif")
    Image.new("RGB", (8, 8), (0, 128, 0)).save(tmp_path / "plain.png")
    images = LabelledImages([tmp_path / "deep.tif", tmp_path / "plain.png"], [0, 1], 8)
    assert images[0] is None and images[1][1] == 1


# -- the watched folder -------------------------------------------------------------------------

def test_a_watched_chunk_keeps_its_number_when_an_earlier_name_arrives_later(tmp_path):
    watch = tmp_path / "incoming"
    watch.mkdir()
    (watch / "chunk_2.tsv").write_text("filepath\ttitle\n")
    (watch / "README.md").write_text("notes")  # foreign: ignored, never fatal
    os.utime(watch / "chunk_2.tsv", (time.time() - 60, time.time() - 60))
    stream = ChunkStream(watch=watch, poll_seconds=0.01)
    assert stream.get(0) == str(watch / "chunk_2.tsv")
    (watch / "chunk_10.tsv").write_text("filepath\ttitle\n")  # sorts first, arrives second
    assert stream.get(1) == str(watch / "chunk_10.tsv") and stream.get(0) == str(watch / "chunk_2.tsv")
    resumed = ChunkStream(watch=watch, taken=list(stream.taken))
    assert [resumed.get(0), resumed.get(1)] == stream.taken
    (watch / "END").touch()
    assert stream.get(2) is None


def test_a_chunk_still_being_written_waits_until_it_settles(tmp_path):
    watch = tmp_path / "incoming"
    watch.mkdir()
    table = watch / "00.tsv"
    table.write_text("filepath\ttitle\n")
    stream = ChunkStream(watch=watch, poll_seconds=0.01, settle_seconds=3600)
    assert stream.get(0, wait=False) is None  # seen once: not yet known to be complete
    assert stream.get(0, wait=False) == str(table)  # unchanged since: taken
    (watch / "01.tsv").write_text("filepath\ttitle\n")
    assert stream.get(1, wait=False) is None
    with (watch / "01.tsv").open("a") as handle:
        handle.write("a.png\tmore\n")  # still growing
    assert stream.get(1, wait=False) is None


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGUSR1, signal.SIGINT])
def test_a_stop_request_ends_a_watched_folder_wait_at_once(tmp_path, signum):
    """A signal while the next chunk is awaited: the run stops as it does between steps (exit 128 + signal)."""
    import threading

    from growclip.train.faults import pause, preemption_signals

    (tmp_path / "incoming").mkdir()
    poll_seconds = 120  # a wait that sleeps through the signal lasts this long: far beyond any busy machine's delay
    stream = ChunkStream(watch=tmp_path / "incoming", poll_seconds=poll_seconds, sleep=pause)
    with preemption_signals(), pytest.raises(Preempted) as stop:
        threading.Timer(0.3, os.kill, (os.getpid(), signum)).start()
        start = time.monotonic()
        stream.get(0)
    assert time.monotonic() - start < poll_seconds / 4 and stop.value.exit_code == 128 + signum


def test_an_empty_folder_does_not_hold_up_the_end_of_a_watched_stream(tmp_path):
    watch = tmp_path / "incoming"
    (watch / "copying_into_me").mkdir(parents=True)
    stream = ChunkStream(watch=watch, poll_seconds=0.01)
    assert stream.get(0, wait=False) is None and not stream.ended()  # it may still be filled: waited for
    (watch / "END").touch()
    assert stream.get(0) is None  # the stream ends: the empty folder is reported and ignored


# -- resume ----------------------------------------------------------------------------------------

def test_resume_with_changed_settings_is_refused_unless_overridden(model_json, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(cli_args(settings(model_json, run, samples=64))) == 0
    capsys.readouterr()
    changed = settings(model_json, run, samples=64, batch_size=8, seed=3, resume="latest")
    assert main(cli_args(changed)) == 2
    err = capsys.readouterr().err
    assert "batch_size 16 -> 8" in err and "seed 0 -> 3" in err and "--resume-override batch_size seed" in err
    assert main([*cli_args(changed), "--resume-override", "batch_size", "seed"]) == 0


def test_an_edited_checkpoint_is_refused(model_json, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(cli_args(settings(model_json, run, samples=32))) == 0
    config = checkpoints_of(run)[-1] / "config.json"
    config.write_text(config.read_text().replace('"heads": 2', '"heads": 4'))
    assert main(["eval", "--checkpoint", str(run)]) == 2
    assert "config.json: changed since the checkpoint was saved" in capsys.readouterr().err


# -- resources and the environment ---------------------------------------------------------------

def test_growth_beyond_the_machines_memory_fails_before_allocating(model_json, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(cli_args(settings(model_json, run, samples=32))) == 0
    capsys.readouterr()
    assert main(["grow", "--checkpoint", str(run), "--op", "text_layers+9999999", "--output", str(tmp_path / "g")]) == 2
    assert "GiB" in capsys.readouterr().err and not (tmp_path / "g").exists()


@pytest.mark.parametrize("ratio", ["NaN", "Infinity", '"4"'])
def test_a_model_config_with_a_non_finite_number_is_one_line(tmp_path, capsys, ratio):
    """JSON's NaN and Infinity parse as floats; they must not reach the layer sizes."""
    (tmp_path / "model.json").write_text(f'{{"width": 32, "heads": 2, "mlp_ratio": {ratio}}}')
    assert main(["train", "--model", str(tmp_path / "model.json"), "--output", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "mlp_ratio must be a finite number" in err and "Traceback" not in err and not (tmp_path / "x").exists()


def test_a_model_too_big_for_memory_is_one_line(tmp_path, capsys):
    tiny_config(width=2**20, heads=4).to_json(tmp_path / "huge.json")
    assert main(["train", "--model", str(tmp_path / "huge.json"), "--output", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "GiB" in err and "Traceback" not in err


def test_an_output_that_cannot_be_written_is_one_line_before_any_work(model_json, tmp_path, capsys):
    (tmp_path / "a_file").write_text("")  # a folder cannot be made inside it, whoever runs the test
    assert main(cli_args(settings(model_json, tmp_path / "a_file" / "run"))) == 2
    err = capsys.readouterr().err
    assert "--output" in err and "cannot write there" in err and "Traceback" not in err


def test_a_failed_save_leaves_no_partial_folder_and_the_next_start_clears_old_ones(model_json, tmp_path,
                                                                                    monkeypatch):
    run = tmp_path / "run"
    (run / "checkpoints" / ".step_00000004.tmp123").mkdir(parents=True)  # from a crash
    train(TrainConfig.from_dict(settings(model_json, run, samples=32)))
    assert not list((run / "checkpoints").glob(".*"))

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint, "save_file", full_disk)
    with pytest.raises(CheckpointError, match="No space left on device"):
        train(TrainConfig.from_dict(settings(model_json, tmp_path / "full", samples=32)))
    assert not list((tmp_path / "full" / "checkpoints").glob(".*"))
