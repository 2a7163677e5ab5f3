"""The two-stage Image -> GPS -> Address pipeline the paper argues against, and the raw-pixel
nearest neighbour reference (the same pipeline over 16 x 16 thumbnails).

1. Describe every database image (the train split) once: the street CLIP's image embedding
   ('clip'), a VPR-style VLAD aggregation of its ViT patch tokens ('vlad', in the spirit of AnyLoc),
   or raw pixels ('pixels').
2. For a query, find the nearest database images (faiss inner product on L2-normalised descriptors;
   numpy when faiss is missing).
3. Take the GPS of each match and look its address up in the AddressBook (the labeler a user would
   run); a manifest without an AddressBook uses the match's own label.

The ranking over addresses is by the best similarity among the top `neighbours` matches; addresses
no match points to get -inf (never ranked). Storage = descriptors + GPS of the whole database.
"""

from __future__ import annotations

import time
from typing import Literal

import numpy as np
import torch

from addressclip.baselines.base import BaselineSetup, MethodOutput, latency_images, measure_latency
from addressclip.eval.encode import pixel_descriptors, pixel_features

Descriptor = Literal["clip", "vlad", "pixels"]
NEIGHBOURS = 50


class NearestIndex:
    """Exact inner-product search (faiss IndexFlatIP, or numpy if faiss is not installed)."""

    def __init__(self, database: np.ndarray) -> None:
        self.database = np.ascontiguousarray(database, dtype=np.float32)
        try:
            import faiss
        except ImportError:  # pragma: no cover - faiss-cpu is installed with the project
            self.index = None
            self.backend = "numpy"
        else:
            self.index = faiss.IndexFlatIP(self.database.shape[1])
            self.index.add(self.database)
            self.backend = "faiss"

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        k = min(k, len(self.database))
        if self.index is not None:
            return self.index.search(queries, k)
        sims = queries @ self.database.T
        order = np.argsort(-sims, axis=1, kind="stable")[:, :k]
        return np.take_along_axis(sims, order, axis=1), order


class GpsToAddress:
    """GPS -> candidate index through the AddressBook (or the database's own labels without one)."""

    def __init__(self, setup: BaselineSetup, database_rows: np.ndarray) -> None:
        data = setup.data
        frame = data.frame.iloc[database_rows]
        self.lat = frame["lat"].to_numpy(float)
        self.lon = frame["lon"].to_numpy(float)
        self.own_label = data.labels(database_rows)
        self.book = data.book
        lookup = {a: i for i, a in enumerate(data.vocabulary.address_ids)}
        self.book_to_candidate = None
        if self.book is not None:
            ids = self.book.table["address_id"].to_numpy()
            self.book_to_candidate = np.array([lookup.get(a, -1) for a in ids], dtype=np.int64)
        self.fallbacks = 0

    def __call__(self, database_index: np.ndarray) -> np.ndarray:
        """Candidate index for the GPS of each database image in `database_index` (any shape)."""
        flat = np.asarray(database_index, dtype=np.int64).ravel()
        if self.book is None:
            return self.own_label[flat].reshape(np.shape(database_index))
        found = self.book.label(self.lat[flat], self.lon[flat]).index
        candidate = np.where(found >= 0, self.book_to_candidate[np.maximum(found, 0)], -1)
        missing = candidate < 0
        self.fallbacks += int(missing.sum())
        candidate[missing] = self.own_label[flat[missing]]
        return candidate.reshape(np.shape(database_index))


def rank_addresses(similarity: np.ndarray, address: np.ndarray, candidates: int) -> np.ndarray:
    """(queries, candidates) scores: best similarity of each address among a query's matches."""
    scores = np.full((len(similarity), candidates), -np.inf)
    rows = np.repeat(np.arange(len(similarity)), similarity.shape[1])
    np.maximum.at(scores, (rows, address.ravel()), similarity.ravel())
    return scores


def _describe(
    setup: BaselineSetup, descriptor: Descriptor, database_rows: np.ndarray, query_rows: np.ndarray
):
    """(database, queries, describe_one) for the chosen descriptor."""
    encoder = setup.encoder
    images = setup.images()
    if descriptor == "clip":
        return (
            encoder.image_features(images, database_rows),
            encoder.image_features(images, query_rows),
            lambda image: encoder.encode_uint8(image).cpu().numpy(),
        )
    if descriptor == "vlad":
        centroids = encoder.vlad_centroids(images, database_rows, setup.seed)
        found = centroids.to(encoder.device)
        from addressclip.eval.encode import vlad

        return (
            encoder.vlad_features(images, database_rows, centroids),
            encoder.vlad_features(images, query_rows, centroids),
            lambda image: vlad(encoder.patch_tokens(image), found).cpu().numpy(),
        )
    store = encoder.store
    return (
        pixel_features(images, database_rows, store),
        pixel_features(images, query_rows, store),
        lambda image: pixel_descriptors(image).numpy(),
    )


def run_retrieval(setup: BaselineSetup, descriptor: Descriptor = "clip") -> MethodOutput:
    database_rows = setup.rows(setup.train_split)
    query_rows = setup.eval_rows
    started = time.perf_counter()
    database, queries, describe_one = _describe(setup, descriptor, database_rows, query_rows)
    index = NearestIndex(database)
    to_address = GpsToAddress(setup, database_rows)
    database_address = to_address(np.arange(len(database_rows)))  # for the scores: looked up once
    build_seconds = time.perf_counter() - started
    neighbours = int(setup.option("neighbours", NEIGHBOURS))
    similarity, nearest = index.search(queries, neighbours)
    scores = rank_addresses(similarity, database_address[nearest], len(setup.data.vocabulary))

    @torch.no_grad()
    def predict(image: torch.Tensor):
        sims, found = index.search(describe_one(image), neighbours)
        ranked = rank_addresses(sims, to_address(found), len(setup.data.vocabulary))  # live GPS lookup
        return np.argsort(-ranked, axis=1)[:, :5]

    latency = measure_latency(predict, latency_images(setup))
    gps_bytes = len(database_rows) * 2 * 8
    return MethodOutput(
        scores=scores,
        scale=float(setup.encoder.logit_scale()) if descriptor != "pixels" else 1.0,
        storage_bytes=int(database.nbytes + gps_bytes),
        storage_note=f"{len(database_rows)} database descriptors ({database.shape[1]}-d float32) + GPS",
        latency_ms=latency,
        train_seconds=build_seconds,
        hyper={
            "descriptor": descriptor,
            "database_images": len(database_rows),
            "neighbours": neighbours,
            "search": index.backend,
            "gps_lookup": "addressbook" if setup.data.book is not None else "database labels",
            "gps_lookup_fallbacks": to_address.fallbacks,
        },
        query_features=queries if descriptor == "clip" else None,
    )
