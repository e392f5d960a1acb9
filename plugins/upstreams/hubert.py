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
from harness.hf_speech import SpeechTransformer, SpeechTransformerPlugin, preset_configs
from harness.speech_encoder import SourceParams

PRESETS: dict[str, dict[str, Any]] = preset_configs(feat_proj_layer_norm=True)


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
