"""Continued pre-training by masked prediction of pseudo-labels (Speech-FT Section 4.2, Appendix E).

A new linear classifier on the last hidden state predicts each masked frame's unit with
cross-entropy (the paper's simplified HuBERT loss: no learnable codebook). Targets:

- ``codebook``: the upstream's own pre-training projection and codebook (Appendix E), from an
  upstream with a nonzero ``codebook_size`` and ``pseudo_labels(wavs, wav_lengths) -> (B×T units,
  lengths)`` (HuBERT loaded from its fairseq checkpoint);
- ``kmeans``: k-means units of hidden state ``layer`` of θ0 (other families);
- ``mfcc``: k-means units of MFCC + Δ + ΔΔ, HuBERT's first iteration: pre-training from scratch;
- ``auto``: ``codebook`` where available, else ``kmeans``.

Targets come from θ0 once, before training (cached in the stage's work folder, so a resumed run
reuses them). Masking follows HuBERT's span scheme (``mask_prob`` of the frames start a span of
``mask_length`` frames). ``mask_fill``:

- ``embedding``: the masked frames' projected CNN features become the model's mask embedding, as
  HuBERT pre-trains (the paper follows "the masking configuration of the original HuBERT"); the
  embedding itself stays as loaded;
- ``noise`` / ``zeros``: the masked *waveform* samples become white noise at the utterance's RMS level
  (which keeps per-utterance normalisation, as in fbank front ends, sane) or zeros: for any upstream;
- ``auto`` (default): ``embedding`` where the upstream masks frames (HuBERT, wav2vec 2.0), else ``noise``.

The loss counts masked frames, plus unmasked ones with weight ``unmasked_weight`` (HuBERT: 0).
Stable fine-tuning applies as in every scenario (pre-training from scratch sets ``beta: 0``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from harness import hookimpl
from harness.api import FinetunePlugin, FinetuneResult, PreparedCorpus, StableFTParams, StageContext

if TYPE_CHECKING:
    from harness.api import UpstreamModel


class ContinuedPretrainingParams(StableFTParams):
    corpus: str | None = Field(None, description="the recipe corpus to pre-train on")
    targets: Literal["auto", "codebook", "kmeans", "mfcc"] = "auto"
    layer: int | None = Field(None, description="hidden state clustered by `kmeans` (default: two thirds deep)")
    n_clusters: int = Field(100, ge=2)
    kmeans_frames: int = Field(100_000, ge=100, description="frames sampled to fit k-means")
    kmeans_iterations: int = Field(30, ge=1)
    mask_prob: float = Field(0.8, gt=0, le=1, description="HuBERT's mask_prob: share of frames starting a span")
    mask_length: int = Field(10, ge=1, description="span length in frames")
    mask_fill: Literal["auto", "embedding", "noise", "zeros"] = Field(
        "auto", description="what replaces masked frames: the mask embedding, or noise or zeros in the audio")
    unmasked_weight: float = Field(0.0, ge=0, description="weight of the loss on unmasked frames (HuBERT: 0)")
    splits: list[str] = Field(default_factory=lambda: ["train"], description="splits pre-trained on")


class ContinuedPretraining(FinetunePlugin[ContinuedPretrainingParams]):
    name = "continued_pretraining"
    version = "1"
    summary = "Masked prediction of pseudo-labels (own codebook, layer k-means, or MFCC k-means from scratch)"

    def finetune(
        self,
        upstream: UpstreamModel,
        corpora: dict[str, PreparedCorpus],
        params: ContinuedPretrainingParams,
        ctx: StageContext,
    ) -> FinetuneResult:
        from plugins.finetune._pretraining import run  # torch: loaded when the scenario trains

        return run(upstream, corpora, params, ctx)


@hookimpl
def harness_register_finetune(registry):
    registry.add(ContinuedPretraining)
