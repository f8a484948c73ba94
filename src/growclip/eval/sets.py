"""The evaluation sets of a run and of `growclip eval`, built here only, so that every model (growclip's,
or a peer's wrapped behind the same interface) is measured on exactly the same images and prompts."""

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
    zeroshot_data: str | None = None  # class folders or a table of image path and label
    val_data: str | None = None  # image-text pairs for retrieval
    templates: str | None = None  # prompt templates file (the corpus's tasks keep their own when training)
    reader: ReaderOptions = field(default_factory=ReaderOptions)
    corpus: bool | None = None  # the corpus's tasks and retrieval split; None: when no user sets are given
    corpus_seed: int = 0
    images_per_class: int = 40
    retrieval_images: int = 500


def evaluation_sets(config: EvalSetsConfig, image_size: int) -> tuple[list[ZeroShotTask], list[RetrievalSet], Counter]:
    """-> (zero-shot tasks, retrieval sets, skip counts of val_data)."""
    templates = read_templates(config.templates) if config.templates else None
    tasks, retrievals, skipped = [], [], Counter()
    if config.corpus or (config.corpus is None and not (config.zeroshot_data or config.val_data)):
        corpus = EmbeddedCorpus(config.corpus_seed, image_size)
        tasks = corpus.zeroshot_tasks(config.images_per_class)
        for task in tasks if templates and config.corpus is None else ():
            task.templates = templates
        retrievals.append(corpus.retrieval_set(config.retrieval_images))
    if config.val_data:
        retrieval, skipped = read_retrieval_set(open_sources(config.val_data, config.reader), image_size)
        retrievals.append(retrieval)
    if config.zeroshot_data:
        tasks.append(labelled_task(config.zeroshot_data, image_size, templates or DEFAULT_TEMPLATES, config.reader))
    return tasks, retrievals, skipped
