"""The checkpoint file format: weights + resolved config + preprocessing, in one `torch.save`d dict.

A checkpoint is read back with `weights_only=True` (no pickled code runs on load). Training
checkpoints add optimizer, scheduler, scaler, RNG and sampler state under 'training'. Rebuilding a
model from a payload is `model.factory`'s job.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import torch

from addressclip.atomic import atomic_path
from addressclip.config import config_to_dict
from addressclip.errors import AddressclipError, InputError
from addressclip.model.addressclip import AddressClipModel

CHECKPOINT_FORMAT = "addressclip-checkpoint"
CHECKPOINT_VERSION = 1
EXPECTED = f"an addressclip checkpoint (a torch.save'd dict with format '{CHECKPOINT_FORMAT}')"


def model_payload(model: AddressClipModel) -> dict[str, Any]:
    """Everything needed to rebuild `model` without its config file."""
    return {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "model_config": config_to_dict(model.model_config),
        "open_clip_config": model.open_clip_config,
        "preprocess": model.preprocess,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }


def save_checkpoint(path: str | Path, model: AddressClipModel, **extra: Any) -> Path:
    """Write atomically: a reader (or a resumed run) never sees half a checkpoint."""
    payload = model_payload(model)
    payload.update(extra)
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def _unreadable(path: Path, error: Exception) -> InputError:
    """Say what the file is and what was expected, not torch's unpickler text."""
    size = path.stat().st_size
    if size == 0:
        return InputError(path, None, "empty file (0 bytes; a crash or a full disk while writing?) — "
                          f"expected {EXPECTED}")  # fmt: skip
    with open(path, "rb") as handle:
        head = handle.read(4)
    if head == b"PK\x03\x04" and not zipfile.is_zipfile(path):
        what = f"a truncated torch file ({size} bytes)"
    elif head == b"PK\x03\x04":
        what = "a torch file holding objects other than tensors and plain types (not loaded, for safety)"
    else:
        what = f"not a torch file ({size} bytes starting {head!r})"
    return InputError(path, None, f"{what} — expected {EXPECTED}")


def _describe(payload: object) -> str:
    """What a loadable torch file that is not a checkpoint holds (a common mix-up: open_clip weights)."""
    if isinstance(payload, dict) and payload and all(isinstance(v, torch.Tensor) for v in payload.values()):
        return (
            f"a bare state dict of {len(payload)} tensors (weights without a model config, e.g. open_clip "
            "weights, which go to --pretrained / model.pretrained)"
        )
    if isinstance(payload, dict):
        keys = ", ".join(repr(k) for k in list(payload)[:5]) + (", ..." if len(payload) > 5 else "")
        found = payload.get("format")
        return f"a torch file holding a dict (keys {keys}{f'; format {found!r}' if found else ''})"
    return f"a torch file holding a {type(payload).__name__}"


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if path.is_dir():
        raise AddressclipError(f"checkpoint {path} is a folder; give the .pt file (a run folder's model.pt)")
    if not path.is_file():
        raise AddressclipError(f"checkpoint {path} not found")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for a damaged or foreign file
        raise _unreadable(path, error) from error
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise InputError(path, None, f"{_describe(payload)}, not {EXPECTED}")
    if int(payload.get("version", 0)) > CHECKPOINT_VERSION:
        raise InputError(path, "version", "written by a newer addressclip; upgrade to read it")
    return payload
