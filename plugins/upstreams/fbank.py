"""Upstream ``fbank``: SUPERB's FBank baseline, the lower anchor of the SUPERB score.

As s3prl defines it (``upstream/baseline/fbank.yaml``): 80-dim Kaldi log-mel filterbank (25 ms
povey windows every 10 ms, no dither), first and second order deltas (window 5), then
per-utterance mean and variance normalisation: 240 dims at 100 frames per second, one hidden
state, no weights. ``num_mel_bins``, ``deltas`` and ``cmvn`` change it (and its stage key).
The presets ``tiny`` and ``base`` are accepted for recipes that name one for every upstream; all
give the same features.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import torch

from harness import hookimpl
from harness.api import (
    CheckpointError,
    InputPath,
    KaldiFbank,
    PluginParams,
    UpstreamModel,
    UpstreamOutput,
    UpstreamPlugin,
    add_deltas,
    frame_mask,
    load_own_model,
    own_model_files,
    utterance_cmvn,
)

DEFAULT_CONFIG: dict[str, Any] = {"num_mel_bins": 80, "window": "povey", "deltas": 2, "delta_window": 5, "cmvn": True}


class FbankParams(PluginParams):
    checkpoint: InputPath | None = None
    preset: Literal["superb", "tiny", "base"] = "superb"
    num_mel_bins: int = 80
    deltas: int = 2
    cmvn: bool = True


class FbankUpstream(UpstreamModel):
    """Filterbank features as a single hidden state; an empty state dict."""

    family = "fbank"

    def __init__(self, config: dict[str, Any]):
        super().__init__()
        self._config = {**DEFAULT_CONFIG, **config}
        self.fbank = KaldiFbank(int(self._config["num_mel_bins"]), self._config["window"])
        self.hidden_size = int(self._config["num_mel_bins"]) * (1 + int(self._config["deltas"]))
        self.num_hidden_states = 1
        self.frame_shift = self.fbank.hop_length / self.sample_rate

    def config(self) -> dict[str, Any]:
        return dict(self._config)

    def downsampling_module(self) -> torch.nn.Module:
        return self.fbank

    def frame_lengths(self, wav_lengths: torch.Tensor) -> torch.Tensor:
        return self.fbank.num_frames(wav_lengths)

    def forward(self, wavs: torch.Tensor, wav_lengths: torch.Tensor) -> UpstreamOutput:
        feats, n = self.fbank(wavs, wav_lengths)
        feats = add_deltas(feats, n, int(self._config["deltas"]), int(self._config["delta_window"]))
        if self._config["cmvn"]:
            feats = utterance_cmvn(feats, n)
        feats = feats.masked_fill(~frame_mask(n, feats.shape[1])[..., None], 0.0)
        return UpstreamOutput(hidden_states=[feats], lengths=n)


class FbankPlugin(UpstreamPlugin[FbankParams]):
    name = "fbank"
    version = "1"
    summary = "SUPERB FBank baseline: 80 log-mel + deltas + delta-deltas, per-utterance CMVN (240 dims, 10 ms)"
    trainable = False  # a fixed front end: never fine-tuned or merged
    baseline = True  # the SUPERB score's lower anchor

    def from_config(self, config: dict[str, Any]) -> FbankUpstream:
        return FbankUpstream(config)

    def build(self, params: FbankParams, seed: int) -> FbankUpstream:
        if params.checkpoint is not None:
            path = Path(params.checkpoint)
            if own_model_files(path) is None:
                raise CheckpointError(
                    f"{path} is not a harness model folder; fbank has no weights, so give no checkpoint "
                    "or a folder written by the harness."
                )
            model = load_own_model(path, self.name, self.from_config)
        else:
            model = FbankUpstream({"num_mel_bins": params.num_mel_bins, "deltas": params.deltas, "cmvn": params.cmvn})
        model.eval()
        return model  # type: ignore[return-value]


@hookimpl
def harness_register_upstream(registry):
    registry.add(FbankPlugin)
