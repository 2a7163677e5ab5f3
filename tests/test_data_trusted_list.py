"""`build --trust-list`: a CosPlace path list parsed vectorised, without touching the listed files.

The 2 M-row figure is speed/bench_manifest_scale.py; here a few thousand rows over the bundled Karhula
streets check that the vectorised reader says exactly what the per-name reader says.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import shapely

from addressclip.data.manifest import read_manifest, validate_manifest
from addressclip.data.readers import CosplaceName, format_cosplace_name, read_cosplace
from addressclip.data.readers.cosplace_list import read_cosplace_list
from addressclip.errors import ConfigError, InputError
from addressclip.geo.addressbook import AddressBook
from addressclip.resources import bundled_extract

BAD_LINES = [
    "# a comment",
    "",
    "x/@bad@.jpg",  # too few fields
    "x/@0000001.00@0000002.00@99@T@047.10000@0009.50000@@@@@@@@@.jpg",  # zone 99
    "y/@0000001.00@0000002.00@35@V@097.10000@0009.50000@@@@@@@@@.jpg",  # lat 97
    "y/@0000001.00@0000002.00@35@V@060.10000@0026.50000@@@north@@@@@@.jpg",  # heading 'north'
    "../outside/@0000001.00@0000002.00@35@V@060.10000@0026.50000@@@@@@@@@.jpg",
    "a/picture.png",
    "./val/queries/@0000001.00@0000002.00@35@v@060.10000@0026.50000@p7@@1e1@@@@@@.jpeg",
]


def karhula_names(rows: int, views: int = 6) -> list[str]:
    book = AddressBook.from_osm(bundled_extract("karhula"))
    rng = np.random.default_rng(0)
    geometries = book.table["geometry"].to_numpy(dtype=object)
    lengths = shapely.length(geometries)
    points = -(-rows // views)
    street = rng.choice(len(geometries), size=points, p=lengths / lengths.sum())
    where = shapely.line_interpolate_point(geometries[street], rng.random(points) * lengths[street])
    east, north = shapely.get_x(where), shapely.get_y(where)
    lon, lat = book.projection.to_lonlat(east, north)
    zone, band = book.projection.zone, book.projection.band
    names = []
    for e, n, a, o in zip(east.tolist(), north.tolist(), lat.tolist(), lon.tolist(), strict=True):
        for heading in range(0, 360, 360 // views):
            fields = CosplaceName(e, n, zone, band, a, o, heading=float(heading))
            names.append("db/" + format_cosplace_name(fields))
    return names[:rows]


@pytest.fixture(scope="module")
def listed(tmp_path_factory) -> tuple[Path, Path, list[str]]:
    """An image root with an (empty) file per listed JPEG, and the list with some bad lines in it."""
    root = tmp_path_factory.mktemp("trusted")
    images = root / "images"
    names = karhula_names(3000)
    lines = names[:1500] + BAD_LINES + [names[3]] + names[1500:]  # names[3] twice
    for line in lines:
        if line.endswith((".jpg", ".jpeg")) and not line.startswith(".."):
            path = images / line
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
    (root / "paths.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return images, root / "paths.txt", names


def test_trusted_list_reads_what_the_per_name_reader_reads(listed) -> None:
    images, paths, _ = listed
    slow = read_cosplace(images, paths, progress=False)
    fast = read_cosplace_list(images, paths)
    assert fast.files_checked is False and slow.files_checked is True
    assert dict(fast.report.skip_counts) == dict(slow.report.skip_counts) == {
        "malformed_name": 4, "duplicate_path": 1, "not_jpeg": 1, "outside_root": 1,
    }  # fmt: skip
    assert (fast.report.seen, fast.report.kept) == (slow.report.seen, slow.report.kept)
    assert sorted(str(s) for s in fast.report.skips if s.kind == "malformed_name") == sorted(
        str(s) for s in slow.report.skips if s.kind == "malformed_name"
    )
    assert list(fast.frame.columns) == list(slow.frame.columns)
    for column in fast.frame.columns:
        a = slow.frame[column].astype(object).where(slow.frame[column].notna(), None).tolist()
        b = fast.frame[column].astype(object).where(fast.frame[column].notna(), None).tolist()
        if column in ("lat", "lon", "heading"):
            np.testing.assert_allclose(np.asarray(a, float), np.asarray(b, float), equal_nan=True)
        else:
            assert a == b, column
    # the odd './val/queries/' line: normalised path, split and role from its folders, panorama id
    row = fast.frame[fast.frame["path"].str.startswith("val/")].iloc[0]
    assert (row["split"], row["role"], row["location_id"], row["heading"]) == (
        "val",
        "queries",
        "pano:p7",
        10,
    )


def test_trusted_list_never_opens_the_listed_files(listed, tmp_path: Path) -> None:
    _, paths, _ = listed
    empty = tmp_path / "no-images-here"
    empty.mkdir()
    fast = read_cosplace_list(empty, paths)
    assert fast.report.kept == 3000 + 1  # every well-formed name (+ the ./val one), none stat-ed
    with pytest.raises(InputError, match=r"paths.txt: field .path.: .* is outside"):
        read_cosplace_list(empty, paths, strict=True)
    with pytest.raises(ConfigError, match="--trust-list trusts a paths list: give --paths-list"):
        read_cosplace_list(empty, None)


def test_build_trust_list_command_writes_a_valid_manifest(listed, tmp_path: Path) -> None:
    _, paths, _ = listed
    images = tmp_path / "images"
    images.mkdir()
    out = tmp_path / "dataset"
    done = subprocess.run(
        [sys.executable, "-m", "addressclip.cli", "build", "--format", "cosplace", "--images", str(images),
         "--paths-list", str(paths), "--trust-list", "--world", "karhula", "--out", str(out), "--quiet"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "the paths list was trusted (--trust-list)" in done.stdout
    assert validate_manifest(out / "manifest.parquet", check_files=False) == []
    frame = read_manifest(out / "manifest.parquet").frame
    assert len(frame) > 2500 and set(frame["split"]) == {"train", "val", "test"}
    assert frame["path"].str.startswith("db/@").all()
