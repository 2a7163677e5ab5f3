"""Kill a training run mid-epoch (SIGKILL from outside), resume it, compare with an uninterrupted run."""

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from addressclip.config import load_config
from addressclip.errors import AddressclipError, ConfigError
from addressclip.model import read_checkpoint
from addressclip.testing.toyworld import make_toy_manifest, tiny_train_command
from addressclip.train.engine import train_model

OVERRIDES = [
    "optim.epochs=2",
    "optim.batch_size=2",
    "loader.augment=true",
    "train.checkpoint_every=2",
    "train.threads=1",
    "optim.warmup_steps=3",
]


def _steps_logged(metrics: Path) -> int:
    if not metrics.is_file():
        return 0
    lines = [line for line in metrics.read_text().splitlines() if '"kind": "step"' in line]
    return len(lines)


def _kill_mid_epoch(world: Path, out: Path) -> None:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    command = tiny_train_command(f"data={world}", f"out={out}", *OVERRIDES)
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    try:
        while _steps_logged(out / "metrics.jsonl") < 5:
            if process.poll() is not None:
                raise AssertionError(
                    f"training ended before the kill: {process.stderr.read().decode()[-2000:]}"
                )
            if time.monotonic() > deadline:
                raise AssertionError("training did not reach step 5 within 60 s")
            time.sleep(0.005)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL


@pytest.mark.slow  # three training processes, one killed
def test_resume_after_kill_reaches_the_uninterrupted_weights(tmp_path: Path):
    world = make_toy_manifest(tmp_path / "world")
    killed = tmp_path / "killed"
    _kill_mid_epoch(world, killed)
    latest = read_checkpoint(killed / "checkpoints" / "latest.pt")["training"]
    steps_per_epoch = 18  # 36 train images, batch 2
    assert latest["epoch"] == 0 and 0 < latest["batch"] < steps_per_epoch, "the kill must land mid-epoch"

    resumed = train_model(
        load_config("tiny", [f"data={world}", f"out={killed}", *OVERRIDES]), resume="latest"
    )
    reference = train_model(
        load_config("tiny", [f"data={world}", f"out={tmp_path / 'straight'}", *OVERRIDES])
    )
    assert resumed.steps == reference.steps == 2 * steps_per_epoch

    ours = read_checkpoint(killed / "checkpoints" / "latest.pt")
    theirs = read_checkpoint(tmp_path / "straight" / "checkpoints" / "latest.pt")
    for key, value in theirs["state_dict"].items():
        assert torch.allclose(ours["state_dict"][key], value, rtol=0, atol=1e-6), key
    assert ours["training"]["optimizer"]["state"].keys() == theirs["training"]["optimizer"]["state"].keys()
    assert resumed.final_val == pytest.approx(reference.final_val)
    records = (killed / "metrics.jsonl").read_text()
    assert '"kind": "resume"' in records


def test_resume_refuses_missing_checkpoint_and_changed_config(tmp_path: Path):
    world = make_toy_manifest(tmp_path / "world", addresses=4, per_address=6)
    base = [f"data={world}", f"out={tmp_path / 'run'}", "train.threads=1"]
    with pytest.raises(AddressclipError, match=r"latest\.pt not found"):
        train_model(load_config("tiny", base), resume="latest")
    train_model(load_config("tiny", base))
    with pytest.raises(ConfigError, match=r"optim\.lr"):
        train_model(load_config("tiny", [*base, "optim.lr=0.5"]), resume="latest")
