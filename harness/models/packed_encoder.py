"""The encoder's layers on the valid frames only (attention mode ``packed``), equal to the padded path.

The padded path runs every layer on all B×T frames and hands SDPA a padding mask: the padding's
share of every matrix product is spent for nothing. The packed path gathers the N valid frames into
one N×D sequence (:class:`Packing`), so that projections, feed-forward and layer norms run on N rows,
and attention runs within each utterance, one plain SDPA call per utterance.

Where it pays: on the CPU, with batches that carry padding (HuBERT Base, 6 utterances of 2–6 s with
33 % padding, 2 threads: 5.1 s a step against 6.9 s). Where it does not: on an H200 (torch 2.11,
HuBERT Base, 160-second batches with 2.6 % padding) the packed layers ran 3.5× slower than the padded
ones, forward+backward and extraction alike, with torch's jagged nested-tensor SDPA, which took its
math fallback; so ``auto`` is the padded path on every device and ``packed`` is opt-in.

The layer forwards below are transformers' ``Wav2Vec2EncoderLayer`` (post-LN) and
``Wav2Vec2EncoderLayerStableLayerNorm`` (pre-LN) written on N×D rows with the same modules; the
tests hold them equal to transformers' own forward on padded batches. In training, dropout draws
its masks over N×D instead of B×T×D values, so a packed run is equal in distribution, not bit for
bit, to a padded one.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from harness.models.upstream_speed import resolve_auto

ATTENTION_MODES: tuple[str, ...] = ("auto", "padded", "packed")


def resolve_attention(mode: str, device: torch.device) -> str:
    """The concrete path (``padded`` or ``packed``) of ``mode`` on ``device``: ``auto`` is ``padded`` on
    every device (see the module docstring)."""
    return resolve_auto("attention", mode, ATTENTION_MODES, device, cuda="padded", other="padded")


@dataclass(frozen=True)
class Packing:
    """Where the valid frames of a padded B×T batch sit once gathered into N rows."""

    index: torch.Tensor  # N positions in the flattened B·T frames
    bounds: tuple[int, ...]  # B+1 cumulative frame counts: utterance i is rows bounds[i]:bounds[i+1]
    batch: int
    frames: int

    @classmethod
    def from_mask(cls, mask: torch.Tensor) -> Packing:
        """The packing of a B×T mask that is True on the valid frames (valid frames come first); reads
        the counts back from the mask's device (one sync on a GPU)."""
        return cls.from_counts(mask.sum(dim=1).tolist(), mask.shape[1], mask.device)

    @classmethod
    def from_counts(cls, counts: list[int], frames: int, device: torch.device) -> Packing:
        """The packing of utterances of ``counts`` valid frames (host integers) padded to ``frames``:
        built on the host and copied without waiting for the device."""
        counts = [min(max(int(n), 0), frames) for n in counts]
        bounds = (0, *itertools.accumulate(counts))
        index = torch.cat([torch.arange(n) + i * frames for i, n in enumerate(counts)]) if counts else torch.zeros(0)
        return cls(index.long().to(device, non_blocking=True), bounds, len(counts), frames)

    def pack(self, x: torch.Tensor) -> torch.Tensor:
        """B×T×D -> N×D: the valid frames, utterance after utterance."""
        return x.reshape(self.batch * self.frames, -1).index_select(0, self.index)

    def unpack(self, rows: torch.Tensor) -> torch.Tensor:
        """N×D -> B×T×D with zeros on the padding (differentiable)."""
        out = rows.new_zeros(self.batch * self.frames, rows.shape[-1])
        return out.index_copy(0, self.index, rows).view(self.batch, self.frames, -1)


def attention_within_utterances(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, packing: Packing, dropout: float, scale: float
) -> torch.Tensor:
    """Softmax attention of N×H×d rows, each utterance attending to itself only (one SDPA call per
    utterance, without a mask); N×H×d out."""
    q, k, v = (t.transpose(0, 1)[None] for t in (q, k, v))  # 1×H×N×d: 4-D, for the CPU's flash kernel
    pieces = [
        F.scaled_dot_product_attention(q[:, :, a:b], k[:, :, a:b], v[:, :, a:b], dropout_p=dropout, scale=scale)
        for a, b in zip(packing.bounds[:-1], packing.bounds[1:])
    ]
    return torch.cat(pieces, dim=2)[0].transpose(0, 1)


def packed_self_attention(attention: torch.nn.Module, x: torch.Tensor, packing: Packing) -> torch.Tensor:
    """transformers' ``Wav2Vec2Attention`` on N×D packed rows."""
    rows, width = x.shape
    heads = attention.num_heads
    q, k, v = (proj(x).view(rows, heads, -1) for proj in (attention.q_proj, attention.k_proj, attention.v_proj))
    dropout = attention.dropout if attention.training else 0.0
    out = attention_within_utterances(q, k, v, packing, dropout, attention.scaling)
    return attention.out_proj(out.reshape(rows, width))


def packed_layer(layer: torch.nn.Module, x: torch.Tensor, packing: Packing, stable_layer_norm: bool) -> torch.Tensor:
    """One transformers encoder layer (pre-LN when ``stable_layer_norm``, else post-LN) on N×D rows."""
    if stable_layer_norm:
        h = x + layer.dropout(packed_self_attention(layer.attention, layer.layer_norm(x), packing))
        h = h + layer.feed_forward(layer.final_layer_norm(h))
        adapter = getattr(layer, "adapter_layer", None)
        return h if adapter is None else h + adapter(h)
    h = layer.layer_norm(x + layer.dropout(packed_self_attention(layer.attention, x, packing)))
    return layer.final_layer_norm(h + layer.feed_forward(h))
