"""`addressclip atlas`: two tiny crops into one manifest with a city column, per-city splits and caching."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from addressclip.cli import main
from addressclip.data.manifest import META_SCHEMA_VERSION, SCHEMA_VERSION, read_manifest, validate_manifest
from addressclip.errors import ConfigError
from addressclip.resources import EVALUATION_CITIES, training_cities
from addressclip.world.atlas import load_spec, parse_cities, parse_city_boxes

# two disjoint corners of the bundled Karhula extract, as two "cities" (one extract read: fast)
SPEC = """
[cities.west]
world = "karhula"
bbox = "60.522,26.936,60.530,26.950"

[cities.east]
world = "karhula"
bbox = [60.526, 26.950, 60.534, 26.966]
"""
TINY = ["--size", "32", "--spacing", "30", "--views", "1", "--no-pictures", "--quiet", "--workers", "1"]


@pytest.fixture(scope="module")
def atlas(tmp_path_factory) -> tuple[Path, Path, list[str]]:
    """West alone first, then both cities: the second run must render east only."""
    folder = tmp_path_factory.mktemp("atlas")
    spec = folder / "spec.toml"
    spec.write_text(SPEC, encoding="utf-8")
    out = folder / "out"
    assert main(["atlas", "--spec", str(spec), "--cities", "west", "--out", str(out), *TINY]) == 0
    west = (out / "cities" / "west" / "world.json").read_bytes()
    assert main(["atlas", "--spec", str(spec), "--out", str(out), *TINY]) == 0
    info = json.loads((out / "atlas.json").read_text(encoding="utf-8"))
    assert info["cities"]["west"]["reused"] and not info["cities"]["east"]["reused"]
    assert (out / "cities" / "west" / "world.json").read_bytes() == west
    return out, spec, TINY


def test_atlas_manifest_has_cities_and_per_city_splits(atlas):
    out, _, _ = atlas
    manifest = read_manifest(out / "manifest.parquet")
    frame = manifest.frame
    assert set(frame["city"]) == {"west", "east"}
    assert manifest.image_root == (out / "cities").resolve()
    assert all(p.startswith(f"{c}/images/") for p, c in zip(frame["path"], frame["city"], strict=True))
    for city, rows in frame.groupby("city"):
        assert set(rows["split"]) == {"train", "val", "test"}, city
        train = set(rows.loc[rows["split"] == "train", "address_id"])
        assert set(rows.loc[rows["split"] != "train", "address_id"]) <= train
        # a location keeps one split; its ids and street ids carry the city
        assert rows.groupby("location_id")["split"].nunique().max() == 1
        assert rows["location_id"].str.startswith(f"{city}:").all()
        assert rows["street_id"].str.startswith(f"{city}:").all()
        # each city's rows are its own render's rows (same split per image)
        own = read_manifest(out / "cities" / city / "manifest.parquet").frame
        assert len(own) == len(rows)
        assert (own["split"].value_counts() == rows["split"].value_counts()).all()
    assert frame["caption"].notna().all()
    assert validate_manifest(out / "manifest.parquet") == []
    info = json.loads((out / "atlas.json").read_text(encoding="utf-8"))
    assert info["complete"] and set(info["cities"]) == {"west", "east"}
    assert info["cities"]["east"]["bbox"] == [60.526, 26.950, 60.534, 26.966]


def test_second_run_renders_nothing(atlas, capsys):
    out, spec, tiny = atlas
    before = (out / "cities" / "west" / "world.json").stat().st_mtime_ns
    assert main(["atlas", "--spec", str(spec), "--out", str(out), *tiny]) == 0
    assert "(0 rendered now)" in capsys.readouterr().out
    assert (out / "cities" / "west" / "world.json").stat().st_mtime_ns == before
    info = json.loads((out / "atlas.json").read_text(encoding="utf-8"))
    assert all(c["reused"] for c in info["cities"].values())
    # only the west city again, but with --cities: the atlas shrinks to it, nothing is rendered
    assert main(["atlas", "--spec", str(spec), "--cities", "west", "--out", str(out), *tiny]) == 0
    assert set(read_manifest(out / "manifest.parquet").frame["city"]) == {"west"}
    assert "(0 rendered now)" in capsys.readouterr().out


def test_manifest_without_city_column_still_reads(atlas, tmp_path: Path):
    out, _, _ = atlas
    table = pq.read_table(out / "cities" / "west" / "manifest.parquet")
    assert table.schema.metadata[META_SCHEMA_VERSION.encode()] == SCHEMA_VERSION.encode() == b"2"
    old = table.drop(["city"]).replace_schema_metadata(
        {**table.schema.metadata, META_SCHEMA_VERSION.encode(): b"1"}
    )
    path = out / "cities" / "west" / "old.parquet"
    pq.write_table(old, path)
    frame = read_manifest(path).frame
    assert "city" in frame.columns and frame["city"].isna().all()
    assert validate_manifest(path) == []
    path.unlink()


def test_city_lists_and_boxes():
    assert not set(training_cities()) & set(EVALUATION_CITIES)
    assert parse_cities("training") == list(training_cities())
    assert "helsinki" in parse_cities("training", exclude=("karhula",))
    assert parse_cities("porto, london,porto") == ["porto", "london"]
    with pytest.raises(ConfigError, match="lower-case letters"):
        parse_cities("Porto")
    boxes = parse_city_boxes(["porto:41.14,-8.62,41.15,-8.60"], ["porto", "london"])
    assert boxes["porto"].north == 41.15
    with pytest.raises(ConfigError, match="name the city"):
        parse_city_boxes(["41.14,-8.62,41.15,-8.60"], ["porto", "london"])
    with pytest.raises(ConfigError, match="not in --cities"):
        parse_city_boxes(["monaco:43.7,7.4,43.75,7.44"], ["porto"])


def test_spec_errors_are_one_line(tmp_path: Path):
    spec = tmp_path / "spec.toml"
    spec.write_text("[cities.porto]\nbox = '1,2,3,4'\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="unknown key"):
        load_spec(spec)
    spec.write_text("[cities.porto\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_spec(spec)
    spec.write_text("[cities.porto]\nbbox = '41.2,-8.6,41.1,-8.5'\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"south 41\.2 must be less than north 41\.1"):
        load_spec(spec)


def test_atlas_of_an_unknown_city_fails_before_rendering(tmp_path: Path, capsys):
    assert main(["atlas", "--cities", "atlantis", "--out", str(tmp_path / "a")]) == 2
    assert "'atlantis' is neither a bundled city" in capsys.readouterr().err
    assert not (tmp_path / "a").exists()
