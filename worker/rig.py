"""The avatar build step: find the face in a portrait and fit the rig the renderer warps.

Interim: detects exactly one frontal face with OpenCV's Haar cascade and records its
box; the full rig (eyes, mouth, jaw, colours) replaces this. The public surface —
``build_asset``, ``load_asset``, ``stock_asset``, ``RigError`` — stays.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

import cv2
import msgspec
import numpy as np

MIN_FACE_FRACTION = 0.08  # a face narrower than this share of the image is too small


class RigError(Exception):
    """The portrait cannot be rigged; ``reason`` is the human ``failure_reason``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Box(msgspec.Struct, frozen=True, array_like=True):
    x: int
    y: int
    w: int
    h: int


class Rig(msgspec.Struct, frozen=True, kw_only=True):
    width: int
    height: int
    face: Box


class Asset(msgspec.Struct, frozen=True, kw_only=True):
    """A built avatar: the normalised portrait (PNG) and its rig."""

    version: int = 1
    portrait_png: bytes
    rig: Rig


@cache
def _face_cascade() -> cv2.CascadeClassifier:
    return cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")


def build_asset(image: bytes) -> bytes:
    """Build the asset for an uploaded portrait (PNG or JPEG bytes); raise ``RigError``."""
    pixels = cv2.imdecode(np.frombuffer(image, np.uint8), cv2.IMREAD_COLOR)
    if pixels is None:
        raise RigError("The source image could not be decoded.")
    gray = cv2.cvtColor(pixels, cv2.COLOR_BGR2GRAY)
    h, w = gray.shape
    side = max(24, int(MIN_FACE_FRACTION * min(h, w)))
    faces = _face_cascade().detectMultiScale(gray, 1.1, 5, minSize=(side, side))
    if len(faces) == 0:
        raise RigError("No face detected in source image.")
    if len(faces) > 1:
        raise RigError("More than one face detected in source image.")
    x, y, fw, fh = (int(v) for v in faces[0])
    ok, png = cv2.imencode(".png", pixels)
    assert ok
    rig = Rig(width=w, height=h, face=Box(x, y, fw, fh))
    return msgspec.msgpack.encode(Asset(portrait_png=png.tobytes(), rig=rig))


def load_asset(data: bytes) -> Asset:
    return msgspec.msgpack.decode(data, type=Asset)


STOCK_PORTRAITS = {"av_stock_001": "astronaut.png"}


@cache
def stock_asset(avatar_id: str) -> bytes:
    """The built asset of a stock avatar, from the portrait shipped with the worker."""
    image = resources.files("worker.portraits").joinpath(STOCK_PORTRAITS[avatar_id]).read_bytes()
    return build_asset(image)
