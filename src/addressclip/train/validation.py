"""Validation: rank every candidate address for each image, report SSA-k / SA-k."""

from __future__ import annotations

import numpy as np
import torch

from addressclip.data.dataset import AddressDataset, AddressVocabulary
from addressclip.data.transforms import Normalizer
from addressclip.eval.metrics import address_accuracies
from addressclip.model.addressclip import AddressClipModel


@torch.no_grad()
def image_features(
    model: AddressClipModel, dataset: AddressDataset, device: torch.device, batch_size: int = 256
) -> torch.Tensor:
    normalizer = Normalizer(model.preprocess["mean"], model.preprocess["std"])
    chunks = []
    for start in range(0, len(dataset), batch_size):
        batch = dataset.__getitems__(list(range(start, min(start + batch_size, len(dataset)))))
        chunks.append(model.encode_image(normalizer(batch.images, device)).float())
    return torch.cat(chunks) if chunks else torch.empty(0, model.embed_dim, device=device)


@torch.no_grad()
def evaluate_addresses(
    model: AddressClipModel,
    dataset: AddressDataset,
    vocabulary: AddressVocabulary,
    device: torch.device,
    batch_size: int = 256,
    ks: tuple[int, ...] = (1, 5),
) -> dict[str, float]:
    """SSA-k / SA-k (percent) of `dataset` against all candidate addresses of `vocabulary`."""
    was_training = model.training
    model.eval()
    try:
        gallery = model.encode_text_batched(list(vocabulary.addresses)).float()
        queries = image_features(model, dataset, device, batch_size)
        scores = (queries @ gallery.T).cpu()
    finally:
        model.train(was_training)
    return address_accuracies(scores, np.asarray(dataset.labels), vocabulary.street_index(), ks)
