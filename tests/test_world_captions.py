"""Scene captions say what the view holds (and nothing else); captioners plug in by name."""

from __future__ import annotations

import numpy as np
import pytest

from addressclip.errors import ConfigError, InputError
from addressclip.world.captions import MAX_WORDS, MIN_WORDS, load_captioner, scene_caption
from addressclip.world.content import ViewContent, VisibleBuilding, VisibleText


def make_shouting_captioner():
    """A factory in the `module:factory` form that `--captioner` accepts."""
    return lambda images: ["A STREET VIEW" for _ in images]


def _content(**changes) -> ViewContent:
    content = ViewContent(
        buildings=[VisibleBuilding(0, 0.4, 20.0, "ochre", "stone", "apartment building", 0.5)],
        wall_share=0.4,
        wall_left=0.2,
        wall_right=0.2,
        sky_share=0.2,
        weather="overcast",
        road_half_width_m=2.8,
    )
    for key, value in changes.items():
        setattr(content, key, value)
    return content


def test_caption_mentions_readable_signs_only():
    signs = [
        VisibleText("Café Ekberg", 0.01, 9.0, 0.9, True),
        VisibleText("Far Away Bar", 0.001, 2.0, 0.9, False),
    ]
    caption = scene_caption(_content(shop_signs=signs), np.random.default_rng(0))
    assert "a sign reads 'Café Ekberg'" in caption
    assert "Far Away Bar" not in caption
    assert caption.startswith("A street view of a narrow street")
    assert "tall ochre stone apartment building" in caption
    assert "overcast" in caption or "grey day" in caption


def test_caption_sides_and_occluders():
    caption = scene_caption(
        _content(trees_left=0.0, trees_right=0.05, cars=["red", "blue"], people=1), np.random.default_rng(1)
    )
    assert "trees on the right" in caption
    assert "two cars, one of them red" in caption or len(caption.split()) == MAX_WORDS
    empty = scene_caption(
        _content(buildings=[], wall_share=0.0, wall_left=0.0, wall_right=0.0, sky_share=0.5),
        np.random.default_rng(2),
    )
    assert "no buildings" in empty
    assert "trees" not in empty and " car" not in empty


def test_caption_length_is_bounded():
    many = [VisibleText(f"Shop Number {i} With A Long Name", 0.01, 9.0, 1.0, True) for i in range(5)]
    streets = [VisibleText("Pohjoisesplanadi", 0.01, 9.0, 1.0, True)]
    caption = scene_caption(
        _content(shop_signs=many, street_signs=streets, cars=["red"], people=3, trees_left=0.1),
        np.random.default_rng(3),
    )
    assert MIN_WORDS <= len(caption.split()) <= MAX_WORDS
    short = scene_caption(_content(buildings=[], wall_share=0.0, weather="fog"), np.random.default_rng(4))
    assert MIN_WORDS <= len(short.split()) <= MAX_WORDS


def test_load_captioner_by_name():
    assert load_captioner("scene") is None
    assert load_captioner("none") is None
    captioner = load_captioner(f"{__name__}:make_shouting_captioner")
    assert captioner([object(), object()]) == ["A STREET VIEW", "A STREET VIEW"]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("just-a-word", "is not 'scene', 'none'"),
        ("no_such_module_abc:factory", "cannot import module"),
        (f"{__name__}:missing_factory", "has no callable"),
    ],
)
def test_bad_captioner_specs(spec, message):
    with pytest.raises(ConfigError, match=message):
        load_captioner(spec)


def test_blip_needs_a_local_folder(tmp_path):
    with pytest.raises(InputError, match="BLIP model folder not found"):
        load_captioner(f"blip:{tmp_path / 'nowhere'}")
