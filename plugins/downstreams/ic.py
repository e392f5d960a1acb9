"""Downstream ``ic``: intent classification; projection, mean pooling, one linear layer read as a
softmax per intent slot; accuracy (every slot right).

SUPERB (s3prl ``downstream/fluent_commands``, Fluent Speech Commands): an intent is three slots
(action, object, location); projector to 256, ``UtteranceLevel`` with ``MeanPooling``, one linear
layer whose outputs are split into the slots' classes; the loss is the sum of the slots'
cross-entropies; an utterance counts as right only when all three slots are. Adam at 1e-4, batch 32,
200,000 steps, dev every 4,000, gradient clipping 1; best on dev accuracy. Each slot's classes are
the values its training rows hold.

The corpus's ``intent`` field is either a list of slot values (Fluent Speech Commands:
``[action, object, location]``) or one string (the embedded corpus and Audio SNIPS: one slot, the
intent's name), the same number of slots on every row.

``protocol: embedded``: 200 steps of 32 utterances at 5e-3, dev every 50, as SID and ER.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from harness import hookimpl
from harness.api import (
    Batch,
    CorpusError,
    PreparedCorpus,
    ProbedDownstream,
    ProbeParams,
    ProbeSettings,
    Task,
    UtteranceTask,
    task_splits,
)

if TYPE_CHECKING:
    import torch
    from torch import nn

PROTOCOLS = {
    "superb": ProbeSettings(steps=200_000, lr=1e-4, batch_size=32, eval_every=4000),
    "embedded": ProbeSettings(steps=200, lr=5e-3, batch_size=32, eval_every=50),
}


class ICParams(ProbeParams):
    projector_dim: int = 256


def slot_values(row: dict[str, Any]) -> list[str]:
    """The intent of one row as its list of slot values (one slot when the field is a string)."""
    intent = row["intent"]
    return [str(v) for v in intent] if isinstance(intent, list | tuple) else [str(intent)]


class IntentTask(UtteranceTask):
    """Several label slots at once: the head's outputs are the slots' classes one after the other."""

    name = "ic"
    label_field = "intent"

    def __init__(self, slots: Sequence[Sequence[str]], projector_dim: int = 256):
        self.slots = [list(values) for values in slots]
        super().__init__([f"{k}:{v}" for k, values in enumerate(self.slots) for v in values], projector_dim)
        self.slot_index = [{v: i for i, v in enumerate(values)} for values in self.slots]
        self.bounds: list[tuple[int, int]] = []
        start = 0
        for values in self.slots:
            self.bounds.append((start, start + len(values)))
            start += len(values)

    def row_slots(self, row: dict[str, Any]) -> list[str]:
        values = slot_values(row)
        if len(values) != len(self.slots):
            raise CorpusError(f"ic: utterance {row['id']!r} has {len(values)} intent slots where the training "
                              f"rows have {len(self.slots)}; every row's intent must have the same slots.")
        return values

    def labels(self, rows: list[dict[str, Any]]) -> torch.Tensor:
        """B × slots class indices within each slot."""
        import torch

        try:
            return torch.tensor([[index[v] for index, v in zip(self.slot_index, self.row_slots(r), strict=True)]
                                 for r in rows])
        except KeyError as exc:
            raise CorpusError(f"ic: intent slot value {exc.args[0]!r} has no training utterance; every value "
                              "a training batch holds must come from the training rows.") from None

    def loss(self, head: nn.Module, batch: Batch) -> torch.Tensor:
        import torch.nn.functional as F

        logits = self.logits(head, batch).float()
        labels = self.labels(batch.utterances).to(logits.device)
        return sum(F.cross_entropy(logits[:, a:b], labels[:, k]) for k, (a, b) in enumerate(self.bounds))

    def predict(self, head: nn.Module, batch: Batch) -> list[dict[str, Any]]:
        import torch

        logits = self.logits(head, batch)
        picks = torch.stack([logits[:, a:b].argmax(dim=-1) for a, b in self.bounds], dim=1).cpu().tolist()
        out = []
        for row, pick in zip(batch.utterances, picks, strict=True):
            ref = self.row_slots(row)
            hyp = [values[i] for values, i in zip(self.slots, pick, strict=True)]
            out.append({"id": row["id"], "ref": " / ".join(ref), "hyp": " / ".join(hyp),
                        "stats": {"acc": [float(ref == hyp), 1.0]}})  # fmt: skip
        return out


class IntentClassification(ProbedDownstream[ICParams]):
    name = "ic"
    version = "1"
    summary = "Intent classification: projection, mean pooling, linear per slot; accuracy (all slots right)"
    order = 45
    label_fields = ("intent",)
    frame_cache = False  # pooled means
    protocols = PROTOCOLS

    def make_task(self, corpus: PreparedCorpus, params: ICParams) -> Task:
        corpus.require(self.label_fields, f"downstream {self.name!r}")
        train = task_splits(corpus, "ic")["train"]
        widths = {len(slot_values(r)) for r in train}
        if len(widths) > 1:
            raise CorpusError(f"corpus {corpus.name!r} has intents of {sorted(widths)} slots in its training "
                              "split; every row's intent must have the same slots.")
        n_slots = widths.pop() if widths else 0
        slots = [sorted({slot_values(r)[k] for r in train}) for k in range(n_slots)]
        if sum(map(len, slots)) < 2:
            raise CorpusError(f"corpus {corpus.name!r} has fewer than two intents in its training split.")
        return IntentTask(slots, params.projector_dim)


@hookimpl
def harness_register_downstream(registry) -> None:  # type: ignore[no-untyped-def]
    registry.add(IntentClassification)
