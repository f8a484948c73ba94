"""`growclip eval`: zero-shot classification and retrieval of a checkpoint."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from growclip.checkpoint import EVAL_RESULTS, load_checkpoint, resolve_checkpoint
from growclip.cli.options import SEED_VALUE, SIZE, separator
from growclip.data.pairs import format_skipped
from growclip.data.sources import ReaderOptions
from growclip.eval import evaluate_sets, format_results
from growclip.eval.sets import EvalSets, EvalSetsConfig, evaluation_sets
from growclip.runtime import PRECISIONS, ensure_writable, resolve_device


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("eval", help=__doc__, description=__doc__)
    parser.add_argument("--checkpoint", required=True,
                        help="a checkpoint folder, or a run folder (its newest checkpoint)")
    add_evaluation_flags(parser)
    parser.add_argument("--output", help="JSON results file (default: eval.json in the checkpoint folder)")


def add_evaluation_flags(parser: argparse.ArgumentParser) -> None:
    """What a model is evaluated on and how (`eval`, and `merge` choosing its ratio)."""
    add = parser.add_argument
    add("--zeroshot-data", help="labelled images: a folder with one sub-folder per class, or a table with the "
                                "image column (--csv-img-key) and a label column (--csv-label-key); default: "
                                "the embedded corpus's tasks and retrieval")
    add("--forgetting-data", help="labelled images (as --zeroshot-data) of what a starting model knew, scored "
                                  "apart from the new data's tasks")
    add("--templates", help="prompt templates, one per line with {} for the class name")
    add("--val-data", help="image-text pairs for retrieval (tables, folders with .txt captions, shards; "
                           "'::' joins); with --zeroshot-data or alone, replaces the corpus's sets")
    add("--csv-separator", type=separator, help="table separator (default: ',' for .csv, tab otherwise)")
    add("--csv-img-key", default="filepath", help="image path column of tables (default filepath)")
    add("--csv-caption-key", default="title", help="caption column of --val-data tables (default title)")
    add("--csv-label-key", default="label", help="class column of a --zeroshot-data table (default label)")
    add("--corpus-seed", type=SEED_VALUE, default=0, help="seed of the embedded corpus's evaluation sets")
    add("--images-per-class", type=SIZE, default=40, help="corpus task images per class (default 40)")
    add("--retrieval-images", type=SIZE, default=500, help="corpus retrieval images (default 500; the gallery is 10x, "
                                                                 "each stage's held-out set as many)")
    add("--precision", choices=PRECISIONS, default="fp32")
    add("--device", default="auto")


def evaluation_sets_of(args: argparse.Namespace, image_size: int) -> EvalSets:
    """The sets `add_evaluation_flags` named, at the model's image size; the corpus's when none is."""
    reader = ReaderOptions(args.csv_separator, args.csv_img_key, args.csv_caption_key, args.csv_label_key)
    sets = EvalSetsConfig(args.zeroshot_data, args.val_data, args.templates, reader, None, args.corpus_seed,
                          args.images_per_class, args.retrieval_images, args.forgetting_data)
    evals = evaluation_sets(sets, image_size)
    for retrieval in evals.retrievals if args.val_data else ():
        print(f"{args.val_data}: {len(retrieval.images)} images, {len(retrieval.texts)} captions; "
              f"{format_skipped(evals.skipped)}")
    return evals


def run(args: argparse.Namespace) -> int:
    checkpoint = resolve_checkpoint(args.checkpoint)
    output = Path(args.output) if args.output else checkpoint / EVAL_RESULTS
    ensure_writable(output.parent)  # before the work, not after it
    model, tokenizer, _ = load_checkpoint(checkpoint, resolve_device(args.device))
    results = evaluate_sets(model, tokenizer, evaluation_sets_of(args, model.config.image_size), args.precision)
    print(format_results(results))
    output.write_text(json.dumps(results.to_dict(), indent=2) + "\n")
    print(f"results: {output}")
    return 0
