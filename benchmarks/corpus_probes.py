"""How hard is the embedded corpus? Linear probes on 80-dim FBank, clean vs with nuisance.

Prepares the synthetic corpus twice (``clean: true`` and the default nuisance) and prints, side by
side: speaker ID and style (emotion) accuracy from utterance-mean FBank (mean and standard deviation
over frames, logistic regression trained on ``train``, scored on ``test``) and frame phone accuracy
from single FBank frames (10 ms frames labelled by the phone at their centre; logistic regression
on up to 20 000 training frames, scored on every ``test`` frame). Chance levels are printed too.

    python benchmarks/corpus_probes.py [--n-utterances 400] [--param key=value ...]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import kaldi_native_fbank as knf
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from harness.core.manifest import PreparedCorpus
from harness.core.params import parse_key_values
from harness.core.registry import PluginManager
from harness.core.stage import StageContext
from harness.data import audio
from plugins.corpora.synthetic import SyntheticCorpus, SyntheticParams


def fbank(wav: np.ndarray) -> np.ndarray:
    opts = knf.FbankOptions()
    opts.frame_opts.dither = 0.0
    opts.mel_opts.num_bins = 80
    f = knf.OnlineFbank(opts)
    f.accept_waveform(audio.SAMPLE_RATE, (wav * 32768).tolist())
    f.input_finished()
    return np.stack([f.get_frame(i) for i in range(f.num_frames_ready)])


def frame_labels(phones: list, n: int) -> list[str]:
    centres = 0.0125 + 0.01 * np.arange(n)
    ends = np.array([p[2] for p in phones])
    idx = np.minimum(np.searchsorted(ends, centres, side="right"), len(phones) - 1)
    return [phones[i][0] for i in idx]


def probe(corpus: Path, seed: int = 0) -> dict[str, float]:
    c = PreparedCorpus(corpus)
    data = {}
    for split in ("train", "test"):
        rows = c.utterances(split)
        feats = [fbank(audio.load(r["path"])) for r in rows]
        data[split] = (rows, feats)
    out: dict[str, float] = {}

    def pooled(split: str) -> np.ndarray:
        return np.stack([np.concatenate([f.mean(0), f.std(0)]) for f in data[split][1]])

    for label, key in (("speaker", "sid_acc"), ("emotion", "style_acc")):
        y_tr = [r[label] for r in data["train"][0]]
        y_te = [r[label] for r in data["test"][0]]
        clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=1.0))
        clf.fit(pooled("train"), y_tr)
        out[key] = 100 * float(np.mean(clf.predict(pooled("test")) == np.array(y_te)))
        out[key.replace("acc", "chance")] = 100 / len(set(y_tr))
    xs, ys = {}, {}
    for split in ("train", "test"):
        x, y = [], []
        for r, f in zip(*data[split], strict=True):
            x.append(f)
            y += frame_labels(r["phones"], len(f))
        xs[split], ys[split] = np.concatenate(x), np.array(y)
    rng = np.random.default_rng(seed)
    take = rng.permutation(len(ys["train"]))[:20000]
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=200, C=1.0))
    clf.fit(xs["train"][take], ys["train"][take])
    out["frame_phone_acc"] = 100 * float(np.mean(clf.predict(xs["test"]) == ys["test"]))
    values, counts = np.unique(ys["train"], return_counts=True)
    out["frame_phone_majority"] = 100 * float(np.mean(ys["test"] == values[np.argmax(counts)]))
    return out


def prepare(params: SyntheticParams, root: Path) -> tuple[Path, float, float]:
    out = root / ("clean" if params.clean else "nuisance")
    out.mkdir()
    ctx = StageContext("probe", out, root / "work", root / "cache", params.seed, PluginManager(entry_points=False))
    start = time.perf_counter()
    SyntheticCorpus().prepare(params, out, ctx)
    elapsed = time.perf_counter() - start
    hours = sum(json.loads((out / "meta.json").read_text())["hours"].values())
    return out, elapsed, hours * 3600


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-utterances", type=int, default=400)
    parser.add_argument("--param", action="append", help="synthetic corpus parameter key=value")
    parser.add_argument("--skip-clean", action="store_true")
    args = parser.parse_args()
    extra = parse_key_values(args.param)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for clean in ([False] if args.skip_clean else [True, False]):
            params = SyntheticParams(n_utterances=args.n_utterances, **{**extra, "clean": clean})
            path, elapsed, seconds = prepare(params, Path(tmp))
            t0 = time.perf_counter()
            r = probe(path)
            r["generate_s"], r["audio_s"], r["speed_x"] = elapsed, seconds, seconds / elapsed
            r["probe_s"] = time.perf_counter() - t0
            results["clean" if clean else "nuisance"] = r
    keys = list(next(iter(results.values())))
    print(f"{'':24}" + "".join(f"{k:>12}" for k in results))
    for k in keys:
        print(f"{k:24}" + "".join(f"{results[name][k]:12.1f}" for name in results))


if __name__ == "__main__":
    main()
