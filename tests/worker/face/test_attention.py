"""The torch port of face_landmark_with_attention: graph reading, ops, custom ops.

LiteRT cannot load the attention model (MediaPipe's custom ops), but the plain mesh and
iris models are made of the same builtin ops: run by the port, they must give LiteRT's
outputs. The custom ops are checked on cases with known answers; the whole model against
MediaPipe's recorded refine_landmarks output (test_parity.py).
"""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import torch

from protoface.worker.face.analysis import custom_ops, loader
from protoface.worker.face.analysis.attention import FILE, TorchModel, attention_model
from protoface.worker.face.analysis.tflite_graph import Operator, parse
from protoface.worker.face.analysis.topology import eye_refinement, lips_refinement


@pytest.mark.parametrize(("name", "size"), [("face_landmark.tflite", 192),
                                            ("iris_landmark.tflite", 64)])
def test_builtin_ops_give_litert_outputs(name: str, size: int) -> None:
    torch.set_num_threads(1)
    image = np.random.default_rng(7).random((size, size, 3), dtype=np.float32)
    ours = TorchModel(parse(loader.data_file(name))).run(image)
    theirs = loader.model(name).run(image)
    assert {v.size for v in ours.values()} == set(theirs)
    for values in ours.values():
        reference = theirs[values.size]
        assert np.abs(values - reference).max() < 1e-5 * max(1.0, float(np.abs(reference).max()))


def test_attention_graph_is_read_with_its_custom_ops() -> None:
    graph = parse(loader.data_file(FILE))
    kinds = [op.kind for op in graph.operators]
    assert kinds.count("Landmarks2TransformMatrix") == 3
    assert kinds.count("TransformTensorBilinear") == 3
    assert kinds.count("TransformLandmarks") == 5
    crops = [op.options for op in graph.operators if op.kind == "Landmarks2TransformMatrix"]
    # The crops are built on the very points each head refines (MediaPipe's merge maps).
    assert crops[0]["subset_idxs"] == lips_refinement().tolist()
    assert crops[1]["subset_idxs"] == eye_refinement("right").tolist()
    assert crops[2]["subset_idxs"] == eye_refinement("left").tolist()
    assert (crops[0]["left_rotation_idx"], crops[0]["right_rotation_idx"]) == (61, 291)


def _matrix_op(subset: list[int]) -> Operator:
    return Operator("Landmarks2TransformMatrix", (0,), (1,), {
        "left_rotation_idx": 0, "right_rotation_idx": 1, "output_width": 4,
        "output_height": 2, "scale_x": 2.0, "scale_y": 1.0, "subset_idxs": subset,
        "target_rotation_radians": 0.0})


def test_transform_matrix_maps_the_crop_onto_the_turned_box() -> None:
    # Two points 10 apart on a line at 30°, and a third 4 off that line: the box, in the
    # line's frame, is 10 × 4 wide, centred between the middle of the line and the third.
    angle = math.radians(30)
    along, across = np.array([math.cos(angle), math.sin(angle)]), np.array(
        [-math.sin(angle), math.cos(angle)])
    points = np.stack([[0, 0], 10 * along, 5 * along + 4 * across])
    landmarks = torch.tensor(np.c_[points, np.zeros(3)], dtype=torch.float32)[None]
    matrix = custom_ops.landmarks_to_transform_matrix(_matrix_op([0, 1, 2, 2]), landmarks)[0]
    # Crop pixel (x, y) → landmark units: the crop's centre lands on the box's centre, and
    # one crop pixel spans scale × box / output along each of the box's axes.
    def mapped(x: float, y: float) -> np.ndarray:
        return (matrix @ torch.tensor([x, y, 0.0, 1.0]))[:2].numpy().astype(np.float64)

    centre = 5 * along + 2 * across
    np.testing.assert_allclose(mapped(2, 1), centre, atol=1e-5)
    np.testing.assert_allclose(mapped(3, 1) - mapped(2, 1), 2.0 * 10 / 4 * along, atol=1e-5)
    np.testing.assert_allclose(mapped(2, 2) - mapped(2, 1), 1.0 * 4 / 2 * across, atol=1e-5)


def test_bilinear_sampling_reads_pixel_centres_and_zero_outside() -> None:
    op = Operator("TransformTensorBilinear", (0, 1), (2,),
                  {"output_width": 3, "output_height": 2})
    features = torch.arange(2 * 4 * 5, dtype=torch.float32).reshape(1, 2, 4, 5)
    shift = torch.eye(4)
    shift[0, 3], shift[1, 3] = 1.0, 2.0  # crop pixel (x, y) ↔ feature pixel (x + 1, y + 2)
    out = custom_ops.transform_tensor_bilinear(op, features, shift[None])
    torch.testing.assert_close(out, features[:, :, 2:4, 1:4])
    half = torch.eye(4)
    half[0, 0] = half[1, 1] = 0.5  # two crop pixels per feature pixel
    sampled = custom_ops.transform_tensor_bilinear(op, features, half[None])[0, 0]
    # With the half-pixel correction crop pixel x samples 0.5 x − 0.25: pixel 0 falls
    # outside (zero), pixel 1 a quarter of the way from feature pixel 0 to 1.
    assert sampled[0, 0] == 0
    assert sampled[1, 1] == pytest.approx(0.25 * 5 + 0.25)


def test_transform_landmarks_applies_the_top_rows() -> None:
    matrix = torch.tensor([[0.0, -2.0, 0.0, 3.0], [1.0, 0.0, 0.0, -1.0],
                           [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]])[None]
    points = torch.tensor([[[1.0, 2.0], [0.0, 0.0]]])
    out = custom_ops.transform_landmarks(points, matrix)
    torch.testing.assert_close(out, torch.tensor([[[-1.0, 0.0], [3.0, -1.0]]]))


def test_attention_model_loads_fast_and_runs_deterministically() -> None:
    torch.set_num_threads(1)
    attention_model.cache_clear()
    started = time.perf_counter()
    model = attention_model()
    assert time.perf_counter() - started < 1.0
    image = np.random.default_rng(3).random((192, 192, 3), dtype=np.float32)
    first, second = model.run(image), model.run(image)
    assert {k: v.size for k, v in first.items()} == {
        "output_mesh_identity": 1404, "output_lips": 160, "output_left_eye": 142,
        "output_right_eye": 142, "output_left_iris": 10, "output_right_iris": 10,
        "conv_faceflag": 1}
    for key, values in first.items():
        assert np.array_equal(values, second[key])
