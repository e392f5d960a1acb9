"""The training of ``continued_pretraining`` (:mod:`plugins.finetune.continued_pretraining`): imported
when the scenario runs, so registering the plugin does not load torch."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from harness.api import (
    DynamicBatchSampler,
    FinetuneResult,
    KMeans,
    PreparedCorpus,
    StableFineTuning,
    StageContext,
    StageError,
    UpstreamModel,
    WaveBatch,
    WaveformSet,
    fit,
    mfcc_frames,
    pick_corpus,
    sample_rows,
    split_rows,
    train_config,
    training_waveforms,
)

if TYPE_CHECKING:
    from plugins.finetune.continued_pretraining import ContinuedPretrainingParams

log = logging.getLogger("harness.finetune.continued_pretraining")

IGNORE = -100
TARGETS_FILE = "targets.pt"


def span_mask(n_frames: int, mask_prob: float, mask_length: int, rng: torch.Generator | None = None) -> torch.Tensor:
    """HuBERT/wav2vec 2.0 span masking of one utterance: ``round(mask_prob·n / mask_length + u)`` spans."""
    mask = torch.zeros(n_frames, dtype=torch.bool)
    if n_frames == 0:
        return mask
    length = min(mask_length, n_frames)
    spans = int(mask_prob * n_frames / length + float(torch.rand((), generator=rng)))
    spans = max(1, min(spans, n_frames - length + 1))
    starts = torch.randperm(n_frames - length + 1, generator=rng)[:spans]
    for s in starts.tolist():
        mask[s : s + length] = True
    return mask


def mask_fill(upstream: UpstreamModel, setting: str) -> str:
    """``mask_fill`` resolved: ``auto`` is ``embedding`` where the upstream masks frames, else ``noise``."""
    if setting == "auto":
        return "embedding" if upstream.masks_frames else "noise"
    if setting == "embedding" and not upstream.masks_frames:
        raise StageError(f"mask_fill: embedding needs an upstream with a mask embedding, which "
                         f"{upstream.family or type(upstream).__name__} lacks; use noise or zeros.")
    return setting


class Targets:
    """Unit sequences of the pre-training utterances, by utterance id."""

    def __init__(self, units: dict[str, np.ndarray], n_units: int):
        self.units = units
        self.n_units = n_units

    def batch(self, rows: list[dict[str, Any]], frames: int) -> torch.Tensor:
        out = torch.full((len(rows), frames), IGNORE, dtype=torch.long)
        for i, row in enumerate(rows):
            u = torch.from_numpy(self.units[row["id"]][:frames].astype(np.int64))
            out[i, : len(u)] = u
        return out


def _hidden_states_per_utt(upstream: UpstreamModel, data: WaveformSet, layer: int, batch_seconds: float, device):
    upstream.eval()
    with torch.no_grad():
        for indices in data.batches(batch_seconds):
            b = data.collate(indices).to(device)
            out = upstream(b.wavs, b.wav_lengths)
            h = out.hidden_states[layer].float().cpu().numpy()
            for j, i in enumerate(indices):
                yield i, h[j, : int(out.lengths[j])]


def compute_targets(
    upstream: UpstreamModel, data: WaveformSet, params: ContinuedPretrainingParams, seed: int, device
) -> tuple[Targets, str]:
    kind = params.targets
    codebook_size = int(getattr(upstream, "codebook_size", 0))
    provider = getattr(upstream, "pseudo_labels", None) if codebook_size else None
    if kind == "auto":
        kind = "codebook" if callable(provider) else "kmeans"
    if kind == "codebook":
        if not callable(provider):
            raise StageError(
                f"upstream {upstream.family!r} has no pre-training codebook to make targets (HuBERT keeps one "
                "when loaded from its fairseq .pt); use targets: kmeans (or mfcc) instead."
            )
        units = {}
        upstream.eval()
        with torch.no_grad():
            for indices in data.batches(params.batch_seconds):
                b = data.collate(indices).to(device)
                labels, lengths = provider(b.wavs, b.wav_lengths)
                for j, i in enumerate(indices):
                    units[data.rows[i]["id"]] = labels[j, : int(lengths[j])].cpu().numpy().astype(np.int16)
        return Targets(units, codebook_size), kind
    if kind == "mfcc":
        feats = {i: mfcc_frames(data.wave(i), upstream.frame_shift) for i in range(len(data))}
    else:
        layer = params.layer if params.layer is not None else (2 * (upstream.num_hidden_states - 1)) // 3
        if not -upstream.num_hidden_states <= layer < upstream.num_hidden_states:
            raise StageError(
                f"layer {layer} does not exist; the upstream has {upstream.num_hidden_states} hidden states."
            )
        feats = dict(_hidden_states_per_utt(upstream, data, layer, params.batch_seconds, device))
    sample = sample_rows([feats[i] for i in range(len(data))], params.kmeans_frames, seed)
    km = KMeans(params.n_clusters, params.kmeans_iterations, seed).fit(sample)
    units = {data.rows[i]["id"]: km.assign(f).astype(np.int16) for i, f in feats.items()}
    return Targets(units, params.n_clusters), kind


def load_or_compute_targets(upstream, data, params, ctx: StageContext) -> Targets:
    path = ctx.work_dir / TARGETS_FILE
    if path.is_file():
        saved = torch.load(path, map_location="cpu", weights_only=True)
        units = {k: v.numpy() for k, v in saved["units"].items()}
        ctx.log(f"reusing the {saved['kind']} targets computed before the interruption")
        return Targets(units, int(saved["n_units"]))
    targets, kind = compute_targets(upstream, data, params, ctx.seed, ctx.device)
    counts = np.bincount(np.concatenate(list(targets.units.values())).astype(np.int64), minlength=targets.n_units)
    used = int((counts > 0).sum())
    ctx.log(f"{kind} targets: {targets.n_units} units ({used} used) over {int(counts.sum())} frames")
    ctx.work_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(
        {"kind": kind, "n_units": targets.n_units, "units": {k: torch.from_numpy(v) for k, v in targets.units.items()}},
        tmp,
    )
    tmp.replace(path)
    return targets


def run(
    upstream: UpstreamModel, corpora: dict[str, PreparedCorpus], params: ContinuedPretrainingParams, ctx: StageContext
) -> FinetuneResult:
    """What :meth:`ContinuedPretraining.finetune` does (see :mod:`plugins.finetune.continued_pretraining`)."""
    corpus = pick_corpus(corpora, params.corpus, "continued pre-training")
    device = ctx.device
    rows = [r for split in params.splits for r in corpus.utterances(split)]
    if not rows:
        raise StageError(f"corpus {corpus.name!r} has no utterances in {', '.join(params.splits)}.")
    train = training_waveforms(rows, params, device)
    dev = training_waveforms(split_rows(corpus, "pretraining", "dev", params.dev_items), params, device)
    upstream.to(device)
    targets = load_or_compute_targets(upstream, WaveformSet(rows + dev.rows, params.max_seconds), params, ctx)
    head = nn.Linear(upstream.hidden_size, targets.n_units)
    stable = StableFineTuning(upstream, head, params)
    stable.model.to(device)
    hop = int(round(upstream.frame_shift * upstream.sample_rate))
    fill = mask_fill(upstream, params.mask_fill)
    ctx.log(f"masked frames get {'the mask embedding' if fill == 'embedding' else fill + ' in the audio'}")

    def masked_batch(data: WaveformSet, indices: list[int], rng: torch.Generator | None = None):
        batch = data.collate(indices)
        frames = upstream.frame_lengths(batch.wav_lengths)
        masks = torch.zeros(len(indices), int(frames.max()) if len(indices) else 0, dtype=torch.bool)
        for j, n in enumerate(frames.tolist()):
            masks[j, :n] = span_mask(n, params.mask_prob, params.mask_length, rng)
            if fill == "embedding":
                continue
            samples = masks[j, :n].repeat_interleave(hop)[: batch.wavs.shape[1]]
            target = batch.wavs[j, : len(samples)]
            if fill == "noise":  # white noise at the utterance's level
                valid = batch.wavs[j, : int(batch.wav_lengths[j])]
                rms = float(valid.pow(2).mean().sqrt()) if valid.numel() else 0.0
                target[samples] = torch.randn(int(samples.sum()), generator=rng) * rms
            else:
                target[samples] = 0.0
        return batch, masks

    def scores(batch: WaveBatch, masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Logits, masked-frame labels and unmasked-frame labels (IGNORE elsewhere)."""
        batch = batch.to(device)
        options = {"masked_frames": masks.to(device)} if fill == "embedding" else {}
        out = stable.forward(batch.wavs, batch.wav_lengths, **options)
        last = out.hidden_states[-1]
        labels = targets.batch(batch.rows, last.shape[1]).to(device)
        m = masks[:, : last.shape[1]].to(device)
        if m.shape[1] < last.shape[1]:
            m = F.pad(m, (0, last.shape[1] - m.shape[1]))
        ignore = torch.full_like(labels, IGNORE)
        return head(last).float(), torch.where(m, labels, ignore), torch.where(m, ignore, labels)

    def ce(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if not bool((labels != IGNORE).any()):
            return logits.sum() * 0.0
        return F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=IGNORE)

    def loss_fn(item) -> torch.Tensor:
        logits, masked, unmasked = scores(*item)
        loss = ce(logits, masked)
        if params.unmasked_weight:
            loss = loss + params.unmasked_weight * ce(logits, unmasked)
        return loss + stable.penalty()

    def evaluate() -> dict[str, float]:
        rng = torch.Generator().manual_seed(ctx.seed)  # the same dev masks at every evaluation
        correct = total = 0
        loss_sum = 0.0
        for indices in dev.batches(params.batch_seconds):
            logits, labels, _ = scores(*masked_batch(dev, indices, rng))
            valid = labels != IGNORE
            correct += int(((logits.argmax(-1) == labels) & valid).sum())
            total += int(valid.sum())
            loss_sum += float(F.cross_entropy(logits[valid], labels[valid], reduction="sum")) if total else 0.0
        return {"masked_acc": 100.0 * correct / max(total, 1), "masked_loss": loss_sum / max(total, 1)}

    sampler = DynamicBatchSampler(train.lengths, params.batch_seconds, ctx.seed, max_items=params.max_items)
    result = fit(
        stable.model, loss_fn, sampler, lambda idx: masked_batch(train, idx), train_config(params), ctx,
        evaluate, ("masked_acc", "higher"), stable.before_step,
    )  # fmt: skip
    ctx.log(f"continued pre-training: best dev {result.best_metrics} at step {result.best_step}")
    return FinetuneResult(result.best_metrics, {"masked_acc": "higher", "masked_loss": "lower"})
