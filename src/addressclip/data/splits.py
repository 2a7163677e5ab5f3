"""Train/val/test splits by capture location, so that no view of a test location is seen in training.

All views of one location (same `location_id`) land in the same split; in `block` mode whole grid
cells of `block_m` metres do, which keeps near neighbours apart too (a harder, spatially honest
split). Groups are shuffled with a seeded generator after sorting, so the result depends only on the
data, the ratios and the seed, not on row order.

As in the paper, the test classes are a subset of the training classes: val/test images whose
address never occurs in train are dropped and counted.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from addressclip.errors import ConfigError

SPLITS: tuple[str, ...] = ("train", "val", "test")
SPLIT_MODES: tuple[str, ...] = ("location", "block")


@dataclass(frozen=True)
class SplitConfig:
    ratios: tuple[float, float, float] = (0.8, 0.1, 0.1)
    seed: int = 0
    mode: str = "location"  # 'location' or 'block'
    block_m: float = 200.0
    resplit: bool = False  # ignore a split given by the reader (folder layout or CSV column)
    drop_unseen: bool = True  # drop val/test images whose address is absent from train

    def __post_init__(self) -> None:
        if self.mode not in SPLIT_MODES:
            raise ConfigError(f"split mode '{self.mode}' is not one of {', '.join(SPLIT_MODES)}")
        check_ratios(self.ratios)
        if not self.block_m > 0:
            raise ConfigError(f"block size {self.block_m} m must be positive")


@dataclass
class SplitReport:
    method: str  # 'given' (kept from the reader), 'location' or 'block'
    seed: int
    ratios: tuple[float, float, float]
    groups: int = 0
    images_before_drop: dict[str, int] = field(default_factory=dict)
    dropped_unseen_images: dict[str, int] = field(default_factory=dict)
    dropped_unseen_addresses: dict[str, int] = field(default_factory=dict)
    locations_in_several_splits: int = 0
    coverage: dict[str, object] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def check_ratios(ratios: tuple[float, ...]) -> tuple[float, float, float]:
    if len(ratios) != 3:
        raise ConfigError(f"split ratios need 3 values (train,val,test), got {len(ratios)}")
    if any(not np.isfinite(r) or r < 0 for r in ratios):
        raise ConfigError(f"split ratios must be non-negative numbers, got {list(ratios)}")
    if abs(sum(ratios) - 1.0) > 1e-6:
        raise ConfigError(f"split ratios must sum to 1, got {list(ratios)} (sum {sum(ratios):g})")
    if ratios[0] <= 0:
        raise ConfigError("the train ratio must be positive")
    return (float(ratios[0]), float(ratios[1]), float(ratios[2]))


def parse_ratios(text: str) -> tuple[float, float, float]:
    """'0.8,0.1,0.1' -> (0.8, 0.1, 0.1), with a ConfigError naming the problem."""
    try:
        values = tuple(float(part) for part in text.split(","))
    except ValueError:
        raise ConfigError(f"split ratios '{text}' must be three numbers like 0.8,0.1,0.1") from None
    return check_ratios(values)


def _group_keys(frame: pd.DataFrame, config: SplitConfig) -> pd.Series:
    """One key per row: its location, or the grid block of its location's mean UTM position."""
    locations = frame["location_id"].astype(str)
    if config.mode == "location":
        return locations
    if {"utm_e", "utm_n"} <= set(frame.columns):
        east, north = frame["utm_e"].to_numpy(float), frame["utm_n"].to_numpy(float)
    else:
        from addressclip.geo.utm import UtmProjection

        projection = UtmProjection.for_point(float(frame["lon"].median()), float(frame["lat"].median()))
        east, north = projection.to_utm(frame["lon"].to_numpy(float), frame["lat"].to_numpy(float))
    centres = pd.DataFrame({"loc": locations.to_numpy(), "e": east, "n": north}).groupby("loc").mean()
    blocks = (
        np.floor(centres["e"] / config.block_m).astype(np.int64).astype(str)
        + ":"
        + np.floor(centres["n"] / config.block_m).astype(np.int64).astype(str)
    )
    return locations.map(blocks.to_dict())


def _random_split(frame: pd.DataFrame, config: SplitConfig) -> tuple[np.ndarray, int]:
    """Split label per row; groups are cut where their image mass crosses the ratio boundaries."""
    keys = _group_keys(frame, config)
    sizes = keys.value_counts().sort_index()
    order = np.random.default_rng(config.seed).permutation(len(sizes))
    shuffled = sizes.iloc[order]
    counts = shuffled.to_numpy(dtype=float)
    midpoints = (np.cumsum(counts) - counts / 2.0) / counts.sum()
    bounds = np.cumsum(config.ratios)[:2]
    group_split = np.asarray(SPLITS, dtype=object)[np.searchsorted(bounds, midpoints, side="right")]
    mapping = dict(zip(shuffled.index.tolist(), group_split.tolist(), strict=True))
    return keys.map(mapping).to_numpy(dtype=object), len(sizes)


def has_given_split(frame: pd.DataFrame) -> bool:
    return "split" in frame.columns and bool(frame["split"].notna().all()) and len(frame) > 0


def assign_splits(frame: pd.DataFrame, config: SplitConfig | None = None) -> tuple[pd.DataFrame, SplitReport]:
    """Frame with a `split` column (rows possibly dropped, index reset) and the report.

    Needs `location_id` (and lat/lon or utm_e/utm_n in block mode); the unseen-address drop needs
    `address_id` and is skipped without it.
    """
    config = config or SplitConfig()
    frame = frame.reset_index(drop=True).copy()
    use_given = has_given_split(frame) and not config.resplit
    report = SplitReport("given" if use_given else config.mode, config.seed, config.ratios)
    if use_given:
        bad = sorted(set(frame["split"].tolist()) - set(SPLITS))
        if bad:
            raise ConfigError(f"given split values {bad} are not train/val/test")
        report.groups = int(frame["location_id"].nunique())
    elif len(frame):
        frame["split"], report.groups = _random_split(frame, config)
    else:
        frame["split"] = pd.Series(dtype=object)
    report.images_before_drop = _count_by_split(frame)
    spans = frame.groupby("location_id")["split"].nunique()
    report.locations_in_several_splits = int((spans > 1).sum())
    if config.drop_unseen and "address_id" in frame.columns:
        frame = _drop_unseen(frame, report)
    report.coverage = class_coverage(frame)
    return frame, report


def _count_by_split(frame: pd.DataFrame) -> dict[str, int]:
    counts = frame["split"].value_counts()
    return {split: int(counts.get(split, 0)) for split in SPLITS}


def _drop_unseen(frame: pd.DataFrame, report: SplitReport) -> pd.DataFrame:
    train_ids = _distinct(frame.loc[frame["split"] == "train", "address_id"])
    unseen = (frame["split"] != "train") & ~frame["address_id"].isin(train_ids)
    for split in ("val", "test"):
        in_split = unseen & (frame["split"] == split)
        report.dropped_unseen_images[split] = int(in_split.sum())
        report.dropped_unseen_addresses[split] = int(frame.loc[in_split, "address_id"].nunique())
    return frame.loc[~unseen].reset_index(drop=True)


def _distinct(values: pd.Series) -> set:
    return set(values.unique().tolist())


def class_coverage(frame: pd.DataFrame, class_column: str = "address_id") -> dict[str, object]:
    """Per split: images, locations, classes; and how many val/test classes training covers."""
    result: dict[str, object] = {}
    has_classes = class_column in frame.columns
    # distinct values through unique(): iterating millions of (arrow-backed) strings costs seconds
    train_classes = _distinct(frame.loc[frame["split"] == "train", class_column]) if has_classes else set()
    for split in SPLITS:
        rows = frame[frame["split"] == split]
        entry: dict[str, object] = {"images": len(rows), "locations": int(rows["location_id"].nunique())}
        if has_classes:
            classes = _distinct(rows[class_column])
            entry["classes"] = len(classes)
            if split != "train":
                entry["classes_in_train"] = len(classes & train_classes)
            per_class = rows[class_column].value_counts()
            if len(per_class):
                entry["images_per_class"] = {
                    "min": int(per_class.min()),
                    "median": float(per_class.median()),
                    "max": int(per_class.max()),
                }
        if "street" in frame.columns:
            entry["streets"] = int(rows["street"].nunique())
        result[split] = entry
    if has_classes:
        tested = _distinct(frame.loc[frame["split"] == "test", class_column])
        result["train_classes_without_test_images"] = len(train_classes - tested)
    return result
