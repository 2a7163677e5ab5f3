"""`addressclip serve`: the REST service and web page for a bundle (or checkpoint)."""

from __future__ import annotations

import argparse

from addressclip.commands.common import add_backend_argument, add_model_arguments, predictor_from_args


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="serve predictions over HTTP, with a web page and a map",
        description="Start the REST service (POST /v1/predict, /v1/predict/batch, GET /v1/addresses, "
        "/v1/network, /healthz) and the web page at /. API reference at /docs.",
    )
    add_model_arguments(parser, flag="--bundle")
    add_backend_argument(parser)
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port (default: 8000; 0: any free port)")
    parser.add_argument(
        "--max-upload-mb", type=float, default=10.0, help="largest image upload (default: 10)"
    )
    parser.add_argument(
        "--max-megapixels", type=float, default=64.0, help="largest image, from its header (default: 64)"
    )
    parser.add_argument(
        "--max-batch-images", type=int, default=16, help="images per batch request (default: 16)"
    )
    parser.add_argument("--batch-wait-ms", type=float, default=5.0, help="micro-batching window (default: 5)")
    parser.add_argument(
        "--batch-max", type=int, default=32, help="images per model forward pass (default: 32)"
    )
    parser.add_argument(
        "--max-inflight-mb",
        type=float,
        default=256.0,
        help="request bodies held at once across all clients; beyond it 503 + Retry-After (default: 256)",
    )
    parser.add_argument(
        "--bulk-nice",
        type=int,
        default=19,
        help="nice value (0-19) of the threads that decode, parse and run the model, so the event "
        "loop keeps answering /healthz under load (Linux; 0: same priority; default: 19)",
    )
    parser.add_argument(
        "--log-level", default="info", choices=("critical", "error", "warning", "info", "debug")
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from addressclip.errors import AddressclipError
    from addressclip.extras import require

    require("fastapi", "addressclip serve")
    require("uvicorn", "addressclip serve")
    from addressclip.serve.app import MiB, ServiceSettings, bind_socket, run_server

    for name in ("max_upload_mb", "max_megapixels", "max_batch_images", "batch_max", "max_inflight_mb"):
        if getattr(args, name) <= 0:
            raise AddressclipError(f"--{name.replace('_', '-')} must be positive")
    if not 0 <= args.bulk_nice <= 19:
        raise AddressclipError(f"--bulk-nice must be within 0..19, not {args.bulk_nice}")
    upload = int(args.max_upload_mb * MiB)
    settings = ServiceSettings(
        max_upload_bytes=upload,
        # a multipart batch holds its images once; JSON (base64, parsed in memory) is capped lower
        max_request_bytes=upload * args.max_batch_images + MiB,
        max_json_batch_bytes=min(upload * args.max_batch_images * 4 // 3 + MiB, 24 * MiB),
        max_inflight_bytes=int(args.max_inflight_mb * MiB),
        max_pixels=int(args.max_megapixels * 1e6),
        max_batch_images=args.max_batch_images,
        batch_max_images=args.batch_max,
        batch_wait_ms=args.batch_wait_ms,
        bulk_nice=args.bulk_nice,
    )
    if settings.body_limits().single > settings.max_inflight_bytes:
        raise AddressclipError(
            "--max-inflight-mb must hold at least one upload (raise it or lower --max-upload-mb)"
        )
    sock = bind_socket(args.host, args.port)  # a bad or busy port fails here, before the model loads
    try:
        predictor = predictor_from_args(args)
        port = sock.getsockname()[1]
        print(
            f"serving {len(predictor.gallery)} addresses on http://{args.host}:{port}/ "
            f"(web page; API reference at /docs)",
            flush=True,
        )
        run_server(predictor, args.host, port, settings, args.log_level, sock=sock)
    finally:
        sock.close()
    return 0
