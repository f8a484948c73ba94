"""The evaluation sets of a run and of `growclip eval`, built here only, so that every model (growclip's,
or a peer's wrapped behind the same interface) is measured on exactly the same images and prompts."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from growclip.data.corpus import NUM_STAGES, EmbeddedCorpus
from growclip.data.evalsets import RetrievalSet, ZeroShotTask
from growclip.data.labelled import DEFAULT_TEMPLATES, labelled_task, read_templates
from growclip.data.sources import ReaderOptions, open_sources
from growclip.data.tokenizer import Tokenizer
from growclip.data.valset import read_retrieval_set
from growclip.eval.zeroshot import evaluate_zeroshot
from growclip.model.clip import CLIP


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
    forgetting_data: str | None = None  # labelled images the starting model knows (as zeroshot_data)


@dataclass
class EvalSets:
    """What a model is evaluated on. Beside zero-shot top-1 and the retrieval split, which saturate
    once a model is good enough, the corpus adds two measures that keep seeing capacity: R@1 over a
    gallery ten times the split (one caption per image), and the held-out contrastive loss of every
    stage's distribution."""

    tasks: list[ZeroShotTask] = field(default_factory=list)
    retrievals: list[RetrievalSet] = field(default_factory=list)
    gallery: RetrievalSet | None = None
    heldouts: list[RetrievalSet] = field(default_factory=list)  # one per corpus stage, one caption per image
    skipped: Counter = field(default_factory=Counter)  # records of val_data left out
    retained: list[ZeroShotTask] = field(default_factory=list)  # what the starting model knew: forgetting_data
    retained_start: dict[str, float] = field(default_factory=dict)  # its top-1 on them, once a run measured it

    def measure_start(self, model: CLIP, tokenizer: Tokenizer, precision: str = "fp32") -> None:
        """The starting model's top-1 on each retained task: forgetting is counted from here."""
        was_training = model.training
        try:
            self.retained_start = {task.name: evaluate_zeroshot(model.eval(), tokenizer, task, precision)["top1"]
                                   for task in self.retained}
        finally:
            model.train(was_training)

    def state_dict(self) -> dict[str, dict[str, float]]:
        """What a run keeps of its sets: the start of forgetting (the sets themselves come from settings)."""
        return {"retained_start": dict(self.retained_start)}

    def load_state_dict(self, state: dict[str, dict[str, float]]) -> None:
        self.retained_start = dict(state["retained_start"])


GALLERY_FACTOR = 10  # the gallery's pairs per image of the retrieval split: 5,000 by default


def evaluation_sets(config: EvalSetsConfig, image_size: int) -> EvalSets:
    templates = read_templates(config.templates) if config.templates else None
    sets = EvalSets()
    if config.corpus or (config.corpus is None and not (config.zeroshot_data or config.val_data)):
        corpus = EmbeddedCorpus(config.corpus_seed, image_size)
        sets.tasks = corpus.zeroshot_tasks(config.images_per_class)
        for task in sets.tasks if templates and config.corpus is None else ():
            task.templates = templates
        sets.retrievals.append(corpus.retrieval_set(config.retrieval_images))
        sets.gallery = corpus.retrieval_set(GALLERY_FACTOR * config.retrieval_images, 1, name="corpus-gallery")
        sets.heldouts = [corpus.retrieval_set(config.retrieval_images, 1, stage) for stage in range(NUM_STAGES)]
    if config.val_data:
        retrieval, sets.skipped = read_retrieval_set(open_sources(config.val_data, config.reader), image_size)
        sets.retrievals.append(retrieval)
    if config.zeroshot_data:
        sets.tasks.append(labelled_task(config.zeroshot_data, image_size, templates or DEFAULT_TEMPLATES,
                                        config.reader))
    if config.forgetting_data:
        sets.retained.append(labelled_task(config.forgetting_data, image_size, templates or DEFAULT_TEMPLATES,
                                           config.reader))
    return sets
