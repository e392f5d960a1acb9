"""The CTC probe protocol shared by the character-level downstreams (``asr``, ``sf``).

SUPERB (s3prl ``downstream/asr/config.yaml`` and ``downstream/ctc/snips.yaml``): projector to
1024, a 2-layer bidirectional LSTM of 1024 units with dropout 0.2, a linear layer to the tokens and
the CTC blank; Adam at 1e-4, batch 32, 200,000 steps, dev every 2,000, gradient clipping 1;
SpecAugment on the weighted-sum features while training (:mod:`harness.training.specaug`).

``protocol: embedded``: projector 32, two BiLSTM layers of 32 over pairs of concatenated frames
(``downsample: 2``, s3prl's ``concat`` style), 200 steps of 16 at 5e-3, dev every 100, no
SpecAugment (``specaug: true`` turns it on): the BiLSTM step is the slowest part of a CPU
evaluation. On the embedded corpus that is too short for character CTC to emerge (the metric stays
near its floor for every upstream; 600 steps with 96-unit layers reached a slot-type F1 of 7 on
FBank); give ``steps`` in the thousands when the task matters.
"""

from __future__ import annotations

from pydantic import Field

from harness.core.interfaces import SpecAugSettings
from harness.evaluation.probe_settings import ProbeParams, ProbeSettings

CTC_PROTOCOLS = {
    "superb": ProbeSettings(steps=200_000, lr=1e-4, batch_size=32, eval_every=2000),
    "embedded": ProbeSettings(steps=200, lr=5e-3, batch_size=16, eval_every=100),
}
#: projector width, BiLSTM widths, frames concatenated per step
HEADS: dict[str, tuple[int, tuple[int, ...], int]] = {
    "superb": (1024, (1024, 1024), 1),
    "embedded": (32, (32, 32), 2),
}


class CTCProbeParams(ProbeParams):
    """Probe parameters plus the head's shape and SpecAugment (unset: the protocol's)."""

    project_dim: int | None = None
    lstm_dims: tuple[int, ...] | None = None
    downsample: int | None = None
    specaug: bool | None = Field(None, description="SpecAugment in training (unset: on for superb, off for embedded)")

    def specaug_settings(self) -> SpecAugSettings | None:
        """SUPERB's SpecAugment where it applies: the superb protocol, unless ``specaug: false``."""
        on = self.specaug if self.specaug is not None else self.protocol == "superb"
        return SpecAugSettings() if on else None

    def head_shape(self) -> tuple[int, tuple[int, ...], int]:
        """(projector width, BiLSTM widths, frames concatenated) with this entry's overrides."""
        project, lstms, down = HEADS[self.protocol]
        return (
            self.project_dim or project,
            tuple(self.lstm_dims) if self.lstm_dims is not None else lstms,
            self.downsample or down,
        )
