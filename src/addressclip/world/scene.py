"""The world as flat numpy arrays: wall edges, street segments, trees, shop signs and street-name signs.

`build_scene` turns an `OsmExtract` into a `Scene` once; rendering workers receive it once (it
pickles to a few MB) and render every view from these arrays, without touching OSM objects.
Coordinates are local metres: UTM easting/northing minus `Scene.origin`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from addressclip.geo.osm import OsmExtract
from addressclip.world.signs import NO_SIGN_KINDS, shop_sign_texture, street_blade_texture
from addressclip.world.styles import (
    SKIPPED_BUILDING_TYPES,
    STYLE_COLUMNS,
    District,
    FacadeStyle,
    assign_characters,
    facade_style,
    parse_height_m,
    stable_unit,
)

# Road half widths (m) by highway class and the sidewalk beside them; documented in the README.
ROAD_HALF_WIDTH_M: dict[str, float] = {
    "motorway": 11.0, "trunk": 9.0, "primary": 7.5, "secondary": 6.5, "tertiary": 5.0,
    "unclassified": 3.5, "residential": 3.2, "living_street": 2.8, "pedestrian": 5.0,
    "service": 2.2, "road": 3.0,
}  # fmt: skip
DEFAULT_HALF_WIDTH_M = 3.0
LINK_SUFFIX = "_link"
URBAN_COVERAGE = 0.2  # building footprint share above which an area counts as a city block
SCENE_MARGIN_M = 160.0  # geometry kept around a crop, beyond what a camera can see
STREET_SIGN_SKIP_CHANCE = 0.15  # some corners have no street-name sign, as in real cities


@dataclass
class Scene:
    """Everything the renderer draws, as arrays in local metres."""

    origin: tuple[float, float]
    utm_zone: str
    # walls (one row per facade edge piece; rings are counter-clockwise so the outside is on the right)
    wall_a: np.ndarray  # (E, 2)
    wall_b: np.ndarray  # (E, 2)
    wall_height: np.ndarray  # (E,) metres
    wall_roof: np.ndarray  # (E,) roof rise above the wall (pitched roofs), metres
    wall_gable: np.ndarray  # (E,) bool: the edge is a gable end (triangle of wall above the eaves)
    wall_u0: np.ndarray  # (E,) metres along the facade at the edge start (keeps windows aligned)
    wall_style: np.ndarray  # (E,) int -> styles
    wall_building: np.ndarray  # (E,) int -> building_district etc.
    styles: np.ndarray  # (S, len(STYLE_COLUMNS)) float32
    style_info: list[FacadeStyle]
    building_height: np.ndarray  # (B,)
    building_district: list[str]
    building_urban: np.ndarray  # (B,) bool
    # streets
    seg_a: np.ndarray  # (G, 2)
    seg_b: np.ndarray  # (G, 2)
    seg_half_width: np.ndarray  # (G,)
    seg_sidewalk: np.ndarray  # (G,)
    seg_pedestrian: np.ndarray  # (G,) bool
    seg_urban: np.ndarray  # (G,) bool
    seg_along0: np.ndarray  # (G,) metres along the way at the segment start (lane dashes)
    seg_street: np.ndarray  # (G,) int -> street_names
    seg_way: np.ndarray  # (G,) int: which OSM way (segments of one way are consecutive)
    street_names: list[str]
    seg_highway: list[str]
    # ground lookup grid: the street segments that can matter inside each cell (-1 padded)
    ground_origin: np.ndarray  # (2,) local metres of cell (0, 0)
    ground_cell_m: float
    ground_candidates: np.ndarray  # (nx, ny, K) int32
    ground_urban: np.ndarray  # (nx, ny) bool: verge is paving (city) or grass (suburb)
    # trees
    tree_xy: np.ndarray  # (T, 2)
    tree_height: np.ndarray
    tree_variant: np.ndarray  # (T,) int
    # shop signs on facades
    sign_edge: np.ndarray  # (P,) int -> walls
    sign_u: np.ndarray  # (P, 2) metres along the edge [start, end]
    sign_v: np.ndarray  # (P, 2) metres above ground [bottom, top]
    sign_texture: list[np.ndarray]
    sign_text: list[str]
    sign_kind: list[str]
    # street-name signs at intersections: one pole, one blade per street name
    plate_xy: np.ndarray  # (Q, 2)
    plate_names: list[tuple[str, ...]]
    plate_textures: list[list[np.ndarray]]
    intersection_xy: np.ndarray  # (I, 2) every intersection of two named streets
    intersection_names: list[tuple[str, ...]]
    crop: tuple[float, float, float, float] | None = None  # local min_x, min_y, max_x, max_y
    info: dict[str, object] = field(default_factory=dict)

    def to_local(self, east: np.ndarray, north: np.ndarray) -> np.ndarray:
        return np.stack([np.asarray(east) - self.origin[0], np.asarray(north) - self.origin[1]], axis=-1)

    def to_utm(self, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        xy = np.asarray(xy, dtype=np.float64)
        return xy[..., 0] + self.origin[0], xy[..., 1] + self.origin[1]


# UTM (east, north) points (N, 2) -> neighbourhood name per point (None or '' when unknown)
DistrictFunction = Callable[[np.ndarray], Sequence[str | None]]


def nearest_place_districts(extract: OsmExtract) -> DistrictFunction:
    """Fallback neighbourhood lookup: the nearest OSM place node within 3 km."""
    projection = extract.projection
    names = [p.name for p in extract.places]
    if names:
        east, north = projection.to_utm([p.lon for p in extract.places], [p.lat for p in extract.places])
        place_xy = np.stack([east, north], axis=1)
    else:
        place_xy = np.zeros((0, 2))

    def lookup(xy: np.ndarray) -> list[str | None]:
        xy = np.asarray(xy, dtype=float).reshape(-1, 2)
        out: list[str | None] = []
        for x, y in xy:
            if len(place_xy):
                dist = np.hypot(place_xy[:, 0] - x, place_xy[:, 1] - y)
                best = int(np.argmin(dist))
                if dist[best] < 3000:
                    out.append(names[best])
                    continue
            out.append(None)
        return out

    return lookup


def grid_district(x: float, y: float) -> str:
    """Spatial-hash fallback district: a 400 m cell."""
    return f"cell {int(np.floor(x / 400.0))},{int(np.floor(y / 400.0))}"


def build_scene(
    extract: OsmExtract,
    *,
    crop_half_side_m: float | None = None,
    district_of: DistrictFunction | None = None,
) -> Scene:
    """Compile the extract into render arrays (optionally cropped around the street centre).

    `district_of` names the neighbourhood of UTM points (e.g. the AddressBook's neighbourhood map),
    so that facade characters follow the same neighbourhoods as the address labels; buildings it
    cannot place get a 400 m grid cell as their district.
    """
    projection = extract.projection
    street_lines = [_to_utm(projection, s.lonlat) for s in extract.streets]
    if street_lines:
        all_points = np.concatenate(street_lines)
        origin = (float(np.median(all_points[:, 0])), float(np.median(all_points[:, 1])))
    else:
        lon0, lat0, lon1, lat1 = extract.bounds
        east, north = projection.to_utm((lon0 + lon1) / 2, (lat0 + lat1) / 2)
        origin = (float(east), float(north))
    crop = None
    keep_box = None
    if crop_half_side_m is not None:
        h = crop_half_side_m
        crop = (-h, -h, h, h)
        keep_box = (-h - SCENE_MARGIN_M, -h - SCENE_MARGIN_M, h + SCENE_MARGIN_M, h + SCENE_MARGIN_M)
    district_of = district_of or nearest_place_districts(extract)

    rings, ring_tags, ring_ids = _building_rings(extract, origin, keep_box)
    centroids = np.asarray([r.mean(axis=0) for r in rings]) if rings else np.zeros((0, 2))
    areas = np.asarray([_ring_area(r) for r in rings]) if rings else np.zeros(0)
    coverage = _coverage_lookup(centroids, areas)
    building_urban = coverage(centroids) > URBAN_COVERAGE if len(rings) else np.zeros(0, bool)
    raw_districts = list(district_of(centroids + np.asarray(origin))) if len(rings) else []
    building_district = [
        name if name else grid_district(x, y) for name, (x, y) in zip(raw_districts, centroids, strict=True)
    ]

    poi_xy, pois = _sign_pois(extract, origin, keep_box)
    walls = _WallBuilder()
    district_cache: dict[tuple[str, bool], District] = {}
    characters = {
        urban: assign_characters(
            [d for d, u in zip(building_district, building_urban, strict=True) if bool(u) == urban], urban
        )
        for urban in (True, False)
    }
    building_heights = []
    for index, ring in enumerate(rings):
        urban = bool(building_urban[index])
        key = (building_district[index], urban)
        if key not in district_cache:
            district_cache[key] = District.for_name(key[0], urban, characters[urban][key[0]])
        height = walls.add_building(
            index, ring, ring_tags[index], ring_ids[index], district_cache[key], urban, poi_xy
        )
        building_heights.append(height)
    wall_arrays = walls.arrays()

    sign_arrays = _place_signs(poi_xy, pois, wall_arrays)
    streets = _street_segments(extract, street_lines, origin, keep_box, coverage)
    streets.update(_ground_grid(streets, coverage))
    intersections = _intersections(extract, street_lines, origin, keep_box)
    plates = _street_plates(intersections, streets)
    trees = _trees(extract, origin, keep_box)

    return Scene(
        origin=origin,
        utm_zone=projection.label,
        **wall_arrays,
        styles=np.asarray([s.as_row() for s in walls.styles], dtype=np.float32).reshape(
            -1, len(STYLE_COLUMNS)
        ),
        style_info=walls.styles,
        building_height=np.asarray(building_heights, dtype=np.float64),
        building_district=building_district,
        building_urban=np.asarray(building_urban, dtype=bool),
        **streets,
        **trees,
        **sign_arrays,
        **plates,
        intersection_xy=intersections[0],
        intersection_names=intersections[1],
        crop=crop,
        info={
            "buildings": len(rings),
            "walls": len(wall_arrays["wall_a"]),
            "districts": sorted(set(building_district)),
            "urban_share": float(np.mean(building_urban)) if len(rings) else 0.0,
        },
    )


# --- helpers -------------------------------------------------------------------------------------


def _to_utm(projection, lonlat: np.ndarray) -> np.ndarray:
    east, north = projection.to_utm(lonlat[:, 0], lonlat[:, 1])
    return np.stack([east, north], axis=1)


def _in_box(xy: np.ndarray, box) -> np.ndarray:
    if box is None:
        return np.ones(len(xy), dtype=bool)
    return (xy[:, 0] >= box[0]) & (xy[:, 1] >= box[1]) & (xy[:, 0] <= box[2]) & (xy[:, 1] <= box[3])


def _ring_area(ring: np.ndarray) -> float:
    x, y = ring[:, 0], ring[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


def _building_rings(extract: OsmExtract, origin, keep_box):
    rings, tags, ids = [], [], []
    for building in extract.buildings:
        if building.tags.get("building", "yes") in SKIPPED_BUILDING_TYPES:
            continue
        ring = _to_utm(extract.projection, building.lonlat) - np.asarray(origin)
        if np.allclose(ring[0], ring[-1]):
            ring = ring[:-1]
        if len(ring) < 3 or not _in_box(ring, keep_box).any():
            continue
        area = _ring_area(ring)
        if abs(area) < 4.0:
            continue
        if area < 0:
            ring = ring[::-1]
        rings.append(np.ascontiguousarray(ring))
        tags.append(building.tags)
        ids.append(building.osm_id)
    return rings, tags, ids


def _coverage_lookup(centroids: np.ndarray, areas: np.ndarray, cell: float = 40.0, radius_cells: int = 2):
    """Footprint share of the ~200 m square around a point (a cheap density map)."""
    if len(centroids) == 0:
        return lambda xy: np.zeros(len(xy))
    lo = centroids.min(axis=0) - cell * (radius_cells + 1)
    index = np.floor((centroids - lo) / cell).astype(int)
    shape = index.max(axis=0) + radius_cells + 2
    grid = np.zeros(shape)
    np.add.at(grid, (index[:, 0], index[:, 1]), np.abs(areas))
    padded = np.pad(grid, radius_cells)
    window = 2 * radius_cells + 1
    summed = np.zeros_like(grid)
    for dx in range(window):
        for dy in range(window):
            summed += padded[dx : dx + grid.shape[0], dy : dy + grid.shape[1]]
    share = summed / (window * cell) ** 2

    def lookup(xy: np.ndarray) -> np.ndarray:
        cells = np.floor((np.asarray(xy).reshape(-1, 2) - lo) / cell).astype(int)
        cells = np.clip(cells, 0, np.asarray(share.shape) - 1)
        return share[cells[:, 0], cells[:, 1]]

    return lookup


class _WallBuilder:
    """Cuts building outlines into facade edges; long city blocks become a row of distinct houses."""

    def __init__(self) -> None:
        self.rows: dict[str, list] = {
            k: [] for k in ("a", "b", "height", "roof", "gable", "u0", "style", "building")
        }
        self.styles: list[FacadeStyle] = []
        self._style_index: dict[FacadeStyle, int] = {}

    def _style_id(self, style: FacadeStyle) -> int:
        if style not in self._style_index:
            self._style_index[style] = len(self.styles)
            self.styles.append(style)
        return self._style_index[style]

    def add_building(self, index, ring, tags, osm_id, district, urban, poi_xy) -> float:
        edges_a = ring
        edges_b = np.roll(ring, -1, axis=0)
        lengths = np.hypot(*(edges_b - edges_a).T)
        perimeter = float(lengths.sum())
        area = abs(_ring_area(ring))
        explicit_height = parse_height_m(tags) is not None
        has_shop = bool(len(poi_xy)) and bool(
            (np.hypot(*(poi_xy - ring.mean(axis=0)).T) < max(8.0, np.sqrt(abs(_ring_area(ring))))).any()
        )
        # City blocks mapped as one outline: cut the perimeter into 14-24 m "houses".
        split = urban and not explicit_height and perimeter > 60.0
        piece_len = 14.0 + 10.0 * stable_unit("piece", osm_id) if split else perimeter + 1.0
        cuts = np.arange(piece_len, perimeter, piece_len)
        starts = np.concatenate([[0.0], np.cumsum(lengths)[:-1]])
        longest = float(lengths.max())
        max_height = 0.0
        for i in range(len(ring)):
            if lengths[i] < 0.05:
                continue
            a, b, s0 = edges_a[i], edges_b[i], starts[i]
            inner = cuts[(cuts > s0) & (cuts < s0 + lengths[i])]
            points = np.concatenate([[s0], inner, [s0 + lengths[i]]])
            for j in range(len(points) - 1):
                p0, p1 = points[j], points[j + 1]
                piece = int(np.floor((0.5 * (p0 + p1)) / piece_len))
                style, height = facade_style(tags, district, urban, (osm_id, piece), has_shop, area)
                t0, t1 = (p0 - s0) / lengths[i], (p1 - s0) / lengths[i]
                gable = style.pitched and lengths[i] < 0.75 * longest
                depth = min(longest, perimeter / 2 - longest) if len(ring) >= 4 else longest / 2
                roof = min(0.45 * max(depth, 2.0), 4.5) if style.pitched else 0.0
                self.rows["a"].append(a + (b - a) * t0)
                self.rows["b"].append(a + (b - a) * t1)
                self.rows["height"].append(height)
                self.rows["roof"].append(roof)
                self.rows["gable"].append(gable)
                self.rows["u0"].append(p0)
                self.rows["style"].append(self._style_id(style))
                self.rows["building"].append(index)
                max_height = max(max_height, height)
        return max_height

    def arrays(self) -> dict[str, np.ndarray]:
        r = self.rows
        return {
            "wall_a": np.asarray(r["a"], dtype=np.float64).reshape(-1, 2),
            "wall_b": np.asarray(r["b"], dtype=np.float64).reshape(-1, 2),
            "wall_height": np.asarray(r["height"], dtype=np.float64),
            "wall_roof": np.asarray(r["roof"], dtype=np.float64),
            "wall_gable": np.asarray(r["gable"], dtype=bool),
            "wall_u0": np.asarray(r["u0"], dtype=np.float64),
            "wall_style": np.asarray(r["style"], dtype=np.int32),
            "wall_building": np.asarray(r["building"], dtype=np.int32),
        }


def _sign_pois(extract: OsmExtract, origin, keep_box):
    pois = [p for p in extract.pois if p.kind not in NO_SIGN_KINDS and p.name.strip()]
    if not pois:
        return np.zeros((0, 2)), []
    east, north = extract.projection.to_utm([p.lon for p in pois], [p.lat for p in pois])
    xy = np.stack([east - origin[0], north - origin[1]], axis=1)
    keep = _in_box(xy, keep_box)
    return xy[keep], [p for p, k in zip(pois, keep, strict=True) if k]


SIGN_HEIGHT_M = 0.7
MAX_SIGN_DISTANCE_M = 25.0


def _place_signs(poi_xy: np.ndarray, pois, walls: dict[str, np.ndarray]) -> dict[str, object]:
    """Put each named shop/amenity's signboard on the facade edge nearest to it (greedy, no overlap)."""
    empty = {
        "sign_edge": np.zeros(0, np.int32),
        "sign_u": np.zeros((0, 2)),
        "sign_v": np.zeros((0, 2)),
        "sign_texture": [],
        "sign_text": [],
        "sign_kind": [],
    }
    a, b = walls["wall_a"], walls["wall_b"]
    if len(pois) == 0 or len(a) == 0:
        return empty
    e = b - a
    lengths = np.hypot(e[:, 0], e[:, 1])
    used: dict[int, list[tuple[float, float]]] = {}
    out: dict[str, list] = {k: [] for k in empty}
    order = sorted(range(len(pois)), key=lambda i: (pois[i].name, pois[i].osm_id))
    for i in order:
        p = poi_xy[i]
        t = np.clip(((p - a) * e).sum(axis=1) / np.maximum(lengths**2, 1e-9), 0.0, 1.0)
        dist = np.hypot(*(a + e * t[:, None] - p).T)
        dist = np.where(lengths >= 2.5, dist, np.inf)
        edge = int(np.argmin(dist))
        if not np.isfinite(dist[edge]) or dist[edge] > MAX_SIGN_DISTANCE_M:
            continue
        texture = shop_sign_texture(pois[i].name, pois[i].kind)
        width = min(SIGN_HEIGHT_M * texture.shape[1] / texture.shape[0], 0.9 * lengths[edge])
        centre = float(np.clip(t[edge] * lengths[edge], width / 2, lengths[edge] - width / 2))
        interval = (centre - width / 2, centre + width / 2)
        if any(interval[0] < hi and lo < interval[1] for lo, hi in used.get(edge, [])):
            continue
        used.setdefault(edge, []).append(interval)
        out["sign_edge"].append(edge)
        out["sign_u"].append(interval)
        out["sign_texture"].append(texture)
        out["sign_text"].append(pois[i].name)
        out["sign_kind"].append(pois[i].kind)
    style_floor = walls["wall_height"]  # signs sit just under the first-floor windows
    bottoms = [min(2.7, max(1.6, style_floor[e] - 1.2)) for e in out["sign_edge"]]
    return {
        "sign_edge": np.asarray(out["sign_edge"], dtype=np.int32),
        "sign_u": np.asarray(out["sign_u"], dtype=np.float64).reshape(-1, 2),
        "sign_v": np.asarray([(v, v + SIGN_HEIGHT_M) for v in bottoms], dtype=np.float64).reshape(-1, 2),
        "sign_texture": out["sign_texture"],
        "sign_text": out["sign_text"],
        "sign_kind": out["sign_kind"],
    }


def road_half_width(highway: str) -> float:
    base = highway[: -len(LINK_SUFFIX)] if highway.endswith(LINK_SUFFIX) else highway
    width = ROAD_HALF_WIDTH_M.get(base, DEFAULT_HALF_WIDTH_M)
    return width * (0.7 if highway.endswith(LINK_SUFFIX) else 1.0)


def _street_segments(extract, street_lines, origin, keep_box, coverage) -> dict[str, object]:
    names = sorted({s.name for s in extract.streets})
    name_index = {n: i for i, n in enumerate(names)}
    rows: dict[str, list] = {k: [] for k in ("a", "b", "hw", "ped", "along", "street", "highway", "way")}
    for way, (street, line) in enumerate(zip(extract.streets, street_lines, strict=True)):
        local = line - np.asarray(origin)
        if not _in_box(local, keep_box).any():
            continue
        lengths = np.hypot(*np.diff(local, axis=0).T)
        along = np.concatenate([[0.0], np.cumsum(lengths)[:-1]])
        for k in range(len(local) - 1):
            if lengths[k] < 0.01:
                continue
            rows["a"].append(local[k])
            rows["b"].append(local[k + 1])
            rows["hw"].append(road_half_width(street.highway))
            rows["ped"].append(street.highway in ("pedestrian", "footway"))
            rows["along"].append(along[k])
            rows["street"].append(name_index[street.name])
            rows["highway"].append(street.highway)
            rows["way"].append(way)
    a = np.asarray(rows["a"], dtype=np.float64).reshape(-1, 2)
    b = np.asarray(rows["b"], dtype=np.float64).reshape(-1, 2)
    urban = coverage((a + b) / 2) > URBAN_COVERAGE if len(a) else np.zeros(0, bool)
    hw = np.asarray(rows["hw"], dtype=np.float64)
    return {
        "seg_a": a,
        "seg_b": b,
        "seg_half_width": hw,
        "seg_sidewalk": np.where(urban, 3.0, np.where(hw >= 4.5, 2.0, 0.0)),
        "seg_pedestrian": np.asarray(rows["ped"], dtype=bool),
        "seg_urban": np.asarray(urban, dtype=bool),
        "seg_along0": np.asarray(rows["along"], dtype=np.float64),
        "seg_street": np.asarray(rows["street"], dtype=np.int32),
        "seg_way": np.asarray(rows["way"], dtype=np.int32),
        "street_names": names,
        "seg_highway": rows["highway"],
    }


GROUND_CELL_M = 12.0
GROUND_CANDIDATES = 6


def _ground_grid(streets: dict[str, object], coverage) -> dict[str, object]:
    """Per 12 m cell, the nearest few segments that can reach into it (road, kerb or sidewalk).

    Shading the ground then costs a dozen distance tests per pixel instead of one per street segment.
    """
    a, b = streets["seg_a"], streets["seg_b"]
    reach = streets["seg_half_width"] + streets["seg_sidewalk"] + 0.5
    if len(a) == 0:
        origin = np.zeros(2)
        return {
            "ground_origin": origin,
            "ground_cell_m": GROUND_CELL_M,
            "ground_candidates": np.full((1, 1, 1), -1, np.int32),
            "ground_urban": np.zeros((1, 1), bool),
        }
    lo = np.minimum(a.min(0), b.min(0)) - 200.0
    hi = np.maximum(a.max(0), b.max(0)) + 200.0
    shape = np.ceil((hi - lo) / GROUND_CELL_M).astype(int)
    candidates = np.full((shape[0], shape[1], GROUND_CANDIDATES), -1, dtype=np.int32)
    half_diag = GROUND_CELL_M * np.sqrt(0.5)
    e = b - a
    len2 = np.maximum((e**2).sum(1), 1e-12)
    cells: dict[tuple[int, int], list[tuple[float, int]]] = {}
    for k in range(len(a)):
        box_lo = np.floor((np.minimum(a[k], b[k]) - reach[k] - lo) / GROUND_CELL_M).astype(int)
        box_hi = np.floor((np.maximum(a[k], b[k]) + reach[k] - lo) / GROUND_CELL_M).astype(int)
        ix, iy = np.meshgrid(np.arange(box_lo[0], box_hi[0] + 1), np.arange(box_lo[1], box_hi[1] + 1))
        centres = lo + (np.stack([ix.ravel(), iy.ravel()], 1) + 0.5) * GROUND_CELL_M
        t = np.clip(((centres - a[k]) @ e[k]) / len2[k], 0, 1)
        d = np.hypot(*(a[k] + np.outer(t, e[k]) - centres).T)
        near = d - reach[k] < half_diag
        for cx, cy, dist in zip(ix.ravel()[near], iy.ravel()[near], d[near], strict=True):
            cells.setdefault((int(cx), int(cy)), []).append((float(dist - reach[k]), k))
    for (cx, cy), items in cells.items():
        items.sort()
        chosen = [k for _, k in items[:GROUND_CANDIDATES]]
        candidates[cx, cy, : len(chosen)] = chosen
    gx, gy = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
    centres = lo + (np.stack([gx.ravel(), gy.ravel()], 1) + 0.5) * GROUND_CELL_M
    urban = (coverage(centres) > URBAN_COVERAGE).reshape(shape)
    return {
        "ground_origin": lo,
        "ground_cell_m": GROUND_CELL_M,
        "ground_candidates": candidates,
        "ground_urban": urban,
    }


def _intersections(extract, street_lines, origin, keep_box) -> tuple[np.ndarray, list[tuple[str, ...]]]:
    """Points where two differently named streets share an OSM node, merged within 20 m."""
    names_at: dict[tuple[float, float], set[str]] = {}
    for street in extract.streets:
        for lon, lat in street.lonlat:
            names_at.setdefault((float(lon), float(lat)), set()).add(street.name)
    points = [(key, names) for key, names in names_at.items() if len(names) >= 2]
    if not points:
        return np.zeros((0, 2)), []
    lonlat = np.asarray([key for key, _ in points])
    xy = _to_utm(extract.projection, lonlat) - np.asarray(origin)
    clusters: list[tuple[list[np.ndarray], set[str]]] = []
    # A point joins the first cluster (in creation order) whose centre is within 20 m and that shares
    # two names with it. Only clusters whose centre lies in the point's 20 m grid cell or a neighbour
    # can be that close, so a grid of the current centres replaces a scan of all clusters (quadratic
    # on a country: 8 k junction nodes); the centres are computed as before, so the result is the same.
    cell_size = 20.0
    in_cell: dict[tuple[int, int], set[int]] = {}
    cell_of: list[tuple[int, int]] = []

    def cell(point: np.ndarray) -> tuple[int, int]:
        return int(np.floor(point[0] / cell_size)), int(np.floor(point[1] / cell_size))

    for (_key, names), p in sorted(zip(points, xy, strict=True), key=lambda item: tuple(item[1])):
        cx, cy = cell(p)
        near = sorted(
            i for dx in (-1, 0, 1) for dy in (-1, 0, 1) for i in in_cell.get((cx + dx, cy + dy), ())
        )
        for number in near:
            members, cluster_names = clusters[number]
            centre = np.mean(members, axis=0)
            if np.hypot(*(centre - p)) < 20.0 and len(cluster_names & names) >= 2:
                members.append(p)
                cluster_names |= names
                moved = cell(np.mean(members, axis=0))
                if moved != cell_of[number]:
                    in_cell[cell_of[number]].discard(number)
                    in_cell.setdefault(moved, set()).add(number)
                    cell_of[number] = moved
                break
        else:
            clusters.append(([p], set(names)))
            cell_of.append((cx, cy))
            in_cell.setdefault((cx, cy), set()).add(len(clusters) - 1)
    centres = np.asarray([np.mean(m, axis=0) for m, _ in clusters]).reshape(-1, 2)
    keep = _in_box(centres, keep_box)
    names_out = [tuple(sorted(n)) for (_m, n), k in zip(clusters, keep, strict=True) if k]
    return centres[keep], names_out


def _street_plates(intersections, streets) -> dict[str, object]:
    """One pole per intersection on a street corner, with a blade per street name (two at most).

    The pole stands where a real one would: on the sidewalk just off the carriageways, at the point
    of a ring around the intersection that is farthest from every road (i.e. in a corner).
    """
    xy, names = intersections
    plates_xy, plate_names, textures = [], [], []
    seg_a, seg_b, hw = streets["seg_a"], streets["seg_b"], streets["seg_half_width"]
    angles = np.linspace(0.0, 2 * np.pi, 32, endpoint=False)
    ring = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    e = seg_b - seg_a
    len2 = np.maximum((e**2).sum(1), 1e-9)
    for p, group in zip(xy, names, strict=True):
        if stable_unit("plate", *group) < STREET_SIGN_SKIP_CHANCE or len(seg_a) == 0:
            continue
        t = np.clip(((p - seg_a) * e).sum(1) / len2, 0, 1)
        near = np.flatnonzero(np.hypot(*(seg_a + e * t[:, None] - p).T) < 40.0)
        if len(near) == 0:
            continue
        best_point, best_margin = None, -np.inf
        for radius in (1.0, 1.6, 2.4):
            candidates = p + ring * (float(hw[near].max()) * radius + 1.5)
            rel = candidates[:, None, :] - seg_a[near][None]
            tt = np.clip((rel * e[near][None]).sum(-1) / len2[near][None], 0, 1)
            dist = np.hypot(*(rel - tt[..., None] * e[near][None]).transpose(2, 0, 1))
            margin = (dist - hw[near][None]).min(axis=1)
            k = int(np.argmax(margin))
            if margin[k] > best_margin:
                best_point, best_margin = candidates[k], float(margin[k])
            if best_margin >= 1.0:
                break
        if best_point is None or best_margin < 0.5:
            continue  # no corner off the road (e.g. a roundabout): no sign
        blades = tuple(sorted(group, key=lambda n: stable_unit("blade", n))[:2])
        plates_xy.append(best_point)
        plate_names.append(blades)
        textures.append([street_blade_texture(n) for n in blades])
    return {
        "plate_xy": np.asarray(plates_xy, dtype=np.float64).reshape(-1, 2),
        "plate_names": plate_names,
        "plate_textures": textures,
    }


def _trees(extract, origin, keep_box) -> dict[str, np.ndarray]:
    if not extract.trees:
        return {"tree_xy": np.zeros((0, 2)), "tree_height": np.zeros(0), "tree_variant": np.zeros(0, int)}
    east, north = extract.projection.to_utm([t.lon for t in extract.trees], [t.lat for t in extract.trees])
    xy = np.stack([east - origin[0], north - origin[1]], axis=1)
    xy = xy[_in_box(xy, keep_box)]
    units = np.asarray([stable_unit("tree", round(x, 1), round(y, 1)) for x, y in xy])
    return {
        "tree_xy": xy,
        "tree_height": 6.0 + 7.0 * units,
        "tree_variant": (units * 9973).astype(int) % 8,
    }
