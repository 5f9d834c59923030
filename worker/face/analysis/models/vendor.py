"""Reproduce the vendored files from MediaPipe's wheel (a developer's tool, never run time).

    python -m protoface.worker.face.analysis.models.vendor [--wheel PATH]

Without ``--wheel`` it runs ``pip download --no-deps mediapipe==0.10.14`` for CPython 3.11
on Linux x86_64. It copies five ``.tflite`` files, converts the contour and tesselation
edge sets of ``face_mesh_connections.py`` to ``mesh.json`` (sorted, so the file is
byte-for-byte stable), adds the lips and eye refinement index maps and rewrites ``SHA256SUMS``
(which also covers our own ``pose_template.json``, see ``derive_template.py``).
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

VERSION = "0.10.14"
HERE = Path(__file__).resolve().parent
MODELS = {
    "face_detection_short_range.tflite":
        "mediapipe/modules/face_detection/face_detection_short_range.tflite",
    "face_landmark.tflite": "mediapipe/modules/face_landmark/face_landmark.tflite",
    "face_landmark_with_attention.tflite":
        "mediapipe/modules/face_landmark/face_landmark_with_attention.tflite",
    "iris_landmark.tflite": "mediapipe/modules/iris_landmark/iris_landmark.tflite",
    "selfie_segmentation.tflite":
        "mediapipe/modules/selfie_segmentation/selfie_segmentation.tflite",
}
CONNECTIONS = "mediapipe/python/solutions/face_mesh_connections.py"
LICENSE = f"mediapipe-{VERSION}.dist-info/LICENSE"
EDGE_SETS = {
    "lips": "FACEMESH_LIPS", "left_eye": "FACEMESH_LEFT_EYE",
    "left_iris": "FACEMESH_LEFT_IRIS", "left_eyebrow": "FACEMESH_LEFT_EYEBROW",
    "right_eye": "FACEMESH_RIGHT_EYE", "right_iris": "FACEMESH_RIGHT_IRIS",
    "right_eyebrow": "FACEMESH_RIGHT_EYEBROW", "face_oval": "FACEMESH_FACE_OVAL",
    "nose": "FACEMESH_NOSE", "tesselation": "FACEMESH_TESSELATION",
}
# The 71 eye-contour points of the iris model, as mesh indices, in the model's output
# order. Copied from MediaPipe's graph
# mediapipe/modules/face_landmark/tensors_to_face_landmarks_with_attention.pbtxt (the
# same list as mediapipe/graphs/iris_tracking/calculators/update_face_landmarks_calculator.cc).
# "right" is the subject's right eye (image left on a frontal face), as in
# face_mesh_connections.py; its iris points are 468..472, the left's 473..477.
RIGHT_EYE_REFINEMENT = [
    33, 7, 163, 144, 145, 153, 154, 155, 133, 246, 161, 160, 159, 158, 157, 173,
    130, 25, 110, 24, 23, 22, 26, 112, 243, 247, 30, 29, 27, 28, 56, 190,
    226, 31, 228, 229, 230, 231, 232, 233, 244, 113, 225, 224, 223, 222, 221, 189,
    35, 124, 46, 53, 52, 65, 143, 111, 117, 118, 119, 120, 121, 128, 245,
    156, 70, 63, 105, 66, 107, 55, 193,
]
LEFT_EYE_REFINEMENT = [
    263, 249, 390, 373, 374, 380, 381, 382, 362, 466, 388, 387, 386, 385, 384, 398,
    359, 255, 339, 254, 253, 252, 256, 341, 463, 467, 260, 259, 257, 258, 286, 414,
    446, 261, 448, 449, 450, 451, 452, 453, 464, 342, 445, 444, 443, 442, 441, 413,
    265, 353, 276, 283, 282, 295, 372, 340, 346, 347, 348, 349, 350, 357, 465,
    383, 300, 293, 334, 296, 336, 285, 417,
]


# The 80 lip points of the attention model's lips head, as mesh indices, in its output
# order: from the same graph (its ``# 1 - lips`` refinement, z left to the mesh).
LIPS_REFINEMENT = [
    61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291,
    185, 40, 39, 37, 0, 267, 269, 270, 409,
    78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308,
    191, 80, 81, 82, 13, 312, 311, 310, 415,
    76, 77, 90, 180, 85, 16, 315, 404, 320, 307, 306,
    184, 74, 73, 72, 11, 302, 303, 304, 408,
    62, 96, 89, 179, 86, 15, 316, 403, 319, 325, 292,
    183, 42, 41, 38, 12, 268, 271, 272, 407,
]


def download(into: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", f"mediapipe=={VERSION}",
         "--only-binary=:all:", "--python-version", "3.11",
         "--platform", "manylinux_2_17_x86_64", "-d", str(into)],
        check=True,
    )
    return next(into.glob("mediapipe-*.whl"))


def edge_sets(source: str) -> dict[str, list[list[int]]]:
    """Every ``NAME = frozenset([...])`` literal of ``face_mesh_connections.py``, sorted."""
    found: dict[str, list[list[int]]] = {}
    for node in ast.parse(source).body:
        if (isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)
                and isinstance(node.value, ast.Call) and node.value.args
                and isinstance(node.value.args[0], ast.List)):
            edges = ast.literal_eval(node.value.args[0])
            found[node.targets[0].id] = sorted([int(a), int(b)] for a, b in edges)
    return {key: found[name] for key, name in EDGE_SETS.items()}


def mesh_json(source: str) -> bytes:
    data = {
        "source": f"mediapipe=={VERSION}: {CONNECTIONS}",
        "edges": edge_sets(source),
        "eye_refinement": {"right": RIGHT_EYE_REFINEMENT, "left": LEFT_EYE_REFINEMENT},
        "lips_refinement": LIPS_REFINEMENT,
    }
    return (json.dumps(data, separators=(",", ":"), sort_keys=True) + "\n").encode()


def checksums(names: list[str]) -> str:
    lines = [f"{hashlib.sha256((HERE / n).read_bytes()).hexdigest()}  {n}" for n in sorted(names)]
    return "\n".join(lines) + "\n"


def vendor(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        for name, member in MODELS.items():
            (HERE / name).write_bytes(archive.read(member))
        (HERE / "mesh.json").write_bytes(mesh_json(archive.read(CONNECTIONS).decode()))
        (HERE / "LICENSE").write_bytes(archive.read(LICENSE))
    write_checksums()


def write_checksums() -> None:
    """SHA256SUMS over every data file here (ours, pose_template.json, included)."""
    names = sorted(p.name for p in HERE.iterdir() if p.suffix in (".tflite", ".json"))
    (HERE / "SHA256SUMS").write_text(checksums(names))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheel", type=Path, help="a downloaded mediapipe wheel")
    args = parser.parse_args()
    if args.wheel is not None:
        vendor(args.wheel)
        return
    with tempfile.TemporaryDirectory() as tmp:
        vendor(download(Path(tmp)))


if __name__ == "__main__":
    main()
