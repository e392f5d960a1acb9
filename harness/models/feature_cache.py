"""Hidden states of one upstream on one corpus, computed once and shared by every downstream.

The upstream is frozen during evaluation, so s3prl's habit of re-running it on every training step
of every task only repeats work. Two caches, both under one folder per (model, corpus) stage pair
(``ctx.cache_dir("features", model_key, corpus_key)``):

- **pooled** (SID, ER): per utterance, the ``[L, D]`` time means over valid frames of the
  layer-normed hidden states, float32. A head that starts with mean pooling and a linear map needs
  nothing else (see :mod:`harness.models.featurizer`), so training on them is exact.
- **frames** (PR, SF, ASR, ABX): per utterance, every hidden state ``[L, T, D]`` as float16 (float32
  where a value exceeds the float16 range), memory-mapped from ``.npy`` shards, while the total
  stays under ``max_frame_bytes``; beyond it :meth:`FeatureCache.frames` returns None and the
  caller runs the upstream on the fly. Frame features are defined as the float16-rounded hidden
  states in both cases, so cached and on-the-fly training give the same numbers.

One upstream pass over an utterance fills both caches, whichever task asks first. Hidden states
come from :func:`harness.models.inference.batched_forward` (length-sorted batches, outputs
trimmed to each utterance's valid frames). Shards are written atomically (temporary file, then
rename); concurrent stages at worst compute an utterance twice.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from harness.core.model_types import UpstreamModel
from harness.core.threads import torch_threads
from harness.data import audio
from harness.models.featurizer import layer_norm
from harness.models.inference import batched_forward

log = logging.getLogger("harness.models.feature_cache")

FP16_MAX = 65000.0
#: upstreams below this many parameters run on one CPU thread (see :mod:`harness.core.threads`)
SMALL_UPSTREAM = 5_000_000


def to_frame_dtype(states: torch.Tensor) -> torch.Tensor:
    """Frame features as stored: float16 unless a value would overflow it."""
    return states.half() if float(states.abs().max()) < FP16_MAX else states.float()


def pooled_means(states: Sequence[torch.Tensor]) -> torch.Tensor:
    """``[L, D]`` time means of the layer-normed hidden states (each T×D, valid frames only)."""
    return torch.stack([layer_norm(h).mean(dim=0) for h in states])


def _atomic_save(path: Path, write) -> None:  # noqa: ANN001 - a callable taking the temporary path
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    write(tmp)
    os.replace(tmp, path)


def _save_npy(path: Path, arr: np.ndarray) -> None:
    with open(path, "wb") as f:  # a file object: np.save would append ".npy" to a path
        np.save(f, arr)


def _shard_name(ids: Sequence[str]) -> str:
    return hashlib.sha1("\n".join(ids).encode()).hexdigest()[:16]


class FeatureCache:
    """Cached hidden states of ``upstream`` for manifest rows (keyed by utterance ``id``)."""

    def __init__(
        self,
        upstream: UpstreamModel,
        root: Path | None,
        max_frame_bytes: float = 4e9,
        batch_seconds: float = 60.0,
        device: torch.device | None = None,
        precision: str = "fp32",
    ):
        self.upstream = upstream
        self.precision = precision  # see harness.models.inference.extraction_precision
        self.root = Path(root) if root is not None else None
        self.max_frame_bytes = max_frame_bytes
        self.batch_seconds = batch_seconds
        self.device = device
        self._pooled: dict[str, torch.Tensor] = {}
        self._frames: dict[str, tuple[np.ndarray, int, int]] = {}  # id -> (shard array, start, length)
        self.upstream_seconds = 0.0  # audio seconds run through the upstream by this object
        if self.root is not None:
            self.root.mkdir(parents=True, exist_ok=True)
            self._load_index()

    # ---------------------------------------------------------------- reading what is there

    def _load_index(self) -> None:
        assert self.root is not None
        for path in sorted(self.root.glob("pooled-*.pt")):
            data = torch.load(path, map_location="cpu", weights_only=True)
            for i, uid in enumerate(data["ids"]):
                self._pooled.setdefault(uid, data["means"][i])
        for path in sorted(self.root.glob("frames-*.json")):
            arr_path = path.with_suffix(".npy")
            if not arr_path.is_file():
                continue
            index = json.loads(path.read_text())
            arr = np.load(arr_path, mmap_mode="r")
            for uid, (start, length) in index["items"].items():
                self._frames.setdefault(uid, (arr, int(start), int(length)))

    def frame_bytes(self) -> int:
        """Bytes of frames cached on disk."""
        return sum(p.stat().st_size for p in self.root.glob("frames-*.npy")) if self.root is not None else 0

    # ---------------------------------------------------------------- computing

    def _forward(self, rows: list[dict[str, Any]]):  # noqa: ANN202 - yields (row index, states)
        wavs = _LazyWaves(rows)
        lengths = [int(round(float(r["duration"]) * audio.SAMPLE_RATE)) for r in rows]
        self.upstream_seconds += sum(float(r["duration"]) for r in rows)
        device = self.device or torch.device("cpu")
        small = device.type == "cpu" and sum(p.numel() for p in self.upstream.parameters()) < SMALL_UPSTREAM
        with torch_threads(1 if small else None):
            yield from batched_forward(
                self.upstream, wavs, max_seconds=self.batch_seconds, lengths=lengths, device=self.device,
                precision=self.precision,
            )

    def estimate_frame_bytes(self, rows: list[dict[str, Any]]) -> int:
        """Bytes the float16 frames of ``rows`` would take."""
        samples = torch.tensor([int(round(float(r["duration"]) * audio.SAMPLE_RATE)) for r in rows])
        frames = int(self.upstream.frame_lengths(samples).sum()) if len(rows) else 0
        return frames * self.upstream.num_hidden_states * self.upstream.hidden_size * 2

    def pooled(self, rows: list[dict[str, Any]]) -> torch.Tensor:
        """``N×L×D`` pooled features of ``rows`` (computed for the missing ones, then cached)."""
        missing = list({r["id"]: r for r in rows if r["id"] not in self._pooled}.values())
        if missing:
            self._compute(missing)
        return torch.stack([self._pooled[r["id"]] for r in rows])

    def frames(self, rows: list[dict[str, Any]]) -> FrameStore | None:
        """Cached frames of ``rows`` (computing the missing ones), or None past the size budget."""
        missing = list({r["id"]: r for r in rows if r["id"] not in self._frames}.values())
        if missing:
            if not self._frames_fit(missing):
                return None
            self._compute(missing)
        return FrameStore([self._frames[r["id"]] for r in rows])

    def _frames_fit(self, rows: list[dict[str, Any]]) -> bool:
        return self.root is not None and self.frame_bytes() + self.estimate_frame_bytes(rows) <= self.max_frame_bytes

    def _compute(self, rows: list[dict[str, Any]]) -> None:
        """One upstream pass over ``rows`` fills both caches: the pooled means always, the frames
        while they fit the budget (so a pooled task after a frame task, or the other way round,
        never runs the upstream again)."""
        keep_frames = [r for r in rows if r["id"] not in self._frames]
        keep_frames = keep_frames if keep_frames and self._frames_fit(keep_frames) else []
        wanted = {r["id"] for r in keep_frames}
        states: dict[str, torch.Tensor] = {}
        means: dict[str, torch.Tensor] = {}
        for i, st in self._forward(rows):
            uid = rows[i]["id"]
            means[uid] = pooled_means(st)
            if uid in wanted:
                states[uid] = torch.stack(st)
        new_means = {uid: m for uid, m in means.items() if uid not in self._pooled}
        self._pooled.update(new_means)
        if self.root is not None and new_means:
            ids = list(new_means)
            stacked = torch.stack([new_means[u] for u in ids])
            path = self.root / f"pooled-{_shard_name(ids)}.pt"
            _atomic_save(path, lambda tmp: torch.save({"ids": ids, "means": stacked}, tmp))
        if states:
            self._write_frames([r["id"] for r in keep_frames], [states[r["id"]] for r in keep_frames])

    def _write_frames(self, ids: list[str], per_item: list[torch.Tensor]) -> None:
        """Store L×T×D states of ``ids`` as one float16 shard plus its index."""
        assert self.root is not None
        lengths = [int(s.shape[1]) for s in per_item]
        arr = to_frame_dtype(torch.cat(per_item, dim=1)).numpy()
        name = f"frames-{_shard_name(ids)}"
        npy, index_path = self.root / f"{name}.npy", self.root / f"{name}.json"
        _atomic_save(npy, lambda tmp: _save_npy(tmp, arr))
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).tolist()
        items = {uid: [int(s), int(n)] for uid, s, n in zip(ids, starts, lengths, strict=True)}
        _atomic_save(index_path, lambda tmp: Path(tmp).write_text(json.dumps({"items": items})))
        mm = np.load(npy, mmap_mode="r")
        for uid, (s, n) in items.items():
            self._frames[uid] = (mm, s, n)


class FrameStore:
    """Frames of a list of utterances, read from the memory-mapped shards on demand."""

    def __init__(self, entries: list[tuple[np.ndarray, int, int]]):
        self.entries = entries
        self.lengths = [n for _, _, n in entries]

    def __len__(self) -> int:
        return len(self.entries)

    def states(self, i: int) -> torch.Tensor:
        """``L×T×D`` float tensor (the stored float16 values) of utterance ``i``."""
        arr, start, n = self.entries[i]
        return torch.from_numpy(np.array(arr[:, start : start + n], dtype=np.float32))


class _LazyWaves:
    """Waveforms of manifest rows, read when indexed (so batching needs no audio)."""

    def __init__(self, rows: list[dict[str, Any]]):
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> np.ndarray:
        return audio.load_utterance(self.rows[i])
