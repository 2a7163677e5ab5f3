"""Bad render parameters fail at once with one-line errors (and the CLI exits 2)."""

from __future__ import annotations

import pytest

from addressclip.cli import main
from addressclip.errors import ConfigError
from addressclip.world.params import WORLD_PRESETS, RenderParams, parse_size


def test_presets_resolve_to_bundled_extracts():
    tiny = RenderParams.resolve("tiny")
    assert tiny.extract_path.endswith("karhula.osm.pbf")
    assert (tiny.spacing_m, tiny.views) == (WORLD_PRESETS["tiny"].spacing_m, WORLD_PRESETS["tiny"].views)
    demo = RenderParams.resolve("demo", spacing_m=20.0)
    assert demo.extract_path.endswith("helsinki-centre.osm.pbf")
    assert demo.spacing_m == 20.0


def test_hash_follows_every_parameter_but_not_the_extract_location():
    base = RenderParams.resolve("tiny")
    assert base.hash == RenderParams.resolve("tiny").hash
    assert base.hash != RenderParams.resolve("tiny", seed=1).hash
    assert base.hash != RenderParams.resolve("tiny", size=96).hash
    assert base.hash != base.with_changes(spacing_m=30.0).hash
    assert base.hash == base.with_changes(extract_path="/elsewhere/karhula.osm.pbf").hash


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"world": "atlantis"}, "unknown world 'atlantis'"),
        ({"world": "missing.osm.pbf"}, "not found"),
        ({"world": "tiny", "spacing_m": 0}, "spacing: must be > 0"),
        ({"world": "tiny", "spacing_m": -5}, "spacing: must be > 0"),
        ({"world": "tiny", "size": 16}, "size: 16x16 is too small"),
        ({"world": "tiny", "size": "800x600"}, "too large"),
        ({"world": "tiny", "size": "big"}, "is not a size"),
        ({"world": "tiny", "views": 0}, "views: must be between 1"),
        ({"world": "tiny", "seed": -1}, "seed"),
        ({"world": "tiny", "split_ratios": (0.5, 0.2, 0.2)}, "sum to 1"),
    ],
)
def test_bad_parameters_raise_config_errors(kwargs, message):
    world = kwargs.pop("world")
    with pytest.raises(ConfigError, match=message):
        RenderParams.resolve(world, **kwargs)


def test_size_forms():
    assert parse_size(128) == (128, 128)
    assert parse_size("640x480") == (640, 480)
    assert parse_size((96, 64)) == (96, 64)


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--world", "nowhere"], "unknown world 'nowhere'"),
        (["--world", "tiny", "--spacing", "0"], "spacing: must be > 0"),
        (["--world", "tiny", "--size", "8"], "too small"),
        (["--world", "tiny", "--captioner", "no_such_module_xyz:make"], "cannot import module"),
    ],
)
def test_cli_reports_one_line_and_exits_2(tmp_path, capsys, argv, fragment):
    code = main(["render", *argv, "--out", str(tmp_path / "out"), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert fragment in err
    assert len(err.splitlines()) == 1
    assert not (tmp_path / "out" / "world.json").exists()
