"""Upstream ``hubert``: HuBERT (transformers modules) from fairseq, transformers or harness files.

fairseq's HuBERT always layer-normalises the CNN output before the projection, so checkpoints from
fairseq set ``feat_proj_layer_norm``.

A fairseq checkpoint also keeps its pre-training head: ``final_proj`` (last hidden state -> codebook
space) and the codebook ``label_embs_concat``. :meth:`HubertUpstream.pseudo_labels` turns them into
frame targets (Speech-FT Appendix E: the codebook entry of highest cosine similarity, as HuBERT's own
logits rank them), which ``continued_pretraining`` uses with ``targets: codebook``. transformers
folders carry no such head. A checkpoint with several untied label sets is loaded without it.

Presets (random initialisation from the stage seed):

- ``tiny``: the same shape as wav2vec2's ``tiny`` (0.39 M parameters).
- ``base``: the published Base architecture (``hubert_base_ls960.pt``), 94.4 M parameters.
"""

from __future__ import annotations

from typing import Any, Literal

from harness import hookimpl
from harness.api import DeferredUpstreamPlugin, SourceParams, UpstreamPlugin


class HubertParams(SourceParams):
    preset: Literal["tiny", "base"] | None = None


class HubertPlugin(DeferredUpstreamPlugin[HubertParams]):
    name = "hubert"
    version = "1"
    summary = "HuBERT from a fairseq .pt, a transformers folder or a preset (tiny, base)"
    export_formats = ("hf",)
    hf_model_type = "hubert"  # the transformers folders it reads (``harness extract`` picks it by this)

    def implementation(self) -> UpstreamPlugin[Any]:
        from plugins.upstreams._hubert_model import HubertBuilder

        return HubertBuilder()


@hookimpl
def harness_register_upstream(registry):
    registry.add(HubertPlugin)
