"""Benchmark the renderer: images/s of a full world render, and per-view CPU time in one process.

Targets (from the project issue): >= 100 images/s at 128x128 on 2 cores; the `demo` world
(Helsinki centre, >= 10,000 images) renders in under 3 minutes. Writes JSON (not a timed test).

    .venv/bin/python speed/bench_render.py [--world demo] [--workers 2] [--size 128] [--out FILE.json]

The render goes to a temporary folder (deleted afterwards) unless --keep DIR is given. Reports the
load average before and after: other processes on the machine slow the figures down. Copies of the
world's contact sheet (JPEG) and capture map go beside the JSON, for the README.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from addressclip.atomic import write_text_atomic
from addressclip.world import render_world
from addressclip.world.assets import load_assets
from addressclip.world.captures import world_tag
from addressclip.world.params import RenderParams
from addressclip.world.render import prepare_world
from addressclip.world.view import render_capture


def single_process_view_ms(world: str, size: int, captures: int = 40) -> dict[str, float]:
    """CPU milliseconds per view for `captures` capture points x 4 views, in this process."""
    from addressclip.world.captures import capture_points

    params = RenderParams.resolve(world, size=size)
    _, scene = prepare_world(params)
    points = capture_points(scene, params.spacing_m, "bench")
    chosen = np.random.default_rng(0).choice(len(points), min(captures, len(points)), replace=False)
    assets = load_assets()
    started_cpu, started = time.process_time(), time.perf_counter()
    views = 0
    for i in chosen:
        views += len(
            render_capture(
                scene, assets, seed=0, index=int(i), xy=points.xy[i], bearing=points.bearing[i], views=4,
                width=params.width, height=params.height, jpeg_quality=params.jpeg_quality,
            )
        )  # fmt: skip
    return {
        "views": views,
        "cpu_ms_per_view": 1000 * (time.process_time() - started_cpu) / views,
        "wall_ms_per_view": 1000 * (time.perf_counter() - started) / views,
    }


def save_figures(result, folder: Path, world: str) -> list[str]:
    """README-sized copies of the contact sheet (JPEG) and the capture map."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    saved = []
    sheet = result.pictures.get("contact_sheet")
    if sheet is not None and sheet.is_file():
        target = folder / f"render_{world}_contact_sheet.jpg"
        with Image.open(sheet) as image:
            image.convert("RGB").save(target, format="JPEG", quality=85)
        saved.append(str(target))
    world_map = result.pictures.get("capture_map")
    if world_map is not None and world_map.is_file():
        target = folder / f"render_{world}_capture_map.png"
        shutil.copyfile(world_map, target)
        saved.append(str(target))
    return saved


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world", default="demo")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", type=Path, help="render into this folder and keep it")
    parser.add_argument("--out", type=Path, default=Path("speed/results/render.json"))
    args = parser.parse_args()

    load_before = os.getloadavg()
    single = single_process_view_ms(args.world, args.size)
    folder = args.keep or Path(tempfile.mkdtemp(prefix="bench-render-"))
    try:
        started = time.perf_counter()
        result = render_world(
            args.world,
            folder,
            seed=args.seed,
            size=args.size,
            workers=args.workers,
            force=True,
            progress=True,
        )
        total = time.perf_counter() - started
        figures = save_figures(result, args.out.parent, world_tag(args.world))
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)
    record = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "load_average_before": [round(v, 2) for v in load_before],
        "load_average_after": [round(v, 2) for v in os.getloadavg()],
        "world": args.world,
        "size": args.size,
        "workers": result.workers,
        "images": result.images,
        "locations": result.locations,
        "addresses": result.addresses,
        "render_seconds": round(result.render_seconds, 2),
        "images_per_second": round(result.images_per_second, 1),
        "total_seconds_with_build_reference_pictures": round(total, 2),
        "single_process": {k: round(v, 2) for k, v in single.items()},
        "targets": {"images_per_second": 100, "demo_total_seconds": 180},
        "reference": result.reference,
        "figures": figures,
    }
    text = json.dumps(record, indent=2)
    print(text)
    write_text_atomic(args.out, text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
