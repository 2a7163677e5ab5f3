"""Capture points: every `spacing_m` along each named street, several views each (like Pitts250k).

Points are laid along each OSM way at spacing/2, 3·spacing/2, ...; where ways of one street meet
(or a street is mapped as two carriageways), points closer than half a spacing to an earlier point of
the same street are dropped, so a location is not captured twice. Views look along and across the
street (headings = street bearing + k·360°/views), as a car-mounted camera does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from addressclip.world.scene import Scene


@dataclass
class Captures:
    """Capture locations (one row each) in local metres, with the street bearing there."""

    location_id: list[str]
    xy: np.ndarray  # (N, 2)
    bearing: np.ndarray  # (N,) degrees clockwise from north, along the street
    street: list[str]
    half_width: np.ndarray  # (N,) road half width at the point

    def __len__(self) -> int:
        return len(self.location_id)

    def subset(self, keep: np.ndarray) -> Captures:
        keep = np.asarray(keep)
        if keep.dtype == bool:
            keep = np.flatnonzero(keep)
        return Captures(
            [self.location_id[i] for i in keep],
            self.xy[keep],
            self.bearing[keep],
            [self.street[i] for i in keep],
            self.half_width[keep],
        )


def world_tag(world: str) -> str:
    """A short id prefix for capture ids ('tiny', 'demo' or the extract's file stem)."""
    stem = re.sub(r"\.osm(\.pbf|\.bz2|\.gz)?$|\.pbf$", "", world.replace("\\", "/").rsplit("/", 1)[-1])
    return re.sub(r"[^A-Za-z0-9_-]+", "-", stem).strip("-")[:24] or "world"


def capture_points(scene: Scene, spacing_m: float, tag: str) -> Captures:
    """Sample capture locations along the scene's street segments (inside the crop, if any)."""
    if spacing_m <= 0:
        raise ValueError("spacing_m must be > 0")
    xy_out: list[np.ndarray] = []
    bearing_out: list[float] = []
    street_out: list[int] = []
    half_out: list[float] = []
    accepted: dict[tuple[int, int, int], list[np.ndarray]] = {}
    cell = max(spacing_m, 1.0)
    # segments of one OSM way are consecutive
    starts = np.flatnonzero(np.diff(scene.seg_way, prepend=-1) != 0)
    bounds = [*starts.tolist(), len(scene.seg_a)]
    ways = [(bounds[i], bounds[i + 1]) for i in range(len(bounds) - 1)]
    ways.sort(key=lambda w: (scene.street_names[scene.seg_street[w[0]]], tuple(scene.seg_a[w[0]])))
    for first, last in ways:
        a, b = scene.seg_a[first:last], scene.seg_b[first:last]
        street = int(scene.seg_street[first])
        lengths = np.hypot(*(b - a).T)
        total = float(lengths.sum())
        if total <= 0:
            continue
        cumulative = np.concatenate([[0.0], np.cumsum(lengths)])
        for s in np.arange(spacing_m / 2, total, spacing_m):
            k = int(np.clip(np.searchsorted(cumulative, s, side="right") - 1, 0, len(lengths) - 1))
            t = (s - cumulative[k]) / max(lengths[k], 1e-9)
            p = a[k] + (b[k] - a[k]) * t
            if scene.crop is not None:
                x0, y0, x1, y1 = scene.crop
                if not (x0 <= p[0] <= x1 and y0 <= p[1] <= y1):
                    continue
            gx, gy = int(np.floor(p[0] / cell)), int(np.floor(p[1] / cell))
            too_close = False
            for dx in (-1, 0, 1):
                for dy in (-1, 0, 1):
                    for q in accepted.get((street, gx + dx, gy + dy), ()):
                        if np.hypot(*(q - p)) < 0.5 * spacing_m:
                            too_close = True
            if too_close:
                continue
            accepted.setdefault((street, gx, gy), []).append(p)
            d = b[k] - a[k]
            xy_out.append(p)
            bearing_out.append(float(np.degrees(np.arctan2(d[0], d[1])) % 360.0))
            street_out.append(street)
            half_out.append(float(scene.seg_half_width[first + k]))
    ids = [f"{tag}-{i:06d}" for i in range(len(xy_out))]
    return Captures(
        location_id=ids,
        xy=np.asarray(xy_out, dtype=np.float64).reshape(-1, 2),
        bearing=np.asarray(bearing_out, dtype=np.float64),
        street=[scene.street_names[i] for i in street_out],
        half_width=np.asarray(half_out, dtype=np.float64),
    )
