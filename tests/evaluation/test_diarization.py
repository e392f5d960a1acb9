"""Speaker diarization (``sd``): activity from turns, the post-processing against scipy's median filter,
the DER against a frame-by-frame count over every speaker mapping, the chunked features and the
permutation-invariant loss against loops written out, and the task's choice of post-processing."""

from __future__ import annotations

import json
from itertools import permutations
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.signal import medfilt

from harness.cli import main
from harness.core.errors import CorpusError
from harness.core.interfaces import Batch
from harness.core.manifest import PreparedCorpus
from harness.core.params import validate_params
from harness.evaluation.diarization import (
    activity,
    decide,
    error_counts,
    frame_count,
    read_rttm,
    rttm_lines,
    score_recording,
    segments,
    turn_speakers,
)
from harness.evaluation.metrics import ratio
from plugins.downstreams._eend import label_rate_chunks, pit_loss
from plugins.downstreams.sd import DiarizationTask, SDParams

# ----------------------------------------------------------------------------- scoring


def test_activity_marks_turns_on_rounded_frames_one_column_per_sorted_speaker():
    turns = [["bob", 0.0, 0.034], ["al", 0.016, 0.05], ["bob", 0.07, 0.2]]
    got = activity(turns, 10, 0.01)
    assert turn_speakers(turns) == ["al", "bob"]
    # al: rint(1.6)=2 .. rint(5)=5; bob: 0 .. rint(3.4)=3, then 7 .. 10 (cut at the last frame)
    assert got[:, 0].tolist() == [0, 0, 1, 1, 1, 0, 0, 0, 0, 0]
    assert got[:, 1].tolist() == [1, 1, 1, 0, 0, 0, 0, 1, 1, 1]
    assert activity(turns, 10, 0.01, n_columns=3).shape == (10, 3)
    assert frame_count(2.0, 0.01) == 200 and frame_count(0.019, 0.01) == 1


@pytest.mark.filterwarnings("ignore:kernel_size exceeds volume extent")  # scipy on a 1-frame recording
@pytest.mark.parametrize("median", [1, 3, 5, 11])
def test_post_processing_equals_scipy_median_filter_on_thresholded_posteriors(median):
    rng = np.random.default_rng(median)
    for length in (1, 4, 37, 500):
        posteriors = rng.random((length, 2))
        for threshold in (0.3, 0.5, 0.7):
            binary = (posteriors > threshold).astype(float)
            expected = medfilt(binary, (median, 1)) if median > 1 else binary
            assert np.array_equal(decide(posteriors, threshold, median), expected.astype(np.int8)), (length, threshold)


def _brute_force(reference: np.ndarray, system: np.ndarray) -> tuple[int, int, int, int]:
    """Frame by frame, trying every assignment of system speakers to reference speakers."""
    n_ref, n_sys = reference.shape[1], system.shape[1]
    width = max(n_ref, n_sys)
    ref = np.pad(reference, ((0, 0), (0, width - n_ref)))
    sys = np.pad(system, ((0, 0), (0, width - n_sys)))
    best_correct = max(sum(int(ref[t, r] and sys[t, order[r]]) for t in range(len(ref)) for r in range(width))
                       for order in permutations(range(width)))
    scored = missed = false_alarm = both = 0
    for t in range(len(ref)):
        a, b = int(ref[t].sum()), int(sys[t].sum())
        scored += a
        missed += max(a - b, 0)
        false_alarm += max(b - a, 0)
        both += min(a, b)
    return scored, missed, false_alarm, both - best_correct


@pytest.mark.parametrize("shape", [(40, 2, 2), (60, 3, 3), (50, 2, 3), (30, 3, 1)])
def test_error_counts_equal_a_brute_force_over_every_speaker_mapping(shape):
    frames, n_ref, n_sys = shape
    rng = np.random.default_rng(sum(shape))
    for _ in range(5):
        reference = (rng.random((frames, n_ref)) < 0.4).astype(np.int8)
        system = (rng.random((frames, n_sys)) < 0.4).astype(np.int8)
        got = error_counts(reference, system)
        assert (got.scored, got.missed, got.false_alarm, got.confusion) == _brute_force(reference, system)


def test_der_hand_cases():
    ref = activity([["a", 0.0, 0.5], ["b", 0.3, 1.0]], 10, 0.1)
    swapped = ref[:, ::-1].copy()
    assert error_counts(ref, swapped).errors == 0  # speaker names do not matter
    one_speaker = np.stack([(ref.sum(axis=1) > 0).astype(np.int8), np.zeros(10, dtype=np.int8)], axis=1)
    counts = error_counts(ref, one_speaker)
    # reference: a on 0-4, b on 3-9 (12 speaker frames); one system speaker on 0-9 maps to b:
    # frames 3-4 miss one speaker (2), frames 0-2 are a said by b's match (3 confused)
    assert (counts.scored, counts.missed, counts.false_alarm, counts.confusion) == (12, 2, 0, 3)
    silent = np.zeros_like(ref)
    assert error_counts(ref, silent).missed == 12 and error_counts(silent, ref).false_alarm == 12


def test_segments_give_back_the_activity_and_rttm_lines_read_as_nist_speaker_records():
    rng = np.random.default_rng(0)
    active = (rng.random((200, 2)) < 0.5).astype(np.int8)
    turns = [[f"spk{c}", a, b] for c, a, b in segments(active, 0.01)]
    assert np.array_equal(activity(turns, 200, 0.01, n_columns=2), active)
    assert rttm_lines("rec1", [["spk0", 1.25, 2.5]]) == ["SPEAKER rec1 1 1.2500 1.2500 <NA> <NA> spk0 <NA> <NA>"]


def _rttm(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(f"{line}\n" for line in lines))
    return path


def test_rttm_files_read_back_their_turns_and_bad_lines_are_named(tmp_path):
    path = _rttm(tmp_path / "x.rttm", ["SPKR-INFO r1 1 <NA> <NA> <NA> unknown a <NA> <NA>",
                                        *rttm_lines("r1", [["a", 0.5, 1.75], ["b", 1.0, 2.0]]),
                                        *rttm_lines("r2", [["a", 0.0, 0.25]])])
    assert read_rttm(path) == {"r1": [("a", 0.5, 1.75), ("b", 1.0, 2.0)], "r2": [("a", 0.0, 0.25)]}
    _rttm(path, ["SPEAKER r1 1 0.5 oops <NA> <NA> a <NA> <NA>"])
    from harness.core.errors import HarnessError

    with pytest.raises(HarnessError, match="line 1 is not 'SPEAKER <file> <channel> <onset> <duration>"):
        read_rttm(path)
    _rttm(path, ["SPEAKER r1 1 0.5 -1 <NA> <NA> a <NA> <NA>"])
    with pytest.raises(HarnessError, match="line 1 has a negative or non-finite onset or duration"):
        read_rttm(path)


def test_a_collar_and_ignored_overlaps_take_frames_out_of_the_score():
    reference = [("a", 0.0, 1.0), ("b", 0.8, 2.0)]
    system = [("x", 0.0, 1.2), ("y", 1.2, 2.0)]  # a runs 0.2 s long and b starts 0.4 s late
    plain = score_recording(reference, system, 0.01)
    # 2.2 s of reference speech: b missed 0.8-1.2 (0.4 s) and x said 1.0-1.2 where only b speaks (0.2 s)
    assert (plain.scored, plain.missed, plain.false_alarm, plain.confusion) == (220, 20, 0, 20)
    collared = score_recording(reference, system, 0.01, collar=0.25)
    # no-score zones: 0-0.25, 0.55-1.25 and 1.75-2.0 (plus 0.75-1.05 inside them): scored 0.25-0.55 and 1.25-1.75
    assert (collared.scored, collared.errors) == (80, 0)
    no_overlap = score_recording(reference, system, 0.01, ignore_overlaps=True)
    # 0.8-1.0, where both speak (0.4 s of speaker time), is left out, and with it the missed speech
    assert (no_overlap.scored, no_overlap.missed, no_overlap.false_alarm, no_overlap.confusion) == (180, 0, 0, 20)
    assert score_recording(reference, [], 0.01).missed == 220


def test_harness_der_scores_rttm_files(tmp_path, capsys):
    ref = _rttm(tmp_path / "ref.rttm", rttm_lines("r1", [["a", 0.0, 1.0], ["b", 0.8, 2.0]])
                + rttm_lines("r2", [["a", 0.0, 1.0]]))
    hyp = _rttm(tmp_path / "hyp.rttm", rttm_lines("r1", [["x", 0.0, 1.2], ["y", 1.2, 2.0]])
                + rttm_lines("r3", [["x", 0.0, 1.0]]))
    assert main(["der", "--reference", str(ref), "--system", str(hyp), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    # r1: 0.2 s missed and 0.2 s confused of 2.2 s; r2 (no system turns): 1 s missed; r3 is not scored
    assert out["files"] == 2 and out["scored_seconds"] == pytest.approx(3.2)
    assert out["der"] == pytest.approx(100 * 1.4 / 3.2) and out["missed"] == pytest.approx(100 * 1.2 / 3.2)
    assert out["confusion"] == pytest.approx(100 * 0.2 / 3.2) and out["false_alarm"] == 0
    assert main(["der", "--reference", str(ref), "--system", str(hyp), "--per-file"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in table] == ["file", "r1", "r2", "OVERALL"]
    assert main(["der", "--reference", str(tmp_path / "none.rttm"), "--system", str(hyp)]) == 2
    assert "cannot read the RTTM file" in capsys.readouterr().err
    assert main(["der", "--reference", str(ref), "--system", str(hyp), "--frame", "0"]) == 2
    assert "--frame 0.0 is outside" in capsys.readouterr().err


# ----------------------------------------------------------------------------- the head


def test_features_are_repeated_to_the_label_rate_extended_and_cut_into_chunks():
    features = torch.arange(2 * 6 * 1, dtype=torch.float32).view(2, 6, 1)  # item 0: 0..5, item 1: 6..11
    lengths = torch.tensor([6, 4])
    chunks, chunk_lengths, spans = label_rate_chunks(features, lengths, [13, 8], chunk_size=5)
    assert spans == [(0, 0), (0, 5), (0, 10), (1, 0), (1, 5)]
    assert chunk_lengths.tolist() == [5, 5, 3, 5, 3]
    # item 0: 13 labels on 6 frames -> each frame twice (12), the last repeated once more
    expected0 = [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 5]
    # item 1: 8 labels on 4 frames -> each frame twice
    expected1 = [6, 6, 7, 7, 8, 8, 9, 9]
    got = chunks[..., 0]
    for k, (item, start) in enumerate(spans):
        n = int(chunk_lengths[k])
        want = (expected0 if item == 0 else expected1)[start : start + n]
        assert got[k, :n].tolist() == want
    # more frames than labels: cut to the label count
    chunks, chunk_lengths, _ = label_rate_chunks(features[:1], torch.tensor([6]), [4], chunk_size=10)
    assert chunks[0, :4, 0].tolist() == [0, 1, 2, 3]


def test_pit_loss_takes_each_chunks_best_speaker_order_and_averages_over_valid_frames():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 7, 2, generator=gen)
    labels = (torch.rand(3, 7, 2, generator=gen) < 0.5).float()
    lengths = torch.tensor([7, 4, 1])
    total = 0.0
    for k in range(3):
        n = int(lengths[k])
        options = [F.binary_cross_entropy_with_logits(logits[k, :n], labels[k, :n][:, list(order)],
                                                      reduction="none").mean(dim=1).sum()
                   for order in permutations(range(2))]
        total += float(min(options))
    assert pit_loss(logits, labels, lengths).item() == pytest.approx(total / 12, rel=1e-6)
    assert pit_loss(logits, labels.flip(-1), lengths).item() == pytest.approx(total / 12, rel=1e-6)


# ----------------------------------------------------------------------------- the task


def _task(**overrides) -> DiarizationTask:
    return DiarizationTask(validate_params(SDParams, {"hidden_size": 8, **overrides}, "sd"))


def test_the_task_reports_the_lowest_der_over_its_grid_with_item_stats_that_add_up():
    task = _task(frame_shift=1600)  # 0.1-s frames
    rng = np.random.default_rng(1)
    records = []
    for k in range(4):
        turns = [["a", 0.0, 0.6], ["b", 0.4, 1.0]]
        reference = activity(turns, 10, 0.1, 2)
        posteriors = np.clip(reference * 0.55 + rng.random((10, 2)) * 0.4, 0, 1)
        records.append({"id": f"r{k}", "ref": turns, "posteriors": posteriors, "reference": reference, "stats": {}})
    der = task.aggregate(records)["der"]
    by_setting = {}
    for threshold in (0.3, 0.4, 0.5, 0.6, 0.7):
        for median in (1, 11):
            counts = [error_counts(r["reference"], decide(r["posteriors"], threshold, median)) for r in records]
            by_setting[threshold, median] = 100 * sum(c.errors for c in counts) / sum(c.scored for c in counts)
    assert der == pytest.approx(min(by_setting.values()))
    assert by_setting[task.chosen["threshold"], task.chosen["median"]] == pytest.approx(der)
    assert ratio([r["stats"]["der"] for r in records]) == pytest.approx(der)
    chosen = decide(records[0]["posteriors"], task.chosen["threshold"], task.chosen["median"])
    assert np.array_equal(activity(records[0]["hyp"], 10, 0.1, 2), chosen)
    fixed = _task(frame_shift=1600, thresholds=[0.5], medians=[1])
    assert fixed.aggregate(records)["der"] == pytest.approx(by_setting[0.5, 1])


def test_the_task_predicts_posteriors_per_recording_from_chunks_and_refuses_extra_speakers():
    task = _task(chunk_size=30)
    head = task.build_head(5)
    rows = [{"id": "x", "duration": 0.8, "turns": [["a", 0.1, 0.5], ["b", 0.3, 0.8]]},
            {"id": "y", "duration": 0.45, "turns": [["a", 0.0, 0.4]]}]
    batch = Batch(torch.randn(2, 40, 5), torch.tensor([40, 22]), rows)
    records = task.predict(head, batch)
    assert [r["posteriors"].shape for r in records] == [(80, 2), (45, 2)]
    assert records[1]["reference"][:, 1].sum() == 0  # one speaker: the second column stays empty
    loss = task.loss(head, batch)
    loss.backward()
    assert torch.isfinite(loss) and all(p.grad is not None for p in head.parameters())
    crowded = {"id": "z", "duration": 1.0, "turns": [["a", 0, 0.2], ["b", 0.2, 0.4], ["c", 0.4, 0.6]]}
    with pytest.raises(CorpusError, match="has 3 speakers but the head has 2 outputs; set n_speakers: 3"):
        task.reference(crowded)


def test_sd_parameters_refuse_even_medians_and_thresholds_outside_zero_one():
    from harness.core.errors import HarnessError

    with pytest.raises(HarnessError, match="odd"):
        validate_params(SDParams, {"medians": [1, 4]}, "sd")
    with pytest.raises(HarnessError, match="strictly between 0 and 1"):
        validate_params(SDParams, {"thresholds": [0.5, 1.0]}, "sd")


# ----------------------------------------------------------------------------- the embedded mixtures, end to end


@pytest.fixture(scope="module")
def mixture_corpus(tmp_path_factory) -> Path:
    from plugins.corpora.synthetic import SyntheticCorpus, SyntheticParams
    from tests.corpus_fixtures import prepare_for_tests

    params = SyntheticParams(n_utterances=60, n_speakers=6, n_unseen_speakers=2, mixtures=16)
    return prepare_for_tests(SyntheticCorpus(), params, tmp_path_factory.mktemp("mixtures"))


def test_a_mixture_is_its_two_sources_added_where_its_turns_say(mixture_corpus):
    from harness.data import audio

    corpus = PreparedCorpus(mixture_corpus)
    sources = {r["id"]: r for split in ("train", "dev", "test_unseen") for r in corpus.utterances(split)}
    splits = {role: corpus.utterances(corpus.split_for("sd", role)) for role in ("train", "dev", "test")}
    assert [len(rows) for rows in splits.values()] == [16, 4, 4]
    assert {t[0] for r in splits["test"] for t in r["turns"]} <= {"u01", "u02"}
    for row in splits["train"][:4]:
        speakers = turn_speakers(row["turns"])
        assert len(speakers) == 2
        for speaker in speakers:  # pauses under 0.3 s are bridged
            own = [t for t in row["turns"] if t[0] == speaker]
            assert all(b[1] - a[2] >= 0.3 for a, b in zip(own, own[1:], strict=False))
        mix = audio.load(corpus.root / row["path"], check=False)
        first_start = {s: min(t[1] for t in row["turns"] if t[0] == s) for s in speakers}
        # the sources: for each voice, the utterance that, placed where its turns start, best matches the mix
        columns = []
        for speaker in speakers:
            candidates = []
            for src in (r for r in sources.values() if r["speaker"] == speaker):
                speech = [p for p in src["phones"] if p[0] != "sil"]
                wave = audio.load(corpus.root / src["path"], check=False)
                start = int(round((first_start[speaker] - speech[0][1]) * 16000))
                for at in (start - 1, start, start + 1):  # turn times are rounded to 0.1 ms, under 2 samples
                    if at < 0 or at + len(wave) > len(mix) + 1:
                        continue
                    column = np.zeros(len(mix))
                    column[at : at + len(wave)] = wave[: len(mix) - at]
                    candidates.append((abs(column @ mix) / (np.linalg.norm(column) + 1e-9), column))
            if candidates:
                columns.append(max(candidates, key=lambda c: c[0])[1])
        assert len(columns) == 2, row["id"]
        basis = np.stack(columns, axis=1)
        gains, *_ = np.linalg.lstsq(basis, mix, rcond=None)
        residual = mix - basis @ gains
        assert np.sqrt(np.mean(residual**2)) < 0.01 * np.sqrt(np.mean(mix**2)), row["id"]


def _fbank_and_sd() -> tuple[Any, Any]:
    """The FBank upstream and the ``sd`` plugin."""
    from harness.core.registry import PluginManager

    manager = PluginManager()
    upstream_plugin = manager.create("upstream", "fbank")
    return upstream_plugin.build(upstream_plugin.Params(), seed=0), manager.create("downstream", "sd")


def test_sd_evaluates_on_the_embedded_mixtures_and_writes_rttm(mixture_corpus, tmp_path, capsys):
    from tests.downstream_helpers import make_ctx

    upstream, plugin = _fbank_and_sd()
    ctx = make_ctx(tmp_path)
    params = validate_params(plugin.Params, {"steps": 60, "eval_every": 20}, "sd")
    result = plugin.evaluate(upstream, PreparedCorpus(mixture_corpus), params, ctx)
    test_rows = PreparedCorpus(mixture_corpus).utterances("sd_test")
    assert result.directions == {"der": "lower"} and result.n_items == len(test_rows)
    assert ratio([item["stats"]["der"] for item in result.items]) == pytest.approx(result.metrics["der"])
    everything_on = [error_counts(activity(r["turns"], frame_count(r["duration"], 0.01), 0.01, 2),
                                  np.ones((frame_count(r["duration"], 0.01), 2), dtype=np.int8)) for r in test_rows]
    baseline = 100 * sum(c.errors for c in everything_on) / sum(c.scored for c in everything_on)
    assert result.metrics["der"] < baseline, (result.metrics, baseline)
    assert set(result.extra["postprocess"]) == {"threshold", "median"}
    hyp = (ctx.out_dir / "sd_test.hyp.rttm").read_text().splitlines()
    ref = (ctx.out_dir / "sd_test.ref.rttm").read_text().splitlines()
    assert ref and all(line.startswith("SPEAKER sd_test-") for line in ref + hyp)
    assert len(ref) == sum(len(r["turns"]) for r in test_rows)
    # the files score to the stage's DER on its 10-ms frames
    assert main(["der", "--reference", str(ctx.out_dir / "sd_test.ref.rttm"), "--system",
                 str(ctx.out_dir / "sd_test.hyp.rttm"), "--frame", "0.01", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["der"] == pytest.approx(result.metrics["der"], abs=1e-9)


def test_sd_gives_the_same_der_with_the_upstream_run_on_the_fly(mixture_corpus, tmp_path):
    """Recordings past the frame budget (Libri2Mix at Base size) run the upstream per batch instead."""
    from tests.downstream_helpers import make_ctx

    upstream, plugin = _fbank_and_sd()
    results = {}
    for mode, extra in (("cached", {}), ("on_the_fly", {"max_frame_gb": 1e-9})):
        params = validate_params(plugin.Params, {"steps": 20, "eval_every": 10, **extra}, "sd")
        results[mode] = plugin.evaluate(upstream, PreparedCorpus(mixture_corpus), params, make_ctx(tmp_path / mode))
    assert (results["cached"].extra["source"], results["on_the_fly"].extra["source"]) == ("frames", "upstream")
    assert results["on_the_fly"].metrics == results["cached"].metrics
    assert [i["stats"] for i in results["on_the_fly"].items] == [i["stats"] for i in results["cached"].items]
