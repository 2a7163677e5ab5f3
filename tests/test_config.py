from pathlib import Path

import pytest
import yaml

from addressclip.config import (
    RunConfig,
    config_to_dict,
    list_presets,
    load_config,
    read_config_file,
    save_config,
)
from addressclip.errors import ConfigError


def test_presets_exist_and_paper_matches_the_paper():
    assert {"paper", "cpu", "tiny"} <= set(list_presets())
    paper = load_config("paper")
    assert paper.model.arch == "ViT-B-16" and paper.model.image_size == 224
    assert paper.model.trainable == "both"
    assert paper.optim.betas == (0.9, 0.98)
    assert paper.optim.lr == pytest.approx(2.4e-5) and paper.optim.lr_min == pytest.approx(2.4e-8)
    assert paper.optim.batch_size == 32 and paper.optim.epochs == 100
    assert (paper.loss.alpha, paper.loss.beta, paper.loss.gamma) == (1.0, 0.2, 0.8)
    cpu = load_config("cpu")
    assert cpu.model.text_tower == "minilm"


def test_dotted_overrides_are_typed():
    config = load_config(
        "tiny",
        [
            "optim.lr=1e-4",
            "data=runs/x/manifest.parquet",
            "optim.betas=[0.8, 0.9]",
            "loader.max_per_address=0",
            "model.pretrained=null",
            "pretrain.extra_data=[a.parquet,b.parquet]",
            "out=123",
        ],
    )
    assert config.optim.lr == pytest.approx(1e-4)
    assert config.data == "runs/x/manifest.parquet"
    assert config.optim.betas == (0.8, 0.9)
    assert config.loader.max_per_address == 0
    assert config.pretrain.extra_data == ("a.parquet", "b.parquet")
    assert config.out == "123"  # a text field keeps a numeric-looking value as text


def test_template_overrides_stay_text():
    # '{caption}' would be a YAML flow mapping; the ablation suite passes it as a caption template
    config = load_config("tiny", ["loss.caption_template={caption}"])
    assert config.loss.caption_template == "{caption}"
    assert load_config("tiny", ["loss.caption_template={address}: {caption}"]).loss.caption_template == (
        "{address}: {caption}"
    )


@pytest.mark.parametrize(
    ("override", "names"),
    [
        ("optim.lrr=1", ["optim.lrr", "lr", "lr_min"]),
        ("modle.arch=x", ["modle", "model", "optim"]),
        ("model.vision.depth=3", ["model.vision.depth", "layers", "width"]),
    ],
)
def test_unknown_key_names_it_and_the_valid_ones(override, names):
    with pytest.raises(ConfigError) as info:
        load_config("tiny", [override])
    message = str(info.value)
    assert "\n" not in message
    for name in names:
        assert name in message


@pytest.mark.parametrize(
    ("override", "fragment"),
    [
        ("loss.geo=euclid", "'distance', 'literal'"),
        ("optim.epochs=two", "expected an integer"),
        ("optim.lr=fast", "expected a number"),
        ("model.trainable=none", "'both', 'image', 'text'"),
        ("optim", "key.sub=value"),
        ("model=3", "is a section"),
    ],
)
def test_bad_values_are_config_errors(override, fragment):
    with pytest.raises(ConfigError, match=None) as info:
        load_config("tiny", [override])
    assert fragment in str(info.value)


def test_unknown_preset_lists_the_presets():
    with pytest.raises(ConfigError) as info:
        load_config("gpu-large")
    assert "cpu" in str(info.value) and "paper" in str(info.value)


def test_saved_config_round_trips(tmp_path: Path):
    config = load_config("cpu", ["optim.lr=3e-4", "data=m.parquet"])
    path = save_config(config, tmp_path / "run" / "config.yaml")
    assert yaml.safe_load(path.read_text())["optim"]["lr"] == pytest.approx(3e-4)
    again = read_config_file(path)
    assert again == config
    # and a saved file can itself be used as the --config of a new run
    assert load_config(str(path), ["seed=5"]).seed == 5


def test_defaults_fill_missing_keys():
    assert config_to_dict(load_config("tiny"))["train"]["keep_best"] == 2
    assert isinstance(load_config("tiny"), RunConfig)
