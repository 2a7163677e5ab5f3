"""Training/evaluation views of a manifest: the candidate address set, batches, decoded-image caches.

A small model is input-bound (JPEG decoding costs more than its training step, see
`shared/reference/stack-notes.md`), so images are decoded once to square uint8 at the model's size
and kept in memory, or on disk as .npy keyed by the manifest's content hash, the image root and the
size (a later run — pretraining, then training, then evaluation — reuses the file).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from addressclip.atomic import atomic_path
from addressclip.data.pixels import PIXELS_VERSION
from addressclip.data.transforms import decode_square
from addressclip.errors import AddressclipError, InputError

CacheMode = Literal["memory", "disk", "none"]
CACHE_FORMAT = "v1"


@dataclass(frozen=True)
class AddressVocabulary:
    """The closed candidate set: one row per address class, with its street for SA-k."""

    address_ids: tuple[str, ...]
    addresses: tuple[str, ...]
    street_ids: tuple[str, ...]
    streets: tuple[str, ...]

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> AddressVocabulary:
        table = frame[["address_id", "address", "street_id", "street"]].drop_duplicates("address_id")
        table = table.sort_values("address_id", kind="stable")
        return cls(
            tuple(table["address_id"]),
            tuple(table["address"]),
            tuple(table["street_id"]),
            tuple(table["street"]),
        )

    def __len__(self) -> int:
        return len(self.address_ids)

    def index_of(self, address_ids: Sequence[str]) -> np.ndarray:
        lookup = {a: i for i, a in enumerate(self.address_ids)}
        return np.asarray([lookup.get(a, -1) for a in address_ids], dtype=np.int64)

    def street_index(self) -> np.ndarray:
        """Street of each candidate as an integer (for vectorised SA-k)."""
        streets = {s: i for i, s in enumerate(dict.fromkeys(self.street_ids))}
        return np.asarray([streets[s] for s in self.street_ids], dtype=np.int64)


@dataclass
class Batch:
    """One rank's batch: uint8 images and what the losses need."""

    indices: torch.Tensor  # rows of the dataset (for per-sample augmentation seeds)
    images: torch.Tensor  # (B, 3, S, S) uint8
    labels: torch.Tensor  # (B,) int64, index into the vocabulary
    utm: torch.Tensor  # (B, 2) float64 metres
    addresses: list[str]
    captions: list[str]
    cities: torch.Tensor | None = None  # (B,) int64 city code of a multi-city dataset, else None


def _file_digest(path: Path) -> str:
    digest = hashlib.sha1()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def image_cache_key(manifest_path: Path, image_root: Path, size: int, interpolation: str) -> str:
    digest = _file_digest(manifest_path)
    text = f"{CACHE_FORMAT}|{PIXELS_VERSION}|{digest}|{image_root.resolve()}|{size}|{interpolation}"
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def decode_all(
    paths: Sequence[Path], size: int, interpolation: str = "bicubic", progress: bool = True
) -> np.ndarray:
    """(N, 3, size, size) uint8, decoded with a thread per core (Pillow releases the GIL)."""
    out = np.empty((len(paths), 3, size, size), dtype=np.uint8)
    workers = max(1, min(8, os.cpu_count() or 1))

    def load(i: int) -> int:
        out[i] = decode_square(paths[i], size, interpolation)
        return i

    with ThreadPoolExecutor(max_workers=workers) as pool:
        for _ in tqdm(
            pool.map(load, range(len(paths))),
            total=len(paths),
            desc=f"decode {size}px",
            unit="img",
            disable=not progress,
            leave=False,
        ):
            pass
    return out


class ManifestImages:
    """All images of one manifest, decoded on demand or cached (memory / disk)."""

    def __init__(
        self,
        manifest_path: Path,
        image_root: Path,
        relative_paths: Sequence[str],
        size: int,
        interpolation: str = "bicubic",
        cache: CacheMode = "memory",
        cache_dir: str | Path | None = None,
        progress: bool = True,
    ) -> None:
        self.paths = [image_root / p for p in relative_paths]
        self.size = size
        self.interpolation = interpolation
        self.array: np.ndarray | None = None
        if cache == "none":
            return
        missing = next((p for p in self.paths if not p.is_file()), None)
        if missing is not None:
            raise InputError(manifest_path, "path", f"image {missing} not found")
        if cache == "memory":
            self.array = decode_all(self.paths, size, interpolation, progress)
            return
        folder = Path(cache_dir) if cache_dir else manifest_path.parent / ".cache"
        key = image_cache_key(manifest_path, image_root, size, interpolation)
        file = folder / f"images-{key}-{size}px.npy"
        if file.is_file():
            array = np.load(file)
            if array.shape == (len(self.paths), 3, size, size):
                self.array = array
                return
        self.array = decode_all(self.paths, size, interpolation, progress)
        with atomic_path(file) as tmp, open(tmp, "wb") as handle:
            np.save(handle, self.array)
        self.cache_file = file

    def __len__(self) -> int:
        return len(self.paths)

    def take(self, rows: Sequence[int]) -> torch.Tensor:
        if self.array is not None:
            return torch.from_numpy(self.array[np.asarray(rows, dtype=np.int64)])
        return torch.from_numpy(
            np.stack([decode_square(self.paths[r], self.size, self.interpolation) for r in rows])
        )


class AddressDataset(torch.utils.data.Dataset):
    """Rows of a manifest (one or more splits) with labels against a vocabulary.

    `__getitems__` returns a whole `Batch`, so a DataLoader with a batch sampler does one vectorised
    gather from the image cache per batch instead of one Python call per image.
    """

    def __init__(
        self,
        frame: pd.DataFrame,
        images: ManifestImages,
        rows: np.ndarray,
        vocabulary: AddressVocabulary,
        caption_template: str = "{caption} {address}",
    ) -> None:
        self.images = images
        self.rows = np.asarray(rows, dtype=np.int64)
        sub = frame.iloc[self.rows]
        self.vocabulary = vocabulary
        self.labels = vocabulary.index_of(list(sub["address_id"]))
        if (self.labels < 0).any():
            raise AddressclipError("an address_id of the dataset is missing from the candidate set")
        self.street_ids = list(sub["street_id"])
        self.utm = sub[["utm_e", "utm_n"]].to_numpy(dtype=np.float64)
        self.addresses = list(sub["address"])
        captions = sub["caption"].tolist()
        self.captions = [
            caption_template.format(caption=(c if isinstance(c, str) else "").strip(), address=a).strip()
            for c, a in zip(captions, self.addresses, strict=True)
        ]
        self.has_captions = any(isinstance(c, str) and c.strip() for c in captions)
        self.city_codes = city_codes(sub)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> Batch:
        return self.__getitems__([index])

    def __getitems__(self, indices: Sequence[int]) -> Batch:
        idx = np.asarray(indices, dtype=np.int64)
        return Batch(
            indices=torch.from_numpy(idx),
            images=self.images.take(self.rows[idx]),
            labels=torch.from_numpy(self.labels[idx]),
            utm=torch.from_numpy(self.utm[idx]),
            addresses=[self.addresses[i] for i in idx],
            captions=[self.captions[i] for i in idx],
            cities=None if self.city_codes is None else torch.from_numpy(self.city_codes[idx]),
        )


def city_codes(frame: pd.DataFrame) -> np.ndarray | None:
    """One integer per row for its `city` (sorted names; rows without a city share one code), or
    None when the rows hold fewer than two cities (a one-city dataset needs no grouping)."""
    if "city" not in frame.columns:
        return None
    names = frame["city"].fillna("").astype(str).to_numpy()
    unique, codes = np.unique(names, return_inverse=True)
    return codes.astype(np.int64) if len(unique) > 1 else None


def keep_batch(batch: Batch) -> Batch:
    """collate_fn for a DataLoader whose dataset already returns whole batches."""
    return batch


def split_rows(frame: pd.DataFrame, splits: Sequence[str]) -> np.ndarray:
    return np.flatnonzero(frame["split"].isin(list(splits)).to_numpy())


class StackedImages:
    """Rows of several manifests' images as one sequence (pretraining on more than one world)."""

    def __init__(self, parts: Sequence[tuple[ManifestImages, np.ndarray]]) -> None:
        self.parts = [(images, np.asarray(rows, dtype=np.int64)) for images, rows in parts]
        self.part_of = np.concatenate(
            [np.full(len(rows), i, dtype=np.int64) for i, (_, rows) in enumerate(self.parts)]
        )
        self.local_row = np.concatenate([rows for _, rows in self.parts])

    def __len__(self) -> int:
        return len(self.local_row)

    def take(self, rows: Sequence[int]) -> torch.Tensor:
        rows = np.asarray(rows, dtype=np.int64)
        first = self.parts[0][0]
        out = torch.empty((len(rows), 3, first.size, first.size), dtype=torch.uint8)
        for part, (images, _) in enumerate(self.parts):
            where = np.flatnonzero(self.part_of[rows] == part)
            if len(where):
                out[torch.from_numpy(where)] = images.take(self.local_row[rows[where]])
        return out
