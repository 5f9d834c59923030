"""Generate the synthetic stock portraits (CC0, made by the project) deterministically.

    python -m worker.portraits.generate   # rewrites synthetic_a.png and synthetic_b.png

Each portrait is drawn from soft-edged shapes with shading: a background gradient, hair,
neck and shoulders, a lit skin oval, eye sockets with whites, irises and pupils, brows, a
shaded nose, lips, and film grain from a seeded generator, so OpenCV's Haar face cascade
finds exactly one face in it. Same code, same bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

SIZE = 512
Colour = tuple[float, float, float]  # RGB, 0…255


@dataclass(frozen=True)
class Look:
    name: str
    seed: int
    skin: Colour
    hair: Colour
    iris: Colour
    lips: Colour
    backdrop: tuple[Colour, Colour]
    shirt: Colour
    face_width: float  # share of the image width
    long_hair: bool


LOOKS = (
    Look("synthetic_a.png", 11, (214, 168, 136), (58, 38, 26), (84, 110, 70), (172, 92, 92),
         ((70, 96, 120), (150, 170, 190)), (40, 70, 120), 0.30, False),
    Look("synthetic_b.png", 23, (150, 104, 78), (24, 20, 18), (60, 40, 26), (130, 66, 66),
         ((150, 120, 90), (220, 205, 180)), (150, 40, 50), 0.29, True),
)


def _ellipse(ys: np.ndarray, xs: np.ndarray, cy: float, cx: float, ry: float, rx: float,
             soft: float = 1.5) -> np.ndarray:
    """A soft-edged filled ellipse: 1 inside, 0 outside, a ``soft``-pixel ramp between."""
    r = np.sqrt(((ys - cy) / ry) ** 2 + ((xs - cx) / rx) ** 2)
    return np.clip((1.0 - r) * min(ry, rx) / soft + 0.5, 0.0, 1.0)


def _paint(img: np.ndarray, mask: np.ndarray, colour: Colour | np.ndarray) -> None:
    img[:] = img * (1 - mask[..., None]) + np.asarray(colour, np.float32) * mask[..., None]


def _shade(img: np.ndarray, mask: np.ndarray, factor: float) -> None:
    """Darken (factor < 1) or lighten (> 1) where ``mask`` is set."""
    img[:] = img * (1 + (factor - 1) * mask[..., None])


def draw(look: Look) -> np.ndarray:
    """The portrait as an RGB uint8 image."""
    ys, xs = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    top, bottom = (np.asarray(c, np.float32) for c in look.backdrop)
    t = (ys / SIZE)[..., None]
    img = top * (1 - t) + bottom * t
    cx, cy = SIZE / 2, SIZE * 0.46
    rx, ry = SIZE * look.face_width / 2, SIZE * look.face_width * 0.68
    skin = np.asarray(look.skin, np.float32)
    # Shoulders, neck, then hair behind the head.
    _paint(img, _ellipse(ys, xs, SIZE * 1.08, cx, SIZE * 0.30, SIZE * 0.46, 3), look.shirt)
    neck = np.clip((1 - np.abs(xs - cx) / (rx * 0.55)) * 6, 0, 1) * (ys > cy) * (ys < SIZE * 0.86)
    _paint(img, neck, skin * 0.80)
    hair_ry = ry * (1.70 if look.long_hair else 1.25)
    _paint(img, _ellipse(ys, xs, cy - ry * 1.45 + hair_ry, cx, hair_ry, rx * 1.25, 4), look.hair)
    # Face oval, lit from the upper left: brighter there, darker toward the jaw and right.
    face = _ellipse(ys, xs, cy, cx, ry, rx, 2.5)
    light = (1.06 - 0.18 * ((xs - cx + rx * 0.4) / (2 * rx)) ** 2
             - 0.16 * ((ys - cy + ry * 0.3) / (2 * ry)) ** 2)
    _paint(img, face, skin[None, None, :] * light[..., None])
    _paint(img, _ellipse(ys, xs, cy - ry * 0.95, cx, ry * 0.50, rx * 1.02, 4), look.hair)  # fringe
    eye_y, eye_dx = cy - ry * 0.12, rx * 0.40
    for side in (-1, 1):
        ex = cx + side * eye_dx
        _shade(img, _ellipse(ys, xs, eye_y - 4, ex, ry * 0.16, rx * 0.30, 10), 0.70)  # socket
        _paint(img, _ellipse(ys, xs, eye_y - ry * 0.24, ex, ry * 0.035, rx * 0.24, 2), look.hair)
        _paint(img, _ellipse(ys, xs, eye_y, ex, ry * 0.065, rx * 0.19, 1.2), (236, 232, 226))
        _paint(img, _ellipse(ys, xs, eye_y, ex, ry * 0.062, ry * 0.062, 1.0), look.iris)
        _paint(img, _ellipse(ys, xs, eye_y, ex, ry * 0.028, ry * 0.028, 1.0), (12, 10, 10))
        _paint(img, _ellipse(ys, xs, eye_y - 3, ex + 3, 2.2, 2.2, 1.0), (250, 250, 250))  # glint
        _shade(img, _ellipse(ys, xs, eye_y - ry * 0.07, ex, ry * 0.025, rx * 0.2, 1.5), 0.55)  # lid
    # Nose: a lit bridge, shaded sides and dark nostrils.
    nose_y = cy + ry * 0.22
    _shade(img, _ellipse(ys, xs, nose_y - ry * 0.12, cx + rx * 0.08, ry * 0.26, rx * 0.07, 6), 0.84)
    _shade(img, _ellipse(ys, xs, nose_y - ry * 0.16, cx - rx * 0.04, ry * 0.24, rx * 0.04, 5), 1.08)
    for side in (-1, 1):
        nostril = _ellipse(ys, xs, nose_y + 2, cx + side * rx * 0.10, ry * 0.025, rx * 0.05, 2)
        _shade(img, nostril, 0.45)
    # Lips: the upper one darker, a dark line between, a highlight on the lower.
    mouth_y = cy + ry * 0.50
    lips = np.asarray(look.lips, np.float32)
    _paint(img, _ellipse(ys, xs, mouth_y - ry * 0.03, cx, ry * 0.045, rx * 0.34, 1.5), lips * 0.85)
    _paint(img, _ellipse(ys, xs, mouth_y + ry * 0.045, cx, ry * 0.055, rx * 0.31, 1.5), lips)
    _paint(img, _ellipse(ys, xs, mouth_y + 0.5, cx, 1.4, rx * 0.33, 1.0), lips * 0.35)
    _shade(img, _ellipse(ys, xs, mouth_y + ry * 0.06, cx, ry * 0.018, rx * 0.12, 2), 1.15)
    _shade(img, _ellipse(ys, xs, mouth_y + ry * 0.22, cx, ry * 0.06, rx * 0.18, 8), 0.92)  # chin
    grain = np.random.default_rng(look.seed).normal(0, 3.0, img.shape).astype(np.float32)
    img = cv2.GaussianBlur(img, (3, 3), 0.7) + grain
    return np.asarray(np.clip(img, 0, 255).round(), np.uint8)


def main() -> None:
    here = Path(__file__).parent
    for look in LOOKS:
        cv2.imwrite(str(here / look.name), cv2.cvtColor(draw(look), cv2.COLOR_RGB2BGR))


if __name__ == "__main__":
    main()
