"""The models of the ``wav2vec2`` upstream (:mod:`plugins.upstreams.wav2vec2`): imported when a model
is built, so registering the plugin loads neither torch nor transformers."""

from __future__ import annotations

from typing import Any

from transformers import Wav2Vec2Config, Wav2Vec2Model

from harness.api import SourceParams, SpeechTransformer, SpeechTransformerPlugin, preset_configs

PRESETS: dict[str, dict[str, Any]] = preset_configs()


class Wav2Vec2Upstream(SpeechTransformer):
    family = "wav2vec2"
    hf_config_cls = Wav2Vec2Config
    hf_model_cls = Wav2Vec2Model


class Wav2Vec2Builder(SpeechTransformerPlugin[SourceParams]):
    """Builds, rebuilds and exports the models of the registered ``wav2vec2`` plugin."""

    name = "wav2vec2"
    model_cls = Wav2Vec2Upstream
    hf_model_type = "wav2vec2"
    presets = PRESETS
