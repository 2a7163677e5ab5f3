"""Decoding untrusted images: training parity, accepted formats, and every rejection with its code."""

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from addressclip.data.transforms import decode_square
from addressclip.serve.images import REJECTION_STATUS, ImageRejected, square_pixels


def _encoded(fmt: str, size=(64, 48), seed: int = 0, **options) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, fmt, **options)
    return buffer.getvalue()


def _rejection(source, **limits) -> ImageRejected:
    with pytest.raises(ImageRejected) as caught:
        square_pixels(source, 32, **limits)
    return caught.value


def test_same_pixels_as_training_for_paths_bytes_and_pil(tmp_path: Path):
    path = tmp_path / "photo.jpg"
    path.write_bytes(_encoded("JPEG", size=(120, 80), quality=90))
    expected = decode_square(path, 32)  # what the training loader feeds the model
    assert np.array_equal(square_pixels(path, 32), expected)
    assert np.array_equal(square_pixels(str(path), 32), expected)
    assert np.array_equal(square_pixels(path.read_bytes(), 32), expected)
    png = _encoded("PNG", size=(50, 70), seed=3)
    with Image.open(io.BytesIO(png)) as image:
        from_pil = square_pixels(image, 32)
    assert from_pil.shape == (3, 32, 32) and from_pil.dtype == np.uint8
    assert np.array_equal(from_pil, square_pixels(png, 32))


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF"])
def test_accepted_formats_decode(fmt: str):
    pixels = square_pixels(_encoded(fmt), 24)
    assert pixels.shape == (3, 24, 24)
    assert 0 < pixels.mean() < 255


@pytest.mark.parametrize("fmt", ["ICO", "PPM", "TGA"])
def test_other_image_formats_are_refused_by_name(fmt: str):
    error = _rejection(_encoded(fmt, size=(32, 32)))
    assert error.code == "unsupported_format" and error.http_status == 415
    assert fmt in str(error) and "JPEG" in str(error)


def test_eps_is_refused_before_anything_runs():
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n"
    assert _rejection(eps).code == "unsupported_format"


@pytest.mark.parametrize("data", [b"hello, not an image", b"\x00" * 64, b"GIF89a"])
def test_non_images_are_rejected(data: bytes):
    error = _rejection(data)
    assert error.code in {"not_image", "corrupt_image"}
    assert error.http_status in {415, 422}


def test_empty_upload():
    error = _rejection(b"")
    assert error.code == "not_image" and "empty" in str(error)


def test_truncated_jpeg_is_a_corrupt_image_naming_the_input():
    data = _encoded("JPEG", size=(200, 150), quality=95)
    with pytest.raises(ImageRejected) as caught:
        square_pixels(data[: len(data) // 2], 32, name="upload.jpg")
    assert caught.value.code == "corrupt_image" and caught.value.http_status == 422
    assert str(caught.value).startswith("upload.jpg: ") and "truncated" in str(caught.value)


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_decompression_bomb_is_refused_from_the_header():
    # 12000 x 12000 of one colour compresses to a few hundred KB of PNG but is 144 megapixels
    buffer = io.BytesIO()
    Image.new("L", (12000, 12000)).save(buffer, "PNG")
    assert len(buffer.getvalue()) < 1_000_000
    error = _rejection(buffer.getvalue(), max_pixels=50_000_000)
    assert error.code == "too_many_pixels" and error.http_status == 413
    assert "144,000,000" in str(error)


def test_byte_limit_and_missing_file(tmp_path: Path):
    data = _encoded("PNG", size=(64, 64))
    assert _rejection(data, max_bytes=len(data) - 1).code == "too_large"
    path = tmp_path / "big.png"
    path.write_bytes(data)
    assert _rejection(path, max_bytes=100).code == "too_large"
    missing = _rejection(tmp_path / "nope.jpg")
    assert missing.code == "not_found" and "nope.jpg" in str(missing)


def test_every_code_has_a_4xx_status():
    assert all(400 <= status < 500 for status in REJECTION_STATUS.values())
