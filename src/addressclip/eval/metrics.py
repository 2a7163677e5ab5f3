"""The paper's accuracies: SSA-k (sub-street, i.e. the exact address class, in the top k) and SA-k
(a top-k prediction on the true street)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch


def address_accuracies(
    scores: torch.Tensor | np.ndarray,
    true_index: Sequence[int] | np.ndarray,
    candidate_street: Sequence[int] | np.ndarray,
    ks: Sequence[int] = (1, 5),
) -> dict[str, float]:
    """{'SSA-1': .., 'SA-1': .., 'SSA-5': .., 'SA-5': ..} in percent.

    scores: (N, C) similarity of each query to each candidate address; true_index: (N,) candidate
    index of the ground truth; candidate_street: (C,) street index of each candidate.
    """
    scores = torch.as_tensor(scores)
    truth = torch.as_tensor(np.asarray(true_index), dtype=torch.long)
    streets = torch.as_tensor(np.asarray(candidate_street), dtype=torch.long)
    result: dict[str, float] = {}
    if scores.shape[0] == 0:
        return {f"{name}-{k}": float("nan") for k in ks for name in ("SSA", "SA")}
    top = scores.topk(min(max(ks), scores.shape[1]), dim=1).indices
    true_street = streets[truth]
    for k in ks:
        top_k = top[:, :k]
        result[f"SSA-{k}"] = 100.0 * (top_k == truth[:, None]).any(dim=1).float().mean().item()
        result[f"SA-{k}"] = 100.0 * (streets[top_k] == true_street[:, None]).any(dim=1).float().mean().item()
    return result


# --------------------------------------------------------------------------------------------------
# Rank-based accuracies with an explicit rule for ties, calibration and per-class breakdowns.
#
# `address_accuracies` above ranks with `torch.topk`, whose order among equal scores is unspecified.
# The benchmark needs a rule that cannot flatter a method: with `ties="pessimistic"` a candidate tied
# with the truth is ranked before it (a model that gives every address the same score scores 0, not
# 100). `ties="stable"` ranks equal scores by candidate index (what a sorted prediction list shows).

TiePolicy = Literal["pessimistic", "stable"]
ROW_CHUNK = 2048


def _as_scores(scores: torch.Tensor | np.ndarray) -> np.ndarray:
    """float64 (N, C) with NaN read as -inf (a NaN score never wins)."""
    if isinstance(scores, torch.Tensor):
        scores = scores.detach().cpu().numpy()
    array = np.asarray(scores, dtype=np.float64)
    if array.ndim != 2:
        raise ValueError(f"scores must be (queries, candidates), got shape {array.shape}")
    return np.where(np.isnan(array), -np.inf, array)


def truth_positions(
    scores: torch.Tensor | np.ndarray, true_index: Sequence[int] | np.ndarray, ties: TiePolicy = "pessimistic"
) -> np.ndarray:
    """1-based rank of the true candidate in each row (1 = top-1): the street rank with every
    candidate on a street of its own."""
    array = _as_scores(scores)
    return street_positions(array, true_index, np.arange(array.shape[1]), ties)


def street_positions(
    scores: torch.Tensor | np.ndarray,
    true_index: Sequence[int] | np.ndarray,
    candidate_street: Sequence[int] | np.ndarray,
    ties: TiePolicy = "pessimistic",
) -> np.ndarray:
    """1-based rank of the first candidate on the true street (SA-k hits when it is <= k)."""
    array = _as_scores(scores)
    truth = np.asarray(true_index, dtype=np.int64)
    streets = np.asarray(candidate_street, dtype=np.int64)
    out = np.empty(len(truth), dtype=np.int64)
    columns = np.arange(array.shape[1])
    for start in range(0, len(truth), ROW_CHUNK):
        block = array[start : start + ROW_CHUNK]
        t = truth[start : start + ROW_CHUNK]
        on_street = streets[None, :] == streets[t][:, None]
        best = np.where(on_street, block, -np.inf).max(axis=1)[:, None]
        greater = (block > best).sum(axis=1)
        tied = block == best
        if ties == "pessimistic":
            before = (tied & ~on_street).sum(axis=1)
        else:
            first = np.where(tied & on_street, columns[None, :], array.shape[1]).min(axis=1)
            before = (tied & (columns[None, :] < first[:, None])).sum(axis=1)
        out[start : start + ROW_CHUNK] = greater + before + 1
    return out


def ranked_accuracies(
    scores: torch.Tensor | np.ndarray,
    true_index: Sequence[int] | np.ndarray,
    candidate_street: Sequence[int] | np.ndarray,
    ks: Sequence[int] = (1, 5),
    ties: TiePolicy = "pessimistic",
) -> dict[str, float]:
    """SSA-k and SA-k in percent, as `address_accuracies`, with the tie rule made explicit.

    k larger than the number of candidates means "all of them" (100 %).
    """
    truth = np.asarray(true_index, dtype=np.int64)
    if len(truth) == 0:
        return {f"{name}-{k}": float("nan") for k in ks for name in ("SSA", "SA")}
    sub = truth_positions(scores, truth, ties)
    street = street_positions(scores, truth, candidate_street, ties)
    result: dict[str, float] = {}
    for k in ks:
        result[f"SSA-{k}"] = 100.0 * float(np.mean(sub <= k))
        result[f"SA-{k}"] = 100.0 * float(np.mean(street <= k))
    return result


def top_k(scores: torch.Tensor | np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(indices, scores) of the k best candidates per row, best first, equal scores by index."""
    array = _as_scores(scores)
    k = min(k, array.shape[1])
    order = np.argsort(-array, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(array, order, axis=1)


def chance_accuracies(
    true_index: Sequence[int] | np.ndarray,
    candidate_street: Sequence[int] | np.ndarray,
    ks: Sequence[int] = (1, 5),
) -> dict[str, float]:
    """Expected SSA-k / SA-k (percent) of a uniformly random ranking of the C candidates.

    SSA-k = min(k, C) / C; SA-k = 1 - P(none of k random draws without replacement is on the true
    street) = 1 - comb(C - s, k) / comb(C, k), s = candidates on that street.
    """
    truth = np.asarray(true_index, dtype=np.int64)
    streets = np.asarray(candidate_street, dtype=np.int64)
    total = len(streets)
    per_street = np.bincount(streets)[streets[truth]]
    result: dict[str, float] = {}
    for k in ks:
        kk = min(k, total)
        result[f"SSA-{k}"] = 100.0 * kk / total if len(truth) else float("nan")
        miss = np.array([math.comb(total - s, kk) / math.comb(total, kk) for s in per_street])
        result[f"SA-{k}"] = 100.0 * float(np.mean(1.0 - miss)) if len(truth) else float("nan")
    return result


def softmax_confidence(scores: torch.Tensor | np.ndarray, scale: float = 1.0) -> np.ndarray:
    """Top-1 probability of softmax(scale * scores) per row (the score a predictor would show)."""
    array = _as_scores(scores) * float(scale)
    top = array.max(axis=1, keepdims=True)
    if not np.isfinite(top).all():  # a row of -inf only: no information, uniform
        top = np.where(np.isfinite(top), top, 0.0)
        array = np.where(np.isfinite(array).any(axis=1, keepdims=True), array, 0.0)
    weights = np.exp(array - top)
    return weights.max(axis=1) / weights.sum(axis=1)


def calibration(confidence: np.ndarray, correct: np.ndarray, bins: int = 10) -> dict[str, object]:
    """Reliability table and expected calibration error (ECE, percent points) of top-1 confidences.

    Equal-width bins over [0, 1] (1.0 falls in the last bin); ECE = sum_b n_b / N * |acc_b - conf_b|.
    """
    confidence = np.asarray(confidence, dtype=np.float64)
    correct = np.asarray(correct, dtype=bool)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=False), 0, bins - 1)
    table = []
    ece = 0.0
    for b in range(bins):
        member = which == b
        count = int(member.sum())
        accuracy = float(correct[member].mean()) if count else float("nan")
        mean_conf = float(confidence[member].mean()) if count else float("nan")
        if count:
            ece += count / len(confidence) * abs(accuracy - mean_conf)
        table.append(
            {"low": float(edges[b]), "high": float(edges[b + 1]), "count": count,
             "accuracy": accuracy, "confidence": mean_conf}
        )  # fmt: skip
    return {"ece": 100.0 * ece if len(confidence) else float("nan"), "bins": table}


def per_class_accuracy(
    true_index: np.ndarray, hit: np.ndarray, classes: int
) -> tuple[np.ndarray, np.ndarray]:
    """(count, accuracy in percent) per class; accuracy NaN for classes without queries."""
    truth = np.asarray(true_index, dtype=np.int64)
    count = np.bincount(truth, minlength=classes)
    hits = np.bincount(truth, weights=np.asarray(hit, dtype=np.float64), minlength=classes)
    with np.errstate(invalid="ignore", divide="ignore"):
        accuracy = np.where(count > 0, 100.0 * hits / np.maximum(count, 1), np.nan)
    return count, accuracy
