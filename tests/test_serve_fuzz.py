"""The OpenAPI document is the contract: requests generated from it (schemathesis) against the real service.

A real uvicorn on loopback serves the trained toy world; every operation of /openapi.json is driven with
schema-valid requests (positive) and schema-violating ones (negative), a bounded number of each, and
every response is checked: never a 5xx, status code / content type / headers / body as documented, and
data the schema forbids refused with a 4xx. The example budget keeps the module well under a minute.
"""

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from addressclip.serve.app import ServerThread, ServiceSettings, create_app
from addressclip.serve.loading import load_predictor
from addressclip.testing.toyworld import TrainedWorld

EXAMPLES = 25  # per operation and generation mode: ~8 operations x 2 modes x 25 requests
CONFORMANCE = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def server(trained_world: TrainedWorld):
    settings_ = ServiceSettings(
        max_upload_bytes=200_000,
        max_request_bytes=600_000,
        max_json_batch_bytes=400_000,
        max_batch_images=4,
        max_top_k=6,
        batch_wait_ms=1.0,
    )
    with ServerThread(create_app(load_predictor(trained_world.checkpoint), settings_)) as running:
        yield running


@pytest.fixture(scope="module")
def schema(server: ServerThread):
    document = httpx.get(server.url + "/openapi.json", timeout=10).json()
    loaded = schemathesis.openapi.from_dict(document)
    return loaded


def _operations(schema) -> list:
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 7, [op.label for op in operations]
    return operations


def _drive(operation, mode, base_url: str, checks: list) -> int:
    calls = 0

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,  # the same requests on every run: a failure is reproducible
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case) -> None:
        nonlocal calls
        calls += 1
        case.call_and_validate(base_url=base_url, checks=checks, timeout=30)

    run()
    return calls


def test_schema_valid_requests_get_documented_answers(schema, server: ServerThread):
    calls = sum(
        _drive(op, schemathesis.GenerationMode.POSITIVE, server.url, CONFORMANCE)
        for op in _operations(schema)
    )
    assert calls >= 7 * 3
    assert httpx.get(server.url + "/healthz").json()["status"] == "ok"


def test_schema_violating_requests_are_refused_with_4xx(schema, server: ServerThread):
    checks = [*CONFORMANCE, negative_data_rejection]
    driven = {}
    for op in _operations(schema):
        try:
            driven[op.label] = _drive(op, schemathesis.GenerationMode.NEGATIVE, server.url, checks)
        except Unsatisfiable:  # nothing to violate (no parameters, or a free-form string only)
            driven[op.label] = 0
    for label in ("POST /v1/predict", "POST /v1/predict/batch", "GET /v1/addresses"):
        assert driven[label] >= 3, driven
    assert httpx.get(server.url + "/readyz").status_code == 200
