"""A map PNG of an AddressBook: neighbourhoods, sub-streets coloured by address, street names, points.

Meant for a person checking a partition by eye: neighbouring sub-streets must differ in colour, so
colours follow the order of sub-streets along each street (a 20-colour cycle), not a hash.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import shapely

from addressclip.atomic import atomic_path


def _street_order_colours(table) -> np.ndarray:
    """Colour index per row: consecutive along a street (by position), offset per street name."""
    colours = np.zeros(len(table), dtype=int)
    for offset, (_, rows) in enumerate(table.groupby("street_name", sort=True).groups.items()):
        rows = list(rows)
        mids = np.array([_midpoint(table.at[r, "geometry"]) for r in rows])
        axis = int(np.ptp(mids[:, 1]) > np.ptp(mids[:, 0])) if len(rows) > 1 else 0
        for k, r in enumerate(np.array(rows)[np.argsort(mids[:, axis], kind="stable")]):
            colours[r] = (offset * 7 + k * 3) % 20
    return colours


def _midpoint(geometry) -> tuple[float, float]:
    longest = max(shapely.get_parts(geometry), key=lambda g: g.length)
    point = longest.centroid if longest.is_closed else longest.interpolate(0.5, normalized=True)
    return point.x, point.y


def plot_addressbook(
    book,
    path: str | Path,
    lat: np.ndarray | None = None,
    lon: np.ndarray | None = None,
    index: np.ndarray | None = None,
    title: str | None = None,
    label_streets: bool = True,
    dpi: int = 110,
    extent: tuple[float, float, float, float] | None = None,
) -> Path:
    """Draw the book to a PNG at `path` (written atomically); optional GPS points (lat/lon) on top.

    Points are coloured like their sub-street when `index` (rows from `book.label`) is given, and
    drawn as grey crosses where unlabelled. `extent` (min_x, min_y, max_x, max_y in UTM) zooms in.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.patheffects as effects
    import matplotlib.pyplot as plt

    table = book.table
    cmap = plt.get_cmap("tab20")
    min_lon, min_lat, max_lon, max_lat = book.bounds
    corner_lon = np.array([min_lon, max_lon, max_lon, min_lon, min_lon])
    corner_lat = np.array([min_lat, min_lat, max_lat, max_lat, min_lat])
    frame_x, frame_y = book.projection.to_utm(corner_lon, corner_lat)
    if extent is None:
        extent = (float(frame_x.min()), float(frame_y.min()), float(frame_x.max()), float(frame_y.max()))
    width = extent[2] - extent[0]
    height = extent[3] - extent[1]
    scale = 12.0 / max(width, height, 1.0)
    fig, ax = plt.subplots(figsize=(max(width * scale, 5.0) + 1.0, max(height * scale, 5.0) + 1.0))
    outline = [effects.withStroke(linewidth=2.5, foreground="white")]

    pastel = plt.get_cmap("Pastel1")
    for k, area in enumerate(book.neighbourhoods.areas):
        for polygon in shapely.get_parts(area.polygon):
            if polygon.geom_type != "Polygon" or polygon.is_empty:
                continue
            x, y = polygon.exterior.xy
            ax.fill(x, y, color=pastel(k % 9), alpha=0.45, linewidth=0.0, zorder=1)
            ax.plot(x, y, color="0.55", linewidth=0.6, linestyle=":", zorder=1)
        anchor = area.polygon.representative_point()
        source = "" if area.source == "admin" else " (place)"
        ax.text(
            anchor.x, anchor.y, f"{area.name}{source}", fontsize=11, color="0.35", ha="center",
            style="italic", zorder=2, path_effects=outline, clip_on=True,
        )  # fmt: skip
    ax.plot(frame_x, frame_y, color="0.3", linestyle="--", linewidth=0.8, zorder=2)

    colours = _street_order_colours(table)
    for row, geometry in enumerate(table["geometry"]):
        for part in shapely.get_parts(geometry):
            x, y = part.xy
            ax.plot(x, y, color=cmap(colours[row]), linewidth=2.4, solid_capstyle="butt", zorder=3)

    if label_streets and len(table):
        for _, rows in table.groupby("street_name").groups.items():
            longest = max(rows, key=lambda r: table.at[r, "length_m"])
            part = max(shapely.get_parts(table.at[longest, "geometry"]), key=lambda g: g.length)
            a = part.interpolate(0.45, normalized=True)
            b = part.interpolate(0.55, normalized=True)
            angle = np.degrees(np.arctan2(b.y - a.y, b.x - a.x))
            angle = angle - 180.0 if angle > 90 else angle + 180.0 if angle < -90 else angle
            mid = part.interpolate(0.5, normalized=True)
            ax.text(
                mid.x, mid.y, table.at[longest, "street_name"], fontsize=6.5, rotation=angle, clip_on=True,
                rotation_mode="anchor", ha="center", va="center", zorder=5, path_effects=outline,
            )  # fmt: skip

    if lat is not None and lon is not None:
        lat = np.asarray(lat, dtype=float)
        lon = np.asarray(lon, dtype=float)
        x, y = book.projection.to_utm(lon, lat)
        if index is None:
            ax.scatter(x, y, s=4, color="k", zorder=4, linewidths=0)
        else:
            index = np.asarray(index)
            ok = index >= 0
            ax.scatter(x[ok], y[ok], s=5, c=[cmap(c) for c in colours[index[ok]]], zorder=4,
                       edgecolors="k", linewidths=0.2)  # fmt: skip
            ax.scatter(x[~ok], y[~ok], s=8, color="0.4", marker="x", zorder=4, linewidths=0.6)

    ax.set_xlim(extent[0], extent[2])
    ax.set_ylim(extent[1], extent[3])
    ax.set_aspect("equal")
    ax.set_xlabel(f"UTM {book.projection.label} easting (m)")
    ax.set_ylabel("northing (m)")
    ax.ticklabel_format(useOffset=False, style="plain")
    summary = f"{len(table)} sub-streets, {table['street'].nunique()} streets"
    ax.set_title(f"{title} — {summary}" if title else summary)
    fig.tight_layout()
    target = Path(path)
    with atomic_path(target) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    plt.close(fig)
    return target
