"""Asset version 3: the build stores mesh, pose, mask and plate; older assets still load."""

from __future__ import annotations

import cv2
import msgspec
import numpy as np
import pytest

from protoface.worker.face.analysis import reasons
from protoface.worker.face.analysis.build import landmarks_from_bytes
from protoface.worker.render import rig

from .portraits import image_bytes, rgb


def _png(pixels: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".png", cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR))
    assert ok
    return data.tobytes()


def _inside(box: rig.Box, x: float, y: float) -> bool:
    return box.x <= x <= box.x + box.w and box.y <= y <= box.y + box.h


@pytest.mark.parametrize("name", ["astronaut", "grace_hopper"])
def test_a_build_stores_the_mesh_pose_mask_and_plate_in_portrait_pixels(name: str) -> None:
    asset = rig.load_asset(rig.build_asset(image_bytes(name)))
    assert asset.version == rig.ASSET_VERSION == 3
    assert asset.mesh is not None and asset.pose is not None
    assert asset.mask_png is not None and asset.plate_png is not None
    portrait = rig.portrait_rgb(asset)
    height, width = portrait.shape[:2]
    points = landmarks_from_bytes(asset.mesh)
    assert points.shape == (478, 3)
    assert (points[:, 0] > 0).all() and (points[:, 0] < width).all()
    assert (points[:, 1] > 0).all() and (points[:, 1] < height).all()
    mask = cv2.imdecode(np.frombuffer(asset.mask_png, np.uint8), cv2.IMREAD_UNCHANGED)
    plate = cv2.imdecode(np.frombuffer(asset.plate_png, np.uint8), cv2.IMREAD_COLOR)
    assert mask is not None and plate is not None
    assert mask.shape == (height, width) and plate.shape == (height, width, 3)
    nose = points[1]
    assert mask[round(nose[1]), round(nose[0])] == 255
    assert abs(asset.pose.yaw) < 10 and abs(asset.pose.pitch) < 10


def test_the_rig_boxes_come_from_the_mesh() -> None:
    asset = rig.load_asset(rig.build_asset(image_bytes("grace_hopper")))
    assert asset.mesh is not None and asset.rig.eyes is not None
    points = landmarks_from_bytes(asset.mesh)
    right_eye, left_eye = asset.rig.eyes
    assert _inside(right_eye, *points[468, :2]) and _inside(left_eye, *points[473, :2])
    assert asset.rig.mouth is not None and asset.rig.jaw is not None
    for lip in (13, 14, 61, 291):
        assert _inside(asset.rig.mouth, *points[lip, :2])
    assert _inside(asset.rig.face, *points[1, :2])
    assert asset.rig.jaw.y + asset.rig.jaw.h > points[152, 1] > asset.rig.jaw.y


def test_a_version_2_asset_decodes_with_the_new_fields_empty() -> None:
    new = rig.load_asset(rig.stock_asset("av_stock_001"))
    old = msgspec.msgpack.encode({"version": 2, "portrait_png": new.portrait_png,
                                  "rig": msgspec.to_builtins(new.rig)})
    asset = rig.load_asset(old)
    assert asset.version == 2 and asset.rig == new.rig
    assert asset.mesh is None and asset.pose is None
    assert asset.mask_png is None and asset.plate_png is None


def test_refusals_carry_the_analysis_reasons() -> None:
    face = rgb("grace_hopper")
    with pytest.raises(rig.RigError) as two:
        rig.build_asset(_png(np.ascontiguousarray(np.concatenate([face, face], axis=1))))
    assert two.value.reason == reasons.SEVERAL_FACES
    with pytest.raises(rig.RigError) as garbage:
        rig.build_asset(b"\x89PNG but not really")
    assert garbage.value.reason == reasons.UNDECODABLE
    with pytest.raises(rig.RigError) as blank:
        rig.build_asset(_png(np.full((300, 300, 3), 40, np.uint8)))
    assert blank.value.reason == reasons.NO_FACE
