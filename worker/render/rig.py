"""The avatar build step: find the face in a portrait and fit the rig the renderer warps.

The face analysis (``protoface.worker.face.analysis``: MediaPipe's detector, 478-point mesh and
head pose) finds exactly one usable face or refuses the portrait with its stable reason;
the face, eye, mouth and jaw boxes are placed from the mesh. Skin and lip colours are
sampled from the image. The portrait is cropped around the face (and shrunk when the
face is larger than the renderer needs) so the stored asset is small and any worker can
load it; the stored portrait is analysed again, so the mesh, the person mask and the
background plate are in its pixels.

Asset versions: 1 held the face box only; 2 adds eyes, mouth, jaw and colours; 3 adds
the mesh, the head pose, the person mask and the background plate. Fields new in 2 or 3
default to ``None`` (:func:`landmarks` fills 2's from face proportions), so older assets
still decode and render.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources

import cv2
import msgspec
import numpy as np

from protoface.worker.face.analysis import FaceError, analyse, boxes, reasons
from protoface.worker.face.analysis.build import FaceBuild, png
from protoface.worker.face.analysis.build import build as build_face

MAX_FACE_PIXELS = 320  # a larger face is shrunk to this width in the stored portrait
ASSET_VERSION = 3

RGB = tuple[int, int, int]


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

    @property
    def centre(self) -> tuple[float, float]:
        return self.x + self.w / 2, self.y + self.h / 2


class Rig(msgspec.Struct, frozen=True, kw_only=True):
    """Where the face is in the stored portrait (pixels) and what colours it has."""

    width: int
    height: int
    face: Box
    eyes: tuple[Box, Box] | None = None  # image-left eye first; the visible eye, not brows
    mouth: Box | None = None  # the lips, corner to corner
    jaw: Box | None = None  # what moves when the mouth opens: lower lip to below the chin
    skin: RGB | None = None
    lips: RGB | None = None
    inner_mouth: RGB | None = None  # fill of the open mouth behind the teeth


class HeadPose(msgspec.Struct, frozen=True, array_like=True):
    """Degrees: yaw > 0 nose to the image's right, pitch > 0 up, roll > 0 clockwise."""

    yaw: float
    pitch: float
    roll: float


class Asset(msgspec.Struct, frozen=True, kw_only=True):
    """A built avatar: the normalised portrait (PNG) and its rig."""

    version: int = 1
    portrait_png: bytes
    rig: Rig
    # New in 3. The mesh: 478 × (x, y, z) little-endian float32 in portrait pixels (z on
    # x's scale, nose < 0), MediaPipe's refine_landmarks order; read it with
    # worker.face.analysis.build.landmarks_from_bytes. Mask and plate are PNGs of the
    # portrait's size: grey (255 = person, soft edge) and RGB (the person removed).
    mesh: bytes | None = None
    pose: HeadPose | None = None
    mask_png: bytes | None = None
    plate_png: bytes | None = None


@dataclass(frozen=True, slots=True)
class Landmarks:
    """A rig with every feature placed: what the renderer consumes."""

    face: Box
    eyes: tuple[Box, Box]
    mouth: Box
    jaw: Box
    skin: RGB
    lips: RGB
    inner_mouth: RGB


# ── Proportions (fallbacks) and colours ───────────────────────────────────────


def _at(face: Box, fx: float, fy: float, fw: float, fh: float) -> Box:
    """A box centred at (fx, fy) of the face, ``fw``×``fh`` face widths/heights."""
    w, h = fw * face.w, fh * face.h
    return Box(int(face.x + fx * face.w - w / 2), int(face.y + fy * face.h - h / 2),
               int(w), int(h))


def default_eyes(face: Box) -> tuple[Box, Box]:
    return _at(face, 0.31, 0.40, 0.20, 0.09), _at(face, 0.69, 0.40, 0.20, 0.09)


def default_mouth(face: Box) -> Box:
    return _at(face, 0.5, 0.77, 0.32, 0.12)


def jaw_of(face: Box, mouth: Box) -> Box:
    bottom = face.y + int(1.12 * face.h)
    top = mouth.y + mouth.h // 2
    return Box(face.x + face.w // 8, top, face.w - face.w // 4, max(1, bottom - top))


def _median(rgb: np.ndarray, box: Box) -> np.ndarray:
    h, w = rgb.shape[:2]
    patch = rgb[max(0, box.y) : min(h, box.y + box.h), max(0, box.x) : min(w, box.x + box.w)]
    return np.asarray(np.median(patch.reshape(-1, 3), axis=0), np.float64)


def skin_of(rgb: np.ndarray, face: Box) -> RGB:
    cheeks = np.stack([_median(rgb, _at(face, fx, 0.6, 0.1, 0.08)) for fx in (0.28, 0.72)])
    return _rgb(cheeks.mean(axis=0))


def lips_of(rgb: np.ndarray, mouth: Box) -> RGB:
    """The reddest share of the mouth box's pixels: lips, not the skin around them."""
    h, w = rgb.shape[:2]
    patch = rgb[max(0, mouth.y) : min(h, mouth.y + mouth.h),
                max(0, mouth.x) : min(w, mouth.x + mouth.w)].reshape(-1, 3).astype(np.float32)
    redness = patch[:, 0] - patch[:, 1]
    return _rgb(np.median(patch[redness >= np.quantile(redness, 0.6)], axis=0))


def inner_mouth_of(lips: RGB) -> RGB:
    return _rgb(np.asarray(lips, np.float32) * np.array([0.32, 0.2, 0.22]))


def _rgb(values: np.ndarray) -> RGB:
    r, g, b = (round(float(v)) for v in values)
    return r, g, b


def landmarks(rig: Rig, rgb: np.ndarray) -> Landmarks:
    """Every feature of ``rig``, placed by proportions or sampled where the asset lacks it."""
    face = rig.face
    eyes = rig.eyes or default_eyes(face)
    mouth = rig.mouth or default_mouth(face)
    lips = rig.lips or lips_of(rgb, mouth)
    return Landmarks(
        face=face, eyes=eyes, mouth=mouth, jaw=rig.jaw or jaw_of(face, mouth),
        skin=rig.skin or skin_of(rgb, face), lips=lips,
        inner_mouth=rig.inner_mouth or inner_mouth_of(lips),
    )


# ── Build ──────────────────────────────────────────────────────────────────────


def _normalise(bgr: np.ndarray, face: Box) -> tuple[np.ndarray, Box]:
    """Crop to the face's surroundings (4 face widths × 3.5 heights) and cap its size."""
    h, w = bgr.shape[:2]
    x0, x1 = max(0, face.x - int(1.5 * face.w)), min(w, face.x + int(2.5 * face.w))
    y0, y1 = max(0, face.y - int(1.2 * face.h)), min(h, face.y + int(2.3 * face.h))
    crop = bgr[y0:y1, x0:x1]
    scale = min(1.0, MAX_FACE_PIXELS / face.w)
    if scale < 1.0:
        size = (round(crop.shape[1] * scale), round(crop.shape[0] * scale))
        crop = cv2.resize(crop, size, interpolation=cv2.INTER_AREA)
    moved = Box(round((face.x - x0) * scale), round((face.y - y0) * scale),
                round(face.w * scale), round(face.h * scale))
    return np.ascontiguousarray(crop), moved


def _analysed(bgr: np.ndarray) -> tuple[np.ndarray, FaceBuild]:
    """The normalised portrait (BGR) and its face analysis, or ``RigError``."""
    try:
        first = analyse(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        portrait, _ = _normalise(bgr, Box(*boxes.face_box(first.landmarks)))
        return portrait, build_face(cv2.cvtColor(portrait, cv2.COLOR_BGR2RGB))
    except FaceError as refused:
        raise RigError(refused.reason) from refused


def fit(bgr: np.ndarray) -> tuple[np.ndarray, Rig, FaceBuild]:
    """The normalised portrait (BGR), its rig and its face analysis, or ``RigError``."""
    portrait, face_build = _analysed(bgr)
    points = face_build.analysis.landmarks
    face = Box(*boxes.face_box(points))
    left, right = (Box(*eye) for eye in boxes.eye_boxes(points))
    mouth = Box(*boxes.mouth_box(points))
    rgb = cv2.cvtColor(portrait, cv2.COLOR_BGR2RGB)
    lips = lips_of(rgb, mouth)
    rig = Rig(
        width=portrait.shape[1], height=portrait.shape[0], face=face, eyes=(left, right),
        mouth=mouth, jaw=Box(*boxes.jaw_box(points, boxes.face_box(points))),
        skin=skin_of(rgb, face), lips=lips, inner_mouth=inner_mouth_of(lips),
    )
    return portrait, rig, face_build


def build_asset(image: bytes) -> bytes:
    """Build the asset for an uploaded portrait (PNG or JPEG bytes); raise ``RigError``."""
    pixels = cv2.imdecode(np.frombuffer(image, np.uint8), cv2.IMREAD_COLOR)
    if pixels is None:
        raise RigError(reasons.UNDECODABLE)
    portrait, rig, face = fit(pixels)
    ok, portrait_png = cv2.imencode(".png", portrait)
    assert ok
    pose = face.analysis.pose
    asset = Asset(
        version=ASSET_VERSION, portrait_png=portrait_png.tobytes(), rig=rig,
        mesh=face.landmarks_bytes(), pose=HeadPose(pose.yaw, pose.pitch, pose.roll),
        mask_png=png(face.mask), plate_png=png(face.plate),
    )
    return msgspec.msgpack.encode(asset)


def load_asset(data: bytes) -> Asset:
    return msgspec.msgpack.decode(data, type=Asset)


def portrait_rgb(asset: Asset) -> np.ndarray:
    return _decoded(asset.portrait_png, "portrait")


def plate_rgb(asset: Asset) -> np.ndarray | None:
    """The asset's background plate (the person removed), if its version has one."""
    return None if asset.plate_png is None else _decoded(asset.plate_png, "background plate")


def person_mask(asset: Asset) -> np.ndarray | None:
    """The asset's person mask (uint8, 255 = person), if its version has one."""
    return None if asset.mask_png is None else _decoded(asset.mask_png, "person mask", grey=True)


def _decoded(data: bytes, what: str, grey: bool = False) -> np.ndarray:
    """A stored PNG as RGB (or grey) pixels, or ``RigError`` naming what could not be
    decoded."""
    flags = cv2.IMREAD_GRAYSCALE if grey else cv2.IMREAD_COLOR
    image = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    if image is None:
        raise RigError(f"The avatar's stored {what} could not be decoded.")
    return np.asarray(image if grey else cv2.cvtColor(image, cv2.COLOR_BGR2RGB))


STOCK_PORTRAITS = {
    "av_stock_001": "astronaut.png",
    "av_stock_002": "synthetic_a.png",
    "av_stock_003": "synthetic_b.png",
}


@cache
def stock_asset(avatar_id: str) -> bytes:
    """The built asset of a stock avatar, from the portrait shipped with the worker."""
    portraits = resources.files("protoface.worker.portraits")
    image = portraits.joinpath(STOCK_PORTRAITS[avatar_id]).read_bytes()
    return build_asset(image)
