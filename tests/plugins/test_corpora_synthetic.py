"""The embedded synthetic speech corpus: plan, phone mapping, layout, alignments, labels, determinism."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from harness.core.manifest import PreparedCorpus
from harness.data.phones import ARPABET
from plugins.corpora._synth import phonemap
from plugins.corpora._synth.render import close_alignment
from plugins.corpora.synthetic import STYLES, SyntheticParams, make_plan

# ----------------------------------------------------------------------------- plan and mapping (no audio)


def test_default_plan_has_at_least_24_speakers_balanced_styles_and_protocol_splits():
    specs = make_plan(SyntheticParams())
    assert len(specs) == 400
    seen = {s.speaker for s in specs if s.split != "test_unseen"}
    unseen = {s.speaker for s in specs if s.split == "test_unseen"}
    assert len(seen) >= 24 and len(unseen) >= 4 and not seen & unseen
    for split in ("train", "dev", "test"):  # speaker ID: every seen speaker in every split
        assert {s.speaker for s in specs if s.split == split} == seen
    counts = Counter(s.emotion for s in specs)
    assert set(counts) == set(STYLES) and max(counts.values()) - min(counts.values()) <= len(seen) // 2
    folds = {s.speaker: s.fold for s in specs}
    assert all(len({s.fold for s in specs if s.speaker == spk}) == 1 for spk in folds)  # fold by speaker
    assert set(folds.values()) == {0, 1, 2, 3}
    assert len(make_plan(SyntheticParams(n_utterances=1000))) == 1000


def test_clean_plan_has_no_perturbation_and_nuisance_plan_has_some():
    clean = make_plan(SyntheticParams(n_utterances=40, clean=True))
    noisy = make_plan(SyntheticParams(n_utterances=40))
    tract = {s.speaker: s.speed for s in clean}  # without nuisance the speed is the speaker's tract scale
    assert all(s.speed == tract[s.speaker] for s in clean) and len(set(tract.values())) == len(tract)
    ratios = [s.speed / tract[s.speaker] for s in noisy]
    assert all(abs(r - 1) <= 0.05 + 1e-9 for r in ratios) and any(abs(r - 1) > 0.01 for r in ratios)
    assert [s.text for s in clean] == [s.text for s in noisy]  # the same sentences either way


def test_slots_are_substrings_of_the_text_in_order():
    for spec in make_plan(SyntheticParams(n_utterances=200)):
        pos = 0
        for _, value in spec.slots:
            found = f" {spec.text} ".find(f" {value} ", pos)
            assert found >= 0, (spec.text, spec.slots)
            pos = found + len(value)


def test_every_mapped_phone_is_in_the_inventory():
    for mnemonic in phonemap._TABLE:
        assert set(phonemap.map_phoneme(mnemonic) or ()) <= set(phonemap.INVENTORY)
    assert set(ARPABET) <= {p for m in phonemap._TABLE.values() for p in m} | {"zh"}
    assert phonemap.map_phoneme("'aI") == ("ay",) and phonemap.map_phoneme(",O@") == ("ao", "r")


def test_align_splits_shared_starts_joins_marks_and_keeps_one_r():
    sr = 1000
    events = [("_:", 0), ("m", 100), ("'aI", 200), ("l", 400), ("z", 400), (";", 500), ("st", 550),
              ("'o@", 600), ("r", 700), ("_", 800)]  # fmt: skip
    phones = phonemap.align(events, 900, sr)
    # l and z share a start: they split 400-500; ";" (a mark) and "st" (unknown) join z; "o@" before
    # espeak's own "r" keeps one r
    assert phones == [["sil", 0.0, 0.1], ["m", 0.1, 0.2], ["ay", 0.2, 0.4], ["l", 0.4, 0.45], ["z", 0.45, 0.6],
                      ["ao", 0.6, 0.7], ["r", 0.7, 0.8], ["sil", 0.8, 0.9]]  # fmt: skip


def test_close_alignment_pads_with_silence_and_drops_empty_phones():
    rows = close_alignment([["m", 0.1, 0.2], ["ay", 0.2, 0.2], ["z", 0.2, 0.35]], 0.5)
    assert rows == [["sil", 0.0, 0.1], ["m", 0.1, 0.2], ["z", 0.2, 0.35], ["sil", 0.35, 0.5]]


# ----------------------------------------------------------------------------- the prepared fixture corpus


@pytest.fixture(scope="module")
def corpus(synthetic_corpus) -> PreparedCorpus:
    return PreparedCorpus(synthetic_corpus)


def test_layout_meta_and_vocab(corpus):
    meta, vocab = corpus.meta, corpus.vocab
    assert meta["corpus"] == "synthetic" and meta["splits"] == ["train", "dev", "test", "test_unseen"]
    assert set(meta["label_fields"]) == {"speaker", "text", "phones", "emotion", "fold", "intent", "slots"}
    assert meta["task_splits"] == {"sf": {"test": "test_unseen"}, "asv": {"test": "test_unseen"}} and meta["folds"] == 4
    assert meta["abx_items"] == {"dev": "dev.item", "test": "test.item"} and meta["sample_rate"] == 16000
    assert corpus.split_for("sf", "test") == "test_unseen" and corpus.split_for("sid", "test") == "test"
    assert vocab["phones"] == sorted([*ARPABET, "sil"]) and vocab["emotions"] == sorted(STYLES)
    assert vocab["speakers"] == sorted({u["speaker"] for u in corpus.utterances("train")})
    rows = [u for s in corpus.splits for u in corpus.utterances(s)]
    assert {u["intent"] for u in rows} <= set(vocab["intents"])
    assert {s[0] for u in rows for s in u["slots"]} <= set(vocab["slot_types"])
    for line in (corpus.root / "train.jsonl").read_text().splitlines()[:3]:
        assert not Path(json.loads(line)["path"]).is_absolute()  # relative to the corpus folder


def test_alignments_are_contiguous_inside_the_utterance_and_match_the_audio(corpus):
    inventory = set(corpus.vocab["phones"])
    for split in corpus.splits:
        for u in corpus.utterances(split):
            info = sf.info(u["path"])
            assert info.samplerate == 16000 and info.channels == 1 and info.subtype == "PCM_16"
            assert u["duration"] == pytest.approx(info.frames / 16000, abs=1e-4)
            phones = u["phones"]
            assert phones[0][1] == 0.0 and phones[-1][2] == u["duration"]
            assert phones[0][0] == "sil" and phones[-1][0] == "sil"
            assert all(p[0] in inventory and p[2] > p[1] for p in phones)
            assert all(a[2] == b[1] for a, b in zip(phones, phones[1:]))
            speech = [p for p in phones if p[0] != "sil"]
            assert len(speech) >= len(u["text"].split())  # at least one phone per word


def test_speech_sits_where_the_alignment_says(corpus):
    """Energy inside non-silence phones is well above the energy of the leading silence."""
    ratios = []
    for u in corpus.utterances("dev")[:10]:
        wav, sr = sf.read(u["path"])
        lead = wav[: int(u["phones"][0][2] * sr)]
        speech = np.concatenate([wav[int(a * sr) : int(b * sr)] for p, a, b in u["phones"] if p != "sil"])
        ratios.append(np.mean(speech**2) / max(np.mean(lead**2), 1e-12))
    assert np.median(ratios) > 2.0


def test_splits_follow_the_protocols(corpus):
    spk = {s: {u["speaker"] for u in corpus.utterances(s)} for s in corpus.splits}
    assert spk["train"] == spk["dev"] == spk["test"]
    assert not spk["test_unseen"] & spk["train"]
    folds = {}
    for s in corpus.splits:
        for u in corpus.utterances(s):
            assert folds.setdefault(u["speaker"], u["fold"]) == u["fold"]
    assert set(folds.values()) == set(range(corpus.meta["folds"]))


def test_abx_item_files_are_in_libri_light_format(corpus):
    for split in ("dev", "test"):
        lines = (corpus.root / corpus.meta["abx_items"][split]).read_text().splitlines()
        assert lines[0] == "#file onset offset #phone prev-phone next-phone speaker"
        rows = {u["id"]: u for u in corpus.utterances(split)}
        assert len(lines) - 1 == corpus.meta["abx_item_counts"][split] > 100
        for line in lines[1:]:
            f, onset, offset, phone, prev, nxt, speaker = line.split()
            u = rows[f]
            assert 0 <= float(onset) < float(offset) <= u["duration"] and speaker == u["speaker"]
            assert "sil" not in (phone, prev, nxt)
            assert [phone, float(onset), float(offset)] in u["phones"]


def test_labels_carry_information_for_a_simple_baseline(corpus):
    """Mean and standard deviation of FBank frames + logistic regression tell speakers and styles
    apart far above chance, on the corpus with nuisance (4-fold cross-validation over seen speakers)."""
    import kaldi_native_fbank as knf
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rows = [u for s in ("train", "dev", "test") for u in corpus.utterances(s)]
    feats = []
    for u in rows:
        opts = knf.FbankOptions()
        opts.frame_opts.dither = 0.0
        opts.mel_opts.num_bins = 40
        fb = knf.OnlineFbank(opts)
        wav, sr = sf.read(u["path"], dtype="float32")
        fb.accept_waveform(sr, (wav * 32768).tolist())
        fb.input_finished()
        x = np.stack([fb.get_frame(i) for i in range(fb.num_frames_ready)])
        feats.append(np.concatenate([x.mean(0), x.std(0)]))
    x = np.stack(feats)
    for label, chance, factor in (("speaker", 1 / 8, 2.5), ("emotion", 1 / 4, 2.0)):
        y = [u[label] for u in rows]
        clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000, C=2.0))
        acc = cross_val_score(clf, x, y, cv=StratifiedKFold(4, shuffle=True, random_state=0)).mean()
        assert acc > factor * chance, (label, acc)  # measured: speaker 0.43, emotion 0.73


# ----------------------------------------------------------------------------- determinism

SCRIPT = """
import sys
from pathlib import Path
from plugins.corpora.synthetic import SyntheticCorpus, SyntheticParams
out = Path(sys.argv[1]); out.mkdir()
SyntheticCorpus().prepare(SyntheticParams(n_utterances=20, n_speakers=4, n_unseen_speakers=1), out, None)
"""


def tree_hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}  # fmt: skip


def test_two_fresh_processes_give_byte_identical_corpora(tmp_path):
    outs = [tmp_path / "a", tmp_path / "b"]
    procs = [subprocess.Popen([sys.executable, "-c", SCRIPT, str(o)], stderr=subprocess.PIPE) for o in outs]
    for p in procs:
        _, err = p.communicate(timeout=240)
        assert p.returncode == 0, err.decode()[-2000:]
    a, b = tree_hashes(outs[0]), tree_hashes(outs[1])
    assert len([k for k in a if k.endswith(".wav")]) == 20
    assert a == b


def test_output_does_not_depend_on_the_number_of_workers(tmp_path):
    from plugins.corpora.synthetic import generate

    params = SyntheticParams(n_utterances=8, n_speakers=2, n_unseen_speakers=1)
    one, two = tmp_path / "one", tmp_path / "two"
    rows1 = generate(params, one, workers=1)
    rows2 = generate(params, two, workers=2)
    assert rows1 == rows2
    assert tree_hashes(one) == tree_hashes(two)


def test_commands_grammar_gives_short_sentences_with_their_own_slots_in_order():
    from plugins.corpora._synth import text

    specs = make_plan(SyntheticParams(n_utterances=300, grammar="sf_commands"))
    default = make_plan(SyntheticParams(n_utterances=300))
    assert max(len(s.text.split()) for s in specs) <= 7 < max(len(s.text.split()) for s in default)
    assert {s.intent for s in specs} == set(text.intents("sf_commands")) == set(text.intents())
    values = text.grammar("sf_commands")["slots"]
    for spec in specs:
        assert spec.slots, spec.text  # every command carries at least one slot
        pos = 0
        for slot_type, value in spec.slots:
            assert value in values[slot_type]
            found = f" {spec.text} ".find(f" {value} ", pos)
            assert found >= 0, (spec.text, spec.slots)
            pos = found + len(value)
    assert len(text.words("sf_commands")) < len(text.words()) / 2


def test_a_render_server_child_imports_nothing(tmp_path):
    """Each utterance renders in a freshly forked child of a server: whatever the render imports on
    first use must already be loaded in the server, or every child pays for it again (about 1 s for
    scipy.signal, 50 times the render itself)."""
    script = f"""
import sys
from pathlib import Path
from plugins.corpora._synth import server
from plugins.corpora._synth.espeak import Espeak
from plugins.corpora._synth.render import render
from plugins.corpora.synthetic import SyntheticParams, make_plan, noise_config
server.preload()
engine = Espeak()
engine.preload()
params = SyntheticParams(n_utterances=8)
spec = make_plan(params)[0]
(Path({str(tmp_path)!r}) / "wav" / spec.split).mkdir(parents=True)
before = set(sys.modules)
render(engine, spec, {str(tmp_path)!r}, noise_config(params))
print(sorted(set(sys.modules) - before))
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.stdout.strip() == "[]"


def test_hvd_word_lists_add_a_split_and_leave_every_other_utterance_as_it_was():
    from plugins.corpora.synthetic import HVD_WORDS, WORDS_SPLIT

    params = SyntheticParams(n_utterances=60, n_speakers=4, n_unseen_speakers=1)
    plain, with_words = make_plan(params), make_plan(params.model_copy(update={"abx_words": 2}))
    assert with_words[: len(plain)] == plain
    words = with_words[len(plain) :]
    assert {s.split for s in words} == {WORDS_SPLIT}
    assert Counter(s.speaker for s in words) == {f"s{i:02d}": 2 for i in range(1, 5)} | {"u01": 2}
    for spec in words:
        assert sorted(spec.text.rstrip(".").split(", ")) == sorted(HVD_WORDS)
    assert len({s.text for s in words}) == len(words)  # each list in its own order
    # some voices only, spread evenly over all of them (the last is an unseen voice)
    some = make_plan(params.model_copy(update={"abx_words": 1, "abx_word_voices": 3}))[len(plain) :]
    assert [s.speaker for s in some] == ["s01", "s03", "u01"]
    # off by default, and then not part of the corpus's parameters (stage keys stay as they were)
    assert not {"abx_words", "abx_word_voices"} & set(params.model_dump())
    assert params.model_copy(update={"abx_words": 2}).model_dump()["abx_words"] == 2


def test_keyword_clips_add_three_splits_and_leave_every_other_utterance_as_it_was():
    from harness.data.keywords import KEYWORD_COMMANDS as COMMANDS
    from plugins.corpora._synth.keywords import OTHER_WORDS

    params = SyntheticParams(n_utterances=60, n_speakers=7, n_unseen_speakers=2)
    plain, with_keywords = make_plan(params), make_plan(params.model_copy(update={"keywords": 3}))
    assert with_keywords[: len(plain)] == plain
    clips = with_keywords[len(plain) :]
    split_of = {s.speaker: s.split for s in clips}
    assert split_of == {**{f"s{i:02d}": "ks_train" for i in range(1, 7)}, "s07": "ks_dev", "u01": "ks_test",
                        "u02": "ks_test"}
    rounds: dict[str, list[str]] = {}
    for spec in clips:
        rounds.setdefault(spec.id.rsplit("-", 1)[0], []).append(spec.text)
    assert len(rounds) == 9 * 3
    for words in rounds.values():  # each round: the ten commands and one other word, in its own order
        assert sorted(w for w in words if w in COMMANDS) == sorted(COMMANDS)
        assert len(words) == 11 and sum(w in OTHER_WORDS for w in words) == 1
    assert len({tuple(w) for w in rounds.values()}) > 1
    assert "keywords" not in params.model_dump()  # off by default: stage keys stay as they were


def test_hvd_word_lists_give_vowel_items_in_one_context_to_the_test_item_file(tmp_path):
    from harness.evaluation.abx import read_item_file
    from plugins.corpora.synthetic import HVD_WORDS, SyntheticCorpus
    from tests.corpus_fixtures import prepare_for_tests

    params = SyntheticParams(n_utterances=24, n_speakers=3, n_unseen_speakers=1, abx_words=1, clean=True)
    root = prepare_for_tests(SyntheticCorpus(), params, tmp_path / "c")
    corpus = PreparedCorpus(root)
    lists = corpus.utterances("abx_words")
    assert len(lists) == 4
    items = [it for it in read_item_file(root / "test.item") if it.file in {r["id"] for r in lists}]
    # espeak says each word as hh V d between pauses: one vowel item per word, all in /h _ d/
    assert len(items) == 4 * len(HVD_WORDS)
    assert {(it.prev, it.next) for it in items} == {("hh", "d")}
    assert len({it.phone for it in items}) == len(HVD_WORDS)
    assert not any(r["id"] in {x["id"] for x in lists} for r in corpus.utterances("test"))
