"""The inspection overlay: a verdict and a picture of what the analysis saw."""

from __future__ import annotations

import cv2
import numpy as np

from protoface.worker.face.analysis import reasons
from protoface.worker.face.analysis.build import png
from protoface.worker.face.analysis.inspect import ACCEPTED, IRIS_COLOUR, MASK_COLOUR, SIDE, inspect

from .portraits import image_bytes, rgb


def _decoded(data: bytes) -> np.ndarray:
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert bgr is not None
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _share_of(image: np.ndarray, colour: tuple[int, int, int]) -> float:
    return float((np.abs(image.astype(np.int16) - colour).max(axis=-1) < 8).mean())


def test_an_accepted_portrait_is_drawn_with_mesh_mask_and_plate() -> None:
    verdict, data = inspect(image_bytes("grace_hopper"))
    assert verdict == ACCEPTED
    drawn = _decoded(data)
    assert max(drawn.shape[:2]) == SIDE
    assert _share_of(drawn, MASK_COLOUR) > 0.001 and _share_of(drawn, IRIS_COLOUR) > 0.0001
    plain = cv2.resize(rgb("grace_hopper"), (drawn.shape[1], drawn.shape[0]),
                       interpolation=cv2.INTER_CUBIC)
    changed = np.abs(drawn.astype(np.int16) - plain).max(axis=-1) > 30
    assert changed[420:520, 330:560].mean() > 0.1  # the mesh over the face
    corner = drawn[-60:-20, -200:-40]  # the plate inset, bottom right
    assert np.abs(corner.astype(np.int16) - plain[-60:-20, -200:-40]).mean() > 20


def test_a_refusal_before_the_mesh_draws_the_faces_found() -> None:
    face = rgb("grace_hopper")
    verdict, data = inspect(png(np.ascontiguousarray(np.concatenate([face, face], axis=1))))
    assert verdict == reasons.SEVERAL_FACES
    assert _share_of(_decoded(data), (255, 80, 80)) > 0.002  # two boxes


def test_an_undecodable_upload_gets_its_reason() -> None:
    verdict, data = inspect(b"definitely not a picture")
    assert verdict == reasons.UNDECODABLE
    assert _decoded(data).shape == (64, 64, 3)
