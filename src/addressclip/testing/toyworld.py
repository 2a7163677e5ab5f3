"""Toy worlds for tests and benchmarks: small datasets whose answers are known by construction.

- `make_toy_manifest`: tiny JPEGs whose colours encode the address, on a made-up grid (no OSM) —
  learnable in a few steps, so "the loss goes down" is testable.
- `make_street_world` / `train_toy_street_clip` / `toy_baseline_world`: real sub-streets of the
  bundled Karhula extract with colour-coded JPEGs on the sub-street lines and the AddressBook saved
  beside the manifest, so metre errors, neighbouring sub-streets and Image->GPS->Address can be
  checked against hand-known answers in a second, without rendering a world.
- `make_serve_world` / `trained_serve_world`: the 6 longest Karhula sub-streets, a short real
  training run of the tiny preset, shared by every predictor/service test of a session.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from addressclip.data.manifest import write_manifest
from addressclip.geo.addressbook import AddressBook
from addressclip.geo.utm import UtmProjection
from addressclip.resources import bundled_extract

# ------------------------------------------------------------------------------------------------ toy grid

ORIGIN_LON, ORIGIN_LAT = 24.94, 60.17  # central Helsinki


def make_toy_manifest(
    folder: str | Path,
    addresses: int = 6,
    per_address: int = 8,
    val_per_address: int = 2,
    test_per_address: int = 0,
    image_size: tuple[int, int] = (48, 40),
    seed: int = 0,
    name: str = "toy",
    city: str | None = None,
    origin: tuple[float, float] = (ORIGIN_LON, ORIGIN_LAT),
) -> Path:
    """Write `folder/images/*.jpg` and `folder/manifest.parquet`; returns the manifest path.

    Address k: a colour pattern of its own plus noise, on street k // 2, placed 100 m apart along
    a line from `origin` (lon, lat) so that geography and appearance agree.
    """
    folder = Path(folder)
    images = folder / "images"
    images.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    projection = UtmProjection.for_point(*origin)
    e0, n0 = projection.to_utm(*origin)
    width, height = image_size
    rows = []
    for k in range(addresses):
        base = rng.integers(0, 256, size=(2, 2, 3))
        pattern = np.kron(base, np.ones((height // 2 + 1, width // 2 + 1, 1)))[:height, :width]
        street = k // 2
        for j in range(per_address):
            noise = rng.normal(0, 20, size=pattern.shape)
            pixels = np.clip(pattern + noise, 0, 255).astype(np.uint8)
            rel = f"{name}_{k:03d}_{j:02d}.jpg"
            Image.fromarray(pixels).save(images / rel, quality=90)
            east = float(e0 + 100.0 * k + rng.uniform(-20, 20))
            north = float(n0 + rng.uniform(-20, 20))
            lon, lat = projection.to_lonlat(east, north)
            held_out = per_address - j  # 1 for the last image of the address
            split = "test" if held_out <= test_per_address else "train"
            if test_per_address < held_out <= test_per_address + val_per_address:
                split = "val"
            rows.append(
                {
                    "path": rel,
                    "lat": float(lat),
                    "lon": float(lon),
                    "utm_e": east,
                    "utm_n": north,
                    "utm_zone": projection.label,
                    "heading": float(90 * (j % 4)),
                    "location_id": f"{name}-loc-{k}-{j // 2}",
                    "address_id": f"{name}-a{k:03d}",
                    "address": f"Street {street} & Cross {k}, {name.title()} District",
                    "street_id": f"{name}-s{street:03d}",
                    "street": f"Street {street}, {name.title()} District",
                    "neighbourhood": f"{name.title()} District",
                    "caption": f"A street view of a {['red', 'green', 'blue', 'grey'][k % 4]} facade {k}",
                    "split": split,
                    "city": city,
                }
            )
    frame = pd.DataFrame(rows)
    return write_manifest(frame, folder / "manifest.parquet", images)


# Two toy cities in other UTM zones (Helsinki 35V, Heidelberg 32U), as the evaluation cities are.
TOY_CITY_ORIGINS: dict[str, tuple[float, float]] = {"north": (24.94, 60.17), "south": (8.70, 49.41)}


def make_toy_atlas(folder: str | Path, seed: int = 0, **toy: object) -> Path:
    """A multi-city dataset laid out as `addressclip atlas` writes one, without rendering: each city of
    `TOY_CITY_ORIGINS` a toy manifest under `folder/cities/<city>/` (its own addresses, ids prefixed
    by its name), `folder/manifest.parquet` their union with a `city` column, and `atlas.json`.
    `toy`: keyword arguments of `make_toy_manifest` for every city. Returns the atlas manifest."""
    from addressclip.world.atlas import ATLAS_FILE, CITIES_DIR, MANIFEST_NAME, combine_cities

    folder = Path(folder)
    root = folder / CITIES_DIR
    manifests = {
        city: make_toy_manifest(root / city, seed=seed + i, name=city, origin=origin, **toy)  # type: ignore[arg-type]
        for i, (city, origin) in enumerate(TOY_CITY_ORIGINS.items())
    }
    path = write_manifest(combine_cities(manifests, root), folder / MANIFEST_NAME, root)
    cities = {city: {"folder": f"{CITIES_DIR}/{city}"} for city in manifests}
    (folder / ATLAS_FILE).write_text(
        json.dumps({"complete": True, "cities": cities}) + "\n", encoding="utf-8"
    )
    return path


# --------------------------------------------------------------------------------------------- street world


def _choose_rows(table: pd.DataFrame, count: int, per_street: int = 3) -> list[int]:
    """Chains of touching sub-streets (neighbours) along the streets with the most pieces."""
    pieces = table.groupby("street_id").size().sort_values(ascending=False, kind="stable")
    chosen: list[int] = []
    for street_id in pieces.index:
        rows = sorted(table.index[table["street_id"] == street_id], key=lambda r: table.at[r, "address_id"])
        rows = [r for r in rows if table.at[r, "length_m"] >= 40.0]
        if not rows:
            continue
        chain = [rows[0]]
        while len(chain) < per_street:
            touching = [
                r for r in rows if r not in chain
                and any(table.at[r, "geometry"].distance(table.at[c, "geometry"]) < 1.0 for c in chain)
            ]  # fmt: skip
            if not touching:
                break
            chain.append(touching[0])
        chosen.extend(chain[: count - len(chosen)])
        if len(chosen) >= count:
            break
    return chosen


def make_street_world(
    folder: str | Path,
    addresses: int = 6,
    locations: int = 6,
    views: int = 2,
    image_size: tuple[int, int] = (40, 32),
    noise: float = 18.0,
    seed: int = 0,
) -> Path:
    """Write `folder/{images,addressbook}` and `folder/manifest.parquet`; return the manifest path.

    Each address gets `locations` capture points spread along its sub-street (the last one is
    'test', the one before 'val', the rest 'train'), each with `views` images.
    """

    folder = Path(folder)
    full = AddressBook.from_osm(bundled_extract("karhula"))
    full.save(folder / "addressbook")  # the whole book: intersections need the cross streets too
    table = full.table.loc[_choose_rows(full.table, addresses)].reset_index(drop=True)
    book = full
    images = folder / "images"
    images.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    width, height = image_size
    records = []
    for k, entry in table.iterrows():
        base = rng.integers(0, 256, size=(2, 2, 3))
        pattern = np.kron(base, np.ones((height // 2 + 1, width // 2 + 1, 1)))[:height, :width]
        line = entry["geometry"]
        line = max(line.geoms, key=lambda g: g.length) if hasattr(line, "geoms") else line
        for j in range(locations):
            point = line.interpolate(0.15 + 0.7 * j / max(1, locations - 1), normalized=True)
            lon, lat = book.projection.to_lonlat(point.x, point.y)
            split = "test" if j == locations - 1 else "val" if j == locations - 2 else "train"
            for v in range(views):
                pixels = np.clip(pattern + rng.normal(0, noise, size=pattern.shape), 0, 255).astype(np.uint8)
                name = f"toy_{k:02d}_{j:02d}_{v}.jpg"
                Image.fromarray(pixels).save(images / name, quality=92)
                records.append(
                    {
                        "path": name,
                        "lat": float(lat),
                        "lon": float(lon),
                        "utm_e": float(point.x),
                        "utm_n": float(point.y),
                        "utm_zone": book.projection.label,
                        "heading": float(90 * v),
                        "location_id": f"loc-{k}-{j}",
                        "address_id": entry["address_id"],
                        "address": entry["address"],
                        "street_id": entry["street_id"],
                        "street": entry["street"],
                        "neighbourhood": entry["neighbourhood"],
                        "caption": f"A street view of facade pattern {k} seen from side {v}",
                        "split": split,
                    }
                )
    return write_manifest(pd.DataFrame(records), folder / "manifest.parquet", images, folder / "addressbook")


def train_toy_street_clip(manifest: str | Path, out: str | Path, *overrides: str) -> Path:
    """A street CLIP for tests: the `tiny` preset, caption-only pretraining on the toy world's train
    split (the same stage `addressclip pretrain` runs); returns its model.pt."""
    from addressclip.config import load_config
    from addressclip.train.pretrain import run_pretraining

    config = load_config(
        "tiny",
        [f"data={manifest}", f"out={out}", "train.progress=false", "train.threads=1",
         "optim.batch_size=12", "pretrain.epochs=2", *overrides],
    )  # fmt: skip
    result, _ = run_pretraining(config)
    assert result.model_path is not None
    return result.model_path


def build_toy_baseline_world(folder: str | Path) -> tuple[Path, Path]:
    """(manifest, street CLIP) of the toy world the baseline tests share; built once per folder (a
    file lock makes concurrent callers, e.g. xdist workers, wait for the first)."""
    from filelock import FileLock

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    done = folder / "done.json"
    with FileLock(str(folder / "build.lock")):
        if not done.is_file():
            manifest = make_street_world(folder / "world")
            init = train_toy_street_clip(manifest, folder / "clip")
            done.write_text(json.dumps({"manifest": str(manifest), "init": str(init)}))
    paths = json.loads(done.read_text())
    return Path(paths["manifest"]), Path(paths["init"])


def open_toy_baseline_world(manifest: Path, init: Path, feature_store: Path | None = None):
    """(EvalData, FrozenEncoder, street CLIP path): what a baseline test module works with (its own
    feature store, so store hits and misses are the module's)."""
    from addressclip.eval.encode import FrozenEncoder
    from addressclip.eval.evaluate import EvalData
    from addressclip.eval.store import FeatureStore

    data = EvalData.load(manifest, progress=False)
    encoder = FrozenEncoder.from_checkpoint(init, FeatureStore(feature_store), "cpu", progress=False)
    return data, encoder, init


def toy_baseline_world(folder: str | Path, feature_store: Path | None = None):
    """(EvalData, FrozenEncoder, street CLIP path) of a toy world built in `folder`."""
    manifest, init = build_toy_baseline_world(folder)
    return open_toy_baseline_world(manifest, init, feature_store)


# -------------------------------------------------------------------------------------------- served world

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

    def walk_with_wrong_frames(self) -> tuple[str, list[Path], list[int]]:
        """Six photos of one address with two photos of other, non-adjacent addresses slipped in:
        (the address, the eight photos in walking order, the positions of the two wrong ones)."""
        addresses = list(self.train_images)
        main = self.train_images[addresses[0]][:6]
        photos = [*main[:2], self.train_images[addresses[2]][0], *main[2:4]]
        photos += [self.train_images[addresses[4]][1], *main[4:]]
        return addresses[0], photos, [2, 5]


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


def trained_serve_world(shared: Path) -> TrainedWorld:
    """Build once under `shared` (a file lock makes concurrent callers, e.g. xdist workers, wait for the
    first) and describe the trained tiny world."""
    from filelock import FileLock

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


def tiny_train_command(*overrides: str) -> list[str]:
    """`addressclip train --config tiny OVERRIDES…` as a subprocess argument list (kill/resume tests)."""
    return [sys.executable, "-m", "addressclip.cli", "train", "--config", "tiny", *overrides]
