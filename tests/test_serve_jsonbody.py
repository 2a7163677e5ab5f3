"""The JSON body parser that cuts long base64 literals out before `json.loads` (serve/jsonbody.py)."""

from __future__ import annotations

import base64
import json
import os

import pytest

from addressclip.serve.api_errors import ApiError
from addressclip.serve.jsonbody import LONG_STRING, JsonBodyError, RawString, parse_json_body
from addressclip.serve.uploads import decode_base64


def _plain(value: object) -> object:
    """The parsed body with every RawString turned back into str, for comparing with json.loads."""
    if isinstance(value, RawString):
        return value.data.tobytes().decode("ascii")
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


LONG = base64.b64encode(os.urandom(LONG_STRING)).decode()


@pytest.mark.parametrize(
    "body",
    [
        {"image": LONG, "top_k": 5},
        {"images": [LONG, {"image": LONG + "", "filename": 'a "quoted" name\\'}, "short"], "top_k": "3"},
        {"nested": [[[{"deep": LONG}]]], "x": None, "y": [1.5, True, False]},
        {"image": "data:image/png;base64," + LONG},
        {"escaped_short": 'say "hi" \\ \n', "image": LONG},
        {"unicode": "Töölö", "image": LONG},  # not ASCII: the whole body goes to json.loads
        {"image": LONG[:100]},  # nothing long: plain parse
    ],
)
def test_same_value_as_json_loads(body: dict) -> None:
    raw = json.dumps(body, ensure_ascii=False).encode()
    assert _plain(parse_json_body(raw)) == json.loads(raw)


def test_long_literals_come_back_as_views_of_the_body() -> None:
    parsed = parse_json_body(json.dumps({"images": [LONG, LONG], "top_k": 2}).encode())
    assert all(isinstance(item, RawString) and len(item) == len(LONG) for item in parsed["images"])
    assert parsed["top_k"] == 2


def test_a_long_literal_with_an_escape_is_parsed_the_plain_way() -> None:
    text = LONG[:1000] + "\\/" + LONG[1000:]  # '\/' is a legal escape some encoders write for '/'
    parsed = parse_json_body(('{"image": "' + text + '"}').encode())
    assert isinstance(parsed["image"], str) and parsed["image"] == LONG[:1000] + "/" + LONG[1000:]


def test_a_placeholder_lookalike_in_the_body_is_left_alone() -> None:
    body = {"image": LONG, "note": "\x00long-string:0000000000000000:0"}
    assert _plain(parse_json_body(json.dumps(body).encode())) == body


@pytest.mark.parametrize(
    "raw",
    [
        b'{"image": "' + LONG.encode() + b'"',  # truncated: no closing brace
        b'{"image": "' + LONG.encode(),  # unterminated string
        b'{"image": "' + LONG.encode() + b'", "top_k": NaN}',
        b'{"image": "' + LONG.encode() + b'" "x": 1}',  # missing comma
        b"[" * 100_000 + b"]" * 100_000,
        b"",
    ],
    ids=["truncated", "unterminated", "nan", "syntax", "deep", "empty"],
)
def test_bad_bodies_raise_one_error_type(raw: bytes) -> None:
    with pytest.raises(JsonBodyError, match="request body is"):
        parse_json_body(raw)


def test_decode_base64_reads_views_and_data_urls() -> None:
    payload = os.urandom(LONG_STRING)
    text = base64.b64encode(payload).decode()
    wrapped = "\n".join(text[i : i + 76] for i in range(0, len(text), 76))
    for body in ({"image": text}, {"image": "data:image/jpeg;base64," + text}, {"image": wrapped}):
        parsed = parse_json_body(json.dumps(body).encode())
        assert decode_base64(parsed["image"], "image") == payload
    for bad in (text[:-1], "!" * LONG_STRING, text[:-4] + "=AAA"):
        parsed = parse_json_body(json.dumps({"image": bad}).encode())
        with pytest.raises(ApiError, match="image: not valid base64"):
            decode_base64(parsed["image"], "image")
