"""Which rows a stage trains and validates on.

- address stage (`addressclip train`): the manifest's train split; validation on its val split; the
  candidate set is every address of the manifest.
- pretrain stage (`addressclip pretrain`): caption-only pairs from the manifest's `pretrain.splits`
  (train only by default: never the evaluation split) plus every row of `pretrain.extra_data`
  (e.g. the Karhula world), minus every row of a city in `pretrain.exclude_cities` (the foundation
  never sees its evaluation cities); the street CLIP's zero-shot SSA-k is measured on the val split.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from addressclip.config import RunConfig
from addressclip.data.dataset import (
    AddressDataset,
    AddressVocabulary,
    ManifestImages,
    StackedImages,
    keep_batch,
    split_rows,
)
from addressclip.data.manifest import read_manifest
from addressclip.data.samplers import AddressBatchSampler
from addressclip.data.shards import ShardImages, ShardIndex, ShardStream, StagedImages, read_shard_index
from addressclip.errors import ConfigError, InputError


@dataclass
class StageData:
    train: AddressDataset
    val: AddressDataset | None
    test: AddressDataset | None
    vocabulary: AddressVocabulary  # candidates for validation
    manifests: list[Path]
    shards: ShardIndex | None = None  # training images streamed from these shards (loader.shards)


def batch_source(data: StageData, config: RunConfig, rank: int, world_size: int):
    """What the training loop draws its batches from: the folder path's `AddressBatchSampler`, or a
    `ShardStream` when `loader.shards` is set. Both give `global_batch_size` and `batches_per_epoch`."""
    loader = config.loader
    if data.shards is None:
        return AddressBatchSampler(
            data.train.labels, config.optim.batch_size, loader.max_per_address, config.seed, rank, world_size
        )
    return ShardStream(
        data.shards, loader.train_split, data.train, config.optim.batch_size, loader.max_per_address,
        config.seed, loader.shuffle_buffer, rank, world_size,
    )  # fmt: skip


def train_loader(source, dataset: AddressDataset, epoch: int, start: int, num_workers: int, pin_memory: bool):
    """This rank's batches of `epoch` from micro-batch `start` on, from either batch source."""
    if isinstance(source, ShardStream):
        return source.loader(epoch, start, num_workers, pin_memory)
    source.set_epoch(epoch)
    source.start_at(start)
    return torch.utils.data.DataLoader(
        dataset,
        batch_sampler=source,
        collate_fn=keep_batch,
        num_workers=num_workers,
        pin_memory=pin_memory,
        generator=torch.Generator(),  # keeps the DataLoader off the global RNG (exact resume)
    )


def _images(path: Path, frame: pd.DataFrame, image_root: Path, config: RunConfig, size: int, interp: str):
    loader = config.loader
    return ManifestImages(
        path,
        image_root,
        list(frame["path"]),
        size,
        interp,
        loader.image_cache,
        loader.cache_dir,
        config.train.progress,
    )


def load_stage_data(
    config: RunConfig, stage: str, image_size: int, interpolation: str = "bicubic"
) -> StageData:
    if not config.data:
        raise ConfigError("data=PATH/manifest.parquet is required")
    main = read_manifest(config.data)
    frame = main.frame.reset_index(drop=True)
    shards = None
    if config.loader.shards:
        if stage != "address":
            raise ConfigError("loader.shards streams the address stage; pretrain reads the image folder")
        shards = read_shard_index(config.loader.shards)
        if shards.manifest != main.path.resolve():
            raise ConfigError(
                f"loader.shards={config.loader.shards} holds {shards.manifest}, not data={main.path}"
            )
    if shards is not None:  # validation/test images streamed from their shards per batch
        images = ShardImages(shards, frame, image_size, interpolation)
    else:
        images = _images(main.path, frame, main.image_root, config, image_size, interpolation)
    vocabulary = AddressVocabulary.from_frame(frame)
    val_rows = split_rows(frame, [config.loader.val_split])
    val = AddressDataset(frame, images, val_rows, vocabulary) if len(val_rows) else None
    test_rows = split_rows(frame, [config.loader.test_split])
    test = AddressDataset(frame, images, test_rows, vocabulary) if len(test_rows) else None
    if stage == "address":
        rows = split_rows(frame, [config.loader.train_split])
        if not len(rows):
            raise InputError(main.path, "split", f"no rows with split '{config.loader.train_split}'")
        train_images = StagedImages(image_size) if shards is not None else images
        train = AddressDataset(frame, train_images, rows, vocabulary, config.loss.caption_template)
        return StageData(train, val, test, vocabulary, [main.path], shards)

    # pretrain: captions only, several manifests
    parts = [(images, split_rows(frame, list(config.pretrain.splits)), frame, main.path)]
    for held_out in (config.loader.val_split, config.loader.test_split):
        if held_out in config.pretrain.splits:
            raise ConfigError(
                f"pretrain.splits includes the held-out split '{held_out}'; "
                "the street CLIP must not see the images it is evaluated on"
            )
    for extra in config.pretrain.extra_data:
        other = read_manifest(extra)
        other_frame = other.frame.reset_index(drop=True)
        other_images = _images(other.path, other_frame, other.image_root, config, image_size, interpolation)
        parts.append((other_images, np.arange(len(other_frame)), other_frame, other.path))
    parts = [
        (imgs, _without_cities(rows, f, config.pretrain.exclude_cities), f, p) for imgs, rows, f, p in parts
    ]
    combined = pd.concat([f.iloc[rows] for _, rows, f, _ in parts], ignore_index=True)
    if not len(combined):
        raise ConfigError(
            f"no pretraining images left after pretrain.exclude_cities={list(config.pretrain.exclude_cities)}"
        )
    captions = combined["caption"]
    if not captions.map(lambda c: isinstance(c, str) and bool(c.strip())).all():
        first = next(p for _, rows, f, p in parts if f.iloc[rows]["caption"].isna().any())
        raise InputError(first, "caption", "pretraining needs a caption on every image")
    stacked = StackedImages([(imgs, rows) for imgs, rows, _, _ in parts])
    train = AddressDataset(
        combined,
        stacked,
        np.arange(len(combined)),
        AddressVocabulary.from_frame(combined),
        "{caption}",
    )
    return StageData(train, val, test, vocabulary, [p for _, _, _, p in parts])


def _without_cities(rows: np.ndarray, frame: pd.DataFrame, excluded: tuple[str, ...]) -> np.ndarray:
    """`rows` minus those whose `city` is excluded (rows without a city are kept)."""
    if not excluded or "city" not in frame.columns:
        return rows
    cities = frame["city"].to_numpy()[rows]
    return rows[~pd.Series(cities).isin(set(excluded)).to_numpy()]
