"""A bundle whose files differ from the SHA-256 in its bundle.json is refused, naming the file.

Before, loading only checked that each listed file existed: a gallery.npz with other embeddings (or a
model.pt with other weights) loaded and predicted. Each tampered file here is still a valid file of
its kind, so only the checksum can tell.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from addressclip.cli import main
from addressclip.errors import InputError
from addressclip.serve.bundle import ADDRESSES_FILE, GALLERY_FILE
from addressclip.serve.loading import load_predictor
from addressclip.testing.toyworld import TrainedWorld


@pytest.fixture(scope="module")
def bundle(trained_world: TrainedWorld, tmp_path_factory) -> Path:
    return load_predictor(trained_world.checkpoint).export(tmp_path_factory.mktemp("export") / "bundle")


def _copy(bundle: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(bundle, tmp_path / "bundle"))


def _other_embeddings(path: Path) -> None:
    with np.load(path, allow_pickle=False) as data:
        arrays = {name: data[name] for name in data.files}
    arrays["embeddings"] = arrays["embeddings"][::-1].copy()  # every address gets another's embedding
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)


def _other_weights(path: Path) -> None:
    payload = torch.load(path, map_location="cpu", weights_only=True)
    payload["state_dict"]["clip.logit_scale"] = payload["state_dict"]["clip.logit_scale"] + 1.0
    torch.save(payload, path)


def _other_table(path: Path) -> None:
    import pandas as pd

    frame = pd.read_parquet(path)
    frame.loc[0, "address"] = "Somewhere Else 1, Elsewhere"
    frame.to_parquet(path, index=False)


def test_an_untouched_copy_loads(bundle: Path, tmp_path: Path):
    assert len(load_predictor(_copy(bundle, tmp_path)).gallery) > 0


@pytest.mark.parametrize(
    ("name", "tamper"),
    [(GALLERY_FILE, _other_embeddings), ("model.pt", _other_weights), (ADDRESSES_FILE, _other_table)],
)
def test_a_tampered_file_is_refused_by_name(bundle: Path, tmp_path: Path, name: str, tamper):
    copy = _copy(bundle, tmp_path)
    tamper(copy / name)
    with pytest.raises(InputError) as info:
        load_predictor(copy)
    message = str(info.value)
    assert str(copy / name) in message and "SHA-256" in message and "\n" not in message


def test_the_command_line_says_which_file_in_one_line(bundle: Path, tmp_path: Path, capsys):
    copy = _copy(bundle, tmp_path)
    _other_embeddings(copy / GALLERY_FILE)
    photo = tmp_path / "photo.jpg"
    from PIL import Image

    Image.new("RGB", (40, 32), (120, 80, 60)).save(photo)
    for argv in (
        ["predict", "--model", str(copy), str(photo)],
        ["serve", "--bundle", str(copy), "--port", "0"],
    ):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and GALLERY_FILE in err and "export the bundle again" in err
