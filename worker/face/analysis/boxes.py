"""The renderer's feature boxes (x, y, w, h in whole pixels), placed from the mesh.

They stand in for the Haar cascades' boxes of asset version 2, with the same meaning:
the face box is square, 1.2 face widths across, its top 0.63 eye-to-chin distances above
the eye line (where OpenCV's frontal-face cascade puts it on the test portraits, so the
renderer's proportions keep holding); an eye box is the eye itself, twice as wide as tall;
the mouth box spans the lips corner to corner, centred on the lip line's height; the jaw box is
what moves when the mouth opens, from the lip line to just below the chin.
"""

from __future__ import annotations

import numpy as np

from . import features
from .topology import CHIN, INNER_LOWER_LIP, INNER_UPPER_LIP, MOUTH_CORNERS, eye_refinement

Box = tuple[int, int, int, int]


def _box(cx: float, cy: float, w: float, h: float) -> Box:
    return round(cx - w / 2), round(cy - h / 2), max(1, round(w)), max(1, round(h))


def _eye_line(points: np.ndarray) -> float:
    corners = [eye_refinement(side)[[0, 8]] for side in ("right", "left")]
    return float(points[np.concatenate(corners), 1].mean())


def face_box(points: np.ndarray) -> Box:
    side = 1.2 * features.face_width(points)
    eyes = _eye_line(points)
    top = eyes - 0.63 * (float(points[CHIN, 1]) - eyes)
    centre = float(points[[234, 454], 0].mean())
    return _box(centre, top + side / 2, side, side)


def eye_boxes(points: np.ndarray) -> tuple[Box, Box]:
    """The image-left eye first (the subject's right, in a portrait that faces us)."""
    found = []
    for side in ("right", "left"):
        contour = points[eye_refinement(side)[:16], :2]
        width = 1.15 * float(np.ptp(contour[:, 0]))
        cx, cy = contour.mean(axis=0)
        found.append(_box(float(cx), float(cy), width, width / 2))
    first, second = sorted(found, key=lambda b: b[0])
    return first, second


def mouth_box(points: np.ndarray) -> Box:
    lips = points[[0, 17, *MOUTH_CORNERS], :2]  # outer lips: top, bottom, corners
    line = float(points[[INNER_UPPER_LIP, INNER_LOWER_LIP], 1].mean())
    width = 1.04 * float(np.ptp(lips[2:, 0]))  # a margin so rounding keeps the corners in
    height = max(float(np.ptp(lips[:, 1])), 0.2 * width)
    return _box(float(lips[2:, 0].mean()), line, width, height)


def jaw_box(points: np.ndarray, face: Box) -> Box:
    top = float(points[[INNER_UPPER_LIP, INNER_LOWER_LIP], 1].mean())
    bottom = float(points[CHIN, 1]) + 0.04 * face[3]
    x0 = face[0] + face[2] // 8
    return x0, round(top), face[2] - face[2] // 4, max(1, round(bottom - top))
