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


def square_uint8(
    image: Image.Image, size: int, interpolation: str = "bicubic", draft: bool = True
) -> np.ndarray:
    """(3, size, size) uint8: shorter side resized to `size`, centre-cropped (open_clip's eval view).

    The one preprocessing of training, evaluation and the predictor, so that they cannot drift apart.
    """
    if draft:
        image.draft("RGB", (size * 2, size * 2))  # JPEG: decode at reduced scale, much faster
    rgb = image.convert("RGB")
    width, height = rgb.size
    scale = size / min(width, height)
    new_w, new_h = max(size, round(width * scale)), max(size, round(height * scale))
    rgb = rgb.resize((new_w, new_h), _RESAMPLE.get(interpolation, Image.Resampling.BICUBIC))
    left, top = (new_w - size) // 2, (new_h - size) // 2
    rgb = rgb.crop((left, top, left + size, top + size))
    return np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8).transpose(2, 0, 1))


def decode_square(path: str | Path, size: int, interpolation: str = "bicubic") -> np.ndarray:
    """Decode an image file into `square_uint8`; an unreadable file is an InputError naming it."""
    try:
        with Image.open(path) as image:
            return square_uint8(image, size, interpolation)
    except (OSError, ValueError) as error:
        raise InputError(path, None, f"cannot decode image ({error})") from None
