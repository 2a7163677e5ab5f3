"""The paper's baselines and the references around them (zero-shot, L_address-only fine-tune, CoOp,
CoCoOp, MaPLe, linear probe, CLIP-Adapter, Tip-Adapter(-F), Image->GPS->Address retrieval, chance,
majority, raw-pixel NN), all on one feature store and one evaluation path.

This module stays light (no torch import), so the CLI can list the names; the registry with the
functions is `addressclip.baselines.registry.BASELINES`.
"""

from __future__ import annotations

BASELINE_NAMES: tuple[str, ...] = (
    "chance", "majority", "pixel_nn", "zeroshot", "finetune_address", "coop", "cocoop", "maple",
    "linear_probe", "clip_adapter", "tip_adapter", "tip_adapter_f", "retrieval", "retrieval_vlad",
    "addressclip",
)  # fmt: skip
