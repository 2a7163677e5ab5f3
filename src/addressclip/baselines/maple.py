"""MaPLe (Khattak et al. 2023): multi-modal prompt learning, the paper's strongest prompt baseline.

Learned prompts enter the first `depth` layers of the text tower (as in CoOp at layer 0, replaced at
each deeper layer), and each layer's visual prompts are a linear projection of its text prompts
(the coupling function), appended to the ViT's tokens (see `prompts.visual_prompts`). Both towers
stay frozen; only the prompts and the couplers learn. Because the image side changes, images go
through the ViT at every step (no feature cache), but the text prompts do not depend on the image,
so the address gallery is computed once after training.
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
from addressclip.baselines.coop import frozen_copy
from addressclip.baselines.prompts import PromptedText, text_layers, vision_blocks, visual_prompts
from addressclip.data.transforms import Normalizer


class MaplePrompts(nn.Module):
    def __init__(self, text: PromptedText, vision_width: int, depth: int, generator: torch.Generator) -> None:
        super().__init__()
        first = text.initial_context(generator)
        deeper = [torch.randn(text.n_ctx, text.width, generator=generator) * 0.02 for _ in range(depth - 1)]
        self.text = nn.ParameterList([nn.Parameter(p) for p in [first, *deeper]])
        self.couplers = nn.ModuleList([nn.Linear(text.width, vision_width) for _ in range(depth)])

    def visual(self) -> list[torch.Tensor]:
        return [coupler(prompt) for coupler, prompt in zip(self.couplers, self.text, strict=True)]


def run_maple(setup: BaselineSetup) -> MethodOutput:
    model = frozen_copy(setup)
    device = setup.device
    addresses = list(setup.data.vocabulary.addresses)
    classes = len(addresses)
    text = PromptedText(model, addresses, int(setup.option("n_ctx", 2))).to(device)
    layers = min(len(text_layers(model)), len(vision_blocks(model)))
    depth = max(1, min(int(setup.option("depth", 3)), layers))
    generator = setup.generator()
    torch.manual_seed(setup.seed)
    vision_width = int(model.clip.visual.conv1.out_channels)
    prompts = MaplePrompts(text, vision_width, depth, generator).to(device)
    normalizer = Normalizer(model.preprocess["mean"], model.preprocess["std"])
    images = setup.data.images(
        int(model.preprocess["image_size"]), str(model.preprocess.get("interpolation", "bicubic"))
    )
    train_rows = setup.rows(setup.train_split)
    y = torch.from_numpy(setup.labels(setup.train_split))
    steps = int(setup.option("steps", 200))
    batch_size = int(setup.option("batch_size", 32))
    limit = int(setup.option("max_classes", 128))
    optimizer = torch.optim.AdamW(prompts.parameters(), lr=float(setup.option("lr", 2e-3)), weight_decay=0.0)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, max(1, steps))
    scale = float(model.logit_scale().detach())
    batches = endless_batches(len(train_rows), batch_size, generator)

    def encode(pixels: torch.Tensor) -> torch.Tensor:
        with visual_prompts(model, prompts.visual()):
            return F.normalize(model.encode_image(normalizer(pixels, device)).float(), dim=-1)

    started = time.perf_counter()
    for _ in tqdm(range(steps), desc="maple", unit="step", disable=not setup.progress, leave=False):
        index = next(batches)
        subset, target = sample_classes(y[index], classes, limit, generator)
        features = encode(images.take(train_rows[index.numpy()]))
        addresses_features = text(prompts.text[0], subset.to(device), deep=list(prompts.text[1:]))
        loss = F.cross_entropy(scale * features @ addresses_features.T, target.to(device))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
    seconds = time.perf_counter() - started
    prompts.eval()

    @torch.no_grad()
    def features_of(rows: np.ndarray) -> torch.Tensor:
        return torch.cat([encode(images.take(rows[i : i + 256])) for i in range(0, len(rows), 256)])

    with torch.no_grad():
        gallery = text(prompts.text[0], deep=list(prompts.text[1:]))
    queries = features_of(setup.eval_rows)
    val = {}
    if setup.has_split(setup.val_split):
        val["SSA-1"] = setup.val_accuracy(
            (features_of(setup.rows(setup.val_split)) @ gallery.T).cpu().numpy()
        )

    @torch.no_grad()
    def predict(image: torch.Tensor):
        return (encode(image) @ gallery.T).topk(min(5, classes), dim=1).indices

    prompt_params = sum(p.numel() for p in prompts.parameters())
    return MethodOutput(
        scores=(queries @ gallery.T).cpu().numpy(),
        scale=scale,
        storage_bytes=int(gallery.numel() * 4 + prompt_params * 4),
        storage_note=f"address gallery + prompts/couplers ({prompt_params} parameters)",
        latency_ms=measure_latency(predict, latency_images(setup)),
        train_seconds=seconds,
        hyper={"n_ctx": text.n_ctx, "depth": depth, "steps": steps, "batch_size": batch_size,
               "max_classes": limit, "optimizer": "AdamW"},
        val=val,
        query_features=queries.cpu().numpy(),
        checkpoint=setup.init_path,
    )  # fmt: skip
