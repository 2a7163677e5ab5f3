"""UTM zones and projections (pyproj), so that distances in the partition and labeler are metres."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
from pyproj import Transformer

_LATITUDE_BANDS = "CDEFGHJKLMNPQRSTUVWX"


def utm_zone_number(lon: float, lat: float) -> int:
    """Zone number including the Norway/Svalbard exceptions."""
    if 56.0 <= lat < 64.0 and 3.0 <= lon < 12.0:
        return 32
    if 72.0 <= lat < 84.0 and lon >= 0.0:
        for limit, zone in ((9.0, 31), (21.0, 33), (33.0, 35), (42.0, 37)):
            if lon < limit:
                return zone
    return int((lon + 180.0) // 6.0) % 60 + 1


def utm_band_letter(lat: float) -> str:
    if not -80.0 <= lat <= 84.0:
        raise ValueError(f"latitude {lat} is outside the UTM range [-80, 84]")
    return _LATITUDE_BANDS[min(int((lat + 80.0) // 8.0), len(_LATITUDE_BANDS) - 1)]


@dataclass(frozen=True)
class UtmProjection:
    """WGS84 <-> UTM for one zone (e.g. zone 35, band 'V' -> EPSG:32635)."""

    zone: int
    band: str

    @classmethod
    def for_point(cls, lon: float, lat: float) -> UtmProjection:
        return cls(utm_zone_number(lon, lat), utm_band_letter(lat))

    @property
    def north(self) -> bool:
        return self.band >= "N"

    @property
    def epsg(self) -> int:
        return (32600 if self.north else 32700) + self.zone

    @property
    def label(self) -> str:
        """The zone as written in CosPlace file names and manifests, e.g. '35V'."""
        return f"{self.zone}{self.band}"

    @cached_property
    def _forward(self) -> Transformer:
        return Transformer.from_crs("EPSG:4326", f"EPSG:{self.epsg}", always_xy=True)

    @cached_property
    def _inverse(self) -> Transformer:
        return Transformer.from_crs(f"EPSG:{self.epsg}", "EPSG:4326", always_xy=True)

    def to_utm(self, lon: np.ndarray | float, lat: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
        e, n = self._forward.transform(np.asarray(lon, dtype=float), np.asarray(lat, dtype=float))
        return np.asarray(e), np.asarray(n)

    def to_lonlat(self, e: np.ndarray | float, n: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
        lon, lat = self._inverse.transform(np.asarray(e, dtype=float), np.asarray(n, dtype=float))
        return np.asarray(lon), np.asarray(lat)
