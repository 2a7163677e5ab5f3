"""The rendered tiny world (Karhula, real OSM): the evaluation path and the Image->GPS->Address
pipeline work on a dataset built by the renderer and the CosPlace build, with its merged AddressBook."""

from pathlib import Path

import pytest

from addressclip.baselines.base import BaselineSetup
from addressclip.baselines.runner import run_method
from addressclip.eval.encode import FrozenEncoder
from addressclip.eval.evaluate import EvalData
from addressclip.eval.store import FeatureStore
from addressclip.testing.toyworld import train_toy_street_clip

pytestmark = pytest.mark.slow  # renders a world (~15 s on 2 idle cores)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from addressclip.world import render_world

    folder = tmp_path_factory.mktemp("tiny")
    world = render_world("tiny", folder / "world", size=48, pictures=False, progress=False)
    init = train_toy_street_clip(world.manifest, folder / "clip", "pretrain.epochs=1", "optim.batch_size=32")
    data = EvalData.load(world.manifest, progress=False)
    return data, FrozenEncoder.from_checkpoint(init, FeatureStore(), "cpu", progress=False), init


def _setup(tiny, folder: Path, split: str = "test") -> BaselineSetup:
    data, encoder, init = tiny
    return BaselineSetup(data, encoder, init, folder, preset="tiny", eval_split=split, progress=False)


def test_rendered_world_has_geometry_and_intersections(tiny):
    data = tiny[0]
    assert data.geometry.source == "addressbook"
    assert data.intersections is not None and len(data.intersections) > 0


def test_database_queries_come_back_with_their_address_through_gps(tiny, tmp_path: Path):
    result = run_method("retrieval", _setup(tiny, tmp_path, split="train"))
    assert result.evaluation.metrics["SSA-1"] == 100.0
    assert result.output.hyper["gps_lookup"] == "addressbook"
    assert result.output.hyper["gps_lookup_fallbacks"] == 0  # the book labels every database GPS


@pytest.mark.parametrize("name", ["zeroshot", "linear_probe", "tip_adapter"])
def test_baselines_evaluate_on_the_rendered_world(tiny, tmp_path: Path, name: str):
    data = tiny[0]
    result = run_method(name, _setup(tiny, tmp_path))
    metrics = result.evaluation.metrics
    assert metrics["queries"] == len(data.rows("test"))
    assert 0.0 <= metrics["SSA-1"] <= metrics["SSA-5"] <= 100.0
    assert metrics["error_m"]["median"] >= 0.0
    assert sum(b["count"] for b in metrics["by_intersection_distance"]) == metrics["queries"]
