"""Picture strips of the renderer for the docs: per avatar, eyes open, the blink's peak,
the head turned left and right (standard, 512²) and the pro frame (1280×720, shown at
the strip's height), with each frame's eye openness and nose position measured on it.

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
SHOTS = (("eyes open", FaceParams(0.0, False)),
         ("blink peak", FaceParams(0.0, False, blink=1.0)),
         ("head left", FaceParams(0.0, False, head_yaw=-4.0, head_roll=-2.0)),
         ("head right", FaceParams(0.0, False, head_yaw=4.0, head_pitch=2.0, head_roll=2.0)))


def label(frame: np.ndarray) -> str:
    found = measure(frame)
    if found is None:
        return "no face found"
    ear = "/".join(f"{e:.2f}" for e in found.eye_aspect)
    return f"EAR {ear}  yaw {found.pose.yaw:+.1f}°"


def strip(name: str, asset: bytes, standard: TierModel, pro: TierModel) -> Image.Image:
    frames = TorchRenderer(standard, asset).render([p for _, p in SHOTS])
    wide = TorchRenderer(pro, asset).render([FaceParams(0.0, False)])[0]
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
        print(path)


if __name__ == "__main__":
    main()
