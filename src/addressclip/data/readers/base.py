"""What every image reader returns: an image table plus a report of the records it skipped and why.

Readers never drop a record silently: each skip names the file (and line), the field and the reason,
so that a build report can say exactly what was left out. In strict mode the first bad record stops
the read with a one-line `InputError` instead.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from addressclip.errors import ConfigError, InputError

if TYPE_CHECKING:  # imported where used: the CLI lists the readers without loading pandas
    import numpy as np
    import pandas as pd

# Columns of an image table, in order. Optional ones appear only when the source provides them.
IMAGE_TABLE_COLUMNS: tuple[str, ...] = ("path", "lat", "lon", "heading", "caption", "location_id")
OPTIONAL_IMAGE_COLUMNS: tuple[str, ...] = ("address", "address_alt", "street", "split", "role")

# A skip report keeps this many individual records; the counts always cover all of them.
MAX_LISTED_SKIPS = 1000


@dataclass(frozen=True)
class Skip:
    """One record left out: where it came from, which field was wrong and why."""

    source: str
    field: str | None
    kind: str  # short machine-friendly category, e.g. 'malformed_name', 'missing_gps'
    reason: str  # human-readable detail, e.g. "'abc' is not a number"
    line: int | None = None

    @property
    def where(self) -> str:
        return self.source if self.line is None else f"{self.source}:{self.line}"

    def __str__(self) -> str:
        field_part = "" if self.field is None else f" field '{self.field}':"
        return f"{self.where}:{field_part} {self.reason}"

    def to_dict(self) -> dict[str, object]:
        return {
            "source": self.source,
            "line": self.line,
            "field": self.field,
            "kind": self.kind,
            "reason": self.reason,
        }


@dataclass
class ReadReport:
    """Counts of what a reader saw, kept and skipped (with reasons)."""

    reader: str
    strict: bool = False
    seen: int = 0
    kept: int = 0
    skips: list[Skip] = field(default_factory=list)
    skip_counts: Counter[str] = field(default_factory=Counter)
    notes: Counter[str] = field(default_factory=Counter)

    def skip(
        self, source: object, field: str | None, kind: str, reason: str, line: int | None = None
    ) -> None:
        """Record a skipped record, or raise a one-line InputError in strict mode."""
        record = Skip(str(source), field, kind, reason, line)
        if self.strict:
            raise InputError(record.where, field, reason)
        self.skip_counts[kind] += 1
        if len(self.skips) < MAX_LISTED_SKIPS:
            self.skips.append(record)

    @property
    def skipped(self) -> int:
        return sum(self.skip_counts.values())

    def to_dict(self) -> dict[str, object]:
        return {
            "reader": self.reader,
            "seen": self.seen,
            "kept": self.kept,
            "skipped": self.skipped,
            "skip_counts": dict(sorted(self.skip_counts.items())),
            "skips": [s.to_dict() for s in self.skips],
            "skips_truncated": self.skipped > len(self.skips),
            "notes": dict(sorted(self.notes.items())),
        }


@dataclass
class ReadResult:
    """An image table (see IMAGE_TABLE_COLUMNS) and the report of how it was read."""

    frame: pd.DataFrame
    report: ReadReport
    # False when the reader trusted its list (`--trust-list`): the files were neither stat-ed nor
    # decoded, so the build skips its decode check too
    files_checked: bool = True


def make_image_table(records: list[dict[str, object]], extra_columns: Iterable[str] = ()) -> pd.DataFrame:
    """Build an image table with the standard columns (and dtypes) from per-image dicts."""
    import pandas as pd

    columns = list(IMAGE_TABLE_COLUMNS) + [c for c in extra_columns if c not in IMAGE_TABLE_COLUMNS]
    frame = pd.DataFrame.from_records(records, columns=columns)
    frame["lat"] = frame["lat"].astype("float64")
    frame["lon"] = frame["lon"].astype("float64")
    frame["heading"] = pd.to_numeric(frame["heading"], errors="coerce").astype("float32")
    for name in columns:
        if name not in ("lat", "lon", "heading"):
            frame[name] = frame[name].astype("object").where(frame[name].notna(), None)
    return frame


def parse_number(text: object) -> float | None:
    """A finite float from text, or None when it is not one (so callers can say which field)."""
    if text is None:
        return None
    if isinstance(text, (int, float)):
        value = float(text)
    else:
        stripped = str(text).strip()
        if not stripped:
            return None
        try:
            value = float(stripped)
        except ValueError:
            return None
    return value if math.isfinite(value) else None


def gps_problem(lat: float | None, lon: float | None) -> tuple[str, str] | None:
    """(field, reason) when a coordinate pair is unusable, else None."""
    if lat is None:
        return "lat", "missing or not a number"
    if lon is None:
        return "lon", "missing or not a number"
    if not -90.0 <= lat <= 90.0:
        return "lat", f"{lat} is outside [-90, 90]"
    if not -180.0 <= lon <= 180.0:
        return "lon", f"{lon} is outside [-180, 180]"
    return None


def gps_location_id(lat: float, lon: float) -> str:
    """Capture-point id from GPS rounded to 1e-5 degrees (about a metre): equal GPS -> same location."""
    return f"gps:{lat:.5f}:{lon:.5f}"


def gps_location_ids(lat: np.ndarray, lon: np.ndarray) -> list[str]:
    return [gps_location_id(a, b) for a, b in zip(lat.tolist(), lon.tolist(), strict=True)]


def relative_image_path(raw: str, image_root: Path) -> str | None:
    """`raw` as a POSIX path relative to `image_root`, or None when it points outside the root."""
    text = raw.strip().replace("\\", "/")
    if not text:
        return None
    candidate = Path(text)
    if candidate.is_absolute():
        try:
            candidate = candidate.resolve().relative_to(image_root.resolve())
        except ValueError:
            return None
    normalised = os.path.normpath(candidate.as_posix()).replace(os.sep, "/")
    if normalised.startswith("../") or normalised == "..":
        return None
    return normalised


JPEG_SUFFIXES = (".jpg", ".jpeg")


def list_jpegs(image_root: Path) -> list[str]:
    """All JPEG files under `image_root` (recursive, sorted), as POSIX paths relative to it."""
    found: list[str] = []
    for folder, _dirs, files in os.walk(image_root):
        for name in files:
            if name.lower().endswith(JPEG_SUFFIXES):
                found.append(Path(folder, name).relative_to(image_root).as_posix())
    found.sort()
    return found


def read_paths_list(paths_file: Path, image_root: Path, report: ReadReport) -> list[str]:
    """Relative image paths from a sidecar list (one per line; blank lines and '#' comments ignored).

    Read instead of walking the folder: on millions of files a listing is much faster than a glob,
    and it fixes the order. Lines that point outside the image root are counted skips.
    """
    try:
        text = paths_file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(paths_file, None, "paths list not found") from None
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(paths_file, None, f"cannot read paths list ({error})") from None
    paths: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        relative = relative_image_path(stripped, image_root)
        if relative is None:
            report.skip(paths_file, "path", "outside_root", f"'{stripped}' is outside {image_root}", number)
            continue
        paths.append(relative)
    return paths


def require_folder(path: Path, what: str = "images") -> Path:
    if not path.exists():
        raise InputError(path, None, f"{what} folder not found")
    if not path.is_dir():
        raise InputError(path, None, f"{what} path is not a folder")
    return path


# ------------------------------------------------------------------------------ reader registry


@dataclass(frozen=True)
class ReaderOption:
    """One option a reader takes: the keyword its `read` receives and the command-line flag for it.

    Several readers may declare the same flag (e.g. `--paths-list`); they must agree on its kind, and
    each says itself whether it needs it (`required`, checked by `ReaderSpec.options_for`).
    """

    name: str  # keyword of the reader's `read` and the parsed argument's dest
    flag: str  # e.g. '--paths-list'
    help: str
    kind: str = "path"  # 'path' (a file), 'text' or 'switch' (a store_true flag)
    required: bool = False
    metavar: str | None = None
    hint: str = ""  # what the value looks like, for the "needs FLAG" message

    def add_to(self, group, formats: Sequence[str]) -> None:
        """Add this option's flag to an argparse group, naming the formats that use it."""
        used_by = f" (format {', '.join(formats)})"
        if self.kind == "switch":
            group.add_argument(self.flag, dest=self.name, action="store_true", help=self.help + used_by)
        else:
            value_type = Path if self.kind == "path" else str
            group.add_argument(
                self.flag, dest=self.name, type=value_type, metavar=self.metavar, help=self.help + used_by
            )


@dataclass(frozen=True)
class ReaderSpec:
    """An input format: its read function, its options and where its addresses come from by default.

    `read(images, *, strict, progress, **options)` gets exactly the options declared here (missing
    optional ones as None/False). A new format is one module that defines a `ReaderSpec` plus one line
    in `addressclip.data.readers.READERS`.
    """

    name: str
    read: Callable[..., ReadResult]
    options: tuple[ReaderOption, ...] = ()
    addresses: str = "osm"  # default address source: 'osm' (label GPS on the map) or 'given'
    help: str = ""

    def options_for(self, given: Mapping[str, object] | None) -> dict[str, object]:
        """Check `given` against the declared options: unknown keys and missing required ones are
        one-line ConfigErrors naming the flag; returns every declared option (defaults filled in)."""
        given = dict(given or {})
        known = {option.name: option for option in self.options}
        unknown = sorted(set(given) - set(known))
        if unknown:
            names = ", ".join(known) or "none"
            raise ConfigError(
                f"format '{self.name}' takes no option {', '.join(unknown)} (its options: {names})"
            )
        values: dict[str, object] = {}
        for option in self.options:
            value = given.get(option.name)
            if option.kind == "switch":
                value = bool(value)
            elif value is not None:
                value = Path(value) if option.kind == "path" else str(value)
            if option.required and value is None:
                metavar = option.metavar or option.name.upper()
                raise ConfigError(
                    f"format '{self.name}' needs {option.flag} {metavar} {option.hint}".rstrip()
                )
            values[option.name] = value
        return values


TRUST_LIST_OPTION = ReaderOption(
    "trust_list",
    "--trust-list",
    "trust the paths list: no file is stat-ed or decoded, names are parsed vectorised "
    "(for lists of millions of images; needs --paths-list or a sidecar list)",
    kind="switch",
)

# shared by the formats that can read a listing instead of walking the folder
PATHS_LIST_OPTION = ReaderOption(
    "paths_list", "--paths-list", "sidecar list of image paths, read instead of globbing", metavar="FILE"
)
