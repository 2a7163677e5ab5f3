"""ONNX: `export --onnx` writes the image tower, `--backend onnx` predicts with it, and matches torch."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

from addressclip.cli import main  # noqa: E402
from addressclip.errors import AddressclipError, InputError  # noqa: E402
from addressclip.serve.bundle import BUNDLE_FILE  # noqa: E402
from addressclip.serve.loading import load_predictor  # noqa: E402
from addressclip.serve.onnx_backend import ONNX_FILE, OnnxImageEncoder  # noqa: E402
from addressclip.testing.toyworld import TrainedWorld  # noqa: E402

SCORE_TOLERANCE = 1e-4
# what a machine with `pip install addressclip[serve,onnx]` minus torch lacks (plus the serve extra's gaps)
NOT_INSTALLED = ("torch", "torchvision", "open_clip", "osmium", "faiss", "matplotlib", "sklearn")


@pytest.fixture(scope="module")
def bundle(trained_world: TrainedWorld, tmp_path_factory) -> Path:
    """The tiny world's model exported with --onnx, every sub-street of its AddressBook as candidates."""
    out = tmp_path_factory.mktemp("onnx") / "bundle"
    model = str(trained_world.checkpoint)
    code = main(["export", "--model", model, "--out", str(out), "--onnx", "--all-addresses"])
    assert code == 0
    return out


def _all_images(world: TrainedWorld) -> list[Path]:
    frame = pd.read_parquet(world.manifest)
    return [world.manifest.parent / "images" / p for p in frame["path"]]


def test_bundle_lists_the_onnx_tower_with_its_checksum_and_it_passes_the_checker(bundle: Path):
    meta = json.loads((bundle / BUNDLE_FILE).read_text())
    entry = meta["image_encoder"]
    assert entry["file"] == ONNX_FILE and ONNX_FILE in meta["files"]
    assert entry["input_dtype"] == "uint8" and entry["input_shape"][1:] == [3, 32, 32]
    assert entry["export_max_abs_difference"] <= SCORE_TOLERANCE
    assert meta["version"] == 1  # old readers ignore the extra file and entry
    onnx.checker.check_model(str(bundle / ONNX_FILE), full_check=True)
    graph_input = onnx.load(str(bundle / ONNX_FILE)).graph.input[0]
    assert graph_input.type.tensor_type.shape.dim[0].dim_param == "batch"  # any batch size


def test_onnx_and_torch_backends_agree_on_every_image_of_the_tiny_world(trained_world, bundle: Path):
    torch_predictor = load_predictor(bundle, backend="torch")
    onnx_predictor = load_predictor(bundle, backend="onnx")
    assert (torch_predictor.backend, onnx_predictor.backend) == ("torch", "onnx")
    assert onnx_predictor.model is None and len(onnx_predictor.gallery) == 170
    images = _all_images(trained_world)
    assert len(images) == 96
    expected = torch_predictor.predict(images, top_k=5)
    got = onnx_predictor.predict(images, top_k=5)
    worst = 0.0
    for before, after in zip(expected, got, strict=True):
        assert [m.address_id for m in after.matches] == [m.address_id for m in before.matches]
        scores = np.array([[m.score, m.probability] for m in after.matches])
        reference = np.array([[m.score, m.probability] for m in before.matches])
        worst = max(worst, float(np.abs(scores - reference).max()))
        # the flag agrees unless the score sits on the threshold itself (the threshold is one of the
        # calibration photos' scores: that photo may land either side by float32 rounding)
        if abs(before.in_city_score - before.threshold) > 1e-5 * abs(before.threshold):
            assert after.out_of_city == before.out_of_city
    assert worst <= SCORE_TOLERANCE
    pixels = np.stack([torch_predictor.decode(p) for p in images[:7]])
    difference = np.abs(
        onnx_predictor.image_embeddings(pixels) - torch_predictor.image_embeddings(pixels).numpy()
    )
    assert difference.max() <= SCORE_TOLERANCE  # the embeddings themselves, batch of 7 (a dynamic axis)


def test_a_sequence_decodes_the_same_with_both_backends(trained_world, bundle: Path):
    photos = _all_images(trained_world)[:12]
    torch_result = load_predictor(bundle, backend="torch").predict_sequence(photos)
    onnx_result = load_predictor(bundle, backend="onnx").predict_sequence(photos)
    assert onnx_result.addresses == torch_result.addresses
    assert abs(onnx_result.log_likelihood - torch_result.log_likelihood) <= 1e-3


def test_the_onnx_backend_says_what_needs_torch(bundle: Path, tmp_path: Path):
    predictor = load_predictor(bundle, backend="onnx")
    with pytest.raises(AddressclipError, match="text tower"):
        predictor.add_addresses(["Imaginary Road & Nowhere Lane, Testville"])
    with pytest.raises(AddressclipError, match="torch model"):
        predictor.export(tmp_path / "again")
    with pytest.raises(AddressclipError, match="runs on the CPU"):
        load_predictor(bundle, backend="onnx", device="cuda")


def test_backend_onnx_is_refused_without_an_onnx_tower(trained_world, tmp_path: Path):
    plain = load_predictor(trained_world.checkpoint).export(tmp_path / "plain")
    assert "image_encoder" not in json.loads((plain / BUNDLE_FILE).read_text())
    assert load_predictor(plain).backend == "torch"  # a bundle without ONNX loads as before
    with pytest.raises(AddressclipError, match="export --onnx"):
        load_predictor(plain, backend="onnx")
    with pytest.raises(AddressclipError, match="checkpoint"):
        load_predictor(trained_world.checkpoint, backend="onnx")
    with pytest.raises(AddressclipError, match="backend must be one of"):
        load_predictor(plain, backend="tensorrt")


def test_an_edited_or_foreign_onnx_file_is_refused(bundle: Path, tmp_path: Path):
    import shutil

    copy = Path(shutil.copytree(bundle, tmp_path / "copy"))
    data = bytearray((copy / ONNX_FILE).read_bytes())
    data[-8] ^= 0xFF
    (copy / ONNX_FILE).write_bytes(bytes(data))
    with pytest.raises(InputError, match=ONNX_FILE):
        load_predictor(copy, backend="onnx")
    meta = json.loads((bundle / BUNDLE_FILE).read_text())
    with pytest.raises(InputError, match="image_size 64"):  # a tower for another input size
        OnnxImageEncoder(bundle / ONNX_FILE, {**meta["preprocess"], "image_size": 64}, 10.0)


def test_a_bundle_with_onnx_predicts_and_serves_with_torch_not_installed(trained_world, bundle: Path):
    image = _all_images(trained_world)[0]
    expected = load_predictor(bundle, backend="torch").predict([image], top_k=3)[0]
    script = textwrap.dedent(
        f"""
        import contextlib, importlib.abc, importlib.machinery, io, json, sys

        class Missing(importlib.abc.Loader):  # importing one of these fails as if not installed
            def create_module(self, spec):
                return None

            def exec_module(self, module):
                raise ModuleNotFoundError(f"No module named {{module.__name__!r}}")

        class Refuse(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {NOT_INSTALLED!r}:
                    return importlib.machinery.ModuleSpec(name, Missing())
                return None

        sys.meta_path.insert(0, Refuse())
        from fastapi.testclient import TestClient
        from addressclip.cli import main
        from addressclip.serve.app import create_app
        from addressclip.serve.loading import load_predictor

        predictor = load_predictor({str(bundle)!r})  # auto: torch is missing, so the ONNX tower
        assert predictor.backend == "onnx", predictor.backend
        [prediction] = predictor.predict([{str(image)!r}], top_k=3)
        with TestClient(create_app(predictor)) as client, open({str(image)!r}, "rb") as handle:
            answer = client.post("/v1/predict", files={{"image": ("p.jpg", handle, "image/jpeg")}})
        assert answer.status_code == 200, answer.text
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            code = main(["predict", {str(image)!r}, "--model", {str(bundle)!r}, "--format", "json",
                         "--threads", "1"])
        assert code == 0
        assert answer.json()["matches"][0]["address_id"] == prediction.top.address_id
        assert json.loads(printed.getvalue())
        print("IDS", [m.address_id for m in prediction.matches])
        print("SCORE", prediction.top1_score)
        print("LOADED", sorted(m for m in {NOT_INSTALLED!r} if m in sys.modules))
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = dict(line.split(" ", 1) for line in done.stdout.splitlines() if line[:3] in {"IDS", "SCO", "LOA"})
    assert lines["IDS"] == str([m.address_id for m in expected.matches])
    assert abs(float(lines["SCORE"].split(" ", 1)[0]) - expected.top1_score) <= SCORE_TOLERANCE
    assert lines["LOADED"] == "[]"


def test_backend_onnx_does_not_import_torch_even_where_it_is_installed(trained_world, bundle: Path):
    image = _all_images(trained_world)[0]
    script = textwrap.dedent(
        f"""
        import sys
        from addressclip.serve.app import create_app
        from addressclip.serve.loading import load_predictor

        predictor = load_predictor({str(bundle)!r}, backend="onnx")
        predictor.predict_sequence([{str(image)!r}] * 3)
        create_app(predictor)
        print(sorted(m for m in ("torch", "open_clip", "torchvision") if m in sys.modules))
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "[]"  # importing torch alone costs ~0.6 GB of memory


@pytest.mark.parametrize("k", [1, 4, 9])
def test_numpy_ranking_matches_torch_on_random_embeddings(k: int):
    import torch

    from addressclip.serve.onnx_backend import rank_numpy

    rng = np.random.default_rng(k)
    images = rng.normal(size=(5, 16)).astype(np.float32)
    gallery = rng.normal(size=(9, 16)).astype(np.float32)
    images /= np.linalg.norm(images, axis=1, keepdims=True)
    gallery /= np.linalg.norm(gallery, axis=1, keepdims=True)
    indices, scores, chosen, log_probs = rank_numpy(images, gallery, 30.0, k, with_log=True)
    cosine = torch.from_numpy(images) @ torch.from_numpy(gallery).T
    expected_scores, expected_indices = torch.topk(cosine, k, dim=-1)
    probabilities = torch.softmax(cosine * 30.0, dim=-1)
    assert np.array_equal(indices, expected_indices.numpy())
    assert np.allclose(scores, expected_scores.numpy(), atol=1e-6)
    assert np.allclose(chosen, torch.gather(probabilities, 1, expected_indices).numpy(), atol=1e-6)
    assert np.allclose(log_probs, torch.log_softmax(cosine.double() * 30.0, dim=-1).numpy(), atol=1e-9)
