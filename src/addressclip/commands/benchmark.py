"""`addressclip benchmark`: the paper's tables — main comparison, ablations, or the demo's reduced
suite — written as report.md + results.json + figures in the output folder."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from addressclip.commands.common import add_method_arguments, apply_threads, method_options


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "benchmark",
        help="main table, ablations or the demo suite, with report.md + results.json + figures",
        description="Suites: main (every baseline, 3 seeds for methods that train), ablation (losses, "
        "caption text, L_geo form, targets, freezing, data coverage), demo (a reduced main table for "
        "a CPU budget), routes (photo sequences on held-out routes of the rendered world of --data: "
        "per-photo vs decoded SSA-1/SA-1/metres by route length, sparse frames and misordered "
        "photos; needs --model; settings as --option routes.count=50, routes.lengths=5,10,20,50, "
        "routes.sparse_spacings=30,60, routes.swap_rates=0.1,0.3, routes.seed=0). Finished method "
        "runs under OUT/methods and OUT/ablations are reused.",
    )
    parser.add_argument("--suite", required=True, choices=("main", "ablation", "demo", "routes"))
    add_method_arguments(parser)
    parser.add_argument(
        "--model", metavar="PATH", help="an AddressCLIP checkpoint already trained (skip its training)"
    )
    parser.add_argument(
        "--seeds", type=int, help="seeds for methods that train (default: 3 main, 1 otherwise)"
    )
    parser.add_argument("--methods", help="comma-separated subset of the suite's methods")
    parser.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="METHOD.NAME=VALUE",
        help="a method setting, e.g. coop.steps=100",
    )
    parser.add_argument(
        "--ablations",
        metavar="GROUPS",
        help="comma-separated ablation groups: loss, caption, geo, targets, freezing, coverage, openset "
        "(default: all)",
    )
    parser.add_argument("--no-figures", action="store_true", help="skip the figures")
    parser.set_defaults(func=run)


def command_line(args: argparse.Namespace) -> str:
    """The command that reproduces this run (rebuilt from the parsed options, for the report)."""
    parts = ["addressclip", "benchmark", "--suite", args.suite, "--data", args.data, "--out", args.out]
    parts += ["--config", args.config]
    for flag, value in (("--init", args.init), ("--model", args.model), ("--seeds", args.seeds),
                        ("--methods", args.methods), ("--ablations", args.ablations),
                        ("--threads", args.threads)):  # fmt: skip
        if value is not None:
            parts += [flag, str(value)]
    if args.split != "test":
        parts += ["--split", args.split]
    for item in args.option:
        parts += ["--option", item]
    if args.no_figures:
        parts.append("--no-figures")
    parts += list(args.overrides)
    return " ".join(shlex.quote(str(p)) for p in parts)


def run(args: argparse.Namespace) -> int:
    from addressclip.benchmark.options import BenchmarkOptions
    from addressclip.benchmark.suites import run_benchmark

    apply_threads(args)
    options = BenchmarkOptions(
        suite=args.suite,
        data=Path(args.data),
        out=Path(args.out),
        preset=args.config,
        overrides=tuple(args.overrides),
        init=Path(args.init) if args.init else None,
        model=Path(args.model) if args.model else None,
        seeds=args.seeds,
        methods=tuple(m.strip() for m in args.methods.split(",") if m.strip()) if args.methods else None,
        device=args.device,
        eval_split=args.split,
        progress=not args.quiet,
        figures=not args.no_figures,
        ablation_groups=tuple(g.strip() for g in args.ablations.split(",") if g.strip())
        if args.ablations
        else None,
        command=command_line(args),
        options=method_options(args.option, grouped=True),
        threads=args.threads,
    )
    report = run_benchmark(options)
    print(f"wrote {report} and {report.parent / 'results.json'}")
    return 0
