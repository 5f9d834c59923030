"""The build step: one face found, rigged (eyes, mouth, jaw, colours), or a human reason."""

from __future__ import annotations

import cv2
import msgspec
import numpy as np
import pytest

from protoface.worker.portraits.generate import LOOKS, draw
from protoface.worker.render import rig


def png(rgb: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert ok
    return data.tobytes()


def reason_of(image: bytes) -> str:
    with pytest.raises(rig.RigError) as failure:
        rig.build_asset(image)
    return failure.value.reason


@pytest.mark.parametrize("avatar_id", sorted(rig.STOCK_PORTRAITS))
def test_every_stock_portrait_builds_a_full_rig(avatar_id: str) -> None:
    asset = rig.load_asset(rig.stock_asset(avatar_id))
    r = asset.rig
    assert asset.version == rig.ASSET_VERSION
    assert r.eyes is not None and r.mouth is not None and r.jaw is not None
    left, right = r.eyes
    face_x = r.face.centre[0]
    assert left.centre[0] < face_x < right.centre[0]  # one eye each side
    assert r.face.y < left.centre[1] < r.mouth.centre[1] < r.face.y + 1.1 * r.face.h
    assert abs(r.mouth.centre[0] - face_x) < 0.15 * r.face.w
    assert r.lips is not None and r.skin is not None and r.inner_mouth is not None
    assert r.lips[0] - r.lips[1] > r.skin[0] - r.skin[1] - 10  # lips redder than skin
    assert sum(r.inner_mouth) < sum(r.lips)  # the open mouth is darker than the lips
    assert rig.portrait_rgb(asset).shape == (r.height, r.width, 3)


def test_the_generated_portraits_are_the_ones_shipped() -> None:
    from importlib import resources

    for look in LOOKS:
        shipped = resources.files("protoface.worker.portraits").joinpath(look.name).read_bytes()
        pixels = cv2.imdecode(np.frombuffer(shipped, np.uint8), cv2.IMREAD_COLOR)
        assert np.array_equal(cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB), draw(look))


def test_an_image_without_a_face_fails_with_the_human_reason() -> None:
    ys, xs = np.mgrid[0:400, 0:400]
    landscape = np.stack([xs * 0.5, ys * 0.4 + 40, 200 - ys * 0.3], -1).astype(np.uint8)
    assert reason_of(png(landscape)) == "No face detected in source image."


def test_two_faces_fail() -> None:
    pair = np.hstack([draw(LOOKS[0]), draw(LOOKS[1])])
    assert "faces of similar size" in reason_of(png(pair))


def test_a_tiny_face_fails_as_too_small() -> None:
    canvas = np.full((1000, 1000, 3), 120, np.uint8)
    canvas[400:560, 400:560] = cv2.resize(draw(LOOKS[0]), (160, 160), interpolation=cv2.INTER_AREA)
    assert "too small" in reason_of(png(canvas))


def test_an_undecodable_upload_fails() -> None:
    assert reason_of(b"not an image") == "The source image could not be decoded."


def test_a_version_1_asset_still_decodes_and_gets_every_feature_by_proportion() -> None:
    new = rig.load_asset(rig.stock_asset("av_stock_002"))
    old = msgspec.msgpack.encode({"version": 1, "portrait_png": new.portrait_png,
                                  "rig": {"width": new.rig.width, "height": new.rig.height,
                                          "face": [*msgspec.structs.astuple(new.rig.face)]}})
    asset = rig.load_asset(old)
    assert asset.version == 1 and asset.rig.eyes is None
    marks = rig.landmarks(asset.rig, rig.portrait_rgb(asset))
    assert marks.eyes == rig.default_eyes(asset.rig.face)
    assert marks.mouth == rig.default_mouth(asset.rig.face)
    assert marks.skin[0] > marks.skin[2]  # sampled from the cheeks: skin, not background
