"""From a file on disk to a ready `AddressPredictor`: one public call, `load_predictor(path)`.

`path` is a checkpoint (`model.pt`), a run folder holding one, or an exported bundle folder. A
checkpoint finds its gallery through the training manifest it names (or `manifest=`), a bundle
carries its own and is checked against the checksums in its `bundle.json` before anything is used.
`backend` picks what embeds the photos: the torch model, or a bundle's ONNX image tower
(`serve.onnx_backend`; 'auto' takes it when torch is not installed). Nothing here imports torch at
module level, so a bundle with ONNX loads on an install without it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from addressclip.data.manifest import Manifest, read_manifest
from addressclip.errors import AddressclipError, InputError
from addressclip.filenames import MODEL_FILE
from addressclip.geo.addressbook import AddressBook
from addressclip.serve import cache
from addressclip.serve.bundle import (
    ADDRESSBOOK_DIR,
    ADDRESSES_FILE,
    bundle_cache,
    is_bundle,
    read_bundle_json,
    read_gallery_table,
    verify_bundle_files,
)
from addressclip.serve.calibration import DEFAULT_PERCENTILE, DEFAULT_SCORE, Calibration
from addressclip.serve.onnx_backend import choose_backend, encoder_from_bundle
from addressclip.serve.predictor import CALIBRATION_SPLIT, AddressPredictor
from addressclip.serve.sources import (
    find_training_manifest,
    gallery_from_addressbook,
    gallery_from_manifest,
    train_split_name,
    training_addresses,
)

if TYPE_CHECKING:
    import torch


def load_predictor(
    path: str | os.PathLike[str],
    *,
    device: str | torch.device = "cpu",
    manifest: str | os.PathLike[str] | None = None,
    addressbook: str | os.PathLike[str] | AddressBook | None = None,
    all_addresses: bool = False,
    cache_embeddings: bool = True,
    calibrate_threshold: bool = True,
    percentile: float = DEFAULT_PERCENTILE,
    out_of_city_score: str = DEFAULT_SCORE,
    progress: bool = False,
    backend: str = "auto",
    threads: int | None = None,
    **options: Any,
) -> AddressPredictor:
    """Load a checkpoint (`model.pt`, a run folder holding one) or an exported bundle folder.

    The candidate addresses are the training manifest's (found from the checkpoint, or given as
    `manifest`); `all_addresses=True` uses every sub-street of the AddressBook instead (the open
    set). The AddressBook is the manifest's, unless `addressbook` is given. A bundle needs none of
    these: it carries its own. `options` go to the constructor (batch_size, max_pixels, ...).
    `backend` is 'auto', 'torch' or 'onnx' (a bundle exported with --onnx; `threads` then sets
    onnxruntime's intra-op threads). `out_of_city_score` picks the out-of-city flag's score when a
    checkpoint is calibrated (`serve.calibration.SCORE_KINDS`; a bundle keeps the one it was
    exported with).
    """
    path = Path(path)
    if path.is_dir() and is_bundle(path):
        return load_bundle(
            path, device=device, addressbook=addressbook, all_addresses=all_addresses, progress=progress,
            backend=backend, threads=threads, **options,
        )  # fmt: skip
    if path.is_dir():
        if not (path / MODEL_FILE).is_file():
            raise AddressclipError(
                f"{path}: neither a bundle (no bundle.json) nor a run folder (no {MODEL_FILE})"
            )
        path = path / MODEL_FILE
    choose_backend(backend, path, None)  # a checkpoint is torch only: a clear error otherwise
    return load_checkpoint_predictor(
        path,
        device=device,
        manifest=manifest,
        addressbook=addressbook,
        all_addresses=all_addresses,
        cache_embeddings=cache_embeddings,
        calibrate_threshold=calibrate_threshold,
        percentile=percentile,
        out_of_city_score=out_of_city_score,
        progress=progress,
        **options,
    )


def load_checkpoint_predictor(
    path: Path,
    *,
    device: str | torch.device = "cpu",
    manifest: str | os.PathLike[str] | None = None,
    addressbook: str | os.PathLike[str] | AddressBook | None = None,
    all_addresses: bool = False,
    cache_embeddings: bool = True,
    calibrate_threshold: bool = True,
    percentile: float = DEFAULT_PERCENTILE,
    out_of_city_score: str = DEFAULT_SCORE,
    progress: bool = False,
    **options: Any,
) -> AddressPredictor:
    """The predictor of one checkpoint file, its gallery from the training manifest or AddressBook."""
    from addressclip.model.checkpoint import read_checkpoint
    from addressclip.model.factory import model_from_payload

    payload = read_checkpoint(path)
    manifest_path = Path(manifest) if manifest is not None else find_training_manifest(path, payload)
    read = read_manifest(manifest_path) if manifest_path is not None else None
    book = _load_book(addressbook, read)
    if read is None and book is None:
        data = (payload.get("run_config") or {}).get("data")
        raise AddressclipError(
            f"{path}: cannot find the manifest it was trained on (run_config.data={data!r}); "
            "pass manifest=PATH (--manifest) or addressbook=DIR (--addressbook)"
        )
    split = train_split_name(payload)
    if all_addresses or read is None:
        if book is None:
            raise AddressclipError(
                f"{read.path if read else path}: all_addresses needs an AddressBook; pass addressbook=DIR"
            )
        seen_ids, seen_texts = training_addresses(read, split) if read is not None else (set(), set())
        gallery = gallery_from_addressbook(book, seen_ids, seen_texts)
    else:
        gallery = gallery_from_manifest(read, book, split)
    model = model_from_payload(payload, "cpu")
    del payload
    predictor = AddressPredictor(
        model,
        gallery,
        device=device,
        addressbook=book,
        model_key=cache.file_sha256(path),
        cache_path_for=cache.beside_checkpoint(path, "gallery", ".npz") if cache_embeddings else None,
        progress=progress,
        source=path,
        **options,
    )
    if calibrate_threshold and read is not None:
        calibration_cache = (
            cache.beside_checkpoint(path, "calibration", ".json") if cache_embeddings else None
        )
        predictor.calibrate_on(
            read, CALIBRATION_SPLIT, percentile, calibration_cache, score=out_of_city_score, train_split=split
        )
    return predictor


def load_bundle(
    folder: str | os.PathLike[str],
    *,
    device: str | torch.device = "cpu",
    addressbook: str | os.PathLike[str] | AddressBook | None = None,
    all_addresses: bool = False,
    progress: bool = False,
    backend: str = "auto",
    threads: int | None = None,
    **options: Any,
) -> AddressPredictor:
    """The predictor stored in a bundle; needs nothing outside the folder (and no network).

    Every file listed in bundle.json is checked against its SHA-256 first: a damaged or edited copy
    fails with the name of the file instead of predicting with it. With the ONNX backend, model.pt
    is checked but not loaded: photos go through image_encoder.onnx, addresses come from gallery.npz.
    """
    folder = Path(folder)
    meta = read_bundle_json(folder)
    verify_bundle_files(folder, meta)
    model_path = folder / MODEL_FILE
    model, encoder = None, None
    if choose_backend(backend, folder, meta) == "onnx":
        encoder = encoder_from_bundle(folder, meta, threads)
    else:
        from addressclip.model.checkpoint import read_checkpoint
        from addressclip.model.factory import model_from_payload

        model = model_from_payload(read_checkpoint(model_path), "cpu")
    gallery = read_gallery_table(folder / ADDRESSES_FILE, meta.get("projection"))
    book = AddressBook.load(folder / ADDRESSBOOK_DIR) if (folder / ADDRESSBOOK_DIR).is_dir() else None
    calibration = Calibration.from_dict(meta["calibration"]) if meta.get("calibration") else None
    predictor = AddressPredictor(
        model,
        gallery,
        device=device,
        image_encoder=encoder,
        calibration=calibration,
        addressbook=book,
        model_key=meta.get("model_sha256") or cache.file_sha256(model_path),
        cache_path_for=bundle_cache(folder, str(meta.get("gallery_key", ""))),
        progress=progress,
        source=folder,
        **options,
    )
    if addressbook is not None:
        predictor.use_addressbook(addressbook)
    elif all_addresses:
        if book is None:
            raise AddressclipError(f"{folder}: the bundle has no AddressBook; pass addressbook=DIR")
        predictor.use_addressbook(book)
    return predictor


def _load_book(
    addressbook: str | os.PathLike[str] | AddressBook | None, manifest: Manifest | None
) -> AddressBook | None:
    if isinstance(addressbook, AddressBook):
        return addressbook
    if addressbook is not None:
        return AddressBook.load(addressbook)
    if manifest is not None and manifest.addressbook_dir is not None and manifest.addressbook_dir.exists():
        return AddressBook.load(manifest.addressbook_dir)
    return None


__all__ = ["InputError", "load_bundle", "load_checkpoint_predictor", "load_predictor"]
