"""The embedded non-speech corpus: AudioSet layout, multi-label tags, read-back, determinism."""

from __future__ import annotations

import csv
import hashlib

import numpy as np
import soundfile as sf

from harness.core.manifest import PreparedCorpus
from harness.data import sounds
from harness.data.audioset_csv import read_class_index, read_segments
from plugins.corpora.synthetic_nonspeech import NonspeechParams, SyntheticNonspeech
from tests.corpus_fixtures import prepare_for_tests


def test_every_class_generator_is_finite_unit_rms_and_seeded():
    assert len(sounds.CLASSES) >= 12
    for name in sounds.CLASSES:
        a = sounds.generate(name, np.random.default_rng(3), 8000)
        b = sounds.generate(name, np.random.default_rng(3), 8000)
        c = sounds.generate(name, np.random.default_rng(4), 8000)
        assert a.dtype == np.float32 and a.shape == (8000,) and np.isfinite(a).all()
        assert abs(np.sqrt(np.mean(a.astype(np.float64) ** 2)) - 1) < 1e-3
        assert np.array_equal(a, b) and not np.array_equal(a, c), name


def test_classes_differ_in_their_spectra():
    """Average log spectra of two clips of one class are closer than those of different classes."""
    def spectrum(name: str, seed: int) -> np.ndarray:
        x = sounds.generate(name, np.random.default_rng(seed), 16000)
        frames = x[: 15 * 1024].reshape(15, 1024)
        return np.log(np.abs(np.fft.rfft(frames * np.hanning(1024))).mean(0) + 1e-6)

    names = list(sounds.CLASSES)
    same = np.mean([np.linalg.norm(spectrum(n, 1) - spectrum(n, 2)) for n in names])
    diff = np.mean([np.linalg.norm(spectrum(a, 1) - spectrum(b, 2)) for a, b in zip(names, names[1:] + names[:1])])
    assert diff > 1.5 * same


def test_layout_is_audiosets_and_reads_back(nonspeech_corpus):
    corpus = PreparedCorpus(nonspeech_corpus)
    root = nonspeech_corpus / "audioset"
    assert corpus.meta["splits"] == ["train", "dev", "test"] and corpus.meta["label_fields"] == ["tags"]
    with open(root / "class_labels_indices.csv", newline="") as f:
        header = next(csv.reader(f))
    assert header == ["index", "mid", "display_name"]
    classes = read_class_index(root / "class_labels_indices.csv")
    assert len(classes) == len(sounds.CLASSES) >= 12
    assert corpus.vocab["tags"] == sorted(c.name for c in classes)
    lines = (root / "eval_segments.csv").read_text().splitlines()
    assert lines[2] == "# YTID, start_seconds, end_seconds, positive_labels"
    assert lines[3].count('"') == 2 and lines[3].split(", ")[1] == "0.000"
    names = {c.mid: c.name for c in classes}
    for split, stem in (("train", "train"), ("dev", "dev"), ("test", "eval")):
        segments = {s.ytid: s for s in read_segments(root / f"{stem}_segments.csv")}
        rows = corpus.utterances(split)
        assert len(rows) == len(segments) > 0
        for row in rows:
            seg = segments[row["id"].rsplit("_", 1)[0]]
            assert row["tags"] == sorted(names[m] for m in seg.labels)
            assert 1 <= len(row["tags"]) <= 3
            info = sf.info(row["path"])
            assert info.samplerate == 16000 and row["duration"] == 2.0
    all_tags = [t for s in corpus.splits for r in corpus.utterances(s) for t in r["tags"]]
    assert set(all_tags) == set(corpus.vocab["tags"])
    assert any(len(r["tags"]) > 1 for r in corpus.utterances("train"))


def test_same_seed_same_bytes(tmp_path):
    params = NonspeechParams(n_clips=12, clip_seconds=1.0)
    a = prepare_for_tests(SyntheticNonspeech(), params, tmp_path / "a")
    b = prepare_for_tests(SyntheticNonspeech(), params, tmp_path / "b")

    def digest(root):
        return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(root.rglob("*")) if p.is_file()}  # fmt: skip

    assert digest(a) == digest(b)
    c = prepare_for_tests(SyntheticNonspeech(), NonspeechParams(n_clips=12, clip_seconds=1.0, seed=1), tmp_path / "c")
    assert digest(a) != digest(c)
