"""Lip-sync as a viewer sees it, per stock avatar: ``python -m bench.lipsync_pixels``.

The held-out clips (tests/data/lipsync: voices, engines and texts the model never trained
on) are rendered at the standard tier and the face analysis re-detects the inner lips on
every frame; the scores are those ``tests/worker/face/test_lipsync_pixels.py`` holds.
Targets (issue 19): closures ≥ 0.80, false ≤ 0.30, open ≤ 0.60, envelope r ≥ 0.6 at a lag
in −40 … +80 ms, closed within 150 ms of the speech's end.
"""

from __future__ import annotations

from tests.worker.face.test_lipsync_pixels import AVATARS, score


def main() -> None:
    for avatar in AVATARS:
        s = score(avatar)
        print(f"{avatar}  closures {s.closures:.2f}  false {s.false:.2f}  open {s.open:.2f}"
              f"  envelope r {s.envelope_r:.2f} (lags {[round(x * 1e3) for x in s.lags]} ms)"
              f"  closed {s.settle * 1e3:.0f} ms after speech", flush=True)


if __name__ == "__main__":
    main()
