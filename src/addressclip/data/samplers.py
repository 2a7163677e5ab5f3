"""Batches that hold at most N images of one address, deterministic per (seed, epoch), resumable.

Why a cap: with plain CLIP targets, images of the same address in one batch are each other's
negatives; capping them keeps most of the batch informative (the paper's datasets have ~24 views per
capture point). The global batch is built identically on every rank, and each rank takes its own
contiguous slice, so a DDP run sees exactly the batches of a single-process run.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from addressclip.errors import ConfigError


def epoch_batches(
    labels: np.ndarray, batch_size: int, max_per_address: int, seed: int, epoch: int
) -> list[np.ndarray]:
    """Full batches of indices for one epoch (the incomplete tail is dropped)."""
    if batch_size < 1:  # an empty batch is always "full": the loop below would never end
        raise ConfigError(f"optim.batch_size must be at least 1, not {batch_size}")
    order = np.random.default_rng([seed, epoch]).permutation(len(labels))
    return capped_batches(order, labels, batch_size, max_per_address)


def capped_batches(
    order: np.ndarray, labels: np.ndarray, batch_size: int, max_per_address: int
) -> list[np.ndarray]:
    """Full batches of `order` taken as a stream: an index over its address's cap waits for a later
    batch (the incomplete tail is dropped). Shared by the folder path (a permutation per epoch) and
    the shard stream (`data.shards`, the order its shuffle buffer gives)."""
    if batch_size < 1:
        raise ConfigError(f"optim.batch_size must be at least 1, not {batch_size}")
    count = len(order)
    cap = max_per_address
    distinct = len(np.unique(labels))
    if cap > 0 and cap * distinct < batch_size:
        cap = -(-batch_size // max(distinct, 1))  # the cap cannot be met: loosen it just enough
    if cap <= 0:
        usable = count - count % batch_size
        return [order[i : i + batch_size] for i in range(0, usable, batch_size)]
    batches: list[np.ndarray] = []
    deferred: list[int] = []
    stream = iter(order.tolist())
    exhausted = False
    while not exhausted or deferred:
        batch: list[int] = []
        per_label: dict[int, int] = {}
        still_deferred: list[int] = []
        for index in deferred:
            label = int(labels[index])
            if len(batch) < batch_size and per_label.get(label, 0) < cap:
                batch.append(index)
                per_label[label] = per_label.get(label, 0) + 1
            else:
                still_deferred.append(index)
        while len(batch) < batch_size:
            index = next(stream, None)
            if index is None:
                exhausted = True
                break
            label = int(labels[index])
            if per_label.get(label, 0) < cap:
                batch.append(index)
                per_label[label] = per_label.get(label, 0) + 1
            else:
                still_deferred.append(index)
        deferred = still_deferred
        if len(batch) < batch_size:
            break
        batches.append(np.asarray(batch, dtype=np.int64))
    return batches


class AddressBatchSampler:
    """Yields this rank's slice of each global batch; `set_epoch` and `start_at` make it resumable."""

    def __init__(
        self,
        labels: np.ndarray,
        batch_size: int,
        max_per_address: int = 0,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.labels = np.asarray(labels)
        self.batch_size = batch_size  # per rank
        self.max_per_address = max_per_address
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
        self.start = 0
        self._cache: tuple[int, list[np.ndarray]] | None = None

    @property
    def global_batch_size(self) -> int:
        return self.batch_size * self.world_size

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.start = 0

    def start_at(self, batch_index: int) -> None:
        """Skip the first `batch_index` batches of the current epoch (resuming mid-epoch)."""
        self.start = batch_index

    def batches(self) -> list[np.ndarray]:
        if self._cache is None or self._cache[0] != self.epoch:
            built = epoch_batches(
                self.labels, self.global_batch_size, self.max_per_address, self.seed, self.epoch
            )
            self._cache = (self.epoch, built)
        return self._cache[1]

    def batches_per_epoch(self) -> int:
        return len(self.batches())

    def __len__(self) -> int:
        return max(0, self.batches_per_epoch() - self.start)

    def __iter__(self) -> Iterator[list[int]]:
        low = self.rank * self.batch_size
        for batch in self.batches()[self.start :]:
            yield batch[low : low + self.batch_size].tolist()

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "start": self.start}
