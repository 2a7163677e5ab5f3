"""`addressclip eval` and `addressclip baseline` from the command line, on the toy street world."""

import json
from pathlib import Path

import pytest

from addressclip.cli import main
from addressclip.testing.toyworld import make_street_world, train_toy_street_clip


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    folder = tmp_path_factory.mktemp("toy")
    manifest = make_street_world(folder / "world")
    return manifest, train_toy_street_clip(manifest, folder / "clip")


def test_eval_prints_every_metric_and_caches_the_gallery(toy, tmp_path: Path, capsys):
    manifest, checkpoint = toy
    cache = tmp_path / "cache"
    out = str(tmp_path / "out")
    argv = ["eval", str(checkpoint), "--data", str(manifest), "--out", out, "--cache", str(cache), "--quiet"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "12 queries, 6 candidate addresses" in printed
    assert "SSA-1" in printed and "SA-5" in printed and "median" in printed and "ECE" in printed
    record = json.loads((tmp_path / "out" / "eval.json").read_text())
    assert record["split"] == "test" and record["metrics"]["queries"] == 12
    assert f"SSA-1 {record['metrics']['SSA-1']:.1f}" in printed
    assert (tmp_path / "out" / "queries.parquet").is_file()
    cached = sorted(p.name for p in cache.glob("*.npy"))
    assert any(n.startswith("gallery-") for n in cached) and any(n.startswith("image-") for n in cached)
    stamps = {p.name: p.stat().st_mtime_ns for p in cache.glob("*.npy")}
    assert main(argv) == 0  # the second evaluation reads the cached gallery and features
    assert {p.name: p.stat().st_mtime_ns for p in cache.glob("*.npy")} == stamps
    # a run folder works as well as its model.pt
    assert main(["eval", str(checkpoint.parent), "--data", str(manifest), "--split", "val", "--quiet"]) == 0


def test_eval_errors_are_one_line(toy, tmp_path: Path, capsys):
    manifest, checkpoint = toy
    assert main(["eval", str(checkpoint), "--data", str(manifest), "--split", "holdout", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "holdout" in err and "manifest.parquet" in err
    assert main(["eval", str(tmp_path / "none.pt"), "--data", str(manifest)]) == 2
    assert "none.pt" in capsys.readouterr().err


def test_baseline_command_runs_one_method(toy, tmp_path: Path, capsys):
    manifest, init = toy
    argv = ["baseline", "tip_adapter", "--data", str(manifest), "--out", str(tmp_path), "--init", str(init),
            "--config", "tiny", "--quiet", "--option", "alphas=[1.0]"]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("Tip-Adapter (seed 0")
    record = json.loads((tmp_path / "tip_adapter" / "result.json").read_text())
    assert record["hyper"]["alpha"] == 1.0
    assert f"SSA-1 {record['metrics']['SSA-1']:.1f}" in printed
    assert "storage" in printed and "latency" in printed
