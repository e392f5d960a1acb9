"""The training of ``multitask`` (:mod:`plugins.finetune.multitask`): imported when the scenario runs,
so registering the plugin does not load torch."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import torch
from torch import nn

from harness.api import (
    DynamicBatchSampler,
    FinetuneResult,
    MixedBatchSampler,
    PreparedCorpus,
    StableFineTuning,
    StageContext,
    StageError,
    Task,
    UpstreamModel,
    WaveBatch,
    WaveformSet,
    fit,
    pad_waves,
    pick_corpus,
    resolve_task,
    split_rows,
    task_metrics_on_waveforms,
    train_config,
    training_loss,
    training_waveforms,
)

if TYPE_CHECKING:
    from plugins.finetune.multitask import MultitaskParams


@dataclass
class MixedBatch:
    waves: WaveBatch
    parts: list[tuple[int, int, int]]  # (task index, first row, end row) within ``waves``


def run(
    upstream: UpstreamModel, corpora: dict[str, PreparedCorpus], params: MultitaskParams, ctx: StageContext
) -> FinetuneResult:
    """What :meth:`Multitask.finetune` does (see :mod:`plugins.finetune.multitask`)."""
    names = [spec.task for spec in params.tasks]
    if len(set(names)) != len(names):
        raise StageError(f"multitask lists a task twice ({', '.join(names)}); list each task once.")
    select = params.select_on or names[0]
    if select not in names:
        raise StageError(f"multitask select_on {select!r} is not among its tasks ({', '.join(names)}).")
    device = ctx.device
    tasks: list[Task] = []
    train_sets: list[WaveformSet] = []
    dev_sets: list[WaveformSet] = []
    samplers = []
    default_seconds = params.batch_seconds / len(params.tasks)
    for k, spec in enumerate(params.tasks):
        corpus = pick_corpus(corpora, spec.corpus, f"multitask task {spec.task}")
        task = resolve_task(upstream, corpus, spec.task, spec.task_params, ctx)
        tasks.append(task)
        train_sets.append(training_waveforms(split_rows(corpus, spec.task, "train"), params, device))
        dev_sets.append(training_waveforms(split_rows(corpus, spec.task, "dev", params.dev_items), params, device))
        seconds = spec.batch_seconds or default_seconds
        samplers.append(
            DynamicBatchSampler(train_sets[-1].lengths, seconds, ctx.seed + k, max_items=spec.max_items)
        )
    heads = nn.ModuleDict({f"t{k}": t.build_head(upstream.hidden_size) for k, t in enumerate(tasks)})
    stable = StableFineTuning(upstream, heads, params)
    stable.model.to(device)
    mixed = MixedBatchSampler(samplers, [len(s) for s in train_sets])

    def collate(indices: list[int]) -> MixedBatch:
        waves, rows, parts = [], [], []
        for k, local in enumerate(mixed.split(indices)):
            if local:
                parts.append((k, len(rows), len(rows) + len(local)))
                waves += [train_sets[k].wave(i) for i in local]
                rows += [train_sets[k].rows[i] for i in local]
        wavs, lengths = pad_waves(waves, train_sets[0].pad_multiple)
        return MixedBatch(WaveBatch(wavs, lengths, rows), parts)

    def loss_fn(batch: MixedBatch) -> torch.Tensor:
        waves = batch.waves.to(device)
        out = stable.forward(waves.wavs, waves.wav_lengths)
        total = stable.penalty()
        frames = upstream.frame_lengths(waves.wav_lengths)  # on the host: no wait for the device
        for k, a, b in batch.parts:
            longest = min(int(frames[a:b].max()), out.hidden_states[-1].shape[1])
            states = [h[a:b, :longest] for h in out.hidden_states[-1:]]
            sub = type(out)(hidden_states=states, lengths=out.lengths[a:b])
            total = total + params.tasks[k].weight * training_loss(tasks[k], heads[f"t{k}"], sub, waves.rows[a:b])
        return total

    def evaluate() -> dict[str, float]:
        metrics: dict[str, float] = {}
        for k, task in enumerate(tasks):
            seconds = params.tasks[k].batch_seconds or default_seconds
            got = task_metrics_on_waveforms(stable.forward, heads[f"t{k}"], task, dev_sets[k], seconds, device)
            metrics.update({f"{names[k]}.{m}": v for m, v in got.items()})
        return metrics

    chosen = tasks[names.index(select)]
    primary = (f"{select}.{chosen.primary_metric}", chosen.metrics[chosen.primary_metric])
    cfg = replace(train_config(params), prefetch=True)  # later steps' batches are read meanwhile
    result = fit(stable.model, loss_fn, mixed, collate, cfg, ctx, evaluate, primary, stable.before_step)
    ctx.log(
        f"multitask fine-tuning on {', '.join(names)}: best dev {result.best_metrics} at step {result.best_step}"
    )
    directions = {f"{names[k]}.{m}": d for k, task in enumerate(tasks) for m, d in task.metrics.items()}
    return FinetuneResult(result.best_metrics, directions)
