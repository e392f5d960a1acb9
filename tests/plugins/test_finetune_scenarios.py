"""Non-speech tagging (mAP against scikit-learn), multitask fine-tuning on mixed batches."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score

from harness.core.manifest import PreparedCorpus
from harness.core.registry import PluginManager
from harness.data.batching import DynamicBatchSampler, FixedBatchSampler, MixedBatchSampler
from plugins.finetune._tagging import mean_average_precision
from plugins.finetune.multitask import Multitask, MultitaskParams
from plugins.finetune.nonspeech import Nonspeech, NonspeechParams
from plugins.tasks import pc as pc_task
from tests.finetune_helpers import TinyUpstream, make_corpus, make_ctx
from tests.training import test_stable_ft as test_finetune_stable


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> PreparedCorpus:
    return PreparedCorpus(make_corpus(tmp_path_factory.mktemp("toy_corpus_scen"), n=16))


def test_map_matches_scikit_learn_with_ties_and_empty_classes():
    rng = np.random.default_rng(0)
    labels = (rng.random((60, 7)) < 0.3).astype(float)
    labels[:, 6] = 0  # a class without positives is left out, as in the mean over valid classes
    scores = np.round(rng.random((60, 7)) + 0.5 * labels, 1)  # rounding makes ties
    expected = 100 * np.mean([average_precision_score(labels[:, c], scores[:, c]) for c in range(6)])
    assert mean_average_precision(scores, labels) == pytest.approx(expected, abs=1e-10)


def test_nonspeech_tagging_trains_and_reports_map(corpus, tmp_path):
    torch.manual_seed(0)
    upstream = TinyUpstream()
    cnn = upstream.cnn.weight.clone()
    params = NonspeechParams(steps=8, lr=0.01, batch_seconds=3.0)
    result = Nonspeech().finetune(
        upstream, {"toy": corpus}, params, make_ctx(tmp_path, PluginManager(entry_points=False))
    )
    metrics = result.metrics
    assert set(metrics) == {"map"} and 0 < metrics["map"] <= 100 and result.directions == {"map": "higher"}
    assert torch.equal(upstream.cnn.weight, cnn)


def test_mixed_batches_draw_from_every_task_and_resume():
    mixed = MixedBatchSampler([FixedBatchSampler(5, 2, seed=0), DynamicBatchSampler([1.0] * 3, 2.0, seed=1)], [5, 3])
    first = list(mixed)
    assert len(first) == 3 and all(any(i < 5 for i in b) and any(i >= 5 for i in b) for b in first)
    assert mixed.split([1, 4, 6, 7]) == [[1, 4], [1, 2]]
    it = iter(mixed)
    next(it)
    state = mixed.state_dict()
    rest = list(it)
    again = MixedBatchSampler([FixedBatchSampler(5, 2, seed=0), DynamicBatchSampler([1.0] * 3, 2.0, seed=1)], [5, 3])
    again.load_state_dict(state)
    assert list(again)[: len(rest)] == rest


def test_multitask_trains_one_head_per_task(corpus, tmp_path):
    modules = [(sys.modules[test_finetune_stable.__name__], "tests", "0"), (pc_task, "harness", "0")]
    manager = PluginManager(modules=modules, entry_points=False)
    torch.manual_seed(0)
    upstream = TinyUpstream()
    proj = upstream.proj.weight.clone()
    params = MultitaskParams(
        tasks=[{"task": "pc", "corpus": "toy"}, {"task": "spk", "corpus": "toy", "weight": 0.5}],
        steps=8, lr=0.01, batch_seconds=4.0, select_on="spk",
    )  # fmt: skip
    ctx = make_ctx(tmp_path, manager)
    result = Multitask().finetune(upstream, {"toy": corpus}, params, ctx)
    assert set(result.metrics) == {"pc.acc", "spk.acc"}
    assert result.directions == {"pc.acc": "higher", "spk.acc": "higher"}
    assert not torch.equal(upstream.proj.weight, proj)
    with pytest.raises(Exception, match="select_on 'sid' is not among its tasks"):
        Multitask().finetune(upstream, {"toy": corpus}, params.model_copy(update={"select_on": "sid"}), ctx)
