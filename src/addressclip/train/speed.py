"""Throughput switches of a training run, applied in one place: how the towers run, which AdamW,
the learning rate for a batch other than the reference one, TF32 and channels-last.

None of these changes what a step computes beyond float rounding, except `optim.lr_scaling` (which
is the point of it) and `optim.adamw='fused'` (same update, different summation order).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from addressclip.config import OptimConfig, TrainConfig
from addressclip.errors import ConfigError
from addressclip.model.addressclip import AddressClipModel


def lr_scale(optim: OptimConfig, global_batch: int) -> float:
    """The factor `optim.lr_scaling` applies to lr and lr_min for an optimizer step of `global_batch`."""
    ratio = global_batch / optim.lr_reference_batch
    if optim.lr_scaling == "linear":
        return ratio
    if optim.lr_scaling == "sqrt":
        return math.sqrt(ratio)
    return 1.0


def make_adamw(groups: list[dict[str, Any]], lr: float, optim: OptimConfig, device: torch.device):
    """AdamW over `groups` with the implementation `optim.adamw` names."""
    kwargs: dict[str, Any] = {}
    if optim.adamw == "fused":
        kwargs["fused"] = True
    elif optim.adamw == "foreach":
        kwargs["foreach"] = True
    elif optim.adamw == "for_loop":
        kwargs["foreach"] = False
    try:
        return torch.optim.AdamW(groups, lr=lr, betas=tuple(optim.betas), eps=optim.eps, **kwargs)
    except (RuntimeError, ValueError) as error:  # e.g. fused on a device or dtype without the kernel
        raise ConfigError(f"optim.adamw={optim.adamw} is not available on {device.type}: {error}") from error


def configure_model_runtime(model: AddressClipModel, train: TrainConfig, device: torch.device) -> None:
    """Vision path, attention kernel, compilation, checkpointing, TF32 and memory layout."""
    model.configure_runtime(
        vision_path=train.vision_forward,
        attention=train.attention,
        compile_backend=train.compile_backend if train.compile else None,
        grad_checkpointing=train.grad_checkpointing,
    )
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = train.tf32
        torch.backends.cudnn.allow_tf32 = train.tf32
    if train.channels_last:
        conv = getattr(model.clip.visual, "conv1", None)
        if conv is not None:
            conv.to(memory_format=torch.channels_last)


def to_layout(images: torch.Tensor, train: TrainConfig) -> torch.Tensor:
    """Normalised pixels in the layout the patch embedding expects."""
    return images.contiguous(memory_format=torch.channels_last) if train.channels_last else images
