"""`addressclip addressbook` end to end, and the map PNG."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from addressclip.cli import main
from addressclip.geo.addressbook import AddressBook
from test_geo_partition import write_toy_osm


def test_addressbook_command_on_karhula(tmp_path, capsys):
    out = tmp_path / "karhula"
    assert main(["addressbook", "--world", "karhula", "--out", str(out), "--min-gap-m", "40"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["addressbook.parquet", "map.png", "summary.json"]
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    book = AddressBook.load(out)
    assert summary["sub_streets"] == len(book) and book.config.min_gap_m == 40.0
    assert set(summary["neighbourhoods"]) == {"Helilä", "Malminki", "Marttila", "Ristinkallio", "Suurniitty"}
    with Image.open(out / "map.png") as image:
        assert image.format == "PNG" and min(image.size) > 500
        colours = np.asarray(image.convert("RGB"))[::7, ::7].reshape(-1, 3)
    assert len(np.unique(colours, axis=0)) > 20  # streets drawn in many colours, not a blank canvas
    printed = capsys.readouterr().out
    assert "AddressBook(" in printed and "map.png" in printed


def test_addressbook_command_options(tmp_path):
    osm = write_toy_osm(tmp_path)
    out = tmp_path / "toy"
    argv = ["addressbook", "--osm", str(osm), "--out", str(out), "--no-map", "--highway", "residential"]
    assert main([*argv, "--max-cross-streets", "1", "--neighbourhoods", "places"]) == 0
    book = AddressBook.load(out)
    assert "High Road" not in set(book.table["street_name"])  # secondary: filtered out
    assert book.config.highway_classes == ("residential",) and book.config.max_cross_streets == 1
    assert not (out / "map.png").exists()


def test_addressbook_command_errors(tmp_path, capsys):
    assert main(["addressbook", "--osm", str(tmp_path / "none.osm.pbf"), "--out", str(tmp_path / "o")]) == 2
    bad = tmp_path / "bad.osm.pbf"
    bad.write_bytes(b"\x00\x01 not a pbf")
    assert main(["addressbook", "--osm", str(bad), "--out", str(tmp_path / "o")]) == 2
    assert main(["addressbook", "--world", "karhula", "--out", str(tmp_path / "o"), "--min-gap-m", "-1"]) == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 3 and all(line.startswith("addressclip addressbook: error: ") for line in errors)
    assert "none.osm.pbf" in errors[0] and "bad.osm.pbf" in errors[1] and "min_gap_m" in errors[2]
    assert not (tmp_path / "o").exists()  # nothing half-written


def test_map_with_points(tmp_path):
    book = AddressBook.from_osm(write_toy_osm(tmp_path))
    rng = np.random.default_rng(0)
    min_lon, min_lat, max_lon, max_lat = book.bounds
    lat, lon = rng.uniform(min_lat, max_lat, 300), rng.uniform(min_lon, max_lon, 300)
    result = book.label(lat, lon)
    path = book.plot(tmp_path / "maps" / "toy.png", lat=lat, lon=lon, index=result.index, title="toy")
    with Image.open(path) as image:
        assert image.format == "PNG"
    assert [p.name for p in path.parent.iterdir()] == ["toy.png"]
