"""An avatar's basis displacement fields over the warped region R (grid units per unit
of each coefficient), built once per avatar and tier.

* **Head** (yaw, pitch, roll): everything above the neck — head and hair — moves
  rigidly; the weight falls to zero down the neck, so the neck bends and the collar stays.
  The background behind is not warped: the kernel composites the moved person (its
  mask warped alike) over the background plate.
* **Breath**: the person rises by ~1 px at 512² (scaled with the frame).
* **Mouth** (open, round, press, raise, tuck): along the mesh's lip line; the lower lip
  drops whole with the jaw, the chin only a little into a thin band under the jawline
  (neck and collar stay); the upper lip's fields end at the nose's base.
* **Eyes**: ``worker.render.eyes`` (lid rows and the gaze field).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from protoface.worker.face.analysis.topology import loop
from protoface.worker.render import eyes as eye_fields

PARALLAX = 0.8  # extra turn per face width of depth
RAISE = 0.6  # the upper lip rises this many lip half-heights at lip_raise = 1
TUCK = 0.9  # the lower lip rises this many at lip_tuck = 1 (under the upper teeth)
NECK_GIVE = 0.05  # faces: the band under the jaw that gives way as the chin drops
CHIN_DROP = 0.6  # the chin's drop at a full opening, as a share of that band


def smoothstep(e0: float, e1: float, x: torch.Tensor) -> torch.Tensor:
    t = ((x - e0) / (e1 - e0)).clamp(0, 1)
    return t * t * (3 - 2 * t)


@dataclass(frozen=True, slots=True)
class Shape:
    """What the fields need to know of the region and the avatar (R pixels)."""

    rows: int
    cols: int
    margin: int  # source pixels around R
    mouth_top: int  # first row of the mouth fields' box
    eye_band: tuple[int, int]
    face: float  # this avatar's face height as drawn
    frame_height: int
    mx: float  # mouth centre, half-width, lips' half-height, jaw drop
    my: float
    a: float
    lip: float
    drop: float
    cx: float  # face centre x
    chin: float  # the chin's row
    nose: float  # the row of the nose's base (subnasale): the upper lip's fields end there
    shown: float  # the portrait's own gap between the inner lips (teeth shown), pixels
    line: torch.Tensor  # [cols]: the lip line's row per column (``worker.render.mouth``)
    parting: torch.Tensor  # [cols]: where the jaw carries the lips down (``mouth.parting``)
    jaw: torch.Tensor  # [cols]: the jaw's lower edge per column (``mouth.jawline``)
    depth: torch.Tensor | None  # [rh, rw]: how far the face stands out (face widths)


@dataclass(frozen=True, slots=True)
class Fields:
    head: torch.Tensor  # [rh, rw]: the turn's weight (times head_scale per degree)
    roll: torch.Tensor  # [2, rh, rw] (x, y planes) per radian
    open: torch.Tensor  # [rl, rw] y
    round: torch.Tensor  # [rl, rw] x
    press: torch.Tensor  # [rl, rw] y
    raise_: torch.Tensor  # [rl, rw] y: the upper lip lifted off the teeth
    tuck: torch.Tensor  # [rl, rw] y: the lower lip drawn up under the upper teeth
    gaze: torch.Tensor  # [re + 2·pad, rw + 2·pad], shifted with the head per frame
    breath: torch.Tensor  # [rh, rw] y per unit of breath
    lids: torch.Tensor  # [5, rw + 2·pad] (``eyes.lid_rows``)
    head_scale: tuple[float, float]  # (yaw, pitch) grid units per degree
    head_pixels: tuple[float, float]  # the same in pixels
    breath_pixels: float  # how far the person rises at breath = 1
    pivot: tuple[float, float]  # where roll turns the head (R pixels)
    slack: int  # rows the mouth fields extend past their box, above and below
    pad: int  # the eye fields' padding (pixels each side): the head moves them
    gaze_scale: tuple[float, float]


def build(s: Shape, eyes: tuple[eye_fields.Contour, eye_fields.Contour]) -> Fields:
    v = torch.arange(s.rows, dtype=torch.float32)[:, None]
    u = torch.arange(s.cols, dtype=torch.float32)[None, :]
    sx, sy = 2 / (s.cols + 2 * s.margin), 2 / (s.rows + 2 * s.margin)  # pixels → grid
    # The weights fade out towards R's sides so that R pastes back without a seam.
    edge = 0.12 * s.face
    sides = smoothstep(0, edge, u) * smoothstep(0, edge, s.cols - 1 - u)
    foot = 1 - smoothstep(s.rows - 1 - 2 * edge, s.rows - 1.0, v)
    head = (1 - smoothstep(s.chin + 0.05 * s.face, s.chin + 0.55 * s.face, v)) * sides
    # A turn carries the nose further than the outline (parallax from the mesh's depth),
    # so the head turns rather than slides; the outline and hair move rigidly.
    turn = head if s.depth is None else head * (1 + PARALLAX * s.depth)
    px, py = s.cx, s.chin + 0.3 * s.face  # roll turns the head on the neck
    roll = torch.stack(((v - py) * head * sx, -(u - px) * head * sy), dim=-1)
    pad = math.ceil(0.07 * s.face) + 2  # the head carries the eyes at most this far
    rx = sum(e.span[1] - e.span[0] for e in eyes) / 4
    ry = sum(e.height for e in eyes) / 4
    breath_px = s.frame_height / 512
    mouth = _mouth(s, sx, sy)
    return Fields(
        head=turn.contiguous(), roll=roll.permute(2, 0, 1).contiguous(),
        open=mouth[0], round=mouth[1], press=mouth[2], raise_=mouth[3], tuck=mouth[4],
        gaze=eye_fields.gaze_field(eyes, s.eye_band, s.cols, pad),
        breath=(breath_px * sy * sides * foot).contiguous(),
        lids=eye_fields.lid_rows(eyes, s.cols, pad),
        head_scale=(-0.012 * s.face * sx, -0.010 * s.face * sy),
        head_pixels=(-0.012 * s.face, -0.010 * s.face), breath_pixels=breath_px,
        pivot=(px, py), slack=math.ceil(0.04 * s.face) + 2, pad=pad,
        gaze_scale=(-0.35 * rx * sx, -0.3 * ry * sy),
    )


def _mouth(s: Shape, sx: float, sy: float) -> tuple[torch.Tensor, ...]:
    """Jaw drop with upper-lip lift, rounding, press, upper-lip raise and lower-lip tuck
    (computed ``slack`` rows past their box each way: they follow the lips when the head
    moves them)."""
    slack = math.ceil(0.04 * s.face) + 2
    lv = torch.arange(s.mouth_top - slack, s.rows + slack, dtype=torch.float32)[:, None]
    lu = torch.arange(s.cols, dtype=torch.float32)[None, :]
    narrow = torch.exp(-(((lu - s.mx) / (0.85 * s.a)) ** 6))  # ~0 at the lips' corners
    broad = torch.exp(-(((lu - s.mx) / (2.0 * s.a)) ** 2))
    line = s.line[None, :]  # the lips meet on a curve (a smile's rises to the corners)
    below = torch.sigmoid((lv - line) * 4)
    parting = s.parting[None, :]  # the line, but for a smile's dark corners
    dropped = torch.sigmoid((lv - parting) * 4)
    chin_blend = smoothstep(s.lip, 3 * s.lip, lv - parting)  # the lower lip drops whole
    # The jaw ends at its lower edge: the chin travels a little over the neck, which
    # gives way only in a thin band under it (neck, collar and background stay, whatever
    # the opening). The lower lip drops the whole way; the skin between it and the chin
    # stretches.
    band = NECK_GIVE * s.face
    fade = 1 - smoothstep(0.0, 1.0, (lv - s.jaw[None, :]) / band)
    chin = min(s.drop, CHIN_DROP * band)
    # Content below the lip line moves down by `drop` (so it is sampled from above);
    # the upper lip rises a fifth of that.
    jaw = -dropped * (s.drop * narrow * (1 - chin_blend) + chin * broad * chin_blend) * fade
    # The upper lip stretches between the nose and its edge; the nose stays where it is
    # (the nostrils' wings reach a little below its base).
    nose = smoothstep(s.nose, (s.nose + s.my) / 2, lv)
    upper_lip = ((1 - below) * narrow * torch.exp(-(((line - lv) / (2.5 * s.lip)) ** 2))
                 * nose)
    lower_lip = below * narrow * torch.exp(-(((lv - line) / (2.5 * s.lip)) ** 2))
    # A portrait's own upper teeth stay with the skull: its upper lip is not lifted off them.
    lift = 0.2 * s.drop * upper_lip * (1.0 if s.shown < 2.0 else 0.0)
    zone = torch.exp(-(((lv - line) / (2 * s.lip)) ** 2) - ((lu - s.mx) / (1.6 * s.a)) ** 2)
    # Pressed, the lips meet on the line: a parted portrait's lips travel over the gap
    # they show (its teeth go behind them), every portrait's are squashed a little.
    side = torch.sign(lv - line)
    close = side * (s.shown / 2) * narrow * torch.exp(-(((lv - line) / (2 * s.lip)) ** 2))
    # Closed on the line (three quarters down a gap over teeth), the rows just above it
    # would still sample the teeth's lower edge: they reach on up to the upper lip's.
    rim = torch.exp(-(((lv - line + 1.0) / 1.0) ** 2)) * (lv < line).float()
    close = close - 0.25 * s.shown * rim * narrow * (s.shown >= 2.0)
    press = (0.35 * (lv - line) * zone + close) * torch.where(lv < line, nose, 1.0)
    return (((jaw + lift) * sy).contiguous(), (0.3 * (lu - s.mx) * zone * sx).contiguous(),
            (press * sy).contiguous(), (RAISE * s.lip * upper_lip * sy).contiguous(),
            (TUCK * s.lip * lower_lip * sy).contiguous())


def depth_map(mesh: np.ndarray, rows: int, cols: int, face_width: float) -> torch.Tensor:
    """How far each pixel of R stands out of the face's outline, in face widths, from the
    mesh (x, y in R pixels; z on x's scale, towards the camera negative): splatted on a
    coarse grid, smoothed, 0 at and outside the face oval."""
    step = 4
    gy, gx = np.mgrid[0 : rows : step, 0 : cols : step].astype(np.float32)
    oval = mesh[list(loop("face_oval"))]
    height = np.clip((float(np.median(oval[:, 2])) - mesh[:, 2]) / face_width, 0.0, None)
    sigma = 0.05 * face_width
    near = np.exp(-((gx[..., None] - mesh[:, 0]) ** 2 + (gy[..., None] - mesh[:, 1]) ** 2)
                  / (2 * sigma * sigma))
    coarse = (near * height).sum(-1) / np.maximum(near.sum(-1), 1e-6)
    inside = np.zeros((rows, cols), np.uint8)
    cv2.fillPoly(inside, [np.round(oval[:, :2]).astype(np.int32)], 1)
    fine = cv2.resize(coarse.astype(np.float32), (cols, rows), interpolation=cv2.INTER_LINEAR)
    soft = cv2.GaussianBlur(inside.astype(np.float32), (0, 0), 0.04 * face_width)
    return torch.from_numpy(np.ascontiguousarray(fine * soft, np.float32))
