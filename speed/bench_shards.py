"""Shard stream input speed: read + decode + resize + augment at 224 px, images/s on one core.

Writes N synthetic JPEGs per source size (a toy manifest), packs them with `addressclip shard`, then
times one process with one torch/PIL thread, interleaving three inputs over the same rows:
- shards: `ShardStream` (shuffle buffer on) -> uint8 batches -> `augment_batch` (the code path);
- shards_v1: the same stream with the previous pixels (JPEG draft to 2 x size, i.e. a 640x480 photo
  decoded whole; the whole image resized, then cropped; the float32 augmentation), kept here as the
  in-run baseline;
- folder: `ManifestImages` (cache none, the folder-of-JPEGs path) -> the same augmentation.
Source sizes: 640x480 (the paper's photos are 480x640 or larger) and 128x128 (rendered worlds).
Also: how far the v2 pixels are from v1 on the real camera photos of tests/data/photos (224 px view,
mean/max absolute difference in 0-255 levels), and a per-stage profile of the v2 per-sample path.
Writes speed/results/shards.json (images per CPU second, ratios, load average before/after).

    nice -n 10 .venv/bin/python speed/bench_shards.py            # ~2-4 minutes on a shared machine
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = ROOT / "tests" / "data" / "photos"


# ---- the v1 pixels (before draft gap 1, the crop-box resize and the uint8 augmentation) ----------
def v1_square_uint8(image: Image.Image, size: int, interpolation: str = "bicubic") -> np.ndarray:
    image.draft("RGB", (size * 2, size * 2))
    rgb = image.convert("RGB")
    width, height = rgb.size
    scale = size / min(width, height)
    new_w, new_h = max(size, round(width * scale)), max(size, round(height * scale))
    rgb = rgb.resize((new_w, new_h), Image.Resampling.BICUBIC)
    left, top = (new_w - size) // 2, (new_h - size) // 2
    rgb = rgb.crop((left, top, left + size, top + size))
    return np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8).transpose(2, 0, 1))


def v1_augment_batch(images, indices, seed, epoch, min_scale=0.7, jitter=0.2) -> torch.Tensor:
    from addressclip.data.transforms import sample_generator

    _, _, height, width = images.shape
    out = torch.empty_like(images)
    for row, index in enumerate(indices):
        draws = torch.rand(5, generator=sample_generator(seed, epoch, int(index))).tolist()
        scale = min_scale + (1.0 - min_scale) * draws[0]
        side_h, side_w = max(1, round(height * scale**0.5)), max(1, round(width * scale**0.5))
        top, left = int(draws[1] * (height - side_h + 1)), int(draws[2] * (width - side_w + 1))
        crop = images[row : row + 1, :, top : top + side_h, left : left + side_w].float()
        crop = F.interpolate(crop, size=(height, width), mode="bilinear", align_corners=False)
        brightness, contrast = 1.0 + jitter * (2.0 * draws[3] - 1.0), 1.0 + jitter * (2.0 * draws[4] - 1.0)
        mean = crop.mean()
        out[row] = ((crop - mean) * contrast + mean * brightness).clamp(0, 255).round().to(torch.uint8)[0]
    return out


def make_world(folder: Path, images: int, source: tuple[int, int]) -> tuple[Path, int]:
    from addressclip.testing.toyworld import make_toy_manifest

    per_address = max(3, images // 20)
    manifest = make_toy_manifest(folder, addresses=20, per_address=per_address, val_per_address=1)
    rng = np.random.default_rng(0)
    sizes = []
    for path in sorted((folder / "images").glob("*.jpg")):  # photo-like JPEGs instead of the toy ones
        noise = rng.integers(0, 255, (source[1] // 8, source[0] // 8, 3), dtype=np.uint8)
        Image.fromarray(noise).resize(source, Image.Resampling.BILINEAR).save(path, quality=90)
        sizes.append(path.stat().st_size)
    return manifest, int(np.mean(sizes))


def real_photo_difference(size: int) -> dict[str, object]:
    """v2 vs v1 decode of the real camera photos (224 px view): mean/max |difference| in levels."""
    from addressclip.data.pixels import square_uint8

    per_photo = []
    for path in sorted(PHOTOS.glob("*/*.jpg")):
        with Image.open(path) as a:
            new = square_uint8(a, size).astype(np.int16)
        with Image.open(path) as b:
            old = v1_square_uint8(b, size).astype(np.int16)
        with Image.open(path) as c:
            dims = c.size
        diff = np.abs(new - old)
        per_photo.append((f"{dims[0]}x{dims[1]}", float(diff.mean()), int(diff.max())))
    return {
        "photos": len(per_photo),
        "sizes": sorted({size for size, _, _ in per_photo}),
        "mean_abs_levels": round(float(np.mean([m for _, m, _ in per_photo])), 3),
        "worst_photo_mean_abs": round(max(m for _, m, _ in per_photo), 3),
        "max_abs_levels": max(x for _, _, x in per_photo),
    }


def profile_stages(shards: Path, size: int, count: int = 200) -> dict[str, float]:
    """CPU ms per image of each v2 stage: tar read, JPEG decode (draft), resize + crop, augmentation."""
    from addressclip.data.pixels import draft_box
    from addressclip.data.shards import read_shard_index, shard_samples
    from addressclip.data.transforms import augment_batch

    index = read_shard_index(shards)
    started = time.process_time()
    payloads = []
    for shard in index.of_split("train"):
        payloads += [p for _, p, _ in shard_samples(index.folder / shard.file)]
        if len(payloads) >= count:
            break
    payloads = payloads[:count]
    read = time.process_time() - started
    started = time.process_time()
    decoded = []
    for payload in payloads:
        image = Image.open(io.BytesIO(payload))
        image.draft("RGB", draft_box(size))
        decoded.append(image.convert("RGB"))
    decode = time.process_time() - started
    started = time.process_time()
    squares = []
    for rgb in decoded:
        width, height = rgb.size
        scale = size / min(width, height)
        new_w, new_h = max(size, round(width * scale)), max(size, round(height * scale))
        left, top = (new_w - size) // 2, (new_h - size) // 2
        sx, sy = width / new_w, height / new_h
        box = (left * sx, top * sy, (left + size) * sx, (top + size) * sy)
        view = rgb.resize((size, size), Image.Resampling.BICUBIC, box=box)  # as square_uint8 does
        squares.append(np.asarray(view).transpose(2, 0, 1))
    batch = torch.from_numpy(np.stack(squares))
    resize = time.process_time() - started
    started = time.process_time()
    augment_batch(batch, list(range(len(batch))), 0, 0)
    augment = time.process_time() - started
    per = 1000.0 / len(payloads)
    return {"tar_read": round(read * per, 3), "jpeg_decode": round(decode * per, 3),
            "resize_crop": round(resize * per, 3), "augment": round(augment * per, 3)}  # fmt: skip


def bench_source(args, source: tuple[int, int]) -> dict[str, object]:
    from addressclip.data.dataset import AddressDataset, AddressVocabulary, ManifestImages, split_rows
    from addressclip.data.manifest import read_manifest
    from addressclip.data.shards import ShardStream, StagedImages, read_shard_index, write_shards
    from addressclip.data.transforms import augment_batch

    class V1Stream(ShardStream):
        def _decode(self, payload: bytes, row: int) -> np.ndarray:
            with Image.open(io.BytesIO(payload)) as image:
                return v1_square_uint8(image, self.dataset.images.size)

    work = args.work / f"{source[0]}x{source[1]}"
    manifest_path, jpeg_bytes = make_world(work / "world", args.images, source)
    write_shards(manifest_path, work / "shards", rows_per_shard=256, progress=False)
    manifest = read_manifest(manifest_path)
    frame = manifest.frame.reset_index(drop=True)
    rows = split_rows(frame, ["train"])
    vocabulary = AddressVocabulary.from_frame(frame)
    index = read_shard_index(work / "shards")
    folder_images = ManifestImages(
        manifest_path, manifest.image_root, list(frame["path"]), args.size, cache="none"
    )
    folder = AddressDataset(frame, folder_images, rows, vocabulary)

    def streamed(kind, augment) -> int:
        dataset = AddressDataset(frame, StagedImages(args.size), rows, vocabulary)
        stream = kind(index, "train", dataset, batch_size=32, shuffle_buffer=256)
        return sum(len(augment(b.images, b.indices.tolist(), 0, 0)) for b in stream.loader(0))

    def run_folder() -> int:
        order = np.random.default_rng(0).permutation(len(folder))
        count = 0
        for start in range(0, len(order) - 31, 32):
            batch = folder.__getitems__(order[start : start + 32].tolist())
            count += len(augment_batch(batch.images, batch.indices.tolist(), 0, 0))
        return count

    variants = {
        "shards": lambda: streamed(ShardStream, augment_batch),
        "shards_v1": lambda: streamed(V1Stream, v1_augment_batch),
        "folder": run_folder,
    }
    rates: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.rounds):  # interleaved, so that a change of machine load hits all alike
        for name, function in variants.items():
            started = time.process_time()  # CPU seconds of this process: one core
            count = function()
            rates[name].append(count / (time.process_time() - started))
    best = {name: max(values) for name, values in rates.items()}
    return {
        "source": f"{source[0]}x{source[1]} JPEG, quality 90, {jpeg_bytes:,} bytes on average",
        "images": len(rows),
        "images_per_cpu_second": {k: round(v, 1) for k, v in best.items()},
        "shards_over_shards_v1": round(best["shards"] / best["shards_v1"], 3),
        "shards_over_folder": round(best["shards"] / best["folder"], 3),
        "meets_target": best["shards"] >= args.target,
        "rounds": {k: [round(v, 1) for v in values] for k, values in rates.items()},
        "stage_ms_per_image": profile_stages(work / "shards", args.size),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=800)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--target", type=float, default=400.0)
    parser.add_argument("--work", type=Path, default=Path("/tmp/addressclip-bench-shards"))
    parser.add_argument("--out", type=Path, default=ROOT / "speed" / "results" / "shards.json")
    args = parser.parse_args()

    from addressclip.atomic import write_text_atomic

    torch.set_num_threads(1)
    load_before = os.getloadavg()
    sources = {"640x480": bench_source(args, (640, 480)), "128x128": bench_source(args, (128, 128))}
    load_after = os.getloadavg()
    result = {
        "what": f"read + decode + resize + augment to {args.size} px, one process, 1 torch/PIL thread; "
        "images per CPU second of the process (one core); shards_v1 = the previous pixels in the same run",
        "command": " ".join([".venv/bin/python speed/bench_shards.py", *sys.argv[1:]]),
        "target_images_per_core": args.target,
        "sources": sources,
        "v2_vs_v1_pixels_on_real_photos": real_photo_difference(args.size),
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
