"""Each refusal has a stable reason, raised as ``FaceError(reason)``."""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
import pytest

from protoface.worker.face.analysis import FaceError, analyse, decode, reasons, verdict
from protoface.worker.face.analysis.topology import CHIN, FOREHEAD_TOP, eye_refinement

from .portraits import PORTRAITS, image_bytes, rgb
from .synthetic import analysis_of, projected


def _reason(image: np.ndarray) -> str:
    with pytest.raises(FaceError) as refused:
        analyse(image)
    return refused.value.reason


def test_reasons_are_distinct_constant_strings() -> None:
    assert len(set(reasons.REASONS)) == len(reasons.REASONS) == 7
    assert str(reasons.MIN_FACE_PIXELS) in reasons.TOO_SMALL


@pytest.mark.parametrize("name", list(PORTRAITS))
def test_every_test_portrait_is_accepted(name: str) -> None:
    face = analyse(decode(image_bytes(name)))
    assert verdict(face) is None and face.landmarks.shape == (478, 3)


def test_undecodable_bytes() -> None:
    with pytest.raises(FaceError) as refused:
        decode(b"GIF89a not really an image")
    assert refused.value.reason == reasons.UNDECODABLE


def test_no_face() -> None:
    noise = np.random.default_rng(7).integers(0, 256, (400, 300, 3), dtype=np.uint8)
    assert _reason(noise) == reasons.NO_FACE
    assert _reason(np.full((400, 300, 3), 200, np.uint8)) == reasons.NO_FACE


def test_two_faces_of_similar_size() -> None:
    face = rgb("grace_hopper")
    assert _reason(np.ascontiguousarray(np.concatenate([face, face[:, ::-1]], axis=1))) == (
        reasons.SEVERAL_FACES)


def test_a_small_second_face_is_not_counted() -> None:
    face = rgb("grace_hopper")
    small = cv2.resize(face, None, fx=0.3, fy=0.3, interpolation=cv2.INTER_AREA)
    canvas = np.concatenate([face, np.full_like(face, 128)], axis=1)
    canvas[300:300 + small.shape[0], 700:700 + small.shape[1]] = small
    assert verdict(analyse(canvas)) is None


def test_face_too_small() -> None:
    shrunk = cv2.resize(rgb("grace_hopper"), None, fx=0.35, fy=0.35,
                        interpolation=cv2.INTER_AREA)
    assert _reason(shrunk) == reasons.TOO_SMALL


@pytest.mark.parametrize(("pose", "refused"), [((40, 0, 0), True), ((-33, 5, 0), True),
                                               ((0, 30, 0), True), ((0, -28, 10), True),
                                               ((25, 0, 15), False), ((0, 20, 0), False)])
def test_face_turned_too_far(pose: tuple[float, float, float], refused: bool) -> None:
    expected = reasons.TURNED if refused else None
    assert verdict(analysis_of(projected(*pose))) == expected


def test_eyes_closed() -> None:
    face = analyse(rgb("grace_hopper"))
    points = face.landmarks.copy()
    for side in ("right", "left"):
        lids = eye_refinement(side)[:16]  # the eye's own contour: lower lid, then upper
        points[lids, 1] = points[lids[[0, 8]], 1].mean()  # lids meet on the corners' line
    assert verdict(replace(face, landmarks=points)) == reasons.EYES_CLOSED
    assert verdict(face) is None


def test_mouth_wide_open() -> None:
    face = analyse(rgb("grace_hopper"))
    points = face.landmarks.copy()
    height = points[CHIN, 1] - points[FOREHEAD_TOP, 1]
    lower = [14, 87, 317, 178, 402, 17, 84, 314, 181, 405, 152, 148, 377]
    points[lower, 1] += 0.2 * height  # the jaw dropped
    assert verdict(replace(face, landmarks=points)) == reasons.MOUTH_OPEN
    points[lower, 1] -= 0.1 * height  # half as far: slightly open is accepted
    assert verdict(replace(face, landmarks=points)) is None
