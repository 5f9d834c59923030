"""How soft the painted mouth is drawn: as sharp as the portrait's own mouth.

The inner mouth, teeth and tongue are painted (``kernel._mouth_paint``), then blurred by
a Gaussian σ of the avatar's own. Too crisp on a soft portrait (a drawn one, or one
enlarged) the paint looks pasted; too soft on a crisp photo, smudged. Edge-width
estimates do not settle it: a soft, flat drawing needs more blur than its edges say,
because the paint's contrast (teeth against the cavity) is far above anything in it.
So σ is chosen once per avatar and tier by drawing the open mouth and comparing its
detail (the Laplacian's variance in the outer lips' box) with the portrait's own closed
mouth: the least σ (bisected within ``SIGMAS`` and ``MOUTH_SHARE`` of the mouth's
half-width) that brings it to ``TARGET``; or, when no σ does (the opening's edges in the
warped photo stand out whatever the paint's blur), the least that comes within ``FLAT``
of the most blur's detail.

One σ does not fit every opening: a thin gap is mostly the lips' own edges, a wide one
the paint's teeth against the dark cavity. With one σ a drawn portrait's narrow openings
measured half the portrait's detail and its wide ones 1.5 times it. So σ is chosen at
each of ``OPENINGS`` and a frame's is interpolated at its opening.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

SIGMAS = (0.4, 2.6)  # pixels: the blurs tried lie between these
# … and within this share of the mouth's half-width: a wider blur washes the opening
# itself out (on a lite frame, a drawn portrait's 1.6 px blur left almost no dark cavity
# in its 10 px gap; 1.2 px, this share of its 15 px half-width, leaves some).
MOUTH_SHARE = 0.08
STEPS = 4  # bisections (to within 0.14 px)
# The open mouth may show this much more detail than the portrait's closed one: a little
# more, as it has more edges (at this target an utterance's open frames measure
# 1.01–1.10 of the portrait's on the stock avatars and a custom photo, landmarks
# re-detected: ``bench.mouth_pixels``; the figure asked is 0.7–1.3).
TARGET = 1.1
FLAT = 0.05  # if no blur reaches TARGET: the least within this of the most blur's detail
# How far the mouth is open for the comparison (``mouth_open``, speaking): a consonant's
# narrow gap, a syllable, the widest vowel (mostly dark cavity: it takes the least blur).
OPENINGS = (0.1, 0.4, 1.0)

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


def paint_blurs(draw: Callable[[list[float]], list[np.ndarray]], portrait: np.ndarray,
                closed: Box, opened: list[Box], half_width: float) -> list[float]:
    """The σ to paint each opening with, bisected together. ``draw(σs)``: the mouth's
    frames painted open as far as each of ``OPENINGS``, each at its σ; ``closed`` and
    ``opened``: the mouth's box on the portrait and on each of those frames;
    ``half_width``: the mouth's, pixels."""
    own = max(detail(portrait, closed), 1e-6)
    widest = min(SIGMAS[1], max(SIGMAS[0], MOUTH_SHARE * half_width))

    def ratios(sigmas: list[float]) -> list[float]:
        frames = draw(sigmas)
        return [detail(f, box) / own for f, box in zip(frames, opened, strict=True)]

    lo, hi = [SIGMAS[0]] * len(opened), [widest] * len(opened)
    # The detail falls as the blur grows.
    targets = [TARGET if most <= TARGET else most * (1 + FLAT) for most in ratios(hi)]
    for _ in range(STEPS):
        mids = [(a + b) / 2 for a, b in zip(lo, hi, strict=True)]
        for k, ratio in enumerate(ratios(mids)):
            lo[k], hi[k] = (mids[k], hi[k]) if ratio > targets[k] else (lo[k], mids[k])
    return hi


def at(blurs: tuple[tuple[float, float], ...], opening: float) -> float:
    """The σ for a frame's opening (its OPEN coefficient): ``blurs`` holds (opening, σ)
    pairs, in order; between them σ is interpolated, outside them held."""
    return float(np.interp(opening, [b[0] for b in blurs], [b[1] for b in blurs]))
