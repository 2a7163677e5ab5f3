"""What one `addressclip benchmark` invocation is asked to do, and where its outputs sit in OUT.

Layout of OUT: `methods/NAME/seedN/` (one finished method run: result.json, queries.parquet,
per_address.parquet, query_features.npy), `ablations/SLUG/seedN/`, `features/` (the shared feature
store), `results.json`, `report.md`, `figures/*.png`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

SUITES: tuple[str, ...] = ("main", "ablation", "demo", "routes")
DEMO_METHODS: tuple[str, ...] = (
    "chance", "majority", "pixel_nn", "zeroshot", "linear_probe", "clip_adapter", "tip_adapter",
    "tip_adapter_f", "coop", "retrieval", "addressclip",
)  # fmt: skip
# Shorter fitting for the demo's CPU budget (the main suite uses the methods' defaults).
DEMO_OPTIONS: dict[str, dict[str, object]] = {
    "linear_probe": {"c_grid": (0.1, 1.0, 10.0), "max_iter": 100},
    "coop": {"steps": 30, "max_classes": 32},
    "clip_adapter": {"epochs": 10},
    "tip_adapter_f": {"epochs": 3},
}
RESULT_FILE = "result.json"

FIGURE_DIR = "figures"
# The method whose diagnostics (map, t-SNE, examples, heatmaps) the report shows, first found.
FEATURED: tuple[str, ...] = ("addressclip", "finetune_address", "zeroshot")


@dataclass
class BenchmarkOptions:
    suite: str
    data: Path
    out: Path
    preset: str = "cpu"
    overrides: tuple[str, ...] = ()
    init: Path | None = None
    model: Path | None = None
    seeds: int | None = None
    methods: tuple[str, ...] | None = None
    device: str = "auto"
    eval_split: str = "test"
    progress: bool = True
    figures: bool = True
    ablation_groups: tuple[str, ...] | None = None  # e.g. ('loss', 'coverage'); None = all
    # torch CPU threads; None = torch's default, except the demo suite: 1 (measured: 2:33 min instead
    # of 6:51 on the 2-core machine while other processes ran, see the report of issue 5)
    threads: int | None = None
    command: str = ""
    options: dict[str, dict[str, object]] = field(default_factory=dict)


def method_folder(out: Path, name: str, seed: int = 0) -> Path:
    return out / "methods" / name / f"seed{seed}"


def load_queries(out: Path, name: str, seed: int = 0) -> pd.DataFrame | None:
    file = method_folder(out, name, seed) / "queries.parquet"
    return pd.read_parquet(file) if file.is_file() else None
