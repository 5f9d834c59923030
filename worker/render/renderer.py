"""The avatar model: warps a rigged portrait per frame with torch (CPU), batched.

Per avatar and tier, once (:class:`AvatarModel`): the portrait is scaled so its face box
lands at the tier's fixed face place (so every avatar of a tier shares one face-region
geometry and can be stacked into one batch), the background frame is prepared, and the
displacement *basis fields* of the face region are precomputed: jaw drop, upper-lip lift,
lip rounding, lip press, gaze x/y, head yaw/pitch/roll (roll linearised: angles are a
few degrees). Per frame a sampling grid is the base grid plus the fields weighted by the
frame's FaceParams; one ``grid_sample`` per distinct avatar of the batch warps all its
frames' face regions (their grids stacked), then the opened mouth (inner mouth, upper and
lower teeth, tongue) and the eyelids are shaded on small patches, and the region is
pasted into the background. uint8 out. That per-frame tensor math is compiled
(``worker.render_kernel``); this module prepares its inputs and the avatars.

Every step is element-wise per frame (no reduction across the batch), so a frame is the
same bytes whether it is rendered alone or in a batch.
"""

from __future__ import annotations

import hashlib
import math
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cache

import cv2
import numpy as np
import torch

from protoface.domain.tiers import Tier
from protoface.worker.face.analysis.build import landmarks_from_bytes
from protoface.worker.face.analysis.topology import INNER_LOWER_LIP, INNER_UPPER_LIP
from protoface.worker.face.features import FaceParams
from protoface.worker.render import framing, kernel
from protoface.worker.render.rig import (
    Asset,
    Landmarks,
    landmarks,
    load_asset,
    plate_rgb,
    portrait_rgb,
)

FACE_CENTRE_Y = 0.45  # the face box's centre, as a share of the frame height
BASIS = ("open", "round", "press", "gaze_x", "gaze_y", "yaw", "pitch", "roll")
OPEN, ROUND, PRESS, GAZE_X, GAZE_Y, YAW, PITCH, ROLL = range(len(BASIS))


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
    x0, x1 = max(0, round(cx - 0.72 * face)), min(w, round(cx + 0.72 * face))
    y0, y1 = max(0, round(top - 0.3 * face)), min(h, round(top + 1.4 * face))
    rel_top, rel_cx = top - y0, cx - x0

    def box(t: float, b: float, half: float) -> tuple[int, int, int, int]:
        return (max(0, round(rel_top + t * face)), min(y1 - y0, round(rel_top + b * face)),
                max(0, round(rel_cx - half * face)), min(x1 - x0, round(rel_cx + half * face)))

    return Geometry(w, h, face, x0, y0, x1, y1, max(2, round(0.08 * face)),
                    mouth=box(0.5, 1.15, 0.45), eyes=box(0.12, 0.65, 0.47))


def _smoothstep(e0: float, e1: float, x: torch.Tensor) -> torch.Tensor:
    t = ((x - e0) / (e1 - e0)).clamp(0, 1)
    return t * t * (3 - 2 * t)


@dataclass(frozen=True, slots=True)
class Features:
    """An avatar's features in region-R pixel coordinates (after the tier's scaling)."""

    mx: float  # mouth centre (the lip line)
    my: float
    a: float  # mouth half-width
    lip: float  # lips' half-height
    drop: float  # how far the lower lip travels at mouth_open = 1
    eyes: tuple[tuple[float, float, float, float], ...]  # (x, y, rx, ry) of each eye
    cx: float  # face centre
    cy: float
    chin: float
    skin: tuple[float, float, float]
    lips: tuple[float, float, float]
    inner: tuple[float, float, float]
    gap: float = 0.0  # the portrait's own gap between its inner lips (parted lips)


class AvatarModel:
    """One avatar prepared for one tier: background, warp source, basis fields."""

    def __init__(self, marks: Landmarks, rgb: np.ndarray, geo: Geometry,
                 lip_gap: float = 0.0, plate: np.ndarray | None = None) -> None:
        """``lip_gap``: the portrait's inner-lip gap in its own pixels (0: lips closed);
        ``plate``: the portrait without the person, continued where the frame is wider."""
        self.geo = geo
        scale = geo.face / marks.face.h
        fx, fy = marks.face.centre
        tx, ty = geo.width / 2 - scale * fx, FACE_CENTRE_Y * geo.height - scale * fy
        self.background = torch.from_numpy(framing.extend(
            rgb, rgb if plate is None else plate, framing.Placement(scale, tx, ty),
            (geo.width, geo.height), geo.face))
        self.features = replace(_features(marks, scale, tx - geo.x0, ty - geo.y0, geo),
                                gap=scale * lip_gap)
        # Lips parted at rest (a smile over the teeth): closed whenever the jaw is.
        self.parted = self.features.gap > PARTED * self.features.a
        self.source = _source(self.background.numpy(), geo)  # [3, Hs, Ws] float32
        self.fields = _fields(self.features, geo)
        f = self.fields
        self.warp: kernel.Warp = (
            self.source, [f.head, f.roll, f.open, f.round, f.press, f.gaze],
            [*f.head_scale, *f.gaze_scale], f.slack)


def _lip_gap(asset: Asset) -> float:
    """The gap between the portrait's inner lips (its pixels), from the asset's mesh."""
    if asset.mesh is None:
        return 0.0
    points = landmarks_from_bytes(asset.mesh)
    return max(0.0, float(points[INNER_LOWER_LIP, 1] - points[INNER_UPPER_LIP, 1]))


def _source(background: np.ndarray, geo: Geometry) -> torch.Tensor:
    m = geo.margin
    padded = cv2.copyMakeBorder(background, m, m, m, m, cv2.BORDER_REPLICATE)
    crop = padded[geo.y0 : geo.y1 + 2 * m, geo.x0 : geo.x1 + 2 * m]
    # +0.5: the warped values then round to uint8 by truncation, with no pass of their own.
    return torch.from_numpy(np.ascontiguousarray(crop)).permute(2, 0, 1).float().add(0.5)


def _features(marks: Landmarks, s: float, tx: float, ty: float, geo: Geometry) -> Features:
    def at(x: float, y: float) -> tuple[float, float]:
        return s * x + tx, s * y + ty

    mx, my = at(*marks.mouth.centre)
    a = min(0.2 * geo.face, max(2.0, s * marks.mouth.w / 2))
    cx, cy = at(*marks.face.centre)
    eyes = tuple((*at(*e.centre), min(0.12 * geo.face, max(1.5, s * e.w / 2)),
                  min(0.06 * geo.face, max(1.0, s * e.h / 2))) for e in marks.eyes)
    return Features(
        mx=mx, my=my, a=a, lip=max(1.0, s * marks.mouth.h / 2), drop=0.8 * a, eyes=eyes,
        cx=cx, cy=cy, chin=cy + 0.6 * geo.face,
        skin=_f3(marks.skin), lips=_f3(marks.lips), inner=_f3(marks.inner_mouth),
    )


def _f3(c: tuple[int, int, int]) -> tuple[float, float, float]:
    return float(c[0]), float(c[1]), float(c[2])


@dataclass(frozen=True, slots=True)
class Fields:
    """Displacement of the sampling point per unit of each coefficient (grid units).

    Each field lives only where it can be non-zero: the head fields over all of R, the
    mouth fields over the rows from the mouth box down (the jaw moves the chin), the
    gaze field over the eye band.
    """

    head: torch.Tensor  # [rh, rw, 1]: times (x per degree of yaw, y per degree of pitch)
    roll: torch.Tensor  # [rh, rw, 2] per radian
    open: torch.Tensor  # [rl, rw, 1] y: jaw drop and upper-lip lift at mouth_open = 1
    round: torch.Tensor  # [rl, rw, 1] x: +1 squeezes the lips inward
    press: torch.Tensor  # [rl, rw, 1] y: lips squashed onto the lip line
    gaze: torch.Tensor  # [re, rw, 1]: times (x per unit gaze_x, y per unit gaze_y)
    head_scale: tuple[float, float]  # (yaw, pitch) grid units per degree
    head_pixels: tuple[float, float]  # the same in pixels
    pivot: tuple[float, float]  # where roll turns the head (R pixels)
    slack: int  # rows the mouth fields extend past their box, above and below
    gaze_scale: tuple[float, float]


def _fields(f: Features, geo: Geometry) -> Fields:
    rh, rw = geo.region
    v, u = torch.meshgrid(torch.arange(rh, dtype=torch.float32),
                          torch.arange(rw, dtype=torch.float32), indexing="ij")
    m = geo.margin
    sx, sy = 2 / (rw + 2 * m), 2 / (rh + 2 * m)  # pixels → grid units
    # 1 over the head, falling to 0 before the edge of R (so R pastes back seamlessly).
    head_r = torch.sqrt(((u - f.cx) / (0.72 * geo.face)) ** 2
                        + ((v - f.cy - 0.05 * geo.face) / (0.85 * geo.face)) ** 2)
    head = 1 - _smoothstep(0.7, 1.0, head_r)
    px, py = f.cx, f.cy + 0.6 * geo.face  # roll pivots at the neck
    roll = torch.stack(((v - py) * head * sx, -(u - px) * head * sy), dim=-1)
    # The mouth fields follow the lips when the head moves them up or down: they are
    # computed ``slack`` rows past their box each way and sliced per frame.
    slack = math.ceil(0.04 * geo.face) + 2
    lv, lu = torch.meshgrid(torch.arange(geo.mouth[0] - slack, rh + slack, dtype=torch.float32),
                            torch.arange(rw, dtype=torch.float32), indexing="ij")
    narrow = torch.exp(-(((lu - f.mx) / f.a) ** 4))
    broad = torch.exp(-(((lu - f.mx) / (2.0 * f.a)) ** 2))
    below = torch.sigmoid((lv - f.my) * 4)
    chin_blend = _smoothstep(f.my, f.my + 3 * f.lip, lv)
    fade = 1 - _smoothstep(f.chin, f.chin + 0.3 * geo.face, lv)
    # Content below the lip line moves down by `drop` (so it is sampled from above);
    # the upper lip rises a fifth of that.
    jaw = -f.drop * below * (narrow * (1 - chin_blend) + broad * chin_blend) * fade
    lift = 0.2 * f.drop * (1 - below) * narrow * torch.exp(-(((f.my - lv) / (2.5 * f.lip)) ** 2))
    zone = torch.exp(-(((lv - f.my) / (2 * f.lip)) ** 2) - ((lu - f.mx) / (1.6 * f.a)) ** 2)
    # Pressed, the lips squash onto the line, and lips parted in the portrait close their
    # gap (above the line the upper lip is sampled from half the gap higher, below it the
    # lower lip from half the gap lower: they meet at the line) between the mouth's
    # corners only: a shift left on the cheeks would draw a seam across the face.
    corners = torch.exp(-(((lu - f.mx) / (1.05 * f.a)) ** 8) - ((lv - f.my) / (2 * f.lip)) ** 2)
    press = (0.35 * (lv - f.my) * zone + torch.sign(lv - f.my) * 0.5 * f.gap * corners)
    band = slice(geo.eyes[0], geo.eyes[1])
    ev, eu = v[band], u[band]
    eyes = sum((((1 - torch.sqrt(((eu - x) / rx) ** 2 + ((ev - y) / ry) ** 2)) * 3).clamp(0, 1)
                for x, y, rx, ry in f.eyes), torch.zeros_like(eu))
    rx_eye = sum(e[2] for e in f.eyes) / len(f.eyes)
    ry_eye = sum(e[3] for e in f.eyes) / len(f.eyes)
    return Fields(
        head=head[..., None].contiguous(), roll=roll.contiguous(),
        open=((jaw + lift) * sy)[..., None].contiguous(),
        round=(0.3 * (lu - f.mx) * zone * sx)[..., None].contiguous(),
        press=(press * sy)[..., None].contiguous(),
        gaze=eyes[..., None].contiguous(),
        head_scale=(-0.012 * geo.face * sx, -0.010 * geo.face * sy),
        head_pixels=(-0.012 * geo.face, -0.010 * geo.face), pivot=(px, py), slack=slack,
        gaze_scale=(-0.35 * rx_eye * sx, -0.3 * ry_eye * sy),
    )


# The lip-sync model's closure reads as shut from 0.5 (its own evaluation's threshold).
UNSEALED, SEALED = 0.1, 0.5
RELAX = 0.9  # how far parted lips come together with the jaw closed
SPEAKING_JAW = 0.12  # while speaking the jaw opens from here (0 … 1 maps onto 0.12 … 1)
PARTED = 0.1  # a rest gap over this share of the mouth's half-width: lips parted


def seal(press: float) -> float:
    """How far the lips are drawn together for the face driver's ``lip_press``: lips
    that press meet whole (a seal is all or nothing to a viewer), so a press from
    ``SEALED`` up draws them shut, and a light one only brings them closer."""
    t = max(0.0, min(1.0, (press - UNSEALED) / (SEALED - UNSEALED)))
    return t * t * (3 - 2 * t)


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
        # Nobody holds a smile over the teeth through speech, and a mouth at rest is
        # closed: with the jaw closed (between sounds, in silence) the parted lips come
        # together; the jaw opens them again. Silence and speech then agree, so the lips
        # do not spring apart when the speech stops.
        press = max(press, RELAX * (1.0 - jaw))
    return [opening, p.lip_round, press, p.gaze_x, p.gaze_y,
            p.head_yaw, p.head_pitch, math.radians(p.head_roll)]


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
        self.base = torch.stack((gx, gy), dim=-1)  # [rh, rw, 2]: the identity warp of R
        # The patch an open mouth is shaded on: (height, width, rows above the lip line,
        # columns either side of the mouth centre); mouths are at most 0.4 faces wide.
        half, above = math.ceil(0.26 * self.geo.face), math.ceil(0.05 * self.geo.face) + 1
        self._patch = (above + math.ceil(0.19 * self.geo.face) + 2, 2 * half + 1, above, half)
        self._patch_uv = _uv(0, self._patch[0], 0, self._patch[1])
        # The patch a closing eye is shaded on (eyes are at most 0.24 × 0.12 faces).
        half_w, half_h = math.ceil(0.14 * self.geo.face) + 2, math.ceil(0.09 * self.geo.face) + 3
        self._eye_patch = (2 * half_h + 1, 2 * half_w + 1, half_h, half_w)
        self._eye_uv = _uv(0, self._eye_patch[0], 0, self._eye_patch[1])
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
            decoded = load_asset(asset)
            rgb = portrait_rgb(decoded)
            model = AvatarModel(landmarks(decoded.rig, rgb), rgb, self.geo, _lip_gap(decoded),
                                plate_rgb(decoded))
            with self._lock:
                self._avatars[key] = model
        return model

    def render_many(self, items: Sequence[tuple[AvatarModel, FaceParams]]) -> list[np.ndarray]:
        """One batched step: every (avatar, params) pair → an H×W×3 uint8 frame."""
        if not items:
            return []
        with torch.inference_mode():
            frames = self._render(items)
        return [f.numpy() for f in frames]

    def _render(self, items: Sequence[tuple[AvatarModel, FaceParams]]) -> list[torch.Tensor]:
        groups = _groups(items)
        order = [i for rows in groups.values() for i in rows]  # frames of one avatar together
        ordered = [items[i] for i in order]
        coef = [coefficients(p, a.parted) for a, p in ordered]
        # Where the head carries the lips (whole rows: the mouth fields are shifted by it).
        lips_at = [(a.features.mx, a.features.my + round(head_offset(a.fields, p, a.features.mx,
                                                                     a.features.my)[1]))
                   for a, p in ordered]
        mouths, mouth_at = self._mouths(ordered, lips_at, [c[OPEN] for c in coef])
        lids, lid_at = self._lids(ordered)
        g = self.geo
        out = kernel.render(
            self.base, [a.warp for a in groups], [len(rows) for rows in groups.values()],
            torch.tensor(coef, dtype=torch.float32),
            [round(y - a.features.my) for (a, _), (_, y) in zip(ordered, lips_at, strict=True)],
            [g.mouth[0], g.eyes[0], g.eyes[1]], [a.background for a, _ in ordered],
            mouths, mouth_at, list(self._patch_uv), lids, lid_at, list(self._eye_uv),
            [g.y0, g.y1, g.x0, g.x1],
        )
        frames: list[torch.Tensor] = [out[0]] * len(items)
        for j, i in enumerate(order):
            frames[i] = out[j]
        return frames

    def _mouths(self, ordered: Sequence[tuple[AvatarModel, FaceParams]],
                lips_at: list[tuple[float, float]], opening: list[float],
                ) -> tuple[torch.Tensor, list[list[int]]]:
        """Each open mouth's shading parameters, and where its patch goes.

        The gap the jaw warp opened (inner mouth, teeth, tongue) is shaded for all open
        mouths at once on a small patch of the tier's size placed at each mouth.
        """
        ph, pw, above, half = self._patch
        rh, rw = self.geo.region
        rows, at = [], []
        for j, ((avatar, p), (at_x, at_y)) in enumerate(zip(ordered, lips_at, strict=True)):
            if opening[j] <= 0:
                continue
            ox = min(max(0, round(at_x) - half), rw - pw)
            oy = min(max(0, round(at_y) - above), rh - ph)
            at.append([j, oy, ox])
            f = avatar.features
            rows.append([at_x - ox, at_y - oy, f.a, f.drop, opening[j], p.lip_round, *f.inner,
                         *f.lips])
        return _params(rows, 12), at

    def _lids(self, ordered: Sequence[tuple[AvatarModel, FaceParams]],
              ) -> tuple[torch.Tensor, list[list[int]]]:
        """Each closing eye's lid parameters, and where its patch goes (lids follow the
        head's motion)."""
        ph, pw, half_h, half_w = self._eye_patch
        rh, rw = self.geo.region
        rows, at = [], []
        for j, (avatar, p) in enumerate(ordered):
            if p.blink <= 0:
                continue
            for x, y, half_x, half_y in avatar.features.eyes:
                dx, dy = head_offset(avatar.fields, p, x, y)
                ox = min(max(0, round(x + dx) - half_w), rw - pw)
                oy = min(max(0, round(y + dy) - half_h), rh - ph)
                at.append([j, oy, ox])
                rows.append([min(1.0, p.blink), *avatar.features.skin,
                             x + dx - ox, y + dy - oy, half_x * 1.15, half_y * 1.35])
        return _params(rows, 8), at


def _params(rows: list[list[float]], width: int) -> torch.Tensor:
    """Per-patch parameters as [k, width, 1, 1] (k may be 0)."""
    return torch.tensor(rows, dtype=torch.float32).view(len(rows), width, 1, 1)


def head_offset(f: Fields, p: FaceParams, x: float, y: float) -> tuple[float, float]:
    """How far the head transform carries the content at (x, y) of R, in pixels."""
    theta = math.radians(p.head_roll)
    px, py = f.pivot
    return (-(p.head_yaw * f.head_pixels[0] + theta * (y - py)),
            -(p.head_pitch * f.head_pixels[1] - theta * (x - px)))


def _uv(top: int, bottom: int, left: int, right: int) -> tuple[torch.Tensor, torch.Tensor]:
    v, u = torch.meshgrid(torch.arange(top, bottom, dtype=torch.float32),
                          torch.arange(left, right, dtype=torch.float32), indexing="ij")
    return v[None, None], u[None, None]


def _groups(items: Sequence[tuple[AvatarModel, FaceParams]]) -> dict[AvatarModel, list[int]]:
    groups: dict[AvatarModel, list[int]] = {}
    for i, (avatar, _) in enumerate(items):
        groups.setdefault(avatar, []).append(i)
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
