"""`addressclip benchmark`: the paper's tables on a manifest — main comparison, ablations, demo.

Suites:
- `main`: every baseline of the registry (references, the paper's baselines, the field's,
  Image->GPS->Address, AddressCLIP); methods that train run over `seeds` seeds (default 3).
- `ablation`: see `benchmark.ablations`.
- `routes`: photo sequences on held-out routes of a rendered world, per-photo vs decoded
  (`benchmark.routes`; needs `--model`).
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
import time
from collections.abc import Sequence
from pathlib import Path

from addressclip.atomic import to_jsonable, write_json_atomic, write_text_atomic
from addressclip.baselines.registry import BASELINES
from addressclip.benchmark.ablations import ABLATIONS, run_ablations
from addressclip.benchmark.options import DEMO_METHODS, DEMO_OPTIONS, SUITES, BenchmarkOptions, method_folder
from addressclip.benchmark.report import dataset_summary, report_markdown, write_report
from addressclip.benchmark.runs import Bench, seeds_for, street_clip
from addressclip.digest import file_digest
from addressclip.errors import AddressclipError, ConfigError
from addressclip.eval.encode import FrozenEncoder
from addressclip.eval.evaluate import EvalData
from addressclip.eval.store import FeatureStore
from addressclip.model.device import set_threads


def run_main(bench: Bench, methods: Sequence[str]) -> dict[str, list[dict]]:
    opts = bench.options
    results: dict[str, list[dict]] = {}
    for name in methods:
        spec = BASELINES[name]
        method_options = dict(DEMO_OPTIONS.get(name, {})) if opts.suite == "demo" else {}
        method_options.update(opts.options.get(name, {}))
        seeds = seeds_for(opts, spec.trains)
        extra = {}
        if name == "addressclip" and opts.model is not None:
            method_options["model"] = str(opts.model)
            extra["model_digest"] = file_digest(opts.model)
            seeds = [0]
        records = []
        for seed in seeds:
            folder = method_folder(opts.out, name, seed)
            print(f"[benchmark] {spec.label} (seed {seed})", flush=True)
            records.append(bench.run(name, folder, seed, method_options, extra=extra))
        results[name] = records
    return results


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
    if options.suite == "routes":
        return run_route_suite(options)
    started = time.perf_counter()
    threads = options.threads if options.threads is not None else (1 if options.suite == "demo" else None)
    set_threads(threads)
    options.out.mkdir(parents=True, exist_ok=True)
    data = EvalData.load(options.data, progress=options.progress)
    data.rows(options.eval_split)  # a missing evaluation split fails before any training
    init = street_clip(options)
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
    if previous.get("routes"):
        results["routes"] = previous["routes"]  # the route suite's section stays in the report
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
    results["dataset"] = dataset_summary(data, options.eval_split)
    results["environment"] = _environment(encoder)
    return write_report(options.out, to_jsonable(results), data, options, figures=options.figures)


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


def run_route_suite(options: BenchmarkOptions) -> Path:
    """`benchmark --suite routes`: the route results in OUT/routes, and in OUT's report when there is one.

    Returns the report it wrote (OUT/report.md when OUT already held a benchmark, else routes.md).
    """
    from addressclip.benchmark.routes import (
        RESULTS_FILE,
        RouteEvalSettings,
        evaluate_routes,
        write_route_results,
    )

    if options.model is None:
        raise ConfigError("--suite routes needs --model: the trained AddressCLIP checkpoint to walk with")
    set_threads(options.threads)
    settings = RouteEvalSettings.from_options(dict(options.options.get("routes", {})))
    evaluation = evaluate_routes(options.model, options.data, settings, options.device, options.progress)
    table = write_route_results(options.out, evaluation, options.command, figure=options.figures)
    print(table.read_text(encoding="utf-8"))
    results_path = options.out / RESULTS_FILE
    if not results_path.is_file():
        return table
    results = json.loads(results_path.read_text(encoding="utf-8"))
    results["routes"] = evaluation.results
    results.setdefault("suites", {})["routes"] = {
        "command": options.command,
        "seconds": evaluation.results["seconds"],
        "model": str(options.model),
    }
    write_json_atomic(results_path, results)
    report = options.out / "report.md"
    write_text_atomic(report, report_markdown(results, results.get("figures") or {}))
    return report
