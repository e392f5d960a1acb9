"""Hub ids where a local path is expected (nothing is downloaded: say how to fetch the folder), and
`harness extract` reading the family from the checkpoint folder when --upstream is left out."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from harness.cli import main
from harness.core.errors import CheckpointError
from harness.core.hub import looks_like_hub_id
from harness.core.registry import default_manager
from harness.models.model_io import save_model

HINT = ("facebook/hubert-base-ls960 looks like a Hugging Face Hub id, but nothing is downloaded at run time: "
        "fetch the folder first (`huggingface-cli download facebook/hubert-base-ls960 --local-dir "
        "checkpoints/hubert-base-ls960`) and give checkpoints/hubert-base-ls960 instead.")


def test_what_looks_like_a_hub_id(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert looks_like_hub_id("facebook/hubert-base-ls960")
    (tmp_path / "facebook").mkdir()  # a local folder of that name: a path, just a missing one
    assert not looks_like_hub_id("facebook/hubert-base-ls960")
    for text in ("hubert.pt", "/abs/x", "a/b/c", "./x/y", "org/model.pt"):
        assert not looks_like_hub_id(text), text


def test_a_hub_id_says_how_to_fetch_the_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    plugin = default_manager().create("upstream", "hubert")
    with pytest.raises(CheckpointError) as err:
        plugin.build(plugin.Params(checkpoint="facebook/hubert-base-ls960"), seed=0)
    assert str(err.value) == f"checkpoint facebook/hubert-base-ls960 does not exist; {HINT}"
    (tmp_path / "wavs").mkdir()
    code = main(["extract", "--checkpoint", "facebook/hubert-base-ls960", "--audio-dir", "wavs", "--out", "f"])
    assert code == 2
    assert " ".join(capsys.readouterr().err.split()) == (
        f"error: --checkpoint facebook/hubert-base-ls960 does not exist; {HINT}")
    recipe = tmp_path / "r.yaml"
    recipe.write_text("name: r\noutput: out\ncorpora: {c: {plugin: synthetic, n_utterances: 8}}\n"
                      "upstreams: {h: {plugin: hubert, checkpoint: facebook/hubert-base-ls960}}\n"
                      "downstreams: {pr: {plugin: pr, corpus: c}}\n")
    assert main(["run", str(recipe)]) == 2
    assert HINT in " ".join(capsys.readouterr().err.split())


@pytest.mark.parametrize("layout", ["transformers", "harness"])
def test_extract_reads_the_family_from_the_folder(tmp_path, layout, capsys):
    plugins = default_manager()
    plugin = plugins.create("upstream", "wav2vec2")
    model = plugin.build(plugin.Params(preset="tiny"), seed=0)
    if layout == "transformers":
        plugin.export(model, "hf", tmp_path / "ckpt")
    else:
        save_model(model, tmp_path / "ckpt")
    (tmp_path / "wavs").mkdir()
    wav = (0.2 * np.sin(np.arange(8000) / 9.0)).astype(np.float32)
    sf.write(tmp_path / "wavs" / "a.wav", wav, 16000, subtype="FLOAT")
    args = ["extract", "--checkpoint", str(tmp_path / "ckpt"), "--audio-dir", str(tmp_path / "wavs"),
            "--layer", "-1", "--out", str(tmp_path / "f")]
    assert main(args) == 0
    with torch.no_grad():
        expected = model.eval()(torch.from_numpy(wav)[None], torch.tensor([8000])).hidden_states[-1][0]
    np.testing.assert_allclose(np.load(tmp_path / "f" / "a.npy"), expected.numpy(), atol=1e-5)
    assert '"upstream": "wav2vec2"' in (tmp_path / "f" / "extract.json").read_text()


def test_extract_without_upstream_or_family_says_what_to_pass(tmp_path, capsys):
    (tmp_path / "wavs").mkdir()
    assert main(["extract", "--preset", "tiny", "--audio-dir", str(tmp_path / "wavs"), "--out", "f"]) == 2
    assert "--upstream is needed with --preset" in capsys.readouterr().err
    (tmp_path / "x.pt").write_bytes(b"")
    assert main(["extract", "--checkpoint", str(tmp_path / "x.pt"), "--audio-dir", str(tmp_path / "wavs"),
                 "--out", "f"]) == 2
    assert "cannot tell the family of" in capsys.readouterr().err
