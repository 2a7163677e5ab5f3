"""The out-of-city flag: a threshold on an in-city score, calibrated on the validation split.

The threshold is a low percentile of the scores of the validation images — held-out photos that
*are* from the city — so by construction about `percentile` % of in-city photos get flagged, and
anything scoring below nearly all of them is reported as probably not from this city. The flag is a
hint, not a classifier: a model trained on one city has never been shown another, and photos that
look alike across cities (a blank wall, a parking lot) can pass.

Which score (`Calibration.score`):

- `top1` (the default, and what every bundle written before the choice existed used): the best
  cosine similarity of the photo to an address. A photo from elsewhere matches every address poorly.
  It does not depend on how many addresses the gallery holds (adding addresses can only raise it).
- `margin`: best minus second-best cosine (a photo of this city usually has one clear answer).
- `energy`: logsumexp of the scaled cosines over the whole gallery, divided by the scale (a soft
  maximum: how well the photo matches the gallery as a whole).
- `mahalanobis`: minus the smallest Mahalanobis distance of the photo's *image feature* to the mean
  feature of each training address (one covariance shared by all, shrunk towards its mean
  variance). It asks "does this look like the photos the model was trained on", which a photo of
  another place or another kind of camera does not, even when it happens to match some street
  name's text well. It needs `FeatureStatistics` of the training images, kept in the record.

Measured on the demo model (speed/bench_out_of_city.py, README): see there for which score to pick.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from addressclip.errors import AddressclipError

DEFAULT_PERCENTILE = 1.0
MIN_CALIBRATION_IMAGES = 5
SCORE_KINDS = ("top1", "margin", "energy", "mahalanobis")
TOP1 = "top1"  # the top-1 cosine: comes with the ranking, needs nothing else
# What a new calibration uses: chosen on validation data only (speed/bench_out_of_city.py: the highest
# AUROC on the other cities' val renders; the 32 real photos were never used to choose it).
DEFAULT_SCORE = "mahalanobis"
RECORD_SCORE = TOP1  # what a record without "score" means (every record before the choice existed)
DEFAULT_SHRINKAGE = 0.1
MIN_IMAGES_PER_ADDRESS = 2  # an address mean from one photo is that photo: it would pass itself only


# ------------------------------------------------------------------------------- feature statistics
def _encode_array(values: np.ndarray) -> dict[str, Any]:
    array = np.ascontiguousarray(values, dtype=np.float32)
    return {"shape": list(array.shape), "float32_base64": base64.b64encode(array.tobytes()).decode("ascii")}


def _decode_array(record: Any, name: str) -> np.ndarray:
    try:
        shape = tuple(int(n) for n in record["shape"])
        raw = base64.b64decode(record["float32_base64"], validate=True)
        return np.frombuffer(raw, dtype=np.float32).reshape(shape).copy()
    except (KeyError, TypeError, ValueError) as error:
        raise AddressclipError(f"calibration record: '{name}' is malformed ({error})") from None


@dataclass(frozen=True, eq=False)
class FeatureStatistics:
    """Where the training images lie in the image-feature space: one mean per address, one precision.

    Kept in the calibration record (JSON: float32 arrays as base64, ~0.5 MB for 200 addresses of
    256-d features), so a bundle carries it without a new file.
    """

    means: np.ndarray  # (K, D) mean image feature of each training address
    precision: np.ndarray  # (D, D) inverse of the shared (shrunk) covariance

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FeatureStatistics):
            return NotImplemented
        return np.array_equal(self.means, other.means) and np.array_equal(self.precision, other.precision)

    __hash__ = None  # type: ignore[assignment]

    def distances(self, features: np.ndarray) -> np.ndarray:
        """(B,) the smallest squared Mahalanobis distance of each feature row to an address mean."""
        f = np.asarray(features, dtype=np.float64)
        precision = self.precision.astype(np.float64)
        means = self.means.astype(np.float64)
        projected = f @ precision
        own = np.einsum("nd,nd->n", projected, f)
        mean_terms = np.einsum("kd,kd->k", means @ precision, means)
        squared = own[:, None] - 2.0 * (projected @ means.T) + mean_terms[None, :]
        return np.maximum(squared, 0.0).min(axis=1)

    def to_dict(self) -> dict[str, Any]:
        return {"means": _encode_array(self.means), "precision": _encode_array(self.precision)}

    @classmethod
    def from_dict(cls, values: Any) -> FeatureStatistics:
        if not isinstance(values, dict):
            raise AddressclipError("calibration record: 'statistics' must be an object")
        means = _decode_array(values.get("means"), "statistics.means")
        precision = _decode_array(values.get("precision"), "statistics.precision")
        if means.ndim != 2 or precision.shape != (means.shape[1], means.shape[1]):
            raise AddressclipError(
                f"calibration record: statistics of shapes {means.shape} and {precision.shape} do not fit"
            )
        return cls(means, precision)


def fit_feature_statistics(
    features: np.ndarray, labels: np.ndarray, shrinkage: float = DEFAULT_SHRINKAGE
) -> FeatureStatistics | None:
    """Per-label means and the shared precision of in-city training features; None if too few.

    The covariance is of features minus their label's mean, shrunk towards (its mean variance) x I
    so that it can be inverted with fewer photos than dimensions.
    """
    features = np.asarray(features, dtype=np.float64)
    labels = np.asarray(labels)
    if features.ndim != 2 or len(features) != len(labels):
        raise AddressclipError(f"feature statistics: {features.shape} features for {len(labels)} labels")
    if not 0.0 < shrinkage <= 1.0:
        raise AddressclipError(f"feature statistics: shrinkage must be within (0, 1], not {shrinkage!r}")
    names, inverse = np.unique(labels, return_inverse=True)
    counts = np.bincount(inverse, minlength=len(names))
    sums = np.zeros((len(names), features.shape[1]))
    np.add.at(sums, inverse, features)
    means = sums / np.maximum(counts, 1)[:, None]
    kept = counts >= MIN_IMAGES_PER_ADDRESS
    if kept.sum() == 0 or len(features) < MIN_CALIBRATION_IMAGES:
        return None
    centred = features - means[inverse]
    covariance = centred.T @ centred / max(1, len(features) - len(names))
    target = float(np.trace(covariance)) / len(covariance) or 1e-6
    shrunk = (1.0 - shrinkage) * covariance + shrinkage * target * np.eye(len(covariance))
    precision = np.linalg.inv(shrunk)
    return FeatureStatistics(means[kept].astype(np.float32), precision.astype(np.float32))


# ------------------------------------------------------------------------------------------ scores
def in_city_scores(
    score: str,
    cosine: np.ndarray,
    logit_scale: float = 100.0,
    features: np.ndarray | None = None,
    statistics: FeatureStatistics | None = None,
) -> np.ndarray:
    """(B,) the named in-city score (higher = more like this city) of each photo.

    `cosine` is (B, N): each photo against every gallery address; `features` (B, D) the photos'
    normalised image features (only `mahalanobis` reads them, with `statistics`).
    """
    cosine = np.asarray(cosine, dtype=np.float64)
    if cosine.ndim != 2 or cosine.shape[1] == 0:
        raise AddressclipError(f"out-of-city score: expected (photos, addresses) cosines, got {cosine.shape}")
    if score == "top1":
        return cosine.max(axis=1)
    if score == "margin":
        if cosine.shape[1] < 2:
            return np.ones(len(cosine))  # one candidate: nothing to confuse it with
        best_two = -np.partition(-cosine, 1, axis=1)[:, :2]
        return best_two[:, 0] - best_two[:, 1]
    if score == "energy":
        logits = cosine * float(logit_scale)
        peak = logits.max(axis=1, keepdims=True)
        return (peak[:, 0] + np.log(np.exp(logits - peak).sum(axis=1))) / float(logit_scale)
    if score == "mahalanobis":
        if features is None or statistics is None:
            raise AddressclipError("the 'mahalanobis' out-of-city score needs image features and statistics")
        return -statistics.distances(features)
    raise AddressclipError(f"unknown out-of-city score '{score}' (choose from {', '.join(SCORE_KINDS)})")


# ------------------------------------------------------------------------------------- calibration
@dataclass(frozen=True)
class Calibration:
    threshold: float  # score below this -> out_of_city
    percentile: float  # of the calibration images' scores
    images: int  # how many calibration images
    split: str  # which manifest split
    top1_median: float  # a typical in-city score (of `score`; the name is the record's, kept)
    score: str = TOP1  # which in-city score (SCORE_KINDS)
    statistics: FeatureStatistics | None = field(default=None, repr=False)  # for 'mahalanobis'

    def to_dict(self) -> dict[str, Any]:
        """The JSON record (bundle.json, calibration caches)."""
        record: dict[str, Any] = {
            "threshold": self.threshold,
            "percentile": self.percentile,
            "images": self.images,
            "split": self.split,
            "top1_median": self.top1_median,
        }
        record["score"] = self.score
        if self.statistics is not None:
            record["statistics"] = self.statistics.to_dict()
        return record

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Calibration:
        """Read a record; one without `score` (every bundle before the choice existed) is `top1`."""
        try:
            score = str(values.get("score", RECORD_SCORE))
            calibration = cls(
                threshold=float(values["threshold"]),
                percentile=float(values["percentile"]),
                images=int(values["images"]),
                split=str(values["split"]),
                top1_median=float(values["top1_median"]),
                score=score,
                statistics=(
                    FeatureStatistics.from_dict(values["statistics"])
                    if values.get("statistics") is not None
                    else None
                ),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise AddressclipError(f"calibration record is incomplete or malformed ({error})") from None
        if score not in SCORE_KINDS:
            raise AddressclipError(
                f"calibration record: unknown score '{score}' (this version knows {', '.join(SCORE_KINDS)})"
            )
        if score == "mahalanobis" and calibration.statistics is None:
            raise AddressclipError("calibration record: score 'mahalanobis' without its 'statistics'")
        return calibration

    @property
    def needs_features(self) -> bool:
        """Whether scoring a photo needs its image feature (not only its cosines to the gallery)."""
        return self.score == "mahalanobis"

    def scores(
        self, cosine: np.ndarray, logit_scale: float = 100.0, features: np.ndarray | None = None
    ) -> np.ndarray:
        """(B,) this calibration's in-city score of each photo (see `in_city_scores`)."""
        return in_city_scores(self.score, cosine, logit_scale, features, self.statistics)


def calibrate(
    scores: np.ndarray,
    percentile: float = DEFAULT_PERCENTILE,
    split: str = "val",
    *,
    score: str = TOP1,
    statistics: FeatureStatistics | None = None,
) -> Calibration | None:
    """The threshold from in-city scores of kind `score` (top-1 cosines by default); None when there
    are too few images to mean anything."""
    if not 0.0 <= percentile <= 100.0:
        raise AddressclipError(f"calibration percentile must be within 0..100, not {percentile!r}")
    if score not in SCORE_KINDS:
        raise AddressclipError(f"unknown out-of-city score '{score}' (choose from {', '.join(SCORE_KINDS)})")
    if score == "mahalanobis" and statistics is None:
        raise AddressclipError("the 'mahalanobis' out-of-city score needs feature statistics")
    values = np.asarray(scores, dtype=np.float64).ravel()
    values = values[np.isfinite(values)]
    if len(values) < MIN_CALIBRATION_IMAGES:
        return None
    return Calibration(
        # 'lower': the threshold is an actual calibration score, so with few images (under 100 at the
        # default 1 %) the lowest in-city photo itself is not flagged
        threshold=float(np.percentile(values, percentile, method="lower")),
        percentile=float(percentile),
        images=len(values),
        split=split,
        top1_median=float(np.median(values)),
        score=score,
        statistics=statistics,
    )
