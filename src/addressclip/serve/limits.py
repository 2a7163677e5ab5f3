"""Request-body limits per route and a global in-flight byte budget (an ASGI middleware).

A single-photo predict needs one image's worth of body, a batch a few, and a GET none; one limit
sized for the largest batch and applied everywhere let any route take ~224 MB, and a few concurrent
maximal bodies held gigabytes. So each request gets the limit of its route (`BodyLimits.limit_for`),
checked on the declared Content-Length before anything is read and again while a streamed (chunked)
body arrives, and every admitted body reserves its bytes in a process-wide `InFlightBudget`. When the
budget is spent the request is answered `503` with `Retry-After` at once, instead of being admitted
and pushing the machine into swap; the bytes are released when the response has been sent.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from addressclip.serve.api_errors import error_body

SINGLE_ROUTE = "/v1/predict"
BATCH_ROUTE = "/v1/predict/batch"
SEQUENCE_ROUTE = "/v1/predict/sequence"  # JSON only: takes the batch JSON limit
JSON_OVERHEAD = 64 * 1024  # JSON keys, a data: URL prefix, multipart headers around one image
RETRY_AFTER_S = 1


@dataclass(frozen=True)
class BodyLimits:
    """Largest body per route, in bytes (0: no body at all)."""

    single: int  # POST /v1/predict, any encoding: one image (base64 inflates it by 4/3)
    batch_multipart: int  # POST /v1/predict/batch as multipart (parts are spooled to disk as they arrive)
    batch_json: int  # POST /v1/predict/batch as JSON (parsed in memory: about 3x the body while it is)

    @classmethod
    def for_upload(cls, max_upload: int, batch_multipart: int, batch_json: int) -> BodyLimits:
        return cls(max_upload * 4 // 3 + JSON_OVERHEAD, batch_multipart, batch_json)

    def limit_for(self, method: str, path: str, content_type: str) -> int:
        if method != "POST":
            return 0  # GET, HEAD, OPTIONS, ... carry no body here
        if path.rstrip("/") == SINGLE_ROUTE:
            return self.single
        if path.rstrip("/") == BATCH_ROUTE:
            return self.batch_json if content_type.startswith("application/json") else self.batch_multipart
        if path.rstrip("/") == SEQUENCE_ROUTE:
            return self.batch_json
        return 0  # no other route takes a body (they answer 404/405)


class InFlightBudget:
    """Bytes of request bodies admitted and not yet answered, across all connections."""

    def __init__(self, capacity: int) -> None:
        self.capacity = int(capacity)
        self.used = 0
        self.peak = 0
        self.refused = 0
        self._lock = threading.Lock()

    def reserve(self, size: int) -> bool:
        with self._lock:
            if size > 0 and self.used + size > self.capacity:
                self.refused += 1
                return False
            self.used += size
            self.peak = max(self.peak, self.used)
            return True

    def release(self, size: int) -> None:
        with self._lock:
            self.used -= size

    def to_dict(self) -> dict[str, int]:
        return {"capacity": self.capacity, "used": self.used, "peak": self.peak, "refused": self.refused}


class BodyRefused(Exception):
    """Raised from `receive` when a streamed body passes its limit or the budget (re-raise it)."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return ""


class RequestLimitMiddleware:
    """413 above the route's body limit, 503 + Retry-After when the in-flight budget is spent."""

    def __init__(self, app: ASGIApp, limits: BodyLimits, budget: InFlightBudget) -> None:
        self.app = app
        self.limits = limits
        self.budget = budget

    @staticmethod
    async def _reply(send: Send, status: int, code: str, message: str, extra: list | None = None) -> None:
        body = json.dumps(error_body(status, code, message)).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers + (extra or [])})
        await send({"type": "http.response.body", "body": body})

    async def _too_large(self, send: Send, limit: int, path: str) -> None:
        message = (
            f"{path} takes no request body"
            if limit == 0
            else f"request body is larger than the limit of {limit:,} bytes for {path}"
        )
        await self._reply(send, 413, "too_large", message)

    async def _busy(self, send: Send) -> None:
        message = "the server is busy with other uploads; retry in a moment"
        extra = [(b"retry-after", str(RETRY_AFTER_S).encode())]
        await self._reply(send, 503, "overloaded", message, extra)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        content_type = _header(scope, b"content-type").split(";", 1)[0].strip().lower()
        limit = self.limits.limit_for(scope.get("method", "GET"), path, content_type)
        declared_text = _header(scope, b"content-length").strip()
        declared = int(declared_text) if declared_text.isdigit() else None
        if declared is not None and declared > limit:
            await self._too_large(send, limit, path)
            return
        reserved = declared or 0
        if not self.budget.reserve(reserved):
            await self._busy(send)
            return
        received = 0
        started = False

        async def guarded_receive() -> Message:
            nonlocal received, reserved
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyRefused(413)
                if received > reserved:  # a chunked body: reserve as it arrives
                    if not self.budget.reserve(received - reserved):
                        raise BodyRefused(503)
                    reserved = received
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, guarded_receive, tracking_send)
        except BodyRefused as refused:
            if not started:
                if refused.status == 413:
                    await self._too_large(send, limit, path)
                else:
                    await self._busy(send)
        finally:
            self.budget.release(reserved)
