"""Read a ``.tflite`` file's graph and weights, for the torch port of a model LiteRT cannot run.

A ``.tflite`` file is a FlatBuffer of TensorFlow Lite's schema (tensorflow/lite/schema/
schema.fbs). This reads only the tables and fields the ported model uses: the operator
codes, the first subgraph's tensors and operators with their builtin options, and the
constant buffers; custom options are FlexBuffers, read with the ``flatbuffers`` package.
Field numbers are the schema's (a field's slot in its table's vtable).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

import numpy as np
from flatbuffers import flexbuffers  # type: ignore[import-untyped]

# TensorType → numpy (schema.fbs: FLOAT32 = 0, FLOAT16 = 1, INT32 = 2, INT64 = 4).
DTYPES: dict[int, type[np.generic]] = {0: np.float32, 1: np.float16, 2: np.int32, 4: np.int64}
# BuiltinOperator codes of the ops the port knows (schema.fbs).
BUILTINS = {0: "ADD", 3: "CONV_2D", 4: "DEPTHWISE_CONV_2D", 6: "DEQUANTIZE", 17: "MAX_POOL_2D",
            18: "MUL", 22: "RESHAPE", 34: "PAD", 45: "STRIDED_SLICE", 54: "PRELU"}
CUSTOM = 32
# Each options table: (field, name, struct format) in schema order.
OPTIONS: dict[str, tuple[tuple[int, str, str], ...]] = {
    "CONV_2D": ((0, "padding", "b"), (1, "stride_w", "i"), (2, "stride_h", "i"),
                (3, "activation", "b"), (4, "dilation_w", "i"), (5, "dilation_h", "i")),
    "DEPTHWISE_CONV_2D": ((0, "padding", "b"), (1, "stride_w", "i"), (2, "stride_h", "i"),
                          (3, "depth_multiplier", "i"), (4, "activation", "b"),
                          (5, "dilation_w", "i"), (6, "dilation_h", "i")),
    "MAX_POOL_2D": ((0, "padding", "b"), (1, "stride_w", "i"), (2, "stride_h", "i"),
                    (3, "filter_w", "i"), (4, "filter_h", "i"), (5, "activation", "b")),
    "ADD": ((0, "activation", "b"),),
    "MUL": ((0, "activation", "b"),),
    "STRIDED_SLICE": ((0, "begin_mask", "i"), (1, "end_mask", "i"), (2, "ellipsis_mask", "i"),
                      (3, "new_axis_mask", "i"), (4, "shrink_axis_mask", "i")),
}
# Defaults of the schema for fields a writer may omit (FlatBuffers drops default values).
DEFAULTS = {"stride_w": 1, "stride_h": 1, "dilation_w": 1, "dilation_h": 1,
            "depth_multiplier": 1}


@dataclass(frozen=True, slots=True)
class Tensor:
    name: str
    shape: tuple[int, ...]
    dtype: type[np.generic]
    data: np.ndarray | None  # the constant's values, or None for an activation


@dataclass(frozen=True, slots=True)
class Operator:
    kind: str  # a BUILTINS name, or the custom op's name
    inputs: tuple[int, ...]  # tensor indices; -1 for an omitted optional input
    outputs: tuple[int, ...]
    options: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Graph:
    tensors: tuple[Tensor, ...]
    operators: tuple[Operator, ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]


class _Table:
    """A FlatBuffers table at ``pos`` in ``buf``: fields found through its vtable."""

    def __init__(self, buf: bytes, pos: int) -> None:
        self.buf, self.pos = buf, pos
        self._vtable = pos - struct.unpack_from("<i", buf, pos)[0]
        self._vsize = struct.unpack_from("<H", buf, self._vtable)[0]

    def _at(self, slot: int) -> int | None:
        entry = 4 + 2 * slot
        if entry >= self._vsize:
            return None
        offset: int = struct.unpack_from("<H", self.buf, self._vtable + entry)[0]
        return self.pos + offset if offset else None

    def scalar(self, slot: int, fmt: str, default: int = 0) -> int:
        at = self._at(slot)
        return default if at is None else int(struct.unpack_from("<" + fmt, self.buf, at)[0])

    def _target(self, slot: int) -> int | None:
        at = self._at(slot)
        return None if at is None else at + struct.unpack_from("<I", self.buf, at)[0]

    def table(self, slot: int) -> _Table | None:
        at = self._target(slot)
        return None if at is None else _Table(self.buf, at)

    def bytes(self, slot: int) -> bytes:
        """A string or a ubyte vector."""
        at = self._target(slot)
        if at is None:
            return b""
        length = struct.unpack_from("<I", self.buf, at)[0]
        return self.buf[at + 4 : at + 4 + length]

    def ints(self, slot: int) -> tuple[int, ...]:
        at = self._target(slot)
        if at is None:
            return ()
        length = struct.unpack_from("<I", self.buf, at)[0]
        return struct.unpack_from(f"<{length}i", self.buf, at + 4)

    def tables(self, slot: int) -> list[_Table]:
        at = self._target(slot)
        if at is None:
            return []
        length = struct.unpack_from("<I", self.buf, at)[0]
        items = (at + 4 + 4 * i for i in range(length))
        return [_Table(self.buf, p + struct.unpack_from("<I", self.buf, p)[0]) for p in items]


def _opcode(code: _Table) -> str:
    # builtin_code (slot 3, int32) superseded deprecated_builtin_code (slot 0, int8); a
    # writer fills either, so the larger is the code.
    number = max(code.scalar(0, "b"), code.scalar(3, "i"))
    if number == CUSTOM:
        return code.bytes(1).decode()
    if number not in BUILTINS:
        raise ValueError(f"operator {number} is not supported by the port")
    return BUILTINS[number]


def _options(kind: str, op: _Table) -> dict[str, object]:
    if kind not in BUILTINS.values():
        custom = op.bytes(5)  # custom_options: a FlexBuffer map, or nothing
        loaded = flexbuffers.Loads(custom) if custom else {}
        assert isinstance(loaded, dict)
        return loaded
    table = op.table(4)  # builtin_options; absent when every field has its default
    return {name: table.scalar(slot, fmt, DEFAULTS.get(name, 0)) if table
            else DEFAULTS.get(name, 0) for slot, name, fmt in OPTIONS.get(kind, ())}


def _tensor(raw: _Table, buffers: list[_Table]) -> Tensor:
    dtype = DTYPES[raw.scalar(1, "b")]
    shape = raw.ints(0)
    content = buffers[raw.scalar(2, "I")].bytes(0)
    data = np.frombuffer(content, dtype).reshape(shape).copy() if content else None
    return Tensor(raw.bytes(3).decode(), tuple(shape), dtype, data)


def parse(content: bytes) -> Graph:
    """The first subgraph of a ``.tflite`` model."""
    model = _Table(content, struct.unpack_from("<I", content, 0)[0])
    kinds = [_opcode(code) for code in model.tables(1)]
    buffers = model.tables(4)
    graph = model.tables(2)[0]
    operators = tuple(
        Operator(kinds[op.scalar(0, "I")], op.ints(1), op.ints(2),
                 _options(kinds[op.scalar(0, "I")], op))
        for op in graph.tables(3))
    tensors = tuple(_tensor(raw, buffers) for raw in graph.tables(0))
    return Graph(tensors, operators, graph.ints(1), graph.ints(2))
