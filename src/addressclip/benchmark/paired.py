"""AddressCLIP against the L_address-only fine-tune, paired: the paper's claim (a) with its uncertainty.

Both methods answer the same test queries, so they are compared query by query:
- per seed both ran: the SSA-1 difference and its 95 % bootstrap interval, resampling queries (one
  resample serves both methods, which keeps the pairing);
- across seeds: the mean difference next to each method's seed-to-seed spread;
- per address (SSA-1 averaged over the seeds): how many sub-streets gain, lose or tie, against how
  many training photos they have;
- learning curves: validation SSA-1 after every epoch (from each run's metrics.jsonl).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from addressclip.benchmark.options import method_folder

METHOD = "addressclip"
REFERENCE = "finetune_address"
RESAMPLES = 2000


def _hits(folder: Path) -> pd.Series | None:
    """Top-1 hit (0/1) per test manifest row of one finished run, or None."""
    file = folder / "queries.parquet"
    if not file.is_file():
        return None
    queries = pd.read_parquet(file, columns=["row", "truth_position"])
    return pd.Series(
        (queries["truth_position"].to_numpy() <= 1).astype(float), index=queries["row"].to_numpy()
    )


def _curve(folder: Path) -> list[float]:
    """Validation SSA-1 after each epoch of the run's training (empty when not recorded)."""
    log = folder / "run" / "metrics.jsonl"
    if not log.is_file():
        return []
    curve = []
    for line in log.read_text(encoding="utf-8").splitlines():
        record = json.loads(line) if line.strip() else {}
        if record.get("kind") == "epoch" and (record.get("val") or {}).get("SSA-1") is not None:
            curve.append(float(record["val"]["SSA-1"]))
    return curve


def bootstrap_difference(
    a: np.ndarray, b: np.ndarray, resamples: int = RESAMPLES, seed: int = 0
) -> tuple[float, float]:
    """95 % interval of mean(a) - mean(b) (percent), resampling the paired queries."""
    rng = np.random.default_rng(seed)
    index = rng.integers(0, len(a), size=(resamples, len(a)))
    differences = 100.0 * (a[index].mean(axis=1) - b[index].mean(axis=1))
    low, high = np.percentile(differences, [2.5, 97.5])
    return float(low), float(high)


def paired_comparison(out: Path, frame: pd.DataFrame, seeds: list[int]) -> dict | None:
    """The comparison of OUT's AddressCLIP and L_address-only runs, or None without a common seed.

    `frame` is the evaluation manifest (for each query's address and each address's training photos).
    """
    per_seed = []
    method_hits, reference_hits = [], []
    for seed in seeds:
        a, b = _hits(method_folder(out, METHOD, seed)), _hits(method_folder(out, REFERENCE, seed))
        if a is None or b is None or not a.index.equals(b.index):
            continue
        low, high = bootstrap_difference(a.to_numpy(), b.to_numpy(), seed=seed)
        per_seed.append({
            "seed": seed,
            "addressclip": 100.0 * a.mean(),
            "finetune_address": 100.0 * b.mean(),
            "difference": 100.0 * (a.mean() - b.mean()),
            "ci95": [low, high],
            "only_addressclip_right": int(((a == 1) & (b == 0)).sum()),
            "only_finetune_right": int(((a == 0) & (b == 1)).sum()),
        })  # fmt: skip
        method_hits.append(a)
        reference_hits.append(b)
    if not per_seed:
        return None
    mean_a = pd.concat(method_hits, axis=1).mean(axis=1)
    mean_b = pd.concat(reference_hits, axis=1).mean(axis=1)
    addresses = frame["address_id"].to_numpy()
    by_address = pd.DataFrame(
        {"address_id": addresses[mean_a.index], "a": mean_a.to_numpy(), "b": mean_b.to_numpy()}
    )
    by_address = by_address.groupby("address_id").mean()
    train_photos = frame.loc[frame["split"] == "train", "address_id"].value_counts()
    by_address["train_photos"] = train_photos.reindex(by_address.index).fillna(0).to_numpy()
    delta = 100.0 * (by_address["a"] - by_address["b"])
    bins = min(4, len(by_address))  # quartiles; fewer bins when fewer addresses were tested
    quartiles = pd.qcut(by_address["train_photos"].rank(method="first"), bins, labels=False)
    by_photos = [
        {
            "train_photos": [
                int(by_address["train_photos"][quartiles == q].min()),
                int(by_address["train_photos"][quartiles == q].max()),
            ],
            "addresses": int((quartiles == q).sum()),
            "addressclip": float(100.0 * by_address["a"][quartiles == q].mean()),
            "finetune_address": float(100.0 * by_address["b"][quartiles == q].mean()),
        }
        for q in range(bins)
    ]
    differences = [s["difference"] for s in per_seed]
    a_values = [s["addressclip"] for s in per_seed]
    b_values = [s["finetune_address"] for s in per_seed]
    spread = lambda v: float(np.std(v, ddof=1)) if len(v) > 1 else 0.0  # noqa: E731
    return {
        "seeds": [s["seed"] for s in per_seed],
        "per_seed": per_seed,
        "mean_difference": float(np.mean(differences)),
        "difference_std": spread(differences),
        "seed_spread": {"addressclip": spread(a_values), "finetune_address": spread(b_values)},
        "addresses": {
            "count": len(delta),
            "gain": int((delta > 0).sum()),
            "loss": int((delta < 0).sum()),
            "tie": int((delta == 0).sum()),
            "mean_abs_difference": float(delta.abs().mean()),
        },
        "by_train_photos": by_photos,
        "curves": {
            name: [_curve(method_folder(out, name, s)) for s in [p["seed"] for p in per_seed]]
            for name in (METHOD, REFERENCE)
        },
    }


def paired_markdown(result: dict) -> list[str]:
    """The report section for `paired_comparison`'s result."""
    rows = [
        f"| {s['seed']} | {s['addressclip']:.1f} | {s['finetune_address']:.1f} | {s['difference']:+.1f} "
        f"| [{s['ci95'][0]:+.1f}, {s['ci95'][1]:+.1f}] "
        f"| {s['only_addressclip_right']} / {s['only_finetune_right']} |"
        for s in result["per_seed"]
    ]
    spread = result["seed_spread"]
    counts = result["addresses"]
    lines = [
        "",
        "## AddressCLIP vs the L_address-only fine-tune (paired)",
        "",
        "Test SSA-1 of the two on the same queries; the interval resamples queries (95 %, "
        f"{RESAMPLES} resamples); the last column counts queries only one of the two gets right.",
        "",
        "| seed | AddressCLIP | L_address only | difference | 95 % interval "
        "| only AddressCLIP / only fine-tune right |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
        f"Mean difference over {len(rows)} seed(s): {result['mean_difference']:+.2f} SSA-1 "
        f"(std {result['difference_std']:.2f}); seed-to-seed spread: AddressCLIP "
        f"{spread['addressclip']:.2f}, fine-tune {spread['finetune_address']:.2f}.",
        f"Per address (SSA-1 averaged over the seeds): {counts['gain']} of {counts['count']} sub-streets "
        f"gain, {counts['loss']} lose, {counts['tie']} tie; mean absolute per-address difference "
        f"{counts['mean_abs_difference']:.1f} points.",
        "",
        "| training photos per address | addresses | AddressCLIP SSA-1 | L_address only SSA-1 |",
        "|---|---|---|---|",
        *(
            f"| {q['train_photos'][0]}–{q['train_photos'][1]} | {q['addresses']} | {q['addressclip']:.1f} "
            f"| {q['finetune_address']:.1f} |"
            for q in result["by_train_photos"]
        ),
    ]
    curves = result.get("curves") or {}
    if any(curves.get(METHOD) or []) and any(curves.get(REFERENCE) or []):
        for name, label in ((METHOD, "AddressCLIP"), (REFERENCE, "L_address only")):
            runs = [c for c in curves[name] if c]
            length = min(len(c) for c in runs)
            mean = np.mean([c[:length] for c in runs], axis=0)
            lines.append(f"\nValidation SSA-1 by epoch, {label} (mean of {len(runs)}): "
                         + ", ".join(f"{v:.1f}" for v in mean))  # fmt: skip
    return lines
