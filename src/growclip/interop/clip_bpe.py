"""CLIP's byte-level BPE (the vocabulary OpenAI CLIP and open_clip ship as
`bpe_simple_vocab_16e6.txt.gz`) as a growclip `Tokenizer`, built with the `tokenizers` library.

growclip pads with id 0 (`PAD_ID`), where CLIP's vocabulary has "!". So in growclip every CLIP id
moves up by `ID_SHIFT` and id 0 is the pad token; the token embedding gains a row 0 on import and
loses it on export (`interop.open_clip`), so the function is unchanged.
"""

from __future__ import annotations

import gzip
from pathlib import Path

from tokenizers import Regex, normalizers, pre_tokenizers
from tokenizers import Tokenizer as BackendTokenizer
from tokenizers.models import BPE

from growclip.data.tokenizer import END_OF_TEXT, PAD, START_OF_TEXT, Tokenizer

ID_SHIFT = 1
CLIP_MERGES = 49152 - 256 - 2  # merges CLIP's vocabulary uses, as its reference tokenizer reads them
CLIP_VOCAB_SIZE = 2 * 256 + CLIP_MERGES + 2  # bytes, bytes ending a word, merges, start and end of text
# CLIP's split of cleaned, lower-cased text into words before BPE
CLIP_WORDS = r"""'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""


def byte_alphabet() -> list[str]:
    """CLIP's (and GPT-2's) printable stand-in for each of the 256 bytes, in vocabulary order:
    printable bytes keep their character, the others move to code points from 256 up."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    rest = [b for b in range(256) if b not in printable]
    return [chr(b) for b in printable] + [chr(256 + n) for n in range(len(rest))]


def clip_vocabulary(bpe_path: str | Path) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """-> (token -> CLIP id, merges) from CLIP's gzipped merges file."""
    with gzip.open(bpe_path, "rt", encoding="utf-8") as handle:
        lines = handle.read().split("\n")[1:CLIP_MERGES + 1]
    merges = [tuple(line.split()) for line in lines]
    alphabet = byte_alphabet()
    tokens = [*alphabet, *(t + "</w>" for t in alphabet), *("".join(m) for m in merges), START_OF_TEXT, END_OF_TEXT]
    return {token: index for index, token in enumerate(tokens)}, merges


def clip_tokenizer(bpe_path: str | Path, context_length: int) -> Tokenizer:
    """CLIP's tokenizer with growclip's pad contract: ids are CLIP's plus `ID_SHIFT`, 0 pads."""
    vocab, merges = clip_vocabulary(bpe_path)
    backend = BackendTokenizer(BPE({PAD: 0, **{t: i + ID_SHIFT for t, i in vocab.items()}}, merges,
                                   end_of_word_suffix="</w>"))
    backend.normalizer = normalizers.Sequence([normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "),
                                               normalizers.Strip(), normalizers.Lowercase()])
    backend.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(CLIP_WORDS), behavior="removed", invert=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    backend.add_special_tokens([PAD, START_OF_TEXT, END_OF_TEXT])
    return Tokenizer(backend, context_length)


def is_clip_vocabulary(tokenizer: Tokenizer) -> bool:
    """Is this CLIP's vocabulary with growclip's shift (as `clip_tokenizer` makes it)?"""
    backend = tokenizer.backend
    return (tokenizer.vocab_size == CLIP_VOCAB_SIZE + ID_SHIFT and backend.token_to_id("!") == ID_SHIFT
            and backend.token_to_id(END_OF_TEXT) == CLIP_VOCAB_SIZE - 1 + ID_SHIFT)
