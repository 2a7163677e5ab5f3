"""Benchmark the evaluation side at the paper's Pitts-IAL scale, on random unit features.

1. The metrics: SSA-k / SA-k with the pessimistic tie rule for 19,000 queries x 327 candidates.
2. The paper's storage/latency argument: AddressCLIP's address gallery (327 x 512 float32) against an
   Image->GPS->Address database of 234,000 train images (512-d, and an 8,448-d VPR descriptor such as
   SALAD's), searched exactly with faiss, one query at a time. The image encoder is common to both
   and left out: this is the cost of what comes after it.

    .venv/bin/python speed/bench_eval.py [--queries 19000] [--candidates 327] [--database 234000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from addressclip.atomic import write_text_atomic
from addressclip.baselines.retrieval import NearestIndex
from addressclip.eval.metrics import ranked_accuracies


def _unit(rng: np.random.Generator, rows: int, dim: int) -> np.ndarray:
    x = rng.standard_normal((rows, dim), dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _per_query_ms(search, queries: np.ndarray, repeats: int = 200) -> float:
    for q in queries[:5]:
        search(q[None])
    timings = []
    for q in queries[:repeats]:
        started = time.perf_counter()
        search(q[None])
        timings.append(time.perf_counter() - started)
    return 1000.0 * float(np.median(timings))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=19_000)
    parser.add_argument("--candidates", type=int, default=327)
    parser.add_argument("--database", type=int, default=234_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--vpr-dim", type=int, default=8448)
    parser.add_argument(
        "--vpr-database", type=int, default=20_000, help="rows actually built for the VPR timing"
    )
    parser.add_argument("--out", type=Path, default=Path("speed/results/eval.json"))
    args = parser.parse_args()
    rng = np.random.default_rng(0)

    scores = rng.standard_normal((args.queries, args.candidates)).astype(np.float32)
    truth = rng.integers(0, args.candidates, args.queries)
    streets = rng.integers(0, max(1, args.candidates // 3), args.candidates)
    started = time.perf_counter()
    ranked_accuracies(scores, truth, streets, (1, 5))
    metrics_s = time.perf_counter() - started

    queries = _unit(rng, 256, args.dim)
    gallery = _unit(rng, args.candidates, args.dim)
    gallery_ms = _per_query_ms(lambda q: np.argsort(-(q @ gallery.T), axis=1)[:, :5], queries)
    database = NearestIndex(_unit(rng, args.database, args.dim))
    database_ms = _per_query_ms(lambda q: database.search(q, 50), queries)
    vpr = NearestIndex(_unit(rng, args.vpr_database, args.vpr_dim))
    vpr_queries = _unit(rng, 256, args.vpr_dim)
    vpr_ms = _per_query_ms(lambda q: vpr.search(q, 50), vpr_queries)

    record = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "search": database.backend,
            "load_average_1min": round(os.getloadavg()[0], 2),  # other processes share the cores
        },
        "metrics": {"queries": args.queries, "candidates": args.candidates, "seconds": round(metrics_s, 3)},
        "addressclip_gallery": {
            "rows": args.candidates,
            "bytes": int(gallery.nbytes),
            "per_query_ms": round(gallery_ms, 4),
        },
        "retrieval_database": {
            "rows": args.database,
            "bytes": int(args.database * (args.dim * 4 + 16)),  # descriptors + GPS (2 x float64)
            "per_query_ms": round(database_ms, 3),
        },
        "vpr_database": {
            "rows_timed": args.vpr_database,
            "dim": args.vpr_dim,
            "bytes_at_full_database": int(args.database * (args.vpr_dim * 4 + 16)),
            "per_query_ms_at_rows_timed": round(vpr_ms, 3),
        },
    }
    write_text_atomic(args.out, json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
