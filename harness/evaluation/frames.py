"""A layer's frames per utterance for the downstreams that train nothing (ABX, QbE)."""

from __future__ import annotations

from typing import Any

import torch

from harness.core.model_types import UpstreamModel
from harness.data import audio
from harness.models.feature_cache import FrameStore, to_frame_dtype
from harness.models.inference import batched_forward


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
