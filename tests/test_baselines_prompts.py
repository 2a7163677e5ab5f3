"""Prompt learning (CoOp, CoCoOp, MaPLe): the hooks reproduce the model's own text encoding, and each
method trains and evaluates on the toy world."""

from pathlib import Path

import pytest
import torch

from addressclip.baselines.base import BaselineSetup
from addressclip.baselines.prompts import PromptedText, freeze, token_embedding, visual_prompts
from addressclip.baselines.runner import run_method
from addressclip.config import load_config
from addressclip.model import build_model
from addressclip.testing.toyworld import open_toy_baseline_world

ADDRESSES = ["Lautakatontie & Mahlakatu, Ristinkallio", "Muuralankuja & Tapiontie, Marttila"]


@pytest.fixture(scope="module")
def world(baseline_world_files):
    return open_toy_baseline_world(*baseline_world_files)


@pytest.mark.parametrize("preset", ["tiny", "cpu"])  # open_clip's text tower, then the MiniLM tower
def test_placeholder_hooks_reproduce_the_plain_text_encoding(preset: str):
    torch.manual_seed(0)
    model = freeze(build_model(load_config(preset).model))
    text = PromptedText(model, ADDRESSES, n_ctx=4)
    context = text.initial_context()  # the embeddings of "a street view of"
    with torch.no_grad():
        hooked = text(context)
        plain = model.encode_text([f"a street view of {a}" for a in ADDRESSES])
        per_image = text(context.unsqueeze(0).repeat(3, 1, 1))
    assert torch.allclose(hooked, plain, atol=1e-5)
    assert per_image.shape == (3, 2, plain.shape[1])
    assert torch.allclose(per_image[1], plain, atol=1e-5)
    assert not token_embedding(model)._forward_hooks  # removed after each call
    with torch.no_grad():
        other = text(torch.zeros_like(context))
    assert not torch.allclose(other, plain, atol=1e-3)


def test_visual_prompts_change_features_only_inside_the_block(world):
    model = freeze(world[1].model)
    width = model.clip.visual.conv1.out_channels
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        before = model.encode_image(images)
        with visual_prompts(model, [torch.randn(2, width), torch.randn(2, width)]):
            inside = model.encode_image(images)
        after = model.encode_image(images)
    assert inside.shape == before.shape
    assert not torch.allclose(inside, before, atol=1e-4)
    assert torch.equal(after, before)


def _setup(world, tmp_path: Path, **options) -> BaselineSetup:
    data, encoder, init = world
    return BaselineSetup(data, encoder, init, tmp_path, preset="tiny", progress=False, options=options)


@pytest.mark.parametrize("name", ["coop", "cocoop", "maple"])
def test_prompt_learners_train_and_evaluate(world, tmp_path: Path, name: str):
    data = world[0]
    result = run_method(name, _setup(world, tmp_path, steps=8, batch_size=8))
    metrics = result.evaluation.metrics
    assert result.output.scores.shape == (12, len(data.vocabulary))
    assert 0.0 <= metrics["SSA-1"] <= metrics["SSA-5"] <= 100.0
    assert result.output.hyper["steps"] == 8
    assert result.output.latency_ms is not None and result.output.latency_ms > 0
    if name == "maple":
        assert result.output.hyper["depth"] == 2  # the tiny preset has 2 layers per tower


def test_cocoop_query_cap_is_reported(world, tmp_path: Path):
    result = run_method("cocoop", _setup(world, tmp_path, steps=2, max_queries=5))
    assert result.output.scores.shape[0] == 5
    assert result.evaluation.metrics["queries"] == 5
    assert result.output.hyper["queries_evaluated"] == 5
