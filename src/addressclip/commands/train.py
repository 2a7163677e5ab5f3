"""`addressclip train`: fine-tune AddressCLIP on a manifest (see `addressclip.train.engine`)."""

from __future__ import annotations

import argparse


def add_run_arguments(parser: argparse.ArgumentParser, default_config: str = "cpu") -> None:
    parser.add_argument(
        "--config",
        default=default_config,
        help="preset name (paper, cpu, tiny) or a YAML file, e.g. a run's saved config.yaml "
        f"(default: {default_config})",
    )
    parser.add_argument(
        "--resume",
        metavar="latest|PATH",
        help="continue a run: 'latest' = OUT/checkpoints/latest.pt (exact: optimizer, RNG, sampler position)",
    )
    parser.add_argument("--pretrained", metavar="PATH", help="local open_clip weights (file or folder)")
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="KEY=VALUE",
        help="config overrides, e.g. data=runs/demo/world/manifest.parquet out=runs/demo/train "
        "optim.epochs=5",
    )


def load_run_config(args: argparse.Namespace):
    from addressclip.config import load_config

    overrides = list(args.overrides)
    if args.pretrained:
        overrides.append(f"model.pretrained={args.pretrained}")
    return load_config(args.config, overrides)


def format_metrics(metrics: dict[str, float]) -> str:
    return "  ".join(f"{k} {v:.1f}" for k, v in metrics.items()) if metrics else "(no val split)"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="fine-tune AddressCLIP on a manifest",
        description="Fine-tune AddressCLIP (L_address + L_caption + L_geo). Multi-GPU: "
        "torchrun --nproc_per_node=N -m addressclip.cli train ...",
    )
    add_run_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from addressclip.train.engine import train_model

    config = load_run_config(args)
    result = train_model(config, stage="address", resume=args.resume)
    if result.model_path is not None:
        print(f"model: {result.model_path}  ({result.steps} steps, {result.seconds:.0f} s)")
        print(f"val (best epoch): {format_metrics(result.best_val)}")
        print(f"test (model.pt): {format_metrics(result.test)}")
    return 0
