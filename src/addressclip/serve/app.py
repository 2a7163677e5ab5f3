"""The REST service and its web page (FastAPI): `addressclip serve --bundle DIR`.

Endpoints (all errors are JSON, see `serve.api_errors`):
    POST /v1/predict           one photo: multipart field 'image', JSON {"image": base64}, or an image/* body
    POST /v1/predict/batch     several: multipart fields 'images', or JSON {"images": [base64, ...]}
    POST /v1/predict/sequence  photos of one walk, in order: JSON {"images": [...], "timestamps"|"positions"}
                               -> per-photo answers, the decoded sub-street path and its posteriors
    GET  /v1/addresses?q=      search the candidate addresses (words in any order, accents ignored)
    GET  /v1/addresses/{id}    one address as a GeoJSON Feature (sub-street geometry, lon/lat)
    GET  /v1/network           every sub-street of the AddressBook, GeoJSON (what the web map draws)
    GET  /v1/buildings         building footprints around the streets, GeoJSON (from the AddressBook's
                               OSM extract when it can be found; else an empty collection saying why)
    GET  /healthz              liveness + what is loaded + batching statistics
    GET  /readyz               readiness: 200 while the model is loaded and requests are taken, else 503
    GET  /                     the web page (static files shipped in the package; no CDN, no tiles)
    GET  /docs                 an offline API reference rendered from /openapi.json

Concurrent predict requests are decoded in worker threads, then batched together for the model
(`serve.batching`). Clients send bytes only: no parameter names a file, and static files come from the
package's own folder through Starlette's StaticFiles (which refuses paths leaving it).

Limits (README "Limits and failure behaviour"): each route has its own body limit and all bodies in
flight share one byte budget (`serve.limits`); decoding runs on a few threads only, so that the pixels
of many concurrent uploads never sit in memory at once. GET routes answer HEAD too, every response
carries `X-Request-ID`, and each request is logged as one JSON line (`serve.access`). SIGTERM stops
accepting connections, lets the requests in flight finish, and exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import socket
import sys
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, Query, Request
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from addressclip import __version__
from addressclip.errors import AddressclipError
from addressclip.serve import schemas
from addressclip.serve.access import AccessMiddleware
from addressclip.serve.api_errors import ApiError, error_body, install_error_handlers
from addressclip.serve.batching import MicroBatcher
from addressclip.serve.images import DEFAULT_MAX_PIXELS
from addressclip.serve.limits import BodyLimits, InFlightBudget, RequestLimitMiddleware
from addressclip.serve.predictor import AddressPredictor, Prediction
from addressclip.serve.priority import DEFAULT_BULK_NICE, BulkRunner
from addressclip.serve.search import AddressIndex
from addressclip.serve.sequences import sequence_params
from addressclip.serve.uploads import (
    Upload,
    body_chunks,
    body_top_k,
    json_upload,
    parse_json,
    read_uploads,
)

log = logging.getLogger("addressclip.serve")
STATIC_DIR = Path(__file__).parent / "static"
MiB = 1024 * 1024


@dataclass(frozen=True)
class ServiceSettings:
    """Limits and batching of the service (the `addressclip serve` options). Sizes in bytes."""

    max_upload_bytes: int = 10 * MiB  # one image; POST /v1/predict takes 4/3 of it (+64 KiB) as body
    max_request_bytes: int = 64 * MiB  # POST /v1/predict/batch as multipart (spooled to disk while read)
    max_json_batch_bytes: int = 24 * MiB  # POST /v1/predict/batch as JSON (parsed in memory: ~3x)
    max_inflight_bytes: int = 256 * MiB  # request bodies admitted at once; beyond: 503 + Retry-After
    max_pixels: int = DEFAULT_MAX_PIXELS  # decompression-bomb guard, from the image header
    max_batch_images: int = 16  # images in one /v1/predict/batch request
    max_sequence_images: int = 64  # photos in one /v1/predict/sequence request (JSON: max_json_batch_bytes)
    max_top_k: int = 50
    max_decoders: int = 2  # images decoded at once (each can hold max_pixels x 4 bytes while it is)
    batch_max_images: int = 32  # images per model forward pass
    batch_wait_ms: float = 5.0  # how long the first queued request waits for company
    max_connections: int = 64  # uvicorn answers 503 beyond this many concurrent connections
    shutdown_grace_s: float = 30.0  # on SIGTERM, how long requests in flight may take to finish
    bulk_nice: int = DEFAULT_BULK_NICE  # nice value of the decode/parse/model threads (0: as the loop)

    def body_limits(self) -> BodyLimits:
        return BodyLimits.for_upload(self.max_upload_bytes, self.max_request_bytes, self.max_json_batch_bytes)


class GeoJSONResponse(JSONResponse):
    media_type = "application/geo+json"


def _openapi_body(many: bool, settings: ServiceSettings) -> dict[str, Any]:
    """The request body as documented: the same constraints the endpoint enforces (schemas.py)."""
    model = (
        schemas.batch_json_model(settings.max_batch_images, settings.max_top_k)
        if many
        else schemas.predict_json_model(settings.max_top_k)
    )
    json_schema = schemas.inline_refs(model.model_json_schema())
    field = "images" if many else "image"
    binary = {"type": "string", "format": "binary"}
    file_schema = (
        {"type": "array", "items": binary, "minItems": 1, "maxItems": settings.max_batch_images}
        if many
        else binary
    )
    top_k = {"type": "integer", "minimum": 1, "maximum": settings.max_top_k}
    content: dict[str, Any] = {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": [field],
                "properties": {field: file_schema, "top_k": top_k},
            }
        },
        "application/json": {"schema": json_schema},
    }
    if not many:
        content["image/*"] = {"schema": binary}
    return {"requestBody": {"required": True, "content": content}}


def _sequence_openapi_body(settings: ServiceSettings) -> dict[str, Any]:
    model = schemas.sequence_json_model(settings.max_sequence_images, settings.max_top_k)
    json_schema = schemas.inline_refs(model.model_json_schema())
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": json_schema}}}}


class _Service:
    """The state behind the endpoints: predictor, batcher, search index, cached network JSON."""

    def __init__(self, predictor: AddressPredictor, settings: ServiceSettings) -> None:
        self.predictor = predictor
        self.settings = settings
        predictor.max_pixels = settings.max_pixels
        predictor.max_bytes = settings.max_upload_bytes
        self.bulk = BulkRunner(settings.bulk_nice)
        self.batcher = MicroBatcher(
            predictor.predict_pixels, settings.batch_max_images, settings.batch_wait_ms, settings.bulk_nice
        )
        self.index = AddressIndex(predictor.gallery.addresses)
        self.budget = InFlightBudget(settings.max_inflight_bytes)
        self.started = False  # the batcher runs: predictions are served
        self.draining = False  # SIGTERM received: finishing what is in flight, taking nothing new
        self._network: bytes | None = None
        self._buildings: bytes | None = None
        self._buildings_lock = threading.Lock()
        self._decoders: asyncio.Semaphore | None = None

    def network_json(self) -> bytes:
        """The street network; `gallery_addresses` says how many of its sub-streets are candidates.

        The network is every sub-street of the AddressBook, the gallery only the addresses the model
        answers with (the training manifest's): a sub-street without training photos is drawn but is
        never an answer, so the two counts differ (193 drawn for 192 candidates in the demo).
        """
        if self._network is None:
            network = self.predictor.network_geojson()
            network["gallery_addresses"] = len(self.predictor.gallery)
            self._network = json.dumps(network, separators=(",", ":")).encode()
        return self._network

    def buildings_json(self) -> bytes:
        """Building footprints around the network (read once, in a worker thread, on first request)."""
        with self._buildings_lock:
            if self._buildings is None:
                collection = building_footprints(self.predictor)
                self._buildings = json.dumps(collection, separators=(",", ":")).encode()
            return self._buildings

    def check_top_k(self, top_k: int) -> int:
        if not 1 <= top_k <= self.settings.max_top_k:
            raise ApiError(
                422, "invalid_request", f"top_k must be within 1..{self.settings.max_top_k}, not {top_k}"
            )
        return top_k

    async def _decode(self, upload: Upload) -> np.ndarray:
        if self._decoders is None:
            self._decoders = asyncio.Semaphore(max(1, self.settings.max_decoders))
        async with self._decoders:  # a decoded photo can be hundreds of MB: only a few at once
            return await self.bulk(self.predictor.decode, upload.data, upload.name)

    async def predict(self, uploads: list[Upload], top_k: int) -> list[Prediction]:
        pixels = await asyncio.gather(*(self._decode(u) for u in uploads))
        results = await self.batcher.submit(np.stack(pixels), top_k, [u.name for u in uploads])
        return [replace(r, matches=r.matches[:top_k]) for r in results]


SWITCH_INTERVAL_S = 0.001  # the GIL hand-over interval while serving (Python's default: 0.005)
BUILDING_MARGIN_M = 150.0  # footprints this far beyond the streets' extent are still drawn
BUILDING_DECIMALS = 5  # ~1 m: enough for a footprint on a city map


def _extract_path(source: str) -> Path | None:
    """The AddressBook's OSM extract: its recorded path, else a bundled extract of the same file name."""
    if not source:
        return None
    path = Path(source)
    if path.is_file():
        return path
    from importlib import resources

    bundled = Path(str(resources.files("addressclip.resources").joinpath("osm", path.name)))
    return bundled if bundled.is_file() else None


def building_footprints(predictor: AddressPredictor) -> dict[str, Any]:
    """GeoJSON polygons (lon/lat) of the extract's buildings near the streets; empty, with `reason`, if
    the extract is not at hand (a bundle moved to another machine) or cannot be read here."""
    empty: dict[str, Any] = {"type": "FeatureCollection", "features": []}
    book = predictor.addressbook
    path = _extract_path(book.source) if book is not None else None
    if book is None or path is None:
        return empty | {"reason": "the AddressBook's OSM extract is not available on this server"}
    try:
        from addressclip.geo.osm import read_osm

        extract = read_osm(path)
    except ImportError:
        return empty | {"reason": "reading OSM extracts needs the 'world' extra (osmium)"}
    except Exception as error:  # a damaged extract must not break the map's streets
        log.warning("no building footprints from %s: %s", path, error)
        return empty | {"reason": f"cannot read {path.name}"}
    bounds = [g.bounds for g in book.table["geometry"] if g is not None and not g.is_empty]
    if not bounds:
        return empty | {"reason": "the AddressBook has no street geometry"}
    box = np.array(bounds)
    west, south = box[:, 0].min() - BUILDING_MARGIN_M, box[:, 1].min() - BUILDING_MARGIN_M
    east, north = box[:, 2].max() + BUILDING_MARGIN_M, box[:, 3].max() + BUILDING_MARGIN_M
    features = []
    for building in extract.buildings:
        ring = np.asarray(building.lonlat, dtype=np.float64)
        if len(ring) < 3:
            continue
        x, y = book.projection.to_utm(ring[:, 0], ring[:, 1])
        if np.max(x) < west or np.min(x) > east or np.max(y) < south or np.min(y) > north:
            continue
        coordinates = np.round(ring, BUILDING_DECIMALS).tolist()
        if coordinates[0] != coordinates[-1]:
            coordinates.append(coordinates[0])
        features.append(
            {
                "type": "Feature",
                "properties": {"kind": building.tags.get("building", "yes")},
                "geometry": {"type": "Polygon", "coordinates": [coordinates]},
            }
        )
    return {"type": "FeatureCollection", "features": features}


def _sequence_request(
    raw: bytes, max_images: int, max_bytes: int
) -> tuple[list[Upload], list[float] | None, list[float] | None, int | None]:
    """(uploads, timestamps, positions, top_k) of a /v1/predict/sequence JSON body; ApiError otherwise."""
    body = parse_json(raw)
    if not isinstance(body, dict):
        raise ApiError(400, "bad_json", "JSON body must be an object")
    items = body.get("images")
    if not isinstance(items, list) or not items:
        raise ApiError(422, "missing_image", 'JSON body needs "images": a non-empty list of base64 strings')
    if len(items) > max_images:
        raise ApiError(
            413, "too_many_images", f"{len(items)} photos in one sequence, above the limit of {max_images}"
        )
    uploads = [json_upload(item, f"images[{i}]", max_bytes) for i, item in enumerate(items)]
    numbers = {}
    for key in ("timestamps", "positions"):
        values = body.get(key)
        if values is not None and (
            not isinstance(values, list)
            or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
        ):
            raise ApiError(422, "invalid_request", f"{key} must be a list of numbers, one per photo")
        numbers[key] = None if values is None else [float(v) for v in values]
    top_k = body_top_k(body.get("top_k"), "JSON")
    return uploads, numbers["timestamps"], numbers["positions"], top_k


def create_app(predictor: AddressPredictor, settings: ServiceSettings | None = None) -> FastAPI:
    """The FastAPI app serving `predictor` (run it with uvicorn, or `run_server`)."""
    settings = settings or ServiceSettings()
    service = _Service(predictor, settings)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await service.batcher.start()
        service.started = True
        try:
            yield
        finally:
            service.started = False
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
    # the last added runs first: request id + access log, then the body limits, then compression
    app.add_middleware(GZipMiddleware, minimum_size=2048)
    app.add_middleware(RequestLimitMiddleware, limits=settings.body_limits(), budget=service.budget)
    app.add_middleware(AccessMiddleware)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    _add_api_routes(app, service)
    _add_health_routes(app, service)
    _add_page_routes(app)
    return app


def _add_api_routes(app: FastAPI, service: _Service) -> None:
    predictor = service.predictor
    settings = service.settings
    top_k_query = Query(5, ge=1, le=settings.max_top_k, description="how many addresses to return")
    geometry_query = Query(True, description="include each match's GeoJSON geometry")

    async def run(request: Request, many: bool, top_k: int) -> list[Prediction]:
        limit = settings.max_batch_images if many else 1
        body = await read_uploads(request, many, limit, settings.max_upload_bytes, service.bulk)
        request.state.images = len(body.uploads)
        k = service.check_top_k(body.top_k if body.top_k is not None else top_k)
        return await service.predict(body.uploads, k)

    @app.post(
        "/v1/predict",
        response_model=schemas.PredictionOut,
        response_model_exclude_unset=True,  # geometry=false leaves the key out rather than null
        responses=schemas.ERROR_RESPONSES,
        openapi_extra=_openapi_body(False, settings),
        summary="Predict the address of one photo",
    )
    async def predict(request: Request, top_k: int = top_k_query, geometry: bool = geometry_query) -> dict:
        [result] = await run(request, False, top_k)
        return result.to_dict(with_geometry=geometry)

    @app.post(
        "/v1/predict/batch",
        response_model=schemas.BatchOut,
        response_model_exclude_unset=True,
        responses=schemas.ERROR_RESPONSES,
        openapi_extra=_openapi_body(True, settings),
        summary="Predict the addresses of several photos",
    )
    async def predict_batch(
        request: Request, top_k: int = top_k_query, geometry: bool = geometry_query
    ) -> dict:
        results = await run(request, True, top_k)
        return {"predictions": [r.to_dict(with_geometry=geometry) for r in results]}

    @app.post(
        "/v1/predict/sequence",
        response_model=schemas.SequenceOut,
        response_model_exclude_unset=True,
        responses=schemas.ERROR_RESPONSES,
        openapi_extra=_sequence_openapi_body(settings),
        summary="Decode the sub-streets of an ordered photo sequence (a walk or a drive)",
    )
    async def predict_sequence(
        request: Request, top_k: int = top_k_query, geometry: bool = geometry_query
    ) -> dict:
        content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if content_type != "application/json":
            raise ApiError(
                415,
                "unsupported_media_type",
                f"Content-Type '{content_type or 'none'}' not accepted: send application/json "
                '({"images": [base64, ...], "timestamps": [...]})',
            )
        raw = await service.bulk(b"".join, await body_chunks(request))  # joined off the event loop
        uploads, timestamps, positions, body_top_k = await service.bulk(
            _sequence_request,
            raw,
            settings.max_sequence_images,
            settings.max_upload_bytes,
        )
        del raw
        request.state.images = len(uploads)
        k = service.check_top_k(body_top_k if body_top_k is not None else top_k)
        try:  # the sequence's own checks first: a bad one costs no image decoding
            sequence_params(len(uploads), timestamps, positions, None)
        except AddressclipError as error:
            raise ApiError(422, "invalid_sequence", str(error)) from None
        pixels = await asyncio.gather(*(service._decode(u) for u in uploads))
        names = [u.name for u in uploads]
        result = await service.bulk(
            predictor.predict_sequence_pixels, np.stack(pixels), names, timestamps, positions, k
        )
        return result.to_dict(with_geometry=geometry)

    @app.get(
        "/v1/addresses",
        response_model=schemas.SearchOut,
        responses=schemas.GET_ERROR_RESPONSES,
        summary="Search the candidate addresses",
    )
    async def search(
        q: str = Query("", max_length=200, description="words to find, any order, accents ignored"),
        limit: int = Query(20, ge=1, le=500),
        offset: int = Query(0, ge=0, le=1_000_000_000),
    ) -> dict:
        rows = service.index.search(q)
        items = [predictor.gallery.record(row) for row in rows[offset : offset + limit]]
        return {"query": q, "total": len(rows), "offset": offset, "items": items}

    @app.get(
        "/v1/addresses/{address_id}",
        response_model=schemas.AddressFeature,
        responses=schemas.GET_ERROR_RESPONSES,
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

    @app.get(
        "/v1/network",
        response_class=GeoJSONResponse,
        responses={200: {"content": {"application/geo+json": {"schema": {"type": "object"}}}}},
        summary="The street network (GeoJSON FeatureCollection, lon/lat)",
    )
    async def network() -> Response:
        return Response(service.network_json(), media_type=GeoJSONResponse.media_type)

    @app.get(
        "/v1/buildings",
        response_class=GeoJSONResponse,
        responses={200: {"content": {"application/geo+json": {"schema": {"type": "object"}}}}},
        summary="Building footprints around the streets (GeoJSON FeatureCollection, lon/lat)",
    )
    async def buildings() -> Response:
        body = await service.bulk(service.buildings_json)
        return Response(body, media_type=GeoJSONResponse.media_type)


def _add_health_routes(app: FastAPI, service: _Service) -> None:
    predictor = service.predictor
    settings = service.settings

    @app.get("/healthz", response_model=schemas.HealthOut, summary="Liveness and what is loaded")
    async def healthz() -> dict:
        gallery = predictor.gallery
        calibration = predictor.calibration
        limits = {k: int(v) for k, v in asdict(settings).items() if k.startswith("max_")}
        limits["max_predict_body_bytes"] = settings.body_limits().single
        return {
            "status": "ok",
            "addresses": len(gallery),
            "seen_in_training": int(gallery.table["seen_in_training"].sum()),
            "device": str(predictor.device),
            "image_size": predictor.image_size,
            "calibrated": calibration is not None,
            "threshold": calibration.threshold if calibration else None,
            "limits": limits,
            "batching": service.batcher.stats.to_dict(),
            "inflight_bytes": service.budget.to_dict(),
        }

    @app.get(
        "/readyz",
        response_model=schemas.ReadyOut,
        responses={503: {"model": schemas.ErrorOut, "description": "starting or shutting down"}},
        summary="Readiness: 200 while predictions are served, 503 while starting or draining",
    )
    async def readyz() -> Response:
        if service.started and not service.draining:
            return JSONResponse({"status": "ready"})
        why = "shutting down" if service.draining else "starting"
        return JSONResponse(
            error_body(503, "not_ready", f"not ready: {why}"), status_code=503, headers={"Retry-After": "1"}
        )


def _add_page_routes(app: FastAPI) -> None:
    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> FileResponse:
        return FileResponse(STATIC_DIR / "docs.html", media_type="text/html")


# ------------------------------------------------------------------------------------- running
def bind_socket(host: str, port: int) -> socket.socket:
    """Listen on host:port now, so that a bad or busy port is a one-line error before anything else.

    Raises AddressclipError (exit code 2 from the command line) naming the address and the fix.
    """
    from addressclip.errors import AddressclipError

    if not 0 <= port <= 65535:
        raise AddressclipError(f"--port {port}: not a TCP port; choose one within 1..65535")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as error:
        raise AddressclipError(f"--host {host}: cannot resolve it ({error.strerror})") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT of a previous run only
        sock.bind(address)
        sock.listen(2048)
    except OSError as error:
        sock.close()
        reason = error.strerror or str(error)
        raise AddressclipError(
            f"--port {port}: cannot listen on {host}:{port} ({reason}); stop the other server or choose "
            "another --port"
        ) from None
    sock.set_inheritable(True)
    return sock


def _configure_access_log(enabled: bool) -> None:
    """Access lines go to stderr as bare JSON (one object per line), unless logging is set up already."""
    logger = logging.getLogger("addressclip.serve.access")
    logger.setLevel(logging.INFO if enabled else logging.WARNING)
    if enabled and not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.propagate = False


def run_server(
    predictor: AddressPredictor,
    host: str = "127.0.0.1",
    port: int = 8000,
    settings: ServiceSettings | None = None,
    log_level: str = "info",
    sock: socket.socket | None = None,
) -> None:
    """Serve until SIGTERM/SIGINT (what `addressclip serve` runs); `sock` from `bind_socket`.

    SIGTERM (docker stop, systemd, Kubernetes) drains: /readyz turns 503, no new connection is
    accepted, requests in flight finish (up to `shutdown_grace_s`), then the call returns normally,
    so the process exits 0. SIGINT behaves the same and then raises KeyboardInterrupt (exit 130).
    """
    import uvicorn

    settings = settings or ServiceSettings()
    app = create_app(predictor, settings)
    service: _Service = app.state.service
    _configure_access_log(log_level in ("info", "debug"))
    config = uvicorn.Config(
        app,
        log_level=log_level,
        access_log=False,  # replaced by the JSON lines of serve.access
        timeout_keep_alive=5,
        limit_concurrency=settings.max_connections,
        timeout_graceful_shutdown=settings.shutdown_grace_s,
    )

    class DrainingServer(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            service.draining = True
            super().handle_exit(sig, frame)
            if sig == signal.SIGTERM:  # a requested stop, not a crash: do not re-raise it afterwards
                with contextlib.suppress(AttributeError, ValueError):
                    self._captured_signals.remove(sig)

    server = DrainingServer(config)
    if sock is None:
        sock = bind_socket(host, port)
    # The event loop shares the GIL with the decoding threads; a thread that wants it waits up to one
    # switch interval per hand-over, and a request takes several. 1 ms instead of Python's 5 ms keeps
    # /healthz answering while large uploads decode (speed/bench_serve_memory.py).
    switch_interval = sys.getswitchinterval()
    sys.setswitchinterval(min(switch_interval, SWITCH_INTERVAL_S))
    try:
        server.run(sockets=[sock])
    finally:
        sys.setswitchinterval(switch_interval)
        sock.close()


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
