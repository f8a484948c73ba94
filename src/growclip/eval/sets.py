"""The evaluation sets of `growclip eval`, built once here so that every model (growclip's, or a
peer's wrapped behind the same interface) is measured on exactly the same images and prompts."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from growclip.data.corpus import EmbeddedCorpus
from growclip.data.evalsets import RetrievalSet, ZeroShotTask
from growclip.data.labelled import DEFAULT_TEMPLATES, labelled_task, read_templates
from growclip.data.sources import ReaderOptions, open_sources
from growclip.data.valset import read_retrieval_set


@dataclass(frozen=True)
class EvalSetsConfig:
    zeroshot_data: str | None = None  # class folders or a path,label CSV; None (and no val_data): the corpus
    val_data: str | None = None  # image-text pairs for retrieval
    templates: str | None = None  # prompt templates file
    reader: ReaderOptions = field(default_factory=ReaderOptions)
    corpus_seed: int = 0
    images_per_class: int = 40
    retrieval_images: int = 500


def evaluation_sets(config: EvalSetsConfig, image_size: int) -> tuple[list[ZeroShotTask], list[RetrievalSet], Counter]:
    """-> (zero-shot tasks, retrieval sets, skip counts of val_data). The corpus's tasks and retrieval
    split unless the user's labelled images or pairs are given, which then replace them."""
    templates = read_templates(config.templates) if config.templates else None
    if not (config.zeroshot_data or config.val_data):
        corpus = EmbeddedCorpus(config.corpus_seed, image_size)
        tasks = corpus.zeroshot_tasks(config.images_per_class)
        for task in tasks if templates else ():
            task.templates = templates
        return tasks, [corpus.retrieval_set(config.retrieval_images)], Counter()
    tasks = [labelled_task(config.zeroshot_data, image_size, templates or DEFAULT_TEMPLATES)] \
        if config.zeroshot_data else []
    retrievals, skipped = [], Counter()
    if config.val_data:
        retrieval, skipped = read_retrieval_set(open_sources(config.val_data, config.reader), image_size)
        retrievals.append(retrieval)
    return tasks, retrievals, skipped
