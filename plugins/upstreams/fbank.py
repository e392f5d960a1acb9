"""Upstream ``fbank``: SUPERB's FBank baseline, the lower anchor of the SUPERB score.

As s3prl defines it (``upstream/baseline/fbank.yaml``): 80-dim Kaldi log-mel filterbank (25 ms
povey windows every 10 ms, no dither), first and second order deltas (window 5), then
per-utterance mean and variance normalisation: 240 dims at 100 frames per second, one hidden
state, no weights. ``num_mel_bins``, ``deltas`` and ``cmvn`` change it (and its stage key).
The presets ``tiny`` and ``base`` are accepted for recipes that name one for every upstream; all
give the same features.
"""

from __future__ import annotations

from typing import Any, Literal

from harness import hookimpl
from harness.api import DeferredUpstreamPlugin, InputPath, PluginParams, UpstreamPlugin


class FbankParams(PluginParams):
    checkpoint: InputPath | None = None
    preset: Literal["superb", "tiny", "base"] = "superb"
    num_mel_bins: int = 80
    deltas: int = 2
    cmvn: bool = True


class FbankPlugin(DeferredUpstreamPlugin[FbankParams]):
    name = "fbank"
    version = "1"
    summary = "SUPERB FBank baseline: 80 log-mel + deltas + delta-deltas, per-utterance CMVN (240 dims, 10 ms)"
    trainable = False  # a fixed front end: never fine-tuned or merged
    baseline = True  # the SUPERB score's lower anchor

    def implementation(self) -> UpstreamPlugin[Any]:
        from plugins.upstreams._fbank_model import FbankBuilder

        return FbankBuilder()


@hookimpl
def harness_register_upstream(registry):
    registry.add(FbankPlugin)
