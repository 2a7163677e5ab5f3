"""Atomic writes reach the disk in the order a power cut needs: the file's bytes, the rename, the folder.

Without the two fsyncs a rename can be on disk before the data it points to (a torn or empty file
after a power cut, the 0-byte model.pt of issue 11), or the rename itself can be lost.
"""

from __future__ import annotations

import os
from pathlib import Path

from addressclip import atomic
from addressclip.atomic import write_text_atomic


def test_file_synced_before_the_rename_and_folder_after(tmp_path: Path, monkeypatch):
    events: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(source, target) -> None:
        events.append(("replace", str(target)))
        real_replace(source, target)

    monkeypatch.setattr(atomic.os, "fsync", fsync)
    monkeypatch.setattr(atomic.os, "replace", replace)
    target = tmp_path / "run" / "config.yaml"
    write_text_atomic(target, "seed: 0\n")

    assert target.read_text() == "seed: 0\n"
    renamed = events.index(("replace", str(target)))
    synced_before = [path for kind, path in events[:renamed] if kind == "fsync"]
    synced_after = [path for kind, path in events[renamed + 1 :] if kind == "fsync"]
    assert any(Path(path).name.startswith(".config.yaml.") for path in synced_before), events
    assert str(target.parent) in synced_after, events
