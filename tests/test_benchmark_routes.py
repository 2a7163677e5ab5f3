"""Sequence evaluation on held-out routes: scoring on hand-made walks (fast), then end to end on the
rendered tiny world with the tiny trained model (slow: a render, a model, route views)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from PIL import Image

from addressclip.benchmark.routes import (
    RouteEvalSettings,
    RouteSet,
    adjacent_swaps,
    along_route_gaps,
    evaluate_routes,
    gallery_rows_of_labels,
    metre_transitions,
    score_setting,
)
from addressclip.errors import ConfigError
from addressclip.geo.sequence import SequenceDecoder, TransitionParams


# ------------------------------------------------------------------------------------------ fast
def test_adjacent_swaps_exchange_neighbours_only():
    rng = np.random.default_rng(0)
    assert (adjacent_swaps(7, 0.0, rng) == np.arange(7)).all()
    assert adjacent_swaps(6, 1.0, rng).tolist() == [1, 0, 3, 2, 5, 4]
    for _ in range(50):
        order = adjacent_swaps(20, 0.3, rng)
        assert sorted(order.tolist()) == list(range(20))
        assert (np.abs(order - np.arange(20)) <= 1).all()


def test_settings_from_options_and_their_errors():
    settings = RouteEvalSettings.from_options(
        {"count": 3, "lengths": "2,4", "swap_length": 4, "swap_rates": [0.5]}
    )
    assert settings.count == 3 and settings.lengths == (2, 4) and settings.swap_rates == (0.5,)
    assert RouteEvalSettings.from_options({"sparse_spacings": 25.0}).sparse_spacings == (25.0,)
    with pytest.raises(ConfigError, match=r"routes\.colour: unknown"):
        RouteEvalSettings.from_options({"colour": 1})
    with pytest.raises(ConfigError, match=r"routes\.count=2\.5"):
        RouteEvalSettings.from_options({"count": 2.5})
    with pytest.raises(ConfigError, match=r"routes\.lengths"):
        RouteEvalSettings(lengths=(0, 5))
    with pytest.raises(ConfigError, match=r"routes\.swap_length"):
        RouteEvalSettings(lengths=(5, 10), swap_length=20)


def _chain_walks(seed: int = 0) -> tuple[RouteSet, SequenceDecoder, np.ndarray]:
    """Four sub-streets in a chain 0-1-2-3 (streets: 0,1 'A'; 2,3 'B'); walks of 12 photos from 1 to 2,
    each photo right with probability 0.7, else confidently on sub-street 3 or 0."""
    rng = np.random.default_rng(seed)
    chain = sp.diags([np.ones(3), np.ones(3)], [1, -1], shape=(4, 4))
    decoder = SequenceDecoder(chain, metre_transitions(10.0))
    walks = RouteSet(10.0, [], [], [], [])
    for _ in range(6):
        truth = np.r_[np.full(7, 1), np.full(5, 2)]
        truth[0] = -1  # one photo without a gallery truth: in the sequence, not scored
        answer = np.where(rng.random(12) < 0.7, np.maximum(truth, 1), rng.choice([0, 3], 12))
        log_probs = np.log(np.full((12, 4), 0.02))
        log_probs[np.arange(12), answer] = np.log(0.94)
        walks.routes.append(None)
        walks.log_probs.append(log_probs)
        walks.truth.append(truth)
        walks.error_m.append(np.where(np.arange(4)[None, :] == np.maximum(truth, 0)[:, None], 0.0, 50.0))
    return walks, decoder, np.array(["A", "A", "B", "B"], dtype=object)


def test_score_setting_counts_what_the_decoding_changed():
    walks, decoder, streets = _chain_walks()
    gaps = along_route_gaps(10.0)
    row = score_setting(walks, 6, decoder, gaps, streets, bootstrap=200, rng=np.random.default_rng(1))
    assert row["sequences"] == 12 and row["photos"] == 72 and row["scored"] == 66
    # per photo, recomputed by hand over the scored photos
    truth = np.concatenate(walks.truth)
    answer = np.concatenate([lp.argmax(1) for lp in walks.log_probs])
    scored = truth >= 0
    assert row["per_photo"]["SSA-1"] == pytest.approx(100 * np.mean(answer[scored] == truth[scored]))
    assert row["per_photo"]["SA-1"] == pytest.approx(
        100 * np.mean(streets[answer[scored]] == streets[truth[scored]])
    )
    # the sequence: each window decoded alone with the metre gaps predict_sequence derives
    paths = [decoder.decode(lp[s : s + 6], gaps(6)).path for lp in walks.log_probs for s in (0, 6)]
    decoded = np.concatenate(paths)
    assert row["sequence"]["SSA-1"] == pytest.approx(100 * np.mean(decoded[scored] == truth[scored]))
    changes = row["changes"]
    gain = row["sequence"]["SSA-1"] - row["per_photo"]["SSA-1"]
    assert gain == pytest.approx(100 * (changes["fixed"] - changes["broken"]) / row["scored"])
    assert row["delta_SSA-1"]["mean"] == pytest.approx(gain)
    low, high = row["delta_SSA-1"]["ci95"]
    assert low <= gain <= high
    assert changes["broken_at_change"] <= changes["broken"]
    # per walk: photo 1 follows the unlabelled photo 0 (window 1), photos 6|7 are 1|2 (window 2)
    assert changes["photos_at_change"] == pytest.approx(100 * 6 * 3 / 66)
    errors = np.where(decoded[scored] == truth[scored], 0.0, 50.0)
    assert row["sequence"]["mean_error_m"] == pytest.approx(errors.mean())


def test_misordered_photos_keep_their_own_truth():
    walks, decoder, streets = _chain_walks(seed=3)
    gaps = along_route_gaps(10.0)
    clean = score_setting(walks, 12, decoder, gaps, streets)
    shuffled = score_setting(walks, 12, decoder, gaps, streets, swap_rate=1.0)
    assert shuffled["displaced_photos"] == 72 and clean["displaced_photos"] == 0
    assert shuffled["per_photo"] == clean["per_photo"]  # the same photos, each with its own answer
    assert shuffled["changes"]["photos_at_change"] == clean["changes"]["photos_at_change"]


def test_a_free_transition_model_gives_back_the_photos():
    walks, _, streets = _chain_walks()
    chain = sp.diags([np.ones(3), np.ones(3)], [1, -1], shape=(4, 4))
    loose = SequenceDecoder(chain, TransitionParams(move=0.5, jump=0.49, unit=10.0))
    row = score_setting(walks, 12, loose, along_route_gaps(10.0), streets)
    assert row["sequence"] == row["per_photo"] and row["changes"]["fixed"] == row["changes"]["broken"] == 0


# ------------------------------------------------------------------------------------------ slow
SETTINGS = RouteEvalSettings(
    count=3, lengths=(2, 5, 10), sparse_spacings=(30.0,), sparse_length=5, swap_rates=(0.5,), swap_length=5,
    bootstrap=50,
)  # fmt: skip


@pytest.fixture(scope="module")
def evaluation(tiny_world, trained_world):
    return evaluate_routes(trained_world.checkpoint, tiny_world.manifest, SETTINGS, progress=False)


@pytest.mark.slow
def test_route_table_has_every_setting_and_consistent_counts(evaluation):
    rows = evaluation.results["rows"]
    keys = [(r["spacing_m"], r["length"], r["swap_rate"]) for r in rows]
    assert keys == [
        (10.0, 2, 0.0),
        (10.0, 5, 0.0),
        (10.0, 10, 0.0),
        (10.0, 5, 0.5),
        (30.0, 2, 0.0),
        (30.0, 5, 0.0),
    ]
    for row in rows:
        longest = 10 if row["spacing_m"] == 10.0 else 5
        assert row["sequences"] == 3 * (longest // row["length"]) and row["routes"] == 3
        assert row["photos"] == row["sequences"] * row["length"] and 0 < row["scored"] <= row["photos"]
        gain = row["sequence"]["SSA-1"] - row["per_photo"]["SSA-1"]
        changes = row["changes"]
        assert gain == pytest.approx(100 * (changes["fixed"] - changes["broken"]) / row["scored"])
    dense = [r for r in rows if r["spacing_m"] == 10.0 and r["length"] in (2, 5, 10)]
    assert len({json.dumps(r["per_photo"], sort_keys=True) for r in dense}) == 1  # the same photos each time
    assert evaluation.results["views"] == 3 * 10 + 3 * 5
    assert evaluation.results["held_out"]["min_m"] > 0.5  # no view stands on a training capture point


@pytest.mark.slow
def test_truth_is_the_label_of_each_view_on_the_walked_substreets(evaluation):
    from addressclip.geo.addressbook import AddressBook
    from addressclip.geo.sequence import substreet_adjacency

    gallery = evaluation.gallery
    book = AddressBook.load(Path(evaluation.results["world"]) / "addressbook")
    book_ids = book.table["address_id"].tolist()
    gallery_ids = gallery.table["address_id"].tolist()
    for route, truth in zip(evaluation.walks[10.0].routes, evaluation.walks[10.0].truth, strict=True):
        assert len(truth) == len(route) == 10
        known = truth >= 0
        assert known.any()
        assert [gallery_ids[row] for row in truth[known]] == [book_ids[row] for row in route.label[known]]
    adjacent = substreet_adjacency(book).tolil()
    for route in (r for w in evaluation.walks.values() for r in w.routes):
        assert (gallery_rows_of_labels(book, gallery, route.walked) >= 0).all()  # walks stay in the gallery
        for label, walked in zip(route.label, route.walked, strict=True):
            # the labeler may name the sub-street across a junction a few metres away, never another
            assert label == walked or adjacent[label, walked], (route.route_id, label, walked)


@pytest.mark.slow
def test_the_evaluation_decodes_as_predict_sequence_does(evaluation, trained_world, tiny_world):
    from addressclip.serve.loading import load_predictor
    from addressclip.world.assets import load_assets
    from addressclip.world.render import prepare_world
    from addressclip.world.route_views import render_params_of, render_route

    params = render_params_of(tiny_world.out)
    _, scene = prepare_world(params)
    route = evaluation.walks[10.0].routes[1]
    jpegs = render_route(scene, load_assets(), route, params, route_seed=SETTINGS.seed, route_number=1)
    predictor = load_predictor(
        trained_world.checkpoint, manifest=tiny_world.manifest, calibrate_threshold=False
    )
    result = predictor.predict_sequence(jpegs, positions=route.along_m)
    assert result.gap_unit == "metres"
    path = (
        evaluation.decoders[10.0].decode(evaluation.walks[10.0].log_probs[1], along_route_gaps(10.0)(10)).path
    )
    assert [step["address_id"] for step in result.path] == [
        predictor.gallery.table["address_id"][r] for r in path
    ]
    assert [p.top.address_id for p in result.predictions] == [
        predictor.gallery.table["address_id"][r] for r in evaluation.walks[10.0].log_probs[1].argmax(1)
    ]


@pytest.mark.slow
def test_benchmark_command_writes_the_route_report(tiny_world, trained_world, tmp_path: Path):
    from addressclip.cli import main

    out = tmp_path / "bench"
    out.mkdir()
    previous = {"methods": {}, "suites": {"demo": {"command": "make demo", "seconds": 1.0}}, "figures": {}}
    (out / "results.json").write_text(json.dumps(previous))
    code = main([
        "benchmark", "--suite", "routes", "--data", str(tiny_world.manifest), "--model",
        str(trained_world.checkpoint), "--out", str(out), "--quiet", "--option", "routes.count=2",
        "--option", "routes.lengths=2,4", "--option", "routes.swap_length=4", "--option",
        "routes.sparse_spacings=30", "--option", "routes.sparse_length=4",
    ])  # fmt: skip
    assert code == 0
    routes = json.loads((out / "routes" / "results.json").read_text())
    assert [(r["spacing_m"], r["length"], r["swap_rate"]) for r in routes["rows"]] == [
        (10.0, 2, 0.0), (10.0, 4, 0.0), (10.0, 4, 0.1), (10.0, 4, 0.3), (30.0, 2, 0.0), (30.0, 4, 0.0),
    ]  # fmt: skip
    table = (out / "routes" / "routes.md").read_text()
    for label in (
        "2 photos, every 10 m",
        "4 photos, every 10 m",
        "4 photos, every 30 m",
        "4 photos, every 10 m, 30% adjacent swaps",
    ):
        assert f"| {label} |" in table
    with Image.open(out / "routes" / "route_decoded.png") as figure:
        assert figure.size[0] > 600
    merged = json.loads((out / "results.json").read_text())
    assert merged["routes"]["rows"] == routes["rows"] and "routes" in merged["suites"]
    report = (out / "report.md").read_text()
    assert "## Photo sequences (held-out routes)" in report and "routes/route_decoded.png" in report
    assert "--suite routes" in report


def test_the_route_suite_needs_a_model(tmp_path: Path):
    from addressclip.cli import main

    code = main(
        ["benchmark", "--suite", "routes", "--data", str(tmp_path / "m.parquet"), "--out", str(tmp_path)]
    )
    assert code == 2
