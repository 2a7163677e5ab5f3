"""Pictures saved beside a rendered dataset: a contact sheet of views with their addresses, and a map
of the capture points coloured by address."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pandas as pd

from addressclip.atomic import atomic_path
from addressclip.world.scene import Scene
from addressclip.world.styles import stable_unit

SHEET_COLUMNS = 6
SHEET_ROWS = 4


def contact_sheet(
    frame: pd.DataFrame, image_root: Path, target: Path, *, seed: int = 0, tile: int = 256
) -> Path:
    """A grid of sample views labelled with their address: addresses taken in turn, one location each."""
    from PIL import Image, ImageDraw

    from addressclip.world.signs import label_font

    count = SHEET_COLUMNS * SHEET_ROWS
    rng = np.random.default_rng(seed)
    locations = frame.drop_duplicates("location_id")
    queues = [
        list(group["location_id"].to_numpy()[rng.permutation(len(group))])
        for _, group in locations.groupby("address_id", sort=True)
    ]
    queues = [queues[i] for i in rng.permutation(len(queues))]
    picked: list[str] = []
    while len(picked) < count and any(queues):
        for queue in queues:
            if queue and len(picked) < count:
                picked.append(queue.pop())
    chosen = []
    for location in picked:
        rows = frame[frame["location_id"] == location]
        chosen.append(rows.iloc[int(rng.integers(0, len(rows)))])
    chosen.sort(key=lambda row: (row["address"], row["location_id"]))
    font = label_font(13)
    label_h = 56
    columns = min(SHEET_COLUMNS, max(len(chosen), 1))
    rows_n = max(1, int(np.ceil(len(chosen) / columns)))
    sheet = Image.new("RGB", (columns * tile, rows_n * (tile + label_h)), "white")
    draw = ImageDraw.Draw(sheet)
    for k, row in enumerate(chosen):
        with Image.open(image_root / row["path"]) as image:
            view = image.convert("RGB")
        scale = tile / max(view.size)
        view = view.resize((round(view.width * scale), round(view.height * scale)), Image.Resampling.LANCZOS)
        x, y = (k % columns) * tile, (k // columns) * (tile + label_h)
        sheet.paste(view, (x + (tile - view.width) // 2, y + (tile - view.height) // 2))
        lines = textwrap.wrap(str(row["address"]), width=34)[:3]
        for j, line in enumerate(lines):
            draw.text((x + 4, y + tile + 3 + 17 * j), line, fill=(20, 20, 20), font=font)
    with atomic_path(target) as tmp:
        sheet.save(tmp, format="PNG")
    return target


def _address_colours(addresses: pd.Series) -> np.ndarray:
    import matplotlib

    cmap = matplotlib.colormaps["tab20"]
    return np.asarray([cmap(int(stable_unit("colour", a) * 20)) for a in addresses])


def capture_map(frame: pd.DataFrame, scene: Scene, target: Path, *, title: str = "") -> Path:
    """Map of the capture points (UTM) coloured by address, over streets and building walls."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.collections import LineCollection

    locations = frame.drop_duplicates("location_id")
    east = locations["utm_e"].to_numpy(float) - scene.origin[0]
    north = locations["utm_n"].to_numpy(float) - scene.origin[1]
    span = max(np.ptp(east), np.ptp(north), 50.0)
    size = 9.0
    figure, axes = plt.subplots(
        figsize=(size, size * max(np.ptp(north), 50) / max(np.ptp(east), 50) * 0.9 + 0.6)
    )
    margin = 0.05 * span
    box = (east.min() - margin, east.max() + margin, north.min() - margin, north.max() + margin)

    def in_box(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        lo_x, hi_x, lo_y, hi_y = box
        xs, ys = np.stack([a[:, 0], b[:, 0]], 1), np.stack([a[:, 1], b[:, 1]], 1)
        return (xs.max(1) >= lo_x) & (xs.min(1) <= hi_x) & (ys.max(1) >= lo_y) & (ys.min(1) <= hi_y)

    walls = in_box(scene.wall_a, scene.wall_b)
    axes.add_collection(
        LineCollection(
            np.stack([scene.wall_a[walls], scene.wall_b[walls]], 1), colors="#b9a78f", linewidths=0.6
        )
    )
    segs = in_box(scene.seg_a, scene.seg_b)
    axes.add_collection(
        LineCollection(np.stack([scene.seg_a[segs], scene.seg_b[segs]], 1), colors="#9a9a9a", linewidths=1.0)
    )
    split_marker = {"train": "o", "val": "s", "test": "^"}
    colours = _address_colours(locations["address"])
    for split, marker in split_marker.items():
        rows = (locations["split"] == split).to_numpy()
        if rows.any():
            held_out = split != "train"
            axes.scatter(
                east[rows], north[rows], c=colours[rows], s=22 if held_out else 14, marker=marker,
                edgecolors="black" if held_out else "none", linewidths=0.4, label=split, zorder=3,
            )  # fmt: skip
    if locations["address_id"].nunique() <= 40:
        centres = locations.assign(e=east, n=north).groupby("address")[["e", "n"]].mean()
        for address, (x, y) in centres.iterrows():
            axes.annotate(str(address).split(",")[0], (x, y), fontsize=6, ha="center", va="bottom", zorder=4)
    axes.set_xlim(box[0], box[1])
    axes.set_ylim(box[2], box[3])
    axes.set_aspect("equal")
    axes.set_xlabel(f"east (m, from {scene.origin[0]:.0f}, UTM {scene.utm_zone})")
    axes.set_ylabel(f"north (m, from {scene.origin[1]:.0f})")
    axes.legend(loc="upper right", fontsize=8, markerscale=1.2)
    addresses = frame["address_id"].nunique()
    axes.set_title(f"{title}: {len(locations)} capture points, {addresses} addresses (colour = address)")
    figure.tight_layout()
    with atomic_path(target) as tmp:
        figure.savefig(tmp, format="png", dpi=110)
    plt.close(figure)
    return target
