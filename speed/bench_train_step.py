"""Benchmark: our training step against a bare open_clip step, and data loading against both.

Writes JSON (not a timed test). "Ours" is `Trainer.micro_step` + `optimizer_step` of the engine
(normalisation, three losses, logging-free); "bare" is the same open_clip module (a copy, same
trainable parameters, same batch) doing what a minimal open_clip loop does: encode the image, encode
the address texts and the caption texts (the same number of text forwards), two `open_clip.ClipLoss`
terms, backward, AdamW step. Data loading = the engine's DataLoader (decoded-image cache) plus
augmentation, in images per second.

    .venv/bin/python speed/bench_train_step.py --config cpu            # demo world if present
    .venv/bin/python speed/bench_train_step.py --config tiny model.trainable=both
    python speed/bench_train_step.py --config paper --device cuda --steps 30   # on a GPU, with AMP
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from addressclip.atomic import write_text_atomic
from addressclip.config import config_to_dict, load_config
from addressclip.model.device import resolve_device
from addressclip.train.distributed import DistributedContext
from addressclip.train.engine import Trainer

DEMO_MANIFEST = Path("runs/demo/world/manifest.parquet")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _batches(trainer: Trainer):
    epoch = 0
    while True:
        yield from trainer.loader(epoch)
        epoch += 1


class BareOpenClipStep:
    """A minimal open_clip training step on a copy of the same module."""

    def __init__(self, trainer: Trainer) -> None:
        import open_clip

        self.model = trainer.model
        self.clip = copy.deepcopy(trainer.model.clip)
        params = [p for p in self.clip.parameters() if p.requires_grad]
        cfg = trainer.config.optim
        self.optimizer = torch.optim.AdamW(params, lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps)
        self.loss = open_clip.ClipLoss()
        self.autocast = trainer._autocast
        self.normalizer = trainer.normalizer
        self.device = trainer.device
        self.with_captions = trainer.use_captions

    def tokens(self, texts):
        return self.model.tokenize(texts).to(self.device)

    def __call__(self, batch) -> float:
        images = self.normalizer(batch.images, self.device)
        with self.autocast():
            image = self.clip.encode_image(images, normalize=True)
            address = self.clip.encode_text(self.tokens(batch.addresses), normalize=True)
            scale = self.clip.logit_scale.exp()
            loss = self.loss(image.float(), address.float(), scale.float())
            if self.with_captions:
                caption = self.clip.encode_text(self.tokens(batch.captions), normalize=True)
                loss = loss + 0.2 * self.loss(image.float(), caption.float(), scale.float())
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return float(loss.detach())


def time_steps(step, batches, steps: int, device: torch.device) -> list[float]:
    times = []
    for batch in batches[:steps]:
        _sync(device)
        start = time.perf_counter()
        step(batch)
        _sync(device)
        times.append(time.perf_counter() - start)
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="cpu")
    parser.add_argument("--data", help=f"manifest (default: {DEMO_MANIFEST} if present, else a toy world)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per round")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (ours, bare)")
    parser.add_argument("--out", help="JSON file (default speed/results/train_step-<config>-<device>.json)")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args(argv)

    device = resolve_device(args.device)
    work = Path(tempfile.mkdtemp(prefix="bench-train-"))
    probe = load_config(args.config, args.overrides)
    data = Path(args.data) if args.data else DEMO_MANIFEST
    source = str(data)
    if not data.is_file():
        from addressclip.testing.toyworld import make_toy_manifest

        size = probe.model.image_size
        per_address = max(8, (probe.optim.batch_size * 4) // 16)
        data = make_toy_manifest(work / "toy", addresses=16, per_address=per_address, image_size=(size, size))
        source = f"toy world (16 addresses x {per_address} images, {size}px)"
    config = load_config(
        args.config,
        [
            *args.overrides,
            f"data={data}",
            f"out={work / 'run'}",
            f"train.device={device}",
            "train.progress=false",
        ],
    )
    trainer = Trainer(config, "address", DistributedContext(0, 1, 0, device))
    batch_size = config.optim.batch_size

    # data loading throughput (loader + augmentation), over the number of batches the steps use
    needed = args.steps * args.rounds + 3
    stream = _batches(trainer)
    start = time.perf_counter()
    batches = [trainer.prepare(next(stream), 0) for _ in range(needed)]
    load_seconds = time.perf_counter() - start
    loading_ips = needed * batch_size / load_seconds

    bare = BareOpenClipStep(trainer)

    def ours(batch) -> None:
        trainer.micro_step(batch, sync=True)
        trainer.optimizer_step()

    trainer.model.train()
    for batch in batches[:3]:  # warm-up (caches, allocator, kernels)
        ours(batch)
        bare(batch)
    timed = batches[3:]
    ours_times: list[float] = []
    bare_times: list[float] = []
    peaks = {"ours": 0, "bare": 0}
    for r in range(args.rounds):
        chunk = timed[r * args.steps : (r + 1) * args.steps]
        for name, step, sink in (("ours", ours, ours_times), ("bare", bare, bare_times)):
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            sink.extend(time_steps(step, chunk, args.steps, device))
            if device.type == "cuda":
                peaks[name] = max(peaks[name], torch.cuda.max_memory_allocated(device))
    ours_s = statistics.median(ours_times)
    bare_s = statistics.median(bare_times)
    result = {
        "benchmark": "train_step",
        "config": args.config,
        "overrides": args.overrides,
        "data": source,
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.processor() or platform.machine(),
        "torch_threads": torch.get_num_threads(),
        "precision": config.train.precision if device.type == "cuda" else "fp32",
        "batch_size": batch_size,
        "text_tower": config.model.text_tower,
        "trainable": config.model.trainable,
        "text_forwards_per_step": 2 if trainer.use_captions else 1,
        "steps_timed": len(ours_times),
        "ours_step_s_median": ours_s,
        "bare_open_clip_step_s_median": bare_s,
        "ours_step_s_min": min(ours_times),
        "bare_open_clip_step_s_min": min(bare_times),
        "ours_images_per_s": batch_size / ours_s,
        "bare_images_per_s": batch_size / bare_s,
        "overhead_percent": 100.0 * (ours_s - bare_s) / bare_s,
        "overhead_percent_min": 100.0 * (min(ours_times) - min(bare_times)) / min(bare_times),
        "data_loading_images_per_s": loading_ips,
        "data_loading_over_step_throughput": loading_ips / (batch_size / ours_s),
        "peak_gpu_memory_gib": {k: v / 2**30 for k, v in peaks.items()} if device.type == "cuda" else None,
        "parameters": sum(p.numel() for p in trainer.model.parameters()),
        "trainable_parameters": sum(p.numel() for p in trainer.model.parameters() if p.requires_grad),
        "resolved_config": config_to_dict(config),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
    }
    out = Path(args.out or f"speed/results/train_step-{args.config}-{device.type}.json")
    write_text_atomic(out, json.dumps(result, indent=2) + "\n")
    keys = (
        "ours_images_per_s",
        "bare_images_per_s",
        "overhead_percent",
        "overhead_percent_min",
        "data_loading_images_per_s",
        "data_loading_over_step_throughput",
        "peak_gpu_memory_gib",
    )
    print(json.dumps({k: result[k] for k in keys}, indent=2))
    print(f"written: {out}")
    with contextlib.suppress(OSError):
        import shutil

        shutil.rmtree(work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
