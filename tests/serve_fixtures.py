"""A tiny trained world for the predictor/service tests: real AddressBook geometry, a real short train.

`make_serve_world` takes the 6 longest sub-streets of the bundled Karhula AddressBook and writes, for
each, 16 small JPEGs whose colour pattern encodes the address (learnable in a few steps), placed
along the sub-street; the manifest points at the saved AddressBook, as `addressclip build` does.
`trained_world` trains the tiny preset on it once per test session — across modules and xdist workers,
guarded by a file lock — which takes a few seconds on two cores.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from addressclip.data.manifest import write_manifest
from addressclip.geo.addressbook import AddressBook
from addressclip.resources import bundled_extract

ADDRESSES = 6
PER_ADDRESS = 16
VAL_PER_ADDRESS = 2
IMAGE_SIZE = (48, 40)


@dataclass(frozen=True)
class TrainedWorld:
    root: Path
    manifest: Path
    addressbook: Path
    checkpoint: Path
    train_images: dict[str, list[Path]]  # address -> its train images


def address_pattern(rng: np.random.Generator) -> np.ndarray:
    width, height = IMAGE_SIZE
    base = rng.integers(0, 256, size=(2, 2, 3))
    return np.kron(base, np.ones((height // 2 + 1, width // 2 + 1, 1)))[:height, :width]


def make_serve_world(folder: Path, seed: int = 0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    images = folder / "images"
    images.mkdir(exist_ok=True)
    book = AddressBook.from_osm(bundled_extract("karhula"))
    book.save(folder / "addressbook")
    table = book.table
    chosen = np.argsort(-table["length_m"].to_numpy(), kind="stable")[:ADDRESSES]
    rng = np.random.default_rng(seed)
    rows = []
    for k, row_index in enumerate(chosen):
        row = table.iloc[int(row_index)]
        pattern = address_pattern(rng)
        line = max(getattr(row.geometry, "geoms", [row.geometry]), key=lambda g: g.length)
        for j in range(PER_ADDRESS):
            pixels = np.clip(pattern + rng.normal(0, 20, size=pattern.shape), 0, 255).astype(np.uint8)
            relative = f"img_{k:02d}_{j:02d}.jpg"
            Image.fromarray(pixels).save(images / relative, quality=90)
            point = line.interpolate((j + 0.5) / PER_ADDRESS, normalized=True)
            lon, lat = book.projection.to_lonlat(point.x, point.y)
            rows.append(
                {
                    "path": relative,
                    "lat": float(lat),
                    "lon": float(lon),
                    "utm_e": float(point.x),
                    "utm_n": float(point.y),
                    "utm_zone": book.projection.label,
                    "heading": float(90 * (j % 4)),
                    "location_id": f"loc-{k}-{j}",
                    "address_id": row.address_id,
                    "address": row.address,
                    "street_id": row.street_id,
                    "street": row.street,
                    "neighbourhood": row.neighbourhood or None,
                    "caption": f"a street view with colour pattern {k}",
                    "split": "val" if j >= PER_ADDRESS - VAL_PER_ADDRESS else "train",
                }
            )
    frame = pd.DataFrame(rows)
    return write_manifest(frame, folder / "manifest.parquet", images, folder / "addressbook")


def _train(root: Path) -> None:
    from addressclip.config import load_config
    from addressclip.train.engine import train_model

    manifest = make_serve_world(root / "world")
    config = load_config(
        "tiny",
        [
            f"data={manifest}",
            f"out={root / 'run'}",
            "train.threads=2",
            "optim.epochs=3",
            "optim.batch_size=8",
            "optim.lr=3e-3",
            "optim.lr_min=3e-3",
            "train.keep_best=1",
        ],
    )
    train_model(config)
    (root / "done.json").write_text(json.dumps({"ok": True}))


def trained_world(tmp_path_factory) -> TrainedWorld:
    """Build (once per session, shared by xdist workers) and describe the trained tiny world."""
    from filelock import FileLock

    base = tmp_path_factory.getbasetemp()
    # under xdist each worker's basetemp sits in the run's basetemp: share that, never older runs'
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    root = shared / "serve-world"
    with FileLock(str(shared / "serve-world.lock")):
        if not (root / "done.json").is_file():
            _train(root)
    manifest = root / "world" / "manifest.parquet"
    frame = pd.read_parquet(manifest)
    train = frame[frame["split"] == "train"]
    images = {
        address: [root / "world" / "images" / p for p in group["path"]]
        for address, group in train.groupby("address", sort=True)
    }
    return TrainedWorld(root, manifest, root / "world" / "addressbook", root / "run" / "model.pt", images)
