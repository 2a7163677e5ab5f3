"""What a rendered world is made of: the world presets, the render parameters and their hash.

The hash covers every parameter that changes the pixels or the dataset (and the renderer version),
so that `make demo` can reuse an existing render: `world.json` beside the dataset holds the
parameters and the hash, and a render whose hash matches is not redone.

A world is a preset ('tiny', 'demo'), a bundled city ('porto', 'london', ..., see
`addressclip.resources.BUNDLED_CITIES`; rendered on the city's default box unless one is given) or a
path to an extract. `bbox` (S,W,N,E) keeps only that part of the extract (`addressclip.geo.bbox`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from addressclip.errors import ConfigError

# Bump when a change to the renderer changes its output for the same parameters.
RENDERER_VERSION = "1"

MIN_SIZE = 32  # below this a street view holds no usable structure
MAX_WIDTH, MAX_HEIGHT = 640, 480
MAX_VIEWS = 24  # Pitts250k takes 24 views per capture point


@dataclass(frozen=True)
class WorldPreset:
    """A named world: a bundled OSM extract, an optional crop and the render defaults for it."""

    extract: str  # bundled extract name, see addressclip.resources.BUNDLED_EXTRACTS
    spacing_m: float
    views: int
    # Crop to a square of this half side (metres) around the extract's street centre; None = all.
    crop_half_side_m: float | None = None
    description: str = ""


WORLD_PRESETS: dict[str, WorldPreset] = {
    "tiny": WorldPreset(
        extract="karhula",
        spacing_m=24.0,
        views=2,
        crop_half_side_m=330.0,
        description="Karhula (suburban Kotka), a few hundred images — for tests",
    ),
    "demo": WorldPreset(
        extract="helsinki",
        spacing_m=10.0,
        views=4,
        description="Helsinki centre (~1 x 1.7 km), >= 10,000 images",
    ),
}


@dataclass(frozen=True)
class RenderParams:
    """Everything that decides the rendered dataset. Build with `RenderParams.resolve`."""

    world: str  # preset name or path of an .osm.pbf
    extract_path: str  # resolved OSM file
    seed: int = 0
    width: int = 128
    height: int = 128
    spacing_m: float = 12.0
    views: int = 4
    crop_half_side_m: float | None = None
    jpeg_quality: int = 90
    # Shares of capture locations for train/val/test (all views of a location share its split).
    split_ratios: tuple[float, float, float] = (0.8, 0.1, 0.1)
    min_points_per_address: int = 5  # capture locations per address before sparse ones are merged
    label_max_dist_m: float = 30.0
    captioner: str = "scene"
    extract_sha1: str = ""
    renderer_version: str = RENDERER_VERSION
    # The partition rules that differ from `PartitionConfig()` (a PartitionConfig.to_dict() subset);
    # empty for the defaults, so that the hash of a default render stays what it was.
    partition: tuple[tuple[str, object], ...] = ()
    # S, W, N, E degrees: only this part of the extract (None: all of it; not hashed then, as above)
    bbox: tuple[float, float, float, float] | None = None

    @classmethod
    def resolve(
        cls,
        world: str | Path,
        *,
        seed: int = 0,
        size: int | tuple[int, int] | str = 128,
        spacing_m: float | None = None,
        views: int | None = None,
        crop_half_side_m: float | None = None,
        jpeg_quality: int = 90,
        split_ratios: tuple[float, float, float] = (0.8, 0.1, 0.1),
        min_points_per_address: int = 5,
        captioner: str = "scene",
        partition=None,
        bbox=None,
    ) -> RenderParams:
        """Validate the user's choices against the preset (if any); raise ConfigError naming the bad one.

        `bbox`: a `geo.bbox.BBox`, an (S, W, N, E) tuple or None (a bundled city's default box).
        """
        from addressclip.geo.bbox import BBox
        from addressclip.resources import BUNDLED_CITIES, bundled_extract

        world_text = str(world)
        preset = WORLD_PRESETS.get(world_text)
        if isinstance(bbox, tuple | list):
            bbox = BBox(*(float(v) for v in bbox))
        if preset is None and world_text in BUNDLED_CITIES:
            city = BUNDLED_CITIES[world_text]
            extract = bundled_extract(world_text)
            spacing_m = 12.0 if spacing_m is None else spacing_m
            views = 4 if views is None else views
            if bbox is None and city.bbox is not None:
                bbox = BBox(*city.bbox)
        elif preset is not None:
            extract = bundled_extract(preset.extract)
            spacing_m = preset.spacing_m if spacing_m is None else spacing_m
            views = preset.views if views is None else views
            if crop_half_side_m is None:
                crop_half_side_m = preset.crop_half_side_m
        else:
            extract = Path(world_text)
            if not world_text.endswith((".osm.pbf", ".pbf", ".osm", ".osm.bz2", ".osm.gz")):
                known = ", ".join([*sorted(WORLD_PRESETS), *BUNDLED_CITIES])
                raise ConfigError(f"world: unknown world '{world_text}' (use {known} or a PATH.osm.pbf)")
            if not extract.is_file():
                raise ConfigError(f"world: OSM extract '{world_text}' not found")
            spacing_m = 12.0 if spacing_m is None else spacing_m
            views = 4 if views is None else views
        width, height = parse_size(size)
        _check(spacing_m is not None and spacing_m > 0, "spacing", f"must be > 0 metres, got {spacing_m}")
        _check(spacing_m <= 1000, "spacing", f"must be <= 1000 metres, got {spacing_m}")
        _check(1 <= views <= MAX_VIEWS, "views", f"must be between 1 and {MAX_VIEWS}, got {views}")
        _check(0 <= seed < 2**32, "seed", f"must be in [0, 2^32), got {seed}")
        _check(30 <= jpeg_quality <= 100, "jpeg_quality", f"must be in [30, 100], got {jpeg_quality}")
        from addressclip.data.splits import check_ratios

        split_ratios = check_ratios(tuple(split_ratios))
        _check(min_points_per_address >= 1, "min_points_per_address", "must be >= 1")
        if crop_half_side_m is not None:
            _check(crop_half_side_m > 0, "crop", f"must be > 0 metres, got {crop_half_side_m}")
        return cls(
            world=world_text,
            extract_path=str(extract),
            seed=int(seed),
            width=width,
            height=height,
            spacing_m=float(spacing_m),
            views=int(views),
            crop_half_side_m=None if crop_half_side_m is None else float(crop_half_side_m),
            jpeg_quality=int(jpeg_quality),
            split_ratios=split_ratios,
            min_points_per_address=int(min_points_per_address),
            captioner=captioner,
            extract_sha1=_file_sha1(extract),
            partition=_partition_changes(partition),
            bbox=None if bbox is None else bbox.as_tuple(),
        )

    def to_dict(self) -> dict[str, object]:
        content = asdict(self)
        content["partition"] = {key: value for key, value in self.partition}
        content["bbox"] = None if self.bbox is None else list(self.bbox)
        return content

    @property
    def partition_config(self):
        """The `PartitionConfig` this world is cut with (the defaults plus `partition`)."""
        from addressclip.geo.partition import PartitionConfig

        return PartitionConfig.from_dict(dict(self.partition))

    @property
    def hash(self) -> str:
        """Short hash of everything that decides the output (not of where the extract lives)."""
        content = self.to_dict()
        content.pop("extract_path")  # the same file elsewhere gives the same world
        if not content["partition"]:
            content.pop("partition")  # default rules: the hash renders made before the option had
        if content["bbox"] is None:
            content.pop("bbox")  # the whole extract: likewise
        text = json.dumps(content, sort_keys=True)
        return hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]

    def with_changes(self, **changes: object) -> RenderParams:
        return replace(self, **changes)


def _partition_changes(partition) -> tuple[tuple[str, object], ...]:
    """The (key, value) pairs of a PartitionConfig that differ from the defaults, sorted by key."""
    if partition is None:
        return ()
    from addressclip.geo.partition import PartitionConfig

    default = PartitionConfig().to_dict()
    given = partition.to_dict()
    return tuple(
        (key, tuple(value) if isinstance(value, list) else value)
        for key, value in sorted(given.items())
        if value != default[key]
    )


def parse_size(size: int | tuple[int, int] | str) -> tuple[int, int]:
    """128 -> (128, 128); '640x480' -> (640, 480); ConfigError when out of range."""
    try:
        if isinstance(size, str):
            text = size.lower().strip()
            if "x" in text:
                w_text, h_text = text.split("x", 1)
                width, height = int(w_text), int(h_text)
            else:
                width = height = int(text)
        elif isinstance(size, tuple):
            width, height = int(size[0]), int(size[1])
        else:
            width = height = int(size)
    except (TypeError, ValueError):
        raise ConfigError(f"size: '{size}' is not a size (give PX or WxH, e.g. 128 or 640x480)") from None
    _check(
        width >= MIN_SIZE and height >= MIN_SIZE,
        "size",
        f"{width}x{height} is too small (at least {MIN_SIZE}x{MIN_SIZE} pixels)",
    )
    _check(
        width <= MAX_WIDTH and height <= MAX_HEIGHT,
        "size",
        f"{width}x{height} is too large (at most {MAX_WIDTH}x{MAX_HEIGHT})",
    )
    return width, height


def _check(condition: bool, name: str, problem: str) -> None:
    if not condition:
        raise ConfigError(f"{name}: {problem}")


def _file_sha1(path: Path) -> str:
    digest = hashlib.sha1()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]
