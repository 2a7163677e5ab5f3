"""Methods that fine-tune the street CLIP with the training engine: AddressCLIP itself, the paper's
"CLIP fine-tuned with L_address only" baseline (beta = gamma = 0), and every ablation row.

Each is one `train_model` run (config = the benchmark's preset and overrides, then the method's
own), started from the street CLIP (`model.init`), written under the method's folder, and scored
with the same gallery path as zero-shot. A finished run (`model.pt` + `done.json`) is reused, an
interrupted one resumed, so a long benchmark can be stopped and restarted.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from addressclip.atomic import write_text_atomic
from addressclip.baselines.base import BaselineSetup, MethodOutput
from addressclip.baselines.zeroshot import score_checkpoint
from addressclip.eval.encode import FrozenEncoder

DONE_FILE = "done.json"
ADDRESS_ONLY: tuple[str, ...] = ("loss.beta=0", "loss.gamma=0")


def train_run(
    setup: BaselineSetup, overrides: Sequence[str], data: str | Path | None = None
) -> tuple[Path, dict]:
    """Train (or reuse) one run under `setup.out`; returns (model.pt, {'steps', 'seconds', 'best_val'})."""
    from addressclip.filenames import MODEL_FILE
    from addressclip.train.engine import train_model

    run = setup.out / "run"
    done = run / DONE_FILE
    model = run / MODEL_FILE
    if model.is_file() and done.is_file():
        return model, json.loads(done.read_text(encoding="utf-8"))
    config = setup.config(
        f"data={data or setup.data.path}",
        f"out={run}",
        f"seed={setup.seed}",
        f"model.init={setup.init_path}",
        f"train.progress={'true' if setup.progress else 'false'}",
        *overrides,
    )
    resume = "latest" if (run / "checkpoints" / "latest.pt").is_file() else None
    result = train_model(config, stage="address", resume=resume)
    info = {"steps": result.steps, "seconds": result.seconds, "best_val": result.best_val,
            "overrides": list(overrides)}  # fmt: skip
    write_text_atomic(done, json.dumps(info, indent=2))
    return model, info


def score_trained(setup: BaselineSetup, model_path: Path, info: dict) -> MethodOutput:
    encoder = FrozenEncoder.from_checkpoint(
        model_path, setup.encoder.store, setup.device, progress=setup.progress
    )
    output = score_checkpoint(setup, encoder, checkpoint=model_path)
    output.train_seconds = float(info.get("seconds", 0.0))
    output.hyper = {"overrides": info.get("overrides", []), "steps": info.get("steps")}
    return output


def run_trained(
    setup: BaselineSetup, overrides: Sequence[str] = (), data: str | Path | None = None
) -> MethodOutput:
    model_path, info = train_run(setup, overrides, data)
    return score_trained(setup, model_path, info)


def run_addressclip(setup: BaselineSetup) -> MethodOutput:
    """AddressCLIP (all three losses); `options['model']` scores an already trained checkpoint."""
    given = setup.option("model", None)
    if given:
        return score_trained(setup, Path(str(given)), {"overrides": ["(given checkpoint)"]})
    return run_trained(setup)


def run_finetune_address(setup: BaselineSetup) -> MethodOutput:
    return run_trained(setup, ADDRESS_ONLY)
