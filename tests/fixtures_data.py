"""Tiny, real-format inputs for the data-layer tests: JPEGs with EXIF GPS, `@` names, CSV, JSON."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
from PIL import ExifTags, Image
from PIL.TiffImagePlugin import IFDRational

from addressclip.data.readers.cosplace import CosplaceName, format_cosplace_name
from addressclip.geo.utm import UtmProjection


def _dms(value: float) -> tuple[IFDRational, IFDRational, IFDRational]:
    value = abs(value)
    degrees = int(value)
    minutes = int((value - degrees) * 60)
    seconds = (value - degrees - minutes / 60) * 3600
    return IFDRational(degrees), IFDRational(minutes), IFDRational(round(seconds * 10000), 10000)


def jpeg_bytes(
    lat: float | None = None,
    lon: float | None = None,
    heading: float | None = None,
    size: tuple[int, int] = (16, 12),
    colour: tuple[int, int, int] = (90, 140, 60),
) -> bytes:
    """A small JPEG; with lat/lon it carries a standard EXIF GPS block (written by Pillow)."""
    image = Image.new("RGB", size, colour)
    exif = Image.Exif()
    if lat is not None and lon is not None:
        gps: dict[int, object] = {
            ExifTags.GPS.GPSLatitudeRef: "N" if lat >= 0 else "S",
            ExifTags.GPS.GPSLatitude: _dms(lat),
            ExifTags.GPS.GPSLongitudeRef: "E" if lon >= 0 else "W",
            ExifTags.GPS.GPSLongitude: _dms(lon),
        }
        if heading is not None:
            gps[ExifTags.GPS.GPSImgDirectionRef] = "T"
            gps[ExifTags.GPS.GPSImgDirection] = IFDRational(round(heading * 100), 100)
        exif[ExifTags.IFD.GPSInfo] = gps
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", exif=exif, quality=80)
    return buffer.getvalue()


def write_jpeg(path: Path, **kwargs: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(jpeg_bytes(**kwargs))  # type: ignore[arg-type]
    return path


def write_corrupt_jpeg(path: Path) -> Path:
    """A JPEG cut in half: the header parses, the pixel data ends early."""
    data = jpeg_bytes(60.5, 26.9, size=(64, 48))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data[: len(data) // 2])
    return path


def cosplace_name_for(
    lat: float, lon: float, pano_id: str = "", heading: float | None = None, timestamp: str = "201905"
) -> str:
    """A real-format `@` name, UTM computed from lat/lon (as the dataset tools do)."""
    projection = UtmProjection.for_point(lon, lat)
    east, north = projection.to_utm(lon, lat)
    fields = CosplaceName(
        utm_east=round(float(east), 2),
        utm_north=round(float(north), 2),
        zone_number=projection.zone,
        zone_letter=projection.band,
        lat=round(lat, 5),
        lon=round(lon, 5),
        pano_id=pano_id,
        heading=heading,
        timestamp=timestamp,
    )
    return format_cosplace_name(fields)


def manifest_frame(image_root: Path | None = None) -> pd.DataFrame:
    """A small valid manifest frame (8 images, 4 locations, 2 addresses) near Karhula."""
    projection = UtmProjection.for_point(26.95, 60.53)
    rows = []
    for i in range(8):
        location = i // 2
        lat, lon = 60.530 + 0.001 * location, 26.950 + 0.001 * location
        east, north = projection.to_utm(lon, lat)
        address = "Kauppakatu & Keskuskatu, Karhula" if location % 2 == 0 else "Mäkitie & Puistotie, Karhula"
        rows.append(
            {
                "path": f"img/{i:03d}.jpg",
                "lat": lat,
                "lon": lon,
                "utm_e": float(east),
                "utm_n": float(north),
                "utm_zone": projection.label,
                "heading": float(90 * (i % 2)) if i != 7 else None,
                "location_id": f"L{location}",
                "address_id": f"a{location % 2}",
                "address": address,
                "street_id": f"s{location % 2}",
                "street": address.split(" & ")[0] + ", Karhula",
                "neighbourhood": "Karhula" if i != 6 else None,
                "caption": "A street view of a road" if i % 3 else None,
                "split": ["train", "train", "val", "test"][location],
            }
        )
    frame = pd.DataFrame(rows)
    if image_root is not None:
        for relative in frame["path"]:
            write_jpeg(image_root / relative)
    return frame
