"""The model's seven articulation parameters → today's renderer's ``FaceParams`` mouth.

Today's renderer draws three mouth fields; the other four parameters (upper-lip raise,
lower-lip tuck, tongue, and spread apart from rounding) wait for the new renderer.
``FaceParams(mouth_open=…, lip_round=…, lip_press=…, speaking=…)`` plus the blink, head
and gaze fields from ``face_motion.Life`` make a complete frame.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .phones import JAW, PRESS, ROUND, SIL, SPREAD

# The jaw the network reaches on its most open vowels: drawn fully open. The labels ask
# 0.8 for /aa/, but the trained network's peaks on the repository's clips are 0.40–0.47
# (a regression towards the mean), so the drawing is calibrated to what it outputs.
JAW_FULL = 0.5
SPEAKING = 0.5  # speech when the silence viseme is less likely than this


class MouthFields(NamedTuple):
    mouth_open: float  # 0 closed … 1 fully open
    lip_round: float  # −1 spread … +1 rounded
    lip_press: float  # 0 relaxed … 1 pressed shut
    speaking: bool


def mouth_fields(params: np.ndarray, viseme_probs: np.ndarray) -> MouthFields:
    """One frame: ``params`` [7] and ``viseme_probs`` [15] from ``LipSync``."""
    press = float(np.clip(params[PRESS], 0.0, 1.0))
    jaw = float(np.clip(params[JAW] / JAW_FULL, 0.0, 1.0))
    shape = float(np.clip(params[ROUND] - params[SPREAD], -1.0, 1.0))
    return MouthFields(
        mouth_open=jaw * (1.0 - press),  # pressed lips hide the jaw's small opening
        lip_round=shape,
        lip_press=press,
        speaking=bool(viseme_probs[SIL] < SPEAKING),
    )
