"""478 landmarks in a rotated 192² face crop: the model of MediaPipe's ``refine_landmarks``.

As in MediaPipe 0.10.14 (face_landmark_front_cpu.pbtxt, ``with_attention``): the face crop
is the detection box squared and scaled by 1.5, turned so the eyes are level
(face_detection_front_detection_to_roi.pbtxt). face_landmark_with_attention, run by our
torch port (``attention.py``), predicts the 468-point mesh and, from crops of its own
features, the lips (80 points), each eye's contours (71) and each iris (5). They are merged
as tensors_to_face_landmarks_with_attention.pbtxt does: the lips' and eyes' x, y replace
the mesh's (their z stays the mesh's), and each iris takes the mean depth of its eye's 16
lid points.

``landmarks`` still runs the plain face_landmark model on LiteRT (``refine_landmarks=False``):
the pose template is derived from it (``models/derive_template.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .attention import attention_model
from .detector import Detection
from .geometry import Roi, crop, project, roi_of_box, rotation_between
from .loader import model
from .topology import MESH_POINTS, POINTS, eye_refinement, lips_refinement

FACE_SIZE = 192
FACE_SCALE = 1.5
LIDS = 16  # an eye's own contour: the first of its 71 refined points
MIN_PRESENCE = 0.5  # below this the landmark model says the crop holds no face


@dataclass(frozen=True, slots=True)
class Mesh:
    points: np.ndarray  # (478, 3) float32: x, y in pixels, z in pixels relative to the face
    presence: float  # the landmark model's face score
    roi: Roi


def face_roi(detection: Detection) -> Roi:
    rotation = rotation_between(detection.keypoints[0], detection.keypoints[1])
    return roi_of_box(*detection.box, rotation).scaled(FACE_SCALE)


def _face_crop(rgb: np.ndarray, roi: Roi) -> np.ndarray:
    return crop(rgb, roi, FACE_SIZE, cv2.BORDER_REPLICATE).astype(np.float32) / 255.0


def _presence(logit: float) -> float:
    return float(1 / (1 + np.exp(-logit)))


def landmarks(rgb: np.ndarray, roi: Roi) -> tuple[np.ndarray, float]:
    """The plain model's 468 mesh points in image pixels, and its face presence score."""
    out = model("face_landmark.tflite").run(_face_crop(rgb, roi))
    unit = out[MESH_POINTS * 3].reshape(MESH_POINTS, 3).astype(np.float64) / FACE_SIZE
    return project(unit, roi), _presence(float(out[1][0]))


def refined_landmarks(rgb: np.ndarray, roi: Roi) -> tuple[np.ndarray, float]:
    """The 478 refined points in image pixels, and the face presence score."""
    out = attention_model().run(_face_crop(rgb, roi))
    unit = np.zeros((POINTS, 3))
    unit[:MESH_POINTS] = out["output_mesh_identity"].reshape(MESH_POINTS, 3)
    # The heads' "left" and "right" are the image's: its left eye is the subject's right,
    # whose iris is 468..472 in MediaPipe's order.
    for head, index in (("output_lips", lips_refinement()),
                        ("output_left_eye", eye_refinement("right")),
                        ("output_right_eye", eye_refinement("left"))):
        unit[index, :2] = out[head].reshape(-1, 2)
    for head, first, side in (("output_left_iris", 468, "right"),
                              ("output_right_iris", 473, "left")):
        unit[first:first + 5, :2] = out[head].reshape(5, 2)
        unit[first:first + 5, 2] = unit[eye_refinement(side)[:LIDS], 2].mean()
    return project(unit / FACE_SIZE, roi), _presence(float(out["conv_faceflag"][0]))


def mesh(rgb: np.ndarray, detection: Detection) -> Mesh:
    roi = face_roi(detection)
    points, presence = refined_landmarks(rgb, roi)
    return Mesh(points.astype(np.float32), presence, roi)
