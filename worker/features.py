"""Audio → face parameters, one video frame at a time.

The mock path needs only mouth opening from speech energy, with a fast attack and
a slow release (coarticulation) and a closed mouth in silence.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SILENCE_DB = -50.0  # RMS below this (dBFS) is silence
LOUD_DB = -12.0  # RMS at or above this opens the mouth fully


@dataclass(frozen=True, slots=True)
class FaceParams:
    """What the renderer draws for one video frame. Every field has a neutral default."""

    mouth_open: float  # jaw and lip opening: 0 closed … 1 fully open
    speaking: bool
    lip_round: float = 0.0  # −1 spread (ee) … 0 neutral … +1 rounded (oo)
    lip_press: float = 0.0  # 0 relaxed … 1 lips pressed shut (plosive onset: p, b, m)
    blink: float = 0.0  # 0 eyes open … 1 eyelids closed
    head_yaw: float = 0.0  # degrees, small (|x| ≤ 4)
    head_pitch: float = 0.0  # degrees, small (|x| ≤ 3)
    head_roll: float = 0.0  # degrees, small (|x| ≤ 3)
    gaze_x: float = 0.0  # −1 … +1: fraction of the largest iris shift, + is image right
    gaze_y: float = 0.0  # −1 … +1, + is down


class EnergyMouth:
    def __init__(self, attack: float = 0.7, release: float = 0.35) -> None:
        self.attack = attack
        self.release = release
        self.level = 0.0

    def step(self, chunk: np.ndarray) -> FaceParams:
        rms = float(np.sqrt(np.mean(np.square(chunk.astype(np.float64))))) if chunk.size else 0.0
        db = 20.0 * np.log10(max(rms, 1e-9) / 32768.0)
        target = float(np.clip((db - SILENCE_DB) / (LOUD_DB - SILENCE_DB), 0.0, 1.0))
        rate = self.attack if target > self.level else self.release
        self.level += rate * (target - self.level)
        if self.level < 0.02:
            self.level = 0.0
        return FaceParams(mouth_open=self.level, speaking=target > 0.0)
