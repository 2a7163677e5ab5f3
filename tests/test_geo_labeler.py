"""The GPS labeler: exact nearest sub-street within a radius, and the reasons for unlabelled points."""

from __future__ import annotations

import numpy as np
import pytest
import shapely

from addressclip.errors import ConfigError
from addressclip.geo.addressbook import AddressBook
from addressclip.geo.labeler import SegmentGrid
from test_geo_partition import to_lonlat, write_toy_osm


def _random_lines(rng, n):
    lines = []
    for _ in range(n):
        start = rng.uniform(0, 1000, 2)
        steps = rng.normal(0, 40, (rng.integers(1, 6), 2))
        lines.append(shapely.LineString(np.vstack([start, start + np.cumsum(steps, axis=0)])))
    return lines


@pytest.mark.parametrize("radius", [5.0, 30.0, 120.0])
def test_grid_matches_brute_force(radius):
    rng = np.random.default_rng(int(radius))
    lines = [*_random_lines(rng, 60), shapely.MultiLineString([[(10, 10), (50, 10)], [(10, 30), (50, 30)]])]
    points = rng.uniform(-100, 1100, (3000, 2))
    owner, distance = SegmentGrid(lines, radius).nearest(points[:, 0], points[:, 1], threads=2)
    exact = shapely.distance(np.asarray(lines, dtype=object)[None, :], shapely.points(points)[:, None])
    nearest = exact.min(axis=1)
    within = nearest <= radius
    assert np.array_equal(owner >= 0, within)
    np.testing.assert_allclose(distance[within], nearest[within], atol=1e-9)
    assert np.all(np.isinf(distance[~within]))
    # the chosen owner is at the nearest distance (ties may pick either)
    np.testing.assert_allclose(exact[np.flatnonzero(within), owner[within]], nearest[within], atol=1e-9)


def test_grid_threads_and_chunks_agree():
    rng = np.random.default_rng(5)
    grid = SegmentGrid(_random_lines(rng, 40), 30.0)
    x, y = rng.uniform(0, 1000, (2, 200_000))
    one = grid.nearest(x, y, threads=1)
    two = grid.nearest(x, y, threads=2)
    assert np.array_equal(one[0], two[0]) and np.array_equal(one[1], two[1])


def test_empty_grid_labels_nothing():
    owner, distance = SegmentGrid([], 30.0).nearest(np.array([1.0, 2.0]), np.array([1.0, 2.0]))
    assert owner.tolist() == [-1, -1] and np.all(np.isinf(distance))


@pytest.fixture(scope="module")
def toy_book(tmp_path_factory):
    return AddressBook.from_osm(write_toy_osm(tmp_path_factory.mktemp("toy")))


def _label(book, points_m, max_dist_m=30.0):
    lon, lat = np.array([to_lonlat(x, y) for x, y in points_m]).T
    return book.label(lat, lon, max_dist_m)


def test_reasons_on_the_toy_grid(toy_book):
    result = _label(
        toy_book,
        [
            (50, 5),  # 5 m from Main Street between First and Second Street
            (50, 60),  # 50 m from every street: too far
            (-5000, 0),  # west of the extract
            (150, 299.5),  # on Cross Road, by its north end (the edge of the extract)
        ],
    )
    assert result.reason.tolist() == ["ok", "too_far", "outside_extract", "ok"]
    addresses = [toy_book.table["address"].iat[i] if i >= 0 else None for i in result.index]
    assert addresses[0] == "Main Street & First Street & Second Street, Westside"
    assert addresses[3].startswith("Cross Road & Boulevard")
    assert result.distance_m[0] == pytest.approx(5.0, abs=0.05)
    assert result.distance_m[3] == pytest.approx(0.0, abs=0.05)
    assert np.isnan(result.distance_m[1]) and np.isnan(result.distance_m[2])
    assert result.counts() == {"ok": 2, "outside_extract": 1, "too_far": 1}
    assert result.index.dtype == np.int64 and result.distance_m.dtype == np.float64


def test_max_dist_is_respected(toy_book):
    near = _label(toy_book, [(50, 20)], max_dist_m=30.0)
    far = _label(toy_book, [(50, 20)], max_dist_m=10.0)
    assert near.reason.tolist() == ["ok"] and far.reason.tolist() == ["too_far"]


def test_nan_coordinates_are_outside_the_extract(toy_book):
    result = toy_book.label(np.array([np.nan, 60.17]), np.array([24.95, np.nan]))
    assert result.reason.tolist() == ["outside_extract", "outside_extract"]
    assert result.index.tolist() == [-1, -1]


def test_bad_arguments(toy_book):
    with pytest.raises(ConfigError):
        toy_book.label(np.array([60.17]), np.array([24.95]), max_dist_m=0)
    with pytest.raises(ValueError):
        toy_book.label(np.array([60.17, 60.17]), np.array([24.95]))
