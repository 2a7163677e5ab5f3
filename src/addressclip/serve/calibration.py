"""The out-of-city flag: a threshold on the top-1 cosine score, calibrated on the validation split.

A photo from this city usually matches some address of the gallery well; a photo from elsewhere (or
not a street at all) matches every address poorly, so its best cosine similarity is low. The threshold
is a low percentile of the top-1 scores of the validation images — held-out photos that *are* from the
city — so by construction about `percentile` % of in-city photos get flagged, and anything scoring
below nearly all of them is reported as probably not from this city.

The cosine score (not the softmax probability) is used because it does not depend on how many
addresses the gallery holds: adding addresses later can only raise a photo's top-1 score, never
lower it. The flag is a hint, not a classifier: a model trained on one city has never been shown
another, and photos that look alike across cities (a blank wall, a parking lot) will pass.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from addressclip.errors import AddressclipError

DEFAULT_PERCENTILE = 1.0
MIN_CALIBRATION_IMAGES = 5


@dataclass(frozen=True)
class Calibration:
    threshold: float  # top-1 cosine below this -> out_of_city
    percentile: float  # of the calibration images' top-1 scores
    images: int  # how many calibration images
    split: str  # which manifest split
    top1_median: float  # for reference: a typical in-city top-1 score

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Calibration:
        try:
            return cls(
                threshold=float(values["threshold"]),
                percentile=float(values["percentile"]),
                images=int(values["images"]),
                split=str(values["split"]),
                top1_median=float(values["top1_median"]),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise AddressclipError(f"calibration record is incomplete or malformed ({error})") from None


def calibrate(
    top1_scores: np.ndarray, percentile: float = DEFAULT_PERCENTILE, split: str = "val"
) -> Calibration | None:
    """The threshold from in-city top-1 scores; None when there are too few images to mean anything."""
    if not 0.0 <= percentile <= 100.0:
        raise AddressclipError(f"calibration percentile must be within 0..100, not {percentile!r}")
    scores = np.asarray(top1_scores, dtype=np.float64).ravel()
    scores = scores[np.isfinite(scores)]
    if len(scores) < MIN_CALIBRATION_IMAGES:
        return None
    return Calibration(
        # 'lower': the threshold is an actual calibration score, so with few images (under 100 at the
        # default 1 %) the lowest in-city photo itself is not flagged
        threshold=float(np.percentile(scores, percentile, method="lower")),
        percentile=float(percentile),
        images=len(scores),
        split=split,
        top1_median=float(np.median(scores)),
    )
