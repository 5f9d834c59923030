"""How soft the painted mouth is drawn: as sharp as the portrait's own mouth.

The inner mouth, teeth and tongue are painted (``kernel._mouth_paint``), then blurred by
a Gaussian σ of the avatar's own. Too crisp on a soft portrait (a drawn one, or one
enlarged) the paint looks pasted; too soft on a crisp photo, smudged. Edge-width
estimates do not settle it: a soft, flat drawing needs more blur than its edges say,
because the paint's contrast (teeth against the cavity) is far above anything in it.
So σ is chosen once per avatar and tier by drawing the open mouth and comparing its
detail (the Laplacian's variance in the outer lips' box) with the portrait's own closed
mouth: the least σ (bisected within ``SIGMAS``) that brings it to ``TARGET``; or, when
no σ does (the opening's edges in the warped photo stand out whatever the paint's
blur), the least that comes within ``FLAT`` of the most blur's detail.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

SIGMAS = (0.4, 2.6)  # pixels: the blurs tried lie between these
STEPS = 4  # bisections (to within 0.14 px)
# The open mouth may show this much more detail than the portrait's closed one. The two
# openings drawn here show more than a whole utterance's open frames do: at this target
# those measure 0.78–1.17 of the portrait's on av_stock_002, 003 and a custom photo,
# landmarks re-detected (``bench.mouth_pixels``; the figure asked is 0.7–1.3).
TARGET = 1.45
FLAT = 0.05  # if no blur reaches TARGET: the least within this of the most blur's detail
OPENINGS = (0.3, 0.6)  # how far the mouth is open for the comparison (a syllable, a vowel)

Box = tuple[slice, slice]


def detail(frame: np.ndarray, box: Box) -> float:
    """The Laplacian's variance of the frame's luma inside ``box`` (computed with the
    pixels around it: at a crop's edge the Laplacian would read a gradient as a curve)."""
    rows, cols = box
    r0, c0 = max(0, rows.start - 1), max(0, cols.start - 1)
    grey = cv2.cvtColor(np.ascontiguousarray(frame[r0 : rows.stop + 1, c0 : cols.stop + 1]),
                        cv2.COLOR_RGB2GRAY)
    curve = cv2.Laplacian(grey.astype(np.float64), cv2.CV_64F)
    inside = curve[rows.start - r0 : rows.stop - r0, cols.start - c0 : cols.stop - c0]
    return float(inside.var())


def paint_blur(draw: Callable[[float], list[np.ndarray]], portrait: np.ndarray, closed: Box,
               opened: list[Box]) -> float:
    """The σ to paint with. ``draw(σ)``: the mouth's frames painted at σ, open as far as
    each of ``OPENINGS``; ``closed`` and ``opened``: the mouth's box on the portrait and
    on each of those frames."""
    own = max(detail(portrait, closed), 1e-6)

    def ratio(sigma: float) -> float:
        frames = draw(sigma)
        shown = [detail(f, box) for f, box in zip(frames, opened, strict=True)]
        return float(np.mean(shown)) / own

    lo, hi = SIGMAS
    most = ratio(hi)  # the detail falls as the blur grows
    target = TARGET if most <= TARGET else most * (1 + FLAT)
    for _ in range(STEPS):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if ratio(mid) > target else (lo, mid)
    return hi
