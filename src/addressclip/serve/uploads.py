"""Read the images of a predict request: multipart files, JSON with base64, or a raw image body.

Only bytes come out of here — never a path: nothing a client sends is used to open a file. The limits
(per-image bytes, number of images) are checked here; the body as a whole is capped by
`serve.limits` (per route, plus the in-flight budget), and decoding limits (pixels, formats) by
`serve.images`.
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from addressclip.serve.api_errors import ApiError
from addressclip.serve.jsonbody import JsonBodyError, RawString, parse_json_body
from addressclip.serve.limits import BodyRefused

IMAGE_FIELDS = ("image", "file")  # multipart field names for /v1/predict
BATCH_FIELDS = ("images", "image", "files", "file")
MAX_NAME = 200


@dataclass
class Upload:
    name: str  # the client's file name (display only), or 'images[i]'
    data: bytes


@dataclass
class UploadRequest:
    uploads: list[Upload]
    top_k: int | None  # from the body (form field or JSON key), overriding the query parameter


def _display_name(raw: Any, fallback: str) -> str:
    name = str(raw or "").replace("\\", "/").rsplit("/", 1)[-1].strip()
    return name[:MAX_NAME] or fallback


def _too_large(where: str, size: int, limit: int) -> ApiError:
    return ApiError(413, "too_large", f"{where}: image is {size:,} bytes, above the limit of {limit:,}")


def decode_base64(text: Any, where: str) -> bytes:
    """Strict base64 (a `data:` URL prefix and line breaks allowed) from a JSON string value."""
    if isinstance(text, RawString):
        data: str | memoryview = text.data
    elif isinstance(text, str):
        data = text
    else:
        raise ApiError(400, "bad_base64", f"{where}: expected a base64 string")
    head = bytes(data[:64]) if isinstance(data, memoryview) else data[:64].encode("ascii", "replace")
    if head.startswith(b"data:") and b"," in head:  # a data URL, as a browser's FileReader gives
        data = data[head.index(b",") + 1 :]
    try:
        return _b64decode_in_steps(data)
    except (binascii.Error, ValueError):
        pass
    try:  # line-wrapped base64 (as `base64` the command writes): drop the whitespace, once
        joined = b"".join(bytes(data).split()) if isinstance(data, memoryview) else "".join(data.split())
        return _b64decode_in_steps(joined)
    except (binascii.Error, ValueError):
        raise ApiError(400, "bad_base64", f"{where}: not valid base64") from None


B64_STEP = 1 << 18  # characters per decoding call (a multiple of 4)


def _b64decode_in_steps(text: str | bytes | memoryview) -> bytes:
    """Strict base64 decoding, 256 KiB of text per C call.

    One call on a 13 MB upload holds the GIL for 60-170 ms, which stalls the event loop (and /healthz)
    for as long; in steps, other threads run between them.
    """
    if len(text) % 4:
        raise binascii.Error("incorrect padding")
    tail = len(text) - 2
    head = text[:tail]
    if (head.find("=") if isinstance(head, str) else bytes(head).find(b"=")) != -1:
        raise binascii.Error("padding only at the very end")
    return b"".join(
        binascii.a2b_base64(text[start : start + B64_STEP], strict_mode=True)
        for start in range(0, len(text), B64_STEP)
    )


def body_top_k(value: Any, where: str) -> int | None:
    """The body's top_k: a whole number (JSON integer, or digits in a form field), never coerced.

    2.7, "2.7", true, 1e400 (Infinity) and friends are refused with 422 rather than truncated; the
    range is checked by the caller, for the body and the query parameter alike.
    """
    if value is None or value == "":
        return None
    if isinstance(value, str) and re.fullmatch(r"[+-]?[0-9]{1,6}", value.strip()):
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    shown = repr(value)[:40]
    raise ApiError(422, "invalid_request", f"{where}: top_k must be a whole number, not {shown}")


def parse_json(raw: bytes) -> Any:
    """Standard JSON only: NaN/Infinity and nesting deeper than the parser's stack are 400s.

    Long base64 strings come back as `RawString` views (see `serve.jsonbody`): pass them to
    `decode_base64`.
    """
    try:
        return parse_json_body(raw)
    except JsonBodyError as error:
        raise ApiError(400, "bad_json", str(error)) from None


async def _from_form(
    request: Request, fields: tuple[str, ...], max_images: int, max_bytes: int
) -> UploadRequest:
    try:
        form = await request.form(max_files=max_images + 1, max_fields=16, max_part_size=64 * 1024)
    except BodyRefused:
        raise  # over the body limit or the budget: the middleware answers 413/503
    except Exception as error:  # starlette raises MultiPartException / HTTPException for broken bodies
        detail = getattr(error, "message", None) or getattr(error, "detail", None) or str(error)
        raise ApiError(400, "bad_multipart", f"malformed multipart body ({detail})") from None
    files: list[UploadFile] = []
    for field in fields:
        files.extend(v for v in form.getlist(field) if isinstance(v, UploadFile))
    if not files:
        names = " or ".join(f"'{f}'" for f in fields[:2])
        raise ApiError(422, "missing_image", f"multipart body has no file field {names}")
    if len(files) > max_images:
        raise ApiError(
            413, "too_many_images", f"{len(files)} images in one request, above the limit of {max_images}"
        )
    uploads = []
    for index, file in enumerate(files):
        data = await file.read(max_bytes + 1)
        name = _display_name(file.filename, f"images[{index}]")
        if len(data) > max_bytes:
            raise _too_large(name, file.size or len(data), max_bytes)
        uploads.append(Upload(name, data))
    return UploadRequest(uploads, body_top_k(form.get("top_k"), "form field"))


def json_upload(item: Any, where: str, max_bytes: int) -> Upload:
    """One JSON image: a base64 string, or {"image": base64, "filename": name}."""
    name = where
    if isinstance(item, dict):
        name = _display_name(item.get("filename"), where)
        item = item.get("image")
    data = decode_base64(item, where)
    if len(data) > max_bytes:
        raise _too_large(where, len(data), max_bytes)
    return Upload(name, data)


def _json_uploads(chunks: list[bytes], many: bool, max_images: int, max_bytes: int) -> UploadRequest:
    body = parse_json(b"".join(chunks))
    if not isinstance(body, dict):
        raise ApiError(400, "bad_json", "JSON body must be an object")
    top_k = body_top_k(body.get("top_k"), "JSON")
    if not many:
        if "image" not in body:
            raise ApiError(422, "missing_image", 'JSON body needs "image": a base64 string')
        return UploadRequest([json_upload(body, "image", max_bytes)], top_k)
    items = body.get("images")
    if not isinstance(items, list) or not items:
        raise ApiError(422, "missing_image", 'JSON body needs "images": a non-empty list of base64 strings')
    if len(items) > max_images:
        raise ApiError(
            413, "too_many_images", f"{len(items)} images in one request, above the limit of {max_images}"
        )
    uploads = [json_upload(item, f"images[{i}]", max_bytes) for i, item in enumerate(items)]
    return UploadRequest(uploads, top_k)


# How blocking work leaves the event loop: `await offload(fn, *args)` (the service passes its
# lower-priority BulkRunner; the default is Starlette's thread pool as it is).
Offload = Callable[..., Awaitable[Any]]


async def _from_json(
    request: Request, many: bool, max_images: int, max_bytes: int, offload: Offload
) -> UploadRequest:
    # joined, parsed and base64-decoded in a worker thread: a large body must not stall the event
    # loop (and with it /healthz) for the milliseconds that takes
    return await offload(_json_uploads, await body_chunks(request), many, max_images, max_bytes)


async def body_chunks(request: Request) -> list[bytes]:
    """The body's chunks, not cached on the request (Request.body() keeps a copy until the response)."""
    return [chunk async for chunk in request.stream()]


async def read_uploads(
    request: Request,
    many: bool,
    max_images: int,
    max_bytes: int,
    offload: Offload = run_in_threadpool,
) -> UploadRequest:
    """The request's image bytes, whatever the accepted encoding; ApiError for anything else."""
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if content_type == "multipart/form-data":
        return await _from_form(request, BATCH_FIELDS if many else IMAGE_FIELDS, max_images, max_bytes)
    if content_type == "application/json":
        return await _from_json(request, many, max_images, max_bytes, offload)
    if not many and (content_type.startswith("image/") or content_type == "application/octet-stream"):
        data = await offload(b"".join, await body_chunks(request))
        if len(data) > max_bytes:
            raise _too_large("body", len(data), max_bytes)
        return UploadRequest([Upload("image", data)], None)
    accepted = "multipart/form-data (field 'image'), application/json ({\"image\": base64})"
    if not many:
        accepted += " or an image/* body"
    raise ApiError(
        415,
        "unsupported_media_type",
        f"Content-Type '{content_type or 'none'}' not accepted: send {accepted}",
    )
