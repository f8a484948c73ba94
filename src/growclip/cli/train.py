"""`growclip train`: train a fixed architecture; the embedded corpus when no --train-data is given."""

from __future__ import annotations

import argparse

from growclip.cli.options import float_pair, int_list, merged_settings, separator
from growclip.train import TrainConfig
from growclip.train import train as run_training


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("train", help=__doc__, argument_default=argparse.SUPPRESS,
                                 description="Flags override settings from --config; unset ones keep "
                                             "their defaults.")
    add = parser.add_argument
    add("--config", default=None, help="YAML or JSON file of settings (flag names, dashes or underscores)")
    add("--model", help="preset name (see `growclip train --list-models`) or a model config .json")
    add("--list-models", action="store_true", help="print the model presets and exit")
    data = parser.add_argument_group("data (default: the embedded corpus)")
    data.add_argument("--train-data", dest="train_data",
                      help="sources joined by '::': .csv/.tsv tables, image folders with .txt sidecars, "
                           "webdataset shards like 'shards/{000..009}.tar'")
    data.add_argument("--val-data", dest="val_data", help="held-out pairs (same kinds) for retrieval evaluation")
    data.add_argument("--zeroshot-data", dest="zeroshot_data",
                      help="labelled images for zero-shot evaluation: class folders, or a CSV path,label")
    data.add_argument("--templates", help="zero-shot prompt templates, one per line with {} for the class")
    data.add_argument("--csv-separator", dest="csv_separator", type=separator,
                      help="column separator of tables (default: ',' for .csv, tab otherwise)")
    data.add_argument("--csv-img-key", dest="csv_img_key", help="image path column (default filepath)")
    data.add_argument("--csv-caption-key", dest="csv_caption_key", help="caption column (default title)")
    data.add_argument("--tokenizer", help="a tokenizer.json to use (default: BPE trained on the captions)")
    data.add_argument("--crop-scale", dest="crop_scale", type=float_pair,
                      help="random-resized-crop area range for image files, e.g. 0.9,1.0 (default)")
    add("--batch-size", dest="batch_size", type=int, help="pairs per micro-batch (default 128)")
    add("--accum-freq", dest="accum_freq", type=int, help="micro-batches per optimizer step (exact loss)")
    add("--epochs", type=int, help="passes over the training data (default 1)")
    add("--samples", type=int, help="total training pairs; overrides --epochs")
    add("--lr", type=float, help="peak learning rate (default 1e-3)")
    add("--wd", type=float, help="AdamW weight decay on linear/conv weights (default 0.1)")
    add("--warmup", type=int, help="linear warm-up steps before the cosine decay (default 100)")
    add("--grad-clip-norm", dest="grad_clip_norm", type=float, help="clip the global grad norm (default 1.0)")
    add("--precision", choices=("fp32", "bf16"), help="bf16 = autocast (default fp32)")
    add("--seed", type=int, help="seed for init, shuffling and everything else (default 0)")
    add("--workers", type=int, help="DataLoader worker processes (default 0)")
    add("--device", help="auto (default), cpu, cuda, cuda:1, ...")
    add("--output", help="run folder: metrics.jsonl, checkpoints/, eval.json (default runs/growclip)")
    add("--stages", type=int_list, help="embedded-corpus stages to train on, e.g. 0,1 (default all)")
    add("--stage-sizes", dest="stage_sizes", type=int_list, help="pairs per corpus stage, e.g. 4000,8000,...")
    add("--corpus-seed", dest="corpus_seed", type=int, help="seed of the embedded corpus (default 0)")
    add("--log-every", dest="log_every", type=int, help="steps between metric lines (default 10)")
    add("--save-every", dest="save_every", type=int, help="steps between checkpoints (always one at the end)")
    add("--keep-checkpoints", dest="keep_checkpoints", type=int, help="newest checkpoints kept (default 3, 0 = all)")
    add("--resume", help="'latest' (newest checkpoint in --output, or a new run if none) or a checkpoint path")
    add("--eval-every", dest="eval_every", type=int, help="steps between evaluations (always one at the end)")
    add("--report-to", dest="report_to", choices=("tensorboard",), help="also log TensorBoard scalars")
    add("--eval-images-per-class", dest="eval_images_per_class", type=int)
    add("--retrieval-images", dest="retrieval_images", type=int)
    add("--no-progress", dest="progress", action="store_false", help="no tqdm bar")


def run(args: argparse.Namespace) -> int:
    if getattr(args, "list_models", False):
        from growclip.model import list_presets

        print("\n".join(list_presets()))
        return 0
    result = run_training(TrainConfig.from_dict(merged_settings(args, check=TrainConfig.check_settings)))
    print(f"checkpoint: {result.checkpoint}")
    return 0
