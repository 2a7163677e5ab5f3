"""Sign textures (shop signboards, street-name blades) with real OSM names, drawn with Pillow.

The text on a sign is rendered once per sign into a small RGB texture; the raycaster samples it in
facade coordinates (shop signs) or as a camera-facing billboard (street-name blades), so the text
is as readable as it would be at that distance and angle — legible up close, a smear far away.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from addressclip.world.styles import stable_unit

TEXT_PX = 22  # font size of sign text in the texture
PAD_PX = 5

# Signboards that a real facade would carry; benches, parking and artworks get none.
NO_SIGN_KINDS = frozenset(
    {"parking", "parking_entrance", "bicycle_parking", "bicycle_rental", "bench", "waste_basket",
     "telephone", "post_box", "fountain", "toilets", "recycling", "vending_machine", "taxi", "clock",
     "drinking_water", "shelter", "atm", "artwork", "attraction", "viewpoint", "information",
     "picnic_site", "playground", "park", "pitch", "garden", "bus_station", "charging_station",
     "motorcycle_parking", "car_sharing", "parcel_locker", "grit_bin", "hunting_stand", "water_point",
     "place_of_worship", "grave_yard", "embassy", "townhall", "marketplace"}
)  # fmt: skip

# (background, text) colours by POI kind / category, so a café sign looks unlike a bank's.
_SIGN_PALETTES: tuple[tuple[tuple[int, int, int], tuple[int, int, int]], ...] = (
    ((30, 30, 34), (240, 236, 220)),
    ((120, 30, 30), (245, 235, 210)),
    ((20, 60, 110), (240, 240, 240)),
    ((235, 230, 215), (40, 40, 40)),
    ((30, 90, 60), (240, 240, 230)),
    ((200, 150, 40), (30, 30, 30)),
    ((90, 50, 30), (245, 225, 180)),
    ((210, 60, 40), (250, 250, 250)),
)
_KIND_PALETTE = {"cafe": 6, "restaurant": 1, "bank": 2, "pharmacy": 4, "pub": 0, "bar": 0, "hotel": 3}
STREET_BLADE_COLOURS = ((22, 62, 140), (245, 245, 245))  # Finnish blue blade, white letters


@lru_cache(maxsize=8)
def _font(size: int, bold: bool = True):
    """DejaVu Sans (shipped inside matplotlib, a dependency), else Pillow's default font.

    Pillow's bundled default (Aileron) has no glyphs beyond ASCII, so 'Mäyränkatu' would be drawn
    with boxes; DejaVu covers the Latin, Nordic and Cyrillic letters of real street names.
    """
    from PIL import ImageFont

    try:
        import matplotlib

        name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
        return ImageFont.truetype(str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / name), size)
    except (ImportError, OSError):
        return ImageFont.load_default(size=size)


def label_font(size: int):
    """The font for picture labels (regular weight)."""
    return _font(size, bold=False)


def text_texture(text: str, background, foreground, border=None) -> np.ndarray:
    """An RGB uint8 texture of `text` centred on a plain board."""
    from PIL import Image, ImageDraw

    font = _font(TEXT_PX)
    left, _top, right, _bottom = font.getbbox(text)
    width = max(right - left, TEXT_PX) + 2 * PAD_PX + 4
    height = TEXT_PX + 2 * PAD_PX
    image = Image.new("RGB", (width, height), tuple(background))
    draw = ImageDraw.Draw(image)
    if border is not None:
        draw.rectangle((0, 0, width - 1, height - 1), outline=tuple(border), width=2)
    draw.text(
        ((width - (right - left)) / 2 - left, (height - TEXT_PX) / 2 - 1), text, font=font, fill=foreground
    )
    return np.asarray(image, dtype=np.uint8).copy()


def shop_sign_texture(name: str, kind: str) -> np.ndarray:
    index = _KIND_PALETTE.get(kind)
    if index is None:
        index = int(stable_unit("sign", name, kind) * len(_SIGN_PALETTES))
    background, foreground = _SIGN_PALETTES[index]
    return text_texture(name, background, foreground)


MAX_BLADE_ASPECT = 5.5  # long names are set in narrower letters, as on real blades


def street_blade_texture(name: str) -> np.ndarray:
    background, foreground = STREET_BLADE_COLOURS
    texture = text_texture(name, background, foreground, border=foreground)
    height, width = texture.shape[:2]
    if width > MAX_BLADE_ASPECT * height:
        from PIL import Image

        squeezed = Image.fromarray(texture).resize(
            (int(MAX_BLADE_ASPECT * height), height), Image.Resampling.LANCZOS
        )
        texture = np.asarray(squeezed, dtype=np.uint8).copy()
    return texture
