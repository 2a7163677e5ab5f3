"""Frames of a video file as a photo sequence (`addressclip predict --sequence walk.mp4`).

A dashcam clip or a phone video of a walk is a photo sequence sampled as densely as one likes: one
frame every `every_s` seconds of the video's own timeline (the presentation timestamps, so variable
frame rates keep their true gaps), decoded with PyAV (FFmpeg). The frames' times become the
sequence's timestamps, which scale the decoder's transitions as EXIF times do for photos.

Videos rarely say where the camera was, so "every N metres" needs a GPS track next to the video and
is not offered here.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from addressclip.errors import InputError
from addressclip.extras import require

if TYPE_CHECKING:
    from PIL import Image

VIDEO_SUFFIXES = frozenset({".mp4", ".m4v", ".mov", ".mkv", ".avi", ".webm", ".mpg", ".mpeg", ".ts"})
DEFAULT_MAX_FRAMES = 2000  # frames taken from one video (more is almost surely a wrong --every-s)


@dataclass(frozen=True)
class VideoFrame:
    name: str  # 'walk.mp4@12.00s'
    time_s: float  # seconds from the video's first frame
    image: Image.Image


def is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_SUFFIXES


def video_frames(
    path: Path, every_s: float, max_frames: int = DEFAULT_MAX_FRAMES, max_pixels: int = 64_000_000
) -> Iterator[VideoFrame]:
    """One frame every `every_s` seconds (the first frame at or after each multiple of it), lazily:
    the caller turns each into model pixels before the next is decoded, so memory stays one frame.

    Raises InputError naming the file for anything that is not a readable video with frames, for a
    frame larger than `max_pixels`, and when the video would give more than `max_frames` frames.
    """
    if not every_s > 0:
        raise InputError(path, None, f"--every-s must be a positive number of seconds, not {every_s}")
    av = require("av", "reading video files (predict --sequence VIDEO)")
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError) as error:
        raise InputError(path, None, f"not a readable video ({type(error).__name__})") from None
    taken = 0
    try:
        if not container.streams.video:
            raise InputError(path, None, "has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        start: float | None = None
        next_time = 0.0
        for frame in container.decode(stream):
            if frame.time is None:
                continue
            start = frame.time if start is None else start
            offset = frame.time - start
            if offset + 1e-6 < next_time:
                continue
            if frame.width * frame.height > max_pixels:
                raise InputError(
                    path, None, f"frames of {frame.width}x{frame.height} exceed {max_pixels:,} pixels"
                )
            if taken == max_frames:
                raise InputError(
                    path, None, f"more than {max_frames} frames at one every {every_s:g} s: raise --every-s"
                )
            yield VideoFrame(f"{path.name}@{offset:.2f}s", offset, frame.to_image())
            taken += 1
            next_time = (int(offset / every_s + 1e-9) + 1) * every_s
    except av.error.FFmpegError as error:
        raise InputError(path, None, f"video could not be decoded ({type(error).__name__})") from None
    finally:
        container.close()
    if not taken:
        raise InputError(path, None, "has no decodable frames")
