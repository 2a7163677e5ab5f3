"""CosPlace `@` names: parse/format, the train/val/test layout, sidecar lists, bad names."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from addressclip.data.readers.cosplace import (
    CosplaceName,
    CosplaceNameError,
    cosplace_location_id,
    format_cosplace_name,
    parse_cosplace_name,
    read_cosplace,
    split_and_role,
)
from addressclip.errors import InputError
from fixtures_data import cosplace_name_for, write_jpeg

SPEC_EXAMPLE = "@0544000.32@4177609.18@10@S@037.74472@-122.50057@NY0VsOD8K4d0YA9fd0CCGA@@0@@@@201708@@.jpg"


def test_parse_spec_example() -> None:
    name = parse_cosplace_name(SPEC_EXAMPLE)
    assert name.utm_east == 544000.32
    assert name.utm_north == 4177609.18
    assert name.zone == "10S"
    assert name.lat == 37.74472
    assert name.lon == -122.50057
    assert name.pano_id == "NY0VsOD8K4d0YA9fd0CCGA"
    assert name.heading == 0.0
    assert name.pitch is None
    assert name.timestamp == "201708"
    assert format_cosplace_name(name) == SPEC_EXAMPLE


def test_parse_ignores_folders() -> None:
    assert parse_cosplace_name("images/test/queries/" + SPEC_EXAMPLE).lat == 37.74472


_free_text = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-", max_size=24)
_optional_number = st.none() | st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)


@st.composite
def cosplace_names(draw: st.DrawFn) -> CosplaceName:
    return CosplaceName(
        utm_east=round(draw(st.floats(0, 9_999_999.99)), 2),
        utm_north=round(draw(st.floats(0, 9_999_999.99)), 2),
        zone_number=draw(st.integers(1, 60)),
        zone_letter=draw(st.sampled_from("CDEFGHJKLMNPQRSTUVWX")),
        lat=round(draw(st.floats(-90, 90)), 5),
        lon=round(draw(st.floats(-180, 180)), 5),
        pano_id=draw(_free_text),
        tile_num=draw(st.text(alphabet="0123456789", max_size=3)),
        heading=draw(_optional_number),
        pitch=draw(_optional_number),
        roll=draw(_optional_number),
        height=draw(_optional_number),
        timestamp=draw(st.text(alphabet="0123456789", max_size=8)),
        note=draw(_free_text),
    )


@given(cosplace_names())
def test_format_then_parse_round_trips(fields: CosplaceName) -> None:
    name = format_cosplace_name(fields)
    assert name.startswith("@") and name.endswith("@.jpg")
    assert name.count("@") == 15
    parsed = parse_cosplace_name(name)
    assert parsed == fields
    assert format_cosplace_name(parsed) == name


@given(cosplace_names())
def test_fixed_widths_follow_the_convention(fields: CosplaceName) -> None:
    parts = format_cosplace_name(fields).split("@")
    east, north, lat, lon = parts[1], parts[2], parts[5], parts[6]
    assert len(east) == 10 and len(north) == 10  # 7+2 digits and the point
    assert len(lat) == 9 and len(lon) == 10  # 3+5 and 4+5 (sign counts as a digit)
    assert lat.index(".") == 3 and lon.index(".") == 4


@pytest.mark.parametrize(
    ("name", "field"),
    [
        ("photo_001.jpg", None),
        ("@0544000.32@4177609.18@10@S@037.74472@.jpg", None),
        ("@0544000.32@4177609.18@10@S@037.74472@-122.50057@@@@@@@@@@@.jpg", None),
        ("@abc@4177609.18@10@S@037.74472@-122.50057@@@@@@@@@.jpg", "utm_east"),
        ("@0544000.32@4177609.18@99@S@037.74472@-122.50057@@@@@@@@@.jpg", "zone_number"),
        ("@0544000.32@4177609.18@10@I@037.74472@-122.50057@@@@@@@@@.jpg", "zone_letter"),
        ("@0544000.32@4177609.18@10@S@@-122.50057@@@@@@@@@.jpg", "lat"),
        ("@0544000.32@4177609.18@10@S@137.74472@-122.50057@@@@@@@@@.jpg", "lat"),
        ("@0544000.32@4177609.18@10@S@037.74472@-122.5x057@@@@@@@@@.jpg", "lon"),
        ("@0544000.32@4177609.18@10@S@037.74472@-122.50057@@@north@@@@@@.jpg", "heading"),
    ],
)
def test_malformed_names_name_the_field(name: str, field: str | None) -> None:
    with pytest.raises(CosplaceNameError) as caught:
        parse_cosplace_name(name)
    assert caught.value.field == field


def test_location_id_uses_pano_id_else_rounded_utm() -> None:
    with_pano = parse_cosplace_name(SPEC_EXAMPLE)
    assert cosplace_location_id(with_pano) == "pano:NY0VsOD8K4d0YA9fd0CCGA"
    # Pitts250k style: no pano id; the views of one capture share the UTM position.
    views = [
        f"@0585375.80@4477107.43@17@T@040.44417@-079.99165@@@{yaw}@{pitch}@@@@@.jpg"
        for yaw in (0, 30, 60)
        for pitch in (4, 26)
    ]
    ids = {cosplace_location_id(parse_cosplace_name(v)) for v in views}
    assert ids == {"utm:17T:585376:4477107"}
    other = parse_cosplace_name("@0585390.10@4477107.43@17@T@040.44417@-079.99148@@@0@@@@@@.jpg")
    assert cosplace_location_id(other) != next(iter(ids))


def test_split_and_role_from_folders() -> None:
    assert split_and_role("images/val/queries/@x.jpg") == ("val", "queries")
    assert split_and_role("train/database/sub/@x.jpg") == ("train", "database")
    assert split_and_role("flat/@x.jpg") == (None, None)


def _layout(root: Path) -> dict[str, str]:
    """Six images in the CosPlace layout, two views sharing a pano id, plus one bad name."""
    files = {
        "images/train/database/" + cosplace_name_for(60.5300, 26.9500, "P1", heading=0): "train",
        "images/train/database/" + cosplace_name_for(60.5300, 26.9500, "P1", heading=90): "train",
        "images/train/queries/" + cosplace_name_for(60.5310, 26.9510, "P2", heading=180): "train",
        "images/val/database/" + cosplace_name_for(60.5320, 26.9520, "P3"): "val",
        "images/test/queries/" + cosplace_name_for(60.5330, 26.9530): "test",
        "images/test/queries/not_an_at_name.jpg": "bad",
    }
    for relative in files:
        write_jpeg(root / relative)
    return files


def test_read_layout_takes_split_and_role_from_folders(tmp_path: Path) -> None:
    files = _layout(tmp_path)
    result = read_cosplace(tmp_path, progress=False)
    frame = result.frame.set_index("path")
    assert len(frame) == 5
    for relative, split in files.items():
        if split != "bad":
            assert frame.loc[relative, "split"] == split
    train_db = frame[(frame["split"] == "train") & (frame["role"] == "database")]
    assert len(train_db) == 2 and train_db["location_id"].nunique() == 1
    assert sorted(train_db["heading"].tolist()) == [0.0, 90.0]
    test_row = frame[frame["split"] == "test"].iloc[0]
    assert test_row["location_id"].startswith("utm:35V:")
    assert test_row["lat"] == pytest.approx(60.533) and test_row["lon"] == pytest.approx(26.953)
    assert result.report.seen == 6 and result.report.kept == 5
    assert result.report.skip_counts == {"malformed_name": 1}
    (skip,) = result.report.skips
    assert skip.source.endswith("not_an_at_name.jpg") and "does not start with '@'" in skip.reason


def test_strict_mode_raises_one_line_input_error(tmp_path: Path) -> None:
    _layout(tmp_path)
    with pytest.raises(InputError) as caught:
        read_cosplace(tmp_path, strict=True, progress=False)
    message = str(caught.value)
    assert "not_an_at_name.jpg" in message and "\n" not in message


def test_sidecar_list_is_read_instead_of_globbing(tmp_path: Path) -> None:
    files = _layout(tmp_path)
    good = [p for p, split in files.items() if split != "bad"]
    listed = [good[0], good[3], "images/train/database/@missing.jpg", good[0]]
    (tmp_path / "images_paths.txt").write_text("# CosPlace-style list\n" + "\n".join(listed) + "\n\n")
    result = read_cosplace(tmp_path, progress=False)  # the sidecar is found by name
    assert result.frame["path"].tolist() == [good[0], good[3]]
    assert result.report.skip_counts == {"file_not_found": 1, "duplicate_path": 1}
    assert result.report.notes["paths_from_list"] == 4

    explicit = tmp_path / "lists" / "database_paths.txt"
    explicit.parent.mkdir()
    explicit.write_text(f"{good[1]}\n../outside.jpg\n")
    result = read_cosplace(tmp_path, paths_list=explicit, progress=False)
    assert result.frame["path"].tolist() == [good[1]]
    assert result.report.skip_counts == {"outside_root": 1}


def test_flat_folder_has_no_split_column(tmp_path: Path) -> None:
    write_jpeg(tmp_path / cosplace_name_for(60.53, 26.95))
    result = read_cosplace(tmp_path, progress=False)
    assert "split" not in result.frame.columns and len(result.frame) == 1


def test_missing_folder_is_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="images folder not found"):
        read_cosplace(tmp_path / "nope", progress=False)
