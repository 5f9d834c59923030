"""The lip line of an avatar, per column of the region: where its inner lips meet.

A smile's line curves up to the corners, so a straight line at the mouth's centre would
open the jaw, press the lips and draw the cavity across the lips' corners. From the
mesh, the line is the middle of the upper and lower inner lip contours (the middle of
the gap, for a portrait that shows its teeth); past the inner corners it carries on
level. Without a mesh it is the mouth box's centre line.
"""

from __future__ import annotations

import numpy as np

from protoface.worker.face.analysis.topology import loop

# MediaPipe's inner lip contours, corner (78) to corner (308).
UPPER_INNER = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308)
LOWER_INNER = (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308)


def _along(points: np.ndarray, cols: np.ndarray) -> np.ndarray:
    order = np.argsort(points[:, 0])
    return np.asarray(np.interp(cols, points[order, 0], points[order, 1]), np.float64)


def lip_line(mesh: np.ndarray | None, cols: int, my: float, shown: float) -> np.ndarray:
    """(cols,) float32: the row of the lip line at each column (region pixels)."""
    if mesh is None:
        return np.full(cols, my, np.float32)
    at = np.arange(cols, dtype=np.float64)
    upper = _along(mesh[list(UPPER_INNER), :2].astype(np.float64), at)
    lower = _along(mesh[list(LOWER_INNER), :2].astype(np.float64), at)
    share = 0.75 if shown >= 2.0 else 0.5
    return np.asarray(upper + share * (lower - upper), np.float32)


def teeth_columns(region: np.ndarray, mesh: np.ndarray, line: np.ndarray,
                  enamel: float) -> np.ndarray:
    """(cols,) float32, 0 … 1: the columns where a parted portrait shows its upper teeth.

    A column shows teeth where its brightest pixel between the upper inner lip and the
    lip line comes near the teeth's colour (``enamel``, luma); only the run of such
    columns through the mouth's centre counts (a smile's dark corners and the skin past
    the inner corners are not teeth).
    """
    cols = region.shape[1]
    at = np.arange(cols, dtype=np.float64)
    upper = _along(mesh[list(UPPER_INNER), :2].astype(np.float64), at)
    left, right = float(mesh[UPPER_INNER[0], 0]), float(mesh[UPPER_INNER[-1], 0])
    rows = np.arange(region.shape[0], dtype=np.float64)[:, None]
    between = (rows >= np.round(upper)) & (rows <= np.round(line)) & (at >= left) & (at <= right)
    grey = region.astype(np.float32).mean(axis=2)
    brightest = np.where(between, grey, 0.0).max(axis=0)
    t = np.clip((brightest - 0.55 * enamel) / (0.25 * enamel), 0.0, 1.0)
    t = t * t * (3 - 2 * t)
    centre = round((left + right) / 2)
    if not 0 <= centre < cols or t[centre] < 0.5:
        return np.zeros(cols, np.float32)
    lo, hi = centre, centre
    while lo > 0 and t[lo - 1] >= 0.5:
        lo -= 1
    while hi < cols - 1 and t[hi + 1] >= 0.5:
        hi += 1
    out = np.zeros(cols, np.float64)
    out[max(0, lo - 1) : hi + 2] = t[max(0, lo - 1) : hi + 2]
    return np.asarray(np.convolve(out, np.array([1, 2, 3, 2, 1]) / 9, "same"), np.float32)


def parting(mesh: np.ndarray, cols: int, line: np.ndarray, teeth: np.ndarray) -> np.ndarray:
    """(cols,) float32: the row under which the jaw carries the lips down, per column.

    Under a portrait's own upper teeth it is the lip line (they stay with the skull);
    beside them, in a smile's dark corners, the lower lip's inner edge: the corners' dark
    stays with the skull and the jaw opens the mouth under it, rather than splitting it
    in two streaks with a copy of the lip above between them.
    """
    at = np.arange(cols, dtype=np.float64)
    lower = _along(mesh[list(LOWER_INNER), :2].astype(np.float64), at)
    return np.asarray(lower + teeth * (line - lower), np.float32)


def jawline(mesh: np.ndarray | None, cols: int, chin: float, line: np.ndarray) -> np.ndarray:
    """(cols,) float32: the row of the jaw's lower edge at each column (the face oval below
    the lips); past the oval's ends, just under the lip line (nothing there is jaw)."""
    if mesh is None:
        return np.full(cols, chin, np.float32)
    oval = mesh[list(loop("face_oval")), :2].astype(np.float64)
    lower = oval[oval[:, 1] > float(np.median(line))]
    order = np.argsort(lower[:, 0])
    at = np.arange(cols, dtype=np.float64)
    rows = np.interp(at, lower[order, 0], lower[order, 1])
    outside = (at < lower[:, 0].min()) | (at > lower[:, 0].max())
    return np.asarray(np.where(outside, line + 2.0, rows), np.float32)
