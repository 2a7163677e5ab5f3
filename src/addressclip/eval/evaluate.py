"""The one evaluation path: a score matrix (queries x candidate addresses) -> every metric.

AddressCLIP, each baseline and each ablation hands its scores to `evaluate_scores`, so they are
compared on exactly the same candidates, ground truth, tie rule and geometry. `EvalData` reads a
manifest once (candidate set, AddressBook geometry, intersections, decoded images per size) and is
shared by all methods of a benchmark.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from addressclip.data.dataset import AddressVocabulary, decode_all
from addressclip.data.manifest import Manifest, read_manifest
from addressclip.data.shards import INDEX_FILE, ShardImages, ShardIndex, read_shard_index
from addressclip.errors import InputError
from addressclip.eval.cities import candidate_cities, city_breakdown, row_cities
from addressclip.eval.geometry import (
    INTERSECTION_BINS_M,
    CandidateGeometry,
    candidate_geometry,
    distance_bin_labels,
    distance_to_nearest,
    intersection_points,
)
from addressclip.eval.metrics import (
    TiePolicy,
    calibration,
    per_class_accuracy,
    ranked_accuracies,
    softmax_confidence,
    street_positions,
    top_k,
    truth_positions,
)
from addressclip.eval.store import file_digest

if TYPE_CHECKING:
    import torch

    from addressclip.geo.addressbook import AddressBook

KS: tuple[int, ...] = (1, 5)
TOP_SHOWN = 5
MEMORY_BUDGET_BYTES = 4 << 30  # decoded images kept in memory up to this size (else decoded per batch)


class EvalImages:
    """The manifest's images at one size, decoded on demand (a thread per core) and kept in memory
    when they all fit in `budget` bytes — an evaluation touches only the rows it needs, and a
    250k-image dataset at 224 px is not loaded whole."""

    def __init__(
        self, paths: list[Path], size: int, interpolation: str = "bicubic", budget: int = MEMORY_BUDGET_BYTES
    ) -> None:
        self.paths = paths
        self.size = size
        self.interpolation = interpolation
        fits = len(paths) * 3 * size * size <= budget
        self.array = np.empty((len(paths), 3, size, size), dtype=np.uint8) if fits else None
        self.decoded = np.zeros(len(paths), dtype=bool)

    def __len__(self) -> int:
        return len(self.paths)

    def take(self, rows) -> torch.Tensor:
        import torch

        rows = np.asarray(rows, dtype=np.int64)
        if self.array is None:
            return torch.from_numpy(
                decode_all([self.paths[r] for r in rows], self.size, self.interpolation, False)
            )
        missing = np.unique(rows[~self.decoded[rows]])
        if len(missing):
            self.array[missing] = decode_all(
                [self.paths[r] for r in missing], self.size, self.interpolation, False
            )
            self.decoded[missing] = True
        return torch.from_numpy(self.array[rows])


@dataclass
class EvalData:
    """A manifest prepared for evaluation (read once, shared by every method)."""

    manifest: Manifest
    frame: pd.DataFrame
    vocabulary: AddressVocabulary
    candidate_street: np.ndarray
    book: AddressBook | None  # the AddressBook saved with the manifest (geometry, GPS labeler)
    geometry: CandidateGeometry
    intersections: np.ndarray | None
    digest: str
    progress: bool = True
    # city of each candidate in a multi-city manifest (the gallery is their union); None for one city
    candidate_city: np.ndarray | None = None
    shards: ShardIndex | None = None  # images read from these shards (`addressclip shard`), not files
    _images: dict[tuple[int, str], EvalImages | ShardImages] = field(default_factory=dict)
    _neighbours: set[tuple[int, int]] | None = None

    @classmethod
    def load(
        cls, manifest_path: str | Path, progress: bool = True, shards: str | Path | None = None
    ) -> EvalData:
        """`shards`: a folder written by `addressclip shard` from this manifest; images are then
        streamed from its tar files (no image file opened or stat-ed)."""
        manifest = read_manifest(manifest_path)
        index = None
        if shards is not None:
            index = read_shard_index(shards)
            if index.manifest != manifest.path.resolve():
                raise InputError(Path(shards) / INDEX_FILE, "manifest", f"the shards hold {index.manifest}, "
                                 f"not {manifest.path}")  # fmt: skip
        frame = manifest.frame.reset_index(drop=True)
        vocabulary = AddressVocabulary.from_frame(frame)
        book = None
        if manifest.addressbook_dir is not None and manifest.addressbook_dir.exists():
            from addressclip.geo.addressbook import AddressBook

            book = AddressBook.load(manifest.addressbook_dir)
        book_table = book.table if book is not None else None
        geometry = candidate_geometry(vocabulary.address_ids, book_table, frame)
        intersections = intersection_points(book_table) if book_table is not None else None
        return cls(
            manifest=manifest,
            frame=frame,
            vocabulary=vocabulary,
            candidate_street=vocabulary.street_index(),
            book=book,
            geometry=geometry,
            intersections=intersections,
            digest=file_digest(manifest.path),
            progress=progress,
            candidate_city=candidate_cities(frame, vocabulary.address_ids),
            shards=index,
        )

    @property
    def path(self) -> Path:
        return self.manifest.path

    def rows(self, split: str) -> np.ndarray:
        rows = np.flatnonzero(self.frame["split"].to_numpy() == split)
        if len(rows) == 0:
            present = ", ".join(sorted(self.frame["split"].unique()))
            raise InputError(self.path, "split", f"no rows with split '{split}' (present: {present})")
        return rows

    def labels(self, rows: np.ndarray) -> np.ndarray:
        return self.vocabulary.index_of(list(self.frame["address_id"].to_numpy()[rows]))

    def images(self, size: int, interpolation: str = "bicubic") -> EvalImages | ShardImages:
        """The manifest's images at `size`, shared by every method (decoded once, on demand)."""
        key = (int(size), interpolation)
        if key not in self._images and self.shards is not None:
            self._images[key] = ShardImages(
                self.shards, self.frame, int(size), interpolation, MEMORY_BUDGET_BYTES
            )
        if key not in self._images:
            paths = [self.manifest.image_root / p for p in self.frame["path"]]
            missing = next((p for p in paths if not p.is_file()), None)
            if missing is not None:
                raise InputError(self.path, "path", f"image {missing} not found")
            self._images[key] = EvalImages(paths, int(size), interpolation)
        return self._images[key]

    @property
    def neighbours(self) -> set[tuple[int, int]]:
        if self._neighbours is None:
            self._neighbours = self.geometry.neighbour_pairs()
        return self._neighbours


@dataclass
class Evaluation:
    """All metrics of one method on one split (`metrics` is JSON-ready) plus one row per query."""

    metrics: dict[str, object]
    queries: pd.DataFrame
    per_address: pd.DataFrame


def _error_summary(errors: np.ndarray) -> dict[str, float]:
    known = errors[np.isfinite(errors)]
    if len(known) == 0:
        return {
            "median": float("nan"),
            "mean": float("nan"),
            "within_25m": float("nan"),
            "within_100m": float("nan"),
        }
    return {
        "median": float(np.median(known)),
        "mean": float(np.mean(known)),
        "within_25m": 100.0 * float(np.mean(known <= 25.0)),
        "within_100m": 100.0 * float(np.mean(known <= 100.0)),
    }


def _confusion(data: EvalData, truth: np.ndarray, predicted: np.ndarray, top_pairs: int = 10) -> dict:
    """Of the top-1 errors: share on a neighbouring sub-street, elsewhere on the same street, other."""
    wrong = predicted != truth
    errors = int(wrong.sum())
    if errors == 0:
        return {"errors": 0, "neighbour": float("nan"), "same_street": float("nan"), "other": float("nan"),
                "top_pairs": []}  # fmt: skip
    neighbours = data.neighbours
    streets = data.candidate_street
    kinds = Counter()
    pairs = Counter()
    for t, p in zip(truth[wrong], predicted[wrong], strict=True):
        if (min(t, p), max(t, p)) in neighbours:
            kinds["neighbour"] += 1
        elif streets[t] == streets[p]:
            kinds["same_street"] += 1
        else:
            kinds["other"] += 1
        pairs[(int(t), int(p))] += 1
    addresses = data.vocabulary.addresses
    return {
        "errors": errors,
        **{k: 100.0 * kinds[k] / errors for k in ("neighbour", "same_street", "other")},
        "top_pairs": [
            {"truth": addresses[t], "predicted": addresses[p], "count": c,
             "neighbours": (min(t, p), max(t, p)) in neighbours}
            for (t, p), c in pairs.most_common(top_pairs)
        ],
    }  # fmt: skip


def _by_intersection(distance: np.ndarray, hit1: np.ndarray) -> list[dict[str, object]]:
    edges = INTERSECTION_BINS_M
    table = []
    for label, low, high in zip(distance_bin_labels(edges), edges[:-1], edges[1:], strict=True):
        member = (distance >= low) & (distance < high)
        count = int(member.sum())
        table.append(
            {
                "bin": label,
                "count": count,
                "SSA-1": 100.0 * float(hit1[member].mean()) if count else float("nan"),
            }
        )
    return table


def evaluate_scores(
    data: EvalData,
    rows: np.ndarray,
    scores: np.ndarray,
    *,
    scale: float = 1.0,
    ties: TiePolicy = "pessimistic",
) -> Evaluation:
    """Every metric for `scores` (len(rows) x candidates) on the manifest rows `rows`.

    `scale` turns scores into logits for calibration (a CLIP model's logit scale; 1 for logits).
    """
    scores = np.asarray(scores, dtype=np.float64)
    rows = np.asarray(rows, dtype=np.int64)
    if scores.shape != (len(rows), len(data.vocabulary)):
        raise ValueError(f"scores shape {scores.shape} != ({len(rows)}, {len(data.vocabulary)})")
    truth = data.labels(rows)
    frame = data.frame.iloc[rows]
    accuracies = ranked_accuracies(scores, truth, data.candidate_street, KS, ties)
    position = truth_positions(scores, truth, ties)
    street_position = street_positions(scores, truth, data.candidate_street, ties)
    hit1 = position == 1
    top_index, top_score = top_k(scores, TOP_SHOWN)
    predicted = top_index[:, 0]
    east, north = frame["utm_e"].to_numpy(float), frame["utm_n"].to_numpy(float)
    errors = data.geometry.distance_m(predicted, east, north)
    query_city = row_cities(frame) if data.candidate_city is not None else None
    if query_city is not None:  # metres between two cities' UTM coordinates mean nothing
        errors = np.where(data.candidate_city[predicted] == query_city, errors, np.nan)
    confidence = softmax_confidence(scores, scale)
    if data.intersections is not None and len(data.intersections):
        to_junction = distance_to_nearest(np.column_stack([east, north]), data.intersections)
    else:
        to_junction = np.full(len(rows), np.nan)
    count, accuracy = per_class_accuracy(truth, hit1, len(data.vocabulary))
    _, accuracy5 = per_class_accuracy(truth, position <= 5, len(data.vocabulary))
    per_address = pd.DataFrame(
        {
            "address_id": data.vocabulary.address_ids,
            "address": data.vocabulary.addresses,
            "street": data.vocabulary.streets,
            "queries": count,
            "SSA-1": accuracy,
            "SSA-5": accuracy5,
        }
    )
    metrics: dict[str, object] = dict(accuracies)
    metrics.update(
        {
            "queries": len(rows),
            "candidates": len(data.vocabulary),
            "ties": ties,
            "error_m": _error_summary(errors),
            "geometry_source": data.geometry.source,
            "calibration": calibration(confidence, hit1),
            "confusion": _confusion(data, truth, predicted),
            "by_intersection_distance": _by_intersection(to_junction, hit1)
            if np.isfinite(to_junction).any()
            else [],
            "addresses_evaluated": int((count > 0).sum()),
            "mean_per_address_SSA-1": float(np.nanmean(accuracy)) if (count > 0).any() else float("nan"),
        }
    )
    if query_city is not None:
        metrics["by_city"] = city_breakdown(
            query_city, data.candidate_city, position, street_position, predicted, KS
        )
    queries = pd.DataFrame(
        {
            "row": rows,
            "path": frame["path"].to_numpy(),
            "truth": truth,
            "truth_position": position,
            "street_position": street_position,
            "predicted": predicted,
            "top5": [list(map(int, r)) for r in top_index],
            "top5_scores": [list(map(float, r)) for r in top_score],
            "confidence": confidence,
            "error_m": errors,
            "to_intersection_m": to_junction,
        }
    )
    if query_city is not None:
        queries["city"] = query_city
        queries["predicted_city"] = data.candidate_city[predicted]
    return Evaluation(metrics, queries, per_address)
