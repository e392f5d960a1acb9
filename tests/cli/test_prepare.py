"""`harness prepare`: a corpus from the command line; bad input is exit code 2 and one sentence."""

from __future__ import annotations

import json

import pytest

from harness.cli import main
from harness.core.manifest import PreparedCorpus


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["prepare", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_prepare_writes_a_corpus(tmp_path, capsys):
    out = tmp_path / "ns"
    code, stdout, _ = run(capsys, "synthetic_nonspeech", "--out", str(out), "--param", "n_clips=16",
                          "--param", "clip_seconds=1", "--json")  # fmt: skip
    assert code == 0
    meta = json.loads(stdout)
    assert meta["corpus"] == "synthetic_nonspeech" and meta["n_utterances"]["train"] > 0
    corpus = PreparedCorpus(out)
    assert corpus.meta == meta and len(corpus.utterances("test")) >= 1
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("harness-prepare-")]  # staging removed


def one_sentence(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    return lines[0].removeprefix("error: ")


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["synthetic", "--param", "n_utterances=abc"],
         "corpus synthetic.n_utterances: input should be a valid integer, unable to parse string as an integer "
         "(got 'abc')."),
        (["synthetic", "--param", "n_utterance=10"], "corpus synthetic.n_utterance: unknown key 'n_utterance'"),
        (["synthetic", "--param", "n_utterances"], "--param 'n_utterances' is not of the form key=value"),
        (["synthetc"], "there is no corpus plugin named 'synthetc'; did you mean 'synthetic'?"),
        (["librispeech", "--param", "root=/nonexistent/LibriSpeech"],
         "corpus librispeech: root=/nonexistent/LibriSpeech does not exist; pass an existing folder with --param."),
        (["voxceleb1"], "corpus voxceleb1.root: this key is required."),
    ],
)  # fmt: skip
def test_bad_input_is_exit_2_and_one_sentence(tmp_path, capsys, argv, expected):
    code, _, err = run(capsys, *argv[:1], "--out", str(tmp_path / "x"), *argv[1:])
    assert code == 2
    assert one_sentence(err).startswith(expected)
    assert not (tmp_path / "x").exists()


def test_an_existing_corpus_is_not_overwritten_without_force(tmp_path, capsys):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    code, _, err = run(capsys, "synthetic_nonspeech", "--out", str(out), "--param", "n_clips=12")
    assert code == 2
    assert one_sentence(err) == f"{out} already exists and is not empty; choose another --out or pass --force."
    assert (out / "keep.txt").read_text() == "mine"
