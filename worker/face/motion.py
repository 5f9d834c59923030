"""Life in a face that is not talking: blinks, small head motion and gaze shifts.

Everything is drawn from one ``numpy`` generator seeded per session, and time is the
frame count, so the same seed gives the same motion on every run and every machine.

* **Blinks**: 10–30 a minute (intervals 2.2–4.8 s), each 120–320 ms: the lids close
  fast, stay shut a moment and open more slowly, as real lids do. People blink more
  at turn-taking: when speech starts or stops after a second or more, a blink follows
  within 50–250 ms unless one is near anyway.
* **Head**: per axis a sum of three slow sinusoids (0.05–0.4 Hz) with random phases,
  calmer while listening than while speaking (never still); small nods (the head dips
  and comes back) on stressed syllables — the jaw opening wide after a near-closure —
  and a slower one at a phrase's end; clipped to a few degrees.
* **Breath**: a slow rise and fall (0.2–0.3 Hz) the renderer shows in the shoulders.
* **Rest**: after a silence of ``REST_AFTER_S`` (a turn's end, a session's start) the
  face eases into the portrait's own expression (a smile over the teeth, say); speech
  takes it out again at once.
* **Gaze**: fixations held 0.8–3.5 s, then a saccade (≈ 30 ms) to a new target near the
  centre; while speaking the eyes stay closer to the listener.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

BLINK_INTERVAL_S = (2.2, 4.8)
BLINK_DURATION_S = (0.12, 0.32)
# Phase of a blink (0 … 1) at which the lids are shut, and when they start to open.
BLINK_SHUT, BLINK_OPENS = 0.3, 0.5
HEAD_LIMITS = {"yaw": 4.0, "pitch": 3.0, "roll": 3.0}  # degrees
HEAD_SWAY = 0.55  # share of each limit the idle sway may use
NOD_DEGREES = 1.2  # a stressed syllable's nod (the head dips, pitch down)
PHRASE_NOD_DEGREES = 1.5  # the nod at a phrase's end
NOD_S, PHRASE_NOD_S = 0.35, 0.6
STRESS_OPEN, STRESS_REARM = 0.6, 0.35  # jaw opening that counts as stress, and re-arms it
LISTENING_SWAY = 0.6  # the idle sway's share while listening
SWAY_EASE_S = 1.0  # how fast the sway's amplitude follows the turn
PHRASE_END_S = 0.25  # this much silence ends a phrase
TURN_HELD_S = 1.0  # speech (or silence) this long before a change counts as a turn
TURN_BLINK_S = (0.05, 0.25)  # how soon after a turn its blink starts
BLINK_REST_S = 0.8  # no turn-taking blink this soon after another blink
FIXATION_S = (0.8, 3.5)
SACCADE_S = 0.03
GAZE_SPREAD = (0.25, 0.12)  # standard deviation of fixation targets (x, y)
GAZE_LIMIT = 0.6
BREATH_HZ = (0.2, 0.3)
SPEAKING_GAZE = 0.5  # targets shrink towards the centre by this factor while speaking
# Silence this long after speech, and the ease after it, bring the face back to rest: the
# lips close within 150 ms of the speech's end (issue 19) and stay so through a pause,
# and a listener holds their own expression.
REST_AFTER_S, REST_EASE_S = 1.0, 0.6
REST_LEAVE_S = 0.08  # speech takes the face out of rest this fast


@dataclass(frozen=True, slots=True)
class Motion:
    blink: float
    head_yaw: float
    head_pitch: float
    head_roll: float
    gaze_x: float
    gaze_y: float
    breath: float = 0.0
    rest: float = 0.0  # 0 in a turn … 1 at rest: the portrait's own expression


def _smooth(t: float) -> float:
    t = min(1.0, max(0.0, t))
    return t * t * (3 - 2 * t)


def blink_shape(phase: float) -> float:
    """Lid closure (0 open … 1 shut) at ``phase`` (0 … 1) of one blink."""
    if phase <= 0.0 or phase >= 1.0:
        return 0.0
    if phase < BLINK_SHUT:
        return phase / BLINK_SHUT
    if phase < BLINK_OPENS:
        return 1.0
    return (1.0 - phase) / (1.0 - BLINK_OPENS)


class _Sway:
    """Slow head motion on one axis: three sinusoids with random frequencies and phases."""

    def __init__(self, rng: np.random.Generator, limit: float) -> None:
        self.freqs = rng.uniform(0.05, 0.4, 3)
        self.phases = rng.uniform(0.0, 2 * math.pi, 3)
        weights = rng.uniform(0.5, 1.0, 3)
        self.amplitudes = weights / weights.sum() * limit * HEAD_SWAY

    def at(self, t: float) -> float:
        return float(np.sum(self.amplitudes * np.sin(2 * math.pi * self.freqs * t + self.phases)))


class _Turn:
    """Turn-taking and stress, read from each frame's speech flag and jaw opening."""

    def __init__(self, fps: int) -> None:
        self.period = 1.0 / fps
        self.in_phrase = False
        # A session starts composed, as a turn ends: a greeting's first word can come at
        # once, and a face that rests on a smile over its teeth eases into it after
        # REST_AFTER_S (it smiles as the session settles).
        self.silent_for = 0.0
        self.rest = 0.0
        self.armed = True  # a stress counts once the jaw has nearly closed again
        self.sway = LISTENING_SWAY  # the idle sway's amplitude now
        self._ease = 1.0 - math.exp(-self.period / SWAY_EASE_S)

    def step(self, speaking: bool, emphasis: float) -> str | None:
        """``"start"`` of a phrase, ``"end"`` of one, a ``"stress"``, or nothing."""
        event = None
        if speaking:
            self.silent_for = 0.0
            if not self.in_phrase:
                self.in_phrase, event = True, "start"
            if self.armed and emphasis >= STRESS_OPEN:
                self.armed, event = False, event or "stress"
            elif emphasis <= STRESS_REARM:
                self.armed = True
        else:
            self.silent_for += self.period
            self.armed = True
            if self.in_phrase and self.silent_for >= PHRASE_END_S:
                self.in_phrase, event = False, "end"
        self.sway += self._ease * ((1.0 if self.in_phrase else LISTENING_SWAY) - self.sway)
        goal = _smooth((self.silent_for - REST_AFTER_S) / REST_EASE_S)
        self.rest = max(goal, self.rest - self.period / REST_LEAVE_S)
        return event


class Life:
    """Blinks, head motion and gaze for one session, one frame at a time."""

    def __init__(self, seed: int, fps: int) -> None:
        self.fps = fps
        self.frame = 0
        self._blinks = np.random.default_rng([seed, 1])
        self._gaze_rng = np.random.default_rng([seed, 2])
        head_rng = np.random.default_rng([seed, 3])
        self._sway = {axis: _Sway(head_rng, limit) for axis, limit in HEAD_LIMITS.items()}
        self._blink_start = float(self._blinks.uniform(0.5, BLINK_INTERVAL_S[1]))
        self._blink_length = float(self._blinks.uniform(*BLINK_DURATION_S))
        self._last_blink_end = -BLINK_REST_S
        self._speaking = False
        self._since = 0.0  # when speaking last changed
        self._fixation_end = 0.0
        self._target = np.zeros(2)
        self._gaze = np.zeros(2)
        self._saccade = 1.0 - math.exp(-1.0 / (fps * SACCADE_S))
        self._turn = _Turn(fps)
        self._nods: list[tuple[float, float, float]] = []  # (start, length, degrees)
        breath_rng = np.random.default_rng([seed, 4])
        self._breath = (float(breath_rng.uniform(*BREATH_HZ)),
                        float(breath_rng.uniform(0.0, 2 * math.pi)))

    def step(self, *, speaking: bool, emphasis: float) -> Motion:
        """This frame's motion; ``emphasis`` (0 … 1, the jaw) marks stressed syllables."""
        t = self.frame / self.fps
        self.frame += 1
        if speaking != self._speaking:
            self._turn_blink(t)
            self._speaking, self._since = speaking, t
        event = self._turn.step(speaking, emphasis)
        if event == "stress":
            self._nods.append((t, NOD_S, NOD_DEGREES))
        elif event == "end":
            self._nods.append((t, PHRASE_NOD_S, PHRASE_NOD_DEGREES))
        blink = self._blink(t)
        gaze = self._gaze_at(t, speaking)
        calm = self._turn.sway
        return Motion(
            blink=blink,
            head_yaw=self._head("yaw", t, calm),
            head_pitch=self._head("pitch", t, calm, -self._nod(t)),
            head_roll=self._head("roll", t, calm),
            gaze_x=float(gaze[0]),
            gaze_y=float(gaze[1]),
            breath=0.5 + 0.5 * math.sin(2 * math.pi * self._breath[0] * t + self._breath[1]),
            rest=self._turn.rest,
        )

    def _head(self, axis: str, t: float, calm: float, extra: float = 0.0) -> float:
        limit = HEAD_LIMITS[axis]
        return min(limit, max(-limit, calm * self._sway[axis].at(t) + extra))

    def _nod(self, t: float) -> float:
        """Degrees of the nods under way: each a dip, down and back (half a sine)."""
        self._nods = [n for n in self._nods if t < n[0] + n[1]]
        return sum(deg * math.sin(math.pi * (t - start) / length)
                   for start, length, deg in self._nods)

    def _turn_blink(self, t: float) -> None:
        """Speech started or stopped: bring the next blink forward if it is a real turn
        and no blink is in progress, just over or about to come."""
        in_progress = self._blink_start <= t < self._blink_start + self._blink_length
        if t - self._since < TURN_HELD_S or in_progress:
            return
        start = t + float(self._blinks.uniform(*TURN_BLINK_S))
        if start - self._last_blink_end >= BLINK_REST_S and start < self._blink_start:
            self._blink_start = start

    def _blink(self, t: float) -> float:
        end = self._blink_start + self._blink_length
        if t >= end:  # schedule the next blink from the end of this one
            self._last_blink_end = end
            self._blink_start = end + float(self._blinks.uniform(*BLINK_INTERVAL_S))
            self._blink_length = float(self._blinks.uniform(*BLINK_DURATION_S))
        return blink_shape((t - self._blink_start) / self._blink_length)

    def _gaze_at(self, t: float, speaking: bool) -> np.ndarray:
        if t >= self._fixation_end:
            self._fixation_end = t + float(self._gaze_rng.uniform(*FIXATION_S))
            self._target = self._gaze_rng.normal(0.0, GAZE_SPREAD)
        target = self._target * (SPEAKING_GAZE if speaking else 1.0)
        self._gaze += self._saccade * (np.clip(target, -GAZE_LIMIT, GAZE_LIMIT) - self._gaze)
        return self._gaze
