import json

import pytest

from conftest import tiny_config
from growclip.cli import main


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """One tiny training run from a YAML config with a CLI override, shared by the eval tests."""
    root = tmp_path_factory.mktemp("cli")
    tiny_config(image_size=16, vocab_size=400, context_length=32).to_json(root / "model.json")
    (root / "train.yaml").write_text(
        f"model: {root / 'model.json'}\nstage-sizes: [64, 64, 64, 64]\nbatch_size: 16\nsamples: 64\n"
        "warmup: 1\neval_images_per_class: 2\nretrieval_images: 8\nlr: 0.5\n")
    code = main(["train", "--config", str(root / "train.yaml"), "--lr", "1e-3", "--output", str(root / "run"),
                 "--no-progress", "--log-every", "1"])
    assert code == 0
    return root / "run"


def test_train_cli_merges_config_file_and_flags(trained_run):
    settings = json.loads((trained_run / "train_config.json").read_text())
    assert settings["lr"] == 1e-3  # the flag beat the file's 0.5
    assert settings["batch_size"] == 16 and settings["stage_sizes"] == [64, 64, 64, 64]
    lines = [json.loads(line) for line in (trained_run / "metrics.jsonl").read_text().splitlines()]
    assert len(lines) == 5  # 4 steps + final eval
    assert lines[0]["tflops_per_s"] > 0 and 0 < lines[0]["utilisation"] < 1  # readable however the model grows


def test_eval_cli_on_corpus_prints_and_writes_json(trained_run, capsys, tmp_path):
    output = tmp_path / "results.json"
    assert main(["eval", "--checkpoint", str(trained_run), "--images-per-class", "2", "--retrieval-images", "8",
                 "--output", str(output)]) == 0
    printed = capsys.readouterr().out
    assert "colour_shape" in printed and "image->text R@1" in printed
    results = json.loads(output.read_text())
    assert len(results["zeroshot"]) >= 9 and results["retrieval"]


def test_data_cli_then_eval_on_the_written_class_folders(trained_run, tmp_path, capsys):
    out = tmp_path / "corpus"
    assert main(["data", "--output", str(out), "--stages", "0,3", "--stage-sizes", "5,5,5,7",
                 "--image-size", "16", "--retrieval-images", "3", "--zeroshot-images-per-class", "1"]) == 0
    rows = (out / "stage3.tsv").read_text().splitlines()
    assert rows[0] == "filepath\ttitle" and len(rows) == 8
    assert all((out / row.split("\t")[0]).is_file() for row in rows[1:])
    assert not (out / "stage1.tsv").exists() and len((out / "val.tsv").read_text().splitlines()) == 1 + 3 * 3
    templates = tmp_path / "templates.txt"
    templates.write_text("# my prompts\na photo of a {} shape\n{} in a picture\n")
    (out / "zeroshot" / "size" / "large" / "broken.png").write_bytes(b"not a png")
    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(trained_run), "--zeroshot-data", str(out / "zeroshot" / "size"),
                 "--templates", str(templates), "--output", str(tmp_path / "size.json")]) == 0
    size = json.loads((tmp_path / "size.json").read_text())["zeroshot"]["size"]
    assert size["classes"] == 3 and size["images"] == 3 * 4 and size["skipped_unreadable"] == 1  # 4: per-class floor


def test_eval_cli_on_a_labelled_csv(trained_run, tmp_path):
    corpus = tmp_path / "corpus"
    main(["data", "--output", str(corpus), "--stages", "0", "--stage-sizes", "4,1,1,1", "--image-size", "16",
          "--retrieval-images", "0"])
    rows = [(f"corpus/stage0/{i:06d}.png", "left" if i % 2 else "right") for i in range(4)]
    (tmp_path / "labels.csv").write_text("filepath,label\n" + "".join(f"{p},{c}\n" for p, c in rows))  # open_clip's
    assert main(["eval", "--checkpoint", str(trained_run), "--zeroshot-data", str(tmp_path / "labels.csv"),
                 "--output", str(tmp_path / "csv.json")]) == 0
    result = json.loads((tmp_path / "csv.json").read_text())["zeroshot"]["labels"]
    assert result["classes"] == 2 and result["images"] == 4 and "top5" not in result
    (tmp_path / "mine.tsv").write_text("path\tclass\n" + "".join(f"{p}\t{c}\n" for p, c in rows))
    assert main(["eval", "--checkpoint", str(trained_run), "--zeroshot-data", str(tmp_path / "mine.tsv"),
                 "--csv-img-key", "path", "--csv-label-key", "class", "--output", str(tmp_path / "tsv.json")]) == 0
    assert json.loads((tmp_path / "tsv.json").read_text())["zeroshot"]["mine"] == result


@pytest.mark.parametrize("argv, message", [
    (["train", "--model", "no-such-preset"], "unknown model 'no-such-preset'"),
    (["train", "--precision", "fp32", "--samples", "1"], "less than one optimizer step"),
    (["eval", "--checkpoint", "/nonexistent"], "not a checkpoint folder"),
])
def test_cli_user_errors_are_one_clear_line(argv, message, capsys, tmp_path):
    assert main([*argv, "--output", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


@pytest.mark.parametrize("argv, message", [
    (["--growth", "auto"], "--growth applies only to a growing run: add --chunks"),
    (["--replay", "0.5", "--search-fraction", "0.3"], "--replay, --search-fraction apply only to a growing run"),
    (["--growth", "schedule", "--chunks", "corpus:0", "corpus:1", "--grow-schedule", "1:widht=64"],
     "unknown growth operator 'widht=64'"),
    (["--growth", "schedule", "--chunks", "corpus", "--grow-schedule", "0:width=512"], "K a chunk number from 1"),
    (["--growth", "schedule", "--chunks", "corpus", "--grow-schedule", "2:width=512", "3:width=256"],
     "grow schedule, chunk 3"),
    (["--chunks", "corpus", "--grow-schedule", "1:width=256"], "go together"),
    (["--device", "cuda:7"], "no such CUDA device here"),
    (["--lr", "-1"], "lr (--lr) must be a finite number > 0, got -1.0"),
    (["--lr", "inf"], "lr (--lr) must be a finite number > 0, got inf"),
    (["--wd", "nan"], "wd (--wd) must be a finite number >= 0, got nan"),
    (["--grad-clip-norm", "nan"], "grad_clip_norm (--grad-clip-norm) must be"),
    (["--beta2", "1"], "beta2 (--beta2) must be a finite number >= 0 and < 1"),
    (["--seed", "-1"], "seed (--seed) must be a finite number >= 0"),
    (["--epochs", "0"], "epochs (--epochs) must be a finite number > 0"),
    (["--stages", "7"], "each item of stages (--stages) must be a finite number >= 0 and <= 3"),
    (["--stage-sizes", "100"], "stage_sizes (--stage-sizes) needs 4 sizes"),
    (["--chunks", "corpus", "--search-momenta", "nan"], "each item of search_momenta (--search-momenta)"),
    (["--chunks", "corpus", "--search-fraction", "1"], "search_fraction (--search-fraction) must be"),
    (["--resume", "latest", "--overwrite"], "not both"),
    (["--crop-scale", "0.9,1"], "--crop-scale applies only to --train-data"),
    (["--train-data", "pairs.tsv", "--corpus-seed", "3"], "--corpus-seed applies only to the embedded corpus"),
])
def test_setting_mistakes_fail_at_once_before_any_work(argv, message, capsys, tmp_path):
    """New-user mistakes that used to train for minutes first (or silently never grow)."""
    assert main(["train", *argv, "--output", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and not (tmp_path / "x").exists()


def test_a_config_for_a_gpu_machine_builds_here_and_its_run_is_refused_before_any_work(tmp_path):
    """Settings are checked where they are written; whether this machine has the device, where it runs."""
    import torch

    from growclip.train import TrainConfig, train

    if torch.cuda.device_count() > 7:
        pytest.skip("this machine has the device")
    config = TrainConfig(device="cuda:7", output=str(tmp_path / "run"))
    assert TrainConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match=r"cuda:7.*use --device cpu or auto"):
        train(config)
    assert not (tmp_path / "run").exists()
    with pytest.raises(ValueError, match="expected auto, cpu, cuda or cuda:N"):
        TrainConfig(device="gpu0")


@pytest.mark.parametrize("flag, hint", [("--batch", "did you mean --batch-size"), ("--lrr", "did you mean --lr")])
def test_an_abbreviated_or_misspelt_flag_is_refused_with_the_nearest(flag, hint, capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_:
        main(["train", flag, "16", "--output", str(tmp_path / "x")])
    assert exit_.value.code == 2 and hint in capsys.readouterr().err and not (tmp_path / "x").exists()


def test_commands_write_into_a_folder_that_is_not_empty_only_when_asked(tmp_path, capsys):
    (tmp_path / "mine.txt").write_text("mine")
    data = ["data", "--output", str(tmp_path), "--stages", "0", "--stage-sizes", "4,4,4,4", "--retrieval-images", "0"]
    assert main(data) == 2 and "--overwrite" in capsys.readouterr().err
    assert main([*data, "--overwrite"]) == 0
    assert (tmp_path / "mine.txt").read_text() == "mine" and (tmp_path / "stage0.tsv").is_file()


def chunk_record(name="a.tsv", decision="keep"):
    from growclip.train.records import ChunkCompute, ChunkRecord

    return ChunkRecord(step=4, samples=64, chunk=0, name=name, pairs=None, architecture=tiny_config(),
                       decision=decision, grew=False, params=100_000, gflops_per_pair=0.01, search_fraction=0.0,
                       heldout_new_loss=1.0, heldout_old_loss=None, compute=ChunkCompute(0.1, 0.0, 0.1),
                       samples_per_s=None, tflops_per_s=None, summary={}, zeroshot_top1={})


def test_a_chunk_line_without_scores_reads_cleanly():
    from growclip.cli.train import chunk_line

    record = chunk_record()
    assert chunk_line(record) == (f"chunk 0 a.tsv: keep -> {tiny_config().describe()}: 0.100 M params, held-out "
                                  "loss new 1.000, search overhead 0%, 0.1 TFLOP so far")


def test_the_stream_table_keeps_its_columns_under_long_names_and_decisions():
    from growclip.cli.train import format_stream

    lines = format_stream([chunk_record(), chunk_record("shards/new-pairs-2026-12.tar", "width=48 heads=2 "
                                                        "embed_dim=48 vision_layers+1 text_layers+1 (m=0)")])
    header, *rows = lines.splitlines()
    assert len({row.index(" M ") for row in rows}) == 1
    assert {row.index(tiny_config().describe()) for row in rows} == {header.index("architecture")}


def test_bad_templates_file_names_the_line(trained_run, tmp_path, capsys):
    (tmp_path / "t.txt").write_text("a photo of a {}\nno placeholder here\n")
    assert main(["eval", "--checkpoint", str(trained_run), "--templates", str(tmp_path / "t.txt")]) == 2
    assert "t.txt:2" in capsys.readouterr().err


def test_eval_on_only_unreadable_images_is_a_clear_error(trained_run, tmp_path, capsys):
    (tmp_path / "photos" / "cat").mkdir(parents=True)
    (tmp_path / "photos" / "cat" / "a.jpg").write_bytes(b"")
    assert main(["eval", "--checkpoint", str(trained_run), "--zeroshot-data", str(tmp_path / "photos")]) == 2
    assert "none of its 1 images could be read" in capsys.readouterr().err
