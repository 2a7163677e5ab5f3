"""The AddressBook: every sub-street of a city as one address class, with its geometry and names.

This module is the facade other packages use, plus the book's file format. The work lives in modules
with one job each:

- `geo.partition`: the cutting rules (`PartitionConfig`, `partition_streets`);
- `geo.neighbourhoods`: which neighbourhood a point lies in;
- `geo.naming`: address text and stable ids of each sub-street;
- `geo.labeler`: GPS point -> nearest sub-street;
- `geo.merge`: merging sub-streets with too few capture locations;
- `geo.summary`: counts for reports.

File: `addressbook.parquet`, GeoParquet 1.0 (WKB geometry in UTM metres) with the projection, bounds,
partition config, neighbourhood polygons and cross-street ranking in the key-value metadata.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import shapely

from addressclip.atomic import atomic_path
from addressclip.errors import ConfigError, InputError
from addressclip.geo.labeler import LabelResult, SegmentGrid, label_points
from addressclip.geo.merge import merge_sparse
from addressclip.geo.naming import TABLE_COLUMNS, name_substreets
from addressclip.geo.neighbourhoods import NeighbourhoodMap
from addressclip.geo.osm import OsmExtract, read_osm
from addressclip.geo.partition import PartitionConfig, partition_streets
from addressclip.geo.summary import book_summary
from addressclip.geo.utm import UtmProjection

__all__ = ["META_KEY", "SCHEMA_VERSION", "TABLE_COLUMNS", "TABLE_FILE", "AddressBook", "PartitionConfig"]

SCHEMA_VERSION = 1
TABLE_FILE = "addressbook.parquet"
META_KEY = b"addressclip.addressbook"


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
        substreets, cross_rank = partition_streets(streets, extract.projection, config)
        neighbourhoods = NeighbourhoodMap.from_extract(extract, config.neighbourhood_source)
        table, _ = name_substreets(substreets, neighbourhoods, cross_rank, config.max_cross_streets)
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

        The rule is in `geo.merge`. Returns the new book and `index` remapped to its rows (-1 stays -1).
        """
        table, remapped = merge_sparse(
            self.table, index, location_id, min_points,
            self.neighbourhoods, self.cross_rank, self.config.max_cross_streets,
        )  # fmt: skip
        book = AddressBook(
            table,
            self.projection,
            self.bounds,
            self.config,
            self.neighbourhoods,
            self.cross_rank,
            self.source,
        )
        return book, remapped

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
        return book_summary(self.table, self.projection.label, index)

    def plot(
        self, path: str | Path, lat: np.ndarray | None = None, lon: np.ndarray | None = None, **kwargs
    ) -> Path:
        """Write the map PNG (see `geo.plot.plot_addressbook`)."""
        from addressclip.geo.plot import plot_addressbook

        return plot_addressbook(self, path, lat=lat, lon=lon, **kwargs)
