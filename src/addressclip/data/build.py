"""Build a dataset folder from geotagged images: read -> label -> merge sparse -> split -> write.

Output folder:
    manifest.parquet   one row per image (see addressclip.data.manifest)
    addressbook/       the AddressBook (address classes with geometry), when OSM was used
    build_report.json  counts, skipped records with reasons, unlabelled points with reasons,
                       class coverage per split

Addresses come from OpenStreetMap (AddressBook.from_osm + label) for the cosplace/csv/exif formats,
and from the annotation file for the json format (`addresses='given'`; also possible for a CSV with
an `address` column). With given addresses an OSM extract is optional and only saves the street
geometry next to the manifest: the book's address_ids are then *not* the manifest's (the report
says so under `addressbook_summary.ids_match_manifest`). Nothing is written until every step has
succeeded, and each file is written atomically.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from addressclip.atomic import to_jsonable, write_text_atomic
from addressclip.data.imagecheck import check_images
from addressclip.data.manifest import MANIFEST_COLUMNS, frame_to_table, with_optional_columns, write_manifest
from addressclip.data.readers import READERS, ReaderSpec, ReadResult
from addressclip.data.splits import SplitConfig, assign_splits
from addressclip.digest import short_id
from addressclip.errors import AddressclipError, ConfigError, InputError

if TYPE_CHECKING:
    from addressclip.geo.addressbook import AddressBook
    from addressclip.geo.partition import PartitionConfig

ADDRESS_SOURCES = ("osm", "given")
LOCK_FILE = ".build.lock"
LOCK_TIMEOUT_S = 600.0
# Extra image-table columns worth keeping in the manifest.
KEPT_EXTRA_COLUMNS = ("role", "address_alt")
MAX_LISTED_UNLABELLED = 1000


@dataclass
class BuildReport:
    """What a build did, in numbers; `to_dict()` is what build_report.json holds."""

    format: str
    out_dir: Path
    manifest_path: Path
    addressbook_dir: Path | None
    report_path: Path
    address_source: str
    counts: dict[str, int] = field(default_factory=dict)
    read: dict[str, object] = field(default_factory=dict)
    labelling: dict[str, object] = field(default_factory=dict)
    addressbook: dict[str, object] | None = None
    splits: dict[str, object] = field(default_factory=dict)
    options: dict[str, object] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        return {
            "format": self.format,
            "address_source": self.address_source,
            "manifest": str(self.manifest_path),
            "addressbook": None if self.addressbook_dir is None else str(self.addressbook_dir),
            "options": self.options,
            "counts": self.counts,
            "read": self.read,
            "labelling": self.labelling,
            "addressbook_summary": self.addressbook,
            "splits": self.splits,
        }

    def summary_lines(self) -> list[str]:
        c = self.counts
        lines = [
            f"read {c.get('seen', 0)} records: {c.get('read', 0)} images kept, "
            f"{c.get('read_skipped', 0)} skipped",
        ]
        check = self.read.get("decode_check")
        if self.read.get("files_checked") is False:
            lines.append("files neither stat-ed nor decoded: the paths list was trusted (--trust-list)")
        if isinstance(check, dict):
            failed = ", ".join(f"{k} {v}" for k, v in check["failed_by_kind"].items()) or "none"
            lines.append(
                f"decode check: {check['checked']} images at {check['images_per_second']:.0f} images/s "
                f"({check['workers']} threads); undecodable: {failed}"
            )
        if self.address_source == "osm":
            reasons = self.labelling.get("unlabelled_by_reason", {})
            detail = ", ".join(f"{k} {v}" for k, v in sorted(reasons.items())) or "none"  # type: ignore[union-attr]
            lines.append(
                f"labelled {c.get('labelled', 0)} images; unlabelled {c.get('unlabelled', 0)} ({detail})"
            )
        per_split = ", ".join(f"{s} {c.get(s, 0)}" for s in ("train", "val", "test"))
        lines.append(
            f"manifest: {c.get('images', 0)} images ({per_split}), {c.get('addresses', 0)} addresses, "
            f"{c.get('streets', 0)} streets, {c.get('locations', 0)} locations; "
            f"dropped {c.get('dropped_unseen', 0)} val/test images with addresses absent from train"
        )
        lines.append(f"wrote {self.manifest_path}, {self.report_path}")
        return lines


def stable_id(prefix: str, text: str) -> str:
    """Short id that depends only on `text` (same annotation -> same id on every build)."""
    return prefix + short_id(text)


def reader_spec(reader: str | ReaderSpec) -> ReaderSpec:
    """The registered reader of a format name (or the spec itself); ConfigError naming the known ones."""
    if isinstance(reader, ReaderSpec):
        return reader
    spec = READERS.get(reader)
    if spec is None:
        raise ConfigError(f"unknown format '{reader}' (known: {', '.join(READERS)})")
    return spec


def read_images(
    reader: str | ReaderSpec,
    images: Path,
    reader_options: Mapping[str, object] | None = None,
    *,
    strict: bool = False,
    progress: bool = True,
) -> ReadResult:
    """Read `images` with a registered reader, giving it its own options (checked against its spec)."""
    spec = reader_spec(reader)
    options = spec.options_for(reader_options)
    return spec.read(Path(images), strict=strict, progress=progress, **options)


def _drop_undecodable(read: ReadResult, image_root: Path, progress: bool) -> dict[str, object]:
    """Decode-check every image read; a file that does not decode is a counted skip (by kind), or
    the one-line error of strict mode. Returns the check's numbers for the build report."""
    paths = read.frame["path"].astype(str).tolist()
    check = check_images([image_root / p for p in paths], progress=progress)
    for index, (kind, reason) in sorted(check.problems.items()):
        read.report.skip(paths[index], "file", kind, reason)
    if check.problems:
        read.frame = read.frame.drop(index=read.frame.index[sorted(check.problems)]).reset_index(drop=True)
        read.report.kept = len(read.frame)
    return check.to_dict()


def _osm_source(osm: Path | None, world: str | None) -> Path | None:
    if osm is not None and world is not None:
        raise ConfigError("give either --osm or --world, not both")
    if world is not None:
        from addressclip.resources import bundled_extract

        return bundled_extract(world)
    if osm is not None and not Path(osm).is_file():
        raise InputError(osm, None, "OSM extract not found")
    return None if osm is None else Path(osm)


def _load_addressbook(osm_path: Path, partition: PartitionConfig) -> AddressBook:
    from addressclip.geo.addressbook import AddressBook

    return AddressBook.from_osm(osm_path, partition)


def _label_with_osm(
    frame: pd.DataFrame, book: AddressBook, max_dist_m: float, min_points: int, report: BuildReport
) -> tuple[pd.DataFrame, AddressBook]:
    """Assign each image its sub-street; unlabelled images are dropped and listed with the reason."""
    lat = frame["lat"].to_numpy(dtype="float64")
    lon = frame["lon"].to_numpy(dtype="float64")
    result = book.label(lat, lon, max_dist_m=max_dist_m)
    reasons = np.asarray(result.reason).astype(str)
    unlabelled = np.flatnonzero(np.asarray(result.index) < 0)
    by_reason = pd.Series(reasons[unlabelled]).value_counts().to_dict() if len(unlabelled) else {}
    report.labelling = {
        "max_dist_m": max_dist_m,
        "min_points": min_points,
        "labelled_before_merge": int(len(frame) - len(unlabelled)),
        "unlabelled_by_reason": {str(k): int(v) for k, v in by_reason.items()},
        "unlabelled": [
            {
                "path": str(frame["path"].iat[i]),
                "lat": float(lat[i]),
                "lon": float(lon[i]),
                "reason": str(reasons[i]),
                "distance_m": _finite_or_none(result.distance_m[i]),
            }
            for i in unlabelled[:MAX_LISTED_UNLABELLED]
        ],
        "unlabelled_truncated": bool(len(unlabelled) > MAX_LISTED_UNLABELLED),
    }
    classes_before = len(np.unique(result.index[result.index >= 0]))
    merged_book, index = book.merge_sparse(
        np.asarray(result.index, dtype=np.int64), frame["location_id"].to_numpy(dtype=object), min_points
    )
    index = np.asarray(index, dtype=np.int64)
    keep = index >= 0
    labelled = frame.loc[keep].reset_index(drop=True)
    rows = merged_book.table.iloc[index[keep]].reset_index(drop=True)
    for column in ("address_id", "address", "street_id", "street", "neighbourhood"):
        labelled[column] = rows[column].to_numpy(dtype=object)
    report.labelling["addresses_before_merge"] = classes_before
    report.labelling["addresses_after_merge"] = int(labelled["address_id"].nunique())
    report.counts["labelled"] = len(labelled)
    report.counts["unlabelled"] = len(unlabelled)
    return labelled, merged_book


def _finite_or_none(value: object) -> float | None:
    number = float(value)  # type: ignore[arg-type]
    return number if np.isfinite(number) else None


def _label_from_input(frame: pd.DataFrame, source: str, report: BuildReport) -> pd.DataFrame:
    """Use the addresses the input gives (annotation JSON, or a CSV `address` column)."""
    if "address" not in frame.columns or frame["address"].isna().all():
        raise ConfigError(f"addresses from the input were asked for, but the {source} data has no 'address'")
    missing = frame["address"].isna().to_numpy()
    if missing.any():
        report.labelling["unlabelled_by_reason"] = {"no_address": int(missing.sum())}
    labelled = frame.loc[~missing].reset_index(drop=True)
    if "street" not in labelled.columns:
        labelled["street"] = None
    street = labelled["street"].where(labelled["street"].notna(), labelled["address"])
    labelled["street"] = street.to_numpy(dtype=object)
    labelled["address_id"] = [stable_id("a", a) for a in labelled["address"]]
    labelled["street_id"] = [stable_id("s", s) for s in labelled["street"]]
    if "neighbourhood" not in labelled.columns:
        labelled["neighbourhood"] = None
    report.counts["labelled"] = len(labelled)
    report.counts["unlabelled"] = int(missing.sum())
    return labelled


def _add_utm(frame: pd.DataFrame, book: AddressBook | None) -> pd.DataFrame:
    from addressclip.geo.utm import UtmProjection

    if book is not None:
        projection = book.projection
    else:
        projection = UtmProjection.for_point(float(frame["lon"].median()), float(frame["lat"].median()))
    east, north = projection.to_utm(frame["lon"].to_numpy(float), frame["lat"].to_numpy(float))
    frame = frame.copy()
    frame["utm_e"] = np.asarray(east, dtype="float64")
    frame["utm_n"] = np.asarray(north, dtype="float64")
    frame["utm_zone"] = projection.label
    return frame


def build_dataset(
    reader: str | ReaderSpec,
    images: str | Path,
    out: str | Path,
    *,
    reader_options: Mapping[str, object] | None = None,
    osm: str | Path | None = None,
    world: str | None = None,
    addressbook: AddressBook | None = None,
    addresses: str | None = None,
    max_dist_m: float = 30.0,
    min_points: int = 5,
    partition: PartitionConfig | None = None,
    split: SplitConfig | None = None,
    strict: bool = False,
    progress: bool = True,
) -> BuildReport:
    """Build `out/manifest.parquet` (+ `addressbook/`, `build_report.json`) from geotagged images.

    `reader`: a format of `READERS` (or its spec); `reader_options`: that reader's own options (e.g.
    `{"csv_path": ...}` for 'csv'), checked against what it declares. `addresses`: 'osm' (label GPS
    against the map) or 'given' (use the input's own address column); default: the reader's.
    The map is an OSM extract (`osm` or `world`, partitioned with `partition`, default
    `PartitionConfig()`) or a ready `addressbook` (e.g. the renderer's, so a city is cut once).
    """
    from addressclip.geo.partition import PartitionConfig

    spec = reader_spec(reader)
    format = spec.name
    options = spec.options_for(reader_options)
    if addressbook is not None and (osm is not None or world is not None):
        raise ConfigError("give either an AddressBook or --osm/--world, not both")
    if addressbook is not None and partition is not None and partition != addressbook.config:
        raise ConfigError("partition rules were given with a ready AddressBook cut with other rules")
    partition = addressbook.config if addressbook is not None else (partition or PartitionConfig())
    images = Path(images)
    out = Path(out)
    for folder in (out, *out.parents):  # a file anywhere up the path (FILE/sub) cannot hold the dataset
        if folder.exists():
            if not folder.is_dir():
                raise ConfigError(f"--out {out}: {folder} exists and is not a folder; give a folder")
            break
    address_source = addresses or spec.addresses
    if address_source not in ADDRESS_SOURCES:
        raise ConfigError(f"address source '{address_source}' is not one of {', '.join(ADDRESS_SOURCES)}")
    if max_dist_m <= 0 or min_points < 1:
        raise ConfigError("--max-dist-m must be positive and --min-points at least 1")
    split = split or SplitConfig()
    osm_path = _osm_source(None if osm is None else Path(osm), world)
    if addressbook is not None and addressbook.source:
        osm_path = Path(addressbook.source)
    if address_source == "osm" and osm_path is None and addressbook is None:
        raise ConfigError(
            f"format '{format}' labels images from OpenStreetMap: give --osm PBF or --world NAME"
        )

    report = BuildReport(
        format=format,
        out_dir=out,
        manifest_path=out / "manifest.parquet",
        addressbook_dir=(out / "addressbook") if osm_path is not None or addressbook is not None else None,
        report_path=out / "build_report.json",
        address_source=address_source,
    )
    report.options = {
        "images": str(images),
        "reader_options": dict(options),
        "osm": None if osm_path is None else str(osm_path),
        "max_dist_m": max_dist_m,
        "min_points": min_points,
        "partition": partition.to_dict(),
        "split": dataclasses.asdict(split),
        "strict": strict,
    }
    read = spec.read(images, strict=strict, progress=progress, **options)
    # a trusted list (--trust-list) is taken as it is: no file is opened, so none is decoded either
    decode_check = _drop_undecodable(read, images, progress) if read.files_checked else None
    report.read = read.report.to_dict()
    report.read["decode_check"] = decode_check
    report.read["files_checked"] = read.files_checked
    report.counts.update(seen=read.report.seen, read=len(read.frame), read_skipped=read.report.skipped)
    if read.frame.empty:
        raise AddressclipError(
            f"no usable image was read from {images} ({_skip_summary(read)}); nothing written"
        )

    book = addressbook
    if book is None and osm_path is not None:
        book = _load_addressbook(osm_path, partition)
    if address_source == "osm":
        assert book is not None
        frame, book = _label_with_osm(read.frame, book, max_dist_m, min_points, report)
    else:
        frame = _label_from_input(read.frame, format, report)
    if frame.empty:
        raise AddressclipError(
            f"none of the {len(read.frame)} images could be labelled "
            f"({report.labelling.get('unlabelled_by_reason')}); check --max-dist-m and that the images "
            "lie inside the OSM extract; nothing written"
        )
    frame = _add_utm(frame, book)
    frame, split_report = assign_splits(frame, split)
    report.splits = split_report.to_dict()
    if not (frame["split"] == "train").any():
        raise AddressclipError("the split left no training images; nothing written")

    columns = list(MANIFEST_COLUMNS) + [c for c in KEPT_EXTRA_COLUMNS if c in frame.columns]
    frame = with_optional_columns(frame)[columns]
    frame_to_table(frame)  # check everything before the first file is written
    if book is not None:
        report.addressbook = to_jsonable(book.summary(_book_index(book, frame)))
        # With given addresses the book only supplies street geometry: its ids are not the manifest's.
        report.addressbook["ids_match_manifest"] = address_source == "osm"  # type: ignore[index]
    _fill_counts(report, frame, split_report.dropped_unseen_images)
    with output_lock(out):
        if book is not None:
            book.save(report.addressbook_dir)
        # the manifest records the digest of the book just written: a manifest left beside another
        # build's book (a kill between these files) is refused on read and by `validate`
        ids = "all" if address_source == "osm" else "geometry_only"
        write_manifest(frame, report.manifest_path, images, report.addressbook_dir, addressbook_ids=ids)
        write_text_atomic(
            report.report_path, json.dumps(to_jsonable(report.to_dict()), indent=2, ensure_ascii=False)
        )
    return report


@contextmanager
def output_lock(out: Path, timeout_s: float = LOCK_TIMEOUT_S) -> Iterator[None]:
    """Hold the exclusive lock of a dataset folder while its files are written, so that two builds
    into one folder write one after the other instead of interleaving their files."""
    from filelock import FileLock, Timeout

    out.mkdir(parents=True, exist_ok=True)
    lock = FileLock(out / LOCK_FILE)
    try:
        lock.acquire(timeout=timeout_s)
    except Timeout:
        raise AddressclipError(
            f"{out}: another build is still writing this folder after {timeout_s:g} s "
            f"(lock {out / LOCK_FILE}); wait for it or choose another --out"
        ) from None
    try:
        yield
    finally:
        lock.release()


def _book_index(book: AddressBook, frame: pd.DataFrame) -> np.ndarray:
    """Row of each manifest image in the book's table (for the book's per-address summary)."""
    position = pd.Series(np.arange(len(book.table)), index=book.table["address_id"].to_numpy())
    return position.reindex(frame["address_id"].to_numpy()).fillna(-1).to_numpy(dtype=np.int64)


def _fill_counts(report: BuildReport, frame: pd.DataFrame, dropped: dict[str, int]) -> None:
    counts = frame["split"].value_counts()
    report.counts.update(
        images=len(frame),
        train=int(counts.get("train", 0)),
        val=int(counts.get("val", 0)),
        test=int(counts.get("test", 0)),
        addresses=int(frame["address_id"].nunique()),
        streets=int(frame["street_id"].nunique()),
        locations=int(frame["location_id"].nunique()),
        dropped_unseen=int(sum(dropped.values())),
    )


def _skip_summary(read: ReadResult) -> str:
    counts = read.report.skip_counts
    if not counts:
        return "no images found"
    return "skipped: " + ", ".join(f"{kind} {n}" for kind, n in counts.most_common())
