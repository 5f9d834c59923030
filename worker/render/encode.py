"""Frame encoding for the wire (JPEG by default; raw rgb24 when a client asks)."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image


def jpeg(frame: np.ndarray, quality: int) -> bytes:
    out = io.BytesIO()
    Image.fromarray(frame, "RGB").save(out, format="JPEG", quality=quality)
    return out.getvalue()


def encode(frame: np.ndarray, encoding: str, quality: int) -> bytes:
    if encoding == "rgb24":
        return np.ascontiguousarray(frame).tobytes()
    return jpeg(frame, quality)
