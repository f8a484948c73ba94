from itertools import pairwise

import numpy as np
import pytest

from growclip.data.corpus import NUM_STAGES, EmbeddedCorpus
from growclip.data.corpus import attributes as A
from growclip.data.corpus.scenes import caption, sample_scene
from growclip.data.corpus.tasks import TASKS

SIZES = (20, 20, 20, 20)


def test_same_seed_same_pairs_other_seed_other_pairs():
    a, b, c = EmbeddedCorpus(1, 32, SIZES), EmbeddedCorpus(1, 32, SIZES), EmbeddedCorpus(2, 32, SIZES)
    for stage in range(NUM_STAGES):
        for index in (0, 7, 19):
            (image_a, text_a), (image_b, text_b) = a.stage(stage)[index], b.stage(stage)[index]
            assert np.array_equal(image_a, image_b) and text_a == text_b
    assert any(not np.array_equal(a.stage(3)[i][0], c.stage(3)[i][0]) for i in range(5))


def test_sample_does_not_depend_on_access_order():
    corpus = EmbeddedCorpus(0, 32, SIZES, cache_mib=0)  # every read renders
    forward = [corpus.stage(2)[i] for i in range(10)]
    backward = [corpus.stage(2)[i] for i in reversed(range(10))][::-1]
    assert all(np.array_equal(f[0], b[0]) and f[1] == b[1] for f, b in zip(forward, backward))


def test_cached_samples_are_the_rendered_ones_and_read_only():
    image_bytes = 32 * 32 * 3
    cached = EmbeddedCorpus(0, 32, SIZES, cache_mib=30 * image_bytes / 2**20)  # room for stage 0 and half of 1
    rendered = EmbeddedCorpus(0, 32, SIZES, cache_mib=0)
    for _ in range(2):  # the second pass reads the cache where there was room
        for stage in range(NUM_STAGES):
            for index in range(SIZES[stage]):
                (image, text), (expected, expected_text) = cached.stage(stage)[index], rendered.stage(stage)[index]
                assert np.array_equal(image, expected) and text == expected_text
    assert cached.cache.free_bytes == 0 and len(cached.stage(1).cache.rest) == 10 and not cached.stage(2).cache.rest
    with pytest.raises(ValueError, match="read-only"):
        cached.stage(0)[3][0][0, 0, 0] = 1
    tasks, fresh = EmbeddedCorpus(0, 32, SIZES).zeroshot_tasks(4), rendered.zeroshot_tasks(4)
    assert all(np.array_equal(a.dataset[i][0], b.dataset[i][0]) and a.dataset[i][1] == b.dataset[i][1]
               for a, b in zip(tasks, fresh) for i in (0, 5, 0))  # 0 again: from the cache


def test_images_are_rgb_uint8_of_the_asked_size():
    image, text = EmbeddedCorpus(0, 48, SIZES).stage(3)[0]
    assert image.shape == (48, 48, 3) and image.dtype == np.uint8 and text


def test_later_stages_bring_new_concepts_and_more_pairs():
    for family in A.FAMILIES:
        known = [set(family.values(k)) for k in range(NUM_STAGES)]
        assert all(earlier <= later for earlier, later in pairwise(known)), family.name
    new_per_stage = [
        {f.name for f in A.FAMILIES if set(f.values(k)) - set(f.values(k - 1) if k else ())}
        for k in range(NUM_STAGES)
    ]
    assert all(new_per_stage[k] for k in range(NUM_STAGES))
    sizes = EmbeddedCorpus().stage_sizes
    assert all(a < b for a, b in pairwise(sizes))


def test_captions_only_use_words_of_their_stage():
    """A stage-0 caption never mentions a size, texture, place or background: it has not met them."""
    rng = np.random.default_rng(0)
    late_words = {"small", "large", "striped", "dotted", "corner", "background", "left", "above", "three"}
    for _ in range(200):
        words = set(caption(sample_scene(rng, 0), 0, rng).split())
        assert not words & late_words
    stage3 = " ".join(caption(sample_scene(rng, 3), 3, rng) for _ in range(300))
    assert all(word in stage3 for word in ("background", "above", "three", "striped"))


def _wordings(family: A.Family, value: str) -> tuple[str, ...]:
    """Every way a caption can say `value`."""
    return {
        "size": A.SIZE_WORDS.get(value, ()),
        "texture": A.TEXTURE_ADJECTIVES.get(value, ()) + A.TEXTURE_SUFFIXES.get(value, ()),
        "relation": A.RELATION_WORDS.get(value, ()),
        "position": ("center", "middle") if value == "center" else (value,),
    }.get(family.name, (value,))


@pytest.mark.parametrize("stage", range(NUM_STAGES))
def test_every_concept_of_a_stage_is_in_its_captions(stage):
    """Each value a stage knows, of every family (each of its hundreds of glyphs too), is named in
    that stage's captions: nothing is drawn that the text never teaches."""
    rng = np.random.default_rng(stage)
    text = " " + " ".join(caption(sample_scene(rng, stage), stage, rng) for _ in range(12_000)) + " "
    for family in A.FAMILIES:
        for value in family.values(stage):
            assert any(f" {w}" in text for w in _wordings(family, value)), (stage, family.name, value)


def test_glyphs_are_many_distinct_and_named_apart_from_every_caption_word():
    from growclip.data.corpus.glyphs import glyph_patterns

    names = A.GLYPH.all_values
    assert len(names) >= 200 and len(set(names)) == len(names)
    assert all(len(A.GLYPH.values(k)) < len(A.GLYPH.values(k + 1)) for k in range(NUM_STAGES - 1))
    other_words = {w for f in A.FAMILIES if f is not A.GLYPH for v in f.all_values for w in v.split()}
    other_words |= {w for frame in A.FRAMES for w in frame.split()}
    assert not other_words & set(names)
    patterns = glyph_patterns(len(names))
    assert len(set(patterns)) == len(patterns) and all(4 <= len(p) <= 6 for p in patterns)


def test_new_stage_values_appear_in_their_stage_only():
    rng = np.random.default_rng(1)
    shapes_0 = {sample_scene(rng, 0).things[0].shape for _ in range(400)}
    shapes_3 = {thing.shape for _ in range(6000) for thing in sample_scene(rng, 3).things}
    assert shapes_0 == set(A.SHAPE.values(0)) | set(A.GLYPH.values(0))
    assert shapes_3 == set(A.SHAPE.all_values) | set(A.GLYPH.all_values)


def test_at_least_nine_tasks_with_balanced_labels():
    corpus = EmbeddedCorpus(0, 32, SIZES)
    tasks = corpus.zeroshot_tasks(images_per_class=4)
    assert len(tasks) >= 9 and {"relation", "colour_shape"} <= {t.name for t in tasks}
    for task in tasks:
        labels = [task.dataset[i][1] for i in range(len(task.dataset))]
        counts = np.bincount(labels, minlength=len(task.classnames))
        assert counts.min() == counts.max() > 0, task.name
        assert all("{}" in template for template in task.templates)


@pytest.mark.parametrize("task_index", range(len(TASKS)))
def test_task_images_show_their_class(task_index):
    """The scene behind each task image carries the label's value."""
    task = TASKS[task_index]
    rng = np.random.default_rng(task_index)
    for label in range(len(task.classnames)):
        fixed = task.fixed(label)
        scene = sample_scene(rng, NUM_STAGES - 1, kind=task.kind, fixed=fixed)
        if task.name == "relation":
            first, second = scene.things
            assert (first.colour, first.shape, second.colour, second.shape) == (
                fixed["first_colour"], fixed["first_shape"], fixed["second_colour"], fixed["second_shape"])
            if fixed["relation"] == "left of":
                assert first.x < second.x
            else:
                assert first.y < second.y
        else:
            assert all(scene.labels[family] == value for family, value in fixed.items())


def test_retrieval_split_is_held_out_and_multi_caption():
    corpus = EmbeddedCorpus(0, 32, SIZES)
    retrieval = corpus.retrieval_set(images=10, captions_per_image=3)
    assert len(retrieval.texts) == 30 and list(retrieval.text_to_image[:4]) == [0, 0, 0, 1]
    train_images = [corpus.stage(3)[i][0] for i in range(20)]
    assert not any(np.array_equal(r, t) for r in retrieval.images for t in train_images)



@pytest.mark.slow
def test_shapes_are_learnable_from_the_pixels():
    """A small conv-stem image tower trained on the shape labels of fresh corpus images tells the
    ten shapes apart well above chance within 150 steps, through every texture, size, place and
    background: the task is visible at 64 px, so a contrastive model at chance on it lacks signal
    or budget, not pixels."""
    import torch

    from growclip.data.corpus import TaskDataset
    from growclip.data.loader import stack_images
    from growclip.model import create_model, load_config

    torch.manual_seed(0)
    data = TaskDataset(seed=1, task_index=0, images_per_class=640, image_size=64)
    images = stack_images([data[i][0] for i in range(len(data))])
    labels = torch.tensor([data[i][1] for i in range(len(data))])
    train, held_out = slice(0, 5_600), slice(5_600, None)
    config = load_config("clip-tiny", stem="conv")
    tower, head = create_model(config, seed=0), torch.nn.Linear(config.embed_dim, 10)
    optimizer = torch.optim.AdamW([*tower.parameters(), *head.parameters()], lr=1e-3)
    for _ in range(150):
        batch = torch.randint(5_600, (64,))
        loss = torch.nn.functional.cross_entropy(head(tower.encode_image(images[train][batch], normalize=False)),
                                                 labels[train][batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        predicted = head(tower.encode_image(images[held_out], normalize=False)).argmax(1)
    assert (predicted == labels[held_out]).float().mean() > 0.4  # chance: 0.1
