"""The mesh's named points and edge sets (``models/mesh.json``, from MediaPipe).

"Right" and "left" are the subject's, as in MediaPipe's face_mesh_connections.py: the
right eye is on the image's left in a frontal portrait. The 478-point order is MediaPipe's
refine_landmarks order: 468 mesh points, the right iris (468 centre, 469..472 around),
the left iris (473 centre, 474..477 around).
"""

from __future__ import annotations

import json
from functools import cache

import numpy as np

from .loader import data_file

MESH_POINTS = 468
POINTS = 478
RIGHT_IRIS = (468, 469, 470, 471, 472)
LEFT_IRIS = (473, 474, 475, 476, 477)
# Eye corners (outer, inner) and the lids, for the eye aspect ratio.
RIGHT_EYE_CORNERS, LEFT_EYE_CORNERS = (33, 133), (263, 362)
RIGHT_EYE_LIDS = ((160, 144), (158, 153))  # (upper, lower) pairs
LEFT_EYE_LIDS = ((385, 380), (387, 373))
# Inner lips at the middle, and the mouth corners (outer).
INNER_UPPER_LIP, INNER_LOWER_LIP = 13, 14
MOUTH_CORNERS = (61, 291)
FOREHEAD_TOP, CHIN = 10, 152
CHEEKS = (234, 454)  # the face oval's widest points
NOSE_TIP = 1
NOSE_BASE = 2  # subnasale: where the nose meets the upper lip


@cache
def _mesh() -> dict[str, object]:
    loaded: dict[str, object] = json.loads(data_file("mesh.json"))
    return loaded


def edges(name: str) -> np.ndarray:
    """An edge set of face_mesh_connections.py as an (n, 2) int array."""
    table = _mesh()["edges"]
    assert isinstance(table, dict)
    return np.asarray(table[name], np.int64)


def eye_refinement(side: str) -> np.ndarray:
    """Mesh indices of an eye head's 71 contour points (attention model), in its output order."""
    table = _mesh()["eye_refinement"]
    assert isinstance(table, dict)
    return np.asarray(table[side], np.int64)


def lips_refinement() -> np.ndarray:
    """Mesh indices of the attention model's 80 lip points, in its output order."""
    table = _mesh()["lips_refinement"]
    assert isinstance(table, list)
    return np.asarray(table, np.int64)


@cache
def loop(name: str) -> tuple[int, ...]:
    """The points of a closed contour (face oval, eye, iris), walked in order."""
    pairs = edges(name).tolist()
    neighbours: dict[int, list[int]] = {}
    for a, b in pairs:
        neighbours.setdefault(a, []).append(b)
        neighbours.setdefault(b, []).append(a)
    start = min(neighbours)
    order, previous = [start], -1
    while True:
        step = next(n for n in sorted(neighbours[order[-1]]) if n != previous)
        if step == start:
            return tuple(order)
        previous = order[-1]
        order.append(step)
