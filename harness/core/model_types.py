"""The model side of the upstream contract: :class:`UpstreamModel` (a ``torch.nn.Module``) and its output.

Kept apart from :mod:`harness.core.interfaces` so that registering plugins and reading their
declarations never imports torch; only code that builds or runs models imports this module.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

__all__ = ["UpstreamModel", "UpstreamOutput"]


@dataclass
class UpstreamOutput:
    """Hidden states (each B×T×D; input of each transformer layer plus the final output) and the
    number of valid frames per utterance (B,)."""

    hidden_states: list[torch.Tensor]
    lengths: torch.Tensor


class UpstreamModel(torch.nn.Module, ABC):
    """A speech representation model taking 16 kHz waveforms.

    Subclasses set ``family`` (the upstream plugin's name), ``hidden_size``, ``num_hidden_states``,
    ``frame_shift`` (seconds between frames) and implement :meth:`forward` and :meth:`config`.
    The state dict is the model's weights exactly as merged and saved (safetensors).
    """

    family: str = ""
    sample_rate: int = 16000
    hidden_size: int
    num_hidden_states: int
    frame_shift: float = 0.02
    #: state-dict entries a checkpoint may lack (they keep the model's initial values when it does)
    optional_weights: ClassVar[tuple[str, ...]] = ()
    #: whether :meth:`forward` takes ``masked_frames`` (B×T booleans: those frames' features are replaced
    #: by the model's mask embedding, as HuBERT and wav2vec 2.0 mask in pre-training)
    masks_frames: ClassVar[bool] = False

    @abstractmethod
    def forward(self, wavs: torch.Tensor, wav_lengths: torch.Tensor) -> UpstreamOutput:
        """``wavs`` is B×S float32 zero-padded, ``wav_lengths`` the valid samples (B,), on the host or on
        ``wavs``' device; the output's ``lengths`` are on ``wavs``' device. The built-in upstreams take
        every decision that depends on the lengths from a host copy, so that with host lengths their
        forward never waits for the device."""

    @abstractmethod
    def config(self) -> dict[str, Any]:
        """A JSON-serialisable config from which the plugin's ``from_config`` rebuilds the model."""

    def downsampling_module(self) -> torch.nn.Module | None:
        """The CNN (or other front end) that stable fine-tuning keeps frozen; None if there is none."""
        return None

    def set_gradient_checkpointing(self, enabled: bool) -> None:
        """Trade compute for memory during fine-tuning; a no-op where unsupported."""

    def set_layerdrop(self, probability: float) -> None:
        """Set transformer layer drop (fine-tuning turns it off); a no-op where unsupported."""

    def frame_lengths(self, wav_lengths: torch.Tensor) -> torch.Tensor:
        """Number of output frames for each waveform length."""
        return torch.div(wav_lengths, int(self.frame_shift * self.sample_rate), rounding_mode="floor")
