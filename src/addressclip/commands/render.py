"""`addressclip render`: the embedded world — street views rendered over a real OpenStreetMap city."""

from __future__ import annotations

import argparse
from pathlib import Path

from addressclip.commands.common import (
    add_extract_arguments,
    add_render_arguments,
    bbox_from_args,
    render_options_from_args,
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
    parser.add_argument("--crop", type=float, metavar="M", help="only the square of this half side (m)")
    add_render_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from addressclip.world import render_world

    result = render_world(
        args.world,
        args.out,
        crop_half_side_m=args.crop,
        bbox=bbox_from_args(args),
        **render_options_from_args(args),
    )
    for line in result.summary_lines():
        print(line)
    return 0
