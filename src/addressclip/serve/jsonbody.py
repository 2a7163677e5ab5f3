"""Parse a request's JSON body without holding the GIL for the length of its base64 images.

`json.loads` of a 13 MB body (one 10 MB photo in base64) builds one 13-million-character `str` in a
single C call: 40-60 ms during which no other thread of the server runs, the event loop included, so
/healthz waits behind every large upload. Here the long string literals (over `LONG_STRING` bytes)
are cut out of the body before parsing — found with `bytes.find`, which is fast — and come back as
`RawString` views of the body's bytes; the short rest is parsed by `json.loads` as usual. The base64
decoder (`serve.uploads`) then reads the views in steps, letting other threads run in between.

The fast path only takes what it can keep exactly: an all-ASCII body, literals without escapes
(base64 is that). Anything else — an escape sequence, a non-ASCII byte, a body with very many
strings — goes to `json.loads` whole, so the result and the errors are those of the standard parser.
One difference: a raw control character inside a long literal, which `json.loads` refuses, is left
to the consumer (the base64 decoder refuses it too, with its own 400).
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import Any

LONG_STRING = 64 * 1024  # literals at least this long (in bytes) are cut out of the body
MAX_QUOTES = 4096  # bodies with more quote characters than this are parsed the plain way
BACKSLASH = 0x5C


@dataclass(frozen=True)
class RawString:
    """A long JSON string literal (ASCII, no escapes) as a view of the body's bytes."""

    data: memoryview

    def __len__(self) -> int:
        return len(self.data)


class JsonBodyError(ValueError):
    """The body is not standard JSON (NaN, Infinity, bad syntax) or is nested too deeply."""


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _string_end(raw: bytes, start: int) -> int:
    """Index of the quote closing the literal opened at `start`, or -1 when it never closes."""
    end = start
    while True:
        end = raw.find(b'"', end + 1)
        if end < 0:
            return -1
        backslashes = 0
        while raw[end - 1 - backslashes] == BACKSLASH:
            backslashes += 1
        if backslashes % 2 == 0:
            return end


def _cut_long_strings(raw: bytes) -> tuple[bytes, dict[str, RawString]] | None:
    """The body with long literals replaced by unique placeholders, and what each stands for."""
    if len(raw) < LONG_STRING or not raw.isascii() or raw.count(b'"') > MAX_QUOTES:
        return None
    nonce = secrets.token_hex(8)
    pieces: list[bytes] = []
    cut: dict[str, RawString] = {}
    copied = 0
    start = raw.find(b'"')
    while start >= 0:
        end = _string_end(raw, start)
        if end < 0:
            return None  # an unterminated string: json.loads says so
        if end - start - 1 >= LONG_STRING and raw.find(b"\\", start, end) < 0:
            key = f"\x00long-string:{nonce}:{len(cut)}"
            cut[key] = RawString(memoryview(raw)[start + 1 : end])
            pieces += [raw[copied:start], json.dumps(key).encode()]
            copied = end + 1
        start = raw.find(b'"', end + 1)
    if not cut:
        return None
    pieces.append(raw[copied:])
    return b"".join(pieces), cut


def _put_back(value: Any, cut: dict[str, RawString]) -> Any:
    """Replace the placeholders in the parsed body (iteratively: the body may be deeply nested)."""
    if isinstance(value, str):
        return cut.get(value, value)
    stack = [value]
    while stack:
        node = stack.pop()
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, item in list(items):
            if isinstance(item, str) and item in cut:
                node[key] = cut[item]
            elif isinstance(item, dict | list):
                stack.append(item)
    return value


def parse_json_body(raw: bytes) -> Any:
    """Standard JSON (no NaN/Infinity); long ASCII string literals come back as `RawString`.

    Raises JsonBodyError with a short reason for anything `json.loads` refuses.
    """
    split = _cut_long_strings(raw)
    text, cut = split if split is not None else (raw, {})
    try:
        parsed = json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        raise JsonBodyError("request body is nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as error:
        detail = str(error).split(":")[0][:80] if isinstance(error, ValueError) else "not UTF-8"
        raise JsonBodyError(f"request body is not valid JSON ({detail})") from None
    return _put_back(parsed, cut) if cut else parsed
