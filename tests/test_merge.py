"""Forgetting and merging: the starting model's own tasks scored in every evaluation, the growth a run
applied kept as its lineage, and `growclip merge` interpolating a trained model with its start mapped
exactly into the grown architecture."""

import json

import pytest
import torch
from PIL import Image

from conftest import tiny_config
from growclip.checkpoint import read_checkpoint
from growclip.checkpoint.files import CheckpointError, save_checkpoint
from growclip.cli import main
from growclip.cli.train import chunk_line
from growclip.data.tokenizer import Tokenizer
from growclip.eval.suite import FORGETTING, RETAINED_TOP1
from growclip.growth import grow
from growclip.growth.lineage import GrowthLineage, GrowthStep, LineageError
from growclip.growth.merge import interpolate, map_start
from growclip.interop.open_clip import export_open_clip
from growclip.interop.transformers import export_transformers
from growclip.model import create_model
from growclip.train import TrainConfig, train
from growclip.train.distributed import SINGLE
from growclip.train.inputs import run_evaluation_sets
from growclip.train.merge import merge_checkpoints
from growclip.train.start import count_forgetting

MODEL = tiny_config(width=16, heads=1, mlp_ratio=1.0, vision_layers=1, text_layers=1, shared_layers=0,
                    patch_size=8, embed_dim=16)
COLOURS = {"red": (220, 30, 30), "green": (40, 180, 50), "blue": (40, 70, 230)}


def labelled_folder(path):
    """What the start "knows": flat colour images in class folders, as a user's labelled set."""
    for name, rgb in COLOURS.items():
        (path / name).mkdir(parents=True)
        for index in range(3):
            Image.new("RGB", (20 + index, 20), tuple(max(0, c - 10 * index) for c in rgb)).save(
                path / name / f"{index}.png")
    return path


def settings(tmp_path, **overrides) -> TrainConfig:
    base = dict(stage_sizes=(128, 128, 128, 128), batch_size=32, lr=3e-3, warmup=2, eval_images_per_class=2,
                retrieval_images=16, progress=False)
    return TrainConfig.from_dict({**base, **overrides})


@pytest.fixture
def start(tmp_path):
    """A starting checkpoint trained briefly on the corpus: weights and tokenizer, as an import gives."""
    (tmp_path / "model.json").write_text(json.dumps(MODEL.to_dict()))
    result = train(settings(tmp_path, model=str(tmp_path / "model.json"), stages=(0,), samples=64,
                            output=str(tmp_path / "start")))
    return result.checkpoint


def embeddings(model, tokenizer):
    torch.manual_seed(1)
    images = torch.randn(3, 3, model.config.image_size, model.config.image_size)
    with torch.no_grad():
        return torch.cat([model.encode_image(images), model.encode_text(tokenizer(["a red circle", "two blue"]))])


def test_a_grown_run_keeps_its_lineage_counts_forgetting_and_merges_back(tmp_path, start, capsys):
    known = labelled_folder(tmp_path / "known")  # the schedule applies to the start's architecture, not --model's
    run = train(settings(tmp_path, resume=str(start), chunks=("corpus:0", "corpus:1"), growth="schedule",
                         grow_schedule=("1:width=32", "1:text_layers+1,at=0"), momentum=0.5, heldout=16,
                         forgetting_data=str(known), output=str(tmp_path / "grown")))
    for record in run.chunks:  # the start's own task, beside the new data's, in every chunk record
        assert 0 <= record.summary[RETAINED_TOP1] <= 1 and FORGETTING in record.summary
        assert f"retained {record.summary[RETAINED_TOP1]:.3f} (forgetting " in chunk_line(record)
    first = read_checkpoint(tmp_path / "grown")
    begun = first.part("forgetting")["retained_start"]["known"]
    assert run.chunks[-1].summary[FORGETTING] == pytest.approx(begun - run.chunks[-1].summary[RETAINED_TOP1])
    steps = GrowthLineage.from_part(first.parts["growth"]).steps
    assert [(s.ops, s.momentum) for s in steps] == [(("width=32", "text_layers+1,at=0"), 0.5)]
    assert main(["report", str(tmp_path / "grown")]) == 0
    assert "retained top-1 (forgetting)" in (tmp_path / "grown" / "report" / "report.md").read_text()

    saved_start = read_checkpoint(start)
    for ratio in ("0", "1"):
        assert main(["merge", "--start", str(start), "--trained", str(tmp_path / "grown"), "--ratio", ratio,
                     "--output", str(tmp_path / f"merged{ratio}")]) == 0
    at_start, at_end = (read_checkpoint(tmp_path / f"merged{r}").model for r in "01")
    assert at_start.config == first.model.config  # the grown architecture, the start's function (m = 1)
    torch.testing.assert_close(embeddings(at_start, first.tokenizer), embeddings(saved_start.model, first.tokenizer),
                               atol=1e-5, rtol=0)
    for name, tensor in first.model.state_dict().items():
        assert torch.equal(at_end.state_dict()[name], tensor), name

    capsys.readouterr()
    assert main(["merge", "--start", str(start), "--trained", str(tmp_path / "grown"), "--ratios", "0,0.5,1",
                 "--forgetting-data", str(known), "--images-per-class", "2", "--retrieval-images", "16",
                 "--output", str(tmp_path / "chosen")]) == 0
    record = read_checkpoint(tmp_path / "chosen").parts["merge"]
    scores = {point["ratio"]: point["score"] for point in record["sweep"]}
    assert record["ratio"] == max(scores, key=scores.get) and record["sweep"][0][FORGETTING] == pytest.approx(0)
    assert "forgetting" in capsys.readouterr().out


def test_merge_refuses_a_model_that_did_not_grow_from_the_start(tmp_path, capsys):
    tokenizer = Tokenizer.train(["a red circle", "two blue squares"] * 20, 300, 12)
    save_checkpoint(tmp_path / "a", create_model(MODEL), tokenizer, {})
    save_checkpoint(tmp_path / "b", create_model(tiny_config(width=24, heads=1, mlp_ratio=1.0, vision_layers=1,
                                                             text_layers=1, shared_layers=0, patch_size=8,
                                                             embed_dim=16)), tokenizer, {})
    assert main(["merge", "--start", str(tmp_path / "a"), "--trained", str(tmp_path / "b"), "--ratio", "0.5",
                 "--output", str(tmp_path / "m")]) == 2
    assert "not the trained model's" in capsys.readouterr().err and not (tmp_path / "m").exists()


def test_the_python_api_writes_into_a_folder_of_other_files_only_when_asked(tmp_path):
    """As the commands do: merge and export refuse a folder that is not empty, and with overwrite
    replace only their own files (a checkpoint, only a growclip checkpoint)."""
    tokenizer = Tokenizer.train(["a red circle", "two blue squares"] * 20, 300, 12)
    save_checkpoint(tmp_path / "a", create_model(MODEL), tokenizer, {})
    saved = read_checkpoint(tmp_path / "a")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "config.json").write_text("a user's file")
    writers = {"merge": lambda **kw: merge_checkpoints(saved, saved, mine, 0.5, **kw),
               "open_clip": lambda **kw: export_open_clip(tmp_path / "a", mine, **kw),
               "transformers": lambda **kw: export_transformers(tmp_path / "a", mine / "hf", **kw)}
    (mine / "hf").mkdir()
    (mine / "hf" / "config.json").write_text("a user's file")
    for write in writers.values():
        with pytest.raises(ValueError, match="already exists and is not empty"):
            write()
    assert sorted(p.name for p in mine.rglob("*")) == ["config.json", "config.json", "hf"]
    writers["open_clip"](overwrite=True)
    assert (mine / "config.json").read_text() == "a user's file" and (mine / "open_clip_model.safetensors").is_file()
    with pytest.raises(CheckpointError, match="holds files growclip did not write"):  # a checkpoint folder is its own
        writers["merge"](overwrite=True)


def test_only_function_preserving_steps_map_a_start():
    start = create_model(MODEL)
    with pytest.raises(LineageError, match="does not preserve"):
        map_start(start, [GrowthStep(("width=24",), 1.0, 0, MODEL)])  # not a whole multiple
    with pytest.raises(LineageError, match="retrained from zero"):
        map_start(start, [GrowthStep(("width=24",), 1.0, 0, MODEL, retrain=True)])
    grown = grow(start, ["width=32"], momentum=1.0, seed=3)
    mapped = map_start(start, [GrowthStep(("width=32",), 0.5, 3, MODEL)])  # PIM left out, the step's seed kept
    for name, tensor in grown.state_dict().items():
        assert torch.equal(mapped.state_dict()[name], tensor)
    half = interpolate(mapped, grown, 0.5)
    assert torch.allclose(half.logit_scale, mapped.logit_scale)


def test_a_lineage_reads_what_grow_wrote_before_lineages_were_kept():
    record = {"ops": ["width=24"], "momentum": 0.9, "seed": 0, "function_preserving": False, "from": MODEL.to_dict()}
    lineage = GrowthLineage.from_part([record])
    assert lineage.steps == [GrowthStep(("width=24",), 0.9, 0, MODEL)]
    assert GrowthLineage.from_part(lineage.state_dict()) == lineage
    with pytest.raises(LineageError, match="growth records differ"):
        GrowthLineage().since(lineage, MODEL, MODEL)


def test_a_resumed_run_counts_forgetting_from_its_own_start(tmp_path, start):
    known = labelled_folder(tmp_path / "known")
    config = settings(tmp_path, resume=str(start), stages=(0,), samples=128, forgetting_data=str(known),
                      output=str(tmp_path / "on"))
    result = train(config)
    saved = read_checkpoint(result.checkpoint)
    assert result.eval.summary[FORGETTING] == pytest.approx(
        saved.part("forgetting")["retained_start"]["known"] - result.eval.summary[RETAINED_TOP1])
    evals = run_evaluation_sets(config.data, config.eval, MODEL.image_size, True)
    owners = count_forgetting(config, evals, lambda: pytest.fail("measured again"), saved.tokenizer, saved, SINGLE)
    assert evals.retained_start == saved.part("forgetting")["retained_start"] and "forgetting" in owners
