"""Task metrics, computed as SUPERB (s3prl) computes them, in percent, with per-item statistics.

Every metric here comes with per-item ``[numerator, denominator]`` statistics such that the corpus
metric is ``100 * sum(numerators) / sum(denominators)`` (the convention the leaderboard bootstraps):

- PER / CER / WER: ``[edits, reference length]`` (edit distance summed over the set divided by the
  summed reference length, s3prl ``downstream/ctc/metric.py``). Edit distances come from
  ``editdistance`` (PER, CER) and ``jiwer`` (WER).
- accuracy: ``[correct, 1]``.
- slot-type F1 (SUPERB SF): s3prl averages a per-utterance F1 over utterances, so the item
  statistic is ``[F1_utterance, 1]`` (not ``[2TP, 2TP+FP+FN]``: that would be a different number).
- slot-value CER (SUPERB SF): for every reference slot, the hypothesis value of the same type with
  the lowest CER (or "" when the type is absent), then summed character edits over summed reference
  value lengths; the item statistic is ``[edits, reference value characters]``.

Slot strings use SUPERB's decoded form: ``"play B-artist the beatles E-artist now"``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import editdistance
import jiwer

Stats = list[float]

_SLOT_RE = re.compile(r"B\-(\S+) (.+?) E\-\1")
_SPACES = re.compile(r" +")
_B_TOKEN = re.compile(r"B\-(\S+) ")
_E_TOKEN = re.compile(r" E\-(\S+)")


def ratio(stats: Sequence[Sequence[float]]) -> float:
    """``100 * sum(num) / sum(den)`` over per-item statistics (0 when every denominator is 0)."""
    num = sum(float(s[0]) for s in stats)
    den = sum(float(s[1]) for s in stats)
    return 100.0 * num / den if den else 0.0


# --------------------------------------------------------------------------- error rates


def sequence_edits(ref: Sequence[str], hyp: Sequence[str]) -> Stats:
    """``[edit distance, len(ref)]`` between two token sequences (phones, characters)."""
    return [float(editdistance.eval(list(ref), list(hyp))), float(len(ref))]


def cer_stats(ref: str, hyp: str) -> Stats:
    """``[character edits, reference characters]``."""
    return sequence_edits(list(ref), list(hyp))


def wer_stats(ref: str, hyp: str) -> Stats:
    """``[word edits (S + D + I), reference words]`` computed by jiwer."""
    words = ref.split()
    if not words:
        return [float(len(hyp.split())), 0.0]
    out = jiwer.process_words(" ".join(words), " ".join(hyp.split()))
    return [float(out.substitutions + out.deletions + out.insertions), float(len(words))]


def error_rate(refs: Sequence[Sequence[str]], hyps: Sequence[Sequence[str]]) -> float:
    """Summed edits over summed reference length, in percent (PER over phone lists)."""
    return ratio([sequence_edits(r, h) for r, h in zip(refs, hyps, strict=True)])


def accuracy(refs: Sequence[object], hyps: Sequence[object]) -> float:
    return ratio([[float(r == h), 1.0] for r, h in zip(refs, hyps, strict=True)])


# --------------------------------------------------------------------------- slot filling


@dataclass(frozen=True)
class ParsedSlots:
    """A decoded SF string split as s3prl's ``parse`` does: text without markers, (type, value) slots."""

    text: str
    slots: tuple[tuple[str, str], ...]


def _strip_markers(s: str) -> str:
    s = _B_TOKEN.sub("", s)
    return _E_TOKEN.sub("", s)


def parse_slots(s: str, clean_values: bool) -> ParsedSlots:
    """Slots ``B-type value E-type`` of ``s`` (non-greedy, same type closes), after collapsing spaces.

    s3prl cleans nested markers out of hypothesis values only (``clean_values`` for hypotheses).
    """
    s = _SPACES.sub(" ", s)
    slots = []
    for slot_type, value in _SLOT_RE.findall(s):
        slots.append((slot_type, _strip_markers(value) if clean_values else value))
    return ParsedSlots(_strip_markers(s), tuple(slots))


def _by_type(slots: Sequence[tuple[str, str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for slot_type, value in slots:
        out.setdefault(slot_type, []).append(value)
    return out


def slot_type_f1_item(ref: str, hyp: str) -> float:
    """One utterance's slot-type F1 (0..1) over the *sets* of slot types, as s3prl computes it.

    Both empty: 1; one empty: 0; else precision/recall over distinct types.
    """
    ref_types = _by_type(parse_slots(ref, clean_values=False).slots)
    hyp_types = _by_type(parse_slots(hyp, clean_values=True).slots)
    if not ref_types and not hyp_types:
        return 1.0
    if not ref_types or not hyp_types:
        return 0.0
    recall = sum(1 for t in ref_types if t in hyp_types) / len(ref_types)
    precision = sum(1 for t in hyp_types if t in ref_types) / len(hyp_types)
    return 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0


def slot_value_cer_stats(ref: str, hyp: str) -> Stats:
    """``[character edits, reference value characters]`` over this utterance's reference slots.

    For each reference value, the hypothesis value of the same type with the lowest CER (the first
    one on ties; "" when the hypothesis has no slot of that type), as s3prl ``slot_value_cer``.
    """
    ref_types = _by_type(parse_slots(ref, clean_values=False).slots)
    hyp_types = _by_type(parse_slots(hyp, clean_values=True).slots)
    edits = chars = 0.0
    for slot_type, ref_values in ref_types.items():
        for ref_v in ref_values:
            best = ""
            if slot_type in hyp_types:
                best_cer = 100.0
                for hyp_v in hyp_types[slot_type]:
                    e, n = cer_stats(ref_v, hyp_v)
                    cer = e / n if n else float(len(hyp_v) > 0)
                    if best_cer > cer:
                        best_cer, best = cer, hyp_v
            e, n = cer_stats(ref_v, best)
            edits += e
            chars += n
    return [edits, chars]


def slot_filling(refs: Sequence[str], hyps: Sequence[str]) -> dict[str, float]:
    """SUPERB SF metrics in percent: ``f1`` (slot-type F1) and ``cer`` (slot-value CER)."""
    pairs = list(zip(refs, hyps, strict=True))
    return {
        "f1": ratio([[slot_type_f1_item(r, h), 1.0] for r, h in pairs]),
        "cer": ratio([slot_value_cer_stats(r, h) for r, h in pairs]),
    }
