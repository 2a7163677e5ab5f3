"""One method run, cached on disk by the key of its inputs, and the state shared by a benchmark run.

A finished run is kept under its folder with `result.json` holding the key (street CLIP digest, data
digest, preset, overrides, method, seed, split, options); a rerun with the same key reuses it.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from addressclip.atomic import to_jsonable, write_json_atomic
from addressclip.baselines.base import BaselineSetup
from addressclip.baselines.runner import MethodResult, run_method
from addressclip.benchmark.options import RESULT_FILE, BenchmarkOptions
from addressclip.digest import file_digest
from addressclip.errors import AddressclipError
from addressclip.eval.encode import FrozenEncoder
from addressclip.eval.evaluate import EvalData
from addressclip.resources.shipped_model import resolve_init


def slug(text: str) -> str:
    keep = "".join(c if c.isalnum() else "-" for c in text.lower())
    return "-".join(p for p in keep.split("-") if p)[:60] or "default"


def run_key(options: BenchmarkOptions, init: Path, name: str, seed: int, extra: dict) -> str:
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


def save_run(folder: Path, key: str, result: MethodResult) -> dict:
    """Write one finished method run (tables, features, result.json last) and return its record."""
    record = result.record()
    record["key"] = key
    result.evaluation.queries.to_parquet(folder / "queries.parquet")
    result.evaluation.per_address.to_parquet(folder / "per_address.parquet")
    if result.output.query_features is not None:
        np.save(folder / "query_features.npy", result.output.query_features.astype(np.float32))
    write_json_atomic(folder / RESULT_FILE, record)
    return to_jsonable(record)  # type: ignore[return-value]


def load_run(folder: Path, key: str) -> dict | None:
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
        key = run_key(self.options, self.init, name, seed, {"options": options, **(extra or {})})
        cached = load_run(folder, key)
        if cached is not None:
            self.log.append(f"{name} seed {seed}: reused {folder}")
            return cached
        started = time.perf_counter()
        result = run_method(name, self.setup(folder, seed, options), runner)
        record = save_run(folder, key, result)
        self.log.append(f"{name} seed {seed}: {time.perf_counter() - started:.1f} s")
        return record


def seeds_for(options: BenchmarkOptions, trains: bool) -> list[int]:
    default = 3 if options.suite == "main" else 1
    count = options.seeds if options.seeds is not None else default
    return list(range(count)) if trains else [0]


def street_clip(options: BenchmarkOptions) -> Path:
    """The street CLIP every method starts from: `--init`, else the cached pretraining run."""
    if options.init is not None:
        init = resolve_init(options.init)  # 'foundation' = the shipped street CLIP
        if not init.is_file():
            raise AddressclipError(f"--init: street CLIP checkpoint {init} not found")
        return init
    from addressclip.config import load_config
    from addressclip.train.pretrain import run_pretraining

    config = load_config(options.preset, [*options.overrides, f"data={options.data}"])
    config.train.progress = options.progress
    result, reused = run_pretraining(config)
    print(f"[benchmark] street CLIP: {result.model_path} ({'reused' if reused else 'trained'})", flush=True)
    if result.model_path is None:
        raise AddressclipError("pretraining produced no model")
    return result.model_path
