"""The weighted-sum featurizer: layer norm without parameters, equal initial weights, exact pooling,
gradients that reach only the layer weights and the head, and cached training equal to uncached."""

from __future__ import annotations

import pytest
import torch

from harness.core.manifest import PreparedCorpus
from harness.core.params import validate_params
from harness.evaluation.probe import ProbeModel, _Source
from harness.models.feature_cache import pooled_means
from harness.models.featurizer import WeightedSum
from harness.models.speech_encoder import mean_pool
from plugins.downstreams.pr import PhoneRecognition
from plugins.downstreams.sid import SpeakerIdentification
from tests.downstream_helpers import FakeUpstream, make_ctx, make_tiny_corpus


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return PreparedCorpus(make_tiny_corpus(tmp_path_factory.mktemp("tones")))


def test_equal_initial_weights_and_no_other_parameters():
    ws = WeightedSum(4)
    assert ws.layer_weights() == pytest.approx([0.25] * 4)
    assert [name for name, _ in ws.named_parameters()] == ["weights"]


def test_layer_norm_is_applied_per_hidden_state_without_affine():
    torch.manual_seed(0)
    states = torch.randn(3, 2, 5, 8)
    ws = WeightedSum(3)
    # each hidden state is normalised on its own: rescaling or shifting one layer changes nothing
    moved = states.clone()
    moved[1] = 7.0 * moved[1] + 3.0
    assert torch.allclose(ws(states), ws(moved), atol=1e-5)
    expected = sum(torch.nn.functional.layer_norm(s, (8,)) for s in states) / 3
    assert torch.allclose(ws(states), expected, atol=1e-6)


def test_pooled_means_give_the_pooled_weighted_sum_exactly():
    torch.manual_seed(1)
    ws = WeightedSum(3)
    with torch.no_grad():
        ws.weights.copy_(torch.tensor([0.3, -1.0, 2.0]))
    lengths = torch.tensor([5, 3])
    states = torch.randn(3, 2, 5, 8)
    frames_then_pool = mean_pool(ws(states), lengths)
    means = torch.stack([pooled_means([states[layer, b, : lengths[b]] for layer in range(3)]) for b in range(2)])
    assert torch.allclose(ws.forward_pooled(means), frames_then_pool, atol=1e-6)


@pytest.mark.parametrize("plugin_cls", [SpeakerIdentification, PhoneRecognition])
def test_gradients_reach_only_the_layer_weights_and_the_head(plugin_cls, tiny):
    upstream = FakeUpstream()
    plugin = plugin_cls()
    task = plugin.make_task(tiny, validate_params(plugin.Params, {}, plugin.name))
    model = ProbeModel(task, upstream.num_hidden_states, upstream.hidden_size)
    rows = tiny.utterances("train")[:6]
    raw = _Source(rows, "upstream", upstream, None, torch.device("cpu"))(list(range(6)), task.pooled)
    model.loss(raw).backward()
    assert all(p.grad is None for p in upstream.parameters())
    assert model.featurizer.weights.grad is not None and model.featurizer.weights.grad.abs().sum() > 0
    assert all(p.grad is not None for p in model.head.parameters())


@pytest.mark.parametrize(
    ("plugin_cls", "overrides"),
    [
        (SpeakerIdentification, {"steps": 20, "eval_every": 10, "lr": 0.01}),
        (PhoneRecognition, {"steps": 16, "eval_every": 8}),
    ],
)
def test_cached_and_uncached_training_give_the_same_metrics(plugin_cls, overrides, tiny, tmp_path):
    plugin = plugin_cls()
    results = {}
    modes = [("cached", {}), ("in the loop", {"cache": "off"})]
    if plugin_cls is PhoneRecognition:
        modes.append(("over budget", {"max_frame_gb": 1e-9}))  # frames past the budget: on the fly
    for mode, extra in modes:
        params = validate_params(plugin.Params, {**overrides, **extra}, plugin.name)
        upstream = FakeUpstream()
        res = plugin.evaluate(upstream, tiny, params, make_ctx(tmp_path / mode.replace(" ", "_")))
        results[mode] = (res, upstream.calls)
    cached, calls_cached = results["cached"]
    expected_source = "pooled" if plugin_cls is SpeakerIdentification else "frames"
    assert cached.extra["source"] == expected_source
    for mode in results.keys() - {"cached"}:
        other, calls = results[mode]
        assert other.extra["source"] == "upstream"
        assert calls >= overrides["steps"] > calls_cached  # the upstream ran on every batch
        assert other.metrics == cached.metrics
        assert [i["stats"] for i in other.items] == [i["stats"] for i in cached.items]
        assert other.layer_weights == pytest.approx(cached.layer_weights, abs=1e-5)
