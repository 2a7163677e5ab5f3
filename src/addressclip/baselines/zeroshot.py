"""Scoring with a checkpoint as it is: image embedding against the address gallery (cosine).

Zero-shot CLIP is this with the pretrained street CLIP (it never saw an address string); AddressCLIP
and the L_address-only fine-tune are this with their trained checkpoints. The prompt template is
configurable (`template`, default the bare address, which is what AddressCLIP trains on).
"""

from __future__ import annotations

from pathlib import Path

from addressclip.baselines.base import (
    BaselineSetup,
    MethodOutput,
    gallery_predictor,
    latency_images,
    measure_latency,
)
from addressclip.eval.encode import FrozenEncoder

DEFAULT_TEMPLATE = "{address}"


def score_checkpoint(
    setup: BaselineSetup,
    encoder: FrozenEncoder,
    template: str = DEFAULT_TEMPLATE,
    checkpoint: Path | None = None,
) -> MethodOutput:
    texts = [template.format(address=a) for a in setup.data.vocabulary.addresses]
    gallery = encoder.gallery(texts)
    images = setup.data.images(encoder.image_size, encoder.interpolation)
    queries = encoder.image_features(images, setup.eval_rows)
    val = {}
    if setup.has_split(setup.val_split):
        val_features = encoder.image_features(images, setup.rows(setup.val_split))
        val["SSA-1"] = setup.val_accuracy(val_features @ gallery.T)
    latency = measure_latency(gallery_predictor(setup, gallery, encoder), latency_images(setup, encoder))
    return MethodOutput(
        scores=queries @ gallery.T,
        scale=encoder.logit_scale(),
        storage_bytes=int(gallery.nbytes),
        storage_note=f"address gallery {gallery.shape[0]} x {gallery.shape[1]} float32",
        latency_ms=latency,
        hyper={"template": template},
        val=val,
        query_features=queries,
        checkpoint=checkpoint,
    )


def run_zeroshot(setup: BaselineSetup) -> MethodOutput:
    template = str(setup.option("template", DEFAULT_TEMPLATE))
    return score_checkpoint(setup, setup.encoder, template, setup.init_path)
