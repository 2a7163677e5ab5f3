"""Throughput switches: the lean ViT forward computes open_clip's features, the frozen image stem and
its per-sample cache, and every switch of `train.*` / `optim.*` builds and trains a step on CPU."""

import logging
import math
from pathlib import Path

import pytest
import torch

from addressclip.config import load_config
from addressclip.errors import ConfigError
from addressclip.model import build_model
from addressclip.model.addressclip import _CompiledOrEager
from addressclip.model.vision import lean_supported
from addressclip.testing.toyworld import make_toy_manifest
from addressclip.train.distributed import DistributedContext
from addressclip.train.engine import Trainer
from addressclip.train.speed import lr_scale


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    return make_toy_manifest(tmp_path_factory.mktemp("world"))


def _model(*overrides: str):
    torch.manual_seed(0)
    return build_model(load_config("tiny", list(overrides)).model)


def _images(count: int = 5) -> torch.Tensor:
    return torch.randn(count, 3, 32, 32, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("attention", ["sdpa", "math"])
def test_lean_forward_gives_open_clips_features_and_gradients(attention: str):
    model = _model()
    images = _images()
    reference = model.encode_image(images)
    reference.sum().backward()
    expected = {n: p.grad.clone() for n, p in model.clip.visual.named_parameters()}
    model.zero_grad(set_to_none=True)

    model.configure_runtime("lean", attention)
    assert model.vision_path == "lean"
    features = model.encode_image(images)
    features.sum().backward()
    torch.testing.assert_close(features, reference, rtol=1e-5, atol=1e-6)
    for name, param in model.clip.visual.named_parameters():
        torch.testing.assert_close(param.grad, expected[name], rtol=1e-4, atol=1e-6, msg=name)


def test_lean_falls_back_to_open_clip_for_a_tower_it_cannot_run():
    model = _model()
    model.clip.visual.pool_type = "avg"  # mean pooling over tokens: the class-only last block is wrong
    assert not lean_supported(model.clip.visual)
    model.configure_runtime("lean")
    assert model.vision_path == "open_clip"


def test_frozen_stem_is_frozen_cached_per_key_and_gives_the_same_features():
    model = _model("model.frozen_image_layers=1")
    frozen = {n for n, p in model.clip.visual.named_parameters() if not p.requires_grad}
    assert {"conv1.weight", "class_embedding", "positional_embedding", "ln_pre.weight"} <= frozen
    assert any(n.startswith("transformer.resblocks.0.") for n in frozen)
    assert not any(n.startswith("transformer.resblocks.1.") for n in frozen)
    assert "proj" not in frozen

    images = _images()
    reference = model.encode_image(images)  # open_clip's forward, freezing through requires_grad only
    model.configure_runtime("lean", "math")
    keys = [10, 11, 12, 13, 14]
    first = model.encode_image(images, keys=keys)
    assert set(model._stem_cache) == set(keys)
    again = model.encode_image(images[[4, 0]], keys=[14, 10])  # served from the cache
    torch.testing.assert_close(first, reference, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(again, reference[[4, 0]], rtol=1e-5, atol=1e-6)

    first.sum().backward()
    with_grad = {n for n, p in model.clip.visual.named_parameters() if p.grad is not None}
    assert with_grad and not with_grad & frozen
    model.load_state_dict(model.state_dict())
    assert not model._stem_cache  # new weights: cached tokens dropped


def test_grad_checkpointing_keeps_the_gradients():
    model = _model()
    model.configure_runtime("lean", "math")
    model.encode_image(_images()).sum().backward()
    expected = [p.grad.clone() for p in model.clip.visual.parameters()]
    model.zero_grad(set_to_none=True)
    model.configure_runtime("lean", "math", grad_checkpointing=True)
    model.encode_image(_images()).sum().backward()
    for grad, want in zip((p.grad for p in model.clip.visual.parameters()), expected, strict=True):
        torch.testing.assert_close(grad, want, rtol=1e-4, atol=1e-6)


@pytest.mark.slow  # dynamo's first use takes tens of seconds on a shared 2-core machine
def test_a_failing_compiler_falls_back_to_eager_with_a_warning(caplog):
    model = _model()
    model.configure_runtime("lean", "math")
    reference = model.encode_image(_images())

    def broken_backend(graph, example_inputs):
        raise RuntimeError("no C++ compiler on this machine")

    model._compiled = _CompiledOrEager(model._image_path, broken_backend)
    with caplog.at_level(logging.WARNING):
        features = model.encode_image(_images())
        again = model.encode_image(_images())
    torch.testing.assert_close(features, reference)
    torch.testing.assert_close(again, reference)
    assert model._compiled.failed and "no C++ compiler" in caplog.text
    assert caplog.text.count("failed, training without it") == 1


def test_lr_scaling_rules():
    optim = load_config("tiny", ["optim.lr_reference_batch=32"]).optim
    assert lr_scale(optim, 256) == 1.0  # 'none' is the default
    optim.lr_scaling = "linear"
    assert lr_scale(optim, 256) == 8.0
    optim.lr_scaling = "sqrt"
    assert lr_scale(optim, 256) == pytest.approx(math.sqrt(8.0))


@pytest.mark.parametrize(
    "override",
    [
        "model.frozen_image_layers=-1",
        "optim.lr_reference_batch=0",
        "optim.adamw=fast",
        "optim.lr_scaling=cubic",
        "train.compile_backend=tvm",
        "train.attention=flash",
        "train.vision_forward=timm",
    ],
)
def test_switch_values_are_checked_on_load(override: str):
    key = override.split("=")[0]
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config("tiny", [override])


SWITCHES = [
    ["train.vision_forward=open_clip"],
    ["train.attention=sdpa"],
    ["model.frozen_image_layers=1"],
    ["model.frozen_image_layers=1", "loader.augment=true"],
    ["optim.adamw=fused"],
    ["optim.adamw=foreach"],
    ["optim.adamw=for_loop"],
    ["train.channels_last=true"],
    ["train.grad_checkpointing=true"],
    ["train.tf32=true"],  # CUDA only; a no-op on the CPU
    pytest.param(
        ["train.compile=true", "train.compile_backend=aot_eager"], marks=pytest.mark.slow
    ),  # traced by dynamo, run by aot_eager: the compile plumbing without a C++ build
    ["optim.batch_size=16", "optim.lr_scaling=sqrt", "optim.lr_reference_batch=8"],
]


@pytest.mark.parametrize("overrides", SWITCHES, ids=lambda o: " ".join(o))
def test_each_switch_builds_and_trains_a_step(world: Path, tmp_path: Path, overrides: list[str]):
    config = load_config("tiny", [f"data={world}", f"out={tmp_path / 'run'}", "train.threads=1", *overrides])
    trainer = Trainer(config, "address", DistributedContext(0, 1, 0, torch.device("cpu")))
    trainer.warm_text_cache()
    trainer.model.train()
    batch = trainer.prepare(next(iter(trainer.loader(0))), 0)
    before = [p.detach().clone() for p in trainer.model.parameters() if p.requires_grad]
    terms = trainer.micro_step(batch, sync=True)
    trainer.optimizer_step()
    after = [p.detach() for p in trainer.model.parameters() if p.requires_grad]
    assert math.isfinite(float(terms["total"].detach()))
    assert any(not torch.equal(a, b) for a, b in zip(before, after, strict=True))
    if "optim.lr_scaling=sqrt" in overrides:  # batch 16 against the reference 8
        assert trainer.optimizer.param_groups[0]["initial_lr"] == pytest.approx(config.optim.lr * 2**0.5)
    if config.train.compile:
        assert trainer.model._compiled is not None and trainer.model._compiled.failed is None


@pytest.mark.skipif(not torch.cuda.is_available(), reason="bf16 autocast and TF32 need a CUDA device")
def test_bf16_tf32_fused_step_on_cuda(world: Path, tmp_path: Path):
    config = load_config(
        "tiny",
        [
            f"data={world}",
            f"out={tmp_path / 'run'}",
            "train.device=cuda",
            "train.precision=bf16",
            "train.tf32=true",
            "optim.adamw=fused",
        ],
    )
    trainer = Trainer(config, "address", DistributedContext(0, 1, 0, torch.device("cuda:0")))
    trainer.warm_text_cache()
    batch = next(iter(trainer.loader(0)))
    terms = trainer.micro_step(batch, sync=True)
    trainer.optimizer_step()
    assert math.isfinite(float(terms["total"]))
    assert torch.backends.cuda.matmul.allow_tf32
