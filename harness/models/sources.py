"""Where a wav2vec 2.0-family upstream comes from, without torch: :class:`SourceParams` (a checkpoint
or a preset) and the preset architectures. Upstream plugins declare their parameters with these;
the models themselves (:mod:`harness.models.hf_speech`, :mod:`harness.models.speech_encoder`) load
torch and transformers when a model is built."""

from __future__ import annotations

from typing import Any

from pydantic import model_validator
from pydantic_core import PydanticCustomError

from harness.core.interfaces import InputPath, PluginParams

__all__ = ["BASE_CNN", "CNN_CHANNELS", "ENCODER_SHAPES", "ENCODER_TRAINING", "SourceParams", "preset_configs"]

#: Transformer shapes of the presets shared by the wav2vec 2.0 family (transformers' config names).
ENCODER_SHAPES: dict[str, dict[str, Any]] = {
    "tiny": {"hidden_size": 96, "num_hidden_layers": 3, "intermediate_size": 384, "num_attention_heads": 4,
             "num_conv_pos_embeddings": 32, "num_conv_pos_embedding_groups": 8},
    "base": {"hidden_size": 768, "num_hidden_layers": 12, "intermediate_size": 3072, "num_attention_heads": 12,
             "num_conv_pos_embeddings": 128, "num_conv_pos_embedding_groups": 16},
}  # fmt: skip

#: The released Base models' encoder settings: post-LN, GELU, their dropouts and layer drop.
ENCODER_TRAINING: dict[str, Any] = {
    "hidden_act": "gelu",
    "do_stable_layer_norm": False,
    "hidden_dropout": 0.1,
    "attention_dropout": 0.1,
    "activation_dropout": 0.0,
    "feat_proj_dropout": 0.1,
    "layerdrop": 0.05,
    "layer_norm_eps": 1e-5,
}

#: wav2vec 2.0 and HuBERT's seven-block CNN (5·2⁶ = 320 samples per frame: 20 ms at 16 kHz).
BASE_CNN: dict[str, Any] = {
    "conv_kernel": [10, 3, 3, 3, 3, 2, 2],
    "conv_stride": [5, 2, 2, 2, 2, 2, 2],
    "conv_bias": False,
    "feat_extract_norm": "group",
}
CNN_CHANNELS = {"tiny": 32, "base": 512}

def preset_configs(**overrides: Any) -> dict[str, dict[str, Any]]:
    """The ``tiny`` and ``base`` presets of a wav2vec 2.0-family model, ``overrides`` applied to both."""
    return {
        name: {**BASE_CNN, "conv_dim": [CNN_CHANNELS[name]] * 7, **ENCODER_TRAINING, **shape, "normalize": False,
               **overrides}
        for name, shape in ENCODER_SHAPES.items()
    }  # fmt: skip


class SourceParams(PluginParams):
    """Where an upstream's weights come from: exactly one of ``checkpoint`` or ``preset``.

    ``checkpoint``: a harness model folder (or its ``model.safetensors``), a transformers folder
    (``save_pretrained`` layout), or a released PyTorch checkpoint (fairseq ``.pt``, the DeCoAR 2.0
    file), loaded without running code. ``preset``: a named architecture, randomly initialised
    from the stage seed.
    """

    checkpoint: InputPath | None = None
    preset: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> SourceParams:
        if (self.checkpoint is None) == (self.preset is None):
            raise PydanticCustomError(
                "source", "give exactly one of checkpoint (a file or folder) or preset (a named architecture)"
            )
        return self
