"""File names that several layers agree on (defined once, imported wherever they are read or written)."""

from __future__ import annotations

MODEL_FILE = "model.pt"  # the final model of a run folder (`addressclip train` / `pretrain`)
