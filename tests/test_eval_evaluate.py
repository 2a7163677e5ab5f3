"""The one evaluation path on the toy street world: metre errors, neighbouring sub-streets,
intersections, per-address accuracy, the image-point fallback, and the feature store."""

from pathlib import Path

import numpy as np
import pytest
import shapely

from addressclip.data.manifest import read_manifest, write_manifest
from addressclip.errors import InputError
from addressclip.eval.evaluate import EvalData, evaluate_scores
from addressclip.eval.geometry import distance_to_nearest
from addressclip.eval.store import FeatureStore, file_digest
from addressclip.testing.toyworld import make_street_world


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> EvalData:
    return EvalData.load(make_street_world(tmp_path_factory.mktemp("toy")), progress=False)


def _one_hot_scores(data: EvalData, rows: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    scores = np.zeros((len(rows), len(data.vocabulary)))
    scores[np.arange(len(rows)), predicted] = 1.0
    return scores


def test_perfect_scores_give_zero_metre_error_and_full_accuracy(data: EvalData):
    rows = data.rows("test")
    truth = data.labels(rows)
    result = evaluate_scores(data, rows, _one_hot_scores(data, rows, truth), scale=10.0)
    metrics = result.metrics
    assert metrics["SSA-1"] == metrics["SA-1"] == 100.0
    assert metrics["queries"] == len(rows) == 12 and metrics["candidates"] == 6
    assert metrics["geometry_source"] == "addressbook"
    assert metrics["error_m"]["median"] == pytest.approx(0.0, abs=1e-6)  # the toy points lie on their lines
    assert metrics["error_m"]["within_25m"] == 100.0
    assert metrics["confusion"]["errors"] == 0
    assert result.per_address["queries"].sum() == len(rows)
    assert (result.per_address["SSA-1"] == 100.0).all()
    assert result.queries["truth_position"].eq(1).all()


def test_wrong_answers_are_measured_and_classified(data: EvalData):
    rows = data.rows("test")
    truth = data.labels(rows)
    neighbours = sorted(data.neighbours)
    assert neighbours, "the toy world chains touching sub-streets"
    a, b = neighbours[0]
    # every query of address a is answered b (a neighbour), every other query gets a far address
    streets = data.candidate_street
    far = {t: next(c for c in range(len(streets)) if streets[c] != streets[t]) for t in set(truth)}
    predicted = np.array([b if t == a else far[t] for t in truth])
    result = evaluate_scores(data, rows, _one_hot_scores(data, rows, predicted))
    metrics = result.metrics
    assert metrics["SSA-1"] == 0.0
    confusion = metrics["confusion"]
    share_a = float(np.mean(truth == a))
    assert confusion["errors"] == len(rows)
    assert confusion["neighbour"] == pytest.approx(100 * share_a)
    assert confusion["other"] == pytest.approx(100 * (1 - share_a))
    # metre error = distance from the query GPS to the predicted sub-street line, by hand
    frame = data.frame.iloc[rows]
    geometries = data.geometry.geometries
    by_hand = [
        shapely.Point(e, n).distance(geometries[p])
        for e, n, p in zip(frame["utm_e"], frame["utm_n"], predicted, strict=True)
    ]
    assert result.queries["error_m"].to_numpy() == pytest.approx(by_hand)
    assert metrics["error_m"]["median"] == pytest.approx(float(np.median(by_hand)))
    assert all(d > 0 for d in by_hand)


def test_intersections_come_from_the_addressbook(data: EvalData):
    assert data.intersections is not None and len(data.intersections) > 20
    rows = data.rows("test")
    truth = data.labels(rows)
    result = evaluate_scores(data, rows, _one_hot_scores(data, rows, truth))
    bins = result.metrics["by_intersection_distance"]
    assert sum(b["count"] for b in bins) == len(rows)
    xy = data.frame.iloc[rows][["utm_e", "utm_n"]].to_numpy()
    assert result.queries["to_intersection_m"].to_numpy() == pytest.approx(
        distance_to_nearest(xy, data.intersections)
    )
    assert distance_to_nearest(np.array([[0.0, 0.0]]), np.array([[3.0, 4.0], [10.0, 0.0]])).tolist() == [5.0]


def test_without_addressbook_the_geometry_is_the_training_points(data: EvalData, tmp_path: Path):
    manifest = read_manifest(data.path)
    copy = write_manifest(manifest.frame, tmp_path / "plain.parquet", manifest.image_root)
    plain = EvalData.load(copy, progress=False)
    assert plain.book is None and plain.intersections is None
    assert plain.geometry.source == "images"
    rows = plain.rows("test")
    truth = plain.labels(rows)
    metrics = evaluate_scores(plain, rows, _one_hot_scores(plain, rows, truth)).metrics
    # test points lie between training points of the same sub-street: a few metres, not zero
    assert 0.0 < metrics["error_m"]["median"] < 60.0
    assert metrics["by_intersection_distance"] == []


def test_bad_inputs_fail_clearly(data: EvalData):
    with pytest.raises(InputError, match="no rows with split 'holdout'"):
        data.rows("holdout")
    with pytest.raises(ValueError, match="scores shape"):
        evaluate_scores(data, data.rows("test"), np.zeros((3, 6)))


def test_feature_store_computes_once_and_reuses_from_disk(tmp_path: Path):
    calls = []

    def compute():
        calls.append(1)
        return np.arange(6, dtype=np.float32).reshape(2, 3)

    store = FeatureStore(tmp_path / "features")
    first = store.get("image", {"model": "m1", "rows": "r"}, compute)
    again = store.get("image", {"model": "m1", "rows": "r"}, compute)
    assert len(calls) == 1 and np.array_equal(first, again)
    fresh = FeatureStore(tmp_path / "features")  # a later process
    assert np.array_equal(fresh.get("image", {"model": "m1", "rows": "r"}, compute), first)
    assert len(calls) == 1 and fresh.hits == 1
    store.get("image", {"model": "m2", "rows": "r"}, compute)  # another checkpoint: recomputed
    assert len(calls) == 2
    assert len(list((tmp_path / "features").glob("*.npy"))) == 2
    assert not list((tmp_path / "features").glob("*.tmp"))


def test_file_digest_follows_the_content(tmp_path: Path):
    path = tmp_path / "weights.pt"
    path.write_bytes(b"one")
    first = file_digest(path)
    path.write_bytes(b"two!")
    assert file_digest(path) != first
