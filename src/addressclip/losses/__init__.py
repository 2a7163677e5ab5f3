"""AddressCLIP's losses, each returned as a named term: L_address, L_caption, L_geo and their total."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from addressclip.config import LossConfig
from addressclip.losses.contrastive import info_nce, positive_mask
from addressclip.losses.distributed import gather_no_grad, gather_with_local_grad
from addressclip.losses.geography import geo_loss, geographic_distance, normalised_utm

__all__ = [
    "AddressClipLoss",
    "LossInputs",
    "geo_loss",
    "geographic_distance",
    "info_nce",
    "normalised_utm",
    "positive_mask",
]


@dataclass
class LossInputs:
    """One rank's slice of a batch: L2-normalised features, address labels and UTM metres (and, for
    a multi-city batch, each image's city as an integer: L_geo then pairs images of one city only)."""

    image: torch.Tensor
    address: torch.Tensor | None
    caption: torch.Tensor | None
    labels: torch.Tensor
    utm: torch.Tensor | None
    cities: torch.Tensor | None = None


class AddressClipLoss(nn.Module):
    """L = alpha L_address + beta L_caption + gamma L_geo over the global batch (gathered across ranks)."""

    def __init__(self, config: LossConfig) -> None:
        super().__init__()
        self.config = config

    def forward(self, inputs: LossInputs, logit_scale: torch.Tensor) -> dict[str, torch.Tensor]:
        cfg = self.config
        image = gather_with_local_grad(inputs.image)
        labels = gather_no_grad(inputs.labels) if cfg.targets == "multi_positive" else None
        terms: dict[str, torch.Tensor] = {}
        total = image.new_zeros(())
        if cfg.alpha and inputs.address is not None:
            terms["address"] = info_nce(image, gather_with_local_grad(inputs.address), logit_scale, labels)
            total = total + cfg.alpha * terms["address"]
        if cfg.beta and inputs.caption is not None:
            terms["caption"] = info_nce(image, gather_with_local_grad(inputs.caption), logit_scale, labels)
            total = total + cfg.beta * terms["caption"]
        if cfg.gamma and inputs.utm is not None:
            cities = None if inputs.cities is None else gather_no_grad(inputs.cities)
            terms["geo"] = geo_loss(image, gather_no_grad(inputs.utm), cfg.geo, cities)
            total = total + cfg.gamma * terms["geo"]
        terms["total"] = total
        return terms
