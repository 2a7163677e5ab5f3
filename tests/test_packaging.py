"""Packaging: what `pip install addressclip[serve]` must be enough for, and the files a wheel carries."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# what the serve extra leaves out: the rendering, training and report stacks
NOT_IN_SERVE = ("osmium", "faiss", "matplotlib", "sklearn")


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def test_heavy_stacks_are_extras_not_core_dependencies():
    project = _pyproject()["project"]
    core = " ".join(project["dependencies"]).lower()
    for name in ("osmium", "faiss", "matplotlib", "scikit-learn", "fastapi", "uvicorn"):
        assert name not in core, f"{name} should be an extra"
    extras = project["optional-dependencies"]
    assert {"world", "train", "serve", "bench", "all", "dev"} <= set(extras)
    serve = " ".join(extras["serve"]).lower()
    assert "fastapi" in serve and "uvicorn" in serve and "osmium" not in serve


def test_license_citation_changelog_and_notices_ship():
    meta = _pyproject()["project"]
    assert meta["license"] == "Apache-2.0"
    assert set(meta["license-files"]) >= {"LICENSE", "src/addressclip/resources/osm/NOTICE*"}
    assert "Apache License" in (ROOT / "LICENSE").read_text(encoding="utf-8")
    citation = (ROOT / "CITATION.cff").read_text(encoding="utf-8")
    assert "cff-version" in citation and "AddressCLIP" in citation and "preferred-citation" in citation
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    for schema in ("manifest", "bundle", "checkpoint"):
        assert schema in changelog.lower()


@pytest.mark.slow  # a fresh interpreter loads torch and a bundle
def test_a_bundle_loads_and_serves_without_the_world_train_and_report_stacks(trained_world, tmp_path):
    from addressclip.serve.loading import load_predictor

    bundle = load_predictor(trained_world.checkpoint).export(tmp_path / "bundle")
    image = trained_world.train_images[next(iter(trained_world.train_images))][0]
    script = textwrap.dedent(
        f"""
        import importlib.abc, importlib.machinery, sys

        class Missing(importlib.abc.Loader):  # importing one of these fails as if not installed
            def create_module(self, spec):
                return None

            def exec_module(self, module):
                raise ModuleNotFoundError(f"No module named {{module.__name__!r}} (serve extra only)")

        class Refuse(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {NOT_IN_SERVE!r}:
                    return importlib.machinery.ModuleSpec(name, Missing())
                return None

        sys.meta_path.insert(0, Refuse())
        from fastapi.testclient import TestClient
        from addressclip.serve.app import create_app
        from addressclip.serve.loading import load_predictor

        predictor = load_predictor({str(bundle)!r})
        [prediction] = predictor.predict([{str(image)!r}], top_k=3)
        with TestClient(create_app(predictor)) as client, open({str(image)!r}, "rb") as handle:
            assert client.get("/healthz").status_code == 200
            answer = client.post("/v1/predict", files={{"image": ("p.jpg", handle, "image/jpeg")}})
        assert answer.status_code == 200, answer.text
        print("OK", prediction.top.address, sorted(m for m in {NOT_IN_SERVE!r} if m in sys.modules))
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("OK") and done.stdout.rstrip().endswith("[]")
