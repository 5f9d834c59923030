"""Picture strips of the renderer for the docs: per avatar, eyes open, the blink's peak,
the head turned left and right (standard, 512²) and the pro frame (1280×720, shown at
the strip's height), with each frame's eye openness and nose position measured on it;
and the mouth (``*-mouth.jpg``): at rest, closed in a turn, open, the /m/ closure, an 'ee'
and an 'oo', each cropped to the lower face with the lip gap measured on the frame.

    python -m bench.strips [--out docs/renderer]

Stock avatars and the custom portrait (``tests/data/faces/grace_hopper.jpg``, a photo
with glasses, built as an upload is).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from protoface.domain.tiers import TIERS
from protoface.worker.face.analysis.measure import measure
from protoface.worker.face.features import FaceParams
from protoface.worker.render.renderer import TierModel, TorchRenderer
from protoface.worker.render.rig import STOCK_PORTRAITS, build_asset, stock_asset

ROOT = Path(__file__).resolve().parents[1]
CUSTOM = ROOT / "tests" / "data" / "faces" / "grace_hopper.jpg"
# A listening face (at rest: the portrait's own expression).
SHOTS = (("eyes open", FaceParams(0.0, False, rest=1.0)),
         ("blink peak", FaceParams(0.0, False, blink=1.0, rest=1.0)),
         ("head left", FaceParams(0.0, False, head_yaw=-4.0, head_roll=-2.0, rest=1.0)),
         ("head right", FaceParams(0.0, False, head_yaw=4.0, head_pitch=2.0, head_roll=2.0,
                                   rest=1.0)))


MOUTH = (("at rest", FaceParams(0.0, False, rest=1.0)),
         ("closed in a turn", FaceParams(0.0, False)),
         ("open", FaceParams(0.8, True)),
         ("/m/ closure", FaceParams(0.1, True, lip_press=1.0)),
         ("'ee'", FaceParams(0.3, True, lip_round=-0.8, lip_raise=0.3)),
         ("'oo'", FaceParams(0.3, True, lip_round=0.9)))


def label(frame: np.ndarray) -> str:
    found = measure(frame)
    if found is None:
        return "no face found"
    ear = "/".join(f"{e:.2f}" for e in found.eye_aspect)
    return f"EAR {ear}  yaw {found.pose.yaw:+.1f}°"


def strip(name: str, asset: bytes, standard: TierModel, pro: TierModel) -> Image.Image:
    frames = TorchRenderer(standard, asset).render([p for _, p in SHOTS])
    wide = TorchRenderer(pro, asset).render([SHOTS[0][1]])[0]
    height = frames[0].shape[0]
    scaled = Image.fromarray(wide).resize((round(wide.shape[1] * height / wide.shape[0]),
                                           height), Image.Resampling.LANCZOS)
    width = sum(f.shape[1] for f in frames) + scaled.width
    out = Image.new("RGB", (width, height + 22), (20, 20, 20))
    draw = ImageDraw.Draw(out)
    x = 0
    for (title, _), frame in zip(SHOTS, frames, strict=True):
        out.paste(Image.fromarray(frame), (x, 22))
        draw.text((x + 6, 5), f"{name}: {title} · {label(frame)}", fill=(235, 235, 235))
        x += frame.shape[1]
    out.paste(scaled, (x, 22))
    draw.text((x + 6, 5), f"pro 1280×720 · {label(wide)}", fill=(235, 235, 235))
    return out


def mouth_strip(name: str, asset: bytes, standard: TierModel) -> Image.Image:
    """The lower face (a 256 px square around the mouth, shown at 2×) in each MOUTH shot."""
    r = TorchRenderer(standard, asset)
    frames = r.render([p for _, p in MOUTH])
    f, g = r.avatar.features, r.model.geo
    x, y = round(f.mx + g.x0), round(f.my + g.y0)
    side = 128
    out = Image.new("RGB", (2 * side * len(frames), 2 * side + 22), (20, 20, 20))
    draw = ImageDraw.Draw(out)
    for i, ((title, _), frame) in enumerate(zip(MOUTH, frames, strict=True)):
        found = measure(frame)
        gap = "no face found" if found is None else f"lip gap {found.lip_gap:.1f} px"
        crop = frame[max(0, y - side // 2) : y + side // 2 * 3 // 2,
                     max(0, x - side // 2) : x + side // 2]
        big = Image.fromarray(np.ascontiguousarray(crop)).resize(
            (2 * side, round(2 * side * crop.shape[0] / crop.shape[1])),
            Image.Resampling.LANCZOS)
        out.paste(big, (2 * side * i, 22))
        draw.text((2 * side * i + 6, 5), f"{name}: {title} · {gap}", fill=(235, 235, 235))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "renderer")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    standard, pro = TierModel(TIERS["standard"]), TierModel(TIERS["pro"])
    avatars = {a: stock_asset(a) for a in sorted(STOCK_PORTRAITS)}
    avatars["custom_grace_hopper"] = build_asset(CUSTOM.read_bytes())
    for name, asset in avatars.items():
        path = args.out / f"{name}.jpg"
        strip(name, asset, standard, pro).save(path, quality=88)
        mouth = args.out / f"{name}-mouth.jpg"
        mouth_strip(name, asset, standard).save(mouth, quality=88)
        print(path, mouth)


if __name__ == "__main__":
    main()
