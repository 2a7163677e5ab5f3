"""`build_dataset` / `addressclip build` end to end: real-format inputs in, a valid manifest out."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from addressclip.cli import main
from addressclip.data.build import build_dataset, stable_id
from addressclip.data.manifest import read_manifest, validate_manifest
from addressclip.data.splits import SplitConfig
from addressclip.errors import AddressclipError, ConfigError
from fixtures_data import cosplace_name_for, write_jpeg

# ---------------------------------------------------------------- annotation JSON (no OSM needed)

_ADDRESSES = (
    "Kauppakatu & Keskuskatu, Karhula",
    "Kauppakatu & Puistotie, Karhula",
    "Mäkitie & Kauppakatu, Karhula",
)


def _json_dataset(root: Path, locations_per_address: int = 10) -> Path:
    """@-named images (2 views per location) annotated with one of three addresses."""
    data: dict[str, list[str | None]] = {}
    for a, address in enumerate(_ADDRESSES):
        for loc in range(locations_per_address):
            lat, lon = 60.525 + 0.002 * a, 26.940 + 0.0003 * loc
            for heading in (0, 180):
                relative = "db/" + cosplace_name_for(lat, lon, f"P{a}x{loc}", heading=heading)
                write_jpeg(root / "images" / relative)
                data[relative] = [f"A street view of place {a}-{loc}", address, None]
    data["db/not_a_gps_name.jpg"] = ["x", _ADDRESSES[0], None]
    write_jpeg(root / "images" / "db" / "not_a_gps_name.jpg")
    path = root / "annotations.json"
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return path


def test_json_build_keeps_given_addresses(tmp_path: Path) -> None:
    json_path = _json_dataset(tmp_path)
    out = tmp_path / "dataset"
    report = build_dataset(
        "json", tmp_path / "images", out, reader_options={"json_path": json_path}, progress=False
    )
    assert validate_manifest(out / "manifest.parquet") == []
    manifest = read_manifest(out / "manifest.parquet")
    frame = manifest.frame
    assert manifest.addressbook_dir is None and manifest.image_root == (tmp_path / "images").resolve()
    assert set(frame["address"]) == set(_ADDRESSES)
    assert set(frame["street"]) == {"Kauppakatu", "Mäkitie"}
    assert frame["address_id"].nunique() == 3 and frame["street_id"].nunique() == 2
    first = frame[frame["address"] == _ADDRESSES[0]]
    assert (first["address_id"] == stable_id("a", _ADDRESSES[0])).all()
    assert frame.groupby("location_id")["split"].nunique().max() == 1
    assert frame["utm_zone"].unique().tolist() == ["35V"]
    assert frame["caption"].str.startswith("A street view of").all()
    assert report.counts["seen"] == 61 and report.counts["read"] == 60
    assert report.read["skip_counts"] == {"no_gps": 1}
    assert report.counts["images"] + report.counts["dropped_unseen"] == 60

    saved = json.loads((out / "build_report.json").read_text(encoding="utf-8"))
    assert saved["counts"] == report.counts
    assert saved["read"]["skips"][0]["field"] == "db/not_a_gps_name.jpg"
    assert (
        saved["splits"]["coverage"]["test"]["classes_in_train"]
        == saved["splits"]["coverage"]["test"]["classes"]
    )


def test_build_is_deterministic_and_seeded(tmp_path: Path) -> None:
    json_path = _json_dataset(tmp_path)
    frames = []
    for name, seed in (("one", 0), ("two", 0), ("three", 1)):
        build_dataset(
            "json", tmp_path / "images", tmp_path / name, reader_options={"json_path": json_path},
            split=SplitConfig(seed=seed), progress=False,
        )  # fmt: skip
        frames.append(read_manifest(tmp_path / name / "manifest.parquet").frame)
    pd.testing.assert_frame_equal(frames[0], frames[1])
    assert frames[0]["split"].tolist() != frames[2]["split"].tolist()


def test_failed_build_writes_nothing(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "empty.json").write_text("{}")
    with pytest.raises(AddressclipError, match="no usable image"):
        build_dataset(
            "json",
            tmp_path / "images",
            tmp_path / "out",
            reader_options={"json_path": tmp_path / "empty.json"},
        )
    assert not (tmp_path / "out").exists()
    with pytest.raises(ConfigError, match="--osm PBF or --world"):
        build_dataset(
            "csv", tmp_path / "images", tmp_path / "out", reader_options={"csv_path": tmp_path / "x.csv"}
        )
    with pytest.raises(ConfigError, match="needs --json"):
        build_dataset("json", tmp_path / "images", tmp_path / "out")


def test_build_command_reports_user_errors_on_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "images").mkdir()
    bad = tmp_path / "bad.json"
    bad.write_text('{"a.jpg": "no list"}')
    code = main(["build", "--format", "json", "--images", str(tmp_path / "images"), "--json", str(bad),
                 "--out", str(tmp_path / "out"), "--no-progress"])  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "bad.json: field 'a.jpg'" in err[0]
    code = main(["build", "--format", "json", "--images", str(tmp_path / "images"), "--json", str(bad),
                 "--out", str(tmp_path / "out"), "--split-ratios", "0.5,0.6,0.1"])  # fmt: skip
    assert code == 2 and "sum to 1" in capsys.readouterr().err


# ---------------------------------------------------------------- OSM labels on the bundled Karhula extract


@pytest.fixture(scope="module")
def karhula_points() -> pd.DataFrame:
    """~100 capture locations on the 8 longest streets of the real Karhula extract, 5 m off the axis."""
    from shapely.geometry import LineString, MultiLineString

    from addressclip.geo.osm import read_osm
    from addressclip.resources import bundled_extract

    extract = read_osm(bundled_extract("karhula"))
    projection = extract.projection
    lines: dict[str, list[LineString]] = {}
    for way in extract.streets:
        east, north = projection.to_utm(way.lonlat[:, 0], way.lonlat[:, 1])
        lines.setdefault(way.name, []).append(LineString(np.c_[east, north]))
    longest = sorted(lines, key=lambda name: -sum(line.length for line in lines[name]))[:8]
    rows = []
    for name in longest:
        placed = 0
        for line in sorted(lines[name], key=lambda line: -line.length):
            for along in np.arange(20.0, line.length - 20.0, 45.0):
                if placed == 13:
                    break
                here, ahead = line.interpolate(along), line.interpolate(along + 1.0)
                dx, dy = ahead.x - here.x, ahead.y - here.y
                norm = np.hypot(dx, dy)
                east, north = here.x - 5.0 * dy / norm, here.y + 5.0 * dx / norm
                rows.append({"street_name": name, "e": east, "n": north, "location": f"{name}-{placed}"})
                placed += 1
    frame = pd.DataFrame(rows)
    lon, lat = projection.to_lonlat(frame["e"].to_numpy(), frame["n"].to_numpy())
    frame["lon"], frame["lat"] = lon, lat
    all_streets = MultiLineString([line for group in lines.values() for line in group])
    frame.attrs["streets"] = all_streets
    frame.attrs["projection"] = projection
    return frame


def _far_from_every_street(points: pd.DataFrame) -> tuple[float, float]:
    """A point inside the extract more than 200 m from any street (checked with shapely)."""
    from shapely.geometry import Point

    projection = points.attrs["projection"]
    streets = points.attrs["streets"]
    for lat in np.arange(60.5215, 60.5390, 0.0005):
        for lon in np.arange(26.9315, 26.9690, 0.0005):
            east, north = projection.to_utm(lon, lat)
            if streets.distance(Point(float(east), float(north))) > 200.0:
                return float(lat), float(lon)
    raise AssertionError("no point far from streets in the extract")


def _csv_dataset(root: Path, points: pd.DataFrame) -> Path:
    images = root / "images"
    lines = ["path,lat,lon,heading,caption,location_id"]
    for i, point in enumerate(points.itertuples()):
        for heading in (90, 270):
            relative = f"loc{i:03d}_{heading}.jpg"
            write_jpeg(images / relative)
            lines.append(
                f"{relative},{point.lat:.7f},{point.lon:.7f},{heading},A street view,{point.location}"
            )
    far_lat, far_lon = _far_from_every_street(points)
    extras = [
        ("outside_1.jpg", 60.6000, 26.9500),  # north of the extract
        ("outside_2.jpg", 60.5300, 27.1000),  # east of the extract
        ("outside_3.jpg", 60.4000, 26.9000),
        ("outside_4.jpg", 61.0000, 25.0000),
        ("far_from_streets.jpg", far_lat, far_lon),
    ]
    for relative, lat, lon in extras:
        write_jpeg(images / relative)
        lines.append(f"{relative},{lat},{lon},,,")
    write_jpeg(images / "no_gps.jpg")
    write_jpeg(images / "bad_gps.jpg")
    lines += ["no_gps.jpg,,,,,", "bad_gps.jpg,sixty,26.95,,,"]
    csv_path = root / "points.csv"
    csv_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return csv_path


def test_csv_build_on_karhula_end_to_end(tmp_path: Path, karhula_points: pd.DataFrame) -> None:
    from addressclip.geo.addressbook import AddressBook

    csv_path = _csv_dataset(tmp_path, karhula_points)
    out = tmp_path / "dataset"
    report = build_dataset(
        "csv",
        tmp_path / "images",
        out,
        reader_options={"csv_path": csv_path},
        world="karhula",
        progress=False,
    )

    n_points = 2 * len(karhula_points)
    assert 190 <= n_points <= 210
    assert report.counts["seen"] == n_points + 7
    assert report.counts["read"] == n_points + 5 and report.counts["read_skipped"] == 2
    assert report.read["skip_counts"] == {"missing_gps": 1, "non_numeric_gps": 1}
    assert report.labelling["unlabelled_by_reason"] == {"outside_extract": 4, "too_far": 1}
    assert report.counts["labelled"] == n_points
    assert {u["path"] for u in report.labelling["unlabelled"]} == {
        "outside_1.jpg", "outside_2.jpg", "outside_3.jpg", "outside_4.jpg", "far_from_streets.jpg"
    }  # fmt: skip

    assert validate_manifest(out / "manifest.parquet") == []
    manifest = read_manifest(out / "manifest.parquet")
    frame = manifest.frame
    assert manifest.addressbook_dir == (out / "addressbook").resolve()
    assert len(frame) == report.counts["images"] == n_points - report.counts["dropped_unseen"]
    book = AddressBook.load(manifest.addressbook_dir)
    rows = book.table.set_index("address_id").loc[frame["address_id"]]
    assert (rows["address"].to_numpy() == frame["address"].to_numpy()).all()
    assert (rows["street"].to_numpy() == frame["street"].to_numpy()).all()

    # Points were put 5 m off the axis of a known street: nearly all must be labelled with it.
    placed = karhula_points.set_index("location")["street_name"]
    same = rows["street_name"].to_numpy() == placed.loc[frame["location_id"]].to_numpy()
    assert same.mean() >= 0.9, same.mean()
    assert frame["address"].str.contains(", ").all()  # "Main[ & Cross], Neighbourhood"
    assert frame.groupby("location_id")["split"].nunique().max() == 1
    assert set(frame.loc[frame["split"] != "train", "address_id"]) <= set(
        frame.loc[frame["split"] == "train", "address_id"]
    )
    assert report.labelling["addresses_after_merge"] <= report.labelling["addresses_before_merge"]

    saved = json.loads((out / "build_report.json").read_text(encoding="utf-8"))
    assert saved["labelling"]["unlabelled_by_reason"]["outside_extract"] == 4
    assert saved["addressbook_summary"]["sub_streets"] == len(book.table)
    assert saved["splits"]["coverage"]["train"]["images"] == report.counts["train"]


def test_build_command_on_karhula_with_block_split(
    tmp_path: Path, karhula_points: pd.DataFrame, capsys: pytest.CaptureFixture[str]
) -> None:
    csv_path = _csv_dataset(tmp_path, karhula_points)
    out = tmp_path / "dataset"
    code = main([
        "build", "--format", "csv", "--images", str(tmp_path / "images"), "--csv", str(csv_path),
        "--world", "karhula", "--out", str(out), "--split-mode", "block", "--block-m", "300",
        "--split-ratios", "0.7,0.15,0.15", "--seed", "2", "--min-points", "3", "--no-progress",
        "--min-gap-m", "40", "--carriageway-snap-m", "20",
    ])  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "unlabelled 5 (outside_extract 4, too_far 1)" in printed and "wrote" in printed
    saved = json.loads((out / "build_report.json").read_text(encoding="utf-8"))
    assert saved["splits"]["method"] == "block" and saved["options"]["min_points"] == 3
    from addressclip.geo.addressbook import AddressBook

    rules = AddressBook.load(out / "addressbook").config  # the partition flags reach the saved book
    assert (rules.min_gap_m, rules.carriageway_snap_m) == (40.0, 20.0)
    assert saved["options"]["partition"]["min_gap_m"] == 40.0
    assert main(["validate", str(out / "manifest.parquet")]) == 0


def test_cosplace_build_keeps_folder_splits(tmp_path: Path, karhula_points: pd.DataFrame) -> None:
    images = tmp_path / "images"
    for i, point in enumerate(karhula_points.itertuples()):
        folder = "train/database" if i % 5 else "test/queries"
        for heading in (0, 180):
            name = cosplace_name_for(point.lat, point.lon, heading=heading)
            write_jpeg(images / folder / name)
    write_jpeg(images / "train" / "database" / "@bad@name@.jpg")
    out = tmp_path / "dataset"
    report = build_dataset("cosplace", images, out, world="karhula", progress=False)
    assert report.splits["method"] == "given"
    assert report.read["skip_counts"] == {"malformed_name": 1}
    frame = read_manifest(out / "manifest.parquet").frame
    assert validate_manifest(out / "manifest.parquet") == []
    assert set(frame["role"]) == {"database", "queries"}
    assert (frame.loc[frame["role"] == "queries", "split"] == "test").all()
    assert frame.groupby("location_id").size().eq(2).all()  # both views of a capture share its UTM id


def test_json_build_with_osm_saves_geometry_only_book(tmp_path: Path) -> None:
    json_path = _json_dataset(tmp_path)
    out = tmp_path / "dataset"
    report = build_dataset(
        "json",
        tmp_path / "images",
        out,
        reader_options={"json_path": json_path},
        world="karhula",
        progress=False,
    )
    manifest = read_manifest(out / "manifest.parquet")
    assert manifest.addressbook_dir == (out / "addressbook").resolve()
    assert (out / "addressbook").is_dir() and validate_manifest(out / "manifest.parquet") == []
    assert set(manifest.frame["address"]) == set(_ADDRESSES)  # kept as given, not relabelled
    assert report.addressbook is not None and report.addressbook["ids_match_manifest"] is False


def test_csv_with_given_addresses_needs_no_osm(tmp_path: Path) -> None:
    lines = ["path,lat,lon,address,street"]
    for i in range(40):
        address = ("Main St & First Ave, Downtown", "Main St & Second Ave, Downtown")[i % 2]
        write_jpeg(tmp_path / "images" / f"{i}.jpg")
        lines.append(f'{i}.jpg,{40.44 + 0.0001 * i:.5f},-79.99,"{address}",Main St')
    (tmp_path / "p.csv").write_text("\n".join(lines) + "\n")
    build_dataset(
        "csv", tmp_path / "images", tmp_path / "out", reader_options={"csv_path": tmp_path / "p.csv"},
        addresses="given", split=SplitConfig(ratios=(0.5, 0.25, 0.25)), progress=False,
    )  # fmt: skip
    frame = read_manifest(tmp_path / "out" / "manifest.parquet").frame
    assert frame["utm_zone"].unique().tolist() == ["17T"]
    assert frame["street"].unique().tolist() == ["Main St"] and frame["address_id"].nunique() == 2
    assert validate_manifest(tmp_path / "out" / "manifest.parquet") == []
