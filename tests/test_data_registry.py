"""The reader registry: every registered format builds a tiny dataset; the CLI takes its choices from it.

A new reader is one module + one line in `READERS`; the builders below must then gain one entry too
(the first test fails until they do), so no format goes untested.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from addressclip.cli import build_parser, parse_intermixed
from addressclip.data.build import build_dataset
from addressclip.data.manifest import read_manifest, validate_manifest
from addressclip.data.readers import READER_FORMATS, READERS
from addressclip.data.splits import SplitConfig
from addressclip.errors import ConfigError
from addressclip.geo.addressbook import AddressBook
from addressclip.resources import bundled_extract
from fixtures_data import cosplace_name_for, write_jpeg


@pytest.fixture(scope="module")
def book() -> AddressBook:
    return AddressBook.from_osm(bundled_extract("karhula"))


@pytest.fixture(scope="module")
def points(book: AddressBook) -> list[tuple[float, float, str]]:
    """(lat, lon, address) at the middle of 12 sub-streets: every one labels to its own sub-street."""
    rows = []
    for row in book.table.sort_values("length_m", ascending=False).head(12).itertuples():
        middle = row.geometry.interpolate(0.5, normalized=True)
        lon, lat = book.projection.to_lonlat(middle.x, middle.y)
        rows.append((round(float(lat), 5), round(float(lon), 5), row.address))
    return rows


def _cosplace(root: Path, points) -> dict:
    for lat, lon, _ in points:
        for heading in (0, 180):
            write_jpeg(root / "images" / "train" / "database" / cosplace_name_for(lat, lon, heading=heading))
    return {}


def _json(root: Path, points) -> dict:
    data = {}
    for i, (lat, lon, address) in enumerate(points):
        for heading in (0, 180):
            relative = cosplace_name_for(lat, lon, pano_id=f"p{i}", heading=heading)
            write_jpeg(root / "images" / relative)
            data[relative] = [f"a view of place {i}", address, None]
    (root / "annotations.json").write_text(json.dumps(data), encoding="utf-8")
    return {"json_path": root / "annotations.json"}


def _csv(root: Path, points) -> dict:
    lines = ["path,lat,lon"]
    for i, (lat, lon, _) in enumerate(points):
        for view in range(2):
            write_jpeg(root / "images" / f"{i}_{view}.jpg")
            lines.append(f"{i}_{view}.jpg,{lat},{lon}")
    (root / "points.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return {"csv_path": root / "points.csv"}


def _exif(root: Path, points) -> dict:
    for i, (lat, lon, _) in enumerate(points):
        for view in range(2):
            write_jpeg(root / "images" / f"{i}_{view}.jpg", lat=lat, lon=lon)
    return {}


BUILDERS = {"cosplace": _cosplace, "json": _json, "csv": _csv, "exif": _exif}


def test_every_registered_reader_has_a_tiny_dataset_here():
    assert set(BUILDERS) == set(READERS) and tuple(READERS) == READER_FORMATS


@pytest.mark.parametrize("name", sorted(READERS))
def test_every_registered_reader_builds_a_tiny_dataset(name, tmp_path, book, points):
    options = BUILDERS[name](tmp_path, points)
    out = tmp_path / "dataset"
    report = build_dataset(
        name, tmp_path / "images", out, reader_options=options, addressbook=book, min_points=1,
        split=SplitConfig(ratios=(1.0, 0.0, 0.0)), progress=False,
    )  # fmt: skip
    assert validate_manifest(out / "manifest.parquet") == []
    frame = read_manifest(out / "manifest.parquet").frame
    assert len(frame) == report.counts["images"] == 2 * len(points)
    assert frame["address"].nunique() == len(points)
    assert report.counts["labelled"] == 2 * len(points)  # each point lies on a sub-street of the book
    assert AddressBook.load(out / "addressbook").config == book.config
    assert np.isfinite(frame[["utm_e", "utm_n"]].to_numpy()).all()


def test_build_command_takes_formats_and_option_flags_from_the_registry():
    parser = build_parser()
    build = parser._subparsers._group_actions[0].choices["build"]  # the `build` subparser
    format_action = next(a for a in build._actions if a.dest == "format")
    assert tuple(format_action.choices) == tuple(READERS)
    flags = {flag for action in build._actions for flag in action.option_strings}
    for spec in READERS.values():
        for option in spec.options:
            assert option.flag in flags, (spec.name, option.flag)
    args = parse_intermixed(
        parser,
        ["build", "--format", "csv", "--images", "i", "--world", "karhula", "--out", "o", "--csv", "p.csv"],
    )
    from addressclip.commands.build import reader_options_from_args

    assert reader_options_from_args(args) == {"csv_path": Path("p.csv")}


def test_reader_options_are_checked_against_the_spec(tmp_path, book):
    with pytest.raises(ConfigError, match="format 'cosplace' takes no option csv_path"):
        build_dataset(
            "cosplace", tmp_path, tmp_path / "o", reader_options={"csv_path": "x"}, addressbook=book
        )
    with pytest.raises(ConfigError, match="format 'csv' needs --csv FILE"):
        build_dataset("csv", tmp_path, tmp_path / "o", addressbook=book)
    with pytest.raises(ConfigError, match="unknown format 'tsv'"):
        build_dataset("tsv", tmp_path, tmp_path / "o", addressbook=book)
    with pytest.raises(ConfigError, match="not both"):
        build_dataset("cosplace", tmp_path, tmp_path / "o", addressbook=book, world="karhula")


def test_a_ready_addressbook_is_not_cut_again(tmp_path, book, points, monkeypatch):
    _cosplace(tmp_path, points)

    def no_second_cut(*args, **kwargs):
        raise AssertionError("the city was partitioned again")

    monkeypatch.setattr(AddressBook, "from_osm", no_second_cut)
    report = build_dataset(
        "cosplace", tmp_path / "images", tmp_path / "out", addressbook=book, min_points=1,
        split=SplitConfig(ratios=(1.0, 0.0, 0.0)), progress=False,
    )  # fmt: skip
    assert report.counts["images"] == 2 * len(points)
    assert report.options["osm"] == book.source
