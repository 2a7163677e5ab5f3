"""The sub-street HMM: Viterbi and forward–backward against brute force, robustness, adjacency, bad input."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.sparse as sp

from addressclip.errors import AddressclipError, ConfigError
from addressclip.geo.addressbook import AddressBook
from addressclip.geo.sequence import (
    SequenceDecoder,
    TransitionParams,
    gaps_from,
    substreet_adjacency,
)
from test_geo_partition import write_toy_osm

# a path 0-1-2-3 plus 1-4 and an isolated state 5: degrees 1, 3, 2, 1, 1, 0
TOY_EDGES = [(0, 1), (1, 2), (2, 3), (1, 4)]


def _adjacency(count: int, edges) -> sp.csr_matrix:
    rows = [a for a, b in edges] + [b for a, b in edges]
    cols = [b for a, b in edges] + [a for a, b in edges]
    return sp.csr_matrix((np.ones(len(rows), dtype=bool), (rows, cols)), shape=(count, count))


def _dense_transition(count: int, edges, params: TransitionParams, gap: float) -> np.ndarray:
    """The model written out entry by entry, independently of the decoder's vectorised code."""
    k = gap / params.unit
    raw_jump = 1 - (1 - params.jump) ** k
    move = max((1 - raw_jump) * (1 - (1 - params.move) ** k), params.floor)
    jump = max(raw_jump, params.floor)
    stay = max(1 - jump - move, params.floor)
    total = stay + move + jump
    stay, move, jump = stay / total, move / total, jump / total
    neighbours = {i: set() for i in range(count)}
    for a, b in edges:
        neighbours[a].add(b)
        neighbours[b].add(a)
    matrix = np.zeros((count, count))
    for i in range(count):
        for j in range(count):
            value = jump / count
            if i == j:
                value += stay + (move if not neighbours[i] else 0.0)
            elif j in neighbours[i]:
                value += move / len(neighbours[i])
            matrix[i, j] = value
    return matrix


def _brute_force(
    log_e: np.ndarray, transitions: list[np.ndarray]
) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Every path's log joint: (best path, posteriors, log-likelihood, best log joint)."""
    length, count = log_e.shape
    paths = np.array(list(itertools.product(range(count), repeat=length)))
    score = np.full(len(paths), -np.log(count)) + log_e[0, paths[:, 0]]
    for t in range(1, length):
        score += np.log(transitions[t - 1][paths[:, t - 1], paths[:, t]]) + log_e[t, paths[:, t]]
    best = int(score.argmax())
    total = np.logaddexp.reduce(score)
    weights = np.exp(score - total)
    posteriors = np.zeros((length, count))
    for t in range(length):
        np.add.at(posteriors[t], paths[:, t], weights)
    return paths[best], posteriors, float(total), float(score[best])


@pytest.mark.parametrize("seed", range(6))
def test_viterbi_and_forward_backward_match_brute_force(seed):
    rng = np.random.default_rng(seed)
    count, length = (6, 5) if seed % 2 else (5, 4)
    edges = TOY_EDGES if count == 6 else [(0, 1), (1, 2), (2, 3), (3, 4), (4, 0)]
    params = TransitionParams(move=0.3, jump=0.05, unit=1.0, emission_weight=0.8)
    gaps = None if seed < 2 else rng.uniform(0.0, 4.0, length - 1)
    log_probs = np.log(rng.dirichlet(np.full(count, 0.7), size=length))
    decoder = SequenceDecoder(_adjacency(count, edges), params)
    steps = np.ones(length - 1) if gaps is None else gaps
    transitions = [_dense_transition(count, edges, params, g) for g in steps]
    for g, matrix in zip(steps, transitions, strict=True):
        np.testing.assert_allclose(decoder.transition_matrix(g), matrix, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(matrix.sum(axis=1), 1.0)
    path, posteriors, log_likelihood, best = _brute_force(params.emission_weight * log_probs, transitions)
    result = decoder.decode(log_probs, gaps)
    np.testing.assert_array_equal(result.path, path)
    assert result.path_log_prob == pytest.approx(best, abs=1e-9)
    np.testing.assert_allclose(result.posteriors, posteriors, atol=1e-10)
    np.testing.assert_allclose(result.posteriors.sum(axis=1), 1.0, atol=1e-12)
    assert result.log_likelihood == pytest.approx(log_likelihood, abs=1e-9)


def test_a_route_on_one_sub_street_survives_wrong_single_frames():
    rng = np.random.default_rng(3)
    count, length, true_state = 40, 30, 7
    # a ring of sub-streets with a few cross links, about degree 3
    edges = [(i, (i + 1) % count) for i in range(count)] + [(i, (i + 13) % count) for i in range(0, count, 4)]
    probs = rng.dirichlet(np.full(count, 0.5), size=length) * 0.3
    probs[:, true_state] += 0.4
    wrong = [3, 4, 11, 19, 20, 27]  # single frames (and one pair) whose argmax is another sub-street
    for t in wrong:
        probs[t, true_state] = 0.01
        probs[t, (true_state + 5 + t) % count] = 0.9
    probs /= probs.sum(axis=1, keepdims=True)
    assert (probs.argmax(axis=1) != true_state).sum() == len(wrong)
    result = SequenceDecoder(_adjacency(count, edges)).decode_probs(probs)
    assert (result.path == true_state).all()
    assert (result.posteriors.argmax(axis=1) == true_state).all()


def test_longer_gaps_put_more_mass_on_moving_and_jumping():
    params = TransitionParams(move=0.1, jump=0.01)
    stay, move, jump = params.probabilities(np.array([0.0, 1.0, 5.0, 50.0]))
    assert (np.diff(stay) < 0).all() and (np.diff(jump) > 0).all()
    assert move[1] == pytest.approx(0.99 * 0.1)
    assert stay[0] == pytest.approx(1.0) and jump[0] == pytest.approx(params.floor, rel=1e-3)
    np.testing.assert_allclose(stay + move + jump, 1.0)
    # a photo 30 units after the last: the sequence prior barely holds it to the old sub-street
    edges = [(0, 1), (1, 2)]
    decoder = SequenceDecoder(_adjacency(3, edges), params)
    probs = np.array([[0.9, 0.05, 0.05], [0.9, 0.05, 0.05], [0.3, 0.02, 0.68]])
    assert decoder.decode_probs(probs, gaps=[1.0, 0.1]).path.tolist() == [0, 0, 0]
    assert decoder.decode_probs(probs, gaps=[1.0, 30.0]).path.tolist() == [0, 0, 2]


def test_gaps_from_timestamps_and_positions():
    np.testing.assert_allclose(gaps_from(timestamps=[0.0, 2.0, 2.5]), [2.0, 0.5])
    np.testing.assert_allclose(gaps_from(positions=np.array([0, 10, 40])), [10.0, 30.0])
    assert gaps_from() is None
    with pytest.raises(AddressclipError, match="decrease from photo 1 to 2"):
        gaps_from(timestamps=[0.0, 5.0, 4.0])
    with pytest.raises(AddressclipError, match="not both"):
        gaps_from(timestamps=[0.0], positions=[0.0])


@pytest.fixture(scope="module")
def toy_book(tmp_path_factory) -> AddressBook:
    return AddressBook.from_osm(write_toy_osm(tmp_path_factory.mktemp("toy")))


def _row(book: AddressBook, address: str) -> int:
    rows = np.flatnonzero(book.table["address"].to_numpy() == address)
    assert len(rows) == 1, address
    return int(rows[0])


def test_adjacency_of_a_real_addressbook(toy_book):
    adjacency = substreet_adjacency(toy_book)
    assert adjacency.shape == (len(toy_book), len(toy_book))
    assert (adjacency != adjacency.T).nnz == 0 and adjacency.diagonal().sum() == 0
    dense = adjacency.toarray()
    main_12 = _row(toy_book, "Main Street & First Street & Second Street, Westside")
    main_23 = _row(toy_book, "Main Street & Second Street & Third Street, Westside")
    main_34 = _row(toy_book, "Main Street & Fourth Street & Third Street, Westside")
    second = _row(toy_book, "Second Street & Main Street, Westside")
    high_road = _row(toy_book, "High Road, Westside")
    first = _row(toy_book, "First Street & Main Street, Westside")
    main_west = _row(toy_book, "Main Street & First Street, Westside")
    close_lane = [r for r, a in enumerate(toy_book.table["address"]) if a.startswith("Close Lane")]
    # consecutive blocks of one street, and a T-junction's three sub-streets, all meet
    assert dense[main_12, main_23] and dense[main_23, main_34]
    assert dense[second, main_12] and dense[second, main_23]
    assert not dense[main_12, main_34]
    # First Street crosses Main Street at (0, 0): it meets the sub-streets on both sides of the crossing
    assert dense[first, main_12] and dense[first, main_west] and dense[main_west, main_12]
    # Close Lane meets Main Street where the junction was too close to cut (an inner vertex)
    assert len(close_lane) == 1 and dense[close_lane[0], main_34]
    # High Road crosses Main Street on a bridge: no shared node, no move between them
    assert not dense[high_road].any()
    decoder = SequenceDecoder.from_addressbook(toy_book)
    assert decoder.n_states == len(toy_book) and decoder.components() > 1


def test_reach_joins_a_street_that_ends_near_another(toy_book):
    high_road = _row(toy_book, "High Road, Westside")
    main_34 = _row(toy_book, "Main Street & Fourth Street & Third Street, Westside")
    # High Road passes over Main Street on a bridge; its ends are 50 m from Main Street, 35 m from Close Lane
    assert not substreet_adjacency(toy_book, reach_m=30.0)[high_road].toarray().any()
    assert substreet_adjacency(toy_book, reach_m=60.0)[high_road, main_34]


def test_bad_inputs_give_one_line_errors():
    decoder = SequenceDecoder(_adjacency(6, TOY_EDGES))
    good = np.log(np.full((3, 6), 1 / 6))
    cases = [
        (good[:, :5], "shape \\(photos, 6\\)"),
        (good[0], "shape \\(photos, 6\\)"),
        (np.zeros((0, 6)), "empty"),
        (np.where(np.eye(3, 6, dtype=bool), np.nan, good), "photo 0 hold NaN"),
        (np.full((3, 6), -np.inf), "photo 0 gives every sub-street probability 0"),
        (good + 2.0, "above 0"),
    ]
    for log_probs, message in cases:
        with pytest.raises(AddressclipError, match=message):
            decoder.decode(log_probs)
    with pytest.raises(AddressclipError, match="gap 1 is negative"):
        decoder.decode(good, gaps=[1.0, -2.0])
    with pytest.raises(AddressclipError, match="gaps must hold 2 values"):
        decoder.decode(good, gaps=[1.0])
    with pytest.raises(AddressclipError, match="NaN"):
        decoder.decode(good, gaps=[1.0, np.nan])
    with pytest.raises(AddressclipError, match="\\[0, 1\\]"):
        decoder.decode_probs(np.full((3, 6), 1.5))
    with pytest.raises(AddressclipError, match="symmetric"):
        SequenceDecoder(sp.csr_matrix(np.triu(np.ones((3, 3)), 1)))
    with pytest.raises(AddressclipError, match="square"):
        SequenceDecoder(np.ones((2, 3)))
    with pytest.raises(AddressclipError, match="initial"):
        SequenceDecoder(_adjacency(6, TOY_EDGES), initial=np.ones(5))
    with pytest.raises(ConfigError, match="move must be"):
        TransitionParams(move=1.5)
    with pytest.raises(ConfigError, match="unit must be"):
        TransitionParams(unit=0.0)


def test_single_photo_and_isolated_state():
    decoder = SequenceDecoder(_adjacency(6, TOY_EDGES), TransitionParams(move=0.2, jump=0.01))
    probs = np.array([[0.1, 0.1, 0.1, 0.1, 0.1, 0.5]])
    result = decoder.decode_probs(probs)
    assert result.path.tolist() == [5]
    np.testing.assert_allclose(result.posteriors[0], probs[0])
    assert result.log_likelihood == pytest.approx(np.log(1 / 6))
    # the isolated sub-street keeps its move mass as stay: its transition row still sums to 1
    np.testing.assert_allclose(decoder.transition_matrix(3.0).sum(axis=1), 1.0)
