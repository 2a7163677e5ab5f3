"""The AddressBook: every sub-street of a city as one address class, with its geometry and names.

Built from an OSM extract by `geo.partition` (the cutting rules) and `geo.neighbourhoods` (the
neighbourhood rule); this module names the sub-streets, labels GPS points, merges sparse classes and
saves/loads the book.

Naming:
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
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import pandas as pd
import shapely
from shapely.geometry import LineString, MultiLineString
from shapely.geometry.base import BaseGeometry

from addressclip.atomic import atomic_path
from addressclip.errors import ConfigError, InputError
from addressclip.geo.labeler import LabelResult, SegmentGrid, label_points
from addressclip.geo.neighbourhoods import NeighbourhoodMap
from addressclip.geo.osm import DEFAULT_HIGHWAY_CLASSES, OsmExtract, read_osm
from addressclip.geo.partition import SubStreet, partition_streets
from addressclip.geo.utm import UtmProjection

SCHEMA_VERSION = 1
TABLE_FILE = "addressbook.parquet"
META_KEY = b"addressclip.addressbook"
TABLE_COLUMNS: tuple[str, ...] = (
    "address_id", "address", "street_id", "street", "street_name", "neighbourhood", "cross_streets",
    "length_m", "geometry", "component_id", "end_streets",
)  # fmt: skip
_TOUCH_M = 1.0  # sub-streets of one street closer than this share an end (merge_sparse)


@dataclass(frozen=True)
class PartitionConfig:
    """How streets are cut into address classes (see `geo.partition` for the rules).

    `min_gap_m` = 35: junctions closer than this to the previous cut are dropped, which keeps the two
    crossings of a dual-carriageway cross street (15–30 m apart in Helsinki) and offset T-junctions
    from making sub-streets shorter than a building front, while a normal city block (60–150 m) stays
    its own address. `pedestrian` and `service` stay in the default highway classes: only *named*
    ways count, and named ones are pedestrian streets and squares that people use as addresses
    (Aleksanterinkatu, Kluuvikatu, Elielinaukio); unnamed driveways and parking aisles drop out.
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


def _short_hash(text: str | bytes, length: int = 12) -> str:
    data = text.encode("utf-8") if isinstance(text, str) else text
    return hashlib.sha1(data).hexdigest()[:length]


def _address_id(street_name: str, geometry: BaseGeometry) -> str:
    rounded = shapely.normalize(shapely.transform(geometry, lambda c: np.round(c, 1)))
    return "a" + _short_hash(street_name.encode("utf-8") + b"|" + shapely.to_wkb(rounded))


def _street_id(street: str) -> str:
    return "s" + _short_hash(street)


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


def _name_substreets(
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
        columns["address_id"].append(_address_id(sub.street_name, sub.geometry))
        columns["street_id"].append(_street_id(street))
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
    for row, address_id in enumerate(columns["address_id"]):  # identical geometry twice: keep ids unique
        ids[address_id] += 1
        if ids[address_id] > 1:
            columns["address_id"][row] = f"{address_id}-{ids[address_id]}"
    frame = pd.DataFrame(columns)
    order = np.lexsort((frame["address_id"].to_numpy(), frame["address"].to_numpy()))
    return frame.iloc[order].reset_index(drop=True), order.astype(np.int64)


def _table_substreets(table: pd.DataFrame) -> list[SubStreet]:
    return [
        SubStreet(row.street_name, row.component_id, row.geometry, tuple(row.end_streets))
        for row in table.itertuples(index=False)
    ]


class AddressBook:
    """Sub-street address classes of one OSM extract, with a GPS labeler (see module docstring)."""

    def __init__(
        self,
        table: pd.DataFrame,
        projection: UtmProjection,
        bounds: tuple[float, float, float, float],
        config: PartitionConfig,
        neighbourhoods: NeighbourhoodMap,
        cross_rank: dict[str, Sequence],
        source: str = "",
    ) -> None:
        self.table = table
        self.projection = projection
        self.bounds = tuple(float(v) for v in bounds)
        self.config = config
        self.neighbourhoods = neighbourhoods
        self.cross_rank = {k: tuple(v) for k, v in cross_rank.items()}
        self.source = source
        self._grids: dict[float, SegmentGrid] = {}

    def __len__(self) -> int:
        return len(self.table)

    def __repr__(self) -> str:
        streets = self.table["street"].nunique()
        return f"AddressBook({len(self)} sub-streets, {streets} streets, {self.projection.label})"

    # ---- building -------------------------------------------------------------------------------
    @classmethod
    def from_osm(
        cls, path_or_extract: str | Path | OsmExtract, config: PartitionConfig | None = None
    ) -> AddressBook:
        """Partition an OSM extract (a path to .osm.pbf, or an already read `OsmExtract`)."""
        config = config or PartitionConfig()
        if isinstance(path_or_extract, OsmExtract):
            extract = path_or_extract
        else:
            extract = read_osm(path_or_extract, config.highway_classes)
        classes = set(config.highway_classes)
        streets = [s for s in extract.streets if s.highway in classes]
        if not streets:
            raise InputError(
                extract.path, "highway", f"no named streets of classes {', '.join(config.highway_classes)}"
            )
        substreets, cross_rank = partition_streets(
            streets, extract.projection, config.min_gap_m, config.street_split_m, config.carriageway_snap_m
        )
        neighbourhoods = NeighbourhoodMap.from_extract(extract, config.neighbourhood_source)
        table, _ = _name_substreets(substreets, neighbourhoods, cross_rank, config.max_cross_streets)
        return cls(
            table, extract.projection, extract.bounds, config, neighbourhoods, cross_rank, str(extract.path)
        )

    # ---- labelling ------------------------------------------------------------------------------
    def _grid(self, max_dist_m: float) -> SegmentGrid:
        key = float(max_dist_m)
        if key not in self._grids:
            self._grids[key] = SegmentGrid(list(self.table["geometry"]), key)
        return self._grids[key]

    def label(self, lat: np.ndarray, lon: np.ndarray, max_dist_m: float = 30.0) -> LabelResult:
        """Nearest sub-street (table row) within max_dist_m of each GPS point.

        Points outside the extract's bounds (or with NaN coordinates) get reason 'outside_extract';
        points farther than max_dist_m from every sub-street get 'too_far'; both get index -1 and a
        NaN distance.
        """
        if not max_dist_m > 0:
            raise ConfigError(f"label: max_dist_m must be positive, not {max_dist_m!r}")
        lat = np.asarray(lat, dtype=np.float64).ravel()
        lon = np.asarray(lon, dtype=np.float64).ravel()
        if lat.shape != lon.shape:
            raise ValueError(f"lat and lon differ in length ({len(lat)} != {len(lon)})")
        min_lon, min_lat, max_lon, max_lat = self.bounds
        min_lon, min_lat, max_lon, max_lat = min_lon - 1e-7, min_lat - 1e-7, max_lon + 1e-7, max_lat + 1e-7
        with np.errstate(invalid="ignore"):
            inside = (lon >= min_lon) & (lon <= max_lon) & (lat >= min_lat) & (lat <= max_lat)
        x = np.full(len(lat), np.nan)
        y = np.full(len(lat), np.nan)
        if inside.any():
            x[inside], y[inside] = self.projection.to_utm(lon[inside], lat[inside])
        return label_points(self._grid(max_dist_m), x, y, inside)

    # ---- merging sparse classes ------------------------------------------------------------------
    def merge_sparse(
        self, index: np.ndarray, location_id: np.ndarray, min_points: int = 5
    ) -> tuple[AddressBook, np.ndarray]:
        """Merge sub-streets with fewer than `min_points` distinct capture locations into a neighbour.

        The neighbour is a sub-street of the same street (same name, same connected piece) sharing an
        end with it (if none does, the nearest one of that street); among several, one in the same
        neighbourhood, then the one with fewest locations, then the shorter, then the smaller id. The
        sparsest sub-street is merged first, and merging repeats until every sub-street has min_points
        locations or is the last piece of its street. An image with a missing location id counts as a
        location of its own.
        The merged sub-street is named from its outer cross streets. Returns the new book and `index`
        remapped to its rows (-1 stays -1).
        """
        index = np.asarray(index, dtype=np.int64).ravel()
        location_id = np.asarray(location_id).ravel()
        if len(index) != len(location_id):
            raise ValueError(f"index and location_id differ in length ({len(index)} != {len(location_id)})")
        if len(index) and (index.max() >= len(self) or index.min() < -1):
            raise ValueError(f"index holds rows outside 0..{len(self) - 1} (or below -1)")
        codes, _ = pd.factorize(pd.Series(location_id, dtype=object))
        missing = codes < 0  # no location id: each such image counts as its own location
        codes[missing] = codes.max(initial=-1) + 1 + np.arange(int(missing.sum()))
        groups = _SparseMerger(self.table, index, codes)
        groups.run(min_points)
        substreets, old_to_group = groups.result()
        table, source_of_row = _name_substreets(
            substreets, self.neighbourhoods, self.cross_rank, self.config.max_cross_streets
        )
        row_of_group = {int(g): row for row, g in enumerate(source_of_row)}
        mapping = np.array([row_of_group[old_to_group[r]] for r in range(len(self))], dtype=np.int64)
        remapped = np.where(index >= 0, mapping[np.maximum(index, 0)] if len(mapping) else -1, -1)
        book = AddressBook(
            table,
            self.projection,
            self.bounds,
            self.config,
            self.neighbourhoods,
            self.cross_rank,
            self.source,
        )
        return book, remapped.astype(np.int64)

    # ---- save / load ----------------------------------------------------------------------------
    def _metadata(self) -> dict:
        return {
            "schema_version": SCHEMA_VERSION,
            "projection": {"zone": self.projection.zone, "band": self.projection.band},
            "bounds": list(self.bounds),
            "config": self.config.to_dict(),
            "neighbourhoods": self.neighbourhoods.to_records(),
            "cross_rank": {k: list(v) for k, v in self.cross_rank.items()},
            "source": self.source,
        }

    def save(self, folder: str | Path) -> Path:
        """Write `folder/addressbook.parquet` (GeoParquet 1.0, WKB in UTM) atomically; return its path."""
        import pyarrow as pa
        import pyarrow.parquet as pq
        from pyproj import CRS

        target = Path(folder) / TABLE_FILE
        frame = self.table.copy()
        frame["geometry"] = shapely.to_wkb(np.asarray(frame["geometry"], dtype=object))
        table = pa.Table.from_pandas(frame, preserve_index=False)
        geo = {
            "version": "1.0.0",
            "primary_column": "geometry",
            "columns": {
                "geometry": {
                    "encoding": "WKB",
                    "geometry_types": sorted({g.geom_type for g in self.table["geometry"]}),
                    "crs": CRS.from_epsg(self.projection.epsg).to_json_dict(),
                }
            },
        }
        metadata = dict(table.schema.metadata or {})
        metadata[b"geo"] = json.dumps(geo).encode("utf-8")
        metadata[META_KEY] = json.dumps(self._metadata(), ensure_ascii=False).encode("utf-8")
        table = table.replace_schema_metadata(metadata)
        with atomic_path(target) as tmp:
            pq.write_table(table, tmp)
        return target

    @classmethod
    def load(cls, folder: str | Path) -> AddressBook:
        """Read a book written by `save` (give its folder or the parquet file)."""
        import pyarrow.parquet as pq

        path = Path(folder)
        if path.is_dir():
            path = path / TABLE_FILE
        if not path.is_file():
            raise InputError(path, None, "AddressBook not found (build one with `addressclip addressbook`)")
        try:
            table = pq.read_table(path)
        except Exception as error:  # pyarrow raises several types for a damaged file
            raise InputError(path, None, f"cannot read the AddressBook parquet ({error})") from None
        raw = (table.schema.metadata or {}).get(META_KEY)
        if raw is None:
            raise InputError(path, META_KEY.decode(), "missing key-value metadata: not an AddressBook file")
        meta = json.loads(raw)
        if meta.get("schema_version") != SCHEMA_VERSION:
            raise InputError(
                path, "schema_version", f"is {meta.get('schema_version')!r}, expected {SCHEMA_VERSION}"
            )
        missing = [c for c in TABLE_COLUMNS if c not in table.column_names]
        if missing:
            raise InputError(path, missing[0], "column missing")
        frame = table.to_pandas()
        frame["geometry"] = list(shapely.from_wkb(np.asarray(frame["geometry"], dtype=object)))
        for column in ("cross_streets", "end_streets"):
            frame[column] = [list(v) for v in frame[column]]
        frame = frame[list(TABLE_COLUMNS)]
        projection = UtmProjection(int(meta["projection"]["zone"]), str(meta["projection"]["band"]))
        return cls(
            frame,
            projection,
            tuple(meta["bounds"]),
            PartitionConfig.from_dict(meta["config"]),
            NeighbourhoodMap.from_records(meta["neighbourhoods"]),
            meta["cross_rank"],
            meta.get("source", ""),
        )

    # ---- reporting ------------------------------------------------------------------------------
    def summary(self, index: np.ndarray | None = None) -> dict:
        """Counts for a report: streets, sub-streets, lengths, and images per address if `index` given."""
        table = self.table
        lengths = table["length_m"].to_numpy(dtype=float)
        crosses = table["cross_streets"].map(len).value_counts().to_dict()
        result: dict = {
            "projection": self.projection.label,
            "sub_streets": len(table),
            "streets": int(table["street"].nunique()),
            "street_names": int(table["street_name"].nunique()),
            "neighbourhoods": {
                str(k): int(v) for k, v in table["neighbourhood"].value_counts().sort_index().items()
            },
            "cross_streets": {str(k): int(crosses.get(k, 0)) for k in (0, 1, 2)},
            "qualified_duplicates": int(
                table["address"].str.contains(r" \((?:\d+|north|south|east|west)\)").sum()
            ),
            "length_m": _stats(lengths) | {"total": round(float(lengths.sum()), 1)},
        }
        if index is not None:
            index = np.asarray(index, dtype=np.int64).ravel()
            labelled = index[index >= 0]
            per_address = np.bincount(labelled, minlength=len(table)) if len(table) else np.zeros(0)
            result["images"] = len(index)
            result["labelled"] = len(labelled)
            result["images_per_address"] = _stats(per_address)
            result["addresses_without_images"] = int(np.count_nonzero(per_address == 0))
        return result

    def plot(
        self, path: str | Path, lat: np.ndarray | None = None, lon: np.ndarray | None = None, **kwargs
    ) -> Path:
        """Write the map PNG (see `geo.plot.plot_addressbook`)."""
        from addressclip.geo.plot import plot_addressbook

        return plot_addressbook(self, path, lat=lat, lon=lon, **kwargs)


def _stats(values: np.ndarray) -> dict:
    if len(values) == 0:
        return {"min": 0.0, "median": 0.0, "max": 0.0}
    return {
        "min": round(float(np.min(values)), 1),
        "median": round(float(np.median(values)), 1),
        "max": round(float(np.max(values)), 1),
    }


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
    """The merge loop of `AddressBook.merge_sparse`, over groups of original rows."""

    def __init__(self, table: pd.DataFrame, index: np.ndarray, codes: np.ndarray) -> None:
        self.groups: dict[int, _Group] = {}
        for row, record in enumerate(table.itertuples(index=False)):
            self.groups[row] = _Group(
                record.street_name, record.component_id, record.geometry, tuple(record.end_streets),
                record.neighbourhood, address_id=record.address_id,
            )  # fmt: skip
        valid = index >= 0
        for row, code in zip(index[valid].tolist(), codes[valid].tolist(), strict=True):
            self.groups[row].locations.add(code)
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
        a.address_id = _address_id(a.street_name, geometry)
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
