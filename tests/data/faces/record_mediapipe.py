"""Record MediaPipe 0.10.14's face mesh and detections on the test portraits (run once).

Runs only in a separate virtualenv (mediapipe needs protobuf<5; the project needs ≥5):

    python3 -m venv /work/mp-venv && /work/mp-venv/bin/pip install mediapipe==0.10.14
    cd REPO && /work/mp-venv/bin/python tests/data/faces/record_mediapipe.py

For each portrait it writes ``tests/data/faces/<stem>.json``: image size, the detections
of ``FaceDetection(model_selection=0)`` (box and six keypoints in pixels), the 468 points
of ``FaceMesh(static_image_mode=True, refine_landmarks=False)`` and the 478 points of
``FaceMesh(static_image_mode=True, refine_landmarks=True)``, x and y in pixels and z
multiplied by the image width (MediaPipe's normalised z is in image widths). A portrait
MediaPipe cannot mesh gets empty lists.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import mediapipe as mp  # type: ignore[import-not-found]
import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
PORTRAITS = [
    ROOT / "worker/portraits/astronaut.png",
    ROOT / "worker/portraits/synthetic_a.png",
    ROOT / "worker/portraits/synthetic_b.png",
    HERE / "astronaut_tilted.png",
    HERE / "grace_hopper.jpg",
    HERE / "grace_hopper_mirrored.jpg",
]


def _points(result: Any, width: int, height: int) -> list[list[float]]:
    if not result.multi_face_landmarks:
        return []
    marks = result.multi_face_landmarks[0].landmark
    return [[round(p.x * width, 3), round(p.y * height, 3), round(p.z * width, 3)]
            for p in marks]


def _detections(result: Any, width: int, height: int) -> list[dict[str, Any]]:
    found = []
    for det in result.detections or []:
        box = det.location_data.relative_bounding_box
        keys = det.location_data.relative_keypoints
        found.append({
            "score": round(det.score[0], 5),
            "box": [round(box.xmin * width, 3), round(box.ymin * height, 3),
                    round((box.xmin + box.width) * width, 3),
                    round((box.ymin + box.height) * height, 3)],
            "keypoints": [[round(k.x * width, 3), round(k.y * height, 3)] for k in keys],
        })
    return found


def record(path: Path) -> dict[str, Any]:
    rgb = np.ascontiguousarray(cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB))
    height, width = rgb.shape[:2]
    out: dict[str, Any] = {"image": path.name, "width": width, "height": height,
                           "mediapipe": mp.__version__}
    with mp.solutions.face_detection.FaceDetection(model_selection=0) as detector:
        out["detections"] = _detections(detector.process(rgb), width, height)
    for key, refine in (("mesh468", False), ("mesh478", True)):
        with mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1,
                                             refine_landmarks=refine) as face_mesh:
            out[key] = _points(face_mesh.process(rgb), width, height)
    return out


def main() -> None:
    for path in PORTRAITS:
        data = record(path)
        (HERE / f"{path.stem}.json").write_text(json.dumps(data) + "\n")
        print(path.name, len(data["detections"]), len(data["mesh468"]), len(data["mesh478"]))


if __name__ == "__main__":
    main()
