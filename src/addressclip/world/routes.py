"""Held-out routes: random walks through an AddressBook's street graph, one view every `spacing_m`.

A route is what a walker or a dashcam gives: an ordered sequence of positions along connected
streets, each with the heading of travel and its true sub-street. Routes evaluate sequence decoding
(`addressclip.geo.sequence`) on views that training never saw:

- the graph: every vertex of every sub-street geometry is a node (vertices within `touch_m` are one
  node: the partition cuts streets at shared OSM nodes, so junctions join), every segment an edge
  owned by its sub-street; a bridge shares no vertex with the street below and cannot be turned onto;
- the walk: a start on an edge drawn in proportion to its length, a random direction and a random
  phase in [0, spacing); at each node the next edge is drawn uniformly among the others (a U-turn
  only at a dead end); a position every `spacing_m` of walked distance, across junctions;
- the view: `lateral_m` to the right of the centreline (a driving lane), with the heading along the
  direction of travel. Training capture points lie on the centreline at spacing/2 + k·spacing along
  each OSM way (`world.captures`), so route views are new positions, at a new phase and offset;
- the truth: the AddressBook's labeler on the view's GPS rounded to 5 decimals, as a build of the
  rendered route would label it (`label`), next to the sub-street actually walked (`walked`); they
  differ only within a few metres of a junction.

Positions are UTM metres of the book's projection (`Scene.to_local` turns them into render
coordinates) plus lat/lon.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from addressclip.errors import ConfigError
from addressclip.geo.addressbook import AddressBook


@dataclass(frozen=True)
class RouteParams:
    """How routes are walked and sampled (see the module docstring)."""

    spacing_m: float = 10.0  # walked distance between two views
    length: int = 20  # views per route
    lateral_m: float = 1.5  # view offset to the right of the centreline
    touch_m: float = 0.5  # vertices closer than this are one graph node
    label_max_dist_m: float = 30.0  # the labeler's search radius (as the data build's default)

    def __post_init__(self) -> None:
        for key in ("spacing_m", "touch_m", "label_max_dist_m"):
            value = getattr(self, key)
            if not (np.isfinite(value) and value > 0):
                raise ConfigError(f"routes: {key} must be a positive number of metres, not {value!r}")
        if not (np.isfinite(self.lateral_m) and 0 <= self.lateral_m < self.spacing_m):
            raise ConfigError(f"routes: lateral_m must be in [0, spacing_m), not {self.lateral_m!r}")
        if not (isinstance(self.length, int | np.integer) and self.length >= 1):
            raise ConfigError(f"routes: length must be a whole number of views >= 1, not {self.length!r}")


@dataclass
class Route:
    """One walk: per view its UTM position, GPS, heading, walked distance and sub-streets."""

    route_id: str
    utm: np.ndarray  # (n, 2) easting, northing
    lat: np.ndarray  # (n,)
    lon: np.ndarray  # (n,)
    heading: np.ndarray  # (n,) degrees clockwise from north, along the direction of travel
    along_m: np.ndarray  # (n,) walked distance from the route's first view
    walked: np.ndarray  # (n,) AddressBook row of the street segment walked
    label: np.ndarray  # (n,) AddressBook row the labeler gives the view's GPS (-1: none within range)
    edges: np.ndarray  # (n,) StreetGraph edge of each view

    def __len__(self) -> int:
        return len(self.along_m)


class StreetGraph:
    """Nodes (snapped vertices) and edges (segments owned by sub-streets) of an AddressBook."""

    def __init__(self, book: AddressBook, touch_m: float = 0.5, allowed: np.ndarray | None = None) -> None:
        keep = _allowed_rows(book, allowed)
        coords, owners, first_of_part, total = [], [], [], 0
        for row in np.flatnonzero(keep):
            geometry = book.table["geometry"].iloc[row]
            for part in getattr(geometry, "geoms", [geometry]):
                xy = np.asarray(part.coords, dtype=np.float64)[:, :2]
                if len(xy) < 2:
                    continue
                first_of_part.append(total)
                total += len(xy)
                coords.append(xy)
                owners.append(np.full(len(xy), row, dtype=np.int64))
        if not coords:
            raise ConfigError("routes: no street geometry to walk on (check `allowed`)")
        points = np.concatenate(coords)
        owner = np.concatenate(owners)
        pairs = cKDTree(points).query_pairs(touch_m, output_type="ndarray")
        joined = coo_matrix(
            (np.ones(len(pairs), dtype=bool), (pairs[:, 0], pairs[:, 1])), shape=(len(points), len(points))
        )
        _, node = connected_components(joined, directed=False)
        counts = np.bincount(node)
        self.nodes = np.zeros((len(counts), 2))
        np.add.at(self.nodes, node, points)
        self.nodes /= counts[:, None]
        starts = np.ones(len(points), dtype=bool)  # a vertex that starts a segment: not a part's last
        ends_of_parts = np.r_[np.asarray(first_of_part[1:], dtype=np.int64), len(points)] - 1
        starts[ends_of_parts] = False
        a = np.flatnonzero(starts)
        self.edge_a, self.edge_b, self.edge_owner = node[a], node[a + 1], owner[a]
        real = self.edge_a != self.edge_b
        self.edge_a, self.edge_b, self.edge_owner = (
            self.edge_a[real],
            self.edge_b[real],
            self.edge_owner[real],
        )
        delta = self.nodes[self.edge_b] - self.nodes[self.edge_a]
        self.edge_length = np.hypot(delta[:, 0], delta[:, 1])
        # incident edges per node, as CSR: incident[offset[n]:offset[n + 1]]
        ends = np.r_[self.edge_a, self.edge_b]
        order = np.argsort(ends, kind="stable")
        self.incident = np.r_[np.arange(len(self.edge_a)), np.arange(len(self.edge_a))][order]
        self.offset = np.r_[0, np.cumsum(np.bincount(ends, minlength=len(self.nodes)))]

    def degree(self) -> np.ndarray:
        return np.diff(self.offset)

    def other_end(self, edge: int, node: int) -> int:
        return int(self.edge_b[edge] if self.edge_a[edge] == node else self.edge_a[edge])


def _allowed_rows(book: AddressBook, allowed: np.ndarray | None) -> np.ndarray:
    if allowed is None:
        return np.ones(len(book), dtype=bool)
    mask = np.asarray(allowed)
    if mask.dtype != bool or mask.shape != (len(book),):
        raise ConfigError(f"routes: allowed must be {len(book)} booleans, one per AddressBook row")
    return mask


def _walk(graph: StreetGraph, rng: np.random.Generator, params: RouteParams) -> tuple[np.ndarray, ...]:
    """One walk: per view (edge, from-node, distance along the edge from that node)."""
    edge = int(rng.choice(len(graph.edge_length), p=graph.edge_length / graph.edge_length.sum()))
    node = int(graph.edge_a[edge] if rng.random() < 0.5 else graph.edge_b[edge])
    position = float(rng.uniform(0.0, params.spacing_m))
    edges, froms, distances = [], [], []
    while len(edges) < params.length:
        if position <= graph.edge_length[edge]:
            edges.append(edge)
            froms.append(node)
            distances.append(position)
            position += params.spacing_m
            continue
        position -= float(graph.edge_length[edge])
        node = graph.other_end(edge, node)
        incident = graph.incident[graph.offset[node] : graph.offset[node + 1]]
        onward = incident[incident != edge]
        edge = int(rng.choice(onward)) if len(onward) else edge  # a dead end: turn back
    return np.asarray(edges), np.asarray(froms), np.asarray(distances)


def random_routes(
    book: AddressBook,
    count: int,
    rng: np.random.Generator | int = 0,
    params: RouteParams | None = None,
    allowed: np.ndarray | None = None,
) -> list[Route]:
    """`count` random routes on the book's streets (only its `allowed` rows' streets when given).

    Deterministic for a seed (or a generator in a given state).
    """
    params = params or RouteParams()
    if not (isinstance(count, int | np.integer) and count >= 0):
        raise ConfigError(f"routes: count must be a whole number >= 0, not {count!r}")
    generator = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    graph = StreetGraph(book, params.touch_m, allowed)
    walks = [_walk(graph, generator, params) for _ in range(count)]
    if not walks:
        return []
    edges = np.concatenate([w[0] for w in walks])
    froms = np.concatenate([w[1] for w in walks])
    distance = np.concatenate([w[2] for w in walks])
    start = graph.nodes[froms]
    direction = (
        graph.nodes[np.where(graph.edge_a[edges] == froms, graph.edge_b[edges], graph.edge_a[edges])] - start
    )
    direction /= graph.edge_length[edges][:, None]
    right = np.c_[direction[:, 1], -direction[:, 0]]
    utm = start + direction * distance[:, None] + params.lateral_m * right
    heading = np.degrees(np.arctan2(direction[:, 0], direction[:, 1])) % 360.0
    lon, lat = book.projection.to_lonlat(utm[:, 0], utm[:, 1])
    lon, lat = np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64)
    # label as a build of the rendered views will: from the GPS rounded to 5 decimals
    label = np.asarray(book.label(np.round(lat, 5), np.round(lon, 5), params.label_max_dist_m).index)
    routes = []
    along = np.arange(params.length) * params.spacing_m
    for number in range(count):
        rows = slice(number * params.length, (number + 1) * params.length)
        routes.append(
            Route(
                route_id=f"route-{number:05d}",
                utm=utm[rows],
                lat=lat[rows],
                lon=lon[rows],
                heading=heading[rows],
                along_m=along.copy(),
                walked=graph.edge_owner[edges[rows]],
                label=label[rows],
                edges=edges[rows],
            )
        )
    return routes


def routes_frame(routes: list[Route], book: AddressBook | None = None) -> pd.DataFrame:
    """One row per view (route_id, step, utm_e, utm_n, lat, lon, heading, along_m, walked, label)."""
    frame = pd.DataFrame(
        {
            "route_id": np.repeat([r.route_id for r in routes], [len(r) for r in routes]),
            "step": np.concatenate([np.arange(len(r)) for r in routes]) if routes else [],
            "utm_e": np.concatenate([r.utm[:, 0] for r in routes]) if routes else [],
            "utm_n": np.concatenate([r.utm[:, 1] for r in routes]) if routes else [],
            "lat": np.concatenate([r.lat for r in routes]) if routes else [],
            "lon": np.concatenate([r.lon for r in routes]) if routes else [],
            "heading": np.concatenate([r.heading for r in routes]) if routes else [],
            "along_m": np.concatenate([r.along_m for r in routes]) if routes else [],
            "walked": np.concatenate([r.walked for r in routes]) if routes else [],
            "label": np.concatenate([r.label for r in routes]) if routes else [],
        }
    )
    if book is not None:
        ids = book.table["address_id"].to_numpy(dtype=object)
        label = frame["label"].to_numpy(dtype=np.int64)
        frame["address_id"] = np.where(label >= 0, ids[np.maximum(label, 0)] if len(ids) else None, None)
    return frame


def nearest_distance(points: np.ndarray, others: np.ndarray) -> np.ndarray:
    """Distance from each point (n, 2) to the nearest of `others` (m, 2), e.g. training capture points."""
    others = np.asarray(others, dtype=np.float64).reshape(-1, 2)
    if len(others) == 0:
        return np.full(len(points), np.inf)
    return cKDTree(others).query(np.asarray(points, dtype=np.float64).reshape(-1, 2))[0]
