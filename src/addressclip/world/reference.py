"""Reference numbers for a rendered world, so nobody mistakes an easy world for a result.

* chance SSA-1: 1 / number of training addresses (a uniform guess);
* majority SSA-1: always answer the most frequent training address;
* raw-pixel nearest neighbour SSA-1 (and SA-1): each test image takes the address of the training
  image whose 16x16 grey thumbnail is most similar (cosine after removing each thumbnail's mean).
  A model that does not beat this has learnt nothing beyond "similar pixels, similar place".
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from addressclip.atomic import write_text_atomic

REFERENCE_JSON = "reference.json"
REFERENCE_MD = "reference.md"


def _normalised(thumbs: np.ndarray) -> np.ndarray:
    flat = thumbs.reshape(len(thumbs), -1).astype(np.float64)
    flat -= flat.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(flat, axis=1, keepdims=True)
    return flat / np.maximum(norms, 1e-9)


def pixel_nn_predictions(train: np.ndarray, test: np.ndarray, chunk: int = 2048) -> np.ndarray:
    """Index of the most cosine-similar training thumbnail for each test thumbnail."""
    a, b = _normalised(train), _normalised(test)
    out = np.empty(len(b), dtype=np.int64)
    for start in range(0, len(b), chunk):
        out[start : start + chunk] = np.argmax(b[start : start + chunk] @ a.T, axis=1)
    return out


def reference_table(frame: pd.DataFrame, thumbnails: dict[str, np.ndarray], split: str = "test") -> dict:
    """Counts and the chance / majority / raw-pixel-NN SSA-1 on `split` (see module docstring)."""
    train = frame[frame["split"] == "train"]
    test = frame[frame["split"] == split]
    counts = frame["split"].value_counts()
    result: dict[str, object] = {
        "images": len(frame),
        "locations": int(frame["location_id"].nunique()),
        "addresses": int(frame["address_id"].nunique()),
        "streets": int(frame["street_id"].nunique()),
        "images_per_split": {s: int(counts.get(s, 0)) for s in ("train", "val", "test")},
        "evaluated_split": split,
        "train_addresses": int(train["address_id"].nunique()),
    }
    if len(test) == 0 or len(train) == 0:
        result.update(chance_ssa1=0.0, majority_ssa1=0.0, pixel_nn_ssa1=0.0, pixel_nn_sa1=0.0)
        return result
    result["chance_ssa1"] = 1.0 / max(int(train["address_id"].nunique()), 1)
    majority = train["address_id"].value_counts().idxmax()
    result["majority_ssa1"] = float((test["address_id"] == majority).mean())
    have = [p in thumbnails for p in frame["path"]]
    if all(have):
        train_thumbs = np.stack([thumbnails[p] for p in train["path"]])
        test_thumbs = np.stack([thumbnails[p] for p in test["path"]])
        nearest = pixel_nn_predictions(train_thumbs, test_thumbs)
        predicted = train["address_id"].to_numpy()[nearest]
        predicted_street = train["street_id"].to_numpy()[nearest]
        result["pixel_nn_ssa1"] = float((predicted == test["address_id"].to_numpy()).mean())
        result["pixel_nn_sa1"] = float((predicted_street == test["street_id"].to_numpy()).mean())
    else:
        result["pixel_nn_ssa1"] = None
        result["pixel_nn_sa1"] = None
    return result


def reference_markdown(reference: dict) -> str:
    def pct(value: object) -> str:
        return "n/a" if value is None else f"{100.0 * float(value):.2f} %"  # type: ignore[arg-type]

    split = reference.get("images_per_split", {})
    rows = [
        ("images (train / val / test)", f"{reference['images']} ({split.get('train', 0)} / "
                                        f"{split.get('val', 0)} / {split.get('test', 0)})"),
        ("capture locations", str(reference["locations"])),
        ("addresses (sub-streets)", str(reference["addresses"])),
        ("streets", str(reference["streets"])),
        ("chance SSA-1", pct(reference.get("chance_ssa1"))),
        ("majority-class SSA-1", pct(reference.get("majority_ssa1"))),
        ("raw-pixel 1-NN SSA-1 (16x16 grey, cosine)", pct(reference.get("pixel_nn_ssa1"))),
        ("raw-pixel 1-NN SA-1", pct(reference.get("pixel_nn_sa1"))),
    ]  # fmt: skip
    lines = [f"| reference ({reference.get('evaluated_split', 'test')} split) | value |", "|---|---|"]
    lines += [f"| {name} | {value} |" for name, value in rows]
    return "\n".join(lines) + "\n"


def write_reference(out: Path, reference: dict) -> None:
    write_text_atomic(out / REFERENCE_JSON, json.dumps(reference, indent=2) + "\n")
    write_text_atomic(out / REFERENCE_MD, reference_markdown(reference))
