"""`growclip train`: train a fixed architecture; the embedded corpus when no --train-data is given."""

from __future__ import annotations

import argparse

from growclip.cli.options import float_list, float_pair, int_list, merged_settings, separator
from growclip.train import TrainConfig
from growclip.train import train as run_training
from growclip.train.checkpoint import checkpoints_of
from growclip.train.growing import format_stream, train_stream


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
    add("--epochs", type=float, help="passes over the training data, e.g. 2.5 (default 1)")
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
    stream = parser.add_argument_group("growing run on a stream of chunks (growclip.train.growing)")
    stream.add_argument("--chunks", nargs="+", type=str,
                        help="chunks in order: sources (as --train-data) or corpus:K; 'corpus' = all 4 corpus stages")
    stream.add_argument("--watch", help="a folder where chunks appear during the run; a file END ends the stream")
    stream.add_argument("--growth", choices=("auto", "fixed", "schedule", "scratch"),
                        help="auto: search (default); fixed: never grow; schedule: --grow-schedule; "
                             "scratch: search, then retrain the chosen architecture from zero")
    stream.add_argument("--grow-schedule", dest="grow_schedule", nargs="+", type=str,
                        help="K:OP items, e.g. 1:width=128 2:shared_layers+2 (growth=schedule)")
    stream.add_argument("--momentum", type=float, help="PIM m of scheduled growth (default 0.9)")
    stream.add_argument("--search-momenta", dest="search_momenta", type=float_list,
                        help="PIM m values the search tries, e.g. 1,0.9 (default 0.9)")
    stream.add_argument("--replay", type=float,
                        help="train on the new chunk plus REPLAY x its size of old pairs (default: all data so far)")
    stream.add_argument("--chunk-samples", dest="chunk_samples", type=int,
                        help="training pairs per chunk (default: --epochs x the new chunk's size)")
    stream.add_argument("--params-per-pair", dest="params_per_pair", type=float,
                        help="growth budget: parameters per training pair seen (default 20)")
    stream.add_argument("--search-fraction", dest="search_fraction", type=float,
                        help="search budget as a fraction of a chunk's training (default 0.2)")
    stream.add_argument("--cost-weight", dest="cost_weight", type=float,
                        help="score penalty per doubling of training FLOPs (default 0.05)")
    stream.add_argument("--heldout", type=int, help="held-out pairs per chunk for scoring (default 256)")
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
    config = TrainConfig.from_dict(merged_settings(args, check=TrainConfig.check_settings))
    if config.chunks or config.watch:
        print(format_stream(train_stream(config)))
        print(f"checkpoint: {checkpoints_of(config.output)[-1]}")
        return 0
    result = run_training(config)
    print(f"checkpoint: {result.checkpoint}")
    return 0
