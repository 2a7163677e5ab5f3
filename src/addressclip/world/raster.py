"""The camera: a vectorised 2.5D column raycaster over the scene's wall edges, plus billboards.

For each image column one ray is cast against every nearby wall edge (numpy, all at once); the four
nearest hits per column are kept, and each pixel takes the nearest wall whose vertical extent
covers it (so a tall building shows above a low one in front). Facades are shaded procedurally in
wall coordinates (u along the wall, v up it): window grid, material, ground-floor shop band,
signboards sampled from their text textures. Below the walls the ground plane is shaded by distance
to the street centrelines (road, lane dashes, kerb, sidewalk, verge); above them the sky. Trees,
vehicles, pedestrians and street-name signs are camera-facing billboards depth-tested per pixel.

Every pixel also gets an object id (`ids`), so the caption can say exactly what is in the frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from addressclip.world.assets import Assets, Sprite
from addressclip.world.conditions import Conditions, Occluder
from addressclip.world.scene import Scene
from addressclip.world.styles import M_BRICK, M_CONCRETE, M_GLASS, M_METAL, M_STONE, M_WOOD

LAYERS = 4  # wall hits kept per column
WALL_RADIUS_M = 160.0
GROUND_RADIUS_M = 90.0
TREE_RADIUS_M = 80.0
PLATE_RADIUS_M = 60.0
CAMERA_HEIGHT_M = 2.5
BLADE_HEIGHT_M = 0.45
POLE_HEIGHT_M = 3.0

# object id ranges in the id buffer
ID_SKY, ID_GROUND = 0, 1
ID_WALL, ID_SIGN, ID_TREE, ID_CAR, ID_PERSON, ID_BLADE, ID_POLE = (
    10_000_000, 20_000_000, 30_000_000, 40_000_000, 50_000_000, 60_000_000, 70_000_000,
)  # fmt: skip
ID_STRIDE = 10_000_000


@dataclass(frozen=True)
class Camera:
    x: float
    y: float
    heading_deg: float  # clockwise from north
    pitch_deg: float = 0.0
    height_m: float = CAMERA_HEIGHT_M
    hfov_deg: float = 90.0


@dataclass
class LocalScene:
    """The part of the scene near one capture point (shared by its views)."""

    wall_index: np.ndarray
    a: np.ndarray
    e: np.ndarray
    length: np.ndarray
    normal: np.ndarray
    height: np.ndarray
    roof: np.ndarray
    gable: np.ndarray
    u0: np.ndarray
    style_rows: np.ndarray  # (E, columns) gathered from scene.styles
    sign_index: np.ndarray  # signs on these walls (global sign ids)
    sign_local_edge: np.ndarray
    has_sign: np.ndarray  # (E,) bool: the local wall carries a sign
    seg_index: np.ndarray
    tree_index: np.ndarray
    plate_index: np.ndarray


def local_scene(scene: Scene, xy: np.ndarray) -> LocalScene:
    """Cull the scene to what a camera at xy can see (walls within 160 m, ground within 90 m...)."""
    a, b = scene.wall_a, scene.wall_b
    e = b - a
    length = np.hypot(e[:, 0], e[:, 1])
    t = np.clip(((xy - a) * e).sum(1) / np.maximum(length**2, 1e-12), 0, 1)
    dist = np.hypot(*(a + e * t[:, None] - xy).T)
    walls = np.flatnonzero(dist < WALL_RADIUS_M)
    normal = np.stack([e[walls, 1], -e[walls, 0]], axis=1) / np.maximum(length[walls, None], 1e-9)
    sign_mask = np.isin(scene.sign_edge, walls)
    sign_index = np.flatnonzero(sign_mask)
    remap = {int(w): i for i, w in enumerate(walls)}
    sign_local = np.asarray([remap[int(scene.sign_edge[s])] for s in sign_index], dtype=np.int64)
    ga, gb = scene.seg_a, scene.seg_b
    ge = gb - ga
    glen2 = np.maximum((ge**2).sum(1), 1e-12)
    gt = np.clip(((xy - ga) * ge).sum(1) / glen2, 0, 1)
    gdist = np.hypot(*(ga + ge * gt[:, None] - xy).T)
    trees = np.flatnonzero(np.hypot(*(scene.tree_xy - xy).T) < TREE_RADIUS_M) if len(scene.tree_xy) else []
    plates = (
        np.flatnonzero(np.hypot(*(scene.plate_xy - xy).T) < PLATE_RADIUS_M) if len(scene.plate_xy) else []
    )
    return LocalScene(
        wall_index=walls,
        a=a[walls],
        e=e[walls],
        length=length[walls],
        normal=normal,
        height=scene.wall_height[walls],
        roof=scene.wall_roof[walls],
        gable=scene.wall_gable[walls],
        u0=scene.wall_u0[walls],
        style_rows=scene.styles[scene.wall_style[walls]],
        sign_index=sign_index,
        sign_local_edge=sign_local,
        has_sign=np.isin(np.arange(len(walls)), sign_local),
        seg_index=np.flatnonzero(gdist < GROUND_RADIUS_M + scene.seg_half_width),  # for occluders
        tree_index=np.asarray(trees, dtype=np.int64),
        plate_index=np.asarray(plates, dtype=np.int64),
    )


@dataclass
class Frame:
    """A rendered view before noise and compression: colour, depth and object ids per pixel."""

    rgb: np.ndarray  # (H, W, 3) float32 0-255
    depth: np.ndarray  # (H, W) float32 metres (inf for sky)
    ids: np.ndarray  # (H, W) int32
    focal: float
    occluders: list[Occluder] = field(default_factory=list)


def render_frame(
    scene: Scene,
    local: LocalScene,
    camera: Camera,
    conditions: Conditions,
    occluders: list[Occluder],
    assets: Assets,
    width: int,
    height: int,
    draw_signs: bool = True,
) -> Frame:
    """Render one view (deterministic: no randomness in here)."""
    focal = (width / 2) / np.tan(np.radians(camera.hfov_deg) / 2)
    horizon = height / 2 + focal * np.tan(np.radians(camera.pitch_deg))
    heading = np.radians(camera.heading_deg)
    forward = np.array([np.sin(heading), np.cos(heading)])
    right = np.array([np.cos(heading), -np.sin(heading)])
    cam = np.array([camera.x, camera.y])
    screen_x = (np.arange(width) + 0.5 - width / 2) / focal
    rays = forward[None, :] + screen_x[:, None] * right[None, :]  # (W, 2), unit forward component
    rows = np.arange(height, dtype=np.float64) + 0.5

    rgb = np.empty((height, width, 3), dtype=np.float32)
    depth = np.full((height, width), np.inf, dtype=np.float32)
    ids = np.zeros((height, width), dtype=np.int32)
    light = _Lighting(conditions)

    # --- walls -----------------------------------------------------------------------------------
    layer, t_cols, e_cols, u_cols = _cast_walls(
        local, cam, forward, right, rays, rows, horizon, focal, camera
    )
    wall_pixels = layer >= 0
    flat_rgb, flat_depth, flat_ids = rgb.reshape(-1, 3), depth.reshape(-1), ids.reshape(-1)
    wall_flat = np.flatnonzero(wall_pixels)
    r_idx, c_idx = np.divmod(wall_flat, width)
    column_layer = c_idx * LAYERS + layer.reshape(-1)[wall_flat]
    t_pix = t_cols.reshape(-1)[column_layer]
    e_pix = e_cols.reshape(-1)[column_layer]
    u_pix = u_cols.reshape(-1)[column_layer]
    v_pix = camera.height_m + (horizon - rows[r_idx]) * t_pix / focal
    colour = _shade_facade(local, e_pix, u_pix, v_pix, t_pix, focal, rays[c_idx], light)
    pixel_ids = ID_WALL + local.wall_index[e_pix].astype(np.int64)
    if draw_signs and len(local.sign_index):
        _paint_signs(scene, local, e_pix, u_pix, v_pix, rays[c_idx], colour, pixel_ids)
    flat_rgb[wall_flat] = light.fog(colour, t_pix)
    flat_depth[wall_flat] = t_pix
    flat_ids[wall_flat] = pixel_ids

    # --- ground and sky ----------------------------------------------------------------------------
    open_pixels = ~wall_pixels
    below = rows[:, None] > horizon + 0.5
    ground_flat = np.flatnonzero(open_pixels & below)
    if len(ground_flat):
        gr, gc = np.divmod(ground_flat, width)
        g = focal * camera.height_m / (rows[gr] - horizon)
        points = cam + rays[gc] * g[:, None]
        col = _shade_ground(scene, local, points, g, focal, light)
        flat_rgb[ground_flat] = light.fog(col, g)
        flat_depth[ground_flat] = g
        flat_ids[ground_flat] = ID_GROUND
    sky_flat = np.flatnonzero(open_pixels & ~below)
    if len(sky_flat):
        sr, sc = np.divmod(sky_flat, width)
        flat_rgb[sky_flat] = _shade_sky(conditions, assets, camera, rows[sr], screen_x[sc], horizon, focal)

    # --- billboards, far to near --------------------------------------------------------------------
    billboards = _billboards(scene, local, occluders, assets, cam, forward, camera)
    billboards.sort(key=lambda item: -float(np.dot(item[0] - cam, forward)))
    for xy, base, size, sprite, tint, ident in billboards:
        _draw_billboard(rgb, depth, ids, sprite, tint, ident, xy, base, size, cam, forward, right, focal,
                        horizon, camera.height_m, light)  # fmt: skip
    return Frame(rgb, depth, ids, float(focal), occluders)


class _Lighting:
    """Sun + ambient light, atmospheric fog and wetness for one capture."""

    def __init__(self, c: Conditions) -> None:
        azimuth = np.radians(c.sun_azimuth_deg)
        elevation = np.radians(c.sun_elevation_deg)
        self.sun_xy = np.array([np.sin(azimuth), np.cos(azimuth)]) * np.cos(elevation)
        self.sun_up = float(np.sin(elevation))
        self.ambient = c.ambient * c.exposure
        self.sun = c.sun_strength * c.exposure * np.asarray(c.sun_colour, dtype=np.float32)
        self.fog_rgb = np.asarray(c.sky_horizon, dtype=np.float32)
        self.fog_distance = c.fog_distance_m
        self.wet = c.wet
        self.dusk = c.weather == "dusk"

    def wall_light(self, normals: np.ndarray) -> np.ndarray:
        lambert = np.clip(normals @ self.sun_xy, 0.0, None)
        return (self.ambient + lambert[:, None] * self.sun[None, :]).astype(np.float32)

    def ground_light(self) -> np.ndarray:
        return (self.ambient + self.sun_up * self.sun).astype(np.float32)

    def fog(self, colour: np.ndarray, distance: np.ndarray) -> np.ndarray:
        amount = (1.0 - np.exp(-np.asarray(distance, dtype=np.float32) / self.fog_distance))[:, None]
        return colour * (1.0 - amount) + self.fog_rgb * amount


def _cast_walls(local, cam, forward, right, rays, rows, horizon, focal, camera):
    """Per column: the LAYERS nearest wall hits; per pixel: which of them covers it (-1 none)."""
    width, height = len(rays), len(rows)
    layer = np.full((height, width), -1, dtype=np.int16)
    empty = np.zeros((width, LAYERS))
    if len(local.a) == 0:
        return layer, empty, empty.astype(np.int64), empty
    a = local.a - cam
    b = a + local.e
    za, zb = a @ forward, b @ forward
    xa, xb = a @ right, b @ right
    half = (width / 2) / focal + 0.05
    visible = ~((za < 0.2) & (zb < 0.2)) & ~((xa > half * za) & (xb > half * zb))
    visible &= ~((xa < -half * za) & (xb < -half * zb))
    edges = np.flatnonzero(visible)
    if len(edges) == 0:
        return layer, empty, empty.astype(np.int64), empty
    a, e = a[edges], local.e[edges]
    with np.errstate(divide="ignore", invalid="ignore"):
        denom = rays[:, 0:1] * e[None, :, 1] - rays[:, 1:2] * e[None, :, 0]
        t = (a[:, 0] * e[:, 1] - a[:, 1] * e[:, 0])[None, :] / denom
        u = (a[None, :, 0] * rays[:, 1:2] - a[None, :, 1] * rays[:, 0:1]) / denom
    hit = (t > 0.3) & (u >= 0.0) & (u <= 1.0)
    t = np.where(hit, t, np.inf)
    if t.shape[1] > LAYERS:
        nearest = np.argpartition(t, LAYERS - 1, axis=1)[:, :LAYERS]
    else:
        nearest = np.broadcast_to(np.arange(t.shape[1]), (width, t.shape[1]))
    t_near = np.take_along_axis(t, nearest, axis=1)
    order = np.argsort(t_near, axis=1)
    nearest = np.take_along_axis(nearest, order, axis=1)
    t_cols = np.take_along_axis(t_near, order, axis=1)
    u_cols = np.take_along_axis(u, nearest, axis=1)
    e_cols = edges[nearest]
    if t_cols.shape[1] < LAYERS:
        pad = LAYERS - t_cols.shape[1]
        t_cols = np.pad(t_cols, ((0, 0), (0, pad)), constant_values=np.inf)
        u_cols = np.pad(u_cols, ((0, 0), (0, pad)))
        e_cols = np.pad(e_cols, ((0, 0), (0, pad)))
    t_cols = np.ascontiguousarray(t_cols)
    e_cols = np.ascontiguousarray(e_cols)
    u_cols = np.ascontiguousarray(u_cols)
    top = local.height[e_cols] + _roof_extra(local, e_cols, u_cols)
    finite = np.isfinite(t_cols)
    safe_t = np.where(finite, t_cols, 1.0)
    row_top = horizon - (top - camera.height_m) * focal / safe_t
    row_bottom = horizon + camera.height_m * focal / safe_t
    r = rows[:, None]
    for k in range(LAYERS - 1, -1, -1):
        covered = finite[:, k][None, :] & (r >= row_top[:, k][None, :]) & (r < row_bottom[:, k][None, :])
        layer[covered] = k
    return layer, t_cols, e_cols, u_cols


def _roof_extra(local: LocalScene, edges: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Height above the eaves at u: a triangle on gable ends, a band (the roof) on the eaves side."""
    roof = local.roof[edges]
    gable = local.gable[edges]
    triangle = roof * (1.0 - np.abs(2.0 * u - 1.0))
    return np.where(gable, triangle, roof * 0.6)


def _pattern_strength(period_m: float | np.ndarray, footprint: np.ndarray) -> np.ndarray:
    """How much of a fine pattern survives at this pixel size (fades out below ~3 px per period)."""
    return np.clip(period_m / np.maximum(footprint, 1e-6) / 3.0 - 0.5, 0.0, 1.0)


def _shade_facade(local, e, u, v, t, focal, rays, light: _Lighting) -> np.ndarray:
    """Colour of wall pixels (before fog) from the facade style at (u along, v up) the wall."""
    s = local.style_rows[e]
    wall = s[:, 0:3]
    trim = s[:, 3:6]
    window = s[:, 6:9]
    roof_rgb = s[:, 9:12]
    material = s[:, 12].astype(np.int8)
    bay, floor = s[:, 13], s[:, 14]
    window_w, window_h = s[:, 15], s[:, 16]
    shop = s[:, 17] > 0.5
    along = local.u0[e] + u * local.length[e]  # metres along the facade
    footprint = t / focal  # metres covered by one pixel at this depth
    height = local.height[e]
    colour = wall.copy()

    # material texture
    brick = material == M_BRICK
    if brick.any():
        course = np.floor(v[brick] / 0.26)
        joint = ((v[brick] % 0.26) < 0.035) | (((along[brick] + 0.25 * (course % 2)) % 0.5) < 0.03)
        strength = _pattern_strength(0.26, footprint[brick])
        jitter = 0.9 + 0.2 * _hash01(course, np.floor(along[brick] / 0.5 + 0.5 * (course % 2)))
        tone = np.where(joint, 1.25, jitter)
        colour[brick] *= (1.0 + (tone - 1.0) * strength)[:, None]
    wood = material == M_WOOD
    if wood.any():
        board = (v[wood] % 0.2) < 0.03
        strength = _pattern_strength(0.2, footprint[wood])
        colour[wood] *= (1.0 - 0.3 * board * strength)[:, None]
    concrete = material == M_CONCRETE
    if concrete.any():
        joint = ((v[concrete] % floor[concrete]) < 0.06) | ((along[concrete] % 3.0) < 0.06)
        colour[concrete] *= (1.0 - 0.22 * joint * _pattern_strength(0.6, footprint[concrete]))[:, None]
        stain = _hash01(np.floor(along[concrete] / 3.0), np.floor(v[concrete] / floor[concrete]))
        colour[concrete] *= (0.94 + 0.1 * stain)[:, None]
    metal = material == M_METAL
    if metal.any():
        colour[metal] *= (0.9 + 0.12 * np.sin(along[metal] * 2 * np.pi / 0.25) * _pattern_strength(
            0.25, footprint[metal]))[:, None]  # fmt: skip
    stone = (material == M_STONE) | ((material != M_WOOD) & shop & (v < floor))
    if stone.any():
        joint = (v[stone] % 0.55) < 0.04
        base = np.where((material[stone] == M_STONE)[:, None], colour[stone], np.array([128, 122, 114]))
        colour[stone] = base * (1.0 - 0.2 * joint * _pattern_strength(0.55, footprint[stone]))[:, None]

    # windows: a grid of floors x bays, centred in each cell; glass walls are mostly glass
    floor_index = np.floor(v / floor)
    fv = v / floor - floor_index
    bay_index = np.floor(along / bay)
    fu = along / bay - bay_index
    in_window = (np.abs(fu - 0.5) < window_w / 2) & (np.abs(fv - 0.55) < window_h / 2)
    in_frame = (np.abs(fu - 0.5) < window_w / 2 + 0.06 / bay) & (
        np.abs(fv - 0.55) < window_h / 2 + 0.06 / floor
    )
    upper = (v < height - 0.5) & ((floor_index >= 1) | ~shop) & (v > 0.6)
    glass_pane = 0.7 + 0.5 * _hash01(floor_index, bay_index + 7.0 * e)
    pane = window * glass_pane[:, None]
    if light.dusk:
        lit = _hash01(bay_index * 3.0 + e, floor_index) < 0.35
        pane = np.where(lit[:, None], np.array([232, 196, 120], dtype=np.float32), pane)
    frame_mask = upper & in_frame & ~in_window
    colour[frame_mask] = trim[frame_mask]
    win_mask = upper & in_window
    colour[win_mask] = pane[win_mask]

    # ground-floor shop band: big display windows under a fascia
    band = shop & (floor_index == 0)
    if band.any():
        top = floor - 1.05
        display = band & (v > 0.4) & (v < top) & (np.abs(fu - 0.5) < 0.42)
        door = display & (_hash01(bay_index, e + 3.0) < 0.22) & (np.abs(fu - 0.5) < 0.16) & (v < top - 0.2)
        # glass: dark interior with a few lit shelves, the sky reflected more towards the top
        reflect = np.clip((v - 0.4) / np.maximum(top - 0.4, 0.1), 0.0, 1.0)[:, None] * 0.45
        warm = 0.75 + 0.5 * _hash01(np.floor(along / 0.7), np.floor(v / 0.5) + e)
        glass = (
            np.float32([54, 52, 50]) * warm[:, None] * (1.0 - reflect) + np.float32([170, 180, 192]) * reflect
        )
        colour[display] = glass[display]
        colour[door] = np.float32([72, 52, 38])
        mullion = (
            band
            & (v <= top + 0.08)
            & (v > 0.3)
            & (np.abs(np.abs(fu - 0.5) - 0.43) < 0.015 + 0.5 * footprint / bay)
        )
        colour[mullion] = trim[mullion] * 0.5
        fascia = band & (v >= floor - 0.95) & (v < floor - 0.05)
        colour[fascia] = trim[fascia] * 0.45

    # cornice under the roof line and a string course above the ground floor
    cornice = (v > height - 0.45) & (v <= height) & (material != M_GLASS)
    colour[cornice] = trim[cornice] * 0.9
    course = (np.abs(v - floor) < 0.08) & (height > 2 * floor) & (material != M_GLASS) & (material != M_WOOD)
    colour[course] = trim[course] * 0.95

    # above the eaves: roof band or gable triangle
    above = v > height
    colour[above & ~local.gable[e]] = roof_rgb[above & ~local.gable[e]] * 0.85
    lit_colour = colour * light.wall_light(local.normal[e])
    if light.wet:
        lit_colour *= 0.85
    return lit_colour


def _hash01(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cheap deterministic per-cell pseudo-random numbers in [0, 1) (float32 is plenty for shading)."""
    x = np.sin(
        np.asarray(a, dtype=np.float32) * np.float32(12.9898)
        + np.asarray(b, dtype=np.float32) * np.float32(78.233)
    )
    x *= np.float32(4375.85453)
    return x - np.floor(x)


def _paint_signs(scene: Scene, local: LocalScene, e, u, v, rays, colour, pixel_ids) -> None:
    """Overwrite facade pixels that fall on a shop signboard with its text texture (lit later)."""
    candidates = np.flatnonzero(local.has_sign[e])
    if len(candidates) == 0:
        return
    for sign, edge in zip(local.sign_index, local.sign_local_edge, strict=True):
        on_edge = candidates[e[candidates] == edge]
        if len(on_edge) == 0:
            continue
        metres = u[on_edge] * local.length[edge]
        u0, u1 = scene.sign_u[sign]
        v0, v1 = scene.sign_v[sign]
        inside = (metres >= u0) & (metres <= u1) & (v[on_edge] >= v0) & (v[on_edge] <= v1)
        if not inside.any():
            continue
        pixels = on_edge[inside]
        texture = scene.sign_texture[sign]
        th, tw = texture.shape[:2]
        fu = (metres[inside] - u0) / (u1 - u0)
        # seen from behind the wall the text would be mirrored: flip it back
        if float(rays[pixels[0]] @ local.normal[edge]) > 0:
            fu = 1.0 - fu
        fv = (v1 - v[pixels]) / (v1 - v0)
        tx = np.clip((fu * tw).astype(np.int64), 0, tw - 1)
        ty = np.clip((fv * th).astype(np.int64), 0, th - 1)
        colour[pixels] = texture[ty, tx]
        pixel_ids[pixels] = ID_SIGN + int(sign)


def _shade_ground(scene: Scene, local: LocalScene, points, g, focal, light: _Lighting) -> np.ndarray:
    """Road / lane dashes / kerb / sidewalk / verge by distance to the nearest street centreline.

    The candidate segments of each pixel come from the scene's ground grid (a dozen at most), so the
    cost does not grow with the number of streets in view.
    """
    cells = np.floor((points - scene.ground_origin) / scene.ground_cell_m).astype(np.int64)
    shape = scene.ground_urban.shape
    inside = (cells[:, 0] >= 0) & (cells[:, 1] >= 0) & (cells[:, 0] < shape[0]) & (cells[:, 1] < shape[1])
    cx = np.clip(cells[:, 0], 0, shape[0] - 1)
    cy = np.clip(cells[:, 1], 0, shape[1] - 1)
    urban_cell = scene.ground_urban[cx, cy] & inside
    colour = np.where(urban_cell[:, None], _VERGE_CITY, _VERGE_GRASS)
    candidates = np.where(inside[:, None], scene.ground_candidates[cx, cy], -1)  # (n, K)
    valid = candidates >= 0
    if not valid.any():
        return colour * light.ground_light()
    segs = np.where(valid, candidates, 0)
    ax, ay, ex, ey, len2, half_all = (column.take(segs) for column in _segment_components(scene))
    rx = points[:, 0:1].astype(np.float32) - ax
    ry = points[:, 1:2].astype(np.float32) - ay
    tt = np.clip((rx * ex + ry * ey) / len2, 0.0, 1.0)
    dx, dy = rx - tt * ex, ry - tt * ey
    dist = np.sqrt(dx * dx + dy * dy)
    margin = np.where(valid, dist - half_all, np.inf)
    best = np.argmin(margin, axis=1) + np.arange(len(margin)) * margin.shape[1]  # flat (pixel, k)
    m = margin.ravel()[best]
    seg = segs.ravel()[best]
    sidewalk = scene.seg_sidewalk[seg]
    walk = (m >= 0) & (m < sidewalk)
    colour[walk] = _SIDEWALK
    colour[walk & (m < 0.18)] = _KERB
    road = np.flatnonzero(m < 0)
    if len(road):
        road_seg = seg[road]
        road_colour = np.where(
            scene.seg_pedestrian[road_seg][:, None], _PAVING, _WET if light.wet else _ASPHALT
        )
        best_road = best[road]
        d = dist.ravel()[best_road]
        t_road = tt.ravel()[best_road]
        length = np.sqrt(len2.ravel()[best_road])
        along = scene.seg_along0[road_seg] + t_road * length
        dash = (
            ~scene.seg_pedestrian[road_seg] & (scene.seg_half_width[road_seg] > 3.4) & ((along % 9.0) < 4.0)
        )
        footprint = (g[road] / focal).astype(np.float32)
        cover = np.clip((0.1 - d + footprint * 0.5) / np.maximum(footprint, 1e-3), 0.0, 1.0) * dash
        colour[road] = road_colour * (1.0 - cover[:, None]) + _DASH * cover[:, None]
    return colour * light.ground_light()


_VERGE_CITY = np.float32([134, 128, 120])
_VERGE_GRASS = np.float32([92, 122, 64])
_SIDEWALK = np.float32([150, 149, 145])
_KERB = np.float32([176, 176, 172])
_ASPHALT = np.float32([88, 90, 94])
_WET = np.float32([70, 72, 76])
_PAVING = np.float32([152, 140, 126])
_DASH = np.float32([218, 216, 206])


_COMPONENTS: dict[int, tuple[np.ndarray, ...]] = {}


def _segment_components(scene: Scene) -> tuple[np.ndarray, ...]:
    """Street segments as contiguous float32 columns: x, y, dx, dy, length², half width (cached)."""
    cached = _COMPONENTS.get(id(scene))
    if cached is None or len(cached[0]) != len(scene.seg_a):
        e = scene.seg_b - scene.seg_a
        columns = (scene.seg_a[:, 0], scene.seg_a[:, 1], e[:, 0], e[:, 1], np.maximum((e**2).sum(1), 1e-9),
                   scene.seg_half_width)  # fmt: skip
        cached = tuple(np.ascontiguousarray(c, dtype=np.float32) for c in columns)
        _COMPONENTS.clear()
        _COMPONENTS[id(scene)] = cached
    return cached


def _shade_sky(conditions: Conditions, assets: Assets, camera: Camera, rows, screen_x, horizon, focal):
    """Sky gradient from the horizon colour to the zenith colour, with clouds from a noise map."""
    elevation = np.degrees(np.arctan((horizon - rows) / focal))
    mix = np.clip(elevation / 55.0, 0.0, 1.0)[:, None] ** 0.7
    zenith = np.asarray(conditions.sky_zenith, dtype=np.float32)
    low = np.asarray(conditions.sky_horizon, dtype=np.float32)
    sky = low * (1.0 - mix) + zenith * mix
    clouds = assets.clouds[conditions.cloud_variant]
    azimuth = (camera.heading_deg + np.degrees(np.arctan(screen_x))) % 360.0
    # clouds flatten towards the horizon: more texture rows per degree near it
    rr = np.clip(
        ((np.clip(elevation, 0, 80) / 80.0) ** 0.6 * clouds.shape[0]).astype(np.int64), 0, clouds.shape[0] - 1
    )
    cc = np.clip((azimuth * 2.0).astype(np.int64), 0, clouds.shape[1] - 1)
    density = clouds[rr, cc][:, None]
    cover = conditions.cloud_cover
    if cover >= 0.99:  # overcast, rain, fog: a grey lid with soft texture
        sky = sky * (0.93 + 0.12 * density)
    elif cover > 0.02:
        amount = np.clip((density - (1.0 - cover)) * 3.0, 0.0, 1.0)
        cloud_rgb = np.float32([238, 238, 240]) * (0.78 + 0.3 * density)
        if conditions.weather == "dusk":
            cloud_rgb = cloud_rgb * np.float32([1.0, 0.78, 0.66])
        sky = sky * (1.0 - amount * 0.9) + cloud_rgb * amount * 0.9
    return sky * conditions.exposure


def _billboards(scene: Scene, local: LocalScene, occluders, assets: Assets, cam, forward, camera: Camera):
    """(xy, base height, (width, height) m, sprite, tint, id) for every billboard near the camera."""
    out: list = []
    for tree in local.tree_index:
        h = float(scene.tree_height[tree])
        sprite = assets.trees[int(scene.tree_variant[tree])]
        out.append((scene.tree_xy[tree], 0.0, (0.72 * h, h), sprite, None, ID_TREE + int(tree)))
    for k, occ in enumerate(occluders):
        xy = np.asarray(occ.xy)
        if occ.kind == "car":
            axis = np.radians(occ.axis_deg)
            view = xy - cam
            side = abs(np.sin(np.arctan2(view[0], view[1]) - axis))
            sprite = assets.car_side if side > 0.6 else assets.car_rear
            size = (1.8 + 2.6 * side, 1.5) if side > 0.6 else (1.8, 1.45)
            out.append((xy, 0.0, size, sprite, occ.colour, ID_CAR + k))
        else:
            sprite = assets.people[occ.variant % len(assets.people)]
            out.append((xy, 0.0, (0.55, 1.75), sprite, occ.colour, ID_PERSON + k))
    for plate in local.plate_index:
        xy = scene.plate_xy[plate]
        out.append((xy, 0.0, (0.09, POLE_HEIGHT_M), _POLE, None, ID_POLE + int(plate)))
        for blade, texture in enumerate(scene.plate_textures[plate]):
            width = BLADE_HEIGHT_M * texture.shape[1] / texture.shape[0]
            top = POLE_HEIGHT_M - 0.05 - blade * (BLADE_HEIGHT_M + 0.06)
            # the blade sticks out to one side of the pole, towards the camera's right
            right = np.array([forward[1], -forward[0]])
            centre = xy + right * (width / 2 + 0.05)
            sprite = _texture_sprite(texture)
            out.append((centre, top - BLADE_HEIGHT_M, (width, BLADE_HEIGHT_M), sprite, None,
                        ID_BLADE + int(plate) * 4 + blade))  # fmt: skip
    return out


_POLE = Sprite(
    np.full((4, 1, 3), 70.0, dtype=np.float32), np.ones((4, 1), dtype=bool), np.zeros((4, 1), dtype=bool)
)
_TEXTURE_SPRITES: dict[int, Sprite] = {}


def _texture_sprite(texture: np.ndarray) -> Sprite:
    key = id(texture)
    sprite = _TEXTURE_SPRITES.get(key)
    if sprite is None or sprite.rgb.shape[:2] != texture.shape[:2]:
        h, w = texture.shape[:2]
        sprite = Sprite(texture.astype(np.float32), np.ones((h, w), bool), np.zeros((h, w), bool))
        _TEXTURE_SPRITES[key] = sprite
    return sprite


def _draw_billboard(rgb, depth, ids, sprite: Sprite, tint, ident, xy, base, size, cam, forward, right,
                    focal, horizon, cam_height, light: _Lighting) -> None:  # fmt: skip
    rel = np.asarray(xy, dtype=np.float64) - cam
    z = float(rel @ forward)
    if z < 0.8:
        return
    height, width = depth.shape
    x = float(rel @ right)
    centre = width / 2 + focal * x / z
    half = max(focal * size[0] / 2 / z, 0.5)
    top = horizon - (base + size[1] - cam_height) * focal / z
    bottom = horizon - (base - cam_height) * focal / z
    c0, c1 = max(int(np.floor(centre - half + 0.5)), 0), min(int(np.floor(centre + half + 0.5)), width)
    r0, r1 = max(int(np.floor(top + 0.5)), 0), min(int(np.floor(bottom + 0.5)), height)
    if c0 >= c1 or r0 >= r1:
        return
    sh, sw = sprite.shape
    sx = np.clip(((np.arange(c0, c1) + 0.5 - (centre - half)) / (2 * half) * sw).astype(np.int64), 0, sw - 1)
    sy = np.clip(((np.arange(r0, r1) + 0.5 - top) / max(bottom - top, 1e-6) * sh).astype(np.int64), 0, sh - 1)
    alpha = sprite.alpha[np.ix_(sy, sx)]
    visible = alpha & (depth[r0:r1, c0:c1] > z)
    if not visible.any():
        return
    colours = sprite.rgb[np.ix_(sy, sx)]
    if tint is not None:
        tinted = sprite.tint[np.ix_(sy, sx)]
        colours = np.where(tinted[..., None], colours * np.asarray(tint, dtype=np.float32), colours)
    colours = colours * light.ground_light()
    colours = light.fog(colours.reshape(-1, 3), np.full(colours.shape[0] * colours.shape[1], z)).reshape(
        colours.shape
    )
    rgb[r0:r1, c0:c1][visible] = colours[visible]
    depth[r0:r1, c0:c1][visible] = z
    ids[r0:r1, c0:c1][visible] = ident
