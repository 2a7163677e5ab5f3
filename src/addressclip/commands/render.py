"""`addressclip render`: the embedded world — street views rendered over a real OpenStreetMap city."""

from __future__ import annotations

import argparse
from pathlib import Path

from addressclip.commands.common import (
    add_extract_arguments,
    add_partition_arguments,
    add_progress_argument,
    bbox_from_args,
    partition_config_from_args,
)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "render",
        help="render a street-view dataset over an OpenStreetMap extract (the embedded world)",
        description=(
            "Render street-level views along the named streets of an OSM extract into a CosPlace-format "
            "dataset (OUT/images/{train,val,test}/{database,queries}/@...@.jpg + images_paths.txt), build "
            "its manifest with the same code as `addressclip build --format cosplace`, and write scene "
            "captions, a reference table (chance / majority / raw-pixel NN SSA-1), a contact sheet and a "
            "map. An existing render in OUT with the same parameters is reused."
        ),
    )
    parser.add_argument(
        "--world", required=True, metavar="tiny|demo|CITY|PBF",
        help="'tiny' (Karhula, a few hundred images), 'demo' (Helsinki centre, >= 10,000), a bundled city "
        "(porto, london, nyc-les, ...: addressclip.resources.BUNDLED_CITIES) or a .osm.pbf",
    )  # fmt: skip
    add_extract_arguments(parser)
    parser.add_argument("--out", required=True, type=Path, metavar="DIR", help="output dataset folder")
    parser.add_argument(
        "--seed", type=int, default=0, help="random seed (weather, occluders, jitter, splits)"
    )
    parser.add_argument(
        "--size", default="128", metavar="PX|WxH", help="image size, e.g. 128 or 640x480 (128)"
    )
    parser.add_argument("--spacing", type=float, metavar="M", help="metres between capture points (preset)")
    parser.add_argument("--views", type=int, help="views per capture point (preset; 4 = every 90 degrees)")
    parser.add_argument("--crop", type=float, metavar="M", help="only the square of this half side (m)")
    parser.add_argument("--jpeg-quality", type=int, default=90)
    parser.add_argument(
        "--split-ratios", default="0.8,0.1,0.1", metavar="T,V,T", help="by location (0.8,0.1,0.1)"
    )
    parser.add_argument("--min-points", type=int, default=5, help="merge addresses with fewer locations (5)")
    parser.add_argument(
        "--captioner", default="scene",
        help="'scene' (built-in, from the rendered content), 'none', 'blip:DIR' or 'module:factory'",
    )  # fmt: skip
    add_partition_arguments(parser)
    parser.add_argument("--workers", type=int, help="worker processes (default: all cores)")
    parser.add_argument("--force", action="store_true", help="render even if OUT holds the same render")
    parser.add_argument("--no-pictures", action="store_true", help="skip the contact sheet and the map")
    add_progress_argument(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from addressclip.data.splits import parse_ratios
    from addressclip.world import render_world

    result = render_world(
        args.world,
        args.out,
        seed=args.seed,
        size=args.size,
        spacing_m=args.spacing,
        views=args.views,
        workers=args.workers,
        crop_half_side_m=args.crop,
        jpeg_quality=args.jpeg_quality,
        split_ratios=parse_ratios(args.split_ratios),
        min_points_per_address=args.min_points,
        captioner=args.captioner,
        partition=partition_config_from_args(args),
        bbox=bbox_from_args(args),
        force=args.force,
        pictures=not args.no_pictures,
        progress=not args.quiet,
    )
    for line in result.summary_lines():
        print(line)
    return 0
