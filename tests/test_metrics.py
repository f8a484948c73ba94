import pytest
import torch

from growclip.eval.metrics import mean_per_class_recall, retrieval_recall, topk_accuracy

LOGITS = torch.tensor([
    [0.9, 0.1, 0.0],  # label 0: top-1 hit
    [0.5, 0.4, 0.1],  # label 1: rank 2
    [0.2, 0.7, 0.1],  # label 2: rank 2
    [0.1, 0.2, 0.7],  # label 2: top-1 hit
])
LABELS = torch.tensor([0, 1, 2, 2])


def test_topk_by_hand():
    assert topk_accuracy(LOGITS, LABELS, 1) == pytest.approx(2 / 4)
    assert topk_accuracy(LOGITS, LABELS, 2) == pytest.approx(3 / 4)  # row 2: label 2 is third
    assert topk_accuracy(LOGITS, LABELS, 3) == pytest.approx(1.0)


def test_mean_per_class_recall_by_hand():
    # class 0: 1/1, class 1: 0/1, class 2: 1/2 -> mean 0.5; plain accuracy would also say 0.5,
    # so check an imbalanced case where they differ
    assert mean_per_class_recall(LOGITS, LABELS) == pytest.approx((1 + 0 + 0.5) / 3)
    logits = torch.tensor([[1.0, 0.0]] * 4)
    labels = torch.tensor([0, 0, 0, 1])
    assert topk_accuracy(logits, labels, 1) == pytest.approx(0.75)
    assert mean_per_class_recall(logits, labels) == pytest.approx(0.5)


def test_retrieval_with_several_captions_per_image():
    # 2 images, 4 captions: captions 0, 1 -> image 0; captions 2, 3 -> image 1
    similarity = torch.tensor([
        [0.1, 0.8, 0.9, 0.0],  # image 0: best text is 2 (wrong), 2nd is 1 (right)
        [0.0, 0.1, 0.2, 0.3],  # image 1: best text is 3 (right)
    ])
    recalls = retrieval_recall(similarity, [0, 0, 1, 1], ks=(1, 2))
    assert recalls["image_to_text_R@1"] == pytest.approx(0.5)
    assert recalls["image_to_text_R@2"] == pytest.approx(1.0)  # any true caption in the top 2
    # text -> image: caption 0 best image 0 (0.1 vs 0.0) hit; 1: 0.8 vs 0.1 hit; 2: 0.9 vs 0.2 miss; 3: hit
    assert recalls["text_to_image_R@1"] == pytest.approx(3 / 4)
    assert recalls["text_to_image_R@2"] == pytest.approx(1.0)


def test_zeroshot_loss_is_at_the_models_temperature_and_chance_is_ln_classes():
    """At temperature ~0 every class is equally likely, so the loss is ln(classes); at the model's
    own temperature it is the cross-entropy of its scaled similarities."""
    import math

    import numpy as np

    from growclip.data.evalsets import ZeroShotTask
    from growclip.data.tokenizer import Tokenizer
    from growclip.eval.zeroshot import evaluate_zeroshot
    from growclip.model import create_model, load_config

    classes = ("red", "green", "blue", "black")
    tokenizer = Tokenizer.train([f"a {c} square" for c in classes] * 4, vocab_size=300, context_length=16)
    model = create_model(load_config("clip-tiny", image_size=16, patch_size=8, context_length=16,
                                     vocab_size=tokenizer.vocab_size), seed=0).eval()
    rng = np.random.default_rng(0)
    images = [(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8), label % 4) for label in range(12)]
    task = ZeroShotTask("colours", classes, ("a {} square",), images)
    at_own_scale = evaluate_zeroshot(model, tokenizer, task)["loss"]
    with torch.no_grad():
        model.logit_scale.fill_(-30.0)  # temperature exp(-30): all logits ~0
    assert evaluate_zeroshot(model, tokenizer, task)["loss"] == pytest.approx(math.log(4), abs=1e-5)
    assert at_own_scale != pytest.approx(math.log(4), abs=1e-3)
