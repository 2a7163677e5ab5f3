"""Read what the address partition and the renderer need from an OpenStreetMap .osm.pbf (pyosmium).

A quick pass over the relations (which ways bound a neighbourhood), then one pass over the file
with node locations and area assembly: named street ways, building footprints with their tags,
named shops/amenities, trees, place nodes and administrative boundaries. Administrative relations
of a clipped extract are usually not closed; their member ways are kept as lines (split where the
clip removed nodes) in `OsmExtract.admin_relations`. Closing them into polygons is the neighbourhood
code's job (`addressclip.geo.neighbourhoods.admin_areas`): this module only reads.

`read_osm(path, bbox=...)` keeps only what lies inside a latitude/longitude box (the file is read
whole, then cropped by `addressclip.geo.bbox.crop_extract`; its docstring states the clipping rule).
"""

from __future__ import annotations

import tempfile
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from addressclip.errors import InputError
from addressclip.extras import require
from addressclip.geo.bbox import BBox, crop_extract
from addressclip.geo.utm import UtmProjection

DEFAULT_HIGHWAY_CLASSES: tuple[str, ...] = (
    "motorway", "trunk", "primary", "secondary", "tertiary", "unclassified", "residential",
    "motorway_link", "trunk_link", "primary_link", "secondary_link", "tertiary_link",
    "living_street", "pedestrian", "service", "road",
)  # fmt: skip
POI_CATEGORIES: tuple[str, ...] = ("shop", "amenity", "tourism", "office", "leisure", "craft")
BUILDING_TAGS: tuple[str, ...] = (
    "building", "building:levels", "height", "building:material", "building:colour", "roof:colour",
    "roof:shape", "amenity", "shop", "name", "addr:street", "addr:housenumber",
)  # fmt: skip
PLACE_KINDS: tuple[str, ...] = ("suburb", "quarter", "neighbourhood")
NEIGHBOURHOOD_ADMIN_LEVELS: tuple[int, ...] = (9, 10, 11)


@dataclass(frozen=True)
class StreetWay:
    osm_id: int
    name: str
    highway: str
    lonlat: np.ndarray  # (N, 2) lon, lat
    area: bool = False  # area=yes: the outline of a pedestrian square/zone, not a centreline


@dataclass(frozen=True)
class Building:
    osm_id: int
    lonlat: np.ndarray  # outer ring (N, 2) lon, lat
    tags: dict[str, str]


@dataclass(frozen=True)
class Poi:
    osm_id: int
    lon: float
    lat: float
    name: str
    category: str  # one of POI_CATEGORIES
    kind: str  # the tag's value, e.g. 'cafe'
    tags: dict[str, str]


@dataclass(frozen=True)
class Tree:
    lon: float
    lat: float


@dataclass(frozen=True)
class PlaceNode:
    name: str
    place: str
    lon: float
    lat: float


@dataclass(frozen=True)
class AdminRelation:
    """An administrative boundary relation as read: its outer member ways as lon/lat lines."""

    osm_id: int
    name: str
    admin_level: int
    outer_lines: list[np.ndarray]
    subareas: tuple[int, ...] = ()  # ids of `subarea` member relations (their place nodes anchor this one)


@dataclass
class OsmExtract:
    path: Path
    bounds: tuple[float, float, float, float]  # min_lon, min_lat, max_lon, max_lat
    streets: list[StreetWay]
    buildings: list[Building]
    pois: list[Poi]
    trees: list[Tree]
    places: list[PlaceNode]
    admin_relations: list[AdminRelation]
    projection: UtmProjection = field(default=None)  # type: ignore[assignment]


def _way_lonlat(way) -> np.ndarray | None:
    coords = []
    for node in way.nodes:
        location = node.location
        if not location.valid():
            continue
        coords.append((location.lon, location.lat))
    if len(coords) < 2:
        return None
    return np.asarray(coords, dtype=np.float64)


def _way_pieces(way) -> list[np.ndarray]:
    """The way's runs of located nodes: a clipped way loses nodes, and a gap must not become a segment."""
    pieces: list[list[tuple[float, float]]] = [[]]
    for node in way.nodes:
        location = node.location
        if location.valid():
            pieces[-1].append((location.lon, location.lat))
        elif pieces[-1]:
            pieces.append([])
    return [np.asarray(p, dtype=np.float64) for p in pieces if len(p) >= 2]


def _read_admin_relation(
    relation,
    heads: list[tuple[int, str, int]],
    member_ways: dict[int, list[int]],
    subareas: dict[int, tuple[int, ...]],
) -> None:
    """Record a named boundary=administrative relation of a neighbourhood admin level."""
    tags = relation.tags
    if tags.get("boundary") != "administrative" or not tags.get("name"):
        return
    try:
        level = int(tags.get("admin_level", ""))
    except ValueError:
        return
    if level not in NEIGHBOURHOOD_ADMIN_LEVELS:
        return
    heads.append((relation.id, tags["name"], level))
    member_ways[relation.id] = [m.ref for m in relation.members if m.type == "w" and m.role in ("outer", "")]
    subareas[relation.id] = tuple(m.ref for m in relation.members if m.type == "r" and m.role == "subarea")


def _poi_category(tags) -> tuple[str, str] | None:
    for category in POI_CATEGORIES:
        value = tags.get(category)
        if value:
            return category, value
    return None


class _OutOfOrder(Exception):
    """The file's objects are not sorted by type and id (osmium's location and area handlers need that)."""


def read_osm(
    path: str | Path,
    highway_classes: Collection[str] = DEFAULT_HIGHWAY_CLASSES,
    bbox: BBox | None = None,
) -> OsmExtract:
    """Read an .osm.pbf (or .osm/.osm.gz/.osm.bz2) extract; raise InputError if it cannot be read.

    `bbox`: keep only the part inside this box (streets clipped at its edge, see `geo.bbox`); a box
    that misses the file or holds no named street is an InputError naming the box.

    An extract whose objects are not sorted by type and id (some tools write such files) is sorted
    into a temporary copy first (`sorted_copy`); only when that does not help either (e.g. one id
    twice) is it an error, naming the command that fixes the file.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, None, "OSM extract not found (give a .osm.pbf file)")
    extract = _read_sorted(path, highway_classes)
    return extract if bbox is None else crop_extract(extract, bbox)


def _read_sorted(path: Path, highway_classes: Collection[str]) -> OsmExtract:
    """`_read_extract`, through a sorted temporary copy when the file's objects are out of order."""
    try:
        return _read_extract(path, path, highway_classes)
    except _OutOfOrder:
        pass
    with tempfile.TemporaryDirectory(prefix="addressclip-osm-") as folder:
        try:
            ordered = sorted_copy(path, Path(folder) / "sorted.osm.pbf")
            return _read_extract(ordered, path, highway_classes)
        except (_OutOfOrder, RuntimeError, MemoryError) as error:
            raise InputError(
                path, None, f"objects are not sorted by type and id and sorting them failed ({error}); "
                f"sort the file first: osmium sort {path} -o sorted.osm.pbf",
            ) from None  # fmt: skip


def sorted_copy(path: Path, target: Path) -> Path:
    """Write `target`: the objects of `path` sorted by type and id (a duplicate id keeps its newest
    version), through libosmium's merge reader, in memory.

    Measured on shared/data/osm/milan.osm.pbf (262k nodes, 69k ways; a copy with its ways and
    relations written in reverse order), on a busy 2-core machine: `read_osm` of the sorted file
    7.6-8.1 s and 133 MB peak memory; of the unsorted copy 15.7-19.1 s and 158 MB (a first read that
    stops at the first object out of order, the sort itself 3.8 s, a full read). Copying the objects
    into Python objects instead took 32 s for the sort alone. A continent-sized file should be
    sorted once with `osmium sort` instead.
    """
    osmium = require("osmium", "reading an OpenStreetMap extract")

    merged = osmium.MergeInputReader()
    merged.add_file(str(path))
    writer = osmium.SimpleWriter(str(target))
    try:
        merged.apply(_Copy(writer), simplify=True)
    finally:
        writer.close()
    return target


class _Copy:
    """Handler that writes every object it is given (the merge reader hands them over sorted)."""

    def __init__(self, writer) -> None:
        self.writer = writer

    def node(self, node) -> None:
        self.writer.add_node(node)

    def way(self, way) -> None:
        self.writer.add_way(way)

    def relation(self, relation) -> None:
        self.writer.add_relation(relation)


def _read_extract(path: Path, source: Path, highway_classes: Collection[str]) -> OsmExtract:
    """One read of `path` (the file the user gave is `source`); raises _OutOfOrder on an unsorted file."""
    osmium = require("osmium", "reading an OpenStreetMap extract")

    highway_classes = frozenset(highway_classes)
    streets: list[StreetWay] = []
    buildings: list[Building] = []
    pois: list[Poi] = []
    trees: list[Tree] = []
    places: list[PlaceNode] = []
    admin_member_ways: dict[int, list[int]] = {}
    admin_subareas: dict[int, tuple[int, ...]] = {}
    admin_heads: list[tuple[int, str, int]] = []
    way_lines: dict[int, list[np.ndarray]] = {}
    lons: list[float] = []
    lats: list[float] = []

    try:
        # A quick first pass over relations only (~20 ms on Helsinki) tells which ways are members of
        # neighbourhood boundaries, whatever their own tags (a boundary may run along a road or shore).
        for obj in osmium.FileProcessor(str(path), osmium.osm.RELATION):
            _read_admin_relation(obj, admin_heads, admin_member_ways, admin_subareas)
        member_ways = {w for ways in admin_member_ways.values() for w in ways}
        processor = osmium.FileProcessor(str(path)).with_locations().with_areas()
        for obj in processor:
            tags = obj.tags
            if obj.is_node():
                location = obj.location
                if not location.valid():
                    continue
                lons.append(location.lon)
                lats.append(location.lat)
                if not len(tags):
                    continue
                if tags.get("natural") == "tree":
                    trees.append(Tree(location.lon, location.lat))
                name = tags.get("name")
                place = tags.get("place")
                if name and place in PLACE_KINDS:
                    places.append(PlaceNode(name, place, location.lon, location.lat))
                category = _poi_category(tags)
                if name and category:
                    pois.append(
                        Poi(obj.id, location.lon, location.lat, name, category[0], category[1], dict(tags))
                    )
            elif obj.is_way():
                line = None
                highway = tags.get("highway")
                name = tags.get("name")
                if highway in highway_classes and name:
                    line = _way_lonlat(obj)
                    if line is not None:
                        streets.append(StreetWay(obj.id, name, highway, line, tags.get("area") == "yes"))
                if obj.id in member_ways:
                    pieces = _way_pieces(obj)
                    if pieces:
                        way_lines[obj.id] = pieces
                if tags.get("natural") == "tree_row":
                    row = _way_lonlat(obj)
                    if row is not None:
                        trees.extend(Tree(float(lon), float(lat)) for lon, lat in row)
            elif obj.is_area() and "building" in tags:
                ring = _outer_ring(obj)
                if ring is not None:
                    keep = {k: tags[k] for k in BUILDING_TAGS if k in tags}
                    buildings.append(Building(obj.orig_id(), ring, keep))
                # named shops mapped as building areas become POIs at the footprint centre
                category = _poi_category(tags)
                if ring is not None and tags.get("name") and category:
                    lon, lat = ring.mean(axis=0)
                    pois.append(
                        Poi(obj.orig_id(), float(lon), float(lat), tags["name"], category[0],
                            category[1], dict(tags))
                    )  # fmt: skip
    except RuntimeError as error:  # osmium reports unreadable files as RuntimeError
        if "out of order" in str(error):
            raise _OutOfOrder(str(error)) from None
        raise InputError(source, None, f"cannot read OSM data ({error})") from None

    if not lons:
        raise InputError(source, None, "the extract holds no nodes with locations")
    admin_relations = [
        AdminRelation(
            rel_id,
            name,
            level,
            [piece for w in admin_member_ways[rel_id] for piece in way_lines.get(w, [])],
            admin_subareas[rel_id],
        )
        for rel_id, name, level in admin_heads
    ]
    lon_arr, lat_arr = np.asarray(lons), np.asarray(lats)
    bounds = (float(lon_arr.min()), float(lat_arr.min()), float(lon_arr.max()), float(lat_arr.max()))
    if streets:
        all_street = np.concatenate([s.lonlat for s in streets])
        centre_lon, centre_lat = np.median(all_street, axis=0)
    else:
        centre_lon, centre_lat = np.median(lon_arr), np.median(lat_arr)
    projection = UtmProjection.for_point(float(centre_lon), float(centre_lat))
    return OsmExtract(
        path=source,
        bounds=bounds,
        streets=streets,
        buildings=buildings,
        pois=pois,
        trees=trees,
        places=places,
        admin_relations=admin_relations,
        projection=projection,
    )


def _outer_ring(area) -> np.ndarray | None:
    """The largest outer ring of an osmium area as (N, 2) lon/lat."""
    best: np.ndarray | None = None
    for ring in area.outer_rings():
        coords = [(n.lon, n.lat) for n in ring if n.location.valid()]
        if len(coords) >= 4 and (best is None or len(coords) > len(best)):
            best = np.asarray(coords, dtype=np.float64)
    return best
