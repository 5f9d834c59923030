"""MediaPipe's short-range face detector: SSD anchors, box decoding, weighted NMS.

The options are those of mediapipe/modules/face_detection/face_detection_short_range.pbtxt
(0.10.14): a 128² letterboxed input in [-1, 1], 896 anchors from strides 8, 16, 16, 16,
scores through a clipped sigmoid kept from 0.5, then weighted non-maximum suppression
at IoU 0.3. Keypoints: 0 and 1 the eyes (image left, image right), 2 the nose tip,
3 the mouth, 4 and 5 the ear tragions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache

import cv2
import numpy as np

from .geometry import Roi, crop
from .loader import model

SIZE = 128
STRIDES = (8, 16, 16, 16)
MIN_SCORE = 0.5
NMS_IOU = 0.3


@dataclass(frozen=True, slots=True)
class Detection:
    """One face: box corners and six keypoints in image pixels, and the model's score."""

    box: tuple[float, float, float, float]  # x0, y0, x1, y1
    keypoints: np.ndarray  # (6, 2)
    score: float

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]


@cache
def anchors() -> np.ndarray:
    """Anchor centres (896, 2) in the order the model emits boxes (SsdAnchorsCalculator).

    Fixed-size anchors (the graph's scales 0.1484375…0.75 do not reach them): only the
    centres matter, repeated once per aspect ratio and
    interpolated scale of every layer sharing a stride (2 at stride 8, 6 at stride 16).
    """
    centres: list[np.ndarray] = []
    layer = 0
    while layer < len(STRIDES):
        same = [i for i in range(layer, len(STRIDES)) if STRIDES[i] == STRIDES[layer]]
        per_cell = 2 * len(same)
        side = math.ceil(SIZE / STRIDES[layer])
        ys, xs = np.meshgrid(np.arange(side), np.arange(side), indexing="ij")
        grid = np.stack([(xs + 0.5) / side, (ys + 0.5) / side], axis=-1).reshape(-1, 2)
        centres.append(np.repeat(grid, per_cell, axis=0))
        layer = same[-1] + 1
    return np.concatenate(centres).astype(np.float64)


def _letterbox(shape: tuple[int, ...]) -> Roi:
    """The whole image padded to a square about its centre (keep_aspect_ratio)."""
    h, w = shape[:2]
    side = float(max(w, h))
    return Roi(w / 2, h / 2, side, side)


def _decode(raw: np.ndarray, logits: np.ndarray, roi: Roi) -> list[Detection]:
    scores = 1 / (1 + np.exp(-np.clip(logits.astype(np.float64), -100, 100)))
    keep = np.flatnonzero(scores >= MIN_SCORE)
    found: list[Detection] = []
    for i in keep:
        values = raw[i].astype(np.float64) / SIZE
        ax, ay = anchors()[i]
        cx, cy, w, h = values[0] + ax, values[1] + ay, values[2], values[3]
        points = values[4:].reshape(6, 2) + np.array([ax, ay])
        to_px = np.array([roi.width, roi.height])
        origin = np.array([roi.cx - roi.width / 2, roi.cy - roi.height / 2])
        corners = np.array([[cx - w / 2, cy - h / 2], [cx + w / 2, cy + h / 2]]) * to_px + origin
        found.append(Detection((*corners[0], *corners[1]), points * to_px + origin,
                               float(scores[i])))
    return found


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def weighted_nms(found: list[Detection]) -> list[Detection]:
    """MediaPipe's WEIGHTED suppression: each kept face is the score-weighted mean of the
    detections overlapping the best remaining one (its score stays the best's)."""
    remaining = sorted(found, key=lambda d: -d.score)
    kept: list[Detection] = []
    while remaining:
        best = remaining[0]
        group = [d for d in remaining if _iou(d.box, best.box) > NMS_IOU]
        remaining = [d for d in remaining if _iou(d.box, best.box) <= NMS_IOU]
        weights = np.array([d.score for d in group])
        box = np.average([d.box for d in group], axis=0, weights=weights)
        points = np.average([d.keypoints for d in group], axis=0, weights=weights)
        kept.append(Detection((box[0], box[1], box[2], box[3]), points, best.score))
    return kept


def _raw(rgb: np.ndarray, roi: Roi) -> list[Detection]:
    tensor = crop(rgb, roi, SIZE, cv2.BORDER_CONSTANT).astype(np.float32) / 127.5 - 1.0
    out = model("face_detection_short_range.tflite").run(tensor)
    return _decode(out[896 * 16].reshape(896, 16), out[896], roi)


def tiles(shape: tuple[int, ...], parts: int) -> list[Roi]:
    """Overlapping squares of 1/``parts`` of the long side, half a square apart, over the
    (letterboxed) image: 3×3 of them for halves, 5×5 for thirds."""
    whole = _letterbox(shape)
    side = whole.width / parts
    offsets = [(k - (parts - 1)) * side / 2 for k in range(2 * parts - 1)]
    return [Roi(whole.cx + dx, whole.cy + dy, side, side) for dy in offsets for dx in offsets]


def detect(rgb: np.ndarray) -> list[Detection]:
    """Every face the detector finds in an RGB image, best score first.

    The short-range model misses faces under about a tenth of its input; when the whole
    image shows none, it looks again at half-size tiles, then at third-size ones, so a
    small face in a large photograph is found (and refused as too small, not as absent).
    """
    found = weighted_nms(_raw(rgb, _letterbox(rgb.shape)))
    for parts in (2, 3):
        if found:
            break
        found = weighted_nms([d for roi in tiles(rgb.shape, parts) for d in _raw(rgb, roi)])
    return found
