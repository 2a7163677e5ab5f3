"""Neighbourhoods: closing clipped boundary relations, precedence of levels, place-node fallback."""

from __future__ import annotations

import numpy as np
import pytest
import shapely

from addressclip.geo.neighbourhoods import NeighbourhoodMap, admin_areas, close_admin_relations
from addressclip.geo.osm import AdminRelation, PlaceNode, read_osm
from addressclip.geo.utm import UtmProjection
from addressclip.resources import bundled_extract

BOUNDS = (24.0, 60.0, 24.02, 60.01)
PROJECTION = UtmProjection.for_point(24.01, 60.005)
# a boundary down the middle that stops short of the box at both ends (as a clipped way does)
MIDDLE = np.array([[24.01, 60.0004], [24.0102, 60.005], [24.01, 60.0096]])
# a boundary that cuts off the north-west corner
CORNER = np.array([[24.0, 60.008], [24.003, 60.01]])


def _relations() -> list[AdminRelation]:
    return [
        AdminRelation(1, "Westpark", 10, [MIDDLE]),
        AdminRelation(2, "Eastfield", 10, [MIDDLE]),
        AdminRelation(3, "Big District", 9, [MIDDLE], subareas=(1,)),
        AdminRelation(4, "Lonely", 11, [CORNER]),
        AdminRelation(5, "Nowhere", 11, []),  # all its ways lie outside the extract
    ]


PLACES = [PlaceNode("Westpark", "suburb", 24.004, 60.004)]


@pytest.fixture(scope="module")
def areas():
    return {a.name: a for a in close_admin_relations(_relations(), BOUNDS, PROJECTION, PLACES)}


def test_sides_are_decided_by_anchor_neighbours_subareas_and_guess(areas):
    assert set(areas) == {"Westpark", "Eastfield", "Big District", "Lonely"}
    assert {n: a.method for n, a in areas.items()} == {
        "Westpark": "anchor",  # its own place node
        "Eastfield": "neighbours",  # the side Westpark (same level) does not take
        "Big District": "anchor",  # Westpark's node, through its subarea member
        "Lonely": "guess",  # nothing known: the smaller side
    }
    west, east = shapely.Point(24.005, 60.005), shapely.Point(24.015, 60.005)
    assert areas["Westpark"].polygon.contains(west) and not areas["Westpark"].polygon.contains(east)
    assert areas["Eastfield"].polygon.contains(east) and not areas["Eastfield"].polygon.contains(west)
    assert areas["Big District"].polygon.contains(west)
    assert areas["Lonely"].polygon.contains(shapely.Point(24.0005, 60.0098))
    assert not areas["Lonely"].polygon.contains(west)


def test_closed_polygons_fill_the_box(areas):
    box = shapely.box(*BOUNDS)
    total = areas["Westpark"].polygon.area + areas["Eastfield"].polygon.area
    assert total == pytest.approx(box.area, rel=1e-3)
    assert areas["Westpark"].polygon.intersection(areas["Eastfield"].polygon).area < 1e-4 * box.area


def _map(areas, places) -> NeighbourhoodMap:
    return NeighbourhoodMap.from_areas(list(areas.values()), places, BOUNDS, PROJECTION)


def _name_at(neighbourhoods: NeighbourhoodMap, lon: float, lat: float) -> str:
    x, y = PROJECTION.to_utm(lon, lat)
    return str(neighbourhoods.name_at(np.atleast_1d(x), np.atleast_1d(y))[0])


def test_finest_level_wins(areas):
    neighbourhoods = _map(areas, PLACES)
    assert _name_at(neighbourhoods, 24.0005, 60.0098) == "Lonely"  # level 11 inside levels 10 and 9
    assert _name_at(neighbourhoods, 24.005, 60.005) == "Westpark"  # level 10 inside level 9
    assert _name_at(neighbourhoods, 24.015, 60.005) == "Eastfield"
    # the effective regions do not overlap, and level 9 is hidden under level 10 here
    assert [a.name for a in neighbourhoods.areas] == ["Lonely", "Eastfield", "Westpark"]


def test_place_nodes_fill_in_where_no_admin_area(areas):
    places = [
        PlaceNode("North End", "neighbourhood", 24.01, 60.0095),
        PlaceNode("South End", "quarter", 24.01, 60.0005),
    ]
    only_east = {"Eastfield": areas["Eastfield"]}
    neighbourhoods = _map(only_east, places)
    assert _name_at(neighbourhoods, 24.015, 60.005) == "Eastfield"
    assert _name_at(neighbourhoods, 24.005, 60.008) == "North End"
    assert _name_at(neighbourhoods, 24.005, 60.001) == "South End"
    assert {a.source for a in neighbourhoods.areas} == {"admin", "place"}
    nothing = _map({}, [])
    assert _name_at(nothing, 24.005, 60.005) == ""


def test_records_round_trip(areas):
    neighbourhoods = _map(areas, PLACES)
    again = NeighbourhoodMap.from_records(neighbourhoods.to_records())
    x, y = PROJECTION.to_utm(np.linspace(24.0, 24.02, 50), np.linspace(60.0, 60.01, 50))
    assert list(again.name_at(x, y)) == list(neighbourhoods.name_at(x, y))


@pytest.fixture(scope="module")
def helsinki():
    return read_osm(bundled_extract("helsinki"))


def test_helsinki_admin_areas(helsinki):
    methods = {a.name: a.method for a in admin_areas(helsinki)}
    assert methods == {
        "Siltasaari": "anchor",
        "Kallio": "neighbours",
        "Kaartinkaupunki": "anchor",
        "Kamppi": "neighbours",
        "Kluuvi": "anchor",
        "Kruununhaka": "neighbours",
        "Punavuori": "neighbours",
        "Eteläinen suurpiiri": "anchor",  # via its subareas Kluuvi, Kaartinkaupunki, ...
    }  # Linjat has no located boundary piece in the extract
    neighbourhoods = NeighbourhoodMap.from_extract(helsinki)
    at_place = {p.name: _place_name(neighbourhoods, helsinki, p) for p in helsinki.places}
    # real facts: Hakaniemi market lies in the Siltasaari sub-district; Kaisaniemi park and the
    # centre ('Keskusta' node by the station) lie in Kluuvi
    assert at_place == {
        "Kaartinkaupunki": "Kaartinkaupunki",
        "Siltasaari": "Siltasaari",
        "Hakaniemi": "Siltasaari",
        "Kluuvi": "Kluuvi",
        "Keskusta": "Kluuvi",
        "Kaisaniemi": "Kluuvi",
    }


def _place_name(neighbourhoods, extract, place) -> str:
    x, y = extract.projection.to_utm(place.lon, place.lat)
    return str(neighbourhoods.name_at(np.atleast_1d(x), np.atleast_1d(y))[0])


def test_helsinki_places_only_mode_uses_place_names(helsinki):
    neighbourhoods = NeighbourhoodMap.from_extract(helsinki, "places")
    assert neighbourhoods.names == sorted(p.name for p in helsinki.places)


def test_karhula_has_only_place_nodes():
    karhula = read_osm(bundled_extract("karhula"))
    assert admin_areas(karhula) == []
    neighbourhoods = NeighbourhoodMap.from_extract(karhula)
    assert neighbourhoods.names == ["Helilä", "Malminki", "Marttila", "Ristinkallio", "Suurniitty"]


def test_reading_osm_does_not_need_the_neighbourhood_code():
    """The reader only reads: closing boundaries belongs to `geo.neighbourhoods` (no file circle)."""
    import ast
    import inspect

    import addressclip.geo.osm as osm

    tree = ast.parse(inspect.getsource(osm))
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert "addressclip.geo.neighbourhoods" not in imported
