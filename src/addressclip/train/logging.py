"""Metrics as JSON lines (one object per step / epoch), optionally mirrored to TensorBoard."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any

from addressclip.atomic import write_text_atomic


def _plain(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "item"):
        return _plain(value.item())
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


class MetricsLogger:
    """Appends to `metrics.jsonl` (line-buffered: a killed run keeps every line it wrote)."""

    def __init__(self, folder: Path, enabled: bool = True, tensorboard: bool = False) -> None:
        self.enabled = enabled
        self.path = folder / "metrics.jsonl"
        self._handle = open(self.path, "a", encoding="utf-8", buffering=1) if enabled else None  # noqa: SIM115
        self._writer = None
        if enabled and tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._writer = SummaryWriter(str(folder / "tensorboard"))
            except ImportError:
                warnings.warn(
                    "train.tensorboard=true but tensorboard is not installed; JSONL only", stacklevel=2
                )

    def log(self, record: dict[str, Any]) -> None:
        if not self.enabled or self._handle is None:
            return
        record = _plain(record)
        self._handle.write(json.dumps(record, sort_keys=False) + "\n")
        if self._writer is not None and "step" in record:
            prefix = record.get("kind", "metric")
            for key, value in _flatten(record).items():
                if isinstance(value, int | float) and key not in ("step", "epoch"):
                    self._writer.add_scalar(f"{prefix}/{key}", value, record["step"])

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def _flatten(record: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in record.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}/"))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def truncate_metrics(path: str | Path, step: int) -> int:
    """Cut a resumed run's log back to its checkpoint: drop every record after `step` (and a line torn
    by the kill), atomically, so the steps trained again are not logged twice. Returns lines dropped."""
    path = Path(path)
    if not path.is_file():
        return 0
    kept: list[str] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    for line in lines:
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            continue  # the half-written line of a killed run
        if isinstance(record, dict) and isinstance(record.get("step"), int) and record["step"] > step:
            break  # steps only grow: everything from here on happened after the checkpoint
        kept.append(line)
    dropped = len(lines) - len(kept)
    if dropped:
        write_text_atomic(path, "".join(f"{line}\n" for line in kept))
    return dropped


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]
