"""Keyword spotting (``ks``) and intent classification (``ic``): the balanced sampler, the tasks'
labels, loss and accuracy against hand computations, and both downstreams end to end on the
embedded corpus's keyword clips."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from harness.core.errors import CorpusError, StageError
from harness.core.interfaces import Batch
from harness.core.manifest import PreparedCorpus
from harness.core.params import validate_params
from harness.core.registry import PluginManager
from harness.data.batching import BalancedBatchSampler
from harness.evaluation.metrics import ratio
from harness.evaluation.probe import train_sampler
from plugins.downstreams.ic import IntentTask
from plugins.downstreams.ks import CLASSES, KeywordSpotting, KeywordTask
from tests.downstream_helpers import make_ctx

# ----------------------------------------------------------------------------- balanced batches


def test_balanced_batches_draw_each_class_equally_often_whatever_its_size():
    classes = ["big"] * 90 + ["mid"] * 9 + ["one"]
    sampler = BalancedBatchSampler(classes, batch_size=10, seed=0)
    assert len(sampler) == 10
    drawn = [i for _ in range(200) for batch in sampler for i in batch]
    assert len(drawn) == 200 * 100
    shares = Counter(classes[i] for i in drawn)
    for name in ("big", "mid", "one"):
        assert shares[name] / len(drawn) == pytest.approx(1 / 3, abs=0.02)
    big_items = Counter(i for i in drawn if classes[i] == "big")
    assert len(big_items) == 90  # every item of a class is drawn, each about equally often
    assert max(big_items.values()) < 3 * min(big_items.values())


def test_balanced_batches_are_seeded_drop_a_partial_batch_and_resume_where_they_were():
    classes = ["a", "b", "c", "a", "b"] * 5  # 25 items: two batches of 10, the last 5 dropped
    first, again = BalancedBatchSampler(classes, 10, seed=3), BalancedBatchSampler(classes, 10, seed=3)
    epoch = list(first)
    assert [len(b) for b in epoch] == [10, 10] and epoch == list(again)
    assert list(first) != epoch  # the next epoch draws anew
    resumed = BalancedBatchSampler(classes, 10, seed=3)
    it = iter(resumed)
    next(it)
    state = resumed.state_dict()
    fresh = BalancedBatchSampler(classes, 10, seed=3)
    fresh.load_state_dict(state)
    assert next(iter(fresh)) == epoch[1]
    with pytest.raises(StageError, match="need at least that many items"):
        BalancedBatchSampler(["a", "b"], 4, seed=0)


# ----------------------------------------------------------------------------- tasks


def test_keyword_task_counts_other_words_as_unknown():
    task = KeywordTask(CLASSES)
    rows = [{"id": str(i), "keyword": w} for i, w in enumerate(["yes", "go", "bed", "marvin", "_silence_"])]
    assert [task.label_of(r) for r in rows] == ["yes", "go", "_unknown_", "_unknown_", "_silence_"]
    assert task.labels(rows).tolist() == [0, 9, 10, 10, 11]
    assert len(CLASSES) == 12


def test_ks_trains_on_balanced_batches_and_other_probes_do_not():
    plugin = KeywordSpotting()
    rows = [{"id": str(i), "keyword": w, "duration": 1.0} for i, w in enumerate(["yes"] * 30 + ["_silence_"] * 3)]
    task = KeywordTask(CLASSES)
    for protocol in ("embedded", "superb"):
        settings = plugin.settings(validate_params(plugin.Params, {"protocol": protocol}, "ks"))
        assert settings.balanced and isinstance(train_sampler(task, rows, settings, seed=0), BalancedBatchSampler)
    plain = plugin.settings(validate_params(plugin.Params, {"balanced": False}, "ks"))
    assert not isinstance(train_sampler(task, rows, plain, seed=0), BalancedBatchSampler)
    assert "balanced" not in plugin.Params().model_dump()  # unset: not part of the stage key


def _pooled_batch(rows: list[dict], dim: int = 4, seed: int = 0) -> Batch:
    return Batch(features=None, lengths=None, utterances=rows,
                 pooled=torch.randn(len(rows), dim, generator=torch.Generator().manual_seed(seed)))


def test_intent_loss_is_the_sum_of_each_slots_cross_entropy():
    task = IntentTask([["a", "b"], ["x", "y", "z"]], projector_dim=8)
    head = task.build_head(4)
    rows = [{"id": "1", "intent": ["a", "z"]}, {"id": "2", "intent": ["b", "x"]}, {"id": "3", "intent": ["b", "y"]}]
    batch = _pooled_batch(rows)
    logits = head.forward_pooled(batch.pooled)
    assert logits.shape == (3, 5)
    expected = F.cross_entropy(logits[:, :2], torch.tensor([0, 1, 1])) + \
        F.cross_entropy(logits[:, 2:], torch.tensor([2, 0, 1]))
    assert task.loss(head, batch).item() == pytest.approx(expected.item(), rel=1e-6)


def test_an_intent_is_right_only_when_every_slot_is():
    task = IntentTask([["a", "b"], ["x", "y", "z"]], projector_dim=8)
    head = task.build_head(4)
    with torch.no_grad():  # logits that always pick slot 1 = "b", slot 2 = "x"
        head.classifier.weight.zero_()
        head.classifier.bias.copy_(torch.tensor([0.0, 1.0, 1.0, 0.0, 0.0]))
    rows = [{"id": "1", "intent": ["b", "x"]}, {"id": "2", "intent": ["b", "y"]}, {"id": "3", "intent": ["a", "x"]}]
    records = task.predict(head, _pooled_batch(rows))
    assert [r["hyp"] for r in records] == ["b / x"] * 3
    assert [r["stats"]["acc"] for r in records] == [[1.0, 1.0], [0.0, 1.0], [0.0, 1.0]]
    assert task.aggregate(records)["acc"] == pytest.approx(100 / 3)
    with pytest.raises(CorpusError, match="has 1 intent slots where the training rows have 2"):
        task.labels([{"id": "4", "intent": "b"}])
    with pytest.raises(CorpusError, match="'w' has no training utterance"):
        task.labels([{"id": "5", "intent": ["a", "w"]}])


# ----------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def keyword_corpus(tmp_path_factory) -> Path:
    from plugins.corpora.synthetic import SyntheticCorpus, SyntheticParams
    from tests.corpus_fixtures import prepare_for_tests

    params = SyntheticParams(n_utterances=60, n_speakers=6, n_unseen_speakers=2, keywords=2)
    return prepare_for_tests(SyntheticCorpus(), params, tmp_path_factory.mktemp("keywords"))


def test_keyword_clips_come_in_twelve_balanced_classes_with_test_voices_held_out(keyword_corpus):
    corpus = PreparedCorpus(keyword_corpus)
    task = KeywordTask(CLASSES)
    splits = {role: corpus.utterances(corpus.split_for("ks", role)) for role in ("train", "dev", "test")}
    voices = {role: {r["speaker"] for r in rows} for role, rows in splits.items()}
    assert voices["test"] == {"u01", "u02"} and voices["dev"] == {"s06"} and len(voices["train"]) == 5
    for role, rows in splits.items():
        counts = Counter(task.label_of(r) for r in rows)
        assert set(counts) == set(CLASSES) and len(set(counts.values())) == 1, role  # 2 rounds per voice each
        assert counts["yes"] == 2 * len(voices[role])
    silence = [r for r in splits["train"] if r["keyword"] == "_silence_"]
    assert all(r["duration"] == 1.0 for r in silence)
    assert "keyword" in corpus.meta["label_fields"] and corpus.utterances("train")[0].get("keyword") is None


@pytest.fixture(scope="module")
def evaluated(keyword_corpus, tmp_path_factory):
    manager = PluginManager()
    upstream_plugin = manager.create("upstream", "fbank")
    upstream = upstream_plugin.build(upstream_plugin.Params(), seed=0)
    corpus = PreparedCorpus(keyword_corpus)
    out = {}
    for name in ("ks", "ic"):
        plugin = manager.create("downstream", name)
        params = validate_params(plugin.Params, {"steps": 150, "eval_every": 50}, name)
        out[name] = plugin.evaluate(upstream, corpus, params, make_ctx(tmp_path_factory.mktemp(name)))
    return corpus, upstream, out


@pytest.mark.parametrize("name", ["ks", "ic"])
def test_ks_and_ic_evaluate_on_the_embedded_corpus(evaluated, name):
    corpus, upstream, results = evaluated
    result = results[name]
    test_rows = corpus.utterances(corpus.split_for(name, "test"))
    assert result.directions == {"acc": "higher"} and result.n_items == len(test_rows)
    assert {item["id"] for item in result.items} == {r["id"] for r in test_rows}
    assert ratio([item["stats"]["acc"] for item in result.items]) == pytest.approx(result.metrics["acc"])
    assert len(result.layer_weights) == upstream.num_hidden_states
    assert result.extra["source"] == "pooled"
    if name == "ks":  # FBank features tell silence and a few words apart (chance: 1 in 12)
        assert result.metrics["acc"] > 2 * 100 / 12, result.metrics


def test_ic_reads_three_slots_from_a_corpus_that_has_them(tmp_path):
    from plugins.downstreams.ic import IntentClassification

    rows = [{"id": f"u{i}", "path": "x.wav", "duration": 1.0, "speaker": "s", "intent": [a, o, "none"]}
            for i, (a, o) in enumerate([("activate", "lights"), ("deactivate", "music"), ("activate", "music")])]
    from harness.data.corpus import write_prepared

    write_prepared(tmp_path, "fsc", {"train": rows, "dev": rows[:1], "test": rows[:1]})
    task = IntentClassification().make_task(PreparedCorpus(tmp_path), IntentClassification.Params())
    assert task.slots == [["activate", "deactivate"], ["lights", "music"], ["none"]]
    assert np.array_equal(task.labels(rows).numpy(), [[0, 0, 0], [1, 1, 0], [0, 1, 0]])
    assert PreparedCorpus(tmp_path).vocab["intents"] == ["activate / lights / none", "activate / music / none",
                                                         "deactivate / music / none"]
