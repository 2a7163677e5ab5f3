"""The AddressBook on the bundled Helsinki extract: hand-checked facts, invariants, merge, save/load."""

from __future__ import annotations

import dataclasses
import json
import random

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import shapely

from addressclip.errors import ConfigError, InputError
from addressclip.geo.addressbook import AddressBook
from addressclip.geo.osm import read_osm
from addressclip.geo.partition import PartitionConfig
from addressclip.resources import bundled_extract


@pytest.fixture(scope="module")
def extract():
    return read_osm(bundled_extract("helsinki"))


@pytest.fixture(scope="module")
def book(extract) -> AddressBook:
    return AddressBook.from_osm(extract)


def _row(book: AddressBook, address: str) -> pd.Series:
    rows = book.table[book.table["address"] == address]
    assert len(rows) == 1, f"{address!r} not in the book"
    return rows.iloc[0]


def test_helsinki_hand_checked_sub_streets(book):
    # Mannerheimintie between Kaivokatu and Postikatu (past the station and the main post office):
    # both carriageways in one sub-street, in Kluuvi
    row = _row(book, "Mannerheimintie & Kaivokatu & Postikatu, Kluuvi")
    assert row["geometry"].geom_type == "MultiLineString" and len(row["geometry"].geoms) == 2
    assert row["street"] == "Mannerheimintie, Kluuvi"
    # Aleksanterinkatu block by block from Keskuskatu east (Keskuskatu meets it via its pedestrian area)
    for address in (
        "Aleksanterinkatu & Keskuskatu & Mikonkatu, Kluuvi",
        "Aleksanterinkatu & Kluuvikatu & Mikonkatu, Kluuvi",
        "Aleksanterinkatu & Fabianinkatu & Kluuvikatu, Kluuvi",
        "Aleksanterinkatu & Fabianinkatu & Unioninkatu, Kluuvi",
        "Aleksanterinkatu & Sofiankatu & Unioninkatu, Kruununhaka",  # east of Unioninkatu: Kruununhaka
    ):
        assert 50 < _row(book, address)["length_m"] < 170
    # south of the Esplanadi park is Kaartinkaupunki; across Pitkäsilta bridge is Siltasaari
    assert set(book.table.loc[book.table["street_name"] == "Eteläesplanadi", "neighbourhood"]) == {
        "Kaartinkaupunki"
    }
    _row(book, "Fabianinkatu & Eteläesplanadi & Pohjoinen Makasiinikatu, Kaartinkaupunki")
    _row(book, "Siltasaarenkatu & Hakaniemenranta & Pitkäsilta, Siltasaari")
    # a square mapped only as an area keeps its outline and its own name
    assert _row(book, "Narinkkatori, Kamppi")["geometry"].is_closed


def test_helsinki_counts(book):
    summary = book.summary()
    assert summary["street_names"] == 84
    assert 180 <= summary["sub_streets"] <= 230
    assert set(summary["neighbourhoods"]) == {
        "Kaartinkaupunki",
        "Kamppi",
        "Kluuvi",
        "Kruununhaka",
        "Punavuori",
        "Siltasaari",
    }
    assert summary["cross_streets"]["2"] > summary["cross_streets"]["1"] > summary["cross_streets"]["0"]


def test_invariants(book):
    table = book.table
    assert table["address"].is_unique and table["address_id"].is_unique
    assert list(table.columns[:9]) == [
        "address_id", "address", "street_id", "street", "street_name", "neighbourhood", "cross_streets",
        "length_m", "geometry",
    ]  # fmt: skip
    for row in table.itertuples():
        expected_street = f"{row.street_name}, {row.neighbourhood}"
        assert row.street == expected_street
        assert row.address.startswith(row.street_name) and row.address.endswith(f", {row.neighbourhood}")
        assert len(row.cross_streets) <= 2 and row.street_name not in row.cross_streets
        assert row.length_m == pytest.approx(row.geometry.length)
    # one street key <-> one street id
    assert table.groupby("street")["street_id"].nunique().max() == 1
    assert table.groupby("street_id")["street"].nunique().max() == 1
    # sub-streets of one street do not overlap (a cut leaves only shared end points)
    for _, rows in table.groupby("component_id"):
        geoms = list(rows["geometry"])
        for i in range(len(geoms)):
            for j in range(i + 1, len(geoms)):
                assert geoms[i].intersection(geoms[j]).length < 1e-6


def test_ids_are_stable_across_builds_and_way_order(book, extract):
    again = AddressBook.from_osm(bundled_extract("helsinki"))
    assert list(again.table["address_id"]) == list(book.table["address_id"])
    shuffled_streets = list(extract.streets)
    random.Random(7).shuffle(shuffled_streets)
    shuffled = AddressBook.from_osm(dataclasses.replace(extract, streets=shuffled_streets))
    mine = dict(zip(book.table["address_id"], book.table["address"], strict=True))
    theirs = dict(zip(shuffled.table["address_id"], shuffled.table["address"], strict=True))
    assert mine == theirs


def test_min_gap_controls_the_number_of_cuts(extract, book):
    coarse = AddressBook.from_osm(extract, PartitionConfig(min_gap_m=80.0))
    fine = AddressBook.from_osm(extract, PartitionConfig(min_gap_m=10.0))
    assert len(coarse) < len(book) < len(fine)
    assert fine.table["address"].is_unique and coarse.table["address"].is_unique


def test_highway_classes_filter(extract):
    primary = AddressBook.from_osm(extract, PartitionConfig(highway_classes=("primary",)))
    assert set(primary.table["street_name"]) <= {s.name for s in extract.streets if s.highway == "primary"}
    assert "Mannerheimintie" in set(primary.table["street_name"])


def _random_points(book, n, seed=0, margin=0.0):
    rng = np.random.default_rng(seed)
    min_lon, min_lat, max_lon, max_lat = book.bounds
    lon = rng.uniform(min_lon - margin, max_lon + margin, n)
    lat = rng.uniform(min_lat - margin, max_lat + margin, n)
    return lat, lon


def test_labelled_points_lie_within_max_dist_of_their_sub_street(book):
    lat, lon = _random_points(book, 4000, margin=0.001)
    result = book.label(lat, lon, max_dist_m=25.0)
    counts = result.counts()
    assert counts["ok"] > 1000 and counts["too_far"] > 500 and counts["outside_extract"] > 300
    ok = np.flatnonzero(result.index >= 0)
    x, y = book.projection.to_utm(lon[ok], lat[ok])
    geometries = np.asarray(book.table["geometry"], dtype=object)
    exact = shapely.distance(geometries[result.index[ok]], shapely.points(x, y))
    np.testing.assert_allclose(result.distance_m[ok], exact, atol=1e-6)
    assert exact.max() <= 25.0 + 1e-9
    # and it is the nearest sub-street (brute force over all of them, on a sample)
    for k in ok[:200]:
        px, py = book.projection.to_utm(lon[k], lat[k])
        distances = shapely.distance(geometries, shapely.Point(float(px), float(py)))
        assert distances.min() == pytest.approx(result.distance_m[k], abs=1e-6)
    too_far = np.flatnonzero(result.reason == "too_far")
    x, y = book.projection.to_utm(lon[too_far[:200]], lat[too_far[:200]])
    nearest = [shapely.distance(geometries, shapely.Point(a, b)).min() for a, b in zip(x, y, strict=True)]
    assert min(nearest) > 25.0


def _merge_fixture(book, min_points=5):
    lat, lon = _random_points(book, 3000, seed=3)
    index = book.label(lat, lon).index
    location = np.arange(len(index)) // 3  # three views per capture location
    return index, location, book.merge_sparse(index, location, min_points)


def test_merge_sparse_leaves_no_sparse_sub_street_with_a_sibling(book):
    index, location, (merged, remapped) = _merge_fixture(book)
    assert len(merged) < len(book)
    assert np.array_equal(remapped < 0, index < 0)  # -1 stays -1, labelled stay labelled
    counts = pd.Series(location[remapped >= 0]).groupby(remapped[remapped >= 0]).nunique()
    counts = counts.reindex(range(len(merged)), fill_value=0)
    pieces = merged.table.groupby("component_id")["address_id"].transform("size")
    sparse = merged.table[(counts.to_numpy() < 5) & (pieces.to_numpy() > 1)]
    assert sparse.empty, sparse["address"].tolist()
    assert merged.table["address"].is_unique and merged.table["address_id"].is_unique
    # every point's new sub-street contains its old one, on the same street
    for old, new in zip(index[index >= 0][:500], remapped[index >= 0][:500], strict=True):
        old_row, new_row = book.table.iloc[old], merged.table.iloc[new]
        assert old_row["component_id"] == new_row["component_id"]
        assert new_row["geometry"].buffer(0.01).contains(old_row["geometry"])
    # untouched sub-streets keep their ids
    kept = set(book.table["address_id"]) & set(merged.table["address_id"])
    assert len(kept) > len(merged) / 2


def test_merged_sub_street_is_named_by_its_outer_cross_streets(book):
    # three blocks of Aleksanterinkatu: 2, 10 and 3 locations; the rest of the street has 20 per block,
    # so both sparse outer blocks merge into the middle one (their sparsest neighbour)
    names = [
        "Aleksanterinkatu & Keskuskatu & Mikonkatu, Kluuvi",
        "Aleksanterinkatu & Kluuvikatu & Mikonkatu, Kluuvi",
        "Aleksanterinkatu & Fabianinkatu & Kluuvikatu, Kluuvi",
    ]
    rows = [int(np.flatnonzero(book.table["address"] == n)[0]) for n in names]
    component = book.table.at[rows[0], "component_id"]
    others = [r for r in np.flatnonzero(book.table["component_id"] == component) if r not in rows]
    assert len(others) >= 3
    busy = [r for r in others for _ in range(20)]
    index = np.array([rows[0]] * 2 + [rows[1]] * 10 + [rows[2]] * 3 + [-1] + busy)
    location = np.arange(len(index))
    merged, remapped = book.merge_sparse(index, location, min_points=5)
    new_rows = set(remapped[:15].tolist())
    assert len(new_rows) == 1
    merged_row = merged.table.iloc[new_rows.pop()]
    assert merged_row["cross_streets"] == ["Fabianinkatu", "Keskuskatu"]
    assert merged_row["address"].startswith("Aleksanterinkatu & Fabianinkatu & Keskuskatu")
    assert remapped[15] == -1


def test_merge_sparse_counts_distinct_locations(book):
    row = int(np.flatnonzero(book.table["address"] == "Aleksanterinkatu & Kluuvikatu & Mikonkatu, Kluuvi")[0])
    component = book.table.at[row, "component_id"]
    others = [r for r in np.flatnonzero(book.table["component_id"] == component) if r != row]
    busy = [r for r in others for _ in range(5)]
    # 40 images of the block but only 4 capture locations (10 views each): too sparse, it merges
    index = np.array([row] * 40 + busy)
    location = np.array(
        [f"L{i // 10}" for i in range(40)] + [f"B{i}" for i in range(len(busy))], dtype=object
    )
    merged, _ = book.merge_sparse(index, location, min_points=5)
    assert (merged.table["component_id"] == component).sum() == len(others)
    # the same images without location ids count one location each: the block stays
    location[:40] = None
    merged, remapped = book.merge_sparse(index, location, min_points=5)
    assert (merged.table["component_id"] == component).sum() == len(others) + 1
    assert merged.table["address"].iat[remapped[0]] == book.table["address"].iat[row]


def test_merge_sparse_rejects_bad_input(book):
    with pytest.raises(ValueError):
        book.merge_sparse(np.array([0, 1]), np.array(["a"]))
    with pytest.raises(ValueError):
        book.merge_sparse(np.array([len(book)]), np.array(["a"]))


def test_save_load_round_trip(book, tmp_path):
    path = book.save(tmp_path / "book")
    assert path == tmp_path / "book" / "addressbook.parquet"
    assert [p.name for p in (tmp_path / "book").iterdir()] == ["addressbook.parquet"]  # no temp files left
    geo = json.loads(pq.read_schema(path).metadata[b"geo"])
    assert geo["primary_column"] == "geometry" and geo["columns"]["geometry"]["encoding"] == "WKB"
    loaded = AddressBook.load(tmp_path / "book")
    columns = [c for c in book.table.columns if c != "geometry"]
    pd.testing.assert_frame_equal(
        loaded.table[columns].astype(str), book.table[columns].astype(str), check_dtype=False
    )
    assert all(
        a.equals_exact(b, 0.0) for a, b in zip(loaded.table["geometry"], book.table["geometry"], strict=True)
    )
    assert (
        loaded.projection == book.projection and loaded.bounds == book.bounds and loaded.config == book.config
    )
    lat, lon = _random_points(book, 500, seed=9)
    assert np.array_equal(loaded.label(lat, lon).index, book.label(lat, lon).index)
    assert AddressBook.load(path).summary() == book.summary()  # the parquet file itself also loads


def test_load_errors(tmp_path):
    with pytest.raises(InputError, match="AddressBook not found"):
        AddressBook.load(tmp_path / "missing")
    other = tmp_path / "other.parquet"
    pd.DataFrame({"a": [1]}).to_parquet(other)
    with pytest.raises(InputError, match="not an AddressBook file"):
        AddressBook.load(other)
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"not parquet at all")
    with pytest.raises(InputError, match="cannot read"):
        AddressBook.load(broken)


def test_bad_osm_input_is_a_one_line_input_error(tmp_path):
    with pytest.raises(InputError) as missing:
        AddressBook.from_osm(tmp_path / "nope.osm.pbf")
    assert "nope.osm.pbf" in str(missing.value) and "\n" not in str(missing.value)
    not_pbf = tmp_path / "streets.osm.pbf"
    not_pbf.write_text("this is not a protobuf file\n")
    with pytest.raises(InputError) as garbled:
        AddressBook.from_osm(not_pbf)
    assert "streets.osm.pbf" in str(garbled.value) and "\n" not in str(garbled.value)


def test_bad_config_is_a_config_error():
    with pytest.raises(ConfigError, match="min_gap_m"):
        PartitionConfig(min_gap_m=-1)
    with pytest.raises(ConfigError, match="max_cross_streets"):
        PartitionConfig(max_cross_streets=3)
    with pytest.raises(ConfigError, match="unknown key"):
        PartitionConfig.from_dict({"min_gap": 3})
    assert PartitionConfig.from_dict(PartitionConfig().to_dict()) == PartitionConfig()


def test_summary_with_images(book):
    index = np.array([0, 0, 0, 1, -1])
    summary = book.summary(index)
    assert summary["images"] == 5 and summary["labelled"] == 4
    assert summary["images_per_address"] == {"min": 0.0, "median": 0.0, "max": 3.0}
    assert summary["addresses_without_images"] == len(book) - 2
