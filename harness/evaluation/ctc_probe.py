"""The CTC probe protocol shared by the character-level downstreams (``asr``, ``sf``).

SUPERB (s3prl ``downstream/asr/config.yaml`` and ``downstream/ctc/snips.yaml``): projector to
1024, a 2-layer bidirectional LSTM of 1024 units with dropout 0.2, a linear layer to the tokens and
the CTC blank; Adam at 1e-4, batch 32, 200,000 steps, dev every 2,000, gradient clipping 1;
SpecAugment on the weighted-sum features while training (:mod:`harness.training.specaug`; SF's
time masks adaptive, :data:`SF_SPECAUG`); SF's
batches are windows of neighbours in label-length order (``bucketing: True`` in ``snips.yaml``;
:class:`harness.data.batching.SortedSliceSampler`), ASR's those of s3prl's ASR recipe (``asr``).

``protocol: embedded``: projector 64, two BiLSTM layers of 64 over pairs of concatenated frames
(``downsample: 2``, s3prl's ``concat`` style), 600 steps of 16 at 3e-3, dev every 200, no
SpecAugment (``specaug: true`` turns it on): the BiLSTM step is the slowest part of a CPU
evaluation. Sized on the embedded corpus's short commands (``grammar: sf_commands``, 460 training
utterances), where it is the smallest setting measured on which slot filling emerges for FBank and
the pre-trained model alike (slot-type F1 14 and 23; 200 steps of a 32-unit head stayed at 0, 1000
steps of a 64-unit head reached 23 and 31 at twice the time). Give ``steps`` in the thousands when
the task matters.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from harness.core.interfaces import SpecAugSettings
from harness.evaluation.probe_settings import ProbeParams, ProbeSettings

CTC_PROTOCOLS = {
    "superb": ProbeSettings(steps=200_000, lr=1e-4, batch_size=32, eval_every=2000, sorted_batches=True),
    "embedded": ProbeSettings(steps=600, lr=3e-3, batch_size=16, eval_every=200),
}
#: projector width, BiLSTM widths, frames concatenated per step
HEADS: dict[str, tuple[int, tuple[int, ...], int]] = {
    "superb": (1024, (1024, 1024), 1),
    "embedded": (64, (64, 64), 2),
}

#: s3prl ``downstream/ctc/snips.yaml``: ASR's setting with adaptive time masks
SF_SPECAUG = SpecAugSettings(adaptive_number_ratio=0.04, adaptive_size_ratio=0.04, max_time_masks=20)


class CTCProbeParams(ProbeParams):
    """Probe parameters plus the head's shape and SpecAugment (unset: the protocol's)."""

    project_dim: int | None = None
    lstm_dims: tuple[int, ...] | None = None
    downsample: int | None = None
    specaug: bool | None = Field(None, description="SpecAugment in training (unset: on for superb, off for embedded)")
    #: the SpecAugment this downstream's SUPERB recipe draws
    SPECAUG: ClassVar[SpecAugSettings] = SpecAugSettings()

    def specaug_settings(self) -> SpecAugSettings | None:
        """SUPERB's SpecAugment where it applies: the superb protocol, unless ``specaug: false``."""
        on = self.specaug if self.specaug is not None else self.protocol == "superb"
        return self.SPECAUG if on else None

    def head_shape(self) -> tuple[int, tuple[int, ...], int]:
        """(projector width, BiLSTM widths, frames concatenated) with this entry's overrides."""
        project, lstms, down = HEADS[self.protocol]
        return (
            self.project_dim or project,
            tuple(self.lstm_dims) if self.lstm_dims is not None else lstms,
            self.downsample or down,
        )
