"""Pre-training from scratch on the embedded corpus: does masked prediction of MFCC k-means units give
a small fbank-input model (decoar2 ``small``) better frame-phone features than FBank?

Usage: python benchmarks/bench_pretraining.py CORPUS_DIR [--steps N] [--lr X] [--batch-seconds S]

Pre-trains with the ``continued_pretraining`` scenario (targets: mfcc, beta 0), then trains a linear
frame-phone probe (train split) on each hidden state and on single-frame FBank, and prints test
frame accuracy side by side with the pre-training time.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from harness.core.manifest import PreparedCorpus
from harness.core.registry import default_manager
from harness.core.stage import StageContext
from harness.data.alignment import IGNORE_LABEL, frame_labels
from harness.data.waveforms import WaveformSet
from plugins.finetune.continued_pretraining import ContinuedPretraining, ContinuedPretrainingParams
from plugins.upstreams._decoar2_model import PRESETS, Decoar2Upstream
from plugins.upstreams._fbank_model import FbankUpstream


def frames_and_labels(model, data: WaveformSet, phones: list[str]) -> tuple[list[np.ndarray], np.ndarray]:
    """Per hidden state, N×D frames of every utterance, and their phone labels (IGNORE dropped)."""
    index = {p: i for i, p in enumerate(phones)}
    layers: list[list[np.ndarray]] | None = None
    labels = []
    model.eval()
    with torch.no_grad():
        for indices in data.batches(60.0):
            b = data.collate(indices)
            out = model(b.wavs, b.wav_lengths)
            if layers is None:
                layers = [[] for _ in out.hidden_states]
            for j, row in enumerate(b.rows):
                n = int(out.lengths[j])
                lab = frame_labels(row["phones"], n, model.frame_shift, index)
                keep = lab != IGNORE_LABEL
                labels.append(lab[keep])
                for k, h in enumerate(out.hidden_states):
                    layers[k].append(h[j, :n].float().numpy()[keep])
    return [np.concatenate(x) for x in layers or []], np.concatenate(labels)


def probe(train_x, train_y, test_x, test_y, n_classes: int, steps: int = 300) -> float:
    """Test accuracy of a linear softmax probe on standardised features (full-batch Adam)."""
    mean, std = train_x.mean(0), train_x.std(0) + 1e-6
    x = torch.from_numpy((train_x - mean) / std).float()
    xt = torch.from_numpy((test_x - mean) / std).float()
    y, yt = torch.from_numpy(train_y), torch.from_numpy(test_y)
    torch.manual_seed(0)
    lin = torch.nn.Linear(x.shape[1], n_classes)
    opt = torch.optim.Adam(lin.parameters(), lr=0.05)
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(lin(x), y).backward()
        opt.step()
    with torch.no_grad():
        return float((lin(xt).argmax(1) == yt).float().mean())


def probe_model(model, corpus: PreparedCorpus) -> list[float]:
    phones = corpus.vocab["phones"]
    train = WaveformSet(corpus.utterances("train"))
    test = WaveformSet(corpus.utterances("test"))
    xs, y = frames_and_labels(model, train, phones)
    xts, yt = frames_and_labels(model, test, phones)
    return [probe(x, y, xt, yt, len(phones)) for x, xt in zip(xs, xts, strict=True)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", type=Path)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--batch-seconds", type=float, default=60.0)
    parser.add_argument("--clusters", type=int, default=100)
    parser.add_argument("--mask-fill", choices=("noise", "zeros"), default="noise")
    parser.add_argument("--unmasked-weight", type=float, default=0.0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    corpus = PreparedCorpus(args.corpus)

    fbank = FbankUpstream({"num_mel_bins": 80, "window": "povey", "deltas": 0, "delta_window": 5, "cmvn": True})
    fbank_acc = probe_model(fbank, corpus)[0]

    torch.manual_seed(0)
    model = Decoar2Upstream(PRESETS["small"])
    random_acc = probe_model(model, corpus)
    params = ContinuedPretrainingParams(
        targets="mfcc", beta=0.0, steps=args.steps, lr=args.lr, batch_seconds=args.batch_seconds,
        schedule="linear", warmup_ratio=0.08, n_clusters=args.clusters, eval_every=max(1, args.steps // 4),
        mask_fill=args.mask_fill, unmasked_weight=args.unmasked_weight,
    )  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        ctx = StageContext(
            key="bench-pretraining", out_dir=Path(tmp) / "out", work_dir=Path(tmp) / "work",
            cache_root=Path(tmp) / "cache", seed=0, plugins=default_manager(),
        )  # fmt: skip
        start, cpu = time.monotonic(), time.process_time()
        metrics = ContinuedPretraining().finetune(model, {"c": corpus}, params, ctx).metrics
        seconds, cpu = time.monotonic() - start, time.process_time() - cpu
        for m in ctx.messages:
            print("  |", m)
    trained_acc = probe_model(model, corpus)
    hours = corpus.meta.get("hours", {}).get("train")
    print(f"corpus {args.corpus} ({hours} h train), torch threads {torch.get_num_threads()}")
    rate = args.steps / seconds
    print(f"pre-training: {args.steps} steps in {seconds:.0f} s wall, {cpu:.0f} s CPU ({rate:.2f} steps/s)")
    print(f"  dev masked prediction: {metrics}")
    print(f"frame-phone linear probe, test accuracy: FBank (80-dim, one frame) {fbank_acc:.3f}")
    print("  decoar2 small, random init, per hidden state: " + " ".join(f"{a:.3f}" for a in random_acc))
    print("  decoar2 small, pre-trained, per hidden state: " + " ".join(f"{a:.3f}" for a in trained_acc))
    print(f"best pre-trained / FBank: {max(trained_acc):.3f} / {fbank_acc:.3f} = {max(trained_acc) / fbank_acc:.2f}x")


if __name__ == "__main__":
    main()
