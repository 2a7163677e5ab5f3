"""A paper-sized city: Liechtenstein's AddressBook, its labelling and a >= 200k-image capture plan.

SF-IAL-Large (the paper's largest set) covers 170 km² with 3,616 / 3,406 train / test sub-streets.
This script measures the same quantities on a whole-country OSM extract (default: Liechtenstein),
each stage in a fresh (spawned) process so that its peak RSS is its own:

* `partition`: read the extract and cut it into sub-streets (`AddressBook.from_osm`): time, peak RSS,
  sub-streets, streets, street names, area (convex hull of the street geometry, and its bounding box);
* `labelling`: label --points random GPS points inside the street box (the grid is built first and
  timed apart): points/s and peak RSS;
* `plan`: the capture plan `addressclip render` would render at --spacing / --views, without a pixel
  (`world.render.prepare_world` + `plan_captures`: capture points, labels, sparse sub-streets merged,
  splits): images, sub-streets after merging (train / test), images per address (min / median / max);
* `render` (optional, --render-bbox): `addressclip render --bbox` of a small part at the plan's
  settings (2 workers): its images/s and CPU seconds, and the projected time of the full plan.

    nice -n 10 .venv/bin/python speed/bench_paper_city.py [--osm PBF] [--spacing 10] [--views 8] \
        [--render-bbox S,W,N,E] [--out speed/results/paper_city.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from addressclip.atomic import write_text_atomic

DEFAULT_OSM = Path("/work/shared/data/osm/liechtenstein.osm.pbf")
PAPER = {"name": "SF-IAL-Large", "area_km2": 170, "train_images": 1_960_000, "test_images": 280_000,
         "train_sub_streets": 3616, "test_sub_streets": 3406}  # fmt: skip


def _rss_mib() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def stage_partition(osm: str) -> dict:
    import shapely

    from addressclip.geo.addressbook import AddressBook
    from addressclip.geo.osm import read_osm

    base = _rss_mib()
    started, started_cpu = time.perf_counter(), time.process_time()
    extract = read_osm(osm)
    read_s, read_cpu_s = time.perf_counter() - started, time.process_time() - started_cpu
    started, started_cpu = time.perf_counter(), time.process_time()
    book = AddressBook.from_osm(extract)
    partition_s, partition_cpu_s = time.perf_counter() - started, time.process_time() - started_cpu
    lines = shapely.union_all(list(book.table["geometry"]))
    hull_km2 = shapely.convex_hull(lines).area / 1e6
    min_x, min_y, max_x, max_y = lines.bounds
    return {
        "read_osm_s": round(read_s, 3),
        "read_osm_cpu_s": round(read_cpu_s, 3),
        "partition_s": round(partition_s, 3),
        "partition_cpu_s": round(partition_cpu_s, 3),
        "rss_after_imports_mib": round(base, 1),
        "peak_rss_mib": round(_peak_mib(), 1),
        "sub_streets": len(book),
        "streets": int(book.table["street"].nunique()),
        "street_names": int(book.summary()["street_names"]),
        "street_length_km": round(float(book.table["geometry"].map(lambda g: g.length).sum()) / 1000, 1),
        "area_km2_convex_hull": round(hull_km2, 1),
        "area_km2_bounding_box": round((max_x - min_x) * (max_y - min_y) / 1e6, 1),
        "projection": book.projection.label,
    }


def stage_labelling(osm: str, points: int, max_dist_m: float, repeats: int) -> dict:
    from addressclip.geo.addressbook import AddressBook

    book = AddressBook.from_osm(osm)
    base = _rss_mib()
    rng = np.random.default_rng(0)
    min_lon, min_lat, max_lon, max_lat = book.bounds
    lon, lat = rng.uniform(min_lon, max_lon, points), rng.uniform(min_lat, max_lat, points)
    started = time.perf_counter()
    book.label(lat[:1000], lon[:1000], max_dist_m)  # builds the segment grid (cached per radius)
    grid_s = time.perf_counter() - started
    best, best_cpu = float("inf"), float("inf")
    for _ in range(repeats):
        started, started_cpu = time.perf_counter(), time.process_time()
        result = book.label(lat, lon, max_dist_m)
        best = min(best, time.perf_counter() - started)
        best_cpu = min(best_cpu, time.process_time() - started_cpu)
    return {
        "points": points,
        "max_dist_m": max_dist_m,
        "grid_build_s": round(grid_s, 3),
        "label_s": round(best, 3),
        "points_per_s": round(points / best),
        "label_cpu_s": round(best_cpu, 3),
        "points_per_cpu_s": round(points / best_cpu),
        "labelled_share": round(float((result.index >= 0).mean()), 4),
        "rss_before_points_mib": round(base, 1),
        "peak_rss_mib": round(_peak_mib(), 1),
        "timing": f"best of {repeats}; includes lon/lat -> UTM",
    }


def stage_plan(osm: str, spacing_m: float, views: int, size: int, min_points: int) -> dict:
    import pandas as pd

    from addressclip.world.params import RenderParams
    from addressclip.world.render import SPLIT_FOLDERS, plan_captures, prepare_world

    params = RenderParams.resolve(osm, spacing_m=spacing_m, views=views, size=size,
                                  min_points_per_address=min_points)  # fmt: skip
    started, started_cpu = time.perf_counter(), time.process_time()
    book, scene = prepare_world(params)
    prepare_s, prepare_cpu_s = time.perf_counter() - started, time.process_time() - started_cpu
    started, started_cpu = time.perf_counter(), time.process_time()
    plan = plan_captures(scene, book, params)
    plan_s, plan_cpu_s = time.perf_counter() - started, time.process_time() - started_cpu
    split_of = {folder: split for split, folder in SPLIT_FOLDERS.items()}
    frame = pd.DataFrame({"address_id": plan.address_id, "split": [split_of[f] for f in plan.folder]})
    frame["images"] = views
    per_address = frame.groupby("address_id")["images"].sum()
    images_by_split = (frame.groupby("split")["images"].sum()).to_dict()
    addresses_by_split = frame.groupby("split")["address_id"].nunique().to_dict()
    return {
        "spacing_m": spacing_m,
        "views": views,
        "size": size,
        "min_points_per_address": min_points,
        "prepare_world_s": round(prepare_s, 2),
        "prepare_world_cpu_s": round(prepare_cpu_s, 2),
        "plan_captures_s": round(plan_s, 2),
        "plan_captures_cpu_s": round(plan_cpu_s, 2),
        "peak_rss_mib": round(_peak_mib(), 1),
        "locations": len(plan),
        "images": len(plan) * views,
        "images_by_split": {k: int(v) for k, v in images_by_split.items()},
        "sub_streets_before_merging": len(book),
        "addresses_after_merging": int(frame["address_id"].nunique()),
        "addresses_by_split": {k: int(v) for k, v in addresses_by_split.items()},
        "images_per_address": {
            "min": int(per_address.min()),
            "median": float(per_address.median()),
            "max": int(per_address.max()),
            "mean": round(float(per_address.mean()), 1),
        },
        "dropped_capture_points": plan.dropped,
    }


def _in_child(function, *args):
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        return pool.submit(function, *args).result()


def render_sample(osm: str, bbox: str, spacing_m: float, views: int, size: int, plan: dict) -> dict:
    """Render the --render-bbox part with `addressclip render` (same spacing/views/size as the plan)."""
    import shutil
    import subprocess
    import sys
    import tempfile

    out = Path(tempfile.mkdtemp(prefix="paper-city-render-"))
    command = [sys.executable, "-m", "addressclip.cli", "render", "--world", osm, "--bbox", bbox,
               "--spacing", str(spacing_m), "--views", str(views), "--size", str(size), "--workers", "2",
               "--no-pictures", "--out", str(out / "world")]  # fmt: skip
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    try:
        subprocess.run(command, check=True, capture_output=True, text=True)
        wall_s = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        record = json.loads((out / "world" / "world.json").read_text(encoding="utf-8"))
    finally:
        shutil.rmtree(out, ignore_errors=True)
    cpu_s = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    timing, counts = record["timing"], record["counts"]
    rate = float(timing["images_per_second"])
    images = int(counts["images"])
    return {
        "command": "addressclip " + " ".join(command[3:-2]) + " --out DIR",
        "bbox": bbox,
        "images": images,
        "locations": counts["locations"],
        "addresses": counts["addresses"],
        "workers": timing["workers"],
        "render_seconds": timing["render_seconds"],
        "command_seconds": round(wall_s, 1),
        "command_cpu_seconds": round(cpu_s, 1),
        "images_per_s": round(rate, 1),
        "cpu_ms_per_image_whole_command": round(1000 * cpu_s / images, 2),
        "projected_full_render_h_at_this_rate": round(plan["images"] / rate / 3600, 2),
        "projected_full_render_h_two_idle_cores": round(plan["images"] * cpu_s / images / 2 / 3600, 2),
        "note": "at this rate: plan images / the sample's images/s (pixels only) on the shared cores; "
        "two idle cores: the whole sample command's CPU seconds per image (scene, manifest included) "
        "x plan images / 2 (an upper bound for the pixels, the per-image share of a small sample's "
        "fixed costs being larger); the full render was not run",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--osm", type=Path, default=DEFAULT_OSM)
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--max-dist-m", type=float, default=30.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--spacing", type=float, default=10.0)
    parser.add_argument("--views", type=int, default=8)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--min-points", type=int, default=5)
    parser.add_argument("--render-bbox", metavar="S,W,N,E", help="render this part to measure images/s")
    parser.add_argument("--out", type=Path, default=Path("speed/results/paper_city.json"))
    args = parser.parse_args()

    load_before = os.getloadavg()
    osm = str(args.osm)
    partition = _in_child(stage_partition, osm)
    print(json.dumps({"partition": partition}, indent=2), flush=True)
    labelling = _in_child(stage_labelling, osm, args.points, args.max_dist_m, args.repeats)
    print(json.dumps({"labelling": labelling}, indent=2), flush=True)
    plan = _in_child(stage_plan, osm, args.spacing, args.views, args.size, args.min_points)
    print(json.dumps({"plan": plan}, indent=2), flush=True)
    record: dict[str, object] = {
        "command": "speed/bench_paper_city.py "
        + " ".join(
            f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if v is not None and k != "out"
        ),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "loadavg_before": [round(v, 2) for v in load_before],
            "loadavg_after": [round(v, 2) for v in os.getloadavg()],
        },
        "paper": PAPER,
        "extract": {"path": osm, "bytes": args.osm.stat().st_size},
        "partition": partition,
        "labelling": labelling,
        "plan": plan,
    }
    if args.render_bbox:
        record["render_sample"] = render_sample(
            osm, args.render_bbox, args.spacing, args.views, args.size, plan
        )
    write_text_atomic(args.out, json.dumps(record, indent=2, ensure_ascii=False) + "\n")
    print(json.dumps({"render_sample": record.get("render_sample")}, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
