"""The training-engine methods: the L_address-only fine-tune and AddressCLIP, started from the street
CLIP, scored through the shared gallery path, and reused when already finished."""

import json
from pathlib import Path

import pytest

from addressclip.baselines.base import BaselineSetup
from addressclip.baselines.runner import run_method
from addressclip.config import read_config_file
from addressclip.testing.toyworld import open_toy_baseline_world

FAST = ("train.threads=1", "optim.batch_size=12", "optim.epochs=1")


@pytest.fixture(scope="module")
def world(baseline_world_files):
    return open_toy_baseline_world(*baseline_world_files)


def _setup(world, folder: Path, **options) -> BaselineSetup:
    data, encoder, init = world
    return BaselineSetup(
        data, encoder, init, folder, preset="tiny", overrides=FAST, progress=False, options=options
    )


def test_address_only_fine_tune_starts_from_the_street_clip(world, tmp_path: Path):
    result = run_method("finetune_address", _setup(world, tmp_path))
    run = tmp_path / "run"
    config = read_config_file(run / "config.yaml")
    assert config.loss.beta == 0.0 and config.loss.gamma == 0.0 and config.loss.alpha == 1.0
    assert config.model.init == str(world[2])
    assert result.output.checkpoint == run / "model.pt"
    metrics = result.evaluation.metrics
    assert 0.0 <= metrics["SSA-1"] <= metrics["SSA-5"] <= 100.0
    assert result.output.hyper["overrides"] == ["loss.beta=0", "loss.gamma=0"]
    done = json.loads((run / "done.json").read_text())
    assert done["steps"] == 4  # 48 training images, batch 12, one epoch
    # a second call reuses the finished run instead of training again
    stamp = (run / "model.pt").stat().st_mtime_ns
    again = run_method("finetune_address", _setup(world, tmp_path))
    assert (run / "model.pt").stat().st_mtime_ns == stamp
    assert again.evaluation.metrics["SSA-1"] == metrics["SSA-1"]


def test_addressclip_trains_all_three_losses_or_scores_a_given_checkpoint(world, tmp_path: Path):
    trained = run_method("addressclip", _setup(world, tmp_path / "train"))
    config = read_config_file(tmp_path / "train" / "run" / "config.yaml")
    assert (config.loss.alpha, config.loss.beta, config.loss.gamma) == (1.0, 0.2, 0.8)
    given = run_method("addressclip", _setup(world, tmp_path / "given", model=str(trained.output.checkpoint)))
    assert not (tmp_path / "given" / "run").exists()
    assert given.evaluation.metrics["SSA-1"] == trained.evaluation.metrics["SSA-1"]
    assert given.output.storage_bytes == trained.output.storage_bytes
