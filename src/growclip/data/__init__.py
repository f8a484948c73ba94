"""Data: the embedded corpus, tokenizer, transforms, loaders and evaluation sets."""

from growclip.data.corpus import EmbeddedCorpus
from growclip.data.evalsets import RetrievalSet, ZeroShotTask
from growclip.data.labelled import labelled_task, read_templates
from growclip.data.tokenizer import Tokenizer

__all__ = ["EmbeddedCorpus", "RetrievalSet", "Tokenizer", "ZeroShotTask", "labelled_task", "read_templates"]
