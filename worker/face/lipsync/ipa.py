"""espeak-ng's IPA phoneme names → the ARPAbet-like set of ``phones``."""

from __future__ import annotations

from typing import Final

_IPA: Final[dict[str, str]] = {
    "p": "p", "b": "b", "m": "m", "f": "f", "v": "v", "θ": "th", "ð": "dh", "t": "t",
    "d": "d", "n": "n", "l": "l", "ɫ": "l", "s": "s", "z": "z", "ʃ": "sh", "ʒ": "zh",
    "tʃ": "ch", "dʒ": "jh", "k": "k", "ɡ": "g", "g": "g", "ŋ": "ng", "h": "hh", "x": "hh",
    "ɹ": "r", "r": "r", "ɾ": "d", "ʔ": "t", "j": "y", "w": "w", "ʍ": "w",
    "i": "iy", "iː": "iy", "ɪ": "ih", "ᵻ": "ih", "e": "eh", "ɛ": "eh", "eɪ": "ey",
    "æ": "ae", "a": "ae", "aː": "aa", "ɑ": "aa", "ɑː": "aa", "ɒ": "ao", "ɔ": "ao",
    "ɔː": "ao", "ʌ": "ah", "ɐ": "ah", "ə": "ax", "əl": "l", "ɚ": "er", "ɜ": "er", "ɜː": "er",
    "ɝ": "er", "oʊ": "ow", "əʊ": "ow", "o": "ow", "oː": "ow", "ʊ": "uh", "u": "uw",
    "uː": "uw", "ʉ": "uw", "ʉː": "uw", "ʉɹ": "uh", "aɪ": "ay", "aʊ": "aw", "ɔɪ": "oy",
    "eə": "eh", "ɛə": "eh", "ɪə": "ih",
    "iə": "ih", "ʊə": "uh", "ɑɪ": "ay", "ɑʊ": "aw", "ɒʊ": "ow", "ʌʊ": "ow", "ɐʊ": "aw",
    "æʊ": "aw", "ɑːɹ": "aa", "ɔːɹ": "ao", "ɛɹ": "eh", "ɪɹ": "ih", "ʊɹ": "uh", "əɹ": "er",
}
_DROP: Final = str.maketrans("", "", "ˈˌ̩̃ʰ.‿ʲ")


def to_arpabet(name: str) -> str:
    """The ARPAbet name of one espeak-ng IPA phoneme; "" is a pause; KeyError if unknown.

    Stress, syllabicity and aspiration marks say nothing about the lips, so they go first;
    then the longest known prefix names the phone (an r-coloured vowel keeps its vowel).
    """
    clean = name.translate(_DROP)
    if not clean:
        return "pau"
    if clean in _IPA:
        return _IPA[clean]
    for size in range(len(clean) - 1, 0, -1):
        if clean[:size] in _IPA:
            return _IPA[clean[:size]]
    raise KeyError(name)
