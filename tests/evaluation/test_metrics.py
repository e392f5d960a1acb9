"""Metrics against hand-computed cases (and s3prl's own SF metric code when it is installed)."""

from __future__ import annotations

import pytest

from harness.evaluation.metrics import (
    accuracy,
    cer_stats,
    error_rate,
    parse_slots,
    ratio,
    sequence_edits,
    slot_filling,
    slot_type_f1_item,
    slot_value_cer_stats,
    wer_stats,
)

REF = "play B-artist the beatles E-artist on B-service spotify E-service"


def test_per_counts_substitutions_insertions_and_deletions():
    # a b c d -> a x c d e: one substitution (b->x), one insertion (e)
    assert sequence_edits(list("abcd"), list("axcde")) == [2.0, 4.0]
    # a b c -> b c: one deletion
    assert sequence_edits(list("abc"), list("bc")) == [1.0, 3.0]
    # corpus PER sums edits and reference lengths: (2 + 1) / (4 + 3)
    assert error_rate([list("abcd"), list("abc")], [list("axcde"), list("bc")]) == pytest.approx(300 / 7)
    # everything deleted, everything inserted
    assert sequence_edits(["aa", "b"], []) == [2.0, 2.0]
    assert sequence_edits([], ["x"]) == [1.0, 0.0]


def test_wer_and_cer():
    assert wer_stats("the cat sat on the mat", "the cat sat on mat") == [1.0, 6.0]
    assert wer_stats("the cat sat", "") == [3.0, 3.0]
    assert wer_stats("a b", "a  b c") == [1.0, 2.0]  # spaces collapse; one insertion
    assert cer_stats("kitten", "sitting") == [3.0, 6.0]
    assert ratio([[1, 6], [3, 3]]) == pytest.approx(100 * 4 / 9)
    assert ratio([]) == 0.0


def test_accuracy():
    assert accuracy(["a", "b", "c", "d"], ["a", "x", "c", "d"]) == 75.0


def test_parse_slots_like_s3prl():
    parsed = parse_slots(REF, clean_values=False)
    assert parsed.slots == (("artist", "the beatles"), ("service", "spotify"))
    assert parsed.text == "play the beatles on spotify"
    # a marker of another type inside a hypothesis value: the outer slot wins (non-greedy up to the
    # same type's end) and hypothesis values are cleaned of markers
    nested = "B-artist the B-album x E-album beatles E-artist"
    assert parse_slots(nested, clean_values=True).slots == (("artist", "the x beatles"),)
    assert parse_slots(nested, clean_values=False).slots == (("artist", "the B-album x E-album beatles"),)
    # an end marker of another type closes nothing; spaces collapse before matching
    assert parse_slots("B-artist foo E-album", clean_values=True).slots == ()
    assert parse_slots("B-city  new   york E-city", clean_values=True).slots == (("city", "new york"),)


def test_slot_type_f1_hand_cases():
    # types {artist, service} vs {artist}: P = 1, R = 1/2, F1 = 2/3
    assert slot_type_f1_item(REF, "play B-artist the beetles E-artist on spotify") == pytest.approx(2 / 3)
    assert slot_type_f1_item(REF, REF) == 1.0
    # F1 is over the *sets* of types: a repeated type counts once
    assert slot_type_f1_item("B-a x E-a B-a y E-a", "B-a z E-a") == 1.0
    # both without slots: 1; one side empty: 0; disjoint types: 0
    assert slot_type_f1_item("play music", "play musik") == 1.0
    assert slot_type_f1_item(REF, "play the beatles") == 0.0
    assert slot_type_f1_item("play music", "B-a x E-a") == 0.0
    assert slot_type_f1_item("B-a x E-a", "B-b x E-b") == 0.0
    # one right type out of three hypothesised, one of one reference: P = 1/3, R = 1, F1 = 1/2
    assert slot_type_f1_item("B-a x E-a", "B-a x E-a B-b y E-b B-c z E-c") == pytest.approx(0.5)


def test_slot_value_cer_hand_cases():
    # artist: "the beatles" vs "the beetles" = 1 edit of 11; service missing: 7 deletions of 7
    assert slot_value_cer_stats(REF, "play B-artist the beetles E-artist on spotify") == [8.0, 18.0]
    # several values of one type: each reference value takes the closest hypothesis value
    ref = "B-city paris E-city to B-city rome E-city"
    hyp = "B-city rome E-city to B-city paros E-city"
    assert slot_value_cer_stats(ref, hyp) == [1.0, 9.0]  # paris~paros (1), rome=rome (0)
    # no reference slot: nothing to count, whatever the hypothesis says
    assert slot_value_cer_stats("play music", "B-a junk E-a") == [0.0, 0.0]
    # set metrics: F1 averages per utterance, CER pools characters
    metrics = slot_filling([REF, ref], ["play B-artist the beetles E-artist on spotify", hyp])
    assert metrics["f1"] == pytest.approx(100 * (2 / 3 + 1) / 2)
    assert metrics["cer"] == pytest.approx(100 * 9 / 27)


def test_slot_metrics_agree_with_s3prl():
    metric = pytest.importorskip("s3prl.downstream.ctc.metric")
    refs = [REF, "B-city paris E-city to B-city rome E-city", "play music", "B-a x E-a", "B-x  a  b E-x c"]
    hyps = [
        "play B-artist the beetles E-artist on spotify",
        "B-city rome E-city to B-city paros E-city",
        "B-a junk E-a",
        "B-a x E-a B-b y E-b B-c z E-c",
        "B-x a b c E-x",
    ]
    ours = slot_filling(refs, hyps)
    assert ours["f1"] == pytest.approx(100 * metric.slot_type_f1(hyps, refs))
    assert ours["cer"] == pytest.approx(100 * metric.slot_value_cer(hyps, refs))


def test_asr_reports_cer_for_a_language_without_spaces_and_keeps_wer_keys_by_default():
    from harness.core.plan import stage_key
    from plugins.downstreams.asr import ASRParams, SpeechRecognitionTask

    chars = list("广州女你好 ")
    zh = SpeechRecognitionTask(chars, 8, (8,), metric="cer")
    assert (zh.metrics, zh.primary_metric) == ({"cer": "lower"}, "cer")
    # one wrong character of three: a word error rate would call the whole unspaced sentence wrong
    assert zh.item_stats("广州女", "广州你") == {"cer": [1.0, 3.0]}
    assert SpeechRecognitionTask(chars, 8, (8,)).item_stats("广州女", "广州你") == {"wer": [1.0, 1.0]}
    assert zh.item_stats("你好  广州", " 你好 广州") == {"cer": [0.0, 5.0]}  # spaces normalised to one
    key = lambda p: stage_key("evaluate", "asr", "2", p.model_dump(mode="json"), {}, 0)  # noqa: E731
    assert "metric" not in ASRParams().model_dump(mode="json")
    assert key(ASRParams()) == key(ASRParams(metric="wer")) != key(ASRParams(metric="cer"))
