"""What is actually in a rendered frame, read from its object-id buffer (for captions and tests)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from addressclip.world.raster import (
    BLADE_HEIGHT_M,
    ID_BLADE,
    ID_CAR,
    ID_PERSON,
    ID_SIGN,
    ID_STRIDE,
    ID_TREE,
    ID_WALL,
    Camera,
    Frame,
)
from addressclip.world.scene import Scene
from addressclip.world.signs import PAD_PX, TEXT_PX
from addressclip.world.styles import MATERIALS

# A sign counts as readable when its letters are at least this tall on screen and enough of it shows.
# Sizes are judged at CAPTION_REFERENCE_WIDTH pixels: the paper's BLIP captions were written from the
# full 640x480 photographs, not from the small training crops, so a caption may name a sign that a
# 128-pixel render shows only as a coloured board.
CAPTION_REFERENCE_WIDTH = 640
READABLE_TEXT_PX = 5.5
READABLE_CHAR_WIDTH_PX = 2.8
READABLE_VISIBLE_SHARE = 0.6
MIN_OBJECT_SHARE = 0.002  # an object covering less of the frame than this is not mentioned


@dataclass
class VisibleBuilding:
    style: int
    share: float  # of the frame
    height_m: float
    colour: str
    material: str
    kind: str
    left: float  # share of its pixels in the left half


@dataclass
class VisibleText:
    text: str
    share: float
    text_px: float  # letter height on screen
    visible_share: float  # of the whole sign
    readable: bool


@dataclass
class ViewContent:
    """A summary of a view: what covers how much of the frame, which texts are legible."""

    buildings: list[VisibleBuilding] = field(default_factory=list)
    wall_share: float = 0.0
    wall_left: float = 0.0
    wall_right: float = 0.0
    sky_share: float = 0.0
    shop_signs: list[VisibleText] = field(default_factory=list)
    street_signs: list[VisibleText] = field(default_factory=list)
    trees_left: float = 0.0
    trees_right: float = 0.0
    cars: list[str] = field(default_factory=list)  # colour names
    people: int = 0
    weather: str = "clear"
    road_half_width_m: float = 3.0
    highway: str = "residential"
    urban: bool = False

    @property
    def readable_texts(self) -> list[str]:
        return [s.text for s in self.shop_signs + self.street_signs if s.readable]


def describe_frame(
    frame: Frame,
    scene: Scene,
    camera: Camera,
    weather: str,
    highway: str,
    half_width: float,
    urban: bool,
) -> ViewContent:
    ids = frame.ids
    width = ids.shape[1]
    total = float(ids.size)
    values, counts = np.unique(ids, return_counts=True)
    kinds = values // ID_STRIDE
    content = ViewContent(weather=weather, road_half_width_m=half_width, highway=highway, urban=urban)
    content.sky_share = float(counts[values == 0].sum()) / total
    left_half = np.zeros(ids.shape, dtype=bool)
    left_half[:, : width // 2] = True

    wall_mask = (ids // ID_STRIDE) == ID_WALL // ID_STRIDE
    content.wall_share = float(wall_mask.mean())
    content.wall_left = float(wall_mask[:, : width // 2].mean())
    content.wall_right = float(wall_mask[:, width // 2 :].mean())
    wall_ids = values[kinds == ID_WALL // ID_STRIDE] - ID_WALL
    wall_counts = counts[kinds == ID_WALL // ID_STRIDE]
    if len(wall_ids):
        styles = scene.wall_style[wall_ids]
        per_style: dict[int, list[float]] = {}
        for style, edge, count in zip(styles.tolist(), wall_ids.tolist(), wall_counts.tolist(), strict=True):
            entry = per_style.setdefault(style, [0.0, 0.0, 0.0])
            entry[0] += count
            entry[1] = max(entry[1], float(scene.wall_height[edge]))
        left_counts = np.unique(ids[wall_mask & left_half], return_counts=True)
        left_by_style: dict[int, float] = {}
        for value, count in zip(*left_counts, strict=True):
            style = int(scene.wall_style[value - ID_WALL])
            left_by_style[style] = left_by_style.get(style, 0.0) + count
        for style, (count, h, _) in sorted(per_style.items(), key=lambda item: -item[1][0]):
            info = scene.style_info[style]
            content.buildings.append(
                VisibleBuilding(
                    style=style,
                    share=count / total,
                    height_m=h,
                    colour=info.wall_name,
                    material=MATERIALS[info.material],
                    kind=info.kind,
                    left=left_by_style.get(style, 0.0) / count,
                )
            )

    for value, count in zip(
        values[kinds == ID_SIGN // ID_STRIDE], counts[kinds == ID_SIGN // ID_STRIDE], strict=True
    ):
        sign = int(value - ID_SIGN)
        content.shop_signs.append(_shop_sign_text(frame, scene, camera, sign, int(count), total))
    blade_values = values[kinds == ID_BLADE // ID_STRIDE]
    blade_counts = counts[kinds == ID_BLADE // ID_STRIDE]
    for value, count in zip(blade_values, blade_counts, strict=True):
        plate, blade = divmod(int(value - ID_BLADE), 4)
        content.street_signs.append(_blade_text(frame, scene, camera, plate, blade, int(count), total))

    tree_mask = (ids // ID_STRIDE) == ID_TREE // ID_STRIDE
    content.trees_left = float(tree_mask[:, : width // 2].mean())
    content.trees_right = float(tree_mask[:, width // 2 :].mean())
    occluders = frame.occluders
    for value, count in zip(
        values[kinds == ID_CAR // ID_STRIDE], counts[kinds == ID_CAR // ID_STRIDE], strict=True
    ):
        if count / total >= MIN_OBJECT_SHARE * 2:
            content.cars.append(occluders[int(value - ID_CAR)].colour_name)
    people = counts[kinds == ID_PERSON // ID_STRIDE]
    content.people = int((people / total >= MIN_OBJECT_SHARE).sum())
    return content


def _reference_focal(frame: Frame) -> float:
    """The focal length in pixels of the same camera at the caption reference width."""
    width = frame.ids.shape[1]
    return frame.focal * max(1.0, CAPTION_REFERENCE_WIDTH / width)


def _letter_px(focal: float, board_height_m: float, texture_height: int, depth: float) -> float:
    """On-screen height of the letters of a board `board_height_m` tall at `depth` metres."""
    letters_m = board_height_m * (TEXT_PX * 0.75) / texture_height
    return focal * letters_m / max(depth, 1e-6)


def _shop_sign_text(frame: Frame, scene: Scene, camera: Camera, sign: int, count: int, total: float):
    text = scene.sign_text[sign]
    mask = frame.ids == ID_SIGN + sign
    depth = float(np.median(frame.depth[mask]))
    texture = scene.sign_texture[sign]
    v0, v1 = scene.sign_v[sign]
    scale = _reference_focal(frame) / frame.focal
    letter = _letter_px(frame.focal * scale, v1 - v0, texture.shape[0], depth)
    expected = _projected_sign_area(frame, scene, camera, sign)
    visible = min(1.0, count / expected) if expected > 0 else 0.0
    columns = np.flatnonzero(mask.any(axis=0))
    span = scale * float(columns[-1] - columns[0] + 1) if len(columns) else 0.0
    char_width = (
        span / max(visible, 1e-6) * (texture.shape[1] - 2 * PAD_PX) / texture.shape[1] / max(len(text), 1)
    )
    readable = (
        letter >= READABLE_TEXT_PX
        and char_width >= READABLE_CHAR_WIDTH_PX
        and visible >= READABLE_VISIBLE_SHARE
    )
    return VisibleText(text, count / total, letter, visible, bool(readable))


def _blade_text(frame: Frame, scene: Scene, camera: Camera, plate: int, blade: int, count: int, total: float):
    text = scene.plate_names[plate][blade]
    texture = scene.plate_textures[plate][blade]
    mask = frame.ids == ID_BLADE + plate * 4 + blade
    depth = float(np.median(frame.depth[mask]))
    focal = _reference_focal(frame)
    letter = _letter_px(focal, BLADE_HEIGHT_M, texture.shape[0], depth)
    width_m = BLADE_HEIGHT_M * texture.shape[1] / texture.shape[0]
    expected = (frame.focal * width_m / depth) * (frame.focal * BLADE_HEIGHT_M / depth)
    visible = min(1.0, count / max(expected, 1e-6))
    char_width = focal * width_m / depth * (texture.shape[1] - 2 * PAD_PX) / texture.shape[1] / len(text)
    readable = (
        letter >= READABLE_TEXT_PX
        and char_width >= READABLE_CHAR_WIDTH_PX
        and visible >= READABLE_VISIBLE_SHARE
    )
    return VisibleText(text, count / total, letter, visible, bool(readable))


def project_points(camera: Camera, focal: float, horizon: float, width: int, xy: np.ndarray, z: np.ndarray):
    """Screen (column, row, depth) of world points (local metres, height above ground)."""
    heading = np.radians(camera.heading_deg)
    forward = np.array([np.sin(heading), np.cos(heading)])
    right = np.array([np.cos(heading), -np.sin(heading)])
    rel = np.asarray(xy, dtype=float) - np.array([camera.x, camera.y])
    depth = rel @ forward
    safe = np.where(depth > 1e-6, depth, 1e-6)
    column = width / 2 + focal * (rel @ right) / safe
    row = horizon - (np.asarray(z, dtype=float) - camera.height_m) * focal / safe
    return column, row, depth


def sign_corners(scene: Scene, sign: int) -> tuple[np.ndarray, np.ndarray]:
    """The four corners (xy, height) of a shop sign in local metres."""
    edge = int(scene.sign_edge[sign])
    a, b = scene.wall_a[edge], scene.wall_b[edge]
    direction = (b - a) / max(float(np.hypot(*(b - a))), 1e-9)
    u0, u1 = scene.sign_u[sign]
    v0, v1 = scene.sign_v[sign]
    xy = np.array([a + direction * u0, a + direction * u1, a + direction * u1, a + direction * u0])
    return xy, np.array([v0, v0, v1, v1])


def _projected_sign_area(frame: Frame, scene: Scene, camera: Camera, sign: int) -> float:
    height, width = frame.ids.shape
    horizon = height / 2 + frame.focal * np.tan(np.radians(camera.pitch_deg))
    xy, z = sign_corners(scene, sign)
    column, row, depth = project_points(camera, frame.focal, horizon, width, xy, z)
    if (depth <= 0.3).any():
        return 0.0
    return 0.5 * abs(float(np.dot(column, np.roll(row, -1)) - np.dot(row, np.roll(column, -1))))
