"""From a capture point to finished JPEG views: camera jitter, rendering, camera noise, caption.

Each view's randomness comes from its own generator seeded by (world seed, capture index, view),
and each capture's light/weather/occluders from (world seed, capture index), so an image does not
depend on which process rendered it or in which order: same seed, byte-identical JPEGs.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from addressclip.world.assets import Assets
from addressclip.world.captions import scene_caption
from addressclip.world.conditions import Conditions, sample_conditions, sample_occluders
from addressclip.world.content import ViewContent, describe_frame
from addressclip.world.raster import Camera, LocalScene, local_scene, render_frame
from addressclip.world.scene import Scene

BASE_PITCH_DEG = 7.0
PITCH_JITTER_DEG = 3.0
YAW_JITTER_DEG = 7.0
THUMB_SIZE = 16
_CAPTURE_STREAM = 1_000_003  # keeps per-capture draws apart from per-view draws


@dataclass
class RenderedView:
    view: int
    camera: Camera
    jpeg: bytes
    caption: str
    content: ViewContent
    thumbnail: np.ndarray  # (16, 16) float32 grey, for the raw-pixel reference


@dataclass
class CaptureSetup:
    """What all views of one capture share."""

    xy: np.ndarray
    conditions: Conditions
    occluders: list
    local: LocalScene
    highway: str
    half_width: float
    urban: bool


def setup_capture(scene: Scene, seed: int, index: int, xy: np.ndarray, bearing: float) -> CaptureSetup:
    rng = np.random.default_rng([seed, index, _CAPTURE_STREAM])
    seg = _nearest_segment(scene, xy)
    half_width = float(scene.seg_half_width[seg]) if seg >= 0 else 3.0
    highway = scene.seg_highway[seg] if seg >= 0 else "residential"
    urban = bool(scene.seg_urban[seg]) if seg >= 0 else False
    # a car-mounted camera drives in a lane, not exactly on the centreline
    lateral = float(rng.uniform(-0.35, 0.35)) * half_width
    across = np.array([np.cos(np.radians(bearing)), -np.sin(np.radians(bearing))])
    position = np.asarray(xy, dtype=float) + across * lateral
    conditions = sample_conditions(rng)
    occluders = sample_occluders(rng, position, bearing, half_width, urban, highway == "pedestrian")
    return CaptureSetup(
        position, conditions, occluders, local_scene(scene, position), highway, half_width, urban
    )


def _nearest_segment(scene: Scene, xy: np.ndarray) -> int:
    if len(scene.seg_a) == 0:
        return -1
    e = scene.seg_b - scene.seg_a
    t = np.clip(((xy - scene.seg_a) * e).sum(1) / np.maximum((e**2).sum(1), 1e-12), 0, 1)
    return int(np.argmin(np.hypot(*(scene.seg_a + e * t[:, None] - xy).T)))


def view_camera(
    setup: CaptureSetup, bearing: float, view: int, views: int, rng: np.random.Generator
) -> Camera:
    heading = (bearing + view * 360.0 / views + rng.uniform(-YAW_JITTER_DEG, YAW_JITTER_DEG)) % 360.0
    pitch = BASE_PITCH_DEG + rng.uniform(-PITCH_JITTER_DEG, PITCH_JITTER_DEG)
    return Camera(float(setup.xy[0]), float(setup.xy[1]), float(heading), float(pitch))


def render_capture(
    scene: Scene,
    assets: Assets,
    *,
    seed: int,
    index: int,
    xy: np.ndarray,
    bearing: float,
    views: int,
    width: int,
    height: int,
    jpeg_quality: int,
) -> list[RenderedView]:
    """Render all views of capture `index` (deterministic in seed, index and view)."""
    setup = setup_capture(scene, seed, index, xy, bearing)
    out: list[RenderedView] = []
    for view in range(views):
        rng = np.random.default_rng([seed, index, view])
        camera = view_camera(setup, bearing, view, views, rng)
        frame = render_frame(
            scene, setup.local, camera, setup.conditions, setup.occluders, assets, width, height
        )
        content = describe_frame(
            frame, scene, camera, setup.conditions.weather, setup.highway, setup.half_width, setup.urban
        )
        pixels = finish_pixels(frame.rgb, setup.conditions, rng)
        caption = scene_caption(content, rng)
        out.append(
            RenderedView(view, camera, encode_jpeg(pixels, jpeg_quality), caption, content, thumbnail(pixels))
        )
    return out


def finish_pixels(rgb: np.ndarray, conditions: Conditions, rng: np.random.Generator) -> np.ndarray:
    """Camera effects: rain streaks, vignetting, sensor noise; then 8-bit."""
    height, width = rgb.shape[:2]
    image = rgb
    if conditions.weather == "rain":
        image = image.copy()
        count = int(width * height / 180)
        xs = rng.integers(0, width, count)
        ys = rng.integers(0, height, count)
        length = max(2, height // 24)
        for step in range(length):
            yy = np.clip(ys + step, 0, height - 1)
            xx = np.clip(xs + step // 3, 0, width - 1)
            image[yy, xx] = image[yy, xx] * 0.6 + 200.0 * 0.4
    image = image * _vignette(height, width)
    grain = _noise_slice(rng, height * width).reshape(height, width, 1) * 2.5
    image = image + grain + _noise_slice(rng, height * width * 3).reshape(height, width, 3) * 1.2
    return np.clip(image + 0.5, 0, 255).astype(np.uint8)


NOISE_BANK_SIZE = 1 << 21


@lru_cache(maxsize=1)
def _noise_bank() -> np.ndarray:
    """Two million standard normals (fixed seed), sliced at random offsets for sensor noise."""
    return np.random.default_rng(20240917).standard_normal(NOISE_BANK_SIZE, dtype=np.float32)


def _noise_slice(rng: np.random.Generator, count: int) -> np.ndarray:
    bank = _noise_bank()
    if count >= len(bank):
        return rng.standard_normal(count, dtype=np.float32)
    start = int(rng.integers(0, len(bank) - count))
    return bank[start : start + count]


@lru_cache(maxsize=8)
def _vignette(height: int, width: int) -> np.ndarray:
    yy, xx = np.ogrid[0:height, 0:width]
    radius = ((yy - height / 2) / height) ** 2 + ((xx - width / 2) / width) ** 2
    return (1.0 - 0.35 * radius).astype(np.float32)[..., None]


def encode_jpeg(pixels: np.ndarray, quality: int) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buffer, format="JPEG", quality=quality, optimize=False)
    return buffer.getvalue()


def thumbnail(pixels: np.ndarray, size: int = THUMB_SIZE) -> np.ndarray:
    """Box-filtered grey thumbnail (the raw-pixel nearest-neighbour reference uses these)."""
    from PIL import Image

    grey = Image.fromarray(pixels, "RGB").convert("L").resize((size, size), Image.Resampling.BOX)
    return np.asarray(grey, dtype=np.float32)
