"""Grad-CAM for the ViT image tower: where in the photo the predicted address's score comes from.

The patch tokens entering the last transformer block are weighted by the mean gradient of the
image-address similarity with respect to them (Grad-CAM's channel weights), summed over channels,
rectified, and laid back on the patch grid — the kind of heatmap the paper's qualitative figures show.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from addressclip.data.transforms import Normalizer
from addressclip.errors import AddressclipError
from addressclip.model.addressclip import AddressClipModel


def grad_cam(model: AddressClipModel, images: torch.Tensor, address_features: torch.Tensor) -> np.ndarray:
    """(B, H, W) heatmaps in [0, 1] for uint8 images (B, 3, H, W) and their target address features (B, D)."""
    visual = model.clip.visual
    blocks = getattr(getattr(visual, "transformer", None), "resblocks", None)
    if blocks is None:
        raise AddressclipError("Grad-CAM needs a ViT image tower (open_clip VisionTransformer)")
    batch_first = bool(getattr(visual.transformer, "batch_first", True))
    captured: dict[str, torch.Tensor] = {}

    def keep(module, args, kwargs):
        # The *input* of the last block: its patch tokens still reach the pooled class token
        # through that block's attention (the last block's output patch tokens do not).
        hidden = args[0] if args else kwargs["q_x"]
        hidden.retain_grad()
        captured["tokens"] = hidden

    device = address_features.device
    normalizer = Normalizer(model.preprocess["mean"], model.preprocess["std"])
    pixels = normalizer(images, device).requires_grad_(True)
    handle = blocks[len(blocks) - 1].register_forward_pre_hook(keep, with_kwargs=True)
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            features = model.encode_image(pixels)
            score = (features * address_features).sum()
            score.backward()
    finally:
        handle.remove()
        model.train(was_training)
    tokens = captured["tokens"]
    gradient = tokens.grad
    if not batch_first:
        tokens, gradient = tokens.transpose(0, 1), gradient.transpose(0, 1)
    gradients = gradient[:, 1:]
    activations = tokens.detach()[:, 1:]
    weights = gradients.mean(dim=1, keepdim=True)
    cam = F.relu((activations * weights).sum(dim=2))
    side = math.isqrt(cam.shape[1])
    if side * side != cam.shape[1]:
        raise AddressclipError(f"Grad-CAM: {cam.shape[1]} patch tokens do not form a square grid")
    cam = cam.view(-1, 1, side, side)
    cam = F.interpolate(cam, size=images.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    low = cam.flatten(1).min(dim=1).values.view(-1, 1, 1)
    high = cam.flatten(1).max(dim=1).values.view(-1, 1, 1)
    return ((cam - low) / (high - low).clamp_min(1e-12)).cpu().numpy()
