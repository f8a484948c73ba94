"""What a run reads: training sources and their transform, the tokenizer, and the evaluation sets."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from growclip.data.corpus import EmbeddedCorpus
from growclip.data.evalsets import RetrievalSet, ZeroShotTask
from growclip.data.labelled import DEFAULT_TEMPLATES, labelled_task, read_templates
from growclip.data.pairs import ImageTransform
from growclip.data.sources import CorpusSource, PairSources, ReaderOptions, open_sources
from growclip.data.tokenizer import Tokenizer, TokenizerError
from growclip.data.transforms import RandomResizedCrop
from growclip.data.valset import read_retrieval_set
from growclip.model.config import ModelConfig
from growclip.train.config import TrainConfig

TOKENIZER_CAPTIONS = 200_000  # captions a tokenizer is trained on; more changes little


@dataclass
class RunInputs:
    sources: PairSources
    transform: ImageTransform
    tokenizer: Tokenizer
    tasks: list[ZeroShotTask]
    retrievals: list[RetrievalSet]
    val_skipped: Counter = field(default_factory=Counter)


def build_inputs(config: TrainConfig, model_config: ModelConfig, tokenizer: Tokenizer | None = None) -> RunInputs:
    """The embedded corpus and its evaluation sets unless `train_data` is given. A tokenizer is trained
    on the training captions unless one is passed (resume) or named (`config.tokenizer`)."""
    image_size = model_config.image_size
    tasks: list[ZeroShotTask] = []
    retrievals: list[RetrievalSet] = []
    val_skipped: Counter = Counter()
    if config.train_data:
        options = ReaderOptions(config.csv_separator, config.csv_img_key, config.csv_caption_key)
        sources = open_sources(config.train_data, options)
        if config.val_data:
            retrieval, val_skipped = read_retrieval_set(open_sources(config.val_data, options), image_size)
            retrievals.append(retrieval)
    else:
        corpus = EmbeddedCorpus(config.corpus_seed, image_size, config.stage_sizes)
        sources = PairSources([CorpusSource(corpus, config.stages)])
        tasks += corpus.zeroshot_tasks(config.eval_images_per_class)
        retrievals.append(corpus.retrieval_set(config.retrieval_images))
    if config.zeroshot_data:
        templates = read_templates(config.templates) if config.templates else DEFAULT_TEMPLATES
        tasks.append(labelled_task(config.zeroshot_data, image_size, templates))
    if tokenizer is None:
        tokenizer = _tokenizer(config, model_config, sources)
    transform = RandomResizedCrop(image_size, config.crop_scale)
    return RunInputs(sources, transform, tokenizer, tasks, retrievals, val_skipped)


def _tokenizer(config: TrainConfig, model_config: ModelConfig, sources: PairSources) -> Tokenizer:
    if config.tokenizer:
        tokenizer = Tokenizer.load(config.tokenizer, model_config.context_length)
        if tokenizer.backend.get_vocab_size() > model_config.vocab_size:
            raise TokenizerError(f"{config.tokenizer}: {tokenizer.backend.get_vocab_size()} tokens do not fit "
                                 f"the model's vocab_size {model_config.vocab_size}")
        return tokenizer
    return Tokenizer.train(sources.captions(TOKENIZER_CAPTIONS), model_config.vocab_size,
                           model_config.context_length)
