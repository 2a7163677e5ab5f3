"""Bundles: export, then load offline from a copy with the training data gone; refusals."""

import json
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest

from addressclip.errors import AddressclipError, InputError
from addressclip.serve.bundle import BUNDLE_FILE, GALLERY_FILE, is_bundle
from addressclip.serve.loading import load_predictor
from addressclip.serve.predictor import AddressPredictor
from addressclip.testing.toyworld import TrainedWorld


@pytest.fixture(scope="session")
def world(trained_world) -> TrainedWorld:
    return trained_world


def _no_network(monkeypatch) -> None:
    def refuse(*_args, **_kwargs):
        raise AssertionError("a bundle must load without the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_round_trip_offline_without_the_training_data(world: TrainedWorld, tmp_path: Path, monkeypatch):
    # a private copy of the run and its dataset, deleted once the bundle is written
    copy = tmp_path / "copy"
    shutil.copytree(world.root / "world", copy / "world")
    checkpoint = Path(shutil.copy(world.checkpoint, copy / "model.pt"))
    original = load_predictor(checkpoint, manifest=copy / "world" / "manifest.parquet")
    added = original.add_addresses(["Imaginary Road & Nowhere Lane, Testville"])
    bundle = original.export(tmp_path / "bundle")
    assert is_bundle(bundle)
    meta = json.loads((bundle / BUNDLE_FILE).read_text())
    assert meta["addresses"] == 7 and meta["seen_in_training"] == 6 and meta["projection"] == "35V"
    assert meta["calibration"]["threshold"] == pytest.approx(original.calibration.threshold)
    assert set(meta["files"]) >= {
        "model.pt",
        "addresses.parquet",
        GALLERY_FILE,
        "addressbook/addressbook.parquet",
    }

    probes = [p.read_bytes() for p in list(world.train_images.values())[2][:3]]
    expected = original.predict(probes, top_k=7)
    shutil.rmtree(copy)
    moved = Path(shutil.move(bundle, tmp_path / "elsewhere"))

    _no_network(monkeypatch)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(
        AddressPredictor, "_encode_texts", lambda *_: pytest.fail("gallery.npz should be used")
    )
    loaded = load_predictor(moved)
    assert loaded.gallery.addresses == original.gallery.addresses
    assert list(loaded.gallery.table["seen_in_training"]) == [True] * 6 + [False]
    assert loaded.calibration == original.calibration
    assert loaded.model.preprocess == original.model.preprocess
    assert np.array_equal(loaded.embeddings.numpy(), original.embeddings.numpy())
    assert loaded.network_geojson() == original.network_geojson()
    got = loaded.predict(probes, top_k=7)
    for before, after in zip(expected, got, strict=True):
        assert [m.to_dict() for m in after.matches] == [m.to_dict() for m in before.matches]
        assert after.out_of_city == before.out_of_city
    assert loaded.gallery.row_of(added[0]) == 6


def test_export_refuses_to_overwrite_and_checks_its_files(world: TrainedWorld, tmp_path: Path):
    predictor = load_predictor(world.checkpoint)
    bundle = predictor.export(tmp_path / "bundle")
    with pytest.raises(AddressclipError, match="--force"):
        predictor.export(bundle)
    stamp = json.loads((bundle / BUNDLE_FILE).read_text())["created_utc"]
    predictor.export(bundle, force=True)
    assert is_bundle(bundle) and json.loads((bundle / BUNDLE_FILE).read_text())["created_utc"] >= stamp
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left behind

    other = tmp_path / "notes"
    other.mkdir()
    (other / "readme.txt").write_text("mine")
    with pytest.raises(AddressclipError, match="not a bundle"):
        predictor.export(other, force=True)
    assert (other / "readme.txt").read_text() == "mine"

    (bundle / GALLERY_FILE).unlink()
    with pytest.raises(InputError, match=GALLERY_FILE):
        load_predictor(bundle)
    (bundle / BUNDLE_FILE).write_text('{"format": "something-else"}')
    with pytest.raises(InputError, match="not an addressclip bundle"):
        load_predictor(bundle)


def test_bundle_with_a_new_addressbook_switches_to_the_open_set(world: TrainedWorld, tmp_path: Path):
    bundle = load_predictor(world.checkpoint).export(tmp_path / "bundle")
    wide = load_predictor(bundle, all_addresses=True)
    assert len(wide.gallery) == 170
    assert int(wide.gallery.table["seen_in_training"].sum()) == 6
    assert (bundle / GALLERY_FILE).is_file() and len(list(bundle.glob("gallery-*.npz"))) == 1
