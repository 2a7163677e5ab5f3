"""Reading OSM extracts whose objects are not sorted by type and id (some tools write such files)."""

from __future__ import annotations

from pathlib import Path

import osmium
import pytest
from osmium.osm import mutable

from addressclip.errors import InputError
from addressclip.geo import osm as osm_module
from addressclip.geo.addressbook import AddressBook
from addressclip.geo.osm import read_osm


def _grid(path: Path, reverse: bool) -> Path:
    """A 3 x 3 street grid near Karhula; with `reverse` its ways come in falling id order."""
    nodes = {}
    ways = []
    writer = osmium.SimpleWriter(str(path))
    for i in range(3):
        for j in range(3):
            nodes[i, j] = 1 + 3 * i + j
            writer.add_node(mutable.Node(id=nodes[i, j], location=(26.94 + 0.002 * j, 60.52 + 0.002 * i)))
    for i in range(3):
        tags = {"highway": "residential", "name": f"Row {i}"}
        ways.append(mutable.Way(id=100 + i, nodes=[nodes[i, j] for j in range(3)], tags=tags))
    for j in range(3):
        tags = {"highway": "residential", "name": f"Column {j}"}
        ways.append(mutable.Way(id=200 + j, nodes=[nodes[i, j] for i in range(3)], tags=tags))
    for way in reversed(ways) if reverse else ways:
        writer.add_way(way)
    writer.close()
    return path


def test_an_unsorted_extract_is_read_like_its_sorted_twin(tmp_path):
    ordered = read_osm(_grid(tmp_path / "sorted.osm.pbf", reverse=False))
    unsorted_path = _grid(tmp_path / "unsorted.osm.pbf", reverse=True)
    shuffled = read_osm(unsorted_path)
    assert shuffled.path == unsorted_path  # reports name the user's file, not the temporary copy
    assert sorted((s.osm_id, s.name) for s in shuffled.streets) == sorted(
        (s.osm_id, s.name) for s in ordered.streets
    )
    assert shuffled.bounds == ordered.bounds and len(shuffled.streets) == 6
    book = AddressBook.from_osm(unsorted_path)
    assert len(book) == len(AddressBook.from_osm(tmp_path / "sorted.osm.pbf")) > 6


def test_when_sorting_fails_the_error_names_the_remedy(tmp_path, monkeypatch):
    def broken(path, target):
        raise RuntimeError("no memory left")

    monkeypatch.setattr(osm_module, "sorted_copy", broken)
    with pytest.raises(InputError, match=r"osmium sort .*unsorted\.osm\.pbf -o sorted\.osm\.pbf") as caught:
        read_osm(_grid(tmp_path / "unsorted.osm.pbf", reverse=True))
    assert "\n" not in str(caught.value)
