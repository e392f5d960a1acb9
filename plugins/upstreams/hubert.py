"""Upstream ``hubert``: HuBERT (transformers modules) from fairseq, transformers or harness files.

fairseq's HuBERT always layer-normalises the CNN output before the projection, so checkpoints from
fairseq set ``feat_proj_layer_norm``. Presets (random initialisation from the stage seed):

- ``tiny``: the same shape as wav2vec2's ``tiny`` (0.39 M parameters).
- ``base``: the published Base architecture (``hubert_base_ls960.pt``), 94.4 M parameters.
"""

from __future__ import annotations

from typing import Any, Literal

from transformers import HubertConfig, HubertModel

from harness import hookimpl
from harness.hf_speech import SpeechTransformer, SpeechTransformerPlugin
from harness.speech_encoder import SourceParams

_COMMON: dict[str, Any] = {
    "conv_kernel": [10, 3, 3, 3, 3, 2, 2],
    "conv_stride": [5, 2, 2, 2, 2, 2, 2],
    "conv_bias": False,
    "feat_extract_norm": "group",
    "feat_proj_layer_norm": True,
    "hidden_act": "gelu",
    "do_stable_layer_norm": False,
    "hidden_dropout": 0.1,
    "attention_dropout": 0.1,
    "activation_dropout": 0.0,
    "feat_proj_dropout": 0.1,
    "layerdrop": 0.05,
    "layer_norm_eps": 1e-5,
    "normalize": False,
}

PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {
        **_COMMON,
        "conv_dim": [32] * 7,
        "hidden_size": 96,
        "num_hidden_layers": 3,
        "intermediate_size": 384,
        "num_attention_heads": 4,
        "num_conv_pos_embeddings": 32,
        "num_conv_pos_embedding_groups": 8,
    },
    "base": {
        **_COMMON,
        "conv_dim": [512] * 7,
        "hidden_size": 768,
        "num_hidden_layers": 12,
        "intermediate_size": 3072,
        "num_attention_heads": 12,
        "num_conv_pos_embeddings": 128,
        "num_conv_pos_embedding_groups": 16,
    },
}


class HubertParams(SourceParams):
    preset: Literal["tiny", "base"] | None = None


class HubertUpstream(SpeechTransformer):
    family = "hubert"
    hf_config_cls = HubertConfig
    hf_model_cls = HubertModel
    extra_fields = ("feat_proj_layer_norm",)


class HubertPlugin(SpeechTransformerPlugin):
    name = "hubert"
    version = "1"
    summary = "HuBERT from a fairseq .pt, a transformers folder or a preset (tiny, base)"
    Params = HubertParams
    model_cls = HubertUpstream
    hf_model_type = "hubert"
    presets = PRESETS

    def fairseq_extra_config(self) -> dict[str, Any]:
        return {"feat_proj_layer_norm": True}


@hookimpl
def harness_register_upstream(registry):
    registry.add(HubertPlugin)
