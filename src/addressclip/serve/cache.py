"""On-disk caches of a predictor: gallery embeddings and the out-of-city calibration.

Embedding every candidate address takes a while with a large text tower (seconds for a few thousand
addresses on a CPU), and the answer depends only on the weights and the address texts. So the
embeddings are stored next to the checkpoint (or in the bundle) under a key that hashes the
checkpoint's bytes together with the gallery's content (ids, texts, geometry): retraining, or a new
AddressBook, gives a new key and the old file is simply not used. Every file is written atomically and
carries its key, so a stale or half-copied cache is ignored rather than trusted.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from addressclip.atomic import atomic_path, write_text_atomic
from addressclip.digest import file_digest, text_digest

log = logging.getLogger(__name__)
CACHE_VERSION = 1

CachePathFor = Callable[[str], Path]


def file_sha256(path: str | Path) -> str:
    return file_digest(path)


def combined_key(*parts: str) -> str:
    return text_digest(*parts)


def beside_checkpoint(checkpoint: Path, kind: str, suffix: str) -> CachePathFor:
    """Cache files named `<checkpoint stem>.<kind>-<key prefix><suffix>` in the checkpoint's folder."""
    return lambda key: checkpoint.parent / f"{checkpoint.stem}.{kind}-{key[:16]}{suffix}"


def load_embeddings(path: Path, key: str, addresses: Sequence[str]) -> np.ndarray | None:
    """The cached (N, D) float32 embeddings if `path` holds exactly these addresses under `key`."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            if str(data["key"]) != key or int(data["version"]) != CACHE_VERSION:
                return None
            if list(data["addresses"]) != list(addresses):
                return None
            embeddings = np.asarray(data["embeddings"], dtype=np.float32)
    except (OSError, ValueError, KeyError) as error:
        log.warning("ignoring unreadable gallery cache %s (%s)", path, error)
        return None
    return embeddings if embeddings.shape[0] == len(addresses) else None


def save_embeddings(path: Path, key: str, addresses: Sequence[str], embeddings: np.ndarray) -> bool:
    """Write the cache atomically; False (and a log line) when the folder is not writable."""
    try:
        with atomic_path(path) as tmp, open(tmp, "wb") as handle:
            np.savez(
                handle,
                version=np.int64(CACHE_VERSION),
                key=np.str_(key),
                addresses=np.array(list(addresses), dtype=np.str_),
                embeddings=np.asarray(embeddings, dtype=np.float32),
            )
    except OSError as error:
        log.warning("cannot write gallery cache %s (%s); embeddings stay in memory", path, error)
        return False
    return True


def load_json_cache(path: Path, key: str) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("key") != key or data.get("version") != CACHE_VERSION:
        return None
    value = data.get("value")
    return value if isinstance(value, dict) else None


def save_json_cache(path: Path, key: str, value: dict[str, Any]) -> bool:
    try:
        write_text_atomic(path, json.dumps({"version": CACHE_VERSION, "key": key, "value": value}, indent=1))
    except OSError as error:
        log.warning("cannot write cache %s (%s)", path, error)
        return False
    return True
