"""Image -> GPS -> Address: a database image as query comes back with its own address (through its
GPS and the AddressBook), for each descriptor; storage and the GPS lookup are accounted for."""

from pathlib import Path

import numpy as np
import pytest

from addressclip.baselines.base import BaselineSetup
from addressclip.baselines.retrieval import GpsToAddress, NearestIndex, rank_addresses
from addressclip.baselines.runner import run_method
from addressclip.eval.encode import kmeans, vlad
from addressclip.testing.toyworld import open_toy_baseline_world


@pytest.fixture(scope="module")
def world(baseline_world_files):
    return open_toy_baseline_world(*baseline_world_files)


def _setup(world, tmp_path: Path, split: str = "test", **options) -> BaselineSetup:
    data, encoder, init = world
    return BaselineSetup(data, encoder, init, tmp_path, preset="tiny", eval_split=split, progress=False,
                         options=options)  # fmt: skip


@pytest.mark.parametrize("name", ["retrieval", "retrieval_vlad", "pixel_nn"])
def test_a_database_image_retrieves_its_own_address(world, tmp_path: Path, name: str):
    data = world[0]
    result = run_method(name, _setup(world, tmp_path, split="train"))  # queries = the database
    metrics = result.evaluation.metrics
    assert metrics["SSA-1"] == 100.0 and metrics["SA-1"] == 100.0
    assert metrics["error_m"]["median"] == pytest.approx(0.0, abs=1e-6)
    hyper = result.output.hyper
    assert hyper["gps_lookup"] == "addressbook" and hyper["gps_lookup_fallbacks"] == 0
    database = len(data.rows("train"))
    dim = {"retrieval": world[1].model.embed_dim, "pixel_nn": 256}.get(name)
    if dim is not None:
        assert result.output.storage_bytes == database * dim * 4 + database * 16


def test_retrieval_on_the_test_split_and_its_latency(world, tmp_path: Path):
    result = run_method("retrieval", _setup(world, tmp_path))
    assert result.output.scores.shape == (12, 6)
    assert result.output.latency_ms > 0
    assert result.output.hyper["search"] in ("faiss", "numpy")
    # with 2 neighbours a query reaches at most 2 of the 6 addresses: the others are never ranked
    few = run_method("retrieval", _setup(world, tmp_path / "few", neighbours=2))
    reached = np.isfinite(few.output.scores).sum(axis=1)
    assert few.output.hyper["neighbours"] == 2 and (reached >= 1).all() and (reached <= 2).all()


def test_gps_lookup_uses_the_addressbook(world, tmp_path: Path):
    data = world[0]
    rows = data.rows("train")
    lookup = GpsToAddress(_setup(world, tmp_path), rows)
    assert np.array_equal(lookup(np.arange(len(rows))), data.labels(rows))
    assert lookup.fallbacks == 0


def test_ranking_keeps_the_best_match_per_address():
    similarity = np.array([[0.9, 0.8, 0.7]])
    address = np.array([[2, 0, 2]])
    scores = rank_addresses(similarity, address, 4)
    assert scores[0, 2] == pytest.approx(0.9) and scores[0, 0] == pytest.approx(0.8)
    assert np.isneginf(scores[0, 1]) and np.isneginf(scores[0, 3])
    index = NearestIndex(np.eye(3, dtype=np.float32))
    sims, found = index.search(np.array([[0.0, 1.0, 0.0]], dtype=np.float32), 2)
    assert found[0, 0] == 1 and sims[0, 0] == pytest.approx(1.0)


def test_vlad_descriptor_is_normalised_and_sized():
    import torch

    generator = torch.Generator().manual_seed(0)
    tokens = torch.nn.functional.normalize(torch.randn(3, 10, 8, generator=generator), dim=2)
    centroids = kmeans(tokens.flatten(0, 1), 4)
    assert centroids.shape == (4, 8)
    descriptor = vlad(tokens, centroids)
    assert descriptor.shape == (3, 32)
    assert torch.allclose(descriptor.norm(dim=1), torch.ones(3), atol=1e-5)
