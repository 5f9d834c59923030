"""face_landmark_with_attention.tflite, run in torch: the model behind MediaPipe's
``refine_landmarks=True``, whose custom ops LiteRT cannot load.

The graph is read from the vendored ``.tflite`` at first use (a fraction of a second) and
run op by op, in the file's order: builtin ops in ``torch_ops``, MediaPipe's custom ops
in ``custom_ops``. Float16 weights are dequantised once, at load, as the DEQUANTIZE ops
would on every call. ``tests/worker/face/test_attention.py`` holds the port to LiteRT on
the part of the graph LiteRT can run, and the whole to MediaPipe's recorded output.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from functools import cache

import numpy as np
import torch

from . import custom_ops, torch_ops
from .loader import data_file
from .tflite_graph import Graph, Operator, Tensor, parse

FILE = "face_landmark_with_attention.tflite"


@dataclass(frozen=True, slots=True)
class _Step:
    op: Operator
    args: tuple[int | torch.Tensor, ...]  # activation indices, or prepared constants
    out_shape: tuple[int, ...]


class TorchModel:
    """A parsed ``.tflite`` graph with one float input; outputs keyed by tensor name."""

    def __init__(self, graph: Graph) -> None:
        self._lock = threading.Lock()
        self._input = graph.inputs[0]
        self._outputs = {graph.tensors[i].name: i for i in graph.outputs}
        constants = _constants(graph)
        self._steps = [
            _Step(op, tuple(torch_ops.constant(constants[i], op.kind, slot) if i in constants
                            else i for slot, i in enumerate(op.inputs) if i >= 0),
                  graph.tensors[op.outputs[0]].shape)
            for op in graph.operators if op.outputs[0] not in constants]

    def run(self, image: np.ndarray) -> dict[str, np.ndarray]:
        """Output arrays (flattened, NHWC order) keyed by the graph's output names."""
        values: dict[int, torch.Tensor] = {}
        with self._lock, torch.inference_mode():
            values[self._input] = torch_ops.to_nchw(
                torch.from_numpy(np.ascontiguousarray(image, np.float32))[None])
            for step in self._steps:
                args = [values[a] if isinstance(a, int) else a for a in step.args]
                if step.op.kind in torch_ops.BUILTIN_KINDS:
                    out = torch_ops.builtin(step.op, args, step.out_shape)
                else:
                    out = custom_ops.custom(step.op, args)
                values[step.op.outputs[0]] = out
            return {name: torch_ops.to_nhwc(values[i]).reshape(-1).numpy().copy()
                    for name, i in self._outputs.items()}


def _constants(graph: Graph) -> dict[int, Tensor]:
    """The graph's constants, with every DEQUANTIZE of a constant done here, once."""
    found = {i: t for i, t in enumerate(graph.tensors) if t.data is not None}
    for op in graph.operators:
        source = found.get(op.inputs[0])
        if op.kind == "DEQUANTIZE" and source is not None and source.data is not None:
            found[op.outputs[0]] = replace(graph.tensors[op.outputs[0]], dtype=np.float32,
                                           data=source.data.astype(np.float32))
    return found


@cache
def attention_model() -> TorchModel:
    return TorchModel(parse(data_file(FILE)))
