"""Benchmark: our training step against an older configuration of it and against a bare open_clip step.

Writes JSON (not a timed test). "Ours" is `Trainer.micro_step` + `optimizer_step` of the engine
(normalisation, three losses, logging-free) with the config and overrides given; "baseline" (with
`--baseline`) is the same trainer with further overrides, e.g. the throughput switches turned back
off; "bare" is a copy of the same open_clip module (same trainable parameters, same batch) doing
what a minimal open_clip loop does: encode the image, encode the address texts and the caption texts,
two `open_clip.ClipLoss` terms, backward, AdamW step. All contenders run the same batches, one round
each in turn, so that load from other processes hits them alike; wall-clock and process CPU time are
both recorded, with the load average before and after. Round 1 is reported apart from the rest
("first pass"): caches filled on first sight (the frozen image stem's tokens) make it an epoch-1
figure, the later rounds the steady state of epochs 2 and on.

    .venv/bin/python speed/bench_train_step.py --config cpu \\
        --baseline "train.vision_forward=open_clip model.frozen_image_layers=0"
    .venv/bin/python speed/bench_train_step.py --config tiny model.trainable=both
    python speed/bench_train_step.py --config paper --device cuda --batch-sizes 32,256 --flops \\
        --baseline "train.vision_forward=open_clip train.compile=false optim.adamw=auto" \\
        train.compile=true optim.adamw=fused train.tf32=true     # on a GPU, with AMP (bf16)

`speed/bench_train_gpu.sh` runs the GPU comparison of the paper preset in one go.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from addressclip.atomic import write_text_atomic
from addressclip.config import config_to_dict, load_config
from addressclip.model.device import resolve_device
from addressclip.train.distributed import DistributedContext
from addressclip.train.engine import Trainer

DEMO_MANIFEST = Path("runs/demo/world/manifest.parquet")
# Dense bf16 tensor-core peak per GPU (TFLOP/s), for the model FLOPs utilisation; --peak-tflops
# overrides. Sources: NVIDIA's H100 and H200 datasheets (SXM; without sparsity).
PEAK_BF16_TFLOPS = {"H100 80GB HBM3": 989.4, "H100 PCIe": 756.0, "H200": 989.4, "A100": 312.0}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _load() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


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


def trainer_step(trainer: Trainer) -> Callable[[Any], None]:
    def step(batch) -> None:
        trainer.micro_step(batch, sync=True)
        trainer.optimizer_step()

    return step


def time_steps(step, batches, device: torch.device) -> tuple[list[float], list[float]]:
    """Wall-clock and process CPU seconds of each step."""
    wall, cpu = [], []
    for batch in batches:
        _sync(device)
        start, start_cpu = time.perf_counter(), time.process_time()
        step(batch)
        _sync(device)
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return wall, cpu


def step_flops(step, batch) -> int:
    """FLOPs of one training step (forward + backward), counted by torch's FlopCounterMode."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        step(batch)
    return int(counter.get_total_flops())


def peak_tflops(device: torch.device, given: float | None) -> float | None:
    if given:
        return given
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((value for key, value in PEAK_BF16_TFLOPS.items() if key in name), None)


def make_trainer(config_name: str, overrides: Sequence[str], data: Path, out: Path, device) -> Trainer:
    config = load_config(
        config_name,
        [*overrides, f"data={data}", f"out={out}", f"train.device={device}", "train.progress=false"],
    )
    trainer = Trainer(config, "address", DistributedContext(0, 1, 0, device))
    trainer.warm_text_cache()  # as training does before its first step
    trainer.model.train()
    return trainer


def _summary(wall: list[float], cpu: list[float], first: int, batch_size: int) -> dict[str, Any]:
    """Steps after the first pass (or all, with a single round) and the first pass alone."""
    steady_wall, steady_cpu = (wall[first:], cpu[first:]) if len(wall) > first else (wall, cpu)
    median = statistics.median(steady_wall)
    return {
        "step_s_median": median,
        "step_s_min": min(steady_wall),
        "cpu_s_median": statistics.median(steady_cpu),
        "images_per_s": batch_size / median,
        "first_pass_step_s_median": statistics.median(wall[:first]),
        "first_pass_images_per_s": batch_size / statistics.median(wall[:first]),
        "steps_timed": len(steady_wall),
    }


def bench_batch_size(args, batch_size: int | None, data: Path, work: Path, device) -> dict[str, Any]:
    sized = [f"optim.batch_size={batch_size}"] if batch_size else []
    ours = make_trainer(args.config, [*args.overrides, *sized], data, work / "ours", device)
    batch_size = ours.config.optim.batch_size
    contenders: dict[str, Callable[[Any], Any]] = {"ours": trainer_step(ours)}
    baseline_overrides = args.baseline.split() if args.baseline else []
    if baseline_overrides:
        old = make_trainer(
            args.config, [*args.overrides, *sized, *baseline_overrides], data, work / "base", device
        )
        contenders["baseline"] = trainer_step(old)
    if not args.no_bare:
        contenders["bare"] = BareOpenClipStep(ours)

    # data loading throughput (loader + augmentation), over the batches the steps use
    needed = args.steps + 3
    loaded = []
    start = time.perf_counter()
    epoch = 0
    while len(loaded) < needed:
        for batch in ours.loader(epoch):
            loaded.append(ours.prepare(batch, epoch))
            if len(loaded) == needed:
                break
        epoch += 1
    loading_ips = needed * batch_size / (time.perf_counter() - start)
    warm, timed = loaded[:3], loaded[3:]

    warmup_s = {}
    for name, step in contenders.items():  # caches, allocator, kernels; compilation when switched on
        _sync(device)
        start = time.perf_counter()
        for batch in warm:
            step(batch)
        _sync(device)
        warmup_s[name] = time.perf_counter() - start
    walls: dict[str, list[float]] = {name: [] for name in contenders}
    cpus: dict[str, list[float]] = {name: [] for name in contenders}
    peaks = dict.fromkeys(contenders, 0)
    for _ in range(args.rounds):
        for name, step in contenders.items():
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            wall, cpu = time_steps(step, timed, device)
            walls[name] += wall
            cpus[name] += cpu
            if device.type == "cuda":
                peaks[name] = max(peaks[name], torch.cuda.max_memory_allocated(device))
    result: dict[str, Any] = {
        "batch_size": batch_size,
        "warmup_s": warmup_s,
        **{name: _summary(walls[name], cpus[name], len(timed), batch_size) for name in contenders},
        "data_loading_images_per_s": loading_ips,
    }
    ours_s = result["ours"]["step_s_median"]
    result["data_loading_over_step_throughput"] = loading_ips / (batch_size / ours_s)
    if "baseline" in result:
        base = result["baseline"]
        result["speedup_over_baseline"] = base["step_s_median"] / ours_s
        result["speedup_over_baseline_cpu_time"] = base["cpu_s_median"] / result["ours"]["cpu_s_median"]
        result["speedup_over_baseline_first_pass"] = (
            base["first_pass_step_s_median"] / result["ours"]["first_pass_step_s_median"]
        )
    if "bare" in result:
        result["overhead_percent_vs_bare"] = (
            100.0 * (ours_s - result["bare"]["step_s_median"]) / (result["bare"]["step_s_median"])
        )
    if device.type == "cuda":
        result["peak_gpu_memory_gib"] = {k: v / 2**30 for k, v in peaks.items()}
    if args.flops or device.type == "cuda":
        # model FLOPs: those of the plain eager step (open_clip's full forward + backward), counted
        # once and charged to every contender, so that the lean path's skipped work and compiled
        # kernels (which FlopCounterMode cannot see) do not change the yardstick
        reference = next(name for name in ("bare", "baseline", "ours") if name in contenders)
        flops = step_flops(contenders[reference], timed[0])
        peak = peak_tflops(device, args.peak_tflops)
        for name in contenders:
            achieved = flops / result[name]["step_s_median"] / 1e12
            result[name]["achieved_model_tflops"] = achieved
            result[name]["model_flops_utilisation"] = achieved / peak if peak else None
        result["model_flops_per_step"] = flops
        result["model_flops_counted_on"] = reference
        result["peak_tflops_assumed"] = peak
    result["resolved_config"] = config_to_dict(ours.config)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="cpu")
    parser.add_argument("--data", help=f"manifest (default: {DEMO_MANIFEST} if present, else a toy world)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per round (the same batches)")
    parser.add_argument("--rounds", type=int, default=4, help="rounds, each contender in turn")
    parser.add_argument("--baseline", default="", help="overrides of the baseline run, space-separated")
    parser.add_argument("--batch-sizes", default="", help="comma-separated (default: the config's)")
    parser.add_argument("--no-bare", action="store_true", help="leave out the bare open_clip step")
    parser.add_argument("--flops", action="store_true", help="count FLOPs per step (always on CUDA)")
    parser.add_argument("--peak-tflops", type=float, help="the device's peak, for FLOPs utilisation")
    parser.add_argument("--out", help="JSON file (default speed/results/train_step-<config>-<device>.json)")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args(argv)

    device = resolve_device(args.device)
    work = Path(tempfile.mkdtemp(prefix="bench-train-"))
    probe = load_config(args.config, args.overrides)
    sizes = [int(s) for s in args.batch_sizes.split(",") if s] or [None]
    data = Path(args.data) if args.data else DEMO_MANIFEST
    source = str(data)
    if not data.is_file():
        from addressclip.testing.toyworld import make_toy_manifest

        size = probe.model.image_size
        largest = max([s for s in sizes if s] or [probe.optim.batch_size])
        per_address = max(8, (largest * 4) // 16)
        addresses = max(16, largest // max(1, probe.loader.max_per_address))
        data = make_toy_manifest(
            work / "toy", addresses=addresses, per_address=per_address, image_size=(size, size)
        )
        source = f"toy world ({addresses} addresses x {per_address} images, {size}px)"
    load_before = _load()
    started = time.perf_counter()
    runs = [bench_batch_size(args, size, data, work / f"b{size}", device) for size in sizes]
    result = {
        "benchmark": "train_step",
        "command": "python speed/bench_train_step.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "config": args.config,
        "overrides": args.overrides,
        "baseline_overrides": args.baseline.split(),
        "data": source,
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.processor() or platform.machine(),
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "load_average_before": load_before,
        "load_average_after": _load(),
        "seconds": time.perf_counter() - started,
        "runs": runs,
        "python": sys.version.split()[0],
        "torch": torch.__version__,
    }
    out = Path(args.out or f"speed/results/train_step-{args.config}-{device.type}.json")
    write_text_atomic(out, json.dumps(result, indent=2) + "\n")
    for run in runs:
        shown = {k: v for k, v in run.items() if k not in ("resolved_config",)}
        print(json.dumps(shown, indent=2))
    print(f"load average before {load_before}, after {result['load_average_after']}")
    print(f"written: {out}")
    with contextlib.suppress(OSError):
        shutil.rmtree(work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
