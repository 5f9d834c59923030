"""Measurements on a 478-point mesh (pixels): face size, eye openness, lip gap.

Distances are in the image plane. The eye aspect ratio is Soukupová and Čech's:
the mean of two lid-to-lid heights over the corner-to-corner width, about 0.25–0.35 for
an open eye and under 0.1 for a closed one.
"""

from __future__ import annotations

import numpy as np

from .topology import (
    CHEEKS,
    CHIN,
    FOREHEAD_TOP,
    INNER_LOWER_LIP,
    INNER_UPPER_LIP,
    LEFT_EYE_CORNERS,
    LEFT_EYE_LIDS,
    MOUTH_CORNERS,
    RIGHT_EYE_CORNERS,
    RIGHT_EYE_LIDS,
)


def _distance(points: np.ndarray, a: int, b: int) -> float:
    return float(np.linalg.norm(points[a, :2].astype(np.float64) - points[b, :2]))


def face_width(points: np.ndarray) -> float:
    return _distance(points, *CHEEKS)


def face_height(points: np.ndarray) -> float:
    return _distance(points, FOREHEAD_TOP, CHIN)


def eye_aspect_ratio(points: np.ndarray, side: str) -> float:
    """Openness of the subject's ``"right"`` or ``"left"`` eye."""
    corners, lids = ((RIGHT_EYE_CORNERS, RIGHT_EYE_LIDS) if side == "right"
                     else (LEFT_EYE_CORNERS, LEFT_EYE_LIDS))
    heights = [_distance(points, upper, lower) for upper, lower in lids]
    return sum(heights) / (2 * _distance(points, *corners))


def lip_gap(points: np.ndarray) -> float:
    """The opening between the inner lips at the middle, in pixels."""
    return _distance(points, INNER_UPPER_LIP, INNER_LOWER_LIP)


def mouth_width(points: np.ndarray) -> float:
    return _distance(points, *MOUTH_CORNERS)


def mesh_box(points: np.ndarray) -> tuple[float, float, float, float]:
    """The mesh's bounding box (x0, y0, x1, y1) in pixels."""
    x0, y0 = points[:, :2].min(axis=0)
    x1, y1 = points[:, :2].max(axis=0)
    return float(x0), float(y0), float(x1), float(y1)
