"""The test portraits and MediaPipe's recorded output on them (tests/data/faces)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[3]
FACES = ROOT / "tests" / "data" / "faces"
PORTRAITS = {
    "astronaut": ROOT / "worker" / "portraits" / "astronaut.png",
    "synthetic_a": ROOT / "worker" / "portraits" / "synthetic_a.png",
    "synthetic_b": ROOT / "worker" / "portraits" / "synthetic_b.png",
    "astronaut_tilted": FACES / "astronaut_tilted.png",
    "grace_hopper": FACES / "grace_hopper.jpg",
    "grace_hopper_mirrored": FACES / "grace_hopper_mirrored.jpg",
}


@cache
def _rgb(name: str) -> np.ndarray:
    bgr = cv2.imread(str(PORTRAITS[name]))
    assert bgr is not None, name
    image = np.ascontiguousarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    image.setflags(write=False)
    return image


def rgb(name: str) -> np.ndarray:
    return _rgb(name)


def image_bytes(name: str) -> bytes:
    return PORTRAITS[name].read_bytes()


@cache
def reference(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FACES / f"{name}.json").read_text())
    return data
