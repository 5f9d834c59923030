"""Meshes made by projecting the pose template: faces whose pose is known exactly."""

from __future__ import annotations

import cv2
import numpy as np

from protoface.worker.face.analysis import FaceAnalysis
from protoface.worker.face.analysis.pose import camera, rotation_of, solve, template

SIZE = 640


def projected(yaw: float, pitch: float, roll: float, distance: float = 8.0) -> np.ndarray:
    """A (478, 3) mesh: the template turned by the pose, ``distance`` inter-ocular
    distances in front of a camera like the solver's, irises at the eye centres."""
    shape = template()
    rvec, _ = cv2.Rodrigues(rotation_of(yaw, pitch, roll))
    pixels, _ = cv2.projectPoints(shape, rvec, np.array([0.0, 0.0, distance]),
                                  camera(SIZE, SIZE), None)
    points = np.zeros((478, 3), np.float32)
    points[:468, :2] = pixels.reshape(-1, 2)
    points[468:473, :2] = points[[33, 133], :2].mean(axis=0)
    points[473:478, :2] = points[[263, 362], :2].mean(axis=0)
    return points


def analysis_of(points: np.ndarray) -> FaceAnalysis:
    x0, y0 = points[:, :2].min(axis=0)
    x1, y1 = points[:, :2].max(axis=0)
    return FaceAnalysis(landmarks=points, pose=solve(points, SIZE, SIZE),
                        box=(float(x0), float(y0), float(x1), float(y1)), score=1.0,
                        presence=1.0, width=SIZE, height=SIZE)
