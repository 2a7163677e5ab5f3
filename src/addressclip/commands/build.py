"""`addressclip build`: turn geotagged images (+ an OSM extract) into a dataset folder with a manifest."""

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
from addressclip.data.readers import READERS
from addressclip.resources import BUNDLED_EXTRACTS

WORLDS = tuple(BUNDLED_EXTRACTS)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "build",
        help="build a dataset (manifest + address book) from geotagged images",
        description=(
            "Read geotagged images, label each with its sub-street address from an OpenStreetMap "
            "extract (or take the addresses from an annotation JSON), split by capture location and "
            "write OUT/manifest.parquet, OUT/addressbook/ and OUT/build_report.json."
        ),
    )
    source = parser.add_argument_group("input")
    source.add_argument(
        "--format", required=True, choices=tuple(READERS), help="how the images carry their GPS"
    )
    source.add_argument("--images", required=True, type=Path, metavar="DIR", help="image root folder")
    add_reader_arguments(source)
    osm = parser.add_mutually_exclusive_group()
    osm.add_argument("--osm", type=Path, metavar="PBF", help="OpenStreetMap extract (.osm.pbf)")
    osm.add_argument("--world", choices=WORLDS, help="use a bundled OSM extract")
    add_extract_arguments(parser)
    labels = parser.add_argument_group("labels")
    labels.add_argument(
        "--addresses",
        choices=("osm", "given"),
        help="where addresses come from (default: 'given' for json, else 'osm')",
    )
    labels.add_argument("--max-dist-m", type=float, default=30.0, help="max distance to a street (30)")
    labels.add_argument(
        "--min-points", type=int, default=5, help="merge sub-streets with fewer capture locations (5)"
    )
    add_partition_arguments(parser)
    splits = parser.add_argument_group("splits")
    splits.add_argument("--split-ratios", default="0.8,0.1,0.1", metavar="T,V,T", help="(0.8,0.1,0.1)")
    splits.add_argument("--seed", type=int, default=0)
    splits.add_argument("--split-mode", choices=("location", "block"), default="location")
    splits.add_argument("--block-m", type=float, default=200.0, help="grid size for --split-mode block (200)")
    splits.add_argument(
        "--resplit", action="store_true", help="ignore a split given by the folder layout/CSV"
    )
    parser.add_argument("--out", required=True, type=Path, metavar="DIR", help="output dataset folder")
    parser.add_argument(
        "--strict", action="store_true", help="stop at the first bad record instead of skipping"
    )
    add_progress_argument(parser)
    parser.set_defaults(func=run)


def add_reader_arguments(group) -> None:
    """Every registered reader's option flags (a flag several readers share is added once)."""
    users: dict[str, list[str]] = {}
    first = {}
    for spec in READERS.values():
        for option in spec.options:
            users.setdefault(option.flag, []).append(spec.name)
            first.setdefault(option.flag, option)
    for flag, option in first.items():
        option.add_to(group, users[flag])


def reader_options_from_args(args: argparse.Namespace) -> dict[str, object]:
    """The options of the chosen `--format`'s reader (the other readers' flags are not its business)."""
    return {option.name: getattr(args, option.name, None) for option in READERS[args.format].options}


def run(args: argparse.Namespace) -> int:
    from addressclip.data.build import build_dataset
    from addressclip.data.splits import SplitConfig, parse_ratios

    split = SplitConfig(
        ratios=parse_ratios(args.split_ratios),
        seed=args.seed,
        mode=args.split_mode,
        block_m=args.block_m,
        resplit=args.resplit,
    )
    partition = partition_config_from_args(args)
    book = _cropped_book(args, partition)
    report = build_dataset(
        args.format,
        args.images,
        args.out,
        reader_options=reader_options_from_args(args),
        osm=None if book is not None else args.osm,
        world=None if book is not None else args.world,
        addressbook=book,
        addresses=args.addresses,
        max_dist_m=args.max_dist_m,
        min_points=args.min_points,
        partition=None if book is not None else partition,
        split=split,
        strict=args.strict,
        progress=not args.quiet,
    )
    for line in report.summary_lines():
        print(line)
    return 0


def _cropped_book(args: argparse.Namespace, partition):
    """With `--bbox`, the AddressBook of that part of the extract (the build then labels against it)."""
    from addressclip.errors import ConfigError
    from addressclip.geo.addressbook import AddressBook
    from addressclip.geo.osm import read_osm
    from addressclip.resources import bundled_extract

    bbox = bbox_from_args(args)
    if bbox is None:
        return None
    if args.osm is None and args.world is None:
        raise ConfigError("--bbox crops an OSM extract: give --osm PBF or --world NAME with it")
    path = bundled_extract(args.world) if args.world else args.osm
    return AddressBook.from_osm(read_osm(path, partition.highway_classes, bbox=bbox), partition)
