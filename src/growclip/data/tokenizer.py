"""Byte-level BPE tokenizer trained on the captions, saved next to the model as `tokenizer.json`."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import islice
from pathlib import Path

import numpy as np
import torch
from tokenizers import Tokenizer as BackendTokenizer
from tokenizers import decoders, models, normalizers, pre_tokenizers, processors, trainers

from growclip.model.clip import PAD_ID

PAD = "<|pad|>"
START_OF_TEXT = "<|startoftext|>"
END_OF_TEXT = "<|endoftext|>"
SPECIAL_TOKENS = [PAD, START_OF_TEXT, END_OF_TEXT]  # PAD first, so its id is PAD_ID = 0
KNOWN_CAPTIONS = 500_000  # ids kept per tokenizer (and loader worker): about 160 MB at 40 tokens


class TokenizerError(ValueError):
    pass


class Tokenizer:
    """Turns captions into fixed-length (B, context_length) id tensors.

    Layout: start-of-text, BPE ids (truncated to fit), end-of-text, then PAD_ID up to the context
    length, so the model pools at the last non-pad position.
    """

    def __init__(self, backend: BackendTokenizer, context_length: int) -> None:
        if backend.token_to_id(PAD) != PAD_ID or backend.token_to_id(END_OF_TEXT) is None:
            raise TokenizerError(
                f"tokenizer must define {PAD!r} with id {PAD_ID} and {END_OF_TEXT!r}; "
                f"got {PAD!r} -> {backend.token_to_id(PAD)}, {END_OF_TEXT!r} -> {backend.token_to_id(END_OF_TEXT)}")
        if context_length < 3:
            raise TokenizerError(f"context_length must be at least 3, got {context_length}")
        self.backend = backend
        self.context_length = context_length
        self._known: dict[str, np.ndarray] = {}  # caption -> (L,) ids, up to KNOWN_CAPTIONS of them
        start, end = backend.token_to_id(START_OF_TEXT), backend.token_to_id(END_OF_TEXT)
        backend.post_processor = processors.TemplateProcessing(
            single=f"{START_OF_TEXT} $A {END_OF_TEXT}",
            special_tokens=[(START_OF_TEXT, start), (END_OF_TEXT, end)],
        )
        backend.enable_truncation(max_length=context_length)
        backend.enable_padding(length=context_length, pad_id=PAD_ID, pad_token=PAD)

    @classmethod
    def train(cls, captions: Iterable[str], vocab_size: int, context_length: int) -> Tokenizer:
        backend = BackendTokenizer(models.BPE())
        backend.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
        backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
        backend.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            special_tokens=SPECIAL_TOKENS,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        backend.train_from_iterator(captions, trainer=trainer)
        return cls(backend, context_length)

    @classmethod
    def load(cls, path: str | Path, context_length: int) -> Tokenizer:
        try:
            backend = BackendTokenizer.from_file(str(path))
        except Exception as err:  # the Rust side raises a plain Exception for unreadable files
            raise TokenizerError(f"{path}: cannot load tokenizer ({err})") from None
        return cls(backend, context_length)

    def save(self, path: str | Path) -> None:
        self.backend.save(str(path))

    @property
    def vocab_size(self) -> int:
        return self.backend.get_vocab_size()

    def __call__(self, texts: Sequence[str]) -> torch.Tensor:
        """(B,) captions -> (B, L) ids. Captions met before are looked up, not encoded again: a run
        reads its captions every epoch, and encoding took a third of a small model's batch time."""
        known = self._known
        missing = [text for text in dict.fromkeys(texts) if text not in known]
        encoded = {text: np.array(e.ids, dtype=np.int64)
                   for text, e in zip(missing, self.backend.encode_batch(missing) if missing else [])}
        known.update(islice(encoded.items(), max(0, KNOWN_CAPTIONS - len(known))))
        rows = [encoded[text] if text in encoded else known[text] for text in texts]
        return torch.from_numpy(np.stack(rows)) if rows else torch.zeros(0, self.context_length, dtype=torch.long)

    def decode(self, ids: Sequence[int]) -> str:
        return self.backend.decode(list(ids))
