"""Upstream ``decoar2``: DeCoAR 2.0, our module matching the public release, and small variants.

The release (``checkpoint_decoar2.pt``; s3prl's ``upstream/decoar2``): 80-dim Kaldi fbank (25 ms
hamming windows every 10 ms), per-utterance mean/variance normalisation, every second frame kept
(20 ms), a linear projection to 768 and a 12-layer post-LN wav2vec 2.0 transformer encoder with a
convolutional position embedding (128 taps, 16 groups). Its file holds only ``{"model": weights}``
(fairseq names: ``post_extract_proj.*``, ``encoder.pos_conv.0.*``, ``encoder.layers.N.self_attn.*``,
...); the architecture is read from the weight shapes, with 64-dim attention heads and post-LN as
released. The encoder modules are transformers' ``Wav2Vec2Encoder``, so the state dict uses its
names (``encoder.layers.N.attention.q_proj.weight``, ...).

Presets (random initialisation from the stage seed):

- ``tiny``: release-shaped, 3 layers of width 96 (4 heads, FFN 384), position conv 32 / 8 groups;
  0.38 M parameters, 20 ms frames.
- ``small``: the demo's fbank-input model: two 10 ms frames *stacked* into one 160-dim 20 ms frame,
  a linear map to 192, 4 pre-LN layers (4 heads, FFN 768), position conv 64 / 16 groups; 1.96 M
  parameters.
- ``base``: the release architecture (85 M parameters).
"""

from __future__ import annotations

from typing import Any, Literal

from harness import hookimpl
from harness.api import DeferredUpstreamPlugin, SourceParams, UpstreamPlugin


class Decoar2Params(SourceParams):
    preset: Literal["tiny", "small", "base"] | None = None


class Decoar2Plugin(DeferredUpstreamPlugin[Decoar2Params]):
    name = "decoar2"
    version = "1"
    summary = "DeCoAR 2.0 (fbank input) from the release .pt, a harness folder or a preset (tiny, small, base)"

    def implementation(self) -> UpstreamPlugin[Any]:
        from plugins.upstreams._decoar2_model import Decoar2Builder

        return Decoar2Builder()


@hookimpl
def harness_register_upstream(registry):
    registry.add(Decoar2Plugin)
