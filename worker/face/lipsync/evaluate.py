"""Held-out evaluation on the model's outputs per video frame (``python -m …evaluate``).

Clips are streamed through ``LipSync.step_frames`` exactly as the worker would (one
frame chunk plus 40 ms lookahead per tick, all clips batched), then scored against
their phone timings:

* **bilabial hits**: a /p b m/ counts when some frame centred within ±40 ms of its
  closure interval shows closed lips (closure ≥ 0.5);
* **false closures**: other consonants and open vowels whose middle frame shows closed
  lips (skipping those whose middle is within 40 ms of a /p b m/ closure);
* **open share**: speech frames whose aperture (jaw × (1 − closure)) exceeds 25 % of the
  clip's largest;
* **envelope r**: Pearson r of aperture against the frame RMS of the speech, both
  band-passed to 2–7 Hz (the syllable rate, as ``worker.lipsync`` measures pixels), best
  lag within −40 … +80 ms (positive: the mouth after the sound);
* **silence**: time from the end of the last phone until the mouth is neutral (every
  parameter low, lips not pressed) and stays so;
* **viseme accuracy**: arg-max viseme against the phone sounding at the frame's centre.
"""

from __future__ import annotations

import argparse
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import augment, dataset
from .labels import Segment, viseme_ids
from .phones import BILABIALS, JAW, OPEN_VOWELS, PAUSE, PRESS, VISEMES
from .stream import LOOKAHEAD, WEIGHTS, LipSync

RATE = 16_000
CLOSED = 0.5
TOLERANCE_S = 0.04
NEUTRAL = 0.15


@dataclass(frozen=True, slots=True)
class Track:
    """One clip's frames: model outputs and the clip they came from."""

    params: np.ndarray  # [F, 7]
    visemes: np.ndarray  # [F, 15]
    audio: np.ndarray  # float32 16 kHz
    segments: list[Segment]
    fps: int

    def centres(self) -> np.ndarray:
        return (np.arange(len(self.params)) + 0.5) / self.fps

    def aperture(self) -> np.ndarray:
        return self.params[:, JAW] * (1.0 - self.params[:, PRESS])


def bounds(frames: int, fps: int) -> np.ndarray:
    """Sample index where each frame starts (and the last ends): 30 fps is 533⅓ samples."""
    return np.round(np.arange(frames + 1) * RATE / fps).astype(np.int64)


def run(model: LipSync, clips: list[tuple[np.ndarray, list[Segment]]], fps: int) -> list[Track]:
    """Stream every clip at once, one batched call per frame."""
    pcm = [np.round(np.clip(a, -1.0, 1.0) * 32767.0).astype(np.int16) for a, _ in clips]
    frames = [int(p.size * fps // RATE) for p in pcm]
    edges = bounds(max(frames), fps)
    padded = np.zeros((len(pcm), int(edges[-1]) + LOOKAHEAD), np.int16)
    for row, p in enumerate(pcm):
        padded[row, : p.size] = p
    states = [model.new_state() for _ in pcm]
    out_p, out_v = [], []
    for n in range(max(frames)):
        a, b = int(edges[n]), int(edges[n + 1])
        params, visemes, states = model.step_frames(
            states, list(padded[:, a:b]), list(padded[:, b : b + LOOKAHEAD]))
        out_p.append(params)
        out_v.append(visemes)
    p_all, v_all = np.stack(out_p, 1), np.stack(out_v, 1)
    return [Track(p_all[i, : frames[i]], v_all[i, : frames[i]], clips[i][0], clips[i][1], fps)
            for i in range(len(clips))]


def _closure_span(seg: Segment) -> tuple[float, float]:
    return seg.start, seg.end if seg.release is None else seg.release


def bilabial_hits(track: Track) -> list[bool]:
    closed, t = track.params[:, PRESS] >= CLOSED, track.centres()
    hits = []
    for seg in track.segments:
        if seg.phone in BILABIALS:
            start, end = _closure_span(seg)
            near = (t >= start - TOLERANCE_S) & (t <= end + TOLERANCE_S)
            hits.append(bool(closed[near].any()))
    return hits


def false_closures(track: Track) -> list[bool]:
    closed, _t = track.params[:, PRESS] >= CLOSED, track.centres()
    spans = [_closure_span(s) for s in track.segments if s.phone in BILABIALS]
    out = []
    for seg in track.segments:
        if seg.phone in BILABIALS or seg.phone == PAUSE:
            continue
        vowel = seg.phone in OPEN_VOWELS
        if not vowel and seg.phone[0] in "aeiou":
            continue  # other vowels are not scored
        mid = 0.5 * (seg.start + seg.end)
        if any(a - TOLERANCE_S <= mid <= b + TOLERANCE_S for a, b in spans):
            continue
        frame = min(int(mid * track.fps), len(closed) - 1)
        out.append(bool(closed[frame]))
    return out


def speech_mask(track: Track) -> np.ndarray:
    t, mask = track.centres(), np.zeros(len(track.params), bool)
    for seg in track.segments:
        if seg.phone != PAUSE:
            mask |= (t >= seg.start) & (t < seg.end)
    return mask


def open_share(track: Track) -> float:
    a = track.aperture()
    speech = speech_mask(track)
    return float(np.mean(a[speech] > 0.25 * a.max())) if speech.any() else 0.0


def envelope(track: Track) -> np.ndarray:
    return frame_rms(track.audio, len(track.params), track.fps)


def frame_rms(audio: np.ndarray, frames: int, fps: int) -> np.ndarray:
    """The speech envelope: the RMS of the 16 kHz samples each video frame spans."""
    edges = bounds(frames, fps)
    audio = np.concatenate([audio.astype(np.float64),
                            np.zeros(max(0, int(edges[-1]) - audio.size))])
    return np.array([np.sqrt(np.mean(audio[a:b] ** 2)) for a, b in itertools.pairwise(edges)])


def band_pass(x: np.ndarray, fps: int, low: float = 2.0, high: float = 7.0) -> np.ndarray:
    """Zero-phase FFT band-pass, zero-padded against wrap-around."""
    spectrum = np.fft.rfft(x - x.mean(), n=2 * x.size)
    freqs = np.fft.rfftfreq(2 * x.size, 1.0 / fps)
    spectrum[(freqs < low) | (freqs > high)] = 0.0
    out: np.ndarray = np.fft.irfft(spectrum, n=2 * x.size)[: x.size]
    return out


def envelope_r(track: Track) -> tuple[float, float]:
    """(best r, its lag in seconds) over lags −40 … +80 ms."""
    return lagged_r(track.aperture(), envelope(track), track.fps)


def lagged_r(aperture: np.ndarray, env: np.ndarray, fps: int) -> tuple[float, float]:
    """Aperture against envelope, both band-passed to the syllable rate: (best r, its lag
    in seconds) over lags −40 … +80 ms (positive: the mouth after the sound). Also what
    the tests apply to lip gaps measured on rendered frames."""
    a, env = band_pass(aperture, fps), band_pass(env, fps)
    best = (-1.0, 0.0)
    for lag in range(-int(0.04 * fps), int(0.08 * fps) + 1):
        x, y = (a[lag:], env[: env.size - lag]) if lag >= 0 else (a[:lag], env[-lag:])
        r = float(np.corrcoef(x, y)[0, 1]) if x.std() > 0 and y.std() > 0 else 0.0
        best = max(best, (r, lag / fps))
    return best


def silence_delay(track: Track) -> float | None:
    """Seconds from the last phone's end until the mouth is neutral for good."""
    spoken = [s.end for s in track.segments if s.phone != PAUSE]
    if not spoken:
        return None
    end = max(spoken)
    p = track.params
    relaxed = (p[:, PRESS] < CLOSED) & (np.delete(p, PRESS, axis=1).max(axis=1) < NEUTRAL)
    after = np.nonzero(track.centres() > end)[0]
    if after.size == 0:
        return None
    settled = after[np.cumprod(relaxed[after][::-1])[::-1].astype(bool)]
    return float(track.centres()[settled[0]] - end) if settled.size else float("inf")


def viseme_confusion(track: Track) -> np.ndarray:
    truth = viseme_ids(track.segments, track.centres())
    guess = track.visemes.argmax(axis=1)
    out = np.zeros((len(VISEMES), len(VISEMES)), np.int64)
    np.add.at(out, (truth, guess), 1)
    return out


@dataclass(frozen=True, slots=True)
class Scores:
    bilabial_hit: float
    false_closure: float
    open_share: float
    envelope_r: float
    envelope_lag_ms: float
    silence_ms_max: float
    viseme_acc: float
    per_class: dict[str, float]


def score(tracks: list[Track]) -> Scores:
    hits = [h for t in tracks for h in bilabial_hits(t)]
    falses = [f for t in tracks for f in false_closures(t)]
    corr = [envelope_r(t) for t in tracks]
    delays = [d for t in tracks if (d := silence_delay(t)) is not None]
    confusion = sum((viseme_confusion(t) for t in tracks), np.zeros((15, 15), np.int64))
    recall = np.diag(confusion) / np.maximum(confusion.sum(axis=1), 1)
    return Scores(
        float(np.mean(hits)), float(np.mean(falses)),
        float(np.mean([open_share(t) for t in tracks])),
        float(np.mean([r for r, _ in corr])), float(np.median([lag for _, lag in corr]) * 1e3),
        float(max(delays) * 1e3) if delays else float("nan"),
        float(np.trace(confusion) / confusion.sum()),
        {v: round(float(r), 3) for v, r in zip(VISEMES, recall, strict=True)})


def mid_word(audio: np.ndarray, segments: list[Segment]) -> tuple[np.ndarray, list[Segment]]:
    """The clip from the middle of its first vowel after 0.6 s: speech starting mid-word."""
    cut = next(0.5 * (s.start + s.end) for s in segments
               if s.start > 0.6 and s.phone[0] in "aeiou")
    moved = [Segment(s.phone, max(s.start - cut, 0.0), s.end - cut,
                     None if s.release is None else s.release - cut)
             for s in segments if s.end > cut]
    return audio[int(cut * RATE):], moved


Variant = Callable[[np.ndarray, np.random.Generator], np.ndarray]
VARIANTS: dict[str, Variant] = {
    "clean 16 kHz": lambda a, _: a,
    "24 kHz, linear to 16": lambda a, _: augment.linear_resample(
        augment.sox_resample(a, RATE, 24_000), 24_000),
    "48 kHz, linear to 16": lambda a, _: augment.linear_resample(
        augment.sox_resample(a, RATE, 48_000), 48_000),
    "+20 dB": lambda a, _: augment.quantize(augment.gain(a, 20.0)),
    "-20 dB": lambda a, _: augment.quantize(augment.gain(a, -20.0)),
    "noise 20 dB SNR": lambda a, rng: augment.add_noise(a, 20.0, rng),
    "telephone band": lambda a, _: augment.band_limit(a, 300.0, 3400.0),
}


def report(model: LipSync, clips: list[dataset.Clip], fps: int) -> dict[str, Scores]:
    rng = np.random.default_rng(dataset.SEED)
    out = {}
    for name, variant in VARIANTS.items():
        pairs = [(variant(c.audio, rng), c.segments) for c in clips]
        out[name] = score(run(model, pairs, fps))
    out["mid-word after reset"] = score(run(model, [mid_word(c.audio, c.segments)
                                                    for c in clips], fps))
    return out


def print_scores(title: str, scores: Scores) -> None:
    print(f"{title:28s} p/b/m hit {scores.bilabial_hit:.2f}  false {scores.false_closure:.2f}"
          f"  open {scores.open_share:.2f}  env r {scores.envelope_r:.2f}"
          f" @{scores.envelope_lag_ms:+.0f} ms  silence≤{scores.silence_ms_max:.0f} ms"
          f"  viseme acc {scores.viseme_acc:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--weights", type=Path, default=WEIGHTS)
    parser.add_argument("--fps", type=int, nargs="+", default=[25, 30])
    args = parser.parse_args()
    model = LipSync(args.weights)
    clips = dataset.load(dataset.CACHE / "heldout.npz")
    for fps in args.fps:
        print(f"--- held out, {len(clips)} clips, {fps} fps")
        results = report(model, clips, fps)
        for name, scores in results.items():
            print_scores(name, scores)
        print("per-voice (clean):")
        for source in sorted({c.source for c in clips}):
            mine = [c for c in clips if c.source == source]
            print_scores(source, score(run(model, [(c.audio, c.segments) for c in mine], fps)))
        print("viseme recall (clean):", results["clean 16 kHz"].per_class)


if __name__ == "__main__":
    main()
