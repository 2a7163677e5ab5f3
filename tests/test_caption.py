"""`addressclip caption`: BLIP captions of a manifest through a tiny random BLIP saved to a folder.

The tiny model writes nonsense; what is checked is the plumbing (every row captioned from the prompt,
other columns and metadata kept), the resume (rows in the sidecar are not captioned again), the split
over ranks and the atomic manifest write.
"""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from addressclip.cli import main
from addressclip.data.manifest import read_manifest, write_manifest
from addressclip.testing.toyworld import make_toy_manifest

transformers = pytest.importorskip("transformers")

from addressclip.testing.blip import save_random_blip  # noqa: E402
from addressclip.world.manifest_captions import (  # noqa: E402
    BlipCaptioner,
    CaptionSettings,
    caption_manifest,
    read_sidecar,
    sidecar_folder,
)


@pytest.fixture(scope="module")
def blip_folder(tmp_path_factory):
    return save_random_blip(tmp_path_factory.mktemp("blip") / "tiny-blip", "tiny")


@pytest.fixture(scope="module")
def captioner(blip_folder):
    return BlipCaptioner(blip_folder, "cpu", prompt="a street view of", max_new_tokens=4)


@pytest.fixture
def uncaptioned(tmp_path):
    """The toy manifest (20 rows) with every caption emptied."""
    path = make_toy_manifest(tmp_path / "world", addresses=4, per_address=5, val_per_address=2)
    manifest = read_manifest(path)
    frame = manifest.frame.assign(caption=None)
    write_manifest(frame, path, manifest.image_root, manifest.addressbook_dir)
    return path


def _settings(blip_folder, **changes) -> CaptionSettings:
    return CaptionSettings(model=str(blip_folder), max_new_tokens=4, batch_size=3, flush_every=1, **changes)


def test_cli_captions_every_row_and_keeps_the_rest(uncaptioned, blip_folder, capsys):
    before = read_manifest(uncaptioned)
    metadata = pq.read_schema(uncaptioned).metadata
    code = main(["caption", str(uncaptioned), "--model", str(blip_folder), "--batch-size", "4",
                 "--max-new-tokens", "3", "--quiet"])  # fmt: skip
    assert code == 0
    after = read_manifest(uncaptioned)
    captions = after.frame["caption"].tolist()
    assert all(isinstance(c, str) and c.startswith("a street view of") for c in captions)
    assert after.frame.drop(columns="caption").equals(before.frame.drop(columns="caption"))
    assert pq.read_schema(uncaptioned).metadata == metadata
    assert not sidecar_folder(uncaptioned).exists()  # removed once every row is captioned
    assert f"captioned {len(captions)} image(s)" in capsys.readouterr().out
    # a second run finds nothing to do and leaves the file alone
    stamp = uncaptioned.stat().st_mtime_ns
    assert main(["caption", str(uncaptioned), "--model", str(blip_folder), "--quiet"]) == 0
    assert uncaptioned.stat().st_mtime_ns == stamp


def test_resume_skips_rows_already_captioned(uncaptioned, blip_folder, captioner):
    calls: list[int] = []

    def dies_after_two_batches(images):
        if len(calls) == 2:
            raise RuntimeError("killed")
        calls.append(len(images))
        return captioner(images)

    with pytest.raises(RuntimeError, match="killed"):
        caption_manifest(uncaptioned, dies_after_two_batches, _settings(blip_folder), progress=False)
    saved = read_sidecar(sidecar_folder(uncaptioned))
    assert len(saved) == 6  # two flushed batches of 3
    assert read_manifest(uncaptioned).frame["caption"].isna().all()  # the manifest is untouched

    seen: list[str] = []

    def recording(images):
        seen.extend(str(image.size) for image in images)
        return captioner(images)

    run = caption_manifest(uncaptioned, recording, _settings(blip_folder), progress=False)
    assert (run.skipped, run.captioned, run.remaining) == (6, 14, 0)
    assert len(seen) == 14
    frame = read_manifest(uncaptioned).frame
    assert frame["caption"].notna().all()
    for path, caption in saved.items():  # the captions of the first run are the ones kept
        assert frame.loc[frame["path"] == path, "caption"].item() == caption


def test_limit_then_other_settings_are_refused(uncaptioned, blip_folder, captioner):
    run = caption_manifest(uncaptioned, captioner, _settings(blip_folder, limit=5), progress=False)
    assert (run.captioned, run.remaining, run.manifest_written) == (5, 15, True)
    assert read_manifest(uncaptioned).frame["caption"].notna().sum() == 5
    with pytest.raises(Exception, match="another prompt"):
        caption_manifest(uncaptioned, captioner, _settings(blip_folder, prompt="a photo of"), progress=False)


def test_ranks_split_the_rows_and_rank_zero_merges(uncaptioned, blip_folder, captioner):
    counted: dict[int, int] = {0: 0, 1: 0}

    def counting(rank):
        def run(images):
            counted[rank] += len(images)
            return captioner(images)

        return run

    # rank 1 first, then rank 0: the barrier is where rank 0 would wait for rank 1
    one = caption_manifest(
        uncaptioned, counting(1), _settings(blip_folder), rank=1, world_size=2, progress=False
    )
    assert not one.manifest_written
    zero = caption_manifest(
        uncaptioned, counting(0), _settings(blip_folder), rank=0, world_size=2, progress=False
    )
    assert counted == {0: 10, 1: 10}
    assert zero.manifest_written and zero.remaining == 0
    assert read_manifest(uncaptioned).frame["caption"].notna().all()


def test_failed_manifest_write_leaves_the_old_manifest(uncaptioned, blip_folder, captioner, monkeypatch):
    original = uncaptioned.read_bytes()
    real_write = pq.write_table

    def crash_half_way(table, where, **kwargs):
        real_write(table, where, **kwargs)
        if not str(where).startswith(str(uncaptioned.with_name(f".{uncaptioned.name}."))):
            return  # the sidecar's parts are written as usual
        with open(where, "r+b") as handle:  # a truncated file, then the crash
            handle.truncate(100)
        raise OSError("disk full")

    monkeypatch.setattr(pq, "write_table", crash_half_way)
    with pytest.raises(OSError, match="disk full"):
        caption_manifest(uncaptioned, captioner, _settings(blip_folder), progress=False)
    monkeypatch.undo()
    assert uncaptioned.read_bytes() == original
    assert sorted(p.name for p in uncaptioned.parent.iterdir() if p.name.endswith(".tmp")) == []
    # the captions survive in the sidecar: the rerun only writes the manifest
    run = caption_manifest(uncaptioned, captioner, _settings(blip_folder), progress=False)
    assert (run.skipped, run.captioned, run.remaining) == (20, 0, 0)
    assert read_manifest(uncaptioned).frame["caption"].notna().all()


def test_missing_model_folder_or_file_is_one_line(tmp_path, uncaptioned, blip_folder, capsys):
    assert main(["caption", str(uncaptioned), "--model", str(tmp_path / "nowhere")]) == 2
    error = capsys.readouterr().err.strip()
    assert "nowhere" in error and "BLIP model folder not found" in error and "save_pretrained" in error
    assert len(error.splitlines()) == 1
    partial = tmp_path / "partial"
    partial.mkdir()
    for name in ("config.json", "processor_config.json", "tokenizer.json"):
        (partial / name).write_bytes((blip_folder / name).read_bytes())
    assert main(["caption", str(uncaptioned), "--model", str(partial)]) == 2
    error = capsys.readouterr().err.strip()
    assert "model.safetensors" in error and "weights" in error and len(error.splitlines()) == 1


@pytest.mark.slow
def test_torchrun_two_gloo_ranks_caption_every_row_once(uncaptioned, blip_folder):
    import os
    import socket
    import subprocess
    import sys

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
               "--master-addr", "127.0.0.1", "--master-port", str(port), "-m", "addressclip.cli",
               "caption", str(uncaptioned), "--model", str(blip_folder), "--batch-size", "4",
               "--max-new-tokens", "3", "--threads", "1", "--quiet"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "rank 0/2: captioned 10 image(s)" in done.stdout
    assert "rank 1/2: captioned 10 image(s)" in done.stdout
    frame = read_manifest(uncaptioned).frame
    assert frame["caption"].str.startswith("a street view of").all()
    assert not sidecar_folder(uncaptioned).exists()


def test_the_render_hooks_blip_spec_loads_the_same_model(blip_folder):
    from PIL import Image

    from addressclip.world.captions import load_captioner

    captioner = load_captioner(f"blip:{blip_folder}")
    texts = captioner([Image.new("RGB", (40, 30), colour) for colour in ("red", "green", "blue")])
    assert len(texts) == 3 and all(text.startswith("a street view of") for text in texts)
