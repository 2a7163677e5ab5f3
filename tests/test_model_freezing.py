import copy
import dataclasses
import functools

import pytest
import torch

from addressclip.config import LossConfig, load_config
from addressclip.losses import AddressClipLoss, LossInputs
from addressclip.model import build_model


@functools.cache
def _built(tower: str):
    return build_model(load_config("tiny", [f"model.text_tower={tower}"]).model)


def _model(tower: str, trainable: str, train_text_head: bool = True):
    """A fresh copy of one built model per tower, with the freezing option applied."""
    model = copy.deepcopy(_built(tower))
    model.model_config = dataclasses.replace(
        model.model_config, trainable=trainable, train_text_head=train_text_head
    )
    model.apply_freezing()
    return model


def _grads_after_one_loss(tower="clip", trainable="both", train_text_head=True):
    model = _model(tower, trainable, train_text_head)
    model.train()
    images = torch.randn(4, 3, 32, 32)
    texts = [f"Street {i} & Cross {i}, Kluuvi" for i in range(4)]
    image, address, caption, scale = model(images, texts, [t + " with trees" for t in texts])
    loss = AddressClipLoss(LossConfig())(
        LossInputs(image, address, caption, torch.arange(4), torch.rand(4, 2) * 100), scale
    )["total"]
    loss.backward()
    with_grad = {n for n, p in model.clip.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    return model, with_grad


@pytest.mark.parametrize("tower", ["clip", "minilm"])
@pytest.mark.parametrize("trainable", ["both", "image", "text"])
def test_gradients_reach_only_the_trainable_towers(tower, trainable):
    model, with_grad = _grads_after_one_loss(tower, trainable)
    image_names = {n for n, _ in model.image_parameters()}
    text_names = {n for n, _ in model.text_parameters()}
    head = {n for n in text_names if model._is_text_head(n)}
    assert "logit_scale" in with_grad
    if trainable in ("both", "image"):
        assert image_names <= with_grad | {"visual.class_embedding"} and image_names & with_grad
    else:
        assert not image_names & with_grad
    if trainable in ("both", "text"):
        assert text_names & with_grad - head
    else:
        # frozen text tower: only its projection head learns (train_text_head=true, the default)
        assert with_grad & text_names == head
    trainable_names = {n for n, p in model.clip.named_parameters() if p.requires_grad}
    assert with_grad <= trainable_names


def test_frozen_head_too_and_cache_is_used():
    model, with_grad = _grads_after_one_loss("clip", "image", train_text_head=False)
    assert not {n for n, _ in model.text_parameters()} & with_grad
    assert len(model._trunk_cache) == 8  # 4 addresses + 4 captions cached once
    before = model.encode_text(["Street 0 & Cross 0, Kluuvi"])
    assert len(model._trunk_cache) == 8
    model.load_state_dict(model.state_dict())  # loading weights invalidates the cache
    assert len(model._trunk_cache) == 0
    assert torch.allclose(model.encode_text(["Street 0 & Cross 0, Kluuvi"]), before, atol=1e-6)


def test_cached_trunk_plus_head_equals_the_full_text_tower():
    for tower in ("clip", "minilm"):
        model = _model(tower, "image")
        model.eval()
        texts = ["Street 1 & Cross 2, Kluuvi", "Street 3, Kamppi"]
        full = torch.nn.functional.normalize(model.clip.encode_text(model.tokenize(texts)), dim=-1)
        assert torch.allclose(model.encode_text(texts), full, atol=1e-5)
