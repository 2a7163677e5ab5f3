"""The shared feature store: arrays computed once and reused, keyed by everything that made them.

Every baseline that works on frozen features (zero-shot, linear probe, adapters, CoOp's image side,
retrieval) asks the store for "image features of these manifest rows under this checkpoint"; the
first asks compute them, the rest read them. The key is a hash of the checkpoint file's content, the
manifest file's content, the rows and the descriptor, so a retrained checkpoint or an edited
manifest never reads stale features. With a folder, entries are also kept on disk as `.npy`
(written atomically), so `addressclip eval` of the same checkpoint twice encodes the gallery once.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from addressclip.atomic import atomic_path
from addressclip.digest import file_digest, text_digest

__all__ = ["FeatureStore", "array_digest", "file_digest"]


def array_digest(values: np.ndarray | list | tuple) -> str:
    """Short content hash of an index array or a list of strings (part of a cache key)."""
    if isinstance(values, np.ndarray):
        data = np.ascontiguousarray(values).tobytes() + str(values.dtype).encode()
    else:
        data = json.dumps(list(values), ensure_ascii=False).encode()
    return text_digest(data, length=16)


class FeatureStore:
    """Arrays by (kind, key parts); in memory always, on disk under `root` when given."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root is not None else None
        self._memory: dict[str, np.ndarray] = {}
        self.hits = 0
        self.misses = 0

    @staticmethod
    def key(kind: str, parts: dict[str, object]) -> str:
        text = json.dumps(parts, sort_keys=True, default=str)
        return f"{kind}-{text_digest(text, length=20)}"

    def get(self, kind: str, parts: dict[str, object], compute: Callable[[], np.ndarray]) -> np.ndarray:
        key = self.key(kind, parts)
        if key in self._memory:
            self.hits += 1
            return self._memory[key]
        file = self.root / f"{key}.npy" if self.root is not None else None
        if file is not None and file.is_file():
            try:
                array = np.load(file)
            except (OSError, ValueError):
                array = None
            if array is not None:
                self.hits += 1
                self._memory[key] = array
                return array
        self.misses += 1
        array = np.ascontiguousarray(compute())
        self._memory[key] = array
        if file is not None:
            file.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(file) as tmp, open(tmp, "wb") as handle:
                np.save(handle, array)
        return array
