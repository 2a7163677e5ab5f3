"""serve.calibration: the in-city scores against hand computation, old records, the JSON round trip."""

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from addressclip.errors import AddressclipError
from addressclip.serve.calibration import (
    Calibration,
    FeatureStatistics,
    calibrate,
    fit_feature_statistics,
    in_city_scores,
)

OLD_RECORD = {"threshold": 0.21, "percentile": 1.0, "images": 40, "split": "val", "top1_median": 0.3}


def test_a_record_written_before_the_score_choice_reads_as_top1():
    calibration = Calibration.from_dict(OLD_RECORD)
    assert calibration.score == "top1" and calibration.statistics is None and not calibration.needs_features
    assert calibration.to_dict() == {**OLD_RECORD, "score": "top1"}  # what it means, now said
    assert Calibration.from_dict(calibration.to_dict()) == calibration
    cosine = np.array([[0.1, 0.25, 0.2], [0.05, 0.0, 0.1]])
    assert calibration.scores(cosine) == pytest.approx([0.25, 0.1])


def test_gallery_scores_by_hand():
    cosine = np.array([[0.5, 0.2, 0.1], [0.3, 0.3, -0.1]])
    assert in_city_scores("margin", cosine) == pytest.approx([0.3, 0.0])
    scale = 10.0
    expected = [np.log(np.exp(scale * row).sum()) / scale for row in cosine]
    assert in_city_scores("energy", cosine, scale) == pytest.approx(expected)
    # energy is a soft maximum: never below the best cosine, at most log(N)/scale above it
    assert np.all(in_city_scores("energy", cosine, scale) >= cosine.max(axis=1))
    with pytest.raises(AddressclipError, match="unknown out-of-city score 'nope'"):
        in_city_scores("nope", cosine)


def _clusters(rng, count=3, per=40, dim=8, spread=0.05):
    centres = rng.normal(size=(count, dim))
    labels = np.repeat(np.arange(count), per)
    features = centres[labels] + spread * rng.normal(size=(len(labels), dim))
    return centres, features, labels


def test_mahalanobis_distances_match_brute_force_and_separate_far_photos():
    rng = np.random.default_rng(0)
    centres, features, labels = _clusters(rng)
    statistics = fit_feature_statistics(features, labels)
    assert statistics is not None and statistics.means.shape == (3, 8)
    queries = np.vstack([centres + 0.05 * rng.normal(size=centres.shape), rng.normal(size=(3, 8)) * 3])
    brute = [
        min(float((q - m) @ statistics.precision.astype(np.float64) @ (q - m)) for m in statistics.means)
        for q in queries
    ]
    assert statistics.distances(queries) == pytest.approx(brute, rel=1e-4)
    scores = in_city_scores("mahalanobis", np.zeros((6, 2)), features=queries, statistics=statistics)
    assert scores[:3].min() > scores[3:].max()  # near a training address beats far from all of them


def test_mahalanobis_calibration_round_trips_through_json():
    rng = np.random.default_rng(1)
    _, features, labels = _clusters(rng)
    statistics = fit_feature_statistics(features, labels)
    own = in_city_scores(
        "mahalanobis", np.zeros((len(features), 1)), features=features, statistics=statistics
    )
    calibration = calibrate(own, 5.0, "val", score="mahalanobis", statistics=statistics)
    assert calibration is not None and calibration.needs_features
    assert (own < calibration.threshold).mean() <= 0.05
    record = json.loads(json.dumps(calibration.to_dict()))
    assert record["score"] == "mahalanobis"
    again = Calibration.from_dict(record)
    assert again == calibration
    assert again.scores(np.zeros((2, 1)), features=features[:2]) == pytest.approx(own[:2], rel=1e-5)


def test_bad_records_and_arguments_are_one_line_errors():
    with pytest.raises(AddressclipError, match="unknown score 'knn'"):
        Calibration.from_dict({**OLD_RECORD, "score": "knn"})
    with pytest.raises(AddressclipError, match="'mahalanobis' without its 'statistics'"):
        Calibration.from_dict({**OLD_RECORD, "score": "mahalanobis"})
    broken = {"means": {"shape": [2, 2], "float32_base64": "not base64!"}, "precision": {}}
    with pytest.raises(AddressclipError, match=r"statistics\.means"):
        Calibration.from_dict({**OLD_RECORD, "score": "mahalanobis", "statistics": broken})
    with pytest.raises(AddressclipError, match="incomplete or malformed"):
        Calibration.from_dict({"threshold": 0.2})
    with pytest.raises(AddressclipError, match="needs feature statistics"):
        calibrate(np.ones(10), score="mahalanobis")
    assert calibrate(np.ones(3)) is None  # too few images to mean anything
    assert fit_feature_statistics(np.ones((4, 3)), np.arange(4)) is None  # no address with two photos
    single = FeatureStatistics(np.zeros((1, 2), np.float32), np.eye(2, dtype=np.float32))
    assert single.distances(np.array([[3.0, 4.0]])) == pytest.approx([25.0])


def test_predictor_flags_by_mahalanobis_and_a_bundle_keeps_it(trained_world, tmp_path):
    """On the tiny trained world: the calibration encodes train features, photos carry their score,
    a photo from nowhere (noise) is flagged, and an exported bundle predicts with the same record."""
    from addressclip.serve.loading import load_predictor

    predictor = load_predictor(
        trained_world.checkpoint, cache_embeddings=False, out_of_city_score="mahalanobis"
    )
    calibration = predictor.calibration
    assert (
        calibration is not None and calibration.score == "mahalanobis" and calibration.statistics is not None
    )
    assert len(calibration.statistics.means) == 6  # one mean per training address
    photos = [images[0] for images in trained_world.train_images.values()]
    rng = np.random.default_rng(0)
    noise = Image.fromarray(rng.integers(0, 256, size=(90, 120, 3), dtype=np.uint8))
    predictions = predictor.predict([*photos, noise], top_k=2)
    assert all(p.in_city_score is not None and "in_city_score" in p.to_dict() for p in predictions)
    assert all(p.out_of_city == (p.in_city_score < p.threshold) for p in predictions)
    assert not any(p.out_of_city for p in predictions[:-1]) and predictions[-1].out_of_city
    bundle = predictor.export(tmp_path / "bundle")
    again = load_predictor(bundle)
    assert again.calibration == calibration
    # batch of 7 vs one image: float32 sums differ in the last bits (here 1e-7 relative)
    assert again.predict_one(noise).in_city_score == pytest.approx(predictions[-1].in_city_score, rel=1e-5)
    # mahalanobis is the default; the top-1 cosine on request gives the response without in_city_score
    default = load_predictor(trained_world.checkpoint, cache_embeddings=False)
    assert default.calibration == calibration
    plain = load_predictor(trained_world.checkpoint, cache_embeddings=False, out_of_city_score="top1")
    assert plain.calibration.score == "top1" and "in_city_score" not in plain.predict_one(photos[0]).to_dict()


def test_mahalanobis_falls_back_to_top1_with_one_training_photo_per_address(trained_world, tmp_path, caplog):
    """One photo per address gives no covariance to speak of: the default score then says so and
    calibrates the top-1 cosine instead of leaving the service without an out-of-city flag."""
    from addressclip.data.manifest import read_manifest, write_manifest
    from addressclip.serve.loading import load_predictor

    read = read_manifest(trained_world.manifest)
    frame = read.frame
    train = frame[frame["split"] == "train"].groupby("address_id").head(1)
    thin = write_manifest(
        pd.concat([frame[frame["split"] != "train"], train], ignore_index=True),
        tmp_path / "thin.parquet",
        read.image_root,
        read.addressbook_dir,
        check=False,
    )
    predictor = load_predictor(trained_world.checkpoint, cache_embeddings=False)
    with caplog.at_level("WARNING"):
        calibration = predictor.calibrate_on(thin)
    assert calibration is not None and calibration.score == "top1" and calibration.statistics is None
    assert "calibrating the top-1 cosine instead" in caplog.text
