"""Landmarks against MediaPipe 0.10.14's own output (recorded by record_mediapipe.py).

The 468-point mesh is MediaPipe's face_landmark model run on MediaPipe's crop: it must
agree with ``refine_landmarks=False`` to a hundredth of a percent. MediaPipe's 478 points
(``refine_landmarks=True``) come from another model, face_landmark_with_attention, whose
custom ops LiteRT cannot run; ours refine the eyes with the iris model instead. The irises
agree within 1 % of the face width. The whole mesh can agree only as well as MediaPipe's
two models agree with each other (0.9–1.4 % of the face width on these portraits): it is
held to that gap plus 0.1 %, and the points outside the eyes to the gap plus 0.35 %.
"""

from __future__ import annotations

import numpy as np
import pytest

from protoface.worker.face.analysis import analyse, describe, detect_faces
from protoface.worker.face.analysis.mesh import face_roi, landmarks
from protoface.worker.face.analysis.topology import CHEEKS, eye_refinement

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
    plain = np.array(reference(name)["mesh468"])
    refined = np.array(reference(name)["mesh478"])
    width = _width(refined)
    ours = describe(rgb(name), detect_faces(rgb(name))[0]).landmarks
    assert ours.shape == (478, 3) and ours.dtype == np.float32
    assert _error(ours[468:], refined[468:], width) < 0.01  # the irises
    models_gap = _error(plain, refined[:468], width)
    eyes = np.concatenate([eye_refinement("right"), eye_refinement("left")])
    rest = np.setdiff1d(np.arange(468), eyes)
    assert _error(ours[rest], refined[rest], width) < models_gap + 0.0035
    assert _error(ours, refined, width) < models_gap + 0.001


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
