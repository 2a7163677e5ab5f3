"""`addressclip train`: fine-tune AddressCLIP on a manifest (see `addressclip.train.engine`)."""

from __future__ import annotations

import argparse

from addressclip.commands.common import add_run_config_arguments, format_metrics, run_config_from_args


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="fine-tune AddressCLIP on a manifest",
        description="Fine-tune AddressCLIP (L_address + L_caption + L_geo). Multi-GPU: "
        "torchrun --nproc_per_node=N -m addressclip.cli train ...",
    )
    add_run_config_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from addressclip.train.engine import train_model

    config = run_config_from_args(args)
    result = train_model(config, stage="address", resume=args.resume)
    if result.model_path is not None:
        print(f"model: {result.model_path}  ({result.steps} steps, {result.seconds:.0f} s)")
        print(f"val (best epoch): {format_metrics(result.best_val)}")
        print(f"test (model.pt): {format_metrics(result.test)}")
    return 0
