"""Rendering in worker processes: the scene is handed to each worker once, then chunks of captures.

Each worker writes its JPEGs straight into the staging folder and returns small records (path,
caption, a 16x16 thumbnail for the raw-pixel reference). Images do not depend on the worker count
or the chunking: every view is seeded from (seed, capture index, view).
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from pathlib import Path

import numpy as np

from addressclip.world.params import RenderParams
from addressclip.world.scene import Scene

CHUNK_CAPTURES = 24

_SCENE: Scene | None = None
_PARAMS: RenderParams | None = None
_IMAGES: Path | None = None


def _init(scene: Scene, params: RenderParams, images_dir: Path) -> None:
    global _SCENE, _PARAMS, _IMAGES
    _SCENE, _PARAMS, _IMAGES = scene, params, images_dir
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def image_name(utm_e: float, utm_n: float, zone: str, lat: float, lon: float, pano: str, view: int,
               heading: float, pitch: float, note: str) -> str:  # fmt: skip
    """The CosPlace `@` file name of one view (via the data layer's formatter)."""
    from addressclip.data.readers.cosplace import CosplaceName, format_cosplace_name

    return format_cosplace_name(
        CosplaceName(
            utm_east=round(float(utm_e), 2),
            utm_north=round(float(utm_n), 2),
            zone_number=int(zone[:-1]),
            zone_letter=zone[-1],
            lat=float(lat),
            lon=float(lon),
            pano_id=pano,
            tile_num=f"{view:02d}",
            heading=round(float(heading), 1),
            pitch=round(float(pitch), 1),
            timestamp="202401",
            note=note,
        )
    )


def _render_chunk(tasks: list[tuple]) -> list[dict]:
    from addressclip.world.assets import load_assets
    from addressclip.world.view import render_capture

    assert _SCENE is not None and _PARAMS is not None and _IMAGES is not None
    scene, params = _SCENE, _PARAMS
    assets = load_assets()
    records: list[dict] = []
    for capture, xy, bearing, folder, pano, lat, lon, utm_e, utm_n in tasks:
        views = render_capture(
            scene,
            assets,
            seed=params.seed,
            index=capture,
            xy=np.asarray(xy),
            bearing=bearing,
            views=params.views,
            width=params.width,
            height=params.height,
            jpeg_quality=params.jpeg_quality,
        )
        target = _IMAGES / folder
        target.mkdir(parents=True, exist_ok=True)
        for view in views:
            camera = view.camera
            name = image_name(
                utm_e, utm_n, scene.utm_zone, lat, lon, pano, view.view, camera.heading_deg, camera.pitch_deg,
                "addressclip-render",
            )  # fmt: skip
            (target / name).write_bytes(view.jpeg)
            records.append(
                {
                    "path": f"{folder}/{name}",
                    "location_id": pano,
                    "view": view.view,
                    "caption": view.caption,
                    "thumbnail": view.thumbnail,
                    "texts": view.content.readable_texts,
                    "weather": view.content.weather,
                }
            )
    return records


def _start_method() -> str:
    """'fork' (instant, shares the scene) unless a threaded library such as torch is loaded here.

    Forking a process that runs OpenMP/torch threads can deadlock the children, so then the
    workers start from a clean 'forkserver' (or 'spawn') process and receive the scene pickled.
    """
    methods = multiprocessing.get_all_start_methods()
    if "fork" in methods and "torch" not in sys.modules:
        return "fork"
    return "forkserver" if "forkserver" in methods else "spawn"


def render_all(scene: Scene, plan, params: RenderParams, images_dir: Path, *, workers: int | None,
               progress: bool) -> tuple[list[dict], int]:  # fmt: skip
    """Render every view of `plan` into `images_dir`; returns the records and the worker count used."""
    from tqdm import tqdm

    tasks = [
        (int(plan.index[i]), tuple(plan.captures.xy[i]), float(plan.captures.bearing[i]), plan.folder[i],
         plan.captures.location_id[i], float(plan.lat[i]), float(plan.lon[i]), float(plan.utm_e[i]),
         float(plan.utm_n[i]))
        for i in range(len(plan))
    ]  # fmt: skip
    chunks = [tasks[i : i + CHUNK_CAPTURES] for i in range(0, len(tasks), CHUNK_CAPTURES)]
    if workers is None:
        workers = os.cpu_count() or 1
    workers = max(1, min(int(workers), len(chunks)))
    total = len(tasks) * params.views
    records: list[dict] = []
    bar = tqdm(total=total, desc="rendering", unit="img", disable=None if progress else True)
    try:
        if workers == 1:
            _init(scene, params, images_dir)
            for chunk in chunks:
                part = _render_chunk(chunk)
                records.extend(part)
                bar.update(len(part))
        else:
            context = multiprocessing.get_context(_start_method())
            with context.Pool(workers, initializer=_init, initargs=(scene, params, images_dir)) as pool:
                for part in pool.imap_unordered(_render_chunk, chunks):
                    records.extend(part)
                    bar.update(len(part))
    finally:
        bar.close()
    records.sort(key=lambda r: r["path"])
    return records, workers
