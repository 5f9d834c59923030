"""MediaPipe's three custom TFLite ops of face_landmark_with_attention, version 2, in torch.

Written from their reference kernels in mediapipe/util/tflite/operations/
(landmarks_to_transform_matrix.cc, transform_tensor_bilinear.cc, transform_landmarks.cc):

* ``Landmarks2TransformMatrix`` turns the mesh into a 4×4 matrix that maps the pixels of a
  small crop (``output_width`` × ``output_height``) to the feature map: the crop is the
  box of a subset of landmarks, turned so that two of them lie level, scaled by
  ``scale_x``, ``scale_y``.
* ``TransformTensorBilinear`` samples the feature map through that matrix (pixel centres,
  bilinear, zero outside).
* ``TransformLandmarks`` maps points predicted in the crop back through the matrix.

The kernels compute the matrix in float32; it is computed here in float64 and rounded to
float32 at the end: the difference is lost in the model's own float noise (the 478 points
match MediaPipe's to under 0.01 % of the face width, test_parity.py).
"""

from __future__ import annotations

import math

import torch

from .tflite_graph import Operator


def _number(op: Operator, name: str) -> float:
    value = op.options[name]
    assert isinstance(value, int | float)
    return float(value)


def _translation(x: float, y: float) -> torch.Tensor:
    t = torch.eye(4, dtype=torch.float64)
    t[0, 3], t[1, 3] = x, y
    return t


def landmarks_to_transform_matrix(op: Operator, landmarks: torch.Tensor) -> torch.Tensor:
    """[1, n, 3] landmarks → [1, 4, 4] crop-to-feature-map matrix."""
    points = landmarks.reshape(-1, 3)[:, :2].to(torch.float64)
    left = points[int(_number(op, "left_rotation_idx"))]
    right = points[int(_number(op, "right_rotation_idx"))]
    # The angle that turns left → right onto the target direction (0: level).
    angle = _number(op, "target_rotation_radians") - math.atan2(
        float(right[1] - left[1]), float(right[0] - left[0]))
    subset = op.options["subset_idxs"]
    assert isinstance(subset, list)
    chosen = points[torch.tensor([int(i) for i in subset])]
    cos, sin = math.cos(angle), math.sin(angle)
    turn = torch.tensor([[cos, -sin], [sin, cos]], dtype=torch.float64)
    turned = chosen @ turn.T
    low, high = turned.min(dim=0).values, turned.max(dim=0).values
    width, height = float(high[0] - low[0]), float(high[1] - low[1])
    centre = turn.T @ ((low + high) / 2)  # back to the landmarks' frame
    out_w, out_h = _number(op, "output_width"), _number(op, "output_height")
    # Shift to the crop's centre, turn back, scale a crop pixel to landmark units, and
    # measure crop pixels from the crop's centre: T = shift · rotate(-angle) · scale · shift.
    rotation = torch.eye(4, dtype=torch.float64)
    rotation[:2, :2] = turn.T
    scale = torch.diag(torch.tensor([_number(op, "scale_x") * width / out_w,
                                     _number(op, "scale_y") * height / out_h, 1.0, 1.0],
                                    dtype=torch.float64))
    matrix = (_translation(float(centre[0]), float(centre[1])) @ rotation @ scale
              @ _translation(-out_w / 2, -out_h / 2))
    return matrix.to(torch.float32).reshape(1, 4, 4)


def transform_tensor_bilinear(op: Operator, features: torch.Tensor,
                              matrix: torch.Tensor) -> torch.Tensor:
    """Sample an NCHW feature map at the crop's pixels → [1, c, out_h, out_w] (NCHW)."""
    out_h, out_w = int(_number(op, "output_height")), int(_number(op, "output_width"))
    m = matrix.reshape(4, 4)
    # The matrix maps pixel corners; sample at pixel centres (the kernel's ±0.5 correction).
    row_x, row_y = m[0].clone(), m[1].clone()
    row_x[3] += row_x[0] * 0.5 + row_x[1] * 0.5 - 0.5
    row_y[3] += row_y[0] * 0.5 + row_y[1] * 0.5 - 0.5
    ys, xs = torch.meshgrid(torch.arange(out_h, dtype=torch.float32),
                            torch.arange(out_w, dtype=torch.float32), indexing="ij")
    tx = row_x[0] * xs + row_x[1] * ys + row_x[3]
    ty = row_y[0] * xs + row_y[1] * ys + row_y[3]
    _, channels, height, width = features.shape
    inside = (tx >= 0) & (tx <= width - 1) & (ty >= 0) & (ty <= height - 1)
    x0, y0 = torch.floor(tx), torch.floor(ty)
    fx, fy = tx - x0, ty - y0
    # One zero row and column past the edge: a sample on the last pixel reads its
    # neighbour with weight 0, as the kernel's bounds-checked reads do.
    padded = torch.nn.functional.pad(features[0], (0, 1, 0, 1))
    xi = x0.clamp(0, width - 1).long()
    yi = y0.clamp(0, height - 1).long()

    def at(dy: int, dx: int) -> torch.Tensor:
        return padded[:, yi + dy, xi + dx]

    upper = (1 - fx) * at(0, 0) + fx * at(0, 1)
    lower = (1 - fx) * at(1, 0) + fx * at(1, 1)
    sampled = fy * lower + (1 - fy) * upper
    return torch.where(inside, sampled, torch.zeros(())).reshape(1, channels, out_h, out_w)


def transform_landmarks(landmarks: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """[1, n, 2] points in the crop → through the matrix's top two rows (z and w ignored)."""
    m = matrix.reshape(4, 4)
    x, y = landmarks[..., 0], landmarks[..., 1]
    return torch.stack([m[0, 0] * x + m[0, 1] * y + m[0, 3],
                        m[1, 0] * x + m[1, 1] * y + m[1, 3]], dim=-1)


def custom(op: Operator, args: list[torch.Tensor]) -> torch.Tensor:
    if op.kind == "Landmarks2TransformMatrix":
        return landmarks_to_transform_matrix(op, args[0])
    if op.kind == "TransformTensorBilinear":
        return transform_tensor_bilinear(op, args[0], args[1])
    if op.kind == "TransformLandmarks":
        return transform_landmarks(args[0], args[1])
    raise ValueError(f"custom op {op.kind} is not ported")
