"""TensorFlow Lite's builtin ops, as the torch port runs them.

TFLite tensors are NHWC; the port indexes every 4-D activation NCHW, as torch's operators
do, over NHWC memory (``channels_last``), and reorders only where a reshape or a slice
depends on the element order.
Weights are converted once, when the graph is loaded (``constant``). Padding follows
TFLite's SAME rule, which puts the odd pixel after (bottom, right), unlike torch's.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from .tflite_graph import Operator, Tensor

LAST = torch.channels_last
VALID = 1  # tflite Padding: SAME = 0, VALID = 1
BUILTIN_KINDS = frozenset({"CONV_2D", "DEPTHWISE_CONV_2D", "PRELU", "ADD", "MUL", "MAX_POOL_2D",
                           "PAD", "RESHAPE", "STRIDED_SLICE"})


def to_nchw(x: torch.Tensor) -> torch.Tensor:
    # NCHW indexing over NHWC memory (channels_last): torch's CPU convolutions, the
    # depthwise ones above all, run about twice as fast on it at these small sizes.
    return x.permute(0, 3, 1, 2).contiguous(memory_format=LAST) if x.dim() == 4 else x


def to_nhwc(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 2, 3, 1).contiguous() if x.dim() == 4 else x


def constant(tensor: Tensor, consumer: str, slot: int) -> torch.Tensor:
    """A constant in the layout its consumer wants, as float32 (or int64 for shapes)."""
    assert tensor.data is not None
    data = tensor.data
    if not np.issubdtype(data.dtype, np.floating):
        return torch.from_numpy(data.astype(np.int64))
    values = torch.from_numpy(data.astype(np.float32))
    if consumer == "CONV_2D" and slot == 1:  # [out, h, w, in] → [out, in, h, w]
        return values.permute(0, 3, 1, 2).contiguous(memory_format=LAST)
    if consumer == "DEPTHWISE_CONV_2D" and slot == 1:  # [1, h, w, c] → [c, 1, h, w]
        return values.permute(3, 0, 1, 2).contiguous(memory_format=LAST)
    if consumer == "PRELU" and slot == 1:  # [1, 1, c] slopes → F.prelu's one per channel
        return values.reshape(-1)
    return to_nchw(values)


def _same(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def _option(op: Operator, name: str) -> int:
    value = op.options[name]
    assert isinstance(value, int)
    return value


def _same_pads(op: Operator, x: torch.Tensor,
               kernel: tuple[int, int]) -> tuple[int, int, int, int]:
    """(left, right, top, bottom) of TFLite's SAME padding, or zeros for VALID."""
    if _option(op, "padding") == VALID:
        return 0, 0, 0, 0
    dilation_h = _option(op, "dilation_h") if "dilation_h" in op.options else 1
    dilation_w = _option(op, "dilation_w") if "dilation_w" in op.options else 1
    top, bottom = _same(x.shape[2], kernel[0], _option(op, "stride_h"), dilation_h)
    left, right = _same(x.shape[3], kernel[1], _option(op, "stride_w"), dilation_w)
    return left, right, top, bottom


def _conv(op: Operator, args: list[torch.Tensor], groups: int) -> torch.Tensor:
    x, weight, bias = args[0], args[1], args[2] if len(args) > 2 else None
    if _option(op, "activation") != 0:
        raise ValueError("fused activations are not ported")
    left, right, top, bottom = _same_pads(op, x, (weight.shape[2], weight.shape[3]))
    padding = (top, left)
    if (left, top) != (right, bottom):  # uneven: pad apart (torch pads both sides alike)
        x, padding = F.pad(x, (left, right, top, bottom)), (0, 0)
    return F.conv2d(x, weight, bias, (_option(op, "stride_h"), _option(op, "stride_w")),
                    padding, (_option(op, "dilation_h"), _option(op, "dilation_w")), groups)


def _max_pool(op: Operator, x: torch.Tensor) -> torch.Tensor:
    kernel = (_option(op, "filter_h"), _option(op, "filter_w"))
    pads = _same_pads(op, x, kernel)
    if any(pads):  # SAME pooling ignores the padding: pad with −∞
        x = F.pad(x, pads, value=-math.inf)
    return F.max_pool2d(x, kernel, (_option(op, "stride_h"), _option(op, "stride_w")))


def _pad(x: torch.Tensor, paddings: torch.Tensor) -> torch.Tensor:
    """PAD with zeros; ``paddings`` are NHWC (before, after) pairs."""
    pairs = paddings.tolist()
    if x.dim() == 4:
        pairs = [pairs[0], pairs[3], pairs[1], pairs[2]]  # NHWC → NCHW
    flat = [amount for pair in reversed(pairs) for amount in pair]  # F.pad: last dim first
    return F.pad(x, flat)


def _strided_slice(op: Operator, x: torch.Tensor, begin: torch.Tensor, end: torch.Tensor,
                   strides: torch.Tensor) -> torch.Tensor:
    if any(_option(op, m) for m in ("ellipsis_mask", "new_axis_mask", "shrink_axis_mask")):
        raise ValueError("strided slice masks other than begin/end are not ported")
    data = to_nhwc(x)
    index = []
    for axis in range(data.dim()):
        start = None if _option(op, "begin_mask") >> axis & 1 else int(begin[axis])
        stop = None if _option(op, "end_mask") >> axis & 1 else int(end[axis])
        index.append(slice(start, stop, int(strides[axis])))
    return to_nchw(data[tuple(index)])


def builtin(op: Operator, args: list[torch.Tensor], out_shape: tuple[int, ...]) -> torch.Tensor:
    """One builtin op on NCHW activations; ``out_shape`` is the graph's (NHWC) output shape."""
    kind = op.kind
    if kind == "CONV_2D":
        return _conv(op, args, 1)
    if kind == "DEPTHWISE_CONV_2D":
        return _conv(op, args, args[0].shape[1])
    if kind == "PRELU":
        return F.prelu(args[0], args[1])
    if kind in ("ADD", "MUL"):
        if _option(op, "activation") != 0:
            raise ValueError("fused activations are not ported")
        return args[0] + args[1] if kind == "ADD" else args[0] * args[1]
    if kind == "MAX_POOL_2D":
        return _max_pool(op, args[0])
    if kind == "PAD":
        return _pad(args[0], args[1])
    if kind == "RESHAPE":
        return to_nchw(to_nhwc(args[0]).reshape(out_shape))
    if kind == "STRIDED_SLICE":
        return _strided_slice(op, *args[:4])
    raise ValueError(f"{kind} is not ported")
