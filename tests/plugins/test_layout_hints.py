"""Hints for data in a slightly different layout: LibriSpeech as .wav, a root one level above the
distribution, one string for a list parameter, SID test speakers that training never saw."""

from __future__ import annotations

import json
import logging

import pytest

from harness.cli import main
from harness.core.errors import CorpusError
from harness.core.manifest import PreparedCorpus
from harness.core.params import parse_key_values, validate_params
from harness.core.registry import PluginManager
from plugins.corpora.librispeech import LibriSpeech, LibriSpeechParams
from plugins.corpora.voxceleb1 import VoxCeleb1
from plugins.downstreams.sid import unseen_speakers
from tests.downstream_helpers import FakeUpstream, make_ctx, make_tiny_corpus
from tests.plugins.test_corpora_loaders import librispeech_tree, prepare, rows_by_id, voxceleb_tree, wav  # noqa: F401


def test_librispeech_as_wav_is_read_and_said(librispeech_tree, tmp_path, caplog):  # noqa: F811
    for flac in sorted(librispeech_tree.rglob("*.flac")):
        wav(flac.with_suffix(".wav"), seed=0)
        flac.unlink()
    with caplog.at_level(logging.WARNING):
        corpus = prepare(LibriSpeech, librispeech_tree, tmp_path)
    assert all(r["path"].endswith(".wav") for r in rows_by_id(corpus).values())
    example = librispeech_tree / "train-clean-100" / "19" / "198" / "19-198-0000.wav"
    assert (f"librispeech: 2 utterances of train-clean-100 are .wav files where the distribution has .flac "
            f"(e.g. {example}); reading the .wav files.") in caplog.text


@pytest.mark.parametrize(("plugin_cls", "tree", "expected"), [
    (LibriSpeech, "librispeech_tree", "train-clean-100 (the train-clean-100 subset)"),
    (VoxCeleb1, "voxceleb_tree", "iden_split.txt (the identification split list)"),
])
def test_a_root_one_level_above_names_the_right_one(plugin_cls, tree, expected, request, tmp_path):
    root = request.getfixturevalue(tree)
    above = root.parent
    with pytest.raises(CorpusError) as err:
        prepare(plugin_cls, above, tmp_path)
    assert str(err.value) == (f"{plugin_cls.name}: expected {above}/{expected} but it is missing; {above} looks "
                              f"like the folder above the distribution: point root at {root}.")


def test_one_string_for_a_list_parameter_is_a_one_element_list(librispeech_tree, tmp_path):  # noqa: F811
    params = validate_params(LibriSpeechParams, parse_key_values(
        [f"root={librispeech_tree}", "dev=test-clean", "test=[dev-clean, test-clean]"]), "librispeech")
    assert params.dev == ["test-clean"] and params.test == ["dev-clean", "test-clean"]
    code = main(["prepare", "librispeech", "--out", str(tmp_path / "p"), "--param", f"root={librispeech_tree}",
                 "--param", "dev=test-clean"])
    assert code == 0
    dev = [json.loads(line)["id"] for line in (tmp_path / "p" / "dev.jsonl").read_text().splitlines()]
    assert dev == ["61-70-0000"]
    # a field that takes a string keeps it
    assert validate_params(LibriSpeechParams, {"root": "x", "audio_check": "header"}, "c").audio_check == "header"


def test_sid_reports_test_speakers_absent_from_training(tmp_path):
    root = make_tiny_corpus(tmp_path / "tones")
    corpus = PreparedCorpus(root)
    assert unseen_speakers(corpus) is None
    test = [json.loads(line) for line in (root / "test.jsonl").read_text().splitlines()]
    for row in test[:2]:
        row["speaker"] = "s9"
    (root / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in test))
    vocab = json.loads((root / "vocab.json").read_text())
    vocab["speakers"] = sorted({*vocab.get("speakers", []), "s9"})
    (root / "vocab.json").write_text(json.dumps(vocab))
    corpus = PreparedCorpus(root)
    n_test = len({r["speaker"] for r in test})
    note = (f"sid: 1 of {n_test} test speakers of {corpus.name!r} have no training utterance (s9), so their 2 test "
            "utterances count as errors; split by utterance, not by speaker (as VoxCeleb1's iden_split does), "
            "to measure identification.")
    assert unseen_speakers(corpus) == note
    plugin = PluginManager().create("downstream", "sid")
    ctx = make_ctx(tmp_path / "stage")
    result = plugin.evaluate(FakeUpstream(), corpus, validate_params(plugin.Params, {"steps": 4}, "sid"), ctx)
    assert note in ctx.messages and result.extra["unseen_test_speakers"] == note
