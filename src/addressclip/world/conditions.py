"""Time of day, weather and the random occluders of one capture (shared by all its views).

A capture location is photographed once, so its views share the light, the weather and the parked
cars; only the camera jitter differs between views. Everything is drawn from the per-location RNG.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

WEATHERS: tuple[str, ...] = ("clear", "cloudy", "overcast", "rain", "fog", "dusk")
WEATHER_CHANCES: tuple[float, ...] = (0.34, 0.26, 0.18, 0.1, 0.05, 0.07)

_SKY = {  # zenith, horizon (sRGB)
    "clear": ((64, 116, 198), (176, 202, 228)),
    "cloudy": ((104, 136, 178), (198, 208, 220)),
    "overcast": ((160, 165, 174), (196, 199, 204)),
    "rain": ((112, 118, 126), (156, 160, 166)),
    "fog": ((196, 198, 202), (204, 206, 208)),
    "dusk": ((52, 64, 116), (236, 158, 108)),
}
_LIGHT = {  # ambient, direct sun strength, sun colour, fog distance (m), cloud cover
    "clear": (0.56, 0.62, (1.0, 0.97, 0.9), 700.0, 0.15),
    "cloudy": (0.7, 0.35, (1.0, 0.98, 0.94), 500.0, 0.55),
    "overcast": (0.8, 0.08, (1.0, 1.0, 1.0), 350.0, 1.0),
    "rain": (0.68, 0.04, (1.0, 1.0, 1.0), 160.0, 1.0),
    "fog": (0.78, 0.05, (1.0, 1.0, 1.0), 55.0, 1.0),
    "dusk": (0.42, 0.5, (1.0, 0.66, 0.42), 420.0, 0.35),
}

CAR_COLOURS: dict[str, tuple[int, int, int]] = {
    "white": (222, 224, 226), "black": (30, 32, 36), "silver": (170, 174, 178),
    "grey": (108, 112, 118), "red": (168, 34, 30), "blue": (40, 70, 140), "dark blue": (28, 36, 72),
    "green": (44, 92, 60), "yellow": (214, 170, 40), "brown": (96, 70, 50),
}  # fmt: skip
CLOTHES = ((30, 30, 36), (60, 70, 110), (140, 40, 40), (200, 200, 196), (90, 90, 80), (180, 140, 60))


@dataclass(frozen=True)
class Conditions:
    weather: str
    sun_azimuth_deg: float
    sun_elevation_deg: float
    ambient: float
    sun_strength: float
    sun_colour: tuple[float, float, float]
    sky_zenith: tuple[int, int, int]
    sky_horizon: tuple[int, int, int]
    fog_distance_m: float
    cloud_cover: float
    cloud_variant: int
    exposure: float

    @property
    def wet(self) -> bool:
        return self.weather == "rain"


def sample_conditions(rng: np.random.Generator) -> Conditions:
    weather = WEATHERS[int(rng.choice(len(WEATHERS), p=WEATHER_CHANCES))]
    ambient, sun, sun_colour, fog, cover = _LIGHT[weather]
    zenith, horizon = _SKY[weather]
    elevation = float(rng.uniform(4, 12) if weather == "dusk" else rng.uniform(15, 50))
    return Conditions(
        weather=weather,
        sun_azimuth_deg=float(rng.uniform(0, 360)),
        sun_elevation_deg=elevation,
        ambient=ambient,
        sun_strength=sun,
        sun_colour=sun_colour,
        sky_zenith=zenith,
        sky_horizon=horizon,
        fog_distance_m=fog * float(rng.uniform(0.8, 1.25)),
        cloud_cover=cover,
        cloud_variant=int(rng.integers(0, 8)),
        exposure=float(rng.uniform(0.9, 1.1)),
    )


@dataclass(frozen=True)
class Occluder:
    """A vehicle or a pedestrian standing at xy (local metres)."""

    kind: str  # 'car' | 'pedestrian'
    xy: tuple[float, float]
    axis_deg: float  # car orientation (bearing of its long axis)
    colour_name: str
    colour: tuple[int, int, int]
    variant: int


def sample_occluders(
    rng: np.random.Generator,
    centre: np.ndarray,
    bearing_deg: float,
    half_width_m: float,
    urban: bool,
    pedestrian_street: bool = False,
) -> list[Occluder]:
    """Parked and passing cars along the street near the capture point, pedestrians on the sidewalks.

    A pedestrian street gets no cars and more people, walking on the street itself.
    """
    along = np.array([np.sin(np.radians(bearing_deg)), np.cos(np.radians(bearing_deg))])
    across = np.array([along[1], -along[0]])
    out: list[Occluder] = []
    n_cars = 0 if pedestrian_street else int(rng.poisson(3.0 if urban else 1.2))
    names = list(CAR_COLOURS)
    for _ in range(n_cars):
        s = float(rng.uniform(-40, 40))
        if abs(s) < 4.0:
            s += 8.0 * np.sign(s or 1.0)
        side = 1.0 if rng.random() < 0.5 else -1.0
        parked = rng.random() < 0.7
        offset = (half_width_m - 1.1) if parked else max(half_width_m * 0.45, 1.4)
        p = centre + along * s + across * side * max(offset, 1.2)
        name = names[int(rng.integers(0, len(names)))]
        out.append(Occluder("car", (float(p[0]), float(p[1])), bearing_deg, name, CAR_COLOURS[name], 0))
    n_people = int(rng.poisson(5.0 if pedestrian_street else 2.5 if urban else 0.4))
    for _ in range(n_people):
        s = float(rng.uniform(-30, 30))
        if abs(s) < 2.0:
            s += 4.0 * np.sign(s or 1.0)
        side = 1.0 if rng.random() < 0.5 else -1.0
        offset = (
            rng.uniform(0.3, 0.95) * half_width_m
            if pedestrian_street
            else half_width_m + rng.uniform(0.6, 2.4)
        )
        p = centre + along * s + across * side * float(offset)
        colour = CLOTHES[int(rng.integers(0, len(CLOTHES)))]
        out.append(
            Occluder("pedestrian", (float(p[0]), float(p[1])), 0.0, "", colour, int(rng.integers(0, 4)))
        )
    return out
