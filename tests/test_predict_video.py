"""`addressclip predict` on a video file: frames every --every-s seconds as a photo sequence."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from addressclip.cli import main
from addressclip.errors import InputError
from addressclip.serve.video import video_frames
from addressclip.testing.toyworld import TrainedWorld

av = pytest.importorskip("av")
FPS = 4


def write_video(path: Path, photos: list[Path], seconds_each: float = 1.0) -> None:
    """A lossless video (FFV1 in Matroska) that shows each photo for `seconds_each` at FPS frames/s."""
    frames = [np.asarray(Image.open(p).convert("RGB")) for p in photos]
    height, width = frames[0].shape[:2]
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("ffv1", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = width, height, "bgr0"
        for pixels in frames:
            for _ in range(round(seconds_each * FPS)):
                frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
                container.mux(stream.encode(frame))
        container.mux(stream.encode())


@pytest.fixture(scope="module")
def walk_video(trained_world: TrainedWorld, tmp_path_factory) -> tuple[Path, str, list[Path], list[int]]:
    address, photos, wrong = trained_world.walk_with_wrong_frames()
    path = tmp_path_factory.mktemp("video") / "walk.mkv"
    write_video(path, photos)
    return path, address, photos, wrong


def test_frames_are_taken_every_n_seconds_and_are_the_photos(walk_video) -> None:
    path, _, photos, _ = walk_video
    frames = list(video_frames(path, 1.0))
    assert [f.time_s for f in frames] == pytest.approx(range(len(photos)))
    assert [f.name for f in frames][:2] == ["walk.mkv@0.00s", "walk.mkv@1.00s"]
    for frame, photo in zip(frames, photos, strict=True):  # lossless: the very pixels
        assert np.array_equal(np.asarray(frame.image), np.asarray(Image.open(photo).convert("RGB")))
    assert len(list(video_frames(path, 0.5))) == 2 * len(photos)
    assert len(list(video_frames(path, 100.0))) == 1


def test_predict_sequence_on_a_video(walk_video, trained_world, capsys) -> None:
    path, address, photos, wrong = walk_video
    model = ["--model", str(trained_world.checkpoint)]
    assert main(["predict", "--sequence", str(path), *model, "--format", "json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert [s["source"] for s in answer["path"]] == [f"walk.mkv@{i}.00s" for i in range(len(photos))]
    assert [s["address"] for s in answer["path"]] == [address] * len(photos)
    assert [not s["agrees_with_photo"] for s in answer["path"]] == [i in wrong for i in range(len(photos))]
    # without --sequence each sampled frame is predicted on its own
    assert main(["predict", str(path), *model, "--format", "csv", "--every-s", "2"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines()[1:] if line]
    assert len({line.split(",")[0] for line in rows}) == len(photos) // 2


@pytest.mark.parametrize(
    ("make", "extra", "message"),
    [
        (lambda d: (d / "fake.mp4").write_text("not a video"), [], "fake.mp4: not a readable video"),
        (lambda d: (d / "empty.mp4").write_bytes(b""), [], "empty.mp4: not a readable video"),
        (None, ["--every-s", "0"], "--every-s must be a positive number of seconds"),
        (None, ["--every-s", "-1"], "--every-s must be a positive number of seconds"),
        (None, ["--order", "exif-time"], "a video is a sequence of its own"),
    ],
    ids=["text", "empty", "zero-step", "negative-step", "exif-order"],
)
def test_bad_videos_are_one_line_errors(walk_video, trained_world, tmp_path, capsys, make, extra, message):
    path = walk_video[0] if make is None else (make(tmp_path), next(tmp_path.iterdir()))[1]
    command = ["predict", "--sequence", str(path), "--model", str(trained_world.checkpoint), *extra]
    assert main(command) == 2
    error = capsys.readouterr().err  # progress bars (the first calibration) may come before it
    last = error.strip().replace("\r", "\n").splitlines()[-1]
    assert last.startswith("addressclip predict: error: ") and message in last and "Traceback" not in error


def test_a_video_with_other_photos_is_refused(walk_video, trained_world, capsys) -> None:
    path, _, photos, _ = walk_video
    command = ["predict", "--sequence", str(path), str(photos[0]), "--model", str(trained_world.checkpoint)]
    assert main(command) == 2
    assert "give one video file alone" in capsys.readouterr().err


def test_too_many_frames_is_an_error_not_a_memory_blowup(walk_video) -> None:
    with pytest.raises(InputError, match="more than 3 frames at one every 1 s: raise --every-s"):
        list(video_frames(walk_video[0], 1.0, max_frames=3))
