"""Phone inventories shared by the corpora.

- :data:`ARPABET`: the 39 phones of the CMU Pronouncing Dictionary (stress removed), lower case;
  LibriSpeech lexicons and the embedded synthetic corpus use it, plus :data:`SIL` for pauses.
- :data:`TIMIT_61_TO_39`: the standard folding of TIMIT's 61 phones to 39 classes (Lee & Hon,
  1989): closures, pauses and ``h#`` become ``sil``, ``q`` is dropped, and ``ao→aa``,
  ``ax/ax-h→ah``, ``axr→er``, ``hv→hh``, ``ix→ih``, ``el→l``, ``em→m``, ``en/nx→n``, ``eng→ng``,
  ``zh→sh``, ``ux→uw``.
"""

from __future__ import annotations

import re

SIL = "sil"

ARPABET: tuple[str, ...] = (
    "aa", "ae", "ah", "ao", "aw", "ay", "b", "ch", "d", "dh", "eh", "er", "ey", "f", "g", "hh", "ih",
    "iy", "jh", "k", "l", "m", "n", "ng", "ow", "oy", "p", "r", "s", "sh", "t", "th", "uh", "uw", "v",
    "w", "y", "z", "zh",
)  # fmt: skip

_STRESS = re.compile(r"[0-9]+$")


def strip_stress(phone: str) -> str:
    """``AH0`` -> ``ah`` (CMU lexicon phones carry stress digits)."""
    return _STRESS.sub("", phone).lower()


TIMIT_61_TO_39: dict[str, str | None] = {
    **{p: p for p in ("ae", "aw", "ay", "b", "ch", "d", "dh", "dx", "eh", "er", "ey", "f", "g", "hh", "ih",
                      "iy", "jh", "k", "l", "m", "n", "ng", "ow", "oy", "p", "r", "s", "sh", "t", "th", "uh",
                      "uw", "v", "w", "y", "z")},
    "aa": "aa", "ao": "aa", "ah": "ah", "ax": "ah", "ax-h": "ah", "axr": "er", "hv": "hh", "ix": "ih",
    "el": "l", "em": "m", "en": "n", "nx": "n", "eng": "ng", "zh": "sh", "ux": "uw",
    **{p: SIL for p in ("bcl", "dcl", "gcl", "pcl", "tcl", "kcl", "pau", "epi", "h#")},
    "q": None,
}  # fmt: skip

#: the 39 folded TIMIT classes (``sil`` included)
TIMIT_39: tuple[str, ...] = tuple(sorted({v for v in TIMIT_61_TO_39.values() if v is not None}))
