"""`render_world`: OSM extract -> street-view dataset in the CosPlace layout, with manifest and references.

Steps (each output file is written atomically; `world.json` says `"complete": true` only once
everything is written, so an interrupted render is redone rather than reused; a non-empty folder
without `world.json` is refused, so a render never deletes files it did not write):

1. read the extract, build its AddressBook (the same partition `addressclip build` uses) and the scene;
2. lay capture points along the named streets; label them with the AddressBook, merge sparse
   sub-streets and split by location exactly as the data layer does, keeping only locations that
   will be in the manifest;
3. render every view in worker processes into `images/{train,val,test}/{database,queries}/` with
   CosPlace `@` names, plus the sidecar `images/images_paths.txt`;
4. run `addressclip.data.build.build_dataset('cosplace')` on that folder with the AddressBook of
   step 1 (the city is partitioned once) — the manifest comes from the very code path a user's
   CosPlace dataset goes through — then put the captions in;
5. write the reference table, the contact sheet and the capture map, then `world.json`.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from addressclip.atomic import write_text_atomic
from addressclip.errors import AddressclipError
from addressclip.world.captures import Captures, capture_points, world_tag
from addressclip.world.params import RenderParams
from addressclip.world.scene import Scene, build_scene

SPLIT_FOLDERS = {"train": "train/database", "val": "val/queries", "test": "test/queries"}
SIDECAR_NAME = "images_paths.txt"
WORLD_FILE = "world.json"
TIMESTAMP = "202401"  # the CosPlace timestamp field: fixed, so names do not depend on the clock


@dataclass
class RenderResult:
    out: Path
    manifest: Path
    images: int
    locations: int
    addresses: int
    reused: bool
    seconds: float
    render_seconds: float
    images_per_second: float
    workers: int
    params: RenderParams
    reference: dict[str, object] = field(default_factory=dict)
    pictures: dict[str, Path] = field(default_factory=dict)

    def summary_lines(self) -> list[str]:
        head = "reused" if self.reused else f"rendered in {self.seconds:.1f} s"
        lines = [
            f"{head}: {self.images} images, {self.locations} locations, {self.addresses} addresses "
            f"({self.params.world}, {self.params.width}x{self.params.height}, seed {self.params.seed})",
        ]
        if not self.reused:
            lines.append(f"render: {self.images_per_second:.0f} images/s on {self.workers} worker(s)")
        if self.reference:
            ref = self.reference
            lines.append(
                f"reference SSA-1 on test: chance {ref['chance_ssa1']:.2%}, "
                f"majority {ref['majority_ssa1']:.2%}, raw-pixel NN {ref['pixel_nn_ssa1']:.2%}"
            )
        lines.append(f"wrote {self.manifest}")
        return lines


def render_world(
    world: str | Path,
    out: str | Path,
    *,
    seed: int = 0,
    size: int | tuple[int, int] | str = 128,
    spacing_m: float | None = None,
    views: int | None = None,
    workers: int | None = None,
    crop_half_side_m: float | None = None,
    jpeg_quality: int = 90,
    split_ratios: tuple[float, float, float] = (0.8, 0.1, 0.1),
    min_points_per_address: int = 5,
    captioner: str = "scene",
    partition=None,
    bbox=None,
    force: bool = False,
    pictures: bool = True,
    progress: bool = True,
) -> RenderResult:
    """Render `world` ('tiny', 'demo' or a PATH.osm.pbf) into `out` as a CosPlace-format dataset.

    `partition` (a `geo.partition.PartitionConfig`, default rules when None) cuts the streets into
    addresses. `bbox` (a `geo.bbox.BBox` or S,W,N,E tuple) renders only that part of the extract.
    Reuses an existing render in `out` when its `world.json` has the same parameter hash (unless
    `force`). Raises ConfigError/InputError with a one-line message on bad parameters or input.
    """
    started = time.perf_counter()
    params = RenderParams.resolve(
        world,
        seed=seed,
        size=size,
        spacing_m=spacing_m,
        views=views,
        crop_half_side_m=crop_half_side_m,
        jpeg_quality=jpeg_quality,
        split_ratios=split_ratios,
        min_points_per_address=min_points_per_address,
        captioner=captioner,
        partition=partition,
        bbox=bbox,
    )
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise AddressclipError(f"{out}: output path exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / WORLD_FILE).is_file():
        raise AddressclipError(
            f"{out}: folder is not empty and holds no render ({WORLD_FILE}); choose an empty or new folder"
        )
    if not force:
        cached = load_cached(out, params)
        if cached is not None:
            return cached
    from addressclip.world.captions import load_captioner

    external_captioner = load_captioner(captioner)  # fail on a bad --captioner before rendering

    out.mkdir(parents=True, exist_ok=True)
    # from here on `out` holds no complete render (but is still marked as ours, so it can be redone)
    write_text_atomic(out / WORLD_FILE, json.dumps({"hash": params.hash, "complete": False}) + "\n")
    book, scene = prepare_world(params)
    plan = plan_captures(scene, book, params)
    for stale in out.glob(".staging-*"):  # left by an interrupted render
        shutil.rmtree(stale, ignore_errors=True)
    staging = out / f".staging-{params.hash}"
    images_dir = staging / "images"
    images_dir.mkdir(parents=True)

    from addressclip.world.workers import render_all

    render_started = time.perf_counter()
    records, used_workers = render_all(scene, plan, params, images_dir, workers=workers, progress=progress)
    render_seconds = time.perf_counter() - render_started
    paths = sorted(r["path"] for r in records)
    write_text_atomic(images_dir / SIDECAR_NAME, "".join(p + "\n" for p in paths))

    final_images = out / "images"
    if final_images.exists():
        shutil.rmtree(final_images)
    os.replace(images_dir, final_images)
    shutil.rmtree(staging, ignore_errors=True)

    manifest_path = build_manifest(out, final_images, params, records, progress, book)
    if external_captioner is not None:
        from addressclip.world.captions import fill_manifest_captions

        fill_manifest_captions(manifest_path, external_captioner, overwrite=True, progress=progress)

    from addressclip.data.manifest import read_manifest
    from addressclip.world.reference import reference_table, write_reference

    frame = read_manifest(manifest_path).frame
    thumbs = {r["path"]: r["thumbnail"] for r in records}
    reference = reference_table(frame, thumbs)
    write_reference(out, reference)
    picture_paths: dict[str, Path] = {}
    if pictures:
        from addressclip.world.pictures import capture_map, contact_sheet

        picture_paths["contact_sheet"] = contact_sheet(
            frame, final_images, out / "contact_sheet.png", seed=params.seed
        )
        picture_paths["capture_map"] = capture_map(frame, scene, out / "capture_map.png", title=params.world)
    seconds = time.perf_counter() - started
    result = RenderResult(
        out=out,
        manifest=manifest_path,
        images=len(frame),
        locations=int(frame["location_id"].nunique()),
        addresses=int(frame["address_id"].nunique()),
        reused=False,
        seconds=seconds,
        render_seconds=render_seconds,
        images_per_second=len(records) / max(render_seconds, 1e-9),
        workers=used_workers,
        params=params,
        reference=reference,
        pictures=picture_paths,
    )
    write_world_json(out, result, scene, plan)
    return result


def prepare_world(params: RenderParams):
    """Read the extract, build the AddressBook and the scene (districts from the book's neighbourhoods)."""
    from addressclip.geo.addressbook import AddressBook
    from addressclip.geo.bbox import BBox
    from addressclip.geo.osm import read_osm

    extract = read_osm(params.extract_path, bbox=None if params.bbox is None else BBox(*params.bbox))
    book = AddressBook.from_osm(extract, params.partition_config)

    def district_of(utm_xy: np.ndarray) -> list[str]:
        names = book.neighbourhoods.name_at(utm_xy[:, 0], utm_xy[:, 1])
        return [str(n) if n else "" for n in names]

    scene = build_scene(extract, crop_half_side_m=params.crop_half_side_m, district_of=district_of)
    return book, scene


@dataclass
class CapturePlan:
    """The capture locations to render, with their GPS and the folder of their split."""

    captures: Captures
    index: np.ndarray  # capture index used for seeding (stable for a given world and spacing)
    lat: np.ndarray
    lon: np.ndarray
    utm_e: np.ndarray
    utm_n: np.ndarray
    folder: list[str]
    dropped: dict[str, int]
    address_id: np.ndarray | None = None  # (after merging sparse sub-streets) of each capture

    def __len__(self) -> int:
        return len(self.index)


def plan_captures(scene: Scene, book, params: RenderParams) -> CapturePlan:
    """Capture points that the data layer will keep: labelled, merged and split as `build` does."""
    from addressclip.data.splits import SplitConfig, assign_splits

    captures = capture_points(scene, params.spacing_m, world_tag(params.world))
    if len(captures) == 0:
        raise AddressclipError(f"{params.extract_path}: no named streets to place capture points on")
    east, north = scene.to_utm(captures.xy)
    lon, lat = book.projection.to_lonlat(east, north)
    # round as the CosPlace names will, so labels here match those of the build exactly
    lat, lon = np.round(lat, 5), np.round(lon, 5)
    label = book.label(lat, lon, max_dist_m=params.label_max_dist_m)
    index = np.asarray(label.index, dtype=np.int64)
    dropped = pd.Series(np.asarray(label.reason)[index < 0]).value_counts().to_dict()
    location_ids = np.asarray(captures.location_id, dtype=object)
    merged, merged_index = book.merge_sparse(index, location_ids, params.min_points_per_address)
    keep = merged_index >= 0
    frame = pd.DataFrame(
        {
            "location_id": location_ids[keep],
            "address_id": merged.table["address_id"].to_numpy(dtype=object)[merged_index[keep]],
            "lat": lat[keep],
            "lon": lon[keep],
            "capture": np.flatnonzero(keep),
        }
    )
    split_config = SplitConfig(ratios=params.split_ratios, seed=params.seed)
    frame, report = assign_splits(frame, split_config)
    for split, count in report.dropped_unseen_images.items():
        if count:
            dropped[f"{split}_address_not_in_train"] = int(count)
    if frame.empty:
        raise AddressclipError(f"{params.extract_path}: no capture point could be labelled with an address")
    chosen = frame["capture"].to_numpy(dtype=np.int64)
    return CapturePlan(
        captures=captures.subset(chosen),
        index=chosen,
        lat=frame["lat"].to_numpy(float),
        lon=frame["lon"].to_numpy(float),
        utm_e=np.asarray(east)[chosen],
        utm_n=np.asarray(north)[chosen],
        folder=[SPLIT_FOLDERS[s] for s in frame["split"]],
        dropped={str(k): int(v) for k, v in dropped.items()},
        address_id=frame["address_id"].to_numpy(dtype=object),
    )


def build_manifest(
    out: Path, images_dir: Path, params: RenderParams, records: list[dict], progress: bool, book=None
) -> Path:
    """The manifest through the data layer's CosPlace build, then the captions of each view.

    `book`: the AddressBook `prepare_world` cut (the city is partitioned once); without it the build
    cuts the extract again with the same rules.
    """
    from addressclip.data.build import build_dataset
    from addressclip.data.manifest import read_manifest, write_manifest
    from addressclip.data.splits import SplitConfig

    report = build_dataset(
        "cosplace",
        images_dir,
        out,
        osm=None if book is not None else params.extract_path,
        addressbook=book,
        max_dist_m=params.label_max_dist_m,
        min_points=params.min_points_per_address,
        partition=None if book is not None else params.partition_config,
        split=SplitConfig(ratios=params.split_ratios, seed=params.seed),
        strict=True,
        progress=progress,
    )
    manifest = read_manifest(report.manifest_path)
    frame = manifest.frame
    if len(frame) != len(records):
        raise AddressclipError(
            f"{report.manifest_path}: the build kept {len(frame)} of {len(records)} rendered images "
            f"(see {report.report_path})"
        )
    if params.captioner != "none":
        captions = {r["path"]: r["caption"] for r in records}
        frame["caption"] = frame["path"].map(captions).astype(object)
        write_manifest(frame, manifest.path, manifest.image_root, manifest.addressbook_dir)
    return report.manifest_path


def load_cached(out: Path, params: RenderParams) -> RenderResult | None:
    """The render already in `out` when its parameters hash matches (and its files are there)."""
    path = out / WORLD_FILE
    if not path.is_file():
        return None
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if stored.get("hash") != params.hash or stored.get("complete") is not True:
        return None
    manifest = out / stored.get("manifest", "manifest.parquet")
    if not manifest.is_file() or not (out / "images").is_dir():
        return None
    counts = stored.get("counts", {})
    return RenderResult(
        out=out,
        manifest=manifest,
        images=int(counts.get("images", 0)),
        locations=int(counts.get("locations", 0)),
        addresses=int(counts.get("addresses", 0)),
        reused=True,
        seconds=0.0,
        render_seconds=float(stored.get("timing", {}).get("render_seconds", 0.0)),
        images_per_second=float(stored.get("timing", {}).get("images_per_second", 0.0)),
        workers=int(stored.get("timing", {}).get("workers", 0)),
        params=params,
        reference=stored.get("reference", {}),
        pictures={k: out / v for k, v in stored.get("pictures", {}).items()},
    )


def write_world_json(out: Path, result: RenderResult, scene: Scene, plan: CapturePlan) -> None:
    content = {
        "hash": result.params.hash,
        "complete": True,
        "params": result.params.to_dict(),
        "manifest": result.manifest.name,
        "counts": {
            "images": result.images,
            "locations": result.locations,
            "addresses": result.addresses,
            "capture_points_dropped": plan.dropped,
        },
        "scene": {k: v for k, v in scene.info.items()},
        "timing": {
            "seconds": round(result.seconds, 2),
            "render_seconds": round(result.render_seconds, 2),
            "images_per_second": round(result.images_per_second, 1),
            "workers": result.workers,
        },
        "reference": result.reference,
        "pictures": {k: p.name for k, p in result.pictures.items()},
    }
    write_text_atomic(out / WORLD_FILE, json.dumps(content, indent=2, ensure_ascii=False) + "\n")
