"""Facade styles: what a building looks like, from its OSM tags and its district.

Real districts differ in a consistent way (an Art Nouveau quarter of ochre stone houses, a brick
quarter, a suburb of red wooden houses), and that consistency is what makes address localisation
learnable from pixels. So each district draws a *character* (a family of materials, palettes,
window rhythms and heights) and a palette subset from a stable hash of its name, and every building
in it takes its style from that character, unless its own tags (building type, `building:colour`,
`building:material`, `building:levels`, `height`) say otherwise. Nothing here depends on the random
seed: the city looks the same in every render; only weather, occluders and camera jitter vary.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

MATERIALS: tuple[str, ...] = ("plaster", "brick", "wood", "concrete", "glass", "metal", "stone")
M_PLASTER, M_BRICK, M_WOOD, M_CONCRETE, M_GLASS, M_METAL, M_STONE = range(len(MATERIALS))

# Defaults when a building has neither `height` nor `building:levels` (documented in the README).
DEFAULT_FLOOR_M = 3.3
SKIPPED_BUILDING_TYPES = frozenset({"roof", "carport", "construction", "ruins", "bridge", "no"})


def stable_unit(*keys: object) -> float:
    """A number in [0, 1) from the keys, the same in every process (unlike `hash`)."""
    digest = hashlib.blake2b("\x1f".join(map(str, keys)).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little") / 2.0**64


def stable_choice(options, *keys: object):
    return options[int(stable_unit(*keys) * len(options))]


Colour = tuple[int, int, int]

# Named colours, used both to paint and to describe (captions name the nearest one).
NAMED_COLOURS: dict[str, Colour] = {
    "white": (232, 230, 222),
    "cream": (230, 218, 180),
    "pale yellow": (228, 208, 140),
    "yellow": (222, 186, 72),
    "ochre": (196, 146, 74),
    "sand": (206, 184, 146),
    "beige": (196, 178, 150),
    "salmon": (214, 150, 120),
    "pale pink": (222, 184, 174),
    "terracotta": (178, 96, 64),
    "red": (160, 50, 40),
    "falu red": (140, 46, 36),
    "brick-red": (150, 72, 52),
    "dark brown": (90, 64, 48),
    "brown": (128, 90, 60),
    "grey-green": (146, 158, 136),
    "pale green": (176, 200, 160),
    "green": (82, 120, 76),
    "pale blue": (170, 190, 208),
    "blue": (70, 100, 150),
    "blue-grey": (110, 124, 140),
    "light grey": (190, 190, 186),
    "grey": (150, 150, 148),
    "dark grey": (84, 86, 88),
    "black": (40, 40, 42),
}


def nearest_colour_name(rgb) -> str:
    rgb = np.asarray(rgb, dtype=float)
    names = list(NAMED_COLOURS)
    table = np.asarray([NAMED_COLOURS[n] for n in names], dtype=float)
    return names[int(np.argmin(((table - rgb) ** 2).sum(axis=1)))]


@dataclass(frozen=True)
class Character:
    """A district character: how its ordinary buildings look."""

    name: str
    materials: tuple[int, ...]
    walls: tuple[str, ...]  # NAMED_COLOURS keys
    trims: tuple[str, ...]
    roofs: tuple[str, ...]
    bay_m: tuple[float, float]
    floor_m: tuple[float, float]
    window_w: tuple[float, float]  # fraction of the bay
    window_h: tuple[float, float]  # fraction of the floor
    levels: tuple[int, int]
    shop_chance: float
    pitched_chance: float


CHARACTERS: dict[str, Character] = {
    c.name: c
    for c in (
        Character("art nouveau", (M_PLASTER, M_STONE), ("ochre", "sand", "grey-green", "pale pink", "grey"),
                  ("light grey", "cream"), ("dark grey",), (2.6, 3.1), (3.4, 3.8), (0.4, 0.5),
                  (0.45, 0.55), (5, 7), 0.8, 0.0),
        Character("empire", (M_PLASTER,), ("pale yellow", "white", "pale blue", "cream", "yellow"),
                  ("white",), ("dark grey",), (3.0, 3.6), (3.8, 4.2), (0.35, 0.45), (0.5, 0.6), (3, 5),
                  0.5, 0.2),
        Character("brick", (M_BRICK,), ("brick-red", "terracotta", "dark brown", "red"), ("light grey",),
                  ("dark grey",), (2.6, 3.0), (3.2, 3.5), (0.45, 0.55), (0.45, 0.55), (4, 6), 0.6, 0.0),
        Character("modernist", (M_CONCRETE, M_GLASS), ("light grey", "white", "blue-grey", "grey"),
                  ("dark grey",), ("dark grey",), (1.6, 2.2), (3.3, 3.6), (0.7, 0.85), (0.4, 0.5),
                  (6, 9), 0.7, 0.0),
        Character("functionalist", (M_PLASTER, M_CONCRETE), ("white", "pale yellow", "light grey", "salmon"),
                  ("dark grey",), ("grey",), (2.2, 2.8), (3.0, 3.3), (0.6, 0.75), (0.4, 0.5), (5, 7), 0.5,
                  0.0),
        Character("wooden houses", (M_WOOD,), ("falu red", "pale yellow", "white", "pale green", "pale blue",
                  "yellow"), ("white",), ("dark grey", "terracotta", "black"), (3.2, 4.0), (3.0, 3.2),
                  (0.3, 0.4), (0.4, 0.5), (1, 2), 0.02, 0.95),
        Character("brick houses", (M_BRICK, M_PLASTER), ("brick-red", "beige", "brown", "white", "salmon"),
                  ("white", "dark brown"), ("dark grey", "terracotta", "brown"), (3.0, 3.8), (2.9, 3.1),
                  (0.35, 0.45), (0.4, 0.5), (1, 2), 0.02, 0.85),
        Character("pastel houses", (M_WOOD, M_PLASTER),
                  ("pale blue", "pale green", "cream", "white", "pale pink"), ("white",),
                  ("dark grey", "blue-grey"), (3.0, 3.8), (2.9, 3.1), (0.3, 0.4), (0.4, 0.5), (1, 2),
                  0.02, 0.9),
        Character("housing blocks", (M_CONCRETE, M_PLASTER), ("light grey", "beige", "white", "pale yellow",
                  "salmon"), ("grey",), ("dark grey",), (2.4, 3.0), (2.9, 3.1), (0.45, 0.55), (0.4, 0.5),
                  (3, 4), 0.05, 0.1),
    )
}  # fmt: skip
URBAN_CHARACTERS = ("art nouveau", "empire", "brick", "modernist", "functionalist")
SUBURBAN_CHARACTERS = ("wooden houses", "brick houses", "pastel houses")
LARGE_FOOTPRINT_M2 = 450.0  # a suburban building this large is an apartment block, not a house


@dataclass(frozen=True)
class District:
    """One neighbourhood's look: a character and the palette subset its buildings share."""

    name: str
    character: Character
    walls: tuple[str, ...]
    bay_m: float
    floor_m: float
    window_w: float
    window_h: float

    @classmethod
    def for_name(cls, name: str, urban: bool, character_name: str | None = None) -> District:
        options = URBAN_CHARACTERS if urban else SUBURBAN_CHARACTERS
        character = CHARACTERS[character_name or stable_choice(options, "character", name)]
        order = sorted(character.walls, key=lambda wall: stable_unit("wall", name, wall))
        walls = tuple(order[: max(2, len(order) // 2 + 1)])

        def pick(bounds: tuple[float, float], key: str) -> float:
            return bounds[0] + (bounds[1] - bounds[0]) * stable_unit(key, name)

        return cls(
            name=name,
            character=character,
            walls=walls,
            bay_m=pick(character.bay_m, "bay"),
            floor_m=pick(character.floor_m, "floor"),
            window_w=pick(character.window_w, "ww"),
            window_h=pick(character.window_h, "wh"),
        )


def assign_characters(names: list[str], urban: bool) -> dict[str, str]:
    """A character per district, all different while there are characters left (stable in the names).

    Neighbouring districts of one city should not look alike by accident of a hash collision, so
    the districts (sorted) take the characters in a rotation whose start depends on the names.
    """
    options = list(SUBURBAN_CHARACTERS if urban is False else URBAN_CHARACTERS)
    options = list(dict.fromkeys(options))  # unique, in order
    ordered = sorted(set(names), key=lambda n: stable_unit("district order", n))
    start = int(stable_unit("rotation", *sorted(set(names))) * len(options)) if names else 0
    return {name: options[(start + i) % len(options)] for i, name in enumerate(ordered)}


@dataclass(frozen=True)
class FacadeStyle:
    """How one facade piece is painted. Colours are sRGB 0-255."""

    wall: Colour
    wall_name: str
    trim: Colour
    window: Colour
    roof: Colour
    material: int
    bay_m: float
    floor_m: float
    window_w: float
    window_h: float
    shop_band: bool
    pitched: bool
    kind: str  # short description for captions: 'house', 'apartment building', 'church', ...

    def as_row(self) -> list[float]:
        """The numbers the raycaster needs, in STYLE_COLUMNS order."""
        return [
            *self.wall, *self.trim, *self.window, *self.roof, self.material, self.bay_m, self.floor_m,
            self.window_w, self.window_h, float(self.shop_band), float(self.pitched),
        ]  # fmt: skip


STYLE_COLUMNS = (
    "wall_r", "wall_g", "wall_b", "trim_r", "trim_g", "trim_b", "win_r", "win_g", "win_b",
    "roof_r", "roof_g", "roof_b", "material", "bay_m", "floor_m", "window_w", "window_h",
    "shop_band", "pitched",
)  # fmt: skip


def parse_height_m(tags: dict[str, str]) -> float | None:
    """`height` in metres ('12', '12.5 m', '40 ft'), else `building:levels` x floor height, else None."""
    text = tags.get("height", "").strip().lower()
    if text:
        factor = 0.3048 if text.endswith(("ft", "'")) else 1.0
        number = text.rstrip("mft' ").replace(",", ".")
        try:
            value = float(number) * factor
            if 2.0 <= value <= 400.0:
                return value
        except ValueError:
            pass
    levels = parse_levels(tags)
    if levels is not None:
        return levels * DEFAULT_FLOOR_M + 0.8
    return None


def parse_levels(tags: dict[str, str]) -> float | None:
    text = tags.get("building:levels", "").strip().replace(",", ".")
    try:
        value = float(text)
    except ValueError:
        return None
    return value if 1 <= value <= 120 else None


def tag_colour(text: str | None) -> Colour | None:
    """An OSM colour value ('#ffcc00', 'red', 'gray') as RGB, or None when unknown."""
    if not text:
        return None
    from PIL import ImageColor

    try:
        rgb = ImageColor.getrgb(text.strip().lower().replace("grey", "gray"))
    except ValueError:
        return None
    # soften pure tag colours towards plausible paint
    return tuple(int(0.8 * c + 0.2 * 180) for c in rgb[:3])  # type: ignore[return-value]


_TAG_MATERIALS = {
    "brick": M_BRICK, "wood": M_WOOD, "timber_framing": M_WOOD, "concrete": M_CONCRETE,
    "glass": M_GLASS, "metal": M_METAL, "steel": M_METAL, "stone": M_STONE, "plaster": M_PLASTER,
    "sandstone": M_STONE, "granite": M_STONE, "limestone": M_STONE,
}  # fmt: skip

CHURCH_TYPES = frozenset({"church", "cathedral", "chapel", "mosque", "temple", "synagogue"})
SMALL_TYPES = frozenset({"garage", "garages", "shed", "hut", "kiosk", "service", "cabin", "toilets"})
INDUSTRIAL_TYPES = frozenset({"industrial", "warehouse", "manufacture", "hangar", "storage_tank"})
PUBLIC_TYPES = frozenset(
    {"school", "kindergarten", "public", "university", "civic", "government", "hospital", "college",
     "train_station", "transportation", "fire_station"}
)  # fmt: skip
COMMERCIAL_TYPES = frozenset({"retail", "commercial", "supermarket", "office", "hotel"})


def facade_style(
    tags: dict[str, str],
    district: District,
    urban: bool,
    piece_key: object,
    has_shop: bool,
    footprint_m2: float = 100.0,
) -> tuple[FacadeStyle, float]:
    """The style of one facade piece and its height in metres."""
    kind = tags.get("building", "yes")
    character = district.character
    key = ("piece", district.name, piece_key)
    u = [stable_unit(*key, i) for i in range(8)]
    wall_name = district.walls[int(u[0] * len(district.walls))]
    material = character.materials[int(u[1] * len(character.materials))]
    trim_name = character.trims[int(u[2] * len(character.trims))]
    roof_name = character.roofs[int(u[3] * len(character.roofs))]
    bay, floor, window_w, window_h = district.bay_m, district.floor_m, district.window_w, district.window_h
    low, high = character.levels
    levels = low + int(u[4] * (high - low + 1))
    pitched = u[5] < character.pitched_chance
    shop = has_shop or (urban and u[6] < character.shop_chance)
    description = "house" if not urban and levels <= 2 else "apartment building" if urban else "building"

    if kind in CHURCH_TYPES:
        material = M_STONE if u[7] < 0.5 else M_BRICK
        wall_name = "white" if material == M_STONE else "brick-red"
        levels, bay, window_w, window_h, pitched, shop = 5, 4.5, 0.25, 0.7, True, False
        description = "church"
    elif kind in SMALL_TYPES:
        levels, window_w, pitched, shop = 1, 0.2, kind != "kiosk", kind == "kiosk"
        description = "kiosk" if kind == "kiosk" else "shed"
    elif kind in INDUSTRIAL_TYPES:
        material, wall_name = M_METAL, ("grey", "blue-grey", "white", "pale blue")[int(u[7] * 4)]
        levels, bay, window_w, window_h, pitched, shop = 2, 6.0, 0.15, 0.25, False, False
        description = "industrial hall"
    elif kind in PUBLIC_TYPES:
        material = M_BRICK if u[7] < 0.6 else M_PLASTER
        wall_name = "brick-red" if material == M_BRICK else "cream"
        levels = max(2, min(levels, 5)) if urban else 2
        description = "public building"
    elif kind in COMMERCIAL_TYPES:
        material = M_GLASS if u[7] < 0.5 else M_CONCRETE
        wall_name = "blue-grey" if material == M_GLASS else wall_name
        bay, window_w, shop = 1.8, 0.8, True
        levels = max(levels, 2)
        description = "office building" if kind == "office" else "commercial building"
    elif not urban and (
        kind == "apartments" or (kind in ("yes", "residential") and footprint_m2 > LARGE_FOOTPRINT_M2)
    ):
        housing = CHARACTERS["housing blocks"]
        material, levels, pitched = housing.materials[int(u[1] * 2)], 3 + int(u[4] * 2), False
        wall_name = housing.walls[int(u[0] * len(housing.walls))]
        description = "apartment block"

    tag_material = _TAG_MATERIALS.get(tags.get("building:material", "").strip().lower())
    if tag_material is not None:
        material = tag_material
    wall = NAMED_COLOURS[wall_name]
    tagged = tag_colour(tags.get("building:colour"))
    if tagged is not None:
        wall, wall_name = tagged, nearest_colour_name(tagged)
    roof = tag_colour(tags.get("roof:colour")) or NAMED_COLOURS[roof_name]
    if tags.get("roof:shape") in ("gabled", "hipped", "gambrel", "pyramidal", "mansard"):
        pitched = True
    elif tags.get("roof:shape") == "flat":
        pitched = False

    height = parse_height_m(tags)
    if height is None:
        height = levels * floor + (0.6 if not pitched else 0.2)
        if kind in CHURCH_TYPES:
            height = 18.0
        elif kind in SMALL_TYPES:
            height = 3.0 if kind == "kiosk" else 2.6
        elif kind in INDUSTRIAL_TYPES:
            height = 8.0
    elif (levels_tag := parse_levels(tags)) is not None and "height" in tags:
        floor = max(2.6, min(4.5, height / max(levels_tag, 1.0)))
    if material == M_GLASS:
        window_w, window_h = 0.9, 0.75
    trim = NAMED_COLOURS[trim_name]
    window = (44, 54, 66) if material != M_GLASS else (70, 96, 120)
    style = FacadeStyle(
        wall=wall,
        wall_name=wall_name,
        trim=trim,
        window=window,
        roof=roof,
        material=material,
        bay_m=bay,
        floor_m=floor,
        window_w=window_w,
        window_h=window_h,
        shop_band=bool(shop and height >= 5.5),
        pitched=bool(pitched),
        kind=description,
    )
    return style, float(height)
