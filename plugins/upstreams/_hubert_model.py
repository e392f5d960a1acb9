"""The models of the ``hubert`` upstream (:mod:`plugins.upstreams.hubert`): imported when a model is
built, so registering the plugin loads neither torch nor transformers."""

from __future__ import annotations

import logging
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import HubertConfig, HubertModel

from harness.api import PretrainingHead, SourceParams, SpeechTransformer, SpeechTransformerPlugin, preset_configs

log = logging.getLogger("harness.upstreams.hubert")

PRESETS: dict[str, dict[str, Any]] = preset_configs(feat_proj_layer_norm=True)


class HubertUpstream(SpeechTransformer):
    family = "hubert"
    hf_config_cls = HubertConfig
    hf_model_cls = HubertModel
    extra_fields = ("feat_proj_layer_norm",)

    def __init__(self, config: dict[str, Any]):
        super().__init__(config)
        codebook = config.get("codebook")  # [entries, dimension] of the pre-training codebook, or None
        self.codebook_size = int(codebook[0]) if codebook else 0
        if codebook:
            entries, dim = (int(v) for v in codebook)
            self.final_proj = nn.Linear(self.hidden_size, dim)
            self.label_embs = nn.Parameter(torch.zeros(entries, dim))

    def config(self) -> dict[str, Any]:
        out = super().config()
        if self.codebook_size:
            out["codebook"] = list(self.label_embs.shape)
        return out

    @torch.no_grad()
    def pseudo_labels(self, wavs: torch.Tensor, wav_lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """B×T codebook indices of every frame and the frame counts: argmax over the codebook of the
        cosine similarity between ``final_proj`` of the last hidden state and each entry."""
        if not self.codebook_size:
            raise RuntimeError("this HuBERT model has no pre-training codebook")
        out = self(wavs, wav_lengths)
        projected = F.normalize(self.final_proj(out.hidden_states[-1].float()), dim=-1)
        similarity = projected @ F.normalize(self.label_embs.float(), dim=-1).T
        return similarity.argmax(dim=-1), out.lengths


class HubertBuilder(SpeechTransformerPlugin[SourceParams]):
    """Builds, rebuilds and exports the models of the registered ``hubert`` plugin."""

    name = "hubert"
    model_cls = HubertUpstream
    hf_model_type = "hubert"
    presets = PRESETS

    def fairseq_extra_config(self) -> dict[str, Any]:
        return {"feat_proj_layer_norm": True}

    def fairseq_pretraining_head(self, state: dict[str, torch.Tensor]) -> PretrainingHead:
        weight, codebook = state.get("final_proj.weight"), state.get("label_embs_concat")
        if weight is None or codebook is None:
            return {}, {}
        if weight.shape[0] != codebook.shape[1]:
            log.info("final_proj maps to %d dimensions for codebook entries of %d (untied label sets): "
                     "the pre-training head is not kept", weight.shape[0], codebook.shape[1])
            return {}, {}
        bias = state.get("final_proj.bias", torch.zeros(weight.shape[0]))
        head = {"final_proj.weight": weight, "final_proj.bias": bias, "label_embs": codebook}
        return {"codebook": list(codebook.shape)}, head
