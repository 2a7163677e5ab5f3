"""The registry of methods that `addressclip baseline NAME`, the benchmark and the CLI's name list read.

Each entry names the function that runs the method as 'module:function' and is imported only when
the method runs, so listing the names needs no torch. A new baseline is one file with a
`run_x(setup) -> MethodOutput` function (see `base.py`) and one line here; `tests/test_baselines_registry.py`
runs every entry on the toy world.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from addressclip.baselines.base import BaselineSetup, MethodOutput


@dataclass(frozen=True)
class Baseline:
    name: str
    label: str  # the row name in the report
    target: str  # 'module:function' (module under addressclip.baselines) that runs the method
    trains: bool  # learns something (reported as mean +- std over seeds)
    group: str  # 'reference' | 'paper' | 'field' | 'retrieval' | 'ours'
    keywords: tuple[tuple[str, Any], ...] = ()  # fixed keyword arguments of the function

    def run(self, setup: BaselineSetup) -> MethodOutput:
        module, function = self.target.split(":")
        runner = getattr(importlib.import_module(f"addressclip.baselines.{module}"), function)
        return runner(setup, **dict(self.keywords))


BASELINES: dict[str, Baseline] = {
    b.name: b
    for b in (
        Baseline("chance", "Chance (uniform ranking)", "references:run_chance", False, "reference"),
        Baseline("majority", "Majority address", "references:run_majority", False, "reference"),
        Baseline("pixel_nn", "Raw-pixel nearest neighbour", "references:run_pixel_nn", False, "reference"),
        Baseline("zeroshot", "Zero-shot street CLIP", "zeroshot:run_zeroshot", False, "paper"),
        Baseline("finetune_address", "CLIP fine-tuned, L_address only", "finetune:run_finetune_address",
                 True, "paper"),
        Baseline("coop", "CoOp", "coop:run_coop", True, "paper"),
        Baseline("cocoop", "CoCoOp", "coop:run_cocoop", True, "paper"),
        Baseline("maple", "MaPLe", "maple:run_maple", True, "paper"),
        Baseline("linear_probe", "Linear probe", "linear_probe:run_linear_probe", True, "field"),
        Baseline("clip_adapter", "CLIP-Adapter", "adapters:run_clip_adapter", True, "field"),
        Baseline("tip_adapter", "Tip-Adapter", "adapters:run_tip_adapter", False, "field"),
        Baseline("tip_adapter_f", "Tip-Adapter-F", "adapters:run_tip_adapter_f", True, "field"),
        Baseline("retrieval", "Image→GPS→Address (CLIP features)", "retrieval:run_retrieval", False,
                 "retrieval",
                 (("descriptor", "clip"),)),
        Baseline("retrieval_vlad", "Image→GPS→Address (VLAD)", "retrieval:run_retrieval", False, "retrieval",
                 (("descriptor", "vlad"),)),
        Baseline("addressclip", "AddressCLIP (ours)", "finetune:run_addressclip", True, "ours"),
    )
}  # fmt: skip
BASELINE_NAMES: tuple[str, ...] = tuple(BASELINES)

__all__ = ["BASELINES", "BASELINE_NAMES", "Baseline"]
