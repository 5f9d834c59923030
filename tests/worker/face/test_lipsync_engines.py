"""The synthesizers' phone timings match their audio (what the labels are built on)."""

from __future__ import annotations

import ctypes.util
import shutil

import numpy as np
import pytest

from protoface.worker.face.lipsync import engines
from protoface.worker.face.lipsync.engines import Utterance

TEXT = "A map, a pop, a mob. Happy puppies."


def _db(utt: Utterance, start: float, end: float) -> float:
    part = utt.samples[int(start * utt.rate) : int(end * utt.rate)]
    return float(10.0 * np.log10(np.mean(part**2) + 1e-12))


def _closures_are_quiet(utt: Utterance) -> None:
    """Each /p/ before a vowel is quiet in the 20 ms before its burst (the closure), and
    the burst is where the sound comes back."""
    loud = max(_db(utt, s.start, s.end) for s in utt.segments if s.phone in ("ae", "aa"))
    pairs = zip(utt.segments, utt.segments[1:], strict=False)
    stops = [s for s, after in pairs if s.phone == "p" and after.phone[0] in "aeiou"]
    assert len(stops) >= 2
    for s in stops:
        burst = s.release if s.release is not None else s.end - 0.01
        assert _db(utt, burst - 0.025, burst - 0.005) < loud - 12.0
        assert _db(utt, burst, burst + 0.03) > _db(utt, burst - 0.025, burst - 0.005) + 6.0


@pytest.mark.skipif(ctypes.util.find_library("espeak-ng") is None, reason="no libespeak-ng")
def test_espeak_phoneme_events_mark_each_bursts_and_the_closure_before_it() -> None:
    utt = engines.Espeak().say(TEXT, "en-us", 150, 50, 50)
    assert [s.phone for s in utt.segments if s.phone in ("m", "p", "b")] == \
        ["m", "p", "p", "p", "m", "b", "p", "p", "p"]
    _closures_are_quiet(utt)
    for s in utt.segments:
        if s.release is not None:
            assert s.start < s.release <= s.end


@pytest.mark.skipif(shutil.which("flite") is None, reason="no flite")
def test_flite_segments_end_just_after_each_burst() -> None:
    _closures_are_quiet(engines.flite(TEXT, "kal16", 1.0, 110.0))


@pytest.mark.skipif(shutil.which("festival") is None, reason="no festival")
def test_festival_segments_end_just_after_each_burst() -> None:
    _closures_are_quiet(engines.festival(TEXT, "voice_kal_diphone", 1.0))
