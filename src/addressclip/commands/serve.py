"""`addressclip serve`: the REST service and web page for a bundle (or checkpoint)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    from addressclip.commands.predict import add_model_arguments

    parser = subparsers.add_parser(
        "serve",
        help="serve predictions over HTTP, with a web page and a map",
        description="Start the REST service (POST /v1/predict, /v1/predict/batch, GET /v1/addresses, "
        "/v1/network, /healthz) and the web page at /. API reference at /docs.",
    )
    add_model_arguments(parser, flag="--bundle")
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
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
        "--log-level", default="info", choices=("critical", "error", "warning", "info", "debug")
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from addressclip.commands.predict import load_predictor
    from addressclip.errors import AddressclipError
    from addressclip.serve.app import MiB, ServiceSettings, run_server

    for name in ("max_upload_mb", "max_megapixels", "max_batch_images", "batch_max"):
        if getattr(args, name) <= 0:
            raise AddressclipError(f"--{name.replace('_', '-')} must be positive")
    upload = int(args.max_upload_mb * MiB)
    settings = ServiceSettings(
        max_upload_bytes=upload,
        max_request_bytes=max(upload * 2, int(upload * 4 / 3 * args.max_batch_images) + MiB),
        max_pixels=int(args.max_megapixels * 1e6),
        max_batch_images=args.max_batch_images,
        batch_max_images=args.batch_max,
        batch_wait_ms=args.batch_wait_ms,
    )
    predictor = load_predictor(args)
    print(
        f"serving {len(predictor.gallery)} addresses on http://{args.host}:{args.port}/ "
        f"(web page; API reference at /docs)",
        flush=True,
    )
    run_server(predictor, args.host, args.port, settings, args.log_level)
    return 0
