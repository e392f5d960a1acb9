"""Upstream ``wav2vec2``: wav2vec 2.0 (transformers modules) from fairseq, transformers or harness files.

Presets (random initialisation from the stage seed):

- ``tiny``: 7-block CNN of 32 channels (wav2vec 2.0 strides, 20 ms frames), 3 post-LN transformer
  layers of width 96 (4 heads, FFN 384), positional convolution 32 taps / 8 groups; 0.39 M
  parameters. For tests and the demo.
- ``base``: the published Base architecture (``wav2vec_small.pt``): 512-channel CNN with group norm,
  12 layers of 768 (12 heads, FFN 3072), positional convolution 128 / 16; 94.4 M parameters.
"""

from __future__ import annotations

from typing import Any, Literal

from harness import hookimpl
from harness.api import DeferredUpstreamPlugin, SourceParams, UpstreamPlugin


class Wav2Vec2Params(SourceParams):
    preset: Literal["tiny", "base"] | None = None


class Wav2Vec2Plugin(DeferredUpstreamPlugin[Wav2Vec2Params]):
    name = "wav2vec2"
    version = "1"
    summary = "wav2vec 2.0 from a fairseq .pt, a transformers folder or a preset (tiny, base)"
    export_formats = ("hf",)
    hf_model_type = "wav2vec2"  # the transformers folders it reads (``harness extract`` picks it by this)

    def implementation(self) -> UpstreamPlugin[Any]:
        from plugins.upstreams._wav2vec2_model import Wav2Vec2Builder

        return Wav2Vec2Builder()


@hookimpl
def harness_register_upstream(registry):
    registry.add(Wav2Vec2Plugin)
