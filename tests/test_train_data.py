from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from addressclip.config import load_config
from addressclip.data.dataset import AddressVocabulary, ManifestImages, split_rows
from addressclip.data.manifest import read_manifest
from addressclip.data.samplers import AddressBatchSampler, epoch_batches
from addressclip.data.transforms import Normalizer, augment_batch, decode_square
from addressclip.errors import InputError
from addressclip.eval.metrics import address_accuracies
from addressclip.testing.toyworld import make_toy_manifest
from addressclip.train.data import load_stage_data


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    return make_toy_manifest(tmp_path_factory.mktemp("world"))


def test_batches_cap_images_per_address_and_are_deterministic():
    labels = np.repeat(np.arange(10), 12)  # 10 addresses x 12 images
    batches = epoch_batches(labels, 16, 2, seed=1, epoch=0)
    assert len(batches) >= 6
    for batch in batches:
        assert len(batch) == 16 and len(set(batch.tolist())) == 16
        assert max(Counter(labels[batch].tolist()).values()) <= 2
    again = epoch_batches(labels, 16, 2, seed=1, epoch=0)
    assert all(np.array_equal(a, b) for a, b in zip(batches, again, strict=True))
    other_epoch = epoch_batches(labels, 16, 2, seed=1, epoch=1)
    assert not np.array_equal(batches[0], other_epoch[0])


def test_impossible_cap_is_loosened_not_stuck():
    labels = np.repeat(np.arange(3), 10)
    batches = epoch_batches(labels, 12, 2, seed=0, epoch=0)  # 3 addresses x cap 2 < 12
    assert batches and max(Counter(labels[batches[0]].tolist()).values()) == 4


def test_sampler_slices_for_ranks_and_resumes_mid_epoch():
    labels = np.repeat(np.arange(8), 6)
    single = AddressBatchSampler(labels, 8, 2, seed=3)
    ranks = [AddressBatchSampler(labels, 4, 2, seed=3, rank=r, world_size=2) for r in range(2)]
    for full, a, b in zip(single, *ranks, strict=True):
        assert full == a + b
    single.set_epoch(1)
    everything = list(single)
    single.start_at(2)
    assert list(single) == everything[2:] and len(single) == len(everything) - 2
    assert single.state_dict() == {"epoch": 1, "start": 2}


def test_decoding_matches_open_clip_eval_view(world: Path):
    import open_clip

    manifest = read_manifest(world)
    path = manifest.image_root / manifest.frame["path"][0]
    ours = decode_square(path, 32)
    assert ours.shape == (3, 32, 32) and ours.dtype == np.uint8
    transform = open_clip.image_transform(32, is_train=False)
    from PIL import Image

    theirs = transform(Image.open(path))
    normalizer = Normalizer(open_clip.OPENAI_DATASET_MEAN, open_clip.OPENAI_DATASET_STD)
    mine = normalizer(torch.from_numpy(ours)[None])[0]
    # JPEG draft decoding and uint8 rounding: close, not identical
    assert (mine - theirs).abs().mean().item() < 0.05


def test_bad_image_names_file(tmp_path: Path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a jpeg")
    with pytest.raises(InputError, match=r"bad\.jpg"):
        decode_square(bad, 32)


def test_disk_cache_is_reused_and_keyed_by_size(world: Path, tmp_path: Path):
    manifest = read_manifest(world)
    paths = list(manifest.frame["path"])
    first = ManifestImages(
        world, manifest.image_root, paths, 32, cache="disk", cache_dir=tmp_path, progress=False
    )
    files = list(tmp_path.glob("images-*-32px.npy"))
    assert len(files) == 1
    stamp = files[0].stat().st_mtime_ns
    second = ManifestImages(
        world, manifest.image_root, paths, 32, cache="disk", cache_dir=tmp_path, progress=False
    )
    assert files[0].stat().st_mtime_ns == stamp
    assert torch.equal(first.take([0, 5]), second.take([0, 5]))
    ManifestImages(world, manifest.image_root, paths, 24, cache="disk", cache_dir=tmp_path, progress=False)
    assert len(list(tmp_path.glob("images-*.npy"))) == 2
    lazy = ManifestImages(world, manifest.image_root, paths, 32, cache="none")
    assert torch.equal(lazy.take([0, 5]), first.take([0, 5]))


def test_augmentation_depends_only_on_sample_and_epoch():
    images = torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8)
    a = augment_batch(images, [10, 11, 12], seed=0, epoch=0)
    b = augment_batch(images[[2, 0]], [12, 10], seed=0, epoch=0)
    assert torch.equal(a[2], b[0]) and torch.equal(a[0], b[1])
    assert not torch.equal(a, augment_batch(images, [10, 11, 12], seed=0, epoch=1))
    assert a.dtype == torch.uint8 and a.shape == images.shape


def test_stage_data_and_vocabulary(world: Path):
    config = load_config("tiny", [f"data={world}"])
    data = load_stage_data(config, "address", 32)
    frame = read_manifest(world).frame
    assert len(data.train) == len(split_rows(frame, ["train"])) == 36
    assert len(data.val) == 12 and len(data.vocabulary) == 6
    batch = data.train.__getitems__([0, 1, 2])
    assert batch.images.shape == (3, 3, 32, 32) and batch.images.dtype == torch.uint8
    assert batch.captions[0].endswith(batch.addresses[0])  # "caption + address"
    vocabulary = AddressVocabulary.from_frame(frame)
    assert vocabulary.index_of(["toy-a003", "nope"]).tolist() == [3, -1]


def test_ssa_and_sa_by_hand():
    # 3 candidates; candidates 0 and 1 share a street
    streets = [0, 0, 1]
    scores = torch.tensor([[0.9, 0.5, 0.1], [0.2, 0.9, 0.1], [0.8, 0.1, 0.7]])
    truth = [0, 0, 2]
    result = address_accuracies(scores, truth, streets, ks=(1, 2))
    assert result["SSA-1"] == pytest.approx(100 / 3)  # only the first query
    assert result["SA-1"] == pytest.approx(200 / 3)  # second query: right street, wrong sub-street
    assert result["SSA-2"] == pytest.approx(100.0)
    assert result["SA-2"] == pytest.approx(100.0)
