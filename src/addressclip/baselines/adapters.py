"""Feature adapters on the frozen street CLIP: CLIP-Adapter, Tip-Adapter and Tip-Adapter-F.

- CLIP-Adapter (Gao et al. 2021): a bottleneck MLP on the image feature, mixed back residually
  (f' = r A(f) + (1 - r) f), classified against the fixed zero-shot address gallery; trained with
  cross-entropy on cached training features.
- Tip-Adapter (Zhang et al. 2022): a training-free cache — keys are the training images' features,
  values their one-hot addresses; logits = s f G^T + alpha exp(-beta (1 - f K^T)) L, with alpha and
  beta searched on the val split.
- Tip-Adapter-F: the cache keys become parameters and are fine-tuned with cross-entropy. Without
  augmented views, a training image would always find itself in the cache, so during fine-tuning
  each image's own key is masked out (leave-one-out); alpha, beta are searched on val afterwards.
"""

from __future__ import annotations

import itertools
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from addressclip.baselines.base import (
    BaselineSetup,
    MethodOutput,
    latency_images,
    measure_latency,
    minibatches,
    single_thread,
)

ALPHAS: tuple[float, ...] = (0.1, 0.3, 1.0, 3.0, 10.0)
BETAS: tuple[float, ...] = (1.0, 3.0, 5.5, 8.0, 12.0)


class ResidualAdapter(nn.Module):
    def __init__(self, dim: int, reduction: int = 4, ratio: float = 0.2) -> None:
        super().__init__()
        self.ratio = ratio
        self.mlp = nn.Sequential(
            nn.Linear(dim, dim // reduction, bias=False),
            nn.ReLU(inplace=True),
            nn.Linear(dim // reduction, dim, bias=False),
            nn.ReLU(inplace=True),
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        mixed = self.ratio * self.mlp(features) + (1.0 - self.ratio) * features
        return F.normalize(mixed, dim=-1)


def _zero_shot_gallery(setup: BaselineSetup) -> np.ndarray:
    return setup.encoder.gallery(list(setup.data.vocabulary.addresses))


def run_clip_adapter(setup: BaselineSetup) -> MethodOutput:
    with single_thread():  # a small MLP on cached features: one thread is fastest (see base.py)
        return _clip_adapter(setup)


def _clip_adapter(setup: BaselineSetup) -> MethodOutput:
    gallery = torch.from_numpy(_zero_shot_gallery(setup))
    scale = setup.encoder.logit_scale()
    x = torch.from_numpy(setup.features(setup.train_split))
    y = torch.from_numpy(setup.labels(setup.train_split))
    torch.manual_seed(setup.seed)
    adapter = ResidualAdapter(x.shape[1], ratio=float(setup.option("ratio", 0.2)))
    epochs, batch = int(setup.option("epochs", 30)), int(setup.option("batch_size", 256))
    optimizer = torch.optim.AdamW(adapter.parameters(), lr=float(setup.option("lr", 1e-3)), weight_decay=1e-4)
    generator = setup.generator()
    started = time.perf_counter()
    adapter.train()
    for _ in range(epochs):
        for index in minibatches(len(x), batch, generator):
            loss = F.cross_entropy(scale * adapter(x[index]) @ gallery.T, y[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    adapter.eval()
    seconds = time.perf_counter() - started

    @torch.no_grad()
    def logits(features: np.ndarray | torch.Tensor) -> torch.Tensor:
        return adapter(torch.as_tensor(features)) @ gallery.T

    val = {}
    if setup.has_split(setup.val_split):
        val["SSA-1"] = setup.val_accuracy(logits(setup.features(setup.val_split)).numpy())
    encoder = setup.encoder

    def predict(image: torch.Tensor):
        return logits(encoder.encode_uint8(image).cpu()).topk(min(5, len(gallery)), dim=1).indices

    params = sum(p.numel() for p in adapter.parameters())
    return MethodOutput(
        scores=logits(setup.features(setup.eval_split)).numpy(),
        scale=scale,
        storage_bytes=int(gallery.numel() * 4 + params * 4),
        storage_note=f"address gallery + adapter ({params} parameters)",
        latency_ms=measure_latency(predict, latency_images(setup)),
        train_seconds=seconds,
        hyper={"ratio": adapter.ratio, "epochs": epochs, "batch_size": batch},
        val=val,
        checkpoint=setup.init_path,
    )


class TipCache:
    """Tip-Adapter's key-value cache and its logits."""

    def __init__(
        self, keys: torch.Tensor, labels: np.ndarray, classes: int, gallery: torch.Tensor, scale: float
    ):
        self.keys = keys
        self.values = F.one_hot(torch.from_numpy(labels), classes).float()
        self.gallery = gallery
        self.scale = scale

    def affinity(self, features: torch.Tensor) -> torch.Tensor:
        return features @ self.keys.T

    def logits(self, features: torch.Tensor, alpha: float, beta: float, affinity: torch.Tensor | None = None):
        affinity = self.affinity(features) if affinity is None else affinity
        cache = torch.exp(-beta * (1.0 - affinity)) @ self.values
        return self.scale * features @ self.gallery.T + alpha * cache


def _search(setup: BaselineSetup, cache: TipCache) -> tuple[float, float, dict[str, float], float]:
    """(alpha, beta, val SSA-1 per pair, best val SSA-1) by grid search on the val split."""
    if not setup.has_split(setup.val_split):
        return 1.0, 5.5, {}, float("nan")
    val_x = torch.from_numpy(setup.features(setup.val_split))
    with torch.no_grad():
        affinity = cache.affinity(val_x)
        table = {}
        for alpha, beta in itertools.product(setup.option("alphas", ALPHAS), setup.option("betas", BETAS)):
            table[f"{alpha},{beta}"] = setup.val_accuracy(cache.logits(val_x, alpha, beta, affinity).numpy())
    best = max(table, key=lambda key: (table[key], -abs(float(key.split(",")[0]) - 1.0)))
    alpha, beta = (float(v) for v in best.split(","))
    return alpha, beta, table, table[best]


def _tip_output(setup: BaselineSetup, cache: TipCache, hyper: dict, seconds: float) -> MethodOutput:
    alpha, beta, table, best = _search(setup, cache)
    encoder = setup.encoder
    with torch.no_grad():
        scores = cache.logits(torch.from_numpy(setup.features(setup.eval_split)), alpha, beta).numpy()

    @torch.no_grad()
    def predict(image: torch.Tensor):
        logits = cache.logits(encoder.encode_uint8(image).cpu(), alpha, beta)
        return logits.topk(min(5, logits.shape[1]), dim=1).indices

    keys_bytes = cache.keys.numel() * 4
    labels_bytes = cache.values.shape[0] * 8
    return MethodOutput(
        scores=scores,
        scale=1.0,
        storage_bytes=int(keys_bytes + labels_bytes + cache.gallery.numel() * 4),
        storage_note=f"cache of {cache.keys.shape[0]} training features + labels + address gallery",
        latency_ms=measure_latency(predict, latency_images(setup)),
        train_seconds=seconds,
        hyper={**hyper, "alpha": alpha, "beta": beta, "val_SSA-1_grid": table},
        val={"SSA-1": best} if table else {},
        checkpoint=setup.init_path,
    )


def _cache(setup: BaselineSetup) -> TipCache:
    keys = torch.from_numpy(setup.features(setup.train_split))
    gallery = torch.from_numpy(_zero_shot_gallery(setup))
    classes = len(setup.data.vocabulary)
    return TipCache(keys, setup.labels(setup.train_split), classes, gallery, setup.encoder.logit_scale())


def run_tip_adapter(setup: BaselineSetup) -> MethodOutput:
    with single_thread():
        return _tip_adapter(setup)


def _tip_adapter(setup: BaselineSetup) -> MethodOutput:
    started = time.perf_counter()
    cache = _cache(setup)
    return _tip_output(setup, cache, {"fine_tuned": False}, time.perf_counter() - started)


def run_tip_adapter_f(setup: BaselineSetup) -> MethodOutput:
    with single_thread():
        return _tip_adapter_f(setup)


def _tip_adapter_f(setup: BaselineSetup) -> MethodOutput:
    started = time.perf_counter()
    cache = _cache(setup)
    x = cache.keys.clone()
    y = torch.from_numpy(setup.labels(setup.train_split))
    keys = nn.Parameter(cache.keys.clone())
    cache.keys = keys
    epochs, batch = int(setup.option("epochs", 20)), int(setup.option("batch_size", 256))
    alpha, beta = float(setup.option("alpha", 1.0)), float(setup.option("beta", 5.5))
    optimizer = torch.optim.AdamW([keys], lr=float(setup.option("lr", 1e-3)), eps=1e-4)
    generator = setup.generator()
    for _ in range(epochs):
        for index in minibatches(len(x), batch, generator):
            affinity = cache.affinity(x[index])
            affinity = affinity.masked_fill(F.one_hot(index, len(x)).bool(), -np.inf)  # leave-one-out
            loss = F.cross_entropy(cache.logits(x[index], alpha, beta, affinity), y[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    cache.keys = keys.detach()
    hyper = {
        "fine_tuned": True,
        "epochs": epochs,
        "batch_size": batch,
        "train_alpha": alpha,
        "train_beta": beta,
    }
    return _tip_output(setup, cache, hyper, time.perf_counter() - started)
