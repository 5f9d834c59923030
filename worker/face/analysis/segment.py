"""The person mask (head, hair, neck, shoulders) with a soft edge.

MediaPipe's selfie segmentation (256² general model) gives a person probability; it is
thresholded at one half, joined with the filled face oval of the mesh (so a face the
segmenter doubts, e.g. against a skin-coloured wall, is never cut), reduced to the
pieces that touch the face (stray blobs elsewhere are someone else or clutter), closed
(holes inside the person filled) and feathered by a Gaussian of 1.5 % of the face width.
"""

from __future__ import annotations

import cv2
import numpy as np

from . import features
from .loader import model
from .topology import loop

SIZE = 256
FEATHER = 0.015  # Gaussian sigma of the soft edge, in face widths


def probability(rgb: np.ndarray) -> np.ndarray:
    """Person probability per pixel, float32 in [0, 1], at the image's size."""
    small = cv2.resize(rgb, (SIZE, SIZE), interpolation=cv2.INTER_AREA)
    out = model("selfie_segmentation.tflite").run(small.astype(np.float32) / 255.0)
    grid = np.clip(out[SIZE * SIZE].reshape(SIZE, SIZE), 0.0, 1.0)
    height, width = rgb.shape[:2]
    return np.asarray(cv2.resize(grid, (width, height), interpolation=cv2.INTER_LINEAR))


def face_oval(points: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """The filled face oval (uint8 0/1) at the image's size."""
    polygon = np.round(points[list(loop("face_oval")), :2]).astype(np.int32)
    filled = np.zeros(shape[:2], np.uint8)
    cv2.fillPoly(filled, [polygon], 1)
    return filled


def _touching(binary: np.ndarray, seed: np.ndarray) -> np.ndarray:
    _, labels = cv2.connectedComponents(binary, connectivity=8)
    hit = np.unique(labels[(seed > 0) & (binary > 0)])
    return np.asarray(np.isin(labels, hit[hit > 0]), np.uint8)


def _without_holes(binary: np.ndarray) -> np.ndarray:
    """Fill background regions that do not reach the image border."""
    outside = np.pad(1 - binary, 1, constant_values=1)
    mask = np.zeros((outside.shape[0] + 2, outside.shape[1] + 2), np.uint8)
    cv2.floodFill(outside, mask, (0, 0), 2)
    return np.asarray(outside[1:-1, 1:-1] != 2, np.uint8)


def person_mask(rgb: np.ndarray, points: np.ndarray) -> np.ndarray:
    """The soft person mask, uint8 (255 = person), for a portrait and its mesh."""
    oval = face_oval(points, rgb.shape)
    hard = ((probability(rgb) > 0.5) | (oval > 0)).astype(np.uint8)
    hard = _without_holes(_touching(hard, oval))
    sigma = max(1.0, FEATHER * features.face_width(points))
    soft = cv2.GaussianBlur(hard.astype(np.float32), (0, 0), sigma)
    return np.asarray(np.round(soft * 255), np.uint8)
