"""The training and held-out speech: synthesized with exact phone timings, cached.

``python -m protoface.worker.face.lipsync.dataset`` writes ``.cache/lipsync/{train,heldout}.npz``
(git-ignored by a ``.gitignore`` it puts in ``.cache``), deterministic from ``SEED``.

The split (kept here, in the repository):

* train: espeak-ng voices ``TRAIN_ESPEAK`` with random variants, rates and pitches;
  festival ``kal_diphone``; flite ``kal16``, ``awb``, ``rms`` — on ``texts_train.txt``.
* held out: the whole *slt* voice family (flite ``slt`` and festival's HTS
  ``cmu_us_slt_arctic_hts``, a female voice and an engine never trained on) and two
  espeak-ng accents never trained on (``en-029``, ``en-gb-scotland``) with unseen
  variants — all on ``texts_heldout.txt``, texts never trained on.

Each clip is resampled to 16 kHz either by sox, or — like 24/48 kHz customer audio in the
worker — by sox to 24 or 48 kHz and then linearly to 16 kHz.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import augment
from .engines import Espeak, Utterance, festival, flite
from .labels import HOP_S, Segment, make_labels

SEED = 19
CACHE = Path(".cache/lipsync")
DATA = Path(__file__).parent / "data"
TRAIN_ESPEAK = ("en-us", "en", "en-gb-x-rp", "en-us-nyc", "en-gb-x-gbclan",
                "en-gb-x-gbcwmd")
TRAIN_VARIANTS = ("", "m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4",
                  "klatt", "klatt3", "Andy", "Annie", "linda", "steph", "rob", "max")
HELDOUT_ESPEAK = (("en-029", "f5"), ("en-gb-scotland", "m8"))
TRAIN_FLITE = ("kal16", "awb", "rms")
ESPEAK_CLIPS = 900
FLITE_CLIPS = 330
FESTIVAL_CLIPS = 140
PAD_S = (0.15, 0.7)  # silence before and after each clip
SHIFT_SHARE = 0.5
SHIFT_CENTS = (-300.0, 600.0)


@dataclass(frozen=True, slots=True)
class Clip:
    audio: np.ndarray  # float32, 16 kHz
    params: np.ndarray  # float32 [hops, 7]
    visemes: np.ndarray  # int64 [hops]
    segments: list[Segment]
    source: str


def texts(name: str) -> list[str]:
    return [t for t in (DATA / name).read_text().splitlines() if t.strip()]


def to_clip(utt: Utterance, source: str, rng: np.random.Generator,
            route: int | None = None, shift: bool = False) -> Clip:
    """Resample (route 0: sox; 1: via 24 kHz; 2: via 48 kHz), pad with silence, label.

    ``shift``: half the time, move pitch and formants together by −3 … +6 semitones —
    there are few voices, and the held-out slt voice family is higher than most of them.
    """
    route = int(rng.integers(3)) if route is None else route
    if shift and rng.random() < SHIFT_SHARE:
        utt = Utterance(augment.sox_pitch(augment.sox_resample(utt.samples, utt.rate,
                                                               augment.RATE),
                                          float(rng.uniform(*SHIFT_CENTS))),
                        augment.RATE, utt.segments)
    if route == 0:
        audio = augment.sox_resample(utt.samples, utt.rate, augment.RATE)
    else:
        mid = (24_000, 48_000)[route - 1]
        audio = augment.linear_resample(augment.sox_resample(utt.samples, utt.rate, mid), mid)
    before, after = (int(rng.uniform(*PAD_S) * augment.RATE) for _ in range(2))
    audio = np.concatenate([np.zeros(before, np.float32), audio, np.zeros(after, np.float32)])
    lead = before / augment.RATE
    segs = [Segment(s.phone, s.start + lead, s.end + lead,
                    None if s.release is None else s.release + lead) for s in utt.segments]
    labels = make_labels(segs, int(audio.size / augment.RATE / HOP_S), audio)
    return Clip(audio, labels.params, labels.visemes, segs, source)


def _text(pool: list[str], rng: np.random.Generator) -> str:
    return " ".join(pool[int(i)] for i in rng.choice(len(pool), int(rng.integers(1, 3)),
                                                      replace=False))


def train_clips(rng: np.random.Generator) -> list[Clip]:
    pool, espeak, clips = texts("texts_train.txt"), Espeak(), []
    for _ in range(ESPEAK_CLIPS):
        base = TRAIN_ESPEAK[int(rng.integers(len(TRAIN_ESPEAK)))]
        variant = TRAIN_VARIANTS[int(rng.integers(len(TRAIN_VARIANTS)))]
        voice = f"{base}+{variant}" if variant else base
        utt = espeak.say(_text(pool, rng), voice, int(rng.integers(120, 240)),
                         int(rng.integers(25, 80)), int(rng.integers(20, 90)))
        clips.append(to_clip(utt, f"espeak:{voice}", rng, shift=True))
    for _ in range(FLITE_CLIPS):
        voice = TRAIN_FLITE[int(rng.integers(len(TRAIN_FLITE)))]
        utt = flite(_text(pool, rng), voice, float(rng.uniform(0.75, 1.35)),
                    float(rng.uniform(90.0, 180.0)))
        clips.append(to_clip(utt, f"flite:{voice}", rng, shift=True))
    for _ in range(FESTIVAL_CLIPS):
        utt = festival(_text(pool, rng), "voice_kal_diphone", float(rng.uniform(0.8, 1.3)))
        clips.append(to_clip(utt, "festival:kal", rng, shift=True))
    return clips


def heldout_clips(rng: np.random.Generator) -> list[Clip]:
    """Every held-out text by every held-out voice, resampled by sox (route 0)."""
    espeak, clips = Espeak(), []
    makers: list[tuple[str, Callable[[str], Utterance]]] = [
        ("flite:slt", lambda t: flite(t, "slt", 1.0, 160.0)),
        ("festival:slt_hts", lambda t: festival(t, "voice_cmu_us_slt_arctic_hts", 1.0)),
    ]
    for base, variant in HELDOUT_ESPEAK:
        voice = f"{base}+{variant}"
        makers.append((f"espeak:{voice}",
                       lambda t, v=voice: espeak.say(t, v, 165, 50, 50)))  # type: ignore[misc]
    for text in texts("texts_heldout.txt"):
        for source, make in makers:
            clips.append(to_clip(make(text), source, rng, route=0))
    return clips


def save(clips: list[Clip], path: Path) -> None:
    """All clips of a split in one npz: concatenated arrays plus offsets."""
    audio_off = np.cumsum([0] + [c.audio.size for c in clips])
    hop_off = np.cumsum([0] + [c.visemes.size for c in clips])
    seg_rows = [(i, s.phone, s.start, s.end, -1.0 if s.release is None else s.release)
                for i, c in enumerate(clips) for s in c.segments]
    np.savez_compressed(
        path, audio=np.concatenate([c.audio for c in clips]), audio_off=audio_off,
        params=np.concatenate([c.params for c in clips]), hop_off=hop_off,
        visemes=np.concatenate([c.visemes for c in clips]),
        sources=np.array([c.source for c in clips]),
        seg_clip=np.array([r[0] for r in seg_rows]), seg_phone=np.array([r[1] for r in seg_rows]),
        seg_times=np.array([r[2:] for r in seg_rows], dtype=np.float64))


def load(path: Path) -> list[Clip]:
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}  # each z[k] would decompress again
    segs: list[list[Segment]] = [[] for _ in range(arrays["sources"].size)]
    for i, phone, (start, end, release) in zip(arrays["seg_clip"], arrays["seg_phone"],
                                               arrays["seg_times"], strict=True):
        segs[int(i)].append(Segment(str(phone), float(start), float(end),
                                    None if release < 0 else float(release)))
    a, h = arrays["audio_off"], arrays["hop_off"]
    clips = []
    for i, seg in enumerate(segs):
        # Labels are made again from the phone timings: the cache follows the label code.
        audio = arrays["audio"][a[i]:a[i + 1]]
        labels = make_labels(seg, int(h[i + 1] - h[i]), audio)
        clips.append(Clip(audio, labels.params, labels.visemes, seg, str(arrays["sources"][i])))
    return clips


def main() -> None:
    CACHE.mkdir(parents=True, exist_ok=True)
    (CACHE.parent / ".gitignore").write_text("*\n")
    rng = np.random.default_rng(SEED)
    save(heldout_clips(rng), CACHE / "heldout.npz")
    print("held-out written", file=sys.stderr)
    save(train_clips(rng), CACHE / "train.npz")
    print("train written", file=sys.stderr)


if __name__ == "__main__":
    main()
