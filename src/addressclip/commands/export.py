"""`addressclip export`: a self-contained predictor bundle (weights, preprocessing, addresses, map)."""

from __future__ import annotations

import argparse

from addressclip.commands.common import add_model_arguments, predictor_from_args


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export",
        help="export a self-contained predictor bundle",
        description="Write a bundle folder (model weights + config + preprocessing + AddressBook + cached "
        "address embeddings + out-of-city calibration) that `addressclip predict/serve` and "
        "`load_predictor` load offline, without the training manifest or images.",
    )
    add_model_arguments(parser)
    parser.add_argument("--out", required=True, metavar="DIR", help="the bundle folder to write")
    parser.add_argument("--force", action="store_true", help="replace an existing bundle at --out")
    parser.add_argument(
        "--onnx",
        action="store_true",
        help="also write the image tower as image_encoder.onnx (checked with onnx.checker and against "
        "torch), so `--backend onnx` predicts with onnxruntime; needs the onnx extra",
    )
    parser.set_defaults(func=run)


def _folder_mib(folder) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20


def run(args: argparse.Namespace) -> int:
    predictor = predictor_from_args(args)
    out = predictor.export(args.out, force=args.force, onnx=args.onnx)
    gallery = predictor.gallery
    seen = int(gallery.table["seen_in_training"].sum())
    print(f"bundle: {out} ({_folder_mib(out):.1f} MiB)")
    print(f"addresses: {len(gallery)} ({seen} seen in training)")
    if args.onnx:
        print(f"image tower: {out / 'image_encoder.onnx'} (onnxruntime: --backend onnx)")
    calibration = predictor.calibration
    if calibration is not None:
        print(
            f"out-of-city threshold: top-1 cosine < {calibration.threshold:.4f} "
            f"(percentile {calibration.percentile:g} of the top-1 scores of {calibration.images} "
            f"{calibration.split} images)"
        )
    else:
        print("out-of-city threshold: none (no validation images to calibrate on)")
    return 0
