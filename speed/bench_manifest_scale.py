"""A manifest of millions of rows: `addressclip build --trust-list` and `addressclip validate` timed.

Generates a CosPlace path list of N names (default 2,000,000) over the Liechtenstein street network:
capture points spread along the AddressBook's sub-streets (by length, a few metres off the centre
line), `--views` headings per point, each name `db/@east@north@zone@band@lat@lon@@@heading@@@@@@.jpg`.
Then runs, each in its own child process (its own peak RSS, read from wait4):

    addressclip build --format cosplace --images ROOT --paths-list LIST --trust-list --osm PBF --out OUT
    addressclip validate OUT/manifest.parquet --no-files

(`--no-files`: the names are synthetic, no JPEG exists; what is timed is the manifest itself.)
Writes speed/results/manifest_scale.json with seconds, peak RSS and the load average before/after.

    nice -n 10 .venv/bin/python speed/bench_manifest_scale.py            # 2 M rows, ~2 minutes
    .venv/bin/python speed/bench_manifest_scale.py --rows 20000 --out /tmp/x.json   # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import shapely

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OSM = ROOT.parent / "shared" / "data" / "osm" / "liechtenstein.osm.pbf"
TARGETS = {"build_s": 60.0, "validate_s": 30.0, "peak_rss_gb": 4.0}


def synthetic_names(book, rows: int, views: int, seed: int) -> list[str]:
    """`rows` CosPlace names over the book's sub-streets (locations by street length, `views` each)."""
    rng = np.random.default_rng(seed)
    geometries = book.table["geometry"].to_numpy(dtype=object)
    lengths = shapely.length(geometries)
    locations = -(-rows // views)
    street = rng.choice(len(geometries), size=locations, p=lengths / lengths.sum())
    along = rng.random(locations) * lengths[street]
    points = shapely.line_interpolate_point(geometries[street], along)
    east = shapely.get_x(points) + rng.normal(0.0, 3.0, locations)
    north = shapely.get_y(points) + rng.normal(0.0, 3.0, locations)
    lon, lat = book.projection.to_lonlat(east, north)
    zone, band = book.projection.zone, book.projection.band
    prefixes = [
        f"db/@{e:010.2f}@{n:010.2f}@{zone}@{band}@{a:09.5f}@{o:010.5f}@@@"
        for e, n, a, o in zip(east.tolist(), north.tolist(), lat.tolist(), lon.tolist(), strict=True)
    ]
    headings = [str(round(h)) for h in np.linspace(0, 360, views, endpoint=False)]
    names = [f"{p}{h}@@@@@@.jpg" for p in prefixes for h in headings]
    return names[:rows]


def run_child(command: list[str]) -> dict[str, float]:
    """Run one command; its wall seconds and peak RSS (this child's own, from wait4)."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert process.stdout is not None
    output = process.stdout.read().decode(errors="replace")
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - started
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({process.returncode}):\n{output[-3000:]}")
    return {
        "seconds": round(seconds, 2),
        "peak_rss_gb": round(usage.ru_maxrss / 1024**2, 3),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
        "output_tail": output.strip().splitlines()[-6:],
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--views", type=int, default=12, help="headings per capture point (12)")
    parser.add_argument("--osm", type=Path, default=DEFAULT_OSM)
    parser.add_argument("--work", type=Path, default=Path("/tmp/addressclip-bench-manifest"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "speed" / "results" / "manifest_scale.json")
    args = parser.parse_args()

    from addressclip.atomic import write_text_atomic
    from addressclip.geo.addressbook import AddressBook

    args.work.mkdir(parents=True, exist_ok=True)
    images = args.work / "images"
    images.mkdir(exist_ok=True)
    listing = args.work / f"paths-{args.rows}.txt"
    started = time.perf_counter()
    book = AddressBook.from_osm(args.osm)
    book_s = time.perf_counter() - started
    started = time.perf_counter()
    names = synthetic_names(book, args.rows, args.views, args.seed)
    listing.write_text("\n".join(names) + "\n", encoding="utf-8")
    generate_s = time.perf_counter() - started
    del names

    cli = [sys.executable, "-m", "addressclip.cli"]
    dataset = args.work / f"dataset-{args.rows}"
    load_before = os.getloadavg()
    build = run_child(
        [*cli, "build", "--format", "cosplace", "--images", str(images), "--paths-list", str(listing),
         "--trust-list", "--osm", str(args.osm), "--out", str(dataset), "--quiet"]
    )  # fmt: skip
    validate = run_child([*cli, "validate", str(dataset / "manifest.parquet"), "--no-files"])
    load_after = os.getloadavg()
    report = json.loads((dataset / "build_report.json").read_text())
    result = {
        "what": "CosPlace path list -> manifest with --trust-list, then validate --no-files",
        "command": " ".join(["nice -n 10 .venv/bin/python speed/bench_manifest_scale.py", *sys.argv[1:]]),
        "rows": args.rows,
        "views_per_location": args.views,
        "osm": args.osm.name,
        "addressbook_s_in_bench_process": round(book_s, 2),
        "generate_list_s": round(generate_s, 2),
        "list_mb": round(listing.stat().st_size / 1e6, 1),
        "build": build,
        "validate": validate,
        "manifest_counts": report["counts"],
        "addresses_before_merge": report["labelling"].get("addresses_before_merge"),
        "targets": TARGETS,
        "meets_targets": {
            "build_s": build["seconds"] <= TARGETS["build_s"],
            "validate_s": validate["seconds"] <= TARGETS["validate_s"],
            "peak_rss_gb": max(build["peak_rss_gb"], validate["peak_rss_gb"]) <= TARGETS["peak_rss_gb"],
        },
        "cpus": os.cpu_count(),
        "load_avg_before": [round(v, 2) for v in load_before],
        "load_avg_after": [round(v, 2) for v in load_after],
        "python": platform.python_version(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.out, json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("rows", "build", "validate", "meets_targets")}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
