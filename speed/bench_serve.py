"""Benchmark the predictor and the REST service with the CPU preset model.

1. predictions/s of `AddressPredictor` on the CPU preset (random weights: speed does not depend on
   training), gallery = every sub-street of the bundled Helsinki AddressBook: model only (decoded
   batches), end to end from JPEG bytes (decode + model), and one photo at a time;
2. the service (`addressclip serve` in a subprocess, on loopback) under a bounded load: `--clients`
   concurrent clients, each posting one photo at a time for `--seconds`; p50/p90/p99 latency and
   throughput, plus how the micro-batcher grouped the requests.

Both are measured with torch's default thread count and with one thread (`--threads 1`): on a CPU
shared with other work, intra-op threads of a small model wait on each other and one thread is
often much faster. The load average before and after is recorded, since other work skews every figure.

    .venv/bin/python speed/bench_serve.py [--clients 8] [--seconds 20] [--out speed/results/serve.json]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import io
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from addressclip.atomic import write_text_atomic

PHOTO_SIZE = (160, 120)  # the demo world's render size is of this order; decoding is part of the cost


def _photos(count: int, seed: int = 0) -> list[bytes]:
    rng = np.random.default_rng(seed)
    photos = []
    for _ in range(count):
        pixels = rng.integers(0, 256, size=(PHOTO_SIZE[1], PHOTO_SIZE[0], 3), dtype=np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, "JPEG", quality=90)
        photos.append(buffer.getvalue())
    return photos


def _rate(work, items_per_call: int, min_seconds: float) -> float:
    work()  # warm-up
    calls, started = 0, time.perf_counter()
    while time.perf_counter() - started < min_seconds:
        work()
        calls += 1
    return calls * items_per_call / (time.perf_counter() - started)


def build_predictor():
    import torch

    from addressclip.config import load_config
    from addressclip.geo.addressbook import AddressBook
    from addressclip.model.factory import build_model
    from addressclip.resources import bundled_extract
    from addressclip.serve.predictor import AddressPredictor
    from addressclip.serve.sources import gallery_from_addressbook

    torch.manual_seed(0)
    model = build_model(load_config("cpu").model, "cpu")
    book = AddressBook.from_osm(bundled_extract("helsinki"))
    started = time.perf_counter()
    predictor = AddressPredictor(model, gallery_from_addressbook(book), device="cpu", addressbook=book)
    return predictor, time.perf_counter() - started


def bench_predictor(predictor, photos: list[bytes], batch: int, seconds: float) -> dict:
    decoded = np.stack([predictor.decode(p) for p in photos[:batch]])
    single = decoded[:1]
    return {
        "batch_size": batch,
        "model_only_predictions_per_s": round(
            _rate(lambda: predictor.predict_pixels(decoded, 5), batch, seconds), 1
        ),
        "end_to_end_predictions_per_s": round(
            _rate(lambda: predictor.predict(photos[:batch], 5), batch, seconds), 1
        ),
        "one_at_a_time_predictions_per_s": round(
            _rate(lambda: predictor.predict_pixels(single, 5), 1, seconds), 1
        ),
        "decode_per_s": round(
            _rate(lambda: [predictor.decode(p) for p in photos[:batch]], batch, seconds), 1
        ),
    }


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_healthy(url: str, server: subprocess.Popen, timeout: float = 120.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError("the server exited before it was ready")
        try:
            if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.2)
    raise RuntimeError("the server did not become healthy")


def load_test(url: str, photos: list[bytes], clients: int, seconds: float) -> dict:
    """Each client posts one photo, waits for the answer, posts the next, until the time is up."""
    import httpx

    def client(index: int) -> tuple[list[float], int]:
        latencies, errors = [], 0
        rng = np.random.default_rng(index)
        with httpx.Client(base_url=url, timeout=30) as session:
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                photo = photos[int(rng.integers(len(photos)))]
                started = time.perf_counter()
                response = session.post("/v1/predict?geometry=false", files={"image": ("photo.jpg", photo)})
                elapsed = time.perf_counter() - started
                if response.status_code == 200:
                    latencies.append(elapsed)
                else:
                    errors += 1
        return latencies, errors

    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(client, range(clients)))
    wall = time.perf_counter() - started
    latencies = np.array([x for lat, _ in results for x in lat]) * 1000.0
    batching = httpx.get(url + "/healthz", timeout=5).json()["batching"]
    return {
        "clients": clients,
        "seconds": round(wall, 2),
        "requests": len(latencies),
        "errors": int(sum(e for _, e in results)),
        "requests_per_s": round(len(latencies) / wall, 1),
        "latency_ms": {
            "p50": round(float(np.percentile(latencies, 50)), 1),
            "p90": round(float(np.percentile(latencies, 90)), 1),
            "p99": round(float(np.percentile(latencies, 99)), 1),
            "max": round(float(latencies.max()), 1),
        },
        "server_batching": batching,
    }


def serve_and_load(bundle: Path, photos: list[bytes], threads: int, args: argparse.Namespace) -> dict:
    """`addressclip serve --threads N` in a subprocess, loaded by the clients of this process."""
    port = _free_port()
    command = [
        sys.executable, "-m", "addressclip.cli", "serve", "--bundle", str(bundle),
        "--port", str(port), "--log-level", "warning", "--threads", str(threads),
    ]  # fmt: skip
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_healthy(url, server)
        return load_test(url, photos, args.clients, args.seconds)
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=20.0, help="duration of the service load test")
    parser.add_argument("--batch", type=int, default=32, help="batch size of the predictor benchmark")
    parser.add_argument("--predictor-seconds", type=float, default=5.0, help="time per predictor measurement")
    parser.add_argument("--out", type=Path, default=Path("speed/results/serve.json"))
    args = parser.parse_args()

    import torch

    load_before = os.getloadavg()  # other work on the machine skews every figure: record it
    photos = _photos(64)
    predictor, gallery_s = build_predictor()
    print(f"gallery: {len(predictor.gallery)} addresses embedded in {gallery_s:.1f} s", flush=True)
    default_threads = torch.get_num_threads()
    thread_counts = sorted({1, default_threads})
    predictor_results = {}
    for threads in thread_counts:
        torch.set_num_threads(threads)
        predictor_results[f"threads_{threads}"] = bench_predictor(
            predictor, photos, args.batch, args.predictor_seconds
        )
        print(threads, json.dumps(predictor_results[f"threads_{threads}"]), flush=True)
    torch.set_num_threads(default_threads)

    service_results = {}
    with tempfile.TemporaryDirectory(prefix="addressclip-bench-") as tmp:
        bundle = predictor.export(Path(tmp) / "bundle")
        for threads in thread_counts:
            service_results[f"threads_{threads}"] = serve_and_load(bundle, photos, threads, args)
            print(threads, json.dumps(service_results[f"threads_{threads}"]), flush=True)

    result = {
        "benchmark": "serve",
        "machine": {
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "platform": platform.platform(),
            "load_average_before": [round(v, 2) for v in load_before],
            "load_average_after": [round(v, 2) for v in os.getloadavg()],
        },
        "model": {"preset": "cpu", "image_size": predictor.image_size, "weights": "random (speed only)"},
        "gallery": {
            "addressbook": "helsinki (bundled)",
            "addresses": len(predictor.gallery),
            "embed_s": round(gallery_s, 2),
        },
        "photo": {"size": list(PHOTO_SIZE), "format": "JPEG q90"},
        "predictor": predictor_results,
        "service": service_results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.out, json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
