"""The background plate: the portrait with the person removed.

The hole is every pixel the soft mask touches, grown by 6 % of the face width, so that
hair wisps and the mask's feathered rim go too and a head moving a few degrees uncovers
only filled background. The fill is a push-pull over an image pyramid (normalised
convolution): each level averages the known pixels below it, and the hole takes the
coarsest estimate that has support, blended level by level back to full size. It is
smooth and carries the nearby background's colours inward, with no smear lines and no
seam at the hole's border; known pixels stay exactly as they were.
"""

from __future__ import annotations

import cv2
import numpy as np

from . import features

MARGIN = 0.06  # the hole grows past the mask by this share of the face width
SUPPORT = 0.25  # a level's own estimate counts fully once this share of it is known


def hole(mask: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Pixels to replace (uint8 0/1): the mask, grown by the margin."""
    grow = max(1, round(MARGIN * features.face_width(points)))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1))
    return np.asarray(cv2.dilate((mask > 0).astype(np.uint8), kernel))


def _push_pull(colour: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Fill where ``weight`` is 0; ``colour`` is premultiplied by ``weight``."""
    height, width = weight.shape
    known = np.maximum(weight, 1e-6)[..., None]
    estimate = np.asarray(colour / known, np.float32)
    if min(height, width) <= 4 or weight.min() >= SUPPORT:
        return estimate
    coarse = _push_pull(cv2.pyrDown(colour), cv2.pyrDown(weight))
    up = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_LINEAR)
    trust = np.clip(weight / SUPPORT, 0.0, 1.0)[..., None]
    return np.asarray(trust * estimate + (1 - trust) * up, np.float32)


def background_plate(rgb: np.ndarray, mask: np.ndarray, points: np.ndarray) -> np.ndarray:
    """The portrait (RGB uint8) with the person and a margin around them filled in."""
    known = (1 - hole(mask, points)).astype(np.float32)
    colour = rgb.astype(np.float32) * known[..., None]
    filled = _push_pull(colour, known)
    plate = np.where(known[..., None] > 0, rgb.astype(np.float32), filled)
    return np.asarray(np.clip(np.round(plate), 0, 255), np.uint8)
