"""The eyes' fields, from the mesh's lid contours: blinks warp the lids, gaze moves irises.

A blink is not painted: per column of each eye, the upper lid's skin (a band above the
lid contour, lashes at its foot) is stretched down over the opening to a closing line,
and the lower lid rises a little to meet it; the eye under the lid is hidden, not
moved. Nothing outside the band changes, so glasses, brows and skin stay where they
are. The map depends on the closure non-linearly, so the kernel evaluates it per frame
from five values per column (:func:`lid_rows`).

Gaze shifts the content inside the eye opening (the iris and the sclera around it),
falling to zero at the lid contour: the lids do not move with the eyes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np
import torch

# MediaPipe's lid contours, corner to corner (face_mesh_connections.py's eye edges).
RIGHT_UPPER = (33, 246, 161, 160, 159, 158, 157, 173, 133)
RIGHT_LOWER = (33, 7, 163, 144, 145, 153, 154, 155, 133)
LEFT_UPPER = (263, 466, 388, 387, 386, 385, 384, 398, 362)
LEFT_LOWER = (263, 249, 390, 373, 374, 380, 381, 382, 362)
CLOSE = 0.9  # the lids meet this far down the opening: the upper lid does most of it
LID = 0.7  # the lid skin stretched down is this many openings tall (not the brow)
LOW = 0.5  # the lower lid's skin that rises with it
# The mesh's lid points sit on the lid margins; the visible white reaches a little past
# them (most near the corners), so the warp treats the opening as this much taller
# above and below, and fuller towards the corners.
GROW_UP, GROW_DOWN, FULLER, WIDER = 0.1, 0.5, 0.3, 1.2
LASHES = 0.25  # the band's foot (this many openings tall) holds the lashes: never cut
FULL_ROOM = 0.8  # lid skin this share of its band or more: the upper lid closes the eye
MEET_LOW = 0.35  # with no room above, the lids meet this far down the opening
DARK = 0.75  # a row this much darker than the band's skin is a rim or a brow
FAR = -1.0e4  # a column with no eye: its lid rows lie far above the region


@dataclass(frozen=True, slots=True)
class Contour:
    """One eye's lid contours in region pixels, each from corner to corner."""

    upper: np.ndarray  # (k, 2)
    lower: np.ndarray
    # Per column (x, y) of the region: the highest row the lid skin may be taken from,
    # below anything much darker than that skin (a glasses rim, a brow): those stay put.
    ceiling: np.ndarray | None = None

    @property
    def height(self) -> float:
        return float(np.max(_opening(self, np.linspace(*self.span, 32))))

    @property
    def span(self) -> tuple[float, float]:
        return (float(max(self.upper[:, 0].min(), self.lower[:, 0].min())),
                float(min(self.upper[:, 0].max(), self.lower[:, 0].max())))


def contours(mesh: np.ndarray) -> tuple[Contour, Contour]:
    """Both eyes' contours from a mesh already in region pixels (image-left eye first)."""
    eyes = [Contour(mesh[list(up), :2].astype(np.float64), mesh[list(low), :2].astype(np.float64))
            for up, low in ((RIGHT_UPPER, RIGHT_LOWER), (LEFT_UPPER, LEFT_LOWER))]
    eyes.sort(key=lambda c: float(c.upper[:, 0].mean()))
    return eyes[0], eyes[1]


def ellipse(x: float, y: float, rx: float, ry: float) -> Contour:
    """A contour for an asset without a mesh: the eye box's ellipse."""
    t = np.linspace(0.0, np.pi, 9)
    xs = x - rx * np.cos(t)
    return Contour(np.stack((xs, y - ry * np.sin(t)), 1), np.stack((xs, y + ry * np.sin(t)), 1))


def with_ceilings(eyes: tuple[Contour, Contour], region: np.ndarray,
                  ) -> tuple[Contour, Contour]:
    """Both eyes with the rows above their lids that a blink may stretch (``ceiling``),
    read from the portrait's pixels in the region (RGB uint8)."""
    gray = cv2.cvtColor(np.ascontiguousarray(region), cv2.COLOR_RGB2GRAY).astype(np.float32)
    gray = np.asarray(cv2.GaussianBlur(gray, (3, 3), 0.8), np.float32)
    return (replace(eyes[0], ceiling=_ceiling(eyes[0], gray)),
            replace(eyes[1], ceiling=_ceiling(eyes[1], gray)))


def _ceiling(eye: Contour, gray: np.ndarray) -> np.ndarray:
    """Per column of the lid band: just below the lowest row of its upper part (the
    lashes at its foot excluded: they move with the lid) that is much darker than the
    band's skin; the band's own top where there is none."""
    cols, top, lash = _band(eye)
    ceiling = top.copy()
    h, w = gray.shape
    for i, c in enumerate(cols.astype(int)):
        r0, r1 = max(0, int(np.ceil(top[i]))), min(h, int(np.floor(lash[i])))
        if not 0 <= c < w or r1 - r0 < 2:
            continue
        column = gray[r0:r1, c]
        dark = np.nonzero(column < DARK * float(np.median(gray[r0 : min(h, r1 + 2), c])))[0]
        if dark.size:
            ceiling[i] = r0 + float(dark[-1]) + 1.0
    # A rim is a line across the eye: one column's shadow alone does not cut the band.
    smooth = np.asarray(cv2.medianBlur(ceiling.astype(np.float32)[None], 5)[0], np.float64)
    return np.stack((cols, np.maximum(smooth, top)), 1)


def _band(eye: Contour) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The lid band's columns (region x), its top row and where its lashes begin."""
    left, right = eye.span
    mid, half = (left + right) / 2, WIDER * (right - left) / 2
    cols = np.arange(np.floor(mid - half), np.ceil(mid + half) + 1)
    look = mid + (cols - mid) / WIDER
    up, tall = _along(eye.upper, look), _opening(eye, look)
    most = max(float(tall.max()), 1e-3)
    fuller = most * (tall / most) ** FULLER
    up = up - GROW_UP * fuller
    return cols, up - LID * fuller - 0.5, up - LASHES * fuller


def _along(points: np.ndarray, cols: np.ndarray) -> np.ndarray:
    order = np.argsort(points[:, 0])
    return np.asarray(np.interp(cols, points[order, 0], points[order, 1]), np.float64)


def _opening(c: Contour, cols: np.ndarray) -> np.ndarray:
    return np.asarray(np.clip(_along(c.lower, cols) - _along(c.upper, cols), 0.0, None))


def lid_rows(eyes: tuple[Contour, Contour], width: int, pad: int) -> torch.Tensor:
    """[5, width + 2·pad] per column: lid skin top, upper lid, closing line, lower lid,
    lower skin bottom (region rows; column ``pad`` is the region's column 0)."""
    cols = np.arange(-pad, width + pad, dtype=np.float64)
    rows = np.full((5, cols.size), FAR)
    rows[0] -= 1.0
    rows[4] += 1.0
    for eye in eyes:
        left, right = eye.span
        mid, half = (left + right) / 2, WIDER * (right - left) / 2
        at = (cols > mid - half) & (cols < mid + half)
        look = mid + (cols[at] - mid) / WIDER  # the contour, a little wider
        up, tall = _along(eye.upper, look), _opening(eye, look)
        most = max(float(tall.max()), 1e-3)
        fuller = most * (tall / most) ** FULLER
        up = up - GROW_UP * fuller
        tall = tall + (GROW_UP + GROW_DOWN) * fuller
        # The skin bands are sized by the eye, not by the grown opening: above them are
        # brows and glasses, which stay put.
        skin = LID * fuller + 0.5
        top = up - skin
        if eye.ceiling is not None:  # the lid skin ends below a rim or a brow
            top = np.maximum(top, np.minimum(_along(eye.ceiling, cols[at]), up - 1.0))
        # With little lid skin below a rim, the lower lid rises further to meet it (a
        # sliver stretched over the whole eye reads as streaks).
        room = np.clip((up - top) / skin / FULL_ROOM, 0.0, 1.0)
        meet = MEET_LOW + (CLOSE - MEET_LOW) * room
        rows[:, at] = np.stack((top, up, up + meet * tall, up + tall,
                                up + tall + (LOW + (1 - room) * LOW) * fuller + 0.5))
    return torch.from_numpy(rows.astype(np.float32))


def gaze_field(eyes: tuple[Contour, Contour], band: tuple[int, int], width: int,
               pad: int) -> torch.Tensor:
    """[rows + 2·pad, width + 2·pad]: 1 inside the openings, 0 at and past the lids."""
    rows = band[1] - band[0]
    opening = np.zeros((rows + 2 * pad, width + 2 * pad), np.uint8)
    shift = np.array([pad, pad - band[0]], np.float64)
    for eye in eyes:
        outline = np.concatenate((eye.upper, eye.lower[::-1])) + shift
        cv2.fillPoly(opening, [np.round(outline * 16).astype(np.int32)], 255,
                     lineType=cv2.LINE_AA, shift=4)
    depth = cv2.distanceTransform((opening > 127).astype(np.uint8), cv2.DIST_L2, 5)
    ramp = 0.4 * max(1.0, min(eye.height for eye in eyes))
    t = np.clip(depth / ramp, 0, 1)
    return torch.from_numpy((t * t * (3 - 2 * t)).astype(np.float32)).contiguous()
