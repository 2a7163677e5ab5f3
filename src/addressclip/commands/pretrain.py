"""`addressclip pretrain`: the caption-only "street CLIP" stage that AddressCLIP and the baselines
start from (images of the train split and of `pretrain.extra_data`; never the evaluation split)."""

from __future__ import annotations

import argparse
from pathlib import Path

from addressclip.commands.common import add_run_config_arguments, format_metrics, run_config_from_args


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "pretrain",
        help="train the caption-only street CLIP (cached by its parameters)",
        description="Contrastive image-caption pretraining without address text. The result is cached "
        "in out=DIR (default runs/pretrain/<fingerprint>) and reused when the parameters match; "
        "start AddressCLIP from it with model.init=DIR/model.pt.",
    )
    add_run_config_arguments(parser)
    parser.add_argument("--force", action="store_true", help="retrain even if a matching result exists")
    parser.add_argument(
        "--slim-out",
        metavar="FILE",
        help="also write the result as a slim checkpoint (the packaged MiniLM trunk left out), the form "
        "the foundation model ships in",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from addressclip.train.pretrain import run_pretraining

    config = run_config_from_args(args)
    result, reused = run_pretraining(config, resume=args.resume, force=args.force)
    state = "reused" if reused else f"trained, {result.steps} steps, {result.seconds:.0f} s"
    print(f"street CLIP: {result.model_path}  ({state})")
    print(f"zero-shot on val: {format_metrics(result.final_val)}")
    print(f"zero-shot on test: {format_metrics(result.test)}")
    if args.slim_out:
        import torch

        from addressclip.atomic import atomic_path
        from addressclip.digest import file_digest
        from addressclip.model.checkpoint import read_checkpoint
        from addressclip.model.factory import load_checkpoint
        from addressclip.model.shipping import slim_payload

        full = read_checkpoint(result.model_path)
        payload = slim_payload(load_checkpoint(result.model_path))
        payload.update({k: full[k] for k in ("run_config", "stage") if k in full})  # provenance
        with atomic_path(args.slim_out) as tmp:
            torch.save(payload, tmp)
        size = Path(args.slim_out).stat().st_size / 2**20
        print(f"slim checkpoint: {args.slim_out} ({size:.1f} MiB, sha256 {file_digest(args.slim_out)})")
    return 0
