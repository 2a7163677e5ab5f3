"""Multi-city training: the union gallery, per-city metrics on the right rows, cross-city errors, L_geo
within each city, and the single- vs multi-city comparison end to end on a toy atlas."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from addressclip.benchmark.multicity import compare_cities, comparison_table, parse_compare
from addressclip.cli import main
from addressclip.config import load_config
from addressclip.data.manifest import read_manifest
from addressclip.errors import ConfigError
from addressclip.eval.cities import city_breakdown
from addressclip.eval.evaluate import EvalData, evaluate_scores
from addressclip.losses import geo_loss
from addressclip.testing.toyworld import TOY_CITY_ORIGINS, make_toy_atlas
from addressclip.train.data import load_stage_data
from addressclip.train.engine import train_model

CITIES = tuple(sorted(TOY_CITY_ORIGINS))  # ('north', 'south')


@pytest.fixture(scope="module")
def atlas(tmp_path_factory) -> Path:
    return make_toy_atlas(tmp_path_factory.mktemp("atlas"), addresses=4, per_address=8, test_per_address=2)


def test_multi_city_gallery_is_the_union_of_the_cities(atlas: Path):
    data = EvalData.load(atlas, progress=False)
    per_city = {
        c: EvalData.load(atlas.parent / "cities" / c / "manifest.parquet", progress=False) for c in CITIES
    }
    union = sorted(a for c in CITIES for a in per_city[c].vocabulary.address_ids)
    assert list(data.vocabulary.address_ids) == union and len(union) == 8
    for city in CITIES:  # each candidate carries its city, and a city's streets stay its own
        own = set(per_city[city].vocabulary.address_ids)
        assert {
            a for a, c in zip(data.vocabulary.address_ids, data.candidate_city, strict=True) if c == city
        } == own
    streets = data.candidate_street
    assert (
        len(set(streets[data.candidate_city == "north"]) & set(streets[data.candidate_city == "south"])) == 0
    )
    assert (
        EvalData.load(atlas.parent / "cities/north/manifest.parquet", progress=False).candidate_city is None
    )


def test_per_city_metrics_use_each_citys_rows_and_count_cross_city_answers(atlas: Path):
    data = EvalData.load(atlas, progress=False)
    rows = data.rows("test")
    truth = data.labels(rows)
    cities = data.frame["city"].to_numpy()[rows]
    south_candidate = int(np.flatnonzero(data.candidate_city == "south")[0])
    scores = np.zeros((len(rows), len(data.vocabulary)))
    north = cities == "north"
    scores[north, truth[north]] = 1.0  # every north photo right
    scores[~north, south_candidate] = 1.0  # every south photo answered with one south address ...
    scores[np.flatnonzero(~north)[:3], 0] = 2.0  # ... but three of them with a north address (index 0)
    metrics = evaluate_scores(data, rows, scores).metrics
    by_city = metrics["by_city"]
    assert by_city["gallery"] == "union"
    north_row, south_row = by_city["cities"]["north"], by_city["cities"]["south"]
    assert north_row["queries"] == south_row["queries"] == 8 and north_row["candidates"] == 4
    assert north_row["SSA-1"] == 100.0 and north_row["cross_city_top1"] == 0
    hits = int((truth[~north][3:] == south_candidate).sum())  # the south photos of that one address
    assert south_row["SSA-1"] == pytest.approx(100.0 * hits / 8)
    assert south_row["cross_city_top1"] == 3 and south_row["predicted_city"] == {"north": 3, "south": 5}
    assert by_city["cross_city_top1"] == 3 and by_city["cross_city_top1_pct"] == pytest.approx(100 * 3 / 16)
    assert metrics["SSA-1"] == pytest.approx((north_row["SSA-1"] + south_row["SSA-1"]) / 2)
    assert metrics["error_m"]["median"] == pytest.approx(0.0, abs=30.0)  # no metres across UTM zones


def test_city_breakdown_by_hand():
    result = city_breakdown(
        query_city=np.array(["a", "a", "b", "b"], dtype=object),
        candidate_city=np.array(["a", "b", "b"], dtype=object),
        truth_position=np.array([1, 2, 1, 6]),
        street_position=np.array([1, 1, 1, 3]),
        predicted=np.array([0, 1, 1, 0]),
    )
    a, b = result["cities"]["a"], result["cities"]["b"]
    assert (a["SSA-1"], a["SSA-5"], a["SA-1"], a["cross_city_top1"]) == (50.0, 100.0, 100.0, 1)
    assert (b["SSA-1"], b["SSA-5"], b["SA-5"], b["cross_city_top1"]) == (50.0, 50.0, 100.0, 1)
    assert (a["candidates"], b["candidates"]) == (1, 2) and result["cross_city_top1"] == 2


def test_geo_loss_pairs_images_of_one_city_only():
    torch.manual_seed(0)
    features = torch.nn.functional.normalize(torch.randn(6, 8), dim=1)
    utm = torch.cat([torch.rand(3, 2) * 500 + 1e5, torch.rand(3, 2) * 500 + 6e6]).double()
    one = torch.zeros(6, dtype=torch.long)
    assert geo_loss(features, utm, groups=one) == pytest.approx(float(geo_loss(features, utm)))
    two = torch.tensor([0, 0, 0, 1, 1, 1])
    expected = (geo_loss(features[:3], utm[:3]) + geo_loss(features[3:], utm[3:])) / 2  # 9 pairs each
    assert geo_loss(features, utm, groups=two) == pytest.approx(float(expected))
    assert geo_loss(features, utm, groups=two) != pytest.approx(float(geo_loss(features, utm)))


def test_training_batches_carry_the_city(atlas: Path, tmp_path: Path):
    config = load_config("tiny", [f"data={atlas}", f"out={tmp_path / 'run'}"])
    data = load_stage_data(config, "address", 32)
    batch = data.train.__getitems__(list(range(len(data.train))))
    cities = read_manifest(atlas).frame["city"].to_numpy()[data.train.rows]
    assert batch.cities is not None and len(set(batch.cities.tolist())) == 2
    assert (batch.cities.numpy() == (cities == "south")).all()  # sorted names: north 0, south 1
    one_city = load_config("tiny", [f"data={atlas.parent / 'cities/north/manifest.parquet'}", "out=x"])
    assert load_stage_data(one_city, "address", 32).train.__getitems__([0]).cities is None


def test_parse_compare_errors():
    assert parse_compare(["north=a/model.pt"]) == {"north": Path("a/model.pt")}
    for bad in (["north"], ["=x"], ["north=a", "north=b"]):
        with pytest.raises(ConfigError, match="--compare"):
            parse_compare(bad)


@pytest.mark.slow
def test_single_and_multi_city_models_compared_city_by_city(atlas: Path, tmp_path: Path, capsys):
    def train(data: Path, out: Path) -> Path:
        config = load_config("tiny", [f"data={data}", f"out={out}", "train.threads=1"])
        result = train_model(config)
        assert result.model_path is not None
        return result.model_path

    multi = train(atlas, tmp_path / "multi")
    singles = {c: train(atlas.parent / "cities" / c / "manifest.parquet", tmp_path / c) for c in CITIES}
    out = tmp_path / "report"
    args = [str(multi), "--data", str(atlas), "--out", str(out), "--quiet", "--device", "cpu"]
    args += [f"--compare={c}={singles[c]}" for c in CITIES]
    assert main(["eval", *args]) == 0
    printed = capsys.readouterr().out
    assert "per city (its queries ranked against the union of 8 addresses)" in printed
    record = json.loads((out / "multicity.json").read_text())
    by_city = record["multi"]["metrics"]["by_city"]["cities"]
    for city in CITIES:
        assert record["single"][city]["queries"] == by_city[city]["queries"] == 8
        assert record["single"][city]["candidates"] == 4 and record["multi"]["metrics"]["candidates"] == 8
        assert (
            f"| {city} | 8 | 4 / 8 | {record['single'][city]['SSA-1']:.1f} | {by_city[city]['SSA-1']:.1f} |"
            in printed
        )
    table = comparison_table(record)
    assert table.count("\n") == 1 + len(CITIES) + 1 and "| all cities | 16 | – / 8 |" in table
    assert (out / "multicity.md").read_text().strip() == table
    with pytest.raises(ConfigError, match="not a city of the atlas"):
        compare_cities(multi, atlas, {"east": singles["north"]}, progress=False, device="cpu")
