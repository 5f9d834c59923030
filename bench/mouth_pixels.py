"""The speaking mouth as a viewer sees it, per avatar: ``python -m bench.mouth_pixels``.

A held-out clip rendered at the standard tier with the head and breath held still; the
face analysis re-detects the landmarks on every frame (``tests/worker/test_mouth_measured``
holds the same scoring). Targets (issue 20): at most one upper and one lower row of teeth
on the most open frames, with texture; the mouth box's sharpness against the rest of the
face, over the same on the portrait, 0.7–1.3 (median over the frames with the mouth open);
the collar below the chin within 2 levels, not following the mouth.
"""

from __future__ import annotations

from tests.worker.test_mouth_measured import AVATARS, score


def main() -> None:
    for avatar in AVATARS:
        s = score(avatar)
        print(f"{avatar:<13} teeth rows {s.teeth_rows} (texture σ {s.teeth_texture:.1f})"
              f"  sharpness {s.sharpness:.2f}  collar {s.collar:.4f} levels"
              f" (worst frame {s.collar_worst:.4f}, r with the gap {s.collar_r:+.2f})",
              flush=True)


if __name__ == "__main__":
    main()
