"""`addressclip eval`: every metric of a checkpoint on a manifest split (SSA-k, SA-k, metre error,
per-address accuracy, confusions, accuracy by distance to intersections, calibration)."""

from __future__ import annotations

import argparse
from pathlib import Path


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
        "--out", metavar="DIR", help="write eval.json, queries.parquet, per_address.parquet here"
    )
    parser.add_argument("--cache", metavar="DIR", help="feature cache (default: CHECKPOINT_DIR/.eval-cache)")
    parser.add_argument("--ties", choices=("pessimistic", "stable"), default="pessimistic",
                        help="how equal scores rank (default pessimistic: against the model)")  # fmt: skip
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 or auto (default: auto)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    parser.set_defaults(func=run)


def resolve_checkpoint(text: str) -> Path:
    from addressclip.errors import AddressclipError

    path = Path(text)
    if path.is_dir():
        path = path / "model.pt"
    if not path.is_file():
        raise AddressclipError(f"checkpoint {path} not found (give model.pt or a run folder holding one)")
    return path


def summary_lines(metrics: dict) -> list[str]:
    error = metrics["error_m"]
    confusion = metrics["confusion"]

    def pct(value) -> str:
        return "n/a" if value is None or value != value else f"{value:.1f}"

    lines = [
        f"{metrics['queries']} queries, {metrics['candidates']} candidate addresses",
        "  ".join(f"{k} {pct(metrics[k])}" for k in ("SSA-1", "SSA-5", "SA-1", "SA-5")),
        f"metre error (to predicted sub-street, {metrics['geometry_source']}): "
        f"median {pct(error['median'])} m, "
        f"within 25 m {pct(error['within_25m'])} %, within 100 m {pct(error['within_100m'])} %",
        f"calibration: ECE {pct(metrics['calibration']['ece'])} points; mean per-address SSA-1 "
        f"{pct(metrics['mean_per_address_SSA-1'])} %",
        f"top-1 errors {confusion['errors']}: neighbouring sub-street {pct(confusion['neighbour'])} %, "
        f"same street {pct(confusion['same_street'])} %, other street {pct(confusion['other'])} %",
    ]
    for row in metrics.get("by_intersection_distance", []):
        lines.append(
            f"  {row['bin']:>12} from an intersection: {row['count']:5d} queries, SSA-1 {pct(row['SSA-1'])}"
        )
    return lines


def run(args: argparse.Namespace) -> int:
    from addressclip.commands.baseline import set_threads
    from addressclip.eval.benchmark import write_json
    from addressclip.eval.encode import FrozenEncoder
    from addressclip.eval.evaluate import EvalData, evaluate_scores
    from addressclip.eval.store import FeatureStore

    set_threads(args.threads)
    checkpoint = resolve_checkpoint(args.checkpoint)
    data = EvalData.load(args.data, progress=not args.quiet)
    rows = data.rows(args.split)
    store = FeatureStore(Path(args.cache) if args.cache else checkpoint.parent / ".eval-cache")
    encoder = FrozenEncoder.from_checkpoint(checkpoint, store, args.device, progress=not args.quiet)
    gallery = encoder.gallery(list(data.vocabulary.addresses))
    queries = encoder.image_features(data.images(encoder.image_size, encoder.interpolation), rows)
    evaluation = evaluate_scores(data, rows, queries @ gallery.T, scale=encoder.logit_scale(), ties=args.ties)
    for line in summary_lines(evaluation.metrics):
        print(line)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        record = {"checkpoint": str(checkpoint), "manifest": str(data.path), "split": args.split,
                  "metrics": evaluation.metrics}  # fmt: skip
        evaluation.queries.to_parquet(out / "queries.parquet")
        evaluation.per_address.to_parquet(out / "per_address.parquet")
        write_json(out / "eval.json", record)
        print(f"wrote {out / 'eval.json'}")
    return 0
