"""`addressclip benchmark`: the paper's tables on a manifest — main comparison, ablations, demo.

Suites:
- `main`: every baseline of `addressclip.baselines.BASELINES` (references, the paper's baselines, the
  field's, Image->GPS->Address, AddressCLIP); methods that train run over `seeds` seeds (default 3).
- `ablation`: the paper's loss table, caption text, L_geo form, plain vs multi-positive targets,
  freezing, and data coverage (12.5 / 25 / 50 / 100 % of training capture locations).
- `demo`: a reduced main table that fits `make demo`'s budget on a CPU (one seed, shorter fitting,
  no CoCoOp / MaPLe / L_address-only fine-tune / VLAD retrieval; AddressCLIP from `--model` when
  given).

Every method starts from the same street CLIP (`--init`, else `addressclip pretrain`'s cached run for
the same config), shares one feature store and one evaluation path. Each finished method run is
kept under `OUT/methods/...` with the key of its inputs, so a rerun only computes what is missing;
`report.md`, `results.json` and the figures are rewritten from all finished runs at the end.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from addressclip.atomic import write_text_atomic
from addressclip.baselines.base import BaselineSetup
from addressclip.baselines.finetune import ADDRESS_ONLY, run_trained
from addressclip.baselines.registry import BASELINES
from addressclip.baselines.runner import MethodResult, run_method
from addressclip.errors import AddressclipError, ConfigError
from addressclip.eval.encode import FrozenEncoder
from addressclip.eval.evaluate import EvalData
from addressclip.eval.store import FeatureStore, file_digest

SUITES: tuple[str, ...] = ("main", "ablation", "demo")
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


@dataclass(frozen=True)
class AblationRow:
    group: str
    label: str
    overrides: tuple[str, ...] = ()
    coverage: float = 1.0  # share of training capture locations kept


FULL = "all three (default)"
ABLATION_TITLES: dict[str, str] = {
    "loss": "Losses (the paper's loss table)",
    "caption": "Caption text for L_caption",
    "geo": "L_geo form",
    "targets": "Contrastive targets",
    "freezing": "Which towers learn",
    "coverage": "Data coverage (training capture locations kept per address)",
}
ABLATIONS: tuple[AblationRow, ...] = (
    AblationRow("loss", "L_address only", ("loss.beta=0", "loss.gamma=0")),
    AblationRow("loss", "L_caption only", ("loss.alpha=0", "loss.gamma=0")),
    AblationRow("loss", "L_address + L_caption", ("loss.gamma=0",)),
    AblationRow("loss", "L_address + L_geo", ("loss.beta=0",)),
    AblationRow("loss", FULL),
    AblationRow("caption", "caption alone", ("loss.caption_template={caption}",)),
    AblationRow("caption", "caption + address (default)"),
    AblationRow("geo", "literal (cos vs distance)", ("loss.geo=literal",)),
    AblationRow("geo", "distance (default)"),
    AblationRow("targets", "plain (default)"),
    AblationRow("targets", "multi-positive", ("loss.targets=multi_positive",)),
    AblationRow("freezing", "image tower frozen (text learns)", ("model.trainable=text",)),
    AblationRow("freezing", "text tower frozen (image learns)", ("model.trainable=image",)),
    AblationRow("freezing", "both towers learn", ("model.trainable=both",)),
    AblationRow("coverage", "12.5 % of locations", (), 0.125),
    AblationRow("coverage", "25 % of locations", (), 0.25),
    AblationRow("coverage", "50 % of locations", (), 0.5),
    AblationRow("coverage", "100 % of locations"),
)


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


def _slug(text: str) -> str:
    keep = "".join(c if c.isalnum() else "-" for c in text.lower())
    return "-".join(p for p in keep.split("-") if p)[:60] or "default"


def _jsonable(value):
    """NaN/inf -> None, numpy scalars -> Python, so results.json is strict JSON."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def write_json(path: Path, value) -> None:
    write_text_atomic(path, json.dumps(_jsonable(value), indent=2, ensure_ascii=False) + "\n")


# --------------------------------------------------------------------------------------------------
# one method run, cached on disk


def _run_key(options: BenchmarkOptions, init: Path, name: str, seed: int, extra: dict) -> str:
    parts = {
        "init": file_digest(init),
        "data": file_digest(options.data),
        "preset": options.preset,
        "overrides": list(options.overrides),
        "name": name,
        "seed": seed,
        "split": options.eval_split,
        **extra,
    }
    return json.dumps(parts, sort_keys=True, default=str)


def _save_run(folder: Path, key: str, result: MethodResult) -> dict:
    record = result.record()
    record["key"] = key
    result.evaluation.queries.to_parquet(folder / "queries.parquet")
    result.evaluation.per_address.to_parquet(folder / "per_address.parquet")
    if result.output.query_features is not None:
        np.save(folder / "query_features.npy", result.output.query_features.astype(np.float32))
    write_json(folder / RESULT_FILE, record)
    return _jsonable(record)


def _load_run(folder: Path, key: str) -> dict | None:
    file = folder / RESULT_FILE
    if not file.is_file():
        return None
    try:
        record = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if record.get("key") == key else None


@dataclass
class Bench:
    """The shared state of one benchmark invocation."""

    options: BenchmarkOptions
    data: EvalData
    encoder: FrozenEncoder
    init: Path
    log: list[str] = field(default_factory=list)

    def setup(self, folder: Path, seed: int, options: dict[str, object]) -> BaselineSetup:
        return BaselineSetup(
            data=self.data,
            encoder=self.encoder,
            init_path=self.init,
            out=folder,
            preset=self.options.preset,
            overrides=self.options.overrides,
            seed=seed,
            eval_split=self.options.eval_split,
            progress=self.options.progress,
            options=options,
        )

    def run(
        self, name: str, folder: Path, seed: int, options: dict[str, object], runner=None, extra=None
    ) -> dict:
        key = _run_key(self.options, self.init, name, seed, {"options": options, **(extra or {})})
        cached = _load_run(folder, key)
        if cached is not None:
            self.log.append(f"{name} seed {seed}: reused {folder}")
            return cached
        started = time.perf_counter()
        result = run_method(name, self.setup(folder, seed, options), runner)
        record = _save_run(folder, key, result)
        self.log.append(f"{name} seed {seed}: {time.perf_counter() - started:.1f} s")
        return record


def _seeds_for(options: BenchmarkOptions, trains: bool) -> list[int]:
    default = 3 if options.suite == "main" else 1
    count = options.seeds if options.seeds is not None else default
    return list(range(count)) if trains else [0]


def run_main(bench: Bench, methods: Sequence[str]) -> dict[str, list[dict]]:
    opts = bench.options
    results: dict[str, list[dict]] = {}
    for name in methods:
        spec = BASELINES[name]
        method_options = dict(DEMO_OPTIONS.get(name, {})) if opts.suite == "demo" else {}
        method_options.update(opts.options.get(name, {}))
        seeds = _seeds_for(opts, spec.trains)
        extra = {}
        if name == "addressclip" and opts.model is not None:
            method_options["model"] = str(opts.model)
            extra["model_digest"] = file_digest(opts.model)
            seeds = [0]
        records = []
        for seed in seeds:
            folder = opts.out / "methods" / name / f"seed{seed}"
            print(f"[benchmark] {spec.label} (seed {seed})", flush=True)
            records.append(bench.run(name, folder, seed, method_options, extra=extra))
        results[name] = records
    return results


def coverage_manifest(data: EvalData, share: float, seed: int, out: Path) -> Path:
    """A copy of the manifest keeping `share` of each address's training capture locations (>= 1)."""
    from addressclip.data.manifest import write_manifest

    frame = data.frame
    train = frame[frame["split"] == "train"]
    rng = np.random.default_rng(seed)
    kept: set[str] = set()
    for _, group in train.groupby("address_id", sort=True):
        locations = np.array(sorted(group["location_id"].unique()))
        count = max(1, math.ceil(share * len(locations)))
        kept.update(rng.choice(locations, size=count, replace=False).tolist())
    keep = (frame["split"] != "train") | frame["location_id"].isin(kept)
    target = out / f"manifest-{data.digest[:10]}-{round(share * 1000):04d}-seed{seed}.parquet"
    if not target.is_file():
        write_manifest(frame[keep].reset_index(drop=True), target, data.manifest.image_root,
                       data.manifest.addressbook_dir)  # fmt: skip
    return target


def ablation_rows(groups: Sequence[str] | None) -> list[AblationRow]:
    known = list(dict.fromkeys(r.group for r in ABLATIONS))
    if groups:
        unknown = [g for g in groups if g not in known]
        if unknown:
            raise ConfigError(
                f"--ablations: unknown group(s) {', '.join(unknown)}; known: {', '.join(known)}"
            )
    return [r for r in ABLATIONS if not groups or r.group in groups]


# Ablation rows that are exactly a main-suite method share its run (same folder, same key), so
# `--suite main` and `--suite ablation` with one --out train AddressCLIP and the L_address-only
# fine-tune once.
SHARED_WITH_MAIN: dict[tuple[tuple[str, ...], float], str] = {
    ((), 1.0): "addressclip",
    (tuple(sorted(ADDRESS_ONLY)), 1.0): "finetune_address",
}


def run_ablations(bench: Bench) -> list[dict]:
    opts = bench.options
    rows = []
    done: dict[tuple, list[dict]] = {}
    for row in ablation_rows(opts.ablation_groups):
        signature = (tuple(sorted(row.overrides)), row.coverage)
        if signature not in done and signature in SHARED_WITH_MAIN:
            name = SHARED_WITH_MAIN[signature]
            records = []
            for seed in _seeds_for(opts, True):
                print(f"[benchmark] ablation {row.group}: {row.label} (seed {seed}) = {name}", flush=True)
                folder = opts.out / "methods" / name / f"seed{seed}"
                records.append(bench.run(name, folder, seed, {}))
            done[signature] = records
        if signature not in done:
            records = []
            for seed in _seeds_for(opts, True):
                slug = _slug("-".join(row.overrides) or "default") + (
                    f"-cov{int(row.coverage * 1000):04d}" if row.coverage < 1 else ""
                )
                folder = opts.out / "ablations" / slug / f"seed{seed}"
                data_path = None
                if row.coverage < 1.0:
                    data_path = coverage_manifest(
                        bench.data, row.coverage, seed, opts.out / "ablations" / "coverage"
                    )

                def runner(setup, overrides=row.overrides, data_path=data_path):
                    return run_trained(setup, overrides, data_path)

                print(f"[benchmark] ablation {row.group}: {row.label} (seed {seed})", flush=True)
                extra = {"ablation": list(row.overrides), "coverage": row.coverage}
                records.append(bench.run("addressclip", folder, seed, {}, runner, extra))
            done[signature] = records
        rows.append({"group": row.group, "label": row.label, "overrides": list(row.overrides),
                     "coverage": row.coverage, "runs": done[signature]})  # fmt: skip
    return rows


# --------------------------------------------------------------------------------------------------


def _street_clip(options: BenchmarkOptions) -> Path:
    if options.init is not None:
        if not options.init.is_file():
            raise AddressclipError(f"--init: street CLIP checkpoint {options.init} not found")
        return options.init
    from addressclip.config import load_config
    from addressclip.train.pretrain import run_pretraining

    config = load_config(options.preset, [*options.overrides, f"data={options.data}"])
    config.train.progress = options.progress
    result, reused = run_pretraining(config)
    print(f"[benchmark] street CLIP: {result.model_path} ({'reused' if reused else 'trained'})", flush=True)
    if result.model_path is None:
        raise AddressclipError("pretraining produced no model")
    return result.model_path


def _methods(options: BenchmarkOptions) -> list[str]:
    if options.methods:
        unknown = [m for m in options.methods if m not in BASELINES]
        if unknown:
            raise ConfigError(
                f"--methods: unknown method(s) {', '.join(unknown)}; known: {', '.join(BASELINES)}"
            )
        return list(options.methods)
    return list(DEMO_METHODS) if options.suite == "demo" else list(BASELINES)


def run_benchmark(options: BenchmarkOptions) -> Path:
    """Run the suite, then (re)write report.md, results.json and figures; returns report.md."""
    if options.suite not in SUITES:
        raise ConfigError(f"--suite must be one of {', '.join(SUITES)}, not '{options.suite}'")
    if options.model is not None and not options.model.is_file():
        raise AddressclipError(f"--model: checkpoint {options.model} not found")
    started = time.perf_counter()
    threads = options.threads if options.threads is not None else (1 if options.suite == "demo" else None)
    if threads:
        import torch

        torch.set_num_threads(threads)
    options.out.mkdir(parents=True, exist_ok=True)
    data = EvalData.load(options.data, progress=options.progress)
    data.rows(options.eval_split)  # a missing evaluation split fails before any training
    init = _street_clip(options)
    store = FeatureStore(options.out / "features")
    encoder = FrozenEncoder.from_checkpoint(init, store, options.device, progress=options.progress)
    bench = Bench(options, data, encoder, init)
    results_path = options.out / "results.json"
    previous = json.loads(results_path.read_text(encoding="utf-8")) if results_path.is_file() else {}
    results = {
        "methods": previous.get("methods", {}),
        "ablations": previous.get("ablations", []),
        "suites": previous.get("suites", {}),
    }
    if options.suite in ("main", "demo"):
        fresh = run_main(bench, _methods(options))
        results["methods"] = {**results["methods"], **fresh}
    else:
        fresh_rows = run_ablations(bench)
        groups = {r["group"] for r in fresh_rows}
        order = list(dict.fromkeys(r.group for r in ABLATIONS))
        kept = [r for r in results["ablations"] if r["group"] not in groups]
        merged = kept + fresh_rows
        merged.sort(key=lambda r: order.index(r["group"]) if r["group"] in order else len(order))
        results["ablations"] = merged
    results["suites"][options.suite] = {
        "command": options.command,
        "seconds": time.perf_counter() - started,
        "seeds": options.seeds,
        "preset": options.preset,
        "overrides": list(options.overrides),
        "init": str(init),
        "model": str(options.model) if options.model else None,
        "log": bench.log,
    }
    from addressclip.eval.report import dataset_summary, write_report

    results["dataset"] = dataset_summary(data, options.eval_split)
    results["environment"] = _environment(encoder)
    return write_report(options.out, _jsonable(results), data, options, figures=options.figures)


def _environment(encoder: FrozenEncoder) -> dict[str, object]:
    import os
    import platform

    import torch

    return {
        "device": str(encoder.device),
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "torch": torch.__version__,
    }


def load_queries(out: Path, name: str, seed: int = 0) -> pd.DataFrame | None:
    file = out / "methods" / name / f"seed{seed}" / "queries.parquet"
    return pd.read_parquet(file) if file.is_file() else None
