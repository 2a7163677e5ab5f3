import json
from pathlib import Path

import pytest
import torch
import yaml

from addressclip.config import load_config, read_config_file
from addressclip.data.manifest import read_manifest
from addressclip.errors import AddressclipError, ConfigError
from addressclip.losses import AddressClipLoss, LossInputs
from addressclip.model import build_model, load_checkpoint
from addressclip.testing.toyworld import make_toy_manifest
from addressclip.train.data import load_stage_data
from addressclip.train.engine import train_model
from addressclip.train.logging import read_metrics


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    return make_toy_manifest(tmp_path_factory.mktemp("world"))


def _config(world: Path, out: Path, *overrides: str):
    return load_config("tiny", [f"data={world}", f"out={out}", "train.threads=1", *overrides])


def _train_set_loss(model, config) -> float:
    data = load_stage_data(config, "address", 32)
    batch = data.train.__getitems__(list(range(len(data.train))))
    from addressclip.data.transforms import Normalizer

    images = Normalizer(model.preprocess["mean"], model.preprocess["std"])(batch.images)
    model.eval()
    with torch.no_grad():
        image, address, caption, scale = model(images, batch.addresses, batch.captions)
        terms = AddressClipLoss(config.loss)(
            LossInputs(image, address, caption, batch.labels, batch.utm), scale
        )
    return terms["total"].item()


def test_two_steps_lower_the_loss_and_write_a_complete_run(world: Path, tmp_path: Path):
    config = _config(world, tmp_path / "run", "optim.batch_size=16", "optim.lr=3e-3", "optim.lr_min=3e-3")
    torch.manual_seed(config.seed)
    initial = _train_set_loss(build_model(config.model), config)
    result = train_model(config)
    assert result.steps == 2  # 36 train images, global batch 16
    trained = load_checkpoint(tmp_path / "run" / "checkpoints" / "latest.pt")
    after = _train_set_loss(trained, config)
    assert after < initial - 0.05

    run = tmp_path / "run"
    assert read_config_file(run / "config.yaml") == config
    records = read_metrics(run / "metrics.jsonl")
    steps = [r for r in records if r["kind"] == "step"]
    assert [r["step"] for r in steps] == [1, 2]
    assert {"address", "caption", "geo", "total", "lr", "logit_scale"} <= set(steps[0])
    epoch = next(r for r in records if r["kind"] == "epoch")
    assert set(epoch["val"]) == {"SSA-1", "SA-1", "SSA-5", "SA-5"}
    assert 0 <= epoch["val"]["SSA-1"] <= epoch["val"]["SSA-5"] <= 100
    assert epoch["val"]["SSA-1"] <= epoch["val"]["SA-1"]
    model = load_checkpoint(result.model_path)
    assert model.preprocess["image_size"] == 32
    # a second run into the same folder must not overwrite the first by accident
    with pytest.raises(AddressclipError, match="--resume latest"):
        train_model(config)


def test_best_n_checkpoints_by_val_ssa1(world: Path, tmp_path: Path):
    config = _config(world, tmp_path / "run", "optim.epochs=4", "train.keep_best=2", "optim.batch_size=12")
    result = train_model(config)
    folder = tmp_path / "run" / "checkpoints"
    assert result.test == {}  # no test split in this world
    best = json.loads((folder / "best.json").read_text())
    assert len(best) == 2
    kept = sorted(p.name for p in folder.glob("best-*.pt"))
    assert kept == sorted(e["path"] for e in best)
    scores = [r["val"]["SSA-1"] for r in result.history]
    assert best[0]["score"] == pytest.approx(max(scores))
    assert result.best_val["SSA-1"] == pytest.approx(max(scores))
    assert load_checkpoint(result.model_path) is not None


def test_test_split_is_reported_for_the_saved_model(tmp_path: Path):
    world = make_toy_manifest(tmp_path / "w", per_address=10, test_per_address=2)
    result = train_model(_config(world, tmp_path / "run"))
    assert set(result.test) == {"SSA-1", "SA-1", "SSA-5", "SA-5"}
    summary = json.loads((tmp_path / "run" / "result.json").read_text())
    assert summary["test"] == pytest.approx(result.test) and summary["steps"] == result.steps


def test_grad_accumulation_counts_optimizer_steps(world: Path, tmp_path: Path):
    config = _config(
        world, tmp_path / "run", "optim.batch_size=4", "optim.accum_steps=2", "loader.augment=true"
    )
    result = train_model(config)
    assert result.steps == 4  # 9 batches of 4 -> 4 steps of 2 micro-batches


def test_multi_positive_and_literal_geo_run(world: Path, tmp_path: Path):
    config = _config(world, tmp_path / "run", "loss.targets=multi_positive", "loss.geo=literal")
    assert train_model(config).steps > 0


def test_pretrain_stage_uses_captions_only_and_extra_worlds(world: Path, tmp_path: Path):
    extra = make_toy_manifest(tmp_path / "karhula", addresses=4, per_address=4, seed=3, name="karhula")
    config = _config(world, tmp_path / "pre", f"pretrain.extra_data=[{extra}]")
    data = load_stage_data(config, "pretrain", 32)
    assert len(data.train) == 36 + 16  # helsinki-like train split + the whole extra world
    assert all(c.startswith("A street view") for c in data.train.captions)
    assert not any("Street" in c for c in data.train.captions)  # no address text
    train_model(config, stage="pretrain")
    steps = [r for r in read_metrics(tmp_path / "pre" / "metrics.jsonl") if r["kind"] == "step"]
    assert set(steps[0]) >= {"caption", "total"} and "address" not in steps[0] and "geo" not in steps[0]
    saved = yaml.safe_load((tmp_path / "pre" / "config.yaml").read_text())  # the effective config
    assert (saved["loss"]["alpha"], saved["loss"]["beta"], saved["loss"]["gamma"]) == (0.0, 1.0, 0.0)
    assert saved["loss"]["caption_template"] == "{caption}"
    with pytest.raises(ConfigError, match="held-out split"):
        load_stage_data(_config(world, tmp_path / "x", "pretrain.splits=[train,val]"), "pretrain", 32)


def test_batch_larger_than_the_data_is_a_config_error(world: Path, tmp_path: Path):
    with pytest.raises(ConfigError, match=r"optim\.batch_size"):
        train_model(_config(world, tmp_path / "run", "optim.batch_size=64"))
    assert read_manifest(world).frame.shape[0] == 48
