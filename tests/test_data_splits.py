"""Splits by capture location / spatial block, seeded; unseen val/test addresses dropped."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from addressclip.data.splits import SplitConfig, assign_splits, class_coverage, parse_ratios
from addressclip.errors import ConfigError


def _images(locations: int = 400, views: int = 4, addresses: int = 20, seed: int = 1) -> pd.DataFrame:
    """`locations` capture points on a 2 km square, `views` images each, labelled by address."""
    rng = np.random.default_rng(seed)
    east = rng.uniform(500_000, 502_000, locations)
    north = rng.uniform(6_710_000, 6_712_000, locations)
    rows = []
    for loc in range(locations):
        for view in range(views):
            rows.append(
                {
                    "path": f"{loc:04d}_{view}.jpg",
                    "location_id": f"L{loc}",
                    "utm_e": east[loc],
                    "utm_n": north[loc],
                    "address_id": f"a{loc % addresses}",
                    "street": f"s{loc % 5}",
                }
            )
    return pd.DataFrame(rows)


def test_all_views_of_a_location_share_a_split_and_ratios_hold() -> None:
    frame, report = assign_splits(_images())
    assert frame.groupby("location_id")["split"].nunique().max() == 1
    counts = frame["split"].value_counts()
    assert counts["train"] == pytest.approx(1280, abs=16)
    assert counts["val"] == pytest.approx(160, abs=16) and counts["test"] == pytest.approx(160, abs=16)
    assert report.method == "location" and report.groups == 400
    assert report.locations_in_several_splits == 0
    assert sum(report.dropped_unseen_images.values()) == 0  # 20 locations per address: all in train
    assert report.coverage["test"]["classes_in_train"] == report.coverage["test"]["classes"]


def test_seeded_and_independent_of_row_order() -> None:
    images = _images()
    first, _ = assign_splits(images, SplitConfig(seed=3))
    shuffled, _ = assign_splits(images.sample(frac=1.0, random_state=7), SplitConfig(seed=3))
    other_seed, _ = assign_splits(images, SplitConfig(seed=4))
    by_path = shuffled.set_index("path")["split"]
    assert (first.set_index("path")["split"] == by_path.loc[first["path"]].to_numpy()).all()
    assert not (first["split"] == other_seed["split"]).all()


def test_custom_ratios() -> None:
    frame, _ = assign_splits(_images(), SplitConfig(ratios=(0.5, 0.0, 0.5)))
    counts = frame["split"].value_counts()
    assert "val" not in counts and counts["train"] == pytest.approx(800, abs=16)


def test_block_mode_keeps_whole_grid_cells_together() -> None:
    images = _images()
    frame, report = assign_splits(images, SplitConfig(mode="block", block_m=250.0))
    cell = (frame["utm_e"] // 250).astype(int) * 100_000 + (frame["utm_n"] // 250).astype(int)
    assert frame.assign(cell=cell).groupby("cell")["split"].nunique().max() == 1
    assert report.method == "block" and report.groups == cell.nunique() > 50
    assert set(frame["split"]) == {"train", "val", "test"}


def test_unseen_val_test_addresses_are_dropped_and_counted() -> None:
    images = _images(locations=40, views=2, addresses=40)  # one location per address
    frame, report = assign_splits(images)
    assert set(frame["split"]) == {"train"}
    dropped = report.dropped_unseen_images["val"] + report.dropped_unseen_images["test"]
    assert dropped == 80 - len(frame) and dropped > 0
    assert report.dropped_unseen_addresses["val"] + report.dropped_unseen_addresses["test"] == dropped // 2
    assert report.images_before_drop["train"] == len(frame)


def test_given_split_is_kept_unless_resplit() -> None:
    images = _images(locations=10, views=2, addresses=2)
    images["split"] = ["train"] * 16 + ["test"] * 4
    kept, report = assign_splits(images)
    assert report.method == "given" and kept["split"].tolist() == images["split"].tolist()
    redone, report = assign_splits(images, SplitConfig(resplit=True, seed=5))
    assert report.method == "location" and redone["split"].tolist() != images["split"].tolist()
    partial = images.assign(split=[None, *images["split"].tolist()[1:]])
    _, report = assign_splits(partial)
    assert report.method == "location"  # an incomplete given split is not trusted


def test_coverage_report_counts() -> None:
    frame = pd.DataFrame(
        {
            "location_id": ["A", "A", "B", "C", "D"],
            "address_id": ["x", "x", "y", "x", "y"],
            "split": ["train", "train", "train", "test", "val"],
        }
    )
    coverage = class_coverage(frame)
    assert coverage["train"] == {
        "images": 3,
        "locations": 2,
        "classes": 2,
        "images_per_class": {"min": 1, "median": 1.5, "max": 2},
    }
    assert coverage["test"]["classes_in_train"] == 1
    assert coverage["train_classes_without_test_images"] == 1


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("0.8,0.1", "3 values"),
        ("0.8,0.1,x", "three numbers"),
        ("0.8,0.3,0.1", "sum to 1"),
        ("0,0.5,0.5", "train"),
    ],
)
def test_bad_ratios_are_config_errors(text: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        parse_ratios(text)


def test_parse_ratios_and_bad_mode() -> None:
    assert parse_ratios("0.7, 0.2, 0.1") == (0.7, 0.2, 0.1)
    with pytest.raises(ConfigError, match="split mode"):
        SplitConfig(mode="random")
