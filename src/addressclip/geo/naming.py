"""Naming rules: how a sub-street becomes an address row ("Main & Cross, Neighbourhood") with stable ids.

- address "Main & Cross[ & Cross2], Neighbourhood": the cross streets at the sub-street's two ends
  (alphabetical order; with `max_cross_streets=1` only the most important one), "Main, Neighbourhood"
  when neither end meets a named street; without a known neighbourhood the ", Neighbourhood" part is
  left out.
- neighbourhood: the one containing the midpoint of the sub-street's longest line (the centre of a
  closed outline, e.g. a square).
- street-level key (SA-k) "Main, Neighbourhood".
- duplicates: when several sub-streets get the same address (a street crossing the same two streets
  twice, or two distant pieces of one name in one neighbourhood), each gets a compass qualifier after
  the cross streets, from their midpoints along the axis where they are farther apart: "(west)"/"(east)"
  or "(south)"/"(north)" for two, "(1)".."(n)" west→east or north→south for more.
- ids: `address_id` = 'a' + 12 hex of SHA-1 over the street name and the sub-street geometry rounded
  to 0.1 m; `street_id` = 's' + 12 hex of SHA-1 over the street key. Same input, same ids, whatever
  the order of rows.

Kept apart from the cutting (`geo.partition`) because merging sparse classes (`geo.merge`) renames
with the very same rules.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np
import pandas as pd
import shapely
from shapely.geometry.base import BaseGeometry

from addressclip.digest import short_id
from addressclip.geo.neighbourhoods import NeighbourhoodMap
from addressclip.geo.partition import SubStreet

TABLE_COLUMNS: tuple[str, ...] = (
    "address_id", "address", "street_id", "street", "street_name", "neighbourhood", "cross_streets",
    "length_m", "geometry", "component_id", "end_streets",
)  # fmt: skip


def address_id(street_name: str, geometry: BaseGeometry) -> str:
    """'a' + 12 hex over the street name and the geometry rounded to 0.1 m (order-independent)."""
    rounded = shapely.normalize(shapely.transform(geometry, lambda c: np.round(c, 1)))
    return "a" + short_id(street_name.encode("utf-8") + b"|" + shapely.to_wkb(rounded))


def street_id(street: str) -> str:
    return "s" + short_id(street)


def _midpoint(geometry: BaseGeometry) -> tuple[float, float]:
    longest = max(shapely.get_parts(geometry), key=lambda g: g.length)
    point = longest.centroid if longest.is_closed else longest.interpolate(0.5, normalized=True)
    return point.x, point.y


def _with_neighbourhood(text: str, neighbourhood: str) -> str:
    return f"{text}, {neighbourhood}" if neighbourhood else text


def _qualifiers(midpoints: np.ndarray) -> list[str]:
    """Compass qualifiers for sub-streets that share one address (see the module docstring)."""
    spread = midpoints.max(axis=0) - midpoints.min(axis=0)
    if spread[0] >= spread[1]:
        order = np.lexsort((midpoints[:, 1], midpoints[:, 0]))  # west -> east
        pair = ("west", "east")
    else:
        order = np.lexsort((midpoints[:, 0], -midpoints[:, 1]))  # north -> south
        pair = ("north", "south")
    labels = [""] * len(midpoints)
    for rank, row in enumerate(order):
        labels[row] = pair[rank] if len(midpoints) == 2 else str(rank + 1)
    return labels


def name_substreets(
    substreets: Sequence[SubStreet],
    neighbourhoods: NeighbourhoodMap,
    cross_rank: dict[str, Sequence],
    max_cross_streets: int,
) -> tuple[pd.DataFrame, np.ndarray]:
    """The AddressBook table for these sub-streets (naming rules in the module docstring).

    Also returns, for each table row, the index of the sub-street it was made from.
    """
    columns: dict[str, list] = {name: [] for name in TABLE_COLUMNS}
    if not substreets:
        frame = pd.DataFrame(columns)
        frame["length_m"] = frame["length_m"].astype(float)
        return frame, np.zeros(0, dtype=np.int64)
    midpoints = np.array([_midpoint(s.geometry) for s in substreets])
    names = neighbourhoods.name_at(midpoints[:, 0], midpoints[:, 1])
    bases = []
    for sub, neighbourhood in zip(substreets, names, strict=True):
        crosses = sorted(set(sub.ends) - {sub.street_name})
        if len(crosses) > max_cross_streets:
            crosses = sorted(
                sorted(crosses, key=lambda c: tuple(cross_rank.get(c, (99.0, 0.0, c))))[:max_cross_streets]
            )
        base = " & ".join([sub.street_name, *crosses])
        bases.append(base)
        street = _with_neighbourhood(sub.street_name, str(neighbourhood))
        columns["address_id"].append(address_id(sub.street_name, sub.geometry))
        columns["street_id"].append(street_id(street))
        columns["street"].append(street)
        columns["street_name"].append(sub.street_name)
        columns["neighbourhood"].append(str(neighbourhood))
        columns["cross_streets"].append(crosses)
        columns["length_m"].append(float(sub.geometry.length))
        columns["geometry"].append(sub.geometry)
        columns["component_id"].append(sub.component_id)
        columns["end_streets"].append(list(sub.ends))
    addresses = [_with_neighbourhood(b, str(n)) for b, n in zip(bases, names, strict=True)]
    groups: dict[str, list[int]] = defaultdict(list)
    for row, address in enumerate(addresses):
        groups[address].append(row)
    for rows in groups.values():
        if len(rows) < 2:
            continue
        for row, label in zip(rows, _qualifiers(midpoints[rows]), strict=True):
            addresses[row] = _with_neighbourhood(f"{bases[row]} ({label})", str(names[row]))
    seen: dict[str, int] = defaultdict(int)
    order = sorted(range(len(addresses)), key=lambda r: (addresses[r], columns["address_id"][r]))
    for row in order:  # a last resort (identical midpoints): number the rest by id order
        seen[addresses[row]] += 1
        if seen[addresses[row]] > 1:
            addresses[row] = f"{addresses[row]} #{seen[addresses[row]]}"
    columns["address"] = addresses
    ids: dict[str, int] = defaultdict(int)
    for row, identifier in enumerate(columns["address_id"]):  # identical geometry twice: keep ids unique
        ids[identifier] += 1
        if ids[identifier] > 1:
            columns["address_id"][row] = f"{identifier}-{ids[identifier]}"
    frame = pd.DataFrame(columns)
    order = np.lexsort((frame["address_id"].to_numpy(), frame["address"].to_numpy()))
    return frame.iloc[order].reset_index(drop=True), order.astype(np.int64)
