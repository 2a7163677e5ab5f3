"""Predictions as text: an aligned table for people, JSON and CSV for programs (`addressclip predict`)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence

import numpy as np

from addressclip.serve.predictor import AddressPredictor, Prediction

CSV_COLUMNS = (
    "image", "rank", "address_id", "address", "street", "neighbourhood", "score", "probability",
    "lat", "lon", "seen_in_training", "out_of_city",
)  # fmt: skip


def _coordinate(value: float | None) -> str:
    return "" if value is None else f"{value:.5f}"


def _notes(prediction: Prediction, rank: int, seen: bool) -> str:
    notes = []
    if rank == 1 and prediction.out_of_city:
        notes.append("probably not from this city")
    if not seen:
        notes.append("not seen in training")
    return "; ".join(notes)


def format_table(predictions: Sequence[Prediction], truths: Sequence[str] | None = None) -> str:
    """One row per (image, rank); the image name only on its first row. `truths` adds a check column."""
    header = ["image", "rank", "address", "score", "prob", "lat", "lon", "notes"]
    if truths is not None:
        header.insert(3, "true?")
    rows = [header]
    for index, prediction in enumerate(predictions):
        for match in prediction.matches:
            row = [
                prediction.source if match.rank == 1 else "",
                str(match.rank),
                match.address,
                f"{match.score:.3f}",
                f"{100 * match.probability:.1f}%",
                _coordinate(match.lat),
                _coordinate(match.lon),
                _notes(prediction, match.rank, match.seen_in_training),
            ]
            if truths is not None:
                row.insert(3, "yes" if match.address == truths[index] else "")
            rows.append(row)
    widths = [max(len(row[c]) for row in rows) for c in range(len(header))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines) + "\n"


def format_json(predictions: Sequence[Prediction], with_geometry: bool = False) -> str:
    return json.dumps([p.to_dict(with_geometry) for p in predictions], indent=1, ensure_ascii=False) + "\n"


def format_csv(predictions: Sequence[Prediction]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for prediction in predictions:
        for m in prediction.matches:
            writer.writerow(
                [
                    prediction.source, m.rank, m.address_id, m.address, m.street or "", m.neighbourhood or "",
                    f"{m.score:.6f}", f"{m.probability:.6f}", _coordinate(m.lat), _coordinate(m.lon),
                    str(m.seen_in_training).lower(),
                    "" if prediction.out_of_city is None else str(prediction.out_of_city).lower(),
                ]
            )  # fmt: skip
    return buffer.getvalue()


def held_out_report(
    predictor: AddressPredictor,
    manifest_path: str,
    count: int = 5,
    split: str = "test",
    top_k: int = 3,
    seed: int = 0,
) -> str:
    """A table for `count` random images of `split` with their true address marked (for `make demo`)."""
    from addressclip.data.manifest import read_manifest

    manifest = read_manifest(manifest_path)
    rows = manifest.split(split)
    if rows.empty:
        return f"(no {split} images in {manifest_path})\n"
    chosen = np.random.default_rng(seed).choice(len(rows), size=min(count, len(rows)), replace=False)
    picked = rows.iloc[np.sort(chosen)]
    predictions = predictor.predict([manifest.image_path(p) for p in picked["path"]], top_k=top_k)
    for prediction, relative in zip(predictions, picked["path"], strict=True):
        prediction.source = str(relative)
    hits = sum(p.top.address == truth for p, truth in zip(predictions, picked["address"], strict=True))
    table = format_table(predictions, list(picked["address"]))
    return table + f"top-1 correct on {hits} of {len(predictions)} held-out {split} images\n"
