"""SSA-k / SA-k, ties, k > candidates, chance, calibration: against hand-computed answers."""

import math

import numpy as np
import pytest
import torch

from addressclip.eval.metrics import (
    address_accuracies,
    calibration,
    chance_accuracies,
    per_class_accuracy,
    ranked_accuracies,
    softmax_confidence,
    street_positions,
    top_k,
    truth_positions,
)

# 4 candidates: 0 and 1 on street A (0), 2 on street B (1), 3 on street C (2)
STREETS = np.array([0, 0, 1, 2])


def test_hand_computed_ranks_and_accuracies():
    scores = np.array(
        [
            [0.9, 0.1, 0.2, 0.3],  # truth 0 ranked 1st
            [0.9, 0.1, 0.2, 0.3],  # truth 1 ranked 4th, but candidate 0 (same street) 1st
            [0.1, 0.2, 0.3, 0.9],  # truth 2 ranked 2nd; street B first at 2nd
            [0.5, 0.6, 0.7, 0.1],  # truth 3 ranked 4th; street C first at 4th
        ]
    )
    truth = np.array([0, 1, 2, 3])
    assert truth_positions(scores, truth).tolist() == [1, 4, 2, 4]
    assert street_positions(scores, truth, STREETS).tolist() == [1, 1, 2, 4]
    result = ranked_accuracies(scores, truth, STREETS, ks=(1, 2, 3))
    assert result == {"SSA-1": 25.0, "SA-1": 50.0, "SSA-2": 50.0, "SA-2": 75.0, "SSA-3": 50.0, "SA-3": 75.0}
    # without ties the rank-based metrics equal the training loop's topk-based ones
    assert address_accuracies(scores, truth, STREETS, ks=(1, 2)) == pytest.approx(
        ranked_accuracies(scores, truth, STREETS, ks=(1, 2))
    )


def test_k_larger_than_the_candidate_set_counts_every_candidate():
    scores = np.array([[0.1, 0.2, 0.3, 0.4], [0.4, 0.3, 0.2, 0.1]])
    result = ranked_accuracies(scores, np.array([0, 3]), STREETS, ks=(1, 5, 50))
    assert result["SSA-1"] == 0.0
    assert result["SSA-5"] == result["SA-5"] == result["SSA-50"] == 100.0
    assert address_accuracies(torch.tensor(scores), [0, 3], STREETS, ks=(5,))["SSA-5"] == 100.0


def test_ties_are_ranked_against_the_method_or_by_index():
    constant = np.zeros((2, 4))  # a model that says nothing
    truth = np.array([0, 2])
    pessimistic = ranked_accuracies(constant, truth, STREETS, ks=(1, 3, 4))
    assert pessimistic == {
        "SSA-1": 0.0,
        "SA-1": 0.0,
        "SSA-3": 0.0,
        "SA-3": 50.0,
        "SSA-4": 100.0,
        "SA-4": 100.0,
    }
    # pessimistic SA: the first on-street candidate comes after every tied off-street one
    assert street_positions(constant, truth, STREETS).tolist() == [3, 4]
    stable = ranked_accuracies(constant, truth, STREETS, ks=(1, 3), ties="stable")
    assert stable == {"SSA-1": 50.0, "SA-1": 50.0, "SSA-3": 100.0, "SA-3": 100.0}
    # a partial tie: truth 1 tied with candidate 3 at the top
    scores = np.array([[0.2, 0.8, 0.1, 0.8]])
    assert truth_positions(scores, [1]).tolist() == [2]
    assert truth_positions(scores, [1], ties="stable").tolist() == [1]
    assert truth_positions(scores, [3], ties="stable").tolist() == [2]
    # NaN never wins
    assert truth_positions(np.array([[np.nan, 0.1, 0.0, 0.0]]), [1]).tolist() == [1]


def test_top_k_orders_ties_by_index_and_clips_k():
    index, score = top_k(np.array([[0.5, 0.9, 0.5, 0.1]]), 10)
    assert index.tolist() == [[1, 0, 2, 3]]
    assert score.tolist() == [[0.9, 0.5, 0.5, 0.1]]


def test_chance_accuracies_match_the_combinatorics():
    result = chance_accuracies(np.array([0, 2]), STREETS, ks=(1, 2, 9))
    assert result["SSA-1"] == 25.0 and result["SSA-2"] == 50.0 and result["SSA-9"] == 100.0
    # truth 0: 2 of 4 candidates on its street; truth 2: 1 of 4
    sa1 = (2 / 4 + 1 / 4) / 2
    sa2 = ((1 - math.comb(2, 2) / math.comb(4, 2)) + (1 - math.comb(3, 2) / math.comb(4, 2))) / 2
    assert result["SA-1"] == pytest.approx(100 * sa1)
    assert result["SA-2"] == pytest.approx(100 * sa2)
    assert result["SA-9"] == 100.0
    # and a long random experiment agrees
    rng = np.random.default_rng(0)
    scores = rng.random((20000, 4))
    truth = np.tile([0, 2], 10000)
    simulated = ranked_accuracies(scores, truth, STREETS, ks=(1, 2))
    assert simulated["SA-2"] == pytest.approx(result["SA-2"], abs=1.0)


def test_calibration_hand_computed():
    confidence = np.array([0.95, 0.95, 0.25, 0.25, 1.0])
    correct = np.array([True, False, False, False, True])
    table = calibration(confidence, correct, bins=10)
    # bin [0.9, 1.0]: 3 items, accuracy 2/3, confidence 0.9667; bin [0.2, 0.3): 2 items, acc 0, conf .25
    expected = 3 / 5 * abs(2 / 3 - (0.95 + 0.95 + 1.0) / 3) + 2 / 5 * 0.25
    assert table["ece"] == pytest.approx(100 * expected)
    counts = [b["count"] for b in table["bins"]]
    assert counts == [0, 0, 2, 0, 0, 0, 0, 0, 0, 3]
    perfect = calibration(np.array([1.0, 1.0]), np.array([True, True]))
    assert perfect["ece"] == 0.0


def test_softmax_confidence_and_per_class_accuracy():
    scores = np.array([[0.0, 0.0], [math.log(3.0), 0.0], [-np.inf, -np.inf]])
    assert softmax_confidence(scores).tolist() == pytest.approx([0.5, 0.75, 0.5])
    assert softmax_confidence(scores[:2], scale=0.0).tolist() == pytest.approx([0.5, 0.5])
    count, accuracy = per_class_accuracy(np.array([0, 0, 2]), np.array([True, False, True]), 4)
    assert count.tolist() == [2, 0, 1, 0]
    assert accuracy[0] == 50.0 and accuracy[2] == 100.0
    assert np.isnan(accuracy[1]) and np.isnan(accuracy[3])


def test_empty_query_set_gives_nan_not_an_error():
    result = ranked_accuracies(np.zeros((0, 4)), np.zeros(0, dtype=int), STREETS)
    assert all(math.isnan(v) for v in result.values())
