"""Eyes, head and framing judged as a viewer would: on rendered pixels, with the face's
landmarks re-detected on the frames (``face.analysis.measure``), never from the
renderer's own parameters."""

from __future__ import annotations

import math
from functools import cache
from pathlib import Path

import cv2
import numpy as np
import pytest

from protoface.domain.tiers import TIERS
from protoface.worker.face.analysis.build import landmarks_from_bytes
from protoface.worker.face.analysis.features import face_width
from protoface.worker.face.analysis.measure import measure
from protoface.worker.face.features import FaceParams
from protoface.worker.render.mouth import LOWER_INNER, UPPER_INNER
from protoface.worker.render.renderer import OPEN, TierModel, TorchRenderer, coefficients
from protoface.worker.render.rig import build_asset, load_asset, stock_asset

FACES = Path(__file__).parents[1] / "data" / "faces"
AVATARS = ["av_stock_001", "av_stock_002", "av_stock_003", "grace_hopper"]
STILL = FaceParams(0.0, False)  # silent in a turn
AT_REST = FaceParams(0.0, False, rest=1.0)  # silent a while: the portrait's own expression
EYE_POINTS = (33, 133, 263, 362, 468, 473)  # eye corners and iris centres
NOSE, NOSE_BASE = 1, 2
LIPS = (61, 291, 0, 17, 37, 267, 84, 314)  # the outer lips' corners and contour


@cache
def model(tier: str = "standard") -> TierModel:
    return TierModel(TIERS[tier])


@cache
def asset(name: str) -> bytes:
    """A stock avatar, or the custom portrait (a photo with glasses) built as an upload."""
    if name.startswith("av_stock"):
        return stock_asset(name)
    return build_asset((FACES / f"{name}.jpg").read_bytes())


def renderer(name: str, tier: str = "standard") -> TorchRenderer:
    return TorchRenderer(model(tier), asset(name))


def _sorted(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A contour's (x, y) in order of x (for np.interp)."""
    order = np.argsort(points[:, 0])
    return points[order, 0].astype(np.float64), points[order, 1].astype(np.float64)


def ssim(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-pixel SSIM of two RGB frames' luma (Gaussian window, σ = 1.5)."""
    x, y = (cv2.cvtColor(f, cv2.COLOR_RGB2GRAY).astype(np.float64) for f in (a, b))
    blur = lambda z: cv2.GaussianBlur(z, (11, 11), 1.5)  # noqa: E731
    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    return np.asarray(((2 * mx * my + c1) * (2 * cxy + c2))
                      / ((mx**2 + my**2 + c1) * (vx + vy + c2)))


def eye_boxes(r: TorchRenderer) -> np.ndarray:
    """True over each eye with its lids and lashes (frame pixels), and a margin."""
    g = r.model.geo
    inside = np.zeros((r.height, r.width), bool)
    for eye in r.avatar.features.eyes:
        pts = np.concatenate((eye.upper, eye.lower)) + np.array([g.x0, g.y0])
        (x0, y0), (x1, y1) = pts.min(axis=0), pts.max(axis=0)
        tall, wide = y1 - y0, x1 - x0
        inside[max(0, round(y0 - 1.2 * tall) - 6) : round(y1 + 1.2 * tall) + 6,
               max(0, round(x0 - 0.2 * wide) - 6) : round(x1 + 0.2 * wide) + 6] = True
    return inside


@pytest.mark.parametrize("name", AVATARS)
def test_a_blink_shuts_the_eyes_and_changes_nothing_else(name: str) -> None:
    r = renderer(name)
    still, before, shut = r.render([STILL, FaceParams(0.0, False, blink=0.7),
                                    FaceParams(0.0, False, blink=1.0)])
    opened, closed = measure(still), measure(shut)
    assert opened is not None and closed is not None
    # Lids shut (eye aspect ratio, from the landmarks found on the frame): <= 0.10 on
    # every avatar, behind glasses too (0.05-0.09 measured).
    for before_ear, after_ear in zip(opened.eye_aspect, closed.eye_aspect, strict=True):
        assert after_ear <= 0.10 and after_ear <= 0.6 * before_ear
    # Nothing but the lids moved between the blink's peak and the frame before it.
    outside = ~eye_boxes(r)
    assert float(ssim(before, shut)[outside].mean()) >= 0.99


def _nose(frame: np.ndarray) -> np.ndarray:
    found = measure(frame)
    assert found is not None
    return np.asarray(found.landmarks[NOSE, :2], np.float64)


def _shift(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """How far the content of patch ``b`` moved against ``a`` (x, y), by phase correlation."""
    ga, gb = (cv2.cvtColor(p, cv2.COLOR_RGB2GRAY).astype(np.float64) for p in (a, b))
    window = cv2.createHanningWindow(ga.shape[::-1], cv2.CV_64F)
    (dx, dy), _ = cv2.phaseCorrelate(ga, gb, window)
    return np.array([dx, dy])


def _head_clip() -> list[FaceParams]:
    return [FaceParams(0.0, False, head_yaw=4 * math.sin(0.7 * i),
                       head_pitch=3 * math.sin(1.1 * i + 1), head_roll=2 * math.sin(0.5 * i))
            for i in range(10)]


@pytest.mark.parametrize("name", AVATARS)
def test_hair_and_outline_follow_the_nose_and_the_collar_stays(name: str) -> None:
    r = renderer(name)
    clip = _head_clip()
    rest, *frames = r.render([STILL, *clip])
    f, g = r.avatar.features, r.model.geo
    cx, cy, face = f.cx + g.x0, f.cy + g.y0, f.face
    # The top of the head: hair (or hat) and its outline against the background.
    top = slice(max(0, round(cy - 0.85 * face)), round(cy - 0.35 * face))
    wide = slice(round(cx - 0.45 * face), round(cx + 0.45 * face))
    nose0 = _nose(rest)
    nose = np.array([_nose(frame) - nose0 for frame in frames])
    hair = np.array([_shift(rest[top, wide], frame[top, wide]) for frame in frames])
    n, h = nose.ravel(), hair.ravel()
    assert np.corrcoef(n, h)[0, 1] >= 0.8
    assert float(n @ h / (n @ n)) >= 0.7  # gain: the hair moves as far as the face
    # The collar (below the neck's bend) does not move with the head.
    chin = f.chin + g.y0
    collar = (slice(round(chin + 0.65 * face), round(chin + 0.85 * face)), wide)
    for frame in frames:
        assert np.abs(frame[collar].astype(int) - rest[collar]).mean() <= 2


def test_breathing_lifts_the_shoulders_a_pixel_and_nothing_smears() -> None:
    r = renderer("av_stock_002")
    rest, inhaled = r.render([STILL, FaceParams(0.0, False, breath=1.0)])
    f, g = r.avatar.features, r.model.geo
    chin, cx, face = f.chin + g.y0, f.cx + g.x0, f.face
    # The shoulders' top, inside the region the renderer draws (further down the frame
    # is the portrait as it is, still: the rise fades out at the region's foot).
    collar = (slice(round(chin + 0.2 * face), min(g.y1, round(chin + 0.5 * face))),
              slice(round(cx - 0.6 * face), round(cx + 0.6 * face)))
    dx, dy = _shift(rest[collar], inhaled[collar])
    assert -1.3 <= dy <= -0.5 and abs(dx) < 0.2  # 1 px up at 512²
    # Compensated for that rise, the collar is the same pixels.
    back = cv2.warpAffine(inhaled, np.float32([[1, 0, -dx], [0, 1, -dy]]), (r.width, r.height),
                          flags=cv2.INTER_LINEAR)
    assert np.abs(back[collar].astype(int) - rest[collar]).mean() <= 2


@pytest.mark.parametrize("name", AVATARS)
def test_a_face_at_rest_keeps_the_portraits_eyes_nose_and_face(name: str) -> None:
    # Silence at rest (a session settled, a turn over for a second or more): the
    # portrait's own expression, a smile over the teeth included.
    r = renderer(name)
    still = r.render([AT_REST])[0]
    found = measure(still)
    assert found is not None
    drawn, width = _drawn_mesh(r, name)
    error = np.linalg.norm(found.landmarks[:, :2] - drawn, axis=1)
    assert error[list(EYE_POINTS)].max() <= 0.015 * width
    assert error[NOSE] <= 0.015 * width
    # The face region (the mesh's hull) is the portrait's: SSIM against the portrait as
    # placed on the frame.
    hull = _hull(drawn, still.shape[:2])
    assert ssim(still, r.avatar.background.numpy())[hull].mean() >= 0.95


def test_a_smile_over_the_teeth_closes_in_a_turn_and_keeps_the_face_around_it() -> None:
    # In a turn (just after a word, in a pause) the parted lips are sealed (issue 19: the
    # mouth is closed within 150 ms of the speech's end); the face around them stays the
    # portrait's, and the nose's own pixels do not move (the landmark model, fitting the
    # whole face at once, places the nose tip 2 % of the face width lower on a closed
    # mouth: measured on the pixels instead).
    r = renderer("av_stock_001")
    assert r.avatar.parted
    still, portrait = r.render([STILL])[0], r.avatar.background.numpy()
    drawn, width = _drawn_mesh(r, "av_stock_001")
    found = measure(still)
    assert found is not None and found.lip_gap < 0.1 * r.avatar.features.a
    hull = _hull(drawn, still.shape[:2])
    lips = _hull(drawn[list(LIPS)], still.shape[:2], grow=round(0.06 * width))
    assert ssim(still, portrait)[hull & ~lips].mean() >= 0.95
    # The nose from above its tip to just above its base (the upper lip below stretches).
    x, y = np.round(drawn[NOSE]).astype(int)
    half, base = round(0.08 * width), round(drawn[NOSE_BASE, 1]) - 2
    patch = (slice(y - half, base), slice(x - half, x + half))
    grey = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY)[patch].astype(np.float64)
            for f in (portrait, still)]
    shift = cv2.phaseCorrelate(grey[0], grey[1])[0]
    assert math.hypot(*shift) <= 0.5
    assert np.abs(grey[0] - grey[1]).mean() <= 2


def _drawn_mesh(r: TorchRenderer, name: str) -> tuple[np.ndarray, float]:
    """The portrait's own mesh (from its asset) as placed on the frame, and its face
    width there."""
    where = r.avatar.placement
    mesh = landmarks_from_bytes(load_asset(asset(name)).mesh or b"")[:, :2]
    drawn = mesh * where.scale + (where.tx, where.ty)
    return drawn, face_width(drawn)


def _hull(points: np.ndarray, shape: tuple[int, ...], grow: int = 0) -> np.ndarray:
    """True inside the convex hull of ``points`` (frame pixels), grown by ``grow``."""
    inside = np.zeros(shape[:2], np.uint8)
    cv2.fillConvexPoly(inside, cv2.convexHull(np.round(points).astype(np.int32)), 1)
    if grow:
        inside = cv2.dilate(inside, np.ones((2 * grow + 1, 2 * grow + 1), np.uint8))
    return inside > 0


@pytest.mark.parametrize("name", AVATARS)
def test_the_pro_frame_is_continued_from_the_plate_without_repeated_columns(name: str) -> None:
    r = renderer(name, "pro")
    frame = r.render([STILL])[0].astype(int)
    assert r.avatar.placement.scale <= 2.0
    steps = np.abs(np.diff(frame, axis=1)).max(axis=(0, 2))  # column to column
    assert (steps > 0).all()


@pytest.mark.parametrize("name", AVATARS)
def test_pressed_lips_close_to_a_line_and_the_collar_stays_while_speaking(name: str) -> None:
    r = renderer(name)
    rest, wide, pressed = r.render([STILL, FaceParams(1.0, True),
                                    FaceParams(0.0, True, lip_press=1.0)])
    gaps = [measure(frame) for frame in (wide, pressed)]
    assert gaps[0] is not None and gaps[1] is not None
    # Closed on /p b m/: under a tenth of the widest opening, a parted portrait too.
    assert gaps[1].lip_gap < 0.1 * gaps[0].lip_gap
    f, g = r.avatar.features, r.model.geo
    chin, cx = f.chin + g.y0, f.cx + g.x0
    collar = (slice(round(chin + 0.65 * f.face), round(chin + 0.85 * f.face)),
              slice(round(cx - 0.45 * f.face), round(cx + 0.45 * f.face)))
    for frame in (wide, pressed):
        assert np.abs(frame[collar].astype(int) - rest[collar]).mean() <= 2


def test_teeth_the_portrait_shows_stay_with_the_skull_and_are_not_drawn_again() -> None:
    r = renderer("av_stock_001")  # smiling, upper teeth shown
    assert r.avatar.features.own_teeth == 1.0
    # Wide open, against the portrait (a smile over the teeth rests closed: issue 19).
    rest, opened = r.avatar.background.numpy(), r.render([FaceParams(1.0, True)])[0]
    f, g = r.avatar.features, r.model.geo
    x, line = round(f.mx + g.x0), f.line + g.y0
    # Above the lip line the upper teeth are the portrait's own pixels, unmoved. Their
    # biting edge (the row just above the line) is seen against the dark mouth now, not
    # the lower lip, through the cavity's soft edge: it darkens (8 levels; the row above
    # it 2.5, the rows above that under 1).
    cols = range(x - round(0.4 * f.a), x + round(0.4 * f.a))
    teeth = [(slice(round(line[c - g.x0] - 0.5 * f.shown), round(line[c - g.x0]) - 2), c)
             for c in cols]
    assert max(np.abs(opened[t].astype(int) - rest[t]).mean() for t in teeth) <= 2


def test_the_jaw_parts_a_smile_under_its_teeth_and_under_its_dark_corners() -> None:
    f = renderer("av_stock_001").avatar.features  # smiling over its upper teeth
    at = np.arange(len(f.line), dtype=np.float64)
    lower = np.interp(at, *_sorted(f.mesh[list(LOWER_INNER), :2]))
    left, right = f.mesh[UPPER_INNER[0], 0], f.mesh[UPPER_INNER[-1], 0]
    inner = (at > left) & (at < right)
    # The teeth fill the middle of the mouth; the corners beside them are dark.
    assert f.teeth[round(f.mx)] == pytest.approx(1.0)
    assert f.teeth[round(left) + 1] == 0.0 and f.teeth[round(right) - 1] == 0.0
    # Under the teeth the jaw parts the lips on the lip line; beside them, at the lower
    # lip's inner edge (the corners' dark stays with the skull).
    teeth, corners = inner & (f.teeth == 1.0), inner & (f.teeth == 0.0)
    assert np.allclose(f.parting[teeth], f.line[teeth])
    assert np.allclose(f.parting[corners], lower[corners], atol=1e-3)
    # A portrait that shows no teeth is parted on its lip line everywhere.
    plain = renderer("av_stock_002").avatar.features
    assert not plain.teeth.any() and np.array_equal(plain.parting, plain.line)


def test_a_smiles_corners_open_dark_with_no_copy_of_the_lip_in_them() -> None:
    r = renderer("av_stock_001")
    f, g = r.avatar.features, r.model.geo
    p = FaceParams(0.8, True)
    grey = cv2.cvtColor(r.render([p])[0], cv2.COLOR_RGB2GRAY).astype(np.float64)
    tear = f.drop * coefficients(p, parted=True)[OPEN]
    left, right = f.mesh[UPPER_INNER[0], 0], f.mesh[UPPER_INNER[-1], 0]
    half = (right - left) / 2
    corner_columns = [c for c in range(math.ceil(left), math.floor(right) + 1)
                      if f.teeth[c] == 0.0 and abs(c - f.mx) > 0.8 * half]
    assert len(corner_columns) >= 6
    for c in corner_columns:
        # What the jaw tore open under the corner's dark, as the jaw field spreads it
        # (its upper part: the lower lip's soft edge comes up into the rest).
        depth = tear * math.exp(-(((c - f.mx) / (0.85 * f.a)) ** 6))
        top = round(f.parting[c] + g.y0)
        torn = grey[top : top + max(1, round(0.6 * depth)), c + g.x0]
        # Cavity, not a copy of the lip and skin above the corner (those read 180-189
        # when the mouth's paint stopped short of a smile's raised corners).
        assert torn.max() < 0.5 * float(np.mean(f.skin))


def test_a_smile_sealed_over_its_teeth_shows_no_teeth_at_the_seam() -> None:
    r = renderer("av_stock_001")  # smiling, upper teeth shown; at rest its lips are sealed
    grey = cv2.cvtColor(r.render([STILL])[0], cv2.COLOR_RGB2GRAY).astype(np.float64)
    f, g = r.avatar.features, r.model.geo
    columns = range(round(f.mx - 0.6 * f.a), round(f.mx + 0.6 * f.a))
    seam = np.array([grey[round(f.line[c] + g.y0) - 3 : round(f.line[c] + g.y0) + 1, c + g.x0]
                     for c in columns])
    upper_lip = np.array([grey[round(f.line[c] + g.y0) - 9 : round(f.line[c] + g.y0) - 5,
                               c + g.x0] for c in columns])
    # The rows just above where the lips meet are lip, not the teeth's lower edge showing
    # through as white flecks (the seam's brightest 5 % were 215 against the lip's 191).
    assert np.percentile(seam, 95) <= upper_lip.mean()
