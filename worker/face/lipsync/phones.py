"""Phones → visemes and articulation targets (the label side of the lip-sync model).

Every engine's phones are first named in one ARPAbet-like set (festival and flite already
speak it; espeak-ng's IPA is translated here). Each phone then has

* a viseme, one of the 15 OVR/OpenXR classes, for the classifier head;
* an articulation target (the seven parameters, 0 … 1) and, per parameter, a dominance:
  how strongly the phone imposes that parameter on its neighbours (Cohen & Massaro).
  Lip-neutral consonants (t, k, s, h) have weak lip dominance, so a rounded vowel's lips
  spread over them — the coarticulation that makes "stew" round on the s already.

Diphthongs are two targets, one per half of the phone.
"""

from __future__ import annotations

from typing import Final

PARAMS: Final = ("jaw", "press", "spread", "round", "upper_raise", "lower_tuck", "tongue")
JAW, PRESS, SPREAD, ROUND, UPPER, TUCK, TONGUE = range(7)
VISEMES: Final = ("sil", "PP", "FF", "TH", "DD", "kk", "CH", "SS", "nn", "RR",
                  "aa", "E", "ih", "oh", "ou")
SIL: Final = 0
BILABIALS: Final = frozenset({"p", "b", "m"})
OPEN_VOWELS: Final = frozenset({"aa", "ae", "ah", "ao", "aw", "ay"})
PAUSE: Final = "pau"

_VISEME_OF: Final[dict[str, str]] = {
    "pau": "sil", "p": "PP", "b": "PP", "m": "PP", "f": "FF", "v": "FF",
    "th": "TH", "dh": "TH", "t": "DD", "d": "DD", "k": "kk", "g": "kk", "ng": "kk",
    "hh": "kk", "ch": "CH", "jh": "CH", "sh": "CH", "zh": "CH", "s": "SS", "z": "SS",
    "n": "nn", "l": "nn", "y": "ih", "r": "RR", "er": "RR", "w": "ou",
    "aa": "aa", "ae": "aa", "ah": "aa", "ax": "aa", "aw": "aa", "ay": "aa",
    "eh": "E", "ey": "E", "ih": "ih", "iy": "ih", "ao": "oh", "ow": "oh", "oy": "oh",
    "uh": "ou", "uw": "ou",
}
PHONES: Final = tuple(sorted(_VISEME_OF))

# Target values: (jaw, press, spread, round, upper_raise, lower_tuck, tongue).
Vec = tuple[float, float, float, float, float, float, float]
_TARGET: Final[dict[str, Vec]] = {
    "pau": (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0),
    "p": (0.05, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0),
    "f": (0.08, 0.0, 0.1, 0.0, 0.3, 1.0, 0.0),
    "th": (0.12, 0.0, 0.2, 0.0, 0.1, 0.0, 1.0),
    "t": (0.1, 0.0, 0.2, 0.0, 0.0, 0.0, 0.2),
    "l": (0.12, 0.0, 0.2, 0.0, 0.0, 0.0, 0.8),
    "s": (0.08, 0.0, 0.5, 0.0, 0.2, 0.0, 0.0),
    "sh": (0.08, 0.0, 0.0, 0.6, 0.5, 0.0, 0.0),
    "k": (0.1, 0.0, 0.1, 0.0, 0.0, 0.0, 0.0),
    "hh": (0.15, 0.0, 0.1, 0.0, 0.0, 0.0, 0.0),
    "r": (0.1, 0.0, 0.0, 0.5, 0.2, 0.0, 0.0),
    "w": (0.06, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0),
    "y": (0.06, 0.0, 0.6, 0.0, 0.1, 0.0, 0.0),
    "iy": (0.3, 0.0, 1.0, 0.0, 0.2, 0.0, 0.0),
    "ih": (0.35, 0.0, 0.6, 0.0, 0.1, 0.0, 0.0),
    "eh": (0.5, 0.0, 0.5, 0.0, 0.1, 0.0, 0.0),
    "ae": (0.6, 0.0, 0.5, 0.0, 0.3, 0.0, 0.0),
    "aa": (0.8, 0.0, 0.1, 0.0, 0.1, 0.0, 0.0),
    "ao": (0.6, 0.0, 0.0, 0.5, 0.0, 0.0, 0.0),
    "ah": (0.5, 0.0, 0.1, 0.0, 0.0, 0.0, 0.0),
    "ax": (0.35, 0.0, 0.1, 0.0, 0.0, 0.0, 0.0),
    "er": (0.35, 0.0, 0.0, 0.4, 0.2, 0.0, 0.0),
    "ow": (0.5, 0.0, 0.0, 0.7, 0.0, 0.0, 0.0),
    "uh": (0.35, 0.0, 0.0, 0.6, 0.0, 0.0, 0.0),
    "uw": (0.25, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0),
}
_SAME_TARGET: Final = {"b": "p", "m": "p", "v": "f", "dh": "th", "d": "t", "n": "t",
                       "z": "s", "zh": "sh", "ch": "sh", "jh": "sh", "g": "k", "ng": "k"}
_DIPHTHONG: Final = {"aw": ("aa", "uh"), "ay": ("aa", "ih"), "oy": ("ao", "ih"),
                     "ey": ("eh", "ih"), "ow": ("ow", "uw")}

# Dominance per parameter (same order as the targets): vowels own jaw and lip shape;
# lip-neutral consonants lend their lips to the neighbouring vowels.
_VOWEL_DOM: Final[Vec] = (1.0, 1.0, 1.0, 1.0, 0.6, 0.6, 0.6)
_DOMINANCE: Final[dict[str, Vec]] = {
    "pau": (0.6, 1.0, 1.0, 1.0, 0.8, 0.8, 0.8),  # silence pulls the lips to rest firmly
    "p": (1.0, 1.0, 0.3, 0.2, 0.5, 0.5, 0.5),
    "f": (0.9, 1.0, 0.3, 0.2, 1.0, 1.0, 0.5),
    "th": (0.7, 1.0, 0.2, 0.1, 0.5, 0.5, 1.0),
    "t": (0.8, 1.0, 0.1, 0.05, 0.2, 0.5, 0.5),
    "l": (0.7, 1.0, 0.1, 0.05, 0.2, 0.5, 1.0),
    "s": (0.9, 1.0, 0.5, 0.2, 0.5, 0.5, 0.5),
    "sh": (0.8, 1.0, 0.6, 0.8, 0.8, 0.5, 0.5),
    "k": (0.7, 1.0, 0.1, 0.05, 0.2, 0.5, 0.5),
    "hh": (0.4, 1.0, 0.05, 0.05, 0.1, 0.5, 0.5),
    "r": (0.6, 1.0, 0.5, 0.7, 0.5, 0.5, 0.5),
    "w": (0.8, 1.0, 1.0, 1.0, 0.5, 0.5, 0.5),
    "y": (0.7, 1.0, 0.8, 0.5, 0.5, 0.5, 0.5),
}

ARPABET_ALIASES: Final = {"axr": "er", "el": "l", "em": "m", "en": "n", "dx": "d",
                          "hv": "hh", "ix": "ih", "ux": "uw", "h#": "pau", "sil": "pau",
                          "#": "pau", "_": "pau"}


def canonical(phone: str) -> str:
    """The phone in this module's set (stress digits dropped); KeyError if unknown."""
    name = phone.lower().rstrip("012")
    name = ARPABET_ALIASES.get(name, name)
    if name not in _VISEME_OF:
        raise KeyError(phone)
    return name


def viseme_index(phone: str) -> int:
    return VISEMES.index(_VISEME_OF[phone])


def targets(phone: str) -> tuple[Vec, ...]:
    """One target per part of the phone (two for a diphthong)."""
    parts = _DIPHTHONG.get(phone, (phone,))
    return tuple(_TARGET[_SAME_TARGET.get(p, p)] for p in parts)


def dominance(phone: str) -> Vec:
    base = _SAME_TARGET.get(phone, phone)
    return _DOMINANCE.get(base, _VOWEL_DOM)
