"""Training reliability: config ranges, a file in the run folder's place, damaged checkpoints, resume logs.

Each test here reproduces a failure a user met (issue 11: items 2, 6, 8, 9, 12, 15) through the real
config loader, the real `addressclip` command line and real training runs on a toy manifest.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import subprocess
import sys
import types
import typing
from pathlib import Path

import pytest
import torch

from addressclip.cli import main
from addressclip.config import RANGES, RunConfig, load_config
from addressclip.errors import AddressclipError, ConfigError
from addressclip.model import read_checkpoint
from addressclip.testing.toyworld import make_toy_manifest
from addressclip.train import engine
from addressclip.train.engine import train_model
from addressclip.train.logging import MetricsLogger, read_metrics

FAST = ["train.threads=1", "optim.batch_size=4"]


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    return make_toy_manifest(tmp_path_factory.mktemp("world"), addresses=4, per_address=6)


# ------------------------------------------------------------------------------------------ ranges


def _numeric_keys(cls: type, prefix: str = "") -> dict[str, type]:
    """Every int/float leaf of the config tree (optional and tuple ones too), by dotted key."""
    found: dict[str, type] = {}
    for name, annotation in typing.get_type_hints(cls).items():
        key = f"{prefix}{name}"
        if dataclasses.is_dataclass(annotation):
            found.update(_numeric_keys(annotation, f"{key}."))
            continue
        origin = typing.get_origin(annotation)
        args = typing.get_args(annotation) if origin in (typing.Union, types.UnionType, tuple) else ()
        kinds = {a for a in (annotation, *args) if a in (int, float)}
        if kinds:
            found[key] = float if float in kinds else int
    return found


def test_every_numeric_key_has_a_declared_range():
    keys = _numeric_keys(RunConfig)
    assert "optim.batch_size" in keys and "train.threads" in keys and "optim.betas" in keys
    assert sorted(set(keys) - set(RANGES)) == [], "numeric config keys without a range in config.RANGES"
    assert sorted(set(RANGES) - set(keys)) == [], "ranges for keys the config does not have"
    for preset in ("tiny", "cpu", "paper"):
        load_config(preset)  # the shipped presets are in range


def _outside(key: str, kind: type) -> list[object]:
    """Values just outside the key's range (each end that has one)."""
    bounds = RANGES[key]
    values: list[object] = []
    if bounds.low is not None:
        values.append(bounds.low if bounds.above else (bounds.low - 1 if kind is int else bounds.low - 0.5))
    if bounds.high is not None:
        values.append(bounds.high if bounds.below else bounds.high + 1)
    if kind is float:
        values.append(float("nan"))
    values = [kind(v) if kind is int else v for v in values]
    if key == "optim.betas":
        return [[0.9, v] for v in values]
    return values


@pytest.mark.parametrize("key", sorted(RANGES))
def test_each_out_of_range_value_is_refused_naming_the_key(key: str):
    kind = _numeric_keys(RunConfig)[key]
    for value in _outside(key, kind):
        text = json.dumps(value).replace("NaN", ".nan")  # YAML spells it .nan
        with pytest.raises(ConfigError) as info:
            load_config("tiny", [f"{key}={text}"])
        message = str(info.value)
        assert f"'{key}'" in message and "out of range" in message and "\n" not in message


@pytest.mark.parametrize(
    "override",
    [
        "optim.batch_size=0",
        "optim.batch_size=-4",
        "optim.lr=-0.1",
        "optim.epochs=0",
        "optim.epochs=-1",
        "optim.accum_steps=-3",
        "loader.max_per_address=-5",
        "train.threads=0",
    ],
)
def test_the_reported_values_stop_train_before_any_work(world: Path, tmp_path: Path, capsys, override):
    out = tmp_path / "run"
    assert main(["train", "--config", "tiny", f"data={world}", f"out={out}", override]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and override.split("=")[0] in err
    assert not out.exists()  # optim.epochs=0 used to write an untrained model.pt and exit 0


def test_meaningful_boundaries_are_accepted():
    config = load_config(
        "tiny", ["loader.max_per_address=0", "train.threads=null", "loss.beta=0", "train.keep_best=0"]
    )
    assert config.loader.max_per_address == 0 and config.train.threads is None


def test_a_config_built_in_python_is_checked_by_the_trainer(world: Path, tmp_path: Path):
    config = load_config("tiny", [f"data={world}", f"out={tmp_path / 'run'}"])
    config.optim.batch_size = 0
    with pytest.raises(ConfigError, match=r"'optim\.batch_size'"):
        train_model(config)


def test_epoch_batches_refuses_an_empty_batch_instead_of_looping():
    # run apart, with a memory cap and a timeout: the old sampler looped forever, growing ~200 MB/s
    code = (
        "import resource, numpy as np\n"
        "resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))\n"
        "from addressclip.data.samplers import epoch_batches\n"
        "from addressclip.errors import ConfigError\n"
        "try:\n"
        "    epoch_batches(np.arange(12) % 3, 0, 2, seed=0, epoch=0)\n"
        "except ConfigError as error:\n"
        "    print(error)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "batch_size must be at least 1" in done.stdout, done.stderr[-500:]


# -------------------------------------------------------------------------------- out= is a file


def test_out_that_is_a_file_is_refused_before_training(world: Path, tmp_path: Path, capsys, monkeypatch):
    monkeypatch.setattr(engine, "build_model", lambda *_: pytest.fail("refused after the model was built"))
    taken = tmp_path / "taken.txt"
    taken.write_text("mine")
    for out in (taken, taken / "run"):
        assert main(["train", "--config", "tiny", f"data={world}", f"out={out}"]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "exists and is not a folder" in err and str(taken) in err
    assert taken.read_text() == "mine"


# ----------------------------------------------------------------------- damaged checkpoints (item 6)


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_zero_byte_model_is_a_one_line_error_in_every_command(tmp_path: Path, capsys):
    empty = tmp_path / "model.pt"
    empty.touch()
    photo = tmp_path / "photo.jpg"
    from PIL import Image

    Image.new("RGB", (32, 32), (90, 120, 150)).save(photo)
    commands = {
        "predict": ["predict", "--model", str(empty), str(photo)],
        "export": ["export", "--model", str(empty), "--out", str(tmp_path / "bundle")],
        "serve": ["serve", "--bundle", str(empty), "--port", "0"],
        "run folder": ["predict", "--model", str(tmp_path), str(photo)],
    }
    for name, argv in commands.items():
        assert main(argv) == 2, name
        err = _one_line_error(capsys)
        assert "0 bytes" in err and str(empty) in err and "addressclip checkpoint" in err, (name, err)


def test_zero_byte_latest_stops_resume_with_one_line(world: Path, tmp_path: Path, capsys):
    out = tmp_path / "run"
    (out / "checkpoints").mkdir(parents=True)
    (out / "checkpoints" / "latest.pt").touch()
    argv = ["train", "--config", "tiny", "--resume", "latest", f"data={world}", f"out={out}", *FAST]
    assert main(argv) == 2
    err = _one_line_error(capsys)
    assert "latest.pt" in err and "0 bytes" in err


def test_non_checkpoint_files_say_what_they_are_and_what_was_expected(tmp_path: Path):
    real = tmp_path / "real.pt"
    torch.save({"format": "x", "weights": torch.zeros(2048)}, real)
    (tmp_path / "notes.pt").write_bytes(b"these are my notes, not weights\n" * 20)
    (tmp_path / "cut.pt").write_bytes(real.read_bytes()[:3000])
    torch.save({"visual.proj": torch.zeros(2, 2), "logit_scale": torch.ones(())}, tmp_path / "clip.pt")
    cases = {
        "notes.pt": "not a torch file",
        "cut.pt": "truncated torch file",
        "clip.pt": "a bare state dict of 2 tensors",  # open_clip weights given where a model goes
        "real.pt": "a torch file holding a dict (keys 'format', 'weights'; format 'x')",
    }
    for name, what in cases.items():
        path = tmp_path / name
        with pytest.raises(AddressclipError) as info:
            read_checkpoint(path)
        message = str(info.value)
        assert what in message and str(path) in message
        # the whole expectation is there, not torch's unpickler text cut at a fixed length
        assert message.endswith("(a torch.save'd dict with format 'addressclip-checkpoint')")
        assert "weights only load failed" not in message.lower() and "\n" not in message


# ------------------------------------------------------------------- previous.pt fallback (item 6)


def _run_config(world: Path, out: Path, *extra: str):
    return load_config("tiny", [f"data={world}", f"out={out}", *FAST, *extra])


def test_resume_latest_falls_back_to_previous_when_latest_is_unreadable(world: Path, tmp_path: Path, caplog):
    out = tmp_path / "run"
    first = train_model(_run_config(world, out, "optim.epochs=2"))
    folder = out / "checkpoints"
    assert (folder / "previous.pt").is_file(), "the checkpoint before latest.pt must be kept"
    finished = read_checkpoint(folder / "latest.pt")
    previous = read_checkpoint(folder / "previous.pt")["training"]
    assert previous["epoch"] == 1 and previous["step"] < first.steps  # the first epoch's end

    (folder / "latest.pt").write_bytes(b"")  # what a full disk or a crash leaves
    with caplog.at_level(logging.WARNING):
        resumed = train_model(_run_config(world, out, "optim.epochs=2"), resume="latest")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "previous.pt" in warnings[0] and "0 bytes" in warnings[0]
    assert "\n" not in warnings[0]
    assert resumed.steps == first.steps  # the second epoch was trained again, from previous.pt
    again = read_checkpoint(folder / "latest.pt")
    for key, value in finished["state_dict"].items():
        assert torch.allclose(again["state_dict"][key], value, rtol=0, atol=1e-6), key
    # the good previous.pt was not replaced by the damaged latest.pt
    assert read_checkpoint(folder / "previous.pt")["training"]["step"] == previous["step"]
    steps = [r["step"] for r in read_metrics(out / "metrics.jsonl") if r["kind"] == "step"]
    assert steps == list(range(1, first.steps + 1))


def test_resume_with_both_checkpoints_unreadable_names_latest(world: Path, tmp_path: Path, capsys):
    out = tmp_path / "run"
    folder = out / "checkpoints"
    folder.mkdir(parents=True)
    (folder / "latest.pt").write_bytes(b"")
    (folder / "previous.pt").write_bytes(b"junk")
    argv = ["train", "--config", "tiny", "--resume", "latest", f"data={world}", f"out={out}", *FAST]
    assert main(argv) == 2
    err = _one_line_error(capsys)
    assert "latest.pt" in err and "0 bytes" in err


# ---------------------------------------------------------------------- metrics after resume (item 12)


class _Killed(Exception):
    """Stands for a kill -9 between two checkpoints (everything logged so far stays on disk)."""


def test_metrics_after_resume_hold_each_step_once(world: Path, tmp_path: Path, monkeypatch):
    out = tmp_path / "run"
    overrides = ["optim.epochs=2", "train.checkpoint_every=2"]
    log = MetricsLogger.log

    def log_then_die(self, record):
        log(self, record)
        if record.get("kind") == "step" and record.get("step") == 5:
            self._handle.write('{"kind": "step", "epo')  # a line torn by the kill
            raise _Killed

    monkeypatch.setattr(MetricsLogger, "log", log_then_die)
    with pytest.raises(_Killed):
        train_model(_run_config(world, out, *overrides))
    monkeypatch.setattr(MetricsLogger, "log", log)
    assert read_checkpoint(out / "checkpoints" / "latest.pt")["training"]["step"] == 4

    result = train_model(_run_config(world, out, *overrides), resume="latest")
    records = read_metrics(out / "metrics.jsonl")  # the torn line is gone too (this would raise)
    steps = [r["step"] for r in records if r["kind"] == "step"]
    assert steps == list(range(1, result.steps + 1)), steps
    assert [r["kind"] for r in records].count("resume") == 1
    assert [r["epoch"] for r in records if r["kind"] == "epoch"] == [0, 1]


def test_a_resumed_run_without_a_log_starts_one(world: Path, tmp_path: Path):
    out = tmp_path / "run"
    train_model(_run_config(world, out, "optim.epochs=2"))
    shutil.copy(out / "checkpoints" / "previous.pt", out / "checkpoints" / "latest.pt")
    (out / "metrics.jsonl").unlink()
    result = train_model(_run_config(world, out, "optim.epochs=2"), resume="latest")
    records = read_metrics(out / "metrics.jsonl")
    assert records[0]["kind"] == "resume" and records[-1]["step"] == result.steps


# ------------------------------------------------------------- one-line errors of other commands (item 9)


def _photo(folder: Path) -> Path:
    from PIL import Image

    path = folder / "photo.jpg"
    Image.new("RGB", (40, 32), (120, 80, 60)).save(path)
    return path


def test_predict_out_folder_is_refused_before_the_model_loads(tmp_path: Path, capsys):
    results = tmp_path / "results"
    results.mkdir()
    never_read = tmp_path / "no-model.pt"  # the --out check comes first: no model is needed to see it
    argv = ["predict", "--model", str(never_read), "--out", str(results), str(_photo(tmp_path))]
    assert main(argv) == 2
    err = _one_line_error(capsys)
    assert "--out" in err and str(results) in err and "is a folder" in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_predict_on_cuda_without_a_gpu_is_a_one_line_error(tmp_path: Path, capsys):
    argv = ["predict", "--model", str(tmp_path / "no-model.pt"), "--device", "cuda", str(_photo(tmp_path))]
    assert main(argv) == 2
    err = _one_line_error(capsys)
    assert "--device" in err and "no CUDA device" in err


def test_build_out_file_is_a_one_line_error(tmp_path: Path, capsys):
    images = tmp_path / "images"
    images.mkdir()
    _photo(images)
    taken = tmp_path / "dataset"
    taken.write_text("mine")
    argv = ["build", "--format", "exif", "--images", str(images), "--world", "karhula", "--out", str(taken)]
    assert main(argv) == 2
    err = _one_line_error(capsys)
    assert "--out" in err and str(taken) in err and "not a folder" in err
    assert taken.read_text() == "mine"


def test_an_output_path_under_a_file_is_a_one_line_error(tmp_path: Path, capsys):
    taken = tmp_path / "taken"
    taken.write_text("mine")
    argv = ["predict", "--model", str(tmp_path / "no-model.pt"), "--out", str(taken / "x" / "y.json"),
            str(_photo(tmp_path))]  # fmt: skip
    assert main(argv) == 2
    assert "is a file" in _one_line_error(capsys)
    images = tmp_path / "images"
    images.mkdir()
    _photo(images)
    argv = [
        "build",
        "--format",
        "exif",
        "--images",
        str(images),
        "--world",
        "karhula",
        "--out",
        str(taken / "sub"),
    ]
    assert main(argv) == 2
    assert "not a folder" in _one_line_error(capsys)
    assert taken.read_text() == "mine"
