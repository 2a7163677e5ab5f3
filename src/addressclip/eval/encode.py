"""Features from a frozen checkpoint, through the feature store: image embeddings, the address
gallery, VPR-style VLAD descriptors over the ViT's patch tokens, and raw-pixel thumbnails.

Everything returned is float32 numpy, L2-normalised per row, so every consumer (scores, faiss, the
linear probe) sees the same numbers whichever method asked first.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from addressclip.data.pixels import PIXELS_VERSION
from addressclip.data.shards import ShardImages
from addressclip.data.transforms import Normalizer
from addressclip.errors import AddressclipError
from addressclip.eval.evaluate import EvalImages
from addressclip.eval.store import FeatureStore, array_digest, file_digest
from addressclip.model.addressclip import AddressClipModel
from addressclip.model.device import resolve_device

THUMBNAIL = 16  # raw-pixel reference: 16 x 16 grey thumbnails (as the world's reference table)
VLAD_CLUSTERS = 16
VLAD_SAMPLE_IMAGES = 512


def batches(rows: np.ndarray, size: int, desc: str, progress: bool) -> Iterator[np.ndarray]:
    bar = tqdm(
        total=len(rows), desc=desc, unit="img", disable=not progress or len(rows) < 2 * size, leave=False
    )
    for start in range(0, len(rows), size):
        chunk = rows[start : start + size]
        yield chunk
        bar.update(len(chunk))
    bar.close()


def pixel_descriptors(images: torch.Tensor) -> torch.Tensor:
    """(B, 256) mean-removed, L2-normalised 16 x 16 grey thumbnails of uint8 (B, 3, H, W) images."""
    grey = images.float().mean(dim=1, keepdim=True)
    small = F.adaptive_avg_pool2d(grey, THUMBNAIL).flatten(1)
    small = small - small.mean(dim=1, keepdim=True)
    return F.normalize(small, dim=1)


def kmeans(points: torch.Tensor, clusters: int, iterations: int = 25, seed: int = 0) -> torch.Tensor:
    """Centroids by Lloyd's algorithm from a k-means++ start (small, deterministic, no faiss needed)."""
    generator = torch.Generator().manual_seed(seed)
    clusters = min(clusters, len(points))
    first = torch.randint(len(points), (1,), generator=generator)
    centroids = points[first]
    for _ in range(1, clusters):
        distance = torch.cdist(points, centroids).min(dim=1).values ** 2
        weights = distance / distance.sum() if distance.sum() > 0 else torch.ones_like(distance)
        pick = torch.multinomial(weights, 1, generator=generator)
        centroids = torch.cat([centroids, points[pick]])
    for _ in range(iterations):
        assign = torch.cdist(points, centroids).argmin(dim=1)
        sums = torch.zeros_like(centroids).index_add_(0, assign, points)
        counts = torch.bincount(assign, minlength=clusters).clamp_min(1).unsqueeze(1)
        updated = sums / counts
        empty = torch.bincount(assign, minlength=clusters) == 0
        updated[empty] = centroids[empty]
        if torch.allclose(updated, centroids):
            break
        centroids = updated
    return centroids


def vlad(tokens: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    """VLAD of (B, P, W) L2-normalised tokens: per-cluster residual sums, intra-normalised, L2."""
    assign = torch.cdist(tokens, centroids.unsqueeze(0).expand(len(tokens), -1, -1)).argmin(dim=2)
    onehot = F.one_hot(assign, len(centroids)).to(tokens.dtype)
    residual = torch.einsum("bpk,bpw->bkw", onehot, tokens) - onehot.sum(1).unsqueeze(2) * centroids
    residual = F.normalize(residual, dim=2)
    return F.normalize(residual.flatten(1), dim=1)


class FrozenEncoder:
    """A checkpoint used frozen (eval mode, no gradients), with its features kept in a store."""

    def __init__(
        self,
        model: AddressClipModel,
        key: str,
        store: FeatureStore | None = None,
        device: str | torch.device = "cpu",
        batch_size: int = 256,
        progress: bool = True,
    ) -> None:
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self.key = key
        self.store = store or FeatureStore()
        self.batch_size = batch_size
        self.progress = progress
        self.normalizer = Normalizer(model.preprocess["mean"], model.preprocess["std"])
        self._centroids: dict[str, torch.Tensor] = {}

    @classmethod
    def from_checkpoint(
        cls, path: str | Path, store: FeatureStore | None = None, device: str | torch.device = "cpu", **kwargs
    ) -> FrozenEncoder:
        from addressclip.model.factory import load_checkpoint

        device = resolve_device(device)
        return cls(load_checkpoint(path, device), file_digest(path), store, device, **kwargs)

    @property
    def image_size(self) -> int:
        return int(self.model.preprocess["image_size"])

    @property
    def interpolation(self) -> str:
        return str(self.model.preprocess.get("interpolation", "bicubic"))

    def logit_scale(self) -> float:
        return float(self.model.logit_scale().detach())

    def _parts(self, images: EvalImages, rows: np.ndarray, what: str) -> dict[str, object]:
        return {"model": self.key, "images": images_key(images), "rows": array_digest(rows), "what": what}

    # ---------------------------------------------------------------------------------- images
    @torch.no_grad()
    def encode_uint8(self, images: torch.Tensor) -> torch.Tensor:
        return self.model.encode_image(self.normalizer(images, self.device)).float()

    def image_features(self, images: EvalImages, rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64)

        def compute() -> np.ndarray:
            out = [
                self.encode_uint8(images.take(chunk)).cpu().numpy()
                for chunk in batches(rows, self.batch_size, "image features", self.progress)
            ]
            return np.concatenate(out) if out else np.zeros((0, self.model.embed_dim), np.float32)

        return self.store.get("image", self._parts(images, rows, "clip"), compute).astype(
            np.float32, copy=False
        )

    @torch.no_grad()
    def patch_tokens(self, images: torch.Tensor) -> torch.Tensor:
        """(B, P, W) L2-normalised patch tokens of the ViT's last layer (after its final norm)."""
        visual = self.model.clip.visual
        if not hasattr(visual, "output_tokens"):
            raise AddressclipError(
                "the VLAD descriptor needs a ViT image tower (open_clip VisionTransformer)"
            )
        previous = visual.output_tokens
        visual.output_tokens = True
        try:
            _, tokens = visual(self.normalizer(images, self.device))
        finally:
            visual.output_tokens = previous
        return F.normalize(tokens.float(), dim=2)

    def vlad_centroids(self, images: EvalImages, database_rows: np.ndarray, seed: int = 0) -> torch.Tensor:
        """K-means vocabulary of patch tokens from (a sample of) the database images."""
        rows = np.asarray(database_rows, dtype=np.int64)
        rng = np.random.default_rng(seed)
        sample = np.sort(rng.choice(rows, size=min(VLAD_SAMPLE_IMAGES, len(rows)), replace=False))

        def compute() -> np.ndarray:
            tokens = torch.cat(
                [
                    self.patch_tokens(images.take(c)).flatten(0, 1).cpu()
                    for c in batches(sample, 64, "vlad", False)
                ]
            )
            return kmeans(tokens, VLAD_CLUSTERS, seed=seed).numpy()

        parts = self._parts(images, sample, f"vlad-centroids-{VLAD_CLUSTERS}-{seed}")
        return torch.from_numpy(self.store.get("vlad-centroids", parts, compute))

    def vlad_features(self, images: EvalImages, rows: np.ndarray, centroids: torch.Tensor) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64)

        def compute() -> np.ndarray:
            found = centroids.to(self.device)
            out = [
                vlad(self.patch_tokens(images.take(chunk)), found).cpu().numpy()
                for chunk in batches(rows, 64, "vlad descriptors", self.progress)
            ]
            return np.concatenate(out) if out else np.zeros((0, found.numel()), np.float32)

        parts = self._parts(images, rows, f"vlad-{array_digest(centroids.numpy())}")
        return self.store.get("vlad", parts, compute).astype(np.float32, copy=False)

    # ------------------------------------------------------------------------------------ text
    @torch.no_grad()
    def gallery(self, texts: Sequence[str]) -> np.ndarray:
        """Text embeddings of every candidate address: encoded once per checkpoint and cached."""
        texts = list(texts)

        def compute() -> np.ndarray:
            return self.model.encode_text_batched(texts).float().cpu().numpy()

        parts = {"model": self.key, "texts": array_digest(texts)}
        return self.store.get("gallery", parts, compute).astype(np.float32, copy=False)


def images_key(images: EvalImages | ShardImages) -> str:
    """What identifies a decoded image set: its files (and their folder's modification time, which
    a re-render changes) and the decoding size; for shards, their manifest's digest and the size."""
    if isinstance(images, ShardImages):
        return images.cache_key
    paths = [str(p) for p in images.paths]
    folders = sorted({str(p.parent) for p in images.paths[:1]})
    stamp = [Path(f).stat().st_mtime_ns if Path(f).exists() else 0 for f in folders]
    return f"{array_digest(paths)}-{stamp}-{images.size}-{images.interpolation}-{PIXELS_VERSION}"


def pixel_features(images: EvalImages, rows: np.ndarray, store: FeatureStore | None = None) -> np.ndarray:
    rows = np.asarray(rows, dtype=np.int64)

    def compute() -> np.ndarray:
        out = [
            pixel_descriptors(images.take(chunk)).numpy()
            for chunk in batches(rows, 1024, "thumbnails", False)
        ]
        return np.concatenate(out) if out else np.zeros((0, THUMBNAIL * THUMBNAIL), np.float32)

    store = store or FeatureStore()
    parts = {"images": images_key(images), "rows": array_digest(rows), "what": "pixels"}
    return store.get("pixels", parts, compute).astype(np.float32, copy=False)
