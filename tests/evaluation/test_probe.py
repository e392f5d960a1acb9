"""The six downstream plugins end to end on a tiny tone corpus with a tiny fake upstream."""

from __future__ import annotations

import json

import pytest
import torch

from harness.core.errors import CorpusError
from harness.core.interfaces import Batch
from harness.core.manifest import PreparedCorpus
from harness.core.params import validate_params
from harness.core.registry import PluginManager
from harness.evaluation.metrics import ratio
from plugins.downstreams.sf import SlotFilling, slot_tokens
from tests.downstream_helpers import FakeUpstream, make_ctx, make_tiny_corpus

FAST = {"steps": 12, "eval_every": 6}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return PreparedCorpus(make_tiny_corpus(tmp_path_factory.mktemp("tones")))


@pytest.fixture(scope="module")
def evaluated(tiny, tmp_path_factory):
    """Every downstream evaluated with one context, so that they share one feature cache."""
    pm = PluginManager()
    upstream = FakeUpstream()
    ctx = make_ctx(tmp_path_factory.mktemp("stage"))
    out, calls = {}, {}
    for name, params in [
        ("pr", FAST),
        ("sf", FAST),
        ("asr", FAST),
        ("sid", FAST),
        ("er", {**FAST, "max_folds": 2}),
        ("abx", {}),
    ]:
        plugin = pm.create("downstream", name)
        before = upstream.calls
        out[name] = plugin.evaluate(upstream, tiny, validate_params(plugin.Params, params, name), ctx)
        calls[name] = upstream.calls - before
    return out, calls, upstream


def test_every_downstream_returns_metrics_items_and_layer_weights(evaluated, tiny):
    results, _, upstream = evaluated
    expected = {
        "pr": {"per": "lower"},
        "sf": {"f1": "higher", "cer": "lower"},
        "asr": {"wer": "lower"},
        "sid": {"acc": "higher"},
        "er": {"acc": "higher"},
    }
    n_test = len(tiny.utterances("test"))
    for name, directions in expected.items():
        res = results[name]
        assert res.directions == directions, name
        assert set(res.metrics) == set(directions)
        assert len(res.layer_weights) == upstream.num_hidden_states
        assert sum(res.layer_weights) == pytest.approx(1.0)
        if name != "er":  # per-item statistics add up to the reported metric
            assert res.n_items == len(res.items) == n_test
            for metric, value in res.metrics.items():
                assert ratio([item["stats"][metric] for item in res.items]) == pytest.approx(value)
    # ER: mean over folds; the items are every row, each tested in its own fold
    er = results["er"]
    assert [f["fold"] for f in er.extra["folds"]] == [0, 1]
    assert er.metrics["acc"] == pytest.approx(sum(f["acc"] for f in er.extra["folds"]) / 2)
    assert er.extra["dev"]["acc"] == pytest.approx(sum(f["dev"]["acc"] for f in er.extra["folds"]) / 2)
    all_rows = sum(len(tiny.utterances(s)) for s in ("train", "dev", "test"))
    assert er.n_items == all_rows == len({i["id"] for i in er.items})


def test_abx_downstream_reports_each_condition_with_phone_pairs(evaluated):
    abx = evaluated[0]["abx"]
    names = {f"{s}_speaker_{c}_context" for s in ("within", "across") for c in ("within", "any")}
    assert set(abx.metrics) == names
    assert all(d == "lower" for d in abx.directions.values())
    assert all(0 <= v <= 100 for v in abx.metrics.values())
    assert set(abx.extra["layers"]) == {"layer0", "layer1", "layer2"}
    for cond, value in abx.metrics.items():
        stats = [i["stats"][cond] for i in abx.items if cond in i["stats"]]
        assert ratio(stats) == pytest.approx(value)
        assert all("|" in i["id"] for i in abx.items)


def test_abx_past_its_frame_budget_runs_the_upstream_and_scores_the_same(evaluated, tiny, tmp_path):
    """``max_frame_gb`` is execution-only: frames computed on the fly are the cached ones."""
    plugin, upstream = PluginManager().create("downstream", "abx"), FakeUpstream()
    on_the_fly = plugin.evaluate(upstream, tiny, validate_params(plugin.Params, {"max_frame_gb": 1e-9}, "abx"),
                                 make_ctx(tmp_path / "stage"))
    cached = evaluated[0]["abx"]
    assert upstream.calls > 0 and not list((tmp_path / "stage").rglob("*.npy"))  # nothing was cached
    assert on_the_fly.metrics == cached.metrics and on_the_fly.items == cached.items
    plugin.evaluate(FakeUpstream(), tiny, validate_params(plugin.Params, {}, "abx"), make_ctx(tmp_path / "cached"))
    assert list((tmp_path / "cached").rglob("*.npy"))  # within the budget the frames are cached


def test_one_upstream_pass_serves_every_downstream(evaluated):
    _, calls, _ = evaluated
    assert calls["pr"] > 0
    # pr's pass fills both caches: frames for sf, asr and abx, per-layer means for sid and er
    assert calls["sf"] == calls["asr"] == calls["abx"] == calls["sid"] == calls["er"] == 0


def test_sf_target_string_is_superbs():
    slots = [["artist", "the beatles"], ["service", "spotify"]]
    row = {"id": "u", "text": "play the beatles on spotify", "slots": slots}
    assert "".join(t if len(t) == 1 else f"<{t}>" for t in slot_tokens(row)) == (
        "play <B-artist>the beatles<E-artist> on <B-service>spotify<E-service>"
    )
    with pytest.raises(CorpusError, match="is not in its text"):
        slot_tokens({"id": "u", "text": "play music", "slots": [["artist", "queen"]]})


def test_sf_task_renders_references_as_s3prl_decodes_them(tiny):
    plugin = SlotFilling()
    task = plugin.make_task(tiny, validate_params(plugin.Params, {}, "sf"))
    row = tiny.utterances("test")[0]
    words = row["text"].split()
    ref = task.render(task.target(row))
    assert ref.startswith(f"B-first {words[0]} E-first")
    assert ref.endswith(f"B-last {words[-1]} E-last") or len(words) == 1


def test_task_trains_a_trainable_upstream_for_fine_tuning(tiny):
    """The same task object serves supervised fine-tuning: loss on the last hidden state."""
    pm = PluginManager()
    upstream = FakeUpstream()
    plugin = pm.create("downstream", "pr")
    task = plugin.make_task(tiny, validate_params(plugin.Params, {}, "pr"))
    head = task.build_head(upstream.hidden_size)
    rows = tiny.utterances("train")[:4]
    from harness.data.waveforms import WaveformSet

    batch = WaveformSet(rows).collate(list(range(4)))
    out = upstream(batch.wavs, batch.wav_lengths)
    loss = task.loss(head, Batch(out.hidden_states[-1], out.lengths, rows))
    loss.backward()
    assert torch.isfinite(loss) and upstream.conv.weight.grad is not None


def test_missing_labels_are_one_clear_sentence(tmp_path):
    root = make_tiny_corpus(tmp_path / "c", {"train": 3, "dev": 3, "test": 3})
    meta = json.loads((root / "meta.json").read_text())
    meta["label_fields"].remove("emotion")
    (root / "meta.json").write_text(json.dumps(meta))
    pm = PluginManager()
    plugin = pm.create("downstream", "er")
    with pytest.raises(CorpusError, match="downstream 'er' needs the label\\(s\\) emotion"):
        params = validate_params(plugin.Params, {}, "er")
        plugin.evaluate(FakeUpstream(), PreparedCorpus(root), params, make_ctx(tmp_path))


def test_bilstm_on_padded_batches_equals_the_packed_lstm():
    from torch import nn

    from harness.evaluation.heads import BiLSTM, CTCHead

    torch.manual_seed(0)
    ours = BiLSTM(6, 5)
    ref = nn.LSTM(6, 5, batch_first=True, bidirectional=True)
    with torch.no_grad():
        for name in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"):
            getattr(ref, name).copy_(getattr(ours.fwd, name))
            getattr(ref, name + "_reverse").copy_(getattr(ours.bwd, name))
    x, lengths = torch.randn(3, 9, 6), torch.tensor([9, 4, 6])
    packed = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    expected, _ = nn.utils.rnn.pad_packed_sequence(ref(packed)[0], batch_first=True, total_length=9)
    got = ours(x, lengths)
    for b, n in enumerate(lengths.tolist()):
        assert torch.allclose(got[b, :n], expected[b, :n], atol=1e-6)
    # concatenating pairs of frames halves the output rate (lengths rounded up)
    logits, out_lengths = CTCHead(6, 4, 8, (5,), downsample=2)(x, lengths)
    assert logits.shape == (3, 5, 4) and out_lengths.tolist() == [5, 2, 3]


def test_downstreams_declare_superbs_table_order_and_typed_params():
    from harness.api import ProbedDownstream, ProbeParams

    pm = PluginManager()
    built_in = [pm.get("downstream", n).cls for n in ("pr", "asr", "sid", "er", "sf", "abx")]
    assert sorted(built_in, key=lambda cls: (cls.order, cls.name)) == built_in
    probed = [cls for cls in built_in if issubclass(cls, ProbedDownstream)]
    assert [cls.name for cls in probed] == ["pr", "asr", "sid", "er", "sf"]
    for cls in probed:
        assert issubclass(cls.Params, ProbeParams) and cls.Params is not ProbeParams
        assert set(cls.protocols) == {"embedded", "superb"}


def test_er_settings_carry_its_folds():
    from plugins.downstreams.er import EmotionRecognition

    plugin = EmotionRecognition()
    settings = plugin.settings(validate_params(plugin.Params, {"max_folds": 3, "dev_ratio": 0.25, "steps": 7}, "er"))
    assert (settings.max_folds, settings.dev_ratio, settings.steps, settings.lr) == (3, 0.25, 7, 5e-3)


def test_every_probed_downstream_keeps_its_predictions(evaluated, tiny):
    """What each model predicted per test item: the reference and the hypothesis, from which the metric
    is recomputed independently (accuracy by comparison, PER and WER by edit distance)."""
    import editdistance

    results, _, _ = evaluated
    test = {r["id"]: r for r in tiny.utterances("test")}
    for name in ("pr", "sf", "asr", "sid"):
        res = results[name]
        assert [p["id"] for p in res.predictions] == [i["id"] for i in res.items], name
    sid = results["sid"].predictions
    assert [p["ref"] for p in sid] == [test[p["id"]]["speaker"] for p in sid]
    acc = 100.0 * sum(p["ref"] == p["hyp"] for p in sid) / len(sid)
    assert acc == pytest.approx(results["sid"].metrics["acc"])
    pr = results["pr"].predictions
    per = 100.0 * sum(editdistance.eval(p["ref"], p["hyp"]) for p in pr) / sum(len(p["ref"]) for p in pr)
    assert per == pytest.approx(results["pr"].metrics["per"])
    asr = results["asr"].predictions
    assert [p["ref"] for p in asr] == [test[p["id"]]["text"] for p in asr]
    wer = sum(editdistance.eval(p["ref"].split(), p["hyp"].split()) for p in asr) / sum(
        len(p["ref"].split()) for p in asr)
    assert 100.0 * wer == pytest.approx(results["asr"].metrics["wer"])
    er = results["er"]
    assert [(p["id"], p["fold"]) for p in er.predictions] == [(i["id"], i["fold"]) for i in er.items]
    for fold in er.extra["folds"]:
        mine = [p for p in er.predictions if p["fold"] == fold["fold"]]
        assert 100.0 * sum(p["ref"] == p["hyp"] for p in mine) / len(mine) == pytest.approx(fold["acc"])


def test_ctc_probes_under_superb_train_on_sorted_windows_as_s3prl_buckets(tiny):
    from harness.data.batching import FixedBatchSampler, SortedBucketSampler, SortedSliceSampler
    from harness.evaluation.probe import train_sampler

    pm = PluginManager()
    rows = tiny.utterances(tiny.split_for("pr", "train"))

    def sampler(name: str, params: dict):
        plugin = pm.create("downstream", name)
        parsed = validate_params(plugin.Params, params, name)
        task = plugin.make_task(tiny, parsed)
        return task, train_sampler(task, rows, plugin.settings(parsed), seed=0)

    for name in ("pr", "sf"):
        task, chosen = sampler(name, {"protocol": "superb"})
        assert isinstance(chosen, SortedSliceSampler), name
        lengths = [len(task.target(rows[i])) for i in chosen.order]  # label lengths, longest first
        assert lengths == sorted(lengths, reverse=True) and lengths[0] > lengths[-1]
    _, asr = sampler("asr", {"protocol": "superb", "batch_size": 8})  # s3prl's ASR: buckets by audio length
    assert isinstance(asr, SortedBucketSampler)
    assert [len(b) for b in asr.batches] == [4] * 6  # 24 utterances: 3 buckets of 8, each halved
    by_duration = sorted(range(len(rows)), key=lambda i: -rows[i]["duration"])
    assert [i for b in asr.batches for i in b] == by_duration
    for name in ("pr", "sf", "asr"):
        assert isinstance(sampler(name, {})[1], FixedBatchSampler)  # embedded: random batches
    _, sid = sampler("sid", {"protocol": "superb"})
    assert isinstance(sid, FixedBatchSampler)  # s3prl shuffles its utterance-level tasks
    _, forced = sampler("sid", {"sorted_batches": True})
    assert [rows[i]["duration"] for i in forced.order] == sorted((r["duration"] for r in rows), reverse=True)
    # left unset, the new field stays out of the dumped parameters, so existing stage keys do not move
    plugin = pm.create("downstream", "pr")
    assert "sorted_batches" not in validate_params(plugin.Params, {}, "pr").model_dump()
    assert validate_params(plugin.Params, {"sorted_batches": False}, "pr").model_dump()["sorted_batches"] is False


def test_a_probe_trains_on_sorted_windows_end_to_end(tiny, tmp_path):
    pm = PluginManager()
    plugin = pm.create("downstream", "pr")
    params = validate_params(plugin.Params, {"protocol": "superb", "steps": 4, "eval_every": 2}, "pr")
    result = plugin.evaluate(FakeUpstream(), tiny, params, make_ctx(tmp_path))
    assert result.extra["steps"] == 4 and result.metrics["per"] >= 0.0


@pytest.mark.parametrize("name", ["pr", "sid", "er", "sf", "asr", "asv"])
def test_superb_heads_train_in_fp32_as_s3prls_and_embedded_ones_under_autocast(name):
    downstream = PluginManager().create("downstream", name)
    for protocol, amp in (("superb", False), ("embedded", True)):
        settings = downstream.settings(validate_params(downstream.Params, {"protocol": protocol}, name))
        assert settings.amp is amp and settings.train_config().amp is amp
