"""Tar shards (`addressclip shard`) and the shard stream: same batches as the folder path, exact
resume, every sample once per epoch across DDP ranks, readable by webdataset."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from addressclip.cli import main as cli_main
from addressclip.data.dataset import AddressDataset, AddressVocabulary, ManifestImages, split_rows
from addressclip.data.manifest import read_manifest
from addressclip.data.samplers import capped_batches
from addressclip.data.shards import INDEX_FILE, ShardStream, StagedImages, read_shard_index
from addressclip.data.transforms import augment_batch
from addressclip.errors import InputError
from addressclip.testing.toyworld import make_toy_manifest, tiny_train_command

SIZE = 32


@pytest.fixture(scope="module")
def sharded(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("sharded")
    manifest = make_toy_manifest(folder / "world", addresses=6, per_address=10, val_per_address=2)
    assert (
        cli_main(
            ["shard", str(manifest), "--out", str(folder / "shards"), "--rows-per-shard", "10", "--quiet"]
        )
        == 0
    )
    return manifest, folder / "shards"


def _train_dataset(manifest_path: Path, images) -> AddressDataset:
    manifest = read_manifest(manifest_path)
    frame = manifest.frame.reset_index(drop=True)
    return AddressDataset(frame, images, split_rows(frame, ["train"]), AddressVocabulary.from_frame(frame))


def _stream(manifest: Path, shards: Path, **options) -> ShardStream:
    dataset = _train_dataset(manifest, StagedImages(SIZE))
    options = {"batch_size": 4, "max_per_address": 2, "seed": 3, **options}
    return ShardStream(read_shard_index(shards), "train", dataset, **options)


def _batches(loader) -> list:
    return list(loader)


def _same(a, b) -> None:
    assert torch.equal(a.indices, b.indices)
    assert torch.equal(a.images, b.images)
    assert torch.equal(a.labels, b.labels) and torch.equal(a.utm, b.utm)
    assert a.addresses == b.addresses and a.captions == b.captions


def test_shard_index_and_layout(sharded) -> None:
    manifest, shards = sharded
    raw = json.loads((shards / INDEX_FILE).read_text())
    frame = read_manifest(manifest).frame
    assert raw["splits"]["train"] == {"shards": 5, "rows": 48} and raw["splits"]["val"] == {
        "shards": 2,
        "rows": 12,
    }
    train_rows = split_rows(frame, ["train"])
    for entry in raw["shards"]:
        rows = split_rows(frame, [entry["split"]])[entry["first"] : entry["first"] + entry["rows"]]
        assert entry["addresses"] == frame["address_id"].iloc[rows].nunique()
    assert sorted(p.name for p in shards.iterdir()) == sorted(
        [INDEX_FILE, *(e["file"] for e in raw["shards"])]
    )
    wds = pytest.importorskip("webdataset")
    seen = list(wds.WebDataset(str(shards / "train-000000.tar"), shardshuffle=False))
    assert [int(s["__key__"]) for s in seen] == train_rows[:10].tolist()
    first = read_manifest(manifest)
    assert seen[0]["jpg"] == first.image_path(frame["path"].iloc[train_rows[0]]).read_bytes()
    assert json.loads(seen[0]["json"])["address_id"] == frame["address_id"].iloc[train_rows[0]]


@pytest.mark.parametrize("workers", [0, 2])
def test_sharded_batches_equal_folder_batches_without_shuffle_buffer(sharded, workers: int) -> None:
    """The defined equivalence: shuffle_buffer=0 streams the train rows in manifest order; the folder
    path over that order (same address cap) gives the same batches, pixels and augmentation included."""
    manifest, shards = sharded
    stream = _stream(manifest, shards, shuffle_buffer=0)
    read = read_manifest(manifest)
    images = ManifestImages(manifest, read.image_root, list(read.frame["path"]), SIZE, cache="none")
    folder = _train_dataset(manifest, images)
    plan = capped_batches(np.arange(len(folder)), folder.labels, 4, 2)
    streamed = _batches(stream.loader(0, num_workers=workers))
    assert len(streamed) == len(plan) == stream.batches_per_epoch() > 5
    for batch, rows in zip(streamed, plan, strict=True):
        expected = folder.__getitems__(rows.tolist())
        _same(batch, expected)
        seed_args = (batch.indices.tolist(), 7, 0)
        assert torch.equal(
            augment_batch(batch.images, *seed_args), augment_batch(expected.images, *seed_args)
        )


def test_shuffled_stream_resumes_at_the_batch_where_it_stopped(sharded) -> None:
    manifest, shards = sharded
    stream = _stream(manifest, shards, shuffle_buffer=8)
    full = _batches(stream.loader(1, num_workers=2))
    order = torch.cat([b.indices for b in full]).tolist()
    assert order != sorted(order) and len(set(order)) == len(order)
    assert order != torch.cat([b.indices for b in _batches(stream.loader(2))]).tolist()  # per epoch
    for start in (3, len(full) - 1):
        resumed = _batches(_stream(manifest, shards, shuffle_buffer=8).loader(1, start, num_workers=2))
        assert len(resumed) == len(full) - start
        for a, b in zip(resumed, full[start:], strict=True):
            _same(a, b)


def test_a_shard_that_does_not_match_the_manifest_is_refused(sharded, tmp_path: Path) -> None:
    _, shards = sharded
    other = make_toy_manifest(tmp_path / "other", addresses=6, per_address=10, val_per_address=2, seed=1)
    copied = tmp_path / "shards"
    copied.mkdir()
    for path in shards.iterdir():
        (copied / path.name).write_bytes(path.read_bytes())
    raw = json.loads((copied / INDEX_FILE).read_text())
    raw["manifest"] = os.path.relpath(other, copied)
    (copied / INDEX_FILE).write_text(json.dumps(raw))
    with pytest.raises(InputError, match="changed since the shards were written"):
        read_shard_index(copied)


def _ddp_rank(rank: int, shards: str, manifest: str, port: int, out: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    stream = _stream(Path(manifest), Path(shards), shuffle_buffer=16, max_per_address=0)
    stream.rank, stream.world_size = dist.get_rank(), dist.get_world_size()
    seen = {}
    for epoch in (0, 1):
        indices = [i for b in stream.loader(epoch, num_workers=2) for i in b.indices.tolist()]
        gathered: list = [None, None]
        dist.all_gather_object(gathered, indices)
        seen[epoch] = gathered
    if rank == 0:
        Path(out).write_text(json.dumps(seen))
    dist.destroy_process_group()


@pytest.mark.slow  # two gloo processes, each with two loader workers
def test_ddp_over_shards_sees_every_sample_once_per_epoch(sharded, tmp_path: Path) -> None:
    manifest, shards = sharded
    out = tmp_path / "seen.json"
    port = 29500 + os.getpid() % 1000
    torch.multiprocessing.spawn(_ddp_rank, args=(str(shards), str(manifest), port, str(out)), nprocs=2)
    seen = json.loads(out.read_text())
    for epoch, (first, second) in seen.items():
        assert len(first) == len(second) == 24, epoch  # 48 rows = 2 ranks x 6 batches of 4
        assert sorted(first + second) == list(range(48)), epoch
    assert seen["0"] != seen["1"]


OVERRIDES = [
    "optim.epochs=2",
    "optim.batch_size=2",
    "loader.augment=true",
    "loader.shuffle_buffer=8",
    "train.checkpoint_every=2",
    "train.threads=1",
    "optim.warmup_steps=3",
]


@pytest.mark.slow  # three training processes, one killed
def test_killed_sharded_run_resumes_to_the_uninterrupted_weights(sharded, tmp_path: Path) -> None:
    from addressclip.config import load_config
    from addressclip.model import read_checkpoint
    from addressclip.train.engine import train_model

    manifest, shards = sharded
    options = [f"data={manifest}", f"loader.shards={shards}", *OVERRIDES]
    killed = tmp_path / "killed"
    command = tiny_train_command(f"out={killed}", *options)
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    metrics, deadline = killed / "metrics.jsonl", time.monotonic() + 120
    try:
        while not metrics.is_file() or metrics.read_text().count('"kind": "step"') < 5:
            assert process.poll() is None, process.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "training did not reach step 5"
            time.sleep(0.005)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=30)
    latest = read_checkpoint(killed / "checkpoints" / "latest.pt")["training"]
    assert latest["epoch"] == 0 and 0 < latest["batch"] < 24, "the kill must land mid-epoch"
    resumed = train_model(load_config("tiny", [f"out={killed}", *options]), resume="latest")
    reference = train_model(load_config("tiny", [f"out={tmp_path / 'straight'}", *options]))
    assert resumed.steps == reference.steps > 0
    ours = read_checkpoint(killed / "checkpoints" / "latest.pt")["state_dict"]
    theirs = read_checkpoint(tmp_path / "straight" / "checkpoints" / "latest.pt")["state_dict"]
    for key, value in theirs.items():
        assert torch.allclose(ours[key], value, rtol=0, atol=1e-6), key
