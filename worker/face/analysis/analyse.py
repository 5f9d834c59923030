"""The entry points: find every face, or analyse the one face of a portrait.

``analyse`` refuses a portrait with a :class:`FaceError` whose ``reason`` is a stable
string (``reasons.py``); ``describe`` measures a face without judging it (for overlays
and for rendered frames); ``verdict`` judges a described face.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from . import features, reasons
from .detector import Detection, detect
from .mesh import MIN_PRESENCE, mesh
from .pose import Pose, solve
from .reasons import FaceError


@dataclass(frozen=True, slots=True)
class FaceAnalysis:
    landmarks: np.ndarray  # (478, 3) float32: x, y in pixels; z in pixels, nose < 0 (closer)
    pose: Pose
    box: tuple[float, float, float, float]  # the detector's face box x0, y0, x1, y1 (pixels)
    score: float  # the detector's score
    presence: float  # the landmark model's face score
    width: int  # of the analysed image
    height: int


def decode(image: bytes) -> np.ndarray:
    """RGB pixels of PNG or JPEG bytes, or ``FaceError(UNDECODABLE)``."""
    bgr = cv2.imdecode(np.frombuffer(image, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None or bgr.size == 0:
        raise FaceError(reasons.UNDECODABLE)
    return np.ascontiguousarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))


def detect_faces(rgb: np.ndarray) -> list[Detection]:
    """Every face in the image, best score first."""
    return detect(rgb)


def the_face(found: list[Detection]) -> Detection:
    """The one face worth analysing, or the reason there is none."""
    if not found:
        raise FaceError(reasons.NO_FACE)
    largest = max(found, key=lambda d: d.width)
    if sum(d.width >= reasons.SIMILAR_SIZE * largest.width for d in found) > 1:
        raise FaceError(reasons.SEVERAL_FACES)
    if largest.width < reasons.MIN_FACE_PIXELS:
        raise FaceError(reasons.TOO_SMALL)
    return largest


def describe(rgb: np.ndarray, detection: Detection) -> FaceAnalysis:
    """Mesh and pose of a detected face, unjudged."""
    found = mesh(rgb, detection)
    height, width = rgb.shape[:2]
    return FaceAnalysis(
        landmarks=found.points, pose=solve(found.points, width, height), box=detection.box,
        score=detection.score, presence=found.presence, width=width, height=height,
    )


def verdict(face: FaceAnalysis) -> str | None:
    """The reason to refuse a described face, or ``None`` when it is usable."""
    points = face.landmarks
    if face.presence < MIN_PRESENCE:
        return reasons.NO_FACE
    if abs(face.pose.yaw) > reasons.MAX_YAW or abs(face.pose.pitch) > reasons.MAX_PITCH:
        return reasons.TURNED
    openness = (features.eye_aspect_ratio(points, "right")
                + features.eye_aspect_ratio(points, "left")) / 2
    if openness < reasons.MIN_EYE_ASPECT:
        return reasons.EYES_CLOSED
    if features.lip_gap(points) > reasons.MAX_LIP_GAP * features.face_height(points):
        return reasons.MOUTH_OPEN
    return None


def analyse(rgb: np.ndarray) -> FaceAnalysis:
    """The one usable face of an RGB portrait, or ``FaceError`` with the reason."""
    face = describe(rgb, the_face(detect_faces(rgb)))
    reason = verdict(face)
    if reason is not None:
        raise FaceError(reason)
    return face
