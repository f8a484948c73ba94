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
from growclip.train.sections import DataConfig, EvalConfig, OptimConfig

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
    on the training captions unless one is passed (resume) or named (`--tokenizer`)."""
    data, image_size = config.data, model_config.image_size
    corpus = None
    if data.train_data:
        sources = open_sources(data.train_data, reader_options(data))
    else:
        corpus = EmbeddedCorpus(data.corpus_seed, image_size, data.stage_sizes)
        sources = PairSources([CorpusSource(corpus, data.stages)])
    evals = run_evaluation_sets(data, config.eval, image_size, corpus is not None)
    tokenizer = tokenizer or make_tokenizer(data, model_config, sources)
    passes = data_passes(config.optim, sources.count())
    return RunInputs(sources, train_transform(data, image_size, passes), tokenizer, evals)


def data_passes(optim: OptimConfig, records: int | None) -> float:
    """How many times a fixed run reads its data: `samples` over the records, else `epochs`."""
    return optim.samples / records if optim.samples and records else optim.epochs


def reader_options(data: DataConfig) -> ReaderOptions:
    return ReaderOptions(data.csv_separator, data.csv_img_key, data.csv_caption_key, data.csv_label_key)


def train_transform(data: DataConfig, image_size: int, passes: float) -> RandomResizedCrop | CenterCrop:
    """The crop `--crop-scale` names; by default open_clip's random-resized crop (0.9-1.0 of the
    area) when the run makes more than one pass over its data, none for a single pass. Measured: on a
    real set seen 40 times (scikit-learn's digits, see docs/results.md) the crop
    is what reaches open_clip; in one pass over the corpus it cannot regularise and costs 2.7 points,
    as it moves and rescales what captions describe (positions, sizes, textures)."""
    scale = data.crop_scale or (OPEN_CLIP_CROP if passes > 1 else NO_CROP)
    return CenterCrop(image_size) if scale == NO_CROP else RandomResizedCrop(image_size, scale)


def run_evaluation_sets(data: DataConfig, evaluation: EvalConfig, image_size: int, corpus: bool) -> EvalSets:
    """A run's evaluation sets, from its settings: the corpus's tasks and retrieval split when it is
    trained on (`corpus`); `val_data`, `zeroshot_data`, `forgetting_data`."""
    sets = EvalSetsConfig(data.zeroshot_data, data.val_data, data.templates, reader_options(data), corpus,
                          data.corpus_seed, evaluation.eval_images_per_class, evaluation.retrieval_images,
                          data.forgetting_data)
    return evaluation_sets(sets, image_size)


def make_tokenizer(data: DataConfig, model_config: ModelConfig, sources: PairSources) -> Tokenizer:
    """`--tokenizer` if named (checked to fit the model), else BPE trained on the sources' captions."""
    if data.tokenizer:
        tokenizer = Tokenizer.load(data.tokenizer, model_config.context_length)
        if tokenizer.backend.get_vocab_size() > model_config.vocab_size:
            raise TokenizerError(f"{data.tokenizer}: {tokenizer.backend.get_vocab_size()} tokens do not fit "
                                 f"the model's vocab_size {model_config.vocab_size}")
        return tokenizer
    return Tokenizer.train(sources.captions(TOKENIZER_CAPTIONS), model_config.vocab_size,
                           model_config.context_length)


def stream_tokenizer(data: DataConfig, model_config: ModelConfig, corpus: EmbeddedCorpus | None,
                     first_chunk: Callable[[], PairSources]) -> Tokenizer:
    """A growing run's tokenizer: the corpus's vocabulary for corpus streams (every stage's words
    from the start), else `--tokenizer` or BPE on the first chunk's captions."""
    if corpus is not None and not data.tokenizer:
        return Tokenizer.train(corpus.tokenizer_captions(), model_config.vocab_size, model_config.context_length)
    return make_tokenizer(data, model_config, first_chunk())

