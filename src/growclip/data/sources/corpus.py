"""The embedded corpus as a training source: rendered at the model's size, so no transform applies."""

from __future__ import annotations

from collections.abc import Sequence

from growclip.data.corpus import EmbeddedCorpus
from growclip.data.pairs import ImageTransform, Pair, RecordRng
from growclip.data.sources.base import IndexedSource


class CorpusSource(IndexedSource):
    """Positions, sizes and counts are in the captions, so random crops would make captions wrong."""

    def __init__(self, corpus: EmbeddedCorpus, stages: Sequence[int] | None = None) -> None:
        super().__init__()
        self.corpus = corpus
        self.dataset = corpus.train_data(stages)
        self.name = "corpus" if stages is None else f"corpus-stages{','.join(map(str, stages))}"

    def __len__(self) -> int:
        return len(self.dataset)

    def load(self, index: int, transform: ImageTransform, rng: RecordRng) -> Pair:
        image, caption = self.dataset[index]
        return Pair(image, caption, f"corpus:{index}")

    def captions(self, limit: int) -> list[str]:
        return self.corpus.tokenizer_captions()[:limit]
