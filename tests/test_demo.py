"""The make demo pipeline end to end on the tiny world: every stage runs, then a rerun reuses them."""

from __future__ import annotations

import json

import pytest

from addressclip.cli import main

pytestmark = pytest.mark.slow  # renders the tiny world and trains twice


def test_demo_pipeline_runs_and_a_second_run_reuses_every_stage(tmp_path, capsys):
    out = tmp_path / "demo"
    argv = ["demo", "--world", "tiny", "--config", "tiny", "--out", str(out), "--skip-report"]
    assert main(argv) == 0
    first = capsys.readouterr().out
    summary = json.loads((out / "demo.json").read_text())
    assert (out / "train" / "model.pt").is_file()
    assert set(summary["timings_s"]) >= {"render", "pretrain", "train", "predict", "total"}
    assert "(trained)" in first and "held-out test images" in first

    # a killed pretraining run (latest checkpoint, no model) continues instead of failing
    for name in ("model.pt", "fingerprint.json", "result.json"):
        (out / "pretrain" / name).unlink()
    assert main(argv) == 0
    assert "(trained)" in capsys.readouterr().out
    assert '"kind": "resume"' in (out / "pretrain" / "metrics.jsonl").read_text()

    assert main(argv) == 0
    third = capsys.readouterr().out
    assert "(reused)" in third and "reusing" in third
