"""What a build and `validate` refuse: images that do not decode, paths that leave the image root."""

from __future__ import annotations

import dataclasses
import json
import threading
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from addressclip.cli import main
from addressclip.data.build import build_dataset, output_lock
from addressclip.data.imagecheck import check_images, decode_problem
from addressclip.data.manifest import ManifestError, read_manifest, validate_manifest, write_manifest
from addressclip.data.splits import SplitConfig
from addressclip.errors import AddressclipError, InputError
from addressclip.geo.addressbook import AddressBook
from addressclip.resources import bundled_extract
from fixtures_data import cosplace_name_for, manifest_frame, write_corrupt_jpeg, write_jpeg

BAD_KINDS = {"truncated_image": 1, "empty_file": 1, "not_an_image": 1}


@pytest.fixture(scope="module")
def book() -> AddressBook:
    return AddressBook.from_osm(bundled_extract("karhula"))


@pytest.fixture(scope="module")
def points(book: AddressBook) -> list[tuple[float, float]]:
    rows = []
    for row in book.table.sort_values("length_m", ascending=False).head(6).itertuples():
        middle = row.geometry.interpolate(0.5, normalized=True)
        lon, lat = book.projection.to_lonlat(middle.x, middle.y)
        rows.append((round(float(lat), 5), round(float(lon), 5)))
    return rows


def _write_bad(folder: Path, names: list[str]) -> None:
    """A JPEG cut in half, a zero-byte file and a text file renamed to .jpg."""
    write_corrupt_jpeg(folder / names[0])
    (folder / names[1]).write_bytes(b"")
    (folder / names[2]).write_text("this is not a picture\n", encoding="utf-8")


def _cosplace(root: Path, points) -> tuple[dict, list[str]]:
    folder = root / "images" / "train" / "database"
    for lat, lon in points:
        write_jpeg(folder / cosplace_name_for(lat, lon, heading=0))
    lat, lon = points[0]
    bad = [cosplace_name_for(lat, lon, pano_id=f"bad{i}", heading=90) for i in range(3)]
    folder.mkdir(parents=True, exist_ok=True)
    _write_bad(folder, bad)
    return {}, [f"train/database/{name}" for name in bad]


def _csv(root: Path, points) -> tuple[dict, list[str]]:
    lines = ["path,lat,lon"]
    for i, (lat, lon) in enumerate(points):
        write_jpeg(root / "images" / f"{i}.jpg")
        lines.append(f"{i}.jpg,{lat},{lon}")
    bad = ["cut.jpg", "empty.jpg", "text.jpg"]
    _write_bad(root / "images", bad)
    lines += [f"{name},{points[0][0]},{points[0][1]}" for name in bad]
    (root / "p.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return {"csv_path": root / "p.csv"}, bad


def _build(root: Path, reader: str, options: dict, book: AddressBook, strict: bool = False):
    return build_dataset(
        reader, root / "images", root / "out", reader_options=options, addressbook=book, min_points=1,
        split=SplitConfig(ratios=(1.0, 0.0, 0.0)), strict=strict, progress=False,
    )  # fmt: skip


@pytest.mark.parametrize("reader, writer", [("cosplace", _cosplace), ("csv", _csv)])
def test_build_skips_undecodable_images_and_counts_them_by_kind(reader, writer, tmp_path, book, points):
    options, bad = writer(tmp_path, points)
    report = _build(tmp_path, reader, options, book)
    saved = json.loads((tmp_path / "out" / "build_report.json").read_text(encoding="utf-8"))
    for kind, count in BAD_KINDS.items():
        assert saved["read"]["skip_counts"][kind] == count
    assert {s["source"] for s in saved["read"]["skips"] if s["kind"] in BAD_KINDS} == set(bad)
    check = saved["read"]["decode_check"]
    assert check["checked"] == len(points) + 3 and check["failed"] == 3 and check["images_per_second"] > 0
    frame = read_manifest(report.manifest_path).frame
    assert len(frame) == len(points) and not set(bad) & set(frame["path"])
    assert validate_manifest(report.manifest_path, decode=True) == []


@pytest.mark.parametrize("reader, writer", [("cosplace", _cosplace), ("csv", _csv)])
def test_strict_build_stops_at_an_undecodable_image(reader, writer, tmp_path, book, points):
    options, bad = writer(tmp_path, points)
    with pytest.raises(InputError) as caught:
        _build(tmp_path, reader, options, book, strict=True)
    assert str(caught.value).startswith(bad[0]) and "\n" not in str(caught.value)
    assert not (tmp_path / "out").exists()


def test_decode_problem_kinds(tmp_path):
    _write_bad(tmp_path, ["a.jpg", "b.jpg", "c.jpg"])
    write_jpeg(tmp_path / "good.jpg")
    kinds = [decode_problem(tmp_path / n) for n in ("a.jpg", "b.jpg", "c.jpg", "good.jpg", "gone.jpg")]
    assert [k[0] if k else None for k in kinds] == [
        "truncated_image", "empty_file", "not_an_image", None, "missing_file"
    ]  # fmt: skip
    check = check_images([tmp_path / n for n in ("good.jpg", "a.jpg", "good.jpg")], workers=2, progress=False)
    assert sorted(check.problems) == [1] and check.checked == 3


def test_validate_decode_finds_a_file_damaged_after_the_build(tmp_path, book, points, capsys):
    options, _ = _cosplace(tmp_path, points)
    report = _build(tmp_path, "cosplace", options, book)
    first = read_manifest(report.manifest_path).frame["path"].iloc[0]
    target = tmp_path / "images" / first
    data = target.read_bytes()
    target.write_bytes(data[: len(data) // 2])
    assert validate_manifest(report.manifest_path) == []  # the file still exists
    problems = validate_manifest(report.manifest_path, decode=True)
    assert len(problems) == 1 and "do not decode (truncated_image 1)" in problems[0] and first in problems[0]
    assert main(["validate", str(report.manifest_path), "--decode"]) == 1
    assert "do not decode" in capsys.readouterr().out


@pytest.mark.parametrize(
    "escape", ["../../etc/hostname", "/etc/hostname", "img/../../secret.jpg", "C:\\x.jpg"]
)
def test_paths_that_leave_the_image_root_are_refused(tmp_path, escape):
    frame = manifest_frame(tmp_path / "images")
    frame.loc[0, "path"] = escape
    path = tmp_path / "manifest.parquet"
    with pytest.raises(ManifestError, match="leave the image root"):
        write_manifest(frame, path, tmp_path / "images")
    write_manifest(frame, path, tmp_path / "images", check=False)  # a crafted file
    problems = validate_manifest(path, check_files=False)
    assert any("leave the image root" in p and repr(escape) in p for p in problems), problems
    with pytest.raises(InputError, match="leave the image root"):
        read_manifest(path)


# ------------------------------------------------------- one build's files belong together


def _cosplace_good(root: Path, points) -> None:
    for lat, lon in points:
        for heading in (0, 180):
            write_jpeg(root / "images" / "train" / "database" / cosplace_name_for(lat, lon, heading=heading))


def test_a_manifest_beside_another_builds_addressbook_is_refused(tmp_path, book, points, capsys):
    """What a kill between the files of a build, or two builds into one folder, used to leave."""
    _cosplace_good(tmp_path, points)
    report = _build(tmp_path, "cosplace", {}, book)
    assert validate_manifest(report.manifest_path) == []
    other = AddressBook.from_osm(bundled_extract("karhula"), dataclasses.replace(book.config, min_gap_m=80.0))
    other.save(tmp_path / "out" / "addressbook")  # another build's book lands in the folder
    problems = validate_manifest(report.manifest_path)
    assert any("not the one this manifest was built with" in p for p in problems), problems
    assert any("are not in the AddressBook" in p for p in problems), problems
    with pytest.raises(InputError, match="rebuild the dataset"):
        read_manifest(report.manifest_path)
    assert main(["validate", str(report.manifest_path)]) == 1


def test_validate_checks_every_address_id_against_the_addressbook(tmp_path, book, points):
    _cosplace_good(tmp_path, points)
    report = _build(tmp_path, "cosplace", {}, book)
    manifest = read_manifest(report.manifest_path)
    frame = manifest.frame
    frame.loc[frame["address_id"] == frame["address_id"].iloc[0], "address_id"] = "a000000000000"
    with pytest.raises(ManifestError, match="not in the AddressBook"):
        write_manifest(frame, report.manifest_path, manifest.image_root, manifest.addressbook_dir,
                       addressbook_ids="all")  # fmt: skip
    crafted = tmp_path / "out" / "crafted.parquet"  # the ids flag of an old manifest is missing: checked too
    table = pq.read_table(report.manifest_path)
    table = pa.Table.from_pandas(frame, preserve_index=False).replace_schema_metadata(
        {k: v for k, v in table.schema.metadata.items() if b"addressbook_ids" not in k}
    )
    pq.write_table(table, crafted)
    problems = validate_manifest(crafted)
    assert any("'a000000000000'" in p and "not in the AddressBook" in p for p in problems), problems


def test_given_addresses_with_a_geometry_book_stay_valid(tmp_path, book):
    lines = ["path,lat,lon,address"]
    for i in range(8):
        write_jpeg(tmp_path / "images" / f"{i}.jpg")
        lines.append(f'{i}.jpg,{60.53 + 0.0002 * i:.5f},26.95,"Given Street {i % 2}"')
    (tmp_path / "p.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    report = build_dataset(
        "csv", tmp_path / "images", tmp_path / "out", reader_options={"csv_path": tmp_path / "p.csv"},
        addressbook=book, addresses="given", split=SplitConfig(ratios=(1.0, 0.0, 0.0)), progress=False,
    )  # fmt: skip
    assert validate_manifest(report.manifest_path) == []


def test_builds_into_one_folder_wait_for_the_folder_lock(tmp_path, book, points):
    _cosplace_good(tmp_path, points)
    result: dict[str, object] = {}

    def build() -> None:
        try:
            result["report"] = _build(tmp_path, "cosplace", {}, book)
        except Exception as error:  # surfaced by the assertion below
            result["error"] = error

    with output_lock(tmp_path / "out"):  # another build is writing the folder
        worker = threading.Thread(target=build)
        worker.start()
        worker.join(timeout=3.0)
        assert worker.is_alive() and not (tmp_path / "out" / "manifest.parquet").exists()
    worker.join(timeout=60.0)
    assert "error" not in result and validate_manifest(tmp_path / "out" / "manifest.parquet") == []
    out = tmp_path / "out"
    with pytest.raises(AddressclipError, match="another build is still writing"):  # noqa: SIM117
        with output_lock(out), output_lock(out, timeout_s=0.2):
            pass
