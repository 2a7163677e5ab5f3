import copy
import dataclasses
import functools

import pytest
import torch

from addressclip.config import load_config
from addressclip.model import build_model
from addressclip.model.text_cache import TextTrunkStore, trunk_digest, warm_text_cache

TEXTS = [
    "Street 1 & Cross 2, Kluuvi",
    "A grey stone facade with a green awning and two parked cars on a cloudy day. Street 3, Kamppi",
    "Street 3, Kamppi",
]


@functools.cache
def _built(tower: str):
    return build_model(load_config("tiny", [f"model.text_tower={tower}"]).model)


def _model(tower: str, trainable: str = "image"):
    model = copy.deepcopy(_built(tower))
    model.model_config = dataclasses.replace(model.model_config, trainable=trainable)
    model.apply_freezing()
    model.eval()
    return model


@pytest.mark.parametrize("tower", ["clip", "minilm"])
def test_trimmed_padding_gives_open_clips_text_features(tower):
    model = _model(tower, "both")
    full = torch.nn.functional.normalize(model.clip.encode_text(model.tokenize(TEXTS)), dim=-1)
    assert torch.allclose(model.encode_text(TEXTS), full, atol=1e-5)
    # one string at a time (no padding at all) equals the padded batch
    single = torch.cat([model.encode_text([t]) for t in TEXTS])
    assert torch.allclose(single, full, atol=1e-5)


def test_store_round_trip_gives_the_same_features(tmp_path):
    first = _model("minilm")
    assert warm_text_cache(first, TEXTS, tmp_path) == 3
    files = list(tmp_path.glob("text-*.pt"))
    assert len(files) == 1
    expected = first.encode_text(TEXTS)

    second = _model("minilm")
    assert warm_text_cache(second, TEXTS, tmp_path) == 0  # all read from the file
    assert torch.equal(second.encode_text(TEXTS), expected)
    assert warm_text_cache(second, [*TEXTS, "Street 9, Kluuvi"], tmp_path) == 1
    assert len(torch.load(files[0], weights_only=True)["texts"]) == 4


def test_digest_follows_the_trunk_not_the_head():
    model = _model("minilm")
    before = trunk_digest(model)
    with torch.no_grad():
        model.clip.text.proj.weight.add_(1.0)
    assert trunk_digest(model) == before
    with torch.no_grad():
        next(model.clip.text.transformer.parameters()).add_(1e-3)
    assert trunk_digest(model) != before


def test_trainable_text_tower_is_not_cached(tmp_path):
    model = _model("minilm", "both")
    assert warm_text_cache(model, TEXTS, tmp_path) == 0
    assert not list(tmp_path.iterdir())


def test_unreadable_store_is_ignored(tmp_path):
    model = _model("minilm")
    store = TextTrunkStore(tmp_path, model)
    store.file.write_bytes(b"not a torch file")
    assert store.load() == 0
    assert warm_text_cache(model, TEXTS[:1], tmp_path) == 1
    assert store.load() == 1
