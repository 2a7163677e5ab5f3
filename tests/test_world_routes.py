"""Held-out routes on the toy street grid: spacing, headings, labels, staying on the graph, determinism."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import shapely

from addressclip.errors import ConfigError
from addressclip.geo.addressbook import AddressBook
from addressclip.geo.osm import read_osm
from addressclip.geo.sequence import substreet_adjacency
from addressclip.world.captures import capture_points
from addressclip.world.routes import RouteParams, StreetGraph, nearest_distance, random_routes, routes_frame
from addressclip.world.scene import build_scene
from test_geo_partition import write_toy_osm

PARAMS = RouteParams(spacing_m=10.0, length=30, lateral_m=1.5)


@pytest.fixture(scope="module")
def toy_osm(tmp_path_factory):
    return write_toy_osm(tmp_path_factory.mktemp("toy"))


@pytest.fixture(scope="module")
def book(toy_osm) -> AddressBook:
    return AddressBook.from_osm(toy_osm)


@pytest.fixture(scope="module")
def routes(book):
    return random_routes(book, 40, rng=7, params=PARAMS)


@pytest.fixture(scope="module")
def graph(book) -> StreetGraph:
    return StreetGraph(book, PARAMS.touch_m)


def _segment_distance(points: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ab = b - a
    t = np.clip(np.einsum("ij,ij->i", points - a, ab) / np.einsum("ij,ij->i", ab, ab), 0.0, 1.0)
    return np.hypot(*(points - (a + ab * t[:, None])).T)


def test_consecutive_views_are_spacing_apart_with_heading_of_travel(routes, graph):
    assert len(routes) == 40 and all(len(r) == PARAMS.length for r in routes)
    for route in routes:
        np.testing.assert_allclose(np.diff(route.along_m), PARAMS.spacing_m)
        step = np.diff(route.utm, axis=0)
        distance = np.hypot(*step.T)
        # across a turn the straight line is shorter, or longer by at most the lane offset swing
        assert (distance <= PARAMS.spacing_m + 2 * PARAMS.lateral_m + 1e-9).all()
        turned = np.abs((np.diff(route.heading) + 180.0) % 360.0 - 180.0) > 1e-6  # incl. U-turns at dead ends
        same_edge = (route.edges[1:] == route.edges[:-1]) & ~turned
        np.testing.assert_allclose(distance[same_edge], PARAMS.spacing_m, atol=1e-6)
        bearing = np.degrees(np.arctan2(step[:, 0], step[:, 1])) % 360.0
        difference = (bearing - route.heading[:-1] + 180.0) % 360.0 - 180.0
        np.testing.assert_allclose(difference[same_edge], 0.0, atol=1e-6)
    straight = np.concatenate([r.edges[1:] == r.edges[:-1] for r in routes])
    assert straight.mean() > 0.5  # most steps are along one segment (the toy's are 15-150 m)


def test_walks_stay_on_the_street_graph(book, routes, graph):
    adjacency = substreet_adjacency(book, reach_m=0.0).toarray()
    high_road = int(np.flatnonzero(book.table["address"] == "High Road, Westside")[0])
    for route in routes:
        edges = route.edges
        # each view is the lane offset from the segment it walks, which belongs to the walked sub-street
        distance = _segment_distance(
            route.utm, graph.nodes[graph.edge_a[edges]], graph.nodes[graph.edge_b[edges]]
        )
        np.testing.assert_allclose(distance, PARAMS.lateral_m, atol=1e-6)
        np.testing.assert_array_equal(route.walked, graph.edge_owner[edges])
        # consecutive views: the same segment or segments sharing a node (toy segments are >= 15 m)
        for e, f in itertools.pairwise(edges):
            shared = {graph.edge_a[e], graph.edge_b[e]} & {graph.edge_a[f], graph.edge_b[f]}
            assert e == f or shared
        # U-turns only at dead ends: both views around a reversal lie within one spacing of one
        reverse = np.abs(np.abs((np.diff(route.heading) + 180.0) % 360.0 - 180.0) - 180.0) < 1e-6
        dead_ends = graph.nodes[graph.degree() == 1]
        reach = PARAMS.spacing_m + PARAMS.lateral_m
        for i in np.flatnonzero(reverse):
            assert nearest_distance(route.utm[i : i + 2], dead_ends).max() <= reach
        # consecutive sub-streets: the same one, or two that share a node
        for u, v in itertools.pairwise(route.walked):
            assert u == v or adjacency[u, v]
        # the bridge shares no node with Main Street: a walk on High Road never leaves it
        if high_road in route.walked:
            assert (route.walked == high_road).all()
    visited = np.unique(np.concatenate([r.walked for r in routes]))
    assert len(visited) >= len(book) - 4  # the walks cover the graph


def test_labels_are_the_labelers_and_match_the_walked_street_away_from_junctions(book, routes, graph):
    frame = routes_frame(routes, book)
    assert len(frame) == 40 * PARAMS.length
    labels = book.label(np.round(frame["lat"], 5), np.round(frame["lon"], 5), PARAMS.label_max_dist_m).index
    np.testing.assert_array_equal(frame["label"], labels)
    ids = book.table["address_id"].to_numpy(dtype=object)
    assert (frame["address_id"] == ids[frame["label"]]).all()
    differ = frame["label"].to_numpy() != frame["walked"].to_numpy()
    assert differ.mean() < 0.1
    # they differ only near a junction, or where High Road's bridge passes over Main Street
    geometry = book.table.set_index("street_name")["geometry"]
    bridge = shapely.intersection(
        geometry["High Road"], shapely.union_all(geometry["Main Street"].to_numpy())
    )
    places = np.r_[graph.nodes[graph.degree() >= 3], np.asarray(shapely.get_coordinates(bridge))]
    near = nearest_distance(frame.loc[differ, ["utm_e", "utm_n"]].to_numpy(), places)
    assert (near <= 2 * PARAMS.lateral_m + 1.0).all()


def test_views_are_new_positions_not_training_capture_points(toy_osm, book, routes):
    scene = build_scene(read_osm(toy_osm))
    captures = capture_points(scene, 10.0, "toy")
    east, north = scene.to_utm(captures.xy)
    frame = routes_frame(routes)
    distance = nearest_distance(frame[["utm_e", "utm_n"]].to_numpy(), np.c_[east, north])
    assert np.median(distance) >= PARAMS.lateral_m
    assert (distance < 0.5).mean() < 0.02


def test_routes_are_deterministic_for_a_seed_and_respect_allowed(book):
    first = routes_frame(random_routes(book, 5, rng=3, params=PARAMS))
    again = routes_frame(random_routes(book, 5, rng=np.random.default_rng(3), params=PARAMS))
    other = routes_frame(random_routes(book, 5, rng=4, params=PARAMS))
    assert first.equals(again)
    assert not first[["utm_e", "utm_n"]].equals(other[["utm_e", "utm_n"]])
    main = (book.table["street_name"] == "Main Street").to_numpy()
    only_main = routes_frame(random_routes(book, 5, rng=3, params=PARAMS, allowed=main))
    assert main[only_main["walked"]].all()
    assert random_routes(book, 0) == []


def test_bad_route_parameters_are_config_errors(book):
    with pytest.raises(ConfigError, match="spacing_m must be a positive"):
        RouteParams(spacing_m=0.0)
    with pytest.raises(ConfigError, match="lateral_m must be in"):
        RouteParams(spacing_m=10.0, lateral_m=12.0)
    with pytest.raises(ConfigError, match="length must be"):
        RouteParams(length=0)
    with pytest.raises(ConfigError, match="allowed must be"):
        random_routes(book, 2, allowed=np.ones(3, dtype=bool))
    with pytest.raises(ConfigError, match="no street geometry"):
        random_routes(book, 2, allowed=np.zeros(len(book), dtype=bool))
    with pytest.raises(ConfigError, match="count must be"):
        random_routes(book, -1)
