"""espeak-ng (en-us) phoneme mnemonics -> the corpus phone inventory, and phone alignments.

The inventory is the 39 CMU/ARPAbet phones (:data:`harness.data.phones.ARPABET`) plus ``sil``. The
mapping (stress marks ``'`` ``,`` and the syllabic mark ``=`` removed first):

=========================  ==================  =========================  =================
espeak                     inventory           espeak                     inventory
=========================  ==================  =========================  =================
``_`` ``_:`` ``_!``        sil                 ``@`` ``@2`` ``@5`` ``V``  ah
``a`` ``aa`` ``a#``        ae                  ``A:`` ``0``               aa
``O:`` ``O2`` ``O``        ao                  ``E`` ``e``                eh
``3`` ``3:``               er                  ``I`` ``I#`` ``I2`` ``i#`` ih
``i`` ``i:``               iy                  ``U``                      uh
``u:`` ``u``               uw                  ``eI``                     ey
``aI``                     ay                  ``aU``                     aw
``oU`` ``o``               ow                  ``OI``                     oy
``A@``                     aa r                ``O@`` ``o@``              ao r
``e@``                     eh r                ``i@``                     iy ah
``i@3``                    ih r                ``U@``                     uh r
``aI@``                    ay ah               ``aI3``                    ay er
``aU@``                    aw er               ``@L``                     ah l
``T``                      th                  ``D``                      dh
``S``                      sh                  ``Z``                      zh
``tS``                     ch                  ``dZ``                     jh
``N``                      ng                  ``h``                      hh
``j``                      y                   ``t#`` ``t2`` ``?``        t
``d#``                     d                   ``n-`` ``m-`` ``l-``       n m l
``x``                      k                   ``;`` (palatal mark)       (joins the previous)
=========================  ==================  =========================  =================

Other consonants keep their letter (p b t d k g f v s z m n l r w). A mnemonic mapped to two
phones splits its interval in half; an r-coloured vowel followed by espeak's own ``r`` keeps only
that ``r`` (``st'o@ri`` -> s t ao r iy). Phonemes that espeak starts at the same sample share the
interval up to the next start equally (espeak sometimes emits a zero-length phoneme). Unknown
mnemonics fall back to the table after removing ``#`` and digits, and otherwise join the previous
phone (and are counted).
"""

from __future__ import annotations

import logging
import re

from harness.api import ARPABET, SIL

log = logging.getLogger("harness.corpora.synthetic")

INVENTORY: tuple[str, ...] = (*ARPABET, SIL)

_TABLE: dict[str, tuple[str, ...]] = {
    "_": (SIL,), "_:": (SIL,), "_!": (SIL,), "_^_": (SIL,),
    "@": ("ah",), "@2": ("ah",), "@5": ("ah",), "V": ("ah",),
    "a": ("ae",), "aa": ("ae",), "a#": ("ae",),
    "A:": ("aa",), "0": ("aa",), "A": ("aa",),
    "O:": ("ao",), "O2": ("ao",), "O": ("ao",),
    "E": ("eh",), "e": ("eh",),
    "3": ("er",), "3:": ("er",),
    "I": ("ih",), "I#": ("ih",), "I2": ("ih",), "i#": ("ih",),
    "i": ("iy",), "i:": ("iy",),
    "U": ("uh",), "u:": ("uw",), "u": ("uw",),
    "eI": ("ey",), "aI": ("ay",), "aU": ("aw",), "oU": ("ow",), "o": ("ow",), "OI": ("oy",),
    "A@": ("aa", "r"), "O@": ("ao", "r"), "o@": ("ao", "r"), "e@": ("eh", "r"),
    "i@": ("iy", "ah"), "i@3": ("ih", "r"), "U@": ("uh", "r"),
    "aI@": ("ay", "ah"), "aI3": ("ay", "er"), "aU@": ("aw", "er"), "@L": ("ah", "l"),
    "T": ("th",), "D": ("dh",), "S": ("sh",), "Z": ("zh",), "tS": ("ch",), "dZ": ("jh",),
    "N": ("ng",), "h": ("hh",), "j": ("y",),
    "t#": ("t",), "t2": ("t",), "?": ("t",), "d#": ("d",),
    "n-": ("n",), "m-": ("m",), "l-": ("l",), "x": ("k",),
    ";": (),
    **{c: (c,) for c in ("p", "b", "t", "d", "k", "g", "f", "v", "s", "z", "m", "n", "l", "r", "w")},
}  # fmt: skip

_MARKS = re.compile(r"^[',=%]+")


def map_phoneme(mnemonic: str) -> tuple[str, ...] | None:
    """Inventory phones for one espeak mnemonic; ``()`` joins the previous phone; None if unknown."""
    base = _MARKS.sub("", mnemonic)
    if base in _TABLE:
        return _TABLE[base]
    simple = re.sub(r"[#0-9]+$", "", base)
    return _TABLE.get(simple)


def align(phonemes: list[tuple[str, int]], n_samples: int, sample_rate: int) -> list[list]:
    """Contiguous ``[[phone, start_s, end_s], ...]`` covering ``[0, n_samples / sample_rate]``.

    ``phonemes`` are espeak's (mnemonic, start sample) events in order.
    """
    # 1. Interval of each event; events sharing a start split the span to the next start equally.
    starts = [min(max(0, s), n_samples) for _, s in phonemes]
    spans: list[tuple[str, float, float]] = []
    i = 0
    while i < len(phonemes):
        j = i
        while j + 1 < len(phonemes) and starts[j + 1] == starts[i]:
            j += 1
        end = starts[j + 1] if j + 1 < len(phonemes) else n_samples
        width = (end - starts[i]) / (j - i + 1)
        for k in range(i, j + 1):
            a = starts[i] + width * (k - i)
            spans.append((phonemes[k][0], a, a + width))
        i = j + 1
    # 2. Map to the inventory; leading silence before the first event.
    segs: list[list] = [[SIL, 0.0, float(starts[0])]] if phonemes and starts[0] > 0 else []
    unknown: list[str] = []
    mapped: list[tuple[str, ...]] = []
    for mnemonic, _, _ in spans:
        phones = map_phoneme(mnemonic)
        if phones is None:
            unknown.append(mnemonic)
            phones = ()
        mapped.append(phones)
    for k in range(len(mapped) - 1):  # "o@" + "r" (story): the r-coloured vowel keeps one r
        nxt = next((m for m in mapped[k + 1 :] if m), ())
        if len(mapped[k]) > 1 and mapped[k][-1] == "r" and nxt[:1] == ("r",):
            mapped[k] = mapped[k][:-1]
    for (_, a, b), phones in zip(spans, mapped, strict=True):
        if not phones:
            if segs:
                segs[-1][2] = b
            else:
                segs.append([SIL, a, b])
            continue
        w = (b - a) / len(phones)
        for k, p in enumerate(phones):
            segs.append([p, a + w * k, a + w * (k + 1)])
    if not segs:
        segs = [[SIL, 0.0, float(n_samples)]]
    segs[-1][2] = float(n_samples)
    if unknown:
        log.debug("espeak phonemes outside the mapping joined their neighbours: %s", sorted(set(unknown)))
    # 3. Drop empty segments, merge repeated silence, convert to seconds.
    out: list[list] = []
    for p, a, b in segs:
        if b - a <= 0:
            continue
        if out and (p == SIL and out[-1][0] == SIL):
            out[-1][2] = b
            continue
        out.append([p, a, b])
    for k in range(1, len(out)):  # contiguity after dropping empty ones
        out[k][1] = out[k - 1][2]
    if out:
        out[0][1] = 0.0
    return [[p, a / sample_rate, b / sample_rate] for p, a, b in out]
