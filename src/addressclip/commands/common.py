"""Argument groups shared by several subcommands, so each option reads the same everywhere.

Command modules call these helpers from their `register` functions; each helper adds one group
(model, run config, device, threads, progress, method options, partition rules) and the matching
`*_from_args` function turns the parsed namespace back into the owning object.
"""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path
from typing import Any

# ------------------------------------------------------------------------------------ progress


def add_progress_argument(parser: argparse.ArgumentParser) -> None:
    """`--quiet`: no progress bars (the one spelling of this option in every command)."""
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    # the old spelling of two commands, kept working but not shown
    parser.add_argument("--no-progress", dest="quiet", action="store_true", help=argparse.SUPPRESS)


# ----------------------------------------------------------------------------- device, threads


def add_device_argument(parser: argparse.ArgumentParser, default: str = "auto") -> None:
    parser.add_argument("--device", default=default, help=f"cpu, cuda, cuda:1 or auto (default: {default})")


def add_threads_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--threads",
        type=int,
        metavar="N",
        help="torch CPU threads (default: torch's choice); 1 is often fastest for small models on a busy CPU",
    )


def apply_threads(args: argparse.Namespace) -> None:
    """Check `--threads` and set torch's CPU threads from it (when torch is installed)."""
    from addressclip.errors import ConfigError
    from addressclip.serve.onnx_backend import torch_installed

    threads = getattr(args, "threads", None)
    if threads is not None and threads < 1:
        raise ConfigError(f"--threads must be at least 1, not {threads}")
    if threads is not None and getattr(args, "backend", "auto") != "onnx" and torch_installed():
        from addressclip.model.device import set_threads

        set_threads(threads)


def device_from_args(args: argparse.Namespace):
    """The torch device `--device` names (checked: asking for CUDA without a GPU is a one-line error)."""
    from addressclip.model.device import resolve_device

    return resolve_device(args.device, field="--device")


# --------------------------------------------------------------------------------- run config


def add_run_config_arguments(parser: argparse.ArgumentParser, default_config: str = "cpu") -> None:
    """Preset/YAML, resume, local weights and KEY=VALUE overrides (in any order with the options)."""
    parser.add_argument(
        "--config",
        default=default_config,
        help="preset name (paper, cpu, tiny) or a YAML file, e.g. a run's saved config.yaml "
        f"(default: {default_config})",
    )
    parser.add_argument(
        "--resume",
        metavar="latest|PATH",
        help="continue a run: 'latest' = OUT/checkpoints/latest.pt (exact: optimizer, RNG, sampler position)",
    )
    parser.add_argument("--pretrained", metavar="PATH", help="local open_clip weights (file or folder)")
    add_overrides_argument(
        parser,
        "config overrides, e.g. data=runs/demo/world/manifest.parquet out=runs/demo/train optim.epochs=5",
    )


def add_overrides_argument(parser: argparse.ArgumentParser, help_text: str) -> None:
    """KEY=VALUE overrides; `cli.main` also takes those given after options (intermixed)."""
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help=help_text)
    parser.set_defaults(intermixed="overrides")


def run_config_from_args(args: argparse.Namespace):
    from addressclip.config import load_config

    overrides = list(args.overrides)
    if args.pretrained:
        overrides.append(f"model.pretrained={args.pretrained}")
    return load_config(args.config, overrides)


def format_metrics(metrics: dict[str, float]) -> str:
    return "  ".join(f"{k} {v:.1f}" for k, v in metrics.items()) if metrics else "(no val split)"


# -------------------------------------------------------------------------- model / predictor


def add_model_arguments(parser: argparse.ArgumentParser, flag: str = "--model") -> None:
    """Options shared by predict/export/serve: which model, which candidate addresses, which device."""
    parser.add_argument(
        flag,
        dest="model",
        required=True,
        metavar="PATH",
        help="a checkpoint (model.pt), a training run folder, or a bundle folder from `addressclip export`",
    )
    parser.add_argument(
        "--manifest",
        metavar="PATH",
        help="training manifest (default: the one recorded in the checkpoint); not needed for a bundle",
    )
    parser.add_argument(
        "--addressbook", metavar="DIR", help="AddressBook folder (default: the manifest's, or the bundle's)"
    )
    parser.add_argument(
        "--all-addresses",
        action="store_true",
        help="match against every sub-street of the AddressBook, not only the training addresses (open set)",
    )
    from addressclip.serve.calibration import DEFAULT_SCORE, SCORE_KINDS

    parser.add_argument(
        "--out-of-city-score",
        choices=SCORE_KINDS,
        default=DEFAULT_SCORE,
        help="the out-of-city flag's score when a checkpoint is calibrated (a bundle keeps its own): "
        "mahalanobis on image features (default; top1 when the training split is too small for its "
        "statistics), top1 cosine, margin, or energy (see serve.calibration)",
    )
    add_device_argument(parser, default="cpu")
    add_threads_argument(parser)


def add_backend_argument(parser: argparse.ArgumentParser) -> None:
    """`--backend`: what embeds the photos (predict and serve)."""
    parser.add_argument(
        "--backend",
        choices=("auto", "torch", "onnx"),
        default="auto",
        help="torch, or onnx: the bundle's image_encoder.onnx on onnxruntime (CPU; needs a bundle from "
        "`export --onnx` and the onnx extra; no new address texts). auto: torch when installed (default)",
    )


def predictor_from_args(args: argparse.Namespace, progress: bool = True):
    """The `AddressPredictor` that `add_model_arguments`' options describe."""
    from addressclip.serve.calibration import DEFAULT_SCORE
    from addressclip.serve.loading import load_predictor
    from addressclip.serve.onnx_backend import torch_installed

    apply_threads(args)
    backend = getattr(args, "backend", "auto")
    torch_device = backend != "onnx" and torch_installed()
    return load_predictor(
        args.model,
        backend=backend,
        threads=getattr(args, "threads", None),
        device=device_from_args(args) if torch_device else args.device,
        manifest=args.manifest,
        addressbook=args.addressbook,
        all_addresses=args.all_addresses,
        out_of_city_score=getattr(args, "out_of_city_score", DEFAULT_SCORE),
        progress=progress,
    )


# ------------------------------------------------------------------------------ method options


def add_method_arguments(parser: argparse.ArgumentParser) -> None:
    """What `baseline` and `benchmark` share: data, output, preset, street CLIP, split, device."""
    parser.add_argument("--data", required=True, metavar="MANIFEST", help="manifest parquet")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder")
    parser.add_argument(
        "--config", default="cpu", help="preset (paper, cpu, tiny) or YAML for training methods"
    )
    parser.add_argument(
        "--init",
        metavar="PATH",
        help="the pretrained street CLIP (model.pt) every method starts from "
        "(default: run/reuse `addressclip pretrain` with the same config)",
    )
    parser.add_argument("--split", default="test", help="evaluation split (default: test)")
    add_device_argument(parser)
    add_progress_argument(parser)
    add_threads_argument(parser)
    add_overrides_argument(parser, "config overrides for training methods, e.g. optim.epochs=3")


def parse_option_value(raw: str) -> object:
    """A method setting's value, read as a YAML scalar ('50' -> 50, '1e-3' -> 0.001, 'a' -> 'a')."""
    import yaml

    try:
        value: Any = yaml.safe_load(raw)
    except yaml.YAMLError:
        value = raw
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            value = float(value)
    return value


def method_options(items: list[str], grouped: bool = False) -> dict[str, Any]:
    """`--option` values: ['steps=50'] -> {'steps': 50}; grouped: ['coop.steps=50'] -> {'coop': {...}}."""
    from addressclip.errors import ConfigError

    options: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            form = "METHOD.NAME=VALUE" if grouped else "NAME=VALUE"
            raise ConfigError(f"--option '{item}' must look like {form}")
        key, raw = (part.strip() for part in item.split("=", 1))
        if grouped:
            if "." not in key:
                raise ConfigError(f"--option '{item}' must look like METHOD.NAME=VALUE")
            method, name = key.split(".", 1)
            options.setdefault(method, {})[name] = parse_option_value(raw)
        else:
            options[key] = parse_option_value(raw)
    return options


# ----------------------------------------------------------------------------------- metrics


def metric_lines(metrics: dict) -> list[str]:
    """The evaluation summary printed by `eval` and `baseline`."""
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
    by_city = metrics.get("by_city")
    if by_city:
        lines.append(
            f"per city (its queries ranked against the union of {metrics['candidates']} addresses): "
            f"{by_city['cross_city_top1']} top-1 answers in another city "
            f"({pct(by_city['cross_city_top1_pct'])} %)"
        )
        for name, row in by_city["cities"].items():
            if row["queries"]:
                lines.append(
                    f"  {name:18s} {row['queries']:5d} queries {row['candidates']:5d} addresses  "
                    + "  ".join(f"{k} {pct(row[k])}" for k in ("SSA-1", "SSA-5", "SA-1", "SA-5"))
                    + f"  in another city {row['cross_city_top1']}"
                )
    return lines


def output_path(text: str | None, field: str, want: str = "file") -> Path | None:
    """An output path that is checked before any work: a file where a folder is wanted (or the
    reverse) is a one-line error naming the option, not a traceback at the end of a long run."""
    from addressclip.errors import ConfigError

    if text is None:
        return None
    path = Path(text)
    if want == "file" and path.is_dir():
        raise ConfigError(f"{field}: {path} is a folder; give a file name")
    if want == "folder" and path.exists() and not path.is_dir():
        raise ConfigError(f"{field}: {path} exists and is not a folder")
    for parent in path.parents:  # a file anywhere up the path (FILE/x/y.json) cannot hold the output
        if parent.exists():
            if not parent.is_dir():
                raise ConfigError(f"{field}: {parent} is a file, not a folder")
            break
    return path


# ---------------------------------------------------------------------------- partition rules

# flag dest -> PartitionConfig field; every command that partitions an OSM extract takes all six
PARTITION_OPTIONS: dict[str, str] = {
    "highway": "highway_classes",
    "min_gap_m": "min_gap_m",
    "max_cross_streets": "max_cross_streets",
    "street_split_m": "street_split_m",
    "carriageway_snap_m": "carriageway_snap_m",
    "neighbourhoods": "neighbourhood_source",
}


def add_partition_arguments(parser: argparse.ArgumentParser) -> None:
    """The six partition rules of `geo.partition.PartitionConfig`, in the same words in every command."""
    rules = parser.add_argument_group("partition rules (defaults: addressclip.geo.partition.PartitionConfig)")
    rules.add_argument(
        "--highway",
        metavar="CLASSES",
        help="comma-separated OSM highway classes counted as streets (default: osm.DEFAULT_HIGHWAY_CLASSES)",
    )
    rules.add_argument(
        "--min-gap-m", type=float, help="drop junctions closer than this to the previous cut (35)"
    )
    rules.add_argument("--max-cross-streets", type=int, choices=(1, 2), help="cross streets per address (2)")
    rules.add_argument(
        "--street-split-m", type=float, help="same-name pieces farther apart are different streets (100)"
    )
    rules.add_argument(
        "--carriageway-snap-m", type=float, help="a junction also cuts parallel lines this close (35)"
    )
    rules.add_argument(
        "--neighbourhoods", choices=("auto", "places"), help="admin areas then place nodes, or places only"
    )


def partition_config_from_args(args: argparse.Namespace):
    """The `PartitionConfig` of `add_partition_arguments`' options (defaults where none is given)."""
    from addressclip.geo.partition import PartitionConfig

    values: dict[str, object] = {}
    for option, key in PARTITION_OPTIONS.items():
        value = getattr(args, option, None)
        if value is None:
            continue
        if option == "highway":
            value = tuple(c.strip() for c in str(value).split(",") if c.strip())
        values[key] = value
    return PartitionConfig(**values)


# --------------------------------------------------------------------------------- extract box


def add_extract_arguments(parser: argparse.ArgumentParser) -> None:
    """`--bbox S,W,N,E`: only this part of the OSM extract (the same words in every command reading one)."""
    parser.add_argument(
        "--bbox",
        metavar="S,W,N,E",
        help="only this latitude/longitude box of the extract, in degrees (e.g. 41.14,-8.62,41.15,-8.60); "
        "street ways are clipped at its edge, buildings kept when their centre is inside",
    )


def bbox_from_args(args: argparse.Namespace):
    """The `geo.bbox.BBox` of `--bbox` (None when not given); a bad box is a one-line ConfigError."""
    from addressclip.geo.bbox import BBox

    text = getattr(args, "bbox", None)
    return None if text is None else BBox.parse(text, field="--bbox")


# ------------------------------------------------------------------------------------ rendering


def add_render_arguments(parser: argparse.ArgumentParser) -> None:
    """How a world is rendered (`render` and `atlas`): seed, size, spacing, views, splits, captions,
    partition rules, workers, caching and pictures — the same words in both commands."""
    parser.add_argument(
        "--seed", type=int, default=0, help="random seed (weather, occluders, jitter, splits)"
    )
    parser.add_argument(
        "--size", default="128", metavar="PX|WxH", help="image size, e.g. 128 or 640x480 (128)"
    )
    parser.add_argument("--spacing", type=float, metavar="M", help="metres between capture points (preset)")
    parser.add_argument("--views", type=int, help="views per capture point (preset; 4 = every 90 degrees)")
    parser.add_argument("--jpeg-quality", type=int, default=90)
    parser.add_argument(
        "--split-ratios", default="0.8,0.1,0.1", metavar="T,V,T", help="by location, per city (0.8,0.1,0.1)"
    )
    parser.add_argument("--min-points", type=int, default=5, help="merge addresses with fewer locations (5)")
    parser.add_argument(
        "--captioner", default="scene",
        help="'scene' (built-in, from the rendered content), 'none', 'blip:DIR' or 'module:factory'",
    )  # fmt: skip
    add_partition_arguments(parser)
    parser.add_argument("--workers", type=int, help="worker processes (default: all cores)")
    parser.add_argument("--force", action="store_true", help="render even if the same render is there")
    parser.add_argument("--no-pictures", action="store_true", help="skip contact sheets and maps")
    add_progress_argument(parser)


def render_options_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of `render_world` / `render_atlas` that `add_render_arguments` sets."""
    from addressclip.data.splits import parse_ratios

    return {
        "seed": args.seed,
        "size": args.size,
        "spacing_m": args.spacing,
        "views": args.views,
        "workers": args.workers,
        "jpeg_quality": args.jpeg_quality,
        "split_ratios": parse_ratios(args.split_ratios),
        "min_points_per_address": args.min_points,
        "captioner": args.captioner,
        "partition": partition_config_from_args(args),
        "force": args.force,
        "pictures": not args.no_pictures,
        "progress": not args.quiet,
    }
