"""Decode-check image files before they enter a manifest, so a bad file is a counted skip at build time
rather than "cannot decode image" hours into training.

The check opens each file with Pillow and decodes it: for a JPEG, a reduced draft (libjpeg's 1/8
scale), which still walks every entropy-coded byte and so finds truncation and corrupt data, at
about 1.6x the speed of a full decode. `Image.verify()` was measured too: 15x faster, but it passes
a JPEG cut in half, so it does not do the job. Files are checked in a thread pool (Pillow releases
the GIL while decoding).

Problem kinds (the build report counts skips by these):
missing_file, empty_file, not_an_image (not a format Pillow reads, e.g. text renamed to .jpg),
truncated_image, corrupt_image, image_too_large (over Pillow's decompression-bomb limit).
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

METHOD = "pillow draft (1/8 scale) + load"
DRAFT_SIZE = (64, 64)  # any small size: libjpeg picks its smallest scale (1/8) that is still larger


def decode_problem(path: str | Path) -> tuple[str, str] | None:
    """(kind, reason) when the file cannot be decoded as an image, else None."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as error:
        return "missing_file", f"cannot open the file ({error.strerror or error})"
    if size == 0:
        return "empty_file", "the file is empty (0 bytes)"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                image.draft("RGB", DRAFT_SIZE)
                image.load()
    except UnidentifiedImageError:
        return "not_an_image", "not an image file (Pillow cannot identify it)"
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        return "image_too_large", f"too many pixels to decode safely ({error})"
    except OSError as error:
        if "truncat" in str(error).lower():
            return "truncated_image", f"the image data ends early ({error})"
        return "corrupt_image", f"cannot decode the image ({error})"
    except (SyntaxError, ValueError, EOFError, MemoryError) as error:
        return "corrupt_image", f"cannot decode the image ({error})"
    return None


@dataclass
class DecodeCheck:
    """The outcome of checking many files: problems by position in the input, and the speed."""

    checked: int = 0
    problems: dict[int, tuple[str, str]] = field(default_factory=dict)
    seconds: float = 0.0
    workers: int = 1

    @property
    def images_per_second(self) -> float:
        return self.checked / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, object]:
        counts: dict[str, int] = {}
        for kind, _ in self.problems.values():
            counts[kind] = counts.get(kind, 0) + 1
        return {
            "method": METHOD,
            "checked": self.checked,
            "failed": len(self.problems),
            "failed_by_kind": dict(sorted(counts.items())),
            "seconds": round(self.seconds, 3),
            "images_per_second": round(self.images_per_second, 1),
            "workers": self.workers,
        }


def check_images(
    paths: Sequence[str | Path], *, workers: int | None = None, progress: bool = True
) -> DecodeCheck:
    """Decode-check every file (in a thread pool); see `decode_problem` for the kinds of problem."""
    workers = max(1, min(workers or (os.cpu_count() or 1), 16))
    result = DecodeCheck(checked=len(paths), workers=workers)
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        outcomes = pool.map(decode_problem, paths)
        bar = tqdm(
            outcomes, total=len(paths), desc="decode check", unit="img", disable=None if progress else True
        )
        for index, problem in enumerate(bar):
            if problem is not None:
                result.problems[index] = problem
    result.seconds = time.perf_counter() - started
    return result
