"""Test-session settings shared by every test file."""

from __future__ import annotations

import os

# pytest-xdist runs two workers on two cores: one torch thread each avoids oversubscription
# (measured 2-4x slower with torch's default threads under load).
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def pytest_configure(config) -> None:
    import torch

    torch.set_num_threads(1)
