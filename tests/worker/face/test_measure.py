"""Measuring frames: mouth, eyes and pose re-read from the pixels."""

from __future__ import annotations

import numpy as np
import pytest

from protoface.worker.face.analysis import analyse, features
from protoface.worker.face.analysis.measure import measure

from .portraits import rgb


def test_a_closed_mouth_has_almost_no_gap() -> None:
    found = measure(rgb("grace_hopper"))
    assert found is not None
    assert found.lip_gap_share < 0.02 and found.lip_gap < 3
    assert 0.3 < found.mouth_width / features.face_width(found.landmarks) < 0.6


def test_a_smile_with_teeth_has_a_small_gap() -> None:
    found = measure(rgb("astronaut"))
    assert found is not None
    assert 0.03 < found.lip_gap_share < 0.12
    assert found.lip_gap == pytest.approx(found.lip_gap_share * found.face_height)


@pytest.mark.parametrize("name", ["astronaut", "grace_hopper", "synthetic_a", "synthetic_b"])
def test_open_eyes_and_the_analysis_agree(name: str) -> None:
    image = rgb(name)
    found, face = measure(image), analyse(image)
    assert found is not None
    assert min(found.eye_aspect) > 0.2
    assert np.array_equal(found.landmarks, face.landmarks)
    assert found.pose.yaw == pytest.approx(face.pose.yaw)


def test_tracking_follows_a_moving_face_without_the_detector() -> None:
    image = rgb("grace_hopper")
    first = measure(image)
    assert first is not None
    moved = np.ascontiguousarray(np.roll(image, (12, -15), axis=(0, 1)))
    tracked = measure(moved, first)
    assert tracked is not None
    shift = (tracked.landmarks[:, :2] - first.landmarks[:, :2]).mean(axis=0)
    assert shift == pytest.approx((-15, 12), abs=1.5)
    fresh = measure(moved)
    assert fresh is not None
    assert np.abs(tracked.landmarks - fresh.landmarks)[:, :2].mean() < 1.5


def test_no_face_measures_nothing_even_when_tracking() -> None:
    first = measure(rgb("grace_hopper"))
    blank = np.full_like(rgb("grace_hopper"), 90)
    assert measure(blank) is None
    assert measure(blank, first) is None
