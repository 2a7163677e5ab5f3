"""What every baseline receives and returns, so that all of them share one feature store and one
evaluation path (`addressclip.eval.evaluate.evaluate_scores`).

A baseline is a function `run(setup) -> MethodOutput`: it may fit on the train split, choose its
hyper-parameters on the val split, and returns its scores for the evaluation split's rows against
every candidate address, plus what it costs (storage of what must be kept at inference, measured
per-query latency from pixels to a top-5 answer, training time).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from addressclip.config import RunConfig
from addressclip.eval.encode import FrozenEncoder
from addressclip.eval.evaluate import EvalData
from addressclip.eval.metrics import ranked_accuracies
from addressclip.model.device import single_thread

LATENCY_QUERIES = 24
LATENCY_WARMUP = 3


@dataclass
class BaselineSetup:
    """The shared inputs: data, the frozen street CLIP, where to write, and the run settings."""

    data: EvalData
    encoder: FrozenEncoder  # the pretrained "street CLIP" every method starts from
    init_path: Path  # its checkpoint (fine-tuning methods start from it)
    out: Path  # folder for this method's files
    preset: str = "cpu"  # config preset (or YAML) that fine-tuning methods train with ...
    overrides: tuple[str, ...] = ()  # ... plus these `key=value` overrides
    seed: int = 0
    eval_split: str = "test"
    val_split: str = "val"
    train_split: str = "train"
    progress: bool = True
    options: dict[str, object] = field(default_factory=dict)  # per-method overrides (epochs, ...)

    def config(self, *extra: str) -> RunConfig:
        """The run config of a training method: preset, the benchmark's overrides, then `extra`."""
        from addressclip.config import load_config

        return load_config(self.preset, [*self.overrides, *extra])

    @property
    def device(self) -> torch.device:
        return self.encoder.device

    def rows(self, split: str) -> np.ndarray:
        return self.data.rows(split)

    @property
    def eval_rows(self) -> np.ndarray:
        return self.data.rows(self.eval_split)

    def has_split(self, split: str) -> bool:
        return bool((self.data.frame["split"] == split).any())

    def option(self, name: str, default):
        """A per-method setting (e.g. epochs) from `options`, else the method's default."""
        return self.options.get(name, default)

    def images(self):
        return self.data.images(self.encoder.image_size, self.encoder.interpolation)

    def features(self, split: str) -> np.ndarray:
        return self.encoder.image_features(self.images(), self.rows(split))

    def labels(self, split: str) -> np.ndarray:
        return self.data.labels(self.rows(split))

    def val_accuracy(self, scores: np.ndarray) -> float:
        """Val SSA-1 (percent): the criterion every hyper-parameter choice uses."""
        truth = self.labels(self.val_split)
        return ranked_accuracies(scores, truth, self.data.candidate_street, (1,))["SSA-1"]

    def generator(self) -> torch.Generator:
        return torch.Generator().manual_seed(self.seed)


@dataclass
class MethodOutput:
    """A method's scores on the evaluation rows and what it costs."""

    scores: np.ndarray  # (eval rows, candidates); -inf = not ranked
    scale: float = 1.0  # scores * scale are logits (calibration)
    storage_bytes: int | None = None  # what inference must keep besides the backbone
    storage_note: str = ""
    latency_ms: float | None = None  # per query, pixels -> top-5 addresses
    train_seconds: float = 0.0
    hyper: dict[str, object] = field(default_factory=dict)
    val: dict[str, float] = field(default_factory=dict)
    query_features: np.ndarray | None = None  # image features of the eval rows (t-SNE), if any
    checkpoint: Path | None = None  # the model that produced the scores (examples, heatmaps)
    rows: np.ndarray | None = None  # evaluated rows when only a subset of the split was (else all)


def measure_latency(predict_one: Callable[[torch.Tensor], object], images: torch.Tensor) -> float:
    """Median milliseconds of `predict_one` over single uint8 images (after a warm-up).

    Measured with one CPU thread: a single image is too small to gain from more, and a multi-threaded
    batch of one stalls badly when the cores are shared, which made timings meaningless.
    """
    with single_thread():
        return _median_ms(predict_one, images)


def _median_ms(predict_one: Callable[[torch.Tensor], object], images: torch.Tensor) -> float:
    count = len(images)
    for i in range(min(LATENCY_WARMUP, count)):
        predict_one(images[i : i + 1])
    timings = []
    for i in [(LATENCY_WARMUP + j) % count for j in range(min(LATENCY_QUERIES, count))]:
        started = time.perf_counter()
        predict_one(images[i : i + 1])
        timings.append(time.perf_counter() - started)
    return 1000.0 * float(np.median(timings)) if timings else float("nan")


def latency_images(setup: BaselineSetup, encoder: FrozenEncoder | None = None) -> torch.Tensor:
    """The first evaluation images, decoded at the size of `encoder` (default the street CLIP)."""
    encoder = encoder or setup.encoder
    rows = setup.eval_rows[: LATENCY_WARMUP + LATENCY_QUERIES]
    return setup.data.images(encoder.image_size, encoder.interpolation).take(rows)


def gallery_predictor(setup: BaselineSetup, gallery: np.ndarray, encoder: FrozenEncoder | None = None):
    """pixels -> image embedding -> cosine against a fixed gallery -> top-5 (AddressCLIP's inference)."""
    encoder = encoder or setup.encoder
    matrix = torch.from_numpy(gallery).to(encoder.device)

    @torch.no_grad()
    def predict(image: torch.Tensor):
        scores = encoder.encode_uint8(image) @ matrix.T
        return scores.topk(min(5, matrix.shape[0]), dim=1).indices

    return predict


def minibatches(count: int, batch_size: int, generator: torch.Generator):
    order = torch.randperm(count, generator=generator)
    for start in range(0, count, batch_size):
        yield order[start : start + batch_size]


def endless_batches(count: int, batch_size: int, generator: torch.Generator):
    """Shuffled batches forever (epoch after epoch): prompt learners train for a number of steps."""
    while True:
        yield from minibatches(count, batch_size, generator)


def sample_classes(
    labels: torch.Tensor, classes: int, limit: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """(candidate subset, labels remapped into it): the batch's addresses plus random others.

    Prompt learners must run the text tower for every class they score; with hundreds of addresses
    a sampled softmax over `limit` of them keeps a CPU step affordable (all classes when fewer).
    """
    if classes <= limit:
        return torch.arange(classes), labels
    present = torch.unique(labels)
    others = torch.ones(classes, dtype=torch.bool)
    others[present] = False
    pool = torch.nonzero(others).squeeze(1)
    extra = pool[torch.randperm(len(pool), generator=generator)[: max(0, limit - len(present))]]
    subset = torch.cat([present, extra])
    position = torch.full((classes,), -1, dtype=torch.long)
    position[subset] = torch.arange(len(subset))
    return subset, position[labels]
