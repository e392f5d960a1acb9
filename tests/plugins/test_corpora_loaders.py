"""Each real-corpus loader on a tiny fake tree in its distribution's layout, and the one-sentence
error when an expected file is missing."""

from __future__ import annotations

import importlib
import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from harness.core.errors import AudioError, CorpusError
from harness.core.manifest import PreparedCorpus
from harness.data import audio
from tests.corpus_fixtures import prepare_for_tests


def wav(path: Path, seconds: float = 0.5, sr: int = 16000, seed: int = 0, fmt: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    x = 0.3 * np.sin(2 * np.pi * (200 + 50 * seed) * t) + 0.01 * rng.standard_normal(len(t))
    sf.write(path, x.astype(np.float32), sr, format=fmt, subtype="PCM_16")
    return path


def prepare(plugin_cls, root: Path, tmp: Path, **params) -> PreparedCorpus:
    plugin = plugin_cls()
    out = prepare_for_tests(plugin, plugin.Params(root=root, **params), tmp / "prepared")
    return PreparedCorpus(out)


def rows_by_id(corpus: PreparedCorpus) -> dict[str, dict]:
    return {u["id"]: {**u, "split": s} for s in corpus.splits for u in corpus.utterances(s)}


# ----------------------------------------------------------------------------- LibriSpeech


@pytest.fixture
def librispeech_tree(tmp_path) -> Path:
    root = tmp_path / "LibriSpeech"
    for subset, spk, chap, words in (
        ("train-clean-100", "19", "198", ["HELLO WORLD", "THE WORLD"]),
        ("dev-clean", "84", "121", ["HELLO THE WORLD", "HELLO ZZYZX"]),
        ("test-clean", "61", "70", ["WORLD"]),
    ):
        folder = root / subset / spk / chap
        lines = []
        for i, text in enumerate(words):
            utt = f"{spk}-{chap}-{i:04d}"
            wav(folder / f"{utt}.flac", fmt="FLAC", seed=i)
            lines.append(f"{utt} {text}")
        (folder / f"{spk}-{chap}.trans.txt").write_text("\n".join(lines) + "\n")
    (root / "librispeech-lexicon.txt").write_text(
        "HELLO\tHH AH0 L OW1\nHELLO\tHH EH0 L OW1\nWORLD\tW ER1 L D\nTHE\tDH AH0\n"
    )
    return root


def test_librispeech(librispeech_tree, tmp_path, caplog):
    from plugins.corpora.librispeech import LibriSpeech

    with caplog.at_level(logging.WARNING):
        corpus = prepare(LibriSpeech, librispeech_tree, tmp_path)
    rows = rows_by_id(corpus)
    assert set(rows) == {"19-198-0000", "19-198-0001", "84-121-0000", "61-70-0000"}  # ZZYZX is not in the lexicon
    assert "left out 1 dev utterances with words missing from the lexicon (e.g. ZZYZX)" in caplog.text
    r = rows["19-198-0000"]
    assert r["split"] == "train" and r["speaker"] == "19" and r["text"] == "hello world"
    assert [p[0] for p in r["phones"]] == ["hh", "ah", "l", "ow", "w", "er", "l", "d"]  # first pronunciation
    assert r["duration"] == 0.5 and Path(r["path"]).is_file()
    assert corpus.meta["phone_times"] is False and "phones" in corpus.meta["label_fields"]


def test_librispeech_sid_splits_hold_out_utterances_of_the_training_speakers(librispeech_tree, tmp_path):
    from plugins.corpora.librispeech import LibriSpeech

    for spk in ("201", "202", "203"):  # three more training speakers of twelve half-second utterances
        folder = librispeech_tree / "train-clean-100" / spk / "5"
        for i in range(12):
            wav(folder / f"{spk}-5-{i:04d}.flac", fmt="FLAC", seed=i % 4)
        (folder / f"{spk}-5.trans.txt").write_text("".join(f"{spk}-5-{i:04d} THE WORLD\n" for i in range(12)))
    corpus = prepare(LibriSpeech, librispeech_tree, tmp_path, sid_train_hours=6 / 3600)
    split = {role: corpus.utterances(corpus.split_for("sid", role)) for role in ("train", "dev", "test")}
    assert [corpus.split_for("sid", role) for role in ("train", "dev", "test")] == ["sid_train", "sid_dev", "sid_test"]
    speakers = {r["speaker"] for r in corpus.utterances("train")}
    assert {r["speaker"] for r in split["train"]} == speakers  # every speaker kept
    assert sum(r["duration"] for r in split["train"]) <= 6.0 < sum(r["duration"] for r in corpus.utterances("train"))
    assert split["dev"] and split["test"] and {r["speaker"] for r in split["dev"] + split["test"]} <= speakers
    ids = [[r["id"] for r in rows] for rows in split.values()]
    assert len(set().union(*ids)) == sum(map(len, ids))  # disjoint
    assert corpus.split_for("pr", "test") == "test"  # other tasks keep the official subsets


# ----------------------------------------------------------------------------- TIMIT


def timit_sentence(folder: Path, name: str, phn: str, text: str) -> None:
    wav(folder / f"{name}.WAV", seconds=0.5, fmt="WAV")
    (folder / f"{name}.PHN").write_text(phn)
    (folder / f"{name}.TXT").write_text(f"0 8000 {text}\n")


PHN = (
    "0 1000 h#\n1000 2000 sh\n2000 2500 ix\n2500 2600 q\n2600 3000 pcl\n3000 3500 p\n3500 5000 ao\n"
    "5000 6000 s\n6000 8000 h#\n"
)


@pytest.fixture
def timit_tree(tmp_path) -> Path:
    root = tmp_path / "TIMIT"
    for part, dr, spk in (("TRAIN", "DR1", "FCJF0"), ("TEST", "DR1", "MDAB0"), ("TEST", "DR2", "FAKS0")):
        folder = root / part / dr / spk
        timit_sentence(folder, "SI1027", PHN, "She is up, all.")
        timit_sentence(folder, "SA1", PHN, "She had your dark suit.")
    return root


def test_timit(timit_tree, tmp_path):
    from plugins.corpora.timit import Timit

    corpus = prepare(Timit, timit_tree, tmp_path)
    rows = rows_by_id(corpus)
    assert set(rows) == {"fcjf0_si1027", "mdab0_si1027", "faks0_si1027"}  # SA sentences left out
    assert rows["fcjf0_si1027"]["split"] == "train"
    assert rows["mdab0_si1027"]["split"] == "test" and rows["faks0_si1027"]["split"] == "dev"  # core test set
    r = rows["fcjf0_si1027"]
    assert r["text"] == "she is up all"
    # ix -> ih, q joins ih, the pcl closure -> sil, ao -> aa; all contiguous
    assert r["phones"] == [["sil", 0.0, 0.0625], ["sh", 0.0625, 0.125], ["ih", 0.125, 0.1625],
                           ["sil", 0.1625, 0.1875], ["p", 0.1875, 0.21875], ["aa", 0.21875, 0.3125],
                           ["s", 0.3125, 0.375], ["sil", 0.375, 0.5]]  # fmt: skip
    assert len(corpus.vocab["phones"]) == 39
    items = (corpus.root / "test.item").read_text().splitlines()
    assert items[1:] == ["mdab0_si1027 0.2188 0.3125 aa p s mdab0"]  # no silence in an item or its context


# ----------------------------------------------------------------------------- VoxCeleb1


@pytest.fixture
def voxceleb_tree(tmp_path) -> Path:
    root = tmp_path / "VoxCeleb1"
    lines = []
    for spk in ("id10001", "id10002"):
        for i, split in enumerate((1, 1, 2, 3), 1):
            rel = f"{spk}/vid{i % 2}/{i:05d}.wav"
            wav(root / "wav" / rel, seed=i)
            lines.append(f"{split} {rel}")
    (root / "iden_split.txt").write_text("\n".join(lines) + "\n")
    return root


def test_voxceleb1(voxceleb_tree, tmp_path):
    from plugins.corpora.voxceleb1 import VoxCeleb1

    corpus = prepare(VoxCeleb1, voxceleb_tree, tmp_path)
    assert [len(corpus.utterances(s)) for s in ("train", "dev", "test")] == [4, 2, 2]
    r = rows_by_id(corpus)["id10001-vid1-00001"]
    assert r["speaker"] == "id10001" and r["split"] == "train"
    assert corpus.vocab["speakers"] == ["id10001", "id10002"]


def test_voxceleb1_bad_audio_stops_or_is_skipped(voxceleb_tree, tmp_path, caplog):
    from plugins.corpora.voxceleb1 import VoxCeleb1

    silent = voxceleb_tree / "wav" / "id10002" / "vid1" / "00003.wav"
    sf.write(silent, np.zeros(8000, np.float32), 16000)
    with pytest.raises(AudioError) as err:
        prepare(VoxCeleb1, voxceleb_tree, tmp_path / "a")
    assert str(err.value).startswith("1 of 2 voxceleb1 audio files are bad (")
    assert f"{silent} is all silence" in str(err.value)
    with caplog.at_level(logging.WARNING):
        corpus = prepare(VoxCeleb1, voxceleb_tree, tmp_path / "b", skip_bad=True)
    assert len(corpus.utterances("dev")) == 1
    assert "skipped 1 of 2 voxceleb1 audio files that are bad" in caplog.text


# ----------------------------------------------------------------------------- IEMOCAP


@pytest.fixture
def iemocap_tree(tmp_path) -> Path:
    root = tmp_path / "IEMOCAP_full_release"
    for s in range(1, 6):
        dialog = f"Ses0{s}F_impro01"
        lines = ["% header line", ""]
        for i, (spk, label) in enumerate((("F", "neu"), ("M", "exc"), ("F", "fru"), ("M", "ang"), ("F", "sad"))):
            utt = f"{dialog}_{spk}{i:03d}"
            wav(root / f"Session{s}" / "sentences" / "wav" / dialog / f"{utt}.wav", seed=i)
            lines.append(f"[{i}.0000 - {i}.5000]\t{utt}\t{label}\t[2.5000, 2.5000, 2.5000]")
        labels = root / f"Session{s}" / "dialog" / "EmoEvaluation" / f"{dialog}.txt"
        labels.parent.mkdir(parents=True)
        labels.write_text("\n".join(lines) + "\n")
    return root


def test_iemocap(iemocap_tree, tmp_path):
    from plugins.corpora.iemocap import Iemocap

    corpus = prepare(Iemocap, iemocap_tree, tmp_path, test_session=2, dev_fraction=0.3)
    rows = rows_by_id(corpus)
    assert len(rows) == 20  # frustrated is not one of the four classes
    assert rows["Ses01F_impro01_M001"]["emotion"] == "happy"  # excited merged into happy
    assert rows["Ses01F_impro01_M001"]["speaker"] == "Ses01M" and rows["Ses03F_impro01_F004"]["fold"] == 2
    assert {r["split"] for r in rows.values() if r["fold"] == 1} == {"test"}
    assert {r["split"] for r in rows.values() if r["fold"] != 1} == {"train", "dev"}
    assert corpus.vocab["emotions"] == ["angry", "happy", "neutral", "sad"] and corpus.meta["folds"] == 5


def test_iemocap_dev_session_as_the_paper_fine_tunes_on_sessions_2_to_5(iemocap_tree, tmp_path):
    from plugins.corpora.iemocap import Iemocap

    corpus = prepare(Iemocap, iemocap_tree, tmp_path, dev_session=1)
    folds = {s: {r["fold"] for r in corpus.utterances(s)} for s in ("train", "dev", "test")}
    assert folds == {"train": {1, 2, 3, 4}, "dev": {0}, "test": {0}}
    assert corpus.utterances("dev") == corpus.utterances("test")
    other = prepare(Iemocap, iemocap_tree, tmp_path / "other", dev_session=2)
    assert {s: {r["fold"] for r in other.utterances(s)} for s in ("train", "dev", "test")} == {
        "train": {2, 3, 4}, "dev": {1}, "test": {0}}


# ----------------------------------------------------------------------------- Audio SNIPS


@pytest.fixture
def snips_tree(tmp_path) -> Path:
    root = tmp_path / "SNIPS"
    lines = []
    for folder, spk in (("train", "Joanna"), ("train", "Brian"), ("valid", "Amy"), ("test", "Brian")):
        for i in range(2):
            utt = f"{spk}-snips-{folder}-{i}"
            wav(root / folder / f"{utt}.wav", seed=i)
            lines.append(f"{utt} BOS Play Miles Davis on spotify EOS\tO O B-artist I-artist O B-service PlayMusic")
    (root / "all.iob.snips.txt").write_text("\n".join(lines) + "\n")
    return root


def test_snips(snips_tree, tmp_path):
    from plugins.corpora.snips import Snips

    corpus = prepare(Snips, snips_tree, tmp_path)
    rows = rows_by_id(corpus)
    assert {r["speaker"] for r in corpus.utterances("train")} == {"Joanna"}  # Brian is a test voice
    assert {r["speaker"] for r in corpus.utterances("test")} == {"Brian"}
    r = rows["Joanna-snips-train-0"]
    assert r["text"] == "play miles davis on spotify" and r["intent"] == "PlayMusic"
    assert r["slots"] == [["artist", "miles davis"], ["service", "spotify"]]
    assert corpus.vocab["slot_types"] == ["artist", "service"]


# ----------------------------------------------------------------------------- AudioSet


@pytest.fixture
def audioset_tree(tmp_path) -> Path:
    root = tmp_path / "audioset"
    root.mkdir()
    (root / "class_labels_indices.csv").write_text(
        'index,mid,display_name\n0,/m/09x0r,"Speech"\n1,/m/0bt9lr,"Dog"\n2,/m/06mb1,"Rain"\n3,/m/09l8g,"Human voice"\n'
    )
    ontology = [
        {"id": "/m/09l8g", "name": "Human voice", "child_ids": ["/m/09x0r"]},
        {"id": "/m/09x0r", "name": "Speech", "child_ids": []},
        {"id": "/m/0bt9lr", "name": "Dog", "child_ids": []},
        {"id": "/m/06mb1", "name": "Rain", "child_ids": []},
        {"id": "/m/015lz1", "name": "Singing", "child_ids": []},
    ]
    (root / "ontology.json").write_text(json.dumps(ontology))
    header = "# Segments csv created today\n# num_ytids=9\n# YTID, start_seconds, end_seconds, positive_labels\n"
    train = [("aaaaaaaaaa1", "/m/0bt9lr"), ("aaaaaaaaaa2", "/m/06mb1,/m/0bt9lr"), ("aaaaaaaaaa3", "/m/09x0r,/m/06mb1"),
             ("aaaaaaaaaa4", "/m/06mb1"), ("aaaaaaaaaa5", "/m/0bt9lr"), ("aaaaaaaaaa6", "/m/06mb1")]  # fmt: skip
    (root / "balanced_train_segments.csv").write_text(
        header + "".join(f'{y}, 30.000, 40.000, "{labels}"\n' for y, labels in train)
    )
    (root / "eval_segments.csv").write_text(header + '-bbbbbbbbb1, 0.000, 10.000, "/m/06mb1"\n')
    for i, (ytid, _) in enumerate(train[:-1]):  # the last training clip was never downloaded
        wav(root / "audio" / "balanced_train_segments" / f"Y{ytid}.wav", seed=i)
    wav(root / "audio" / "eval_segments" / "-bbbbbbbbb1_0.000.flac", fmt="FLAC")
    return root


def test_audioset_keeps_non_speech_clips_and_skips_missing_audio(audioset_tree, tmp_path, caplog):
    from plugins.corpora.audioset import AudioSet

    with caplog.at_level(logging.WARNING):
        corpus = prepare(AudioSet, audioset_tree, tmp_path, dev_fraction=0.3)
    rows = rows_by_id(corpus)
    assert "aaaaaaaaaa3_30000" not in rows  # has Speech (under Human voice)
    assert "aaaaaaaaaa6_30000" not in rows and "skipped 1 " in caplog.text  # no audio file
    assert set(rows) == {"aaaaaaaaaa1_30000", "aaaaaaaaaa2_30000", "aaaaaaaaaa4_30000", "aaaaaaaaaa5_30000",
                         "-bbbbbbbbb1_0"}  # fmt: skip
    assert rows["aaaaaaaaaa2_30000"]["tags"] == ["Dog", "Rain"] and rows["-bbbbbbbbb1_0"]["split"] == "test"
    assert corpus.vocab["tags"] == ["Dog", "Rain"]
    assert {r["split"] for r in rows.values()} == {"train", "dev", "test"}


# ----------------------------------------------------------------------------- CREMA-D


@pytest.fixture
def crema_tree(tmp_path) -> Path:
    root = tmp_path / "CREMA-D"
    for actor in range(1001, 1011):
        for emo in ("ANG", "HAP", "SAD", "NEU"):
            wav(root / "AudioWAV" / f"{actor}_DFA_{emo}_XX.wav", seconds=0.3)
    return root


def test_crema_d_holds_out_whole_actors(crema_tree, tmp_path):
    from plugins.corpora.crema_d import CremaD

    corpus = prepare(CremaD, crema_tree, tmp_path, dev_fraction=0.2, test_fraction=0.2)
    spk = {s: {u["speaker"] for u in corpus.utterances(s)} for s in corpus.splits}
    assert len(spk["test"]) == 2 and len(spk["dev"]) == 2 and len(spk["train"]) == 6
    assert not (spk["test"] & spk["train"]) and not (spk["dev"] & spk["train"])
    assert corpus.vocab["emotions"] == ["angry", "happy", "neutral", "sad"]
    assert rows_by_id(corpus)["1001_DFA_ANG_XX"]["emotion"] == "angry"


# ----------------------------------------------------------------------------- Speech Commands


@pytest.fixture
def speech_commands_tree(tmp_path) -> Path:
    root, test_root = tmp_path / "speech_commands_v0.01", tmp_path / "speech_commands_test_set_v0.01"
    for k in range(24):
        for word in ("yes", "bed"):
            wav(root / word / f"{k:08x}_nohash_0.wav", seconds=0.2, seed=k % 5)
    wav(root / "_background_noise_" / "white_noise.wav", seconds=3.5)
    for label in ("yes", "_unknown_", "_silence_"):
        wav(test_root / label / "0c40e715_nohash_0.wav", seconds=0.2)
    return root


def _documented_split(filename: str) -> str:
    """The dataset README's rule, written out again: SHA-1 of the speaker part, a percentage of 2**27 - 1."""
    import hashlib

    speaker = filename.split("_nohash_")[0]
    percentage = (int(hashlib.sha1(speaker.encode()).hexdigest(), 16) % 2**27) * (100.0 / (2**27 - 1))
    return "dev" if percentage < 10 else "test" if percentage < 20 else "train"


def test_speech_commands_splits_by_speaker_hash_and_reads_the_separate_test_set(speech_commands_tree, tmp_path):
    from plugins.corpora.speech_commands import SpeechCommands

    test_root = speech_commands_tree.parent / "speech_commands_test_set_v0.01"
    corpus = prepare(SpeechCommands, speech_commands_tree, tmp_path, test_root=test_root)
    rows = rows_by_id(corpus)
    for k in range(24):
        expected = _documented_split(f"{k:08x}_nohash_0.wav")
        for word in ("yes", "bed"):
            row = rows.get(f"{word}-{k:08x}_nohash_0")
            assert (row["split"] if row else "test") == expected  # the archive's own test part is left out
            if row:
                assert row["keyword"] == word and row["speaker"] == f"{k:08x}"
    silence = sorted((r["start"], r["split"]) for r in rows.values() if r["keyword"] == "_silence_" and "end" in r)
    assert silence == [(0.0, "dev"), (1.0, "train"), (2.0, "train")]  # whole seconds of the noise file
    assert {r["keyword"] for r in corpus.utterances("test")} == {"yes", "_unknown_", "_silence_"}
    assert corpus.meta["label_fields"] == ["keyword", "speaker"]


def test_speech_commands_names_a_missing_test_set_or_noise_folder(speech_commands_tree, tmp_path):
    from plugins.corpora.speech_commands import SpeechCommands

    missing = tmp_path / "no_test_set"
    with pytest.raises(CorpusError, match=f"expected {missing} \\(the test set folder\\)"):
        prepare(SpeechCommands, speech_commands_tree, tmp_path, test_root=missing)
    noise = speech_commands_tree / "_background_noise_"
    shutil.rmtree(noise)
    with pytest.raises(CorpusError, match=f"expected {noise} \\(the background noise folder\\)"):
        prepare(SpeechCommands, speech_commands_tree, tmp_path / "again", test_root=speech_commands_tree.parent)


# ----------------------------------------------------------------------------- Fluent Speech Commands


@pytest.fixture
def fluent_tree(tmp_path) -> Path:
    root = tmp_path / "fluent_speech_commands_dataset"
    (root / "data").mkdir(parents=True)
    header = ",path,speakerId,transcription,action,object,location"
    intents = [("activate", "lights", "kitchen", "Turn on the kitchen lights"),
               ("deactivate", "music", "none", "Stop the music"), ("increase", "heat", "none", "Heat up")]
    for split, speaker in (("train", "2BqVo8kVB2Skwgyb"), ("valid", "35v28XaVEns4WXOv"), ("test", "4aGjX3AG5xcxeL7a")):
        lines = [header]
        for i, (action, obj, location, text) in enumerate(intents):
            rel = f"wavs/speakers/{speaker}/{split}-{i}.wav"
            wav(root / rel, seconds=0.3, seed=i)
            lines.append(f"{i},{rel},{speaker},{text},{action},{obj},{location}")
        (root / "data" / f"{split}_data.csv").write_text("\n".join(lines) + "\n")
    return root


def test_fluent_commands_gives_intents_of_three_slots(fluent_tree, tmp_path):
    from plugins.corpora.fluent_commands import FluentCommands

    corpus = prepare(FluentCommands, fluent_tree, tmp_path)
    row = rows_by_id(corpus)["train-0"]
    assert row["split"] == "train" and row["speaker"] == "2BqVo8kVB2Skwgyb"
    assert row["intent"] == ["activate", "lights", "kitchen"] and row["text"] == "turn on the kitchen lights"
    assert [len(corpus.utterances(s)) for s in ("train", "dev", "test")] == [3, 3, 3]
    assert "deactivate / music / none" in corpus.vocab["intents"]


def test_fluent_commands_names_a_missing_column(fluent_tree, tmp_path):
    from plugins.corpora.fluent_commands import FluentCommands

    listing = fluent_tree / "data" / "valid_data.csv"
    listing.write_text(listing.read_text().replace(",location", ",place"))
    with pytest.raises(CorpusError, match="valid_data.csv lacks the column\\(s\\) location; it must have"):
        prepare(FluentCommands, fluent_tree, tmp_path)


# ----------------------------------------------------------------------------- TED-LIUM 3


@pytest.fixture
def tedlium_tree(tmp_path) -> Path:
    root = tmp_path / "TEDLIUM_release-3"
    for split in ("train", "dev", "test"):
        talk = f"Speaker{split.title()}_2010"
        wav(root / "legacy" / split / "sph" / f"{talk}.sph", seconds=3.0, fmt="NIST")
        stm = root / "legacy" / split / "stm" / f"{talk}.stm"
        stm.parent.mkdir(parents=True)
        stm.write_text(
            f"{talk} 1 {talk} 0.00 1.00 <o,f0,male> it 's a <unk> talk\n"
            f"{talk} 1 inter_segment_gap 1.00 1.50 <o,,unknown> ignore_time_segment_in_scoring\n"
            f"{talk} 1 {talk} 1.50 2.75 <o,f0,male> thank you\n"
        )
    return root


def test_tedlium_segments(tedlium_tree, tmp_path):
    from plugins.corpora.tedlium import Tedlium

    corpus = prepare(Tedlium, tedlium_tree, tmp_path)
    rows = corpus.utterances("dev")
    assert [r["text"] for r in rows] == ["it's a talk", "thank you"]
    assert rows[1]["start"] == 1.5 and rows[1]["end"] == 2.75 and rows[1]["duration"] == 1.25
    assert rows[0]["id"] == "SpeakerDev_2010-0000000" and rows[0]["speaker"] == "SpeakerDev_2010"
    assert len(audio.load_utterance(rows[1])) == 20000
    assert corpus.meta["segments"] is True
    # training segments with <unk> are left out (the paper's filter), unless asked to strip the token
    assert [r["text"] for r in corpus.utterances("train")] == ["thank you"]
    stripped = prepare(Tedlium, tedlium_tree, tmp_path / "strip", train_unk="strip")
    assert [r["text"] for r in stripped.utterances("train")] == ["it's a talk", "thank you"]
    # train_hours: a random subset within the budget (1.3 s: one of the two segments of 1 s and 1.25 s)
    capped = prepare(Tedlium, tedlium_tree, tmp_path / "capped", train_unk="strip", train_hours=1.3 / 3600)
    assert len(capped.utterances("train")) == 1 and len(capped.utterances("dev")) == 2


# ----------------------------------------------------------------------------- AISHELL-3


@pytest.fixture
def aishell_tree(tmp_path) -> Path:
    root = tmp_path / "AISHELL-3"
    for part, spk, n in (("train", "SSB0005", 20), ("test", "SSB0009", 2)):
        lines = []
        for i in range(1, n + 1):
            name = f"{spk}{i:04d}.wav"
            wav(root / part / "wav" / spk / name, seconds=0.3, seed=i % 3)
            lines.append(f"{name}\t广 guang3 州 zhou1 女 nv3")
        (root / part / "content.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def test_aishell3(aishell_tree, tmp_path):
    from plugins.corpora.aishell3 import Aishell3

    corpus = prepare(Aishell3, aishell_tree, tmp_path, dev_fraction=0.2)
    rows = rows_by_id(corpus)
    assert rows["SSB00050001"]["text"] == "广州女" and rows["SSB00050001"]["speaker"] == "SSB0005"
    assert len(corpus.utterances("test")) == 2 and len(corpus.utterances("dev")) >= 1
    assert len(corpus.utterances("train")) + len(corpus.utterances("dev")) == 20


# ----------------------------------------------------------------------------- Common Voice


def _mp3(path: Path, seconds: float, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * 48000)) / 48000
    sf.write(path, (0.3 * np.sin(2 * np.pi * (220 + 40 * seed) * t)).astype(np.float32), 48000, format="MP3")


@pytest.fixture
def common_voice_tree(tmp_path) -> Path:
    root = tmp_path / "cv-corpus-17.0" / "zh-CN"
    header = "client_id\tpath\tsentence_id\tsentence\tup_votes\tdown_votes\n"
    for k, split in enumerate(("train", "dev", "test")):
        lines = []
        for i in range(2):
            clip = f"common_voice_zh-CN_{k}{i}.mp3"
            _mp3(root / "clips" / clip, 0.6, k + i)
            lines.append(f"spk{i}\t{clip}\ts{k}{i}\t“你好，” 世界 {k}{i}！\t2\t0\n")
        (root / f"{split}.tsv").write_text(header + "".join(lines), encoding="utf-8")
    return root


def test_common_voice_reads_mp3_clips_at_16_khz_with_punctuation_removed(common_voice_tree, tmp_path):
    from plugins.corpora.common_voice import CommonVoice

    corpus = prepare(CommonVoice, common_voice_tree, tmp_path)
    rows = rows_by_id(corpus)
    assert sorted(rows) == [f"common_voice_zh-CN_{k}{i}" for k in range(3) for i in range(2)]
    first = rows["common_voice_zh-CN_21"]
    assert (first["split"], first["speaker"], first["text"]) == ("test", "spk1", "你好 世界 21")
    wave = audio.load(first["path"])
    assert abs(len(wave) / audio.SAMPLE_RATE - 0.6) < 0.1  # decoded from MP3, resampled from 48 kHz
    kept = prepare(CommonVoice, common_voice_tree, tmp_path / "kept", keep_punctuation=True)
    assert rows_by_id(kept)["common_voice_zh-CN_21"]["text"] == "“你好，” 世界 21！"


def test_common_voice_names_a_missing_column_or_clip(common_voice_tree, tmp_path):
    from plugins.corpora.common_voice import CommonVoice

    (common_voice_tree / "clips" / "common_voice_zh-CN_10.mp3").unlink()
    with pytest.raises(CorpusError, match=r"common_voice: expected .*common_voice_zh-CN_10.mp3 \(the audio of line 2 "
                                          r"of dev.tsv\) but it is missing"):
        prepare(CommonVoice, common_voice_tree, tmp_path)
    _mp3(common_voice_tree / "clips" / "common_voice_zh-CN_10.mp3", 0.6, 1)
    (common_voice_tree / "test.tsv").write_text("client_id\tfile\tsentence\n", encoding="utf-8")
    with pytest.raises(CorpusError, match="test.tsv lacks the column path; point root at a Common Voice language "
                                          "folder"):
        prepare(CommonVoice, common_voice_tree, tmp_path / "again")


# ----------------------------------------------------------------------------- Libri2Mix diarization


@pytest.fixture
def librimix_tree(tmp_path) -> Path:
    """SUPERB's diarization folders under ``data/`` and the mixtures under ``Libri2Mix/`` beside it."""
    root, mixes = tmp_path / "data", tmp_path / "Libri2Mix"
    for k, split in enumerate(("train", "dev", "test")):
        folder = root / split
        folder.mkdir(parents=True)
        recs = [f"{split}{n}" for n in range(2)]
        for n, rec in enumerate(recs):
            wav(mixes / split / f"{rec}.wav", seconds=1.0, seed=k + n)
        absolute = f"{recs[0]} {mixes / split / (recs[0] + '.wav')}\n"
        (folder / "wav.scp").write_text(absolute + f"{recs[1]} {split}/{recs[1]}.wav\n")
        (folder / "segments").write_text("".join(
            f"{rec}_{spk} {rec} {start} {end}\n"
            for rec in recs for spk, start, end in (("b", 0.40, 0.95), ("a", 0.05, 0.60))))
        (folder / "utt2spk").write_text("".join(f"{rec}_{spk} {split}-{spk}\n" for rec in recs for spk in "ab"))
    return root


def test_librimix_reads_speech_turns_per_recording(librimix_tree, tmp_path):
    from plugins.corpora.librimix import LibriMix

    corpus = prepare(LibriMix, librimix_tree, tmp_path, audio_root=librimix_tree.parent / "Libri2Mix")
    rows = rows_by_id(corpus)
    assert sorted(rows) == ["dev0", "dev1", "test0", "test1", "train0", "train1"]
    assert rows["test1"]["turns"] == [["test-a", 0.05, 0.6], ["test-b", 0.4, 0.95]]
    assert rows["dev0"]["duration"] == pytest.approx(1.0) and rows["dev0"]["split"] == "dev"
    assert corpus.meta["label_fields"] == ["turns"]


def test_librimix_asks_for_audio_root_and_refuses_commands(librimix_tree, tmp_path):
    from plugins.corpora.librimix import LibriMix

    with pytest.raises(CorpusError, match=r"outside root .*; set audio_root to the folder that holds the mixtures"):
        prepare(LibriMix, librimix_tree, tmp_path / "1")
    scp = librimix_tree / "dev" / "wav.scp"
    scp.write_text("dev0 sox in.flac -t wav - |\n")
    with pytest.raises(CorpusError, match="gives recording 'dev0' as a command; write the mixtures to files"):
        prepare(LibriMix, librimix_tree, tmp_path / "2", audio_root=librimix_tree.parent / "Libri2Mix")
    scp.write_text("dev0 dev/dev0.wav\n")
    (librimix_tree / "dev" / "segments").write_text("nobody dev0 0.1 0.2\n")
    with pytest.raises(CorpusError, match="line 1 names utterance 'nobody', which utt2spk lacks"):
        prepare(LibriMix, librimix_tree, tmp_path / "3", audio_root=librimix_tree.parent / "Libri2Mix")
    (librimix_tree / "dev" / "segments").write_text("dev0_a dev0 0.6 0.2\n")
    with pytest.raises(CorpusError, match="line 1 runs from 0.6 to 0.2; a segment starts at 0 or later"):
        prepare(LibriMix, librimix_tree, tmp_path / "4", audio_root=librimix_tree.parent / "Libri2Mix")


# ----------------------------------------------------------------------------- missing pieces


MISSING = [
    # corpus, its fake tree, what is removed, the start of the one sentence that names it
    ("librispeech.LibriSpeech", "librispeech_tree", "test-clean",
     "librispeech: expected {path} (the test-clean subset) but it is missing; point root at the unpacked "
     "distribution."),
    ("timit.Timit", "timit_tree", "TEST/DR2/FAKS0/SI1027.TXT",
     "timit: expected {path} next to SI1027.PHN but it is missing."),
    ("voxceleb1.VoxCeleb1", "voxceleb_tree", "iden_split.txt",
     "voxceleb1: expected {path} (the identification split list)"),
    ("iemocap.Iemocap", "iemocap_tree", "Session4", "iemocap: expected {path} (one of the five sessions)"),
    ("snips.Snips", "snips_tree", "all.iob.snips.txt", "snips: expected {path} (the transcripts with slot tags)"),
    ("audioset.AudioSet", "audioset_tree", "ontology.json",
     "audioset: expected {path} (the ontology, for the non-speech"),
    ("crema_d.CremaD", "crema_tree", "AudioWAV", "crema_d: expected {path} (the audio folder) but it is missing"),
    ("tedlium.Tedlium", "tedlium_tree", "legacy/test/sph/SpeakerTest_2010.sph",
     "tedlium: expected {path} (the audio of SpeakerTest_2010.stm) but it is missing."),
    ("fluent_commands.FluentCommands", "fluent_tree", "data/test_data.csv",
     "fluent_commands: expected {path} (the test list) but it is missing"),
    ("librimix.LibriMix", "librimix_tree", "test/segments",
     "librimix: expected {path} (speech segments) but it is missing"),
    ("aishell3.Aishell3", "aishell_tree", "test/wav/SSB0009/SSB00090002.wav",
     "aishell3: expected {path} (the audio of SSB00090002) but it is missing; point root at the unpacked "
     "distribution."),
]


@pytest.mark.parametrize(("plugin", "tree", "removed", "message"), MISSING, ids=[m[0].split(".")[0] for m in MISSING])
def test_a_missing_piece_of_the_layout_is_named(plugin, tree, removed, message, request, tmp_path):
    module, _, cls = plugin.partition(".")
    plugin_cls = getattr(importlib.import_module(f"plugins.corpora.{module}"), cls)
    root = request.getfixturevalue(tree)
    path = root / removed
    shutil.rmtree(path) if path.is_dir() else path.unlink()
    with pytest.raises(CorpusError) as err:
        prepare(plugin_cls, root, tmp_path)
    assert str(err.value).startswith(message.format(path=path))
