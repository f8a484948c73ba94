"""A growclip tokenizer as the files other libraries load: CLIP's `vocab.json` + `merges.txt` for a
model on CLIP's vocabulary (`CLIPTokenizer`), else the `tokenizer.json` itself with a config that
makes transformers' `AutoTokenizer` (and so open_clip's `HFTokenizer`) read it as growclip does."""

from __future__ import annotations

import json
from pathlib import Path

from tokenizers import Tokenizer as BackendTokenizer

from growclip.data.tokenizer import END_OF_TEXT, PAD, START_OF_TEXT, Tokenizer
from growclip.interop.clip_bpe import ID_SHIFT, is_clip_vocabulary


def text_ids(tokenizer: Tokenizer, embedding_rows: int) -> dict[str, int]:
    """Vocabulary size (the model's token-embedding rows, which may exceed the tokenizer's) and
    special-token ids as the other library sees them (CLIP's without growclip's shift)."""
    shift = ID_SHIFT if is_clip_vocabulary(tokenizer) else 0
    start, end, pad = (tokenizer.backend.token_to_id(t) - shift for t in (START_OF_TEXT, END_OF_TEXT, PAD))
    return {"shift": shift, "vocab_size": embedding_rows - shift, "bos": start, "eos": end,
            "pad": end if shift else pad}  # CLIP's folders pad with end-of-text (its pad 0 is "!")


def swapped_ids(tokenizer: Tokenizer, a: int, b: int) -> Tokenizer:
    """The same tokenizer with ids `a` and `b` trading places (vocabulary, special tokens and the
    template that adds them); `b` may be an id the vocabulary does not use yet."""
    def swap(i: int) -> int:
        return b if i == a else a if i == b else i

    data = json.loads(tokenizer.backend.to_str())
    data["model"]["vocab"] = {token: swap(i) for token, i in data["model"]["vocab"].items()}
    for token in data["added_tokens"]:
        token["id"] = swap(token["id"])
    for special in data["post_processor"]["special_tokens"].values():
        special["ids"] = [swap(i) for i in special["ids"]]
    return Tokenizer(BackendTokenizer.from_str(json.dumps(data)), tokenizer.context_length)


def write_tokenizer_files(tokenizer: Tokenizer, output: Path) -> None:
    if is_clip_vocabulary(tokenizer):
        _write_clip_files(tokenizer, output)
        return
    tokenizer.save(output / "tokenizer.json")
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": tokenizer.context_length,
              "bos_token": START_OF_TEXT, "eos_token": END_OF_TEXT, "pad_token": PAD}
    (output / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")


def _write_clip_files(tokenizer: Tokenizer, output: Path) -> None:
    """CLIP's `vocab.json` and `merges.txt` (its ids, without growclip's shift), padded with
    end-of-text as OpenAI's CLIP folders are."""
    model = json.loads(tokenizer.backend.to_str())["model"]
    vocab = {token: i - ID_SHIFT for token, i in model["vocab"].items() if i >= ID_SHIFT}
    merges = [" ".join(m) if isinstance(m, list) else m for m in model["merges"]]
    (output / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
    (output / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    config = {"tokenizer_class": "CLIPTokenizer", "model_max_length": tokenizer.context_length,
              "bos_token": START_OF_TEXT, "eos_token": END_OF_TEXT, "unk_token": END_OF_TEXT, "pad_token": END_OF_TEXT}
    (output / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
