"""The ``mock`` renderer: a cheap, deterministic test pattern with no model loaded.

A face-like pattern whose mouth opens with the audio energy, so tests and the
bring-up runtime can see lip movement in pixels. Same inputs, same frames.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from protoface.worker.face.features import FaceParams


class MockRenderer:
    def __init__(self, width: int, height: int, seed: int = 0) -> None:
        self.width = width
        self.height = height
        self._base = self._background(seed)
        self.mouth_box = self._mouth_region()

    def _background(self, seed: int) -> np.ndarray:
        h, w = self.height, self.width
        ramp = np.linspace(40, 90, h, dtype=np.float32)[:, None]
        tint = np.array([1.0, 0.9 + 0.05 * (seed % 3), 1.1], dtype=np.float32)
        frame = (ramp[..., None] * tint).repeat(w, axis=1).astype(np.uint8)
        cy, cx = h // 2, w // 2
        ys, xs = np.mgrid[0:h, 0:w]
        face = ((ys - cy) / (0.42 * h)) ** 2 + ((xs - cx) / (0.3 * w)) ** 2 <= 1.0
        frame[face] = (224, 182, 150)
        for ex in (cx - int(0.12 * w), cx + int(0.12 * w)):
            eye = ((ys - (cy - int(0.1 * h))) ** 2 + (xs - ex) ** 2) <= (0.03 * min(h, w)) ** 2
            frame[eye] = (40, 40, 60)
        return frame

    def _mouth_region(self) -> tuple[int, int, int, int]:
        """(top, bottom, left, right) of the area the mouth can occupy."""
        h, w = self.height, self.width
        cy, cx = h // 2 + int(0.17 * h), w // 2
        half_w, max_half_h = int(0.1 * w), int(0.08 * h)
        return cy - max_half_h, cy + max_half_h, cx - half_w, cx + half_w

    def render(self, batch: Sequence[FaceParams]) -> list[np.ndarray]:
        return [self._one(p) for p in batch]

    def _one(self, params: FaceParams) -> np.ndarray:
        frame = self._base.copy()
        top, bottom, left, right = self.mouth_box
        cy = (top + bottom) // 2
        half_h = max(1, int(params.mouth_open * (bottom - top) / 2))
        frame[cy - 1 : cy + 1, left:right] = (150, 60, 60)  # closed lips
        if params.mouth_open > 0:
            frame[cy - half_h : cy + half_h, left:right] = (70, 20, 30)  # open mouth
        return frame
