"""Rotated regions of interest, as MediaPipe's calculators define and crop them.

A ``Roi`` is a rectangle in image pixels turned by ``rotation`` radians about its centre.
The formulas follow DetectionsToRectsCalculator, RectTransformationCalculator,
ImageToTensorCalculator (OpenCV converter) and LandmarkProjectionCalculator, so the
models see the same pixels as in MediaPipe.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True, slots=True)
class Roi:
    cx: float
    cy: float
    width: float
    height: float
    rotation: float = 0.0  # radians; positive turns the crop clockwise on screen

    def scaled(self, scale: float) -> Roi:
        """Square on the long side, then scaled (RectTransformationCalculator's order)."""
        side = max(self.width, self.height) * scale
        return Roi(self.cx, self.cy, side, side, self.rotation)


def rotation_between(start: np.ndarray, end: np.ndarray) -> float:
    """The angle that makes the start→end vector horizontal, in [-π, π)."""
    angle = -math.atan2(-(float(end[1]) - float(start[1])), float(end[0]) - float(start[0]))
    return angle - 2 * math.pi * math.floor((angle + math.pi) / (2 * math.pi))


def roi_of_box(x0: float, y0: float, x1: float, y1: float, rotation: float) -> Roi:
    return Roi((x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0, rotation)


def crop(image: np.ndarray, roi: Roi, size: int, border: int) -> np.ndarray:
    """``image`` resampled inside ``roi`` to ``size``² (bilinear, like MediaPipe)."""
    box = ((roi.cx, roi.cy), (roi.width, roi.height), math.degrees(roi.rotation))
    src = cv2.boxPoints(box).astype(np.float32)  # bottom-left, top-left, top-right, …
    dst = np.array([[0, size], [0, 0], [size, 0], [size, size]], np.float32)
    matrix = cv2.getPerspectiveTransform(src, dst)
    return cv2.warpPerspective(image, matrix, (size, size), flags=cv2.INTER_LINEAR,
                               borderMode=border, borderValue=(0, 0, 0))


def project(points: np.ndarray, roi: Roi) -> np.ndarray:
    """Points in the crop's unit square (x, y, and z in crop widths) → image pixels."""
    cos, sin = math.cos(roi.rotation), math.sin(roi.rotation)
    x, y = points[:, 0] - 0.5, points[:, 1] - 0.5
    out = np.empty_like(points, dtype=np.float64)
    out[:, 0] = (cos * x - sin * y) * roi.width + roi.cx
    out[:, 1] = (sin * x + cos * y) * roi.height + roi.cy
    out[:, 2] = points[:, 2] * roi.width  # depth scales like x (MediaPipe's convention)
    return out
