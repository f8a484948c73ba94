import pytest
import torch

from growclip.data.tokenizer import END_OF_TEXT, Tokenizer, TokenizerError
from growclip.model import PAD_ID

CAPTIONS = ["a red circle on a white background", "two blue squares", "a small green triangle above a star"]


@pytest.fixture(scope="module")
def tokenizer():
    return Tokenizer.train(CAPTIONS * 20, vocab_size=400, context_length=10)


def test_fixed_length_with_end_of_text_before_padding(tokenizer):
    tokens = tokenizer(["two blue squares", "a red circle on a white background and much more text"])
    assert tokens.shape == (2, 10) and tokens.dtype == torch.long
    end = tokenizer.backend.token_to_id(END_OF_TEXT)
    last = tokens.ne(PAD_ID).sum(dim=1) - 1
    assert tokens[0, last[0]] == end and (tokens[0, last[0] + 1 :] == PAD_ID).all()
    assert last[1] == 9 and tokens[1, 9] == end  # truncated, end-of-text kept


def test_save_load_round_trip(tmp_path, tokenizer):
    tokenizer.save(tmp_path / "tokenizer.json")
    loaded = Tokenizer.load(tmp_path / "tokenizer.json", context_length=10)
    assert torch.equal(loaded(CAPTIONS), tokenizer(CAPTIONS))
    assert loaded.decode(loaded(["two blue squares"])[0].tolist()).strip() == "two blue squares"


def test_captions_seen_before_get_the_ids_encoding_gives(monkeypatch, tokenizer):
    """Known captions are looked up; past the limit they are encoded each time, never mixed up."""
    monkeypatch.setattr("growclip.data.tokenizer.KNOWN_CAPTIONS", 2)
    fresh = Tokenizer(tokenizer.backend, 10)
    batch = [CAPTIONS[2], CAPTIONS[0], CAPTIONS[2], CAPTIONS[1], "an unseen purple hexagon"]
    expected = torch.tensor([e.ids for e in tokenizer.backend.encode_batch(batch)])
    assert torch.equal(fresh(batch), expected) and len(fresh._known) == 2
    assert torch.equal(fresh(batch[::-1]), expected.flip(0)) and len(fresh._known) == 2
    assert fresh([]).shape == (0, 10)


def test_unreadable_tokenizer_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "tokenizer.json"
    bad.write_text("{not json")
    with pytest.raises(TokenizerError, match="cannot load tokenizer"):
        Tokenizer.load(bad, 10)
