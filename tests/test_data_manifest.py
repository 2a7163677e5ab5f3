"""Manifest: schema, atomic write, read with relative folders, and validation of each rule."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from addressclip.cli import main
from addressclip.data.manifest import (
    MANIFEST_COLUMNS,
    META_ADDRESSBOOK,
    META_IMAGE_ROOT,
    META_SCHEMA_VERSION,
    ManifestError,
    read_manifest,
    validate_manifest,
    write_manifest,
)
from addressclip.errors import InputError
from fixtures_data import manifest_frame


def _write(tmp_path: Path, frame: pd.DataFrame | None = None, **kwargs: object) -> Path:
    root = tmp_path / "images"
    base = manifest_frame(root)
    (tmp_path / "out" / "addressbook").mkdir(parents=True, exist_ok=True)
    return write_manifest(
        base if frame is None else frame,
        tmp_path / "out" / "manifest.parquet",
        root,
        tmp_path / "out" / "addressbook",
        **kwargs,  # type: ignore[arg-type]
    )


def test_round_trip_schema_and_relative_metadata(tmp_path: Path) -> None:
    path = _write(tmp_path)
    schema = pq.read_schema(path)
    assert tuple(schema.names) == MANIFEST_COLUMNS
    assert schema.field("heading").type == pa.float32()
    assert schema.field("lat").type == pa.float64()
    assert schema.field("split").type == pa.string()
    meta = {k.decode(): v.decode() for k, v in schema.metadata.items()}
    assert meta[META_IMAGE_ROOT] == "../images"
    assert meta[META_ADDRESSBOOK] == "addressbook"
    assert meta[META_SCHEMA_VERSION] == "2"

    manifest = read_manifest(path)
    assert manifest.image_root == (tmp_path / "images").resolve()
    assert manifest.addressbook_dir == (tmp_path / "out" / "addressbook").resolve()
    frame = manifest.frame
    expected = manifest_frame()
    assert frame["path"].tolist() == expected["path"].tolist()
    np.testing.assert_allclose(frame["utm_e"], expected["utm_e"])
    assert np.isnan(frame.loc[7, "heading"]) and frame.loc[1, "heading"] == 90.0
    assert pd.isna(frame.loc[6, "neighbourhood"]) and pd.isna(frame.loc[0, "caption"])
    assert len(manifest.split("train")) == 4 and manifest.image_path("img/000.jpg").is_file()
    assert validate_manifest(path) == []


def test_moving_the_dataset_folder_keeps_it_valid(tmp_path: Path) -> None:
    _write(tmp_path / "a")
    os.rename(tmp_path / "a", tmp_path / "b")
    assert validate_manifest(tmp_path / "b" / "out" / "manifest.parquet") == []


def test_extra_columns_are_kept_after_the_standard_ones(tmp_path: Path) -> None:
    frame = manifest_frame(tmp_path / "images")
    frame["role"] = ["database", "queries"] * 4
    path = _write(tmp_path, frame)
    assert pq.read_schema(path).names[-1] == "role"
    assert read_manifest(path).frame["role"].tolist()[:2] == ["database", "queries"]


def test_bad_frame_is_refused_and_previous_manifest_kept(tmp_path: Path) -> None:
    path = _write(tmp_path)
    before = path.read_bytes()
    bad = manifest_frame()
    bad.loc[2, "lat"] = None
    with pytest.raises(ManifestError, match=r"column 'lat': 1 null value\(s\) \(rows 2\)"):
        _write(tmp_path, bad)
    missing = manifest_frame().drop(columns=["street_id"])
    with pytest.raises(ManifestError, match="lacks column"):
        _write(tmp_path, missing)
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["addressbook", "manifest.parquet"]


def test_write_is_atomic_when_interrupted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path)
    before = path.read_bytes()

    def half_write(table: pa.Table, where: object, **_: object) -> None:
        Path(str(where)).write_bytes(b"PAR1 half")
        raise KeyboardInterrupt

    monkeypatch.setattr(pq, "write_table", half_write)
    with pytest.raises(KeyboardInterrupt):
        _write(tmp_path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["addressbook", "manifest.parquet"]


def _problems_after(tmp_path: Path, column: str, row: int | None, value: object) -> list[str]:
    frame = manifest_frame(tmp_path / "images")
    if row is None:
        frame[column] = value
    elif column == "utm_e":
        frame.loc[row, column] += value  # type: ignore[operator]
    else:
        frame.loc[row, column] = value
    # Written by hand (not write_manifest), as another tool might: nullable fields, our metadata.
    table = pa.Table.from_pandas(frame, preserve_index=False)
    table = table.set_column(6, "heading", table.column("heading").cast(pa.float32()))
    metadata = {META_SCHEMA_VERSION: "1", META_IMAGE_ROOT: "images"}
    path = tmp_path / "manifest.parquet"
    pq.write_table(table.replace_schema_metadata(metadata), path)
    return validate_manifest(path)


@pytest.mark.parametrize(
    ("column", "row", "value", "expected"),
    [
        ("split", None, ["train"] * 4 + ["dev"] * 4, "column 'split': values 'dev'"),
        ("path", 3, "img/002.jpg", "column 'path': 1 duplicate path(s)"),
        ("lat", 1, 91.0, "column 'lat': 1 value(s) outside [-90, 90]"),
        ("lon", 1, -181.0, "column 'lon': 1 value(s) outside [-180, 180]"),
        ("utm_e", 5, 12.0, "1 row(s) more than 5 m from lat/lon projected in zone 35V"),
        ("utm_zone", None, "36V", "more than 5 m from lat/lon projected in zone 36V"),
        ("utm_zone", None, "99Z", "'99Z' is not a UTM zone"),
        ("address_id", 0, None, "column 'address_id': 1 null value(s) (rows 0)"),
        ("street", 0, " ", "column 'street': 1 empty string(s)"),
        ("address_id", 6, "a9", "split 'test': 1 address_id(s) absent from train"),
        ("address", 4, "Other", "1 id(s) with more than one address"),
        ("heading", 2, 400.0, "column 'heading': 1 value(s) outside [0, 360]"),
    ],
)
def test_validate_reports_each_rule(
    tmp_path: Path, column: str, row: int | None, value: object, expected: str
) -> None:
    problems = _problems_after(tmp_path, column, row, value)
    assert len(problems) == 1, problems
    assert expected in problems[0]


def test_validate_checks_files_unless_told_not_to(tmp_path: Path) -> None:
    path = _write(tmp_path)
    (tmp_path / "images" / "img" / "004.jpg").unlink()
    (problem,) = validate_manifest(path)
    assert "1 image file(s) not found" in problem and "'img/004.jpg'" in problem
    assert validate_manifest(path, check_files=False) == []


def test_validate_reports_types_and_metadata(tmp_path: Path) -> None:
    frame = manifest_frame(tmp_path / "images")
    path = tmp_path / "handmade.parquet"
    table = pa.Table.from_pandas(frame, preserve_index=False)  # heading as float64, no metadata
    pq.write_table(table, path)
    problems = validate_manifest(path)
    assert any("metadata 'addressclip.schema_version': missing" in p for p in problems)
    assert any("metadata 'addressclip.image_root': missing" in p for p in problems)
    assert any("column 'heading': type double, expected float" in p for p in problems)
    with pytest.raises(InputError, match="not an addressclip manifest"):
        read_manifest(path)


def test_unreadable_files(tmp_path: Path) -> None:
    assert "manifest not found" in validate_manifest(tmp_path / "none.parquet")[0]
    junk = tmp_path / "junk.parquet"
    junk.write_text("not parquet")
    (problem,) = validate_manifest(junk)
    assert problem.startswith(str(junk)) and "not a readable parquet manifest" in problem
    with pytest.raises(InputError):
        read_manifest(junk)


def test_validate_command_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path)
    assert main(["validate", str(path)]) == 0
    assert "ok" in capsys.readouterr().out
    (tmp_path / "images" / "img" / "000.jpg").unlink()
    assert main(["validate", str(path)]) == 1
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and "image file(s) not found" in out[0]
    assert main(["validate", "--no-files", str(path)]) == 0


def test_check_false_writes_a_test_only_manifest_that_validate_still_flags(tmp_path: Path) -> None:
    frame = manifest_frame(tmp_path / "images")
    frame["split"] = "test"  # e.g. a zero-shot evaluation set: no training split at all
    with pytest.raises(ManifestError, match="absent from train"):
        _write(tmp_path, frame)
    path = _write(tmp_path, frame, check=False)
    problems = validate_manifest(path)
    assert (
        len(problems) == 1 and "split 'test': 2 address_id(s) absent from train (8 image(s))" in problems[0]
    )
