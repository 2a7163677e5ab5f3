"""Evaluation, feature extraction and `predict` read tar shards as a stream: the same metrics and the
same top-k as from the image files, with the image files gone."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from addressclip.cli import main
from addressclip.data.dataset import decode_all
from addressclip.data.manifest import read_manifest
from addressclip.data.shards import ShardImages, read_shard_index
from addressclip.errors import InputError


@pytest.fixture(scope="module")
def world(trained_world, tmp_path_factory) -> dict[str, Path]:
    """A copy of the trained tiny world (its images can be removed) and its shards, 5 rows each."""
    root = tmp_path_factory.mktemp("shards-eval")
    shutil.copytree(trained_world.manifest.parent, root / "world")
    manifest = root / "world" / "manifest.parquet"
    argv = ["shard", str(manifest), "--out", str(root / "shards"), "--rows-per-shard", "5", "--quiet"]
    assert main(argv) == 0
    return {"root": root, "manifest": manifest, "shards": root / "shards", "model": trained_world.checkpoint}


def _eval(world, out: Path, *extra: str) -> tuple[str, pd.DataFrame]:
    argv = ["eval", str(world["model"]), "--data", str(world["manifest"]), "--split", "val",
            "--out", str(out), "--cache", str(out / "cache"), "--quiet", *extra]  # fmt: skip
    assert main(argv) == 0
    record = json.loads((out / "eval.json").read_text())
    return json.dumps(record["metrics"], sort_keys=True), pd.read_parquet(out / "queries.parquet")


def _predict(world, out: Path, *sources: str) -> dict[str, list]:
    argv = ["predict", *sources, "--model", str(world["model"]), "--format", "json", "--top-k", "3",
            "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    rows = json.loads(out.read_text())
    return {Path(r["source"]).name: r["matches"] for r in rows}


def test_eval_and_predict_from_shards_match_the_image_files(world, tmp_path: Path, capsys) -> None:
    folder_metrics, folder_queries = _eval(world, tmp_path / "folder")
    images = world["root"] / "world" / "images"
    val = read_manifest(world["manifest"]).frame.query("split == 'val'")["path"].tolist()
    by_files = _predict(world, tmp_path / "files.json", *(str(images / p) for p in val))
    shutil.move(images, world["root"] / "moved")  # from here on no image file can be read
    try:
        shard_metrics, shard_queries = _eval(world, tmp_path / "sharded", "--shards", str(world["shards"]))
        by_shards = _predict(
            world, tmp_path / "shards.json", "--shards", str(world["shards"]), "--split", "val"
        )
        assert main(["eval", str(world["model"]), "--data", str(world["manifest"]), "--split", "val",
                     "--cache", str(tmp_path / "c2"), "--quiet"]) == 2  # fmt: skip
        assert "not found" in capsys.readouterr().err
    finally:
        shutil.move(world["root"] / "moved", images)
    assert shard_metrics == folder_metrics
    pd.testing.assert_frame_equal(shard_queries, folder_queries)
    assert json.loads(shard_metrics)["queries"] == len(val) > 0
    shard_rows = json.loads((tmp_path / "shards.json").read_text())
    assert [r["source"] for r in shard_rows] == val  # named by manifest path, in manifest order
    assert by_shards == by_files
    # different feature-cache keys: the sharded evaluation encoded its own images
    assert {p.name for p in (tmp_path / "sharded" / "cache").glob("image-*")} != {
        p.name for p in (tmp_path / "folder" / "cache").glob("image-*")
    }


def test_predict_shards_errors_are_one_line(world, tmp_path: Path, capsys) -> None:
    model = ["--model", str(world["model"])]
    assert main(["predict", "--shards", str(world["shards"]), "--split", "test", *model]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "'test'" in err and "train, val" in err
    assert main(["predict", "x.jpg", "--shards", str(world["shards"]), *model]) == 2
    assert "--shards" in capsys.readouterr().err
    assert main(["predict", *model]) == 2
    assert "--shards" in capsys.readouterr().err


def test_shard_images_take_any_rows_like_the_files(world) -> None:
    manifest = read_manifest(world["manifest"])
    frame = manifest.frame.reset_index(drop=True)
    images = ShardImages(read_shard_index(world["shards"]), frame, 24)
    rows = np.array([7, 3, 3, len(frame) - 1, 0, 12])  # out of order, repeated, behind the cursor
    expected = decode_all([manifest.image_root / frame["path"][r] for r in rows], 24, progress=False)
    assert np.array_equal(images.take(rows).numpy(), expected)
    cached = ShardImages(read_shard_index(world["shards"]), frame, 24, budget=1 << 30)
    assert np.array_equal(cached.take(rows).numpy(), expected) and cached.decoded.sum() == 5
    assert np.array_equal(cached.take(rows[::-1]).numpy(), expected[::-1])


def test_eval_refuses_shards_of_another_manifest(world, tmp_path: Path) -> None:
    from addressclip.eval.evaluate import EvalData

    other = tmp_path / "other.parquet"
    shutil.copy(world["manifest"], other)
    with pytest.raises(InputError, match="shards hold"):
        EvalData.load(other, progress=False, shards=world["shards"])
