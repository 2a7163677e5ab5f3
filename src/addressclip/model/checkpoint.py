"""Checkpoints that rebuild their model in one call: weights + resolved config + preprocessing.

A checkpoint is a `torch.save`d dict read back with `weights_only=True` (no pickled code runs on load).
Training checkpoints add optimizer, scheduler, scaler, RNG and sampler state under 'training'.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from addressclip.atomic import atomic_path
from addressclip.config import ModelConfig, config_to_dict, section_from_dict
from addressclip.errors import AddressclipError, InputError
from addressclip.model.addressclip import AddressClipModel

CHECKPOINT_FORMAT = "addressclip-checkpoint"
CHECKPOINT_VERSION = 1


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


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise AddressclipError(f"checkpoint {path} not found")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for a damaged or foreign file
        raise InputError(
            path, None, f"not a readable checkpoint ({str(error).splitlines()[0][:160]})"
        ) from error
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise InputError(path, "format", f"not an addressclip checkpoint (expected '{CHECKPOINT_FORMAT}')")
    if int(payload.get("version", 0)) > CHECKPOINT_VERSION:
        raise InputError(path, "version", "written by a newer addressclip; upgrade to read it")
    return payload


def model_from_payload(payload: Mapping[str, Any], device: str | torch.device = "cpu") -> AddressClipModel:
    from addressclip.model.factory import build_backbone

    config = section_from_dict(ModelConfig, payload["model_config"], "model")
    config.pretrained = None
    config.init = None
    backbone = build_backbone(config, resolved=dict(payload["open_clip_config"]), load_weights=False)
    model = AddressClipModel(
        backbone.clip, backbone.tokenizer, config, payload["open_clip_config"], payload["preprocess"]
    )
    model.load_state_dict(payload["state_dict"])
    return model.to(device)


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> AddressClipModel:
    """The model saved at `path`, rebuilt and in eval mode, ready for inference."""
    model = model_from_payload(read_checkpoint(path), device)
    model.eval()
    return model


def load_weights_into(model: AddressClipModel, path: str | Path) -> None:
    """Start `model` from the weights of another addressclip checkpoint of the same architecture."""
    payload = read_checkpoint(path)
    if payload["open_clip_config"] != model.open_clip_config:
        raise InputError(
            path,
            "open_clip_config",
            "architecture differs from model.* of this run; build both from one preset",
        )
    model.load_state_dict(payload["state_dict"])
