"""Memory-bounded load check of the REST service: maximal bodies from many clients, RSS under a ceiling.

`addressclip serve` (CPU preset, random weights, every sub-street of the bundled Helsinki AddressBook)
runs in a subprocess on loopback with its default limits. `--clients` threads each post the largest
body /v1/predict admits — a valid PNG of just under `--max-upload-mb`, base64 in JSON (4/3 of it) —
one after another for `--seconds`, while one more client, in its own process, polls /healthz every
50 ms. The server's RSS is sampled from /proc every 100 ms. The check passes when the peak RSS
stays under `--ceiling-mb`, no response is a 5xx, and the /healthz p99 latency is under 50 ms.

    .venv/bin/python speed/bench_serve_memory.py [--clients 16] [--seconds 60] \\
        [--out speed/results/serve_memory.json]
"""

from __future__ import annotations

import argparse
import base64
import collections
import concurrent.futures
import io
import json
import multiprocessing
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from addressclip.atomic import write_text_atomic

sys.path.insert(0, str(Path(__file__).parent))
from bench_serve import _free_port, _wait_healthy, build_predictor

MiB = 1024 * 1024
HEALTH_P99_LIMIT_MS = 50.0


def maximal_png(max_bytes: int, seed: int = 0) -> bytes:
    """A valid noise PNG just under `max_bytes` (noise does not compress: ~3 bytes a pixel)."""
    rng = np.random.default_rng(seed)
    side = int((max_bytes / 3.0) ** 0.5)
    while True:
        pixels = rng.integers(0, 256, size=(side, side, 3), dtype=np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, "PNG", compress_level=1)
        if buffer.tell() <= max_bytes - 1024:
            return buffer.getvalue()
        side -= 16


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def _percentile(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)), 1) if values else float("nan")


def poll_health(url: str, stop: Any, results: Any) -> None:
    """/healthz every 50 ms until `stop` is set, from its own process.

    In the load generator's process the poller would queue for that process's GIL behind 16 client
    threads, and the figure would measure the benchmark rather than the server.
    """
    import httpx

    latencies: list[float] = []
    with httpx.Client(base_url=url, timeout=30) as session:
        while not stop.is_set():
            started = time.perf_counter()
            session.get("/healthz").raise_for_status()
            latencies.append((time.perf_counter() - started) * 1000.0)
            time.sleep(0.05)
    results.put(latencies)


def load(url: str, body: bytes, clients: int, seconds: float, pid: int) -> dict:
    import httpx

    stop = threading.Event()
    statuses: collections.Counter[int] = collections.Counter()
    latencies: list[float] = []
    samples: list[float] = []
    lock = threading.Lock()

    def client(_: int) -> None:
        with httpx.Client(base_url=url, timeout=120) as session:
            while not stop.is_set():
                started = time.perf_counter()
                response = session.post(
                    "/v1/predict?geometry=false", content=body, headers={"content-type": "application/json"}
                )
                elapsed = (time.perf_counter() - started) * 1000.0
                with lock:
                    statuses[response.status_code] += 1
                    if response.status_code == 200:
                        latencies.append(elapsed)

    def sample_rss() -> None:
        while not stop.is_set():
            samples.append(rss_mb(pid))
            time.sleep(0.1)

    rss_before = rss_mb(pid)
    spawn = multiprocessing.get_context("spawn")
    poller_stop, poller_results = spawn.Event(), spawn.Queue()
    poller = spawn.Process(target=poll_health, args=(url, poller_stop, poller_results))
    poller.start()
    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(clients + 1) as pool:
        futures = [pool.submit(client, i) for i in range(clients)]
        futures.append(pool.submit(sample_rss))
        time.sleep(seconds)
        stop.set()
        poller_stop.set()
        for future in futures:
            future.result()
    health = poller_results.get(timeout=60)
    poller.join(timeout=30)
    wall = time.perf_counter() - started
    server_health = httpx.get(url + "/healthz", timeout=10).json()
    return {
        "clients": clients,
        "seconds": round(wall, 1),
        "requests": sum(statuses.values()),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "responses_5xx": sum(v for k, v in statuses.items() if k >= 500),
        "predict_latency_ms": {"p50": _percentile(latencies, 50), "p99": _percentile(latencies, 99)},
        "healthz_latency_ms": {
            "samples": len(health),
            "p50": _percentile(health, 50),
            "p99": _percentile(health, 99),
            "max": round(max(health), 1) if health else None,
        },
        "server_rss_mb": {
            "before_load": round(rss_before, 1),
            "peak": round(max(samples, default=rss_before), 1),
            "after_load": round(rss_mb(pid), 1),
        },
        "server_inflight_bytes": server_health.get("inflight_bytes"),
        "server_batching": server_health.get("batching"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--max-upload-mb", type=float, default=10.0, help="the server's --max-upload-mb")
    parser.add_argument("--ceiling-mb", type=float, default=2048.0, help="the RSS the server must stay under")
    parser.add_argument(
        "--bulk-nice", type=int, default=None, help="the server's --bulk-nice (default: the server's own)"
    )
    parser.add_argument("--out", type=Path, default=Path("speed/results/serve_memory.json"))
    args = parser.parse_args()

    load_before = os.getloadavg()
    image = maximal_png(int(args.max_upload_mb * MiB))
    body = json.dumps({"image": base64.b64encode(image).decode(), "top_k": 5}).encode()
    width, height = Image.open(io.BytesIO(image)).size
    print(f"body: {len(body) / MiB:.2f} MiB JSON carrying a {len(image) / MiB:.2f} MiB {width}x{height} PNG")
    predictor, _ = build_predictor()
    with tempfile.TemporaryDirectory(prefix="addressclip-bench-") as tmp:
        try:
            from addressclip.serve.bundle import export_bundle

            bundle = export_bundle(predictor, Path(tmp) / "bundle")
        except ImportError:
            bundle = predictor.export(Path(tmp) / "bundle")
        del predictor
        port = _free_port()
        command = [
            sys.executable, "-m", "addressclip.cli", "serve", "--bundle", str(bundle), "--port", str(port),
            "--log-level", "warning", "--threads", "1", "--max-upload-mb", str(args.max_upload_mb),
        ]  # fmt: skip
        if args.bulk_nice is not None:
            command += ["--bulk-nice", str(args.bulk_nice)]
        server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            url = f"http://127.0.0.1:{port}"
            _wait_healthy(url, server)
            result = load(url, body, args.clients, args.seconds, server.pid)
        finally:
            server.terminate()
            server.wait(timeout=60)
    checks = {
        "rss_under_ceiling": result["server_rss_mb"]["peak"] < args.ceiling_mb,
        "no_5xx": result["responses_5xx"] == 0,
        "healthz_p99_under_50ms": result["healthz_latency_ms"]["p99"] < HEALTH_P99_LIMIT_MS,
    }
    report = {
        "benchmark": "serve_memory",
        "command": " ".join(["speed/bench_serve_memory.py", *sys.argv[1:]]),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "load_average_before": [round(v, 2) for v in load_before],
            "load_average_after": [round(v, 2) for v in os.getloadavg()],
        },
        "body": {
            "route": "POST /v1/predict (JSON, base64)",
            "bytes": len(body),
            "image": {"format": "PNG (noise)", "bytes": len(image), "size": [width, height]},
        },
        "ceiling_mb": args.ceiling_mb,
        "load": result,
        "checks": checks,
        "ok": all(checks.values()),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.out, json.dumps(report, indent=2) + "\n")
    print(json.dumps(report["load"], indent=1))
    print(f"checks: {checks} -> wrote {args.out}")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
