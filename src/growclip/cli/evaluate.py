"""`growclip eval`: zero-shot classification and retrieval of a checkpoint."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from growclip.cli.options import separator
from growclip.data.corpus import EmbeddedCorpus
from growclip.data.evalsets import RetrievalSet
from growclip.data.labelled import DEFAULT_TEMPLATES, labelled_task, read_templates
from growclip.data.pairs import format_skipped
from growclip.data.sources import ReaderOptions, open_sources
from growclip.data.valset import read_retrieval_set
from growclip.eval import evaluate, format_results
from growclip.runtime import resolve_device
from growclip.train.checkpoint import load_checkpoint, resolve_checkpoint


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("eval", help=__doc__, description=__doc__)
    add = parser.add_argument
    add("--checkpoint", required=True, help="a checkpoint folder, or a run folder (its newest checkpoint)")
    add("--zeroshot-data", help="labelled images: a folder with one sub-folder per class, or a CSV with "
                                "columns path,label; default: the embedded corpus's tasks and retrieval")
    add("--templates", help="prompt templates, one per line with {} for the class name")
    add("--val-data", help="image-text pairs for retrieval (tables, folders with .txt captions, shards; "
                           "'::' joins); with --zeroshot-data or alone, replaces the corpus's sets")
    add("--csv-separator", type=separator, help="table separator (default: ',' for .csv, tab otherwise)")
    add("--csv-img-key", default="filepath", help="image path column of --val-data tables")
    add("--csv-caption-key", default="title", help="caption column of --val-data tables")
    add("--corpus-seed", type=int, default=0, help="seed of the embedded corpus's evaluation sets")
    add("--images-per-class", type=int, default=40, help="corpus task images per class (default 40)")
    add("--retrieval-images", type=int, default=500, help="corpus retrieval images (default 500)")
    add("--precision", choices=("fp32", "bf16"), default="fp32")
    add("--device", default="auto")
    add("--output", help="JSON results file (default: eval.json in the checkpoint folder)")


def _retrieval_set(args: argparse.Namespace, image_size: int) -> RetrievalSet:
    options = ReaderOptions(args.csv_separator, args.csv_img_key, args.csv_caption_key)
    retrieval, skipped = read_retrieval_set(open_sources(args.val_data, options), image_size)
    print(f"{args.val_data}: {len(retrieval.images)} images, {len(retrieval.texts)} captions; "
          f"{format_skipped(skipped)}")
    return retrieval


def run(args: argparse.Namespace) -> int:
    checkpoint = resolve_checkpoint(args.checkpoint)
    model, tokenizer, _ = load_checkpoint(checkpoint, resolve_device(args.device))
    image_size = model.config.image_size
    if args.zeroshot_data or args.val_data:
        templates = read_templates(args.templates) if args.templates else DEFAULT_TEMPLATES
        tasks = [labelled_task(args.zeroshot_data, image_size, templates)] if args.zeroshot_data else []
        retrievals = [_retrieval_set(args, image_size)] if args.val_data else []
    else:
        corpus = EmbeddedCorpus(args.corpus_seed, image_size)
        tasks = corpus.zeroshot_tasks(args.images_per_class)
        if args.templates:
            templates = read_templates(args.templates)
            for task in tasks:
                task.templates = templates
        retrievals = [corpus.retrieval_set(args.retrieval_images)]
    results = evaluate(model, tokenizer, tasks, retrievals, args.precision)
    print(format_results(results))
    output = Path(args.output) if args.output else checkpoint / "eval.json"
    output.write_text(json.dumps(results, indent=2) + "\n")
    print(f"results: {output}")
    return 0
