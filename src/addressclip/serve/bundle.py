"""A self-contained predictor bundle: one folder that `load_predictor` loads offline.

    bundle/
      bundle.json        format, version, file checksums, the out-of-city calibration, provenance
      model.pt           inference checkpoint: weights + model config + preprocessing (no optimizer)
      addresses.parquet  the gallery: candidate addresses, seen-in-training flags, sub-street geometry
                         (WKB, UTM metres; the zone is in bundle.json)
      gallery.npz        the gallery's text embeddings, keyed by model.pt's hash + the gallery content
      addressbook/       the AddressBook (the whole street network, for the map), when there was one
      image_encoder.onnx the image tower as ONNX (`export --onnx`, see `serve.onnx_backend`); its
                         entry `image_encoder` in bundle.json holds the input, the scale and versions

Nothing in it points outside the folder, so it can be copied to a machine that has neither the
training manifest nor its images. The folder is assembled beside the target and renamed into place,
so a reader never sees half a bundle.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import shapely

from addressclip import __version__
from addressclip.errors import AddressclipError, InputError
from addressclip.filenames import MODEL_FILE
from addressclip.serve import cache
from addressclip.serve.gallery import GALLERY_COLUMNS, AddressGallery

if TYPE_CHECKING:
    from addressclip.serve.predictor import AddressPredictor

BUNDLE_FORMAT = "addressclip-bundle"
BUNDLE_VERSION = 1
BUNDLE_FILE = "bundle.json"
ADDRESSES_FILE = "addresses.parquet"
GALLERY_FILE = "gallery.npz"
ADDRESSBOOK_DIR = "addressbook"


def is_bundle(folder: Path) -> bool:
    return (folder / BUNDLE_FILE).is_file()


# ------------------------------------------------------------------------------------------ export
def _write_gallery_table(gallery: AddressGallery, path: Path) -> None:
    frame = gallery.table.copy()
    frame["geometry"] = [None if g is None else shapely.to_wkb(g) for g in frame["geometry"]]
    for column in ("street_id", "street", "neighbourhood"):
        frame[column] = frame[column].astype(object).where(frame[column].notna(), None)
    frame.to_parquet(path, index=False)


def _replace_folder(staging: Path, out: Path) -> None:
    if not out.exists():
        os.replace(staging, out)
        return
    trash = out.with_name(f".{out.name}.old-{os.getpid()}")
    os.replace(out, trash)
    os.replace(staging, out)
    shutil.rmtree(trash, ignore_errors=True)


def _check_target(out: Path, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise AddressclipError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not is_bundle(out):
            raise AddressclipError(
                f"{out}: folder exists, is not empty and is not a bundle; choose another --out"
            )
        if not force:
            raise AddressclipError(f"{out}: a bundle is already there; pass --force to replace it")


def export_bundle(
    predictor: AddressPredictor, out: str | os.PathLike[str], force: bool = False, onnx: bool = False
) -> Path:
    """Write `predictor` (weights, preprocessing, gallery + embeddings, calibration, AddressBook);
    `onnx` adds the image tower as image_encoder.onnx (readers without ONNX support ignore it)."""
    if predictor.model is None:
        raise AddressclipError("export writes model.pt from the torch model; load with backend='torch'")
    import torch

    from addressclip.model.checkpoint import model_payload

    out = Path(out)
    _check_target(out, force)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.with_name(f".{out.name}.staging-{os.getpid()}")
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir()
    try:
        torch.save(model_payload(predictor.model), staging / MODEL_FILE)
        model_sha = cache.file_sha256(staging / MODEL_FILE)
        gallery = predictor.gallery
        key = cache.combined_key(model_sha, gallery.content_key())
        cache.save_embeddings(
            staging / GALLERY_FILE, key, gallery.addresses, predictor.embeddings.cpu().numpy()
        )
        _write_gallery_table(gallery, staging / ADDRESSES_FILE)
        if predictor.addressbook is not None:
            predictor.addressbook.save(staging / ADDRESSBOOK_DIR)
        image_encoder = None
        if onnx:
            from addressclip.serve.onnx_export import export_image_encoder

            image_encoder = export_image_encoder(predictor.model, staging)
        files = sorted(p for p in staging.rglob("*") if p.is_file())
        for path in files:
            path.chmod(0o644)  # atomic writes create private temp files; a bundle is meant to be shared
        manifest = {
            "format": BUNDLE_FORMAT,
            "version": BUNDLE_VERSION,
            "addressclip_version": __version__,
            "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "source_checkpoint": predictor.source.name if predictor.source else None,
            "model_sha256": model_sha,
            "gallery_key": key,
            "addresses": len(gallery),
            "seen_in_training": int(gallery.table["seen_in_training"].sum()),
            "projection": None if gallery.projection is None else gallery.projection.label,
            "preprocess": dict(predictor.model.preprocess),
            "calibration": predictor.calibration.to_dict() if predictor.calibration else None,
            **({"image_encoder": image_encoder} if image_encoder else {}),
            "files": {p.relative_to(staging).as_posix(): cache.file_sha256(p) for p in files},
        }
        (staging / BUNDLE_FILE).write_text(
            json.dumps(manifest, indent=1, ensure_ascii=False), encoding="utf-8"
        )
        _replace_folder(staging, out)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return out


# -------------------------------------------------------------------------------------------- load
def read_bundle_json(folder: Path) -> dict[str, Any]:
    path = folder / BUNDLE_FILE
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise InputError(path, None, f"not a readable bundle description ({error})") from None
    if not isinstance(meta, dict) or meta.get("format") != BUNDLE_FORMAT:
        raise InputError(path, "format", f"not an addressclip bundle (expected '{BUNDLE_FORMAT}')")
    if int(meta.get("version", 0)) > BUNDLE_VERSION:
        raise InputError(path, "version", "written by a newer addressclip; upgrade to read it")
    files = meta.get("files", {})
    if not isinstance(files, dict):
        raise InputError(path, "files", "not a mapping of file name to SHA-256")
    for name in files:
        if not (folder / name).is_file():
            raise InputError(folder / name, None, "missing from the bundle (copy the whole folder)")
    return meta


def verify_bundle_files(folder: Path, meta: dict[str, Any]) -> None:
    """Every file bundle.json lists must have the SHA-256 it lists (a torn copy or an edit fails)."""
    for name, expected in meta.get("files", {}).items():
        target = (folder / name).resolve()
        if not target.is_relative_to(folder.resolve()):
            raise InputError(folder / BUNDLE_FILE, "files", f"'{name}' points outside the bundle")
        if cache.file_sha256(target) != expected:
            raise InputError(
                folder / name, None,
                "SHA-256 differs from bundle.json (damaged or edited after export); export the bundle again",
            )  # fmt: skip


def _projection(label: str | None):
    from addressclip.geo.utm import UtmProjection

    if not label:
        return None
    return UtmProjection(int(label[:-1]), label[-1])


def read_gallery_table(path: Path, projection_label: str | None) -> AddressGallery:
    try:
        frame = pd.read_parquet(path)
    except Exception as error:  # pyarrow raises several types for a damaged file
        raise InputError(path, None, f"cannot read the bundle's address table ({error})") from None
    missing = [c for c in GALLERY_COLUMNS if c not in frame.columns]
    if missing:
        raise InputError(path, missing[0], "column missing")
    frame["geometry"] = [None if w is None else shapely.from_wkb(w) for w in frame["geometry"]]
    frame["seen_in_training"] = frame["seen_in_training"].astype(bool)
    for column in ("street_id", "street", "neighbourhood"):
        frame[column] = frame[column].astype(object).where(frame[column].notna(), None)
    return AddressGallery(frame, _projection(projection_label))


def bundle_cache(folder: Path, bundle_key: str) -> cache.CachePathFor:
    """The bundle's own gallery in gallery.npz; other galleries (e.g. a new AddressBook) beside it."""
    return lambda key: folder / GALLERY_FILE if key == bundle_key else folder / f"gallery-{key[:16]}.npz"
