"""The short-range detector: anchors, weighted NMS, and parity with MediaPipe."""

from __future__ import annotations

import numpy as np
import pytest

from protoface.worker.face.analysis import detector
from protoface.worker.face.analysis.detector import Detection

from .portraits import PORTRAITS, reference, rgb


def test_anchors_cover_both_grids_in_model_order() -> None:
    centres = detector.anchors()
    assert centres.shape == (896, 2)
    # Stride 8: a 16×16 grid, two anchors per cell; stride 16: 8×8, six per cell.
    assert np.allclose(centres[0], centres[1]) and np.allclose(centres[0], [1 / 32, 1 / 32])
    assert np.allclose(centres[511], [31 / 32, 31 / 32])
    assert np.allclose(centres[512:518], [1 / 16, 1 / 16])
    assert np.allclose(centres[-1], [15 / 16, 15 / 16])


def _detection(x0: float, score: float) -> Detection:
    return Detection((x0, 0.0, x0 + 10.0, 10.0), np.full((6, 2), x0), score)


def test_weighted_nms_averages_overlaps_by_score_and_keeps_the_rest() -> None:
    kept = detector.weighted_nms([_detection(0, 0.6), _detection(2, 0.9), _detection(50, 0.7)])
    assert [round(d.score, 3) for d in kept] == [0.9, 0.7]
    assert kept[0].box[0] == pytest.approx((0 * 0.6 + 2 * 0.9) / 1.5)
    assert kept[0].keypoints[0, 0] == pytest.approx((0 * 0.6 + 2 * 0.9) / 1.5)
    assert kept[1].box == pytest.approx((50.0, 0.0, 60.0, 10.0))


@pytest.mark.parametrize("name", list(PORTRAITS))
def test_detections_match_mediapipe(name: str) -> None:
    ours = detector.detect(rgb(name))
    theirs = reference(name)["detections"]
    assert len(ours) == len(theirs) == 1
    assert ours[0].score == pytest.approx(theirs[0]["score"], abs=1e-3)
    assert np.abs(np.array(ours[0].box) - theirs[0]["box"]).max() < 0.5
    assert np.abs(ours[0].keypoints - np.array(theirs[0]["keypoints"])).max() < 0.5


def test_no_face_in_a_flat_image() -> None:
    assert detector.detect(np.full((300, 400, 3), 128, np.uint8)) == []


def test_tiles_overlap_by_half_and_cover_the_letterboxed_image() -> None:
    halves = detector.tiles((600, 1000, 3), 2)
    assert len(halves) == 9 and len(detector.tiles((600, 1000, 3), 3)) == 25
    assert {(t.cx, t.width) for t in halves[:3]} == {(250, 500), (500, 500), (750, 500)}
    assert [t.cy for t in halves[::3]] == [50, 300, 550]  # the square about the centre


def test_a_small_face_in_a_large_image_is_found_by_the_tiles() -> None:
    canvas = np.full((2000, 2000, 3), 120, np.uint8)
    canvas[1500:1800, 200:500] = rgb("grace_hopper")[60:360, 110:410]  # a 190 px face
    assert detector.weighted_nms(detector._raw(canvas, detector._letterbox(canvas.shape))) == []
    found = detector.detect(canvas)
    assert len(found) == 1
    assert 200 < found[0].box[0] < found[0].box[2] < 500 and 1500 < found[0].box[1] < 1800
