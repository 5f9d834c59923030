"""Derive ``pose_template.json``, the 3D face that head pose is solved against (dev tool).

    python -m protoface.worker.face.analysis.models.derive_template IMAGE [IMAGE …]

The template is the landmark model's own face: the 468 points (x, y, and z, which the
model gives on the same scale as x) of near-frontal portraits, each aligned to the first
(rotation and scale), averaged, then made mirror-symmetric: the mid-sagittal plane is
fitted to the points that are their own mirror image and becomes x = 0, every point is
averaged with its mirrored partner (so the portraits' residual yaw and roll cancel).
Pitch keeps the portraits' mean attitude in their crops, which the model sees as from the
lens: pitch zero is "looking into the camera", as the derivation portraits do; a last
turn about x makes the pose solver agree (mean pitch zero on those portraits).
Axes as the camera's: x to the image's right, y down, z away from the camera; units are
inter-ocular distances (outer eye corners 33 and 263).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np

from ..detector import detect
from ..mesh import face_roi, landmarks
from ..pose import solve
from .vendor import HERE, write_checksums

# Points on the face's midline in MediaPipe's mesh; they seed the symmetry search.
MIDLINE_SEED = [0, 1, 2, 4, 5, 6, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 94, 151,
                152, 164, 168, 175, 195, 197, 199, 200]


def mesh_of(path: str) -> tuple[np.ndarray, int, int]:
    """The 468 points in pixels, and the image's width and height."""
    bgr = cv2.imread(path)
    if bgr is None:
        raise SystemExit(f"cannot read {path}")
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    points, _ = landmarks(rgb, face_roi(detect(rgb)[0]))
    return points, rgb.shape[1], rgb.shape[0]


def normalised(points: np.ndarray) -> np.ndarray:
    points = points - points.mean(axis=0)
    return np.asarray(points / np.linalg.norm(points[33] - points[263]))


def aligned(points: np.ndarray, to: np.ndarray) -> np.ndarray:
    """``points`` rotated onto ``to`` (Kabsch; both centred, same scale)."""
    u, _, vt = np.linalg.svd(points.T @ to)
    d = np.sign(np.linalg.det(u @ vt))
    return np.asarray(points @ (u @ np.diag([1.0, 1.0, d]) @ vt))


def to_midplane(points: np.ndarray, midline: list[int]) -> np.ndarray:
    """Rotate so the plane through ``midline`` is x = 0 (x still to the image right)."""
    mid = points[midline]
    centre = mid.mean(axis=0)
    normal = np.linalg.svd(mid - centre)[2][2]
    normal *= np.sign(normal[0])
    up = np.array([0.0, 1.0, 0.0]) - normal[1] * normal
    up /= np.linalg.norm(up)
    basis = np.stack([normal, up, np.cross(normal, up)])
    return np.asarray((points - centre) @ basis.T)


def mirror_map(points: np.ndarray) -> np.ndarray:
    """For each point, the index of its mirror partner.

    Greedy matching on the distance between a point and a mirrored point, closest pairs
    first; the cost is symmetric, so the pairing is an involution by construction (plain
    nearest neighbours are not: the mesh is dense at the lips and eyes).
    """
    flipped = points * np.array([-1.0, 1.0, 1.0])
    cost = np.linalg.norm(points[:, None] - flipped[None], axis=2)
    partner = np.full(len(points), -1)
    for flat in np.argsort(cost, axis=None, kind="stable"):
        i, j = divmod(int(flat), len(points))
        if partner[i] < 0 and partner[j] < 0:
            partner[i], partner[j] = j, i
    return partner


def pitched(points: np.ndarray, degrees: float) -> np.ndarray:
    """``points`` turned about the x axis so their pitch grows by ``degrees``."""
    c, s = np.cos(np.radians(degrees)), np.sin(np.radians(degrees))
    return np.asarray(points @ np.array([[1, 0, 0], [0, c, s], [0, -s, c]]).T)


def level(template: np.ndarray, seen: list[tuple[np.ndarray, int, int]]) -> np.ndarray:
    """Turn the template until the solver calls the portraits' mean pitch zero (the
    crop-frame average and the perspective solve differ by a few degrees)."""
    for _ in range(3):
        mean = float(np.mean([solve(p, w, h, template).pitch for p, w, h in seen]))
        template = pitched(template, mean)
    return template


def derive(paths: list[str]) -> np.ndarray:
    seen = [mesh_of(p) for p in paths]
    meshes = [normalised(points) for points, _, _ in seen]
    mean = np.mean([aligned(m, meshes[0]) for m in meshes], axis=0)
    rough = to_midplane(mean, MIDLINE_SEED)
    partner = mirror_map(rough)
    exact = to_midplane(mean, [int(i) for i in np.flatnonzero(partner == np.arange(468))])
    symmetric = (exact + exact[partner] * np.array([-1.0, 1.0, 1.0])) / 2
    return level(np.asarray(symmetric - symmetric.mean(axis=0)), seen)


def main() -> None:
    template = derive(sys.argv[1:])
    data = {"derived_from": [Path(p).name for p in sys.argv[1:]],
            "points": np.round(template, 5).tolist()}
    (HERE / "pose_template.json").write_text(json.dumps(data, separators=(",", ":")) + "\n")
    write_checksums()


if __name__ == "__main__":
    main()
