"""Every error the service returns is JSON: `{"error": {"status", "code", "message"}}`.

Clients (and the web page) branch on `code`, people read `message`. Validation errors, unknown routes,
rejected images and oversized bodies all take this shape; an unexpected exception becomes a 500 with a
generic message (the details go to the server log, never to the client).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from addressclip.errors import AddressclipError
from addressclip.serve.images import ImageRejected

log = logging.getLogger("addressclip.serve")

_STATUS_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    500: "internal_error",
    503: "overloaded",
}


class ApiError(Exception):
    """An error with its HTTP status and machine-readable code, raised by the endpoints."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def error_body(status: int, code: str, message: str) -> dict[str, Any]:
    return {"error": {"status": status, "code": code, "message": message}}


def error_response(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse(error_body(status, code, message), status_code=status)


def _validation_message(error: RequestValidationError) -> str:
    parts = []
    for item in error.errors()[:3]:
        where = ".".join(str(p) for p in item.get("loc", ()) if p != "body")
        parts.append(f"{where}: {item.get('msg', 'invalid')}" if where else str(item.get("msg", "invalid")))
    return "; ".join(parts) or "invalid request"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_: Request, error: ApiError) -> JSONResponse:
        return error_response(error.status, error.code, error.message)

    @app.exception_handler(ImageRejected)
    async def image_rejected(_: Request, error: ImageRejected) -> JSONResponse:
        return error_response(error.http_status, error.code, str(error))

    @app.exception_handler(AddressclipError)
    async def user_error(_: Request, error: AddressclipError) -> JSONResponse:
        return error_response(400, "bad_request", str(error))

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, error: RequestValidationError) -> JSONResponse:
        return error_response(422, "invalid_request", _validation_message(error))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, error: StarletteHTTPException) -> JSONResponse:
        code = _STATUS_CODES.get(error.status_code, "http_error")
        message = error.detail if isinstance(error.detail, str) else code.replace("_", " ")
        response = error_response(error.status_code, code, message)
        headers = dict(error.headers or {})
        allow = headers.get("Allow")
        if allow is not None and "GET" in allow and "HEAD" not in allow:
            headers["Allow"] = allow + ", HEAD"  # every GET route answers HEAD (serve.access)
        response.headers.update(headers)  # 405 keeps its Allow header (RFC 9110)
        return response

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return error_response(500, "internal_error", "internal error (see the server log)")
