"""The tiny world end to end: a CosPlace-format dataset whose manifest the data layer builds."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from unittest import mock

import pandas as pd
import pytest
from PIL import Image

from addressclip.data.build import build_dataset
from addressclip.data.manifest import read_manifest, validate_manifest
from addressclip.data.readers.cosplace import parse_cosplace_name, read_cosplace
from addressclip.data.splits import SplitConfig
from addressclip.errors import AddressclipError
from addressclip.geo.addressbook import AddressBook
from addressclip.resources import bundled_extract
from addressclip.world import RenderParams, render_world
from addressclip.world.render import load_cached

pytestmark = pytest.mark.slow  # a full render of the tiny world

PARTITIONS: list[str] = []  # the extracts the tiny render cut into addresses


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("world") / "tiny"
    cut = AddressBook.from_osm

    def counting(source, config=None):
        PARTITIONS.append(str(getattr(source, "path", source)))
        return cut(source, config)

    with mock.patch.object(AddressBook, "from_osm", counting):
        return render_world("tiny", out, progress=False)


def test_the_render_partitions_the_city_once(tiny):
    assert len(PARTITIONS) == 1, PARTITIONS


def test_the_capture_plan_counts_the_images_per_address_without_pixels(tiny):
    from addressclip.world.render import plan_captures, prepare_world

    book, scene = prepare_world(tiny.params)
    plan = plan_captures(scene, book, tiny.params)
    planned = pd.Series(plan.address_id).value_counts() * tiny.params.views
    rendered = read_manifest(tiny.manifest).frame["address_id"].value_counts()
    assert len(plan.address_id) == len(plan) == tiny.locations
    assert {k: int(v) for k, v in planned.items()} == {k: int(v) for k, v in rendered.items()}


def test_tiny_world_size_and_files(tiny):
    assert 150 <= tiny.images <= 800
    assert tiny.addresses >= 8
    assert tiny.locations * tiny.params.views == tiny.images
    for name in ("manifest.parquet", "world.json", "reference.json", "reference.md", "build_report.json",
                 "contact_sheet.png", "capture_map.png", "images/images_paths.txt"):  # fmt: skip
        assert (tiny.out / name).is_file(), name
    assert (tiny.out / "addressbook").is_dir()
    assert not list(tiny.out.glob(".staging-*"))
    assert validate_manifest(tiny.manifest) == []
    with Image.open(tiny.out / "contact_sheet.png") as sheet:
        assert sheet.width >= 1000


def test_file_names_round_trip_through_the_cosplace_reader(tiny):
    manifest = read_manifest(tiny.manifest)
    frame = manifest.frame
    assert manifest.image_root == (tiny.out / "images").resolve()
    listed = (tiny.out / "images" / "images_paths.txt").read_text().split()
    assert sorted(listed) == sorted(frame["path"])
    folders = {"train": "train/database", "val": "val/queries", "test": "test/queries"}
    for row in frame.itertuples():
        name = parse_cosplace_name(row.path)
        assert (name.lat, name.lon) == (row.lat, row.lon)
        assert row.location_id == f"pano:{name.pano_id}"
        assert name.zone == row.utm_zone == "35V"
        assert abs(name.utm_east - row.utm_e) < 1.5 and abs(name.utm_north - row.utm_n) < 1.5
        assert row.path.startswith(folders[row.split] + "/")
        assert abs(float(name.heading) - float(row.heading)) < 0.06
    read = read_cosplace(tiny.out / "images", progress=False)
    assert read.report.skipped == 0
    assert sorted(read.frame["path"]) == sorted(frame["path"])
    with Image.open(manifest.image_root / frame["path"].iloc[0]) as image:
        assert image.format == "JPEG" and image.size == (128, 128)


def test_build_on_the_rendered_folder_gives_the_same_manifest(tiny, tmp_path):
    report = build_dataset(
        "cosplace",
        tiny.out / "images",
        tmp_path / "rebuilt",
        osm=bundled_extract("karhula"),
        split=SplitConfig(seed=tiny.params.seed),
        progress=False,
    )
    rebuilt = read_manifest(report.manifest_path).frame.sort_values("path").reset_index(drop=True)
    rendered = read_manifest(tiny.manifest).frame.sort_values("path").reset_index(drop=True)
    columns = ["path", "location_id", "address_id", "address", "street_id", "split", "lat", "lon"]
    pd.testing.assert_frame_equal(rebuilt[columns], rendered[columns])
    assert rebuilt["caption"].isna().all() and rendered["caption"].notna().all()


def test_captions_describe_the_view_not_the_label(tiny):
    frame = read_manifest(tiny.manifest).frame
    for caption, address in zip(frame["caption"], frame["address"], strict=True):
        assert 10 <= len(caption.split()) <= 30, caption
        assert address not in caption
        assert " & " not in caption
    assert frame["caption"].nunique() > len(frame) // 4


def test_reference_table(tiny):
    reference = json.loads((tiny.out / "reference.json").read_text())
    frame = read_manifest(tiny.manifest).frame
    train_addresses = frame.loc[frame["split"] == "train", "address_id"].nunique()
    assert reference["chance_ssa1"] == pytest.approx(1.0 / train_addresses)
    assert reference["images"] == len(frame)
    for key in ("majority_ssa1", "pixel_nn_ssa1", "pixel_nn_sa1"):
        assert 0.0 <= reference[key] <= 1.0
    assert reference["pixel_nn_sa1"] >= reference["pixel_nn_ssa1"]
    assert "raw-pixel 1-NN SSA-1" in (tiny.out / "reference.md").read_text()


def test_second_render_reuses_the_first(tiny):
    before = tiny.manifest.stat().st_mtime_ns
    started = time.perf_counter()
    again = render_world("tiny", tiny.out, progress=False)
    assert again.reused
    assert time.perf_counter() - started < 3.0
    assert tiny.manifest.stat().st_mtime_ns == before
    assert (again.images, again.addresses) == (tiny.images, tiny.addresses)
    stored = json.loads((tiny.out / "world.json").read_text())
    assert stored["hash"] == tiny.params.hash
    assert load_cached(tiny.out, RenderParams.resolve("tiny", seed=1)) is None


def test_external_captioner_fills_the_manifest(tiny, tmp_path):
    from addressclip.world.captions import fill_manifest_captions

    copy = tmp_path / "copy"
    shutil.copytree(tiny.out, copy)
    sizes = []

    def captioner(images):
        sizes.extend(image.size for image in images)
        return [f"A street view of image {i}" for i in range(len(images))]

    count = fill_manifest_captions(copy / "manifest.parquet", captioner, overwrite=True, progress=False)
    frame = read_manifest(copy / "manifest.parquet").frame
    assert count == len(frame) == len(sizes)
    assert frame["caption"].str.startswith("A street view of image").all()
    assert set(sizes) == {(128, 128)}


def _files(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted((folder / "images").rglob("*.jpg"))
    }


def test_same_seed_same_bytes_whatever_the_worker_count(tmp_path):
    options = {"crop_half_side_m": 110.0, "pictures": False, "progress": False}
    one = render_world("tiny", tmp_path / "one", workers=1, **options)
    two = render_world("tiny", tmp_path / "two", workers=2, **options)
    files_one, files_two = _files(one.out), _files(two.out)
    assert len(files_one) >= 20
    assert files_one == files_two
    frame_one = read_manifest(one.manifest).frame
    frame_two = read_manifest(two.manifest).frame
    pd.testing.assert_frame_equal(frame_one, frame_two)


MINI_OSM = """<?xml version="1.0" encoding="UTF-8"?>
<osm version="0.6" generator="addressclip-test">
  <node id="1" lat="60.1700" lon="24.9400" version="1"/>
  <node id="2" lat="60.1700" lon="24.9440" version="1"/>
  <node id="3" lat="60.1700" lon="24.9480" version="1"/>
  <node id="4" lat="60.1680" lon="24.9440" version="1"/>
  <node id="5" lat="60.1720" lon="24.9440" version="1"/>
  <node id="10" lat="60.17015" lon="24.9410" version="1"/>
  <node id="11" lat="60.17015" lon="24.9430" version="1"/>
  <node id="12" lat="60.17060" lon="24.9430" version="1"/>
  <node id="13" lat="60.17060" lon="24.9410" version="1"/>
  <node id="20" lat="60.17025" lon="24.9420" version="1">
    <tag k="shop" v="bakery"/><tag k="name" v="Leipomo Testi"/></node>
  <node id="21" lat="60.1701" lon="24.9460" version="1"><tag k="natural" v="tree"/></node>
  <node id="22" lat="60.1710" lon="24.9450" version="1">
    <tag k="place" v="neighbourhood"/><tag k="name" v="Testilä"/></node>
  <way id="100" version="1"><nd ref="1"/><nd ref="2"/><nd ref="3"/>
    <tag k="highway" v="residential"/><tag k="name" v="Pääkatu"/></way>
  <way id="101" version="1"><nd ref="4"/><nd ref="2"/><nd ref="5"/>
    <tag k="highway" v="tertiary"/><tag k="name" v="Poikkikatu"/></way>
  <way id="102" version="1"><nd ref="10"/><nd ref="11"/><nd ref="12"/><nd ref="13"/><nd ref="10"/>
    <tag k="building" v="apartments"/><tag k="building:levels" v="4"/></way>
</osm>
"""


def test_a_users_osm_file_is_a_world(tmp_path):
    path = tmp_path / "mini.osm"
    path.write_text(MINI_OSM, encoding="utf-8")
    result = render_world(
        path,
        tmp_path / "out",
        spacing_m=15.0,
        views=2,
        size="96x64",
        min_points_per_address=1,
        progress=False,
    )
    frame = read_manifest(result.manifest).frame
    assert set(frame["street"].str.split(",").str[0]) == {"Pääkatu", "Poikkikatu"}
    assert (frame["neighbourhood"] == "Testilä").all()
    with Image.open(read_manifest(result.manifest).image_root / frame["path"].iloc[0]) as image:
        assert image.size == (96, 64)
    assert validate_manifest(result.manifest) == []
    assert (result.out / "contact_sheet.png").is_file() and (result.out / "capture_map.png").is_file()


def test_a_foreign_non_empty_folder_is_refused(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "holiday.jpg").write_bytes(b"not ours")
    with pytest.raises(AddressclipError, match="not empty and holds no render"):
        render_world("tiny", tmp_path, progress=False)
    assert (tmp_path / "images" / "holiday.jpg").read_bytes() == b"not ours"


def test_an_interrupted_render_is_not_reused(tmp_path):
    params = RenderParams.resolve("tiny")
    (tmp_path / "images").mkdir()
    (tmp_path / "manifest.parquet").write_bytes(b"")
    (tmp_path / "world.json").write_text(json.dumps({"hash": params.hash, "complete": False}))
    assert load_cached(tmp_path, params) is None
    (tmp_path / "world.json").write_text(json.dumps({"hash": params.hash, "complete": True}))
    assert load_cached(tmp_path, params) is not None
