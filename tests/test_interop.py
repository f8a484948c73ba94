"""open_clip and transformers in and out. The config rules and the weight layout are tested here in any
environment; the full path (an open_clip model imported, grown, trained, exported to both libraries,
embeddings compared at each hop) needs open_clip and transformers, as in the peer environment that
`.ci/run` makes (`benchmarks/peer_env.py`), and is skipped elsewhere."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import tiny_config
from growclip.checkpoint.files import load_checkpoint, save_checkpoint
from growclip.cli import main
from growclip.data.tokenizer import Tokenizer
from growclip.interop.open_clip import (
    InteropError,
    export_open_clip,
    model_config_from_open_clip,
    read_weights,
    to_growclip,
    to_open_clip,
)
from growclip.model import PAD_ID, create_model, model_cost
from growclip.train import TrainConfig, train

TINY_OPEN_CLIP = {"embed_dim": 32, "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "head_width": 32,
                                                 "patch_size": 8},
                  "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2}}
VIT_B_32 = {"embed_dim": 512, "vision_cfg": {"image_size": 224, "layers": 12, "width": 768, "patch_size": 32},
            "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 512, "heads": 8, "layers": 12}}
SMALL_RUN = dict(stage_sizes=(64, 64, 64, 64), batch_size=16, warmup=1, eval_images_per_class=2,
                 retrieval_images=8, progress=False)
TEXTS = ["a red circle", "two blue squares, left of a striped triangle!", "x " * 40, ""]


def test_an_open_clip_config_becomes_the_growclip_config_it_describes():
    config = model_config_from_open_clip({"model_cfg": TINY_OPEN_CLIP, "preprocess_cfg": {}})
    assert (config.width, config.heads, config.vision_layers, config.text_layers, config.shared_layers) == \
        (64, 2, 2, 2, 0)
    assert (config.embed_dim, config.patch_size, config.image_size, config.context_length) == (32, 8, 32, 16)
    assert config.vocab_size == 49409  # CLIP's vocabulary and growclip's pad
    vit_b_32 = model_config_from_open_clip({**VIT_B_32, "quick_gelu": True})  # OpenAI's ViT-B-32
    assert (vit_b_32.vision.width, vit_b_32.vision.heads, vit_b_32.text.width, vit_b_32.text.heads) == (768, 12, 512, 8)
    assert vit_b_32.activation == "quick_gelu" and model_cost(vit_b_32).params == 151_277_313 + 512  # + the pad row


@pytest.mark.parametrize(("change", "message"), [
    ({"vision_cfg": {**TINY_OPEN_CLIP["vision_cfg"], "head_width": 48}}, "not a whole number of heads"),
    ({"init_logit_bias": -10}, "init_logit_bias"),
    ({"vision_cfg": {**TINY_OPEN_CLIP["vision_cfg"], "ls_init_value": 1e-5}}, "ls_init_value"),
    ({"vision_cfg": {**TINY_OPEN_CLIP["vision_cfg"], "attentional_pool": True}}, "attentional_pool"),
    ({"text_cfg": {**TINY_OPEN_CLIP["text_cfg"], "hf_model_name": "roberta-base"}}, "hf_model_name"),
    ({"vision_cfg": {**TINY_OPEN_CLIP["vision_cfg"], "timm_model_name": "convnext_tiny"}}, "timm_model_name"),
    ({"text_cfg": {**TINY_OPEN_CLIP["text_cfg"], "rotary": True}}, "cannot express: rotary"),
])
def test_what_growclip_cannot_express_is_refused_by_name(change, message):
    with pytest.raises(InteropError, match=message):
        model_config_from_open_clip({**TINY_OPEN_CLIP, **change})


def test_the_open_clip_layout_round_trips_and_keeps_the_pad_row_zero():
    config = tiny_config(shared_layers=0, vocab_size=300)
    model = create_model(config, seed=0)
    theirs = to_open_clip(model)
    assert theirs["token_embedding.weight"].shape == (299, config.width)
    assert theirs["visual.proj"].shape == (config.width, config.embed_dim)  # x @ proj
    ours = to_growclip(theirs, config)
    original = model.state_dict()
    assert set(ours) == set(original)
    for name, tensor in ours.items():
        expected = original[name].clone()
        if name == "text_embed.token_embedding.weight":
            expected[PAD_ID] = 0
        torch.testing.assert_close(tensor, expected, rtol=0, atol=0, msg=name)
    with pytest.raises(InteropError, match="missing"):
        to_growclip({k: v for k, v in theirs.items() if k != "visual.proj"}, config)


def test_a_pickle_is_read_only_when_allowed(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save({"state_dict": {"module.logit_scale": torch.tensor(1.0)}}, path)
    with pytest.raises(InteropError, match="--allow-pickle"):
        read_weights(path)
    assert set(read_weights(path, allow_pickle=True)) == {"module.logit_scale"}


@pytest.mark.parametrize("content", [b"not a pickle at all", b"\x80\x04K\x01.", "list"])
def test_a_malformed_pickle_is_one_line(tmp_path, capsys, content):
    """Garbage, a pickled int, a pickled list: each refused by name, never a traceback."""
    weights = tmp_path / "weights.pt"
    if content == "list":
        torch.save([torch.zeros(1)], weights)
    else:
        weights.write_bytes(content)
    (tmp_path / "source.json").write_text(json.dumps(TINY_OPEN_CLIP))
    assert main(["import", "--open-clip", str(tmp_path / "source.json"), "--weights", str(weights), "--allow-pickle",
                 "--output", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "weights.pt: " in err and "Traceback" not in err and not (tmp_path / "out").exists()


def test_models_neither_library_can_hold_are_refused_on_export(tmp_path, corpus_tokenizer):
    for name, fields in (("shared", dict(shared_layers=1)), ("conv", dict(shared_layers=0, stem="conv"))):
        save_checkpoint(tmp_path / name, create_model(tiny_config(**fields)), corpus_tokenizer, {})
        with pytest.raises(InteropError, match="only a plain CLIP"):
            export_open_clip(tmp_path / name, tmp_path / "out")
        assert main(["export", "--checkpoint", str(tmp_path / name), "--to", "transformers",
                     "--output", str(tmp_path / "out")]) == 2


@pytest.fixture
def corpus_tokenizer():
    return Tokenizer.train(["a red circle", "two blue squares"] * 20, 300, 12)


# --- the full path, with open_clip and transformers installed ---


def _embeddings(encode_image, encode_text, images, tokens):
    with torch.no_grad():
        return torch.cat([encode_image(images), encode_text(tokens)])


def _open_clip_embeddings(open_clip, folder, images):
    """Image then text embeddings of an exported folder, as open_clip loads and tokenizes it."""
    model = open_clip.create_model_and_transforms(f"local-dir:{folder}")[0].eval()
    tokens = open_clip.get_tokenizer(f"local-dir:{folder}")(TEXTS)
    return _embeddings(lambda x: model.encode_image(x, normalize=True), lambda t: model.encode_text(t, normalize=True),
                       images, tokens)


def _transformers_embeddings(transformers, folder, images, context_length=16):
    """The same as transformers loads and tokenizes it (`AutoTokenizer`: CLIPTokenizer or the tokenizer.json)."""
    model = transformers.CLIPModel.from_pretrained(folder).eval()
    tokens = transformers.AutoTokenizer.from_pretrained(folder)(TEXTS, padding="max_length", max_length=context_length,
                                                                truncation=True, return_tensors="pt")
    with torch.no_grad():
        out = model(pixel_values=images, **tokens)
    return torch.nn.functional.normalize(torch.cat([out.image_embeds, out.text_embeds]), dim=-1)


def test_open_clip_in_grown_trained_and_out_to_open_clip_and_transformers(tmp_path):
    open_clip = pytest.importorskip("open_clip", reason="needs open_clip (the peer environment)")
    transformers = pytest.importorskip("transformers", reason="needs transformers (the peer environment)")
    from safetensors.torch import save_file

    torch.manual_seed(0)
    source = open_clip.CLIP(**TINY_OPEN_CLIP).eval()  # built here: no download
    with torch.no_grad():
        for tensor in source.parameters():  # norms and biases away from their initial 1 and 0
            tensor.add_(0.02 * torch.randn_like(tensor))
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, tmp_path / "source.safetensors")
    (tmp_path / "source.json").write_text(json.dumps(TINY_OPEN_CLIP))
    images = torch.randn(4, 3, 32, 32)
    open_clip_tokens = open_clip.tokenize(TEXTS, context_length=16)
    reference = _embeddings(lambda x: source.encode_image(x, normalize=True),
                            lambda t: source.encode_text(t, normalize=True), images, open_clip_tokens)

    assert main(["import", "--open-clip", str(tmp_path / "source.json"), "--weights",
                 str(tmp_path / "source.safetensors"), "--output", str(tmp_path / "imported")]) == 0
    model, tokenizer, _ = load_checkpoint(tmp_path / "imported")
    assert torch.equal(torch.where(tokenizer(TEXTS) > 0, tokenizer(TEXTS) - 1, 0), open_clip_tokens)
    imported = _embeddings(model.encode_image, model.encode_text, images, tokenizer(TEXTS))
    torch.testing.assert_close(imported, reference, atol=1e-4, rtol=0)

    assert main(["grow", "--checkpoint", str(tmp_path / "imported"), "--op", "text_layers+1", "--op", "mlp_ratio=6",
                 "--output", str(tmp_path / "grown")]) == 0  # exact operators
    grown, _, _ = load_checkpoint(tmp_path / "grown")
    torch.testing.assert_close(_embeddings(grown.encode_image, grown.encode_text, images, tokenizer(TEXTS)),
                               reference, atol=1e-4, rtol=0)

    train(TrainConfig(resume=str(tmp_path / "grown"), stages=(0,), samples=64, output=str(tmp_path / "trained"),
                      **SMALL_RUN))
    trained, _, _ = load_checkpoint(tmp_path / "trained" / "checkpoints" / "step_00000004")
    ours = _embeddings(trained.encode_image, trained.encode_text, images, tokenizer(TEXTS))
    assert not torch.allclose(ours, reference, atol=1e-3)  # it trained

    for library in ("open_clip", "transformers"):
        assert main(["export", "--checkpoint", str(tmp_path / "trained"), "--to", library,
                     "--output", str(tmp_path / library)]) == 0
    torch.testing.assert_close(_open_clip_embeddings(open_clip, tmp_path / "open_clip", images), ours, atol=1e-4,
                               rtol=0)
    torch.testing.assert_close(_transformers_embeddings(transformers, tmp_path / "transformers", images), ours,
                               atol=1e-4, rtol=0)

    history = train(TrainConfig(resume=str(tmp_path / "imported"), chunks=("corpus:0", "corpus:1"), epochs=2,
                                       search_fraction=0.5, heldout=16, output=str(tmp_path / "stream"),
                                       **SMALL_RUN)).chunks
    assert [r.chunk for r in history] == [0, 1]  # a growing run starts from the imported model
    assert history[0].architecture.width == 64


def test_a_model_on_growclip_s_own_bpe_exports_to_both_libraries(tmp_path):
    open_clip = pytest.importorskip("open_clip", reason="needs open_clip (the peer environment)")
    transformers = pytest.importorskip("transformers", reason="needs transformers (the peer environment)")
    tiny_config(shared_layers=0, image_size=32, context_length=16, vocab_size=400).to_json(tmp_path / "model.json")
    trained = train(TrainConfig(model=str(tmp_path / "model.json"), stages=(0,), samples=32,
                                output=str(tmp_path / "run"), **SMALL_RUN))
    model, tokenizer = trained.model, load_checkpoint(trained.checkpoint)[1]
    images = torch.randn(4, 3, 32, 32)
    ours = _embeddings(model.encode_image, model.encode_text, images, tokenizer(TEXTS))

    for library in ("open_clip", "transformers"):
        assert main(["export", "--checkpoint", str(tmp_path / "run"), "--to", library,
                     "--output", str(tmp_path / library)]) == 0
    tokens = open_clip.get_tokenizer(f"local-dir:{tmp_path / 'open_clip'}")(TEXTS)
    assert torch.equal(tokens, tokenizer(TEXTS))  # open_clip reads growclip's tokenizer.json
    torch.testing.assert_close(_open_clip_embeddings(open_clip, tmp_path / "open_clip", images), ours, atol=1e-4,
                               rtol=0)
    torch.testing.assert_close(_transformers_embeddings(transformers, tmp_path / "transformers", images), ours,
                               atol=1e-4, rtol=0)


def test_a_torchscript_archive_is_refused_with_how_to_convert_it(tmp_path):
    """OpenAI's own .pt files are TorchScript: code, not only tensors. Refused even with --allow-pickle."""
    path = tmp_path / "ViT-B-32.pt"
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), path)
    for allow in (False, True):
        with pytest.raises(InteropError, match=r"TorchScript archive.*load_openai_model"):
            read_weights(path, allow_pickle=allow)


# --- released CLIP architectures at their real size (random initialisation: nothing is downloaded) ---

# an exact per-tower operator each (ViT-L-14, the dearest to save and load, is not grown: the operators
# are the same at every size, and exact at these sizes in the other three)
RELEASED = {"ViT-B-32": "vision_mlp_ratio=5", "ViT-B-32-quickgelu": "text_mlp_ratio=6",
            "ViT-B-16": "vision_layers+1,at=0", "ViT-L-14": None}


def _released(open_clip, name, folder):
    """open_clip's `name` with its own random initialisation, norms and biases moved off 1 and 0, saved as
    safetensors; the model and the weights' path."""
    from safetensors.torch import save_file

    torch.manual_seed(0)
    source = open_clip.create_model(name).eval()
    with torch.no_grad():
        for tensor in source.parameters():
            if tensor.ndim == 1:
                tensor.add_(0.02 * torch.randn_like(tensor))
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, folder / f"{name}.safetensors")
    return source, folder / f"{name}.safetensors"


@pytest.mark.parametrize("name", RELEASED)
def test_a_released_clip_imports_grows_and_exports_exactly_at_224_px(tmp_path, name):
    open_clip = pytest.importorskip("open_clip", reason="needs open_clip (the peer environment)")
    transformers = pytest.importorskip("transformers", reason="needs transformers (the peer environment)")
    source, weights = _released(open_clip, name, tmp_path)
    images = torch.randn(2, 3, 224, 224)
    reference = _embeddings(lambda x: source.encode_image(x, normalize=True),
                            lambda t: source.encode_text(t, normalize=True), images, open_clip.tokenize(TEXTS))
    assert main(["import", "--open-clip", name, "--weights", str(weights), "--output", str(tmp_path / "in")]) == 0
    model, tokenizer, _ = load_checkpoint(tmp_path / "in")
    assert model.config.activation == ("quick_gelu" if name.endswith("quickgelu") else "gelu")
    ours = _embeddings(model.encode_image, model.encode_text, images, tokenizer(TEXTS))
    torch.testing.assert_close(ours, reference, atol=1e-4, rtol=0)
    checkpoint = tmp_path / "in"
    if RELEASED[name]:
        assert main(["grow", "--checkpoint", str(checkpoint), "--op", RELEASED[name],
                     "--output", str(tmp_path / "grown")]) == 0
        checkpoint, grown = tmp_path / "grown", load_checkpoint(tmp_path / "grown")[0]
        torch.testing.assert_close(_embeddings(grown.encode_image, grown.encode_text, images, tokenizer(TEXTS)),
                                   reference, atol=1e-4, rtol=0)
    for library in ("open_clip", "transformers"):
        assert main(["export", "--checkpoint", str(checkpoint), "--to", library,
                     "--output", str(tmp_path / library)]) == 0
    torch.testing.assert_close(_open_clip_embeddings(open_clip, tmp_path / "open_clip", images), reference,
                               atol=1e-4, rtol=0)
    torch.testing.assert_close(_transformers_embeddings(transformers, tmp_path / "transformers", images, 77),
                               reference, atol=1e-4, rtol=0)


def test_the_throughput_benchmark_times_open_clip_s_own_vit_b_32():
    """`benchmarks/configs/vit-b-32.json` is the architecture open_clip builds for ViT-B-32."""
    open_clip = pytest.importorskip("open_clip", reason="needs open_clip (the peer environment)")
    from growclip.model import load_config

    benchmark = load_config(Path(__file__).parent.parent / "benchmarks" / "configs" / "vit-b-32.json")
    assert benchmark == model_config_from_open_clip(open_clip.get_model_config("ViT-B-32"))


def test_images_are_preprocessed_as_open_clip_preprocesses_them():
    """Resize of the shorter side (bicubic), centre crop, CLIP's mean and std: the same tensors at 224 px."""
    open_clip = pytest.importorskip("open_clip", reason="needs open_clip (the peer environment)")
    from growclip.data.transforms import CenterCrop, normalize

    preprocess = open_clip.image_transform(224, is_train=False)
    rng = np.random.default_rng(0)
    for size in ((640, 480), (300, 501), (224, 224), (1000, 251), (97, 130)):
        image = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
        ours = normalize(torch.from_numpy(CenterCrop(224)(image, rng))[None])[0]
        torch.testing.assert_close(ours, preprocess(image), atol=1e-5, rtol=0, msg=str(size))


@pytest.mark.slow
def test_a_grown_vit_b_32_trains_on_new_pairs(tmp_path):
    """A few optimizer steps of the real size, grown tower by tower, on corpus pairs rendered at 224 px."""
    open_clip = pytest.importorskip("open_clip", reason="needs open_clip (the peer environment)")
    _, weights = _released(open_clip, "ViT-B-32", tmp_path)
    assert main(["import", "--open-clip", "ViT-B-32", "--weights", str(weights), "--output", str(tmp_path / "in")]) == 0
    assert main(["grow", "--checkpoint", str(tmp_path / "in"), "--op", "text_layers+1", "--op", "vision_mlp_ratio=5",
                 "--output", str(tmp_path / "grown")]) == 0
    before = load_checkpoint(tmp_path / "grown")[0].state_dict()
    labelled = tmp_path / "labelled"  # a small zero-shot set of the user's: the corpus's 10 tasks at 77 tokens
    for index, name in enumerate(("red", "blue")):  # take minutes of text encoding at this size
        (labelled / name).mkdir(parents=True)
        Image.new("RGB", (240, 320), ((255, 0, 0), (0, 0, 255))[index]).save(labelled / name / "0.png")
    result = train(TrainConfig(resume=str(tmp_path / "grown"), stages=(0,), samples=16, batch_size=8, warmup=1,
                               zeroshot_data=str(labelled), retrieval_images=4, progress=False,
                               output=str(tmp_path / "trained")))
    assert result.model.config.vision.mlp_ratio == 5 and result.model.config.text_layers == 13
    moved = [name for name, tensor in result.model.state_dict().items() if not torch.equal(tensor, before[name])]
    assert "vision_blocks.0.mlp.fc1.weight" in moved and "text_blocks.12.mlp.fc2.weight" in moved
