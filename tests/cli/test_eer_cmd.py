"""`harness eer`: EER, minDCF and the speaker-drawn interval of any system's scores, against independent
references; the file formats it reads and its refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from harness.cli import main
from harness.evaluation.verification import equal_error_rate, min_dcf
from harness.report import stats
from harness.report.item_stats import TrialStats


def _system(n_speakers: int, rng: np.random.Generator) -> tuple[list[tuple[int, str, str]], dict]:
    """VoxCeleb-style ids (speaker/video/file), every enrolment utterance against eight others."""
    utts = [f"id{10000 + s}/vid{k % 2}/{k:05d}.wav" for s in range(n_speakers) for k in range(4)]
    trials = []
    for i, a in enumerate(utts):
        for b in (utts[j] for j in rng.choice(len(utts), 8, replace=False) if j != i):
            trials.append((int(a.split("/")[0] == b.split("/")[0]), a, b))
    scores = {(a, b): float(rng.normal() + 1.5 * label) for label, a, b in trials}
    return trials, scores


def _write(tmp_path: Path, trials, scores, kaldi: bool = False) -> tuple[Path, Path]:
    lines = ([f"{a} {b} {'target' if label else 'nontarget'}" for label, a, b in trials] if kaldi
             else [f"{label} {a} {b}" for label, a, b in trials])
    (tmp_path / "trials.txt").write_text("\n".join(lines) + "\n")
    (tmp_path / "scores.txt").write_text("".join(f"{a} {b} {s!r}\n" for (a, b), s in scores.items()))
    return tmp_path / "trials.txt", tmp_path / "scores.txt"


def _brute_min_dcf(labels: np.ndarray, scores: np.ndarray, p: float) -> float:
    costs = []
    for t in [*np.unique(scores), np.inf]:  # accept at or above t; inf rejects everything
        p_miss = np.mean(scores[labels == 1] < t)
        p_fa = np.mean(scores[labels == 0] >= t)
        costs.append(p_miss * p + p_fa * (1 - p))
    return min(costs) / min(p, 1 - p)


def test_min_dcf_is_the_brute_force_minimum_over_thresholds():
    rng = np.random.default_rng(0)
    labels = (rng.random(300) < 0.2).astype(int)
    scores = (rng.normal(size=300) + labels).round(1)  # ties
    for p in (0.01, 0.05, 0.5):
        assert min_dcf(labels, scores, p) == pytest.approx(_brute_min_dcf(labels, scores, p), abs=1e-12)


def test_eer_json_matches_the_references_and_draws_speakers(tmp_path, capsys):
    trials, scores = _system(12, np.random.default_rng(1))
    trial_file, score_file = _write(tmp_path, trials, scores)
    assert main(["eer", "--trials", str(trial_file), "--scores", str(score_file), "--p-target", "0.05",
                 "--resamples", "300", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    labels = np.array([label for label, _, _ in trials])
    values = np.array([scores[(a, b)] for _, a, b in trials])
    assert out["eer"] == pytest.approx(equal_error_rate(labels, values), abs=1e-12)
    assert out["min_dcf"] == pytest.approx(_brute_min_dcf(labels, values, 0.05), abs=1e-12)
    assert (out["trials"], out["targets"], out["speakers"]) == (len(trials), int(labels.sum()), 12)
    groups = tuple(a.split("/")[0] for _, a, _ in trials)
    ci = stats.bootstrap_ci(TrialStats(tuple(map(str, range(len(trials)))), labels, values[None, :], (0,), groups),
                            n_resamples=300)
    assert (out["eer_low"], out["eer_high"]) == (pytest.approx(ci.low), pytest.approx(ci.high))

    kaldi_trials, _ = _write(tmp_path, trials, scores, kaldi=True)
    assert main(["eer", "--trials", str(kaldi_trials), "--scores", str(score_file), "--resamples", "300"]) == 0
    text = capsys.readouterr().out
    assert f"EER {out['eer']:.2f} % [" in text and "12 enrolment speakers drawn" in text
    assert f"{len(trials)} trials, {int(labels.sum())} target" in text


def test_few_speakers_draw_trials_with_a_warning(tmp_path, capsys):
    trials, scores = _system(3, np.random.default_rng(2))
    trial_file, score_file = _write(tmp_path, trials, scores)
    assert main(["eer", "--trials", str(trial_file), "--scores", str(score_file), "--resamples", "200",
                 "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["speakers"] == 0
    assert "name only 3 speakers, too few to draw whole" in captured.err


def test_missing_scores_bad_lines_and_bad_options_are_one_sentence(tmp_path, capsys):
    trials, scores = _system(10, np.random.default_rng(3))
    first = (trials[0][1], trials[0][2])
    scores.pop(first)
    trial_file, score_file = _write(tmp_path, trials, scores)
    cases = [
        (["--trials", str(trial_file), "--scores", str(score_file)],
         f"has no score for 1 of the {len(trials)} trials (the first: {first[0]} {first[1]})"),
        (["--trials", str(trial_file), "--scores", str(score_file), "--p-target", "1"], "--p-target 1.0 is outside"),
        (["--trials", str(tmp_path / "none.txt"), "--scores", str(score_file)], "none.txt does not exist"),
    ]
    (tmp_path / "bad.txt").write_text("a b 0.5\nc d high\n")
    (tmp_path / "nan.txt").write_text("a b nan\n")
    cases += [(["--trials", str(trial_file), "--scores", str(tmp_path / name)],
               f"{name} line {line} is not '<enrolment id> <test id> <score>' with a finite score")
              for name, line in (("bad.txt", 2), ("nan.txt", 1))]
    for args, expected in cases:
        assert main(["eer", *args]) == 2
        err = capsys.readouterr().err
        assert expected in err and "Traceback" not in err
