"""The semantic address partition (paper §2): cut every street into sub-streets at its junctions.

Rules (all distances in UTM metres; the defaults live in `PartitionConfig`):

- Area outlines (highway=pedestrian + area=yes): an outline within `carriageway_snap_m` of a centreline
  of its own name is a paved zone along that centreline (Aleksanterinkatu's sidewalks): it is not
  geometry, but its junctions are projected onto the centreline like a parallel carriageway's
  (Keskuskatu meets Aleksanterinkatu only through their pedestrian areas). Any other outline is a square
  (Narinkkatori) or a stretch mapped only as an area: it stays one uncut sub-street with its outline
  as geometry, named by the (up to two) most important streets its outline meets.
- Street: all ways with one name, merged with `line_merge`. Pieces of one name whose gap is more than
  `street_split_m` are separate streets ("components"); closer pieces (a dual carriageway, a gap at a
  square) are one street.
- Junction: an OSM node shared by ways of two different street names. Geometric crossings without a
  shared node (bridges, tunnels) are not junctions.
- Parallel carriageways: a junction on one line of a street also cuts the street's other lines that
  pass within `carriageway_snap_m` of it (projected onto them), so that both carriageways of a
  boulevard are cut at the same cross streets and end up in the same sub-streets.
- Cuts: junctions are walked along each line; a junction closer than `min_gap_m` to the previous cut
  or to either end of the line is dropped as a cut (no slivers), but a dropped junction near a line
  end still names that end (a T-junction 10 m from the end names the end).
- One name per end: where several cross streets meet one cut, the most important one names it:
  highest road class, then the longest street in the extract, then alphabetical order.
- Pieces of a street's different lines with the same cross streets and within `carriageway_snap_m` of
  each other become one sub-street (a MultiLineString for the two carriageways).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields

import numpy as np
import shapely
from shapely.geometry import LineString, MultiLineString, Point
from shapely.geometry.base import BaseGeometry
from shapely.ops import substring

from addressclip.digest import short_id
from addressclip.errors import ConfigError
from addressclip.geo.osm import DEFAULT_HIGHWAY_CLASSES, StreetWay
from addressclip.geo.utm import UtmProjection

# Lower rank = more important; *_link roads rank just below their road.
_HIGHWAY_RANK = {
    name: rank
    for rank, name in enumerate(
        ["motorway", "trunk", "primary", "secondary", "tertiary", "unclassified", "residential",
         "living_street", "road", "pedestrian", "service"]
    )
}  # fmt: skip
_SAME_CUT_M = 1.0


@dataclass(frozen=True)
class PartitionConfig:
    """How streets are cut into address classes (the rules in the module docstring).

    `min_gap_m` = 35: junctions closer than this to the previous cut are dropped, which keeps the two
    crossings of a dual-carriageway cross street (15–30 m apart in Helsinki) and offset T-junctions
    from making sub-streets shorter than a building front, while a normal city block (60–150 m) stays
    its own address. `pedestrian` and `service` stay in the default highway classes: only *named*
    ways count, and named ones are pedestrian streets and squares that people use as addresses
    (Aleksanterinkatu, Kluuvikatu, Elielinaukio); unnamed driveways and parking aisles drop out.
    `max_cross_streets` and `neighbourhood_source` are naming rules (`geo.naming`, `geo.neighbourhoods`)
    kept here so that one object describes the whole partition.
    """

    highway_classes: tuple[str, ...] = DEFAULT_HIGHWAY_CLASSES
    min_gap_m: float = 35.0
    max_cross_streets: int = 2
    street_split_m: float = 100.0  # same-name pieces farther apart than this are different streets
    carriageway_snap_m: float = 35.0  # a junction cuts the street's parallel lines within this distance
    neighbourhood_source: str = "auto"  # 'auto' (admin areas, then place nodes) | 'places'

    def __post_init__(self) -> None:
        object.__setattr__(self, "highway_classes", tuple(self.highway_classes))
        if not self.highway_classes:
            raise ConfigError("partition: highway_classes must name at least one highway class")
        for key in ("min_gap_m", "street_split_m", "carriageway_snap_m"):
            value = getattr(self, key)
            if not np.isfinite(value) or value < 0:
                raise ConfigError(f"partition: {key} must be a non-negative number of metres, not {value!r}")
        if self.max_cross_streets not in (1, 2):
            raise ConfigError(f"partition: max_cross_streets must be 1 or 2, not {self.max_cross_streets!r}")
        if self.neighbourhood_source not in ("auto", "places"):
            source = self.neighbourhood_source
            raise ConfigError(f"partition: neighbourhood_source must be 'auto' or 'places', not {source!r}")

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, values: dict) -> PartitionConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(
                f"partition: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})"
            )
        return cls(**values)


def highway_rank(highway: str) -> float:
    base = highway.removesuffix("_link")
    rank = _HIGHWAY_RANK.get(base, len(_HIGHWAY_RANK))
    return rank + (0.5 if highway.endswith("_link") else 0.0)


@dataclass
class SubStreet:
    """One address class before naming: a piece of one street between junctions."""

    street_name: str
    component_id: str  # the physical street (one name, one connected component)
    geometry: BaseGeometry  # LineString or MultiLineString, UTM metres
    ends: tuple[str, ...]  # the cross streets naming its ends (0, 1 or 2 names, sorted)


@dataclass(frozen=True)
class _Cut:
    s: float  # distance along the line
    names: frozenset[str]


def _vertex_keys(coords: np.ndarray) -> list[tuple[int, int]]:
    """Centimetre keys of vertices: shared OSM nodes project to identical coordinates."""
    keys = np.round(coords * 100.0).astype(np.int64)
    return [tuple(k) for k in keys.tolist()]


def _components(lines: list[LineString], split_m: float) -> list[list[int]]:
    """Groups of lines (indices) that lie within split_m of each other (single linkage)."""
    parent = list(range(len(lines)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    tree = shapely.STRtree(lines)
    left, right = tree.query(lines, predicate="dwithin", distance=split_m)
    for i, j in zip(left.tolist(), right.tolist(), strict=True):
        a, b = find(i), find(j)
        if a != b:
            parent[max(a, b)] = min(a, b)
    groups: dict[int, list[int]] = defaultdict(list)
    for i in range(len(lines)):
        groups[find(i)].append(i)
    return list(groups.values())


class _CrossRanking:
    """Chooses the name of a cut where several cross streets meet."""

    def __init__(self, streets: Sequence[StreetWay], lengths: dict[str, float]) -> None:
        self.rank: dict[str, float] = {}
        for way in streets:
            self.rank[way.name] = min(self.rank.get(way.name, 99.0), highway_rank(way.highway))
        self.length = lengths

    def key(self, name: str) -> tuple[float, float, str]:
        return (self.rank.get(name, 99.0), -round(self.length.get(name, 0.0), 1), name)

    def best(self, names: frozenset[str]) -> str | None:
        return min(names, key=self.key) if names else None


def _select_cuts(
    cuts: list[_Cut], length: float, min_gap_m: float
) -> tuple[list[_Cut], _Cut | None, _Cut | None]:
    """Keep cuts at least min_gap_m apart and from the ends; return (kept, start name cut, end name cut)."""
    merged: list[_Cut] = []
    for cut in sorted(cuts, key=lambda c: (c.s, sorted(c.names))):
        if merged and cut.s - merged[-1].s < _SAME_CUT_M:
            merged[-1] = _Cut(merged[-1].s, merged[-1].names | cut.names)
        else:
            merged.append(cut)
    start = min((c for c in merged if c.s < min_gap_m), key=lambda c: c.s, default=None)
    end = max((c for c in merged if c.s > length - min_gap_m), key=lambda c: c.s, default=None)
    kept: list[_Cut] = []
    last = 0.0
    for cut in merged:
        if cut.s < min_gap_m or cut.s > length - min_gap_m or cut.s - last < min_gap_m:
            continue
        kept.append(cut)
        last = cut.s
    return kept, start, end


def _line_cuts(
    line: LineString,
    own: list[tuple[np.ndarray, frozenset[str]]],
    siblings: list[tuple[np.ndarray, frozenset[str]]],
    snap_m: float,
) -> list[_Cut]:
    """Junctions on this line, plus the junctions of the street's other lines within snap_m."""
    cuts = []
    for point, names in own:
        cuts.append(_Cut(float(line.project(Point(point))), names))
    for point, names in siblings:
        p = Point(point)
        if line.distance(p) <= snap_m:
            cuts.append(_Cut(float(line.project(p)), names))
    return cuts


def partition_streets(
    streets: Sequence[StreetWay], projection: UtmProjection, config: PartitionConfig
) -> tuple[list[SubStreet], dict[str, tuple[float, float, str]]]:
    """Cut the named streets into sub-streets; also return each street name's ranking key.

    Only the cutting rules of `config` apply here (min_gap_m, street_split_m, carriageway_snap_m); the
    caller picks the streets of `config.highway_classes`.
    """
    min_gap_m, street_split_m = config.min_gap_m, config.street_split_m
    carriageway_snap_m = config.carriageway_snap_m
    names_at: dict[tuple[int, int], set[str]] = defaultdict(set)
    centrelines: dict[str, list[LineString]] = defaultdict(list)
    outlines: dict[str, list[LineString]] = defaultdict(list)
    for way in streets:
        e, n = projection.to_utm(way.lonlat[:, 0], way.lonlat[:, 1])
        coords = np.c_[e, n]
        for key in _vertex_keys(coords):
            names_at[key].add(way.name)
        (outlines if way.area else centrelines)[way.name].append(LineString(coords))
    ranking = _CrossRanking(streets, _street_lengths(centrelines, outlines))

    result: list[SubStreet] = []
    for name in sorted(set(centrelines) | set(outlines)):
        zones, squares = _split_outlines(
            centrelines.get(name, []), outlines.get(name, []), carriageway_snap_m
        )
        zone_junctions = [j for zone in zones for j in _junctions(zone, name, names_at)]
        lines = centrelines.get(name, [])
        if lines:
            for group in _components(lines, street_split_m):
                component = [lines[i] for i in group]
                result.extend(
                    _partition_component(
                        name, component, zone_junctions, names_at, ranking, min_gap_m, carriageway_snap_m
                    )
                )
        if squares:
            for group in _components(squares, street_split_m):
                outline = [squares[i] for i in group]
                geometry = outline[0] if len(outline) == 1 else MultiLineString(outline)
                met = frozenset().union(
                    *[names for o in outline for _, names in _junctions(o, name, names_at)]
                )
                ends = tuple(sorted(sorted(met, key=ranking.key)[:2]))
                result.append(SubStreet(name, _component_id(name, outline), geometry, ends))
    return result, {name: ranking.key(name) for name in set(centrelines) | set(outlines)}


def _street_lengths(
    centrelines: dict[str, list[LineString]], outlines: dict[str, list[LineString]]
) -> dict[str, float]:
    names = set(centrelines) | set(outlines)
    return {n: float(sum(g.length for g in centrelines.get(n, []) or outlines.get(n, []))) for n in names}


def _split_outlines(
    centrelines: list[LineString], outlines: list[LineString], snap_m: float
) -> tuple[list[LineString], list[LineString]]:
    """Area outlines within snap_m of a centreline of their name (zones) vs the rest (kept as geometry)."""
    zones, standalone = [], []
    for outline in outlines:
        near = any(line.distance(outline) <= snap_m for line in centrelines)
        (zones if near else standalone).append(outline)
    return zones, standalone


def _junctions(
    line: LineString, name: str, names_at: dict[tuple[int, int], set[str]]
) -> list[tuple[np.ndarray, frozenset[str]]]:
    """Vertices of `line` that ways of other names share, with those names."""
    coords = np.asarray(line.coords)
    found = []
    for point, key in zip(coords, _vertex_keys(coords), strict=True):
        others = frozenset(names_at.get(key, set()) - {name})
        if others:
            found.append((point, others))
    return found


def _component_id(name: str, lines: list[LineString]) -> str:
    bounds = shapely.total_bounds(lines)
    return "c" + short_id(f"{name}|" + ",".join(f"{v:.0f}" for v in bounds))


def _partition_component(
    name: str,
    lines: list[LineString],
    zone_junctions: list[tuple[np.ndarray, frozenset[str]]],
    names_at: dict[tuple[int, int], set[str]],
    ranking: _CrossRanking,
    min_gap_m: float,
    snap_m: float,
) -> list[SubStreet]:
    """Sub-streets of one connected street; zone_junctions come from its pedestrian-zone outlines."""
    component_id = _component_id(name, lines)
    merged = shapely.line_merge(MultiLineString(lines))
    parts = sorted(getattr(merged, "geoms", [merged]), key=lambda g: (g.bounds, g.length))
    junctions = [_junctions(part, name, names_at) for part in parts]

    pieces: list[tuple[LineString, tuple[str, ...]]] = []
    for index, part in enumerate(parts):
        siblings = [j for k, found in enumerate(junctions) if k != index for j in found] + zone_junctions
        cuts = _line_cuts(part, junctions[index], siblings, snap_m)
        kept, start, end = _select_cuts(cuts, part.length, min_gap_m)
        bounds = [0.0, *[c.s for c in kept], part.length]
        end_names = [
            ranking.best(start.names) if start else None,
            *[ranking.best(c.names) for c in kept],
            ranking.best(end.names) if end else None,
        ]
        for k in range(len(bounds) - 1):
            if bounds[k + 1] - bounds[k] <= 0.0:
                continue
            piece = substring(part, bounds[k], bounds[k + 1])
            if piece.length <= 0.0 or piece.geom_type != "LineString":
                continue
            ends = tuple(sorted({n for n in (end_names[k], end_names[k + 1]) if n}))
            pieces.append((piece, ends))
    return [
        SubStreet(name, component_id, geometry, ends) for geometry, ends in _merge_parallel(pieces, snap_m)
    ]


def _merge_parallel(
    pieces: list[tuple[LineString, tuple[str, ...]]], snap_m: float
) -> list[tuple[BaseGeometry, tuple[str, ...]]]:
    """Join pieces with the same end names that lie within snap_m (the two carriageways of one block)."""
    parent = list(range(len(pieces)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(len(pieces)):
        for j in range(i + 1, len(pieces)):
            if pieces[i][1] == pieces[j][1] and pieces[i][0].distance(pieces[j][0]) <= snap_m:
                a, b = find(i), find(j)
                if a != b:
                    parent[max(a, b)] = min(a, b)
    groups: dict[int, list[int]] = defaultdict(list)
    for i in range(len(pieces)):
        groups[find(i)].append(i)
    merged = []
    for members in groups.values():
        geometry = shapely.line_merge(MultiLineString([pieces[i][0] for i in members]))
        merged.append((geometry, pieces[members[0]][1]))
    return merged
