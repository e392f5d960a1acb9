"""The model of the ``fbank`` upstream (:mod:`plugins.upstreams.fbank`): imported when a model is built,
so registering the plugin does not load torch."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from harness.api import (
    CheckpointError,
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

if TYPE_CHECKING:
    from plugins.upstreams.fbank import FbankParams

DEFAULT_CONFIG: dict[str, Any] = {"num_mel_bins": 80, "window": "povey", "deltas": 2, "delta_window": 5, "cmvn": True}


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


class FbankBuilder(UpstreamPlugin[PluginParams]):
    """Builds and rebuilds the models of the registered ``fbank`` plugin."""

    name = "fbank"

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
