"""`addressclip build`: turn geotagged images (+ an OSM extract) into a dataset folder with a manifest."""

from __future__ import annotations

import argparse
from pathlib import Path

from addressclip.commands.common import (
    add_partition_arguments,
    add_progress_argument,
    partition_config_from_args,
)
from addressclip.data.readers import READERS

WORLDS = ("helsinki", "karhula")


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
    report = build_dataset(
        args.format,
        args.images,
        args.out,
        reader_options=reader_options_from_args(args),
        osm=args.osm,
        world=args.world,
        addresses=args.addresses,
        max_dist_m=args.max_dist_m,
        min_points=args.min_points,
        partition=partition_config_from_args(args),
        split=split,
        strict=args.strict,
        progress=not args.quiet,
    )
    for line in report.summary_lines():
        print(line)
    return 0
