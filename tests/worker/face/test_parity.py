"""Landmarks against MediaPipe 0.10.14's own output (recorded by record_mediapipe.py).

The 468-point mesh is MediaPipe's face_landmark model run on MediaPipe's crop: it must
agree with ``refine_landmarks=False`` to a hundredth of a percent of the face width. The
478 points are MediaPipe's ``refine_landmarks=True`` model, face_landmark_with_attention,
run by our torch port: the whole 478, and the irises alone, must agree as closely (the
issue asked for 1 %), and so must the depth.
"""

from __future__ import annotations

import numpy as np
import pytest

from protoface.worker.face.analysis import analyse, describe, detect_faces
from protoface.worker.face.analysis.mesh import face_roi, landmarks
from protoface.worker.face.analysis.topology import CHEEKS, eye_refinement, lips_refinement

from .portraits import PORTRAITS, reference, rgb


def _width(points: np.ndarray) -> float:
    return float(np.linalg.norm(points[CHEEKS[0], :2] - points[CHEEKS[1], :2]))


def _error(ours: np.ndarray, theirs: np.ndarray, width: float) -> float:
    """Mean 2D distance as a share of the face width."""
    return float(np.linalg.norm(ours[:, :2] - theirs[:, :2], axis=1).mean() / width)


@pytest.mark.parametrize("name", list(PORTRAITS))
def test_468_mesh_matches_mediapipe(name: str) -> None:
    theirs = np.array(reference(name)["mesh468"])
    image = rgb(name)
    ours, presence = landmarks(image, face_roi(detect_faces(image)[0]))
    assert presence > 0.9
    assert _error(ours, theirs, _width(theirs)) < 1e-4
    assert np.abs(ours[:, 2] - theirs[:, 2]).mean() < 0.05  # depth, in pixels


@pytest.mark.parametrize("name", list(PORTRAITS))
def test_478_landmarks_match_mediapipe_refined(name: str) -> None:
    theirs = np.array(reference(name)["mesh478"])
    width = _width(theirs)
    ours = describe(rgb(name), detect_faces(rgb(name))[0]).landmarks
    assert ours.shape == (478, 3) and ours.dtype == np.float32
    assert _error(ours, theirs, width) < 1e-4
    assert _error(ours[468:], theirs[468:], width) < 1e-4  # the irises
    refined = np.concatenate([lips_refinement(), eye_refinement("right"),
                              eye_refinement("left")])
    assert _error(ours[refined], theirs[refined], width) < 1e-4
    assert np.abs(ours[:, 2] - theirs[:, 2]).mean() < 0.05  # depth, in pixels


def test_iris_order_is_mediapipes() -> None:
    """468..472 ring the subject's right iris (image left), 473..477 the left; in each, the
    second point is on the image's right and the third above (MediaPipe's order)."""
    points = analyse(rgb("grace_hopper")).landmarks
    for centre in (468, 473):
        ring = points[centre + 1 : centre + 5, :2] - points[centre, :2]
        assert ring[0, 0] > 0 and ring[1, 1] < 0 and ring[2, 0] < 0 and ring[3, 1] > 0
    assert points[468, 0] < points[473, 0]
    assert np.linalg.norm(points[468, :2] - points[33, :2]) < np.linalg.norm(
        points[468, :2] - points[263, :2])
