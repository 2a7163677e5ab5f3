"""Every entry of the baseline registry runs on the toy world through the one runner: a new baseline
is one file + one registry line, and this test picks it up without being edited."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from addressclip.baselines.base import BaselineSetup
from addressclip.baselines.registry import BASELINE_NAMES, BASELINES
from addressclip.baselines.runner import run_method
from addressclip.testing.toyworld import open_toy_baseline_world

FAST_TRAINING = ("train.threads=1", "optim.batch_size=12", "optim.epochs=1")
# the shortest fitting each method accepts (the defaults are for real runs)
FAST_OPTIONS: dict[str, dict[str, object]] = {
    "coop": {"steps": 2, "batch_size": 8},
    "cocoop": {"steps": 2, "max_queries": 5},
    "maple": {"steps": 2, "batch_size": 8},
    "linear_probe": {"c_grid": (1.0,), "max_iter": 20},
    "clip_adapter": {"epochs": 1},
    "tip_adapter_f": {"epochs": 1},
}


@pytest.fixture(scope="module")
def world(baseline_world_files, tmp_path_factory):
    return open_toy_baseline_world(*baseline_world_files, tmp_path_factory.mktemp("features"))


@pytest.mark.parametrize("name", BASELINE_NAMES)
def test_every_registered_method_runs_and_is_evaluated(world, tmp_path: Path, name: str):
    data, encoder, init = world
    setup = BaselineSetup(data, encoder, init, tmp_path, preset="tiny", overrides=FAST_TRAINING,
                          progress=False, options=FAST_OPTIONS.get(name, {}))  # fmt: skip
    result = run_method(name, setup)
    rows = result.output.rows if result.output.rows is not None else setup.eval_rows
    assert result.output.scores.shape == (len(rows), len(data.vocabulary))
    assert np.isfinite(result.output.scores).all()
    metrics = result.evaluation.metrics
    assert 0.0 <= metrics["SSA-1"] <= metrics["SSA-5"] <= 100.0
    record = result.record()
    assert record["label"] == BASELINES[name].label and record["method"] == name


def test_registry_names_are_the_cli_choices_and_listing_them_imports_no_torch():
    code = (
        "import sys; from addressclip.baselines.registry import BASELINE_NAMES; "
        "print(','.join(BASELINE_NAMES)); print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    names, torch_loaded = out.split()
    assert names.split(",") == list(BASELINES) and torch_loaded == "False"
    from addressclip.cli import build_parser

    choices = build_parser()._subparsers._group_actions[0].choices["baseline"]._actions
    name_action = next(a for a in choices if a.dest == "name")
    assert list(name_action.choices) == list(BASELINE_NAMES)
