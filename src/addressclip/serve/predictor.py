"""`AddressPredictor`: photos in, ranked addresses with geometry and a GPS point out.

    predictor = load_predictor("runs/demo/train/model.pt")   # or a run folder, or a bundle folder
    [prediction] = predictor.predict(["photo.jpg"], top_k=5)
    prediction.top.address, prediction.top.lat, prediction.top.lon, prediction.out_of_city

The candidate addresses (the gallery) are embedded once with the model's text tower and cached on disk
next to the checkpoint (see `serve.cache`); photos are embedded with the image tower and ranked by
cosine similarity. Each match carries the address's street and neighbourhood, its sub-street geometry
(GeoJSON, lon/lat) and an estimated GPS point (the sub-street's midpoint). `out_of_city` compares the
top-1 score with a threshold calibrated on the validation split (see `serve.calibration`).

Open set: `add_addresses([...])` appends addresses as text (no retraining: the text tower embeds
them), `use_addressbook(book)` switches to every sub-street of an AddressBook; matches say whether
the model saw the address in training (`seen_in_training`).

Backends: the torch model (the default), or a bundle's ONNX image tower run by onnxruntime
(`load_predictor(bundle, backend="onnx")`, chosen by itself when torch is not installed; see
`serve.onnx_backend`). The ONNX backend ranks with numpy against the bundle's cached gallery
embeddings; it has no text tower, so `add_addresses` and an uncached `use_addressbook` need torch.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp
from PIL import Image
from tqdm import tqdm

from addressclip.data.manifest import Manifest, read_manifest
from addressclip.errors import AddressclipError
from addressclip.geo.addressbook import AddressBook
from addressclip.geo.sequence import TransitionParams
from addressclip.serve import cache, onnx_backend
from addressclip.serve.calibration import (
    DEFAULT_PERCENTILE,
    DEFAULT_SCORE,
    TOP1,
    Calibration,
    calibrate,
    fit_feature_statistics,
    in_city_scores,
)
from addressclip.serve.gallery import AddressGallery, text_or_none
from addressclip.serve.images import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_PIXELS,
    ImageRejected,
    ImageSource,
    source_name,
    square_pixels,
)
from addressclip.serve.sequences import (
    SequencePrediction,
    build_result,
    decode,
    gallery_adjacency,
    sequence_params,
)
from addressclip.serve.sources import (
    gallery_from_addressbook,
)

if TYPE_CHECKING:
    import torch

    from addressclip.model.addressclip import AddressClipModel

log = logging.getLogger(__name__)
DEFAULT_TOP_K = 5
MAX_TOP_K = 100
CALIBRATION_SPLIT = "val"
MAX_STATISTICS_IMAGES = 3000  # training images encoded for the 'mahalanobis' out-of-city score


@dataclass
class AddressMatch:
    """One ranked candidate address for one photo."""

    rank: int
    address_id: str
    address: str
    street_id: str | None
    street: str | None
    neighbourhood: str | None
    score: float  # cosine similarity of the photo and the address text, in [-1, 1]
    probability: float  # softmax over the whole gallery at the model's logit scale
    seen_in_training: bool
    lat: float | None  # estimated GPS point: the sub-street's midpoint (None without geometry)
    lon: float | None
    geometry: dict[str, Any] | None  # GeoJSON LineString/MultiLineString in lon/lat

    def to_dict(self, with_geometry: bool = True) -> dict[str, Any]:
        values = asdict(self)
        if not with_geometry:
            values.pop("geometry")
        return values


@dataclass
class Prediction:
    """The ranked addresses for one photo and the out-of-city flag."""

    source: str
    matches: list[AddressMatch]
    top1_score: float
    out_of_city: bool | None  # None when the predictor has no calibration
    threshold: float | None
    in_city_score: float | None = None  # the flag's score when it is not top1_score (see calibration)

    @property
    def top(self) -> AddressMatch:
        return self.matches[0]

    def to_dict(self, with_geometry: bool = True) -> dict[str, Any]:
        values = {
            "source": self.source,
            "top1_score": self.top1_score,
            "out_of_city": self.out_of_city,
            "threshold": self.threshold,
            "matches": [m.to_dict(with_geometry) for m in self.matches],
        }
        if self.in_city_score is not None:
            values["in_city_score"] = self.in_city_score
        return values


def _inference_mode(method):
    """torch.inference_mode around `method` for the torch backend.

    torch is imported where it is used, never at module level: the ONNX backend then neither needs it
    nor pays for it (importing torch alone takes ~0.6 GB of memory and seconds), even when installed.
    """

    @functools.wraps(method)
    def run(self: AddressPredictor, *args: Any, **kwargs: Any) -> Any:
        if self.model is None:
            return method(self, *args, **kwargs)
        import torch

        with torch.inference_mode():
            return method(self, *args, **kwargs)

    return run


def _as_sources(images: ImageSource | Iterable[ImageSource]) -> list[ImageSource]:
    single = (str, os.PathLike, bytes, bytearray, memoryview, Image.Image)
    if isinstance(images, single) or not isinstance(images, Iterable):
        return [images]  # type: ignore[list-item]
    return list(images)


class AddressPredictor:
    """A trained AddressCLIP model with its gallery of candidate addresses (see module docstring)."""

    def __init__(
        self,
        model: AddressClipModel | None,
        gallery: AddressGallery,
        *,
        device: str | torch.device = "cpu",
        image_encoder: onnx_backend.OnnxImageEncoder | None = None,
        calibration: Calibration | None = None,
        addressbook: AddressBook | None = None,
        model_key: str = "",
        cache_path_for: cache.CachePathFor | None = None,
        batch_size: int = 64,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        max_bytes: int = DEFAULT_MAX_BYTES,
        progress: bool = False,
        source: Path | None = None,
    ) -> None:
        if (model is None) == (image_encoder is None):
            raise AddressclipError("AddressPredictor takes a torch model or an ONNX image encoder (one)")
        self.model = model
        self.image_encoder = image_encoder
        if model is not None:
            from addressclip.data.transforms import Normalizer
            from addressclip.model.device import resolve_device

            self.device = resolve_device(device)
            self.model = model.to(self.device).eval()
            pre = model.preprocess
            self._normalizer = Normalizer(pre["mean"], pre["std"])
        else:
            if str(device) not in ("cpu", "auto"):
                raise AddressclipError(
                    f"device={device}: the ONNX backend runs on the CPU (onnxruntime); "
                    "use backend='torch' (--backend torch) for another device"
                )
            self.device = "cpu"
            pre = image_encoder.preprocess
        self.calibration = calibration
        self.addressbook = addressbook
        self.network = gallery_from_addressbook(addressbook) if addressbook is not None else None
        self.model_key = model_key
        self.cache_path_for = cache_path_for
        self.batch_size = max(1, int(batch_size))
        self.max_pixels = max_pixels
        self.max_bytes = max_bytes
        self.progress = progress
        self.source = source
        self.image_size = int(pre["image_size"])
        self.interpolation = str(pre.get("interpolation", "bicubic"))
        self.gallery = gallery
        self._embeddings = self._gallery_embeddings(gallery)

    @property
    def backend(self) -> str:
        """'torch' or 'onnx': what embeds the photos."""
        return "onnx" if self.model is None else "torch"

    # --------------------------------------------------------------------------------- gallery
    def _gallery_key(self, gallery: AddressGallery) -> str:
        return cache.combined_key(self.model_key, gallery.content_key())

    @_inference_mode
    def _encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        if self.model is None:
            raise AddressclipError(onnx_backend.NEEDS_TEXT_TOWER)
        chunk = 256
        steps = range(0, len(texts), chunk)
        show = self.progress and len(texts) > chunk
        parts = [
            self.model.encode_text(list(texts[i : i + chunk])).float().cpu().numpy()
            for i in tqdm(steps, desc="embedding addresses", unit="chunk", disable=not show)
        ]
        self.model.clear_text_cache()  # the trunk cache is for training; keep memory flat here
        return np.concatenate(parts) if parts else np.zeros((0, self.model.embed_dim), dtype=np.float32)

    def _gallery_embeddings(self, gallery: AddressGallery) -> torch.Tensor | np.ndarray:
        addresses = gallery.addresses
        key = self._gallery_key(gallery)
        path = self.cache_path_for(key) if self.cache_path_for and self.model_key else None
        embeddings = cache.load_embeddings(path, key, addresses) if path is not None else None
        if embeddings is None:
            embeddings = self._encode_texts(addresses)
            if path is not None:
                cache.save_embeddings(path, key, addresses, embeddings)
        if self.model is None:
            return np.ascontiguousarray(embeddings, dtype=np.float32)
        import torch

        return torch.from_numpy(np.ascontiguousarray(embeddings)).to(self.device)

    @property
    def embeddings(self) -> torch.Tensor | np.ndarray:
        """(N, D) normalised address embeddings, row i = `gallery.table` row i (numpy for ONNX)."""
        return self._embeddings

    @property
    def gallery_key(self) -> str:
        return self._gallery_key(self.gallery)

    def add_addresses(self, entries: Sequence[str | Mapping[str, Any]]) -> list[str]:
        """Append addresses without retraining; returns the ids of those added (not already present).

        An entry is an address string or a mapping (see `AddressGallery.extend`); added addresses are
        marked `seen_in_training=False`. Their embeddings are kept in memory (and written by `export`).
        """
        before = len(self.gallery)
        gallery = self.gallery.extend(entries)
        added = gallery.table.iloc[before:]
        if added.empty:
            return []
        encoded = self._encode_texts(list(added["address"]))  # the text tower: torch backend only
        import torch

        new = torch.from_numpy(encoded).to(self.device)
        self.gallery = gallery
        self._embeddings = torch.cat([self._embeddings, new])
        return list(added["address_id"])

    def use_addressbook(self, book: AddressBook | str | os.PathLike[str]) -> None:
        """Match against every sub-street of `book` (e.g. a new or extended city map).

        'Seen in training' carries over by id or text from the current gallery.
        """
        if not isinstance(book, AddressBook):
            book = AddressBook.load(book)
        seen = self.gallery.table[self.gallery.table["seen_in_training"]]
        gallery = gallery_from_addressbook(book, set(seen["address_id"]), set(seen["address"]))
        self._embeddings = self._gallery_embeddings(gallery)
        self.gallery = gallery
        self.addressbook = book
        self.network = gallery_from_addressbook(book)

    # -------------------------------------------------------------------------------- images
    def decode(self, source: ImageSource, name: str | None = None) -> np.ndarray:
        """One input as the model's (3, S, S) uint8 view; raises ImageRejected for bad input."""
        return square_pixels(
            source,
            self.image_size,
            self.interpolation,
            max_pixels=self.max_pixels,
            max_bytes=self.max_bytes,
            name=name,
        )

    @_inference_mode
    def image_embeddings(self, pixels: np.ndarray | torch.Tensor) -> torch.Tensor | np.ndarray:
        """(B, D) normalised image features of a uint8 (B, 3, S, S) batch (numpy for ONNX)."""
        shape = tuple(pixels.shape)
        if len(shape) != 4 or shape[1:] != (3, self.image_size, self.image_size):
            size = self.image_size
            raise AddressclipError(f"expected uint8 pixels (B, 3, {size}, {size}), got {shape}")
        if self.image_encoder is not None:
            return self.image_encoder(np.asarray(pixels))
        import torch

        batch = torch.as_tensor(pixels)
        return self.model.encode_image(self._normalizer(batch, self.device)).float()

    @_inference_mode
    def rank(
        self, pixels: np.ndarray | torch.Tensor, top_k: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(indices (B, k), cosine scores (B, k), probabilities (B, k)) of the best k addresses."""
        if len(self.gallery) == 0:
            raise AddressclipError("the predictor has no candidate addresses")
        return self._rank_images(self.image_embeddings(pixels), top_k)

    @_inference_mode
    def _rank_images(
        self, images: torch.Tensor | np.ndarray, top_k: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """`rank` for image features already computed (so the out-of-city score can reuse them)."""
        k = max(1, min(int(top_k), len(self.gallery)))
        if self.image_encoder is not None:
            scale = self.image_encoder.logit_scale
            return onnx_backend.rank_numpy(images, self._embeddings, scale, k)  # type: ignore[return-value]
        import torch

        cosine = images @ self._embeddings.T
        probabilities = torch.softmax(cosine * self.model.logit_scale().float(), dim=-1)
        scores, indices = torch.topk(cosine, k, dim=-1)
        chosen = torch.gather(probabilities, 1, indices)
        return indices.cpu().numpy(), scores.cpu().numpy(), chosen.cpu().numpy()

    def predict_pixels(
        self,
        pixels: np.ndarray | torch.Tensor,
        top_k: int = DEFAULT_TOP_K,
        names: Sequence[str] | None = None,
    ) -> list[Prediction]:
        """Predictions for an already decoded uint8 batch (what the service's micro-batcher calls)."""
        if len(pixels) == 0:
            return []
        if len(self.gallery) == 0:
            raise AddressclipError("the predictor has no candidate addresses")
        images = self.image_embeddings(pixels)
        indices, scores, probabilities = self._rank_images(images, top_k)
        in_city = self.in_city_scores(images)
        names = list(names) if names is not None else [f"image {i}" for i in range(len(indices))]
        return [
            self._prediction(name, indices[i], scores[i], probabilities[i], _at(in_city, i))
            for i, name in enumerate(names)
        ]

    @property
    def logit_scale(self) -> float:
        """The model's softmax temperature (cosine x this)."""
        if self.image_encoder is not None:
            return float(self.image_encoder.logit_scale)
        return float(self.model.logit_scale().detach())

    def in_city_scores(self, images: torch.Tensor | np.ndarray) -> np.ndarray | None:
        """(B,) the calibration's in-city score of each photo's feature; None when that score is the
        top-1 cosine (it comes with the ranking) or there is no calibration."""
        calibration = self.calibration
        if calibration is None or calibration.score == TOP1:
            return None
        features = _as_numpy(images)
        return calibration.scores(features @ _as_numpy(self._embeddings).T, self.logit_scale, features)

    def predict(
        self,
        images: ImageSource | Iterable[ImageSource],
        top_k: int = DEFAULT_TOP_K,
        batch_size: int | None = None,
    ) -> list[Prediction]:
        """Predictions for PIL images, paths or encoded bytes (one or many), in input order.

        Raises ImageRejected (an InputError naming the input) at the first unusable image.
        """
        sources = _as_sources(images)
        size = batch_size or self.batch_size
        results: list[Prediction] = []
        for start in range(0, len(sources), size):
            chunk = sources[start : start + size]
            names = [source_name(s, start + i) for i, s in enumerate(chunk)]
            pixels = np.stack([self.decode(s, n) for s, n in zip(chunk, names, strict=True)])
            results.extend(self.predict_pixels(pixels, top_k, names))
        return results

    def predict_one(self, image: ImageSource, top_k: int = DEFAULT_TOP_K) -> Prediction:
        return self.predict([image], top_k)[0]

    # ------------------------------------------------------------------------------- sequences
    @_inference_mode
    def rank_all(
        self, pixels: np.ndarray | torch.Tensor, top_k: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """`rank`'s (indices, scores, probabilities) plus every address's log-probability (B, N), float64.

        The log-probabilities are the log of the same softmax (cosine x logit scale), computed in
        float64 log space so that no address of a confident photo underflows to probability 0.
        """
        if len(self.gallery) == 0:
            raise AddressclipError("the predictor has no candidate addresses")
        return self._rank_all_images(self.image_embeddings(pixels), top_k)

    @_inference_mode
    def _rank_all_images(
        self, images: torch.Tensor | np.ndarray, top_k: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """`rank_all` for image features already computed (the out-of-city score reuses them)."""
        k = max(1, min(int(top_k), len(self.gallery)))
        if self.image_encoder is not None:
            scale = self.image_encoder.logit_scale
            return onnx_backend.rank_numpy(images, self._embeddings, scale, k, with_log=True)  # type: ignore[return-value]
        import torch

        cosine = images @ self._embeddings.T
        scale = self.model.logit_scale().float()
        probabilities = torch.softmax(cosine * scale, dim=-1)
        scores, indices = torch.topk(cosine, k, dim=-1)
        chosen = torch.gather(probabilities, 1, indices)
        log_probs = torch.log_softmax(cosine.double() * scale.double(), dim=-1)
        return (
            indices.cpu().numpy(),
            scores.cpu().numpy(),
            chosen.cpu().numpy(),
            log_probs.cpu().numpy(),
        )

    def sequence_adjacency(self) -> sp.csr_matrix:
        """Which gallery sub-streets meet (scipy CSR, gallery rows), built once per gallery key."""
        cached = getattr(self, "_sequence_cache", None)
        if cached is not None and cached[0] is self.gallery:
            return cached[2]
        key = self.gallery_key
        by_key = getattr(self, "_adjacency_by_key", {})
        if key not in by_key:
            by_key[key] = gallery_adjacency(self.gallery)
        self._adjacency_by_key = by_key
        self._sequence_cache = (self.gallery, key, by_key[key])
        return by_key[key]

    def predict_sequence_pixels(
        self,
        pixels: np.ndarray | torch.Tensor,
        names: Sequence[str] | None = None,
        timestamps: Sequence[float] | np.ndarray | None = None,
        positions: Sequence[float] | np.ndarray | None = None,
        top_k: int = DEFAULT_TOP_K,
        params: TransitionParams | None = None,
    ) -> SequencePrediction:
        """`predict_sequence` for an already decoded uint8 batch (what the service calls)."""
        count = len(pixels)
        if count == 0:
            raise AddressclipError("sequence: no photos given; give at least one")
        gaps, transition, unit = sequence_params(count, timestamps, positions, params)
        names = list(names) if names is not None else [f"image {i}" for i in range(count)]
        predictions: list[Prediction] = []
        parts = []
        for start in range(0, count, self.batch_size):
            images = self.image_embeddings(pixels[start : start + self.batch_size])  # once per photo
            indices, scores, probs, log_probs = self._rank_all_images(images, top_k)
            parts.append(log_probs)
            in_city = self.in_city_scores(images)
            for offset in range(len(indices)):
                predictions.append(
                    self._prediction(
                        names[start + offset],
                        indices[offset],
                        scores[offset],
                        probs[offset],
                        _at(in_city, offset),
                    )
                )
        return self.decode_sequence(predictions, np.concatenate(parts), gaps, transition, unit, top_k)

    def decode_sequence(
        self,
        predictions: list[Prediction],
        log_probs: np.ndarray,
        gaps: np.ndarray | None,
        params: TransitionParams,
        gap_unit: str = "photos",
        top_k: int = DEFAULT_TOP_K,
    ) -> SequencePrediction:
        """The sequence result from per-photo predictions and their (T, N) log-probabilities."""
        path, posteriors, log_likelihood, path_log_prob = decode(
            self.sequence_adjacency(), log_probs, gaps, params
        )
        return build_result(
            self.gallery, predictions, path, posteriors, log_likelihood, path_log_prob, top_k, gap_unit, gaps
        )

    def predict_sequence(
        self,
        images: Iterable[ImageSource],
        timestamps: Sequence[float] | np.ndarray | None = None,
        positions: Sequence[float] | np.ndarray | None = None,
        top_k: int = DEFAULT_TOP_K,
        params: TransitionParams | None = None,
    ) -> SequencePrediction:
        """Photos of one walk or drive, in order: per-photo predictions plus the decoded sub-street path.

        `timestamps` (seconds) or `positions` (metres along the route), one per photo, scale the
        transitions by the gap between photos; `params` is a `geo.sequence.TransitionParams`. Returns
        a `serve.sequences.SequencePrediction` (see that module for the model). Raises ImageRejected
        at the first unusable photo and AddressclipError for a bad sequence (empty, wrong lengths,
        decreasing timestamps).
        """
        sources = _as_sources(images)
        if not sources:
            raise AddressclipError("sequence: no photos given; give at least one")
        sequence_params(len(sources), timestamps, positions, params)  # fail before decoding any photo
        names = [source_name(s, i) for i, s in enumerate(sources)]
        pixels = np.stack([self.decode(s, n) for s, n in zip(sources, names, strict=True)])
        return self.predict_sequence_pixels(pixels, names, timestamps, positions, top_k, params)

    def _prediction(
        self,
        name: str,
        indices: np.ndarray,
        scores: np.ndarray,
        probs: np.ndarray,
        in_city: float | None = None,
    ) -> Prediction:
        matches = []
        for rank, (row, score, prob) in enumerate(zip(indices, scores, probs, strict=True), start=1):
            record = self.gallery.record(int(row), with_geometry=True)
            matches.append(
                AddressMatch(
                    rank=rank,
                    score=round(float(score), 6),
                    probability=round(float(prob), 6),
                    **record,
                )
            )
        # compared as reported (6 decimals), so that a client can check the flag from the numbers
        top1 = round(float(scores[0]), 6)
        flag_score = top1 if in_city is None else round(float(in_city), 6)
        threshold = round(self.calibration.threshold, 6) if self.calibration else None
        return Prediction(
            source=name,
            matches=matches,
            top1_score=top1,
            out_of_city=None if threshold is None else bool(flag_score < threshold),
            threshold=threshold,
            in_city_score=None if in_city is None else flag_score,
        )

    # ----------------------------------------------------------------------------- calibration
    def top1_scores(self, sources: Sequence[ImageSource], desc: str = "calibrating") -> np.ndarray:
        scores = []
        steps = range(0, len(sources), self.batch_size)
        for start in tqdm(steps, desc=desc, unit="batch", disable=not self.progress or len(steps) < 2):
            chunk = sources[start : start + self.batch_size]
            pixels = np.stack([self.decode(s) for s in chunk])
            _, best, _ = self.rank(pixels, 1)
            scores.append(best[:, 0])
        return np.concatenate(scores) if scores else np.zeros(0)

    def features_of(self, sources: Sequence[ImageSource], desc: str = "calibrating") -> np.ndarray:
        """(n, D) normalised image features of many inputs, in batches (numpy)."""
        parts = []
        steps = range(0, len(sources), self.batch_size)
        for start in tqdm(steps, desc=desc, unit="batch", disable=not self.progress or len(steps) < 2):
            pixels = np.stack([self.decode(s) for s in sources[start : start + self.batch_size]])
            parts.append(_as_numpy(self.image_embeddings(pixels)))
        return np.concatenate(parts) if parts else np.zeros((0, 0), dtype=np.float32)

    def _calibrate_score(
        self,
        manifest: Manifest,
        paths: list[Path],
        split: str,
        percentile: float,
        score: str,
        train_split: str,
    ) -> Calibration | None:
        """`calibrate_on` for a score other than top1: features of `split`, statistics from train."""
        statistics = None
        if score == "mahalanobis":
            train = manifest.split(train_split)
            step = max(1, -(-len(train) // MAX_STATISTICS_IMAGES))  # evenly spaced, deterministic
            train = train.iloc[::step]
            features = self.features_of([manifest.image_path(p) for p in train["path"]], "feature statistics")
            statistics = fit_feature_statistics(features, train["address_id"].astype(str).to_numpy())
            if statistics is None:
                log.warning(
                    "out-of-city score: too few training images per address for 'mahalanobis' "
                    "feature statistics; calibrating the top-1 cosine instead"
                )
                return calibrate(self.top1_scores(paths), percentile, split)  # type: ignore[arg-type]
        features = self.features_of(paths)  # type: ignore[arg-type]
        if len(features) == 0:
            return calibrate(np.zeros(0), percentile, split, score=score, statistics=statistics)
        cosine = features @ _as_numpy(self._embeddings).T
        values = in_city_scores(score, cosine, self.logit_scale, features, statistics)
        return calibrate(values, percentile, split, score=score, statistics=statistics)

    def calibrate_on(
        self,
        manifest: Manifest | str | os.PathLike[str],
        split: str = CALIBRATION_SPLIT,
        percentile: float = DEFAULT_PERCENTILE,
        cache_path_for: cache.CachePathFor | None = None,
        score: str = DEFAULT_SCORE,
        train_split: str = "train",
    ) -> Calibration | None:
        """Set the out-of-city threshold from the in-city scores of `split`'s images (cached on disk).

        `score` is one of `serve.calibration.SCORE_KINDS` (`mahalanobis` by default: it also encodes up
        to MAX_STATISTICS_IMAGES images of `train_split` for its feature statistics, and falls back to
        `top1` when the split has too few images per address for them).
        """
        if not isinstance(manifest, Manifest):
            manifest = read_manifest(manifest)
        rows = manifest.split(split)
        paths = [manifest.image_path(p) for p in rows["path"]]
        # a top1 calibration keeps the cache key it had before the score was a choice
        scored = () if score == TOP1 else (f"score={score}", train_split)
        key = cache.combined_key(
            self.gallery_key, split, str(percentile), *scored, *(f"{p}:{_size(p)}" for p in paths)
        )
        path = cache_path_for(key) if cache_path_for and self.model_key else None
        stored = cache.load_json_cache(path, key) if path is not None else None
        if stored is not None:
            self.calibration = Calibration.from_dict(stored) if stored.get("threshold") is not None else None
            return self.calibration
        try:
            if score == TOP1:
                self.calibration = calibrate(self.top1_scores(paths), percentile, split)  # type: ignore[arg-type]
            else:
                self.calibration = self._calibrate_score(
                    manifest, paths, split, percentile, score, train_split
                )
        except ImageRejected as error:
            log.warning("no out-of-city calibration: %s", error)
            return None
        if path is not None:
            record = self.calibration.to_dict() if self.calibration else {"threshold": None}
            cache.save_json_cache(path, key, record)
        return self.calibration

    # ------------------------------------------------------------------------------ lookups
    def network_geojson(self) -> dict[str, Any]:
        """The street network (every sub-street of the AddressBook) as a GeoJSON FeatureCollection."""
        source = self.network if self.network is not None else self.gallery
        in_gallery = set(self.gallery.table["address_id"])
        features = []
        for row in range(len(source)):
            geometry = source.geojson(row)
            if geometry is None:
                continue
            values = source.table.iloc[row]
            features.append(
                {
                    "type": "Feature",
                    "id": str(values["address_id"]),
                    "properties": {
                        "address": str(values["address"]),
                        "street": text_or_none(values["street"]),
                        "in_gallery": str(values["address_id"]) in in_gallery,
                    },
                    "geometry": geometry,
                }
            )
        return {"type": "FeatureCollection", "features": features}

    def export(self, out: str | os.PathLike[str], force: bool = False, onnx: bool = False) -> Path:
        """Write a self-contained bundle folder (see `serve.bundle`); `onnx` adds the ONNX image tower."""
        from addressclip.serve.bundle import export_bundle

        return export_bundle(self, out, force=force, onnx=onnx)


def _as_numpy(values: Any) -> np.ndarray:
    """float32 numpy of a torch tensor (any device) or an array."""
    if isinstance(values, np.ndarray):
        return values.astype(np.float32, copy=False)
    return values.detach().float().cpu().numpy()


def _at(values: np.ndarray | None, index: int) -> float | None:
    return None if values is None else float(values[index])


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return -1
