"""Readers (tables, sidecar folders, webdataset shards, '::' joins), bad records, the training stream."""

import tarfile
from collections import Counter
from itertools import islice

import numpy as np
import pytest
import torch

from datafiles import BAD_TABLE_ROWS, colour, png_bytes, write_bad_table, write_images, write_shards, write_table
from growclip.data.batches import TrainBatches
from growclip.data.pairs import DataError, Skip
from growclip.data.sources import ReaderOptions, open_sources
from growclip.data.tokenizer import Tokenizer
from growclip.data.transforms import MEAN, STD, CenterCrop, RandomResizedCrop

TOKENIZER = Tokenizer.train([f"a flat colour number {i}" for i in range(100)], 300, 12)


def read_all(sources) -> tuple[list[str], Counter]:
    captions, skipped = [], Counter(sources.skipped_on_open)
    for part, record in sources.all_records():
        item = sources.load(part, record, CenterCrop(16), lambda: np.random.default_rng(0))
        if isinstance(item, Skip):
            skipped[item.reason] += 1
        else:
            assert item.image.shape == (16, 16, 3) and item.image.dtype == np.uint8
            captions.append(item.caption)
    return captions, skipped


def batch_colours(images: torch.Tensor) -> list[tuple[int, int, int]]:
    """The flat colour of each normalised (B, 3, S, S) image, back in 0..255."""
    pixels = images.mean(dim=(2, 3)) * torch.tensor(STD) * 255 + torch.tensor(MEAN) * 255
    return [tuple(round(v) for v in row) for row in pixels.tolist()]


def test_table_paths_resolve_against_its_folder_with_either_separator(tmp_path):
    rows = write_images(tmp_path / "data" / "images", 5)
    write_table(tmp_path / "data" / "pairs.tsv", [(f"images/{n}", c) for n, c in rows])
    write_table(tmp_path / "data" / "pairs.csv", [(f"images/{n}", c) for n, c in rows], separator=",")
    write_table(tmp_path / "data" / "custom.txt", [(f"images/{n}", c) for n, c in rows], separator="|",
                header=("image", "caption"))
    expected = [caption for _, caption in rows]
    assert read_all(open_sources(str(tmp_path / "data" / "pairs.tsv")))[0] == expected
    assert read_all(open_sources(str(tmp_path / "data" / "pairs.csv")))[0] == expected
    custom = ReaderOptions(csv_separator="|", csv_img_key="image", csv_caption_key="caption")
    assert read_all(open_sources(str(tmp_path / "data" / "custom.txt"), custom))[0] == expected


def test_wrong_column_names_the_columns_that_exist(tmp_path):
    table = write_table(tmp_path / "pairs.csv", [("a.png", "x")], separator=",", header=("path", "text"))
    with pytest.raises(DataError, match=r"no column 'filepath' \(--csv-img-key\); the columns are \['path', 'text'\]"):
        open_sources(str(table))
    with pytest.raises(DataError, match="no column 'title'"):
        open_sources(str(table), ReaderOptions(csv_img_key="path"))


def test_folder_with_sidecar_captions(tmp_path):
    write_images(tmp_path / "photos" / "a", 3, sidecars=True)
    write_images(tmp_path / "photos" / "b", 2, start=3, sidecars=True)
    (tmp_path / "photos" / "b" / "img0004.txt").unlink()
    captions, skipped = read_all(open_sources(str(tmp_path / "photos")))
    assert captions == [f"a flat colour number {i}" for i in range(4)]
    assert skipped == {"missing caption": 1}


def test_shards_brace_expanded_and_joined_with_other_sources(tmp_path):
    pattern = write_shards(tmp_path / "shards", 7, per_shard=3)
    assert pattern.endswith("shard-{000..002}.tar")
    rows = write_images(tmp_path / "images", 2, start=50)
    table = write_table(tmp_path / "pairs.tsv", [(f"images/{n}", c) for n, c in rows])
    sources = open_sources(f"{pattern}::{table}")
    assert sources.count() == 9
    captions, skipped = read_all(sources)
    assert sorted(captions) == sorted([f"a flat colour number {i}" for i in [*range(7), 50, 51]])
    assert not skipped


def test_bad_shard_samples_and_a_corrupt_shard_are_skipped_and_counted(tmp_path):
    import webdataset as wds

    with wds.TarWriter(str(tmp_path / "bad.tar")) as sink:
        sink.write({"__key__": "ok", "png": png_bytes(1), "txt": "fine"})
        sink.write({"__key__": "noimage", "txt": "no image here"})
        sink.write({"__key__": "nocaption", "png": png_bytes(2)})
        sink.write({"__key__": "garbage", "png": b"\x00garbage", "txt": "broken"})
        sink.write({"__key__": "latin", "png": png_bytes(3), "txt": "caf\xe9".encode("latin-1")})
        sink.write({"__key__": "blank", "png": png_bytes(4), "txt": "  "})
    good = tmp_path / "good.tar"
    with wds.TarWriter(str(good)) as sink:
        for i in range(4):
            sink.write({"__key__": f"k{i}", "png": png_bytes(10 + i), "txt": f"caption {i}"})
    with tarfile.open(good) as tar:
        second_sample = next(member.offset for member in tar if member.name.startswith("k1"))
    cut = tmp_path / "cut.tar"
    cut.write_bytes(good.read_bytes()[: second_sample + 700])  # the first sample whole, then a cut-off one
    captions, skipped = read_all(open_sources(f"{tmp_path}/{{bad,cut}}.tar"))
    assert captions[0] == "fine" and "caption 0" in captions
    assert skipped["missing image"] == 1 and skipped["missing caption"] == 1
    assert skipped["unreadable image"] == 1 and skipped["non-UTF-8 caption"] == 1
    assert skipped["empty caption"] == 1 and skipped["cut-off shard"] == 1


def test_missing_shards_fail_at_start(tmp_path):
    write_shards(tmp_path, 2, per_shard=1)
    with pytest.raises(DataError, match="1 of 3 shards"):
        open_sources(f"{tmp_path}/shard-{{000..002}}.tar")


def test_every_bad_record_is_skipped_and_counted_and_every_good_one_trained_on(tmp_path):
    good = 12
    sources = open_sources(str(write_bad_table(tmp_path / "pairs.tsv", good)))
    stream = TrainBatches(sources, TOKENIZER, RandomResizedCrop(16), batch_size=4, seed=0)
    batches = list(stream.one_epoch())  # 12 good pairs make exactly 3 batches
    assert len(batches) == 3
    seen = [rgb for images, _ in batches for rgb in batch_colours(images)]
    assert sorted(seen) == sorted(colour(i) for i in range(good))
    assert dict(stream.total_skipped) == BAD_TABLE_ROWS


def test_stream_resumes_exactly_from_its_state(tmp_path):
    sources = open_sources(str(write_bad_table(tmp_path / "pairs.tsv", 30)) + "::" +
                           write_shards(tmp_path / "shards", 20, per_shard=6, start=40))
    def make(state=None):
        return TrainBatches(sources, TOKENIZER, RandomResizedCrop(16, (0.5, 1.0)), 4, seed=3, workers=2, state=state)

    reference = list(islice(iter(make()), 30))  # several epochs
    first = make()
    batches = iter(first)
    head = [next(batches) for _ in range(11)]
    resumed = list(islice(iter(make(first.state_dict())), 19))
    for (a_images, a_tokens), (b_images, b_tokens) in zip(reference, head + resumed, strict=True):
        assert torch.equal(a_images, b_images) and torch.equal(a_tokens, b_tokens)
    assert first.state_dict()["epoch"] == 0 and make(first.state_dict()).epoch == 0
    with pytest.raises(DataError, match="as many processes x workers"):  # a shard half read cannot be dealt anew
        other = TrainBatches(sources, TOKENIZER, RandomResizedCrop(16), 4, seed=3, workers=1)
        other.adopt([first.state_dict()])


def test_the_workers_stay_up_from_epoch_to_epoch_and_keep_the_batch_order(tmp_path):
    """The corpus caches its rendered images in the process that renders them: new workers every
    epoch would render every pair again."""
    sources = open_sources(str(write_table(tmp_path / "pairs.tsv", [(f"images/{n}", c) for n, c in
                                                                  write_images(tmp_path / "images", 16)])))
    stream = TrainBatches(sources, TOKENIZER, CenterCrop(16), 4, seed=0, workers=2)
    batches = iter(stream)
    loaders = set()
    continuous = []
    for _ in range(12):  # 3 epochs of 4 batches
        continuous.append(next(batches))
        loaders.add(id(stream.loader))
    assert stream.epoch == 2 and len(loaders) == 1 and stream.loader.persistent_workers
    for epoch in range(3):  # each epoch read afresh from its start, as a resumed run reads it
        fresh = TrainBatches(sources, TOKENIZER, CenterCrop(16), 4, seed=0, workers=2,
                             state={**stream.state_dict(), "epoch": epoch, "cursors": [0, 0], "ended": [False] * 2,
                                    "next_lane": 0})
        for (a, _), (b, _) in zip(continuous[4 * epoch:4 * epoch + 4], fresh.one_epoch(), strict=True):
            assert torch.equal(a, b)


@pytest.mark.parametrize("bad_records", [False, True])
def test_a_position_saved_by_two_processes_resumes_on_one_or_three_with_no_pair_twice_or_missed(tmp_path,
                                                                                                bad_records):
    good = 48
    table = (write_bad_table(tmp_path / "pairs.tsv", good) if bad_records else
             write_table(tmp_path / "pairs.tsv", [(f"images/{n}", c) for n, c in write_images(tmp_path / "images",
                                                                                               good)]))
    sources = open_sources(str(table))

    def stream(rank: int, world: int, workers: int = 0) -> TrainBatches:
        return TrainBatches(sources, TOKENIZER, CenterCrop(16), 4, seed=1, workers=workers, rank=rank, world=world)

    saved = [stream(rank, 2) for rank in range(2)]
    epochs = [s.one_epoch() for s in saved]
    seen = [rgb for _ in range(3) for epoch in epochs for rgb in batch_colours(next(epoch)[0])]
    positions = [s.state_dict() for s in saved]
    for world, workers in ((1, 0), (3, 2)):
        rest = []
        for rank in range(world):
            resumed = stream(rank, world, workers)
            resumed.load_state_dict(resumed.adopt(positions))
            rest += [rgb for images, _ in resumed.one_epoch() for rgb in batch_colours(images)]
        read = seen + rest
        assert len(read) == len(set(read)) and set(read) <= {colour(i) for i in range(good)}
        # with bad records a lane's last partial batch is dropped, as in any epoch (drop_last)
        assert len(read) == good or (bad_records and len(read) >= good - 3 * world * max(1, workers))


def test_no_full_batch_is_a_clear_error(tmp_path):
    sources = open_sources(str(write_bad_table(tmp_path / "pairs.tsv", 3)))
    with pytest.raises(DataError, match="not one full batch of 4 readable pairs"):
        next(iter(TrainBatches(sources, TOKENIZER, CenterCrop(16), 4, seed=0)))


def test_random_resized_crop_is_seeded_and_keeps_size():
    from PIL import Image

    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 60, 3), dtype=np.uint8))
    crop = RandomResizedCrop(16, (0.3, 0.6))
    a, b = crop(image, np.random.default_rng(1)), crop(image, np.random.default_rng(1))
    assert a.shape == (16, 16, 3) and np.array_equal(a, b)
    assert not np.array_equal(a, crop(image, np.random.default_rng(2)))
