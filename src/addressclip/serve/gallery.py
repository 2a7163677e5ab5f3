"""The address gallery: the candidate addresses a photo is matched against, with their geometry.

One row per candidate address (`GALLERY_COLUMNS`): its id and text, street and neighbourhood, whether
the model saw it in training (the manifest's train split), and its sub-street geometry in UTM metres
when an AddressBook knows it. The estimated GPS point of an address is the sub-street's midpoint
(interpolated at half its length, so it lies on the street), given as lat/lon.

Candidates come from the training manifest (the addresses the model was trained and validated on),
from a whole AddressBook (every sub-street of the city, most never seen in training: the open set),
or are added one by one as text (`extend`). Their text embeddings are computed once and cached on
disk (`embedding_cache`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import shapely
from shapely.geometry.base import BaseGeometry

from addressclip.errors import AddressclipError, InputError
from addressclip.geo.utm import UtmProjection

GALLERY_COLUMNS: tuple[str, ...] = (
    "address_id", "address", "street_id", "street", "neighbourhood", "seen_in_training", "geometry",
)  # fmt: skip
COORD_DECIMALS = 6  # ~0.1 m: enough for a street map, keeps the JSON small


def midpoint(geometry: BaseGeometry | None) -> tuple[float, float] | None:
    """A point on the sub-street at half its length (UTM); for pieces, the middle of the longest one."""
    if geometry is None or geometry.is_empty:
        return None
    parts = list(shapely.get_parts(geometry))
    if len(parts) > 1:
        merged = shapely.line_merge(geometry)
        parts = list(shapely.get_parts(merged))
    line = max(parts, key=lambda part: part.length)
    point = line.interpolate(0.5, normalized=True)
    return float(point.x), float(point.y)


def geometry_lonlat(geometry: BaseGeometry, projection: UtmProjection) -> dict[str, Any]:
    """GeoJSON geometry (WGS84 lon/lat, RFC 7946 axis order) of a UTM line or multi-line."""

    def convert(coords: np.ndarray) -> np.ndarray:
        lon, lat = projection.to_lonlat(coords[:, 0], coords[:, 1])
        return np.round(np.column_stack([lon, lat]), COORD_DECIMALS)

    lonlat = shapely.transform(geometry, convert)
    return shapely.geometry.mapping(lonlat) | {}


def _as_list(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _as_list(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_as_list(v) for v in value]
    return value


def text_or_none(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    text = str(value)
    return text or None


@dataclass
class AddressGallery:
    """Candidate addresses (table) + their projection; lat/lon points and GeoJSON derived lazily."""

    table: pd.DataFrame
    projection: UtmProjection | None
    _points: np.ndarray | None = field(default=None, repr=False)
    _features: dict[int, dict[str, Any]] = field(default_factory=dict, repr=False)
    _records: list[dict[str, Any]] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        missing = [c for c in GALLERY_COLUMNS if c not in self.table.columns]
        if missing:
            raise AddressclipError(f"address gallery lacks column(s) {', '.join(missing)}")
        self.table = self.table[list(GALLERY_COLUMNS)].reset_index(drop=True)
        duplicated = self.table["address"].duplicated()
        if duplicated.any():
            raise AddressclipError(
                f"address gallery repeats address {self.table['address'][duplicated].iloc[0]!r}"
            )
        self._row_of_id = {aid: row for row, aid in enumerate(self.table["address_id"])}

    def __len__(self) -> int:
        return len(self.table)

    @property
    def addresses(self) -> list[str]:
        return list(self.table["address"])

    def row_of(self, address_id: str) -> int | None:
        return self._row_of_id.get(address_id)

    # ---- derived geography ------------------------------------------------------------------
    def points(self) -> np.ndarray:
        """(N, 2) lat, lon of each address's estimated point (NaN without geometry)."""
        if self._points is None or len(self._points) != len(self):
            utm = np.full((len(self), 2), np.nan)
            for row, geometry in enumerate(self.table["geometry"]):
                mid = midpoint(geometry)
                if mid is not None:
                    utm[row] = mid
            points = np.full((len(self), 2), np.nan)
            known = ~np.isnan(utm[:, 0])
            if known.any() and self.projection is not None:
                lon, lat = self.projection.to_lonlat(utm[known, 0], utm[known, 1])
                points[known, 0], points[known, 1] = lat, lon
            self._points = points
        return self._points

    def geojson(self, row: int) -> dict[str, Any] | None:
        """GeoJSON geometry (lon/lat) of row `row`, or None when the address has no geometry."""
        if row not in self._features:
            geometry = self.table["geometry"].iloc[row]
            if geometry is None or self.projection is None or geometry.is_empty:
                return None
            self._features[row] = _as_list(geometry_lonlat(geometry, self.projection))
        return self._features[row]

    def _all_records(self) -> list[dict[str, Any]]:
        """Every row as plain values, built once: per-prediction lookups must not go through pandas."""
        if self._records is None or len(self._records) != len(self):
            points = self.points()
            records = []
            columns = ("address_id", "address", "street_id", "street", "neighbourhood", "seen_in_training")
            for row, values in enumerate(self.table[list(columns)].itertuples(index=False, name=None)):
                aid, address, street_id, street, neighbourhood, seen = values
                lat, lon = points[row]
                records.append(
                    {
                        "address_id": str(aid),
                        "address": str(address),
                        "street_id": text_or_none(street_id),
                        "street": text_or_none(street),
                        "neighbourhood": text_or_none(neighbourhood),
                        "seen_in_training": bool(seen),
                        "lat": None if np.isnan(lat) else round(float(lat), COORD_DECIMALS),
                        "lon": None if np.isnan(lon) else round(float(lon), COORD_DECIMALS),
                    }
                )
            self._records = records
        return self._records

    def record(self, row: int, with_geometry: bool = False) -> dict[str, Any]:
        """One address as plain JSON-able values (a fresh dict the caller may change)."""
        record = dict(self._all_records()[row])
        if with_geometry:
            record["geometry"] = self.geojson(row)
        return record

    # ---- identity for caches -----------------------------------------------------------------
    def content_key(self) -> str:
        """SHA-256 over what decides the embeddings and the answers: ids, texts and geometry."""
        digest = hashlib.sha256()
        for aid, text, geometry in zip(
            self.table["address_id"], self.table["address"], self.table["geometry"], strict=True
        ):
            digest.update(str(aid).encode() + b"\x00" + str(text).encode() + b"\x00")
            if geometry is not None:
                rounded = shapely.transform(geometry, lambda c: np.round(c, 2))
                digest.update(shapely.to_wkb(rounded))
            digest.update(b"\x01")
        if self.projection is not None:
            digest.update(self.projection.label.encode())
        return digest.hexdigest()

    # ---- growing ------------------------------------------------------------------------------
    def extend(self, entries: Sequence[str | Mapping[str, Any]]) -> AddressGallery:
        """A gallery with `entries` appended (never seen in training); existing addresses are skipped.

        An entry is an address string, or a mapping with 'address' and optionally 'address_id',
        'street', 'street_id', 'neighbourhood' and 'geometry' (a shapely line in this gallery's UTM
        metres, or a GeoJSON LineString/MultiLineString dict in lon/lat).
        """
        known = set(self.table["address"])
        rows = []
        for position, entry in enumerate(entries):
            row = _entry_row(entry, position, self.projection)
            if row["address"] in known:
                continue
            known.add(row["address"])
            rows.append(row)
        if not rows:
            return self
        added = pd.DataFrame(rows, columns=list(GALLERY_COLUMNS))
        ids = set(self.table["address_id"])
        clash = [aid for aid in added["address_id"] if aid in ids]
        if clash:
            raise InputError("add_addresses", "address_id", f"{clash[0]!r} is already in the gallery")
        table = pd.concat([self.table, added], ignore_index=True) if len(self.table) else added
        return AddressGallery(table, self.projection)


def _added_id(address: str) -> str:
    return "u" + hashlib.sha1(address.encode("utf-8")).hexdigest()[:12]


def _entry_row(
    entry: str | Mapping[str, Any], position: int, projection: UtmProjection | None
) -> dict[str, Any]:
    where = f"add_addresses[{position}]"
    if isinstance(entry, str):
        entry = {"address": entry}
    if not isinstance(entry, Mapping):
        raise InputError(where, None, f"expected an address string or a mapping, not {type(entry).__name__}")
    address = str(entry.get("address") or "").strip()
    if not address:
        raise InputError(where, "address", "empty address")
    unknown = set(entry) - {"address", "address_id", "street", "street_id", "neighbourhood", "geometry"}
    if unknown:
        raise InputError(where, sorted(unknown)[0], "unknown key")
    geometry = entry.get("geometry")
    if isinstance(geometry, Mapping):
        geometry = _from_geojson(geometry, projection, where)
    elif geometry is not None and not isinstance(geometry, BaseGeometry):
        raise InputError(where, "geometry", "expected a shapely geometry (UTM) or a GeoJSON dict (lon/lat)")
    return {
        "address_id": str(entry.get("address_id") or _added_id(address)),
        "address": address,
        "street_id": text_or_none(entry.get("street_id")),
        "street": text_or_none(entry.get("street")),
        "neighbourhood": text_or_none(entry.get("neighbourhood")),
        "seen_in_training": False,
        "geometry": geometry,
    }


def _from_geojson(geojson: Mapping[str, Any], projection: UtmProjection | None, where: str) -> BaseGeometry:
    if projection is None:
        raise InputError(
            where, "geometry", "this gallery has no AddressBook projection to place a GeoJSON line"
        )
    try:
        geometry = shapely.geometry.shape(geojson)
    except (ValueError, TypeError, KeyError, AttributeError) as error:
        raise InputError(where, "geometry", f"not a GeoJSON geometry ({error})") from None
    if geometry.geom_type not in ("LineString", "MultiLineString"):
        raise InputError(
            where, "geometry", f"expected a LineString or MultiLineString, not {geometry.geom_type}"
        )

    def convert(coords: np.ndarray) -> np.ndarray:
        east, north = projection.to_utm(coords[:, 0], coords[:, 1])
        return np.column_stack([east, north])

    return shapely.transform(geometry, convert)


def empty_table() -> pd.DataFrame:
    return pd.DataFrame({column: pd.Series(dtype=object) for column in GALLERY_COLUMNS})
