"""The shared downstream driver: a frozen upstream, the weighted-sum featurizer and a task head.

:func:`probe_corpus` takes a :class:`harness.core.interfaces.Task`, gets features (from the feature
cache, or from the upstream on the fly), trains the featurizer weights and the head with
:func:`harness.training.loop.fit` on the task's ``train`` split, keeps the weights best on ``dev``, and
reports the test metrics, per-item records and the learned layer weights as an
:class:`harness.core.interfaces.EvalResult`. Corpora with folds (``meta["folds"]``, a ``fold`` per row)
are evaluated fold by fold (test = one fold, dev = a seeded 20 % of the rest, as s3prl's IEMOCAP
recipe) and the metric is the mean over folds.

:class:`harness.evaluation.probed_downstream.ProbedDownstream` is the downstream plugin built on it;
its parameters and settings live in :mod:`harness.evaluation.probe_settings` (no torch there, so
registering downstreams does not import it).

Feature sources, chosen per task: ``pooled`` (cached per-layer time means; tasks with
``pooled = True``), ``frames`` (cached float16 frames within the size budget) or ``upstream`` (the
upstream runs on every batch: the fallback past the budget, and ``cache: off``). On a CPU, heads
under 2 M parameters train on one thread, the upstream in the loop included (see
:mod:`harness.core.threads`).

On CUDA, cached features (pooled means and frames, of every split the probe trains and evaluates on)
are copied to device memory once, as stored (float16 frames), and each batch is gathered, layer-normed
and padded there (:class:`_DeviceFrames`), when they take at most :data:`RESIDENT_SHARE` of the device's
free memory; past that, batches are built on the host and moved one at a time. Both give the same
numbers. Batches built on the host from cached frames are padded there and layer-normed where the
probe trains: on the host for a CPU probe, on the accelerator otherwise, so half the bytes (float16)
cross to it and the host does no arithmetic. They are built on a background thread a step ahead of
training (the fine-tuning loop's prefetcher; same batches, same order, same numbers): on the 2-core
CPU the demo's SF probe took 20.5–22.4 s instead of 25.4–26.3 s. Batches of the upstream run on the fly
never visit the host: its hidden states are rounded as the cache stores them, layer-normed and padded on
the upstream's device (:func:`_as_cached`). The stage's metrics extra records
``steps_per_second`` (optimizer steps over the time spent outside dev evaluation) and ``features_on``
(``device`` or ``host``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
from torch import nn

from harness.core.errors import CorpusError, StageError
from harness.core.interfaces import Batch, EvalResult, Task
from harness.core.manifest import PreparedCorpus
from harness.core.model_types import UpstreamModel
from harness.core.seeding import seed_torch
from harness.core.stage import StageContext
from harness.core.threads import torch_threads
from harness.data.batching import BalancedBatchSampler, FixedBatchSampler, SortedBucketSampler, SortedSliceSampler
from harness.data.waveforms import WaveformSet
from harness.evaluation.probe_settings import ProbeSettings, fold_splits, task_splits
from harness.evaluation.tasks import UtteranceTask
from harness.models.feature_cache import FP16_MAX, FeatureCache, FrameStore
from harness.models.featurizer import WeightedSum, layer_norm
from harness.models.inference import effective_precision, extraction_precision
from harness.models.upstream_speed import compile_module
from harness.training.loop import FitResult, fit
from harness.training.specaug import augmented

log = logging.getLogger("harness.evaluation.probe")

@dataclass
class ProbeResult:
    metrics: dict[str, float]
    records: list[dict[str, Any]]
    layer_weights: list[float]
    dev_metrics: dict[str, float]
    fit: FitResult
    source: str
    extra: dict[str, Any] = field(default_factory=dict)


class ProbeModel(nn.Module):
    """What trains: the featurizer's layer weights and the task head."""

    def __init__(self, task: Task, num_layers: int, hidden_size: int):
        super().__init__()
        self.task = task
        # frame states arrive layer-normed (see _pad_states), so the norm runs once per item, outside autograd
        self.featurizer = WeightedSum(num_layers, normalize=False)
        self.head = task.build_head(hidden_size)

    def batch(self, raw: _Raw) -> Batch:
        if raw.pooled is not None:
            return Batch(None, None, raw.rows, pooled=self.featurizer.forward_pooled(raw.pooled))
        assert raw.states is not None and raw.lengths is not None
        return Batch(self.featurizer(raw.states), raw.lengths, raw.rows)

    def loss(self, raw: _Raw) -> torch.Tensor:
        batch = self.batch(raw)
        return self.task.loss(self.head, augmented(self.task, batch) if self.training else batch)

    def predict(self, raw: _Raw) -> list[dict[str, Any]]:
        return self.task.predict(self.head, self.batch(raw))


@dataclass
class _Raw:
    """A batch before the featurizer: pooled B×L×D, or states L×B×T×D with lengths."""

    rows: list[dict[str, Any]]
    pooled: torch.Tensor | None = None
    states: torch.Tensor | None = None
    lengths: torch.Tensor | None = None
    #: ``states`` are the stored values, zero-padded: layer-normed once on the probe's device (see :func:`_to`)
    unnormed: bool = False


#: heads below this many parameters train on one CPU thread (see :mod:`harness.core.threads`)
SMALL_HEAD = 2_000_000
#: cached features go to the accelerator when they take at most this share of its free memory
RESIDENT_SHARE = 0.5


def _to(raw: _Raw, device: torch.device) -> _Raw:
    def move(t: torch.Tensor | None) -> torch.Tensor | None:
        return t.to(device, non_blocking=True) if t is not None else None

    states = move(raw.states)
    if raw.unnormed:  # a zero frame normalizes to zero, so padding first leaves the padding zero
        states = layer_norm(states)
    return _Raw(raw.rows, move(raw.pooled), states, move(raw.lengths))


def _pad_states(items: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """L×T×D tensors -> layer-normed L×B×Tmax×D (zero-padded) and lengths."""
    items = [layer_norm(s) for s in items]
    lengths = torch.tensor([int(s.shape[1]) for s in items], dtype=torch.long)
    n_layers, dim = items[0].shape[0], items[0].shape[2]
    out = torch.zeros(n_layers, len(items), int(lengths.max()), dim)
    for i, s in enumerate(items):
        out[:, i, : s.shape[1]] = s
    return out, lengths


def _pad_stored(store: FrameStore, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stored L×T×D frames of ``indices`` -> zero-padded L×B×Tmax×D in the stored dtype, and lengths."""
    entries = [store.entries[i] for i in indices]
    lengths = torch.tensor([n for _, _, n in entries], dtype=torch.long)
    first = entries[0][0]
    dtype = np.result_type(*(arr.dtype for arr, _, _ in entries))
    out = np.zeros((first.shape[0], len(entries), int(lengths.max()), first.shape[2]), dtype=dtype)
    for i, (arr, start, n) in enumerate(entries):
        out[:, i, :n] = arr[:, start : start + n]
    return torch.from_numpy(out), lengths


def _as_cached(rows: list[dict[str, Any]], hidden: Sequence[torch.Tensor], lengths: torch.Tensor,
               pooled: bool) -> _Raw:
    """A batch of the upstream's padded B×T×D ``hidden`` states, valid for ``lengths`` frames, as the
    cache hands it out, computed where the states are (no round trip to the host): the per-layer time
    means of the layer-normed frames, or the frames rounded as stored (float16, float32 for an utterance
    with a value past its range), layer-normed and zero-padded (L×B×Tmax×D). Equal to doing it utterance
    by utterance, since the layer norm is per frame."""
    n_max = int(lengths.max())
    states = torch.stack([h[:, :n_max] for h in hidden]).float()
    n = lengths.to(states.device)
    pad = (torch.arange(n_max, device=states.device).view(1, -1) >= n.view(-1, 1)).view(1, len(rows), n_max, 1)
    if pooled:  # the same per-layer means the cache holds (pooled_means), one utterance at a time
        normed = layer_norm(states)
        return _Raw(rows, pooled=torch.stack([normed[:, j, :k].mean(dim=1) for j, k in enumerate(lengths.tolist())]))
    fits = states.abs().masked_fill(pad, 0.0).amax(dim=(0, 2, 3)) < FP16_MAX
    rounded = states.half().float()
    stored = rounded if bool(fits.all()) else torch.where(fits.view(1, -1, 1, 1), rounded, states)
    return _Raw(rows, states=layer_norm(stored).masked_fill_(pad, 0.0), lengths=lengths.long())


class _DeviceFrames:
    """One split's cached frames in device memory (stored dtype, items end to end on the time axis);
    a batch is gathered, layer-normed and zero-padded there, equal to :func:`_pad_states` on the host."""

    def __init__(self, store: FrameStore, device: torch.device):
        first = store.entries[0][0]
        dtype = self.dtype(store)
        self.lengths = torch.tensor(store.lengths, dtype=torch.long)
        starts = torch.cumsum(self.lengths, 0) - self.lengths
        self.frames = torch.empty(first.shape[0], int(self.lengths.sum()), first.shape[2], dtype=dtype, device=device)
        for (arr, start, n), at in zip(store.entries, starts.tolist(), strict=True):
            # a copy where the cache's memory map is read-only, which torch cannot wrap
            item = torch.from_numpy(np.require(arr[:, start : start + n], requirements=["C", "W"]))
            self.frames[:, at : at + n].copy_(item.to(dtype))
        self.starts = starts.to(device)
        self.device = device

    def gather(self, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Layer-normed L×B×Tmax×D states of ``indices`` (zero-padded) on the device, and their lengths."""
        lengths = self.lengths[indices]
        idx = torch.tensor(indices, device=self.device)
        n = lengths.to(self.device).view(-1, 1)
        t = torch.arange(int(lengths.max()), device=self.device).view(1, -1)
        positions = self.starts[idx].view(-1, 1) + torch.minimum(t, (n - 1).clamp(min=0))
        states = layer_norm(self.frames[:, positions])
        return states.masked_fill((t >= n).unsqueeze(-1), 0.0), lengths

    @staticmethod
    def dtype(store: FrameStore) -> torch.dtype:
        """float16 as stored; float32 for all when any shard needed it (values past the float16 range)."""
        return torch.float16 if all(arr.dtype == np.float16 for arr, _, _ in store.entries) else torch.float32

    @classmethod
    def nbytes(cls, store: FrameStore) -> int:
        size = torch.empty((), dtype=cls.dtype(store)).element_size()
        return sum(size * arr.shape[0] * n * arr.shape[2] for arr, _, n in store.entries)


class _Source:
    """Raw batches of one split's rows from the cache or from the upstream."""

    def __init__(self, rows: list[dict[str, Any]], kind: str, upstream: UpstreamModel, data: Any, device,
                 precision: str = "fp32"):
        self.rows = rows
        self.precision = precision  # of the upstream run on the fly
        self.kind = kind
        self.upstream = upstream
        self.data = data
        self.device = device
        self.audio_seconds = 0.0  # audio sent through the upstream by this source
        self.resident: _DeviceFrames | None = None  # frames held in device memory (see to_device)
        # host batches of frames are layer-normed on the accelerator, where the probe trains; a CPU probe
        # normalizes them on the prefetching thread instead, beside its training thread
        self.norm_on_device = kind == "frames" and torch.device(device).type != "cpu"
        if kind == "upstream":
            self.waves = WaveformSet(rows)
            self.waves_rate = float(upstream.sample_rate)
            self.lengths = [float(r["duration"]) for r in rows]
        elif kind == "frames":
            self.lengths = [float(n) for n in data.lengths]
        else:
            self.lengths = [float(r["duration"]) for r in rows]

    def __call__(self, indices: list[int], pooled: bool) -> _Raw:
        rows = [self.rows[i] for i in indices]
        if self.kind == "pooled":
            return _Raw(rows, pooled=self.data[indices])
        if self.kind == "frames":
            if self.resident is not None:
                states, lengths = self.resident.gather(indices)
            elif self.norm_on_device:
                states, lengths = _pad_stored(self.data, indices)
                return _Raw(rows, states=states, lengths=lengths, unnormed=True)
            else:
                states, lengths = _pad_states([self.data.states(i) for i in indices])
            return _Raw(rows, states=states, lengths=lengths)
        batch = self.waves.collate(indices)
        self.audio_seconds += float(batch.wav_lengths.sum()) / self.waves_rate
        with torch.no_grad():
            with extraction_precision(self.precision, self.device):
                self.upstream.eval()
                out = self.upstream(batch.wavs.to(self.device), batch.wav_lengths)
            return _as_cached(rows, out.hidden_states, out.lengths.cpu(), pooled)

    def device_bytes(self) -> int:
        """Bytes the cached features of this split take in device memory (0: none to move)."""
        if self.kind == "pooled":
            return self.data.numel() * self.data.element_size()
        return _DeviceFrames.nbytes(self.data) if self.kind == "frames" and len(self.data) else 0

    def to_device(self, device: torch.device) -> None:
        """Hold the cached features in ``device`` memory; batches are then gathered there."""
        if self.kind == "pooled":
            self.data = self.data.to(device)
        elif self.kind == "frames" and len(self.data):
            self.resident = _DeviceFrames(self.data, device)

    def eval_batches(self, size: int) -> list[list[int]]:
        order = np.argsort(np.asarray(self.lengths), kind="stable")
        return [order[i : i + size].tolist() for i in range(0, len(order), size)]


def _source(
    task: Task, rows: list[dict[str, Any]], cache: FeatureCache, settings: ProbeSettings, upstream, device
) -> _Source:
    if settings.cache == "off":
        return _Source(rows, "upstream", upstream, None, device, settings.extract_precision)
    if task.pooled:
        return _Source(rows, "pooled", upstream, cache.pooled(rows), device)
    store: FrameStore | None = cache.frames(rows)
    if store is None:
        log.info("frame cache over its %.1f GB budget: running the upstream on the fly", settings.max_frame_gb)
        return _Source(rows, "upstream", upstream, None, device, settings.extract_precision)
    return _Source(rows, "frames", upstream, store, device)


def _predict(model: ProbeModel, source: _Source, settings: ProbeSettings, device) -> list[dict[str, Any]]:
    records = []
    was = model.training
    model.eval()
    with torch.no_grad():
        for idx in source.eval_batches(settings.eval_batch_size):
            raw = _to(source(idx, model.task.pooled), device)
            records.extend(model.predict(raw))
    model.train(was)
    return records


#: s3prl's ASR halves a bucket whose longest utterance exceeds 2,000 samples (all of them, in effect)
ASR_HALF_BUCKET_SECONDS = 2000 / 16000


def train_sampler(
    task: Task, rows: list[dict[str, Any]], settings: ProbeSettings, seed: int
) -> FixedBatchSampler | SortedSliceSampler | SortedBucketSampler | BalancedBatchSampler:
    """The probe's training batches: class-balanced draws where the settings ask for them (s3prl's
    keyword spotting), s3prl's bucketing where they ask for sorted batches (windows of neighbours in
    the task's length order, as its CTC tasks, or fixed buckets by audio length, as its ASR),
    otherwise random batches."""
    if settings.balanced:
        if not isinstance(task, UtteranceTask):
            raise StageError(f"{task.name}: balanced batches need a task with one class per utterance; "
                             "set balanced: false.")
        return BalancedBatchSampler([task.label_of(row) for row in rows], settings.batch_size, seed=seed)
    durations = [float(row["duration"]) for row in rows]
    if settings.sorted_batches and settings.bucketing == "buckets":
        return SortedBucketSampler(durations, settings.batch_size, seed=seed, half_above=ASR_HALF_BUCKET_SECONDS)
    if settings.sorted_batches:
        keys = [task.length_key(row) for row in rows]
        return SortedSliceSampler(keys, settings.batch_size, seed=seed, durations=durations)
    return FixedBatchSampler(len(rows), settings.batch_size, seed=seed)


def run_probe(
    task: Task,
    upstream: UpstreamModel,
    splits: dict[str, list[dict[str, Any]]],
    settings: ProbeSettings,
    cache: FeatureCache,
    seed: int,
    ctx: StageContext | None = None,
    name: str | None = None,
    resident: bool | None = None,
) -> ProbeResult:
    """Train on ``splits["train"]``, select on ``splits["dev"]``, report on ``splits["test"]``.

    ``resident``: hold the cached features in device memory (True), never (False), or on CUDA when
    they fit :data:`RESIDENT_SHARE` of its free memory (None)."""
    for role in ("train", "dev", "test"):
        if not splits.get(role):
            raise CorpusError(f"{task.name}: the {role} split has no utterances; the corpus must provide one.")
    device = ctx.device if ctx is not None else torch.device("cpu")
    name = name or f"probe-{task.name}"
    upstream.eval()
    for p in upstream.parameters():
        p.requires_grad_(False)
    started = time.monotonic()
    sources = {role: _source(task, rows, cache, settings, upstream, device) for role, rows in splits.items()}
    if ctx is not None:  # every feature this probe reads is in the cache now (folds: all of them are)
        ctx.cache_filled()
    on_device = _hold_on_device(list(sources.values()), device, resident)
    if on_device:
        for src in sources.values():
            src.to_device(device)
    feature_seconds = time.monotonic() - started
    seed_torch(seed)
    model = ProbeModel(task, upstream.num_hidden_states, upstream.hidden_size).to(device)
    train = sources["train"]
    sampler = train_sampler(task, train.rows, settings, seed)

    def collate(indices: list[int]) -> _Raw:
        return train(indices, task.pooled)

    def loss_fn(raw: _Raw) -> torch.Tensor:
        return model.loss(_to(raw, device))

    eval_seconds = 0.0  # time in dev evaluation, left out of the training rate

    def dev_eval() -> dict[str, float]:
        nonlocal eval_seconds
        begun = time.monotonic()
        metrics = task.aggregate(_predict(model, sources["dev"], settings, device))
        eval_seconds += time.monotonic() - begun
        return metrics

    small = device.type == "cpu" and sum(p.numel() for p in model.parameters()) < SMALL_HEAD
    with torch_threads(1 if small else None):
        result = fit(
            model,
            loss_fn,
            sampler,
            collate,
            replace(settings.train_config(), prefetch=train.kind == "frames" and train.resident is None),
            ctx=ctx,
            evaluate=dev_eval,
            primary=(task.primary_metric, task.metrics[task.primary_metric]),
            name=name,
        )
        records = _predict(model, sources["test"], settings, device)
    step_seconds = result.seconds - eval_seconds
    rate = result.steps_done / step_seconds if result.seconds > 0 and step_seconds > 0 else None
    if ctx is not None and rate is not None:
        ctx.log(f"{name}: {result.steps_done} steps at {rate:.1f} steps/s "
                f"(features {'in device memory' if on_device else 'moved per batch'})")
    return ProbeResult(
        metrics=task.aggregate(records),
        records=records,
        layer_weights=model.featurizer.layer_weights(),
        dev_metrics=result.best_metrics,
        fit=result,
        source=train.kind,
        extra={
            "feature_seconds": feature_seconds,
            "train_seconds": result.seconds,
            "steps_per_second": rate,
            "features_on": "device" if on_device else "host",
            "loop_audio_seconds": sum(src.audio_seconds for src in sources.values()),
        },
    )


def _hold_on_device(sources: list[_Source], device: torch.device, resident: bool | None) -> bool:
    """Whether the cached features of ``sources`` go to ``device`` memory (see :func:`run_probe`)."""
    need = sum(src.device_bytes() for src in sources)
    if resident is not None or need == 0:
        return bool(resident) and need > 0
    if device.type != "cuda":
        return False
    free, _ = torch.cuda.mem_get_info(device)
    if need > RESIDENT_SHARE * free:
        log.info("cached features (%.2f GB) exceed %.0f %% of free device memory: moving them per batch",
                 need / 1e9, 100 * RESIDENT_SHARE)
        return False
    return True


# --------------------------------------------------------------------------- splits and folds


def feature_cache_for(upstream: UpstreamModel, ctx: StageContext, settings: ProbeSettings) -> FeatureCache:
    """The cache shared by every downstream of this model on this corpus (private without stage keys), one
    per extraction precision."""
    keys = ctx.input_keys
    precision = effective_precision(settings.extract_precision, ctx.device)
    if precision != settings.extract_precision:
        ctx.log(f"extract_precision: {settings.extract_precision} applies on CUDA only; "
                f"this run on {ctx.device.type} extracts features in fp32")
    below = () if precision == "fp32" else (precision,)  # features of another precision are kept apart
    if "model" in keys and "corpus" in keys:
        root = ctx.cache_dir("features", keys["model"], keys["corpus"], *below)
    else:
        root = ctx.work_dir.joinpath("features", *below)
    return FeatureCache(
        upstream,
        root,
        max_frame_bytes=settings.max_frame_gb * 1e9,
        batch_seconds=settings.upstream_batch_seconds,
        device=ctx.device,
        precision=precision,
    )


def probe_corpus(
    task: Task,
    upstream: UpstreamModel,
    corpus: PreparedCorpus,
    settings: ProbeSettings,
    ctx: StageContext,
    cache: FeatureCache | None = None,
) -> EvalResult:
    """Train and test a probe for ``task`` on ``corpus`` (fold by fold when the corpus has folds and
    the task uses them)."""
    corpus.require(task.label_fields, f"downstream {task.name!r}")
    if settings.compile:
        compile_module(upstream)
    cache = cache or feature_cache_for(upstream, ctx, settings)
    directions = dict(task.metrics)
    folds = corpus.meta.get("folds") if getattr(task, "use_folds", False) else None
    if not folds:
        res = run_probe(task, upstream, task_splits(corpus, task.name), settings, cache, ctx.seed, ctx)
        scored = task.scored_items(res.records)
        return EvalResult(
            metrics=res.metrics,
            directions=directions,
            n_items=len(scored),
            items=scored,
            layer_weights=res.layer_weights,
            extra=_extra(res, cache),
            predictions=[_prediction(r) for r in res.records],
        )
    by_role = task_splits(corpus, task.name)
    rows = list({r["id"]: r for role in ("train", "dev", "test") for r in by_role[role]}.values())
    fold_ids = sorted({r["fold"] for r in rows if "fold" in r})
    if len(fold_ids) < 2:
        raise CorpusError(f"corpus {corpus.name!r} declares folds but its rows carry fewer than two fold ids.")
    if settings.max_folds:
        fold_ids = fold_ids[: settings.max_folds]
    per_fold, items, weights, extras, predictions = [], [], [], [], []
    for k in fold_ids:
        splits = fold_splits(rows, k, settings.dev_ratio, ctx.seed)
        res = run_probe(task, upstream, splits, settings, cache, ctx.seed, ctx, name=f"probe-{task.name}-fold{k}")
        per_fold.append(res.metrics)
        items.extend({**item, "fold": k} for item in task.scored_items(res.records))
        predictions.extend({**_prediction(r), "fold": k} for r in res.records)
        weights.append(res.layer_weights)
        extras.append({"fold": k, **res.metrics, "best_step": res.fit.best_step, "dev": res.dev_metrics})
    metrics = {m: float(np.mean([f[m] for f in per_fold])) for m in per_fold[0]}
    extra = _extra(res, cache)
    extra["folds"] = extras
    # the dev value of a cross-validated result, like its test value: the mean of the folds'
    extra["dev"] = {m: float(np.mean([f["dev"][m] for f in extras])) for m in extras[0]["dev"]}
    return EvalResult(
        metrics=metrics,
        directions=directions,
        n_items=len(items),
        items=items,
        layer_weights=[float(x) for x in np.mean(np.asarray(weights), axis=0)],
        extra=extra,
        predictions=predictions,
    )


def _prediction(record: dict[str, Any]) -> dict[str, Any]:
    """A test item's reference and hypothesis (texts, phone lists or class names), without its statistics."""
    return {"id": record["id"], "ref": record.get("ref"), "hyp": record.get("hyp")}


def _extra(res: ProbeResult, cache: FeatureCache) -> dict[str, Any]:
    return {
        "source": res.source,
        "dev": res.dev_metrics,
        "best_step": res.fit.best_step,
        "steps": res.fit.steps_done,
        "skipped_steps": res.fit.skipped_steps,
        **res.extra,
        "upstream_audio_seconds": cache.upstream_seconds + res.extra["loop_audio_seconds"],
    }
