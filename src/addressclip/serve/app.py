"""The REST service and its web page (FastAPI): `addressclip serve --bundle DIR`.

Endpoints (all errors are JSON, see `serve.api_errors`):
    POST /v1/predict           one photo: multipart field 'image', JSON {"image": base64}, or an image/* body
    POST /v1/predict/batch     several: multipart fields 'images', or JSON {"images": [base64, ...]}
    GET  /v1/addresses?q=      search the candidate addresses (words in any order, accents ignored)
    GET  /v1/addresses/{id}    one address as a GeoJSON Feature (sub-street geometry, lon/lat)
    GET  /v1/network           every sub-street of the AddressBook, GeoJSON (what the web map draws)
    GET  /healthz              liveness + what is loaded + batching statistics
    GET  /                     the web page (static files shipped in the package; no CDN, no tiles)
    GET  /docs                 an offline API reference rendered from /openapi.json

Concurrent predict requests are decoded in worker threads, then batched together for the model
(`serve.batching`). Clients send bytes only: no parameter names a file, and static files come from the
package's own folder through Starlette's StaticFiles (which refuses paths leaving it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, Query, Request
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from addressclip import __version__
from addressclip.serve import schemas
from addressclip.serve.api_errors import ApiError, BodyLimitMiddleware, install_error_handlers
from addressclip.serve.batching import MicroBatcher
from addressclip.serve.images import DEFAULT_MAX_PIXELS
from addressclip.serve.predictor import AddressPredictor, Prediction
from addressclip.serve.search import AddressIndex
from addressclip.serve.uploads import Upload, read_uploads

log = logging.getLogger("addressclip.serve")
STATIC_DIR = Path(__file__).parent / "static"
MiB = 1024 * 1024


@dataclass(frozen=True)
class ServiceSettings:
    """Limits and batching of the service (the `addressclip serve` options)."""

    max_upload_bytes: int = 10 * MiB  # one image
    max_request_bytes: int = 48 * MiB  # one whole request body (base64 adds a third)
    max_pixels: int = DEFAULT_MAX_PIXELS  # decompression-bomb guard, from the image header
    max_batch_images: int = 16  # images in one /v1/predict/batch request
    max_top_k: int = 50
    batch_max_images: int = 32  # images per model forward pass
    batch_wait_ms: float = 5.0  # how long the first queued request waits for company
    max_connections: int = 64  # uvicorn answers 503 beyond this many concurrent connections


def _openapi_body(many: bool) -> dict[str, Any]:
    field, binary = (
        ("images", {"type": "array", "items": {"type": "string", "format": "binary"}})
        if many
        else (
            "image",
            {"type": "string", "format": "binary"},
        )
    )
    b64 = {"type": "string", "description": "base64 (a data: URL is accepted)"}
    json_schema = {
        "type": "object",
        "required": [field],
        "properties": {field: {"type": "array", "items": b64} if many else b64, "top_k": {"type": "integer"}},
    }
    content: dict[str, Any] = {
        "multipart/form-data": {
            "schema": {"type": "object", "required": [field], "properties": {field: binary}}
        },
        "application/json": {"schema": json_schema},
    }
    if not many:
        content["image/*"] = {"schema": {"type": "string", "format": "binary"}}
    return {"requestBody": {"required": True, "content": content}}


class _Service:
    """The state behind the endpoints: predictor, batcher, search index, cached network JSON."""

    def __init__(self, predictor: AddressPredictor, settings: ServiceSettings) -> None:
        self.predictor = predictor
        self.settings = settings
        predictor.max_pixels = settings.max_pixels
        predictor.max_bytes = settings.max_upload_bytes
        self.batcher = MicroBatcher(
            predictor.predict_pixels, settings.batch_max_images, settings.batch_wait_ms
        )
        self.index = AddressIndex(predictor.gallery.addresses)
        self._network: bytes | None = None

    def network_json(self) -> bytes:
        if self._network is None:
            self._network = json.dumps(self.predictor.network_geojson(), separators=(",", ":")).encode()
        return self._network

    def check_top_k(self, top_k: int) -> int:
        if not 1 <= top_k <= self.settings.max_top_k:
            raise ApiError(
                422, "invalid_request", f"top_k must be within 1..{self.settings.max_top_k}, not {top_k}"
            )
        return top_k

    async def predict(self, uploads: list[Upload], top_k: int) -> list[Prediction]:
        decode = self.predictor.decode
        pixels = await asyncio.gather(*(run_in_threadpool(decode, u.data, u.name) for u in uploads))
        results = await self.batcher.submit(np.stack(pixels), top_k, [u.name for u in uploads])
        return [replace(r, matches=r.matches[:top_k]) for r in results]


def create_app(predictor: AddressPredictor, settings: ServiceSettings | None = None) -> FastAPI:
    """The FastAPI app serving `predictor` (run it with uvicorn, or `run_server`)."""
    settings = settings or ServiceSettings()
    service = _Service(predictor, settings)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await service.batcher.start()
        try:
            yield
        finally:
            await service.batcher.stop()

    app = FastAPI(
        title="addressclip",
        version=__version__,
        description="Image Address Localization: from a street-level photo to a human-readable address.",
        docs_url=None,  # FastAPI's pages load their scripts from a CDN; /docs below is offline
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.service = service
    install_error_handlers(app)
    app.add_middleware(GZipMiddleware, minimum_size=2048)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_request_bytes)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    _add_api_routes(app, service)
    _add_page_routes(app)
    return app


def _add_api_routes(app: FastAPI, service: _Service) -> None:
    predictor = service.predictor
    settings = service.settings
    top_k_query = Query(5, description="how many addresses to return")
    geometry_query = Query(True, description="include each match's GeoJSON geometry")

    @app.post(
        "/v1/predict",
        response_model=schemas.PredictionOut,
        response_model_exclude_unset=True,  # geometry=false leaves the key out rather than null
        responses=schemas.ERROR_RESPONSES,
        openapi_extra=_openapi_body(many=False),
        summary="Predict the address of one photo",
    )
    async def predict(request: Request, top_k: int = top_k_query, geometry: bool = geometry_query) -> dict:
        body = await read_uploads(request, False, 1, settings.max_upload_bytes)
        k = service.check_top_k(body.top_k or top_k)
        [result] = await service.predict(body.uploads, k)
        return result.to_dict(with_geometry=geometry)

    @app.post(
        "/v1/predict/batch",
        response_model=schemas.BatchOut,
        response_model_exclude_unset=True,
        responses=schemas.ERROR_RESPONSES,
        openapi_extra=_openapi_body(many=True),
        summary="Predict the addresses of several photos",
    )
    async def predict_batch(
        request: Request, top_k: int = top_k_query, geometry: bool = geometry_query
    ) -> dict:
        body = await read_uploads(request, True, settings.max_batch_images, settings.max_upload_bytes)
        k = service.check_top_k(body.top_k or top_k)
        results = await service.predict(body.uploads, k)
        return {"predictions": [r.to_dict(with_geometry=geometry) for r in results]}

    @app.get("/v1/addresses", response_model=schemas.SearchOut, summary="Search the candidate addresses")
    async def search(
        q: str = Query("", max_length=200, description="words to find, any order, accents ignored"),
        limit: int = Query(20, ge=1, le=500),
        offset: int = Query(0, ge=0),
    ) -> dict:
        rows = service.index.search(q)
        items = [predictor.gallery.record(row) for row in rows[offset : offset + limit]]
        return {"query": q, "total": len(rows), "offset": offset, "items": items}

    @app.get(
        "/v1/addresses/{address_id}",
        response_model=schemas.AddressFeature,
        responses={404: {"model": schemas.ErrorOut}},
        summary="One address with its sub-street geometry (GeoJSON Feature)",
    )
    async def address(address_id: str) -> dict:
        row = predictor.gallery.row_of(address_id)
        if row is None:
            raise ApiError(404, "unknown_address", f"no address with id {address_id[:80]!r}")
        record = predictor.gallery.record(row)
        return {
            "type": "Feature",
            "id": record["address_id"],
            "geometry": predictor.gallery.geojson(row),
            "properties": record,
        }

    @app.get("/v1/network", summary="The street network (GeoJSON FeatureCollection, lon/lat)")
    async def network() -> Response:
        return Response(service.network_json(), media_type="application/geo+json")

    @app.get("/healthz", response_model=schemas.HealthOut, summary="Liveness and what is loaded")
    async def healthz() -> dict:
        gallery = predictor.gallery
        calibration = predictor.calibration
        return {
            "status": "ok",
            "addresses": len(gallery),
            "seen_in_training": int(gallery.table["seen_in_training"].sum()),
            "device": str(predictor.device),
            "image_size": predictor.image_size,
            "calibrated": calibration is not None,
            "threshold": calibration.threshold if calibration else None,
            "limits": {k: int(v) for k, v in asdict(settings).items() if k.startswith("max_")},
            "batching": service.batcher.stats.to_dict(),
        }


def _add_page_routes(app: FastAPI) -> None:
    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> FileResponse:
        return FileResponse(STATIC_DIR / "docs.html", media_type="text/html")


# ------------------------------------------------------------------------------------- running
def run_server(
    predictor: AddressPredictor,
    host: str = "127.0.0.1",
    port: int = 8000,
    settings: ServiceSettings | None = None,
    log_level: str = "info",
) -> None:
    """Serve until interrupted (what `addressclip serve` runs)."""
    import uvicorn

    settings = settings or ServiceSettings()
    uvicorn.run(
        create_app(predictor, settings),
        host=host,
        port=port,
        log_level=log_level,
        timeout_keep_alive=5,
        limit_concurrency=settings.max_connections,
    )


class ServerThread:
    """A real uvicorn server on a free loopback port in a background thread (tests, benchmarks).

    with ServerThread(create_app(predictor)) as server:
        httpx.get(server.url + "/healthz")
    """

    def __init__(self, app: FastAPI, host: str = "127.0.0.1", log_level: str = "warning") -> None:
        import uvicorn

        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, 0))
        self.host, self.port = self._socket.getsockname()[:2]
        config = uvicorn.Config(app, log_level=log_level, timeout_keep_alive=5)
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self._socket]}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 20.0) -> ServerThread:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=10)
        self._socket.close()

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
