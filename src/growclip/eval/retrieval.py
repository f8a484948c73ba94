"""Zero-shot image-text retrieval."""

from __future__ import annotations

from growclip.data.evalsets import RetrievalSet
from growclip.data.tokenizer import Tokenizer
from growclip.eval.encode import encode_images, encode_texts
from growclip.eval.metrics import retrieval_recall
from growclip.model.clip import CLIP


def evaluate_retrieval(model: CLIP, tokenizer: Tokenizer, retrieval: RetrievalSet, precision: str = "fp32"
                       ) -> dict[str, float]:
    image_features, _ = encode_images(model, retrieval.images, precision=precision)
    text_features = encode_texts(model, tokenizer, retrieval.texts, precision=precision)
    return retrieval_recall(image_features @ text_features.t(), retrieval.text_to_image)
