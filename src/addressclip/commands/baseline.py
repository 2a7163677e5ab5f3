"""`addressclip baseline NAME`: run one baseline (or AddressCLIP) on a manifest and evaluate it."""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path


def parse_options(items: list[str]) -> dict[str, object]:
    """['steps=50', 'lr=1e-3'] -> {'steps': 50, 'lr': 0.001} (values read as YAML scalars)."""
    import yaml

    from addressclip.errors import ConfigError

    options: dict[str, object] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--option '{item}' must look like NAME=VALUE")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            value = raw
        if isinstance(value, str):
            with contextlib.suppress(ValueError):
                value = float(value)
        options[key.strip()] = value
    return options


def set_threads(threads: int | None) -> None:
    if threads:
        import torch

        torch.set_num_threads(threads)


def add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, metavar="MANIFEST", help="manifest parquet")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder")
    parser.add_argument(
        "--config", default="cpu", help="preset (paper, cpu, tiny) or YAML for training methods"
    )
    parser.add_argument(
        "--init",
        metavar="PATH",
        help="the pretrained street CLIP (model.pt) every method starts from "
        "(default: run/reuse `addressclip pretrain` with the same config)",
    )
    parser.add_argument("--split", default="test", help="evaluation split (default: test)")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 or auto (default: auto)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument(
        "--threads", type=int, help="torch CPU threads (default: torch's; 1 is faster on a busy machine)"
    )
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="KEY=VALUE",
        help="config overrides for training methods, e.g. optim.epochs=3",
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    from addressclip.baselines import BASELINE_NAMES as BASELINES

    parser = subparsers.add_parser(
        "baseline",
        help="run one baseline on a manifest (zero-shot, CoOp, linear probe, retrieval, ...)",
        description="Baselines: " + ", ".join(BASELINES) + ". All start from the same street CLIP, "
        "choose hyper-parameters on the val split and are evaluated like `addressclip eval`.",
    )
    parser.add_argument("name", metavar="NAME", choices=list(BASELINES), help=", ".join(BASELINES))
    add_common(parser)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--option", action="append", default=[], metavar="NAME=VALUE", help="method setting, e.g. steps=100"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from addressclip.baselines.base import BaselineSetup
    from addressclip.baselines.runner import run_method
    from addressclip.commands.eval import summary_lines
    from addressclip.eval.benchmark import BenchmarkOptions, _save_run, _street_clip
    from addressclip.eval.encode import FrozenEncoder
    from addressclip.eval.evaluate import EvalData
    from addressclip.eval.store import FeatureStore

    set_threads(args.threads)
    out = Path(args.out)
    overrides = tuple(args.overrides)
    data = EvalData.load(args.data, progress=not args.quiet)
    data.rows(args.split)
    options = BenchmarkOptions("main", Path(args.data), out, args.config, overrides,
                               Path(args.init) if args.init else None, progress=not args.quiet)  # fmt: skip
    init = _street_clip(options)
    encoder = FrozenEncoder.from_checkpoint(
        init, FeatureStore(out / "features"), args.device, progress=not args.quiet
    )
    setup = BaselineSetup(data, encoder, init, out / args.name, args.config, overrides, args.seed, args.split,
                          progress=not args.quiet, options=parse_options(args.option))  # fmt: skip
    result = run_method(args.name, setup)
    _save_run(setup.out, "", result)
    print(f"{result.record()['label']} (seed {args.seed}, {result.seconds:.1f} s)")
    for line in summary_lines(result.evaluation.metrics):
        print(line)
    output = result.output
    if output.storage_bytes is not None:
        print(f"storage {output.storage_bytes} bytes ({output.storage_note})")
    if output.latency_ms is not None:
        print(f"latency {output.latency_ms:.2f} ms per query")
    print(f"wrote {setup.out / 'result.json'}")
    return 0
