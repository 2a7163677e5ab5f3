"""Per-request plumbing of the service: request ids, one JSON access-log line, HEAD on GET routes.

Every response carries `X-Request-ID`: the client's own (when it is a sane token) or a fresh one, so a
user reporting a problem can quote it and it can be found in the log. The log line is JSON (one per
request, logger `addressclip.serve.access`) with the route template rather than the raw path, so that
log tools can group by endpoint without ids in the way.

HEAD is answered for every GET route (RFC 9110 requires it): the request runs as a GET and the body is
dropped on the way out, the headers (Content-Length included) stay those of the GET.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

access_log = logging.getLogger("addressclip.serve.access")
REQUEST_ID_HEADER = b"x-request-id"
_SANE_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")


def request_id_of(scope: Scope) -> str:
    """The client's X-Request-ID if it is a short printable token, else a new random one."""
    for key, value in scope.get("headers", ()):
        if key == REQUEST_ID_HEADER:
            text = value.decode("latin-1").strip()
            if _SANE_ID.fullmatch(text):
                return text
            break
    return uuid.uuid4().hex


class AccessMiddleware:
    """Request id in and out, HEAD served as GET without a body, one JSON log line per request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = request_id_of(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        head = scope.get("method") == "HEAD"
        # the app sees a GET; the server keeps its own scope (uvicorn's httptools protocol reads the
        # method there to know that a HEAD response carries no body)
        app_scope = {**scope, "method": "GET"} if head else scope
        status = 500
        bytes_in = 0

        async def counting_receive() -> Message:
            nonlocal bytes_in
            message = await receive()
            if message["type"] == "http.request":
                bytes_in += len(message.get("body", b""))
            return message

        async def wrapped_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers = [(k, v) for k, v in message.get("headers", ()) if k.lower() != REQUEST_ID_HEADER]
                message = {**message, "headers": [*headers, (REQUEST_ID_HEADER, request_id.encode())]}
            elif head and message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        try:
            await self.app(app_scope, counting_receive, wrapped_send)
        finally:
            self._log(app_scope, scope["method"], request_id, status, bytes_in, started)

    @staticmethod
    def _log(scope: Scope, method: str, request_id: str, status: int, bytes_in: int, started: float) -> None:
        if not access_log.isEnabledFor(logging.INFO):
            return
        route = scope.get("route")
        state = scope.get("state", {})
        client = scope.get("client")
        record = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "request_id": request_id,
            "method": method,
            "route": getattr(route, "path", None) or "(unmatched)",
            "path": scope.get("path", "")[:200],
            "status": status,
            "latency_ms": round((time.perf_counter() - started) * 1000.0, 2),
            "bytes_in": bytes_in,
            "images": int(state.get("images", 0)),
            "client": client[0] if client else None,
        }
        access_log.info(json.dumps(record, separators=(",", ":")))
