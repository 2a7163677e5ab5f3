import subprocess
import sys
from pathlib import Path

import open_clip
import pytest
import torch

from addressclip.config import load_config
from addressclip.errors import AddressclipError
from addressclip.model import build_model, load_checkpoint, save_checkpoint
from addressclip.model.backbone import minilm_path, open_clip_config


@pytest.mark.slow  # a fresh interpreter importing torch
def test_import_registers_nothing_and_build_registers_the_custom_config():
    code = (
        "import open_clip, addressclip.model, addressclip.train.engine;"
        "print(sum(m.startswith('addressclip-') for m in open_clip.list_models()))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "0"
    model = build_model(load_config("tiny").model)
    assert any(m.startswith("addressclip-") for m in open_clip.list_models())
    assert model.clip.visual.image_size == (32, 32)
    assert model.open_clip_config["vision_cfg"]["layers"] == 2
    assert model.preprocess["image_size"] == 32


def test_named_architecture_keeps_open_clip_config():
    config = load_config("paper").model
    resolved = open_clip_config(config)
    assert resolved["vision_cfg"]["width"] == 768 and resolved["vision_cfg"]["patch_size"] == 16
    assert resolved["text_cfg"]["context_length"] == 77


def test_minilm_tower_starts_from_the_bundled_pretrained_weights():
    from safetensors.torch import load_file

    model = build_model(load_config("tiny", ["model.text_tower=minilm"]).model)
    weights = load_file(str(minilm_path() / "model.safetensors"))
    key = next(k for k in weights if k.endswith("word_embeddings.weight"))
    ours = model.clip.text.transformer.embeddings.word_embeddings.weight
    assert torch.equal(ours.detach(), weights[key])
    # MiniLM's own tokenizer (WordPiece), not CLIP's BPE
    assert model.tokenize(["Mannerheimintie & Kaivokatu"])[0, 0].item() == 101


def test_pretrained_weights_load_from_file_and_folder(tmp_path: Path):
    config = load_config("tiny").model
    source = build_model(config)
    weights = tmp_path / "weights" / "open_clip_model.safetensors"
    weights.parent.mkdir()
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in source.clip.state_dict().items()}, str(weights))
    for given in (weights, weights.parent):
        config.pretrained = str(given)
        loaded = build_model(config)
        assert torch.equal(loaded.clip.visual.conv1.weight, source.clip.visual.conv1.weight)


@pytest.mark.parametrize(
    ("pretrained", "fragments"),
    [
        ("missing/dir/vit.pt", ["missing/dir/vit.pt", "not found", "downloaded beforehand"]),
        ("openai", ["'openai'", "never downloads", "ViT-B-16-quickgelu"]),
    ],
)
def test_unusable_pretrained_names_the_file_and_how_to_get_it(pretrained, fragments):
    config = load_config("tiny", [f"model.pretrained={pretrained}"]).model
    with pytest.raises(AddressclipError) as info:
        build_model(config)
    for fragment in fragments:
        assert fragment in str(info.value)


def test_checkpoint_rebuilds_model_in_one_call(tmp_path: Path):
    for overrides in ([], ["model.text_tower=minilm", "model.trainable=image"]):
        model = build_model(load_config("tiny", overrides).model)
        with torch.no_grad():
            model.clip.logit_scale.fill_(2.5)
        path = save_checkpoint(tmp_path / "m.pt", model)
        again = load_checkpoint(path)
        images = torch.randn(2, 3, 32, 32)
        model.eval()
        assert torch.allclose(again.encode_image(images), model.encode_image(images), atol=1e-6)
        texts = ["Street 1 & Cross 2, Kluuvi", "Street 3, Kamppi"]
        assert torch.allclose(again.encode_text(texts), model.encode_text(texts), atol=1e-6)
        assert again.model_config.trainable == model.model_config.trainable
        assert again.preprocess == model.preprocess


def test_bad_checkpoint_is_a_one_line_error(tmp_path: Path):
    bogus = tmp_path / "x.pt"
    torch.save({"hello": 1}, bogus)
    with pytest.raises(AddressclipError, match="not an addressclip checkpoint"):
        load_checkpoint(bogus)
    with pytest.raises(AddressclipError, match="not found"):
        load_checkpoint(tmp_path / "none.pt")
