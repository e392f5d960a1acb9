"""Downstream ``sf``: slot filling as CTC over characters and slot markers; slot-type F1 and slot-value CER.

SUPERB (s3prl ``downstream/ctc/snips.yaml``, Audio SNIPS): the target is the transcription's
characters with a begin token before and an end token after each slot value (``B-artist the
beatles E-artist``); projector to 1024, a 2-layer bidirectional LSTM of 1024 units with dropout 0.2,
a linear layer to the characters, the slot tokens and the CTC blank; Adam at 1e-4, batch 32,
200,000 steps, dev every 2,000, gradient clipping 1; best on dev slot-type F1; greedy decoding.
Slot-type F1 and slot-value CER are computed exactly as s3prl's ``metric.py`` does (see
:mod:`harness.evaluation.metrics`). The target is built from the manifest's ``text`` and ``slots`` (values
are substrings of the text, in order); the character vocabulary is the set of characters of the
training text (``<unk>`` for others).

With ``protocol: superb``, SpecAugment on the weighted-sum features while training, as s3prl does
(:mod:`harness.training.specaug`), its time masks adaptive to the batch's length as ``snips.yaml``
sets them.

Both protocols (``superb`` and the scaled-down ``embedded``, too short on the embedded corpus for
character CTC to emerge) are in :mod:`harness.evaluation.ctc_probe`, shared with ``asr``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from harness import hookimpl
from harness.api import (
    CTC_PROTOCOLS,
    SF_SPECAUG,
    CorpusError,
    CTCProbeParams,
    CTCTask,
    PreparedCorpus,
    ProbedDownstream,
    SpecAugSettings,
    Task,
    char_vocab,
    slot_type_f1_item,
    slot_value_cer_stats,
    task_splits,
)

UNK = "<unk>"


class SFParams(CTCProbeParams):
    """The CTC probe's parameters (:mod:`harness.evaluation.ctc_probe`), with SF's adaptive time masks."""

    SPECAUG: ClassVar[SpecAugSettings] = SF_SPECAUG


def slot_tokens(row: dict[str, Any]) -> list[str]:
    """The SUPERB target of one utterance: characters of ``text`` with ``B-type``/``E-type`` around
    each slot value (values are found in order in the text)."""
    text = str(row.get("text", ""))
    tokens: list[str] = []
    pos = 0
    for slot_type, value in row.get("slots") or []:
        at = text.find(value, pos)
        if not value or at < 0:
            raise CorpusError(
                f"utterance {row.get('id')!r}: slot value {value!r} ({slot_type}) is not in its text "
                f"{text!r} after position {pos}; slot values must be substrings of the text, in order."
            )
        tokens.extend(text[pos:at])
        tokens.append(f"B-{slot_type}")
        tokens.extend(value)
        tokens.append(f"E-{slot_type}")
        pos = at + len(value)
    tokens.extend(text[pos:])
    return tokens


class SlotFillingTask(CTCTask):
    name = "sf"
    label_fields = ("text", "slots")
    metrics = {"f1": "higher", "cer": "lower"}
    primary_metric = "f1"

    def __init__(
        self,
        chars: list[str],
        slot_types: list[str],
        project_dim: int,
        lstm_dims: tuple[int, ...],
        downsample: int = 1,
        specaug: SpecAugSettings | None = None,
    ):
        markers = [f"{edge}-{t}" for t in slot_types for edge in ("B", "E")]
        super().__init__([*chars, UNK, *markers], project_dim, lstm_dims, downsample=downsample, specaug=specaug)

    def target(self, row: dict[str, Any]) -> list[int]:
        unk = self.index[UNK]
        return [self.index.get(t, unk) for t in slot_tokens(row)]

    def render(self, ids: list[int]) -> str:
        """s3prl's decoded form: a begin marker is followed and an end marker preceded by a space."""
        out = []
        for i in ids:
            tok = self.vocab[i]
            if tok.startswith("B-") and len(tok) > 2:
                out.append(tok + " ")
            elif tok.startswith("E-") and len(tok) > 2:
                out.append(" " + tok)
            else:
                out.append(tok)
        return "".join(out)

    def item_stats(self, ref: str, hyp: str) -> dict[str, list[float]]:
        return {"f1": [slot_type_f1_item(ref, hyp), 1.0], "cer": slot_value_cer_stats(ref, hyp)}


class SlotFilling(ProbedDownstream[SFParams]):
    name = "sf"
    version = "3"
    summary = "Slot filling: CTC over characters and slot markers, BiLSTM head; slot-type F1, slot-value CER"
    order = 50
    label_fields = ("text", "slots")
    protocols = CTC_PROTOCOLS

    def make_task(self, corpus: PreparedCorpus, params: SFParams) -> Task:
        train = task_splits(corpus, "sf")["train"]
        slot_types = corpus.vocab.get("slot_types") or sorted({s[0] for r in train for s in r.get("slots") or []})
        return SlotFillingTask(
            char_vocab([str(r.get("text", "")) for r in train]),
            list(slot_types),
            *params.head_shape(),
            specaug=params.specaug_settings(),
        )


@hookimpl
def harness_register_downstream(registry) -> None:  # type: ignore[no-untyped-def]
    registry.add(SlotFilling)
