"""Decode untrusted images into the model's square uint8 view, with limits a public service needs.

The predictor and the REST service receive photos from strangers: files of any size, of any format
PIL can parse (some of which, like EPS, would shell out on load), half-uploaded JPEGs and
decompression bombs (a few KB that inflate to gigapixels). Every input goes through `square_pixels`,
which checks the format against an allow-list and the pixel count from the header *before* decoding,
and turns every failure into an `ImageRejected` whose `code` maps to an HTTP status.

The geometry of the view (shorter side resized to the model's size, centre crop, JPEG draft
decoding) is the one `addressclip.data.transforms.decode_square` gives training images, so that a
photo predicted here is preprocessed exactly as the images the model was trained on.

Phone cameras store most photos sideways and record how to turn them in the EXIF Orientation tag;
every viewer honours it, so the photo a user sees is the turned one. `square_pixels` turns it too
(after the cheap draft decode, so a 12-MP portrait photo costs no more than a landscape one):
otherwise the model would be shown a street lying on its side.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image, UnidentifiedImageError
from PIL.Image import Transpose

from addressclip.data.pixels import draft_box
from addressclip.data.pixels import square_uint8 as to_square
from addressclip.errors import InputError

# Formats a street photo arrives in (PIL's JPEG opener also reads MPO, what many phone cameras write).
SUPPORTED_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF")
DEFAULT_MAX_PIXELS = 64_000_000  # a 48-MP phone photo passes; PIL's own bomb limit is ~89 MP
DEFAULT_MAX_BYTES = 20 * 1024 * 1024

ImageSource = Union[Image.Image, str, os.PathLike, bytes, bytearray, memoryview]  # noqa: UP007 - runtime alias


# Rejection codes -> HTTP status used by the service.
REJECTION_STATUS: dict[str, int] = {
    "not_image": 415,
    "unsupported_format": 415,
    "corrupt_image": 422,
    "too_many_pixels": 413,
    "too_large": 413,
    "bad_base64": 400,
    "not_found": 400,
}


class ImageRejected(InputError):
    """An input that is not a usable image; `code` says why (see REJECTION_STATUS)."""

    def __init__(self, source: object, code: str, problem: str) -> None:
        super().__init__(source, None, problem)
        self.code = code

    @property
    def http_status(self) -> int:
        return REJECTION_STATUS.get(self.code, 400)


def source_name(source: ImageSource, index: int | None = None) -> str:
    """How an input is named in results and errors: the path, or 'image N' for in-memory data."""
    if isinstance(source, str | os.PathLike):
        return str(source)
    if isinstance(source, Image.Image) and getattr(source, "filename", ""):
        return str(source.filename)
    return f"image {index}" if index is not None else "image"


def _open(data: bytes | Path, name: str, max_pixels: int) -> Image.Image:
    """Open (header only) an allowed format and check its pixel count before anything is decoded."""
    stream = io.BytesIO(data) if isinstance(data, bytes) else data
    Image.init()  # register every plugin, so that the allow-list below names known openers
    try:
        image = Image.open(stream, formats=[f for f in SUPPORTED_FORMATS if f in Image.OPEN])
    except UnidentifiedImageError:
        raise _identify_failure(data, name) from None
    except Image.DecompressionBombError:
        raise ImageRejected(
            name, "too_many_pixels", "image has too many pixels (decompression bomb guard)"
        ) from None
    except (OSError, ValueError, SyntaxError) as error:  # broken headers surface as any of these
        raise ImageRejected(name, "corrupt_image", f"cannot read the image header ({error})") from None
    width, height = image.size
    if width <= 0 or height <= 0:
        image.close()
        raise ImageRejected(name, "corrupt_image", f"image has an empty size {width}x{height}")
    if width * height > max_pixels:
        image.close()
        raise ImageRejected(
            name,
            "too_many_pixels",
            f"image is {width}x{height} = {width * height:,} pixels, above the limit of {max_pixels:,}",
        )
    return image


def _identify_failure(data: bytes | Path, name: str) -> ImageRejected:
    """Tell 'a format we refuse' from 'not an image at all' (header parsing only, nothing decoded)."""
    stream = io.BytesIO(data) if isinstance(data, bytes) else data
    try:
        with Image.open(stream) as other:
            found = other.format
    except Exception:  # anything PIL cannot identify is simply not an image
        found = None
    if found:
        allowed = ", ".join(SUPPORTED_FORMATS)
        return ImageRejected(name, "unsupported_format", f"{found} images are not accepted (use {allowed})")
    return ImageRejected(name, "not_image", "not an image (no known image format recognised)")


# Single-channel modes wider than 8 bits (16-bit greyscale PNG/TIFF, 32-bit integer, float). PIL's
# convert("RGB") clips them at 255 instead of scaling, which turns a 16-bit photo all white.
_WIDE_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I", "F"})


def _wide_to_8bit(image: Image.Image, name: str) -> Image.Image:
    """A greyscale image of 16-bit samples scaled to 8 bits ('L'); 415 for other wide samples.

    16-bit modes map 0..65535 to 0..255 (divide by 257, as every viewer does). Mode 'I' is how PIL
    opens some 16-bit files, so it is scaled the same way when its values fit in 16 bits; 32-bit
    integer or float images have no agreed white level and are refused rather than guessed at.
    """
    if image.mode == "F":
        raise ImageRejected(
            name, "unsupported_format", "32-bit float images are not accepted (use 8 or 16 bit)"
        )
    values = np.asarray(image)
    if values.size and (int(values.min()) < 0 or int(values.max()) > 65535):
        raise ImageRejected(
            name, "unsupported_format", "32-bit integer images are not accepted (use 8 or 16 bit)"
        )
    scaled = ((values.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    return Image.fromarray(scaled)


EXIF_ORIENTATION = 0x0112
# EXIF Orientation value -> the transpose that shows the photo upright (1 = already upright).
_UPRIGHT: dict[int, Transpose] = {
    2: Transpose.FLIP_LEFT_RIGHT,
    3: Transpose.ROTATE_180,
    4: Transpose.FLIP_TOP_BOTTOM,
    5: Transpose.TRANSPOSE,
    6: Transpose.ROTATE_270,  # PIL's angles are counter-clockwise: 270 is a quarter turn clockwise
    7: Transpose.TRANSVERSE,
    8: Transpose.ROTATE_90,
}


def _orientation(image: Image.Image) -> int:
    """The EXIF Orientation of an image (header only); 1 when absent or unreadable.

    A malformed EXIF block is common in edited photos; it must not reject an otherwise good image.
    """
    try:
        value = image.getexif().get(EXIF_ORIENTATION, 1)
        return int(value) if value in _UPRIGHT else 1
    except Exception:  # PIL raises many kinds for broken EXIF blocks; any of them means "no tag"
        return 1


def _upright(image: Image.Image, draft_size: int | None) -> Image.Image:
    """The image as a viewer shows it (EXIF Orientation applied); the same object when upright.

    `draft_size` (the model's size) lets a JPEG be decoded at a reduced scale first, as `square_uint8`
    would have done; the draft box is square, so turning afterwards scales both sides alike.
    """
    method = _UPRIGHT.get(_orientation(image))
    if method is None:
        return image
    if draft_size is not None:
        image.draft("RGB", draft_box(draft_size))
    return image.transpose(method)


def _read_path(path: Path, max_bytes: int) -> Path:
    if not path.is_file():
        raise ImageRejected(path, "not_found", "file not found" if not path.exists() else "not a file")
    size = path.stat().st_size
    if size > max_bytes:
        raise ImageRejected(path, "too_large", f"file is {size:,} bytes, above the limit of {max_bytes:,}")
    return path


def square_pixels(
    source: ImageSource,
    size: int,
    interpolation: str = "bicubic",
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_bytes: int = DEFAULT_MAX_BYTES,
    name: str | None = None,
) -> np.ndarray:
    """Decode one input (PIL image, path or encoded bytes) to the model's (3, size, size) uint8 view.

    Raises `ImageRejected` (an InputError naming the input) for anything that is not a usable image.
    """
    label = name or source_name(source)
    if isinstance(source, Image.Image):
        # An image the caller already opened: no draft (it would change the caller's object).
        width, height = source.size
        if width * height > max_pixels:
            raise ImageRejected(
                label, "too_many_pixels", f"image is {width}x{height}, above {max_pixels:,} pixels"
            )
        try:
            source = _upright(source, None)
            if source.mode in _WIDE_MODES:
                source = _wide_to_8bit(source, label)
            return to_square(source, size, interpolation, draft=False)
        except (OSError, ValueError) as error:
            raise ImageRejected(label, "corrupt_image", f"cannot decode the image ({error})") from None
    if isinstance(source, bytes | bytearray | memoryview):
        data: bytes | Path = bytes(source)
        if len(data) > max_bytes:
            raise ImageRejected(
                label, "too_large", f"image is {len(data):,} bytes, above the limit of {max_bytes:,}"
            )
        if not data:
            raise ImageRejected(label, "not_image", "empty upload (0 bytes)")
    elif isinstance(source, str | os.PathLike):
        data = _read_path(Path(source), max_bytes)
    else:
        raise ImageRejected(label, "not_image", f"cannot read a {type(source).__name__} as an image")
    image = _open(data, label, max_pixels)
    try:
        with image:
            upright = _upright(image, size)
            if upright.mode in _WIDE_MODES:
                wide = _wide_to_8bit(upright, label)
                with wide:
                    return to_square(wide, size, interpolation, draft=False)
            return to_square(upright, size, interpolation, draft=upright is image)
    except Image.DecompressionBombError:
        raise ImageRejected(
            label, "too_many_pixels", "image has too many pixels (decompression bomb guard)"
        ) from None
    except (OSError, ValueError, SyntaxError, EOFError) as error:
        detail = str(error) or type(error).__name__
        raise ImageRejected(label, "corrupt_image", f"truncated or corrupt image data ({detail})") from None
