"""Linear probe: multinomial logistic regression on the frozen street-CLIP image features.

CLIP's protocol: L2-regularised logistic regression fitted with L-BFGS, the inverse regularisation
strength C chosen on the val split from a log grid. Written in torch (the objective is sklearn's,
C * sum(cross-entropy) + ||W||^2 / 2, divided by C * N) so no extra dependency is needed; classes
without training images keep only their bias and are effectively never predicted.
"""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F

from addressclip.baselines.base import BaselineSetup, MethodOutput, latency_images, measure_latency

C_GRID: tuple[float, ...] = (0.01, 0.1, 1.0, 10.0, 100.0)


def fit_logistic(
    features: np.ndarray,
    labels: np.ndarray,
    classes: int,
    c: float,
    max_iter: int = 300,
    start: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(weight (D, classes), bias (classes,)) minimising mean CE + ||W||^2 / (2 C N).

    `start` warm-starts from another solution (the neighbouring C of the grid), which converges in
    far fewer iterations than from zero.
    """
    x = torch.from_numpy(np.asarray(features, dtype=np.float32))
    y = torch.from_numpy(np.asarray(labels, dtype=np.int64))
    if start is None:
        weight = torch.zeros(x.shape[1], classes, requires_grad=True)
        bias = torch.zeros(classes, requires_grad=True)
    else:
        weight = start[0].clone().requires_grad_(True)
        bias = start[1].clone().requires_grad_(True)
    penalty = 1.0 / (c * len(x))
    optimizer = torch.optim.LBFGS(
        [weight, bias], lr=1.0, max_iter=max_iter, history_size=20, line_search_fn="strong_wolfe"
    )

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(x @ weight + bias, y) + 0.5 * penalty * (weight**2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return weight.detach(), bias.detach()


def run_linear_probe(setup: BaselineSetup) -> MethodOutput:
    classes = len(setup.data.vocabulary)
    train_x, train_y = setup.features(setup.train_split), setup.labels(setup.train_split)
    grid = tuple(setup.option("c_grid", C_GRID))
    started = time.perf_counter()
    has_val = setup.has_split(setup.val_split)
    results = []
    previous = None
    max_iter = int(setup.option("max_iter", 300))
    for c in sorted(grid) if has_val else [1.0]:
        weight, bias = fit_logistic(train_x, train_y, classes, c, max_iter, previous)
        previous = (weight, bias)
        score = (
            setup.val_accuracy(setup.features(setup.val_split) @ weight.numpy() + bias.numpy())
            if has_val
            else 0
        )
        results.append((score, -abs(np.log10(c)), c, weight, bias))  # ties: the C closest to 1
    best_score, _, best_c, weight, bias = max(results, key=lambda r: (r[0], r[1]))
    seconds = time.perf_counter() - started
    queries = setup.features(setup.eval_split)
    encoder = setup.encoder

    @torch.no_grad()
    def predict(image: torch.Tensor):
        logits = encoder.encode_uint8(image).cpu() @ weight + bias
        return logits.topk(min(5, classes), dim=1).indices

    return MethodOutput(
        scores=queries @ weight.numpy() + bias.numpy(),
        scale=1.0,
        storage_bytes=int(weight.numel() * 4 + bias.numel() * 4),
        storage_note=f"weights {weight.shape[0]} x {classes} + bias, float32",
        latency_ms=measure_latency(predict, latency_images(setup)),
        train_seconds=seconds,
        hyper={"C": best_c, "C_grid": list(grid), "val_SSA-1_by_C": {str(r[2]): r[0] for r in results}},
        val={"SSA-1": best_score} if has_val else {},
        query_features=queries,
        checkpoint=setup.init_path,
    )
