"""Checkpoints from outside: loaded without running code, refused with one clear sentence otherwise."""

from __future__ import annotations

import argparse
import builtins
import os
import pickle
from pathlib import Path

import pytest
import torch

from harness.core.errors import CheckpointError
from harness.models.checkpoints import Inert, load_torch_checkpoint, pickle_globals, to_plain
from harness.models.fairseq import checkpoint_configs, hf_architecture, parse_conv_layers


class _SystemCall:
    """A pickle payload that runs a shell command when unpickled by an unrestricted loader."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _ExecCall:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (builtins.exec, (f"open({str(self.marker)!r}, 'w').close()",))


def _one_sentence(message: str) -> None:
    assert message.count(". ") == 0 and message.endswith("."), message
    assert "\n" not in message


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
@pytest.mark.parametrize("payload", [_SystemCall, _ExecCall], ids=["os.system", "builtins.exec"])
def test_code_in_a_checkpoint_is_refused_and_never_runs(tmp_path: Path, legacy: bool, payload):
    marker = tmp_path / "payload-ran"
    path = tmp_path / "evil.pt"
    ckpt = {"model": {"w": torch.ones(3)}, "extra": payload(marker)}
    torch.save(ckpt, path, _use_new_zipfile_serialization=not legacy)
    with pytest.raises(CheckpointError) as err:
        load_torch_checkpoint(path)
    message = str(err.value)
    assert "was refused" in message and "nothing in it was run" in message
    assert ("posix.system" in message) or ("builtins.exec" in message)
    _one_sentence(message)
    assert not marker.exists()


def test_protocol4_pickle_with_code_is_refused(tmp_path: Path):
    marker = tmp_path / "payload-ran"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"x": _SystemCall(marker)}, protocol=4))
    with pytest.raises(CheckpointError, match="posix.system"):
        load_torch_checkpoint(path)
    assert not marker.exists()
    # a real unrestricted load would have run it: the payload is live
    pickle.loads(path.read_bytes())
    assert marker.exists()


def test_torchscript_archives_are_refused(tmp_path: Path):
    path = tmp_path / "scripted.pt"
    torch.jit.script(torch.nn.Linear(2, 2)).save(str(path))
    with pytest.raises(CheckpointError, match="TorchScript archive, which carries code"):
        load_torch_checkpoint(path)


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_truncated_checkpoints_get_one_sentence(tmp_path: Path, legacy: bool):
    good = tmp_path / "good.pt"
    torch.save({"model": {"w": torch.randn(1000)}, "args": argparse.Namespace(a=1)}, good,
               _use_new_zipfile_serialization=not legacy)
    cut = tmp_path / "cut.pt"
    data = good.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError) as err:
        load_torch_checkpoint(cut)
    assert "truncated" in str(err.value)
    _one_sentence(str(err.value))


def test_files_that_are_not_checkpoints(tmp_path: Path):
    wav = tmp_path / "audio.wav"
    wav.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(range(40)))
    with pytest.raises(CheckpointError, match=r"not a PyTorch checkpoint \(\w+\)"):
        load_torch_checkpoint(wav)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_torch_checkpoint(tmp_path / "missing.pt")


def test_namespace_configs_load_as_inert_placeholders(tmp_path: Path):
    path = tmp_path / "w2v.pt"
    args = argparse.Namespace(arch="wav2vec2", conv_feature_layers="[(512, 10, 5)]", normalize=True, encoder_layers=3)
    torch.save({"args": args, "model": {"w": torch.arange(4.0)}}, path)
    assert "argparse.Namespace" in pickle_globals(path)
    ckpt = load_torch_checkpoint(path)
    assert isinstance(ckpt["args"], Inert) and ckpt["args"].qualified_name == "argparse.Namespace"
    assert torch.equal(ckpt["model"]["w"], torch.arange(4.0))
    model_cfg, task_cfg = checkpoint_configs(ckpt)
    assert model_cfg["encoder_layers"] == 3 and task_cfg["normalize"] is True


def test_to_plain_resolves_interpolations():
    cfg = {"task": {"label_rate": 50}, "model": {"label_rate": "${task.label_rate}", "x": "${nope}"}}
    plain = to_plain(cfg)
    assert plain["model"]["label_rate"] == 50 and plain["model"]["x"] == "${nope}"


# --------------------------------------------------------------------------- conv_feature_layers


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("[(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512,2,2)] * 2",
         [(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512, 2, 2)] * 2),
        ("[(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512,2,2)] + [(512,2,2)]",
         [(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512, 2, 2)] * 2),
        ("2 * [(64, 3, 1)]", [(64, 3, 1)] * 2),
        ("[(32, 10, 5), (32, 8, 4)]", [(32, 10, 5), (32, 8, 4)]),
    ],
)
def test_conv_layers_are_parsed_without_eval(spec, expected):
    assert parse_conv_layers(spec) == expected


@pytest.mark.parametrize(
    "spec",
    [
        "__import__('os').system('true')",
        "[(512, 10, 5)] + layers",
        "[(512, 10)]",
        "[(512, 10, 5)] * 10**9",
        "[(512, -1, 5)]",
        "[]",
        "[(512, 10, 5)",
    ],
)
def test_bad_conv_layers_are_refused(spec):
    with pytest.raises(CheckpointError, match="conv_feature_layers"):
        parse_conv_layers(spec)


def test_fairseq_architecture_defaults_and_refusals():
    arch = hf_architecture({"encoder_layers": 2, "extractor_mode": "layer_norm", "layer_norm_first": True}, Path("x"))
    assert arch["num_hidden_layers"] == 2 and arch["feat_extract_norm"] == "layer" and arch["do_stable_layer_norm"]
    assert arch["conv_dim"] == [512] * 7 and arch["conv_stride"] == [5, 2, 2, 2, 2, 2, 2]
    with pytest.raises(CheckpointError, match="conformer layers"):
        hf_architecture({"layer_type": "conformer"}, Path("x.pt"))
    with pytest.raises(CheckpointError, match="positional convolution"):
        hf_architecture({"pos_conv_depth": 5}, Path("x.pt"))
