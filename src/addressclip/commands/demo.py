"""`addressclip demo`: the whole embedded pipeline, as `make demo` runs it.

Every stage is the same code path as its own command (printed before it runs), and every stage is
cached by its parameters, so a second run reuses what the first one made.
"""

from __future__ import annotations

import argparse

from addressclip.commands.common import (
    add_extract_arguments,
    add_overrides_argument,
    add_partition_arguments,
    bbox_from_args,
    partition_config_from_args,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="render the Helsinki world, fine-tune, evaluate and predict (the make demo pipeline)",
        description="Run the embedded pipeline end to end on the CPU: render street views over the "
        "bundled Helsinki OpenStreetMap extract, start from the shipped street CLIP, fine-tune "
        "AddressCLIP, write the benchmark report and predict held-out images. Stages are cached.",
    )
    parser.add_argument("--out", default="runs/demo", help="run folder (default runs/demo)")
    parser.add_argument("--world", default="demo", help="world preset or .osm.pbf (default demo)")
    parser.add_argument("--config", default="cpu", help="training preset (default cpu)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--init",
        default="foundation",
        metavar="foundation|pretrain|PATH",
        help="the street CLIP AddressCLIP starts from: the shipped foundation (default; pretrained on "
        "other cities), 'pretrain' (pretrain on this world's train split first), or a checkpoint",
    )
    parser.add_argument(
        "--skip-report", action="store_true", help="stop after training and prediction (no benchmark)"
    )
    add_extract_arguments(parser)
    add_partition_arguments(parser)
    add_overrides_argument(parser, "training config overrides")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from addressclip.demo.pipeline import DemoOptions, run_demo

    run_demo(
        DemoOptions(
            out=args.out,
            world=args.world,
            config=args.config,
            seed=args.seed,
            report=not args.skip_report,
            overrides=tuple(args.overrides),
            partition=partition_config_from_args(args),
            bbox=bbox_from_args(args),
            init=args.init,
        )
    )
    return 0
