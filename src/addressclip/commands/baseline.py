"""`addressclip baseline NAME`: run one baseline (or AddressCLIP) on a manifest and evaluate it."""

from __future__ import annotations

import argparse
from pathlib import Path

from addressclip.commands.common import add_method_arguments, apply_threads, method_options, metric_lines


def register(subparsers: argparse._SubParsersAction) -> None:
    from addressclip.baselines.registry import BASELINE_NAMES as BASELINES

    parser = subparsers.add_parser(
        "baseline",
        help="run one baseline on a manifest (zero-shot, CoOp, linear probe, retrieval, ...)",
        description="Baselines: " + ", ".join(BASELINES) + ". All start from the same street CLIP, "
        "choose hyper-parameters on the val split and are evaluated like `addressclip eval`.",
    )
    parser.add_argument("name", metavar="NAME", choices=list(BASELINES), help=", ".join(BASELINES))
    add_method_arguments(parser)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--option", action="append", default=[], metavar="NAME=VALUE", help="method setting, e.g. steps=100"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from addressclip.baselines.base import BaselineSetup
    from addressclip.baselines.runner import run_method
    from addressclip.benchmark.options import BenchmarkOptions
    from addressclip.benchmark.runs import save_run, street_clip
    from addressclip.eval.encode import FrozenEncoder
    from addressclip.eval.evaluate import EvalData
    from addressclip.eval.store import FeatureStore

    apply_threads(args)
    out = Path(args.out)
    overrides = tuple(args.overrides)
    data = EvalData.load(args.data, progress=not args.quiet)
    data.rows(args.split)
    options = BenchmarkOptions("main", Path(args.data), out, args.config, overrides,
                               Path(args.init) if args.init else None, progress=not args.quiet)  # fmt: skip
    init = street_clip(options)
    encoder = FrozenEncoder.from_checkpoint(
        init, FeatureStore(out / "features"), args.device, progress=not args.quiet
    )
    setup = BaselineSetup(data, encoder, init, out / args.name, args.config, overrides, args.seed, args.split,
                          progress=not args.quiet, options=method_options(args.option))  # fmt: skip
    result = run_method(args.name, setup)
    save_run(setup.out, "", result)
    print(f"{result.record()['label']} (seed {args.seed}, {result.seconds:.1f} s)")
    for line in metric_lines(result.evaluation.metrics):
        print(line)
    output = result.output
    if output.storage_bytes is not None:
        print(f"storage {output.storage_bytes} bytes ({output.storage_note})")
    if output.latency_ms is not None:
        print(f"latency {output.latency_ms:.2f} ms per query")
    print(f"wrote {setup.out / 'result.json'}")
    return 0
