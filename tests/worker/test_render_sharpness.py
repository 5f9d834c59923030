"""The painted mouth is drawn as sharp as the portrait's own (``worker.render.sharpness``)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from protoface.worker.render import sharpness
from tests.worker.test_render_measured import renderer

BOX = (slice(8, 56), slice(8, 56))


def _scene(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)


def _blurred(frame: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(frame, (0, 0), sigma)


def test_the_blur_chosen_brings_the_detail_to_the_target() -> None:
    portrait = _blurred(_scene(0), 1.5)
    drawn = _scene(1)
    sigma, = sharpness.paint_blurs(lambda s: [_blurred(drawn, s[0])], portrait, BOX, [BOX], 100.0)
    own = sharpness.detail(portrait, BOX)
    assert sharpness.detail(_blurred(drawn, sigma), BOX) / own <= sharpness.TARGET
    # … and no more blur than that takes (to the bisection's step).
    assert sharpness.detail(_blurred(drawn, sigma - 0.15), BOX) / own > sharpness.TARGET


def test_each_opening_gets_the_blur_its_own_detail_needs() -> None:
    # Bisected together: a crisper drawing (the wide opening's teeth against the cavity)
    # needs more blur than a softer one (a narrow gap, mostly the lips' own edges).
    portrait = _blurred(_scene(0), 1.5)
    narrow, wide = _blurred(_scene(1), 0.6), _scene(2)
    soft, crisp = sharpness.paint_blurs(
        lambda s: [_blurred(narrow, s[0]), _blurred(wide, s[1])], portrait, BOX, [BOX, BOX], 100.0)
    assert soft < crisp
    own = sharpness.detail(portrait, BOX)
    for frame, sigma in ((narrow, soft), (wide, crisp)):
        assert sharpness.detail(_blurred(frame, sigma), BOX) / own <= sharpness.TARGET


def test_when_no_blur_reaches_the_target_the_least_that_still_helps_is_chosen() -> None:
    # Detail the paint's blur does not touch (the warped photo's own edges).
    portrait = _blurred(_scene(0), 2.5)
    fixed = _scene(1)
    sigma, = sharpness.paint_blurs(lambda s: [fixed], portrait, BOX, [BOX], 100.0)
    lo, hi = sharpness.SIGMAS
    assert sigma == pytest.approx(lo + (hi - lo) / 2**sharpness.STEPS)


def test_the_blur_stays_within_a_share_of_the_mouths_width() -> None:
    # A crisp drawing wants more blur than a small mouth can take without its opening
    # washing out: it gets the most the mouth's width allows.
    portrait = _blurred(_scene(0), 2.5)
    drawn = _scene(1)
    sigma, = sharpness.paint_blurs(lambda s: [_blurred(drawn, s[0])], portrait, BOX, [BOX], 10.0)
    assert sigma == pytest.approx(sharpness.MOUTH_SHARE * 10.0)


def test_a_frame_takes_the_blur_of_its_opening() -> None:
    blurs = ((0.2, 1.0), (0.5, 2.0))
    assert sharpness.at(blurs, 0.35) == pytest.approx(1.5)
    assert sharpness.at(blurs, 0.0) == 1.0  # held outside the openings calibrated
    assert sharpness.at(blurs, 0.9) == 2.0


def test_a_soft_drawn_portrait_gets_a_softer_paint_than_a_crisp_photo() -> None:
    drawn = renderer("av_stock_003").avatar.features.blur  # drawn, soft
    photo = renderer("grace_hopper").avatar.features.blur  # a sharp photograph
    # Where the paint is most of what shows: a syllable's opening and the widest (at the
    # narrowest, the lips' own edges decide).
    for k in (1, -1):
        assert drawn[k][1] > photo[k][1] + 0.3
