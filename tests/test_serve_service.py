"""The REST service over a real uvicorn on loopback: happy paths, batching, and every bad input."""

import base64
import concurrent.futures
import io
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from addressclip.serve.app import ServerThread, ServiceSettings, create_app
from addressclip.serve.loading import load_predictor
from addressclip.serve.predictor import AddressPredictor
from addressclip.testing.toyworld import TrainedWorld

MAX_UPLOAD = 200_000
MAX_REQUEST = 600_000


@pytest.fixture(scope="session")
def world(trained_world) -> TrainedWorld:
    return trained_world


@pytest.fixture(scope="module")
def predictor(world: TrainedWorld) -> AddressPredictor:
    return load_predictor(world.checkpoint)


@pytest.fixture(scope="module")
def server(predictor: AddressPredictor):
    settings = ServiceSettings(
        max_upload_bytes=MAX_UPLOAD,
        max_request_bytes=MAX_REQUEST,
        max_pixels=4_000_000,
        max_batch_images=4,
        max_top_k=6,
        batch_wait_ms=40.0,
    )
    with ServerThread(create_app(predictor, settings)) as running:
        yield running


@pytest.fixture(scope="module")
def client(server: ServerThread):
    with httpx.Client(base_url=server.url, timeout=30) as session:
        yield session


@pytest.fixture(scope="module")
def photo(world: TrainedWorld) -> tuple[str, bytes]:
    address, images = next(iter(world.train_images.items()))
    return address, images[0].read_bytes()


def _error(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert error["status"] == status and error["code"] == code, error
    return error["message"]


def _png(size: tuple[int, int], mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size).save(buffer, "PNG")
    return buffer.getvalue()


# ------------------------------------------------------------------------------------- happy paths
def test_predict_multipart_json_and_raw_body_agree(client: httpx.Client, photo, predictor):
    address, data = photo
    expected = predictor.predict_one(data, top_k=3)
    multipart = client.post(
        "/v1/predict", params={"top_k": 3}, files={"image": ("street.jpg", data, "image/jpeg")}
    )
    as_json = client.post("/v1/predict", json={"image": base64.b64encode(data).decode(), "top_k": 3})
    data_url = "data:image/jpeg;base64," + base64.b64encode(data).decode()
    as_data_url = client.post("/v1/predict?top_k=3", json={"image": data_url})
    raw = client.post("/v1/predict?top_k=3", content=data, headers={"content-type": "image/jpeg"})
    for response in (multipart, as_json, as_data_url, raw):
        assert response.status_code == 200, response.text
        body = response.json()
        assert [m["address_id"] for m in body["matches"]] == [m.address_id for m in expected.matches]
        assert body["matches"][0]["address"] == address
        assert body["out_of_city"] is False and body["threshold"] == pytest.approx(
            predictor.calibration.threshold
        )
    first = multipart.json()
    assert first["source"] == "street.jpg"
    match = first["matches"][0]
    assert match["geometry"]["type"] in ("LineString", "MultiLineString")
    assert match["seen_in_training"] is True and 60 < match["lat"] < 61 and 26 < match["lon"] < 28
    lean = client.post("/v1/predict?geometry=false", files={"image": ("a.jpg", data)}).json()
    assert len(lean["matches"]) == 5 and "geometry" not in lean["matches"][0]


def test_batch_endpoint_keeps_order(client: httpx.Client, world: TrainedWorld):
    addresses = list(world.train_images)[:3]
    images = [world.train_images[a][1].read_bytes() for a in addresses]
    files = [("images", (f"{i}.jpg", data, "image/jpeg")) for i, data in enumerate(images)]
    response = client.post("/v1/predict/batch", params={"top_k": 2}, files=files)
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    assert [p["source"] for p in predictions] == ["0.jpg", "1.jpg", "2.jpg"]
    assert [p["matches"][0]["address"] for p in predictions] == addresses
    as_json = client.post(
        "/v1/predict/batch", json={"images": [base64.b64encode(d).decode() for d in images]}
    )
    assert [p["matches"][0]["address"] for p in as_json.json()["predictions"]] == addresses
    assert [p["source"] for p in as_json.json()["predictions"]] == ["images[0]", "images[1]", "images[2]"]


def test_concurrent_requests_are_batched_together(server: ServerThread, client: httpx.Client, photo):
    before = client.get("/healthz").json()["batching"]
    _, data = photo

    def one(_: int) -> int:
        with httpx.Client(base_url=server.url, timeout=30) as own:
            return own.post("/v1/predict", files={"image": ("a.jpg", data)}).status_code

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(one, range(16)))
    assert statuses == [200] * 16
    after = client.get("/healthz").json()["batching"]
    assert after["images"] - before["images"] == 16
    assert after["batches"] - before["batches"] < 16  # some requests shared a forward pass
    assert after["largest_batch"] >= 2


def test_addresses_search_lookup_network_and_health(client: httpx.Client, predictor: AddressPredictor):
    everything = client.get("/v1/addresses", params={"limit": 500}).json()
    assert everything["total"] == 6 and len(everything["items"]) == 6
    target = everything["items"][0]
    street = target["street"].split(",")[0]
    # case and accents ignored, words in any order
    query = f"{target['neighbourhood'].upper()} {street.lower()}".replace("ä", "a")
    found = client.get("/v1/addresses", params={"q": query}).json()
    assert target["address_id"] in [item["address_id"] for item in found["items"]]
    assert client.get("/v1/addresses", params={"q": "no such street anywhere"}).json()["total"] == 0
    page = client.get("/v1/addresses", params={"limit": 2, "offset": 4}).json()
    assert [i["address_id"] for i in page["items"]] == [i["address_id"] for i in everything["items"][4:6]]

    feature = client.get(f"/v1/addresses/{target['address_id']}").json()
    assert feature["type"] == "Feature" and feature["id"] == target["address_id"]
    assert feature["geometry"]["type"] in ("LineString", "MultiLineString")
    assert feature["properties"]["address"] == target["address"]
    _error(client.get("/v1/addresses/a000000000000"), 404, "unknown_address")

    network = client.get("/v1/network")
    assert network.status_code == 200 and network.headers["content-type"] == "application/geo+json"
    features = network.json()["features"]
    assert len(features) == 170 and sum(f["properties"]["in_gallery"] for f in features) == 6
    health = client.get("/healthz").json()
    assert health["status"] == "ok" and health["addresses"] == 6 and health["seen_in_training"] == 6
    assert health["limits"]["max_upload_bytes"] == MAX_UPLOAD and health["image_size"] == 32


def test_openapi_and_pages_are_served_offline(client: httpx.Client):
    spec = client.get("/openapi.json").json()
    assert {
        "/v1/predict",
        "/v1/predict/batch",
        "/v1/addresses",
        "/v1/addresses/{address_id}",
        "/healthz",
    } <= set(spec["paths"])
    assert "multipart/form-data" in spec["paths"]["/v1/predict"]["post"]["requestBody"]["content"]
    for page in ("/", "/docs", "/static/app.js", "/static/style.css"):
        response = client.get(page)
        assert response.status_code == 200, page
        assert "cdn" not in response.text.lower() and "https://" not in response.text


# ------------------------------------------------------------------------------------ bad inputs
def test_not_an_image_and_unsupported_format_are_415(client: httpx.Client):
    message = _error(
        client.post("/v1/predict", files={"image": ("notes.txt", b"hello world", "text/plain")}),
        415,
        "not_image",
    )
    assert message.startswith("notes.txt: ")
    icon = io.BytesIO()
    Image.new("RGB", (32, 32)).save(icon, "ICO")
    assert "ICO" in _error(
        client.post("/v1/predict", files={"image": ("x.ico", icon.getvalue())}), 415, "unsupported_format"
    )
    _error(client.post("/v1/predict", content=b"", headers={"content-type": "image/png"}), 415, "not_image")


def test_truncated_image_is_422(client: httpx.Client):
    jpeg = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (300, 300, 3), dtype=np.uint8)).save(
        jpeg, "JPEG"
    )
    cut = jpeg.getvalue()[: len(jpeg.getvalue()) // 2]
    assert "truncated" in _error(
        client.post("/v1/predict", files={"image": ("cut.jpg", cut)}), 422, "corrupt_image"
    )


def test_decompression_bomb_and_oversized_uploads_are_413(client: httpx.Client):
    bomb = _png((4000, 2000), "L")  # 8 MP of zeros: ~10 KB on the wire
    assert len(bomb) < MAX_UPLOAD
    assert "pixels" in _error(
        client.post("/v1/predict", files={"image": ("bomb.png", bomb)}), 413, "too_many_pixels"
    )
    big = b"\xff\xd8" + bytes(MAX_UPLOAD + 10)
    _error(client.post("/v1/predict", files={"image": ("big.jpg", big)}), 413, "too_large")
    _error(client.post("/v1/predict", json={"image": base64.b64encode(big).decode()}), 413, "too_large")


def test_request_body_limit_declared_and_streamed(server: ServerThread, client: httpx.Client):
    huge = bytes(MAX_REQUEST + 1)
    _error(client.post("/v1/predict", content=huge, headers={"content-type": "image/jpeg"}), 413, "too_large")

    def chunks():
        for _ in range(20):
            yield bytes(64 * 1024)

    # chunked transfer: no Content-Length, the limit is enforced while reading
    streamed = client.post("/v1/predict", content=chunks(), headers={"content-type": "image/jpeg"})
    _error(streamed, 413, "too_large")


def test_malformed_requests_are_4xx_json(client: httpx.Client, photo):
    _, data = photo
    _error(client.post("/v1/predict", json={"image": "###not base64###"}), 400, "bad_base64")
    _error(client.post("/v1/predict", json={"image": 12}), 400, "bad_base64")
    _error(client.post("/v1/predict", json={"picture": "AAAA"}), 422, "missing_image")
    _error(
        client.post("/v1/predict", content=b"{not json", headers={"content-type": "application/json"}),
        400,
        "bad_json",
    )
    _error(client.post("/v1/predict", json=["a", "list"]), 400, "bad_json")
    _error(client.post("/v1/predict", files={"other": ("a.jpg", data)}), 422, "missing_image")
    _error(
        client.post(
            "/v1/predict", content=b"x=1", headers={"content-type": "application/x-www-form-urlencoded"}
        ),
        415,
        "unsupported_media_type",
    )
    _error(
        client.post(
            "/v1/predict",
            content=b"--xx\r\nbroken",
            headers={"content-type": "multipart/form-data; boundary=xx"},
        ),
        422,
        "missing_image",
    )
    _error(client.post("/v1/predict?top_k=0", files={"image": ("a.jpg", data)}), 422, "invalid_request")
    _error(client.post("/v1/predict?top_k=7", files={"image": ("a.jpg", data)}), 422, "invalid_request")
    _error(client.post("/v1/predict?top_k=many", files={"image": ("a.jpg", data)}), 422, "invalid_request")
    _error(
        client.post("/v1/predict", json={"image": base64.b64encode(data).decode(), "top_k": "x"}),
        422,
        "invalid_request",
    )
    too_many = [("images", (f"{i}.jpg", data)) for i in range(5)]
    _error(client.post("/v1/predict/batch", files=too_many), 413, "too_many_images")
    _error(client.post("/v1/predict/batch", json={"images": []}), 422, "missing_image")
    _error(client.post("/v1/predict/batch", json={"images": ["AAAA", "###"]}), 400, "bad_base64")
    _error(client.get("/v1/predict"), 405, "method_not_allowed")
    _error(client.get("/v1/nothing-here"), 404, "not_found")


def test_no_client_path_reaches_the_file_system(client: httpx.Client, world: TrainedWorld):
    secret = str(world.checkpoint)
    for path in (
        "/static/../../../../etc/passwd",
        "/static/%2e%2e/%2e%2e/etc/passwd",
        "/static/..%2f..%2fapp.py",
    ):
        response = client.get(path)
        assert response.status_code == 404 and "root:" not in response.text
    # a path where an image is expected is just bytes that are not an image (or not base64)
    _error(
        client.post("/v1/predict", json={"image": base64.b64encode(secret.encode()).decode()}),
        415,
        "not_image",
    )
    _error(client.post("/v1/predict", json={"image": secret}), 400, "bad_base64")
    _error(client.post("/v1/predict", json={"image": {"image": "x", "path": secret}}), 400, "bad_base64")
    _error(client.get("/v1/addresses/..%2F..%2Fetc%2Fpasswd"), 404, "not_found")


def test_server_survives_everything_above(client: httpx.Client, photo):
    address, data = photo
    response = client.post("/v1/predict", files={"image": ("again.jpg", data)})
    assert response.status_code == 200 and response.json()["matches"][0]["address"] == address
    assert client.get("/healthz").json()["status"] == "ok"


def test_settings_reach_the_predictor(predictor: AddressPredictor, server: ServerThread):
    assert predictor.max_pixels == 4_000_000 and predictor.max_bytes == MAX_UPLOAD
    assert Path(server.url).name  # the server really listens on a loopback port
    assert server.host == "127.0.0.1" and server.port > 0
