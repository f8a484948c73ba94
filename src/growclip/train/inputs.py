"""What a run reads: training sources and their transform, the tokenizer, and the evaluation sets."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from growclip.data.corpus import EmbeddedCorpus
from growclip.data.pairs import ImageTransform
from growclip.data.sources import CorpusSource, PairSources, ReaderOptions, open_sources
from growclip.data.tokenizer import Tokenizer, TokenizerError
from growclip.data.transforms import CenterCrop, RandomResizedCrop
from growclip.eval.sets import EvalSets, EvalSetsConfig, evaluation_sets
from growclip.model.config import ModelConfig
from growclip.train.config import TrainConfig

TOKENIZER_CAPTIONS = 200_000  # captions a tokenizer is trained on; more changes little
OPEN_CLIP_CROP, NO_CROP = (0.9, 1.0), (1.0, 1.0)  # random-resized-crop area ranges


@dataclass
class RunInputs:
    sources: PairSources
    transform: ImageTransform
    tokenizer: Tokenizer
    evals: EvalSets


def build_inputs(config: TrainConfig, model_config: ModelConfig, tokenizer: Tokenizer | None = None) -> RunInputs:
    """The embedded corpus and its evaluation sets unless `train_data` is given. A tokenizer is trained
    on the training captions unless one is passed (resume) or named (`config.tokenizer`)."""
    image_size = model_config.image_size
    corpus = None
    if config.train_data:
        sources = open_sources(config.train_data, reader_options(config))
    else:
        corpus = EmbeddedCorpus(config.corpus_seed, image_size, config.stage_sizes)
        sources = PairSources([CorpusSource(corpus, config.stages)])
    evals = run_evaluation_sets(config, image_size, corpus is not None)
    tokenizer = tokenizer or make_tokenizer(config, model_config, sources)
    return RunInputs(sources, train_transform(config, image_size, data_passes(config, sources.count())), tokenizer,
                     evals)


def data_passes(config: TrainConfig, records: int | None) -> float:
    """How many times a fixed run reads its data: `samples` over the records, else `epochs`."""
    return config.samples / records if config.samples and records else config.epochs


def reader_options(config: TrainConfig) -> ReaderOptions:
    return ReaderOptions(config.csv_separator, config.csv_img_key, config.csv_caption_key, config.csv_label_key)


def train_transform(config: TrainConfig, image_size: int, passes: float) -> RandomResizedCrop | CenterCrop:
    """The crop `config.crop_scale` names; by default open_clip's random-resized crop (0.9-1.0 of the
    area) when the run makes more than one pass over its data, none for a single pass. Measured: on a
    real set seen 40 times (scikit-learn's digits, see docs/results.md) the crop
    is what reaches open_clip; in one pass over the corpus it cannot regularise and costs 2.7 points,
    as it moves and rescales what captions describe (positions, sizes, textures)."""
    scale = config.crop_scale or (OPEN_CLIP_CROP if passes > 1 else NO_CROP)
    return CenterCrop(image_size) if scale == NO_CROP else RandomResizedCrop(image_size, scale)


def run_evaluation_sets(config: TrainConfig, image_size: int, corpus: bool) -> EvalSets:
    """A run's evaluation sets, from its settings: the corpus's tasks and retrieval split when it is
    trained on (`corpus`); `val_data`, `zeroshot_data`."""
    sets = EvalSetsConfig(config.zeroshot_data, config.val_data, config.templates, reader_options(config), corpus,
                          config.corpus_seed, config.eval_images_per_class, config.retrieval_images)
    return evaluation_sets(sets, image_size)


def make_tokenizer(config: TrainConfig, model_config: ModelConfig, sources: PairSources) -> Tokenizer:
    """`config.tokenizer` if named (checked to fit the model), else BPE trained on the sources' captions."""
    if config.tokenizer:
        tokenizer = Tokenizer.load(config.tokenizer, model_config.context_length)
        if tokenizer.backend.get_vocab_size() > model_config.vocab_size:
            raise TokenizerError(f"{config.tokenizer}: {tokenizer.backend.get_vocab_size()} tokens do not fit "
                                 f"the model's vocab_size {model_config.vocab_size}")
        return tokenizer
    return Tokenizer.train(sources.captions(TOKENIZER_CAPTIONS), model_config.vocab_size,
                           model_config.context_length)


def stream_tokenizer(config: TrainConfig, model_config: ModelConfig, corpus: EmbeddedCorpus | None,
                     first_chunk: Callable[[], PairSources]) -> Tokenizer:
    """A growing run's tokenizer: the corpus's vocabulary for corpus streams (every stage's words
    from the start), else `--tokenizer` or BPE on the first chunk's captions."""
    if corpus is not None and not config.tokenizer:
        return Tokenizer.train(corpus.tokenizer_captions(), model_config.vocab_size, model_config.context_length)
    return make_tokenizer(config, model_config, first_chunk())
