"""Shard stream input speed: read + decode + resize + augment at 224 px, images/s on one core.

Writes N synthetic 640x480 JPEGs (a toy manifest), packs them with `addressclip shard`, then times
one process with one torch/PIL thread, interleaving two inputs over the same rows:
- shards: `ShardStream` (shuffle buffer on) -> uint8 batches -> `augment_batch`;
- folder: `ManifestImages` (cache none, the folder-of-JPEGs path) -> the same augmentation.
Writes speed/results/shards.json (images/s per core for each, the ratio, load average before/after).

    nice -n 10 .venv/bin/python speed/bench_shards.py            # ~1-2 minutes
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def make_world(folder: Path, images: int) -> Path:
    from addressclip.testing.toyworld import make_toy_manifest

    per_address = max(3, images // 20)
    manifest = make_toy_manifest(folder, addresses=20, per_address=per_address, val_per_address=1)
    rng = np.random.default_rng(0)
    for path in sorted((folder / "images").glob("*.jpg")):  # photo-sized JPEGs instead of the toy ones
        noise = rng.integers(0, 255, (60, 80, 3), dtype=np.uint8)
        Image.fromarray(noise).resize((640, 480), Image.Resampling.BILINEAR).save(path, quality=90)
    return manifest


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=1200)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--work", type=Path, default=Path("/tmp/addressclip-bench-shards"))
    parser.add_argument("--out", type=Path, default=ROOT / "speed" / "results" / "shards.json")
    args = parser.parse_args()

    from addressclip.atomic import write_text_atomic
    from addressclip.data.dataset import AddressDataset, AddressVocabulary, ManifestImages, split_rows
    from addressclip.data.manifest import read_manifest
    from addressclip.data.shards import ShardStream, StagedImages, read_shard_index, write_shards
    from addressclip.data.transforms import augment_batch

    torch.set_num_threads(1)
    manifest_path = make_world(args.work / "world", args.images)
    write_shards(manifest_path, args.work / "shards", rows_per_shard=256, progress=False)
    manifest = read_manifest(manifest_path)
    frame = manifest.frame.reset_index(drop=True)
    rows = split_rows(frame, ["train"])
    vocabulary = AddressVocabulary.from_frame(frame)
    index = read_shard_index(args.work / "shards")
    folder_images = ManifestImages(
        manifest_path, manifest.image_root, list(frame["path"]), args.size, cache="none"
    )
    folder = AddressDataset(frame, folder_images, rows, vocabulary)

    def run_shards() -> int:
        dataset = AddressDataset(frame, StagedImages(args.size), rows, vocabulary)
        stream = ShardStream(index, "train", dataset, batch_size=32, shuffle_buffer=256)
        count = 0
        for batch in stream.loader(0):
            count += len(augment_batch(batch.images, batch.indices.tolist(), 0, 0))
        return count

    def run_folder() -> int:
        count = 0
        order = np.random.default_rng(0).permutation(len(folder))
        for start in range(0, len(order) - 31, 32):
            batch = folder.__getitems__(order[start : start + 32].tolist())
            count += len(augment_batch(batch.images, batch.indices.tolist(), 0, 0))
        return count

    load_before = os.getloadavg()
    timings: dict[str, list[float]] = {"shards": [], "folder": []}
    for _ in range(args.rounds):
        for name, function in (("shards", run_shards), ("folder", run_folder)):
            started = time.process_time()  # CPU seconds of this process: one core, fair under load
            wall = time.perf_counter()
            count = function()
            timings[name].append(count / (time.process_time() - started))
            timings[name + "_wall"] = [*timings.get(name + "_wall", []), count / (time.perf_counter() - wall)]
    load_after = os.getloadavg()
    best = {name: max(values) for name, values in timings.items()}
    result = {
        "what": f"read + decode + resize + augment to {args.size} px, 640x480 JPEGs, 1 thread",
        "command": "nice -n 10 .venv/bin/python speed/bench_shards.py",
        "images": len(rows),
        "images_per_cpu_second": {"shards": round(best["shards"], 1), "folder": round(best["folder"], 1)},
        "images_per_wall_second": {
            "shards": round(best["shards_wall"], 1),
            "folder": round(best["folder_wall"], 1),
        },
        "shards_over_folder": round(best["shards"] / best["folder"], 3),
        "target_images_per_core": 400,
        "meets_target": best["shards"] >= 400,
        "rounds": {k: [round(v, 1) for v in values] for k, values in timings.items()},
        "load_avg_before": [round(v, 2) for v in load_before],
        "load_avg_after": [round(v, 2) for v in load_after],
        "cpus": os.cpu_count(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.out, json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
