"""The streaming API: deterministic, batched, resettable, each sample heard once."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from protoface.worker.face.lipsync import evaluate
from protoface.worker.face.lipsync.adapter import mouth_fields
from protoface.worker.face.lipsync.features import HISTORY, HOP
from protoface.worker.face.lipsync.labels import Segment
from protoface.worker.face.lipsync.phones import JAW, PRESS, ROUND, SIL, SPREAD
from protoface.worker.face.lipsync.stream import LOOKAHEAD, LipSync
from tests.worker.face.lipsync_clips import heldout_clips

torch.set_num_threads(1)
SPF = 640
Clip = tuple[np.ndarray, list[Segment]]


@pytest.fixture(scope="module")
def model() -> LipSync:
    return LipSync()


@pytest.fixture(scope="module")
def clips() -> list[Clip]:
    return heldout_clips()


def _pcm(audio: np.ndarray) -> np.ndarray:
    pcm: np.ndarray = np.round(np.clip(audio, -1.0, 1.0) * 32767.0)
    return pcm.astype(np.int16)


def test_same_audio_gives_the_same_parameters_bit_for_bit(
        model: LipSync, clips: list[Clip]) -> None:
    first = evaluate.run(model, clips[:2], 25)
    again = evaluate.run(model, clips[:2], 25)
    for a, b in zip(first, again, strict=True):
        assert np.array_equal(a.params, b.params)
        assert np.array_equal(a.visemes, b.visemes)


@pytest.mark.parametrize("fps", [25, 30])
def test_a_session_gives_the_same_frames_alone_as_in_a_batch(
        model: LipSync, clips: list[Clip], fps: int) -> None:
    # 20 sessions (the target load), each clip five times at different starts.
    many = [(audio[k * 800:], segs) for k in range(5) for audio, segs in clips]
    together = evaluate.run(model, many, fps)
    for clip, batched in list(zip(many, together, strict=True))[::3]:
        alone = evaluate.run(model, [clip], fps)[0]
        assert np.array_equal(alone.params, batched.params)


def test_an_underrun_lookahead_still_feeds_every_sample_exactly_once(
        model: LipSync, clips: list[Clip]) -> None:
    pcm = _pcm(clips[0][0])
    full, short = model.new_state(), model.new_state()
    for n in range(60):
        chunk = pcm[n * SPF : (n + 1) * SPF]
        ahead = pcm[(n + 1) * SPF : (n + 1) * SPF + LOOKAHEAD]
        p_full, _, (full,) = model.step_frames([full], [chunk], [ahead])
        cut = ahead[: 100 if n % 3 == 0 else LOOKAHEAD]  # the queue ran short now and then
        p_short, _, (short,) = model.step_frames([short], [chunk], [cut])
    fed = 60 * SPF + LOOKAHEAD
    assert full.tail.size == short.tail.size == HISTORY + fed % HOP
    # Only the split of the same samples into ticks differs: float noise, not drift.
    assert torch.allclose(full.hidden, short.hidden, atol=1e-4)
    assert np.allclose(p_full, p_short, atol=1e-3)


def test_an_interrupt_forgets_the_speech_before_it(
        model: LipSync, clips: list[Clip]) -> None:
    pcm = _pcm(clips[1][0])
    state = model.new_state()
    for n in range(30):  # mid-utterance …
        _, _, (state,) = model.step_frames([state], [pcm[n * SPF : (n + 1) * SPF]],
                                           [pcm[(n + 1) * SPF : (n + 1) * SPF + LOOKAHEAD]])
    outputs = []
    for start in (model.new_state(), model.new_state()):  # … interrupted vs fresh
        s, got = start, []
        for n in range(10):
            p, _, (s,) = model.step_frames([s], [pcm[n * SPF : (n + 1) * SPF]],
                                           [pcm[(n + 1) * SPF : (n + 1) * SPF + LOOKAHEAD]])
            got.append(p)
        outputs.append(np.concatenate(got))
    assert np.array_equal(outputs[0], outputs[1])
    assert not torch.equal(state.hidden, model.new_state().hidden)


def test_silence_is_a_closed_neutral_mouth(model: LipSync) -> None:
    state, quiet = model.new_state(), np.zeros(SPF, np.int16)
    for _ in range(25):
        params, visemes, (state,) = model.step_frames([state], [quiet], [quiet])
    assert params[0, PRESS] < 0.5
    assert np.delete(params[0], PRESS).max() < 0.15
    assert visemes[0].argmax() == SIL


def test_a_tick_too_short_for_a_hop_repeats_the_last_frame(
        model: LipSync, clips: list[Clip]) -> None:
    pcm = _pcm(clips[0][0])
    state = model.new_state()
    first, _, (state,) = model.step([state], [pcm[:16_000]])
    again, _, (after,) = model.step([state], [pcm[16_000:16_050]])
    assert np.array_equal(first, again)
    assert after.tail.size == state.tail.size + 50


def test_the_adapter_draws_closed_lips_shut_and_open_vowels_open() -> None:
    params = np.zeros(7, np.float32)
    sil = np.eye(15, dtype=np.float32)[SIL]
    speech = np.eye(15, dtype=np.float32)[10]
    params[[JAW, PRESS]] = (0.3, 1.0)
    assert mouth_fields(params, speech).mouth_open == 0.0
    assert mouth_fields(params, speech).lip_press == 1.0
    params[[JAW, PRESS, ROUND, SPREAD]] = (0.8, 0.0, 0.9, 0.1)
    fields = mouth_fields(params, speech)
    assert fields.mouth_open == pytest.approx(1.0)
    assert fields.lip_round == pytest.approx(0.8)
    assert fields.speaking and not mouth_fields(params, sil).speaking


def test_a_session_is_unchanged_by_sessions_joining_and_leaving_its_batch(
        model: LipSync, clips: list[Clip]) -> None:
    """A newcomer's first tick feeds 8 hops, not 4, and the batch grows and shrinks."""
    pcm = [_pcm(audio) for audio, _ in clips]

    def frame(p: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        return p[n * SPF : (n + 1) * SPF], p[(n + 1) * SPF : (n + 1) * SPF + LOOKAHEAD]

    alone, state = [], model.new_state()
    for n in range(40):
        chunk, ahead = frame(pcm[0], n)
        params, _, (state,) = model.step_frames([state], [chunk], [ahead])
        alone.append(params[0])
    crowd, states, joined = [], [model.new_state()], 0
    for n in range(40):
        if n in (5, 9, 13) and joined < len(pcm) - 1:
            joined += 1
            states.append(model.new_state())
        if n == 30:
            states = states[:2]  # two sessions end
        parts = [frame(pcm[0], n)] + [frame(pcm[k], n) for k in range(1, len(states))]
        params, _, states = model.step_frames(
            states, [c for c, _ in parts], [a for _, a in parts])
        crowd.append(params[0])
    assert np.array_equal(np.stack(alone), np.stack(crowd))
