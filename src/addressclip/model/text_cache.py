"""Frozen text-trunk features kept on disk, shared by every run that uses the same text trunk.

With a frozen text tower (the `cpu` preset's MiniLM), the trunk output of a string never changes, so
it is computed once per machine rather than once per run: pretraining, AddressCLIP training, every
ablation and seed read the same file. The file is keyed by a digest of the trunk's weights, its
tokenizer's context length and the device kind (CPU and CUDA kernels differ in the last bits).
"""

from __future__ import annotations

import hashlib
import logging
import pickle
from collections.abc import Sequence
from pathlib import Path

import torch

from addressclip.atomic import atomic_path
from addressclip.model.addressclip import AddressClipModel

LOG = logging.getLogger(__name__)
FORMAT = 1


def trunk_digest(model: AddressClipModel) -> str:
    """SHA-256 of the text trunk's weights (projection head excluded) and what shapes its output."""
    digest = hashlib.sha256(f"{FORMAT}|{model.hf_text}|{model.model_config.context_length}".encode())
    digest.update(model.logit_scale_param.device.type.encode())
    for name, param in model.text_parameters():
        if model._is_text_head(name):
            continue
        digest.update(name.encode())
        digest.update(param.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


class TextTrunkStore:
    """`<folder>/text-<digest>.pt`: {'texts': [...], 'features': (N, D) float32}."""

    def __init__(self, folder: str | Path, model: AddressClipModel) -> None:
        self.model = model
        self.file = Path(folder) / f"text-{trunk_digest(model)}.pt"

    def load(self) -> int:
        """Fill the model's trunk cache from the file; the number of strings read (0 if none)."""
        if not self.file.is_file():
            return 0
        try:
            payload = torch.load(self.file, map_location="cpu", weights_only=True)
            texts, features = payload["texts"], payload["features"]
        except (OSError, RuntimeError, KeyError, EOFError, pickle.UnpicklingError) as error:
            LOG.warning("ignoring unreadable text-feature cache %s (%s)", self.file, error)
            return 0
        device = self.model.logit_scale_param.device
        cache = self.model._trunk_cache
        for text, row in zip(texts, features.to(device), strict=True):
            cache.setdefault(text, row)
        return len(texts)

    def save(self) -> None:
        """Write every cached string atomically (a failed write only costs recomputation later)."""
        cache = self.model._trunk_cache
        texts = list(cache)
        features = torch.stack([cache[t] for t in texts]).to("cpu", torch.float32)
        try:
            self.file.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(self.file) as tmp:
                torch.save({"texts": texts, "features": features}, tmp)
        except OSError as error:
            LOG.warning("could not write the text-feature cache %s (%s)", self.file, error)


def warm_text_cache(
    model: AddressClipModel, texts: Sequence[str], folder: str | Path | None, progress: bool = False
) -> int:
    """Trunk features for `texts` into the model's cache: from the store in `folder` where present,
    computed (and stored) otherwise. Returns how many were computed. No-op for a trainable tower."""
    if not model.text_frozen:
        return 0
    store = TextTrunkStore(folder, model) if folder is not None else None
    if store is not None:
        store.load()
    computed = model.cache_text_trunk(texts, progress=progress)
    if computed and store is not None:
        store.save()
    return computed
