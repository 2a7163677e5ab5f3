"""The AddressCLIP annotation JSON: `{relative_image_path: [caption, address, address_alt]}`.

Address strings are kept exactly as given (they are the class names). The street-level key used by
the SA-k metric is derived from the address with a configurable regular expression:

* default `DEFAULT_STREET_PATTERN`: the text before the first " & " or "," — so
  "Forbes Ave & Craig St, Oakland" -> "Forbes Ave";
* a pattern with a named group `street` (or a first group) takes that group, e.g. for sentence-style
  addresses `r"on a section of (?P<street>.+?) that"`;
* with `street_template`, the named groups are formatted into it, e.g. "{street}, {hood}".
When the pattern does not match, the whole address is the street key (counted in the report notes).

GPS comes from the path's `@` name when it is one, else from a CSV (path,lat,lon,...) or the EXIF
GPS of the file, when given. Images with no GPS from any source are counted skips.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable
from pathlib import Path

from tqdm import tqdm

from addressclip.data.readers.base import (
    ReaderOption,
    ReaderSpec,
    ReadReport,
    ReadResult,
    gps_location_id,
    make_image_table,
    relative_image_path,
    require_folder,
)
from addressclip.data.readers.cosplace import (
    CosplaceNameError,
    cosplace_location_id,
    is_cosplace_name,
    parse_cosplace_name,
)
from addressclip.data.readers.csv_table import CSV_OPTION, read_csv_table
from addressclip.data.readers.exif import ExifGpsError, read_exif_gps
from addressclip.errors import ConfigError, InputError

DEFAULT_STREET_PATTERN = r"^(?P<street>.*?)(?: & |,|$)"
_SHAPE = "expected [caption, address, address_alt] (a list of 2 or 3 strings, address non-empty)"


def street_key_function(
    pattern: str | None = None, template: str | None = None
) -> Callable[[str], str | None]:
    """A function address -> street key (None when the pattern does not match)."""
    try:
        compiled = re.compile(pattern or DEFAULT_STREET_PATTERN)
    except re.error as error:
        raise ConfigError(f"street pattern {pattern!r} is not a valid regular expression ({error})") from None
    if template is not None:
        try:
            template.format(**dict.fromkeys(compiled.groupindex, ""))
        except (KeyError, IndexError, ValueError) as error:
            raise ConfigError(
                f"street template {template!r} does not fit the pattern's named groups "
                f"{sorted(compiled.groupindex)} ({error})"
            ) from None

    def street_of(address: str) -> str | None:
        match = compiled.search(address)
        if match is None:
            return None
        if template is not None:
            key = template.format(**{k: (v or "") for k, v in match.groupdict().items()})
        elif "street" in compiled.groupindex:
            key = match.group("street") or ""
        elif compiled.groups:
            key = match.group(1) or ""
        else:
            key = match.group(0)
        key = key.strip()
        return key or None

    return street_of


def load_annotation_json(json_path: str | Path) -> dict[str, tuple[str | None, str, str | None]]:
    """Load and shape-check the JSON; any deviation is a one-line InputError naming the key."""
    json_path = Path(json_path)
    try:
        with json_path.open(encoding="utf-8") as handle:
            data = json.load(handle)
    except FileNotFoundError:
        raise InputError(json_path, None, "file not found") from None
    except json.JSONDecodeError as error:
        raise InputError(
            json_path, None, f"not valid JSON (line {error.lineno}, column {error.colno}: {error.msg})"
        ) from None
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(json_path, None, f"cannot read ({error})") from None
    if not isinstance(data, dict):
        raise InputError(
            json_path,
            None,
            f"top level is a {type(data).__name__}; expected an object mapping "
            "image path -> [caption, address, address_alt]",
        )
    entries: dict[str, tuple[str | None, str, str | None]] = {}
    for key, value in data.items():
        if not isinstance(value, list) or not 2 <= len(value) <= 3:
            raise InputError(json_path, key, f"{_SHAPE}, got {_describe(value)}")
        caption, address = value[0], value[1]
        alt = value[2] if len(value) == 3 else None
        if caption is not None and not isinstance(caption, str):
            raise InputError(json_path, key, f"caption is a {type(caption).__name__}; {_SHAPE}")
        if not isinstance(address, str) or not address.strip():
            raise InputError(json_path, key, f"address is {_describe(address)}; {_SHAPE}")
        if alt is not None and not isinstance(alt, str):
            raise InputError(json_path, key, f"address_alt is a {type(alt).__name__}; {_SHAPE}")
        entries[key] = (caption or None, address, alt or None)
    return entries


def _describe(value: object) -> str:
    if isinstance(value, list):
        return f"a list of {len(value)} items"
    if isinstance(value, str):
        return "an empty string" if not value.strip() else "a string"
    return "null" if value is None else f"a {type(value).__name__}"


def read_annotation_json(
    json_path: str | Path,
    images_dir: str | Path,
    *,
    gps_csv: str | Path | None = None,
    gps_from_exif: bool = False,
    street_pattern: str | None = None,
    street_template: str | None = None,
    strict: bool = False,
    check_files: bool = True,
    progress: bool = True,
) -> ReadResult:
    """Image table with caption/address/address_alt/street from an annotation JSON."""
    json_path = Path(json_path)
    image_root = require_folder(Path(images_dir))
    street_of = street_key_function(street_pattern, street_template)
    entries = load_annotation_json(json_path)
    report = ReadReport("json", strict=strict)
    gps_table = _gps_csv_lookup(gps_csv, image_root, strict, report) if gps_csv is not None else {}

    records: list[dict[str, object]] = []
    seen_paths: set[str] = set()
    keys = tqdm(entries.items(), desc="reading annotations", unit="img", disable=None if progress else True)
    for key, (caption, address, alt) in keys:
        report.seen += 1
        relative = relative_image_path(key, image_root)
        if relative is None:
            report.skip(json_path, key, "outside_root", f"path is outside {image_root}")
            continue
        if relative in seen_paths:
            report.skip(json_path, key, "duplicate_path", f"'{relative}' appears twice")
            continue
        full = image_root / relative
        if check_files and not full.is_file():
            report.skip(json_path, key, "file_not_found", f"'{relative}' not found under {image_root}")
            continue
        located = _locate(relative, full, gps_table, gps_from_exif)
        if isinstance(located, str):
            report.skip(json_path, key, "no_gps", located)
            continue
        street = street_of(address)
        if street is None:
            report.notes["street_key_fallback"] += 1
            street = address
        seen_paths.add(relative)
        records.append(
            {"path": relative, "caption": caption, "address": address, "address_alt": alt, "street": street}
            | located
        )
    report.kept = len(records)
    frame = make_image_table(records, extra_columns=("address", "address_alt", "street"))
    return ReadResult(frame, report)


def _gps_csv_lookup(
    gps_csv: str | Path, image_root: Path, strict: bool, report: ReadReport
) -> dict[str, dict[str, object]]:
    """path -> {lat, lon, heading, location_id} from a GPS CSV; its skipped rows go to the notes."""
    table = read_csv_table(gps_csv, image_root, strict=strict, check_files=False, progress=False)
    for kind, count in table.report.skip_counts.items():
        report.notes[f"gps_csv_{kind}"] += count
    frame = table.frame
    return {
        row.path: {"lat": row.lat, "lon": row.lon, "heading": row.heading, "location_id": row.location_id}
        for row in frame.itertuples(index=False)
    }


def _locate(
    relative: str, full: Path, gps_table: dict[str, dict[str, object]], gps_from_exif: bool
) -> dict[str, object] | str:
    """GPS fields for one image, or the reason none could be found."""
    tried: list[str] = []
    if is_cosplace_name(relative):
        try:
            fields = parse_cosplace_name(relative)
        except CosplaceNameError as error:
            tried.append(f"malformed @ name ({error.field or 'file name'}: {error})")
        else:
            return {
                "lat": fields.lat,
                "lon": fields.lon,
                "heading": fields.heading,
                "location_id": cosplace_location_id(fields),
            }
    else:
        tried.append("not an @ name")
    if gps_table:
        if relative in gps_table:
            return dict(gps_table[relative])
        tried.append("not in the GPS CSV")
    if gps_from_exif:
        try:
            gps = read_exif_gps(full, verify_pixels=False)
        except ExifGpsError as error:
            tried.append(f"EXIF {error.field}: {error}")
        else:
            return {
                "lat": gps.lat,
                "lon": gps.lon,
                "heading": gps.heading,
                "location_id": gps_location_id(gps.lat, gps.lon),
            }
    return "no GPS: " + "; ".join(tried)


def _read(
    images: Path,
    *,
    json_path: Path,
    csv_path: Path | None,
    gps_from_exif: bool,
    street_pattern: str | None,
    street_template: str | None,
    strict: bool,
    progress: bool,
) -> ReadResult:
    return read_annotation_json(
        json_path, images, gps_csv=csv_path, gps_from_exif=gps_from_exif, street_pattern=street_pattern,
        street_template=street_template, strict=strict, progress=progress,
    )  # fmt: skip


JSON_OPTIONS = (
    ReaderOption(
        "json_path", "--json", "annotation JSON", metavar="FILE", required=True,
        hint="({image_path: [caption, address, address_alt]})",
    ),
    dataclasses.replace(CSV_OPTION, required=False, hint=""),
    ReaderOption("gps_from_exif", "--gps-from-exif", "GPS from the images' EXIF", kind="switch"),
    ReaderOption(
        "street_pattern", "--street-pattern",
        "regex giving the street key (group 'street'); default: text before ' & ' or ','",
        kind="text", metavar="REGEX",
    ),
    ReaderOption(
        "street_template", "--street-template", "e.g. '{street}, {hood}'", kind="text", metavar="TEXT"
    ),
)  # fmt: skip

READER = ReaderSpec(
    "json",
    _read,
    JSON_OPTIONS,
    addresses="given",
    help="the AddressCLIP annotation JSON {image_path: [caption, address, address_alt]}",
)
