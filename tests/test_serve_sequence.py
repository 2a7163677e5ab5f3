"""Photo sequences through the predictor, the command line and the service (real model, real HTTP)."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from addressclip.errors import AddressclipError
from addressclip.geo.sequence import TransitionParams
from addressclip.serve.app import ServerThread, ServiceSettings, create_app
from addressclip.serve.loading import load_predictor
from addressclip.serve.predictor import AddressPredictor
from addressclip.serve.sequences import exif_time, order_by_exif_time
from addressclip.testing.toyworld import TrainedWorld


@pytest.fixture(scope="module")
def predictor(trained_world: TrainedWorld) -> AddressPredictor:
    return load_predictor(trained_world.checkpoint)


def test_a_walk_on_one_substreet_decodes_to_it_despite_wrong_frames(predictor, trained_world):
    address, photos, wrong = trained_world.walk_with_wrong_frames()
    result = predictor.predict_sequence(photos, top_k=3)
    per_photo = [p.top.address for p in result.predictions]
    assert [i for i, a in enumerate(per_photo) if a != address] == wrong  # single frames are wrong
    assert result.addresses == [address] * len(photos)  # the sequence is not
    assert [s["agrees_with_photo"] for s in result.path] == [i not in wrong for i in range(len(photos))]
    assert len(result.segments) == 1 and result.segments[0]["first"] == 0
    assert result.segments[0]["last"] == len(photos) - 1
    assert result.segments[0]["geometry"]["type"] in ("LineString", "MultiLineString")
    for t, ranked in enumerate(result.posteriors):
        assert len(ranked) == 3 and ranked[0]["address"] == address, t
        assert sum(r["probability"] for r in ranked) <= 1 + 1e-6
    # the per-photo answers are exactly what predict() gives
    alone = predictor.predict(photos, top_k=3)
    assert [p.to_dict() for p in alone] == [p.to_dict() for p in result.predictions]
    # with a transition model that makes every jump free, the photos are on their own again
    loose = predictor.predict_sequence(photos, params=TransitionParams(move=0.5, jump=0.49))
    assert loose.addresses == per_photo


def test_adjacency_is_cached_per_gallery_and_follows_the_geometry(predictor):
    first = predictor.sequence_adjacency()
    assert predictor.sequence_adjacency() is first
    dense = first.toarray()
    assert dense.shape == (len(predictor.gallery),) * 2 and (dense == dense.T).all()
    assert dense.sum() >= 2  # the two Hurukselantie pieces meet
    predictor.add_addresses(["Nowhere Street 1"])
    try:
        grown = predictor.sequence_adjacency()
        assert grown.shape == (len(predictor.gallery),) * 2 and grown[-1].nnz == 0  # no geometry: isolated
    finally:
        predictor.gallery = predictor.gallery.__class__(
            predictor.gallery.table.iloc[:-1].copy(), predictor.gallery.projection
        )
        predictor._embeddings = predictor._embeddings[:-1]


def test_timestamps_and_positions_set_the_gaps(predictor, trained_world):
    _, photos, _ = trained_world.walk_with_wrong_frames()
    stamps = [10.0 * i for i in range(len(photos))]
    timed = predictor.predict_sequence(photos, timestamps=stamps)
    assert timed.gap_unit == "seconds" and timed.gaps == [10.0] * (len(photos) - 1)
    placed = predictor.predict_sequence(photos, positions=np.arange(len(photos)) * 10.0)
    assert placed.gap_unit == "metres"
    assert placed.to_dict(with_geometry=False)["segments"][0].keys() == {
        "first",
        "last",
        "address_id",
        "address",
    }


def test_a_sequence_encodes_each_photo_once_and_keeps_the_out_of_city_score(trained_world):
    """With a score that is not the top-1 cosine (mahalanobis), the flag's score is computed from the
    features the ranking used: one image-tower pass per photo, the same scores as predict()."""
    flagged = load_predictor(
        trained_world.checkpoint, cache_embeddings=False, out_of_city_score="mahalanobis"
    )
    _, photos, _ = trained_world.walk_with_wrong_frames()
    pixels = np.stack([flagged.decode(p) for p in photos])
    encoded = []
    encode_image = flagged.model.encode_image

    def counting(batch):
        encoded.append(len(batch))
        return encode_image(batch)

    flagged.model.encode_image = counting
    try:
        result = flagged.predict_sequence_pixels(pixels, [str(p) for p in photos])
        assert sum(encoded) == len(photos)
        alone = flagged.predict_pixels(pixels, names=[str(p) for p in photos])
    finally:
        flagged.model.encode_image = encode_image
    assert all(p.in_city_score is not None for p in result.predictions)
    assert [p.to_dict() for p in alone] == [p.to_dict() for p in result.predictions]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"timestamps": [1.0, 2.0]}, "timestamps hold 2 values for 8 photos"),
        ({"positions": [0.0] * 8, "timestamps": [0.0] * 8}, "not both"),
        ({"timestamps": [0, 1, 2, 3, 2, 5, 6, 7]}, "decrease from photo 3 to 4"),
        ({"positions": [0, 1, 2, 3, 4, 5, 6, float("nan")]}, "NaN"),
    ],
)
def test_bad_sequences_are_one_line_errors(predictor, trained_world, kwargs, message):
    _, photos, _ = trained_world.walk_with_wrong_frames()
    with pytest.raises(AddressclipError, match=message):
        predictor.predict_sequence(photos, **kwargs)


def test_an_empty_sequence_is_an_error(predictor):
    with pytest.raises(AddressclipError, match="no photos"):
        predictor.predict_sequence([])


def test_decoding_speed_through_predict_sequence(predictor, trained_world):
    """100 photos: the image tower dominates; the decoding itself is a few milliseconds."""
    photos = [p for images in trained_world.train_images.values() for p in images][:100]
    while len(photos) < 100:
        photos += photos[: 100 - len(photos)]
    pixels = np.stack([predictor.decode(p) for p in photos])
    predictor.predict_sequence_pixels(pixels[:4])  # warm-up
    start = time.perf_counter()
    result = predictor.predict_sequence_pixels(pixels, [str(p) for p in photos])
    total = time.perf_counter() - start
    log_probs = predictor.rank_all(pixels, 1)[3]
    start = time.perf_counter()
    predictor.decode_sequence(result.predictions, log_probs, None, TransitionParams())
    decoding = time.perf_counter() - start
    print(f"predict_sequence, 100 photos: {1000 * total:.1f} ms in all, {1000 * decoding:.1f} ms decoding")
    assert len(result) == 100 and decoding < 2.0


# ------------------------------------------------------------------------------------- EXIF order
def _jpeg_with_time(path: Path, stamp: str | None, colour: int) -> Path:
    image = Image.new("RGB", (48, 40), (colour, 90, 160))
    exif = Image.Exif()
    if stamp is not None:
        exif.get_ifd(0x8769)[36867] = stamp
    image.save(path, exif=exif.tobytes())
    return path


def test_exif_time_order(tmp_path: Path):
    a = _jpeg_with_time(tmp_path / "a.jpg", "2024:05:01 10:00:30", 10)
    b = _jpeg_with_time(tmp_path / "b.jpg", "2024:05:01 10:00:00", 20)
    c = _jpeg_with_time(tmp_path / "c.jpg", None, 30)
    assert exif_time(a) - exif_time(b) == pytest.approx(30.0) and exif_time(c) is None
    ordered, times = order_by_exif_time([a, b])
    assert ordered == [b, a] and times[1] - times[0] == pytest.approx(30.0)
    with pytest.raises(AddressclipError, match=r"c\.jpg.*--order name"):
        order_by_exif_time([a, c])


# ------------------------------------------------------------------------------------- REST, real HTTP
@pytest.fixture(scope="module")
def server(predictor: AddressPredictor):
    settings = ServiceSettings(
        max_upload_bytes=200_000, max_sequence_images=10, max_top_k=6, batch_wait_ms=1.0
    )
    with ServerThread(create_app(predictor, settings)) as running:
        yield running


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def test_sequence_endpoint_over_http(server, predictor, trained_world):
    address, photos, wrong = trained_world.walk_with_wrong_frames()
    body = {
        "images": [
            _b64(p) if i % 2 else {"image": _b64(p), "filename": p.name} for i, p in enumerate(photos)
        ],
        "timestamps": [7.0 * i for i in range(len(photos))],
        "top_k": 2,
    }
    response = httpx.post(server.url + "/v1/predict/sequence", json=body, timeout=30)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert [step["address"] for step in answer["path"]] == [address] * len(photos)
    assert [p["matches"][0]["address"] != address for p in answer["predictions"]] == [
        i in wrong for i in range(len(photos))
    ]
    assert answer["predictions"][0]["source"] == photos[0].name and answer["path"][1]["source"] == "images[1]"
    assert len(answer["predictions"][0]["matches"]) == 2 and len(answer["posteriors"][3]) == 2
    assert answer["gap_unit"] == "seconds" and len(answer["segments"]) == 1
    assert answer["segments"][0]["geometry"]["type"] in ("LineString", "MultiLineString")
    expected = predictor.predict_sequence(photos, timestamps=body["timestamps"], top_k=2)
    assert answer["log_likelihood"] == pytest.approx(expected.log_likelihood)
    lean = httpx.post(server.url + "/v1/predict/sequence?geometry=false", json=body, timeout=30).json()
    assert "geometry" not in lean["segments"][0] and "geometry" not in lean["predictions"][0]["matches"][0]


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"images": []}, 422, "missing_image"),
        ({"images": ["AAAA"] * 11}, 413, "too_many_images"),
        ({"images": ["not base64!"]}, 400, "bad_base64"),
        ({"images": ["PHOTO", "PHOTO"], "timestamps": [1.0]}, 422, "invalid_sequence"),
        ({"images": ["PHOTO", "PHOTO"], "timestamps": [2.0, 1.0]}, 422, "invalid_sequence"),
        ({"images": ["PHOTO"], "timestamps": [1.0], "positions": [1.0]}, 422, "invalid_sequence"),
        ({"images": ["PHOTO"], "positions": ["x"]}, 422, "invalid_request"),
        ({"images": ["PHOTO"], "top_k": 7}, 422, "invalid_request"),
        ({"images": [base64.b64encode(b"not an image").decode()]}, 415, "not_image"),
    ],
)
def test_sequence_endpoint_refuses_bad_requests(server, trained_world, body, status, code):
    photo = _b64(next(iter(trained_world.train_images.values()))[0])
    body = {
        k: [photo if v == "PHOTO" else v for v in value] if k == "images" else value
        for k, value in body.items()
    }
    response = httpx.post(server.url + "/v1/predict/sequence", json=body, timeout=30)
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code


def test_sequence_endpoint_takes_json_only(server):
    response = httpx.post(server.url + "/v1/predict/sequence", files={"images": ("a.jpg", b"x")}, timeout=30)
    assert response.status_code == 415 and "application/json" in response.json()["error"]["message"]


def test_buildings_and_network_for_the_map(server, predictor):
    buildings = httpx.get(server.url + "/v1/buildings", timeout=60)
    assert buildings.status_code == 200 and buildings.headers["content-type"] == "application/geo+json"
    features = buildings.json()["features"]
    assert len(features) > 100 and features[0]["geometry"]["type"] == "Polygon"
    ring = features[0]["geometry"]["coordinates"][0]
    assert ring[0] == ring[-1] and 26 < ring[0][0] < 28 and 60 < ring[0][1] < 61
    network = httpx.get(server.url + "/v1/network", timeout=30).json()
    assert network["gallery_addresses"] == len(predictor.gallery) == 6
    assert sum(f["properties"]["in_gallery"] for f in network["features"]) == 6 < len(network["features"])


# ----------------------------------------------------------------------------------- command line
def test_predict_sequence_command(trained_world, tmp_path: Path):
    address, photos, wrong = trained_world.walk_with_wrong_frames()
    folder = tmp_path / "walk"
    folder.mkdir()
    for index, photo in enumerate(photos):  # natural order: 2.jpg before 10.jpg
        (folder / f"{2 + 4 * index}.jpg").write_bytes(photo.read_bytes())
    command = [sys.executable, "-m", "addressclip.cli", "predict", "--sequence", str(folder)]
    command += ["--model", str(trained_world.checkpoint)]
    done = subprocess.run([*command, "--format", "json"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert [Path(s["source"]).name for s in answer["path"]] == [
        f"{2 + 4 * i}.jpg" for i in range(len(photos))
    ]
    assert [s["address"] for s in answer["path"]] == [address] * len(photos)
    assert [not s["agrees_with_photo"] for s in answer["path"]] == [i in wrong for i in range(len(photos))]
    table = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert table.returncode == 0 and "changed 2 answer(s)" in table.stdout
    by_time = subprocess.run([*command, "--order", "exif-time"], capture_output=True, text=True, timeout=300)
    assert by_time.returncode == 2 and "--order name" in by_time.stderr and "Traceback" not in by_time.stderr
