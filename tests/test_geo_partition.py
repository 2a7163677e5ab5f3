"""The address partition on a tiny hand-made street grid (an .osm XML written in the test).

Also home of `write_toy_osm`, which the other test_geo_* files import.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from addressclip.geo.addressbook import AddressBook
from addressclip.geo.partition import PartitionConfig

LON0, LAT0 = 24.95, 60.17
M_PER_DEG_LAT = 111_320.0


def to_lonlat(x: float, y: float) -> tuple[float, float]:
    """Metres east/north of the toy origin -> lon/lat (local approximation; fine at 1 km)."""
    return LON0 + x / (M_PER_DEG_LAT * np.cos(np.radians(LAT0))), LAT0 + y / M_PER_DEG_LAT


# name -> list of ways; a way is a list of (x, y) metres. Equal points become one shared node.
TOY_STREETS: dict[str, list[list[tuple[float, float]]]] = {
    "Main Street": [[(-60, 0), (0, 0), (100, 0), (200, 0), (215, 0), (300, 0), (360, 0)]],
    "First Street": [[(0, -100), (0, 0), (0, 100)]],
    "Second Street": [[(100, 0), (100, 100)]],  # T-junction
    "Third Street": [[(200, -100), (200, 0), (200, 100)]],
    "Close Lane": [[(215, 0), (215, -80)]],  # 15 m after Third Street: closer than min_gap
    "Fourth Street": [[(300, -100), (300, 0), (300, 100)]],
    # dual carriageway, 20 m apart; Cross Road meets both, Side Street only the north one
    "Boulevard": [
        [(0, 200), (75, 200), (150, 200), (300, 200)],
        [(0, 220), (75, 220), (150, 220), (300, 220)],
    ],
    "Cross Road": [[(150, 150), (150, 200), (150, 220), (150, 300)]],
    "Side Street": [[(75, 220), (75, 300)]],
    # two pieces of one name 1 km apart, both in Eastside: the same address twice
    "Twin Road": [[(800, -300), (900, -300)], [(800, -1300), (900, -1300)]],
}
# High Road passes over Main Street (a bridge: no shared node)
BRIDGE = [(250, -50), (250, 50)]
TOY_PLACES = {"Westside": (-100, 0), "Eastside": (1200, -800)}


def write_toy_osm(folder: Path, streets=None, places=None, bridge=True) -> Path:
    """Write the toy street grid as .osm XML and return its path."""
    streets = TOY_STREETS if streets is None else streets
    places = TOY_PLACES if places is None else places
    node_ids: dict[tuple[float, float], int] = {}
    node_lines: list[str] = []

    def node(point: tuple[float, float], tags: dict[str, str] | None = None) -> int:
        if point in node_ids and not tags:
            return node_ids[point]
        node_id = len(node_lines) + 1
        lon, lat = to_lonlat(*point)
        body = "".join(f'<tag k="{k}" v="{v}"/>' for k, v in (tags or {}).items())
        node_lines.append(f'<node id="{node_id}" version="1" lat="{lat:.7f}" lon="{lon:.7f}">{body}</node>')
        if not tags:
            node_ids[point] = node_id
        return node_id

    way_lines = []
    way_id = 1000
    all_ways = [(name, way, "residential") for name, ways in streets.items() for way in ways]
    if bridge:
        all_ways.append(("High Road", BRIDGE, "secondary"))
    for name, way, highway in all_ways:
        refs = []
        for point in way:
            key = (float(point[0]), float(point[1]))
            if name == "High Road":  # its own nodes, even where it crosses Main Street
                refs.append(node(key, {"bridge_node": "yes"}))
            else:
                refs.append(node(key))
        way_id += 1
        nds = "".join(f'<nd ref="{r}"/>' for r in refs)
        tags = f'<tag k="highway" v="{highway}"/><tag k="name" v="{name}"/>'
        way_lines.append(f'<way id="{way_id}" version="1">{nds}{tags}</way>')
    for name, point in places.items():
        node((float(point[0]), float(point[1])), {"place": "suburb", "name": name})
    path = folder / "toy.osm"
    path.write_text(
        '<?xml version="1.0" encoding="UTF-8"?>\n<osm version="0.6" generator="test">\n'
        + "\n".join(node_lines + way_lines)
        + "\n</osm>\n",
        encoding="utf-8",
    )
    return path


@pytest.fixture(scope="module")
def toy_book(tmp_path_factory) -> AddressBook:
    return AddressBook.from_osm(write_toy_osm(tmp_path_factory.mktemp("toy")))


def _addresses(book: AddressBook, street: str) -> list[str]:
    return sorted(book.table.loc[book.table["street_name"] == street, "address"])


def test_main_street_is_cut_at_each_junction(toy_book):
    assert _addresses(toy_book, "Main Street") == [
        "Main Street & First Street & Second Street, Westside",
        "Main Street & First Street, Westside",  # the 60 m stub west of First Street
        "Main Street & Fourth Street & Third Street, Westside",
        "Main Street & Fourth Street, Westside",  # the 60 m stub east of Fourth Street
        "Main Street & Second Street & Third Street, Westside",
    ]


def test_close_junction_is_dropped_and_bridge_is_not_a_junction(toy_book):
    table = toy_book.table
    main = table[table["street_name"] == "Main Street"]
    assert not any("Close Lane" in a for a in main["address"])  # 15 m < min_gap 35 m
    others = table.loc[table["street_name"] != "High Road", "address"]
    assert not any("High Road" in a for a in others)  # crosses on a bridge, no shared node
    assert list(table.loc[table["street_name"] == "High Road", "address"]) == ["High Road, Westside"]
    third_to_fourth = main[main["address"].str.startswith("Main Street & Fourth Street & Third Street")]
    assert third_to_fourth["length_m"].iloc[0] == pytest.approx(100.0, abs=0.5)


def test_a_smaller_min_gap_keeps_the_close_junction(tmp_path):
    book = AddressBook.from_osm(write_toy_osm(tmp_path), PartitionConfig(min_gap_m=10.0))
    assert "Main Street & Close Lane & Third Street, Westside" in set(book.table["address"])


def test_dual_carriageway_pieces_become_one_sub_street(toy_book):
    rows = toy_book.table[toy_book.table["street_name"] == "Boulevard"]
    assert sorted(rows["address"]) == [
        "Boulevard & Cross Road & Side Street, Westside",
        "Boulevard & Cross Road, Westside",
        "Boulevard & Side Street, Westside",
    ]
    # each holds both carriageways: Side Street's junction was projected onto the south one
    assert all(g.geom_type == "MultiLineString" and len(g.geoms) == 2 for g in rows["geometry"])
    by_address = dict(zip(rows["address"], rows["length_m"], strict=True))
    assert by_address["Boulevard & Side Street, Westside"] == pytest.approx(2 * 75.0, abs=1.0)
    assert by_address["Boulevard & Cross Road, Westside"] == pytest.approx(2 * 150.0, abs=1.0)


def test_far_apart_pieces_are_separate_streets_with_qualified_addresses(toy_book):
    assert _addresses(toy_book, "Twin Road") == ["Twin Road (north), Eastside", "Twin Road (south), Eastside"]
    rows = toy_book.table[toy_book.table["street_name"] == "Twin Road"]
    assert rows["component_id"].nunique() == 2
    assert set(rows["street"]) == {"Twin Road, Eastside"}  # one street key for SA-k


def test_one_cross_street_per_address(tmp_path):
    book = AddressBook.from_osm(write_toy_osm(tmp_path), PartitionConfig(max_cross_streets=1))
    assert all(len(c) <= 1 for c in book.table["cross_streets"])
    assert book.table["address"].is_unique


def test_neighbourhood_comes_from_nearest_place_node(toy_book):
    table = toy_book.table
    assert set(table.loc[table["street_name"] == "Twin Road", "neighbourhood"]) == {"Eastside"}
    assert set(table.loc[table["street_name"] == "First Street", "neighbourhood"]) == {"Westside"}
    assert set(table["street"]) >= {"Main Street, Westside", "Twin Road, Eastside"}


def test_no_place_nodes_means_no_neighbourhood_part(tmp_path):
    book = AddressBook.from_osm(write_toy_osm(tmp_path, places={}))
    assert "Main Street & First Street & Second Street" in set(book.table["address"])
    assert set(book.table["neighbourhood"]) == {""}
