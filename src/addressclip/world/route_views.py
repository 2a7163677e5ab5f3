"""Pixels of held-out routes (`world.routes`): one forward view per route position, rendered with the
scene, camera and camera noise of the training views, at positions and draws training never used.

- the scene is the rendered world's own: `render_params_of(world_dir)` reads its `world.json`, and
  `world.render.prepare_world` rebuilds the same AddressBook cut and districts (the hash is checked);
- the view looks along the direction of travel (`route.heading`), with the training views' yaw and
  pitch jitter and lane offset;
- the weather and light are drawn once per route (a walk does not change the weather every 10 m),
  the cars, pedestrians and camera jitter once per view;
- draws come from (world seed, route seed, route number, step) and an index range (from 2^40) that
  the world's capture indices never reach, so no route view repeats a training draw.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np

from addressclip.errors import AddressclipError
from addressclip.world.assets import Assets
from addressclip.world.conditions import sample_conditions
from addressclip.world.params import RenderParams
from addressclip.world.raster import render_frame
from addressclip.world.routes import Route
from addressclip.world.scene import Scene
from addressclip.world.view import encode_jpeg, finish_pixels, setup_capture, view_camera

WORLD_FILE = "world.json"
ROUTE_INDEX_BASE = 1 << 40  # capture indices of routes start here (a world's are < 2^32)
STEPS_PER_ROUTE = 1 << 16
ROUTES_PER_SEED = 1 << 20
_ROUTE_STREAM = 2_000_003  # keeps a route's weather draw apart from the per-view draws


def render_params_of(world_dir: str | Path) -> RenderParams:
    """The parameters a finished render in `world_dir` was made with (checked against its hash)."""
    from addressclip.geo.partition import PartitionConfig

    path = Path(world_dir) / WORLD_FILE
    if not path.is_file():
        raise AddressclipError(f"{path}: not found; routes need a world rendered by `addressclip render`")
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
        given = stored["params"]
    except (OSError, ValueError, KeyError, TypeError):
        raise AddressclipError(f"{path}: unreadable or without 'params'; render the world again") from None
    if stored.get("complete") is not True:
        raise AddressclipError(f"{path}: the render did not finish; render the world again")
    params = RenderParams.resolve(
        given["world"],
        seed=int(given["seed"]),
        size=(int(given["width"]), int(given["height"])),
        spacing_m=float(given["spacing_m"]),
        views=int(given["views"]),
        crop_half_side_m=given.get("crop_half_side_m"),
        jpeg_quality=int(given["jpeg_quality"]),
        split_ratios=tuple(given["split_ratios"]),
        min_points_per_address=int(given["min_points_per_address"]),
        captioner=str(given.get("captioner", "scene")),
        partition=PartitionConfig.from_dict(dict(given.get("partition") or {})),
        bbox=tuple(given["bbox"]) if given.get("bbox") else None,
    )
    if params.hash != stored.get("hash"):
        raise AddressclipError(
            f"{path}: its parameters no longer give its hash {stored.get('hash')} (extract or renderer "
            "changed); route views would not match the training views — render the world again"
        )
    return params


def route_view_index(route_seed: int, route_number: int, step: int) -> int:
    """The capture index a route view is seeded with (disjoint from every world capture index)."""
    if not (0 <= step < STEPS_PER_ROUTE and 0 <= route_number < ROUTES_PER_SEED and route_seed >= 0):
        raise AddressclipError(
            f"routes: step {step} / route {route_number} / seed {route_seed} outside the seeded range"
        )
    return ROUTE_INDEX_BASE + (route_seed * ROUTES_PER_SEED + route_number) * STEPS_PER_ROUTE + step


def render_route(
    scene: Scene,
    assets: Assets,
    route: Route,
    params: RenderParams,
    *,
    route_seed: int,
    route_number: int,
) -> list[bytes]:
    """One JPEG per route position (the world's size and quality), looking along the route."""
    weather_rng = np.random.default_rng([params.seed, _ROUTE_STREAM, route_seed, route_number])
    conditions = sample_conditions(weather_rng)
    xy = scene.to_local(route.utm[:, 0], route.utm[:, 1])
    jpegs = []
    for step in range(len(route)):
        index = route_view_index(route_seed, route_number, step)
        bearing = float(route.heading[step])
        setup = replace(setup_capture(scene, params.seed, index, xy[step], bearing), conditions=conditions)
        rng = np.random.default_rng([params.seed, index, 0])
        camera = view_camera(setup, bearing, 0, 1, rng)
        frame = render_frame(
            scene, setup.local, camera, conditions, setup.occluders, assets, params.width, params.height
        )
        jpegs.append(encode_jpeg(finish_pixels(frame.rgb, conditions, rng), params.jpeg_quality))
    return jpegs
