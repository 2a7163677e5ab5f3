"""CoOp and CoCoOp: learned prompt context for the frozen street CLIP (the paper's baselines).

- CoOp (Zhou et al. 2022): n_ctx context vectors shared by all addresses replace the words before
  the address ("x x x x <address>", see `prompts.py`); trained with cross-entropy over the
  candidates on the cached training image features. The prompts do not depend on the image, so the
  gallery is computed once after training, as AddressCLIP's.
- CoCoOp (Zhou et al. 2022b): a small meta-network turns each image feature into a shift added to
  every context vector, so the text side must be re-encoded for every (image, address) pair — the
  cost the latency column shows. `max_queries` may cap the evaluated queries (the report says so).

Both train for a number of optimizer steps with AdamW (the CPU budget; the papers use SGD for
tens of epochs) and a sampled softmax over at most `max_classes` addresses per step.
"""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from addressclip.baselines.base import (
    BaselineSetup,
    MethodOutput,
    endless_batches,
    latency_images,
    measure_latency,
    sample_classes,
)
from addressclip.baselines.prompts import PromptedText, freeze
from addressclip.model.factory import load_checkpoint


def frozen_copy(setup: BaselineSetup):
    """A private, fully frozen copy of the street CLIP (prompt learners hook into it)."""
    return freeze(load_checkpoint(setup.init_path, setup.device))


class MetaNet(nn.Module):
    """CoCoOp's Linear-ReLU-Linear from the image feature to a context shift."""

    def __init__(self, feature_dim: int, width: int) -> None:
        super().__init__()
        hidden = max(8, feature_dim // 16)
        self.net = nn.Sequential(
            nn.Linear(feature_dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, width)
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features)


def run_coop(setup: BaselineSetup, conditional: bool = False) -> MethodOutput:
    name = "cocoop" if conditional else "coop"
    model = frozen_copy(setup)
    device = setup.device
    addresses = list(setup.data.vocabulary.addresses)
    classes = len(addresses)
    text = PromptedText(model, addresses, int(setup.option("n_ctx", 4))).to(device)
    generator = setup.generator()
    torch.manual_seed(setup.seed)
    context = nn.Parameter(text.initial_context(generator).to(device))
    x = torch.from_numpy(setup.features(setup.train_split)).to(device)
    y = torch.from_numpy(setup.labels(setup.train_split))
    meta = MetaNet(x.shape[1], text.width).to(device) if conditional else None
    params = [context, *(meta.parameters() if meta is not None else [])]
    steps = int(setup.option("steps", 200))
    batch_size = int(setup.option("batch_size", 8 if conditional else 32))
    limit = int(setup.option("max_classes", 32 if conditional else 128))
    optimizer = torch.optim.AdamW(params, lr=float(setup.option("lr", 2e-3)), weight_decay=0.0)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, max(1, steps))
    scale = float(model.logit_scale().detach())
    batches = endless_batches(len(x), batch_size, generator)
    started = time.perf_counter()
    for _ in tqdm(range(steps), desc=name, unit="step", disable=not setup.progress, leave=False):
        index = next(batches)
        subset, target = sample_classes(y[index], classes, limit, generator)
        features = x[index.to(device)]
        if meta is None:
            logits = scale * features @ text(context, subset.to(device)).T
        else:
            per_image = context.unsqueeze(0) + meta(features).unsqueeze(1)
            logits = scale * torch.einsum("bd,bcd->bc", features, text(per_image, subset.to(device)))
        loss = F.cross_entropy(logits, target.to(device))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
    seconds = time.perf_counter() - started
    context = context.detach()
    encoder = setup.encoder

    @torch.no_grad()
    def score(features: torch.Tensor) -> torch.Tensor:
        if meta is None:
            return features @ text(context).T
        out = []
        for chunk in features.split(int(setup.option("eval_batch", 4))):
            per_image = context.unsqueeze(0) + meta(chunk).unsqueeze(1)
            out.append(torch.einsum("bd,bcd->bc", chunk, text(per_image)))
        return torch.cat(out)

    rows = setup.eval_rows
    cap = setup.option("max_queries", None)
    subset_rows = None
    if conditional and cap is not None and len(rows) > int(cap):
        keep = np.sort(np.random.default_rng(setup.seed).choice(len(rows), int(cap), replace=False))
        rows = subset_rows = rows[keep]
    queries = torch.from_numpy(encoder.image_features(setup.images(), rows)).to(device)
    if meta is None:
        with torch.no_grad():
            gallery = text(context)  # (C, D): the prompts do not depend on the image
        scores = (queries @ gallery.T).cpu().numpy()
        storage = gallery.numel() * 4 + context.numel() * 4
        note = f"address gallery {classes} x {gallery.shape[1]} float32 + context"

        @torch.no_grad()
        def predict(image: torch.Tensor):
            return (encoder.encode_uint8(image) @ gallery.T).topk(min(5, classes), dim=1).indices
    else:
        scores = np.concatenate(
            [
                score(chunk).cpu().numpy()
                for chunk in tqdm(
                    queries.split(64), desc="cocoop eval", disable=not setup.progress, leave=False
                )
            ]
        )
        storage = context.numel() * 4 + sum(p.numel() for p in meta.parameters()) * 4
        note = "context + meta-net (address text re-encoded for every query)"

        @torch.no_grad()
        def predict(image: torch.Tensor):
            return score(encoder.encode_uint8(image)).topk(min(5, classes), dim=1).indices

    val = {}
    if setup.has_split(setup.val_split) and meta is None:
        val["SSA-1"] = setup.val_accuracy(
            score(torch.from_numpy(setup.features(setup.val_split)).to(device)).cpu().numpy()
        )
    latency_queries = latency_images(setup)[: 4 if conditional else None]
    return MethodOutput(
        scores=scores,
        scale=scale,
        storage_bytes=int(storage),
        storage_note=note,
        latency_ms=measure_latency(predict, latency_queries),
        train_seconds=seconds,
        hyper={"n_ctx": text.n_ctx, "steps": steps, "batch_size": batch_size, "max_classes": limit,
               "optimizer": "AdamW", "queries_evaluated": len(rows)},
        val=val,
        checkpoint=setup.init_path,
        rows=subset_rows,
    )  # fmt: skip


def run_cocoop(setup: BaselineSetup) -> MethodOutput:
    return run_coop(setup, conditional=True)
