"""Where the candidate addresses are on the map: metre errors, neighbouring sub-streets, intersections.

The paper reports only accuracies; a metre error says how wrong a wrong answer is. It is measured
from the true GPS of the query to the *predicted sub-street's geometry* (0 m when the query stands on
it). Geometry comes from the AddressBook saved with the manifest; a manifest without one (e.g. built
from an annotation file) falls back to the capture points of each address's images, which is said
in the results (`geometry_source`).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import pandas as pd
import shapely
from shapely.geometry.base import BaseGeometry

# Two sub-streets closer than this share an intersection: a confusion between them is "neighbouring".
NEIGHBOUR_TOUCH_M = 2.0
# With image-point geometry, addresses whose capture points come this close count as neighbours.
NEIGHBOUR_POINTS_M = 25.0
# A sub-street end within this distance of another street is an intersection.
INTERSECTION_SNAP_M = 2.0
INTERSECTION_BINS_M: tuple[float, ...] = (0.0, 10.0, 25.0, 50.0, 100.0, float("inf"))


@dataclass
class CandidateGeometry:
    """One geometry (UTM metres) per candidate address, in vocabulary order; None when unknown."""

    geometries: list[BaseGeometry | None]
    street_names: list[str]
    source: str  # 'addressbook' | 'images'

    def __len__(self) -> int:
        return len(self.geometries)

    def distance_m(self, candidate: np.ndarray, east: np.ndarray, north: np.ndarray) -> np.ndarray:
        """Distance from each (east, north) to the geometry of `candidate[i]` (NaN if unknown)."""
        candidate = np.asarray(candidate, dtype=np.int64)
        shapes = np.array([self.geometries[c] for c in candidate], dtype=object)
        known = np.array([s is not None for s in shapes], dtype=bool)
        out = np.full(len(candidate), np.nan)
        if known.any():
            points = shapely.points(np.asarray(east)[known], np.asarray(north)[known])
            out[known] = shapely.distance(points, shapes[known])
        return out

    def neighbour_pairs(self) -> set[tuple[int, int]]:
        """Unordered candidate pairs (i < j) whose geometries touch (share an intersection)."""
        limit = NEIGHBOUR_TOUCH_M if self.source == "addressbook" else NEIGHBOUR_POINTS_M
        index = [i for i, g in enumerate(self.geometries) if g is not None]
        if not index:
            return set()
        shapes = np.array([self.geometries[i] for i in index], dtype=object)
        tree = shapely.STRtree(shapes)
        left, right = tree.query(shapes, predicate="dwithin", distance=limit)
        return {
            (min(index[a], index[b]), max(index[a], index[b]))
            for a, b in zip(left, right, strict=True)
            if a != b
        }


def candidate_geometry(
    address_ids: tuple[str, ...], book_table: pd.DataFrame | None, frame: pd.DataFrame
) -> CandidateGeometry:
    """Geometry per candidate from the AddressBook table when it knows every id, else image points."""
    if book_table is not None:
        by_id = dict(zip(book_table["address_id"], book_table["geometry"], strict=True))
        names = dict(zip(book_table["address_id"], book_table["street_name"], strict=True))
        if all(a in by_id for a in address_ids):
            return CandidateGeometry(
                [by_id[a] for a in address_ids], [str(names[a]) for a in address_ids], "addressbook"
            )
    train = frame[frame["split"] == "train"]
    source = train if len(train) else frame
    groups = {a: g for a, g in source.groupby("address_id", sort=False)}
    geometries: list[BaseGeometry | None] = []
    for address_id in address_ids:
        group = groups.get(address_id)
        if group is None or group.empty:
            geometries.append(None)
            continue
        points = shapely.points(group["utm_e"].to_numpy(float), group["utm_n"].to_numpy(float))
        geometries.append(shapely.multipoints(points))
    streets = dict(zip(frame["address_id"], frame["street"], strict=False))
    return CandidateGeometry(geometries, [str(streets.get(a, "")) for a in address_ids], "images")


def _end_points(geometry: BaseGeometry) -> list[tuple[float, float]]:
    parts = list(geometry.geoms) if hasattr(geometry, "geoms") else [geometry]
    ends = []
    for part in parts:
        coords = np.asarray(part.coords)
        if len(coords):
            ends.extend([tuple(coords[0][:2]), tuple(coords[-1][:2])])
    return ends


def intersection_points(book_table: pd.DataFrame) -> np.ndarray:
    """(K, 2) UTM points where a sub-street ends on another street (its junctions), deduplicated."""
    geometries = list(book_table["geometry"])
    names = list(book_table["street_name"])
    ends, owners = [], []
    for row, geometry in enumerate(geometries):
        for end in _end_points(geometry):
            ends.append(end)
            owners.append(row)
    if not ends:
        return np.zeros((0, 2))
    tree = shapely.STRtree(np.array(geometries, dtype=object))
    points = shapely.points(np.asarray(ends))
    query_index, hit = tree.query(points, predicate="dwithin", distance=INTERSECTION_SNAP_M)
    junction = np.zeros(len(ends), dtype=bool)
    for q, h in zip(query_index, hit, strict=True):
        if names[h] != names[owners[q]]:
            junction[q] = True
    found = np.asarray(ends)[junction]
    if len(found) == 0:
        return np.zeros((0, 2))
    return np.unique(np.round(found, 0), axis=0)


def distance_to_nearest(xy: np.ndarray, targets: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """Euclidean distance from each row of `xy` to the nearest row of `targets` (inf if none)."""
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    targets = np.asarray(targets, dtype=np.float64).reshape(-1, 2)
    if len(targets) == 0:
        return np.full(len(xy), np.inf)
    out = np.empty(len(xy))
    for start in range(0, len(xy), chunk):
        block = xy[start : start + chunk]
        squared = ((block[:, None, :] - targets[None, :, :]) ** 2).sum(axis=2)
        out[start : start + chunk] = np.sqrt(squared.min(axis=1))
    return out


def distance_bin_labels(edges: tuple[float, ...] = INTERSECTION_BINS_M) -> list[str]:
    labels = []
    for low, high in itertools.pairwise(edges):
        labels.append(f">= {low:g} m" if np.isinf(high) else f"{low:g}-{high:g} m")
    return labels
