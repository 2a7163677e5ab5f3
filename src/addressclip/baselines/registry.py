"""The registry of baselines that `addressclip baseline NAME` and the benchmark read; each entry
names the function that runs the method (see `base.py` for what it receives and returns)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from addressclip.baselines import BASELINE_NAMES
from addressclip.baselines.adapters import run_clip_adapter, run_tip_adapter, run_tip_adapter_f
from addressclip.baselines.base import BaselineSetup, MethodOutput
from addressclip.baselines.coop import run_cocoop, run_coop
from addressclip.baselines.finetune import run_addressclip, run_finetune_address
from addressclip.baselines.linear_probe import run_linear_probe
from addressclip.baselines.maple import run_maple
from addressclip.baselines.references import run_chance, run_majority, run_pixel_nn
from addressclip.baselines.retrieval import run_retrieval
from addressclip.baselines.zeroshot import run_zeroshot


@dataclass(frozen=True)
class Baseline:
    name: str
    label: str  # the row name in the report
    run: Callable[[BaselineSetup], MethodOutput]
    trains: bool  # learns something (reported as mean +- std over seeds)
    group: str  # 'reference' | 'paper' | 'field' | 'retrieval' | 'ours'


_clip_retrieval = partial(run_retrieval, descriptor="clip")
_vlad_retrieval = partial(run_retrieval, descriptor="vlad")

BASELINES: dict[str, Baseline] = {
    b.name: b
    for b in (
        Baseline("chance", "Chance (uniform ranking)", run_chance, False, "reference"),
        Baseline("majority", "Majority address", run_majority, False, "reference"),
        Baseline("pixel_nn", "Raw-pixel nearest neighbour", run_pixel_nn, False, "reference"),
        Baseline("zeroshot", "Zero-shot street CLIP", run_zeroshot, False, "paper"),
        Baseline("finetune_address", "CLIP fine-tuned, L_address only", run_finetune_address, True, "paper"),
        Baseline("coop", "CoOp", run_coop, True, "paper"),
        Baseline("cocoop", "CoCoOp", run_cocoop, True, "paper"),
        Baseline("maple", "MaPLe", run_maple, True, "paper"),
        Baseline("linear_probe", "Linear probe", run_linear_probe, True, "field"),
        Baseline("clip_adapter", "CLIP-Adapter", run_clip_adapter, True, "field"),
        Baseline("tip_adapter", "Tip-Adapter", run_tip_adapter, False, "field"),
        Baseline("tip_adapter_f", "Tip-Adapter-F", run_tip_adapter_f, True, "field"),
        Baseline("retrieval", "Image→GPS→Address (CLIP features)", _clip_retrieval, False, "retrieval"),
        Baseline("retrieval_vlad", "Image→GPS→Address (VLAD)", _vlad_retrieval, False, "retrieval"),
        Baseline("addressclip", "AddressCLIP (ours)", run_addressclip, True, "ours"),
    )
}  # fmt: skip

assert tuple(BASELINES) == BASELINE_NAMES, "keep addressclip.baselines.BASELINE_NAMES in step"

__all__ = ["BASELINES", "Baseline", "BaselineSetup", "MethodOutput"]
