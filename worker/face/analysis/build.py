"""Everything the avatar build keeps from the face: analysis, person mask, plate."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .analyse import FaceAnalysis, analyse
from .plate import background_plate
from .segment import person_mask


@dataclass(frozen=True, slots=True)
class FaceBuild:
    analysis: FaceAnalysis
    mask: np.ndarray  # (h, w) uint8, 255 = person, soft edge
    plate: np.ndarray  # (h, w, 3) uint8 RGB, the person removed

    def landmarks_bytes(self) -> bytes:
        """The (478, 3) landmarks as little-endian float32, row by row."""
        return np.ascontiguousarray(self.analysis.landmarks, "<f4").tobytes()


def build(rgb: np.ndarray) -> FaceBuild:
    """Analyse a portrait (``FaceError`` if refused), then mask and plate it."""
    face = analyse(rgb)
    mask = person_mask(rgb, face.landmarks)
    return FaceBuild(face, mask, background_plate(rgb, mask, face.landmarks))


def landmarks_from_bytes(data: bytes) -> np.ndarray:
    """The inverse of :meth:`FaceBuild.landmarks_bytes`: a (478, 3) float32 array."""
    return np.frombuffer(data, "<f4").reshape(-1, 3).astype(np.float32)


def png(pixels: np.ndarray) -> bytes:
    """PNG bytes of an RGB or single-channel uint8 image."""
    image = cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR) if pixels.ndim == 3 else pixels
    ok, data = cv2.imencode(".png", image)
    if not ok:
        raise ValueError("PNG encoding failed")
    return data.tobytes()
