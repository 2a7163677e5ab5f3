"""CosPlace / VPR-style `@` file names and the `images/{train,val,test}/{database,queries}` layout.

Pitts250k and SF-XL (as processed by CosPlace and the VPR dataset tools) put all metadata in the
file name, so no side file is needed:

    @UTM_east@UTM_north@zone_number@zone_letter@lat@lon@pano_id@tile_num@heading@pitch@roll@height@timestamp@note@.jpg

UTM east/north are written with 7+2 digits, lat with 3+5 and lon with 4+5 (zero padded to that
width, the sign counting as a digit when negative, e.g. `037.74472`, `-122.50057`). Empty fields are
allowed for everything after lon.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from addressclip.data.readers.base import (
    JPEG_SUFFIXES,
    ReadReport,
    ReadResult,
    list_jpegs,
    make_image_table,
    read_paths_list,
    require_folder,
)

UTM_BANDS = "CDEFGHJKLMNPQRSTUVWX"
SPLIT_FOLDERS = ("train", "val", "test")
ROLE_FOLDERS = ("database", "queries")
# Sidecar lists looked for in the images folder when no list is given (first found wins).
SIDECAR_NAMES = ("images_paths.txt", "image_paths.txt", "paths.txt")

_FIELD_NAMES = (
    "utm_east",
    "utm_north",
    "zone_number",
    "zone_letter",
    "lat",
    "lon",
    "pano_id",
    "tile_num",
    "heading",
    "pitch",
    "roll",
    "height",
    "timestamp",
    "note",
)
_FREE_TEXT = re.compile(r"^[^@/\\]*$")


class CosplaceNameError(ValueError):
    """A file name that does not follow the `@` convention; `field` says which part is wrong."""

    def __init__(self, field: str | None, problem: str) -> None:
        super().__init__(problem)
        self.field = field
        self.problem = problem


@dataclass(frozen=True)
class CosplaceName:
    """The metadata fields of one `@` file name. Optional numbers are None when the field is empty."""

    utm_east: float
    utm_north: float
    zone_number: int
    zone_letter: str
    lat: float
    lon: float
    pano_id: str = ""
    tile_num: str = ""
    heading: float | None = None
    pitch: float | None = None
    roll: float | None = None
    height: float | None = None
    timestamp: str = ""
    note: str = ""

    @property
    def zone(self) -> str:
        """Zone label as in manifests, e.g. '17T'."""
        return f"{self.zone_number}{self.zone_letter}"


def _fixed(value: float, left: int, right: int) -> str:
    """Zero-padded fixed-point text: `left` characters before the point (sign included), `right` after."""
    return f"{value:0{left + 1 + right}.{right}f}"


def _optional_number(value: float | None) -> str:
    if value is None:
        return ""
    if float(value).is_integer():
        return str(int(value))
    return repr(float(value))


def format_cosplace_name(fields: CosplaceName, suffix: str = ".jpg") -> str:
    """The `@` file name for `fields` (inverse of parse_cosplace_name for canonical names)."""
    for name in ("pano_id", "tile_num", "timestamp", "note"):
        if not _FREE_TEXT.match(getattr(fields, name)):
            raise ValueError(f"field '{name}' may not contain '@' or a path separator")
    parts = [
        _fixed(fields.utm_east, 7, 2),
        _fixed(fields.utm_north, 7, 2),
        str(fields.zone_number),
        fields.zone_letter,
        _fixed(fields.lat, 3, 5),
        _fixed(fields.lon, 4, 5),
        fields.pano_id,
        fields.tile_num,
        _optional_number(fields.heading),
        _optional_number(fields.pitch),
        _optional_number(fields.roll),
        _optional_number(fields.height),
        fields.timestamp,
        fields.note,
    ]
    return "@" + "@".join(parts) + "@" + suffix


def _required_float(parts: dict[str, str], name: str) -> float:
    text = parts[name].strip()
    if not text:
        raise CosplaceNameError(name, "is empty")
    try:
        value = float(text)
    except ValueError:
        raise CosplaceNameError(name, f"'{text}' is not a number") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise CosplaceNameError(name, f"'{text}' is not a finite number")
    return value


def _optional_float(parts: dict[str, str], name: str) -> float | None:
    text = parts[name].strip()
    if not text:
        return None
    return _required_float(parts, name)


def parse_cosplace_name(name: str) -> CosplaceName:
    """Parse the metadata of an `@` file name (a bare name or a path; the folders are ignored).

    Raises CosplaceNameError naming the offending field, so readers can report or skip it.
    """
    base = PurePosixPath(str(name).replace("\\", "/")).name
    if not base.startswith("@"):
        raise CosplaceNameError(None, "does not start with '@'")
    pieces = base.split("@")
    # ['', 14 fields..., suffix]
    if len(pieces) != len(_FIELD_NAMES) + 2:
        raise CosplaceNameError(
            None, f"has {len(pieces) - 2} '@'-separated fields, expected {len(_FIELD_NAMES)}"
        )
    suffix = pieces[-1]
    if suffix and not suffix.startswith("."):
        raise CosplaceNameError(None, f"unexpected text '{suffix}' after the last '@'")
    parts = dict(zip(_FIELD_NAMES, pieces[1:-1], strict=True))

    utm_east = _required_float(parts, "utm_east")
    utm_north = _required_float(parts, "utm_north")
    zone_text = parts["zone_number"].strip()
    if not zone_text.isdigit() or not 1 <= int(zone_text) <= 60:
        raise CosplaceNameError("zone_number", f"'{zone_text}' is not a UTM zone number 1-60")
    letter = parts["zone_letter"].strip().upper()
    if len(letter) != 1 or letter not in UTM_BANDS:
        raise CosplaceNameError("zone_letter", f"'{parts['zone_letter']}' is not a UTM latitude band")
    lat = _required_float(parts, "lat")
    if not -90.0 <= lat <= 90.0:
        raise CosplaceNameError("lat", f"{lat} is outside [-90, 90]")
    lon = _required_float(parts, "lon")
    if not -180.0 <= lon <= 180.0:
        raise CosplaceNameError("lon", f"{lon} is outside [-180, 180]")
    return CosplaceName(
        utm_east=utm_east,
        utm_north=utm_north,
        zone_number=int(zone_text),
        zone_letter=letter,
        lat=lat,
        lon=lon,
        pano_id=parts["pano_id"],
        tile_num=parts["tile_num"],
        heading=_optional_float(parts, "heading"),
        pitch=_optional_float(parts, "pitch"),
        roll=_optional_float(parts, "roll"),
        height=_optional_float(parts, "height"),
        timestamp=parts["timestamp"],
        note=parts["note"],
    )


def is_cosplace_name(name: str) -> bool:
    return PurePosixPath(str(name).replace("\\", "/")).name.startswith("@")


def cosplace_location_id(fields: CosplaceName, precision_m: float = 1.0) -> str:
    """One id per capture point: the panorama id when given, else the UTM position rounded.

    Pitts250k names carry no panorama id but all 24 views of a capture share the same UTM
    coordinates, so rounding them (to `precision_m`) groups the views of one location.
    """
    if fields.pano_id.strip():
        return f"pano:{fields.pano_id.strip()}"
    east = round(fields.utm_east / precision_m)
    north = round(fields.utm_north / precision_m)
    return f"utm:{fields.zone}:{east}:{north}"


def split_and_role(relative_path: str) -> tuple[str | None, str | None]:
    """('train'|'val'|'test', 'database'|'queries') from the folders of a path, else (None, None)."""
    folders = PurePosixPath(relative_path).parts[:-1]
    for split, role in itertools.pairwise(folders):
        if split in SPLIT_FOLDERS and role in ROLE_FOLDERS:
            return split, role
    return None, None


def find_sidecar(images_dir: Path) -> Path | None:
    for name in SIDECAR_NAMES:
        candidate = images_dir / name
        if candidate.is_file():
            return candidate
    return None


def read_cosplace(
    images_dir: str | Path,
    paths_list: str | Path | None = None,
    *,
    strict: bool = False,
    check_files: bool = True,
    location_precision_m: float = 1.0,
    progress: bool = True,
) -> ReadResult:
    """Read a folder of `@`-named JPEGs into an image table.

    The split ('train'/'val'/'test') and role ('database'/'queries') come from the folders when the
    layout is `.../{train,val,test}/{database,queries}/`. With `paths_list` (or a sidecar list found
    in `images_dir`, see SIDECAR_NAMES) the listed paths are used instead of walking the folder.
    To take a list as it is (no file stat-ed or decoded, parsed vectorised) see
    `cosplace_list.read_cosplace_list` (`build --trust-list`).
    """
    image_root = require_folder(Path(images_dir))
    report = ReadReport("cosplace", strict=strict)
    sidecar = Path(paths_list) if paths_list is not None else find_sidecar(image_root)
    if sidecar is not None:
        candidates = read_paths_list(sidecar, image_root, report)
        report.notes["paths_from_list"] = len(candidates)
    else:
        candidates = list_jpegs(image_root)
    records: list[dict[str, object]] = []
    seen_paths: set[str] = set()
    for relative in tqdm(candidates, desc="reading @ names", unit="img", disable=None if progress else True):
        report.seen += 1
        if sidecar is not None:
            if relative in seen_paths:
                report.skip(sidecar, "path", "duplicate_path", f"'{relative}' is listed twice")
                continue
            if not relative.lower().endswith(JPEG_SUFFIXES):
                report.skip(sidecar, "path", "not_jpeg", f"'{relative}' is not a .jpg/.jpeg file")
                continue
            if check_files and not (image_root / relative).is_file():
                report.skip(sidecar, "path", "file_not_found", f"'{relative}' not found under {image_root}")
                continue
        seen_paths.add(relative)
        try:
            fields = parse_cosplace_name(relative)
        except CosplaceNameError as error:
            where = image_root / relative
            report.skip(where, error.field or "file name", "malformed_name", f"malformed @ name: {error}")
            continue
        split, role = split_and_role(relative)
        records.append(
            {
                "path": relative,
                "lat": fields.lat,
                "lon": fields.lon,
                "heading": fields.heading,
                "caption": None,
                "location_id": cosplace_location_id(fields, location_precision_m),
                "split": split,
                "role": role,
                "pano_id": fields.pano_id or None,
            }
        )
    report.kept = len(records)
    frame = make_image_table(records, extra_columns=("split", "role", "pano_id"))
    return ReadResult(finish_split_columns(frame, report), report)


def finish_split_columns(frame, report: ReadReport):
    """Without the split layout the split/role columns go (the build splits); a partial layout is noted."""
    if frame["split"].isna().all():
        return frame.drop(columns=["split", "role"])
    if frame["split"].isna().any():
        report.notes["rows_outside_split_layout"] = int(frame["split"].isna().sum())
    return frame
