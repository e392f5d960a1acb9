"""Speaker verification (``asv``): the EER against an independent ROC computation, trial lists,
the x-vector head against per-utterance references, and the downstream end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from harness.cli import main
from harness.core.errors import CorpusError
from harness.core.manifest import PreparedCorpus
from harness.core.params import validate_params
from harness.core.registry import PluginManager
from harness.evaluation.verification import RocLayout, all_pairs, equal_error_rate, read_trials, write_trials
from harness.report.item_stats import from_items
from plugins.downstreams._xvector import SHRINK, XVectorHead
from tests.downstream_helpers import make_ctx

# ----------------------------------------------------------------------------- EER


def _reference_eer(labels, scores) -> float:
    """s3prl's way: sklearn's ROC curve, then brentq on 1 - x - interp(x)."""
    from scipy.interpolate import interp1d
    from scipy.optimize import brentq
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(labels, scores, pos_label=1, drop_intermediate=False)
    return 100.0 * brentq(lambda x: 1.0 - x - interp1d(fpr, tpr)(x), 0.0, 1.0)


@pytest.mark.parametrize("seed", range(6))
def test_eer_equals_the_roc_and_root_finding_reference(seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, size=300)
    scores = rng.normal(size=300) + 1.2 * labels
    if seed % 2:  # ties: scores on a coarse grid
        scores = np.round(scores, 1)
    assert equal_error_rate(labels, scores) == pytest.approx(_reference_eer(labels, scores), abs=1e-6)


@pytest.mark.parametrize("block", [1, 3, 7, 64, 10_000])
def test_the_blocked_eer_of_each_weighting_is_the_references_on_the_repeated_trials(block):
    rng = np.random.default_rng(block)
    labels = rng.integers(0, 2, size=200)
    labels[:2] = [0, 1]
    scores = np.round(rng.normal(size=200) + labels, 1)  # a coarse grid: runs of ties across block ends
    layout = RocLayout(labels, scores, block=block)
    weights = rng.integers(0, 3, size=(12, 200)).astype(float)
    weights[:, :2] = 1  # both kinds in every row
    weights[0] = 1  # and one row of the list itself
    for row, eer in zip(weights, layout.eer(weights), strict=True):
        keep = np.repeat(np.arange(200), row.astype(int))
        assert eer == pytest.approx(_reference_eer(labels[keep], scores[keep]), abs=1e-6)
    assert layout.eer(weights[:1])[0] == equal_error_rate(labels, scores)
    one_kind = np.zeros((1, 200))
    one_kind[0, labels == 1] = 1
    assert np.isnan(layout.eer(one_kind)[0])


@pytest.mark.parametrize("block", [1, 5, 64, 10_000])
def test_the_eer_of_cluster_draws_equals_the_eer_of_the_weights_they_give_each_trial(block):
    rng = np.random.default_rng(100 + block)
    labels = rng.integers(0, 2, size=300)
    scores = np.round(rng.normal(size=300) + labels, 1)  # ties across block ends
    codes = rng.integers(0, 9, size=300)
    codes[:9] = np.arange(9)  # every cluster has a trial
    layout = RocLayout(labels, scores, block=block, clusters=codes)
    counts = rng.integers(0, 3, size=(40, 9)).astype(float)
    counts[0] = 1  # the list itself
    counts[1] = 0
    counts[1, codes[labels == 1][0]] = 1  # one cluster only: maybe one kind of trial (NaN both ways)
    by_cluster, expanded = layout.eer_by_cluster(counts), layout.eer(counts[:, codes])
    assert np.array_equal(by_cluster, expanded, equal_nan=True)
    assert by_cluster[0] == equal_error_rate(labels, scores)
    with pytest.raises(ValueError, match="without clusters"):
        RocLayout(labels, scores).eer_by_cluster(counts)


def test_eer_by_hand():
    assert equal_error_rate([1, 1, 0, 0], [0.9, 0.8, 0.2, 0.1]) == 0.0  # separated
    # ROC (0,0) (0,.5) (.5,.5) (.5,1) (1,1): the miss rate equals the false-alarm rate at 0.5
    assert equal_error_rate([1, 0, 1, 0], [0.9, 0.6, 0.4, 0.1]) == pytest.approx(50.0)
    assert equal_error_rate([0, 0, 1, 1], [0.9, 0.8, 0.2, 0.1]) == pytest.approx(100.0)
    with pytest.raises(CorpusError, match="trials of both kinds"):
        equal_error_rate([1, 1], [0.3, 0.2])


def test_all_pairs_takes_every_pair_once_or_a_seeded_sample(tmp_path):
    speakers = {f"u{i}": f"s{i % 3}" for i in range(7)}
    pairs = all_pairs(speakers, max_trials=10_000)
    assert len(pairs) == 21 and len({(a, b) for _, a, b in pairs}) == 21
    assert all(a < b and label == int(speakers[a] == speakers[b]) for label, a, b in pairs)
    sample = all_pairs(speakers, max_trials=8, seed=1)
    assert len(sample) == 8 and set(sample) <= set(pairs) and sample == all_pairs(speakers, 8, seed=1)
    write_trials(tmp_path / "t.trials", pairs)
    assert read_trials(tmp_path / "t.trials") == pairs
    (tmp_path / "kaldi.trials").write_text("a b target\na c nontarget\n")
    assert read_trials(tmp_path / "kaldi.trials") == [(1, "a", "b"), (0, "a", "c")]
    (tmp_path / "bad.trials").write_text("1 a b\nyes a b\n")
    with pytest.raises(CorpusError, match="bad.trials line 2 is neither"):
        read_trials(tmp_path / "bad.trials")


# ----------------------------------------------------------------------------- the head


def test_the_head_pools_each_utterance_as_it_would_alone_and_std_is_unbiased():
    torch.manual_seed(0)
    head = XVectorHead(6, n_speakers=3, connector_dim=8, agg_dim=5).eval()
    lengths = torch.tensor([40, 23, 16])
    features = torch.randn(3, 40, 6)
    batched = head.statistics(features, lengths)
    for b, n in enumerate(lengths.tolist()):
        x = head.connector(features[b, :n]).T[None]
        for layer in head.tdnn:
            x = torch.relu(layer(x))
        assert x.shape[2] == n - SHRINK
        expected = torch.cat([x[0].mean(dim=1), x[0].std(dim=1)])  # torch.std: unbiased, as s3prl's
        assert torch.allclose(batched[b], expected, atol=1e-5)


def test_am_softmax_is_s3prls_formula():
    torch.manual_seed(1)
    head = XVectorHead(4, n_speakers=5, connector_dim=6, agg_dim=3, scale=30.0, margin=0.4)
    emb, labels = torch.randn(4, 6), torch.tensor([0, 3, 4, 3])
    wf = F.normalize(emb, dim=1) @ F.normalize(head.speakers, dim=0)
    numerator = 30.0 * (wf[torch.arange(4), labels] - 0.4)
    others = torch.stack([torch.cat([wf[i, :y], wf[i, y + 1:]]) for i, y in enumerate(labels.tolist())])
    expected = -(numerator - torch.log(torch.exp(numerator) + torch.exp(30.0 * others).sum(dim=1))).mean()
    assert head.am_softmax(emb, labels).item() == pytest.approx(expected.item(), rel=1e-5)


def test_a_short_utterance_and_a_dead_channel_give_finite_gradients():
    head = XVectorHead(4, n_speakers=2, connector_dim=6, agg_dim=3)
    features = torch.randn(2, 9, 4, requires_grad=True)  # shorter than the TDNN's 15-frame context
    loss = head.am_softmax(head(features, torch.tensor([9, 5])), torch.tensor([0, 1]))
    loss.backward()
    assert torch.isfinite(features.grad).all() and all(torch.isfinite(p.grad).all() for p in head.parameters())


# ----------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def asv_result(synthetic_corpus: Path, tmp_path_factory):
    manager = PluginManager()
    upstream_plugin = manager.create("upstream", "fbank")
    upstream = upstream_plugin.build(upstream_plugin.Params(), seed=0)
    plugin = manager.create("downstream", "asv")
    corpus = PreparedCorpus(synthetic_corpus)
    params = validate_params(plugin.Params, {"steps": 40, "eval_every": 20}, "asv")
    ctx = make_ctx(tmp_path_factory.mktemp("asv"))
    return corpus, plugin.evaluate(upstream, corpus, params, ctx), ctx.out_dir


def test_asv_tests_on_the_unseen_voices_of_the_embedded_corpus(asv_result, capsys):
    corpus, result, asv_stage_dir = asv_result
    test_rows = corpus.utterances("test_unseen")
    assert corpus.split_for("asv", "test") == "test_unseen"
    n = len(test_rows)
    assert result.directions == {"eer": "lower"} and result.n_items == n * (n - 1) // 2  # every pair a trial
    assert {p["id"] for p in result.predictions} == {r["id"] for r in test_rows}
    # the per-item results are the trials: their labels follow the speakers, and they give the EER again
    speaker = {r["id"]: r["speaker"] for r in test_rows}
    for item in result.items:
        a, b = item["id"].split()
        assert item["stats"]["eer"]["target"] == int(speaker[a] == speaker[b])
        assert item["stats"]["eer"]["group"] == speaker[a]  # the bootstrap draws enrolment speakers
    trials = from_items({0: result.items}, "eer")
    assert trials.n_items == result.n_items
    assert trials.value == pytest.approx(result.metrics["eer"], abs=1e-9)
    # the stage's trial and score files give the same EER and detection costs through `harness eer`
    out = asv_stage_dir
    for p_target in ("0.01", "0.05"):
        assert main(["eer", "--trials", str(out / "asv_test.trials"), "--scores", str(out / "asv_test.scores"),
                     "--p-target", p_target, "--speaker-of", "none", "--resamples", "100", "--json"]) == 0
        scored = json.loads(capsys.readouterr().out)
        assert scored["eer"] == pytest.approx(result.metrics["eer"], abs=1e-9)
        assert scored["min_dcf"] == pytest.approx(result.extra["min_dcf"][p_target], abs=1e-12)
    assert 0.0 <= result.metrics["eer"] <= 100.0
    assert result.extra["best_step"] in (20, 40) and set(result.extra["dev"]) == {"eer"}  # chosen on dev EER


def test_asv_says_when_a_split_has_no_same_speaker_pair():
    from plugins.downstreams.asv import ASVParams, VerificationTask

    task = VerificationTask(["a", "b"], {}, ASVParams())
    records = [{"id": f"u{i}", "ref": f"s{i}", "embedding": np.eye(3)[i]} for i in range(3)]
    with pytest.raises(CorpusError, match="hold no same-speaker pair; the dev and test splits need several"):
        task.aggregate(records)
    records.append({"id": "u3", "ref": "s0", "embedding": np.eye(3)[0]})
    assert task.aggregate(records) == {"eer": 0.0}  # u0 and u3: the same speaker, the same vector


# ----------------------------------------------------------------------------- VoxCeleb1 verification


@pytest.fixture
def verification_tree(tmp_path) -> Path:
    import soundfile as sf

    root = tmp_path / "VoxCeleb1"
    for spk in ("id10270", "id10271", "id10001", "id10002", "id10003"):
        for video, n in (("vidA", 1), ("vidB", 2)):
            path = root / "wav" / spk / video / f"{n:05d}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, 0.1 * np.sin(np.arange(8000) / (5 + n)), 16000, subtype="PCM_16")
    (root / "veri_test2.txt").write_text(
        "1 id10270/vidA/00001.wav id10270/vidB/00002.wav\n0 id10270/vidA/00001.wav id10271/vidA/00001.wav\n"
    )
    return root


def test_voxceleb1_verification_tests_on_the_trial_list_and_holds_out_dev_speakers(verification_tree, tmp_path):
    from plugins.corpora.voxceleb1_verification import VoxCeleb1Verification
    from plugins.downstreams.asv import SpeakerVerification
    from tests.corpus_fixtures import prepare_for_tests

    plugin = VoxCeleb1Verification()
    root = prepare_for_tests(plugin, plugin.Params(root=verification_tree, dev_fraction=0.3), tmp_path / "c")
    corpus = PreparedCorpus(root)
    speakers = {s: {r["speaker"] for r in corpus.utterances(s)} for s in ("train", "dev", "test")}
    assert speakers["test"] == {"id10270", "id10271"} and len(speakers["dev"]) == 1 and len(speakers["train"]) == 2
    assert {r["id"] for r in corpus.utterances("test")} == {"id10270-vidA-00001", "id10270-vidB-00002",
                                                            "id10271-vidA-00001"}
    task = SpeakerVerification().make_task(corpus, SpeakerVerification.Params())
    assert task.trials == {"test": [(1, "id10270-vidA-00001", "id10270-vidB-00002"),
                                    (0, "id10270-vidA-00001", "id10271-vidA-00001")]}
    assert task.speakers == sorted(speakers["train"])


def test_voxceleb1_verification_names_missing_test_audio(verification_tree, tmp_path):
    from plugins.corpora.voxceleb1_verification import VoxCeleb1Verification
    from tests.corpus_fixtures import prepare_for_tests

    (verification_tree / "wav" / "id10271" / "vidA" / "00001.wav").unlink()
    plugin = VoxCeleb1Verification()
    with pytest.raises(CorpusError, match="1 files of veri_test2.txt are missing"):
        prepare_for_tests(plugin, plugin.Params(root=verification_tree), tmp_path / "c")
