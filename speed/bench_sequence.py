"""Benchmark sequence decoding (geo.sequence): photos per second for Viterbi and forward–backward.

A random street-like graph of A sub-streets (each joined to its nearest neighbours in the plane, mean
degree about 4, as the Helsinki AddressBook's 4.1 with reach_m=10), a true random walk of T photos on
it (move 0.1 / jump 0.002 per photo), and noisy per-photo probabilities whose argmax is right on about
60 % of the photos. Times one decode of the whole sequence (best of `--repeats`), and reports the
per-photo and decoded accuracy as a sanity check of what was timed.

    .venv/bin/python speed/bench_sequence.py [--addresses 500] [--photos 10000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import scipy
import scipy.sparse as sp
from scipy.spatial import cKDTree

from addressclip.atomic import write_text_atomic
from addressclip.geo.sequence import SequenceDecoder, TransitionParams


def street_like_graph(rng: np.random.Generator, count: int, nearest: int = 3) -> sp.csr_matrix:
    """Join every point to its `nearest` neighbours in the unit square (symmetric): a planar-ish grid."""
    points = rng.random((count, 2))
    _, index = cKDTree(points).query(points, nearest + 1)
    rows = np.repeat(np.arange(count), nearest)
    cols = index[:, 1:].ravel()
    data = np.ones(2 * len(rows), dtype=bool)
    return sp.csr_matrix((data, (np.r_[rows, cols], np.r_[cols, rows])), shape=(count, count))


def true_walk(rng: np.random.Generator, adjacency: sp.csr_matrix, length: int, params: TransitionParams):
    states = np.empty(length, dtype=np.int64)
    states[0] = rng.integers(adjacency.shape[0])
    for t in range(1, length):
        here = states[t - 1]
        neighbours = adjacency.indices[adjacency.indptr[here] : adjacency.indptr[here + 1]]
        draw = rng.random()
        if draw < params.jump:
            states[t] = rng.integers(adjacency.shape[0])
        elif draw < params.jump + params.move and len(neighbours):
            states[t] = rng.choice(neighbours)
        else:
            states[t] = here
    return states


def noisy_probabilities(rng: np.random.Generator, states: np.ndarray, count: int) -> np.ndarray:
    logits = rng.gumbel(size=(len(states), count)) * 1.5
    logits[np.arange(len(states)), states] += 9.0
    logits -= logits.max(axis=1, keepdims=True)
    probs = np.exp(logits)
    return (probs / probs.sum(axis=1, keepdims=True)).astype(np.float32)


def best_seconds(function, repeats: int) -> tuple[float, float]:
    """Best wall-clock and best CPU seconds of this process (CPU time is less hit by other loads)."""
    wall, cpu = [], []
    for _ in range(repeats):
        started, started_cpu = time.perf_counter(), time.process_time()
        function()
        wall.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
    return min(wall), min(cpu)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--addresses", type=int, default=500)
    parser.add_argument("--photos", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("speed/results/sequence.json"))
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    params = TransitionParams()
    adjacency = street_like_graph(rng, args.addresses)
    degree = np.diff(adjacency.indptr)
    states = true_walk(rng, adjacency, args.photos, params)
    probs = noisy_probabilities(rng, states, args.addresses)
    log_probs = np.log(probs)
    decoder = SequenceDecoder(adjacency, params)
    gaps = rng.uniform(0.5, 1.5, args.photos - 1)  # irregular gaps: one transition table per photo

    result = decoder.decode(log_probs)
    timings = {
        "viterbi": best_seconds(lambda: decoder.viterbi(log_probs), args.repeats),
        "forward_backward": best_seconds(lambda: decoder.forward_backward(log_probs), args.repeats),
        "decode": best_seconds(lambda: decoder.decode(log_probs), args.repeats),
        "decode_irregular_gaps": best_seconds(lambda: decoder.decode(log_probs, gaps), args.repeats),
    }
    record = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "scipy": scipy.__version__,
            "load_average_1min": round(os.getloadavg()[0], 2),  # other processes share the cores
        },
        "graph": {
            "addresses": args.addresses,
            "mean_degree": round(float(degree.mean()), 2),
            "max_degree": int(degree.max()),
        },
        "photos": args.photos,
        "params": {"move": params.move, "jump": params.jump, "unit": params.unit},
        "photos_per_second": {k: round(args.photos / v[0]) for k, v in timings.items()},
        "photos_per_cpu_second": {k: round(args.photos / v[1]) for k, v in timings.items()},
        "seconds": {k: round(v[0], 4) for k, v in timings.items()},
        "accuracy": {
            "per_photo_argmax": round(float((probs.argmax(axis=1) == states).mean()), 4),
            "viterbi_path": round(float((result.path == states).mean()), 4),
            "posterior_argmax": round(float((result.posteriors.argmax(axis=1) == states).mean()), 4),
        },
    }
    write_text_atomic(args.out, json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
