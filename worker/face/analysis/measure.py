"""Measure a rendered frame as a viewer would: re-detect the face and read the mouth,
the eyes and the pose from the mesh.

For video, pass the previous frame's measurement: the face crop then follows the last
mesh as MediaPipe's tracking does (its bounding box squared and scaled by 1.5, turned by
the eye line 33 → 263) and the detector is skipped, unless the landmark model no longer
sees a face there.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import features
from .detector import detect
from .geometry import Roi, roi_of_box, rotation_between
from .mesh import FACE_SCALE, MIN_PRESENCE, face_roi, refined_landmarks
from .pose import Pose, solve
from .topology import MESH_POINTS


@dataclass(frozen=True, slots=True)
class Measurement:
    landmarks: np.ndarray  # (478, 3) float32, pixels
    pose: Pose
    lip_gap: float  # inner lips at the middle, pixels
    lip_gap_share: float  # the gap over the face height (forehead top to chin)
    mouth_width: float  # corner to corner, pixels
    eye_aspect: tuple[float, float]  # (subject's right, left) eye aspect ratios
    face_height: float  # pixels
    roi: Roi  # the face crop used; the next frame's crop is derived from the landmarks


def tracking_roi(points: np.ndarray) -> Roi:
    """The face crop MediaPipe would use on the next frame, from this frame's mesh."""
    mesh = points[:MESH_POINTS, :2]
    x0, y0 = mesh.min(axis=0)
    x1, y1 = mesh.max(axis=0)
    return roi_of_box(x0, y0, x1, y1, rotation_between(mesh[33], mesh[263])).scaled(FACE_SCALE)


def _mesh_in(rgb: np.ndarray, roi: Roi) -> np.ndarray | None:
    points, presence = refined_landmarks(rgb, roi)
    return points.astype(np.float32) if presence >= MIN_PRESENCE else None


def _crop(rgb: np.ndarray, previous: Measurement | None) -> Roi | None:
    if previous is not None:
        return tracking_roi(previous.landmarks)
    found = detect(rgb)
    return face_roi(max(found, key=lambda d: d.width)) if found else None


def measure(rgb: np.ndarray, previous: Measurement | None = None) -> Measurement | None:
    """The measurements of the (largest) face in an RGB frame, or ``None`` if none."""
    roi = _crop(rgb, previous)
    points = None if roi is None else _mesh_in(rgb, roi)
    if roi is None or points is None:
        return measure(rgb) if previous is not None else None  # track lost: detect again
    return _measured(points, roi, rgb.shape[1], rgb.shape[0])


def _measured(points: np.ndarray, roi: Roi, width: int, height: int) -> Measurement:
    gap, tall = features.lip_gap(points), features.face_height(points)
    return Measurement(
        landmarks=points, pose=solve(points, width, height), lip_gap=gap,
        lip_gap_share=gap / tall, mouth_width=features.mouth_width(points),
        eye_aspect=(features.eye_aspect_ratio(points, "right"),
                    features.eye_aspect_ratio(points, "left")),
        face_height=tall, roi=roi,
    )
