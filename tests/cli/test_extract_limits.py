"""`harness extract` refuses in one sentence, before building the model, what it cannot do well."""

from __future__ import annotations

import numpy as np
import soundfile as sf

from harness.cli import extract_cmd, main


def _audio(folder, seconds: float) -> None:
    folder.mkdir()
    n = int(seconds * 16000)
    sf.write(folder / "talk.wav", (0.3 * np.sin(np.arange(n) / 7)).astype(np.float32), 16000)


def test_an_out_that_is_a_file_is_one_sentence(tmp_path, capsys):
    _audio(tmp_path / "audio", 1.0)
    out = tmp_path / "feats"
    out.write_text("mine")
    code = main(["extract", "--upstream", "fbank", "--audio-dir", str(tmp_path / "audio"), "--layer", "0",
                 "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and f"{out} is a file, not a folder; choose another --out." in err
    assert out.read_text() == "mine"


def test_a_file_longer_than_the_stated_limit_is_refused_with_the_fix(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(extract_cmd, "MAX_FILE_SECONDS", 2.0)
    _audio(tmp_path / "audio", 3.0)
    built = []
    monkeypatch.setattr("plugins.upstreams.fbank.FbankPlugin.build", lambda *a: built.append(a))
    code = main(["extract", "--upstream", "fbank", "--audio-dir", str(tmp_path / "audio"), "--layer", "0",
                 "--out", str(tmp_path / "feats")])
    err = capsys.readouterr().err
    assert code == 2 and not built and not (tmp_path / "feats").exists()
    assert "talk.wav lasts 3 s, longer than the 2 s extract takes in one piece; cut it into segments of at most 2 s" \
        in err
