"""A plain CSV table of geotagged images: the simplest way to bring your own data.

Header (names case-insensitive; `latitude`/`longitude`/`lng` accepted as aliases):

    path,lat,lon[,heading][,caption][,location_id][,address][,street][,split]

`path` is relative to the images folder (an absolute path inside it also works). Rows with a
missing or non-numeric GPS field are counted skips naming the file, line and field.
"""

from __future__ import annotations

import csv
from pathlib import Path

from tqdm import tqdm

from addressclip.data.readers.base import (
    ReaderOption,
    ReaderSpec,
    ReadReport,
    ReadResult,
    gps_location_id,
    gps_problem,
    make_image_table,
    parse_number,
    relative_image_path,
    require_folder,
)
from addressclip.errors import InputError

REQUIRED_CSV_COLUMNS = ("path", "lat", "lon")
OPTIONAL_CSV_COLUMNS = ("heading", "caption", "location_id", "address", "address_alt", "street", "split")
_ALIASES = {"latitude": "lat", "longitude": "lon", "lng": "lon", "long": "lon"}
_SPLITS = ("train", "val", "test")


def _header_map(fieldnames: list[str] | None, csv_path: Path) -> dict[str, str]:
    """Canonical column name -> the header text used in the file."""
    if not fieldnames:
        raise InputError(csv_path, None, "empty file (expected a header: path,lat,lon[,heading,caption])")
    mapping: dict[str, str] = {}
    for raw in fieldnames:
        key = (raw or "").strip().lower()
        key = _ALIASES.get(key, key)
        if key in mapping:
            raise InputError(csv_path, key, "column appears twice in the header")
        mapping[key] = raw
    for required in REQUIRED_CSV_COLUMNS:
        if required not in mapping:
            raise InputError(csv_path, required, "missing column (header must have path,lat,lon)")
    return mapping


def _text(value: str | None) -> str | None:
    if value is None:
        return None
    stripped = value.strip()
    return stripped or None


def read_csv_table(
    csv_path: str | Path,
    images_dir: str | Path | None = None,
    *,
    strict: bool = False,
    check_files: bool = True,
    progress: bool = True,
) -> ReadResult:
    """Image table from a CSV; paths are relative to `images_dir` (default: the CSV's folder)."""
    csv_path = Path(csv_path)
    image_root = require_folder(Path(images_dir)) if images_dir is not None else csv_path.parent
    report = ReadReport("csv", strict=strict)
    try:
        handle = csv_path.open(newline="", encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError(csv_path, None, "file not found") from None
    except OSError as error:
        raise InputError(csv_path, None, f"cannot open ({error})") from None
    records: list[dict[str, object]] = []
    present: set[str] = set()
    seen_paths: set[str] = set()
    with handle:
        reader = csv.DictReader(handle)
        try:
            columns = _header_map(reader.fieldnames, csv_path)
        except UnicodeDecodeError:
            raise InputError(csv_path, None, "not UTF-8 text") from None
        present = {c for c in OPTIONAL_CSV_COLUMNS if c in columns}
        rows = tqdm(reader, desc="reading CSV", unit="row", disable=None if progress else True)
        try:
            for row in rows:
                report.seen += 1
                record = _read_row(row, columns, csv_path, reader.line_num, image_root, report, check_files)
                if record is None:
                    continue
                if record["path"] in seen_paths:
                    report.skip(
                        csv_path,
                        "path",
                        "duplicate_path",
                        f"'{record['path']}' listed twice",
                        reader.line_num,
                    )
                    continue
                seen_paths.add(str(record["path"]))
                records.append(record)
        except UnicodeDecodeError:
            raise InputError(f"{csv_path}:{reader.line_num + 1}", None, "not UTF-8 text") from None
        except csv.Error as error:
            raise InputError(f"{csv_path}:{reader.line_num}", None, f"malformed CSV ({error})") from None
    report.kept = len(records)
    extra = [c for c in ("address", "address_alt", "street", "split") if c in present]
    frame = make_image_table(records, extra_columns=extra)
    return ReadResult(frame, report)


def _read_row(
    row: dict[str, str | None],
    columns: dict[str, str],
    csv_path: Path,
    line: int,
    image_root: Path,
    report: ReadReport,
    check_files: bool,
) -> dict[str, object] | None:
    """One CSV row as an image record, or None after recording why it was skipped."""

    def cell(name: str) -> str | None:
        return _text(row.get(columns[name])) if name in columns else None

    raw_path = cell("path")
    if raw_path is None:
        report.skip(csv_path, "path", "missing_path", "empty path", line)
        return None
    relative = relative_image_path(raw_path, image_root)
    if relative is None:
        report.skip(csv_path, "path", "outside_root", f"'{raw_path}' is outside {image_root}", line)
        return None
    values: dict[str, float | None] = {}
    for name in ("lat", "lon"):
        text = cell(name)
        values[name] = parse_number(text)
        if text is None:
            report.skip(csv_path, name, "missing_gps", "missing value", line)
            return None
        if values[name] is None:
            report.skip(csv_path, name, "non_numeric_gps", f"'{text}' is not a number", line)
            return None
    problem = gps_problem(values["lat"], values["lon"])
    if problem is not None:
        report.skip(csv_path, problem[0], "gps_out_of_range", problem[1], line)
        return None
    heading_text = cell("heading")
    heading = parse_number(heading_text)
    if heading_text is not None and heading is None:
        report.skip(csv_path, "heading", "non_numeric_heading", f"'{heading_text}' is not a number", line)
        return None
    split = cell("split")
    if split is not None and split not in _SPLITS:
        report.skip(csv_path, "split", "bad_split", f"'{split}' is not one of train/val/test", line)
        return None
    if check_files and not (image_root / relative).is_file():
        report.skip(csv_path, "path", "file_not_found", f"'{relative}' not found under {image_root}", line)
        return None
    lat, lon = float(values["lat"]), float(values["lon"])  # type: ignore[arg-type]
    return {
        "path": relative,
        "lat": lat,
        "lon": lon,
        "heading": None if heading is None else heading % 360.0,
        "caption": cell("caption"),
        "location_id": cell("location_id") or gps_location_id(lat, lon),
        "address": cell("address"),
        "address_alt": cell("address_alt"),
        "street": cell("street"),
        "split": split,
    }


CSV_OPTION = ReaderOption(
    "csv_path", "--csv", "CSV table path,lat,lon[,...] (for format json: extra GPS)", metavar="FILE",
    required=True, hint="(columns path,lat,lon[,heading,caption])",
)  # fmt: skip


def _read(images: Path, *, csv_path: Path, strict: bool, progress: bool) -> ReadResult:
    return read_csv_table(csv_path, images, strict=strict, progress=progress)


READER = ReaderSpec("csv", _read, (CSV_OPTION,), help="a CSV table path,lat,lon[,...]")
