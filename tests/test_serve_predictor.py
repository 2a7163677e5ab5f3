"""AddressPredictor on a tiny trained world: answers, geometry, caches, calibration, open set."""

import shutil
from pathlib import Path

import numpy as np
import pytest
import shapely
from PIL import Image

from addressclip.data.manifest import read_manifest
from addressclip.errors import AddressclipError
from addressclip.geo.addressbook import AddressBook
from addressclip.model.checkpoint import read_checkpoint, save_checkpoint
from addressclip.serve.loading import load_predictor
from addressclip.serve.predictor import AddressPredictor
from addressclip.testing.toyworld import TrainedWorld


@pytest.fixture(scope="session")
def world(trained_world) -> TrainedWorld:
    return trained_world


@pytest.fixture(scope="module")
def predictor(world: TrainedWorld) -> AddressPredictor:
    return load_predictor(world.checkpoint)


@pytest.fixture(scope="module")
def book(world: TrainedWorld) -> AddressBook:
    return AddressBook.load(world.addressbook)


def _copy_checkpoint(world: TrainedWorld, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy(world.checkpoint, folder / "model.pt"))


def test_training_images_are_predicted_as_their_own_address(world: TrainedWorld, predictor: AddressPredictor):
    assert len(predictor.gallery) == len(world.train_images) == 6
    correct, total = 0, 0
    for address, images in world.train_images.items():
        predictions = predictor.predict(images, top_k=3)
        tops = [p.top.address for p in predictions]
        assert max(set(tops), key=tops.count) == address  # the majority answer is right for every address
        correct += sum(t == address for t in tops)
        total += len(tops)
        assert all(len(p.matches) == 3 and [m.rank for m in p.matches] == [1, 2, 3] for p in predictions)
        assert all(p.matches[0].score >= p.matches[1].score >= p.matches[2].score for p in predictions)
    assert correct / total >= 0.9, f"top-1 on training images {correct}/{total}"


def test_matches_carry_street_geometry_and_a_point_on_the_sub_street(
    world: TrainedWorld, predictor: AddressPredictor, book: AddressBook
):
    images = next(iter(world.train_images.values()))
    [prediction] = predictor.predict(images[:1], top_k=6)
    rows = book.table.set_index("address_id")
    assert abs(sum(m.probability for m in prediction.matches) - 1.0) < 1e-4  # whole gallery shown
    for match in prediction.matches:
        assert match.seen_in_training
        row = rows.loc[match.address_id]
        assert match.address == row["address"] and match.street == row["street"]
        assert match.neighbourhood == (row["neighbourhood"] or None)
        east, north = book.projection.to_utm(match.lon, match.lat)
        point = shapely.Point(float(east), float(north))
        assert row["geometry"].distance(point) < 0.5  # the point lies on the sub-street
        # half-way along it, as the estimated point is defined
        line = row["geometry"]
        if line.geom_type == "LineString":
            assert abs(line.project(point) - line.length / 2) < 0.5
        assert match.geometry["type"] in ("LineString", "MultiLineString")
        lon, lat = np.asarray(match.geometry["coordinates"][0], dtype=float)[:2]
        assert book.bounds[0] - 0.01 <= lon <= book.bounds[2] + 0.01
        assert book.bounds[1] - 0.01 <= lat <= book.bounds[3] + 0.01


def test_paths_bytes_and_pil_images_give_the_same_answer(world: TrainedWorld, predictor: AddressPredictor):
    path = next(iter(world.train_images.values()))[0]
    by_path = predictor.predict_one(path)
    by_bytes = predictor.predict_one(path.read_bytes())
    with Image.open(path) as image:
        by_pil = predictor.predict_one(image)
    assert by_path.source == str(path) and by_bytes.source == "image 0"
    for other in (by_bytes, by_pil):
        assert [m.address_id for m in other.matches] == [m.address_id for m in by_path.matches]
        assert np.allclose([m.score for m in other.matches], [m.score for m in by_path.matches], atol=0.02)


def test_gallery_cache_is_written_reused_and_invalidated(world: TrainedWorld, tmp_path: Path, monkeypatch):
    checkpoint = _copy_checkpoint(world, tmp_path / "run")
    first = load_predictor(checkpoint, manifest=world.manifest, calibrate_threshold=False)
    caches = sorted((tmp_path / "run").glob("model.gallery-*.npz"))
    assert len(caches) == 1

    def refuse(*_args, **_kwargs):
        raise AssertionError("the cached embeddings should have been used")

    with monkeypatch.context() as patch:
        patch.setattr(AddressPredictor, "_encode_texts", refuse)
        again = load_predictor(checkpoint, manifest=world.manifest, calibrate_threshold=False)
    assert np.array_equal(again.embeddings.numpy(), first.embeddings.numpy())

    # another AddressBook (one street moved 5 m): another key, another file
    book = AddressBook.load(world.addressbook)
    row = book.table.index[book.table["address"] == first.gallery.addresses[0]][0]
    book.table.at[row, "geometry"] = shapely.affinity.translate(book.table.at[row, "geometry"], 5.0, 0.0)
    load_predictor(checkpoint, manifest=world.manifest, addressbook=book, calibrate_threshold=False)
    assert len(list((tmp_path / "run").glob("model.gallery-*.npz"))) == 2

    # other weights: another key
    payload = read_checkpoint(checkpoint)
    model = first.model
    model.clip.logit_scale.data += 0.5
    save_checkpoint(checkpoint, model, run_config=payload["run_config"])
    model.clip.logit_scale.data -= 0.5
    load_predictor(checkpoint, manifest=world.manifest, calibrate_threshold=False)
    assert len(list((tmp_path / "run").glob("model.gallery-*.npz"))) == 3

    # a damaged cache file is recomputed, not trusted
    caches[0].write_bytes(b"not a cache")
    rebuilt = load_predictor(
        _copy_checkpoint(world, tmp_path / "run"), manifest=world.manifest, calibrate_threshold=False
    )
    assert np.allclose(rebuilt.embeddings.numpy(), first.embeddings.numpy(), atol=1e-6)
    assert caches[0].read_bytes() != b"not a cache"


def test_out_of_city_threshold_is_the_first_percentile_of_val_scores(world: TrainedWorld, tmp_path: Path):
    checkpoint = _copy_checkpoint(world, tmp_path / "run")
    predictor = load_predictor(checkpoint, manifest=world.manifest)
    calibration = predictor.calibration
    assert calibration is not None and calibration.split == "val" and calibration.percentile == 1.0
    manifest = read_manifest(world.manifest)
    val = [manifest.image_path(p) for p in manifest.split("val")["path"]]
    assert calibration.images == len(val) == 12
    assert calibration.score == "mahalanobis"  # the default; its score comes with each prediction
    predictions = predictor.predict(val, top_k=1)
    scores = np.array([p.in_city_score for p in predictions])
    tolerance = 1e-5 * max(1.0, abs(calibration.threshold))
    assert calibration.threshold == pytest.approx(np.percentile(scores, 1.0, method="lower"), abs=tolerance)
    assert calibration.threshold == pytest.approx(
        scores.min(), abs=tolerance
    )  # 12 images: 1 % is below the lowest
    assert [p.out_of_city for p in predictions] == [bool(p.in_city_score < p.threshold) for p in predictions]
    assert not any(p.out_of_city for p in predictions)  # no in-city calibration photo is flagged
    assert len(list((tmp_path / "run").glob("model.calibration-*.json"))) == 1
    # uncalibrated predictor: no flag rather than a made-up one
    bare = load_predictor(checkpoint, manifest=world.manifest, calibrate_threshold=False)
    assert bare.calibration is None and bare.predict_one(val[0]).out_of_city is None


def test_add_addresses_without_retraining(world: TrainedWorld, tmp_path: Path, book: AddressBook):
    predictor = load_predictor(
        _copy_checkpoint(world, tmp_path / "run"), manifest=world.manifest, calibrate_threshold=False
    )
    unseen = book.table[~book.table["address"].isin(predictor.gallery.addresses)].iloc[0]
    line = unseen["geometry"]
    lon, lat = book.projection.to_lonlat(
        *np.asarray(line.coords if line.geom_type == "LineString" else line.geoms[0].coords).T
    )
    geojson = {"type": "LineString", "coordinates": np.column_stack([lon, lat]).tolist()}
    added = predictor.add_addresses(
        ["Imaginary Road & Nowhere Lane, Testville", {"address": unseen["address"], "geometry": geojson}]
    )
    assert len(added) == 2 and len(predictor.gallery) == 8
    assert predictor.add_addresses(["Imaginary Road & Nowhere Lane, Testville"]) == []  # already there
    expected = predictor.model.encode_text(["Imaginary Road & Nowhere Lane, Testville"]).detach().numpy()[0]
    assert np.allclose(predictor.embeddings[6].numpy(), expected, atol=1e-5)
    prediction = predictor.predict_one(next(iter(world.train_images.values()))[0], top_k=8)
    by_id = {m.address_id: m for m in prediction.matches}
    assert not by_id[added[0]].seen_in_training and by_id[added[0]].lat is None
    placed = by_id[added[1]]
    assert not placed.seen_in_training and placed.geometry["type"] == "LineString"
    east, north = book.projection.to_utm(placed.lon, placed.lat)
    assert line.distance(shapely.Point(float(east), float(north))) < 1.0
    assert sum(m.seen_in_training for m in prediction.matches) == 6
    with pytest.raises(AddressclipError, match="empty address"):
        predictor.add_addresses([""])


def test_all_addresses_matches_the_whole_addressbook(
    world: TrainedWorld, predictor: AddressPredictor, book: AddressBook
):
    everything = load_predictor(world.checkpoint, all_addresses=True, calibrate_threshold=False)
    assert len(everything.gallery) == len(book) == 170
    seen = everything.gallery.table[everything.gallery.table["seen_in_training"]]
    assert sorted(seen["address"]) == sorted(predictor.gallery.addresses)
    network = everything.network_geojson()
    assert len(network["features"]) == len(book)
    assert all(f["properties"]["in_gallery"] for f in network["features"])
    assert sum(f["properties"]["in_gallery"] for f in predictor.network_geojson()["features"]) == 6


def test_a_checkpoint_whose_manifest_is_gone_says_what_to_pass(world: TrainedWorld, tmp_path: Path):
    checkpoint = _copy_checkpoint(world, tmp_path / "run")
    payload = read_checkpoint(checkpoint)
    run_config = dict(payload["run_config"], data="moved/away/manifest.parquet")
    model = load_predictor(checkpoint, manifest=world.manifest, calibrate_threshold=False).model
    save_checkpoint(checkpoint, model, run_config=run_config)
    with pytest.raises(AddressclipError, match="--manifest") as caught:
        load_predictor(checkpoint)
    assert "moved/away/manifest.parquet" in str(caught.value)
    # with the AddressBook alone it works, every address unseen
    alone = load_predictor(checkpoint, addressbook=world.addressbook)
    assert len(alone.gallery) == 170 and not alone.gallery.table["seen_in_training"].any()
