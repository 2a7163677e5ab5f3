"""L_geo, image-geography matching: feature distances over the batch should follow map distances.

Geography: per-batch min-max normalised UTM (easting, northing) and Manhattan distance, so
D^U lies in [0, 2]. Two forms of the feature side:

- 'distance' (default): D^V = 1 - cos(V_i, V_j), also in [0, 2]; L = mean (D^V - D^U)^2 pulls
  nearby images together and pushes far ones apart.
- 'literal': D^V = cos(V_i, V_j), the paper's formula as written; it rewards far-apart images for
  being *similar*, and is kept as an ablation switch.

Several cities in one batch (multi-city training): UTM metres of two cities are not comparable (other
zones, or 100 km apart in one zone, which would squash every within-city distance to ~0 after the
min-max), so with `groups` (one integer per image, e.g. its city) each group is normalised on its own
and only pairs within a group count. One group gives exactly the single-city loss.
"""

from __future__ import annotations

from typing import Literal

import torch

GeoForm = Literal["distance", "literal"]


def normalised_utm(utm: torch.Tensor, eps: float = 1e-9) -> torch.Tensor:
    """Min-max normalise each axis over the batch to [0, 1] (a constant axis becomes 0)."""
    low = utm.min(dim=0).values
    span = (utm.max(dim=0).values - low).clamp_min(eps)
    return (utm - low) / span


def geographic_distance(utm: torch.Tensor) -> torch.Tensor:
    """(N, N) Manhattan distance between min-max normalised UTM points."""
    points = normalised_utm(utm.double())
    return (points[:, None, :] - points[None, :, :]).abs().sum(dim=-1)


def grouped_geographic_distance(utm: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
    """(N, N) Manhattan distance with each group min-max normalised on its own (cross-group pairs are
    left at 0: callers mask them out)."""
    points = torch.zeros_like(utm, dtype=torch.float64)
    for group in torch.unique(groups):
        member = groups == group
        points[member] = normalised_utm(utm[member].double())
    return (points[:, None, :] - points[None, :, :]).abs().sum(dim=-1)


def geo_loss(
    image_features: torch.Tensor,
    utm: torch.Tensor,
    form: GeoForm = "distance",
    groups: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean over all pairs (i, j) of (D^V_ij - D^U_ij)^2; features L2-normalised, utm (N, 2) metres.

    `groups` (N,) integers: only pairs of one group, each group normalised on its own (module doc).
    """
    cosine = image_features @ image_features.T
    feature_side = 1.0 - cosine if form == "distance" else cosine
    if groups is None:
        target = geographic_distance(utm).to(feature_side.dtype)
        return ((feature_side - target) ** 2).mean()
    target = grouped_geographic_distance(utm, groups).to(feature_side.dtype)
    same = groups[:, None] == groups[None, :]
    return ((feature_side - target) ** 2)[same].mean()
