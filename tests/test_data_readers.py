"""CSV, EXIF and annotation-JSON readers on real-format files, including each kind of bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from addressclip.data.readers import (
    read_annotation_json,
    read_csv_table,
    read_exif,
    read_exif_gps,
    street_key_function,
)
from addressclip.errors import ConfigError, InputError
from fixtures_data import cosplace_name_for, jpeg_bytes, write_corrupt_jpeg, write_jpeg

# ---------------------------------------------------------------- CSV


def _csv_fixture(tmp_path: Path) -> Path:
    for name in ("a.jpg", "b.jpg", "c.jpg", "d.jpg", "e.jpg", "f.jpg", "g.jpg"):
        write_jpeg(tmp_path / "img" / name)
    csv_path = tmp_path / "points.csv"
    csv_path.write_text(
        "path,lat,lon,heading,caption,location_id\n"
        "a.jpg,60.5301,26.9502,90,A street view of houses,L1\n"  # line 2
        "b.jpg,60.5301,26.9502,,,L1\n"  # line 3
        "c.jpg,,26.95,,,\n"  # line 4: missing lat
        "d.jpg,60.53,east,,,\n"  # line 5: non-numeric lon
        "e.jpg,160.53,26.95,,,\n"  # line 6: lat out of range
        "missing.jpg,60.53,26.95,,,\n"  # line 7: no such file
        'f.jpg,60.5302,26.9503,370,"with, a comma",\n'  # line 8: heading wraps
        "g.jpg,60.53,26.95,north,,\n",  # line 9: bad heading
        encoding="utf-8",
    )
    return csv_path


def test_csv_reads_rows_and_counts_skips_with_line_and_field(tmp_path: Path) -> None:
    result = read_csv_table(_csv_fixture(tmp_path), tmp_path / "img", progress=False)
    frame = result.frame.set_index("path")
    assert list(frame.index) == ["a.jpg", "b.jpg", "f.jpg"]
    assert frame.loc["a.jpg", "lat"] == 60.5301 and frame.loc["a.jpg", "heading"] == 90.0
    assert frame.loc["a.jpg", "caption"] == "A street view of houses"
    assert frame.loc["b.jpg", "caption"] is None and frame.loc["b.jpg", "location_id"] == "L1"
    assert frame.loc["f.jpg", "heading"] == pytest.approx(10.0)
    assert frame.loc["f.jpg", "location_id"] == "gps:60.53020:26.95030"
    report = result.report
    assert (report.seen, report.kept, report.skipped) == (8, 3, 5)
    found = {(s.line, s.field, s.kind) for s in report.skips}
    assert found == {
        (4, "lat", "missing_gps"),
        (5, "lon", "non_numeric_gps"),
        (6, "lat", "gps_out_of_range"),
        (7, "path", "file_not_found"),
        (9, "heading", "non_numeric_heading"),
    }
    assert all(s.source.endswith("points.csv") for s in report.skips)
    assert "'east' is not a number" in str(next(s for s in report.skips if s.line == 5))


def test_csv_strict_mode_stops_at_the_first_bad_row(tmp_path: Path) -> None:
    with pytest.raises(InputError) as caught:
        read_csv_table(_csv_fixture(tmp_path), tmp_path / "img", strict=True, progress=False)
    assert str(caught.value).endswith("points.csv:4: field 'lat': missing value")


def test_csv_missing_column_is_input_error(tmp_path: Path) -> None:
    csv_path = tmp_path / "p.csv"
    csv_path.write_text("path,latitude\na.jpg,60\n")
    with pytest.raises(InputError, match=r"p.csv: field 'lon': missing column"):
        read_csv_table(csv_path, progress=False)


def test_csv_aliases_and_split_column(tmp_path: Path) -> None:
    write_jpeg(tmp_path / "x.jpg")
    csv_path = tmp_path / "p.csv"
    csv_path.write_text("Path,Latitude,Longitude,split,address\nx.jpg,1.5,2.5,test,Main St & Side St\n")
    frame = read_csv_table(csv_path, progress=False).frame
    assert frame.loc[0, "lat"] == 1.5 and frame.loc[0, "lon"] == 2.5
    assert frame.loc[0, "split"] == "test" and frame.loc[0, "address"] == "Main St & Side St"


# ---------------------------------------------------------------- EXIF


def test_exif_gps_values_match_what_was_written(tmp_path: Path) -> None:
    path = write_jpeg(tmp_path / "g.jpg", lat=60.531234, lon=26.951234, heading=271.5)
    gps = read_exif_gps(path)
    assert gps.lat == pytest.approx(60.531234, abs=1e-6)
    assert gps.lon == pytest.approx(26.951234, abs=1e-6)
    assert gps.heading == pytest.approx(271.5)
    south_west = read_exif_gps(write_jpeg(tmp_path / "sw.jpg", lat=-33.9, lon=-70.6))
    assert (south_west.lat, south_west.lon) == pytest.approx((-33.9, -70.6), abs=1e-6)
    assert south_west.heading is None


def test_exif_written_by_piexif_is_read(tmp_path: Path) -> None:
    piexif = pytest.importorskip("piexif")
    gps_ifd = {
        piexif.GPSIFD.GPSLatitudeRef: b"N",
        piexif.GPSIFD.GPSLatitude: ((60, 1), (31, 1), (4500, 100)),
        piexif.GPSIFD.GPSLongitudeRef: b"E",
        piexif.GPSIFD.GPSLongitude: ((26, 1), (57, 1), (0, 1)),
    }
    path = tmp_path / "p.jpg"
    path.write_bytes(jpeg_bytes())
    piexif.insert(piexif.dump({"GPS": gps_ifd}), str(path))
    gps = read_exif_gps(path)
    assert gps.lat == pytest.approx(60 + 31 / 60 + 45 / 3600)
    assert gps.lon == pytest.approx(26 + 57 / 60)


def test_exif_folder_counts_missing_gps_and_corrupt_jpegs(tmp_path: Path) -> None:
    write_jpeg(tmp_path / "a" / "one.jpg", lat=60.53, lon=26.95, heading=45)
    write_jpeg(tmp_path / "a" / "two.JPEG", lat=60.53, lon=26.95)
    write_jpeg(tmp_path / "no_gps.jpg")
    write_corrupt_jpeg(tmp_path / "broken.jpg")
    (tmp_path / "text.jpg").write_text("not a jpeg at all")
    (tmp_path / "notes.txt").write_text("ignored")
    result = read_exif(tmp_path, progress=False)
    assert result.frame["path"].tolist() == ["a/one.jpg", "a/two.JPEG"]
    assert result.frame["location_id"].nunique() == 1  # same spot -> same capture location
    assert result.frame.loc[0, "heading"] == pytest.approx(45.0)
    kinds = {s.source.rsplit("/", 1)[-1]: (s.kind, s.field) for s in result.report.skips}
    assert kinds == {
        "no_gps.jpg": ("no_exif_gps", "GPSInfo"),
        "broken.jpg": ("corrupt_jpeg", "file"),
        "text.jpg": ("corrupt_jpeg", "file"),
    }
    assert result.report.seen == 5 and result.report.kept == 2


def test_exif_strict_mode_names_the_file(tmp_path: Path) -> None:
    write_corrupt_jpeg(tmp_path / "broken.jpg")
    with pytest.raises(InputError, match=r"broken\.jpg: field 'file': cannot read JPEG"):
        read_exif(tmp_path, strict=True, progress=False)


# ---------------------------------------------------------------- annotation JSON


def test_street_key_default_regex_and_template() -> None:
    default = street_key_function()
    assert default("Forbes Ave & Craig St, Oakland") == "Forbes Ave"
    assert default("Forbes Ave, Oakland") == "Forbes Ave"
    assert default("Forbes Ave") == "Forbes Ave"
    sentence = "The photo was taken in Oakland, specifically on a section of Forbes Ave that runs east."
    custom = street_key_function(r"on a section of (?P<street>.+?) that")
    assert custom(sentence) == "Forbes Ave"
    assert custom("no match here") is None
    template = street_key_function(r"in (?P<hood>\w+), .*section of (?P<street>.+?) that", "{street}, {hood}")
    assert template(sentence) == "Forbes Ave, Oakland"
    with pytest.raises(ConfigError, match="not a valid regular expression"):
        street_key_function("(unclosed")
    with pytest.raises(ConfigError, match="does not fit"):
        street_key_function(r"(?P<street>.+)", "{street} {hood}")


def _json_fixture(tmp_path: Path) -> tuple[Path, Path]:
    images = tmp_path / "images"
    at_name = "train/" + cosplace_name_for(60.5301, 26.9501, "PANO1", heading=30)
    write_jpeg(images / at_name)
    write_jpeg(images / "csv_gps.jpg")
    write_jpeg(images / "exif_gps.jpg", lat=60.5350, lon=26.9550)
    write_jpeg(images / "no_gps.jpg")
    data = {
        at_name: ["A street view of a red house", "Kauppakatu & Keskuskatu, Karhula", "Kauppakatu, Karhula"],
        "csv_gps.jpg": ["A street view of trees", "Kauppakatu & Puistotie, Karhula", None],
        "exif_gps.jpg": [None, "Mäkitie, Karhula"],
        "no_gps.jpg": ["x", "Somewhere St"],
        "gone.jpg": ["x", "Somewhere St"],
    }
    json_path = tmp_path / "annotations.json"
    json_path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    (tmp_path / "gps.csv").write_text("path,lat,lon,heading\ncsv_gps.jpg,60.5320,26.9520,180\n")
    return json_path, images


def test_json_reader_takes_gps_from_name_csv_and_exif(tmp_path: Path) -> None:
    json_path, images = _json_fixture(tmp_path)
    result = read_annotation_json(
        json_path, images, gps_csv=tmp_path / "gps.csv", gps_from_exif=True, progress=False
    )
    frame = result.frame
    assert len(frame) == 3
    by_address = frame.set_index("address")
    first = by_address.loc["Kauppakatu & Keskuskatu, Karhula"]
    assert first["street"] == "Kauppakatu" and first["address_alt"] == "Kauppakatu, Karhula"
    assert first["location_id"] == "pano:PANO1" and first["heading"] == pytest.approx(30)
    assert first["caption"] == "A street view of a red house"
    second = by_address.loc["Kauppakatu & Puistotie, Karhula"]
    assert (second["lat"], second["lon"], second["heading"]) == pytest.approx((60.532, 26.952, 180))
    third = by_address.loc["Mäkitie, Karhula"]
    assert third["lat"] == pytest.approx(60.535, abs=1e-6) and third["caption"] is None
    assert third["street"] == "Mäkitie"
    assert result.report.skip_counts == {"no_gps": 1, "file_not_found": 1}
    no_gps = next(s for s in result.report.skips if s.kind == "no_gps")
    assert no_gps.field == "no_gps.jpg" and "not in the GPS CSV" in no_gps.reason


def test_json_without_gps_sources_skips_plain_names(tmp_path: Path) -> None:
    json_path, images = _json_fixture(tmp_path)
    result = read_annotation_json(json_path, images, progress=False)
    assert len(result.frame) == 1  # only the @ name carries GPS
    assert result.report.skip_counts == {"no_gps": 3, "file_not_found": 1}


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ('["a", "b"]', r"top level is a list"),
        ('{"x.jpg": "just a string"}', r"field 'x.jpg': expected \[caption, address, address_alt\]"),
        ('{"ok.jpg": ["c", "A St"], "y.jpg": ["c"]}', r"field 'y.jpg': .*got a list of 1 items"),
        ('{"z.jpg": ["c", 42, "alt"]}', r"field 'z.jpg': address is a int"),
        ('{"w.jpg": ["c", "  "]}', r"field 'w.jpg': address is an empty string"),
        ('{"v.jpg": [1, "A St"]}', r"field 'v.jpg': caption is a int"),
        ('{"u.jpg": ["c", "A St", ["x"]]}', r"field 'u.jpg': address_alt is a list"),
        ('{"t.jpg": ["c", "A St"', r"not valid JSON \(line 1, column"),
    ],
)
def test_json_of_the_wrong_shape_is_one_line_input_error(tmp_path: Path, content: str, match: str) -> None:
    json_path = tmp_path / "ann.json"
    json_path.write_text(content)
    with pytest.raises(InputError, match=match) as caught:
        read_annotation_json(json_path, tmp_path, progress=False)
    assert str(caught.value).startswith(str(json_path)) and "\n" not in str(caught.value)


def test_json_street_pattern_fallback_is_counted(tmp_path: Path) -> None:
    name = cosplace_name_for(60.53, 26.95)
    write_jpeg(tmp_path / name)
    (tmp_path / "a.json").write_text(json.dumps({name: ["c", "Somewhere without the marker"]}))
    result = read_annotation_json(
        tmp_path / "a.json", tmp_path, street_pattern=r"section of (?P<street>.+?) that", progress=False
    )
    assert result.frame.loc[0, "street"] == "Somewhere without the marker"
    assert result.report.notes["street_key_fallback"] == 1
