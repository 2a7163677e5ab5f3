"""Training checkpoints: everything `--resume latest` needs to continue bit for bit.

`checkpoints/latest.pt` holds model, optimizer, scheduler, scaler, the RNG states (torch, CUDA,
numpy, python) and the position in the epoch; it is written atomically, so a run killed while
writing leaves the previous one intact. The one before it is kept as `previous.pt` (a hard link, so
no copy), and `--resume latest` falls back to it with a warning when `latest.pt` cannot be read (a
disk that filled up or lost power can still leave a damaged file behind). `best-*.pt` files keep the
N best epochs by val SSA-1 (model only, for inference); `model.pt` beside the run is the best of
them at the end.
"""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from addressclip.atomic import atomic_path, write_text_atomic
from addressclip.errors import AddressclipError
from addressclip.model.checkpoint import read_checkpoint

LATEST = "latest.pt"
PREVIOUS = "previous.pt"

LOG = logging.getLogger(__name__)


def capture_rng() -> dict[str, Any]:
    state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {
            "name": state[0],
            "keys": torch.from_numpy(np.asarray(state[1], dtype=np.int64)),
            "pos": int(state[2]),
            "has_gauss": int(state[3]),
            "cached_gaussian": float(state[4]),
        },
        "python": random.getstate(),
    }


def restore_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    numpy_state = state["numpy"]
    np.random.set_state(
        (
            numpy_state["name"],
            numpy_state["keys"].numpy().astype(np.uint32),
            numpy_state["pos"],
            numpy_state["has_gauss"],
            numpy_state["cached_gaussian"],
        )
    )
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


def checkpoint_dir(out: Path) -> Path:
    return out / "checkpoints"


def resolve_resume(out: Path, resume: str) -> Path:
    """'latest' -> the run's latest checkpoint; otherwise a path."""
    path = checkpoint_dir(out) / LATEST if resume == "latest" else Path(resume)
    if not path.is_file() and not (resume == "latest" and (checkpoint_dir(out) / PREVIOUS).is_file()):
        raise AddressclipError(
            f"--resume {resume}: checkpoint {path} not found (a run writes checkpoints/latest.pt "
            "at each epoch end and every train.checkpoint_every steps)"
        )
    return path


def read_resume_checkpoint(out: Path, resume: str) -> tuple[Path, dict[str, Any]]:
    """The checkpoint `--resume` names, read; for 'latest', `previous.pt` when `latest.pt` is unreadable.

    Only 'latest' falls back (an explicit path is used as given); the warning says which step is lost.
    """
    path = resolve_resume(out, resume)
    try:
        if not path.is_file():  # 'latest' with only previous.pt left
            raise AddressclipError(f"checkpoint {path} not found")
        return path, read_checkpoint(path)
    except AddressclipError as error:
        previous = checkpoint_dir(out) / PREVIOUS
        if resume != "latest" or not previous.is_file():
            raise
        try:
            payload = read_checkpoint(previous)
        except AddressclipError:
            raise error from None  # both unreadable: report the newer one
        step = (payload.get("training") or {}).get("step")
        LOG.warning("--resume latest: %s; resuming from %s (step %s) instead", error, previous, step)
        return previous, payload


def keep_previous(latest: Path) -> None:
    """Before `latest` is replaced, keep it as `previous.pt` beside it (atomically, never half a file).

    A hard link costs no copy and keeps pointing at the old file once `latest` is renamed over; where
    the file system has no hard links, the file is copied.
    """
    if not latest.is_file():
        return
    with atomic_path(latest.with_name(PREVIOUS)) as tmp:
        tmp.unlink()
        try:
            os.link(latest, tmp)
        except OSError:
            shutil.copyfile(latest, tmp)


class BestCheckpoints:
    """Keeps the N best checkpoints by a metric (higher is better); the list lives in best.json."""

    def __init__(self, folder: Path, keep: int) -> None:
        self.folder = folder
        self.keep = keep
        self.entries: list[dict[str, Any]] = []

    def state_dict(self) -> list[dict[str, Any]]:
        return list(self.entries)

    def load_state_dict(self, entries: list[dict[str, Any]]) -> None:
        self.entries = [dict(e) for e in entries]

    def offer(self, score: float, epoch: int, save: Any) -> Path | None:
        """Call `save(path)` if `score` ranks among the best N; delete the checkpoint it displaces."""
        if self.keep <= 0:
            return None
        ranked = sorted(self.entries, key=lambda e: (-e["score"], e["epoch"]))
        if len(ranked) >= self.keep and score <= ranked[-1]["score"]:
            return None
        path = self.folder / f"best-epoch{epoch:03d}.pt"
        save(path)
        ranked.append({"score": float(score), "epoch": int(epoch), "path": path.name})
        ranked = sorted(ranked, key=lambda e: (-e["score"], e["epoch"]))
        for dropped in ranked[self.keep :]:
            (self.folder / dropped["path"]).unlink(missing_ok=True)
        self.entries = ranked[: self.keep]
        write_text_atomic(self.folder / "best.json", json.dumps(self.entries, indent=2))
        return path

    def best(self) -> Path | None:
        if not self.entries:
            return None
        top = max(self.entries, key=lambda e: (e["score"], -e["epoch"]))
        return self.folder / top["path"]
