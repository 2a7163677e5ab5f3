"""The training loop: AddressCLIP fine-tuning and the caption-only pretraining stage.

One function, `train_model(config, stage, resume)`, used by `addressclip train`, `addressclip
pretrain`, the tests and `torchrun`. Per optimizer step: JSONL metrics (each loss term by name);
per epoch: val SSA-1/SA-1, `checkpoints/latest.pt`, the best N by val SSA-1. Checkpoints carry
everything to resume exactly (see `train/checkpoint.py`); the random streams that matter are either
restored (torch, numpy, python) or derived from (seed, epoch, sample) — batch order and
augmentation — so a resumed run repeats the uninterrupted one.
"""

from __future__ import annotations

import contextlib
import json
import math
import random
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from tqdm import tqdm

from addressclip.atomic import atomic_path, write_text_atomic
from addressclip.config import RunConfig, check_config, config_to_dict, save_config
from addressclip.data.transforms import Normalizer, augment_batch
from addressclip.errors import AddressclipError, ConfigError
from addressclip.filenames import MODEL_FILE
from addressclip.losses import AddressClipLoss, LossInputs
from addressclip.model.addressclip import AddressClipModel
from addressclip.model.checkpoint import read_checkpoint, save_checkpoint
from addressclip.model.device import set_threads
from addressclip.model.factory import build_model, load_checkpoint
from addressclip.train.checkpoint import (
    LATEST,
    PREVIOUS,
    BestCheckpoints,
    capture_rng,
    checkpoint_dir,
    keep_previous,
    read_resume_checkpoint,
    restore_rng,
)
from addressclip.train.data import StageData, batch_source, load_stage_data, train_loader
from addressclip.train.distributed import DistributedContext, setup_distributed, teardown_distributed
from addressclip.train.logging import MetricsLogger, truncate_metrics
from addressclip.train.speed import configure_model_runtime, lr_scale, make_adamw, to_layout
from addressclip.train.validation import evaluate_addresses

Stage = Literal["address", "pretrain"]


@dataclass
class TrainResult:
    out: Path
    model_path: Path | None
    steps: int
    seconds: float
    final_val: dict[str, float] = field(default_factory=dict)
    best_val: dict[str, float] = field(default_factory=dict)
    test: dict[str, float] = field(default_factory=dict)  # model.pt on the test split
    history: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class _Position:
    epoch: int = 0
    batch: int = 0  # micro-batches of `epoch` already consumed
    step: int = 0  # optimizer steps so far


def stage_loss_config(config: RunConfig, stage: Stage):
    if stage == "pretrain":
        return replace(config.loss, alpha=0.0, beta=1.0, gamma=0.0, caption_template="{caption}")
    return config.loss


def cosine_schedule(total_steps: int, warmup_steps: int, floor: float):
    """LR multiplier: linear warm-up, then cosine from 1 to `floor` (= lr_min / lr)."""

    def multiplier(step: int) -> float:
        if warmup_steps and step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        progress = min(max(progress, 0.0), 1.0)
        return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return multiplier


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Weight decay on matrices only (not on gains, biases, embeddings' scalars or the logit scale)."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (no_decay if param.ndim < 2 or "logit" in name else decay).append(param)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def _comparable(config: RunConfig) -> dict[str, Any]:
    values = config_to_dict(config)
    for key in ("train", "out"):
        values.pop(key, None)
    return values


def _first_difference(a: Any, b: Any, prefix: str = "") -> str | None:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            found = _first_difference(a.get(key), b.get(key), f"{prefix}{key}.")
            if found:
                return found
        return None
    return None if a == b else prefix.rstrip(".")


def check_run_folder(out: Path) -> None:
    """`out` must be a folder or become one: a file in the way would otherwise surface as a traceback
    after the data and model are loaded (or, for a parent, only at the end of training)."""
    for folder in (out, *out.parents):
        if folder.exists():
            if not folder.is_dir():
                raise ConfigError(
                    f"out={out}: {folder} exists and is not a folder; give a folder for the run"
                )
            return


class Trainer:
    def __init__(self, config: RunConfig, stage: Stage, ctx: DistributedContext) -> None:
        if not config.out:
            raise ConfigError("out=DIR is required (the run folder)")
        check_config(config)  # a config built in Python gets the ranges a YAML one gets on load
        check_run_folder(Path(config.out))
        # the effective config: what config.yaml and the checkpoints record is what the run used
        config = replace(config, loss=stage_loss_config(config, stage))
        self.config = config
        self.stage = stage
        self.ctx = ctx
        self.out = Path(config.out)
        self.device = ctx.device
        set_threads(config.train.threads)
        torch.manual_seed(config.seed)
        np.random.seed(config.seed)
        random.seed(config.seed)
        # data first: a bad manifest fails before the model is built
        self.data: StageData = load_stage_data(config, stage, config.model.image_size, "bicubic")
        self.model: AddressClipModel = build_model(config.model, self.device)
        configure_model_runtime(self.model, config.train, self.device)
        self.loss_config = stage_loss_config(config, stage)
        self.loss_fn = AddressClipLoss(self.loss_config)
        self.use_captions = self.loss_config.beta > 0 and self.data.train.has_captions
        self.use_addresses = self.loss_config.alpha > 0
        self.sampler = batch_source(self.data, config, ctx.rank, ctx.world_size)
        accum = max(1, config.optim.accum_steps)
        self.accum = accum
        self.steps_per_epoch = self.sampler.batches_per_epoch() // accum
        if self.steps_per_epoch == 0:
            raise ConfigError(
                f"the training rows ({len(self.data.train)}) do not fill one optimizer step of "
                f"{self.sampler.global_batch_size * accum} images; lower optim.batch_size"
            )
        self.epochs = config.pretrain.epochs if stage == "pretrain" else config.optim.epochs
        lr = config.pretrain.lr if stage == "pretrain" else config.optim.lr
        floor = min(1.0, config.optim.lr_min / lr) if lr > 0 else 1.0
        lr *= lr_scale(config.optim, self.sampler.global_batch_size * accum)
        self.optimizer = make_adamw(
            param_groups(self.model, config.optim.weight_decay), lr, config.optim, self.device
        )
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer,
            cosine_schedule(self.epochs * self.steps_per_epoch, config.optim.warmup_steps, floor),
        )
        cuda = self.device.type == "cuda"
        precision = config.train.precision
        self.autocast_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision) if cuda else None
        self.scaler = torch.amp.GradScaler("cuda", enabled=cuda and precision == "fp16")
        self.net: torch.nn.Module = self.model
        if ctx.enabled:
            self.net = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if cuda else None
            )
        self.normalizer = Normalizer(self.model.preprocess["mean"], self.model.preprocess["std"])
        self.checkpoints = checkpoint_dir(self.out)
        self.best = BestCheckpoints(self.checkpoints, config.train.keep_best)
        self.position = _Position()
        self.history: list[dict[str, Any]] = []
        self.rotate_latest = True  # off after resuming from previous.pt: latest.pt is the damaged one

    def warm_text_cache(self) -> None:
        """Frozen text tower: its trunk features for every training string and candidate address,
        read from the shared on-disk store or computed once, before the first step."""
        from addressclip.model.text_cache import warm_text_cache

        texts = list(self.data.vocabulary.addresses)
        if self.use_addresses:
            texts += self.data.train.addresses
        if self.use_captions:
            texts += self.data.train.captions
        loader = self.config.loader
        folder = None
        if loader.text_cache:
            folder = Path(loader.cache_dir) if loader.cache_dir else self.data.manifests[0].parent / ".cache"
        warm_text_cache(self.model, texts, folder, progress=self.config.train.progress and self.ctx.is_main)

    # -------------------------------------------------------------------------------- checkpoints
    def _training_state(self) -> dict[str, Any]:
        return {
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": capture_rng(),
            "epoch": self.position.epoch,
            "batch": self.position.batch,
            "step": self.position.step,
            "best": self.best.state_dict(),
            "history": self.history,
        }

    def save_latest(self) -> None:
        if self.ctx.is_main:
            if self.rotate_latest:
                keep_previous(self.checkpoints / LATEST)
            self.rotate_latest = True
            save_checkpoint(
                self.checkpoints / LATEST,
                self.model,
                run_config=config_to_dict(self.config),
                stage=self.stage,
                training=self._training_state(),
            )
        self.ctx.barrier()

    def resume(self, resume: str) -> None:
        path, payload = read_resume_checkpoint(self.out, resume)
        self.rotate_latest = path.resolve() != (self.checkpoints / PREVIOUS).resolve()
        if "training" not in payload:
            raise AddressclipError(f"--resume: {path} is a model-only checkpoint (no training state)")
        saved = payload.get("run_config", {})
        saved_values = {k: v for k, v in saved.items() if k not in ("train", "out")}
        diff = _first_difference(saved_values, _comparable(self.config))
        if diff:
            raise ConfigError(
                f"--resume: config key '{diff}' differs from the run being resumed ({path}); "
                "resume with the same config"
            )
        if payload.get("stage") != self.stage:
            raise ConfigError(f"--resume: {path} was written by the '{payload.get('stage')}' stage")
        self.model.load_state_dict(payload["state_dict"])
        training = payload["training"]
        self.optimizer.load_state_dict(training["optimizer"])
        self.scheduler.load_state_dict(training["scheduler"])
        self.scaler.load_state_dict(training["scaler"])
        self.best.load_state_dict(training["best"])
        self.history = list(training.get("history", []))
        self.position = _Position(training["epoch"], training["batch"], training["step"])
        restore_rng(training["rng"])

    # -------------------------------------------------------------------------------------- steps
    def _autocast(self):
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type="cuda", dtype=self.autocast_dtype)

    def prepare(self, batch, epoch: int):
        """Input-side work on a loaded batch (augmentation), kept out of the step for benchmarking."""
        if self.config.loader.augment:
            batch.images = augment_batch(batch.images, batch.indices.tolist(), self.config.seed, epoch)
        return batch

    def micro_step(self, batch, sync: bool) -> dict[str, torch.Tensor]:
        images = to_layout(self.normalizer(batch.images, self.device), self.config.train)
        # unaugmented images are the same every epoch: the frozen image stem's output is cached
        keys = None if self.config.loader.augment else batch.indices.tolist()
        sync_context = contextlib.nullcontext()
        if not sync and isinstance(self.net, torch.nn.parallel.DistributedDataParallel):
            sync_context = self.net.no_sync()
        with sync_context:
            with self._autocast():
                image, address, caption, scale = self.net(
                    images,
                    batch.addresses if self.use_addresses else None,
                    batch.captions if self.use_captions else None,
                    keys,
                )
            inputs = LossInputs(
                image=image.float(),
                address=None if address is None else address.float(),
                caption=None if caption is None else caption.float(),
                labels=batch.labels.to(self.device),
                utm=batch.utm.to(self.device) if self.loss_config.gamma else None,
                cities=None if batch.cities is None else batch.cities.to(self.device),
            )
            terms = self.loss_fn(inputs, scale.float())
            self.scaler.scale(terms["total"] / self.accum).backward()
        return terms

    def optimizer_step(self) -> None:
        if self.config.optim.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(
                [p for p in self.model.parameters() if p.requires_grad], self.config.optim.grad_clip
            )
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()

    # -------------------------------------------------------------------------------------- loop
    def validate(self) -> dict[str, float]:
        if self.data.val is None or not self.ctx.is_main:
            return {}
        return evaluate_addresses(
            self.model, self.data.val, self.data.vocabulary, self.device, self.config.train.eval_batch_size
        )

    def loader(self, epoch: int, start: int = 0) -> torch.utils.data.DataLoader:
        """This rank's batches of `epoch`, from micro-batch `start` on."""
        return train_loader(
            self.sampler,
            self.data.train,
            epoch,
            start,
            self.config.loader.num_workers,
            self.device.type == "cuda",
        )

    def run(self, logger: MetricsLogger) -> None:
        cfg = self.config
        limit = self.steps_per_epoch * self.accum
        show = cfg.train.progress and self.ctx.is_main
        for epoch in range(self.position.epoch, self.epochs):
            loader = self.loader(epoch, self.position.batch)
            bar = tqdm(
                total=self.steps_per_epoch,
                initial=self.position.batch // self.accum,
                desc=f"{self.stage} epoch {epoch + 1}/{self.epochs}",
                unit="step",
                disable=not show,
                leave=False,
            )
            running: dict[str, torch.Tensor] = {}  # summed on the device: no sync per step
            counted = 0
            tick = time.perf_counter()
            images_seen = 0
            self.model.train()
            for batch in loader:
                if self.position.batch >= limit:
                    break
                last_micro = (self.position.batch + 1) % self.accum == 0
                terms = self.micro_step(self.prepare(batch, epoch), sync=last_micro)
                self.position.batch += 1
                images_seen += len(batch.labels) * self.ctx.world_size
                for key, value in terms.items():
                    running[key] = running[key] + value.detach() if key in running else value.detach()
                counted += 1
                if not last_micro:
                    continue
                self.optimizer_step()
                self.position.step += 1
                bar.update(1)
                if self.position.step % max(1, cfg.train.log_every) == 0:
                    elapsed = time.perf_counter() - tick
                    record = {
                        "kind": "step",
                        "epoch": epoch,
                        "step": self.position.step,
                        "lr": self.scheduler.get_last_lr()[0],
                        "logit_scale": float(self.model.logit_scale().detach()),
                        "images_per_s": images_seen / max(elapsed, 1e-9),
                    }
                    record.update({k: float(v.detach()) for k, v in terms.items()})
                    logger.log(record)
                    bar.set_postfix(loss=f"{record['total']:.3f}")
                    tick, images_seen = time.perf_counter(), 0
                every = cfg.train.checkpoint_every
                if every and self.position.step % every == 0 and self.position.batch < limit:
                    self.save_latest()
            bar.close()
            val = self.validate()
            record = {
                "kind": "epoch",
                "epoch": epoch,
                "step": self.position.step,
                "train": {k: float(v) / max(counted, 1) for k, v in running.items()},
                "val": val,
            }
            self.history.append(record)
            logger.log(record)
            if self.ctx.is_main and val and self.stage == "address":
                self.best.offer(
                    val.get("SSA-1", 0.0),
                    epoch,
                    lambda path, val=val, epoch=epoch: save_checkpoint(
                        path,
                        self.model,
                        run_config=config_to_dict(cfg),
                        stage=self.stage,
                        metrics={"epoch": epoch, "val": val},
                    ),
                )
            self.position = _Position(epoch + 1, 0, self.position.step)
            self.save_latest()

    def test_metrics(self, model_path: Path | None) -> dict[str, float]:
        """SSA-k / SA-k of the saved model on the test split (reported, never used for selection)."""
        if model_path is None or self.data.test is None:
            return {}

        model = load_checkpoint(model_path, self.device)
        return evaluate_addresses(
            model, self.data.test, self.data.vocabulary, self.device, self.config.train.eval_batch_size
        )

    def finish(self) -> Path | None:
        """model.pt: the best checkpoint by val SSA-1 (address stage) or the last weights (pretrain)."""
        if not self.ctx.is_main:
            return None
        target = self.out / MODEL_FILE
        best = self.best.best() if self.stage == "address" else None
        if best is not None and best.is_file():
            payload = read_checkpoint(best)
            with atomic_path(target) as tmp:
                torch.save(payload, tmp)
        else:
            save_checkpoint(target, self.model, run_config=config_to_dict(self.config), stage=self.stage)
        return target


def train_model(config: RunConfig, stage: Stage = "address", resume: str | None = None) -> TrainResult:
    """Train (or resume) a run; returns where the model went and the validation history."""
    started = time.perf_counter()
    ctx = setup_distributed(config.train.device)
    try:
        trainer = Trainer(config, stage, ctx)
        latest = trainer.checkpoints / LATEST
        if resume:
            trainer.resume(resume)
        elif latest.is_file() or (trainer.checkpoints / PREVIOUS).is_file():
            raise AddressclipError(
                f"{trainer.out} already holds a run ({latest}); pass --resume latest to continue it "
                "or choose another out=DIR"
            )
        trainer.warm_text_cache()
        if ctx.is_main:
            trainer.out.mkdir(parents=True, exist_ok=True)
            save_config(trainer.config, trainer.out / "config.yaml")
        if resume and ctx.is_main:  # the steps after the checkpoint are trained again: log them once
            truncate_metrics(trainer.out / "metrics.jsonl", trainer.position.step)
        logger = MetricsLogger(trainer.out, enabled=ctx.is_main, tensorboard=config.train.tensorboard)
        try:
            if resume:
                logger.log({"kind": "resume", "epoch": trainer.position.epoch, "step": trainer.position.step})
            trainer.run(logger)
        finally:
            logger.close()
        model_path = trainer.finish()
        test = trainer.test_metrics(model_path)
        ctx.barrier()
        epochs = [h for h in trainer.history if h.get("val")]
        final_val = epochs[-1]["val"] if epochs else {}
        best_val = max((h["val"] for h in epochs), key=lambda v: v.get("SSA-1", 0.0), default={})
        result = TrainResult(
            trainer.out,
            model_path,
            trainer.position.step,
            time.perf_counter() - started,
            final_val,
            best_val,
            test,
            trainer.history,
        )
        if ctx.is_main:
            summary = {
                "stage": stage,
                "model": str(model_path),
                "steps": result.steps,
                "seconds": result.seconds,
                "final_val": final_val,
                "best_val": best_val,
                "test": test,
            }
            write_text_atomic(trainer.out / "result.json", json.dumps(summary, indent=2) + "\n")
        return result
    finally:
        teardown_distributed()
