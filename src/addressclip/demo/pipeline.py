"""Stages of the embedded demo, each cached by its parameters and printed as its own command."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from addressclip.atomic import write_text_atomic
from addressclip.config import config_yaml, load_config
from addressclip.filenames import MODEL_FILE


@dataclass(frozen=True)
class DemoOptions:
    out: str | Path = "runs/demo"
    world: str = "demo"
    config: str = "cpu"
    seed: int = 0
    report: bool = True
    overrides: tuple[str, ...] = ()
    partition: object = None  # geo.partition.PartitionConfig for the render (None: the default rules)
    bbox: object = None  # geo.bbox.BBox: only this part of the extract (None: the world's default)
    # where AddressCLIP starts: 'foundation' (the street CLIP shipped in the package, pretrained on
    # other cities), 'pretrain' (a caption-only street CLIP pretrained on this world's train split, the
    # round-1 regime), or a checkpoint path
    init: str = "foundation"


def _banner(step: str, command: str) -> None:
    print(f"\n== {step}\n$ {command}", flush=True)


def _trained(out: Path, config_text: str) -> Path | None:
    """The finished model of a training run with this exact config, if there is one."""
    model = out / MODEL_FILE
    if (out / "result.json").is_file() and model.is_file() and _same_config(out, config_text):
        return model
    return None


def train_cached(preset: str, overrides: list[str], out: Path) -> Path:
    """Train unless a finished run with the same config exists; resume a killed one."""
    from addressclip.train.engine import train_model

    config = load_config(preset, overrides)
    model = _trained(out, config_yaml(config))
    if model is not None:
        print(f"reusing {model} (same config)")
        return model
    resume = "latest" if (out / "checkpoints" / "latest.pt").is_file() else None
    if resume and not _same_config(out, config_yaml(config)):
        raise SystemExit(f"{out} holds a run with another config; remove it or choose another --out")
    result = train_model(config, stage="address", resume=resume)
    assert result.model_path is not None
    return result.model_path


def _same_config(out: Path, config_text: str) -> bool:
    saved = out / "config.yaml"
    return saved.is_file() and saved.read_text(encoding="utf-8") == config_text


def run_demo(options: DemoOptions) -> None:
    from addressclip.world import render_world

    out = Path(options.out)
    started = time.perf_counter()
    timings: dict[str, float] = {}

    def lap(name: str, since: float) -> float:
        timings[name] = round(time.perf_counter() - since, 1)
        return time.perf_counter()

    t = time.perf_counter()
    world_dir = out / "world"
    _banner("1/5 render the embedded world", f"addressclip render --world {options.world} --out {world_dir}")
    render_world(options.world, world_dir, seed=options.seed, partition=options.partition, bbox=options.bbox)
    manifest = world_dir / "manifest.parquet"
    print((world_dir / "reference.md").read_text(encoding="utf-8"))
    t = lap("render", t)

    data = [f"data={manifest}", f"seed={options.seed}", *options.overrides]
    street_clip = _street_clip(options, out, manifest, data)
    t = lap("pretrain", t)

    train_dir = out / "train"
    init = f"model.init={street_clip}"
    _banner(
        "3/5 fine-tune AddressCLIP (L_address + L_caption + L_geo)",
        f"addressclip train --config {options.config} data={manifest} out={train_dir} {init}",
    )
    model_path = train_cached(options.config, [*data, f"out={train_dir}", init], train_dir)
    result = json.loads((train_dir / "result.json").read_text(encoding="utf-8"))
    print(f"AddressCLIP: {model_path}\n  test: {_fmt(result.get('test', {}))}")
    t = lap("train", t)

    if options.report:
        _banner(
            "4/5 benchmark report",
            f"addressclip benchmark --suite demo --data {manifest} --init {street_clip} "
            f"--model {model_path} --out {out / 'report'}",
        )
        from addressclip.benchmark.options import BenchmarkOptions
        from addressclip.benchmark.suites import run_benchmark

        report = run_benchmark(
            BenchmarkOptions(
                suite="demo",
                data=manifest,
                out=out / "report",
                preset=options.config,
                overrides=tuple(data),
                init=Path(street_clip),
                model=Path(model_path),
                command="make demo",
            )
        )
        print(_main_table(report))
        print(f"report: {report}")
        t = lap("report", t)

    _banner(
        "5/5 predict held-out images", f"addressclip predict {world_dir}/images/test --model {model_path}"
    )
    from addressclip.serve.formatting import held_out_report
    from addressclip.serve.loading import load_predictor

    predictor = load_predictor(model_path)
    print(held_out_report(predictor, str(manifest), count=8, split="test"))
    lap("predict", t)

    timings["total"] = round(time.perf_counter() - started, 1)
    summary = {"world": str(world_dir), "model": str(model_path), "timings_s": timings}
    write_text_atomic(out / "demo.json", json.dumps(summary, indent=2) + "\n")
    print(
        f"\ndemo finished in {timings['total']:.0f} s: "
        + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items())
    )


def _street_clip(options: DemoOptions, out: Path, manifest: Path, data: list[str]) -> Path:
    """Stage 2: the street CLIP AddressCLIP starts from (the shipped foundation when it fits the
    preset's architecture, else a per-city pretraining run, cached by its parameters)."""
    from addressclip.resources.shipped_model import FOUNDATION_NAME, foundation_checkpoint
    from addressclip.train.pretrain import run_pretraining

    init = options.init
    if init == FOUNDATION_NAME:
        reason = _foundation_mismatch(options.config, data)
        if reason is None:
            path = foundation_checkpoint()
            _banner(
                "2/5 the street CLIP: the shipped foundation (pretrained on other cities)",
                f"model.init={path}",
            )
            return path
        print(
            f"\n(the shipped foundation does not fit this run: {reason}; pretraining on this world instead)"
        )
        init = "pretrain"
    if init != "pretrain":
        _banner("2/5 the street CLIP: given", f"model.init={init}")
        return Path(init)
    pretrain_dir = out / "pretrain"
    _banner(
        "2/5 pretrain the caption-only street CLIP on this world",
        f"addressclip pretrain --config {options.config} data={manifest} out={pretrain_dir}",
    )
    pre_config = load_config(options.config, [*data, f"out={pretrain_dir}"])
    # a killed pretraining run (checkpoint but no finished model) continues where it stopped
    interrupted = (pretrain_dir / "checkpoints" / "latest.pt").is_file() and not (
        pretrain_dir / MODEL_FILE
    ).is_file()
    pretrained, reused = run_pretraining(pre_config, resume="latest" if interrupted else None)
    print(f"street CLIP: {pretrained.model_path} ({'reused' if reused else 'trained'})")
    print(f"zero-shot on test: {_fmt(pretrained.test)}")
    assert pretrained.model_path is not None
    return Path(pretrained.model_path)


def _foundation_mismatch(preset: str, data: list[str]) -> str | None:
    """Why the shipped foundation cannot start this preset's model (None: it can)."""
    from addressclip.errors import AddressclipError
    from addressclip.model.backbone import open_clip_config
    from addressclip.model.checkpoint import read_checkpoint
    from addressclip.resources.shipped_model import foundation_checkpoint

    try:
        payload = read_checkpoint(foundation_checkpoint())
    except AddressclipError as error:
        return str(error)
    config = load_config(preset, data)
    if payload["open_clip_config"] != open_clip_config(config.model):
        return f"preset '{preset}' builds another architecture"
    return None


def _main_table(report: Path) -> str:
    """The report's first table (the main results), to print at the end of the demo."""
    lines = report.read_text(encoding="utf-8").splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("|")), None)
    if start is None:
        return ""
    end = start
    while end < len(lines) and lines[end].startswith("|"):
        end += 1
    return "\n".join(lines[start:end])


def _fmt(metrics: dict[str, float]) -> str:
    keys = ("SSA-1", "SSA-5", "SA-1", "SA-5")
    # the engine reports accuracies in percent
    return "  ".join(f"{k} {metrics[k]:.1f}%" for k in keys if k in metrics) or "(none)"
