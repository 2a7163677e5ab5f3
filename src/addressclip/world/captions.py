"""Scene captions (10-30 words) from what a view actually shows, and the hook for a real captioner.

The paper trains with BLIP captions generated with the prompt "A street view of". On the rendered
world the caption is written from the frame's content (`ViewContent`: visible building colours and
heights, legible sign texts, trees left/right, vehicles, weather) — never from the address label.

On real data the same `caption` field is filled by a *captioner*: any callable
`captioner(images: list[PIL.Image.Image]) -> list[str]`. Choose one by name:

* `scene` — the built-in content captioner (rendered worlds only: it needs the render's content);
* `none` — leave captions empty;
* `blip:/path/to/local/blip-model` — BLIP via `transformers`, loaded from a local folder
  (never downloaded), prompted with "A street view of";
* `module.path:factory` — your own: `factory()` must return such a callable (entry-point style).

`fill_manifest_captions(manifest_path, captioner)` captions every image of an existing manifest.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from addressclip.errors import ConfigError, InputError
from addressclip.world.content import ViewContent

CAPTION_PROMPT = "A street view of"
MIN_WORDS, MAX_WORDS = 10, 30


class Captioner(Protocol):
    def __call__(self, images: Sequence[object]) -> list[str]: ...


# --- the built-in content captioner ------------------------------------------------------------------


def _height_word(height_m: float) -> str:
    if height_m < 7.5:
        return "low"
    if height_m < 15.0:
        return "mid-rise"
    return "tall"


def _plural(kind: str) -> str:
    return kind[:-1] + "ies" if kind.endswith("y") else kind + "es" if kind.endswith("ch") else kind + "s"


def _street_phrase(content: ViewContent) -> str:
    if content.highway == "pedestrian":
        return "a pedestrian street"
    if content.road_half_width_m <= 3.0:
        return "a narrow street"
    if content.road_half_width_m >= 6.5:
        return "a wide street"
    return "a street"


def _buildings_phrase(content: ViewContent, rng: np.random.Generator) -> str | None:
    visible = [b for b in content.buildings if b.share >= 0.02]
    if not visible:
        return None
    main = visible[0]
    colours = [main.colour]
    for other in visible[1:3]:
        if other.colour not in colours and other.share >= 0.05:
            colours.append(other.colour)
    colour_text = " and ".join(colours[:2])
    # 'plaster' is the unremarkable default, and 'brick-red brick' says the material twice
    material = "" if main.material == "plaster" or main.material in colour_text else f"{main.material} "
    kind = main.kind if len(visible) == 1 else _plural(main.kind)
    article = "a " if len(visible) == 1 else ""
    return f"{article}{_height_word(main.height_m)} {colour_text} {material}{kind}".replace("  ", " ")


def _sides(left: float, right: float, threshold: float) -> str | None:
    if left >= threshold and right >= threshold:
        return "on both sides"
    if left >= threshold:
        return "on the left"
    if right >= threshold:
        return "on the right"
    return None


_WEATHER_PHRASES = {
    "clear": ("under a clear blue sky", "on a sunny day"),
    "cloudy": ("under a partly cloudy sky", "with clouds overhead"),
    "overcast": ("under an overcast sky", "on a grey day"),
    "rain": ("in the rain", "on a rainy day with wet asphalt"),
    "fog": ("in thick fog", "on a foggy day"),
    "dusk": ("at dusk", "in the evening light"),
}


def scene_caption(content: ViewContent, rng: np.random.Generator) -> str:
    """A 10-30 word caption that mentions only what the frame shows."""
    street = _street_phrase(content)
    buildings = _buildings_phrase(content, rng)
    sides = _sides(content.wall_left, content.wall_right, 0.08)
    if buildings and content.wall_share >= 0.45 and content.sky_share < 0.05:
        opening = (
            f"{CAPTION_PROMPT} the facade of {buildings}"
            if buildings.startswith("a ")
            else (f"{CAPTION_PROMPT} the facades of {buildings}")
        )
    elif buildings and sides == "on both sides":
        verb = ("lined with", "flanked by")[int(rng.integers(0, 2))]
        opening = f"{CAPTION_PROMPT} {street} {verb} {buildings}"
    elif buildings:
        opening = f"{CAPTION_PROMPT} {street} with {buildings} {sides or 'ahead'}"
    else:
        open_street = "an open " + street[2:] if street.startswith("a ") else street
        opening = f"{CAPTION_PROMPT} {open_street} with no buildings nearby"
    clauses: list[str] = [opening]
    readable_shops = sorted((s for s in content.shop_signs if s.readable), key=lambda s: -s.share)
    for sign in readable_shops[:2]:
        clauses.append(f"a sign reads '{sign.text}'")
    readable_streets = sorted((s for s in content.street_signs if s.readable), key=lambda s: -s.share)
    for sign in readable_streets[:2]:
        clauses.append(f"a street sign reads '{sign.text}'")
    if not readable_shops and any(s.share >= 0.002 for s in content.shop_signs):
        clauses.append("shop signs above the windows")
    trees = _sides(content.trees_left, content.trees_right, 0.01)
    if trees:
        clauses.append(f"trees {trees}")
    if content.cars:
        if len(content.cars) == 1:
            clauses.append(f"a {content.cars[0]} car")
        else:
            clauses.append(f"{_count_word(len(content.cars))} cars, one of them {content.cars[0]}")
    if content.people:
        clauses.append("a pedestrian on the sidewalk" if content.people == 1 else "people on the sidewalk")
    options = _WEATHER_PHRASES.get(content.weather, ("",))
    weather = options[int(rng.integers(0, len(options)))]
    clauses.insert(min(len(clauses), 1 + len(readable_shops[:2]) + len(readable_streets[:2])), weather)
    return _fit_words(clauses)


def _count_word(n: int) -> str:
    return ("no", "one", "two", "three", "four", "five", "six")[n] if n <= 6 else "several"


def _fit_words(clauses: list[str]) -> str:
    """Join clauses, dropping the last ones until the caption has at most MAX_WORDS words."""
    kept = list(clauses)
    while len(kept) > 1 and len(_join(kept).split()) > MAX_WORDS:
        kept.pop()
    text = _join(kept)
    words = text.split()
    if len(words) > MAX_WORDS:
        text = " ".join(words[:MAX_WORDS])
    if len(text.split()) < MIN_WORDS:
        text = text + ", seen from the middle of the road"
    return text if text.endswith(".") else text + "."


def _join(clauses: list[str]) -> str:
    if len(clauses) == 1:
        return clauses[0]
    return clauses[0] + ", " + "; ".join(clauses[1:])


# --- pluggable captioners ------------------------------------------------------------------------------


def load_captioner(spec: str) -> Captioner | None:
    """The captioner named by `spec` (see the module docstring); None for 'scene' and 'none'."""
    spec = spec.strip()
    if spec in ("scene", "none", ""):
        return None
    if spec.startswith("blip:"):
        return blip_captioner(spec[len("blip:") :])
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ConfigError(f"captioner: '{spec}' is not 'scene', 'none', 'blip:PATH' or 'module.path:factory'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ConfigError(f"captioner: cannot import module '{module_name}' ({error})") from None
    factory = getattr(module, attribute, None)
    if factory is None or not callable(factory):
        raise ConfigError(f"captioner: '{module_name}' has no callable '{attribute}'")
    captioner = factory()
    if not callable(captioner):
        raise ConfigError(f"captioner: '{spec}' returned {type(captioner).__name__}, not a callable")
    return captioner


def blip_captioner(model_path: str | Path, device: str = "cpu", batch_size: int = 16) -> Captioner:
    """BLIP (transformers) from a local folder, prompted with "A street view of" as in the paper.

    The model is `world.manifest_captions.BlipCaptioner` (the one `addressclip caption` runs).
    """
    from addressclip.world.manifest_captions import BlipCaptioner

    model = BlipCaptioner(model_path, device, prompt=CAPTION_PROMPT.lower(), max_new_tokens=40)

    def caption(images: Sequence[object]) -> list[str]:
        out: list[str] = []
        for start in range(0, len(images), batch_size):
            batch = [image.convert("RGB") for image in images[start : start + batch_size]]  # type: ignore[attr-defined]
            out.extend(model(batch))
        return out

    return caption


def fill_manifest_captions(
    manifest_path: str | Path,
    captioner: Captioner | Callable[[Sequence[object]], list[str]],
    *,
    batch_size: int = 32,
    overwrite: bool = False,
    progress: bool = True,
) -> int:
    """Caption the images of a manifest with `captioner` and rewrite it (atomically). Returns count."""
    from PIL import Image
    from tqdm import tqdm

    from addressclip.data.manifest import read_manifest, write_manifest

    manifest = read_manifest(manifest_path)
    frame = manifest.frame.copy()
    if "caption" not in frame:
        frame["caption"] = None
    todo = [i for i, c in enumerate(frame["caption"].tolist()) if overwrite or not c]
    bar = tqdm(total=len(todo), desc="captioning", unit="img", disable=None if progress else True)
    captions = frame["caption"].astype(object).tolist()
    for start in range(0, len(todo), batch_size):
        rows = todo[start : start + batch_size]
        images = []
        for i in rows:
            path = manifest.image_root / frame["path"].iloc[i]
            try:
                with Image.open(path) as image:
                    images.append(image.convert("RGB"))
            except OSError as error:
                raise InputError(path, None, f"cannot open image ({error})") from None
        texts = captioner(images)
        if len(texts) != len(rows):
            raise ConfigError(f"captioner returned {len(texts)} captions for {len(rows)} images")
        for i, text in zip(rows, texts, strict=True):
            captions[i] = str(text)
        bar.update(len(rows))
    bar.close()
    frame["caption"] = captions
    write_manifest(frame, manifest.path, manifest.image_root, manifest.addressbook_dir)
    return len(todo)
