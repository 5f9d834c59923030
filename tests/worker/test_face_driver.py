"""The face driver: speech in, one FaceParams per video frame from the learned lip-sync
model and the face's life, deterministic per seed, batched across sessions per tick."""

from __future__ import annotations

import asyncio
import csv
import itertools
from pathlib import Path

import numpy as np
import pytest

from protoface.worker.face.features import FaceDriver, FaceParams, SpeechBatch
from protoface.worker.face.motion import HEAD_LIMITS, Life
from tests import speech
from tests.worker import speechlike

HELD_OUT = Path(__file__).resolve().parents[1] / "data" / "lipsync"
CLOSED = 0.5  # lip_press at or above this: the lips are drawn shut


def drive(signal: np.ndarray, seed: int = 0, fps: int = 25) -> list[FaceParams]:
    driver = FaceDriver(seed=seed, fps=fps)
    return [driver.step(chunk, ahead)
            for chunk, ahead in speechlike.frames(signal, driver.samples_per_frame)]


def held_out(name: str) -> tuple[np.ndarray, list[tuple[str, float, float]]]:
    """A clip the model never trained on, with its synthesizer's phone timings."""
    samples = speech.load_path(HELD_OUT / f"{name}.wav")
    with (HELD_OUT / f"{name}.tsv").open() as f:
        rows = [(r["phone"], float(r["start"]), float(r["end"]))
                for r in csv.DictReader(f, delimiter="\t")]
    return samples, rows


def test_the_model_closes_the_lips_and_the_driver_draws_that_closure() -> None:
    # The model's own held-out scores are in tests/worker/face/test_lipsync_heldout.py;
    # here: what it decides reaches FaceParams, closure and all, frame for frame.
    samples, _ = held_out("flite_slt")
    driver = FaceDriver()
    model, state = driver.model, driver.model.new_state()
    for chunk, ahead in speechlike.frames(samples, 640):
        params, _, (state,) = model.step_frames([state], [chunk], [ahead])
        drawn = driver.step(chunk, ahead)
        assert drawn.lip_press == pytest.approx(float(np.clip(params[0][1], 0, 1)))
        if drawn.lip_press >= CLOSED:
            assert drawn.mouth_open < 0.5  # pressed lips hide the jaw


def test_the_mouth_opens_in_speech_and_rests_closed_in_the_silences_around_it() -> None:
    params = drive(speech.load("greeting.wav"))  # 0.5 s silence, speech, 0.8 s silence
    before, during, after = params[:10], params[15:-22], params[-12:]
    assert all(p.mouth_open < 0.05 and not p.speaking for p in before + after)
    assert max(p.mouth_open for p in during) > 0.4
    # Open on a minority-to-half of speech frames, not held open with the volume.
    assert 0.2 < np.mean([p.mouth_open > 0.25 for p in during]) < 0.7
    assert sum(1 for a, b in itertools.pairwise(during) if a.mouth_open > 0.3 >= b.mouth_open) > 5


def test_silence_relaxes_every_feature_to_a_neutral_closed_mouth_within_150_ms() -> None:
    signal = np.concatenate([speech.load("numbers.wav")[8_000:40_000], np.zeros(16_000, np.int16)])
    params = drive(signal)
    speech_ends = 40_000 - 8_000
    after = params[-(-(speech_ends + 2_400) // 640):]  # from 150 ms after the speech
    assert all(p.mouth_open < 0.1 and p.lip_press < CLOSED and abs(p.lip_round) < 0.2
               and not p.speaking for p in after)


def test_an_interrupt_resets_the_mouth_to_closed_and_speech_starts_afresh() -> None:
    utterance = speech.load("greeting.wav")
    driver = FaceDriver(seed=1)
    for chunk, ahead in itertools.islice(speechlike.frames(utterance, 640), 40):
        driver.step(chunk, ahead)
    driver.reset()
    fresh = FaceDriver(seed=1)
    silence = np.zeros(640, np.int16)
    assert driver.step(silence).mouth_open == fresh.step(silence).mouth_open


@pytest.mark.parametrize("fps", [25, 30])
def test_blinks_come_10_to_30_a_minute_and_last_100_to_400_ms(fps: int) -> None:
    for seed in range(3):
        driver = FaceDriver(seed=seed, fps=fps)
        silence = np.zeros(driver.samples_per_frame, np.int16)
        closure = [driver.step(silence).blink for _ in range(60 * fps)]
        blinks = [list(run) for shut, run in itertools.groupby(closure, key=lambda b: b > 0)
                  if shut]
        assert 10 <= len(blinks) <= 30, seed
        period_ms = 1000 / fps  # a blink is seen in whole frames: ± one frame
        assert all(100 - period_ms <= len(b) * period_ms <= 400 + period_ms for b in blinks)
        assert all(max(b) >= 0.8 for b in blinks)  # the lids really close


def test_blinks_come_at_turn_taking_and_stay_10_to_30_a_minute() -> None:
    fps, onsets_after_turns, turns = 25, 0, 0
    for seed in range(4):
        life = Life(seed, fps)
        # Turns: 3 s of speech, 2 s of listening, for two minutes.
        speaking = [(n % (5 * fps)) < 3 * fps for n in range(120 * fps)]
        closure = [life.step(speaking=s, emphasis=0.0).blink for s in speaking]
        onsets = [n for n in range(1, len(closure)) if closure[n] > 0 and closure[n - 1] == 0]
        changes = [n for n in range(1, len(speaking)) if speaking[n] != speaking[n - 1]]
        turns += len(changes)
        onsets_after_turns += sum(any(0 <= o - c <= 0.3 * fps for o in onsets) for c in changes)
        assert 10 <= len(onsets) / 2 <= 30, seed  # a minute's worth, per minute
    # Without turn-taking a blink would start within 300 ms of a turn about 1 time in 10.
    assert onsets_after_turns / turns >= 0.6


def test_head_and_gaze_move_a_little_within_their_limits() -> None:
    params = drive(speech.load("greeting.wav"), seed=3)
    for axis, limit in HEAD_LIMITS.items():
        angles = np.array([getattr(p, f"head_{axis}") for p in params])
        assert np.abs(angles).max() <= limit
        assert np.ptp(angles) > 0.2 * limit  # it moves, visibly but not much
    gaze = np.array([(p.gaze_x, p.gaze_y) for p in params])
    assert np.abs(gaze).max() <= 1.0
    assert len({tuple(g) for g in gaze.round(2)}) > 5  # several fixations over 10 s


def test_the_same_seed_gives_the_same_face_and_another_seed_another() -> None:
    utterance = speech.load("pauses.wav")
    assert drive(utterance, seed=7) == drive(utterance, seed=7)
    other = drive(utterance, seed=8)
    assert other != drive(utterance, seed=7)
    # Only life differs between seeds; the mouth is the speech's.
    assert [p.mouth_open for p in other] == [p.mouth_open for p in drive(utterance, seed=7)]


def test_at_30_fps_a_frame_is_533_samples_and_lookahead_stays_within_40_ms() -> None:
    driver = FaceDriver(seed=0, fps=30)
    assert driver.samples_per_frame == 533
    assert driver.lookahead_samples <= 640
    params = drive(speech.load("fast.wav"), fps=30)
    assert max(p.mouth_open for p in params) > 0.4


async def test_one_tick_of_many_sessions_is_one_model_call_and_equals_each_alone() -> None:
    clips = [speech.load(n) for n in ("greeting.wav", "numbers.wav", "pauses.wav")]
    batch = SpeechBatch()
    calls = 0
    step_frames = batch.model.step_frames

    def counted(*args: object) -> object:
        nonlocal calls
        calls += 1
        return step_frames(*args)  # type: ignore[arg-type]

    batch.model.step_frames = counted  # type: ignore[method-assign]
    try:
        drivers = [FaceDriver(seed=i) for i in range(3)]
        ticks = [list(itertools.islice(speechlike.frames(c, 640), 30)) for c in clips]
        batched: list[list[FaceParams]] = [[], [], []]
        for t in range(30):
            frames = await asyncio.gather(*(batch.step(d, *ticks[i][t])
                                            for i, d in enumerate(drivers)))
            for i, f in enumerate(frames):
                batched[i].append(f)
    finally:
        del batch.model.step_frames
    assert calls == 30  # one call per tick for the three sessions
    for i in range(len(clips)):
        alone = FaceDriver(seed=i)
        assert batched[i] == [alone.step(*ticks[i][t]) for t in range(30)]


def test_a_batch_left_pending_by_a_stopped_loop_does_not_break_the_next_one() -> None:
    batch = SpeechBatch()
    chunk = np.zeros(640, np.int16)
    old = asyncio.new_event_loop()
    pending: list[asyncio.Task[FaceParams]] = []

    async def submit() -> None:
        pending.append(old.create_task(batch.step(FaceDriver(), chunk, chunk)))
        await asyncio.sleep(0)  # submitted: the batch is open, its timer not yet due

    old.run_until_complete(submit())
    old.close()  # stopped before the batch closed
    params = asyncio.run(batch.step(FaceDriver(), chunk, chunk))
    assert params.mouth_open == 0.0
