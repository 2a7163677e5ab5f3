"""A toy manifest of tiny JPEGs whose colours encode the address: for tests and benchmarks that must
run without the rendered demo world. Learnable in a few steps, so "the loss goes down" is testable."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from addressclip.data.manifest import write_manifest
from addressclip.geo.utm import UtmProjection

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
) -> Path:
    """Write `folder/images/*.jpg` and `folder/manifest.parquet`; returns the manifest path.

    Address k: a colour pattern of its own plus noise, on street k // 2, placed 100 m apart along
    a line so that geography and appearance agree.
    """
    folder = Path(folder)
    images = folder / "images"
    images.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    projection = UtmProjection.for_point(ORIGIN_LON, ORIGIN_LAT)
    e0, n0 = projection.to_utm(ORIGIN_LON, ORIGIN_LAT)
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
                }
            )
    frame = pd.DataFrame(rows)
    return write_manifest(frame, folder / "manifest.parquet", images)
