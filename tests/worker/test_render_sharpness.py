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
    sigma = sharpness.paint_blur(lambda s: [_blurred(drawn, s)] * 2, portrait, BOX, [BOX, BOX])
    own = sharpness.detail(portrait, BOX)
    assert sharpness.detail(_blurred(drawn, sigma), BOX) / own <= sharpness.TARGET
    # … and no more blur than that takes (to the bisection's step).
    assert sharpness.detail(_blurred(drawn, sigma - 0.15), BOX) / own > sharpness.TARGET


def test_when_no_blur_reaches_the_target_the_least_that_still_helps_is_chosen() -> None:
    # Detail the paint's blur does not touch (the warped photo's own edges).
    portrait = _blurred(_scene(0), 2.5)
    fixed = _scene(1)
    sigma = sharpness.paint_blur(lambda s: [fixed, fixed], portrait, BOX, [BOX, BOX])
    lo, hi = sharpness.SIGMAS
    assert sigma == pytest.approx(lo + (hi - lo) / 2**sharpness.STEPS)


def test_a_soft_drawn_portrait_gets_a_softer_paint_than_a_crisp_photo() -> None:
    assert renderer("av_stock_003").avatar.features.blur > 1.5  # drawn, soft
    assert renderer("grace_hopper").avatar.features.blur < 1.2  # a sharp photograph
