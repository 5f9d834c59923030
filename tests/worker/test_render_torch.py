"""The torch avatar model, judged on its pixels."""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest
import torch

from protoface.domain.tiers import TIERS
from protoface.worker.face.analysis.measure import measure
from protoface.worker.face.features import FaceParams
from protoface.worker.render import framing, kernel
from protoface.worker.render.renderer import TierModel, TorchRenderer
from protoface.worker.render.rig import load_asset, portrait_rgb, stock_asset

SILENCE = FaceParams(0.0, False)
SPEECH = FaceParams(0.8, True)


@cache
def lite() -> TierModel:
    return TierModel(TIERS["lite"])


@cache
def standard() -> TierModel:
    return TierModel(TIERS["standard"])


def renderer(avatar_id: str = "av_stock_002", model: TierModel | None = None) -> TorchRenderer:
    return TorchRenderer(model or lite(), stock_asset(avatar_id))


def mouth_box(r: TorchRenderer) -> tuple[slice, slice]:
    f, g = r.avatar.features, r.model.geo
    x, y, a = f.mx + g.x0, f.my + g.y0, f.a
    return slice(round(y - a), round(y + 1.5 * a)), slice(round(x - 1.3 * a), round(x + 1.3 * a))


def darkest_share(region: np.ndarray, colour: tuple[float, float, float]) -> float:
    """Share of pixels within 45 (RGB distance) of ``colour``."""
    distance = np.linalg.norm(region.astype(np.float32) - np.asarray(colour), axis=-1)
    return float((distance < 45).mean())


@pytest.mark.parametrize("avatar_id", ["av_stock_001", "av_stock_002", "av_stock_003"])
def test_silence_keeps_the_mouth_closed_and_speech_opens_it(avatar_id: str) -> None:
    r = renderer(avatar_id)
    silent, speaking = r.render([SILENCE, SPEECH])
    rest = r.avatar.background.numpy()
    assert silent.dtype == np.uint8 and silent.shape == (256, 256, 3)
    box = mouth_box(r)
    # Given silence, the face is the portrait at rest: a mouth closed as drawn; lips the
    # portrait parts over its teeth are brought together (and nothing above them moves).
    above = slice(0, box[0].start - 20)
    assert np.abs(silent[above].astype(int) - rest[above]).max() <= 1
    assert r.avatar.parted == (avatar_id == "av_stock_001")  # the smile over the teeth
    if not r.avatar.parted:
        assert np.abs(silent.astype(int) - rest).max() <= 1
    # Given speech, the mouth region changes and shows the dark inside of the mouth.
    assert np.abs(speaking[box].astype(int) - silent[box]).mean() > 8
    inner = r.avatar.features.inner
    assert darkest_share(speaking[box], inner) > darkest_share(silent[box], inner) + 0.03
    # Outside the lower face nothing moves.
    assert np.array_equal(speaking[: box[0].start - 20], silent[: box[0].start - 20])


def test_a_wider_opening_shows_more_of_the_inner_mouth() -> None:
    r = renderer()
    box, inner = mouth_box(r), r.avatar.features.inner
    shares = [darkest_share(f[box], inner)
              for f in r.render([FaceParams(x, True) for x in (0.2, 0.5, 1.0)])]
    assert shares[0] < shares[1] < shares[2]


def test_pressed_lips_stay_shut_whatever_the_opening() -> None:
    r = renderer()
    pressed, rest = r.render([FaceParams(0.9, True, lip_press=1.0), SILENCE])
    box, inner = mouth_box(r), r.avatar.features.inner
    assert darkest_share(pressed[box], inner) <= darkest_share(rest[box], inner) + 0.01


def test_lips_parted_in_the_portrait_close_when_pressed_and_the_cheeks_stay() -> None:
    r = renderer("av_stock_001", standard())  # smiling, lips parted over the teeth
    portrait = r.avatar.background.numpy()  # the portrait on the frame, nothing moved
    wide, pressed = r.render([FaceParams(0.8, True), FaceParams(0.0, True, lip_press=1.0)])
    gaps = [measure(frame) for frame in (portrait, wide, pressed)]
    assert all(g is not None for g in gaps)
    rest_gap, wide_gap, pressed_gap = (g.lip_gap for g in gaps if g is not None)
    # Measured on the frames: open in the portrait, shut when pressed.
    assert rest_gap > 0.25 * wide_gap and pressed_gap < 0.1 * wide_gap
    # The closing stays between the mouth's corners: on the cheeks beside them the rows
    # just above and below the line follow on as in the portrait (no seam across the
    # face, as a gap closed there too would draw).
    f, g = r.avatar.features, r.model.geo
    y = round(f.my + g.y0)
    for cheek in (slice(round(f.mx + g.x0 - 2.0 * f.a), round(f.mx + g.x0 - 1.3 * f.a)),
                  slice(round(f.mx + g.x0 + 1.3 * f.a), round(f.mx + g.x0 + 2.0 * f.a))):
        jumps = [np.abs(frame[y + 2, cheek].astype(int) - frame[y - 2, cheek]).mean()
                 for frame in (portrait, pressed)]
        assert jumps[1] <= jumps[0] + 2


def test_parted_lips_close_at_rest_and_between_sounds_and_the_jaw_opens_them() -> None:
    parted, closed = renderer("av_stock_001", standard()), renderer("av_stock_002", standard())
    rest, between, open_ = parted.render([SILENCE, FaceParams(0.0, True), FaceParams(0.6, True)])
    portrait = measure(portrait_rgb(load_asset(stock_asset("av_stock_001"))))
    seen = [measure(frame) for frame in (rest, between, open_)]
    assert portrait is not None and all(m is not None for m in seen)
    shares = [m.lip_gap_share for m in seen if m is not None]
    # A smile over the teeth is neither held through speech nor at rest: with the jaw
    # closed the lips come together (measured on the frames and on the portrait) …
    assert shares[0] < 0.3 * portrait.lip_gap_share
    assert shares[1] < 0.3 * portrait.lip_gap_share
    assert shares[2] > portrait.lip_gap_share  # … and the jaw parts them again
    # Lips closed at rest stay as they are in silence (to the rounding of a level).
    rest_closed = closed.render([SILENCE])[0].astype(int)
    assert np.abs(rest_closed - closed.avatar.background.numpy()).max() <= 1


def test_a_press_from_half_seals_the_lips_and_a_light_one_leaves_them() -> None:
    r = renderer("av_stock_001", standard())
    half, full, light, none = r.render([FaceParams(0.0, True, lip_press=p)
                                        for p in (0.5, 1.0, 0.1, 0.0)])
    assert np.array_equal(half, full)  # the model's closure reads as shut from 0.5
    assert np.array_equal(light, none)


@cache
def pro() -> TierModel:
    return TierModel(TIERS["pro"])


@pytest.mark.parametrize("avatar_id", ["av_stock_001", "av_stock_002", "av_stock_003"])
def test_the_pro_frame_enlarges_the_stock_portraits_at_most_twice(avatar_id: str) -> None:
    # Measured as a viewer would: the face re-detected in the frame and in the portrait.
    asset = load_asset(stock_asset(avatar_id))
    seen = measure(renderer(avatar_id, pro()).render([SILENCE])[0])
    original = measure(portrait_rgb(asset))
    assert seen is not None and original is not None
    width = [float(np.ptp(m.landmarks[:, 0])) for m in (seen, original)]
    assert width[0] / width[1] <= 2.0
    assert width[0] / width[1] == pytest.approx(framing.upscales(asset.rig.face.h)["pro"],
                                                rel=0.08)


@pytest.mark.parametrize("params", [
    FaceParams(0.0, False, gaze_x=1.0), FaceParams(0.0, False, lip_round=1.0),
    FaceParams(0.0, False, head_yaw=4.0), FaceParams(0.0, False, head_pitch=3.0),
    FaceParams(0.0, False, head_roll=3.0), FaceParams(0.0, False, gaze_y=1.0),
    FaceParams(0.0, False, blink=1.0), FaceParams(0.0, False, breath=1.0),
    FaceParams(0.0, True, lip_raise=1.0), FaceParams(0.0, True, lip_tuck=1.0),
])
def test_every_face_parameter_moves_pixels(params: FaceParams) -> None:
    r = renderer()
    rest, moved = r.render([SILENCE, params])
    assert np.abs(moved.astype(int) - rest).sum() > 500


def test_the_tongue_shows_in_an_open_mouth() -> None:
    r = renderer()
    plain, tongue = r.render([FaceParams(0.6, True), FaceParams(0.6, True, tongue=1.0)])
    assert np.abs(tongue.astype(int) - plain).sum() > 500


def test_the_same_inputs_render_the_same_frames() -> None:
    params = [FaceParams(x / 7, x % 2 == 0, blink=x / 10, head_roll=x - 3.0) for x in range(8)]
    first = renderer(model=TierModel(TIERS["lite"])).render(params)
    again = renderer(model=TierModel(TIERS["lite"])).render(params)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))


def test_a_batch_of_sessions_equals_their_frames_rendered_one_by_one() -> None:
    model = lite()
    avatars = [model.avatar(stock_asset(a)) for a in ("av_stock_001", "av_stock_002",
                                                      "av_stock_003", "av_stock_002")]
    params = [FaceParams(0.7, True, blink=1.0), FaceParams(0.0, False, head_pitch=3.0),
              FaceParams(0.4, True, lip_round=0.5, head_yaw=-2.0), FaceParams(0.9, True)]
    batched = model.render_many(list(zip(avatars, params, strict=True)))
    alone = [model.render_many([(a, p)])[0] for a, p in zip(avatars, params, strict=True)]
    assert all(np.array_equal(b, a) for b, a in zip(batched, alone, strict=True))


@pytest.mark.parametrize("tier", ["standard", "pro"])
def test_every_tier_renders_its_own_frame_size(tier: str) -> None:
    model = TierModel(TIERS[tier])
    frame = TorchRenderer(model, stock_asset("av_stock_001")).render([SPEECH])[0]
    assert frame.shape == (TIERS[tier].height, TIERS[tier].width, 3)
    assert frame.dtype == np.uint8


def test_a_batch_is_one_call_of_the_compiled_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    # The worker renders on its own thread while the event loop runs Python. Eager, a
    # batch is ~500 torch ops, each giving the GIL up and waiting to take it back; the
    # compiled kernel runs its graph in C++ without it (bench/render.py measures both).
    assert isinstance(kernel.render, torch.jit.ScriptFunction)
    calls: list[int] = []
    compiled = kernel.render

    def counted(*args: object) -> torch.Tensor:
        calls.append(len(args))
        return compiled(*args)

    monkeypatch.setattr(kernel, "render", counted)
    model = lite()
    avatars = [model.avatar(stock_asset(a)) for a in ("av_stock_001", "av_stock_002")]
    frames = model.render_many([(avatars[i % 2], FaceParams(0.6, True, blink=0.5))
                                for i in range(4)])
    assert len(frames) == 4 and len(calls) == 1
