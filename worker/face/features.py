"""Speech → face parameters, one video frame at a time: the learned lip-sync and life.

``FaceDriver`` is one session's face: the lip-sync model's carried state
(``worker.face.lipsync``: 16 kHz speech → seven articulation parameters and the 15
visemes per frame, at most 40 ms of lookahead) and the face's life (blinks, head motion
and gaze, ``worker.face.motion``). ``SpeechBatch`` runs the model once per tick for every
session of a worker at one frame rate: sessions submit their frame of speech and await
their parameters. A session may also step alone (``FaceDriver.step``, the offline render
and tests): the model pads every call to a bucketed shape, so a session's frames are the
same bytes alone or in any batch.

An interrupt (``clear_buffer``, relay INTERRUPT) resets the carried state: the next
speech starts from a closed mouth, mid-word or not. The same seed and speech give the
same parameters.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np

from protoface.worker.face.lipsync import LOOKAHEAD, LipSync, State, mouth_fields
from protoface.worker.face.lipsync.phones import TONGUE, TUCK, UPPER
from protoface.worker.face.motion import Life

RATE = 16_000
# How long a tick's batch stays open after the last submission, and at most: sessions of
# one tick wake within a millisecond or two of each other (see worker.render.batcher).
GAP_S = 0.002
MAX_WAIT_S = 0.006
# The network's rest sits a little above zero (≈ 0.06 of a full opening on digital
# silence): openings are measured from there, so a silent face is drawn closed and still.
REST = 0.1


@dataclass(frozen=True, slots=True)
class FaceParams:
    """What the renderer draws for one video frame. Every field has a neutral default."""

    mouth_open: float  # jaw and lip opening: 0 closed … 1 fully open
    speaking: bool
    lip_round: float = 0.0  # −1 spread (ee) … 0 neutral … +1 rounded (oo)
    lip_press: float = 0.0  # 0 relaxed … 1 lips pressed shut (p, b, m)
    blink: float = 0.0  # 0 eyes open … 1 eyelids closed
    head_yaw: float = 0.0  # degrees, small (|x| ≤ 4)
    head_pitch: float = 0.0  # degrees, small (|x| ≤ 3)
    head_roll: float = 0.0  # degrees, small (|x| ≤ 3)
    gaze_x: float = 0.0  # −1 … +1: fraction of the largest iris shift, + is image right
    gaze_y: float = 0.0  # −1 … +1, + is down
    lip_raise: float = 0.0  # 0 … 1: upper lip raised (f, v, sh)
    lip_tuck: float = 0.0  # 0 … 1: lower lip tucked under the upper teeth (f, v)
    tongue: float = 0.0  # 0 … 1: tongue tip visible (th, l)
    breath: float = 0.0  # 0 exhaled … 1 inhaled: the shoulders' slow rise
    rest: float = 0.0  # 0 in a turn … 1 at rest in the portrait's own expression


@cache
def lipsync_model() -> LipSync:
    """The trained network, loaded once per process and shared by every session."""
    return LipSync()


class FaceDriver:
    """One session's face: streaming speech → ``FaceParams``, deterministic per seed."""

    lookahead_samples = LOOKAHEAD  # what a frame may hear of the speech after it

    def __init__(self, seed: int = 0, fps: int = 25, model: LipSync | None = None) -> None:
        self.fps = fps
        self.samples_per_frame = RATE // fps
        self.model = model or lipsync_model()
        self.state: State = self.model.new_state()
        self.life = Life(seed, fps)

    def reset(self) -> None:
        """Forget the speech heard so far (an interrupt): the mouth closes."""
        self.state = self.model.new_state()

    def step(self, chunk: np.ndarray, lookahead: np.ndarray | None = None) -> FaceParams:
        """``chunk``: this frame's int16 speech; ``lookahead``: what follows (≤ 40 ms)."""
        ahead = np.zeros(0, np.int16) if lookahead is None else lookahead
        params, visemes, states = self.model.step_frames([self.state], [chunk], [ahead])
        self.state = states[0]
        return self.frame(params[0], visemes[0])

    def frame(self, params: np.ndarray, visemes: np.ndarray) -> FaceParams:
        """The frame's ``FaceParams`` from the model's output and the face's life."""
        mouth = mouth_fields(params, visemes)
        motion = self.life.step(speaking=mouth.speaking, emphasis=mouth.mouth_open)
        return FaceParams(
            mouth_open=max(0.0, (mouth.mouth_open - REST) / (1.0 - REST)),
            speaking=mouth.speaking, lip_round=mouth.lip_round,
            lip_press=mouth.lip_press, blink=motion.blink, head_yaw=motion.head_yaw,
            head_pitch=motion.head_pitch, head_roll=motion.head_roll,
            gaze_x=motion.gaze_x, gaze_y=motion.gaze_y,
            lip_raise=_unit(params[UPPER]), lip_tuck=_unit(params[TUCK]),
            tongue=_unit(params[TONGUE]), breath=motion.breath, rest=motion.rest,
        )


def _unit(value: np.floating | float) -> float:
    return float(np.clip(value, 0.0, 1.0))


@dataclass(slots=True)
class _Submission:
    driver: FaceDriver
    state: State  # the driver's state when it submitted
    chunk: np.ndarray
    lookahead: np.ndarray
    result: asyncio.Future[FaceParams]


class SpeechBatch:
    """One lip-sync call per tick for every session of a worker (at one frame rate).

    A submission opens the tick's batch; it closes ``GAP_S`` after the last submission
    (at most ``MAX_WAIT_S`` after the first), then the model runs once for all of them.
    """

    def __init__(self, model: LipSync | None = None) -> None:
        self.model = model or lipsync_model()
        self._pending: list[_Submission] = []
        self._opened = 0.0
        self._timer: asyncio.TimerHandle | None = None

    async def step(self, driver: FaceDriver, chunk: np.ndarray,
                   lookahead: np.ndarray) -> FaceParams:
        loop = asyncio.get_running_loop()
        # The batch is per process (``speech_batch``): what a stopped event loop left
        # pending belongs to nobody now and must not be resolved on this one.
        self._pending = [s for s in self._pending if s.result.get_loop() is loop]
        result: asyncio.Future[FaceParams] = loop.create_future()
        if not self._pending:
            self._opened = loop.time()
        self._pending.append(_Submission(driver, driver.state, chunk, lookahead, result))
        if self._timer is not None:
            self._timer.cancel()
        close_at = min(loop.time() + GAP_S, self._opened + MAX_WAIT_S)
        self._timer = loop.call_at(close_at, self._run)
        return await result

    def _run(self) -> None:
        batch, self._pending, self._timer = self._pending, [], None
        if batch:
            _step_all(self.model, batch)


def _step_all(model: LipSync, batch: Sequence[_Submission]) -> None:
    try:
        params, visemes, states = model.step_frames(
            [s.state for s in batch], [s.chunk for s in batch],
            [s.lookahead for s in batch])
    except Exception as exc:  # every session of the tick hears of it, none hangs
        for s in batch:
            if not s.result.done():
                s.result.set_exception(exc)
        return
    for i, s in enumerate(batch):
        if s.driver.state is s.state:  # not reset (an interrupt) while the batch ran
            s.driver.state = states[i]
        if not s.result.done():
            s.result.set_result(s.driver.frame(params[i], visemes[i]))


@cache
def speech_batch(fps: int) -> SpeechBatch:
    """The worker's batch for sessions at ``fps`` (sessions at one rate tick together)."""
    return SpeechBatch()
