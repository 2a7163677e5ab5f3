"""A latitude/longitude box (`--bbox S,W,N,E`) and the crop of a read OSM extract to it.

A user's extract is usually a whole region; the box says which part becomes the world. The rule,
chosen so that the world is exactly the box (no street runs kilometres beyond it because one of its
nodes happens to be inside):

- street ways are *clipped* at the box edge: a way crossing it keeps only its pieces inside, each
  ending on the edge (a way leaving and re-entering becomes two pieces with the same OSM id);
- buildings are kept when the centre of their outline is inside (a facade is never cut in half);
- shops/amenities, trees and place nodes are kept when inside;
- administrative boundary lines are clipped like streets, and the extract's bounds become the box
  (intersected with what the file covers), so the neighbourhood code closes the clipped boundaries
  against the box exactly as it closes those of an extract cut by its producer.

The box is S,W,N,E in degrees, the order of the Overpass API and of `osmium extract --bbox`'s
latitude-first cousins; `BBox.parse` refuses anything else in one line.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import shapely
from shapely.geometry import LineString

from addressclip.errors import ConfigError, InputError


@dataclass(frozen=True)
class BBox:
    """South, west, north, east in degrees (WGS84), checked on construction."""

    south: float
    west: float
    north: float
    east: float

    def __post_init__(self) -> None:
        values = (self.south, self.west, self.north, self.east)
        if not all(math.isfinite(v) for v in values):
            raise ConfigError(f"bbox: {self.text()} holds a value that is not a finite number")
        if not (-90.0 <= self.south <= 90.0 and -90.0 <= self.north <= 90.0):
            raise ConfigError(
                f"bbox: latitudes must lie in [-90, 90] (got S={self.south:g}, N={self.north:g})"
            )
        if not (-180.0 <= self.west <= 180.0 and -180.0 <= self.east <= 180.0):
            raise ConfigError(
                f"bbox: longitudes must lie in [-180, 180] (got W={self.west:g}, E={self.east:g})"
            )
        if not self.south < self.north:
            raise ConfigError(
                f"bbox: south {self.south:g} must be less than north {self.north:g} (order S,W,N,E)"
            )
        if not self.west < self.east:
            raise ConfigError(
                f"bbox: west {self.west:g} must be less than east {self.east:g} (order S,W,N,E; "
                "a box across the antimeridian is not supported)"
            )

    @classmethod
    def parse(cls, text: str, field: str = "--bbox") -> BBox:
        """'S,W,N,E' (degrees) -> BBox; ConfigError naming `field` when it is not four numbers in range."""
        parts = [p.strip() for p in str(text).split(",")]
        if len(parts) != 4:
            raise ConfigError(
                f"{field}: '{text}' must be four numbers S,W,N,E (e.g. 41.14,-8.62,41.15,-8.60)"
            )
        try:
            south, west, north, east = (float(p) for p in parts)
        except ValueError:
            raise ConfigError(
                f"{field}: '{text}' must be four numbers S,W,N,E (e.g. 41.14,-8.62,41.15,-8.60)"
            ) from None
        try:
            return cls(south, west, north, east)
        except ConfigError as error:
            raise ConfigError(f"{field}: {str(error).removeprefix('bbox: ')}") from None

    def text(self) -> str:
        return f"{self.south:g},{self.west:g},{self.north:g},{self.east:g}"

    def as_tuple(self) -> tuple[float, float, float, float]:
        """(S, W, N, E), the form stored in render parameters."""
        return (self.south, self.west, self.north, self.east)

    def bounds(self) -> tuple[float, float, float, float]:
        """(min_lon, min_lat, max_lon, max_lat), the order of `OsmExtract.bounds`."""
        return (self.west, self.south, self.east, self.north)

    def contains(self, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        lon, lat = np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)
        return (lon >= self.west) & (lon <= self.east) & (lat >= self.south) & (lat <= self.north)

    def clip_line(self, lonlat: np.ndarray) -> list[np.ndarray]:
        """The pieces of a lon/lat line inside the box (each with at least two points)."""
        inside = self.contains(lonlat[:, 0], lonlat[:, 1])
        if inside.all():
            return [lonlat]
        clipped = shapely.clip_by_rect(LineString(lonlat), *self.bounds())
        pieces = []
        for part in shapely.get_parts(clipped):
            if isinstance(part, LineString) and len(part.coords) >= 2 and part.length > 0:
                pieces.append(np.asarray(part.coords, dtype=np.float64)[:, :2])
        return pieces


def crop_extract(extract, bbox: BBox):
    """The part of an `OsmExtract` inside `bbox` (see the module docstring for the rule).

    Typed loosely on purpose: `geo.osm` calls this, so importing its classes here would be a circle.
    """
    from addressclip.geo.utm import UtmProjection

    min_lon, min_lat, max_lon, max_lat = extract.bounds
    if bbox.east < min_lon or bbox.west > max_lon or bbox.north < min_lat or bbox.south > max_lat:
        raise InputError(
            extract.path, "bbox", f"the box {bbox.text()} (S,W,N,E) lies outside the extract, which covers "
            f"lat {min_lat:.4f}..{max_lat:.4f}, lon {min_lon:.4f}..{max_lon:.4f}",
        )  # fmt: skip
    streets = [
        dataclasses.replace(way, lonlat=piece)
        for way in extract.streets
        for piece in bbox.clip_line(way.lonlat)
    ]
    if not streets:
        raise InputError(extract.path, "bbox", f"no named street lies inside the box {bbox.text()} (S,W,N,E)")
    buildings = [b for b in extract.buildings if bool(bbox.contains(*b.lonlat.mean(axis=0)))]
    pois = [p for p in extract.pois if bool(bbox.contains(p.lon, p.lat))]
    trees = [t for t in extract.trees if bool(bbox.contains(t.lon, t.lat))]
    places = [p for p in extract.places if bool(bbox.contains(p.lon, p.lat))]
    relations = []
    for relation in extract.admin_relations:
        lines = [piece for line in relation.outer_lines for piece in bbox.clip_line(line)]
        if lines:
            relations.append(dataclasses.replace(relation, outer_lines=lines))
    bounds = (
        max(min_lon, bbox.west),
        max(min_lat, bbox.south),
        min(max_lon, bbox.east),
        min(max_lat, bbox.north),
    )
    centre_lon, centre_lat = np.median(np.concatenate([s.lonlat for s in streets]), axis=0)
    return dataclasses.replace(
        extract,
        bounds=bounds,
        streets=streets,
        buildings=buildings,
        pois=pois,
        trees=trees,
        places=places,
        admin_relations=relations,
        projection=UtmProjection.for_point(float(centre_lon), float(centre_lat)),
    )
