"""The person mask and the background plate."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from protoface.worker.face.analysis import analyse, features
from protoface.worker.face.analysis.plate import background_plate, hole
from protoface.worker.face.analysis.segment import FEATHER, face_oval, person_mask

from .portraits import rgb


def _background(height: int, width: int) -> np.ndarray:
    """A known backdrop: a green-to-teal gradient with a slow ripple, unlike any person."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    ripple = 12 * np.sin(x / 37.0) * np.cos(y / 53.0)
    red = 40 + 30 * x / width + ripple
    green = 150 + 50 * y / height - ripple
    blue = 90 + 90 * x / width
    return np.asarray(np.clip(np.stack([red, green, blue], axis=-1), 0, 255), np.uint8)


def _composite() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Grace Hopper cut out by her own mask and laid over the known backdrop."""
    person = rgb("grace_hopper")
    alpha = person_mask(person, analyse(person).landmarks)[..., None] / 255.0
    backdrop = _background(*person.shape[:2])
    image = np.round(alpha * person + (1 - alpha) * backdrop).astype(np.uint8)
    return np.ascontiguousarray(image), backdrop, alpha[..., 0]


@pytest.mark.parametrize("name", ["astronaut", "grace_hopper", "synthetic_a", "synthetic_b"])
def test_mask_covers_the_face_oval_and_not_the_corners(name: str) -> None:
    image = rgb(name)
    points = analyse(image).landmarks
    mask = person_mask(image, points)
    assert mask.shape == image.shape[:2] and mask.dtype == np.uint8
    rim = int(np.ceil(3 * FEATHER * features.face_width(points)))  # 3 σ of the feather
    inner = cv2.erode(face_oval(points, image.shape), np.ones((2 * rim + 1,) * 2, np.uint8))
    assert (mask[inner > 0] >= 250).all()
    assert (mask[face_oval(points, image.shape) > 0] >= 127).mean() > 0.99
    corner = max(4, image.shape[0] // 20)
    for rows, cols in [(slice(0, corner), slice(0, corner)),
                       (slice(0, corner), slice(-corner, None))]:
        assert mask[rows, cols].max() == 0
    edge = (mask > 10) & (mask < 245)
    assert edge.sum() > 0.5 * np.count_nonzero(cv2.Canny(mask, 100, 200))  # a soft rim


def test_mask_finds_the_person_on_a_new_background() -> None:
    image, _, alpha = _composite()
    mask = person_mask(image, analyse(image).landmarks) > 127
    truth = alpha > 0.5
    assert (mask & truth).sum() / (mask | truth).sum() > 0.93


def test_plate_keeps_the_background_and_removes_the_person() -> None:
    image, backdrop, _ = _composite()
    points = analyse(image).landmarks
    mask = person_mask(image, points)
    plate = background_plate(image, mask, points)
    replaced = hole(mask, points) > 0
    assert np.array_equal(plate[~replaced], image[~replaced])
    # The band a moving head can uncover: 5 % of the face width either side of the outline.
    reach = round(0.05 * features.face_width(points))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * reach + 1, 2 * reach + 1))
    person = (mask > 127).astype(np.uint8)
    band = (cv2.dilate(person, kernel) > 0) & (cv2.erode(person, kernel) == 0)
    error = np.abs(plate.astype(np.int16) - backdrop).max(axis=-1)[band]
    assert error.mean() < 10 and np.percentile(error, 95) < 25
    inside = band & (person > 0)
    was = np.abs(image.astype(np.int16) - backdrop).max(axis=-1)[inside]
    left = np.abs(plate.astype(np.int16) - backdrop).max(axis=-1)[inside]
    assert left.mean() < 0.15 * was.mean()  # no person colours left at the rim
