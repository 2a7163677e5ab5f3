"""How well does the out-of-city flag tell a Helsinki photo from one of elsewhere? Today's score and others.

A model trained on one city (the `make demo` Helsinki model by default) sees three kinds of input:

- the rendered Helsinki splits (`val` to fit thresholds, `test` for the false-alarm rate);
- renders of other cities from the atlas (`runs/atlas/manifest.parquet`, one `city` column; `val`
  to fit, `test` to measure detection) — same renderer, other streets and names;
- 32 real camera photos from Lund and Berlin (`../shared/data/photos`, else the 30 vendored in
  tests/data/photos) — never used to fit anything, measured only.

Scores (higher = more like Helsinki), each computed from the image feature f and the gallery's
address embeddings:

| score         | what                                                                          |
|---------------|-------------------------------------------------------------------------------|
| top1          | best cosine to an address (today's flag: below the 1st percentile of val)     |
| margin        | best minus second-best cosine                                                 |
| msp           | largest softmax probability (cosine x logit scale)                           |
| energy        | logsumexp(scale x cosine) / scale (a soft maximum over the whole gallery)      |
| maha          | minus the least Mahalanobis distance to an address's mean train feature (tied cov.) |
| maha_global   | minus the Mahalanobis distance to the mean of all train features             |
| knn1, knn10   | cosine to the 1st / 10th nearest training image feature                       |
| combined      | logistic regression on all of the above, fitted on Helsinki val vs other-city val |

Every score is thresholded the same way: its `--percentile` (1 %) of Helsinki val, so about 1 % of
in-city photos are flagged by construction. Reported: the false-alarm rate on Helsinki test, the
detection rate on every other city's test split (and, for `combined`, leave-one-city-out: fitted
without the city it is measured on), the detection rate on the real photos, and the AUROC of
Helsinki test against other-city test. The score chosen is the one with the best detection on the
*val* splits at the val threshold (real photos are not looked at when choosing).

    .venv/bin/python speed/bench_out_of_city.py [--model runs/demo/train/model.pt] \\
        [--atlas runs/atlas/manifest.parquet] [--out speed/results/out_of_city.json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd

from addressclip.atomic import write_text_atomic
from addressclip.serve.calibration import in_city_scores
from addressclip.serve.predictor import MAX_STATISTICS_IMAGES

ROOT = Path(__file__).resolve().parent.parent
SHARED_PHOTOS = ROOT.parent / "shared" / "data" / "photos"
VENDORED_PHOTOS = ROOT / "tests" / "data" / "photos"
SCORES = ("top1", "margin", "msp", "energy", "maha", "maha_global", "knn1", "knn10")
SHRINKAGE = 0.1  # covariance shrinkage towards its mean variance (features are few per address)


# ---------------------------------------------------------------------------------------- features
def encode(predictor, paths: list[Path], label: str) -> np.ndarray:
    """(n, D) float32 normalised image features, through the predictor's own decoding."""
    parts = []
    started = time.perf_counter()
    for start in range(0, len(paths), 128):
        pixels = np.stack([predictor.decode(p) for p in paths[start : start + 128]])
        parts.append(predictor.image_embeddings(pixels).cpu().numpy().astype(np.float32))
    seconds = time.perf_counter() - started
    print(f"  {label}: {len(paths)} images in {seconds:.1f} s", flush=True)
    dim = predictor.embeddings.shape[1]
    return np.concatenate(parts) if parts else np.zeros((0, dim), np.float32)


def manifest_rows(manifest: Path, split: str) -> tuple[list[Path], pd.DataFrame]:
    from addressclip.data.manifest import read_manifest

    read = read_manifest(manifest)
    rows = read.split(split).reset_index(drop=True)
    return [read.image_path(p) for p in rows["path"]], rows


def atlas_paths(atlas: Path, split: str) -> tuple[list[Path], np.ndarray]:
    paths, rows = manifest_rows(atlas, split)
    return paths, np.asarray(rows["city"].astype(str), dtype=str)


def real_photos() -> list[Path]:
    root = SHARED_PHOTOS if SHARED_PHOTOS.is_dir() else VENDORED_PHOTOS
    return sorted(root.glob("*/*.jpg"))


def files_key(*paths: Path) -> str:
    """Which model and data the cached features are of (path, size, modification time of each)."""
    parts = []
    for path in paths:
        file = path / "model.pt" if path.is_dir() else path
        stat = file.stat()
        parts.append(f"{file.resolve()}:{stat.st_size}:{stat.st_mtime_ns}")
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def collect(predictor, model: Path, manifest: Path, atlas: Path, cache: Path) -> dict:
    """Every feature set this bench needs (cached beside the model: encoding is the slow part)."""
    key = files_key(model, manifest, atlas)
    if cache.is_file():
        stored = np.load(cache, allow_pickle=False)
        if str(stored["key"]) == key:
            print(f"features from {cache}")
            return {name: stored[name] for name in stored.files if name != "key"}
    print("encoding images:")
    sets: dict[str, np.ndarray] = {}
    train_paths, train_rows = manifest_rows(manifest, "train")
    # the training images the predictor's own 'mahalanobis' calibration encodes: evenly spaced rows
    keep = np.arange(0, len(train_paths), max(1, -(-len(train_paths) // MAX_STATISTICS_IMAGES)))
    sets["train"] = encode(predictor, [train_paths[i] for i in keep], "Helsinki train (sample)")
    sets["train_address"] = np.asarray(train_rows["address_id"].astype(str), dtype=str)[keep]
    for split in ("val", "test"):
        paths, _ = manifest_rows(manifest, split)
        sets[split] = encode(predictor, paths, f"Helsinki {split}")
        paths, cities = atlas_paths(atlas, split)
        sets[f"other_{split}"] = encode(predictor, paths, f"other cities {split}")
        sets[f"other_{split}_city"] = cities
    photos = real_photos()
    sets["photos"] = encode(predictor, photos, "real photos")
    sets["photos_name"] = np.array([f"{p.parent.name}/{p.name}" for p in photos])
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, key=np.array(key), **sets)
    return sets


# ------------------------------------------------------------------------------------------ scores
class Scorer:
    """Every score of the table above, fitted on Helsinki training features only."""

    def __init__(self, gallery: np.ndarray, scale: float, train: np.ndarray, addresses: np.ndarray) -> None:
        from addressclip.serve.calibration import fit_feature_statistics

        self.gallery = gallery.astype(np.float64)
        self.scale = float(scale)
        self.train = train.astype(np.float64)
        self.statistics = fit_feature_statistics(self.train, addresses)  # what calibration.py keeps
        self.global_mean = self.train.mean(axis=0)
        self.global_precision = _precision(self.train - self.global_mean)

    def scores(self, features: np.ndarray) -> dict[str, np.ndarray]:
        f = features.astype(np.float64)
        cosine = f @ self.gallery.T
        ordered = np.sort(cosine, axis=1)
        logits = cosine * self.scale
        peak = logits.max(axis=1, keepdims=True)
        log_sum = peak[:, 0] + np.log(np.exp(logits - peak).sum(axis=1))
        near = np.sort(f @ self.train.T, axis=1)[:, ::-1]
        return {
            "top1": ordered[:, -1],
            "margin": in_city_scores("margin", cosine),
            "msp": np.exp(logits.max(axis=1) - log_sum),
            "energy": in_city_scores("energy", cosine, self.scale),
            "maha": in_city_scores("mahalanobis", cosine, self.scale, f, self.statistics),
            "maha_global": -_min_mahalanobis(f, self.global_mean[None], self.global_precision),
            "knn1": near[:, 0],
            "knn10": near[:, min(9, near.shape[1] - 1)],
        }


def _precision(centred: np.ndarray) -> np.ndarray:
    covariance = centred.T @ centred / max(1, len(centred) - 1)
    target = np.trace(covariance) / len(covariance)
    shrunk = (1 - SHRINKAGE) * covariance + SHRINKAGE * target * np.eye(len(covariance))
    return np.linalg.inv(shrunk)


def _min_mahalanobis(f: np.ndarray, means: np.ndarray, precision: np.ndarray) -> np.ndarray:
    projected = f @ precision
    own = np.einsum("nd,nd->n", projected, f)
    cross = projected @ means.T
    mean_terms = np.einsum("kd,kd->k", means @ precision, means)
    return np.maximum(own[:, None] - 2 * cross + mean_terms[None], 0).min(axis=1)


def auroc(inside: np.ndarray, outside: np.ndarray) -> float:
    """P(score of an in-city photo > score of an outside one), ties counted half (Mann-Whitney)."""
    if len(inside) == 0 or len(outside) == 0:
        return float("nan")
    values = np.concatenate([inside, outside])
    order = values.argsort(kind="mergesort")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(1, len(values) + 1)
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=ranks)
    ranks = (sums / counts)[inverse]
    return float(
        (ranks[: len(inside)].sum() - len(inside) * (len(inside) + 1) / 2) / (len(inside) * len(outside))
    )


def combined_model(val: dict[str, np.ndarray], other: dict[str, np.ndarray]):
    """Logistic regression (standardised scores) of Helsinki val (1) against other-city val (0)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = np.concatenate(
        [np.column_stack([val[s] for s in SCORES]), np.column_stack([other[s] for s in SCORES])]
    )
    y = np.r_[np.ones(len(val["top1"])), np.zeros(len(other["top1"]))]
    fitted = make_pipeline(
        StandardScaler(), LogisticRegression(C=1.0, class_weight="balanced", max_iter=2000)
    )
    fitted.fit(x, y)

    def score(values: dict[str, np.ndarray]) -> np.ndarray:
        if len(values["top1"]) == 0:
            return np.zeros(0)
        return fitted.decision_function(np.column_stack([values[s] for s in SCORES]))

    return score


def rate(values: np.ndarray, threshold: float) -> float:
    return round(float((values < threshold).mean()), 4) if len(values) else float("nan")


def evaluate(sets: dict, scorer: Scorer, percentile: float) -> dict:
    s = {name: scorer.scores(sets[name]) for name in ("val", "test", "other_val", "other_test", "photos")}
    combined = combined_model(s["val"], s["other_val"])
    for name in s:
        s[name]["combined"] = combined(s[name])
    names = (*SCORES, "combined")
    cities = sets["other_test_city"]
    result: dict[str, dict] = {}
    for score in names:
        threshold = float(np.percentile(s["val"][score], percentile, method="lower"))
        row = {
            "threshold": round(threshold, 6),
            "val_detect_other": rate(s["other_val"][score], threshold),  # the choice is made on this
            "val_auroc": round(auroc(s["val"][score], s["other_val"][score]), 4),
            "helsinki_test_false_alarm": rate(s["test"][score], threshold),
            "other_test_detect": rate(s["other_test"][score], threshold),
            "test_auroc": round(auroc(s["test"][score], s["other_test"][score]), 4),
            "photos_detect": rate(s["photos"][score], threshold),
            "photos_flagged": int((s["photos"][score] < threshold).sum()),
            "per_city_detect": {
                city: rate(s["other_test"][score][cities == city], threshold) for city in np.unique(cities)
            },
        }
        result[score] = row
    result["combined"]["leave_one_city_out_detect"] = leave_one_city_out(sets, s, percentile)
    return result


def leave_one_city_out(sets: dict, s: dict, percentile: float) -> dict[str, float]:
    """`combined` fitted without a city's val renders, measured on that city's test renders."""
    val_cities, test_cities = sets["other_val_city"], sets["other_test_city"]
    found = {}
    for city in np.unique(test_cities):
        keep = val_cities != city
        other = {k: v[keep] for k, v in s["other_val"].items() if k != "combined"}
        combined = combined_model({k: v for k, v in s["val"].items() if k != "combined"}, other)
        threshold = float(np.percentile(combined(s["val"]), percentile, method="lower"))
        mine = {k: v[test_cities == city] for k, v in s["other_test"].items()}
        found[str(city)] = rate(combined(mine), threshold)
    found["mean"] = round(float(np.mean(list(found.values()))), 4)
    return found


def markdown(result: dict, counts: dict) -> str:
    lines = [
        f"Helsinki val {counts['val']} / test {counts['test']}; other cities val {counts['other_val']} / "
        f"test {counts['other_test']}; real photos {counts['photos']}",
        "",
        "| score | val: other detected | val AUROC | Helsinki test false alarms | other test detected "
        "| test AUROC | real photos flagged |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, row in result.items():
        lines.append(
            f"| {name} | {row['val_detect_other']:.1%} | {row['val_auroc']:.3f} | "
            f"{row['helsinki_test_false_alarm']:.1%} | {row['other_test_detect']:.1%} | "
            f"{row['test_auroc']:.3f} | "
            f"{row['photos_flagged']}/{counts['photos']} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, default=ROOT / "runs" / "demo" / "train" / "model.pt")
    parser.add_argument(
        "--manifest", type=Path, default=ROOT / "runs" / "demo" / "world" / "manifest.parquet"
    )
    parser.add_argument("--atlas", type=Path, default=ROOT / "runs" / "atlas" / "manifest.parquet")
    parser.add_argument("--percentile", type=float, default=1.0, help="of Helsinki val: the threshold rule")
    parser.add_argument("--cache", type=Path, default=None, help="features file (default: beside the model)")
    parser.add_argument("--out", type=Path, default=ROOT / "speed" / "results" / "out_of_city.json")
    args = parser.parse_args()
    for path, what in ((args.model, "model"), (args.manifest, "manifest"), (args.atlas, "atlas manifest")):
        if not path.exists():
            raise SystemExit(f"{path}: no {what} there (see --help)")

    import torch

    from addressclip.serve.loading import load_predictor

    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    predictor = load_predictor(args.model, manifest=args.manifest, calibrate_threshold=True)
    manifest = args.manifest
    cache = (
        args.cache or (args.model.parent if args.model.is_file() else args.model) / "out_of_city_features.npz"
    )
    sets = collect(predictor, args.model, manifest, args.atlas, cache)
    scorer = Scorer(
        predictor.embeddings.cpu().numpy(),
        float(predictor.model.logit_scale().detach()),
        sets["train"],
        sets["train_address"],
    )
    result = evaluate(sets, scorer, args.percentile)
    counts = {k: len(sets[k]) for k in ("val", "test", "other_val", "other_test", "photos")}
    chosen = max((*SCORES, "combined"), key=lambda s: (result[s]["val_detect_other"], result[s]["val_auroc"]))
    today = predictor.calibration.to_dict() if predictor.calibration else None
    report = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "model": str(args.model),
        "manifest": str(manifest),
        "atlas": str(args.atlas),
        "percentile": args.percentile,
        "counts": counts,
        "todays_calibration": today,
        "chosen_by_val": chosen,
        "scores": result,
        "photos_names": sets["photos_name"].tolist(),
    }
    write_text_atomic(args.out, json.dumps(report, indent=2) + "\n")
    print(markdown(result, counts))
    print(f"chosen on val: {chosen}; wrote {args.out}")


if __name__ == "__main__":
    main()
