"""The report's figures (matplotlib, Agg backend, each PNG written atomically).

All diagnostics are of the featured method (AddressCLIP when it ran): per-address accuracy over the
street network, a t-SNE of its image features coloured by street, example predictions (image, top-5
with scores, the truth), Grad-CAM heatmaps, the reliability diagram and accuracy by distance to the
nearest intersection. A figure whose inputs are missing (no AddressBook, no checkpoint) is skipped.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pandas as pd

from addressclip.atomic import atomic_path
from addressclip.benchmark.options import FEATURED, FIGURE_DIR
from addressclip.eval.evaluate import EvalData
from addressclip.extras import require

EXAMPLES = 6
HEATMAPS = 4
TOP_STREETS = 10


def _pyplot():
    matplotlib = require("matplotlib", "the report's figures")

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    plt = _pyplot()
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)


def _featured(out: Path, results: dict) -> tuple[str, dict, Path] | None:
    methods = results.get("methods", {})
    for name in FEATURED:
        if methods.get(name):
            record = methods[name][0]
            return name, record, out / "methods" / name / f"seed{record.get('seed', 0)}"
    return None


def plot_address_map(data: EvalData, per_address: pd.DataFrame, path: Path, title: str) -> bool:
    if data.book is None:
        return False
    plt = _pyplot()
    from matplotlib import cm, colors

    fig, ax = plt.subplots(figsize=(8, 8))
    for geometry in data.book.table["geometry"]:
        _draw(ax, geometry, color="#cccccc", linewidth=0.6)
    accuracy = dict(zip(per_address["address_id"], per_address["SSA-1"], strict=True))
    norm = colors.Normalize(0, 100)
    cmap = plt.get_cmap("RdYlGn")
    for address_id, geometry in zip(data.book.table["address_id"], data.book.table["geometry"], strict=True):
        value = accuracy.get(address_id)
        if value is not None and np.isfinite(value):
            _draw(ax, geometry, color=cmap(norm(value)), linewidth=2.2)
    fig.colorbar(cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax, shrink=0.7, label="SSA-1 (%) of the address")
    ax.set_aspect("equal")
    ax.set_title(title)
    ax.set_xlabel("UTM easting (m)")
    ax.set_ylabel("UTM northing (m)")
    _save(fig, path)
    return True


def _draw(ax, geometry, **style) -> None:
    parts = list(geometry.geoms) if hasattr(geometry, "geoms") else [geometry]
    for part in parts:
        coords = np.asarray(part.coords)
        if len(coords):
            ax.plot(coords[:, 0], coords[:, 1], solid_capstyle="round", **style)


def embed_2d(features: np.ndarray, seed: int = 0) -> tuple[np.ndarray, str]:
    """t-SNE (scikit-learn) of the features, or PCA when scikit-learn is missing or too few points."""
    if len(features) > 10:
        try:
            from sklearn.manifold import TSNE
        except ImportError:  # pragma: no cover - scikit-learn is installed with the project
            pass
        else:
            perplexity = float(min(30.0, (len(features) - 1) / 3.0))
            tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed)
            return tsne.fit_transform(features.astype(np.float64)), "t-SNE"
    centred = features - features.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    return centred @ vt[:2].T, "PCA"


def plot_feature_map(features: np.ndarray, streets: list[str], path: Path, title: str) -> bool:
    if len(features) < 3:
        return False
    plt = _pyplot()
    points, how = embed_2d(features)
    counts = pd.Series(streets).value_counts()
    top = list(counts.index[:TOP_STREETS])
    fig, ax = plt.subplots(figsize=(8, 7))
    others = np.array([s not in top for s in streets])
    ax.scatter(points[others, 0], points[others, 1], s=6, c="#bbbbbb", label="other streets")
    palette = plt.get_cmap("tab10")
    for i, street in enumerate(top):
        member = np.array([s == street for s in streets])
        ax.scatter(points[member, 0], points[member, 1], s=10, color=palette(i % 10), label=street)
    ax.legend(fontsize=7, loc="best", markerscale=1.5)
    ax.set_title(f"{title} ({how})")
    ax.set_xticks([])
    ax.set_yticks([])
    _save(fig, path)
    return True


def _load_image(data: EvalData, relative: str) -> np.ndarray:
    from PIL import Image

    with Image.open(data.manifest.image_root / relative) as image:
        return np.asarray(image.convert("RGB"))


def example_rows(queries: pd.DataFrame, count: int = EXAMPLES) -> pd.DataFrame:
    """Half correct, half wrong top-1 answers (first ones in manifest order), for a fair picture."""
    right = queries[queries["truth_position"] == 1]
    wrong = queries[queries["truth_position"] != 1]
    half = count // 2
    take_wrong = min(len(wrong), count - min(len(right), half))
    chosen = pd.concat([right.head(count - take_wrong), wrong.head(take_wrong)])
    return chosen.head(count)


def plot_examples(data: EvalData, queries: pd.DataFrame, path: Path, title: str) -> bool:
    chosen = example_rows(queries)
    if chosen.empty:
        return False
    plt = _pyplot()
    addresses = data.vocabulary.addresses
    fig, axes = plt.subplots(
        len(chosen), 2, figsize=(10, 2.6 * len(chosen)), gridspec_kw={"width_ratios": [1, 2]}
    )
    axes = np.atleast_2d(axes)
    for (_, row), (image_ax, text_ax) in zip(chosen.iterrows(), axes, strict=True):
        image_ax.imshow(_load_image(data, row["path"]))
        image_ax.axis("off")
        mark = "correct" if row["truth_position"] == 1 else f"truth at rank {row['truth_position']}"
        lines = [f"truth: {addresses[row['truth']]}  ({mark})", ""]
        for rank, (index, score) in enumerate(zip(row["top5"], row["top5_scores"], strict=True), start=1):
            flag = "  <- truth" if index == row["truth"] else ""
            lines.append(f"{rank}. {textwrap.shorten(addresses[index], 70)}  [{score:.3f}]{flag}")
        text_ax.text(0.0, 0.95, "\n".join(lines), va="top", family="monospace", fontsize=8)
        text_ax.axis("off")
    fig.suptitle(title)
    _save(fig, path)
    return True


def plot_heatmaps(data: EvalData, queries: pd.DataFrame, checkpoint: Path, path: Path) -> bool:
    import torch

    from addressclip.benchmark.gradcam import grad_cam
    from addressclip.model.factory import load_checkpoint

    if not checkpoint.is_file():
        return False
    model = load_checkpoint(checkpoint)
    chosen = example_rows(queries, HEATMAPS)
    if chosen.empty or not hasattr(model.clip.visual, "transformer"):
        return False
    size = int(model.preprocess["image_size"])
    images = data.images(size, str(model.preprocess.get("interpolation", "bicubic"))).take(
        chosen["row"].to_numpy()
    )
    addresses = [data.vocabulary.addresses[i] for i in chosen["predicted"]]
    with torch.no_grad():
        targets = model.encode_text(addresses).float()
    cams = grad_cam(model, images, targets)
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(chosen), figsize=(3.2 * len(chosen), 3.6))
    for ax, image, cam, address in zip(np.atleast_1d(axes), images, cams, addresses, strict=True):
        ax.imshow(image.permute(1, 2, 0).numpy())
        ax.imshow(cam, cmap="jet", alpha=0.45)
        ax.set_title(textwrap.fill(textwrap.shorten(address, 60), 28), fontsize=7)
        ax.axis("off")
    fig.suptitle("Grad-CAM of the top-1 address score")
    _save(fig, path)
    return True


def plot_reliability(calibration: dict, path: Path, title: str) -> bool:
    bins = [b for b in calibration.get("bins", []) if b.get("count")]
    if not bins:
        return False
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 5))
    centres = [(b["low"] + b["high"]) / 2 for b in calibration["bins"]]
    accuracy = [b["accuracy"] if b.get("count") else 0.0 for b in calibration["bins"]]
    width = calibration["bins"][0]["high"] - calibration["bins"][0]["low"]
    ax.bar(centres, accuracy, width=width * 0.95, color="#4477aa", edgecolor="black", label="accuracy")
    ax.plot([0, 1], [0, 1], "--", color="grey", label="perfect calibration")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("top-1 confidence")
    ax.set_ylabel("top-1 accuracy")
    ece = calibration.get("ece")
    ax.set_title(f"{title}\nECE {ece:.2f} points" if ece is not None else title)
    ax.legend(loc="upper left")
    _save(fig, path)
    return True


def plot_intersection(table: list[dict], path: Path, title: str) -> bool:
    rows = [r for r in table if r.get("count")]
    if not rows:
        return False
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.bar([r["bin"] for r in rows], [r["SSA-1"] or 0.0 for r in rows], color="#66aa55")
    for i, r in enumerate(rows):
        ax.text(i, (r["SSA-1"] or 0.0) + 1, f"n={r['count']}", ha="center", fontsize=8)
    ax.set_ylabel("SSA-1 (%)")
    ax.set_xlabel("distance from the query to the nearest intersection")
    ax.set_ylim(0, 105)
    ax.set_title(title)
    _save(fig, path)
    return True


def make_figures(out: Path, results: dict, data: EvalData) -> dict[str, str]:
    """Draw what the inputs allow; returns {title: path relative to `out`}."""
    featured = _featured(out, results)
    if featured is None:
        return {}
    name, record, folder = featured
    label = record.get("label", name)
    figures: dict[str, str] = {}
    folder_out = out / FIGURE_DIR

    def add(title: str, file: str, drawn: bool) -> None:
        if drawn:
            figures[title] = f"{FIGURE_DIR}/{file}"

    queries = pd.read_parquet(folder / "queries.parquet") if (folder / "queries.parquet").is_file() else None
    per_address = (
        pd.read_parquet(folder / "per_address.parquet")
        if (folder / "per_address.parquet").is_file()
        else None
    )
    if per_address is not None:
        add(
            "Per-address accuracy over the street network",
            "address_accuracy_map.png",
            plot_address_map(
                data, per_address, folder_out / "address_accuracy_map.png", f"{label}: SSA-1 per address"
            ),
        )
    features_file = folder / "query_features.npy"
    if features_file.is_file() and queries is not None:
        streets = [data.vocabulary.streets[i] for i in queries["truth"]]
        add(
            "Image features coloured by street",
            "features_by_street.png",
            plot_feature_map(np.load(features_file), streets, folder_out / "features_by_street.png", label),
        )
    if queries is not None:
        add(
            "Example predictions",
            "examples.png",
            plot_examples(data, queries, folder_out / "examples.png", f"{label}: top-5 with scores"),
        )
        checkpoint = record.get("checkpoint")
        if checkpoint:
            add(
                "Grad-CAM heatmaps",
                "gradcam.png",
                plot_heatmaps(data, queries, Path(checkpoint), folder_out / "gradcam.png"),
            )
    metrics = record.get("metrics", {})
    add(
        "Reliability diagram",
        "reliability.png",
        plot_reliability(metrics.get("calibration") or {}, folder_out / "reliability.png", label),
    )
    add(
        "Accuracy vs distance to the nearest intersection",
        "accuracy_vs_intersection.png",
        plot_intersection(
            metrics.get("by_intersection_distance") or [], folder_out / "accuracy_vs_intersection.png", label
        ),
    )
    return figures
