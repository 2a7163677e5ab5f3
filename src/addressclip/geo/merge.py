"""Merging sparse address classes: a sub-street with too few capture locations joins a neighbour.

The rule (`merge_sparse`): the neighbour is a sub-street of the same street (same name, same connected
piece) sharing an end with it (if none does, the nearest one of that street); among several, one in
the same neighbourhood, then the one with fewest locations, then the shorter, then the smaller id. The
sparsest sub-street is merged first, and merging repeats until every sub-street has `min_points`
locations or is the last piece of its street. An image with a missing location id counts as a
location of its own. The merged sub-street is renamed (`geo.naming`) from its outer cross streets.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import shapely
from shapely.geometry import LineString, MultiLineString
from shapely.geometry.base import BaseGeometry

from addressclip.geo.naming import address_id, name_substreets
from addressclip.geo.neighbourhoods import NeighbourhoodMap
from addressclip.geo.partition import SubStreet

_TOUCH_M = 1.0  # sub-streets of one street closer than this share an end


def merge_sparse(
    table: pd.DataFrame,
    index: np.ndarray,
    location_id: np.ndarray,
    min_points: int,
    neighbourhoods: NeighbourhoodMap,
    cross_rank: dict[str, Sequence],
    max_cross_streets: int,
) -> tuple[pd.DataFrame, np.ndarray]:
    """The merged AddressBook table, and `index` (rows of `table`, -1 = none) remapped to its rows."""
    index = np.asarray(index, dtype=np.int64).ravel()
    location_id = np.asarray(location_id).ravel()
    if len(index) != len(location_id):
        raise ValueError(f"index and location_id differ in length ({len(index)} != {len(location_id)})")
    if len(index) and (index.max() >= len(table) or index.min() < -1):
        raise ValueError(f"index holds rows outside 0..{len(table) - 1} (or below -1)")
    codes, _ = pd.factorize(pd.Series(location_id, dtype=object))
    missing = codes < 0  # no location id: each such image counts as its own location
    codes[missing] = codes.max(initial=-1) + 1 + np.arange(int(missing.sum()))
    groups = _SparseMerger(table, index, codes)
    groups.run(min_points)
    substreets, old_to_group = groups.result()
    merged, source_of_row = name_substreets(substreets, neighbourhoods, cross_rank, max_cross_streets)
    row_of_group = {int(g): row for row, g in enumerate(source_of_row)}
    mapping = np.array([row_of_group[old_to_group[r]] for r in range(len(table))], dtype=np.int64)
    remapped = np.where(index >= 0, mapping[np.maximum(index, 0)] if len(mapping) else -1, -1)
    return merged, remapped.astype(np.int64)


@dataclass
class _Group:
    street_name: str
    component_id: str
    geometry: BaseGeometry
    ends: tuple[str, ...]
    neighbourhood: str
    locations: set[int] = field(default_factory=set)
    address_id: str = ""


class _SparseMerger:
    """The merge loop of `merge_sparse`, over groups of original rows."""

    def __init__(self, table: pd.DataFrame, index: np.ndarray, codes: np.ndarray) -> None:
        self.groups: dict[int, _Group] = {}
        for row, record in enumerate(table.itertuples(index=False)):
            self.groups[row] = _Group(
                record.street_name, record.component_id, record.geometry, tuple(record.end_streets),
                record.neighbourhood, address_id=record.address_id,
            )  # fmt: skip
        valid = index >= 0
        # distinct (row, location) pairs first: a loop over millions of images would cost seconds
        span = int(codes.max(initial=0)) + 1
        pairs = np.unique(index[valid] * span + codes[valid])
        rows, first = np.unique(pairs // span, return_index=True)
        for row, locations in zip(rows.tolist(), np.split(pairs % span, first[1:]), strict=True):
            self.groups[row].locations = set(locations.tolist())
        self.owner = list(range(len(table)))  # original row -> group key
        self.by_component: dict[str, set[int]] = defaultdict(set)
        for key, group in self.groups.items():
            self.by_component[group.component_id].add(key)

    def _neighbours(self, key: int) -> list[int]:
        """Sub-streets of the same street sharing an end; failing that, the nearest of that street."""
        group = self.groups[key]
        others = [k for k in self.by_component[group.component_id] if k != key]
        distance = {k: self.groups[k].geometry.distance(group.geometry) for k in others}
        touching = [k for k in others if distance[k] <= _TOUCH_M]
        if touching or not others:
            return touching
        nearest = min(distance.values())
        return [k for k in others if distance[k] <= nearest + _TOUCH_M]

    def run(self, min_points: int) -> None:
        while True:
            sparse = [
                k
                for k, g in self.groups.items()
                if len(g.locations) < min_points and len(self.by_component[g.component_id]) > 1
            ]
            if not sparse:
                return
            key = min(sparse, key=self._sparsity)
            group = self.groups[key]
            target = min(
                self._neighbours(key),
                key=lambda k: (self.groups[k].neighbourhood != group.neighbourhood, *self._sparsity(k)),
            )
            self._merge(key, target)

    def _sparsity(self, key: int) -> tuple[int, float, str]:
        group = self.groups[key]
        return (len(group.locations), group.geometry.length, group.address_id)

    def _merge(self, key: int, target: int) -> None:
        a, b = self.groups[key], self.groups.pop(target)
        shared = set(a.ends) & set(b.ends)
        outer = (set(a.ends) | set(b.ends)) - shared or set(a.ends) | set(b.ends)
        parts = [*shapely.get_parts(a.geometry), *shapely.get_parts(b.geometry)]
        geometry = shapely.line_merge(MultiLineString([LineString(p) for p in parts]))
        a.geometry = geometry
        a.ends = tuple(sorted(outer))
        a.locations |= b.locations
        a.address_id = address_id(a.street_name, geometry)
        self.owner = [key if g == target else g for g in self.owner]
        self.by_component[a.component_id].discard(target)

    def result(self) -> tuple[list[SubStreet], list[int]]:
        """(sub-streets in group order, original row -> sub-street index)."""
        keys = sorted(self.groups)
        position = {k: i for i, k in enumerate(keys)}
        substreets = [
            SubStreet(
                self.groups[k].street_name,
                self.groups[k].component_id,
                self.groups[k].geometry,
                self.groups[k].ends,
            )
            for k in keys
        ]
        return substreets, [position[g] for g in self.owner]
