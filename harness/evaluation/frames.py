"""Frames for the downstreams that train nothing (ABX, QbE): the shared cache, a layer's check, the
hidden states per utterance."""

from __future__ import annotations

from typing import Any

import torch

from harness.core.errors import HarnessError
from harness.core.model_types import UpstreamModel
from harness.core.stage import StageContext
from harness.data import audio
from harness.evaluation.probe import feature_cache_for
from harness.evaluation.probe_settings import ProbeSettings
from harness.models.feature_cache import FeatureCache, FrameStore, to_frame_dtype
from harness.models.inference import batched_forward


def check_layer(layer: int | str, upstream: UpstreamModel, task: str) -> None:
    """One sentence when ``layer`` (an index, negative from the end, or ``all``) is not one of the upstream's."""
    n = upstream.num_hidden_states
    if layer != "all" and not -n <= int(layer) < n:
        raise HarnessError(f"{task} layer {layer} does not exist: the upstream has {n} hidden states.")


def frame_cache(
    upstream: UpstreamModel, ctx: StageContext, max_frame_gb: float, extract_precision: str
) -> FeatureCache:
    """The shared feature cache of ``upstream`` for a stage that reads frames and trains nothing (the
    upstream in eval mode)."""
    upstream.eval()
    settings = ProbeSettings(steps=1, lr=1.0, batch_size=1, max_frame_gb=max_frame_gb,
                             extract_precision=extract_precision)
    return feature_cache_for(upstream, ctx, settings)


def utterance_states(
    upstream: UpstreamModel, rows: list[dict[str, Any]], store: FrameStore | None, precision: str
) -> dict[str, torch.Tensor]:
    """Per utterance the L×T×D hidden states (float16 values) of ``rows``: from the frame cache's ``store``,
    or from the upstream where the frames were past the cache's budget."""
    if store is not None:
        return {r["id"]: store.states(i) for i, r in enumerate(rows)}
    out = {}
    wavs = [audio.load_utterance(r) for r in rows]
    for i, states in batched_forward(upstream, wavs, max_seconds=60.0, precision=precision):
        out[rows[i]["id"]] = to_frame_dtype(torch.stack(states)).float()
    return out
