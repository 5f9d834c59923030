"""An inspection overlay: what the analysis saw in a portrait, and its verdict.

``inspect(image)`` returns the verdict (``ACCEPTED`` or the failure reason) and a PNG:
the portrait at 1024 pixels on its long side with the mesh, the contours of lips, eyes,
brows and face, the irises, the person mask's outline, the head's axes (red to the
subject's left, green down, blue out of the face), a text band with the numbers, and the
background plate as an inset. A refused portrait is drawn as far as the analysis got.
"""

from __future__ import annotations

import cv2
import numpy as np

from . import features
from .analyse import FaceAnalysis, decode, describe, detect_faces, the_face, verdict
from .build import png
from .detector import Detection
from .plate import background_plate
from .pose import camera, template
from .reasons import FaceError
from .segment import person_mask
from .topology import LEFT_IRIS, NOSE_TIP, RIGHT_IRIS, edges

ACCEPTED = "accepted"
SIDE = 1024  # the overlay's long side
CONTOURS = {  # RGB
    "lips": (255, 70, 90), "right_eye": (60, 230, 90), "left_eye": (60, 230, 90),
    "right_eyebrow": (250, 210, 60), "left_eyebrow": (250, 210, 60),
    "face_oval": (235, 235, 235), "nose": (120, 200, 255),
}
MASK_COLOUR, IRIS_COLOUR = (0, 220, 255), (255, 60, 220)
FONT = cv2.FONT_HERSHEY_SIMPLEX


def _canvas(rgb: np.ndarray) -> tuple[np.ndarray, float]:
    scale = SIDE / max(rgb.shape[:2])
    size = (round(rgb.shape[1] * scale), round(rgb.shape[0] * scale))
    method = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    return np.ascontiguousarray(cv2.resize(rgb, size, interpolation=method)), scale


def _lines(canvas: np.ndarray, points: np.ndarray, pairs: np.ndarray,
           colour: tuple[int, int, int], thickness: int) -> None:
    ends = np.round(points[pairs.reshape(-1), :2] * 16).astype(np.int32).reshape(-1, 2, 2)
    cv2.polylines(canvas, list(ends), False, colour, thickness, cv2.LINE_AA, shift=4)


def _mesh(canvas: np.ndarray, points: np.ndarray) -> None:
    faint = canvas.copy()
    _lines(faint, points, edges("tesselation"), (255, 255, 255), 1)
    cv2.addWeighted(faint, 0.35, canvas, 0.65, 0, dst=canvas)
    for name, colour in CONTOURS.items():
        _lines(canvas, points, edges(name), colour, 2)
    for iris in (RIGHT_IRIS, LEFT_IRIS):
        centre = points[iris[0], :2]
        radius = float(np.linalg.norm(points[list(iris[1:]), :2] - centre, axis=1).mean())
        cv2.circle(canvas, (round(centre[0] * 16), round(centre[1] * 16)), round(radius * 16),
                   IRIS_COLOUR, 2, cv2.LINE_AA, shift=4)


def _outline(canvas: np.ndarray, mask: np.ndarray) -> None:
    big = cv2.resize(mask, (canvas.shape[1], canvas.shape[0]), interpolation=cv2.INTER_LINEAR)
    found, _ = cv2.findContours((big > 127).astype(np.uint8), cv2.RETR_EXTERNAL,
                                cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(canvas, found, -1, MASK_COLOUR, 2, cv2.LINE_AA)


def _axes(canvas: np.ndarray, face: FaceAnalysis, scale: float) -> None:
    """The head's axes from the nose tip, one inter-ocular distance long."""
    origin = template()[NOSE_TIP]
    tips = origin + np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, -1]], np.float64)
    drawn, _ = cv2.projectPoints(tips, face.pose.rotation, face.pose.translation,
                                 camera(face.width, face.height), None)
    start, *ends = [tuple(int(v) for v in np.round(p * scale * 16)) for p in drawn.reshape(-1, 2)]
    for end, colour in zip(ends, [(255, 40, 40), (40, 255, 40), (60, 120, 255)], strict=True):
        cv2.arrowedLine(canvas, start, end, colour, 3, cv2.LINE_AA, shift=4, tipLength=0.15)


def _inset(canvas: np.ndarray, plate: np.ndarray) -> None:
    width = canvas.shape[1] // 4
    height = round(plate.shape[0] * width / plate.shape[1])
    small = cv2.resize(plate, (width, height), interpolation=cv2.INTER_AREA)
    y0, x0 = canvas.shape[0] - height - 12, canvas.shape[1] - width - 12
    cv2.rectangle(canvas, (x0 - 3, y0 - 3), (x0 + width + 2, y0 + height + 2), (255, 255, 255), -1)
    canvas[y0 : y0 + height, x0 : x0 + width] = small
    _label(canvas, "background plate", (x0 + 4, y0 + height - 8), 0.5)


def _label(canvas: np.ndarray, text: str, at: tuple[int, int], size: float) -> None:
    cv2.putText(canvas, text, at, FONT, size, (0, 0, 0), 4, cv2.LINE_AA)
    cv2.putText(canvas, text, at, FONT, size, (255, 255, 255), 1, cv2.LINE_AA)


def _header(canvas: np.ndarray, lines: list[str]) -> None:
    band = canvas[: 12 + 26 * len(lines)]
    band[:] = (band * 0.45).astype(np.uint8)
    for row, text in enumerate(lines):
        _label(canvas, text, (12, 30 + 26 * row), 0.62)


def _numbers(face: FaceAnalysis) -> str:
    points = face.landmarks
    ears = [features.eye_aspect_ratio(points, side) for side in ("right", "left")]
    gap = features.lip_gap(points) / features.face_height(points)
    return (f"yaw {face.pose.yaw:+.1f}  pitch {face.pose.pitch:+.1f}  roll {face.pose.roll:+.1f}"
            f"  |  eyes {ears[0]:.2f} {ears[1]:.2f}  lip gap {gap:.1%}  score {face.score:.2f}")


def _refused_early(rgb: np.ndarray, found: list[Detection], reason: str) -> bytes:
    canvas, scale = _canvas(rgb)
    for d in found:
        x0, y0, x1, y1 = (round(v * scale) for v in d.box)
        cv2.rectangle(canvas, (x0, y0), (x1, y1), (255, 80, 80), 2, cv2.LINE_AA)
    _header(canvas, [reason])
    return png(canvas)


def overlay(rgb: np.ndarray, face: FaceAnalysis, verdict_text: str) -> bytes:
    mask = person_mask(rgb, face.landmarks)
    canvas, scale = _canvas(rgb)
    scaled = face.landmarks[:, :2] * scale
    _outline(canvas, mask)
    _mesh(canvas, scaled)
    _axes(canvas, face, scale)
    _inset(canvas, background_plate(rgb, mask, face.landmarks))
    _header(canvas, [verdict_text, _numbers(face)])
    return png(canvas)


def inspect(image: bytes) -> tuple[str, bytes]:
    """The verdict on a portrait (``ACCEPTED`` or its failure reason) and an overlay PNG."""
    try:
        rgb = decode(image)
    except FaceError as refused:
        return refused.reason, png(np.zeros((64, 64, 3), np.uint8))
    found = detect_faces(rgb)
    try:
        detection = the_face(found)
    except FaceError as refused:
        return refused.reason, _refused_early(rgb, found, refused.reason)
    face = describe(rgb, detection)
    result = verdict(face) or ACCEPTED
    return result, overlay(rgb, face, result)
