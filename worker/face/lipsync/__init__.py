"""Learned lip-sync: 16 kHz speech → articulation parameters and visemes per video frame.

``LipSync`` (``stream``) is the runtime: one instance per worker process, one batched
``step_frames`` per tick for all its sessions, each session carrying an immutable
``State``. ``adapter.mouth_fields`` turns a frame's output into today's ``FaceParams``
mouth fields. Everything else here builds the data, trains and evaluates the model
(``MODEL_CARD.md``).
"""

from .adapter import MouthFields, mouth_fields
from .phones import PARAMS, VISEMES
from .stream import LOOKAHEAD, LipSync, State

__all__ = ["LOOKAHEAD", "PARAMS", "VISEMES", "LipSync", "MouthFields", "State",
           "mouth_fields"]
