"""`--bbox S,W,N,E`: parsing, the crop of a real extract, and the flag on every command that reads one."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from addressclip.cli import main
from addressclip.errors import ConfigError, InputError
from addressclip.geo.bbox import BBox
from addressclip.geo.neighbourhoods import display_name
from addressclip.geo.osm import read_osm
from addressclip.resources import bundled_extract

# a corner of Karhula (the extract covers lat 60.521-60.538, lon 26.934-26.968)
BOX = BBox(60.522, 26.936, 60.530, 26.950)


def test_parse_reads_south_west_north_east():
    box = BBox.parse(" 60.522, 26.936 ,60.530,26.950")
    assert box == BOX
    assert box.bounds() == (26.936, 60.522, 26.950, 60.530)
    assert BBox.parse(box.text()) == box


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("60.5,26.9,60.6", "must be four numbers S,W,N,E"),
        ("a,b,c,d", "must be four numbers S,W,N,E"),
        ("60.6,26.9,60.5,27.0", "south 60.6 must be less than north 60.5"),
        ("60.5,27.0,60.6,26.9", "west 27 must be less than east 26.9"),
        ("-91,0,10,1", "latitudes must lie in [-90, 90]"),
        ("0,-181,1,0", "longitudes must lie in [-180, 180]"),
        ("nan,0,1,1", "not a finite number"),
    ],
)
def test_parse_refuses_bad_boxes_in_one_line(text: str, message: str):
    with pytest.raises(ConfigError) as error:
        BBox.parse(text)
    assert message in str(error.value)
    assert str(error.value).startswith("--bbox: ")
    assert "\n" not in str(error.value)


def test_clip_line_cuts_at_the_edge():
    box = BBox(0.0, 0.0, 1.0, 1.0)
    inside = np.array([[0.2, 0.2], [0.8, 0.8]])
    assert len(box.clip_line(inside)) == 1 and np.array_equal(box.clip_line(inside)[0], inside)
    crossing = np.array([[-1.0, 0.5], [2.0, 0.5]])
    (piece,) = box.clip_line(crossing)
    np.testing.assert_allclose(sorted(piece[:, 0]), [0.0, 1.0])
    # out, in, out, in again: two pieces
    zigzag = np.array([[0.5, -0.5], [0.5, 0.5], [1.5, 0.5], [1.5, 0.2], [0.5, 0.2]])
    assert len(box.clip_line(zigzag)) == 2
    assert box.clip_line(np.array([[2.0, 2.0], [3.0, 3.0]])) == []


def test_read_osm_keeps_only_the_box():
    whole = read_osm(bundled_extract("karhula"))
    cropped = read_osm(bundled_extract("karhula"), bbox=BOX)
    assert len(cropped.streets) > 0 and len(cropped.buildings) < len(whole.buildings)
    points = np.concatenate([s.lonlat for s in cropped.streets])
    eps = 1e-9
    assert points[:, 0].min() >= BOX.west - eps and points[:, 0].max() <= BOX.east + eps
    assert points[:, 1].min() >= BOX.south - eps and points[:, 1].max() <= BOX.north + eps
    # a street crossing the edge is clipped (ends on the edge), not dropped or kept whole
    on_edge = np.isclose(points[:, 0], BOX.west) | np.isclose(points[:, 0], BOX.east)
    on_edge |= np.isclose(points[:, 1], BOX.south) | np.isclose(points[:, 1], BOX.north)
    assert on_edge.any()
    centres = np.array([b.lonlat.mean(axis=0) for b in cropped.buildings])
    assert BOX.contains(centres[:, 0], centres[:, 1]).all()
    assert cropped.bounds == BOX.bounds()


def test_a_box_outside_the_extract_is_a_one_line_error():
    with pytest.raises(InputError, match="lies outside the extract"):
        read_osm(bundled_extract("karhula"), bbox=BBox(41.14, -8.62, 41.15, -8.60))


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("Bezirksteil Maxvorstadt", "Maxvorstadt"),
        ("Stadtbezirk Altstadt", "Altstadt"),
        ("Stadtteil Neuenheim", "Neuenheim"),
        ("London Borough of Camden", "Camden"),
        ("Басманный район", "Басманный"),
        ("Gemeinde Krems an der Donau", "Krems an der Donau"),
        ("Quartier Latin", "Quartier Latin"),  # everyday name, kept
        ("Kluuvi", "Kluuvi"),
        ("Bezirk ", "Bezirk"),  # nothing left after the prefix: kept
    ],
)
def test_display_name_strips_administrative_kinds(name: str, shown: str):
    assert display_name(name) == shown


@pytest.mark.parametrize(
    "argv",
    [
        ["render", "--world", "tiny", "--out", "{tmp}/r"],
        ["addressbook", "--world", "karhula", "--out", "{tmp}/b"],
        ["build", "--format", "cosplace", "--images", "{tmp}", "--world", "karhula", "--out", "{tmp}/d"],
        ["atlas", "--cities", "stockholm", "--out", "{tmp}/a"],
    ],
    ids=["render", "addressbook", "build", "atlas"],
)
def test_every_extract_command_refuses_a_bad_box(argv: list[str], tmp_path: Path, capsys):
    args = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert main([*args, "--bbox", "60.53,26.95,60.52,26.96"]) == 2
    err = capsys.readouterr().err.strip()
    assert "south 60.53 must be less than north 60.52" in err and "\n" not in err
    assert not any(p.name in ("r", "b", "d", "a") for p in tmp_path.iterdir())  # nothing written


def test_build_without_an_extract_refuses_bbox(tmp_path: Path, capsys):
    argv = ["build", "--format", "cosplace", "--images", str(tmp_path), "--out", str(tmp_path / "d")]
    assert main([*argv, "--bbox", BOX.text()]) == 2
    assert "give --osm PBF or --world NAME" in capsys.readouterr().err


def test_addressbook_command_crops_end_to_end(tmp_path: Path):
    assert (
        main(["addressbook", "--world", "karhula", "--bbox", BOX.text(), "--out", str(tmp_path), "--no-map"])
        == 0
    )
    summary = json.loads((tmp_path / "summary.json").read_text(encoding="utf-8"))
    assert summary["bbox"] == list(BOX.as_tuple())
    table = pd.read_parquet(next(tmp_path.glob("*.parquet")))
    whole = main(["addressbook", "--world", "karhula", "--out", str(tmp_path / "whole"), "--no-map"])
    assert whole == 0
    assert 0 < len(table) < len(pd.read_parquet(next((tmp_path / "whole").glob("*.parquet"))))
