"""Benchmark the image tower on the CPU: torch vs onnxruntime, in the same run, on the same inputs.

The `cpu` preset's architecture (random weights: speed does not depend on them) is exported as
`export --onnx` does (`serve.onnx_export`), then both backends embed the same uint8 batches, as the
predictor does (normalise + ViT + L2 norm): batch 1 (one photo per request) and batch 32 (the
service's micro-batch), with 1 and 2 CPU threads. Torch and onnxruntime are timed alternately per
setting so that other processes on the machine weigh on both alike; the record keeps the best
wall-clock rate of the repeats and the CPU-time rate (less sensitive to a busy machine), and the
largest embedding difference as a check that both computed the same thing.

    .venv/bin/python speed/bench_onnx.py [--seconds 1.5] [--repeats 3] [--out speed/results/onnx.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime
import torch

from addressclip.atomic import write_text_atomic
from addressclip.config import load_config
from addressclip.model.factory import build_model
from addressclip.serve.onnx_backend import OnnxImageEncoder
from addressclip.serve.onnx_export import ImageTower, export_image_encoder


def rate(run: Callable[[], object], images: int, seconds: float, repeats: int) -> tuple[float, float]:
    """(best images per wall-clock second, best images per CPU second) over `repeats` timed windows."""
    run()  # warm-up: first-call allocations, onnxruntime's graph setup
    wall, cpu = [], []
    for _ in range(repeats):
        calls = 0
        started, started_cpu = time.perf_counter(), time.process_time()
        while time.perf_counter() - started < seconds:
            run()
            calls += 1
        wall.append(calls * images / (time.perf_counter() - started))
        cpu.append(calls * images / max(time.process_time() - started_cpu, 1e-9))
    return max(wall), max(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="cpu", help="preset whose model architecture is timed")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--seconds", type=float, default=1.5, help="length of one timed window")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("speed/results/onnx.json"))
    args = parser.parse_args()

    config = load_config(args.config).model
    config.init = None
    model = build_model(config).eval()
    tower = ImageTower(model).eval()
    size = int(model.preprocess["image_size"])
    with tempfile.TemporaryDirectory() as folder:
        entry = export_image_encoder(model, Path(folder))
        onnx_bytes = (Path(folder) / entry["file"]).stat().st_size
        encoders = {
            t: OnnxImageEncoder(Path(folder) / entry["file"], model.preprocess, 1.0, t) for t in args.threads
        }

        rng = np.random.default_rng(0)
        results, worst = [], 0.0
        for threads in args.threads:
            torch.set_num_threads(threads)
            for batch in args.batches:
                pixels = rng.integers(0, 256, (batch, 3, size, size), dtype=np.uint8)
                tensor = torch.from_numpy(pixels)

                def torch_run(tensor=tensor) -> np.ndarray:
                    with torch.inference_mode():
                        return tower(tensor).numpy()

                def onnx_run(pixels=pixels, encoder=encoders[threads]) -> np.ndarray:
                    return encoder(pixels)

                worst = max(worst, float(np.abs(torch_run() - onnx_run()).max()))
                torch_wall, torch_cpu = rate(torch_run, batch, args.seconds, args.repeats)
                onnx_wall, onnx_cpu = rate(onnx_run, batch, args.seconds, args.repeats)
                row = {
                    "threads": threads,
                    "batch": batch,
                    "torch_images_per_s": round(torch_wall, 1),
                    "onnxruntime_images_per_s": round(onnx_wall, 1),
                    "speedup": round(onnx_wall / torch_wall, 2),
                    "torch_images_per_cpu_s": round(torch_cpu, 1),
                    "onnxruntime_images_per_cpu_s": round(onnx_cpu, 1),
                    "speedup_cpu_time": round(onnx_cpu / torch_cpu, 2),
                }
                results.append(row)
                print(json.dumps(row))

    vision = config.vision
    record = {
        "machine": {
            "cpus": os.cpu_count(),
            "processor": platform.processor() or platform.machine(),
            "python": platform.python_version(),
            "torch": torch.__version__.split("+")[0],
            "onnxruntime": onnxruntime.__version__,
            "load_average_1min": round(os.getloadavg()[0], 2),  # other processes share the cores
        },
        "model": {
            "preset": args.config,
            "image_size": size,
            "vision": {k: getattr(vision, k) for k in ("layers", "width", "patch_size")},
            "embed_dim": entry["embed_dim"],
            "onnx_bytes": onnx_bytes,
            "opset": entry["opset"],
        },
        "timing": {"seconds_per_window": args.seconds, "repeats": args.repeats, "rate": "best window"},
        "max_abs_embedding_difference": worst,
        "results": results,
    }
    write_text_atomic(args.out, json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
