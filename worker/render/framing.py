"""Putting an avatar's portrait on a tier's frame, from pixels it really has.

The portrait is scaled so its face lands at the tier's face size (:func:`face_height`),
but never enlarged more than :data:`MAX_UPSCALE` (an enlarged photo only looks blurred;
a smaller face is drawn smaller instead). Where the scaled portrait does not cover the
frame (the sides of the 16:9 ``pro`` frame, a tightly cropped photo), the frame is
continued from the background plate, mirrored at the portrait's edge and blurred more
the further it reaches, with the photo's own grain added back — never repeated edge
columns. Below the portrait the body goes straight on down.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from protoface.domain.tiers import TIERS, Tier
from protoface.worker.face.analysis.plate import _push_pull  # the plate's own fill

# Face box height / frame height. The 16:9 pro frame is a medium shot (head and
# shoulders): its face is 0.3 × 720 = 216 px, so a portrait whose face box is 108 px or
# more is enlarged at most 2× (standard 205 px: 103 px; lite 102 px: 52 px).
FACE_SHARE = {"pro": 0.30}
DEFAULT_FACE_SHARE = 0.40
MAX_UPSCALE = 2.0
RENDERED_TIERS = ("lite", "standard", "pro")
BLUR_REACH = 0.2  # faces: how far from the portrait's edge the fill is fully blurred
BLUR_SIGMA = 0.06  # faces: the blur at full reach


def face_height(tier: Tier) -> float:
    """The face box's height on ``tier``'s frame, output pixels."""
    return FACE_SHARE.get(tier.name, DEFAULT_FACE_SHARE) * tier.height


def scale(face_px: float, portrait_face: float) -> float:
    """How much a portrait whose face box is ``portrait_face`` px is enlarged to draw it
    ``face_px`` tall: never more than :data:`MAX_UPSCALE` (the face is drawn smaller)."""
    return min(face_px / max(portrait_face, 1.0), MAX_UPSCALE)


def upscales(portrait_face: float) -> dict[str, float]:
    """How much each tier enlarges a portrait whose face box is ``portrait_face`` px."""
    return {name: round(scale(face_height(TIERS[name]), portrait_face), 2)
            for name in RENDERED_TIERS}


def face_shares(portrait_face: float) -> dict[str, float]:
    """Per tier, the face as drawn ÷ the tier's face size: below 1 where the portrait
    is too small to fill it within :data:`MAX_UPSCALE`."""
    shares = {}
    for name in RENDERED_TIERS:
        face = face_height(TIERS[name])
        shares[name] = round(scale(face, portrait_face) * portrait_face / face, 2)
    return shares


def min_face_heights() -> dict[str, int]:
    """Per tier, the smallest face box (portrait px) enlarged at most ``MAX_UPSCALE``."""
    return {name: math.ceil(face_height(TIERS[name]) / MAX_UPSCALE)
            for name in RENDERED_TIERS}


@dataclass(frozen=True, slots=True)
class Placement:
    """Portrait pixels → frame pixels: ``frame = scale * portrait + (tx, ty)``."""

    scale: float
    tx: float
    ty: float

    def at(self, x: float, y: float) -> tuple[float, float]:
        return self.scale * x + self.tx, self.scale * y + self.ty


@dataclass(frozen=True, slots=True)
class Placed:
    """An avatar's layers on the tier's frame (all ``height × width``)."""

    frame: np.ndarray  # uint8 RGB: the portrait, continued past its edges
    backdrop: np.ndarray  # uint8 RGB: what shows where the person moves away
    mask: np.ndarray  # float32 0 … 1: the person


def placement(face_h: float, centre: tuple[float, float], face_px: float,
              frame: tuple[int, int], centre_y: float) -> Placement:
    """Where the face goes: centred, ``face_px`` tall unless that needs > 2× upscaling."""
    width, height = frame
    s = scale(face_px, face_h)
    return Placement(s, width / 2 - s * centre[0], centre_y * height - s * centre[1])


def place(rgb: np.ndarray, mask: np.ndarray, plate: np.ndarray, where: Placement,
          size: tuple[int, int], face_px: float) -> Placed:
    """The portrait, its person mask and its background plate on a ``size`` frame."""
    height = size[1]
    valid = _moved(np.full(rgb.shape[:2], 255, np.uint8), where, size, cv2.BORDER_CONSTANT)
    inside = valid.astype(np.float32)[..., None] / 255
    # Replicated past its edges: only the rows below the portrait use that (the body goes
    # straight on down; a mirror would fold the shoulders back inward).
    portrait = _moved(rgb, where, size, cv2.BORDER_REPLICATE)
    behind = _moved(plate, where, size, cv2.BORDER_REFLECT_101)
    person = _moved(mask, where, size, cv2.BORDER_REPLICATE).astype(np.float32) / 255
    bottom = where.ty + where.scale * rgb.shape[0]
    left, right = where.tx, where.tx + where.scale * rgb.shape[1]
    # Past the portrait's foot the body goes on; elsewhere (beside it too) only background.
    rows = np.arange(height, dtype=np.float32)[:, None, None]
    cols = np.arange(size[0], dtype=np.float32)[None, :, None]
    below = (rows >= bottom) & (cols >= left) & (cols < right)
    source = np.where(below, portrait, behind).astype(np.float32)
    fill = _continued(source, inside, face_px)
    frame = inside * portrait + (1 - inside) * fill
    backdrop = inside * behind + (1 - inside) * _continued(behind.astype(np.float32), inside,
                                                           face_px)
    backdrop = _matched(backdrop, frame, person)
    return Placed(_u8(frame), _u8(backdrop), person)


def _matched(plate: np.ndarray, frame: np.ndarray, person: np.ndarray) -> np.ndarray:
    """The plate where the person can uncover it, its colour eased to the photo's.

    The mask's faint outer rim is background in the photo already; and the plate's fill,
    averaged from afar, may be a shade off the background next to the head, which would
    draw the old outline when the head moves. So the photo-minus-plate difference, known
    around the person, is carried smoothly inward and added: the plate keeps its own
    texture and meets the photo without a seam.
    """
    known = 1 - np.clip(person / 0.1, 0.0, 1.0)
    offset = _push_pull((frame - plate) * known[..., None], known)
    return np.asarray(known[..., None] * frame + (1 - known[..., None]) * (plate + offset))


def _moved(image: np.ndarray, where: Placement, size: tuple[int, int], border: int,
           ) -> np.ndarray:
    """Scaled (area-averaged when shrinking) and translated onto the frame."""
    interp = cv2.INTER_AREA if where.scale < 1 else cv2.INTER_LINEAR
    scaled = cv2.resize(image, None, fx=where.scale, fy=where.scale, interpolation=interp)
    move = np.array([[1, 0, where.tx], [0, 1, where.ty]], np.float32)
    return np.asarray(cv2.warpAffine(scaled, move, size, flags=cv2.INTER_LINEAR,
                                     borderMode=border))


def _continued(source: np.ndarray, inside: np.ndarray, face_px: float) -> np.ndarray:
    """``source`` (mirrored past the portrait) blurred with the distance from its edge."""
    outside = (inside[..., 0] < 1).astype(np.uint8)
    if not outside.any():
        return source
    distance = cv2.distanceTransform(outside, cv2.DIST_L2, 5)
    reach = np.clip(distance / (BLUR_REACH * face_px), 0, 1)[..., None]
    sigma = max(1.0, BLUR_SIGMA * face_px)
    blurred = cv2.GaussianBlur(source, (0, 0), sigma)
    grain = _grain(source, inside) * reach
    return np.asarray((1 - reach) * source + reach * blurred + grain, np.float32)


def _grain(source: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """Noise as strong as the portrait's own fine texture (fixed seed: deterministic)."""
    detail = source - cv2.GaussianBlur(source, (0, 0), 1.0)
    known = inside[..., 0] >= 1
    sigma = float(detail[known].std()) if known.any() else 0.0
    noise = np.random.default_rng(0).normal(0.0, 1.0, source.shape[:2]).astype(np.float32)
    return np.asarray(noise[..., None] * min(sigma, 6.0), np.float32)


def _u8(image: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.clip(np.round(image), 0, 255).astype(np.uint8))
