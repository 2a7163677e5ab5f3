"""`addressclip caption MANIFEST --model DIR`: fill the manifest's caption column with BLIP captions."""

from __future__ import annotations

import argparse
from pathlib import Path

from addressclip.commands.common import add_device_argument, add_progress_argument, add_threads_argument


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "caption",
        help="caption a manifest's images with a local BLIP model (batched, resumable, torchrun)",
        description=(
            "Caption the images of a manifest whose caption is empty (all of them with --overwrite) with "
            "BLIP (transformers' BlipForConditionalGeneration + BlipProcessor) read from a local folder, "
            "never downloaded. Progress goes to MANIFEST.captions/ every --flush-every batches, so "
            "a rerun skips rows already captioned; the caption column is written into the manifest "
            "atomically at the end. Under `torchrun --nproc-per-node N -m addressclip.cli caption ...` "
            "each rank captions its share and rank 0 writes the manifest. bfloat16 on a GPU, float32 on "
            "the CPU."
        ),
    )
    parser.add_argument("manifest", type=Path, metavar="MANIFEST", help="path of manifest.parquet")
    parser.add_argument("--model", required=True, type=Path, metavar="DIR", help="local BLIP model folder")
    parser.add_argument(
        "--prompt", help="text the captions start from (default: 'a street view of', as in the paper)"
    )
    parser.add_argument("--max-new-tokens", type=int, default=30, metavar="N", help="tokens generated (30)")
    parser.add_argument("--batch-size", type=int, default=16, metavar="N", help="images per batch (16)")
    parser.add_argument(
        "--flush-every", type=int, default=10, metavar="N", help="save progress every N batches (10)"
    )
    parser.add_argument("--overwrite", action="store_true", help="caption rows that already have a caption")
    parser.add_argument(
        "--limit", type=int, metavar="N", help="caption at most N images in this run (a rerun continues)"
    )
    parser.add_argument(
        "--dtype", choices=("float32", "bfloat16", "float16"),
        help="model precision (default: bfloat16 on a GPU, float32 on the CPU)",
    )  # fmt: skip
    add_device_argument(parser, default="cpu")
    add_threads_argument(parser)
    add_progress_argument(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import os

    from addressclip.commands.common import apply_threads
    from addressclip.model.device import resolve_device
    from addressclip.world.manifest_captions import (
        DEFAULT_PROMPT,
        BlipCaptioner,
        CaptionSettings,
        caption_manifest,
    )

    settings = CaptionSettings(
        model=str(args.model.resolve()),
        prompt=DEFAULT_PROMPT if args.prompt is None else args.prompt,
        max_new_tokens=args.max_new_tokens,
        batch_size=args.batch_size,
        flush_every=args.flush_every,
        overwrite=args.overwrite,
        limit=args.limit,
    )
    apply_threads(args)
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    device = resolve_device(args.device, int(os.environ.get("LOCAL_RANK", "0")), field="--device")
    captioner = BlipCaptioner(args.model, device, args.dtype, settings.prompt, settings.max_new_tokens)
    barrier, teardown = _process_group(world_size, rank, device)
    try:
        result = caption_manifest(
            args.manifest, captioner, settings, rank=rank, world_size=world_size, barrier=barrier,
            progress=not args.quiet,
        )  # fmt: skip
    finally:
        teardown()
    print(
        f"rank {rank}/{world_size}: captioned {result.captioned} image(s) in {result.seconds:.1f} s "
        f"({result.images_per_s:.2f}/s); {result.skipped} already done; {result.todo} needed a caption"
    )
    if result.manifest_written:
        left = f"; {result.remaining} still to caption (rerun to continue)" if result.remaining else ""
        print(f"  wrote the caption column of {args.manifest}{left}")
    return 0


def _process_group(world_size: int, rank: int, device):
    """(barrier, teardown) for torchrun's process group; no-ops for one process."""
    if world_size <= 1:
        return (lambda: None), (lambda: None)
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(
            backend="nccl" if device.type == "cuda" else "gloo", rank=rank, world_size=world_size
        )

    def teardown() -> None:
        if dist.is_initialized():
            dist.destroy_process_group()

    return dist.barrier, teardown
