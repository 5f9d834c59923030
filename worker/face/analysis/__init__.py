"""Face analysis of a portrait, once per avatar: MediaPipe's detector, 478-point mesh with
irises, head pose, a person mask and a background plate (``build``), plus a measuring
helper for rendered frames (``measure``) and an inspection overlay (``inspect``).

Everything runs from the vendored models in ``models/`` (Apache-2.0, see its NOTICE).
"""

from .analyse import FaceAnalysis, analyse, decode, describe, detect_faces, verdict
from .detector import Detection
from .pose import Pose
from .reasons import REASONS, FaceError

__all__ = ["REASONS", "Detection", "FaceAnalysis", "FaceError", "Pose", "analyse", "decode",
           "describe", "detect_faces", "verdict"]
