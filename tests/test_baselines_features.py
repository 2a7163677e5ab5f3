"""Baselines on frozen street-CLIP features (zero-shot, linear probe, CLIP-Adapter, Tip-Adapter(-F))
and the references (chance, majority, raw-pixel NN), each trained and evaluated on the toy world."""

from pathlib import Path

import numpy as np
import pytest

from addressclip.baselines.base import BaselineSetup
from addressclip.baselines.linear_probe import fit_logistic
from addressclip.baselines.runner import run_method
from addressclip.eval.evaluate import EvalData
from addressclip.eval.metrics import chance_accuracies
from addressclip.testing.toyworld import open_toy_baseline_world


@pytest.fixture(scope="module")
def world(baseline_world_files, tmp_path_factory):
    return open_toy_baseline_world(*baseline_world_files, tmp_path_factory.mktemp("features"))


def _setup(world, tmp_path: Path, **options) -> BaselineSetup:
    data, encoder, init = world
    return BaselineSetup(data, encoder, init, tmp_path, preset="tiny", progress=False, options=options)


def _check(result, data: EvalData) -> dict:
    metrics = result.evaluation.metrics
    assert result.output.scores.shape == (12, len(data.vocabulary))
    for key in ("SSA-1", "SSA-5", "SA-1", "SA-5"):
        assert 0.0 <= metrics[key] <= 100.0
    assert metrics["SSA-1"] <= metrics["SSA-5"] and metrics["SSA-1"] <= metrics["SA-1"]
    return metrics


def test_references_chance_and_majority(world, tmp_path: Path):
    data = world[0]
    chance = run_method("chance", _setup(world, tmp_path))
    _check(chance, data)
    truth = data.labels(data.rows("test"))
    exact = chance_accuracies(truth, data.candidate_street)
    assert chance.output.hyper["exact"] == pytest.approx(exact)
    assert chance.evaluation.metrics["SSA-1"] == pytest.approx(100 / 6)  # 6 candidates
    assert {k: chance.evaluation.metrics[k] for k in exact} == pytest.approx(exact)
    majority = run_method("majority", _setup(world, tmp_path))
    scores = majority.output.scores
    assert (scores == scores[0]).all()  # the same ranking for every query
    # the toy world has equally many training images per address: the tie goes to candidate 0
    assert majority.evaluation.queries["predicted"].eq(0).all()
    assert majority.evaluation.metrics["SSA-1"] == pytest.approx(100 * np.mean(truth == 0))


def test_zero_shot_scores_with_the_cached_gallery(world, tmp_path: Path):
    data, encoder, _ = world
    result = run_method("zeroshot", _setup(world, tmp_path))
    _check(result, data)
    assert result.output.storage_bytes == len(data.vocabulary) * encoder.model.embed_dim * 4
    assert result.output.latency_ms is not None and result.output.latency_ms > 0
    misses = encoder.store.misses
    run_method("zeroshot", _setup(world, tmp_path))  # gallery and features come from the store
    assert encoder.store.misses == misses


def test_linear_probe_picks_c_on_val_and_separates_the_toy_world(world, tmp_path: Path):
    result = run_method("linear_probe", _setup(world, tmp_path))
    metrics = _check(result, world[0])
    hyper = result.output.hyper
    assert set(hyper["val_SSA-1_by_C"]) == {str(c) for c in hyper["C_grid"]}
    assert hyper["val_SSA-1_by_C"][str(hyper["C"])] == max(hyper["val_SSA-1_by_C"].values())
    assert metrics["SSA-1"] >= 75.0  # colours encode the address: linearly separable
    assert result.output.scale == 1.0


def test_logistic_regression_fits_a_separable_problem():
    x = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]], dtype=np.float32)
    y = np.array([0, 0, 1, 1])
    weight, bias = fit_logistic(x, y, classes=3, c=100.0)
    predicted = (x @ weight.numpy() + bias.numpy()).argmax(axis=1)
    assert predicted.tolist() == [0, 0, 1, 1]
    strong, _ = fit_logistic(x, y, classes=3, c=0.001)
    assert np.abs(strong.numpy()).sum() < np.abs(weight.numpy()).sum()  # more regularised, smaller


@pytest.mark.parametrize("name", ["clip_adapter", "tip_adapter", "tip_adapter_f"])
def test_adapters_train_and_evaluate(world, tmp_path: Path, name: str):
    data = world[0]
    result = run_method(name, _setup(world, tmp_path, epochs=3))
    metrics = _check(result, data)
    assert result.output.storage_bytes > len(data.vocabulary) * 4
    if name.startswith("tip"):
        hyper = result.output.hyper
        assert hyper["val_SSA-1_grid"][f"{hyper['alpha']},{hyper['beta']}"] == result.output.val["SSA-1"]
        assert metrics["SSA-1"] >= 75.0  # the cache of training features finds the colour


def test_raw_pixel_nearest_neighbour_finds_the_colour(world, tmp_path: Path):
    result = run_method("pixel_nn", _setup(world, tmp_path))
    metrics = _check(result, world[0])
    assert metrics["SSA-1"] >= 75.0
    assert result.output.hyper["gps_lookup"] == "addressbook"
