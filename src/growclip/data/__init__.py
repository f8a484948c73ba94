"""Data: the embedded corpus, your image-text sources, the training stream, tokenizer, transforms and
evaluation sets."""

from growclip.data.batches import TrainBatches
from growclip.data.corpus import EmbeddedCorpus
from growclip.data.evalsets import RetrievalSet, ZeroShotTask
from growclip.data.labelled import labelled_task, read_templates
from growclip.data.pairs import DataError
from growclip.data.sources import ReaderOptions, open_sources
from growclip.data.tokenizer import Tokenizer

__all__ = ["DataError", "EmbeddedCorpus", "ReaderOptions", "RetrievalSet", "Tokenizer", "TrainBatches", "ZeroShotTask",
           "labelled_task", "open_sources", "read_templates"]
