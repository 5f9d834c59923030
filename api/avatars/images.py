"""Checking an uploaded portrait before anything is stored.

The format is sniffed from the bytes (the filename and the part's content type are
ignored); only PNG and JPEG pass. The pixel count is checked from the header before
any pixel is decoded, so a decompression bomb (a tiny file claiming a huge canvas)
costs nothing; then the whole image is decoded once, which finds truncated and
corrupt files. Every refusal is a 422 with a precise ``code`` and ``param: image``.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass
from typing import Final

from PIL import Image, UnidentifiedImageError

from protoface.api.errors import ApiError, unprocessable

MAX_IMAGE_BYTES: Final = 10 * 1024 * 1024
MAX_IMAGE_PIXELS: Final = 25_000_000  # 25 MP: 5000 × 5000
MIN_IMAGE_SIDE: Final = 64
CONTENT_TYPES: Final = {"PNG": "image/png", "JPEG": "image/jpeg"}
PARAM: Final = "image"


@dataclass(frozen=True, slots=True)
class CheckedImage:
    data: bytes
    content_type: str
    width: int
    height: int
    sha256: str


def too_large(size: int | None = None) -> ApiError:
    got = f" (got {size} bytes)" if size is not None else ""
    return unprocessable("image_too_large",
                         f"The image must be at most {MAX_IMAGE_BYTES} bytes{got}.", PARAM)


def check(data: bytes) -> CheckedImage:
    """The image if it is a usable PNG or JPEG portrait; else raise a 422 ``ApiError``.

    CPU-bound (it decodes the image): call it off the event loop.
    """
    if len(data) > MAX_IMAGE_BYTES:
        raise too_large(len(data))
    if not data:
        raise unprocessable("image_empty", "The image is empty.", PARAM)
    with warnings.catch_warnings():
        # Pillow warns (and past 2× its own cap raises) on huge canvases; our cap is lower.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data), formats=tuple(CONTENT_TYPES))
        except UnidentifiedImageError:
            raise unprocessable("image_unsupported_type",
                                "The image must be a PNG or JPEG file.", PARAM) from None
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise _too_many_pixels() from None
        except (OSError, ValueError, SyntaxError):
            raise _corrupt() from None
        with image:
            width, height = image.size
            if width * height > MAX_IMAGE_PIXELS:
                raise _too_many_pixels(width, height)
            if min(width, height) < MIN_IMAGE_SIDE:
                raise unprocessable(
                    "image_too_small",
                    f"The image must be at least {MIN_IMAGE_SIDE}×{MIN_IMAGE_SIDE} pixels.",
                    PARAM)
            try:
                image.load()  # decodes every pixel: truncated or corrupt data fails here
            except (Image.DecompressionBombError, Image.DecompressionBombWarning):
                raise _too_many_pixels(width, height) from None
            except (OSError, ValueError, SyntaxError, EOFError):
                raise _corrupt() from None
            content_type = CONTENT_TYPES[str(image.format)]
    return CheckedImage(data, content_type, width, height, hashlib.sha256(data).hexdigest())


def _too_many_pixels(width: int | None = None, height: int | None = None) -> ApiError:
    got = f" (got {width}×{height})" if width and height else ""
    return unprocessable("image_too_many_pixels",
                         f"The image must have at most {MAX_IMAGE_PIXELS} pixels{got}.", PARAM)


def _corrupt() -> ApiError:
    return unprocessable("image_corrupt",
                         "The image could not be decoded: it is truncated or corrupt.", PARAM)
