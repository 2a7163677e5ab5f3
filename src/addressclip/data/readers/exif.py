"""GPS position and heading from the EXIF GPS block of JPEGs (phone and action-camera photos).

Pillow reads the GPS IFD without decoding the pixels; by default each file is also decoded at a
reduced size (JPEG draft mode, cheap) so that a truncated or corrupt JPEG becomes a counted skip
here rather than a crash in the middle of training.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PIL import ExifTags, Image, UnidentifiedImageError
from tqdm import tqdm

from addressclip.data.readers.base import (
    PATHS_LIST_OPTION,
    ReaderSpec,
    ReadReport,
    ReadResult,
    gps_location_id,
    list_jpegs,
    make_image_table,
    read_paths_list,
    require_folder,
)


class ExifGpsError(ValueError):
    """The file has no usable EXIF GPS position; `kind`/`field` say what is wrong."""

    def __init__(self, kind: str, field: str, problem: str) -> None:
        super().__init__(problem)
        self.kind = kind
        self.field = field
        self.problem = problem


@dataclass(frozen=True)
class ExifGps:
    lat: float
    lon: float
    heading: float | None  # GPSImgDirection, degrees clockwise from (true or magnetic) north


def _degrees(value: object, field: str) -> float:
    """Degrees from an EXIF (deg, min, sec) triple of rationals (or a single number)."""
    try:
        parts = [float(v) for v in value] if isinstance(value, (tuple, list)) else [float(value)]
    except (TypeError, ValueError, ZeroDivisionError):
        raise ExifGpsError("bad_exif_gps", field, f"cannot read {value!r} as degrees") from None
    if not 1 <= len(parts) <= 3 or any(p != p for p in parts):
        raise ExifGpsError("bad_exif_gps", field, f"cannot read {value!r} as degrees")
    scale = (1.0, 60.0, 3600.0)
    return sum(p / s for p, s in zip(parts, scale, strict=False))


def _signed(gps: dict[int, object], value_tag: int, ref_tag: int, name: str, negative: str) -> float:
    if value_tag not in gps:
        raise ExifGpsError("no_exif_gps", name, "no EXIF GPS position")
    degrees = _degrees(gps[value_tag], name)
    ref = gps.get(ref_tag, "")
    ref_text = ref.decode("ascii", "replace") if isinstance(ref, bytes) else str(ref)
    return -degrees if ref_text.strip().upper().startswith(negative) else degrees


def gps_from_image(image: Image.Image) -> ExifGps:
    """GPS from an opened image's EXIF; raises ExifGpsError when absent or unreadable."""
    gps = image.getexif().get_ifd(ExifTags.IFD.GPSInfo)
    if not gps:
        raise ExifGpsError("no_exif_gps", "GPSInfo", "no EXIF GPS block")
    lat = _signed(gps, ExifTags.GPS.GPSLatitude, ExifTags.GPS.GPSLatitudeRef, "GPSLatitude", "S")
    lon = _signed(gps, ExifTags.GPS.GPSLongitude, ExifTags.GPS.GPSLongitudeRef, "GPSLongitude", "W")
    if not -90.0 <= lat <= 90.0:
        raise ExifGpsError("bad_exif_gps", "GPSLatitude", f"{lat} is outside [-90, 90]")
    if not -180.0 <= lon <= 180.0:
        raise ExifGpsError("bad_exif_gps", "GPSLongitude", f"{lon} is outside [-180, 180]")
    heading = None
    if ExifTags.GPS.GPSImgDirection in gps:
        try:
            heading = float(gps[ExifTags.GPS.GPSImgDirection]) % 360.0
        except (TypeError, ValueError, ZeroDivisionError):
            heading = None
    return ExifGps(lat, lon, heading)


def read_exif_gps(path: str | Path, verify_pixels: bool = True) -> ExifGps:
    """GPS of one JPEG. Raises ExifGpsError (kind 'corrupt_jpeg', 'no_exif_gps' or 'bad_exif_gps')."""
    try:
        with Image.open(path) as image:
            if image.format != "JPEG":
                raise ExifGpsError("corrupt_jpeg", "file", f"not a JPEG (Pillow reads it as {image.format})")
            gps = gps_from_image(image)
            if verify_pixels:
                image.draft("RGB", (max(1, image.width // 8), max(1, image.height // 8)))
                image.load()
    except ExifGpsError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as error:
        raise ExifGpsError("corrupt_jpeg", "file", f"cannot read JPEG ({error})") from None
    return gps


def read_exif(
    images_dir: str | Path,
    paths_list: str | Path | None = None,
    *,
    strict: bool = False,
    verify_pixels: bool = True,
    progress: bool = True,
) -> ReadResult:
    """Image table from the EXIF GPS of every JPEG under `images_dir` (or those in `paths_list`).

    location_id is the GPS rounded to about a metre, so photos taken at one spot share it.
    """
    image_root = require_folder(Path(images_dir))
    report = ReadReport("exif", strict=strict)
    relatives = (
        read_paths_list(Path(paths_list), image_root, report)
        if paths_list is not None
        else list_jpegs(image_root)
    )
    records: list[dict[str, object]] = []
    for relative in tqdm(relatives, desc="reading EXIF GPS", unit="img", disable=None if progress else True):
        report.seen += 1
        full = image_root / relative
        if not full.is_file():
            report.skip(full, "path", "file_not_found", "file not found")
            continue
        try:
            gps = read_exif_gps(full, verify_pixels=verify_pixels)
        except ExifGpsError as error:
            report.skip(full, error.field, error.kind, error.problem)
            continue
        records.append(
            {
                "path": relative,
                "lat": gps.lat,
                "lon": gps.lon,
                "heading": gps.heading,
                "caption": None,
                "location_id": gps_location_id(gps.lat, gps.lon),
            }
        )
    report.kept = len(records)
    return ReadResult(make_image_table(records), report)


def _read(images: Path, *, paths_list: Path | None, strict: bool, progress: bool) -> ReadResult:
    return read_exif(images, paths_list, strict=strict, progress=progress)


READER = ReaderSpec("exif", _read, (PATHS_LIST_OPTION,), help="GPS from each JPEG's EXIF block")
