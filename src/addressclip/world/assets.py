"""Procedural sprites (trees, cars, pedestrians) and cloud maps, made once per process.

They come from a fixed seed, so every worker holds identical assets and renders are byte-identical
whatever the number of processes.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

ASSET_SEED = 20240917


@dataclass(frozen=True)
class Sprite:
    """A billboard image: colour (h, w, 3) float32 0-255, opacity (h, w) bool, tint mask (h, w) bool."""

    rgb: np.ndarray
    alpha: np.ndarray
    tint: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        return self.alpha.shape  # type: ignore[return-value]


@dataclass(frozen=True)
class Assets:
    trees: tuple[Sprite, ...]
    car_side: Sprite
    car_rear: Sprite
    people: tuple[Sprite, ...]
    clouds: np.ndarray  # (variants, elevation rows, 720 half-degree azimuth columns) in [0, 1]


def _smooth_noise(
    rng: np.random.Generator, shape: tuple[int, int], scales: tuple[int, ...], stretch_x: float = 1.0
) -> np.ndarray:
    """Fractal value noise: smoothly interpolated random grids, coarse ones weighted most; in [0, 1].

    `stretch_x` widens features horizontally (clouds are flat, seen from below).
    """
    out = np.zeros(shape)
    for scale in scales:
        coarse = rng.random((shape[0] // scale + 2, int(shape[1] // (scale * stretch_x)) + 2))
        ys = np.arange(shape[0]) / scale
        xs = np.arange(shape[1]) / (scale * stretch_x)
        y0, x0 = ys.astype(int), xs.astype(int)
        fy, fx = (ys - y0)[:, None], (xs - x0)[None, :]
        fy, fx = fy * fy * (3 - 2 * fy), fx * fx * (3 - 2 * fx)  # smoothstep: no creases at cell edges
        grid = (
            coarse[np.ix_(y0, x0)] * (1 - fy) * (1 - fx)
            + coarse[np.ix_(y0 + 1, x0)] * fy * (1 - fx)
            + coarse[np.ix_(y0, x0 + 1)] * (1 - fy) * fx
            + coarse[np.ix_(y0 + 1, x0 + 1)] * fy * fx
        )
        out += grid * scale
    out -= out.min()
    return out / max(out.max(), 1e-9)


def _tree(rng: np.random.Generator, conifer: bool) -> Sprite:
    h, w = 64, 44
    yy, xx = np.mgrid[0:h, 0:w].astype(float)
    leaves = _smooth_noise(rng, (h, w), (3, 6))
    if conifer:
        crown = (yy < 56) & (np.abs(xx - w / 2) < (yy - 2) * 0.38 + 1)
    else:
        crown = np.zeros((h, w), bool)
        for _ in range(7):
            cy, cx = rng.uniform(12, 34), rng.uniform(12, w - 12)
            r = rng.uniform(8, 13)
            crown |= (yy - cy) ** 2 + (xx - cx) ** 2 < r**2
        crown &= leaves > 0.18
    trunk = (np.abs(xx - w / 2) < 2.2) & (yy > 30)
    base = np.array([52, 92, 40]) if not conifer else np.array([34, 70, 40])
    base = base * rng.uniform(0.85, 1.15, 3)
    shade = 0.6 + 0.7 * leaves[..., None] - 0.25 * (yy / h)[..., None]
    rgb = np.where(crown[..., None], base * shade, np.array([78, 60, 44]))
    return Sprite(rgb.astype(np.float32), crown | trunk, np.zeros((h, w), bool))


def _car_side() -> Sprite:
    h, w = 24, 64
    yy, xx = np.mgrid[0:h, 0:w].astype(float)
    body = (yy > 9) & (yy < 20) & (xx > 1) & (xx < w - 2)
    cabin = (yy > 2) & (yy <= 10) & (xx > 14 + (10 - yy) * 0.9) & (xx < 46 - (10 - yy) * 0.6)
    window = (
        cabin & (yy > 3.5) & (xx > 17 + (10 - yy) * 0.9) & (xx < 44 - (10 - yy) * 0.6) & (np.abs(xx - 31) > 1)
    )
    wheels = ((yy - 19.5) ** 2 + (xx - 13) ** 2 < 20) | ((yy - 19.5) ** 2 + (xx - 51) ** 2 < 20)
    rgb = np.zeros((h, w, 3))
    rgb[window] = (40, 48, 58)
    rgb[wheels] = (22, 22, 24)
    tint = (body | cabin) & ~window & ~wheels
    rgb[tint] = 1.0
    return Sprite(rgb.astype(np.float32), body | cabin | wheels, tint)


def _car_rear() -> Sprite:
    h, w = 22, 28
    yy, xx = np.mgrid[0:h, 0:w].astype(float)
    body = (yy > 9) & (yy < 19) & (xx > 0) & (xx < w - 1)
    cabin = (yy > 2) & (yy <= 10) & (xx > 3 + (10 - yy) * 0.3) & (xx < w - 4 - (10 - yy) * 0.3)
    window = cabin & (yy > 3.5) & (xx > 5) & (xx < w - 6)
    lights = body & (yy > 11) & (yy < 14) & ((xx < 4) | (xx > w - 5))
    wheels = (yy >= 18) & ((np.abs(xx - 4) < 3) | (np.abs(xx - (w - 5)) < 3))
    rgb = np.zeros((h, w, 3))
    rgb[window] = (40, 48, 58)
    rgb[lights] = (190, 30, 30)
    rgb[wheels] = (22, 22, 24)
    tint = (body | cabin) & ~window & ~lights & ~wheels
    rgb[tint] = 1.0
    return Sprite(rgb.astype(np.float32), body | cabin | wheels, tint)


def _person(rng: np.random.Generator) -> Sprite:
    h, w = 36, 12
    yy, xx = np.mgrid[0:h, 0:w].astype(float)
    head = (yy - 3.5) ** 2 + (xx - 6) ** 2 < 9
    torso = (yy > 6) & (yy < 20) & (np.abs(xx - 6) < 4.2 - 0.05 * (yy - 6))
    legs = (yy >= 20) & (np.abs(np.abs(xx - 6) - 1.8 - rng.uniform(0, 0.8)) < 1.3)
    rgb = np.zeros((h, w, 3))
    rgb[head] = np.array([214, 178, 150]) * rng.uniform(0.6, 1.05)
    rgb[legs] = np.array([40, 44, 60]) * rng.uniform(0.7, 1.5)
    rgb[torso] = 1.0
    return Sprite(rgb.astype(np.float32), head | torso | legs, torso)


@lru_cache(maxsize=1)
def load_assets() -> Assets:
    rng = np.random.default_rng(ASSET_SEED)
    trees = tuple(_tree(rng, conifer=i >= 6) for i in range(8))
    people = tuple(_person(rng) for _ in range(4))
    clouds = np.stack(
        [_smooth_noise(rng, (64, 720), (4, 8, 16, 32), stretch_x=5.0) for _ in range(8)]
    ).astype(np.float32)
    return Assets(trees, _car_side(), _car_rear(), people, clouds)
