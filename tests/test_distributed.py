"""Two gloo processes on this machine: the gathered local loss, and 2-rank runs (fixed and growing)
against 1-rank ones on the same global batch."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from safetensors.torch import load_file
from torch.nn.parallel import DistributedDataParallel

from conftest import tiny_config
from growclip.model import create_model
from growclip.model.loss import clip_loss
from growclip.train.metrics import read_metrics

MODEL = tiny_config(vision_layers=1, text_layers=1, shared_layers=1)
BATCH = 6  # per rank


def _leave() -> None:
    """Both ranks at the same point first: gloo can abort a rank ("terminate called without an
    active exception") that tears its pairs down while the other rank is still writing."""
    dist.barrier()
    dist.destroy_process_group()


def _join(rank: int, world: int, rendezvous: str) -> None:
    """As torchrun would set it up; a rendezvous file rather than a TCP port, which another
    process could take between choosing it and binding it."""
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=world)


def _inputs() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(2 * BATCH, 3, MODEL.image_size, MODEL.image_size, generator=generator)
    tokens = torch.randint(3, MODEL.vocab_size, (2 * BATCH, MODEL.context_length), generator=generator)
    tokens[:, -3:] = 0
    return images, tokens


def _gathered_loss_worker(rank: int, rendezvous: str, out: str) -> None:
    _join(rank, 2, rendezvous)
    model = DistributedDataParallel(create_model(MODEL, seed=0))
    images, tokens = (x[rank * BATCH:(rank + 1) * BATCH] for x in _inputs())
    loss = clip_loss(*model(images, tokens), distributed=True)
    loss.backward()  # DDP averages the gradients of the two local losses
    if rank == 0:
        torch.save({n: p.grad for n, p in model.module.named_parameters()}, out)
    _leave()


def test_the_gathered_local_loss_and_its_gradient_equal_one_process_on_the_whole_batch(tmp_path):
    out = tmp_path / "rank0.pt"
    mp.spawn(_gathered_loss_worker, args=(str(tmp_path / "rendezvous"), str(out)), nprocs=2)
    model = create_model(MODEL, seed=0)
    loss = clip_loss(*model(*_inputs()))
    loss.backward()
    grads = torch.load(out)  # DDP's average of the two local losses' gradients: the whole batch's
    for name, parameter in model.named_parameters():
        torch.testing.assert_close(grads[name], parameter.grad, atol=1e-5, rtol=1e-4, msg=name)


def _run_worker(rank: int, world: int, rendezvous: str, settings: dict, out: str) -> None:
    from growclip.train import TrainConfig, train

    _join(rank, world, rendezvous)
    result = train(TrainConfig.from_dict(settings))
    torch.save({n: t.clone() for n, t in result.model.state_dict().items()}, f"{out}.rank{rank}")
    _leave()


def _settings(tmp_path: Path, output: str, **overrides) -> dict:
    tiny_config(vision_layers=1, text_layers=1, shared_layers=0).to_json(tmp_path / "model.json")
    return {"model": str(tmp_path / "model.json"), "stage_sizes": (128, 64, 64, 64), "stages": (0,),
            "batch_size": 8, "samples": 96, "warmup": 2, "eval_images_per_class": 2, "retrieval_images": 8,
            "progress": False, "output": str(tmp_path / output), **overrides}


@pytest.mark.slow
def test_two_ranks_end_with_identical_weights_that_match_one_rank_on_the_same_global_batch(tmp_path):
    two = _settings(tmp_path, "two")
    mp.spawn(_run_worker, args=(2, str(tmp_path / "rendezvous"), two, str(tmp_path / "two")), nprocs=2)
    rank0, rank1 = (torch.load(tmp_path / f"two.rank{r}") for r in (0, 1))
    assert all(torch.equal(rank0[k], rank1[k]) for k in rank0)
    saved = load_file(sorted((tmp_path / "two" / "checkpoints").iterdir())[-1] / "model.safetensors")
    assert all(torch.equal(saved[k], rank0[k]) for k in saved)
    # one process, two accumulated micro-batches of 8: the same 16 pairs per step as ranks 0 and 1
    one = _settings(tmp_path, "one", accum_freq=2)
    _run_worker_alone(one, tmp_path / "one")
    single = torch.load(tmp_path / "one.rank0")
    for name in rank0:
        torch.testing.assert_close(rank0[name], single[name], atol=2e-4, rtol=1e-3, msg=name)


@pytest.mark.slow
def test_a_two_rank_checkpoint_resumes_on_one_rank_and_finishes_the_same_samples(tmp_path):
    two = _settings(tmp_path, "run", save_every=2, keep_checkpoints=0)  # 6 steps of 2 x 8 pairs
    mp.spawn(_run_worker, args=(2, str(tmp_path / "rendezvous"), two, str(tmp_path / "two")), nprocs=2)
    middle = tmp_path / "run" / "checkpoints" / "step_00000002"
    _run_worker_alone({**two, "resume": str(middle)}, tmp_path / "one")
    logged = [r for r in read_metrics(tmp_path / "run" / "metrics.jsonl") if "loss" in r]
    # 32 pairs were trained by the two ranks; one rank of 8 pairs a step carries on at step 4 of 12
    assert [r["step"] for r in logged][-1] == 12 and logged[-1]["samples"] == 96
    assert (tmp_path / "run" / "checkpoints" / "step_00000012").is_dir()


def _run_worker_alone(settings: dict, out: Path) -> None:
    from growclip.train import TrainConfig, train

    result = train(TrainConfig.from_dict(settings))
    torch.save({n: t.clone() for n, t in result.model.state_dict().items()}, f"{out}.rank0")


def _stream_worker(rank: int, world: int, rendezvous: str, settings: dict, out: str) -> None:
    from growclip.train import TrainConfig
    from growclip.train.growing import GrowingRun

    if world > 1:
        _join(rank, world, rendezvous)
    run = GrowingRun(TrainConfig.from_dict(settings))
    history = run.run().chunks
    torch.save({"weights": run.current.weights, "decisions": [r.decision for r in history],
                "candidates": [len(r.candidates) for r in history],
                "search_tflop": [r.compute.search_tflop for r in history]}, f"{out}.rank{rank}")
    if world > 1:
        _leave()


def _stream_settings(tmp_path: Path, output: str, **overrides) -> dict:
    model = tiny_config(width=16, heads=1, mlp_ratio=1.0, vision_layers=1, text_layers=1, shared_layers=0,
                        patch_size=8, embed_dim=16)
    model.to_json(tmp_path / "stream_model.json")
    return {"model": str(tmp_path / "stream_model.json"), "chunks": ("corpus:0", "corpus:1"),
            "stage_sizes": (256, 512, 512, 512), "batch_size": 16, "lr": 3e-3, "warmup": 4, "heldout": 32,
            "epochs": 8, "search_fraction": 0.5, "params_per_pair": 60.0, "eval_images_per_class": 4,
            "retrieval_images": 32, "progress": False, "output": str(tmp_path / output), **overrides}


@pytest.mark.slow
def test_a_two_rank_growing_run_with_a_search_matches_one_rank_on_the_same_global_batch(tmp_path):
    two = _stream_settings(tmp_path, "two")
    mp.spawn(_stream_worker, args=(2, str(tmp_path / "rendezvous"), two, str(tmp_path / "two")), nprocs=2)
    rank0, rank1 = (torch.load(tmp_path / f"two.rank{r}") for r in (0, 1))
    assert rank0["decisions"] == rank1["decisions"] and rank0["candidates"][1] > 1  # it searched
    assert all(torch.equal(rank0["weights"][k], rank1["weights"][k]) for k in rank0["weights"])
    _stream_worker(0, 1, "", _stream_settings(tmp_path, "one", accum_freq=2), str(tmp_path / "one"))
    single = torch.load(tmp_path / "one.rank0")
    assert single["decisions"] == rank0["decisions"]
    assert single["search_tflop"] == pytest.approx(rank0["search_tflop"])  # every rank's proxy work counted
    for name, tensor in single["weights"].items():
        torch.testing.assert_close(rank0["weights"][name], tensor, atol=2e-3, rtol=1e-2, msg=name)



# Run under torchrun: rank 1 of the first attempt dies (SIGKILL, no clean-up) once the checkpoint of
# step 2 is written and step 4 is reached, as a machine that vanishes would.
DYING_RANK = """
import os, signal, sys
from growclip.cli import main
from growclip.train.loop import Trainer

save = Trainer.save

def save_then_die(self):
    path = save(self)
    if os.environ["RANK"] == "1" and os.environ["TORCHELASTIC_RESTART_COUNT"] == "0" and self.step >= 4:
        os.kill(os.getpid(), signal.SIGKILL)
    return path

Trainer.save = save_then_die
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_a_killed_rank_stops_the_job_and_a_restart_resumes_from_the_checkpoint(tmp_path):
    script = tmp_path / "dying_rank.py"
    script.write_text(DYING_RANK)
    settings = _settings(tmp_path, "run", samples=160, save_every=2, keep_checkpoints=0)
    flags = [f"--{name.replace('_', '-')}={','.join(map(str, v)) if isinstance(v, tuple) else v}"
             for name, v in settings.items() if name != "progress"]
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               "--max-restarts", "1", str(script), "train", *flags, "--no-progress", "--resume", "latest"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert "resumed from" in done.stderr and "step_00000010" in done.stdout
    logged = [r for r in read_metrics(tmp_path / "run" / "metrics.jsonl") if "loss" in r]
    assert logged[-1]["step"] == 10 and logged[-1]["samples"] == 160
