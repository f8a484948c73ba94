"""growclip against open_clip's own trainer, side by side: same pairs, architecture, samples, batch,
schedule, optimizer settings and precision; both scored by growclip's evaluation on the same sets.

    python -m benchmarks.peer_openclip                       # clip-small on the embedded corpus, seeds 0 1 2
    python -m benchmarks.peer_openclip --seeds 0 --precision fp32
    python -m benchmarks.peer_openclip --train-data my.tsv --val-data my_val.tsv --zeroshot-data labelled/

open_clip lives in its own virtual environment (`--peer-env`, made on first use): it pulls its own
torch and torchvision, so it is never a growclip dependency; growclip is added there with
`--no-deps` for the evaluation. Each tool keeps its own tokenizer (growclip: BPE trained on the
captions; open_clip: its bundled 49,408-token BPE) and its own default augmentation (growclip: none,
resize + centre crop; open_clip: random-resized crop of 0.9-1.0 of the area), both with CLIP's mean
and std. Runs go one after the other, never side by side (2 cores). A recipe trial passes growclip
flags and skips the peer: `--tools growclip --growclip-flags "--crop-scale 0.9,1.0"`.
Prints a Markdown table (medians over the seeds, then every run) and writes it with JSON to --output.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common import BATCH, LR
from benchmarks.peer_env import DEFAULT_ENV, ensure_peer_env
from growclip.data.sources.table import default_separator
from growclip.interop.open_clip import open_clip_config
from growclip.model import load_config
from growclip.train.metrics import read_metrics

WORKER = Path(__file__).resolve().parent / "openclip_worker.py"
OPENCLIP_VOCAB = 49408  # open_clip's default tokenizer (CLIP's vocabulary)
LOSS_WINDOW = 5  # logged losses averaged for the "final loss" column
TOOLS = ("growclip", "open_clip")
COLUMNS = ("mean top-1", "I->T R@1", "T->I R@1", "final loss", "train s")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    add("--model", default="clip-small", help="a plain-CLIP growclip preset or config .json (default clip-small)")
    add("--seeds", type=int, nargs="+", default=[0, 1, 2])
    add("--stage-sizes", type=int, nargs="+", default=[2000, 4000, 8000, 16000],
        help="embedded corpus pairs per stage, written to disk (default 30k pairs)")
    add("--epochs", type=int, default=1, help="passes over the training pairs (open_clip takes whole epochs)")
    add("--batch-size", type=int, default=BATCH)
    add("--lr", type=float, default=LR)
    add("--wd", type=float, default=0.1)
    add("--warmup", type=int, default=50)
    add("--grad-clip-norm", type=float, default=1.0)
    add("--precision", choices=("fp32", "bf16"), default="fp32")
    add("--workers", type=int, default=0, help="DataLoader workers, both tools (default 0)")
    add("--train-data", help="a CSV/TSV of image path + caption instead of the embedded corpus")
    add("--val-data", help="pairs for retrieval (with --train-data)")
    add("--zeroshot-data", help="labelled images for zero-shot (with --train-data)")
    add("--csv-separator", default=None, help="default: ',' for .csv, tab otherwise")
    add("--csv-img-key", default="filepath")
    add("--csv-caption-key", default="title")
    add("--peer-env", default=str(DEFAULT_ENV), help="open_clip's virtual environment")
    add("--tools", nargs="+", choices=TOOLS, default=list(TOOLS), help="which trainers to run (default both)")
    add("--growclip-flags", default="", help="extra `growclip train` flags for a recipe trial, e.g. "
        "\"--crop-scale 1,1\" (quoted)")
    add("--output", default="runs/peer")
    return parser.parse_args(argv)


def run(command: list[str], log: Path) -> float:
    """Run to completion with output in `log`; -> wall seconds. A failure shows the log's tail."""
    start = time.perf_counter()
    with log.open("w") as handle:
        code = subprocess.call(command, stdout=handle, stderr=subprocess.STDOUT)
    if code:
        tail = "\n".join(log.read_text().splitlines()[-25:])
        sys.exit(f"{' '.join(command[:4])} ... failed ({code}); {log}:\n{tail}")
    return time.perf_counter() - start


def absolute_table(source: Path, target: Path, separator: str, img_key: str) -> None:
    """A copy of a table with absolute image paths: growclip reads them relative to the table,
    open_clip relative to its working directory."""
    with source.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle, delimiter=separator))
    for row in rows:
        row[img_key] = str((source.parent / row[img_key]).resolve())
    with target.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), delimiter=separator)
        writer.writeheader()
        writer.writerows(rows)


def prepare_data(args: argparse.Namespace, out: Path) -> tuple[Path, str]:
    """-> (training table with absolute paths, its separator)."""
    if args.train_data:
        source = Path(args.train_data)
        separator, table = args.csv_separator or default_separator(source), out / f"train{source.suffix}"
        absolute_table(source, table, separator, args.csv_img_key)
        return table, separator
    table = out / "train.tsv"
    data = out / "data"
    if not (data / "stage0.tsv").exists():
        growclip = [sys.executable, "-m", "growclip", "data", "--output", str(data),
                    "--stage-sizes", ",".join(map(str, args.stage_sizes)), "--retrieval-images", "0"]
        run(growclip, out / "data.log")
    with table.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, delimiter="\t")
        writer.writerow([args.csv_img_key, args.csv_caption_key])
        for stage in range(len(args.stage_sizes)):
            with (data / f"stage{stage}.tsv").open(newline="", encoding="utf-8") as stage_table:
                for path, caption in list(csv.reader(stage_table, delimiter="\t"))[1:]:
                    writer.writerow([str((data / path).resolve()), caption])
    return table, "\t"


def eval_sets(args: argparse.Namespace) -> dict:
    """The `growclip.eval.sets.EvalSetsConfig` both tools are scored on, as JSON."""
    return {"zeroshot_data": args.zeroshot_data, "val_data": args.val_data,
            "reader": {"csv_separator": args.csv_separator, "csv_img_key": args.csv_img_key,
                       "csv_caption_key": args.csv_caption_key}}


def run_growclip(args: argparse.Namespace, table: Path, separator: str, seed: int, out: Path) -> dict:
    run_dir = out / f"growclip-seed{seed}"
    train = [sys.executable, "-m", "growclip", "train", "--model", args.model, "--train-data", str(table),
             "--csv-separator", separator, "--csv-img-key", args.csv_img_key,
             "--csv-caption-key", args.csv_caption_key, "--epochs", str(args.epochs),
             "--batch-size", str(args.batch_size), "--lr", str(args.lr), "--wd", str(args.wd),
             "--warmup", str(args.warmup), "--grad-clip-norm", str(args.grad_clip_norm),
             "--precision", args.precision, "--seed", str(seed), "--workers", str(args.workers),
             "--output", str(run_dir), "--overwrite", "--keep-checkpoints", "1", "--no-progress",
             *shlex.split(args.growclip_flags)]
    seconds = run(train, out / f"growclip-seed{seed}.log")
    evaluate = [sys.executable, "-m", "growclip", "eval", "--checkpoint", str(run_dir), "--precision", args.precision,
                "--output", str(run_dir / "peer_eval.json")]
    for flag in ("zeroshot_data", "val_data", "csv_separator"):
        if getattr(args, flag):
            evaluate += [f"--{flag.replace('_', '-')}", getattr(args, flag)]
    evaluate += ["--csv-img-key", args.csv_img_key, "--csv-caption-key", args.csv_caption_key]
    run(evaluate, out / f"growclip-seed{seed}-eval.log")
    losses = [r["loss"] for r in read_metrics(run_dir / "metrics.jsonl") if "loss" in r]
    return summarise(json.loads((run_dir / "peer_eval.json").read_text()), losses, seconds)


def run_openclip(args: argparse.Namespace, python: Path, table: Path, separator: str, seed: int, out: Path,
                 configs: Path, name: str) -> dict:
    logs, run_name = out / "openclip", f"seed{seed}"
    train = [str(python), str(WORKER), "train", str(configs), "--", "--model", name, "--train-data", str(table),
             "--dataset-type", "csv", "--csv-separator", separator, "--csv-img-key", args.csv_img_key,
             "--csv-caption-key", args.csv_caption_key, "--epochs", str(args.epochs),
             "--batch-size", str(args.batch_size), "--lr", str(args.lr), "--wd", str(args.wd),
             "--beta1", "0.9", "--beta2", "0.98", "--eps", "1e-6", "--warmup", str(args.warmup),
             "--grad-clip-norm", str(args.grad_clip_norm),
             "--precision", "amp_bf16" if args.precision == "bf16" else "fp32", "--seed", str(seed),
             "--workers", str(args.workers), "--device", "cpu", "--logs", str(logs), "--name", run_name,
             "--log-every-n-steps", "10", "--save-frequency", str(args.epochs), "--zeroshot-frequency", "0",
             "--report-to", ""]
    seconds = run(train, out / f"openclip-seed{seed}.log")
    checkpoint = logs / run_name / "checkpoints" / f"epoch_{args.epochs}.pt"
    results_path = logs / run_name / "peer_eval.json"
    run([str(python), str(WORKER), "eval", str(configs), name, str(checkpoint), str(results_path), args.precision,
         json.dumps(eval_sets(args))], out / f"openclip-seed{seed}-eval.log")
    log_text = (logs / run_name / "out.log").read_text()
    losses = [float(v) for v in re.findall(r"Contrastive_loss: ([0-9.]+)", log_text)]
    return summarise(json.loads(results_path.read_text()), losses, seconds)


def summarise(results: dict, losses: list[float], seconds: float) -> dict:
    summary = results["summary"]
    return {"tasks": {name: m["top1"] for name, m in results["zeroshot"].items()},
            "mean top-1": summary.get("zeroshot_mean_top1", float("nan")),
            "I->T R@1": summary.get("image_to_text_R@1", float("nan")),
            "T->I R@1": summary.get("text_to_image_R@1", float("nan")),
            "final loss": statistics.mean(losses[-LOSS_WINDOW:]), "train s": seconds}


def median_row(runs: list[dict]) -> dict:
    row = {column: statistics.median(r[column] for r in runs) for column in COLUMNS}
    row["tasks"] = {task: statistics.median(r["tasks"][task] for r in runs) for task in runs[0]["tasks"]}
    return row


def table(rows: list[tuple[str, dict]]) -> str:
    tasks = list(rows[0][1]["tasks"])
    lines = ["| run | " + " | ".join(COLUMNS) + " | " + " | ".join(tasks) + " |",
             "|---" * (1 + len(COLUMNS) + len(tasks)) + "|"]
    for label, row in rows:
        cells = [f"{row[c]:.0f}" if c == "train s" else f"{row[c]:.3f}" for c in COLUMNS]
        lines.append(f"| {label} | " + " | ".join(cells) + " | "
                     + " | ".join(f"{row['tasks'][t]:.3f}" for t in tasks) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    out = Path(args.output).resolve()
    out.mkdir(parents=True, exist_ok=True)
    python = ensure_peer_env(Path(args.peer_env))
    config = load_config(args.model)
    configs, name = out / "openclip_configs", f"growclip-{Path(args.model).stem}"
    configs.mkdir(exist_ok=True)
    (configs / f"{name}.json").write_text(json.dumps(open_clip_config(config, OPENCLIP_VOCAB), indent=2) + "\n")
    table_path, separator = prepare_data(args, out)
    runs: dict[str, list[dict]] = {tool: [] for tool in args.tools}
    for seed in args.seeds:
        if "growclip" in runs:
            runs["growclip"].append(run_growclip(args, table_path, separator, seed, out))
        if "open_clip" in runs:
            runs["open_clip"].append(run_openclip(args, python, table_path, separator, seed, out, configs, name))
        print(f"seed {seed}: " + ", ".join(f"{tool} {r[-1]['mean top-1']:.3f} top-1 {r[-1]['train s']:.0f} s"
                                           for tool, r in runs.items()), flush=True)
    medians = [(f"**{tool}** (median of {len(r)})", median_row(r)) for tool, r in runs.items()]
    every = [(f"{tool}, seed {seed}", r) for tool, rs in runs.items() for seed, r in zip(args.seeds, rs)]
    samples = sum(1 for _ in table_path.open()) - 1
    header = (f"{args.model}, {samples} pairs x {args.epochs} epochs, batch {args.batch_size}, lr {args.lr}, "
              f"warm-up {args.warmup}, wd {args.wd}, grad clip {args.grad_clip_norm}, {args.precision}"
              + (f"; growclip {args.growclip_flags}" if args.growclip_flags else ""))
    report = f"{header}\n\n{table(medians)}\n\nEvery run:\n\n{table(every)}\n"
    print("\n" + report)
    (out / "peer.md").write_text(report)
    (out / "peer.json").write_text(json.dumps({"settings": vars(args), "runs": runs}, indent=2) + "\n")


if __name__ == "__main__":
    main()
