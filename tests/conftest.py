"""Test-session settings and the session fixtures shared by every test file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# pytest-xdist runs two workers on two cores: one torch thread each avoids oversubscription
# (measured 2-4x slower with torch's default threads under load).
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def pytest_configure(config) -> None:
    import torch

    torch.set_num_threads(1)


def shared_folder(tmp_path_factory) -> Path:
    """A folder every xdist worker of this run shares (never an older run's)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@pytest.fixture(scope="session")
def trained_world(tmp_path_factory):
    """The tiny trained world of the predictor/service tests, built once per run."""
    from addressclip.testing.toyworld import trained_serve_world

    return trained_serve_world(shared_folder(tmp_path_factory))


@pytest.fixture(scope="session")
def baseline_world_files(tmp_path_factory):
    """(manifest, street CLIP) of the baseline tests' toy world, built once per run."""
    from addressclip.testing.toyworld import build_toy_baseline_world

    return build_toy_baseline_world(shared_folder(tmp_path_factory) / "baseline-world")


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory):
    """The `tiny` rendered world (default parameters), rendered once per run and shared by workers."""
    from filelock import FileLock

    from addressclip.world import render_world

    shared = shared_folder(tmp_path_factory)
    with FileLock(str(shared / "tiny-world.lock")):
        return render_world("tiny", shared / "tiny-world", progress=False)
