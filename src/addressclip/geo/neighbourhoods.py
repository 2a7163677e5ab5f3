"""Neighbourhood polygons for a clipped OSM extract, and the lookup "which neighbourhood is this point in".

Sources, in order of precedence (the finest level that covers a point wins):

1. Administrative boundary relations of admin_level 11, then 10, then 9 (`AdminArea`).
2. Place nodes (place=suburb/quarter/neighbourhood): a point no admin area covers takes the name of
   the nearest place node (a Voronoi partition in UTM metres).
3. Nothing: the empty string (addresses then carry no neighbourhood part).

Closing clipped boundaries. In a bbox-clipped extract a relation's outer ring is cut open: only the
member ways (or way pieces) inside the box are present. We close a relation against the extract's
bounding box: its lines are merged into chains, each open chain end is extended to the nearest point
of the box (a little past it), and the lines plus the box outline are polygonized into faces. Crossing
one of the relation's lines swaps inside and outside, so the faces two-colour into the relation's
two possible sides. Which side is inside is decided, in this order, by:

- anchors: place nodes with the relation's own name, or the name of one of its `subarea` relations
  (recursively) — the side holding more anchors wins;
- neighbours: relations of the same admin level tile the land, so the side that overlaps the already
  decided areas of that level less wins (decided greedily, clearest case first);
- otherwise the smaller side (a clipped extract usually shows a corner of a neighbour district) —
  recorded as method 'guess'.
The method used is kept in `AdminArea.method` so that a report can show how sure each polygon is.

Names read as people write them: administrative areas often carry their kind in the name ("Bezirksteil
Maxvorstadt", "Stadtbezirk Altstadt", "London Borough of Camden", "Басманный район"), which nobody puts
in an address. `display_name` strips the kinds of `NAME_PREFIXES` / `NAME_SUFFIXES` (a small table of
the words seen in real extracts, kept conservative: a word that is also part of everyday names, like
French "Quartier" in "Quartier Latin", stays).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import shapely
from shapely.geometry import LineString, MultiPoint, Point, Polygon
from shapely.geometry.base import BaseGeometry

from addressclip.geo.osm import AdminRelation, OsmExtract, PlaceNode
from addressclip.geo.utm import UtmProjection

PLACE_LEVEL = 12  # place-node cells rank below (are coarser in precedence than) every admin level
_OVERSHOOT_M = 2.0  # extend open chain ends this far past the box, so noding cuts the box outline
_TOUCH_M = 1.0  # chain ends closer than this to another of the relation's lines are not open
_MIN_FACE_M2 = 1.0

# Administrative kinds written before/after the name (German-speaking cities, English boroughs, Russian
# districts, Austrian municipalities); matched case-sensitively, longest first, one of each at most.
NAME_PREFIXES: tuple[str, ...] = (
    "Statistischer Bezirk ", "Gemeindebezirk ", "Katastralgemeinde ", "Bezirksteil ", "Stadtbezirk ",
    "Stadtteil ", "Ortsteil ", "Ortschaft ", "Gemeinde ", "Bezirk ", "Royal Borough of ",
    "London Borough of ", "Borough of ", "район ", "поселение ", "муниципальный округ ",
)  # fmt: skip
NAME_SUFFIXES: tuple[str, ...] = (" район", " муниципальный округ")


def display_name(name: str) -> str:
    """`name` without the administrative kind people leave out ("Bezirksteil Schwabing" -> "Schwabing")."""
    text = name.strip()
    for prefix in sorted(NAME_PREFIXES, key=len, reverse=True):
        if text.startswith(prefix) and text[len(prefix) :].strip():
            text = text[len(prefix) :].strip()
            break
    for suffix in sorted(NAME_SUFFIXES, key=len, reverse=True):
        if text.endswith(suffix) and text[: -len(suffix)].strip():
            text = text[: -len(suffix)].strip()
            break
    return text


@dataclass(frozen=True)
class AdminArea:
    """A neighbourhood polygon (shapely, lon/lat) — closed against the extract bounds if needed."""

    name: str
    admin_level: int
    polygon: object  # shapely Polygon | MultiPolygon
    method: str = ""  # how the clipped ring was closed: 'closed' | 'anchor' | 'neighbours' | 'guess'


@dataclass(frozen=True)
class NeighbourhoodArea:
    """A neighbourhood polygon in UTM metres, with where it came from."""

    name: str
    level: int  # admin_level, or PLACE_LEVEL for a place-node cell
    source: str  # 'admin' | 'place'
    polygon: BaseGeometry


def _frame_polygon(bounds: Sequence[float], projection: UtmProjection, step: int = 64) -> Polygon:
    """The extract's lon/lat box as a polygon in UTM (edges densified: they are curved in UTM)."""
    min_lon, min_lat, max_lon, max_lat = bounds
    t = np.linspace(0.0, 1.0, step, endpoint=False)
    lons = np.concatenate(
        [min_lon + t * (max_lon - min_lon), np.full(step, max_lon), max_lon - t * (max_lon - min_lon),
         np.full(step, min_lon)]
    )  # fmt: skip
    lats = np.concatenate(
        [np.full(step, min_lat), min_lat + t * (max_lat - min_lat), np.full(step, max_lat),
         max_lat - t * (max_lat - min_lat)]
    )  # fmt: skip
    e, n = projection.to_utm(lons, lats)
    return Polygon(np.c_[e, n])


def _to_utm_line(line: np.ndarray, projection: UtmProjection) -> LineString:
    e, n = projection.to_utm(line[:, 0], line[:, 1])
    return LineString(np.c_[e, n])


def _geometry_to_lonlat(geometry: BaseGeometry, projection: UtmProjection) -> BaseGeometry:
    def inverse(coords: np.ndarray) -> np.ndarray:
        lon, lat = projection.to_lonlat(coords[:, 0], coords[:, 1])
        return np.c_[lon, lat]

    return shapely.transform(geometry, inverse)


def _geometry_to_utm(geometry: BaseGeometry, projection: UtmProjection) -> BaseGeometry:
    def forward(coords: np.ndarray) -> np.ndarray:
        e, n = projection.to_utm(coords[:, 0], coords[:, 1])
        return np.c_[e, n]

    return shapely.transform(geometry, forward)


def _chains(lines: list[LineString]) -> list[LineString]:
    merged = shapely.line_merge(shapely.MultiLineString(lines))
    return list(getattr(merged, "geoms", [merged]))


def _extended_chains(lines: list[LineString], frame: Polygon) -> list[LineString]:
    """Chains with every open end extended a little past the frame outline."""
    chains = _chains(lines)
    outline = frame.exterior
    centre = np.asarray(frame.centroid.coords[0])
    result = []
    for i, chain in enumerate(chains):
        coords = np.asarray(chain.coords)
        if chain.is_closed:
            result.append(chain)
            continue
        others = shapely.union_all([c for j, c in enumerate(chains) if j != i]) if len(chains) > 1 else None
        head, tail = [], []
        for end, sink in ((coords[0], head), (coords[-1], tail)):
            point = Point(end)
            if others is not None and point.distance(others) < _TOUCH_M:
                continue
            target = np.asarray(outline.interpolate(outline.project(point)).coords[0])
            outward = target - end
            if np.hypot(*outward) < 1e-6:
                outward = end - centre
            outward = outward / max(np.hypot(*outward), 1e-9)
            sink.append(target + outward * _OVERSHOOT_M)
        result.append(LineString(np.vstack([*head, coords, *tail])))
    return result


def _two_sides(lines: list[LineString], frame: Polygon) -> tuple[BaseGeometry, BaseGeometry] | None:
    """The relation's two candidate sides inside the frame, or None if its lines split nothing."""
    extended = _extended_chains(lines, frame)
    noded = shapely.union_all([*extended, frame.exterior])
    faces = [
        f.intersection(frame)
        for f in shapely.get_parts(shapely.polygonize(shapely.get_parts(noded)))
        if f.area > _MIN_FACE_M2
    ]
    faces = [f for f in faces if not f.is_empty and f.area > _MIN_FACE_M2]
    if len(faces) < 2:
        return None
    colour = [-1] * len(faces)
    boundaries = [f.boundary for f in faces]
    for start in range(len(faces)):
        if colour[start] >= 0:
            continue
        colour[start] = 0
        queue = [start]
        while queue:
            i = queue.pop()
            for j in range(len(faces)):
                if colour[j] >= 0 or j == i:
                    continue
                if boundaries[i].intersection(boundaries[j]).length > 0.01:
                    colour[j] = 1 - colour[i]
                    queue.append(j)
    side0 = shapely.union_all([f for f, c in zip(faces, colour, strict=True) if c == 0])
    side1 = shapely.union_all([f for f, c in zip(faces, colour, strict=True) if c == 1])
    if side0.is_empty or side1.is_empty:
        return None
    return side0, side1


def _anchor_names(relation: AdminRelation, by_id: dict[int, AdminRelation], seen: set[int]) -> set[str]:
    names = {relation.name.casefold()}
    for child in relation.subareas:
        if child in by_id and child not in seen:
            seen.add(child)
            names |= _anchor_names(by_id[child], by_id, seen)
    return names


@dataclass
class _Candidate:
    relation: AdminRelation
    sides: tuple[BaseGeometry, BaseGeometry]
    anchors: list[Point]


def close_admin_relations(
    relations: Iterable[AdminRelation],
    bounds: Sequence[float],
    projection: UtmProjection,
    places: Iterable[PlaceNode] = (),
) -> list[AdminArea]:
    """Close clipped boundary relations against the extract box; see the module docstring for the rule."""
    relations = [r for r in relations if r.outer_lines]
    frame = _frame_polygon(bounds, projection)
    places = list(places)
    by_id = {r.osm_id: r for r in relations}
    place_points: dict[str, list[Point]] = {}
    for place in places:
        e, n = projection.to_utm(place.lon, place.lat)
        place_points.setdefault(place.name.casefold(), []).append(Point(float(e), float(n)))

    candidates: list[_Candidate] = []
    closed: list[AdminArea] = []
    for relation in relations:
        lines = [_to_utm_line(line, projection) for line in relation.outer_lines if len(line) >= 2]
        if not lines:
            continue
        chains = _chains(lines)
        if all(c.is_closed for c in chains):  # the whole ring lies inside the extract
            polygon = shapely.union_all(
                [p for p in shapely.get_parts(shapely.polygonize(chains)) if p.area > _MIN_FACE_M2]
            ).intersection(frame)
            if not polygon.is_empty:
                closed.append(
                    AdminArea(relation.name, relation.admin_level,
                              _geometry_to_lonlat(polygon, projection), "closed")
                )  # fmt: skip
            continue
        sides = _two_sides(lines, frame)
        if sides is None:
            continue
        names = _anchor_names(relation, by_id, {relation.osm_id})
        anchors = [p for name in names for p in place_points.get(name, [])]
        candidates.append(_Candidate(relation, sides, anchors))

    decided: list[tuple[AdminRelation, BaseGeometry, str]] = []
    undecided: list[_Candidate] = []
    for candidate in candidates:
        inside = [sum(side.contains(p) for p in candidate.anchors) for side in candidate.sides]
        if inside[0] != inside[1]:
            decided.append((candidate.relation, candidate.sides[int(inside[1] > inside[0])], "anchor"))
        else:
            undecided.append(candidate)

    while undecided:
        best: tuple[float, int, int] | None = None  # (evidence, candidate index, side)
        for index, candidate in enumerate(undecided):
            same_level = [g for r, g, _ in decided if r.admin_level == candidate.relation.admin_level]
            if not same_level:
                continue
            taken = shapely.union_all(same_level)
            overlap = [side.intersection(taken).area for side in candidate.sides]
            evidence = abs(overlap[0] - overlap[1])
            if evidence > 1.0 and (best is None or evidence > best[0]):
                best = (evidence, index, int(overlap[1] < overlap[0]))
        if best is None:
            break
        candidate = undecided.pop(best[1])
        decided.append((candidate.relation, candidate.sides[best[2]], "neighbours"))
    for candidate in undecided:
        smaller = int(candidate.sides[1].area < candidate.sides[0].area)
        decided.append((candidate.relation, candidate.sides[smaller], "guess"))

    areas = closed + [
        AdminArea(relation.name, relation.admin_level, _geometry_to_lonlat(polygon, projection), method)
        for relation, polygon, method in decided
    ]
    return sorted(areas, key=lambda a: (-a.admin_level, a.name))


def admin_areas(extract: OsmExtract) -> list[AdminArea]:
    """The extract's neighbourhood boundary relations closed into polygons (finest level first)."""
    return close_admin_relations(extract.admin_relations, extract.bounds, extract.projection, extract.places)


def _place_cells(names: list[str], xy: np.ndarray, frame: BaseGeometry) -> list[tuple[str, BaseGeometry]]:
    """Voronoi cells of the place nodes, clipped to the frame and merged per name."""
    if len(names) == 0:
        return []
    if len(names) == 1:
        return [(names[0], frame)]
    cells = shapely.get_parts(shapely.voronoi_polygons(MultiPoint(xy), extend_to=frame))
    per_name: dict[str, list[BaseGeometry]] = {}
    points = shapely.points(xy)
    for cell in cells:
        owner = np.flatnonzero(shapely.contains(cell, points))
        if len(owner):
            per_name.setdefault(names[int(owner[0])], []).append(cell)
    return [(name, shapely.union_all(parts).intersection(frame)) for name, parts in sorted(per_name.items())]


class NeighbourhoodMap:
    """Point -> neighbourhood name in UTM metres: finest admin area first, then the nearest place node."""

    def __init__(
        self,
        areas: list[NeighbourhoodArea],
        place_names: Sequence[str] = (),
        place_xy: np.ndarray | None = None,
    ) -> None:
        """`areas` may overlap (levels 9, 10, 11); they are cut into the regions where each one wins."""
        ranked = sorted([a for a in areas if a.source == "admin"], key=lambda a: (-a.level, a.name)) + sorted(
            [a for a in areas if a.source != "admin"], key=lambda a: a.name
        )
        self.areas: list[NeighbourhoodArea] = []  # the effective regions, finest first, no overlaps
        taken: BaseGeometry = Polygon()
        for area in ranked:
            region = area.polygon.difference(taken) if not taken.is_empty else area.polygon
            if region.area > _MIN_FACE_M2:
                self.areas.append(NeighbourhoodArea(area.name, area.level, area.source, region))
                taken = taken.union(region)
        self.place_names = np.asarray(list(place_names), dtype=object)
        self.place_xy = np.zeros((0, 2)) if place_xy is None else np.asarray(place_xy, dtype=float)

    @classmethod
    def from_extract(cls, extract: OsmExtract, source: str = "auto") -> NeighbourhoodMap:
        """Build from an `OsmExtract`. source: 'auto' (admin areas, place nodes where none) or 'places'."""
        if source not in ("auto", "places"):
            raise ValueError(f"neighbourhood source must be 'auto' or 'places', not {source!r}")
        admin = admin_areas(extract) if source == "auto" else []
        return cls.from_areas(admin, extract.places, extract.bounds, extract.projection)

    @classmethod
    def from_areas(
        cls,
        admin: Iterable[AdminArea],
        places: Iterable[PlaceNode],
        bounds: Sequence[float],
        projection: UtmProjection,
    ) -> NeighbourhoodMap:
        """Build from closed admin areas and place nodes (place cells fill in where no area covers)."""
        frame = _frame_polygon(bounds, projection)
        areas: list[NeighbourhoodArea] = []
        for area in admin:
            polygon = _geometry_to_utm(area.polygon, projection)
            areas.append(NeighbourhoodArea(display_name(area.name), area.admin_level, "admin", polygon))
        places = sorted(places, key=lambda p: (p.name, p.lon, p.lat))
        names = [display_name(p.name) for p in places]
        if places:
            e, n = projection.to_utm([p.lon for p in places], [p.lat for p in places])
            xy = np.c_[e, n]
        else:
            xy = np.zeros((0, 2))
        covered = shapely.union_all([a.polygon for a in areas]) if areas else Polygon()
        for name, cell in _place_cells(names, xy, frame):
            remainder = cell.difference(covered)
            if remainder.area > _MIN_FACE_M2:
                areas.append(NeighbourhoodArea(name, PLACE_LEVEL, "place", remainder))
        return cls(areas, names, xy)

    @property
    def names(self) -> list[str]:
        return sorted({a.name for a in self.areas})

    def name_at(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Neighbourhood name for each UTM point (object array; '' where nothing is known)."""
        x = np.asarray(x, dtype=float).ravel()
        y = np.asarray(y, dtype=float).ravel()
        result = np.full(len(x), "", dtype=object)
        open_ = np.ones(len(x), dtype=bool)
        for area in self.areas:
            if area.source != "admin" or not open_.any():
                continue
            inside = np.zeros(len(x), dtype=bool)
            inside[open_] = shapely.contains_xy(area.polygon, x[open_], y[open_])
            result[inside] = area.name
            open_ &= ~inside
        if open_.any() and len(self.place_names):
            todo = np.flatnonzero(open_)
            d2 = (x[todo, None] - self.place_xy[None, :, 0]) ** 2 + (
                y[todo, None] - self.place_xy[None, :, 1]
            ) ** 2
            result[todo] = self.place_names[np.argmin(d2, axis=1)]
        return result

    def to_records(self) -> list[dict]:
        """Plain records (WKB hex polygons) for saving beside an AddressBook."""
        return [
            {"name": a.name, "level": a.level, "source": a.source, "wkb": shapely.to_wkb(a.polygon, hex=True)}
            for a in self.areas
        ] + [
            {"name": str(n), "level": PLACE_LEVEL, "source": "place_node", "x": float(p[0]), "y": float(p[1])}
            for n, p in zip(self.place_names, self.place_xy, strict=True)
        ]

    @classmethod
    def from_records(cls, records: list[dict]) -> NeighbourhoodMap:
        areas = [
            NeighbourhoodArea(r["name"], int(r["level"]), r["source"], shapely.from_wkb(r["wkb"]))
            for r in records
            if r["source"] != "place_node"
        ]
        nodes = [r for r in records if r["source"] == "place_node"]
        xy = np.array([[r["x"], r["y"]] for r in nodes], dtype=float).reshape(-1, 2)
        return cls(areas, [r["name"] for r in nodes], xy)
