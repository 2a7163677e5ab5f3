"""Read what the address partition and the renderer need from an OpenStreetMap .osm.pbf (pyosmium).

One pass over the file with node locations and area assembly: named street ways, building
footprints with their tags, named shops/amenities, trees, place nodes and administrative
boundaries. Administrative relations of a clipped extract are usually not closed; their member
ways are kept as lines so that `addressclip.geo.neighbourhoods` can close them against the
extract's bounds.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from addressclip.errors import InputError
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


@dataclass(frozen=True)
class AdminArea:
    """A neighbourhood polygon (shapely, lon/lat) — closed against the extract bounds if needed."""

    name: str
    admin_level: int
    polygon: object  # shapely Polygon | MultiPolygon


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
    admin_areas: list[AdminArea] = field(default_factory=list)
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


def _poi_category(tags) -> tuple[str, str] | None:
    for category in POI_CATEGORIES:
        value = tags.get(category)
        if value:
            return category, value
    return None


def read_osm(path: str | Path, highway_classes: Collection[str] = DEFAULT_HIGHWAY_CLASSES) -> OsmExtract:
    """Read an .osm.pbf (or .osm/.osm.bz2) extract; raise InputError if it cannot be read."""
    import osmium

    path = Path(path)
    if not path.is_file():
        raise InputError(path, None, "OSM extract not found (give a .osm.pbf file)")
    highway_classes = frozenset(highway_classes)
    streets: list[StreetWay] = []
    buildings: list[Building] = []
    pois: list[Poi] = []
    trees: list[Tree] = []
    places: list[PlaceNode] = []
    admin_member_ways: dict[int, list[int]] = {}
    admin_heads: list[tuple[int, str, int]] = []
    way_lines: dict[int, np.ndarray] = {}
    lons: list[float] = []
    lats: list[float] = []

    try:
        # Relations first would need two passes; collect every way's line cheaply and resolve admin
        # members at the end (extracts here are city-sized).
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
                        streets.append(StreetWay(obj.id, name, highway, line))
                if tags.get("boundary") == "administrative" or not len(tags):
                    # untagged ways are often members of boundary relations
                    line = line if line is not None else _way_lonlat(obj)
                    if line is not None:
                        way_lines[obj.id] = line
                if tags.get("natural") == "tree_row":
                    row = _way_lonlat(obj)
                    if row is not None:
                        trees.extend(Tree(float(lon), float(lat)) for lon, lat in row)
            elif obj.is_relation():
                if tags.get("boundary") == "administrative" and tags.get("name"):
                    try:
                        level = int(tags.get("admin_level", ""))
                    except ValueError:
                        continue
                    if level in NEIGHBOURHOOD_ADMIN_LEVELS:
                        admin_heads.append((obj.id, tags["name"], level))
                        admin_member_ways[obj.id] = [
                            m.ref for m in obj.members if m.type == "w" and m.role in ("outer", "")
                        ]
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
        raise InputError(path, None, f"cannot read OSM data ({error})") from None

    if not lons:
        raise InputError(path, None, "the extract holds no nodes with locations")
    admin_relations = [
        AdminRelation(
            rel_id, name, level, [way_lines[w] for w in admin_member_ways[rel_id] if w in way_lines]
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
        path=path,
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
