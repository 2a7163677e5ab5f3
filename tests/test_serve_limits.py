"""Limits and failure behaviour of the REST service (issue 11): every check runs a real uvicorn on loopback.

Body limits per route and the in-flight byte budget, strict top_k, hostile JSON, 16-bit greyscale
images, 405 with Allow, HEAD, the OpenAPI contract, readiness, request ids and the JSON access log,
port errors of `addressclip serve`, and a graceful SIGTERM.
"""

import base64
import io
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from addressclip.cli import main
from addressclip.serve.app import ServerThread, ServiceSettings, create_app
from addressclip.serve.images import square_pixels
from addressclip.serve.loading import load_predictor
from addressclip.serve.predictor import AddressPredictor
from addressclip.testing.toyworld import TrainedWorld

MAX_UPLOAD = 200_000
SINGLE_LIMIT = MAX_UPLOAD * 4 // 3 + 64 * 1024
BATCH_MULTIPART = 600_000
BATCH_JSON = 400_000
BUDGET = 700_000


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
        max_request_bytes=BATCH_MULTIPART,
        max_json_batch_bytes=BATCH_JSON,
        max_inflight_bytes=BUDGET,
        max_pixels=4_000_000,
        max_batch_images=4,
        max_top_k=6,
    )
    with ServerThread(create_app(predictor, settings)) as running:
        yield running


@pytest.fixture(scope="module")
def client(server: ServerThread):
    with httpx.Client(base_url=server.url, timeout=30) as session:
        yield session


@pytest.fixture(scope="module")
def photo(world: TrainedWorld) -> bytes:
    return next(iter(world.train_images.values()))[0].read_bytes()


def _error(response: httpx.Response, status: int, code: str | None = None) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert error["status"] == status, error
    if code is not None:
        assert error["code"] == code, error
    return error["message"]


def _post_json_text(client: httpx.Client, text: str, path: str = "/v1/predict") -> httpx.Response:
    return client.post(path, content=text.encode(), headers={"content-type": "application/json"})


# ----------------------------------------------------------------------------- item 4 and 11: top_k, JSON
def test_top_k_infinity_and_deep_nesting_are_4xx(client: httpx.Client, photo: bytes):
    image = base64.b64encode(photo).decode()
    _error(_post_json_text(client, f'{{"image": "{image}", "top_k": Infinity}}'), 400, "bad_json")
    _error(_post_json_text(client, f'{{"image": "{image}", "top_k": NaN}}'), 400, "bad_json")
    _error(_post_json_text(client, f'{{"image": "{image}", "top_k": 1e400}}'), 422, "invalid_request")
    deep = '{"image": ' + "[" * 100_000 + "]" * 100_000 + "}"
    assert "nested too deeply" in _error(_post_json_text(client, deep), 400, "bad_json")
    deep_batch = '{"images": [' + "{" * 50_000 + "}" * 50_000 + "]}"
    _error(_post_json_text(client, deep_batch, "/v1/predict/batch"), 400, "bad_json")


def test_json_top_k_is_range_checked_and_never_truncated(client: httpx.Client, photo: bytes):
    image = base64.b64encode(photo).decode()
    for bad in (0, -1, 7, 2.7, 3.0, True, "2.7", "²", [3]):
        response = client.post("/v1/predict", json={"image": image, "top_k": bad})
        _error(response, 422, "invalid_request")
    _error(client.post("/v1/predict", files={"image": ("a.jpg", photo)}, data={"top_k": "0"}), 422)
    _error(client.post("/v1/predict", files={"image": ("a.jpg", photo)}, data={"top_k": "2.7"}), 422)
    ok = client.post("/v1/predict", json={"image": image, "top_k": 2})
    assert ok.status_code == 200 and len(ok.json()["matches"]) == 2
    form = client.post("/v1/predict", files={"image": ("a.jpg", photo)}, data={"top_k": "3"})
    assert form.status_code == 200 and len(form.json()["matches"]) == 3
    # the body's top_k wins over the query's, also when the query's is valid and the body's is not
    _error(client.post("/v1/predict?top_k=3", json={"image": image, "top_k": 0}), 422)


# ------------------------------------------------------------------------------ item 5: body limits
def test_each_route_has_its_own_body_limit(client: httpx.Client, photo: bytes):
    # GET routes take no body at all
    message = _error(client.request("GET", "/healthz", content=b"x" * 10), 413, "too_large")
    assert "takes no request body" in message
    _error(client.request("GET", "/v1/addresses", content=b"{}"), 413, "too_large")
    # a single predict: one image's worth (base64 + a little), far below a batch
    body = bytes(SINGLE_LIMIT + 1)
    message = _error(client.post("/v1/predict", content=body, headers={"content-type": "image/jpeg"}), 413)
    assert f"{SINGLE_LIMIT:,}" in message
    # the same bytes as a multipart batch pass the body check (and fail on the image itself)
    multipart = client.post("/v1/predict/batch", files=[("images", ("a.jpg", bytes(MAX_UPLOAD // 2)))] * 3)
    _error(multipart, 415, "not_image")
    # a JSON batch is capped lower than a multipart one: it is parsed in memory
    images = [base64.b64encode(bytes(MAX_UPLOAD - 10)).decode()] * 2
    assert BATCH_JSON < len(json.dumps({"images": images})) < BATCH_MULTIPART
    assert f"{BATCH_JSON:,}" in _error(client.post("/v1/predict/batch", json={"images": images}), 413)
    assert client.get("/healthz").status_code == 200


def _start_slow_upload(server: ServerThread, size: int) -> socket.socket:
    """A client that declares `size` bytes, sends a few, and keeps the request open."""
    sock = socket.create_connection((server.host, server.port))
    head = (
        f"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nContent-Length: {size}\r\n\r\n"
    )
    sock.sendall(head.encode() + bytes(1000))
    return sock


def test_inflight_budget_answers_503_with_retry_after(server: ServerThread, client: httpx.Client):
    held = [_start_slow_upload(server, SINGLE_LIMIT - 10) for _ in range(2)]  # 2 x 332 KB of 700 KB
    try:
        deadline = time.monotonic() + 10
        while client.get("/healthz").json()["inflight_bytes"]["used"] < 2 * (SINGLE_LIMIT - 10):
            assert time.monotonic() < deadline, "the slow uploads were never admitted"
            time.sleep(0.05)
        refused = client.post("/v1/predict", content=bytes(100_000), headers={"content-type": "image/png"})
        _error(refused, 503, "overloaded")
        assert refused.headers["retry-after"] == "1"
        assert client.get("/healthz").json()["inflight_bytes"]["refused"] >= 1
        assert client.get("/readyz").status_code == 200  # bodies are refused, health is not
    finally:
        for sock in held:
            sock.close()
    deadline = time.monotonic() + 10
    while client.get("/healthz").json()["inflight_bytes"]["used"] > 0:
        assert time.monotonic() < deadline, "the budget was not released when the clients went away"
        time.sleep(0.05)
    again = client.post("/v1/predict", content=bytes(100_000), headers={"content-type": "image/png"})
    _error(again, 415, "not_image")  # admitted again


# ------------------------------------------------------------------------------ item 7: 16-bit images
def _grey16_png(values: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(values.astype(np.uint16)).save(buffer, "PNG")
    return buffer.getvalue()


def test_16_bit_greyscale_png_is_scaled_not_white(client: httpx.Client, predictor: AddressPredictor):
    ramp = np.tile(np.linspace(0, 65535, 64), (48, 1)).round()
    data = _grey16_png(ramp)
    assert Image.open(io.BytesIO(data)).mode in ("I;16", "I")
    pixels = square_pixels(data, 32)
    eight_bit = io.BytesIO()
    Image.fromarray((ramp / 257).round().astype(np.uint8)).save(eight_bit, "PNG")
    expected = square_pixels(eight_bit.getvalue(), 32)
    assert pixels.mean() == pytest.approx(expected.mean(), abs=1.0)
    assert int(np.abs(pixels.astype(int) - expected.astype(int)).max()) <= 1
    assert pixels.min() < 60 and pixels.max() > 200  # not all white
    response = client.post("/v1/predict", files={"image": ("deep.png", data)})
    assert response.status_code == 200, response.text
    from_http = client.post("/v1/predict", files={"image": ("eight.png", eight_bit.getvalue())})
    assert response.json()["matches"][0]["score"] == pytest.approx(
        from_http.json()["matches"][0]["score"], abs=0.02
    )
    floats = io.BytesIO()
    Image.fromarray(ramp.astype(np.float32)).save(floats, "TIFF")
    _error(
        client.post("/v1/predict", files={"image": ("f.tif", floats.getvalue())}), 415, "unsupported_format"
    )


# --------------------------------------------------------------------------- item 13: 405 and HEAD
def test_405_has_allow_and_head_works_on_get_routes(client: httpx.Client):
    response = client.get("/v1/predict")
    _error(response, 405, "method_not_allowed")
    assert response.headers["allow"] == "POST"
    put = client.put("/healthz")
    _error(put, 405)
    assert {m.strip() for m in put.headers["allow"].split(",")} == {"GET", "HEAD"}
    for path in (
        "/healthz",
        "/readyz",
        "/v1/network",
        "/v1/addresses",
        "/",
        "/static/app.js",
        "/openapi.json",
    ):
        get = client.get(path, headers={"accept-encoding": "identity"})
        head = client.head(path, headers={"accept-encoding": "identity"})
        assert head.status_code == 200, path
        assert head.content == b"", path
        assert head.headers["content-type"] == get.headers["content-type"], path
        if path not in ("/healthz", "/readyz"):  # their bodies change between two calls
            assert head.headers["content-length"] == str(len(get.content)), path


# ------------------------------------------------------------------------------ item 14: the schema
def test_openapi_declares_the_constraints_the_server_enforces(client: httpx.Client):
    spec = client.get("/openapi.json").json()
    single = spec["paths"]["/v1/predict"]["post"]
    body = single["requestBody"]["content"]["application/json"]["schema"]
    assert body["required"] == ["image"] and body["properties"]["image"]["minLength"] == 1
    top_k = body["properties"]["top_k"]["anyOf"][0]
    assert (top_k["minimum"], top_k["maximum"]) == (1, 6)
    query = {p["name"]: p["schema"] for p in single["parameters"]}
    assert (query["top_k"]["minimum"], query["top_k"]["maximum"]) == (1, 6)
    batch = spec["paths"]["/v1/predict/batch"]["post"]["requestBody"]["content"]
    images = batch["application/json"]["schema"]["properties"]["images"]
    assert (images["minItems"], images["maxItems"]) == (1, 4)
    assert batch["multipart/form-data"]["schema"]["properties"]["images"]["maxItems"] == 4
    network = spec["paths"]["/v1/network"]["get"]["responses"]["200"]["content"]
    assert list(network) == ["application/geo+json"]
    assert client.get("/v1/network").headers["content-type"] == "application/geo+json"
    for status in ("413", "503"):
        assert status in single["responses"]
    for path in ("/v1/addresses", "/v1/addresses/{address_id}"):
        schema = spec["paths"][path]["get"]["responses"]["422"]["content"]["application/json"]["schema"]
        assert schema["$ref"].endswith("/ErrorOut")  # the error shape the server really sends


# ------------------------------------------------------- readiness, request ids, structured access log
class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def test_readiness_request_id_and_access_log(client: httpx.Client, photo: bytes):
    logger = logging.getLogger("addressclip.serve.access")
    handler, level = _Lines(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        ready = client.get("/readyz")
        assert ready.status_code == 200 and ready.json() == {"status": "ready"}
        mine = client.post(
            "/v1/predict/batch", files=[("images", ("a.jpg", photo))] * 2, headers={"X-Request-ID": "req-42"}
        )
        assert mine.status_code == 200 and mine.headers["x-request-id"] == "req-42"
        generated = client.get("/v1/addresses/nope").headers["x-request-id"]
        assert len(generated) == 32 and generated != "req-42"
        hostile = client.get("/healthz", headers={"X-Request-ID": "x" * 500}).headers["x-request-id"]
        assert hostile != "x" * 500
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    records = [json.loads(line) for line in handler.lines]
    by_id = {r["request_id"]: r for r in records}
    batch = by_id["req-42"]
    assert batch["route"] == "/v1/predict/batch" and batch["status"] == 200 and batch["images"] == 2
    assert batch["method"] == "POST" and batch["latency_ms"] > 0 and batch["bytes_in"] > 2 * len(photo)
    missing = by_id[generated]
    assert missing["route"] == "/v1/addresses/{address_id}" and missing["status"] == 404
    assert {"route", "status", "latency_ms", "images", "request_id"} <= set(records[0])


# ------------------------------------------------------------------- item 9: `addressclip serve` ports
def test_serve_refuses_bad_and_busy_ports_in_one_line(world: TrainedWorld, capsys):
    command = ["serve", "--bundle", str(world.checkpoint), "--port"]
    assert main([*command, "99999"]) == 2
    captured = capsys.readouterr()
    assert "serving" not in captured.out
    assert len(captured.err.strip().splitlines()) == 1 and "99999" in captured.err
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        assert main([*command, str(port)]) == 2
    captured = capsys.readouterr()
    assert "serving" not in captured.out
    err = captured.err.strip()
    assert len(err.splitlines()) == 1 and str(port) in err and "in use" in err


# --------------------------------------------------------------------------- graceful SIGTERM (slow)
def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_sigterm_finishes_requests_in_flight_then_exits_0(world: TrainedWorld, photo: bytes, tmp_path: Path):
    port = _free_port()
    command = [
        sys.executable, "-m", "addressclip.cli", "serve", "--bundle", str(world.checkpoint),
        "--port", str(port), "--batch-wait-ms", "1500", "--threads", "1",
    ]  # fmt: skip
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None and time.monotonic() < deadline, "the server did not come up"
            try:
                if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        answers: list[httpx.Response] = []

        def slow_predict() -> None:  # waits ~1.5 s in the micro-batcher: in flight during SIGTERM
            answers.append(httpx.post(url + "/v1/predict", files={"image": ("a.jpg", photo)}, timeout=30))

        thread = threading.Thread(target=slow_predict)
        thread.start()
        time.sleep(0.6)
        server.send_signal(signal.SIGTERM)
        thread.join(timeout=30)
        code = server.wait(timeout=30)
    finally:
        if server.poll() is None:
            server.kill()
        output = server.communicate(timeout=10)[0]
    assert answers and answers[0].status_code == 200, output
    assert code == 0, output
    access = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    assert any(r["route"] == "/v1/predict" and r["status"] == 200 for r in access), output
