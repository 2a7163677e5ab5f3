"""The map of decoded routes: per-photo answers vs the decoded path vs the truth, over the street network.

Two walks of the densest spacing, each decoded whole (the longest length): the one where decoding
fixed the most photos (net), and the one where it broke the most (or a median one when it broke
none), so the figure shows a failure as well as a success. Per photo, a wrong per-photo answer is
drawn as a cross at the nearest point of the answered sub-street, tied to where the photo was taken.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import shapely

from addressclip.benchmark.figures import _draw, _pyplot, _save

MARGIN_M = 60.0
MAX_SIDE_M = 900.0  # wrong answers farther away leave the frame (their dashed lines show the way)


def _choose(evaluation, spacing: float) -> list[tuple[int, str]]:
    gains, breaks = [], []
    for number in range(len(evaluation.walks[spacing].routes)):
        photo, path, truth = evaluation.decode_walk(spacing, number)
        scored = truth >= 0
        fixed = int(((photo != truth) & (path == truth) & scored).sum())
        broken = int(((photo == truth) & (path != truth) & scored).sum())
        gains.append(fixed - broken)
        breaks.append(broken)
    best = int(np.argmax(gains))
    chosen = [(best, f"the walk where decoding gained most (net {gains[best]:+d} photos)")]
    worst = int(np.argmax(breaks))
    if breaks[worst] > 0 and worst != best:
        chosen.append((worst, f"the walk where decoding broke most ({breaks[worst]} photos)"))
    else:
        median = int(np.argsort(gains, kind="stable")[len(gains) // 2])
        chosen.append((median, f"a median walk (net {gains[median]:+d} photos)"))
    return chosen


def _nearest_on(geometry, point: np.ndarray) -> np.ndarray | None:
    if geometry is None or geometry.is_empty:
        return None
    spot = shapely.Point(point)
    near = geometry.interpolate(geometry.project(spot))
    return np.array([near.x, near.y])


def plot_decoded_routes(evaluation, path: Path) -> bool:
    """Write the figure (PNG); False when there is no walk to draw."""
    spacing = min(evaluation.walks)
    if not evaluation.walks[spacing].routes:
        return False
    plt = _pyplot()
    from matplotlib.lines import Line2D

    geometries = list(evaluation.gallery.table["geometry"])
    chosen = _choose(evaluation, spacing)
    fig, axes = plt.subplots(1, len(chosen), figsize=(7.2 * len(chosen), 7.6))
    axes = np.atleast_1d(axes)
    for ax, (number, why) in zip(axes, chosen, strict=True):
        route = evaluation.walks[spacing].routes[number]
        photo, decoded, truth = evaluation.decode_walk(spacing, number)
        xy = route.utm
        decoded_spots = [_nearest_on(geometries[row], xy[t]) for t, row in enumerate(decoded)]
        shown = np.vstack([xy, *(s for s in decoded_spots if s is not None)])  # the walk and its decoding
        low, high = shown.min(axis=0) - MARGIN_M, shown.max(axis=0) + MARGIN_M
        side = min(float((high - low).max()), MAX_SIDE_M)
        centre = (xy.min(axis=0) + xy.max(axis=0)) / 2 if side == MAX_SIDE_M else (low + high) / 2
        window = shapely.box(*(centre - side / 2), *(centre + side / 2))
        for geometry in geometries:
            if geometry is not None and not geometry.is_empty and geometry.intersects(window):
                _draw(ax, geometry, color="#c8c8c8", linewidth=1.0, zorder=1)
        for row in np.unique(truth[truth >= 0]):
            _draw(ax, geometries[row], color="#2ca02c", linewidth=9, alpha=0.30, zorder=2)
        for row in np.unique(decoded):
            if geometries[row] is not None:
                _draw(ax, geometries[row], color="#1f5fbf", linewidth=3.2, alpha=0.75, zorder=3)
        ax.plot(xy[:, 0], xy[:, 1], "-", color="black", linewidth=1.0, zorder=4)
        ax.plot(xy[:, 0], xy[:, 1], "o", color="black", markersize=2.6, zorder=5)
        ax.plot(*xy[0], marker="^", color="black", markersize=9, zorder=6)
        ax.annotate("start", xy[0], textcoords="offset points", xytext=(6, 6), fontsize=8)
        for t in np.flatnonzero((photo != truth) & (truth >= 0)):
            spot = _nearest_on(geometries[photo[t]], xy[t])
            if spot is not None:
                ax.plot(*np.c_[xy[t], spot], "--", color="#ff7f0e", linewidth=0.8, zorder=4)
                ax.plot(*spot, "x", color="#ff7f0e", markersize=6, markeredgewidth=1.6, zorder=6)
        wrong = np.flatnonzero((decoded != truth) & (truth >= 0))
        ax.plot(xy[wrong, 0], xy[wrong, 1], "o", markersize=8, markerfacecolor="none",
                markeredgecolor="#d62728", markeredgewidth=1.4, zorder=7)  # fmt: skip
        scored = truth >= 0
        ax.set_title(
            f"{why}\n{len(route)} photos every {spacing:g} m: SSA-1 per photo "
            f"{100 * np.mean(photo[scored] == truth[scored]):.0f}% → sequence "
            f"{100 * np.mean(decoded[scored] == truth[scored]):.0f}%",
            fontsize=10,
        )
        ax.set_xlim(centre[0] - side / 2, centre[0] + side / 2)
        ax.set_ylim(centre[1] - side / 2, centre[1] + side / 2)
        ax.set_aspect("equal")
        ax.set_xlabel("UTM easting (m)")
        ax.set_ylabel("UTM northing (m)")
        ax.ticklabel_format(useOffset=False, style="plain")
    handles = [
        Line2D([], [], color="#2ca02c", linewidth=9, alpha=0.30, label="true sub-streets"),
        Line2D([], [], color="black", marker="o", markersize=3, linewidth=1, label="walk (photo positions)"),
        Line2D([], [], color="#1f5fbf", linewidth=3.2, alpha=0.75, label="decoded path (sub-streets)"),
        Line2D(
            [],
            [],
            color="#ff7f0e",
            marker="x",
            linestyle="--",
            linewidth=0.8,
            label="wrong per-photo answer (nearest point)",
        ),
        Line2D(
            [],
            [],
            color="#d62728",
            marker="o",
            markerfacecolor="none",
            linestyle="none",
            markersize=8,
            label="photo the sequence gets wrong",
        ),
        Line2D([], [], color="#c8c8c8", linewidth=1, label="other sub-streets"),
    ]
    fig.legend(handles=handles, loc="lower center", ncol=3, fontsize=9, frameon=False)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    _save(fig, path)
    return True
