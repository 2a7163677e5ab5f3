"""`addressclip addressbook`: partition an OSM extract into sub-street addresses; save the book and a map."""

from __future__ import annotations

import argparse
from pathlib import Path

from addressclip.commands.common import (
    add_extract_arguments,
    add_partition_arguments,
    bbox_from_args,
    partition_config_from_args,
)
from addressclip.resources import BUNDLED_EXTRACTS

WORLDS = tuple(BUNDLED_EXTRACTS)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "addressbook",
        help="build the sub-street AddressBook of an OSM extract (+ map PNG)",
        description=(
            "Cut the named streets of an OpenStreetMap extract into sub-streets at their junctions, name "
            "them 'Main & Cross, Neighbourhood', and write OUT/addressbook.parquet, OUT/summary.json and "
            "OUT/map.png."
        ),
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--world", choices=WORLDS, help="use a bundled OSM extract")
    source.add_argument("--osm", type=Path, metavar="PBF", help="OpenStreetMap extract (.osm.pbf)")
    add_extract_arguments(parser)
    parser.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder")
    add_partition_arguments(parser)
    parser.add_argument("--no-map", action="store_true", help="skip the map PNG")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json
    import time

    from addressclip.atomic import write_text_atomic
    from addressclip.geo.addressbook import AddressBook
    from addressclip.geo.osm import read_osm
    from addressclip.resources import bundled_extract

    config = partition_config_from_args(args)
    bbox = bbox_from_args(args)
    path = bundled_extract(args.world) if args.world else args.osm
    started = time.perf_counter()
    book = AddressBook.from_osm(read_osm(path, config.highway_classes, bbox=bbox), config)
    seconds = time.perf_counter() - started
    table_path = book.save(args.out)
    summary = book.summary() | {
        "source": str(path),
        "bbox": None if bbox is None else list(bbox.as_tuple()),
        "build_seconds": round(seconds, 3),
    }
    write_text_atomic(args.out / "summary.json", json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    print(f"{book!r} from {path} in {seconds:.2f} s")
    print(f"  neighbourhoods: {', '.join(f'{k} ({v})' for k, v in summary['neighbourhoods'].items()) or '-'}")
    lengths = summary["length_m"]
    print(
        f"  sub-street length m: min {lengths['min']}, median {lengths['median']}, max {lengths['max']}; "
        f"cross streets 0/1/2: {'/'.join(str(v) for v in summary['cross_streets'].values())}"
    )
    print(f"  wrote {table_path} and {args.out / 'summary.json'}")
    if not args.no_map:
        title = args.world.title() if args.world else Path(path).name
        map_path = book.plot(args.out / "map.png", title=title)
        print(f"  wrote {map_path}")
    return 0
