"""Models from a config or from a checkpoint, in one call each.

`build_model(config)` makes a fresh AddressCLIP model (pretrained parts from local files, or the
weights of an addressclip checkpoint through `model.init`); `load_checkpoint(path)` rebuilds the model
a checkpoint (or a run folder) holds, ready for inference.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from addressclip.config import ModelConfig, section_from_dict
from addressclip.errors import AddressclipError, InputError
from addressclip.filenames import MODEL_FILE
from addressclip.model.addressclip import AddressClipModel
from addressclip.model.backbone import build_backbone
from addressclip.model.checkpoint import read_checkpoint
from addressclip.model.shipping import fill_slim_state, is_trunk_key
from addressclip.resources.shipped_model import resolve_init

__all__ = ["MODEL_FILE", "build_model", "checkpoint_path", "load_checkpoint", "model_from_payload"]


def checkpoint_path(path: str | Path, field: str = "checkpoint") -> Path:
    """A checkpoint file, or a run folder's `model.pt`; a clear error when neither exists."""
    path = Path(path)
    if path.is_dir():
        if not (path / MODEL_FILE).is_file():
            raise AddressclipError(f"{field}: {path} is a folder without {MODEL_FILE} (not a run folder)")
        return path / MODEL_FILE
    if not path.is_file():
        raise AddressclipError(f"{field}: {path} not found")
    return path


def build_model(config: ModelConfig, device: str | torch.device = "cpu") -> AddressClipModel:
    """A fresh AddressCLIP model (pretrained parts loaded from local files); see `model.init` for
    starting from an addressclip checkpoint instead."""
    backbone = build_backbone(config)
    model = AddressClipModel(
        backbone.clip, backbone.tokenizer, config, backbone.open_clip_config, backbone.preprocess
    )
    if config.init:
        load_weights_into(model, resolve_init(config.init))
    return model.to(device)


def model_from_payload(
    payload: Mapping[str, Any], device: str | torch.device = "cpu", source: object = "checkpoint"
) -> AddressClipModel:
    config = section_from_dict(ModelConfig, payload["model_config"], "model")
    config.pretrained = None
    config.init = None
    slim = "text_trunk" in payload  # the packaged text trunk was left out (model.shipping)
    backbone = build_backbone(config, resolved=dict(payload["open_clip_config"]), load_weights=slim)
    model = AddressClipModel(
        backbone.clip, backbone.tokenizer, config, payload["open_clip_config"], payload["preprocess"]
    )
    if slim:
        fill_slim_state(model, payload, source)
    else:
        model.load_state_dict(payload["state_dict"])
    return model.to(device)


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> AddressClipModel:
    """The model saved at `path` (a file or a run folder), rebuilt and in eval mode."""
    path = checkpoint_path(path)
    model = model_from_payload(read_checkpoint(path), device, source=path)
    model.eval()
    return model


def load_weights_into(model: AddressClipModel, path: str | Path) -> None:
    """Start `model` from the weights of another addressclip checkpoint of the same architecture."""
    payload = read_checkpoint(path)
    if "text_trunk" in payload:
        payload = dict(payload, state_dict={**_trunk_state(model), **payload["state_dict"]})
    if payload["open_clip_config"] != model.open_clip_config:
        raise InputError(
            path,
            "open_clip_config",
            "architecture differs from model.* of this run; build both from one preset",
        )
    model.load_state_dict(payload["state_dict"])


def _trunk_state(model: AddressClipModel) -> dict[str, torch.Tensor]:
    """The model's own text trunk (from the package), to complete a slim checkpoint's weights."""
    return {k: v for k, v in model.state_dict().items() if is_trunk_key(k)}
