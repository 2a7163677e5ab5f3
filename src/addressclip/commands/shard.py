"""`addressclip shard MANIFEST --out DIR`: pack a manifest's images into tar shards for streaming."""

from __future__ import annotations

import argparse
from pathlib import Path

from addressclip.commands.common import add_progress_argument


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "shard",
        help="pack a manifest's images into tar shards (webdataset layout) for streamed training",
        description=(
            "Write DIR/{split}-NNNNNN.tar (per sample ROW.jpg, the original JPEG, and ROW.json, its "
            "labels) and DIR/index.json (shard -> split, rows, addresses; the manifest and its SHA-256). "
            "Train from them with loader.shards=DIR (and loader.shuffle_buffer=N)."
        ),
    )
    parser.add_argument("manifest", type=Path, metavar="MANIFEST", help="path of manifest.parquet")
    parser.add_argument("--out", required=True, type=Path, metavar="DIR", help="shard folder")
    parser.add_argument(
        "--rows-per-shard", type=int, default=2000, metavar="N", help="images per tar shard (2000)"
    )
    add_progress_argument(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from addressclip.data.shards import INDEX_FILE, write_shards

    index = write_shards(args.manifest, args.out, args.rows_per_shard, progress=not args.quiet)
    for split, entry in index.to_dict()["splits"].items():  # type: ignore[union-attr]
        print(f"{split}: {entry['rows']} images in {entry['shards']} shard(s)")
    print(f"wrote {args.out / INDEX_FILE}")
    return 0
