"""Foundation pretraining never sees an evaluation city, in the main manifest or in extra data."""

from __future__ import annotations

from pathlib import Path

import pytest

from addressclip.config import load_config
from addressclip.errors import ConfigError
from addressclip.testing.toyworld import make_toy_manifest
from addressclip.train.data import load_stage_data


def test_excluded_cities_never_reach_pretraining(tmp_path: Path):
    porto = make_toy_manifest(tmp_path / "porto", addresses=4, per_address=6, name="porto", city="porto")
    helsinki = make_toy_manifest(tmp_path / "hel", addresses=4, per_address=6, name="hel", city="helsinki")
    overrides = [f"data={porto}", f"out={tmp_path / 'run'}", f"pretrain.extra_data=[{helsinki}]"]
    everything = load_stage_data(load_config("tiny", overrides), "pretrain", 32)
    districts = {a.rsplit(", ", 1)[1] for a in everything.train.addresses}
    assert districts == {"Porto District", "Hel District"}  # both cities are there without the guard
    config = load_config("tiny", [*overrides, "pretrain.exclude_cities=[helsinki,karhula]"])
    data = load_stage_data(config, "pretrain", 32)
    assert {a.rsplit(", ", 1)[1] for a in data.train.addresses} == {"Porto District"}
    assert len(data.train) == 4 * 4  # porto's train split only
    with pytest.raises(ConfigError, match="exclude_cities"):
        load_stage_data(
            load_config("tiny", [*overrides, "pretrain.exclude_cities=[porto,helsinki]"]), "pretrain", 32
        )
