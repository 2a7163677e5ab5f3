"""`render_atlas`: several cities rendered into ONE dataset, the corpus a street CLIP is pretrained on.

Layout of an atlas folder OUT:

- `OUT/cities/<city>/`: one ordinary render per city (`render_world`, with its own `world.json`,
  AddressBook, reference table, contact sheet and map). Each is cached by its parameters hash, so a
  second run with one more city renders only that one, and a changed box re-renders only its city.
- `OUT/manifest.parquet`: every city's rows in one manifest (schema 2) whose image root is
  `OUT/cities`: `path` is `<city>/images/...`, `city` names the city, `location_id` and `street_id`
  are prefixed `<city>:` (two cities can share a street name, e.g. "High Street"), `address_id`
  stays the city's own AddressBook id (checked unique across cities) and captions are the render's
  scene captions (what is visible, never the address). The manifest has no AddressBook of its own:
  the books differ in UTM zone, so `atlas.json` lists each city's.
- `OUT/atlas.json`: the cities with their world, box, render hash, counts and timings.

Splits are per city: each city keeps the train/val/test split by capture location of its own render,
so a city's val/test addresses are always in that city's train split.
"""

from __future__ import annotations

import json
import os
import re
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from addressclip.atomic import write_text_atomic
from addressclip.errors import AddressclipError, ConfigError
from addressclip.geo.bbox import BBox

ATLAS_FILE = "atlas.json"
CITIES_DIR = "cities"
MANIFEST_NAME = "manifest.parquet"
_CITY_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")


@dataclass(frozen=True)
class AtlasCity:
    """One city of an atlas: its name (the `city` column and folder), its world and its box."""

    name: str
    world: str  # a bundled city name or the path of an extract
    bbox: BBox | None = None  # None: the bundled city's default box, or the whole extract
    spacing_m: float | None = None  # None: the atlas' spacing
    views: int | None = None


@dataclass
class AtlasResult:
    out: Path
    manifest: Path
    cities: dict[str, dict[str, object]] = field(default_factory=dict)
    rendered: list[str] = field(default_factory=list)  # cities rendered by this run (not reused)
    images: int = 0
    seconds: float = 0.0

    def summary_lines(self) -> list[str]:
        lines = []
        for name, info in self.cities.items():
            how = (
                "reused"
                if info["reused"]
                else f"rendered in {info['seconds']:.0f} s ({info['images_per_second']:.0f} img/s)"
            )
            lines.append(f"  {name:18s} {info['images']:6d} images {info['addresses']:5d} addresses  {how}")
        lines.append(
            f"atlas: {self.images} images from {len(self.cities)} cities "
            f"({len(self.rendered)} rendered now) in {self.seconds:.0f} s; wrote {self.manifest}"
        )
        return lines


def check_city_name(name: str, field: str = "--cities") -> str:
    if not _CITY_NAME.match(name):
        raise ConfigError(
            f"{field}: city name '{name}' must be lower-case letters, digits, '-' or '_' (at most 40)"
        )
    return name


def parse_cities(text: str, exclude: tuple[str, ...] | None = None) -> list[str]:
    """'porto,london' -> names; 'training' -> every bundled city but `exclude` (the evaluation cities)."""
    from addressclip.resources import EVALUATION_CITIES, training_cities

    names: list[str] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        if item == "training":
            names.extend(training_cities(EVALUATION_CITIES if exclude is None else exclude))
        else:
            names.append(check_city_name(item))
    if not names:
        raise ConfigError(f"--cities: '{text}' names no city (give e.g. porto,london or 'training')")
    return list(dict.fromkeys(names))


def parse_city_boxes(items: list[str], cities: list[str]) -> dict[str, BBox]:
    """`--bbox CITY:S,W,N,E` items (a bare S,W,N,E when the atlas has one city) -> {city: box}."""
    boxes: dict[str, BBox] = {}
    for item in items:
        name, sep, box = item.partition(":")
        if not sep:
            if len(cities) != 1:
                raise ConfigError(
                    f"--bbox '{item}': name the city, e.g. --bbox porto:41.14,-8.62,41.15,-8.60"
                )
            name, box = cities[0], item
        name = name.strip()
        if name not in cities:
            raise ConfigError(f"--bbox '{item}': city '{name}' is not in --cities ({', '.join(cities)})")
        boxes[name] = BBox.parse(box, field=f"--bbox {name}")
    return boxes


def load_spec(path: str | Path) -> dict[str, AtlasCity]:
    """Cities of a TOML spec: `[cities.NAME]` tables with optional `world`, `bbox`, `spacing`, `views`.

    `bbox` is "S,W,N,E" or a list of four numbers; `world` defaults to the bundled city NAME.
    """
    path = Path(path)
    try:
        content = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ConfigError(f"--spec {path}: cannot read ({error.strerror or error})") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"--spec {path}: not valid TOML ({error})") from None
    tables = content.get("cities")
    if not isinstance(tables, dict) or not tables:
        raise ConfigError(f'--spec {path}: needs [cities.NAME] tables, e.g. [cities.porto] bbox = "S,W,N,E"')
    cities: dict[str, AtlasCity] = {}
    for name, table in tables.items():
        where = f"--spec {path} [cities.{name}]"
        check_city_name(name, where)
        if not isinstance(table, dict):
            raise ConfigError(f"{where}: must be a table")
        unknown = sorted(set(table) - {"world", "bbox", "spacing", "views"})
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)} (world, bbox, spacing, views)")
        box = table.get("bbox")
        if isinstance(box, list):
            box = ",".join(str(v) for v in box)
        world = str(table.get("world", name))
        if "world" in table and not Path(world).is_absolute() and ("/" in world or "." in world):
            world = str((path.parent / world).resolve())  # a relative extract path is the spec's neighbour
        cities[name] = AtlasCity(
            name,
            world,
            None if box is None else BBox.parse(str(box), field=f"{where} bbox"),
            None if table.get("spacing") is None else float(table["spacing"]),
            None if table.get("views") is None else int(table["views"]),
        )
    return cities


def render_atlas(
    cities: list[AtlasCity],
    out: str | Path,
    *,
    seed: int = 0,
    size: int | tuple[int, int] | str = 128,
    spacing_m: float | None = None,
    views: int | None = None,
    workers: int | None = None,
    jpeg_quality: int = 90,
    split_ratios: tuple[float, float, float] = (0.8, 0.1, 0.1),
    min_points_per_address: int = 5,
    captioner: str = "scene",
    partition=None,
    force: bool = False,
    pictures: bool = True,
    progress: bool = True,
) -> AtlasResult:
    """Render (or reuse) every city, then write the atlas manifest and `atlas.json` (see module docstring)."""
    from addressclip.data.manifest import read_manifest, write_manifest
    from addressclip.world.render import render_world

    started = time.perf_counter()
    if not cities:
        raise ConfigError("atlas: no city given")
    names = [c.name for c in cities]
    if len(set(names)) != len(names):
        raise ConfigError(f"atlas: a city is named twice ({', '.join(names)})")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise AddressclipError(f"{out}: output path exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / ATLAS_FILE).is_file():
        raise AddressclipError(
            f"{out}: folder is not empty and holds no atlas ({ATLAS_FILE}); choose an empty or new folder"
        )
    root = out / CITIES_DIR
    root.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / ATLAS_FILE, json.dumps({"complete": False}) + "\n")  # marks the folder ours
    result = AtlasResult(out=out, manifest=out / MANIFEST_NAME)
    manifests: dict[str, Path] = {}
    for city in cities:
        if progress:
            print(f"atlas: {city.name} ({city.world})", flush=True)
        rendered = render_world(
            city.world,
            root / city.name,
            seed=seed,
            size=size,
            spacing_m=city.spacing_m if city.spacing_m is not None else spacing_m,
            views=city.views if city.views is not None else views,
            workers=workers,
            jpeg_quality=jpeg_quality,
            split_ratios=split_ratios,
            min_points_per_address=min_points_per_address,
            captioner=captioner,
            partition=partition,
            bbox=city.bbox,
            force=force,
            pictures=pictures,
            progress=progress,
        )
        if not rendered.reused:
            result.rendered.append(city.name)
        manifests[city.name] = rendered.manifest
        splits = read_manifest(rendered.manifest).frame["split"].value_counts().to_dict()
        result.cities[city.name] = {
            "world": city.world,
            "bbox": None if rendered.params.bbox is None else list(rendered.params.bbox),
            "hash": rendered.params.hash,
            "folder": f"{CITIES_DIR}/{city.name}",
            "addressbook": f"{CITIES_DIR}/{city.name}/addressbook",
            "images": rendered.images,
            "locations": rendered.locations,
            "addresses": rendered.addresses,
            "reused": rendered.reused,
            "seconds": round(rendered.seconds, 2),
            "images_per_second": round(rendered.images_per_second, 1),
            "workers": rendered.workers,
            "splits": splits,
        }
    frame = combine_cities(manifests, root)
    write_manifest(frame, result.manifest, root, None)
    result.images = len(frame)
    result.seconds = time.perf_counter() - started
    content = {
        "complete": True,
        "manifest": MANIFEST_NAME,
        "images": result.images,
        "cities": result.cities,
        "params": {
            "seed": seed, "size": str(size), "spacing_m": spacing_m, "views": views,
            "jpeg_quality": jpeg_quality,
            "split_ratios": list(split_ratios), "min_points_per_address": min_points_per_address,
            "captioner": captioner, "partition": None if partition is None else partition.to_dict(),
        },
        "seconds": round(result.seconds, 2),
    }  # fmt: skip
    write_text_atomic(out / ATLAS_FILE, json.dumps(content, indent=2, ensure_ascii=False, default=str) + "\n")
    return result


def combine_cities(manifests: dict[str, Path], root: Path) -> pd.DataFrame:
    """The atlas manifest's rows: every city's manifest re-rooted at `root` (the atlas' `cities/`
    folder), tagged with its city, location and street ids prefixed `<city>:`; address ids checked
    unique across cities (the union of the cities' addresses is the multi-city candidate set)."""
    frame = pd.concat([_city_rows(name, path, root) for name, path in manifests.items()], ignore_index=True)
    _check_unique_addresses(frame)
    return frame


def _city_rows(name: str, manifest_path: Path, root: Path) -> pd.DataFrame:
    """One city's manifest rows, re-rooted at the atlas' `cities/` folder and tagged with the city."""
    from addressclip.data.manifest import read_manifest

    manifest = read_manifest(manifest_path)
    frame = manifest.frame.copy()
    prefix = Path(os.path.relpath(manifest.image_root, root.resolve())).as_posix()
    frame["path"] = [f"{prefix}/{p}" for p in frame["path"]]
    frame["city"] = name
    frame["location_id"] = [f"{name}:{v}" for v in frame["location_id"]]
    frame["street_id"] = [f"{name}:{v}" for v in frame["street_id"]]
    return frame


def _check_unique_addresses(frame: pd.DataFrame) -> None:
    """An address id must belong to one city (ids hash geometry, so a clash means the same box twice)."""
    per_id = frame.groupby("address_id")["city"].nunique()
    shared = per_id[per_id > 1]
    if len(shared):
        raise AddressclipError(
            f"atlas: address id {shared.index[0]} occurs in several cities; are two cities the same box?"
        )
