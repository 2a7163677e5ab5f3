"""`addressclip eval`: every metric of a checkpoint on a manifest split (SSA-k, SA-k, metre error,
per-address accuracy, confusions, accuracy by distance to intersections, calibration)."""

from __future__ import annotations

import argparse
from pathlib import Path

from addressclip.commands.common import (
    add_device_argument,
    add_progress_argument,
    add_threads_argument,
    apply_threads,
    metric_lines,
    output_path,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="evaluate a checkpoint on a manifest (SSA-k, SA-k, metre error, calibration, ...)",
        description="Rank every candidate address of the manifest for each image of the split. The "
        "address gallery and image features are cached per checkpoint (--cache).",
    )
    parser.add_argument("checkpoint", metavar="CHECKPOINT", help="model.pt, or a run folder holding one")
    parser.add_argument("--data", required=True, metavar="MANIFEST", help="manifest parquet")
    parser.add_argument("--split", default="test", help="split to evaluate (default: test)")
    parser.add_argument(
        "--shards",
        metavar="DIR",
        help="read the images from these tar shards of MANIFEST (`addressclip shard`) as a stream",
    )
    parser.add_argument(
        "--out", metavar="DIR", help="write eval.json, queries.parquet, per_address.parquet here"
    )
    parser.add_argument("--cache", metavar="DIR", help="feature cache (default: CHECKPOINT_DIR/.eval-cache)")
    parser.add_argument("--ties", choices=("pessimistic", "stable"), default="pessimistic",
                        help="how equal scores rank (default pessimistic: against the model)")  # fmt: skip
    parser.add_argument(
        "--compare",
        action="append",
        default=[],
        metavar="CITY=CHECKPOINT",
        help="multi-city: MANIFEST is an atlas and CHECKPOINT was trained on all its cities; compare it, "
        "city by city, with this single-city model on that city's own manifest (repeatable)",
    )
    add_device_argument(parser)
    add_progress_argument(parser)
    add_threads_argument(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from addressclip.atomic import write_json_atomic
    from addressclip.errors import ConfigError
    from addressclip.eval.checkpoint import evaluate_checkpoint
    from addressclip.eval.evaluate import EvalData
    from addressclip.model.factory import checkpoint_path

    apply_threads(args)
    out = output_path(args.out, "--out", want="folder")
    checkpoint = checkpoint_path(args.checkpoint, "CHECKPOINT")
    if args.compare:
        if args.shards:
            raise ConfigError("--shards reads one manifest's shards; --compare reads several manifests")
        return _compare(args, checkpoint, out)
    data = EvalData.load(args.data, progress=not args.quiet, shards=args.shards)
    evaluation = evaluate_checkpoint(
        checkpoint, data, args.split, cache=_cache(args), device=args.device, ties=args.ties,
        progress=not args.quiet,
    )  # fmt: skip
    for line in metric_lines(evaluation.metrics):
        print(line)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        record = {"checkpoint": str(checkpoint), "manifest": str(data.path), "split": args.split,
                  "shards": args.shards, "metrics": evaluation.metrics}  # fmt: skip
        evaluation.queries.to_parquet(out / "queries.parquet")
        evaluation.per_address.to_parquet(out / "per_address.parquet")
        write_json_atomic(out / "eval.json", record)
        print(f"wrote {out / 'eval.json'}")
    return 0


def _cache(args: argparse.Namespace) -> Path | None:
    return Path(args.cache) if args.cache else None


def _compare(args: argparse.Namespace, checkpoint: Path, out: Path | None) -> int:
    """The multi-city model against each single-city model, per city (writes multicity.json/.md)."""
    from addressclip.atomic import write_json_atomic, write_text_atomic
    from addressclip.benchmark.multicity import compare_cities, comparison_table, parse_compare
    from addressclip.commands.common import metric_lines

    singles = parse_compare(args.compare)
    record = compare_cities(
        checkpoint, Path(args.data), singles, args.split, cache=_cache(args), device=args.device,
        ties=args.ties, progress=not args.quiet,
    )  # fmt: skip
    for line in metric_lines(record["multi"]["metrics"]):
        print(line)
    table = comparison_table(record)
    print(table)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        write_json_atomic(out / "multicity.json", record)
        write_text_atomic(out / "multicity.md", table + "\n")
        print(f"wrote {out / 'multicity.json'} and {out / 'multicity.md'}")
    return 0
