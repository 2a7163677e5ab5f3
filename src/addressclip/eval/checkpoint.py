"""One checkpoint on one manifest split: encode, rank every candidate address, compute every metric.

The path of `addressclip eval`, shared by the multi-city comparison (several checkpoints, several
manifests) so each of them is evaluated exactly as the command does.
"""

from __future__ import annotations

from pathlib import Path

from addressclip.eval.encode import FrozenEncoder
from addressclip.eval.evaluate import EvalData, Evaluation, evaluate_scores
from addressclip.eval.metrics import TiePolicy
from addressclip.eval.store import FeatureStore


def evaluate_checkpoint(
    checkpoint: Path,
    data: EvalData,
    split: str = "test",
    *,
    cache: Path | None = None,
    device: str = "auto",
    ties: TiePolicy = "pessimistic",
    progress: bool = True,
) -> Evaluation:
    """Every metric of `checkpoint` (a model file) on `split` of `data`, candidates = its vocabulary.

    Features are cached in `cache` (default: `<checkpoint dir>/.eval-cache`).
    """
    rows = data.rows(split)
    store = FeatureStore(cache if cache is not None else checkpoint.parent / ".eval-cache")
    encoder = FrozenEncoder.from_checkpoint(checkpoint, store, device, progress=progress)
    gallery = encoder.gallery(list(data.vocabulary.addresses))
    queries = encoder.image_features(data.images(encoder.image_size, encoder.interpolation), rows)
    return evaluate_scores(data, rows, queries @ gallery.T, scale=encoder.logit_scale(), ties=ties)
