"""Symmetric InfoNCE between image and text features (CLIP's loss), plain or multi-positive.

Plain targets are CLIP's: image i matches text i only, so two images of the same address in one
batch count as each other's negatives (the paper's formula, read literally). Multi-positive targets
spread the target mass over every text of the same address (a soft cross-entropy), so same-address
pairs are not pushed apart.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def positive_mask(labels: torch.Tensor) -> torch.Tensor:
    """(N, N) bool: pairs that share a label (the diagonal included)."""
    return labels[:, None] == labels[None, :]


def info_nce(
    image_features: torch.Tensor,
    text_features: torch.Tensor,
    logit_scale: torch.Tensor,
    labels: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean of the image->text and text->image cross-entropies over the batch.

    Features are expected L2-normalised. With `labels`, targets are multi-positive: row i's target
    distribution is uniform over the columns j with labels[j] == labels[i].
    """
    logits = logit_scale * image_features @ text_features.T
    if labels is None:
        targets = torch.arange(logits.shape[0], device=logits.device)
        return 0.5 * (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets))
    mask = positive_mask(labels).to(logits.dtype)
    targets = mask / mask.sum(dim=1, keepdim=True)
    image_to_text = -(targets * F.log_softmax(logits, dim=1)).sum(dim=1).mean()
    text_to_image = -(targets * F.log_softmax(logits.T, dim=1)).sum(dim=1).mean()
    return 0.5 * (image_to_text + text_to_image)
