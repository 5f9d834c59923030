"""Speech synthesizers with exact phone timings (used only to build the training data).

* **espeak-ng** (GPL-3.0 engine; its output is ours to use) through libespeak-ng's own
  callback API (ctypes): with ``espeakINITIALIZE_PHONEME_EVENTS`` every phoneme arrives as
  an event carrying its sample position. A stop's event marks its *burst*, not its
  closure, so a stop's start is moved back to the silent gap before the burst.
* **festival** (X11-style free licence; voices kal_diphone and cmu_us_slt_arctic_hts,
  both free for any use) and **flite** (BSD-like; voices kal16, awb, rms, slt): the
  utterance's ``Segment`` relation gives every phone's end time.
"""

from __future__ import annotations

import ctypes
import subprocess
import tempfile
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .ipa import to_arpabet
from .labels import Segment
from .phones import canonical

STOPS = frozenset({"p", "b", "t", "d", "k", "g"})
GAP_WINDOW_S = 0.005
GAP_BELOW_PEAK_DB = 25.0  # a stop's closure is this far under the loud speech
GAP_MAX_S = 0.15
GAP_FALLBACK_S = 0.03


@dataclass(frozen=True, slots=True)
class Utterance:
    samples: np.ndarray  # float32 mono, −1 … 1, at ``rate``
    rate: int
    segments: list[Segment]


def _read_wav(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path), "rb") as f:
        data = np.frombuffer(f.readframes(f.getnframes()), "<i2").astype(np.float32)
        return data / 32768.0, f.getframerate()


class _Event(ctypes.Structure):
    class _Id(ctypes.Union):
        _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p),
                    ("string", ctypes.c_char * 8)]

    _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint),
                ("text_position", ctypes.c_int), ("length", ctypes.c_int),
                ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p), ("id", _Id)]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                             ctypes.POINTER(_Event))
_EVENT_END, _EVENT_PHONEME = 0, 7
_SYNCHRONOUS, _PHONEME_EVENTS, _IPA_NAMES = 2, 0x1, 0x2
_RATE, _PITCH, _RANGE = 1, 3, 4


class Espeak:
    """In-process libespeak-ng: one instance per process (the library is global)."""

    def __init__(self) -> None:
        self._lib = ctypes.CDLL("libespeak-ng.so.1")
        self.rate = int(self._lib.espeak_Initialize(_SYNCHRONOUS, 0, None,
                                                    _PHONEME_EVENTS | _IPA_NAMES))
        self._chunks: list[np.ndarray] = []
        self._events: list[tuple[int, str]] = []
        self._callback = _CALLBACK(self._on_audio)  # kept: C holds only a raw pointer
        self._lib.espeak_SetSynthCallback(self._callback)

    def _on_audio(self, wav: Any, count: int, events: Any) -> int:
        if count > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, (count,)).astype(np.float32))
        i = 0
        while events[i].type != _EVENT_END:
            if events[i].type == _EVENT_PHONEME:
                self._events.append((events[i].sample, events[i].id.string.decode()))
            i += 1
        return 0

    def say(self, text: str, voice: str, wpm: int, pitch: int, pitch_range: int) -> Utterance:
        self._chunks, self._events = [], []
        if self._lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise ValueError(f"espeak-ng has no voice {voice}")
        for param, value in ((_RATE, wpm), (_PITCH, pitch), (_RANGE, pitch_range)):
            self._lib.espeak_SetParameter(param, value, 0)
        data = text.encode()
        self._lib.espeak_Synth(data, len(data) + 1, 0, 1, 0, 0, None, None)
        self._lib.espeak_Synchronize()
        samples = np.concatenate(self._chunks) / 32768.0
        return Utterance(samples.astype(np.float32), self.rate,
                         _espeak_segments(self._events, samples, self.rate))


def _frame_db(samples: np.ndarray, rate: int) -> np.ndarray:
    size = int(rate * GAP_WINDOW_S)
    count = samples.size // size
    power = np.mean(samples[: count * size].reshape(count, size) ** 2, axis=1)
    db: np.ndarray = 10.0 * np.log10(power + 1e-12)
    return db


def _closure_start(db: np.ndarray, burst: int, floor: int, rate: int) -> int:
    """Sample where the silent gap before a burst begins (never before ``floor``)."""
    size = int(rate * GAP_WINDOW_S)
    quiet = float(np.percentile(db, 95)) - GAP_BELOW_PEAK_DB
    w = min(burst // size, db.size) - 1
    first = w + 1
    while w >= 0 and db[w] < quiet and (burst - w * size) <= GAP_MAX_S * rate:
        first = w
        w -= 1
    if first > w + 1 or first * size >= burst - size:
        first = (burst - int(GAP_FALLBACK_S * rate)) // size  # a voiced closure: no gap
    return max(first * size, floor)


def _espeak_segments(events: list[tuple[int, str]], samples: np.ndarray,
                     rate: int) -> list[Segment]:
    db = _frame_db(samples, rate)
    marks = [(pos, canonical(to_arpabet(name))) for pos, name in events]
    marks.append((samples.size, "pau"))
    starts = [pos for pos, _ in marks]
    ends = [*starts[1:], samples.size]
    releases: list[float | None] = [None] * len(marks)
    for i, (pos, phone) in enumerate(marks[:-1]):
        if phone in STOPS:
            floor = starts[i - 1] + int(0.02 * rate) if i > 0 else 0
            starts[i] = min(_closure_start(db, pos, floor, rate), pos)
            releases[i] = pos / rate
            if i > 0:
                ends[i - 1] = min(ends[i - 1], starts[i])
    segs = [Segment(p, s / rate, e / rate, r)
            for (_, p), s, e, r in zip(marks, starts, ends, releases, strict=True) if e > s]
    return segs


def _parse_psdur(text: str) -> list[Segment]:
    """flite's ``-psdur`` line: ``phone:end`` pairs; each phone starts where one ended."""
    segs, start = [], 0.0
    for item in text.split():
        phone, _, end = item.rpartition(":")
        segs.append(Segment(canonical(phone), start, float(end)))
        start = float(end)
    return segs


def flite(text: str, voice: str, stretch: float, f0_mean: float) -> Utterance:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.wav"
        run = subprocess.run(
            ["flite", "-voice", voice, "--setf", f"duration_stretch={stretch}",
             "--setf", f"int_f0_target_mean={f0_mean}", "-psdur", "-t", text, "-o", str(out)],
            check=True, capture_output=True, text=True)
        samples, rate = _read_wav(out)
    return Utterance(samples, rate, _parse_psdur(run.stdout))


_FESTIVAL_SCRIPT = """
({voice})
(Parameter.set 'Duration_Stretch {stretch})
(set! utt (utt.synth (Utterance Text "{text}")))
(utt.save.wave utt "{wav}" 'riff)
(set! fd (fopen "{seg}" "w"))
(mapcar (lambda (s) (format fd "%s %f\\n" (item.name s) (item.feat s "end")))
        (utt.relation.items utt 'Segment))
(fclose fd)
"""


def festival(text: str, voice: str, stretch: float) -> Utterance:
    """``voice``: a festival voice function, e.g. ``voice_kal_diphone``."""
    with tempfile.TemporaryDirectory() as tmp:
        wav, seg, script = (Path(tmp) / n for n in ("out.wav", "out.seg", "go.scm"))
        clean = text.replace("\\", " ").replace('"', " ")
        script.write_text(_FESTIVAL_SCRIPT.format(voice=voice, stretch=stretch, text=clean,
                                                  wav=wav, seg=seg))
        subprocess.run(["festival", "-b", str(script)], check=True, capture_output=True)
        samples, rate = _read_wav(wav)
        start, segs = 0.0, []
        for line in seg.read_text().split("\n"):
            if line.strip():
                phone, end = line.split()
                segs.append(Segment(canonical(phone), start, float(end)))
                start = float(end)
    return Utterance(samples, rate, segs)
