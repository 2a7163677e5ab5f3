"""The caption-only pretraining stage ("street CLIP"), cached by the parameters that make it.

The paper fine-tunes a CLIP that already aligns street photos with descriptions; offline on a CPU we
have no such model, so the `cpu` pipeline first trains one on image-caption pairs only (no address
text), from images that exclude the evaluation split: the main world's `pretrain.splits` (train) plus
`pretrain.extra_data` (e.g. the Karhula world, used whole). AddressCLIP and every baseline then start
from the same checkpoint (`model.init=.../model.pt`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from addressclip.atomic import write_text_atomic
from addressclip.config import RunConfig, config_to_dict
from addressclip.digest import file_digest, text_digest
from addressclip.errors import ConfigError
from addressclip.filenames import MODEL_FILE
from addressclip.train.engine import TrainResult, train_model

FINGERPRINT_FILE = "fingerprint.json"


def pretrain_fingerprint(config: RunConfig) -> str:
    """Hash of everything that changes the pretrained weights (not where they are written)."""
    if not config.data:
        raise ConfigError("data=PATH/manifest.parquet is required")
    values: dict[str, Any] = config_to_dict(config)
    model = values["model"]
    model.pop("init", None)
    relevant = {
        "seed": values["seed"],
        "model": model,
        "pretrain": {k: v for k, v in values["pretrain"].items() if k != "extra_data"},
        "optim": {k: v for k, v in values["optim"].items() if k not in ("epochs", "lr")},
        "loader": {k: values["loader"][k] for k in ("max_per_address", "augment", "val_split")},
        "data": [file_digest(Path(p)) for p in (config.data, *config.pretrain.extra_data)],
    }
    text = json.dumps(relevant, sort_keys=True)
    return text_digest(text, length=16)


def default_pretrain_dir(config: RunConfig, root: str | Path = "runs/pretrain") -> Path:
    return Path(root) / pretrain_fingerprint(config)


def run_pretraining(
    config: RunConfig, resume: str | None = None, force: bool = False
) -> tuple[TrainResult, bool]:
    """Train the street CLIP, or reuse the one already trained with the same parameters.

    Returns (result, reused). `config.out` defaults to runs/pretrain/<fingerprint>.
    """
    fingerprint = pretrain_fingerprint(config)
    out = Path(config.out) if config.out else default_pretrain_dir(config)
    record = out / FINGERPRINT_FILE
    if not force and not resume and (out / MODEL_FILE).is_file() and record.is_file():
        saved = json.loads(record.read_text(encoding="utf-8"))
        if saved.get("fingerprint") == fingerprint:
            result = TrainResult(
                out,
                out / MODEL_FILE,
                int(saved.get("steps", 0)),
                0.0,
                saved.get("val", {}),
                saved.get("val", {}),
                saved.get("test", {}),
            )
            return result, True
        raise ConfigError(
            f"{out} holds a pretraining run with other parameters; choose another out=DIR or pass --force"
        )
    if force and (out / "checkpoints" / "latest.pt").is_file() and not resume:
        (out / "checkpoints" / "latest.pt").unlink()
    config.out = str(out)
    result = train_model(config, stage="pretrain", resume=resume)
    if result.model_path is not None:
        write_text_atomic(
            record,
            json.dumps(
                {
                    "fingerprint": fingerprint,
                    "steps": result.steps,
                    "val": result.final_val,
                    "test": result.test,
                },
                indent=2,
            ),
        )
    return result, False
