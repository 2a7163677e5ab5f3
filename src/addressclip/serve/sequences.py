"""Photo sequences through a predictor: per-photo answers, the decoded sub-street path, posteriors.

`AddressPredictor.predict_sequence` scores every photo against the whole gallery and decodes the
sequence with the sub-street hidden Markov model of `geo.sequence`:

- states: the gallery's addresses, in gallery order;
- emissions: each photo's per-address probabilities, the softmax of its cosine scores at the model's
  logit scale (the same numbers `Prediction.matches[i].probability` shows, here in log space and
  float64, so that no address underflows to probability 0);
- transitions: adjacency of the gallery's sub-street geometries (`adjacency_from_geometries`, two
  sub-streets meet when they share a vertex or one's end lies within 10 m of the other), built once
  per gallery and cached; addresses without geometry are isolated (reachable by a jump only);
- gaps: one unit per photo by default; `timestamps` in seconds use one step per `SECONDS_PER_STEP`
  (a walker covers ~10 m, a photo spacing the default transition probabilities fit, in ~7 s);
  `positions` in metres along the route one step per `METRES_PER_STEP`. A caller's
  `TransitionParams` keeps its own `unit`.

The result keeps the per-photo predictions next to the Viterbi path (one address per photo), each
photo's top-k posterior addresses (forward–backward) and the path's runs of one sub-street with
their geometry, so a map can draw what was decoded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp
import shapely

from addressclip.errors import AddressclipError, InputError
from addressclip.geo.sequence import SequenceDecoder, TransitionParams, adjacency_from_geometries, gaps_from

if TYPE_CHECKING:
    from addressclip.serve.gallery import AddressGallery
    from addressclip.serve.predictor import Prediction

SECONDS_PER_STEP = 7.0  # walking: ~10 m between photos in ~7 s
METRES_PER_STEP = 10.0  # the default transitions fit one photo every ~10 m
TOUCH_M = 1.0
REACH_M = 10.0
POSTERIOR_DECIMALS = 6


def gallery_adjacency(gallery: AddressGallery) -> sp.csr_matrix:
    """Which gallery addresses' sub-streets meet (rows/columns: gallery rows)."""
    geometries = [g if g is not None else shapely.LineString() for g in gallery.table["geometry"]]
    return adjacency_from_geometries(geometries, touch_m=TOUCH_M, reach_m=REACH_M)


def sequence_params(
    count: int,
    timestamps: Sequence[float] | np.ndarray | None,
    positions: Sequence[float] | np.ndarray | None,
    params: TransitionParams | None,
) -> tuple[np.ndarray | None, TransitionParams, str]:
    """(gaps, transition parameters, gap unit name) for `count` photos; AddressclipError for bad input."""
    for name, values in (("timestamps", timestamps), ("positions", positions)):
        if values is not None and len(values) != count:
            raise AddressclipError(
                f"sequence: {name} hold {len(values)} values for {count} photos; give one per photo"
            )
    gaps = gaps_from(timestamps, positions)
    if timestamps is not None:
        unit, name = SECONDS_PER_STEP, "seconds"
    elif positions is not None:
        unit, name = METRES_PER_STEP, "metres"
    else:
        unit, name = 1.0, "photos"
    if params is None:
        params = TransitionParams(unit=unit)
    return gaps, params, name


@dataclass
class SequencePrediction:
    """A decoded photo sequence (see module docstring); `to_dict` is the service's JSON."""

    predictions: list[Prediction]  # per photo, independently
    path: list[dict[str, Any]]  # per photo: the decoded address and its posterior
    posteriors: list[list[dict[str, Any]]]  # per photo: top-k addresses by posterior
    segments: list[dict[str, Any]]  # runs of one decoded sub-street: first/last photo, geometry
    log_likelihood: float
    path_log_prob: float
    gap_unit: str
    gaps: list[float] | None = field(default=None)

    def __len__(self) -> int:
        return len(self.path)

    @property
    def addresses(self) -> list[str]:
        """The decoded address of each photo."""
        return [step["address"] for step in self.path]

    def to_dict(self, with_geometry: bool = True) -> dict[str, Any]:
        segments = [
            segment if with_geometry else {k: v for k, v in segment.items() if k != "geometry"}
            for segment in self.segments
        ]
        return {
            "predictions": [p.to_dict(with_geometry) for p in self.predictions],
            "path": self.path,
            "posteriors": self.posteriors,
            "segments": segments,
            "log_likelihood": self.log_likelihood,
            "path_log_prob": self.path_log_prob,
            "gap_unit": self.gap_unit,
        }


SHORT_KEYS = ("address_id", "address", "street", "neighbourhood", "lat", "lon")


def build_result(
    gallery: AddressGallery,
    predictions: list[Prediction],
    decoded_path: np.ndarray,
    posteriors: np.ndarray,
    log_likelihood: float,
    path_log_prob: float,
    top_k: int,
    gap_unit: str,
    gaps: np.ndarray | None,
) -> SequencePrediction:
    """The JSON-able parts of a decoded sequence from the decoder's arrays."""
    length, count = posteriors.shape
    k = max(1, min(int(top_k), count))
    top = np.argsort(-posteriors, axis=1, kind="stable")[:, :k]
    top_probs = np.round(np.take_along_axis(posteriors, top, axis=1), POSTERIOR_DECIMALS).tolist()
    top_rows = top.tolist()
    path_probs = np.round(posteriors[np.arange(length), decoded_path], POSTERIOR_DECIMALS).tolist()
    records: dict[int, dict[str, Any]] = {}  # a gallery lookup per distinct row, not per photo and rank

    def short(row: int) -> dict[str, Any]:
        if row not in records:
            record = gallery.record(row)
            records[row] = {key: record[key] for key in SHORT_KEYS}
        return records[row]

    path, ranked = [], []
    for t in range(length):
        row = int(decoded_path[t])
        step = {"index": t, "source": predictions[t].source, **short(row)}
        step["posterior"] = path_probs[t]
        step["photo_address_id"] = predictions[t].top.address_id
        step["agrees_with_photo"] = predictions[t].top.address_id == step["address_id"]
        path.append(step)
        ranked.append(
            [
                {
                    "rank": rank,
                    "address_id": short(j)["address_id"],
                    "address": short(j)["address"],
                    "probability": probability,
                }
                for rank, (j, probability) in enumerate(zip(top_rows[t], top_probs[t], strict=True), start=1)
            ]
        )
    segments = []
    start = 0
    for t in range(1, length + 1):
        if t == length or decoded_path[t] != decoded_path[start]:
            row = int(decoded_path[start])
            segments.append(
                {
                    "first": start,
                    "last": t - 1,
                    "address_id": short(row)["address_id"],
                    "address": short(row)["address"],
                    "geometry": gallery.geojson(row),
                }
            )
            start = t
    return SequencePrediction(
        predictions=predictions,
        path=path,
        posteriors=ranked,
        segments=segments,
        log_likelihood=float(log_likelihood),
        path_log_prob=float(path_log_prob),
        gap_unit=gap_unit,
        gaps=None if gaps is None else [float(g) for g in gaps],
    )


def decode(
    adjacency: sp.csr_matrix,
    log_probs: np.ndarray,
    gaps: np.ndarray | None,
    params: TransitionParams,
) -> tuple[np.ndarray, np.ndarray, float, float]:
    """(path, posteriors, log-likelihood, path log-probability) of one sequence."""
    result = SequenceDecoder(adjacency, params).decode(log_probs, gaps)
    return result.path, result.posteriors, result.log_likelihood, result.path_log_prob


# ------------------------------------------------------------------------------- photo order
EXIF_IFD = 0x8769
DATETIME_ORIGINAL = 36867
SUBSEC_ORIGINAL = 37521
DATETIME = 306  # IFD0 DateTime: when the file was last written (a fallback cameras also set)


def exif_time(path: str | Path) -> float | None:
    """Seconds since the epoch of the photo's EXIF DateTimeOriginal (+ SubSecTimeOriginal), else DateTime.

    The clock is the camera's local time without a zone: fine for ordering and for gaps within one
    walk. None when the file has neither tag (or an unreadable one).
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            exif = image.getexif()
    except (OSError, UnidentifiedImageError):
        raise InputError(path, None, "cannot read the file as an image") from None
    inner = exif.get_ifd(EXIF_IFD)
    text = inner.get(DATETIME_ORIGINAL) or exif.get(DATETIME)
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.strptime(text.strip().rstrip("\x00"), "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None
    seconds = moment.timestamp()
    fraction = str(inner.get(SUBSEC_ORIGINAL) or "").strip().rstrip("\x00")
    if fraction.isdigit():
        seconds += float(f"0.{fraction}")
    return seconds


def order_by_exif_time(paths: Sequence[Path]) -> tuple[list[Path], list[float]]:
    """The photos sorted by EXIF capture time (ties by name) and their times in seconds.

    A photo without a capture time is an InputError naming it: guessing its place in the walk would
    silently reorder the sequence (use `--order name` for such photos).
    """
    times = []
    for path in paths:
        moment = exif_time(path)
        if moment is None:
            raise InputError(
                path,
                "DateTimeOriginal",
                "no EXIF capture time to order by; use --order name (photos in file-name order)",
            )
        times.append(moment)
    order = sorted(range(len(paths)), key=lambda i: (times[i], str(paths[i])))
    return [paths[i] for i in order], [times[i] for i in order]


# ----------------------------------------------------------------------------------- output
SEQUENCE_CSV_COLUMNS = (
    "index", "image", "photo_address_id", "photo_address", "photo_probability", "address_id", "address",
    "posterior", "lat", "lon", "agrees_with_photo",
)  # fmt: skip


def format_sequence_table(result: SequencePrediction) -> str:
    """One row per photo: its own best address next to the decoded one (`*` where they differ)."""
    header = ["#", "image", "photo's own best", "prob", "decoded path", "posterior", ""]
    rows = [header]
    for step, prediction in zip(result.path, result.predictions, strict=True):
        rows.append(
            [
                str(step["index"] + 1),
                prediction.source,
                prediction.top.address,
                f"{100 * prediction.top.probability:.1f}%",
                step["address"],
                f"{100 * step['posterior']:.1f}%",
                "" if step["agrees_with_photo"] else "*",
            ]
        )
    widths = [max(len(row[c]) for row in rows) for c in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    changed = sum(not step["agrees_with_photo"] for step in result.path)
    runs = len(result.segments)
    lines.append(
        f"{len(result)} photos on {runs} sub-street run(s); the sequence changed {changed} answer(s) (*)"
    )
    return "\n".join(lines) + "\n"


def format_sequence_csv(result: SequencePrediction) -> str:
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(SEQUENCE_CSV_COLUMNS)
    for step, prediction in zip(result.path, result.predictions, strict=True):
        writer.writerow(
            [
                step["index"], prediction.source, prediction.top.address_id, prediction.top.address,
                f"{prediction.top.probability:.6f}", step["address_id"], step["address"],
                f"{step['posterior']:.6f}", "" if step["lat"] is None else f"{step['lat']:.6f}",
                "" if step["lon"] is None else f"{step['lon']:.6f}", str(step["agrees_with_photo"]).lower(),
            ]
        )  # fmt: skip
    return buffer.getvalue()


def format_sequence_json(result: SequencePrediction, with_geometry: bool = False) -> str:
    import json

    return json.dumps(result.to_dict(with_geometry), indent=1, ensure_ascii=False) + "\n"
