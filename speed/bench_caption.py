"""Benchmark `addressclip caption`: BLIP captions per second, the whole command against bare generation.

A randomly initialised BLIP (`addressclip.testing.blip.save_random_blip`: `tiny`, or `base` = the
shapes of Salesforce/blip-image-captioning-base, ViT-B/16 at 384 px + a 12-layer BERT decoder) is
saved to a temporary folder and loaded as the command loads it. The images are a toy manifest of
--images JPEGs at --image-size px. Two things are timed, alternately over --repeats rounds so that
other processes on the machine weigh on both alike:

* `bare`: the captioner alone on images already decoded in memory (batches of --batch-size);
* `command`: `caption_manifest` end to end on the manifest (JPEG decode, the sidecar flushes every
  --flush-every batches, the atomic manifest write), from a manifest with empty captions each round.

The record keeps each round's captions/s, the best of each, and command/bare (the bookkeeping's cost;
1.0 = none). Random weights make random token choices, but generation always runs --max-new-tokens
steps unless a [SEP] comes first, so the figure is an upper bound of the real model's cost per caption
only when the record's mean caption length is near --max-new-tokens (it is recorded).

    .venv/bin/python speed/bench_caption.py [--size tiny] [--images 256] [--out speed/results/caption.json]
    # on a GPU (bf16):
    python speed/bench_caption.py --size base --device cuda --images 2048 --batch-size 64 \
        --out speed/results/caption-base-cuda.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import torch
import transformers

from addressclip.atomic import write_text_atomic
from addressclip.data.manifest import read_manifest, write_manifest
from addressclip.testing.blip import save_random_blip
from addressclip.testing.toyworld import make_toy_manifest
from addressclip.world.manifest_captions import BlipCaptioner, CaptionSettings, caption_manifest


def _clear_captions(path: Path) -> None:
    manifest = read_manifest(path)
    frame = manifest.frame.assign(caption=None)
    write_manifest(frame, path, manifest.image_root, manifest.addressbook_dir)


def _bare(captioner: BlipCaptioner, images: list, batch_size: int) -> tuple[float, list[str]]:
    started = time.perf_counter()
    texts: list[str] = []
    for start in range(0, len(images), batch_size):
        texts += captioner(images[start : start + batch_size])
    if captioner.device.type == "cuda":
        torch.cuda.synchronize()
    return len(images) / (time.perf_counter() - started), texts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=("tiny", "base"), default="tiny")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", help="default: bfloat16 on a GPU, float32 on the CPU")
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--flush-every", type=int, default=10)
    parser.add_argument("--max-new-tokens", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch CPU threads (1: tiny ops do not share well)"
    )
    parser.add_argument("--out", type=Path, default=Path("speed/results/caption.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-caption-") as tmp:
        folder = save_random_blip(Path(tmp) / f"blip-{args.size}", args.size)
        per_address = max(3, -(-args.images // 4))
        manifest_path = make_toy_manifest(
            Path(tmp) / "world", addresses=4, per_address=per_address, val_per_address=1,
            image_size=(args.image_size, args.image_size),
        )  # fmt: skip
        manifest = read_manifest(manifest_path)
        frame = manifest.frame.iloc[: args.images]
        write_manifest(frame, manifest_path, manifest.image_root, manifest.addressbook_dir, check=False)
        from PIL import Image

        images = [Image.open(manifest.image_root / p).convert("RGB") for p in frame["path"]]
        started = time.perf_counter()
        captioner = BlipCaptioner(folder, args.device, args.dtype, max_new_tokens=args.max_new_tokens)
        load_s = time.perf_counter() - started
        parameters = sum(p.numel() for p in captioner.model.parameters())
        settings = CaptionSettings(
            model=str(folder), max_new_tokens=args.max_new_tokens, batch_size=args.batch_size,
            flush_every=args.flush_every,
        )  # fmt: skip
        captioner(images[: args.batch_size])  # warm-up
        bare_rates, command_rates = [], []
        texts: list[str] = []
        for _ in range(args.repeats):
            rate, texts = _bare(captioner, images, args.batch_size)
            bare_rates.append(rate)
            _clear_captions(manifest_path)
            started = time.perf_counter()
            run = caption_manifest(manifest_path, captioner, settings, progress=False)
            command_rates.append(run.captioned / (time.perf_counter() - started))
            assert run.captioned == len(images) and run.remaining == 0
    words = [len(t.split()) for t in texts]
    record = {
        "what": "addressclip caption with a randomly initialised BLIP (see the docstring)",
        "command": "speed/bench_caption.py "
        + " ".join(
            f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if v is not None and k != "out"
        ),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "device": str(captioner.device),
            "gpu": torch.cuda.get_device_name(captioner.device) if captioner.device.type == "cuda" else None,
            "torch_threads": torch.get_num_threads(),
            "loadavg_before": [round(v, 2) for v in load_before],
            "loadavg_after": [round(v, 2) for v in os.getloadavg()],
        },
        "model": {
            "size": args.size,
            "parameters": parameters,
            "dtype": str(captioner.dtype),
            "load_s": round(load_s, 2),
        },
        "images": len(images),
        "image_size": args.image_size,
        "batch_size": args.batch_size,
        "max_new_tokens": args.max_new_tokens,
        "mean_caption_words": round(sum(words) / max(len(words), 1), 1),
        "bare_captions_per_s": [round(r, 2) for r in bare_rates],
        "command_captions_per_s": [round(r, 2) for r in command_rates],
        "best_bare_captions_per_s": round(max(bare_rates), 2),
        "best_command_captions_per_s": round(max(command_rates), 2),
        "command_over_bare": round(max(command_rates) / max(bare_rates), 3),
    }
    write_text_atomic(args.out, json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
