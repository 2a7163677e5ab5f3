"""The one square view of an image (numpy + PIL, no torch): training, evaluation and the predictor.

Kept apart from `data.transforms` (normalisation and augmentation, which need torch) so that the
serving path can decode photos on an install without torch (the ONNX backend, `serve.onnx_backend`).
Decoding follows open_clip's evaluation transform (resize the shorter side, centre crop).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from addressclip.errors import InputError

_RESAMPLE = {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR}
# A JPEG is decoded at the smallest libjpeg scale (1/2, 1/4, 1/8, in the DCT domain) that keeps both
# sides >= size x DRAFT_GAP, then resized. 1 (since pixels v2) is the fast setting: a 640x480 photo is
# decoded at 320x240 for 224 px; v1 used 2 (Pillow's thumbnail default), decoding it whole.
DRAFT_GAP = 1
PIXELS_VERSION = "v2"  # part of every decoded-image cache key: a change here invalidates them


def draft_box(size: int) -> tuple[int, int]:
    """The `Image.draft` request for a square view of `size` pixels."""
    return (size * DRAFT_GAP, size * DRAFT_GAP)


def square_uint8(
    image: Image.Image, size: int, interpolation: str = "bicubic", draft: bool = True
) -> np.ndarray:
    """(3, size, size) uint8: shorter side resized to `size`, centre-cropped (open_clip's eval view).

    The one preprocessing of training, evaluation and the predictor, so that they cannot drift apart.
    """
    if draft:
        image.draft("RGB", draft_box(size))  # JPEG: decode at a reduced scale, much faster
    rgb = image.convert("RGB")
    width, height = rgb.size
    scale = size / min(width, height)
    new_w, new_h = max(size, round(width * scale)), max(size, round(height * scale))
    left, top = (new_w - size) // 2, (new_h - size) // 2
    # resize only the centre crop (v2): the source box of the crop, at the full resize's scale
    x_scale, y_scale = width / new_w, height / new_h
    box = (left * x_scale, top * y_scale, (left + size) * x_scale, (top + size) * y_scale)
    rgb = rgb.resize((size, size), _RESAMPLE.get(interpolation, Image.Resampling.BICUBIC), box=box)
    return np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8).transpose(2, 0, 1))


def decode_square(path: str | Path, size: int, interpolation: str = "bicubic") -> np.ndarray:
    """Decode an image file into `square_uint8`; an unreadable file is an InputError naming it."""
    try:
        with Image.open(path) as image:
            return square_uint8(image, size, interpolation)
    except (OSError, ValueError) as error:
        raise InputError(path, None, f"cannot decode image ({error})") from None
