from pathlib import Path

import pytest

from addressclip.cli import main
from addressclip.testing.toyworld import make_toy_manifest


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    return make_toy_manifest(tmp_path_factory.mktemp("world"))


def test_bad_config_key_is_one_line_exit_2(world: Path, tmp_path: Path, capsys):
    code = main(["train", "--config", "tiny", f"data={world}", f"out={tmp_path}", "optim.learning_rate=1"])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "optim.learning_rate" in err and "lr" in err


def test_missing_data_and_manifest_are_clear(tmp_path: Path, capsys):
    assert main(["train", "--config", "tiny", f"out={tmp_path / 'a'}"]) == 2
    assert "data=PATH/manifest.parquet is required" in capsys.readouterr().err
    assert (
        main(["train", "--config", "tiny", f"data={tmp_path / 'none.parquet'}", f"out={tmp_path / 'b'}"]) == 2
    )
    assert "none.parquet" in capsys.readouterr().err


def test_pretrain_is_cached_then_train_starts_from_it(world: Path, tmp_path: Path, capsys):
    pre = tmp_path / "pre"
    args = ["pretrain", "--config", "tiny", f"data={world}", f"out={pre}", "train.threads=1"]
    assert main(args) == 0
    first = capsys.readouterr().out
    assert "trained" in first and "zero-shot on val: SSA-1" in first
    assert main(args) == 0
    assert "reused" in capsys.readouterr().out
    assert main([*args, "pretrain.epochs=2"]) == 2  # other parameters, same folder: refused
    assert "other parameters" in capsys.readouterr().err

    out = tmp_path / "train"
    code = main(
        [
            "train",
            "--config",
            "tiny",
            f"data={world}",
            f"out={out}",
            f"model.init={pre / 'model.pt'}",
            "train.threads=1",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "model:" in printed and "SSA-1" in printed
    assert (out / "model.pt").is_file() and (out / "config.yaml").is_file()
    # resuming a finished run is a no-op that still succeeds
    assert (
        main(
            [
                "train",
                "--config",
                "tiny",
                f"data={world}",
                f"out={out}",
                f"model.init={pre / 'model.pt'}",
                "train.threads=1",
                "--resume",
                "latest",
            ]
        )
        == 0
    )
