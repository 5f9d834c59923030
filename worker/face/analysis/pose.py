"""Head pose (yaw, pitch, roll in degrees) from the mesh, by ``cv2.solvePnP``.

The 3D template (``models/pose_template.json``, see ``models/derive_template.py``) is the
landmark model's own symmetric frontal face. Only the rigid upper face takes part: the
points above the base of the nose, without the lids, so an open mouth or a blink does not
tilt the answer. The camera is a pinhole with a focal length of the image's long side
(about 53° across, a phone or webcam portrait) centred on the image.

Angles are relative to the ray from the camera to the face: zero is "looking into the
lens" even for a face off the image's centre. Signs, as a viewer sees them: yaw > 0 when
the nose points to the image's right, pitch > 0 when it points up, roll > 0 when the head
is tilted clockwise on screen.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import cache

import cv2
import numpy as np

from .loader import data_file
from .topology import eye_refinement

SUBNASALE = 2


@dataclass(frozen=True, slots=True)
class Pose:
    yaw: float
    pitch: float
    roll: float
    rotation: np.ndarray  # (3,) Rodrigues vector, template → camera
    translation: np.ndarray  # (3,) in template units (inter-ocular distances)


@cache
def template() -> np.ndarray:
    points = json.loads(data_file("pose_template.json"))["points"]
    return np.asarray(points, np.float64)


def rigid_points(shape: np.ndarray) -> np.ndarray:
    lids = np.concatenate([eye_refinement("right")[:16], eye_refinement("left")[:16]])
    upper = np.flatnonzero(shape[:, 1] <= shape[SUBNASALE, 1])
    return np.setdiff1d(upper, lids)


def camera(width: int, height: int) -> np.ndarray:
    focal = float(max(width, height))
    return np.array([[focal, 0, width / 2], [0, focal, height / 2], [0, 0, 1]], np.float64)


def _about(axis: int, degrees: float) -> np.ndarray:
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    i, j = [k for k in range(3) if k != axis]
    turn = np.eye(3)
    turn[i, i], turn[i, j], turn[j, i], turn[j, j] = c, -s, s, c
    return turn if axis != 1 else turn.T  # about y, x turns toward z for a positive angle


def rotation_of(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """The template → camera rotation of a pose: roll in the face's plane first, then
    pitch, then yaw (so yaw and pitch are exactly where the nose points)."""
    return np.asarray(_about(1, -yaw) @ _about(0, -pitch) @ _about(2, roll))


def angles(rotation: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in degrees of a template → camera rotation matrix."""
    nose = -rotation[:, 2]  # the face's forward direction, toward the camera when frontal
    yaw = math.degrees(math.atan2(nose[0], -nose[2]))
    pitch = math.degrees(math.atan2(-nose[1], math.hypot(nose[0], nose[2])))
    in_plane = (_about(1, -yaw) @ _about(0, -pitch)).T @ rotation
    return yaw, pitch, math.degrees(math.atan2(in_plane[1, 0], in_plane[0, 0]))


def _guess(image: np.ndarray, model: np.ndarray, k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A frontal start in front of the camera: an unguided solve can land on the mirror
    solution behind it (roll near 180°, negative depth)."""
    spread = np.linalg.norm(image - image.mean(axis=0), axis=1).mean()
    depth = k[0, 0] * np.linalg.norm(model - model.mean(axis=0), axis=1).mean() / spread
    centre = image.mean(axis=0)
    t = np.array([(centre[0] - k[0, 2]) * depth / k[0, 0],
                  (centre[1] - k[1, 2]) * depth / k[1, 1], depth]) - model.mean(axis=0)
    return np.zeros((3, 1)), t.reshape(3, 1)


def _towards_ray(position: np.ndarray) -> np.ndarray:
    """The rotation taking the optical axis onto the ray to ``position``: angles relative
    to it say whether the face looks into the lens, wherever it sits in the frame."""
    ray = position / np.linalg.norm(position)
    axis = np.cross([0.0, 0.0, 1.0], ray)
    turn = math.asin(min(1.0, float(np.linalg.norm(axis))))
    if turn < 1e-9:
        return np.eye(3)
    matrix, _ = cv2.Rodrigues(axis / np.linalg.norm(axis) * turn)
    return np.asarray(matrix)


def solve(points: np.ndarray, width: int, height: int, shape: np.ndarray | None = None) -> Pose:
    """The pose of a (≥468, 2+) mesh in an image of ``width`` × ``height`` pixels.

    ``shape`` replaces the shipped template (only while deriving it)."""
    shape = template() if shape is None else shape
    index = rigid_points(shape)
    model, image, k = shape[index], points[index, :2].astype(np.float64), camera(width, height)
    rvec, tvec = _guess(image, model, k)
    ok, rvec, tvec = cv2.solvePnP(model, image, k, None, rvec, tvec, useExtrinsicGuess=True,
                                  flags=cv2.SOLVEPNP_ITERATIVE)
    if not ok:
        raise ValueError("solvePnP found no pose")
    matrix, _ = cv2.Rodrigues(rvec)
    yaw, pitch, roll = angles(_towards_ray(tvec.reshape(3)).T @ matrix)
    return Pose(yaw, pitch, roll, rvec.reshape(3), tvec.reshape(3))
