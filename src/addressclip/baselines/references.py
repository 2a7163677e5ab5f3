"""Honest references from the world itself: chance, the majority class, raw-pixel nearest neighbour.

A method that does not beat these has learnt nothing about addresses. Chance's SSA-k / SA-k are the
exact expected values of a uniformly random ranking (`hyper['exact']`, which the runner puts in the
table); its other metrics (metre error, calibration) come from one seeded random ranking through
the same path as the methods.
"""

from __future__ import annotations

import numpy as np

from addressclip.baselines.base import BaselineSetup, MethodOutput
from addressclip.baselines.retrieval import run_retrieval
from addressclip.eval.metrics import chance_accuracies


def run_chance(setup: BaselineSetup) -> MethodOutput:
    rng = np.random.default_rng(setup.seed)
    rows = setup.eval_rows
    scores = rng.random((len(rows), len(setup.data.vocabulary)))
    exact = chance_accuracies(setup.data.labels(rows), setup.data.candidate_street)
    return MethodOutput(scores=scores, scale=0.0, storage_bytes=0, latency_ms=None, hyper={"exact": exact})


def run_majority(setup: BaselineSetup) -> MethodOutput:
    """Every query gets the same ranking: training addresses by image count (ties: candidate order)."""
    counts = np.bincount(setup.labels(setup.train_split), minlength=len(setup.data.vocabulary))
    order = np.lexsort((np.arange(len(counts)), -counts))  # most images first, then by index
    ranking = np.empty(len(counts))
    ranking[order] = -np.arange(len(counts), dtype=np.float64)  # unique scores: no ties to resolve
    scores = np.tile(ranking, (len(setup.eval_rows), 1))
    share = counts / max(1, counts.sum())
    return MethodOutput(
        scores=scores,
        scale=0.0,
        storage_bytes=int(counts.nbytes),
        latency_ms=None,
        hyper={"majority_address": setup.data.vocabulary.addresses[int(order[0])],
               "train_share": float(share[order[0]])},
    )  # fmt: skip


def run_pixel_nn(setup: BaselineSetup) -> MethodOutput:
    output = run_retrieval(setup, "pixels")
    output.hyper["reference"] = "16x16 grey thumbnails, mean removed, cosine; GPS of the nearest -> address"
    return output
