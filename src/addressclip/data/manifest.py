"""The manifest: one parquet file per dataset, one row per image, the contract between data and model.

Everything downstream (training, evaluation, baselines, the benchmark) reads images and labels only
through a manifest, so its schema is fixed here and checked by `validate_manifest`. The images'
root folder and the AddressBook folder are stored as paths *relative to the manifest* in the parquet
key-value metadata, so a dataset folder can be moved or copied as a whole.

Extra columns (e.g. `role`, `address_alt`, `pano_id`) are allowed and kept after the standard ones.

Schema versions:

- "1": the columns of `MANIFEST_SCHEMA` without `city`.
- "2" (current): adds `city` (string, nullable), the city of each row in a multi-city dataset (an
  atlas, `addressclip atlas`); null in a one-city dataset. A writer that does not give the column
  writes it as nulls, and a version-1 manifest still reads (and validates) with `city` all null, so
  datasets built before the bump keep working.
"""

from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass
from pathlib import Path, PureWindowsPath

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from addressclip.atomic import atomic_path
from addressclip.digest import file_digest
from addressclip.errors import AddressclipError, InputError

SCHEMA_VERSION = "2"
# Versions this code reads; a "1" manifest gets `city` as nulls (see the module docstring).
READABLE_SCHEMA_VERSIONS: tuple[str, ...] = ("1", "2")
META_IMAGE_ROOT = "addressclip.image_root"
META_ADDRESSBOOK = "addressclip.addressbook"
# SHA-256 of the AddressBook file the manifest was written against: a manifest paired with another
# build's book (a build killed between its files, or two builds into one folder) is refused on read.
META_ADDRESSBOOK_SHA256 = "addressclip.addressbook_sha256"
# 'all' when every address_id of the manifest is a row of that book; 'geometry_only' when the
# addresses were given by the input and the book only supplies street geometry.
META_ADDRESSBOOK_IDS = "addressclip.addressbook_ids"
META_SCHEMA_VERSION = "addressclip.schema_version"
SPLITS: tuple[str, ...] = ("train", "val", "test")
# Largest allowed distance between the stored UTM position and the one projected from lat/lon.
UTM_TOLERANCE_M = 5.0
# Problems about many rows list this many examples.
MAX_EXAMPLES = 5


@dataclass(frozen=True)
class ColumnSpec:
    name: str
    arrow_type: pa.DataType
    nullable: bool
    meaning: str


MANIFEST_SCHEMA: tuple[ColumnSpec, ...] = (
    ColumnSpec("path", pa.string(), False, "image path relative to image_root"),
    ColumnSpec("lat", pa.float64(), False, "WGS84 latitude, degrees"),
    ColumnSpec("lon", pa.float64(), False, "WGS84 longitude, degrees"),
    ColumnSpec("utm_e", pa.float64(), False, "UTM easting, metres"),
    ColumnSpec("utm_n", pa.float64(), False, "UTM northing, metres"),
    ColumnSpec("utm_zone", pa.string(), False, "UTM zone, e.g. '35V'"),
    ColumnSpec("heading", pa.float32(), True, "degrees clockwise from north"),
    ColumnSpec("location_id", pa.string(), False, "capture point, shared by all its views"),
    ColumnSpec("address_id", pa.string(), False, "sub-street class id"),
    ColumnSpec("address", pa.string(), False, "'Main & Cross, Neighbourhood' (or as annotated)"),
    ColumnSpec("street_id", pa.string(), False, "street-level class id"),
    ColumnSpec("street", pa.string(), False, "street-level key for SA-k"),
    ColumnSpec("neighbourhood", pa.string(), True, "neighbourhood name"),
    ColumnSpec("caption", pa.string(), True, "scene caption (training only)"),
    ColumnSpec("split", pa.string(), False, "'train' / 'val' / 'test'"),
    ColumnSpec("city", pa.string(), True, "city of a multi-city atlas (null for one city); since schema 2"),
)
# Columns a frame may leave out: they are written as nulls (and read as nulls from older manifests).
OPTIONAL_COLUMNS: tuple[str, ...] = ("city",)
MANIFEST_COLUMNS: tuple[str, ...] = tuple(spec.name for spec in MANIFEST_SCHEMA)
_SPEC_BY_NAME = {spec.name: spec for spec in MANIFEST_SCHEMA}


class ManifestError(AddressclipError):
    """A manifest frame that does not fit the schema (raised before anything is written)."""


@dataclass
class Manifest:
    """A read manifest: the frame plus the absolute folders its metadata points to."""

    path: Path
    frame: pd.DataFrame
    image_root: Path
    addressbook_dir: Path | None
    schema_version: str = SCHEMA_VERSION

    def image_path(self, relative: str) -> Path:
        return self.image_root / relative

    def split(self, name: str) -> pd.DataFrame:
        """Rows of one split ('train', 'val' or 'test'), index reset."""
        return self.frame[self.frame["split"] == name].reset_index(drop=True)


def _relative_to_manifest(folder: str | os.PathLike[str], manifest_path: Path) -> str:
    target = Path(folder).resolve()
    base = manifest_path.resolve().parent
    try:
        return Path(os.path.relpath(target, base)).as_posix()
    except ValueError:  # different drive (Windows): fall back to the absolute path
        return target.as_posix()


def arrow_schema(extra: pa.Schema | None = None) -> pa.Schema:
    fields = [pa.field(s.name, s.arrow_type, nullable=s.nullable) for s in MANIFEST_SCHEMA]
    if extra is not None:
        fields.extend(f for f in extra if f.name not in _SPEC_BY_NAME)
    return pa.schema(fields)


def frame_to_table(frame: pd.DataFrame, check: bool = True) -> pa.Table:
    """Arrow table with the manifest schema; raises ManifestError on missing columns or bad values.

    With `check=False` only the columns and their types are enforced (not nulls, ranges, coverage).
    """
    frame = with_optional_columns(frame)
    missing = [c for c in MANIFEST_COLUMNS if c not in frame.columns]
    if missing:
        raise ManifestError(f"manifest frame lacks column(s) {', '.join(missing)}")
    problems = frame_problems(frame) if check else []
    if problems:
        raise ManifestError(f"manifest frame is invalid: {problems[0]} ({len(problems)} problem(s))")
    extra_names = [c for c in frame.columns if c not in _SPEC_BY_NAME]
    arrays: list[pa.Array] = []
    fields: list[pa.Field] = []
    for spec in MANIFEST_SCHEMA:
        arrays.append(_column_array(frame[spec.name], spec))
        fields.append(pa.field(spec.name, spec.arrow_type, nullable=spec.nullable))
    for name in extra_names:
        try:
            array = pa.array(_python_values(frame[name]), from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as error:
            raise ManifestError(f"extra manifest column '{name}' cannot be stored ({error})") from None
        arrays.append(array)
        fields.append(pa.field(str(name), array.type))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def with_optional_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` with every absent `OPTIONAL_COLUMNS` column added as nulls (a copy only when one is)."""
    absent = [c for c in OPTIONAL_COLUMNS if c not in frame.columns]
    if not absent:
        return frame
    frame = frame.copy()
    for name in absent:
        frame[name] = pd.Series([None] * len(frame), index=frame.index, dtype=object)
    return frame


def _python_values(series: pd.Series) -> object:
    if pd.api.types.is_string_dtype(series.dtype) or series.dtype == object:
        return [None if _is_missing(v) else v for v in series.tolist()]
    return series.to_numpy()


def _is_missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA


def string_array(series: pd.Series) -> pa.Array | None:
    """The column as an arrow string array (None, NaN and NA as nulls) when every value is a string
    or missing, else None. Converted in C: millions of rows take well under a second."""
    try:
        if isinstance(series.dtype, pd.StringDtype):  # pandas' own string columns: no Python objects
            return pa.array(series.array).cast(pa.string())
        return pa.array(series.to_numpy(dtype=object), type=pa.string(), from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None


def _column_array(series: pd.Series, spec: ColumnSpec) -> pa.Array:
    try:
        if pa.types.is_string(spec.arrow_type):
            fast = string_array(series)
            if fast is not None:
                return fast
            return pa.array(
                [None if _is_missing(v) else str(v) for v in series.tolist()], type=spec.arrow_type
            )
        values = pd.to_numeric(series, errors="raise").to_numpy(dtype="float64")
        return pa.array(values, type=pa.float64(), from_pandas=True).cast(spec.arrow_type)
    except (pa.ArrowInvalid, pa.ArrowTypeError, ValueError, TypeError) as error:
        raise ManifestError(
            f"manifest column '{spec.name}' cannot be stored as {spec.arrow_type} ({error})"
        ) from None


def write_manifest(
    frame: pd.DataFrame,
    path: str | os.PathLike[str],
    image_root: str | os.PathLike[str],
    addressbook_dir: str | os.PathLike[str] | None = None,
    *,
    check: bool = True,
    addressbook_ids: str | None = None,
) -> Path:
    """Write `frame` as a manifest parquet, atomically (a reader never sees half a file).

    The frame is checked first with the same rules as `validate_manifest` except the files on disk
    (types, nulls, split values, coordinate ranges, UTM consistency, duplicate paths, one address
    per address_id, val/test addresses present in train); a bad frame raises ManifestError and
    nothing is written. `check=False` skips the value rules (for deliberately partial manifests,
    e.g. a test-only set for zero-shot evaluation); `validate_manifest` will still report them.
    With an AddressBook, its file's SHA-256 is recorded (checked on read) and `addressbook_ids` says
    whether the manifest's address ids are the book's rows ('all', checked here and by validate) or
    the book only supplies geometry ('geometry_only'); None works it out from the book.
    """
    path = Path(path)
    table = frame_to_table(frame, check=check)
    metadata = dict(table.schema.metadata or {})
    metadata[META_SCHEMA_VERSION.encode()] = SCHEMA_VERSION.encode()
    metadata[META_IMAGE_ROOT.encode()] = _relative_to_manifest(image_root, path).encode()
    if addressbook_dir is not None:
        metadata[META_ADDRESSBOOK.encode()] = _relative_to_manifest(addressbook_dir, path).encode()
        book_file = _addressbook_file(Path(addressbook_dir))
        if book_file.is_file():
            metadata[META_ADDRESSBOOK_SHA256.encode()] = file_digest(book_file).encode()
            known = _addressbook_ids(book_file)
            absent = sorted({str(v) for v in frame["address_id"].tolist()} - known)
            if addressbook_ids == "all" and absent:
                raise ManifestError(
                    f"{len(absent)} address id(s) are not in the AddressBook {book_file}: {_examples(absent)}"
                )
            if addressbook_ids is None:
                addressbook_ids = "geometry_only" if absent else "all"
            metadata[META_ADDRESSBOOK_IDS.encode()] = addressbook_ids.encode()
    table = table.replace_schema_metadata(metadata)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    return path


def _addressbook_file(folder: Path) -> Path:
    from addressclip.geo.addressbook import TABLE_FILE

    return folder / TABLE_FILE


def _addressbook_ids(book_file: Path) -> set[str]:
    try:
        return set(pq.read_table(book_file, columns=["address_id"]).column(0).to_pylist())
    except (pa.ArrowException, OSError, KeyError) as error:
        raise InputError(book_file, "address_id", f"cannot read the AddressBook's ids ({error})") from None


def _pairing_problem(metadata: dict[str, str], addressbook_dir: Path | None) -> str | None:
    """Why the manifest and its AddressBook are not from one build, or None when they are."""
    expected = metadata.get(META_ADDRESSBOOK_SHA256)
    if expected is None or addressbook_dir is None:
        return None
    book_file = _addressbook_file(addressbook_dir)
    if not book_file.is_file():
        return None  # reported as a missing folder/file where that matters
    if file_digest(book_file) != expected:
        return (
            f"the AddressBook {book_file} is not the one this manifest was built with (another build, "
            "or one interrupted between its files, wrote it); rebuild the dataset"
        )
    return None


def _read_table(path: Path) -> pa.Table:
    if not path.is_file():
        raise InputError(path, None, "manifest not found" if not path.exists() else "not a file")
    try:
        return pq.read_table(path)
    except (pa.ArrowException, OSError) as error:
        raise InputError(path, None, f"not a readable parquet manifest ({error})") from None


def _metadata(table: pa.Table) -> dict[str, str]:
    raw = table.schema.metadata or {}
    return {k.decode("utf-8", "replace"): v.decode("utf-8", "replace") for k, v in raw.items()}


def read_manifest(path: str | os.PathLike[str]) -> Manifest:
    """Read a manifest; folders from its metadata are resolved against the manifest's folder."""
    path = Path(path)
    table = _read_table(path)
    metadata = _metadata(table)
    version = metadata.get(META_SCHEMA_VERSION)
    if version is None:
        raise InputError(path, META_SCHEMA_VERSION, "missing metadata key: not an addressclip manifest")
    if version not in READABLE_SCHEMA_VERSIONS:
        readable = ", ".join(READABLE_SCHEMA_VERSIONS)
        raise InputError(
            path, META_SCHEMA_VERSION, f"schema version {version} (this addressclip reads {readable})"
        )
    if META_IMAGE_ROOT not in metadata:
        raise InputError(path, META_IMAGE_ROOT, "missing metadata key")
    missing = [c for c in MANIFEST_COLUMNS if c not in table.column_names and c not in OPTIONAL_COLUMNS]
    if missing:
        raise InputError(path, missing[0], f"missing column(s) {', '.join(missing)}")
    base = path.resolve().parent
    image_root = (base / metadata[META_IMAGE_ROOT]).resolve()
    book = metadata.get(META_ADDRESSBOOK)
    addressbook_dir = (base / book).resolve() if book else None
    pairing = _pairing_problem(metadata, addressbook_dir)
    if pairing is not None:
        raise InputError(path, META_ADDRESSBOOK_SHA256, pairing)
    frame = with_optional_columns(table.to_pandas())
    escaping = _escaping_rows(frame)
    if escaping.any():
        raise InputError(
            path, "path", f"{int(escaping.sum())} row(s) leave the image root, e.g. "
            f"{frame.loc[escaping, 'path'].iloc[0]!r}; paths must be relative to the image root without '..'",
        )  # fmt: skip
    return Manifest(path, frame, image_root, addressbook_dir, version)


def path_stays_inside(relative: str) -> bool:
    """Whether a manifest `path` names a file under the image root: relative, no '..' that climbs out
    (the same rule the readers apply). A crafted manifest must not make training open any file."""
    text = relative.replace("\\", "/")
    if not text.strip() or text.startswith("/") or PureWindowsPath(relative).drive:
        return False
    normalised = posixpath.normpath(text)
    return not (normalised == ".." or normalised.startswith("../"))


# a path none of these match stays inside: relative, not blank, no drive, no '..' segment
_MAYBE_ESCAPING = r"^\s*$|^[/\\]|^[A-Za-z]:|(^|[/\\])\.\.([/\\]|$)"


def _escaping_rows(frame: pd.DataFrame) -> np.ndarray:
    """Rows whose path leaves the image root (see `path_stays_inside`); vectorised, with the exact
    rule applied only to the few paths the pattern cannot clear."""
    paths = frame["path"]
    strings = string_array(paths)
    if strings is None:
        return np.array([isinstance(p, str) and not path_stays_inside(p) for p in paths.tolist()], dtype=bool)
    suspect = pc.fill_null(pc.match_substring_regex(strings, _MAYBE_ESCAPING), False)
    escaping = np.zeros(len(paths), dtype=bool)
    for row in np.flatnonzero(suspect.to_numpy(zero_copy_only=False)):
        escaping[row] = not path_stays_inside(strings[int(row)].as_py())
    return escaping


def _rows(mask: np.ndarray) -> str:
    rows = np.flatnonzero(mask)
    shown = ", ".join(str(r) for r in rows[:MAX_EXAMPLES])
    more = f", … {len(rows) - MAX_EXAMPLES} more" if len(rows) > MAX_EXAMPLES else ""
    return f"rows {shown}{more}"


def _examples(values: list[str]) -> str:
    shown = ", ".join(repr(v) for v in values[:MAX_EXAMPLES])
    return shown + (f", … {len(values) - MAX_EXAMPLES} more" if len(values) > MAX_EXAMPLES else "")


def frame_problems(frame: pd.DataFrame) -> list[str]:
    """Schema-level problems of a manifest frame (everything except files on disk)."""
    problems: list[str] = []
    frame = with_optional_columns(frame)
    missing = [c for c in MANIFEST_COLUMNS if c not in frame.columns]
    if missing:
        return [f"missing column(s): {', '.join(missing)}"]
    for spec in MANIFEST_SCHEMA:
        column = frame[spec.name]
        nulls = column.isna().to_numpy()
        if not spec.nullable and nulls.any():
            problems.append(f"column '{spec.name}': {int(nulls.sum())} null value(s) ({_rows(nulls)})")
        if pa.types.is_string(spec.arrow_type):
            strings = string_array(column)
            if strings is None:
                bad = np.array(
                    [not (_is_missing(v) or isinstance(v, str)) for v in column.tolist()], dtype=bool
                )
                problems.append(f"column '{spec.name}': {int(bad.sum())} non-string value(s) ({_rows(bad)})")
            elif not spec.nullable:
                blank = pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(strings)), 0)
                empty = np.asarray(pc.fill_null(blank, False).to_numpy(zero_copy_only=False), dtype=bool)
                if empty.any():
                    problems.append(
                        f"column '{spec.name}': {int(empty.sum())} empty string(s) ({_rows(empty)})"
                    )
        elif not pd.api.types.is_numeric_dtype(column.dtype) or pd.api.types.is_bool_dtype(column.dtype):
            problems.append(f"column '{spec.name}': type {column.dtype}, expected {spec.arrow_type}")
    if problems:
        return problems
    problems.extend(_value_problems(frame))
    return problems


def _value_problems(frame: pd.DataFrame) -> list[str]:
    problems: list[str] = []
    split = frame["split"].to_numpy(dtype=object)
    bad_split = ~np.isin(split, SPLITS)
    if bad_split.any():
        values = sorted({str(v) for v in split[bad_split]})
        problems.append(
            f"column 'split': values {_examples(values)} not in {'/'.join(SPLITS)} ({_rows(bad_split)})"
        )
    escaping = _escaping_rows(frame)
    if escaping.any():
        paths = frame.loc[escaping, "path"].tolist()
        problems.append(
            f"column 'path': {int(escaping.sum())} path(s) leave the image root (absolute or '..'): "
            f"{_examples(paths)} ({_rows(escaping)})"
        )
    duplicated = frame["path"].duplicated(keep=False).to_numpy()
    if duplicated.any():
        paths = sorted(set(frame.loc[duplicated, "path"].tolist()))
        problems.append(f"column 'path': {len(paths)} duplicate path(s): {_examples(paths)}")
    lat = frame["lat"].to_numpy(dtype="float64")
    lon = frame["lon"].to_numpy(dtype="float64")
    bad_lat = ~((lat >= -90.0) & (lat <= 90.0))
    bad_lon = ~((lon >= -180.0) & (lon <= 180.0))
    if bad_lat.any():
        problems.append(f"column 'lat': {int(bad_lat.sum())} value(s) outside [-90, 90] ({_rows(bad_lat)})")
    if bad_lon.any():
        problems.append(f"column 'lon': {int(bad_lon.sum())} value(s) outside [-180, 180] ({_rows(bad_lon)})")
    heading = frame["heading"].to_numpy(dtype="float64")
    bad_heading = ~np.isnan(heading) & ~((heading >= 0.0) & (heading <= 360.0))
    if bad_heading.any():
        problems.append(
            f"column 'heading': {int(bad_heading.sum())} value(s) outside [0, 360] ({_rows(bad_heading)})"
        )
    if not (bad_lat.any() or bad_lon.any()):
        problems.extend(_utm_problems(frame))
    problems.extend(_label_problems(frame))
    return problems


def _utm_problems(frame: pd.DataFrame) -> list[str]:
    """Stored UTM positions must agree with lat/lon projected in the stored zone."""
    from addressclip.geo.utm import UtmProjection

    problems: list[str] = []
    for zone, rows in frame.groupby("utm_zone", sort=True).indices.items():
        text = str(zone)
        number, band = text[:-1], text[-1:].upper()
        if (
            not number.isdigit()
            or not 1 <= int(number) <= 60
            or band not in "CDEFGHJKLMNPQRSTUVWX"
            or not band
        ):
            problems.append(f"column 'utm_zone': '{text}' is not a UTM zone like '35V' ({len(rows)} row(s))")
            continue
        projection = UtmProjection(int(number), band)
        east, north = projection.to_utm(frame["lon"].to_numpy()[rows], frame["lat"].to_numpy()[rows])
        error = np.hypot(east - frame["utm_e"].to_numpy()[rows], north - frame["utm_n"].to_numpy()[rows])
        far = ~(error <= UTM_TOLERANCE_M)
        if far.any():
            mask = np.zeros(len(frame), dtype=bool)
            mask[rows[far]] = True
            problems.append(
                f"columns 'utm_e'/'utm_n': {int(far.sum())} row(s) more than {UTM_TOLERANCE_M:g} m from "
                f"lat/lon projected in zone {text} (worst {float(np.nanmax(error)):.1f} m; {_rows(mask)})"
            )
    return problems


def _label_problems(frame: pd.DataFrame) -> list[str]:
    problems: list[str] = []
    per_id = frame.groupby("address_id", sort=True)["address"].nunique()
    conflicting = per_id[per_id > 1].index.tolist()
    if conflicting:
        problems.append(
            f"column 'address_id': {len(conflicting)} id(s) with more than one address: "
            f"{_examples([str(c) for c in conflicting])}"
        )
    train_ids = set(frame.loc[frame["split"] == "train", "address_id"].tolist())
    for split in ("val", "test"):
        ids = frame.loc[frame["split"] == split, "address_id"]
        unseen = sorted(set(ids.tolist()) - train_ids)
        if unseen:
            count = int(ids.isin(unseen).sum())
            problems.append(
                f"split '{split}': {len(unseen)} address_id(s) absent from train ({count} image(s)): "
                f"{_examples([str(u) for u in unseen])}"
            )
    return problems


def validate_manifest(
    path: str | os.PathLike[str], check_files: bool = True, decode: bool = False, progress: bool = False
) -> list[str]:
    """All problems of a manifest file, one line each (an empty list means it is valid).

    `decode`: also decode-check every image (as `build` does), not only that it exists.
    """
    path = Path(path)
    try:
        table = _read_table(path)
    except InputError as error:
        return [str(error)]
    problems: list[str] = []
    metadata = _metadata(table)
    version = metadata.get(META_SCHEMA_VERSION)
    if version not in READABLE_SCHEMA_VERSIONS:
        problems.append(
            f"metadata '{META_SCHEMA_VERSION}': "
            + (
                "missing"
                if version is None
                else f"is {version}, expected {' or '.join(READABLE_SCHEMA_VERSIONS)}"
            )
        )
    for name, arrow_field in (
        (c, table.schema.field(c)) for c in MANIFEST_COLUMNS if c in table.column_names
    ):
        expected = _SPEC_BY_NAME[name].arrow_type
        actual = arrow_field.type
        if not (actual == expected or (pa.types.is_string(expected) and pa.types.is_large_string(actual))):
            problems.append(f"column '{name}': type {actual}, expected {expected}")
    frame = table.to_pandas()
    problems.extend(frame_problems(frame))
    base = path.resolve().parent
    root_text = metadata.get(META_IMAGE_ROOT)
    if root_text is None:
        problems.append(f"metadata '{META_IMAGE_ROOT}': missing")
    else:
        image_root = (base / root_text).resolve()
        if not image_root.is_dir():
            problems.append(f"metadata '{META_IMAGE_ROOT}': folder {image_root} not found")
        elif check_files and "path" in frame.columns:
            missing = _missing_file_problems(frame, image_root)
            problems.extend(missing)
            if decode and not missing:
                problems.extend(_decode_problems(frame, image_root, progress))
    book = metadata.get(META_ADDRESSBOOK)
    if book and not (base / book).is_dir():
        problems.append(f"metadata '{META_ADDRESSBOOK}': folder {(base / book).resolve()} not found")
    elif book:
        problems.extend(_addressbook_problems(frame, metadata, (base / book).resolve()))
    return problems


def _addressbook_problems(frame: pd.DataFrame, metadata: dict[str, str], folder: Path) -> list[str]:
    """The manifest must come from the same build as its AddressBook, and (unless the book only
    supplies geometry for given addresses) every address id must be one of the book's rows."""
    book_file = _addressbook_file(folder)
    if not book_file.is_file():  # a problem only when the manifest was written against a book
        found = META_ADDRESSBOOK_SHA256 not in metadata
        return [] if found else [f"metadata '{META_ADDRESSBOOK}': {book_file} not found"]
    problems = []
    pairing = _pairing_problem(metadata, folder)
    if pairing is not None:
        problems.append(f"metadata '{META_ADDRESSBOOK_SHA256}': {pairing}")
    if metadata.get(META_ADDRESSBOOK_IDS, "all") == "all" and "address_id" in frame.columns:
        try:
            known = _addressbook_ids(book_file)
        except InputError as error:
            return [*problems, str(error)]
        ids = frame["address_id"]
        absent = sorted({str(v) for v in ids.tolist()} - known)
        if absent:
            count = int(ids.astype(str).isin(absent).sum())
            problems.append(
                f"column 'address_id': {len(absent)} id(s) ({count} image(s)) are not in the AddressBook "
                f"{book_file}: {_examples(absent)}"
            )
    return problems


def _missing_file_problems(frame: pd.DataFrame, image_root: Path) -> list[str]:
    missing = [p for p in frame["path"].tolist() if isinstance(p, str) and not (image_root / p).is_file()]
    if not missing:
        return []
    return [f"column 'path': {len(missing)} image file(s) not found under {image_root}: {_examples(missing)}"]


def _decode_problems(frame: pd.DataFrame, image_root: Path, progress: bool) -> list[str]:
    from addressclip.data.imagecheck import check_images

    paths = [p for p in frame["path"].tolist() if isinstance(p, str) and path_stays_inside(p)]
    check = check_images([image_root / p for p in paths], progress=progress)
    if not check.problems:
        return []
    kinds = ", ".join(f"{k} {v}" for k, v in check.to_dict()["failed_by_kind"].items())  # type: ignore[union-attr]
    bad = [paths[i] for i in sorted(check.problems)]
    return [f"column 'path': {len(bad)} image file(s) do not decode ({kinds}): {_examples(bad)}"]
