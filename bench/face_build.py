"""Time the avatar build's face analysis on a 1024×1024 portrait, on one thread.

    python -m bench.face_build [--repeat N]

Prints the median time of the face build (detector, mesh, irises, pose, person mask and
background plate) and of the whole ``build_asset`` (which analyses twice: the upload, then
the stored crop, and encodes the PNGs), each beside a baseline measured in the same process,
a plain OpenCV decode + resize of the same PNG, as a ratio; then the median time of one
call of each model. The target is a build under 3 s.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import defaultdict
from collections.abc import Callable
from importlib import resources

import cv2
import numpy as np
import torch

from protoface.worker.face.analysis import attention, loader
from protoface.worker.face.analysis.build import build
from protoface.worker.render import rig

SIZE = 1024


def portrait() -> bytes:
    """The stock astronaut, upscaled to 1024×1024 (bicubic), as PNG bytes."""
    data = resources.files("protoface.worker.portraits").joinpath("astronaut.png").read_bytes()
    image = decoded(data)
    ok, png = cv2.imencode(".png", cv2.resize(image, (SIZE, SIZE), interpolation=cv2.INTER_CUBIC))
    assert ok
    return png.tobytes()


def median_seconds(work: Callable[[], object], repeat: int) -> float:
    work()  # warm: models loaded, caches filled
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def decoded(png: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    return image


def baseline(png: bytes) -> None:
    image = decoded(png)
    cv2.resize(image, (SIZE // 2, SIZE // 2), interpolation=cv2.INTER_AREA)


def face_build(png: bytes) -> None:
    image = decoded(png)
    build(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))


def model_calls(png: bytes) -> dict[str, float]:
    """Median seconds of one call of each model during a face build (LiteRT's, and the
    attention model's torch port)."""
    seen: dict[str, list[float]] = defaultdict(list)
    original, port = loader.Model.run, attention.TorchModel.run

    def timed(self: loader.Model, tensor: np.ndarray) -> dict[int, np.ndarray]:
        started = time.perf_counter()
        out = original(self, tensor)
        seen[self.name].append(time.perf_counter() - started)
        return out

    def timed_port(self: attention.TorchModel, image: np.ndarray) -> dict[str, np.ndarray]:
        started = time.perf_counter()
        out = port(self, image)
        seen[f"{attention.FILE} (torch)"].append(time.perf_counter() - started)
        return out

    loader.Model.run = timed  # type: ignore[method-assign]
    attention.TorchModel.run = timed_port  # type: ignore[method-assign]
    try:
        for _ in range(5):
            face_build(png)
    finally:
        loader.Model.run = original  # type: ignore[method-assign]
        attention.TorchModel.run = port  # type: ignore[method-assign]
    return {name: statistics.median(times) for name, times in sorted(seen.items())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    png = portrait()
    base = median_seconds(lambda: baseline(png), args.repeat * 4)
    print(f"baseline  decode+resize {SIZE}²: {base * 1000:8.1f} ms")
    for name, work in (("face build", lambda: face_build(png)),
                       ("build_asset", lambda: rig.build_asset(png))):
        took = median_seconds(work, args.repeat)
        print(f"{name:12s} {SIZE}²: {took * 1000:8.1f} ms  = {took / base:6.1f}× baseline"
              f"  (target ≤ 3000 ms)")
    for name, took in model_calls(png).items():
        print(f"  one call of {name:44s} {took * 1000:7.2f} ms")


if __name__ == "__main__":
    main()
