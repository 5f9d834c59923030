"""468 mesh points in a rotated 192² face crop, refined by the iris model at 64² per eye.

As in MediaPipe 0.10.14: the face crop is the detection box squared and scaled by 1.5,
turned so the eyes are level (face_detection_front_detection_to_roi.pbtxt); the eye crop
is the box of the two eye corners squared and scaled by 2.3 (iris_landmark_landmarks_to_roi
.pbtxt); the left eye is mirrored, since the iris model knows one eye. The refined eye
contour replaces the mesh's x, y (z kept, as LandmarksRefinementCalculator's ``none``);
each iris takes the mean depth of its eye's 16 lid points (``assign_average``).

Of the iris model's 71 eye points only the first 16, the lids' own contour, are written
back; the other 55 (rings around the eye and the brow's underside) keep the mesh's
values. MediaPipe's iris graph writes all 71, but its refine_landmarks output (the
attention model) is closer to this: on the six test portraits the mean distance to it is
0.92–1.35 % of the face width with 16 points written back and 0.97–1.50 % with 71 (the
drawn portraits' rings differ most), about what MediaPipe's own two meshes differ by.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .detector import Detection
from .geometry import Roi, crop, project, roi_of_box, rotation_between
from .loader import model
from .topology import LEFT_EYE_CORNERS, MESH_POINTS, POINTS, RIGHT_EYE_CORNERS, eye_refinement

FACE_SIZE, EYE_SIZE = 192, 64
FACE_SCALE, EYE_SCALE = 1.5, 2.3
LIDS = 16  # the eye's own contour: the first points of the iris model's 71
MIN_PRESENCE = 0.5  # below this the landmark model says the crop holds no face


@dataclass(frozen=True, slots=True)
class Mesh:
    points: np.ndarray  # (478, 3) float32: x, y in pixels, z in pixels relative to the face
    presence: float  # the landmark model's face score
    roi: Roi


def face_roi(detection: Detection) -> Roi:
    rotation = rotation_between(detection.keypoints[0], detection.keypoints[1])
    return roi_of_box(*detection.box, rotation).scaled(FACE_SCALE)


def landmarks(rgb: np.ndarray, roi: Roi) -> tuple[np.ndarray, float]:
    """The 468 mesh points in image pixels, and the face presence score."""
    tensor = crop(rgb, roi, FACE_SIZE, cv2.BORDER_REPLICATE).astype(np.float32) / 255.0
    out = model("face_landmark.tflite").run(tensor)
    unit = out[MESH_POINTS * 3].reshape(MESH_POINTS, 3).astype(np.float64) / FACE_SIZE
    presence = float(1 / (1 + np.exp(-float(out[1][0]))))
    return project(unit, roi), presence


def eye_roi(points: np.ndarray, corners: tuple[int, int]) -> Roi:
    a, b = points[corners[0], :2], points[corners[1], :2]
    x0, y0 = np.minimum(a, b)
    x1, y1 = np.maximum(a, b)
    return roi_of_box(x0, y0, x1, y1, rotation_between(a, b)).scaled(EYE_SCALE)


def eye(rgb: np.ndarray, roi: Roi, mirrored: bool) -> tuple[np.ndarray, np.ndarray]:
    """The 71 eye-contour points and 5 iris points of one eye, in image pixels."""
    patch = crop(rgb, roi, EYE_SIZE, cv2.BORDER_REPLICATE)
    if mirrored:
        patch = patch[:, ::-1]
    out = model("iris_landmark.tflite").run(patch.astype(np.float32) / 255.0)
    contour = out[71 * 3].reshape(71, 3).astype(np.float64)
    iris = out[5 * 3].reshape(5, 3).astype(np.float64)
    if mirrored:
        contour[:, 0] = EYE_SIZE - contour[:, 0]
        # MediaPipe's 478 order keeps each iris's second point on the image's right
        # (checked against its refine_landmarks output): mirroring swapped it with the fourth.
        iris = iris[[0, 3, 2, 1, 4]]
        iris[:, 0] = EYE_SIZE - iris[:, 0]
    return project(contour / EYE_SIZE, roi), project(iris / EYE_SIZE, roi)


def refine(rgb: np.ndarray, points: np.ndarray) -> np.ndarray:
    """The 468 points with both eyes refined, and the 10 iris points appended."""
    refined = np.zeros((POINTS, 3))
    refined[:MESH_POINTS] = points
    # The subject's right eye (33 → 133) is the model's own; the left (362 → 263) mirrored.
    for side, corners, mirrored, first in (("right", RIGHT_EYE_CORNERS, False, 468),
                                           ("left", LEFT_EYE_CORNERS[::-1], True, 473)):
        contour, iris = eye(rgb, eye_roi(points, (corners[0], corners[1])), mirrored)
        lids = eye_refinement(side)[:LIDS]
        refined[lids, :2] = contour[:LIDS, :2]
        refined[first:first + 5, :2] = iris[:, :2]
        refined[first:first + 5, 2] = points[lids, 2].mean()
    return refined


def mesh(rgb: np.ndarray, detection: Detection) -> Mesh:
    roi = face_roi(detection)
    points, presence = landmarks(rgb, roi)
    return Mesh(refine(rgb, points).astype(np.float32), presence, roi)
