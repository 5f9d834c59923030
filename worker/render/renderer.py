"""The avatar model: warps a rigged portrait per frame with torch (CPU), batched.

Per avatar and tier, once (:class:`AvatarModel`): the portrait is placed so its face box
lands at the tier's face place, enlarged at most 2× (``worker.render.framing``: frames
wider than the portrait are continued from the background plate), so every avatar of a
tier shares one region geometry and can be stacked into one batch; the person mask and
the background plate are placed alike, and the *basis fields* of the warped region R
(``worker.render.fields``, ``worker.render.eyes``) are built from the face mesh. Per
frame a sampling grid is the base grid plus the fields weighted by the frame's
FaceParams (the lids' warp evaluated per frame); one ``grid_sample`` per distinct avatar
of the batch warps all its frames' regions, portrait and person mask together; the moved
person is composited over the still background plate, the opened mouth (inner mouth,
teeth, tongue) is shaded on a small patch, and R is pasted into the frame. uint8 out.
That per-frame tensor math is compiled (``worker.render.kernel``); this module prepares
its inputs and the avatars.

Every step is element-wise per frame (no reduction across the batch), so a frame is the
same bytes whether it is rendered alone or in a batch.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache

import cv2
import numpy as np
import torch

from protoface.domain.tiers import Tier
from protoface.worker.face.analysis.build import landmarks_from_bytes
from protoface.worker.face.analysis.features import face_width
from protoface.worker.face.analysis.topology import (
    CHIN,
    INNER_LOWER_LIP,
    INNER_UPPER_LIP,
    NOSE_BASE,
    edges,
)
from protoface.worker.face.features import FaceParams
from protoface.worker.render import eyes, fields, framing, kernel, mouth, sharpness
from protoface.worker.render.rig import (
    Asset,
    Landmarks,
    landmarks,
    load_asset,
    person_mask,
    plate_rgb,
    portrait_rgb,
)

FACE_CENTRE_Y = 0.45  # the face box's centre, as a share of the frame height
BASIS = ("open", "round", "press", "gaze_x", "gaze_y", "yaw", "pitch", "roll", "blink",
         "breath", "raise", "tuck")
OPEN, ROUND, PRESS, GAZE_X, GAZE_Y, YAW, PITCH, ROLL, BLINK, BREATH, RAISE, TUCK = range(
    len(BASIS))
# The largest |coefficient| a frame may have for its avatar's precomputed spans
# (``AvatarModel.spans``): FaceParams' documented ranges. A frame beyond them is drawn
# over the whole of R.
LIMITS = (1.0, 1.0, 1.0, 1.0, 1.0, 4.0, 3.0, math.radians(3.0), 1.0, 1.0, 1.0, 1.0)
# Calmer frames (most of them: the head moves little while it talks or listens) are
# drawn on tighter spans: the outline's band is as wide as the head moves.
CALM = (1.0, 1.0, 1.0, 1.0, 1.0, 2.0, 1.5, math.radians(1.5), 1.0, 1.0, 1.0, 1.0)
LEVELS = (CALM, LIMITS)  # the first a frame is within decides its spans
SPAN_ROWS = 16  # rows of R per strip (a span is as wide as the widest of its rows)
SPAN_CORE = 0.4  # a pixel inside the person costs this much less than one on the outline
SPAN_OVERHEAD = 1000.0  # what one more span costs, in pixels of the outline's band


def configure_threads() -> int:
    """One intra-op thread per core but one: the event loop (pacing, JPEG) keeps a core.

    ``PROTOFACE_TORCH_THREADS`` overrides. Returns the thread count in force.
    """
    default = max(1, (os.cpu_count() or 2) - 1)
    threads = int(os.environ.get("PROTOFACE_TORCH_THREADS", default))
    torch.set_num_threads(threads)
    return threads


@dataclass(frozen=True, slots=True)
class Geometry:
    """Where a tier draws the face: shared by every avatar of the tier."""

    width: int
    height: int
    face: float  # face box side, output pixels
    x0: int  # the warped face region R, in the output frame
    y0: int
    x1: int
    y1: int
    margin: int  # source pixels around R the head transform may pull in
    mouth: tuple[int, int, int, int]  # (top, bottom, left, right) of the mouth sub-box in R
    eyes: tuple[int, int, int, int]  # the same for the eye band

    @property
    def region(self) -> tuple[int, int]:
        return self.y1 - self.y0, self.x1 - self.x0


@cache
def geometry(tier: Tier) -> Geometry:
    w, h = tier.width, tier.height
    face = framing.face_height(tier)
    cx, top = w / 2, FACE_CENTRE_Y * h - face / 2
    # R holds the head with its hair, the neck that bends under it and the shoulders
    # that breathe (their rise fades out at R's foot).
    x0, x1 = max(0, round(cx - 0.85 * face)), min(w, round(cx + 0.85 * face))
    y0, y1 = max(0, round(top - 0.42 * face)), min(h, round(top + 1.75 * face))
    rel_top, rel_cx = top - y0, cx - x0

    def box(t: float, b: float, half: float) -> tuple[int, int, int, int]:
        return (max(0, round(rel_top + t * face)), min(y1 - y0, round(rel_top + b * face)),
                max(0, round(rel_cx - half * face)), min(x1 - x0, round(rel_cx + half * face)))

    return Geometry(w, h, face, x0, y0, x1, y1, max(2, round(0.08 * face)),
                    mouth=box(0.5, 1.15, 0.45), eyes=box(0.12, 0.65, 0.47))


@dataclass(frozen=True, slots=True)
class Features:
    """An avatar's features in region-R pixel coordinates (after the tier's scaling)."""

    mx: float  # mouth centre (the lip line)
    my: float
    a: float  # mouth half-width
    lip: float  # lips' half-height
    drop: float  # how far the lower lip travels at mouth_open = 1
    eyes: tuple[eyes.Contour, eyes.Contour]  # lid contours, image-left eye first
    face: float  # the face box's height as drawn
    cx: float  # face centre
    cy: float
    chin: float
    nose: float  # the row of the nose's base
    skin: tuple[float, float, float]
    lips: tuple[float, float, float]
    inner: tuple[float, float, float]
    mesh: np.ndarray | None  # (478, 3) in R pixels (z on x's scale), when the asset has it
    shown: float  # the portrait's own gap between the inner lips, pixels
    own_teeth: float  # 0 … 1: the portrait shows its teeth (they are not drawn again)
    enamel: tuple[float, float, float]  # the teeth's colour (the portrait's, if shown)
    grain: float  # the portrait's fine noise (standard deviation): painted areas get it
    line: np.ndarray  # (rw,) the lip line's row per column of R
    teeth: np.ndarray  # (rw,) 0 … 1: where the portrait shows its upper teeth, per column
    parting: np.ndarray  # (rw,) the row under which the jaw carries the lips down
    soft: float  # how many pixels the portrait's edges take around the mouth
    # The painted mouth's Gaussian blur, σ pixels, at openings (OPEN coefficients) between
    # which a frame's is interpolated (``sharpness``).
    blur: tuple[tuple[float, float], ...] = ((0.0, 0.0),)

    @property
    def eye_centres(self) -> list[tuple[float, float]]:
        return [(float(e.upper[:, 0].mean()),
                 float((e.upper[:, 1].mean() + e.lower[:, 1].mean()) / 2)) for e in self.eyes]


class AvatarModel:
    """One avatar prepared for one tier: frame, warp source, backdrop, basis fields."""

    def __init__(self, asset: Asset, geo: Geometry) -> None:
        self.geo = geo
        rgb = portrait_rgb(asset)
        marks = landmarks(asset.rig, rgb)
        where = framing.placement(marks.face.h, marks.face.centre, geo.face,
                                  (geo.width, geo.height), FACE_CENTRE_Y)
        self.placement = where
        mask, plate = _layers(asset, rgb)
        placed = framing.place(rgb, mask, plate, where, (geo.width, geo.height), geo.face)
        mesh = None if asset.mesh is None else landmarks_from_bytes(asset.mesh)
        self.features = _features(marks, mesh, where, geo, placed.frame)
        # Lips parted at rest (a smile over the teeth): closed whenever the jaw is.
        self.parted = self.features.shown > PARTED * self.features.a
        self.source = _source(placed.frame, placed.mask, geo)  # [4, Hs, Ws] float32
        self.fields = _fields(self.features, geo)
        f = self.fields
        backdrop = _region(placed.backdrop, geo)
        self.background = torch.from_numpy(_at_rest(placed.frame, self.source, backdrop, geo))
        self.warp: kernel.Warp = (
            self.source,
            [f.head, f.roll, f.open, f.round, f.press, f.gaze, f.breath, f.lids, backdrop,
             f.raise_, f.tuck],
            [*f.head_scale, *f.gaze_scale, f.pivot[0]],
            [f.slack, f.pad, geo.margin, *_eye_columns(f.lids)])
        # Where the person can be for any frame within each of LEVELS (the rest of R is the
        # plate).
        self.spans = [_spans(self.source, f, geo, limits) for limits in LEVELS]
        self.whole = [[0, geo.region[0], 0, geo.region[1], 0, 0]]


def _eye_columns(lids: torch.Tensor) -> tuple[int, int]:
    """The columns of the lid rows (padded) that hold an eye: elsewhere a blink moves
    nothing."""
    at = np.flatnonzero(lids[2].numpy() > eyes.FAR / 2)
    return (int(at[0]), int(at[-1]) + 1) if at.size else (0, 0)


def _reach(f: fields.Fields, geo: Geometry, limits: Sequence[float]) -> np.ndarray:
    """The farthest (pixels, either axis) any frame within ``limits`` moves the sample of
    each pixel of R from its place: [rh, rw]."""
    rh, rw = geo.region
    m = geo.margin
    px, py = (rw + 2 * m) / 2, (rh + 2 * m) / 2  # grid units → pixels

    def a(t: torch.Tensor) -> np.ndarray:
        return np.abs(t.numpy().astype(np.float64))

    def window(t: np.ndarray, rows: int, cols: int) -> np.ndarray:
        """Max over every shift a frame may cut the padded field at (rows, cols each side)."""
        k = np.ones((2 * rows + 1, 2 * cols + 1), np.uint8)
        wide = cv2.dilate(t.astype(np.float32), k, borderType=cv2.BORDER_REPLICATE)
        return wide[rows : wide.shape[0] - rows, cols : wide.shape[1] - cols].astype(np.float64)

    head = a(f.head)
    roll = a(f.roll)
    dx = (limits[YAW] * abs(f.head_scale[0]) * head + limits[ROLL] * roll[0]) * px
    dy = (limits[PITCH] * abs(f.head_scale[1]) * head + limits[ROLL] * roll[1]
          + limits[BREATH] * a(f.breath)) * py
    top = geo.mouth[0]
    mouth_x = window(a(f.round), f.slack, 0) * limits[ROUND]
    mouth_y = sum(window(a(t), f.slack, 0) * limits[k]
                  for k, t in ((OPEN, f.open), (PRESS, f.press), (RAISE, f.raise_),
                               (TUCK, f.tuck)))
    dx[top:] += mouth_x * px
    dy[top:] += mouth_y * py
    e0, e1 = geo.eyes[0], geo.eyes[1]
    gaze = window(a(f.gaze), f.pad, f.pad)
    dx[e0:e1] += limits[GAZE_X] * abs(f.gaze_scale[0]) * gaze * px
    dy[e0:e1] += limits[GAZE_Y] * abs(f.gaze_scale[1]) * gaze * py
    # The lids move rows by at most the distance between their rows (per column).
    lids = f.lids.numpy().astype(np.float64)
    travel = np.maximum(np.abs(lids[2] - lids[1]), np.abs(lids[3] - lids[2]))
    dy[e0:e1] += limits[BLINK] * float(travel.max())
    reach: np.ndarray = np.maximum(dx, dy)
    return reach


def _spans(source: torch.Tensor, f: fields.Fields, geo: Geometry,
           limits: Sequence[float]) -> list[list[int]]:
    """The rectangles of R the kernel draws for frames within ``limits``: [r0, r1, c0, c1,
    k0, k1], columns k0…k1 inside the person (its mask 1 on every pixel a sample there
    can read), the rest of c0…c1 on the outline's band. A pixel of R outside all of them
    reads only pixels of the source where the person's mask is 0: the plate, which the
    background frame holds at rest already."""
    rh, rw = geo.region
    m = geo.margin
    # A sample moved by up to d pixels reads source pixels up to ceil(d) + 1 away; one
    # more for rounding.
    radius = np.ceil(_reach(f, geo, limits)).astype(np.int64) + 2
    # Rounded up to a multiple of 4 past 6 pixels (a little wider, far fewer dilations).
    radius = np.where(radius > 6, (radius + 3) // 4 * 4, radius)
    mask = source[3].numpy()
    person, partial = (mask > 0).astype(np.uint8), (mask < 1).astype(np.uint8)
    anywhere = np.zeros((rh, rw), bool)
    somewhere_not = np.zeros((rh, rw), bool)
    for r in np.unique(radius):
        at = radius == r
        k = np.ones((2 * r + 1, 2 * r + 1), np.uint8)
        anywhere[at] = cv2.dilate(person, k)[m : m + rh, m : m + rw][at] > 0
        somewhere_not[at] = cv2.dilate(partial, k)[m : m + rh, m : m + rw][at] > 0
    inside = ~somewhere_not

    def span(r0: int, r1: int) -> tuple[list[int], float] | None:
        """The rectangle over rows r0…r1 and its cost (the outline's band costs more)."""
        cols = np.flatnonzero(anywhere[r0:r1].any(axis=0))
        if cols.size == 0:
            return None
        c0, c1 = int(cols[0]), int(cols[-1]) + 1
        core = np.concatenate(([False], inside[r0:r1, c0:c1].all(axis=0), [False]))
        edges = np.flatnonzero(np.diff(core.astype(np.int8)))
        k0 = k1 = c0
        if edges.size:
            runs = edges.reshape(-1, 2)
            best = int(np.argmax(runs[:, 1] - runs[:, 0]))
            k0, k1 = c0 + int(runs[best, 0]), c0 + int(runs[best, 1])
        return [r0, r1, c0, c1, k0, k1], (r1 - r0) * (c1 - c0 - SPAN_CORE * (k1 - k0))

    # Rows in strips of SPAN_ROWS, neighbours merged while that costs less than a span's
    # own overhead (its calls) in pixels.
    out: list[list[int]] = []
    last: tuple[list[int], float] | None = None
    for r0 in range(0, rh, SPAN_ROWS):
        here = span(r0, min(rh, r0 + SPAN_ROWS))
        if here is None:
            if last is not None:
                out.append(last[0])
            last = None
            continue
        if last is not None:
            merged = span(last[0][0], here[0][1])
            if merged is not None and merged[1] <= last[1] + here[1] + SPAN_OVERHEAD:
                last = merged
                continue
            out.append(last[0])
        last = here
    if last is not None:
        out.append(last[0])
    return out


def _layers(asset: Asset, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The person mask and the background plate; an asset older than version 3 has
    neither: all of it is then 'person' (the head's motion warps what is around it)."""
    mask, plate = person_mask(asset), plate_rgb(asset)
    if mask is None or plate is None:
        return np.full(rgb.shape[:2], 255, np.uint8), rgb
    return mask, plate


def _at_rest(frame: np.ndarray, source: torch.Tensor, backdrop: torch.Tensor,
             geo: Geometry) -> np.ndarray:
    """The frame with R as the kernel composes it at rest (person over backdrop): the
    pixels every frame starts from, so a still head is the same bytes either way."""
    m, (rh, rw) = geo.margin, geo.region
    still = source[:, m : m + rh, m : m + rw]
    rest = torch.addcmul(still[:3], backdrop, 1 - still[3:4])
    out = frame.copy()
    out[geo.y0 : geo.y1, geo.x0 : geo.x1] = rest.permute(1, 2, 0).to(torch.uint8).numpy()
    return out


def _region(frame: np.ndarray, geo: Geometry) -> torch.Tensor:
    """R of a frame-sized RGB layer, [3, rh, rw] float, +0.5 (see :func:`_source`)."""
    crop = frame[geo.y0 : geo.y1, geo.x0 : geo.x1]
    return torch.from_numpy(np.ascontiguousarray(crop)).permute(2, 0, 1).float().add(0.5)


def _source(frame: np.ndarray, mask: np.ndarray, geo: Geometry) -> torch.Tensor:
    """R and a margin around it: RGB (+0.5) times the person mask, and the mask (0 … 1)
    as a 4th channel."""
    m = geo.margin
    # The mask's soft rim holds background pixels: carried with the head they would draw
    # a ghost outline, so the person is cut at the rim's middle (a few pixels of ramp).
    person = np.clip((mask - 0.2) / 0.4, 0.0, 1.0).astype(np.float32)
    # Premultiplied: warped, the colour is the person's share of the pixel already.
    layers = np.dstack(((frame.astype(np.float32) + 0.5) * person[..., None], person))
    padded = cv2.copyMakeBorder(layers, m, m, m, m, cv2.BORDER_REPLICATE)
    crop = padded[geo.y0 : geo.y1 + 2 * m, geo.x0 : geo.x1 + 2 * m]
    # +0.5: the warped values then round to uint8 by truncation, with no pass of their own.
    return torch.from_numpy(np.ascontiguousarray(crop)).permute(2, 0, 1).contiguous()


def _features(marks: Landmarks, mesh: np.ndarray | None, where: framing.Placement,
              geo: Geometry, frame: np.ndarray) -> Features:
    s = where.scale

    def at(x: float, y: float) -> tuple[float, float]:
        fx, fy = where.at(x, y)
        return fx - geo.x0, fy - geo.y0

    face = s * marks.face.h
    mx, my = at(*marks.mouth.centre)
    a = min(0.2 * face, max(2.0, s * marks.mouth.w / 2))
    cx, cy = at(*marks.face.centre)
    placed, shown = None, 0.0
    if mesh is not None:
        placed = mesh * s + np.array([where.tx - geo.x0, where.ty - geo.y0, 0.0], np.float32)
        contours = eyes.contours(placed)
        chin = float(placed[CHIN, 1])
        nose = float(placed[NOSE_BASE, 1])
        # The lip line is where the inner lips meet (or the middle of their gap).
        upper, lower = float(placed[INNER_UPPER_LIP, 1]), float(placed[INNER_LOWER_LIP, 1])
        shown = max(0.0, lower - upper)
        my = upper + (0.75 if shown >= 2.0 else 0.5) * shown  # as ``mouth.lip_line``
    else:
        contours = _box_eyes(marks, at, s)
        chin = cy + 0.5 * face
        nose = my - 0.12 * face  # the upper lip's usual height
    region = frame[geo.y0 : geo.y1, geo.x0 : geo.x1]
    contours = eyes.with_ceilings(contours, region)
    skin = _f3(marks.skin)
    enamel, own = _teeth(region, mx, my, a, shown, skin)
    line = mouth.lip_line(placed, geo.region[1], my, shown)
    teeth, parting = np.zeros(geo.region[1], np.float32), line
    if own > 0 and placed is not None:
        teeth = mouth.teeth_columns(region, placed, line, sum(enamel) / 3)
        parting = mouth.parting(placed, geo.region[1], line, teeth)
    return Features(
        mx=mx, my=my, a=a, lip=max(1.0, s * marks.mouth.h / 2), drop=0.8 * a, eyes=contours,
        face=face, cx=cx, cy=cy, chin=chin, nose=nose,
        skin=skin, lips=_f3(marks.lips), inner=_f3(marks.inner_mouth), mesh=placed,
        shown=shown, own_teeth=own, enamel=enamel, grain=_grain(region, mx, my, face),
        line=line, teeth=teeth, parting=parting,
        soft=_softness(region, mx, my, a, face),
    )


def _teeth(region: np.ndarray, mx: float, my: float, a: float, shown: float,
           skin: tuple[float, float, float]) -> tuple[tuple[float, float, float], float]:
    """The teeth's colour and whether the portrait shows them: the bright pixels between
    parted lips are teeth; else enamel a little warmed by the skin's light."""
    default = tuple(0.85 * t + 0.15 * c for t, c in zip((236.0, 230.0, 216.0), skin,
                                                          strict=True))
    if shown < 2.0:
        return (default[0], default[1], default[2]), 0.0
    gap = region[round(my - shown / 3) : round(my + shown / 3) + 1,
                 round(mx - 0.5 * a) : round(mx + 0.5 * a) + 1].reshape(-1, 3).astype(np.float32)
    light = gap.mean(axis=1)
    bright = gap[light >= np.quantile(light, 0.5)]
    colour = np.median(bright, axis=0)
    if float(colour.mean()) < 0.9 * sum(skin) / 3:  # a dark gap: a mouth open on no teeth
        return (default[0], default[1], default[2]), 0.0
    own = min(1.0, shown / (0.12 * a))
    return (float(colour[0]), float(colour[1]), float(colour[2])), own


def _softness(region: np.ndarray, mx: float, my: float, a: float, face: float) -> float:
    """The width (pixels) of the portrait's edges at the mouth: its contrast over its
    steepest gradient (1 for a crisp photo, more for a soft or enlarged one)."""
    patch = region[max(0, round(my - a)) : round(my + a),
                   max(0, round(mx - 1.2 * a)) : round(mx + 1.2 * a)]
    grey = cv2.cvtColor(np.ascontiguousarray(patch), cv2.COLOR_RGB2GRAY).astype(np.float32)
    steep = np.hypot(cv2.Sobel(grey, cv2.CV_32F, 1, 0), cv2.Sobel(grey, cv2.CV_32F, 0, 1)) / 8
    contrast = float(np.quantile(grey, 0.95) - np.quantile(grey, 0.05))
    width = contrast / max(float(np.quantile(steep, 0.995)), 1e-3)
    return float(min(max(width, 1.0), 0.05 * face))


def _grain(region: np.ndarray, mx: float, my: float, face: float) -> float:
    """The portrait's fine noise around the mouth (a flat paint would look pasted)."""
    half = max(4, round(0.25 * face))
    patch = region[max(0, round(my) - half) : round(my) + half,
                   max(0, round(mx) - half) : round(mx) + half].astype(np.float32)
    detail = patch - cv2.GaussianBlur(patch, (0, 0), 1.0)
    return float(min(8.0, detail.std()))


def _box_eyes(marks: Landmarks, at: Callable[[float, float], tuple[float, float]],
              s: float) -> tuple[eyes.Contour, eyes.Contour]:
    left, right = (eyes.ellipse(*at(*e.centre), max(1.5, s * e.w / 2), max(1.0, s * e.h / 2))
                   for e in marks.eyes)
    return left, right


def _f3(c: tuple[int, int, int]) -> tuple[float, float, float]:
    return float(c[0]), float(c[1]), float(c[2])


def _fields(f: Features, geo: Geometry) -> fields.Fields:
    rh, rw = geo.region
    depth = (None if f.mesh is None
             else fields.depth_map(f.mesh, rh, rw, face_width(f.mesh)))
    return fields.build(fields.Shape(
        rows=rh, cols=rw, margin=geo.margin, mouth_top=geo.mouth[0],
        eye_band=(geo.eyes[0], geo.eyes[1]), face=f.face, frame_height=geo.height,
        mx=f.mx, my=f.my, a=f.a, lip=f.lip, drop=f.drop, cx=f.cx, chin=f.chin, nose=f.nose,
        shown=f.shown, line=torch.from_numpy(f.line), parting=torch.from_numpy(f.parting),
        jaw=torch.from_numpy(mouth.jawline(f.mesh, rw, f.chin, f.line)), depth=depth), f.eyes)


# The lip-sync model's closure reads as shut from 0.5 (its own evaluation's threshold).
UNSEALED, SEALED = 0.1, 0.5
RELAX = 1.0  # how far parted lips come together with the jaw closed
LIPS_APART = 0.3  # the jaw opening from which parted lips are their own again
SPEAKING_JAW = 0.06  # while speaking the jaw opens from here (0 … 1 maps onto 0.06 … 1)
PARTED = 0.1  # a rest gap over this share of the mouth's half-width: lips parted


def _ease(t: float) -> float:
    """0 → 1 over t in 0 … 1 without kinks (clamped outside)."""
    t = max(0.0, min(1.0, t))
    return t * t * (3 - 2 * t)


def seal(press: float) -> float:
    """How far the lips are drawn together for the face driver's ``lip_press``: lips
    that press meet whole (a seal is all or nothing to a viewer), so a press from
    ``SEALED`` up draws them shut, and a light one only brings them closer."""
    return _ease((press - UNSEALED) / (SEALED - UNSEALED))


def coefficients(p: FaceParams, parted: bool = False) -> list[float]:
    """The basis weights of one frame, in :data:`BASIS` order. ``parted``: the
    portrait's lips are parted at rest (a smile over the teeth)."""
    jaw = max(0.0, min(1.0, p.mouth_open))
    if p.speaking:
        # While the voice sounds the lips stay a little apart: only a press (/p b m/)
        # brings them together, never a quiet consonant's nearly closed jaw.
        jaw = SPEAKING_JAW + (1.0 - SPEAKING_JAW) * jaw
    press = seal(p.lip_press)
    opening = jaw * (1.0 - press)
    if parted:
        # Nobody holds a smile over the teeth through speech: in a turn, with the jaw
        # closed (between sounds, just after the speech) the parted lips come together;
        # the jaw opens them again, all the way by LIPS_APART (half-pressed lips over
        # teeth squeeze them into a sliver). At rest (a while into a silence) the face
        # is the portrait's own, smile and all.
        apart = _ease(jaw / LIPS_APART)
        press = max(press, RELAX * (1.0 - apart) * (1.0 - max(0.0, min(1.0, p.rest))))
    return [opening, p.lip_round, press, p.gaze_x, p.gaze_y,
            p.head_yaw, p.head_pitch, math.radians(p.head_roll),
            max(0.0, min(1.0, p.blink)), max(0.0, min(1.0, p.breath)),
            max(0.0, min(1.0, p.lip_raise)), max(0.0, min(1.0, p.lip_tuck))]


class TierModel:
    """All avatars of one tier and the batched render step for them."""

    def __init__(self, tier: Tier) -> None:
        self.tier = tier
        self.geo = geometry(tier)
        rh, rw = self.geo.region
        m = self.geo.margin
        ys = (torch.arange(rh, dtype=torch.float32) + m) * 2 / (rh + 2 * m) - 1 + 1 / (rh + 2 * m)
        xs = (torch.arange(rw, dtype=torch.float32) + m) * 2 / (rw + 2 * m) - 1 + 1 / (rw + 2 * m)
        gy, gx = torch.meshgrid(ys, xs, indexing="ij")
        self.base = torch.stack((gx, gy))  # [2, rh, rw]: the identity warp of R, in planes
        # The patch an open mouth is shaded on: (height, width, rows above the lip line,
        # columns either side of the mouth centre); mouths are at most 0.4 faces wide,
        # and a smile's corners rise up to ~0.08 faces above its centre, with the
        # paint's soft edge and blur reaching past them (a patch ending lower cut the
        # corners' paint off in a horizontal edge).
        half, above = math.ceil(0.26 * self.geo.face), math.ceil(0.12 * self.geo.face) + 1
        self._patch = (above + math.ceil(0.19 * self.geo.face) + 2, 2 * half + 1, above, half)
        self._patch_uv = _uv(0, self._patch[0], 0, self._patch[1])
        # Where lips closing over teeth squeeze the portrait (a smile's corners and the
        # lower lip; not the band under the jaw, whose squeeze is the chin's own give):
        # (height, width, rows above the lip line, columns either side of its centre).
        up, side = math.ceil(0.14 * self.geo.face), math.ceil(0.3 * self.geo.face)
        self._squeeze = (up + math.ceil(0.12 * self.geo.face), 2 * side + 1, up, side)
        # Fixed noise (seed 0: deterministic) the painted mouth gets at the photo's grain.
        noise = torch.Generator().manual_seed(0)
        self._grain = torch.randn(1, 1, self._patch[0], self._patch[1], generator=noise)
        self._avatars: dict[str, AvatarModel] = {}
        self._lock = threading.Lock()

    @property
    def width(self) -> int:
        return self.tier.width

    @property
    def height(self) -> int:
        return self.tier.height

    def avatar(self, asset: bytes) -> AvatarModel:
        """The prepared avatar for a built asset (cached by content)."""
        key = hashlib.sha256(asset).hexdigest()
        with self._lock:
            model = self._avatars.get(key)
        if model is None:
            model = AvatarModel(load_asset(asset), self.geo)
            self._match_sharpness(model)
            with self._lock:
                self._avatars[key] = model
        return model

    def _match_sharpness(self, avatar: AvatarModel) -> None:
        """Paint this avatar's open mouth as sharp as its portrait's (``sharpness``)."""
        f, g = avatar.features, self.geo
        params = [FaceParams(opening, True) for opening in sharpness.OPENINGS]
        openings = [coefficients(p, avatar.parted)[OPEN] for p in params]
        if f.mesh is None:
            x0, x1, y0, y1 = f.mx - f.a, f.mx + f.a, f.my - f.lip, f.my + f.lip
        else:  # the outer lips' box, as the face analysis finds it
            lips = f.mesh[np.unique(edges("lips")), :2]
            (x0, y0), (x1, y1) = lips.min(axis=0), lips.max(axis=0)
        cols = slice(max(0, round(g.x0 + x0)), round(g.x0 + x1) + 1)
        top = max(0, round(g.y0 + y0))
        closed = (slice(top, round(g.y0 + y1) + 1), cols)
        opened = [(slice(top, round(g.y0 + y1 + f.drop * o) + 1), cols) for o in openings]

        def draw(sigmas: list[float]) -> list[np.ndarray]:
            avatar.features = dataclasses.replace(f, blur=tuple(zip(openings, sigmas,
                                                                    strict=True)))
            return self.render_many([(avatar, p) for p in params])

        blurs = sharpness.paint_blurs(draw, avatar.background.numpy(), closed, opened, f.a)
        avatar.features = dataclasses.replace(f, blur=tuple(zip(openings, blurs, strict=True)))

    def render_many(self, items: Sequence[tuple[AvatarModel, FaceParams]]) -> list[np.ndarray]:
        """One batched step: every (avatar, params) pair → an H×W×3 uint8 frame."""
        if not items:
            return []
        with torch.inference_mode():
            frames = self._render(items)
        return [f.numpy() for f in frames]

    def _render(self, items: Sequence[tuple[AvatarModel, FaceParams]]) -> list[torch.Tensor]:
        weights = [coefficients(p, a.parted) for a, p in items]
        groups = _groups(items, weights)
        order = [i for rows in groups.values() for i in rows]  # frames of one avatar together
        ordered = [items[i] for i in order]
        coef = [weights[i] for i in order]
        # Where the head carries the lips (whole rows: the mouth fields are shifted by it).
        lips_at = [(a.features.mx, a.features.my + round(head_offset(a.fields, p, a.features.mx,
                                                                     a.features.my)[1]))
                   for a, p in ordered]
        mouths, columns, mouth_at, moving = self._mouths(ordered, lips_at, coef)
        moves, lifts = _eye_motion(ordered)
        g = self.geo
        out = kernel.render(
            self.base, [a.warp for a, _ in groups], [len(rows) for rows in groups.values()],
            torch.tensor(coef, dtype=torch.float32),
            [round(y - a.features.my) for (a, _), (_, y) in zip(ordered, lips_at, strict=True)],
            moves, torch.tensor(lifts, dtype=torch.float32).view(len(ordered), 2),
            [g.mouth[0], g.eyes[0], g.eyes[1]], [a.background for a, _ in ordered],
            mouths, mouth_at, [*self._patch_uv, self._grain, columns], [g.y0, g.y1, g.x0, g.x1],
            [a.spans[level] if level >= 0 else a.whole for a, level in groups],
            moving, list(self._squeeze[:2]), g.margin,
        )
        frames: list[torch.Tensor] = [out[0]] * len(items)
        for j, i in enumerate(order):
            frames[i] = out[j]
        return frames

    def _mouths(self, ordered: Sequence[tuple[AvatarModel, FaceParams]],
                lips_at: list[tuple[float, float]], coef: list[list[float]],
                ) -> tuple[torch.Tensor, torch.Tensor, list[list[int]], list[list[int]]]:
        """Each open mouth's shading parameters, its parting line and teeth columns
        (``mouth.parting``, ``mouth.teeth_columns``), and where its patch goes;
        and where each moving mouth of a parted portrait is smoothed (``kernel._unsqueeze``).

        The gap the jaw warp opened (inner mouth, teeth, tongue) is shaded for all open
        mouths at once on a small patch of the tier's size placed at each mouth.
        """
        ph, pw, above, half = self._patch
        rh, rw = self.geo.region
        rows, columns, at, moving = [], [], [], []
        for j, ((avatar, p), (at_x, at_y)) in enumerate(zip(ordered, lips_at, strict=True)):
            # Only lips closing over a portrait's own teeth squeeze its rows (elsewhere the
            # fields stretch, or squeeze under the paint): only those are smoothed.
            if avatar.parted and any(coef[j][k] != 0 for k in (OPEN, PRESS)):
                sh, sw, up, side = self._squeeze
                moving.append([j, min(max(0, round(at_y) - up), rh - sh - 1),
                               min(max(0, round(at_x) - side), rw - sw)])
            ox = min(max(0, round(at_x) - half), rw - pw)
            oy = min(max(0, round(at_y) - above), rh - ph)
            if coef[j][OPEN] <= 0 and coef[j][RAISE] <= 0 and coef[j][TUCK] <= 0:
                continue
            at.append([j, oy, ox])
            f = avatar.features
            columns.append((f.parting[ox : ox + pw] + (at_y - f.my - oy),
                            f.teeth[ox : ox + pw]))
            rows.append([at_x - ox, at_y - oy, f.a, f.drop, coef[j][OPEN], p.lip_round,
                         *f.inner, *f.lips, *f.enamel, coef[j][RAISE], coef[j][TUCK],
                         max(0.0, min(1.0, p.tongue)), f.own_teeth, f.grain, f.lip, f.soft,
                         sharpness.at(f.blur, coef[j][OPEN])])
        per_column = np.asarray(columns, np.float32).reshape(len(columns), 2, 1, pw)
        return _params(rows, 23), torch.from_numpy(per_column), at, moving


def _params(rows: list[list[float]], width: int) -> torch.Tensor:
    """Per-patch parameters as [k, width, 1, 1] (k may be 0)."""
    return torch.tensor(rows, dtype=torch.float32).view(len(rows), width, 1, 1)


def head_offset(f: fields.Fields, p: FaceParams, x: float, y: float) -> tuple[float, float]:
    """How far the head transform carries the content at (x, y) of R, in pixels (a turn
    carries the nose and lips further than the outline: the head field's weight there)."""
    theta = math.radians(p.head_roll)
    px, py = f.pivot
    rows, cols = f.head.shape[0], f.head.shape[1]
    turn = float(f.head[min(max(0, round(y)), rows - 1), min(max(0, round(x)), cols - 1)])
    breath = max(0.0, min(1.0, p.breath)) * f.breath_pixels
    return (-(p.head_yaw * f.head_pixels[0] * turn + theta * (y - py)),
            -(p.head_pitch * f.head_pixels[1] * turn - theta * (x - px)) - breath)


def _eye_motion(ordered: Sequence[tuple[AvatarModel, FaceParams]],
                ) -> tuple[list[list[int]], list[list[float]]]:
    """Per frame: how far the head carries the eyes (whole pixels: down, right) and the
    lids' rows exactly (a row offset at the roll pivot and its slope per column)."""
    moves, lifts = [], []
    for avatar, p in ordered:
        f = avatar.fields
        x, y = np.mean(avatar.features.eye_centres, axis=0)
        dx, dy = head_offset(f, p, float(x), float(y))
        moves.append([round(dy), round(dx)])
        _, zero_y = head_offset(f, p, f.pivot[0], float(y))
        lifts.append([zero_y, math.radians(p.head_roll)])
    return moves, lifts


def _uv(top: int, bottom: int, left: int, right: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A patch's rows ([1, 1, h, 1]) and columns ([1, 1, 1, w]): what depends on the
    column alone (the mouth's width profile, the teeth's seams) is computed once per
    column, not per pixel."""
    v = torch.arange(top, bottom, dtype=torch.float32)
    u = torch.arange(left, right, dtype=torch.float32)
    return v[None, None, :, None], u[None, None, None, :]


def _groups(items: Sequence[tuple[AvatarModel, FaceParams]], weights: list[list[float]],
            ) -> dict[tuple[AvatarModel, int], list[int]]:
    """The frames of each avatar, apart by the first of LEVELS their coefficients
    (``weights``) are within (drawn on the avatar's spans for it), -1 if none (drawn on the
    whole of R): how a frame is drawn depends on itself alone."""
    groups: dict[tuple[AvatarModel, int], list[int]] = {}
    for i, ((avatar, _), c) in enumerate(zip(items, weights, strict=True)):
        level = next((k for k, limits in enumerate(LEVELS)
                      if all(abs(x) <= limit for x, limit in zip(c, limits, strict=True))), -1)
        groups.setdefault((avatar, level), []).append(i)
    return groups


_models: dict[str, TierModel] = {}
_models_lock = threading.Lock()


def tier_model(tier: Tier) -> TierModel:
    """The worker's one model per tier (avatars of a tier share it, and its batches)."""
    with _models_lock:
        if not _models:
            configure_threads()
        if tier.name not in _models:
            _models[tier.name] = TierModel(tier)
        return _models[tier.name]


class TorchRenderer:
    """One session's view of the model: the pipeline's ``Renderer`` for an avatar."""

    def __init__(self, model: TierModel, asset: bytes) -> None:
        self.model = model
        self.avatar = model.avatar(asset)
        self.width = model.width
        self.height = model.height
        self.mouth_box = mouth_box(self.avatar)

    def render(self, batch: Sequence[FaceParams]) -> list[np.ndarray]:
        return self.model.render_many([(self.avatar, p) for p in batch])


def mouth_box(avatar: AvatarModel) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) in the output frame where this avatar's mouth can open:
    the lips' width and from above the lip line to below the furthest jaw drop (plus the
    head's small motion), for scoring lip-sync from pixels."""
    f, geo = avatar.features, avatar.geo
    pad = geo.margin
    top = geo.y0 + f.my - f.lip - pad
    bottom = geo.y0 + f.my + f.lip + f.drop + pad
    left, right = geo.x0 + f.mx - f.a - pad, geo.x0 + f.mx + f.a + pad
    return (max(0, round(top)), min(geo.height, round(bottom)),
            max(0, round(left)), min(geo.width, round(right)))
