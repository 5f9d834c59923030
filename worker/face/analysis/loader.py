"""Load the vendored models and data, checking each file against ``models/SHA256SUMS``.

One LiteRT interpreter per model, one thread each (builds share the worker's CPU with
live sessions), guarded by a lock because an interpreter keeps its tensors between calls.
"""

from __future__ import annotations

import hashlib
import threading
from functools import cache
from importlib import resources

import numpy as np
from ai_edge_litert.interpreter import Interpreter  # type: ignore[import-untyped]

PACKAGE = f"{__package__}.models"


class ModelIntegrityError(RuntimeError):
    """A vendored file is missing or differs from the digest it shipped with."""


@cache
def _digests() -> dict[str, str]:
    text = resources.files(PACKAGE).joinpath("SHA256SUMS").read_text()
    pairs = (line.split() for line in text.splitlines() if line.strip())
    return {name: digest for digest, name in pairs}


@cache
def data_file(name: str) -> bytes:
    """The bytes of a vendored file, verified against its recorded SHA-256."""
    expected = _digests().get(name)
    if expected is None:
        raise ModelIntegrityError(f"{name} has no recorded checksum")
    content = resources.files(PACKAGE).joinpath(name).read_bytes()
    if hashlib.sha256(content).hexdigest() != expected:
        raise ModelIntegrityError(f"{name} does not match its recorded checksum")
    return content


class Model:
    """A ``.tflite`` model with one float input; outputs are told apart by their size."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._lock = threading.Lock()
        self._interpreter = Interpreter(model_content=data_file(name), num_threads=1)
        self._interpreter.allocate_tensors()
        self._input = self._interpreter.get_input_details()[0]["index"]
        self._outputs = [(int(d["index"]), int(np.prod(d["shape"])))
                         for d in self._interpreter.get_output_details()]

    def run(self, tensor: np.ndarray) -> dict[int, np.ndarray]:
        """Output arrays (flattened, copied) keyed by their element count."""
        with self._lock:
            self._interpreter.set_tensor(self._input, tensor[None].astype(np.float32))
            self._interpreter.invoke()
            return {size: self._interpreter.get_tensor(index).reshape(-1).copy()
                    for index, size in self._outputs}


@cache
def model(name: str) -> Model:
    return Model(name)
