"""`addressclip atlas`: render several cities into one dataset (the pretraining corpus of a street CLIP)."""

from __future__ import annotations

import argparse
from pathlib import Path

from addressclip.commands.common import add_render_arguments, render_options_from_args


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "atlas",
        help="render several cities into one dataset with a city column (pretraining corpus)",
        description=(
            "Render each city like `addressclip render` into OUT/cities/CITY (cached by its parameters: "
            "a second run with one more city renders only that one) and write one manifest "
            "OUT/manifest.parquet with a `city` column, per-city splits and scene captions, plus "
            "OUT/atlas.json. 'training' stands for every bundled city except the evaluation cities "
            "(addressclip.resources.EVALUATION_CITIES)."
        ),
    )
    parser.add_argument(
        "--cities",
        metavar="A,B,C|training",
        help="bundled cities (porto, london, ...) and/or cities of --spec; 'training' = all but the "
        "evaluation cities (default: the cities of --spec)",
    )
    parser.add_argument(
        "--exclude",
        metavar="A,B",
        help="cities 'training' leaves out (default: helsinki,karhula,heidelberg, the evaluation cities)",
    )
    parser.add_argument(
        "--spec",
        type=Path,
        metavar="TOML",
        help="[cities.NAME] tables with world (bundled name or extract path), bbox, spacing, views",
    )
    parser.add_argument(
        "--bbox",
        action="append",
        default=[],
        metavar="CITY:S,W,N,E",
        help="only this box of a city's extract (repeatable; a bare S,W,N,E when there is one city)",
    )
    parser.add_argument("--out", required=True, type=Path, metavar="DIR", help="atlas folder")
    add_render_arguments(parser)
    parser.set_defaults(func=run)


def cities_from_args(args: argparse.Namespace):
    """The `AtlasCity` list of --cities/--spec/--bbox (checked, one-line errors)."""
    from addressclip.errors import ConfigError
    from addressclip.resources import BUNDLED_CITIES
    from addressclip.world.atlas import AtlasCity, load_spec, parse_cities, parse_city_boxes

    spec = load_spec(args.spec) if args.spec is not None else {}
    exclude = None
    if args.exclude is not None:
        exclude = tuple(c.strip() for c in args.exclude.split(",") if c.strip())
    if args.cities is not None:
        names = parse_cities(args.cities, exclude)
    elif spec:
        names = list(spec)
    else:
        raise ConfigError("give --cities A,B,C (or 'training') or --spec TOML")
    unknown = [n for n in names if n not in spec and n not in BUNDLED_CITIES]
    if unknown:
        known = ", ".join(BUNDLED_CITIES)
        raise ConfigError(f"--cities: '{unknown[0]}' is neither a bundled city ({known}) nor in --spec")
    boxes = parse_city_boxes(args.bbox, names)
    cities = []
    for name in names:
        city = spec.get(name, AtlasCity(name, name))
        if name in boxes:
            city = AtlasCity(city.name, city.world, boxes[name], city.spacing_m, city.views)
        cities.append(city)
    return cities


def run(args: argparse.Namespace) -> int:
    from addressclip.resources import EVALUATION_CITIES
    from addressclip.world.atlas import render_atlas

    cities = cities_from_args(args)
    held_out = [c.name for c in cities if c.name in EVALUATION_CITIES]
    if held_out:
        print(f"note: {', '.join(held_out)} are evaluation cities; a foundation pretrained here sees them")
    result = render_atlas(cities, args.out, **render_options_from_args(args))
    for line in result.summary_lines():
        print(line)
    return 0
