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

import logging
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn
from transformers import HubertConfig, HubertModel

from harness import hookimpl
from harness.api import PretrainingHead, SourceParams, SpeechTransformer, SpeechTransformerPlugin, preset_configs

log = logging.getLogger("harness.upstreams.hubert")

PRESETS: dict[str, dict[str, Any]] = preset_configs(feat_proj_layer_norm=True)


class HubertParams(SourceParams):
    preset: Literal["tiny", "base"] | None = None


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


class HubertPlugin(SpeechTransformerPlugin[HubertParams]):
    name = "hubert"
    version = "1"
    summary = "HuBERT from a fairseq .pt, a transformers folder or a preset (tiny, base)"
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


@hookimpl
def harness_register_upstream(registry):
    registry.add(HubertPlugin)
