"""A CosPlace path list read as a whole, vectorised with pyarrow: `addressclip build --trust-list`.

The per-name reader (`cosplace.read_cosplace`) checks each listed file on disk and parses each `@`
name in Python; on SF-XL-sized lists (millions of lines) both are the cost. Trusting the list means:
no file is stat-ed or decoded, and the names are parsed column-wise by pyarrow compute kernels.
What is checked stays the same as the per-name reader (malformed names, ranges, duplicates, non-JPEG
and outside-root paths are counted skips, or a one-line error in strict mode): rows the vectorised
checks reject are re-parsed one by one by `parse_cosplace_name`, so a skip names the same field and
reason either way. Only rows in a simple form (relative, no '.'/'..' segments, no '//' or '\\') take
the fast path; the rest go through the per-name path normaliser first.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from addressclip.data.readers.base import (
    JPEG_SUFFIXES,
    PATHS_LIST_OPTION,
    TRUST_LIST_OPTION,
    ReaderSpec,
    ReadReport,
    ReadResult,
    relative_image_path,
    require_folder,
)
from addressclip.data.readers.cosplace import (
    _FIELD_NAMES,
    SIDECAR_NAMES,
    UTM_BANDS,
    CosplaceNameError,
    find_sidecar,
    finish_split_columns,
    parse_cosplace_name,
    read_cosplace,
)
from addressclip.errors import ConfigError, InputError

_NUMBER = r"^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$"
_OPTIONAL_NUMBER = r"^\s*([+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?)?\s*$"
_NOT_SIMPLE = r"^/|(^|/)\.{1,2}(/|$)|//|\\"
_SPLIT_ROLE = r"(?:^|/)(?P<split>train|val|test)/(?P<role>database|queries)/"
_FIELD = {name: i + 1 for i, name in enumerate(_FIELD_NAMES)}  # piece index after the leading ''


def read_list_lines(paths_file: Path) -> pa.Array:
    """Every non-blank, non-comment line of a path list, trimmed, as one arrow string array."""
    if not paths_file.is_file():
        raise InputError(paths_file, None, "paths list not found")
    try:
        table = pacsv.read_csv(
            paths_file,
            read_options=pacsv.ReadOptions(column_names=["path"], block_size=64 << 20),
            parse_options=pacsv.ParseOptions(delimiter="\x1f", quote_char=False, escape_char=False),
            convert_options=pacsv.ConvertOptions(column_types={"path": pa.string()}),
        )
    except (pa.ArrowInvalid, OSError) as error:
        raise InputError(paths_file, None, f"cannot read paths list ({error})") from None
    lines = pc.utf8_trim_whitespace(table.column("path").combine_chunks())
    keep = pc.and_(pc.greater(pc.utf8_length(lines), 0), pc.invert(pc.starts_with(lines, "#")))
    return lines.filter(pc.fill_null(keep, False))


def _normalise_paths(lines: pa.Array, image_root: Path, paths_file: Path, report: ReadReport) -> pa.Array:
    """Paths relative to the image root; the few lines not in simple form go through the per-name
    normaliser, and those outside the root become counted skips (null here)."""
    odd = _matches(lines, _NOT_SIMPLE)
    if not odd.any():
        return lines
    values = lines.to_pylist() if odd.mean() > 0.5 else None
    fixed: list[str | None] = []
    for position in np.flatnonzero(odd):
        raw = values[position] if values is not None else lines[int(position)].as_py()
        relative = relative_image_path(raw, image_root)
        if relative is None:
            report.skip(paths_file, "path", "outside_root", f"'{raw}' is outside {image_root}")
        fixed.append(relative)
    replaced = np.asarray(lines.to_numpy(zero_copy_only=False), dtype=object)
    replaced[odd] = np.asarray(fixed, dtype=object)
    return pa.array(replaced, type=pa.string())


def _bools(array: pa.Array) -> np.ndarray:
    return np.asarray(pc.fill_null(array, False).to_numpy(zero_copy_only=False), dtype=bool)


def _matches(array: pa.Array, pattern: str) -> np.ndarray:
    return _bools(pc.match_substring_regex(array, pattern))


def _null_where_empty(array: pa.Array) -> pa.Array:
    """The strings with '' as null (a row outside the split layout, a name without a panorama id)."""
    return pc.if_else(pc.equal(pc.fill_null(array, ""), ""), pa.scalar(None, pa.string()), array)


def _float_or_nan(array: pa.Array) -> np.ndarray:
    """Floats of strings already checked against `_NUMBER` (or empty, -> NaN)."""
    trimmed = pc.utf8_trim_whitespace(array)
    empty = pc.equal(pc.utf8_length(trimmed), 0)
    return pc.cast(pc.if_else(empty, None, trimmed), pa.float64()).to_numpy(zero_copy_only=False)


def read_trusted_list(
    paths_file: Path,
    image_root: Path,
    report: ReadReport,
    location_precision_m: float = 1.0,
) -> pd.DataFrame:
    """The image table of a CosPlace path list, without touching the listed files (see the module doc).

    Columns as `read_cosplace`: path, lat, lon, heading, caption, location_id, split, role, pano_id.
    """
    lines = read_list_lines(paths_file)
    report.notes["paths_from_list"] = len(lines)
    paths = _normalise_paths(lines, image_root, paths_file, report)
    keep = _bools(pc.is_valid(paths))
    report.seen = int(keep.sum())  # as the per-name reader: lines outside the root are not records

    lower = pc.utf8_lower(paths)
    jpeg = np.zeros(len(paths), dtype=bool)
    for suffix in JPEG_SUFFIXES:
        jpeg |= _bools(pc.ends_with(lower, suffix))
    for position in np.flatnonzero(keep & ~jpeg):
        report.skip(
            paths_file, "path", "not_jpeg", f"'{paths[int(position)].as_py()}' is not a .jpg/.jpeg file"
        )
    keep &= jpeg

    duplicated = pd.Series(paths.to_numpy(zero_copy_only=False)).duplicated(keep="first").to_numpy()
    for position in np.flatnonzero(keep & duplicated):
        report.skip(paths_file, "path", "duplicate_path", f"'{paths[int(position)].as_py()}' is listed twice")
    keep &= ~duplicated

    names = pc.replace_substring_regex(paths, r"^.*/", "")
    pieces = pc.split_pattern(names, "@")
    count_ok = _bools(pc.equal(pc.list_value_length(pieces), len(_FIELD_NAMES) + 2))
    # every row gets 16 pieces so that list_element never fails; wrong counts are masked by count_ok
    padded = pc.if_else(pa.array(count_ok), pieces, pa.scalar([""] * (len(_FIELD_NAMES) + 2), pieces.type))

    def piece(name_or_index: str | int) -> pa.Array:
        index = _FIELD[name_or_index] if isinstance(name_or_index, str) else name_or_index
        return pc.list_element(padded, index)

    fast = count_ok & _matches(names, r"^@")
    suffix = piece(len(_FIELD_NAMES) + 1)
    fast &= _matches(suffix, r"^(\..*)?$")
    for name in ("utm_east", "utm_north", "lat", "lon"):
        fast &= _matches(piece(name), _NUMBER)
    for name in ("heading", "pitch", "roll", "height"):
        fast &= _matches(piece(name), _OPTIONAL_NUMBER)
    zone_text = pc.utf8_trim_whitespace(piece("zone_number"))
    fast &= _matches(zone_text, r"^\d{1,9}$")
    letter = pc.utf8_upper(pc.utf8_trim_whitespace(piece("zone_letter")))
    fast &= _matches(letter, f"^[{UTM_BANDS}]$")

    zone = np.where(
        fast,
        pc.cast(pc.if_else(pa.array(fast), zone_text, "0"), pa.int64()).to_numpy(zero_copy_only=False),
        0,
    )
    lat = np.where(fast, _float_or_nan(pc.if_else(pa.array(fast), piece("lat"), "0")), np.nan)
    lon = np.where(fast, _float_or_nan(pc.if_else(pa.array(fast), piece("lon"), "0")), np.nan)
    east = np.where(fast, _float_or_nan(pc.if_else(pa.array(fast), piece("utm_east"), "0")), np.nan)
    north = np.where(fast, _float_or_nan(pc.if_else(pa.array(fast), piece("utm_north"), "0")), np.nan)
    heading = np.where(fast, _float_or_nan(pc.if_else(pa.array(fast), piece("heading"), "")), np.nan)
    fast &= (zone >= 1) & (zone <= 60)
    fast &= np.isfinite(east) & np.isfinite(north)
    fast &= (lat >= -90.0) & (lat <= 90.0) & (lon >= -180.0) & (lon <= 180.0)

    # rows the kernels reject: the per-name parser says why (or, for an edge the regexes do not
    # cover, parses them after all)
    pano = pc.utf8_trim_whitespace(piece("pano_id")).to_numpy(zero_copy_only=False).astype(object)
    letters = np.asarray(letter.to_numpy(zero_copy_only=False), dtype=object)
    for position in np.flatnonzero(keep & ~fast):
        relative = paths[int(position)].as_py()
        try:
            fields = parse_cosplace_name(relative)
        except CosplaceNameError as error:
            report.skip(
                image_root / relative,
                error.field or "file name",
                "malformed_name",
                f"malformed @ name: {error}",
            )
            keep[position] = False
            continue
        zone[position], lat[position], lon[position] = fields.zone_number, fields.lat, fields.lon
        east[position], north[position] = fields.utm_east, fields.utm_north
        heading[position] = np.nan if fields.heading is None else fields.heading
        pano[position], letters[position] = fields.pano_id.strip(), fields.zone_letter

    rows = np.flatnonzero(keep)
    take = pa.array(rows)
    zone_label = pc.binary_join_element_wise(
        pc.cast(pa.array(zone[rows]), pa.string()), pa.array(letters[rows], type=pa.string()), ""
    )
    grid = [
        pc.cast(pa.array(np.round(values[rows] / location_precision_m).astype(np.int64)), pa.string())
        for values in (east, north)
    ]
    utm_id = pc.binary_join_element_wise("utm", zone_label, grid[0], grid[1], ":")
    pano_kept = pa.array(pano[rows], type=pa.string())
    has_pano = pc.greater(pc.utf8_length(pc.fill_null(pano_kept, "")), 0)
    location_id = pc.if_else(has_pano, pc.binary_join_element_wise("pano", pano_kept, ":"), utm_id)
    kept_paths = paths.take(take)
    split_role = pc.extract_regex(pc.replace_substring_regex(kept_paths, r"[^/]*$", ""), _SPLIT_ROLE)
    frame = pd.DataFrame(
        {
            "path": kept_paths.to_pandas(),
            "lat": lat[rows].astype("float64"),
            "lon": lon[rows].astype("float64"),
            "heading": heading[rows].astype("float32"),
            "caption": pa.nulls(len(rows), pa.string()).to_pandas(),
            "location_id": location_id.to_pandas(),
            "split": _null_where_empty(split_role.field("split")).to_pandas(),
            "role": _null_where_empty(split_role.field("role")).to_pandas(),
            "pano_id": _null_where_empty(pano_kept).to_pandas(),
        }
    )
    report.kept = len(frame)
    return frame


def read_cosplace_list(
    images_dir: str | Path,
    paths_list: str | Path | None = None,
    *,
    strict: bool = False,
    location_precision_m: float = 1.0,
) -> ReadResult:
    """`read_cosplace` for a trusted list (`paths_list`, or a sidecar list in `images_dir`)."""
    image_root = require_folder(Path(images_dir))
    sidecar = Path(paths_list) if paths_list is not None else find_sidecar(image_root)
    if sidecar is None:
        raise ConfigError(
            f"--trust-list trusts a paths list: give --paths-list FILE (or put one of "
            f"{', '.join(SIDECAR_NAMES)} in {image_root})"
        )
    report = ReadReport("cosplace", strict=strict)
    frame = read_trusted_list(sidecar, image_root, report, location_precision_m)
    return ReadResult(finish_split_columns(frame, report), report, files_checked=False)


def _read(
    images: Path, *, paths_list: Path | None, trust_list: bool, strict: bool, progress: bool
) -> ReadResult:
    if trust_list:
        return read_cosplace_list(images, paths_list, strict=strict)
    return read_cosplace(images, paths_list, strict=strict, progress=progress)


# the `cosplace` format: per-name reading (cosplace.read_cosplace) or, with --trust-list, this module
READER = ReaderSpec(
    "cosplace",
    _read,
    (PATHS_LIST_OPTION, TRUST_LIST_OPTION),
    help="GPS in CosPlace/VPR `@` file names; split from folders",
)
