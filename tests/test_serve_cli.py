"""`addressclip predict` / `export` / `serve` from the command line."""

import csv
import io
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from addressclip.cli import main
from addressclip.testing.toyworld import TrainedWorld


@pytest.fixture(scope="session")
def world(trained_world) -> TrainedWorld:
    return trained_world


@pytest.fixture(scope="module")
def folder(world: TrainedWorld, tmp_path_factory) -> Path:
    """Two images of each of two addresses in nested folders, plus a broken file and a text file."""
    root = tmp_path_factory.mktemp("photos")
    for index, images in enumerate(list(world.train_images.values())[:2]):
        sub = root / f"street{index}"
        sub.mkdir()
        for image in images[:2]:
            (sub / image.name).write_bytes(image.read_bytes())
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (root / "notes.txt").write_text("not an image, not even looked at")
    return root


def test_predict_json_on_files_and_folders_skips_and_lists_bad_files(world, folder, capsys):
    single = next(iter(world.train_images.values()))[0]
    code = main(
        [
            "predict",
            str(single),
            str(folder),
            "--model",
            str(world.checkpoint),
            "--format",
            "json",
            "--top-k",
            "2",
        ]
    )
    assert code == 0
    captured = capsys.readouterr()
    predictions = json.loads(captured.out)
    assert Path(predictions[0]["source"]).name == single.name
    assert len(predictions) == 1 + 4  # the text file is not an image suffix; the broken one is skipped
    assert all(len(p["matches"]) == 2 and "geometry" not in p["matches"][0] for p in predictions)
    assert predictions[0]["matches"][0]["address"] == next(iter(world.train_images))
    assert "skipped 1 of 6 file(s)" in captured.err and "broken.jpg" in captured.err


def test_predict_table_and_csv_to_a_file(world, folder, tmp_path, capsys):
    run_folder = str(world.root / "run")
    assert (
        main(["predict", str(folder / "street1"), "--model", run_folder, "--top-k", "3", "--threads", "1"])
        == 0
    )
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:4] == ["image", "rank", "address", "score"]
    assert len(table) == 2 + 2 * 3
    assert list(world.train_images)[1] in table[2]
    out = tmp_path / "out" / "predictions.csv"
    assert (
        main(["predict", str(folder), "--model", str(world.checkpoint), "--format", "csv", "--out", str(out)])
        == 0
    )
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert len(rows) == 4 * 5 and rows[0]["rank"] == "1"
    assert {r["seen_in_training"] for r in rows} == {"true"} and float(rows[0]["lat"]) > 60
    assert "wrote 4 prediction(s)" in capsys.readouterr().err


def test_predict_errors_are_one_line_exit_2(world, tmp_path, capsys):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"nope")
    assert main(["predict", str(bad), "--model", str(world.checkpoint)]) == 2
    err = capsys.readouterr().err
    assert "none of the 1 file(s) could be read" in err.splitlines()[-1]
    assert main(["predict", str(tmp_path / "missing.jpg"), "--model", str(world.checkpoint)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "missing.jpg" in err and "not found" in err
    assert main(["predict", str(bad), "--model", str(tmp_path / "no-model.pt")]) == 2
    assert "no-model.pt" in capsys.readouterr().err


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow  # a service subprocess
def test_export_then_serve_the_bundle_in_a_subprocess(world, tmp_path, capsys):
    bundle = tmp_path / "bundle"
    assert main(["export", "--model", str(world.checkpoint), "--out", str(bundle)]) == 0
    printed = capsys.readouterr().out
    assert "addresses: 6 (6 seen in training)" in printed and "out-of-city threshold" in printed
    assert main(["export", "--model", str(world.checkpoint), "--out", str(bundle)]) == 2
    assert "--force" in capsys.readouterr().err

    port = _free_port()
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    command = [sys.executable, "-m", "addressclip.cli", "serve", "--bundle", str(bundle), "--port", str(port)]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True)
    try:
        deadline = time.monotonic() + 60
        health = None
        while time.monotonic() < deadline and server.poll() is None:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).json()
                break
            except httpx.TransportError:
                time.sleep(0.2)
        assert health is not None, "the server did not come up"
        assert health["addresses"] == 6 and health["calibrated"] is True
        image = next(iter(world.train_images.values()))[0].read_bytes()
        answer = httpx.post(
            f"http://127.0.0.1:{port}/v1/predict", files={"image": ("x.jpg", image)}, timeout=10
        )
        assert answer.status_code == 200 and answer.json()["matches"][0]["address"] == next(
            iter(world.train_images)
        )
    finally:
        server.terminate()
        output = server.communicate(timeout=20)[0]
    assert f"serving 6 addresses on http://127.0.0.1:{port}/" in output


def test_held_out_report_for_make_demo(world):
    from addressclip.serve.formatting import held_out_report
    from addressclip.serve.loading import load_predictor

    predictor = load_predictor(world.checkpoint)
    report = held_out_report(predictor, str(world.manifest), count=4, split="val", top_k=2)
    lines = report.splitlines()
    assert lines[0].split()[:4] == ["image", "rank", "address", "true?"]
    assert len(lines) == 2 + 4 * 2 + 1
    hits = int(lines[-1].split("top-1 correct on ")[1].split()[0])
    assert lines[-1].endswith("of 4 held-out val images")
    assert hits == sum(1 for line in lines[2:-1] if line.split()[1:2] == ["1"] and " yes " in line)
