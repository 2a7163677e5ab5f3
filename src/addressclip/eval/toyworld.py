"""A toy street world for the evaluation tests: real sub-streets of the bundled Karhula extract, tiny
JPEGs whose colours encode the address, GPS points on the sub-street lines, and the AddressBook
saved beside the manifest — so metre errors, neighbouring sub-streets and the Image->GPS->Address
pipeline can be checked against hand-known answers in a second, without rendering a world.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from addressclip.data.manifest import write_manifest


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
    from addressclip.geo.addressbook import AddressBook
    from addressclip.resources import bundled_extract

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


def toy_baseline_world(folder: str | Path, feature_store: Path | None = None):
    """(EvalData, FrozenEncoder, street CLIP path) of a fresh toy world: what baseline tests share."""
    from addressclip.eval.encode import FrozenEncoder
    from addressclip.eval.evaluate import EvalData
    from addressclip.eval.store import FeatureStore

    folder = Path(folder)
    manifest = make_street_world(folder / "world")
    init = train_toy_street_clip(manifest, folder / "clip")
    data = EvalData.load(manifest, progress=False)
    encoder = FrozenEncoder.from_checkpoint(init, FeatureStore(feature_store), "cpu", progress=False)
    return data, encoder, init
