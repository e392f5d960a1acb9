"""Checkpoints that are harmless but unusual load; ones that would exhaust time or memory, or whose config
does not fit their weights, are refused in one sentence before any work is spent on them."""

from __future__ import annotations

import argparse
import builtins
import dataclasses
import json
import pickle
import sys
import time
import types
import typing
import zipfile
from pathlib import Path

import pytest
import torch

from harness.cli import main
from harness.core.errors import CheckpointError, HarnessError
from harness.models import checkpoints
from harness.models.checkpoints import load_torch_checkpoint
from harness.models.fairseq import checkpoint_configs
from harness.models.model_io import save_model
from plugins.upstreams.hubert import HubertParams, HubertPlugin


def _one_sentence(message: str) -> None:
    assert message.endswith(".") and "\n" not in message and ". " not in message, message


# --------------------------------------------------------------------------- omegaconf configs


@pytest.fixture()
def omegaconf_like():
    """``omegaconf`` container classes as they pickle (state dicts of metadata and content), present only
    while saving; their metadata holds ``typing.Tuple[int, ...]``, which pickles ``builtins.Ellipsis``."""
    names = ("omegaconf", "omegaconf.base", "omegaconf.dictconfig", "omegaconf.nodes")
    saved = {n: sys.modules.get(n) for n in names}
    mods = {n: types.ModuleType(n) for n in names}
    sys.modules.update(mods)

    @dataclasses.dataclass
    class ContainerMetadata:
        ref_type: typing.Any
        element_type: typing.Any
        key: typing.Any

    class AnyNode:
        def __init__(self, value):
            self._val = value
            self._metadata = ContainerMetadata(typing.Any, None, None)

    class DictConfig:
        def __init__(self, content, element_type=typing.Any):
            self._metadata = ContainerMetadata(typing.Dict[str, typing.Any], element_type, None)  # noqa: UP006
            self._content = {k: DictConfig(v) if isinstance(v, dict) else AnyNode(v) for k, v in content.items()}

    for cls, module in ((ContainerMetadata, "omegaconf.base"), (AnyNode, "omegaconf.nodes"),
                        (DictConfig, "omegaconf.dictconfig")):
        cls.__module__, cls.__qualname__ = module, cls.__name__
        setattr(mods[module], cls.__name__, cls)
    try:
        yield DictConfig
    finally:
        for n, m in saved.items():
            sys.modules.pop(n) if m is None else sys.modules.__setitem__(n, m)


def test_an_omegaconf_cfg_naming_ellipsis_loads_without_running_code(tmp_path: Path, omegaconf_like):
    cfg = omegaconf_like({"model": {"_name": "hubert", "encoder_layers": 2}, "task": {"normalize": True}},
                         element_type=typing.Tuple[int, ...])  # noqa: UP006 - as omegaconf stores it
    path = tmp_path / "hubert.pt"
    torch.save({"cfg": cfg, "model": {"w": torch.arange(3.0)}}, path)
    assert "builtins.Ellipsis" in checkpoints.pickle_globals(path)
    ckpt = load_torch_checkpoint(path)
    model_cfg, task_cfg = checkpoint_configs(ckpt)
    assert model_cfg == {"_name": "hubert", "encoder_layers": 2} and task_cfg == {"normalize": True}
    element_type = ckpt["cfg"].state["_metadata"].state["element_type"]  # getitem(Tuple, (int, ...)), inert
    assert element_type.qualified_name == "_operator.getitem" and element_type.args[1][1] is Ellipsis
    assert torch.equal(ckpt["model"]["w"], torch.arange(3.0))


class _GetattrCall:
    def __reduce__(self):
        return (builtins.getattr, (0, "real"))


def test_callables_beside_the_constants_stay_refused(tmp_path: Path):
    path = tmp_path / "evil.pt"
    torch.save({"shape": typing.Tuple[int, ...], "x": _GetattrCall()}, path)  # noqa: UP006
    with pytest.raises(CheckpointError, match=r"would call builtins\.getattr, which can run code"):
        load_torch_checkpoint(path)


# --------------------------------------------------------------------------- bounded work and memory


def _zip_checkpoint(path: Path, entries: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return path


def test_a_pickle_that_expands_hugely_is_refused_after_a_bounded_scan(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(checkpoints, "MAX_PICKLE_OPS", 20_000)
    # 100 000 operations (EMPTY_TUPLE, POP) deflate to a few hundred bytes
    stream = b"\x80\x02" + b")0" * 50_000 + b"N."
    zipped = _zip_checkpoint(tmp_path / "expands.pt", {"archive/data.pkl": stream})
    raw = tmp_path / "expands.pkl"
    raw.write_bytes(stream)
    assert zipped.stat().st_size < 2_000
    for path in (zipped, raw):
        start = time.perf_counter()
        with pytest.raises(CheckpointError) as err:
            load_torch_checkpoint(path)
        assert time.perf_counter() - start < 1.0
        message = str(err.value)
        assert "pickle holds more than 20,000 operations" in message and "nothing in it was run" in message
        _one_sentence(str(err.value))
    # a checkpoint of 200 tensors and a config needs a few thousand: it loads even under this low limit
    good = tmp_path / "good.pt"
    torch.save({"model": {f"layer{i}.weight": torch.ones(2) for i in range(200)},
                "args": argparse.Namespace(encoder_layers=12, conv_feature_layers="[(512, 10, 5)]")}, good)
    assert len(load_torch_checkpoint(good)["model"]) == 200


def test_a_zip_bomb_is_refused_from_its_declared_sizes_before_inflating(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(checkpoints, "MAX_INFLATED_BYTES", 2**20)
    path = _zip_checkpoint(tmp_path / "bomb.pt", {"archive/data.pkl": pickle.dumps({"a": 1}, protocol=2),
                                                  "archive/data/0": bytes(8 * 2**20)})
    inflated = []
    monkeypatch.setattr(zipfile.ZipFile, "open", lambda *a, **k: inflated.append(a) or pytest.fail("inflated"))
    with pytest.raises(CheckpointError) as err:
        load_torch_checkpoint(path)
    message = str(err.value)
    assert "its zip entries would inflate to 8 MiB from a 0.0 MiB file" in message
    assert "nothing in it was inflated or run" in message and not inflated
    _one_sentence(message)


# --------------------------------------------------------------------------- configs vs weights


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("model") / "hubert-tiny"
    save_model(HubertPlugin().build(HubertParams(preset="tiny"), seed=0), folder)
    return folder


def _copy_with_config(src: Path, dst: Path, edit) -> Path:
    dst.mkdir()
    (dst / "model.safetensors").write_bytes((src / "model.safetensors").read_bytes())
    meta = json.loads((src / "upstream.json").read_text())
    (dst / "upstream.json").write_text(json.dumps(edit(meta)))
    return dst


def _with(**fields):
    return lambda meta: {**meta, "config": {**meta["config"], **fields}}


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (_with(hidden_size=200_000, num_attention_heads=8),
         "of shape (96,) where its config implies (200000,); the weights and the config disagree"),
        (_with(num_hidden_layers=64, intermediate_size=65536), "lacks 976 weights a hubert model needs"),
        (_with(num_attention_heads=5), "holds a config that does not describe a hubert model"),
        (_with(hidden_size="wide"), "holds a config that does not describe a hubert model"),
        (lambda meta: {**meta, "config": "hidden_size=96"}, "holds a model config that is a str, not a mapping"),
        (lambda meta: [meta], "holds a JSON list, not an object with family and config"),
    ],
    ids=["hidden-200000", "64-layers-of-65536", "heads-not-dividing", "string-width", "config-a-string",
         "a-list"],
)
def test_a_config_that_does_not_fit_its_weights_is_refused_before_building(tiny_folder, tmp_path, edit, expected,
                                                                             monkeypatch):
    folder = _copy_with_config(tiny_folder, tmp_path / "bad", edit)
    built = []
    real_init = torch.nn.Linear.__init__
    monkeypatch.setattr(torch.nn.Linear, "__init__", lambda self, *a, **k: (
        built.append(k.get("device") or torch.get_default_device()), real_init(self, *a, **k))[1])
    with pytest.raises(CheckpointError) as err:
        HubertPlugin().build(HubertParams(checkpoint=folder), seed=0)
    assert expected in str(err.value)
    _one_sentence(str(err.value))
    assert all(device == torch.device("meta") for device in built)  # nothing built for real


def _hf_folder(tiny_folder: Path, dst: Path) -> Path:
    from harness.core.registry import default_manager
    from harness.models.model_io import load_model

    HubertPlugin().export(load_model(tiny_folder, default_manager()), "hf", dst)
    return dst


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda raw: [raw], "holds a JSON list, not an object of config fields"),
        (lambda raw: {**raw, "num_hidden_layers": "three"}, "holds a config that does not describe a hubert model"),
        (lambda raw: {**raw, "num_attention_heads": 7}, "holds a config that does not describe a hubert model"),
        (lambda raw: {**raw, "hidden_size": 200_000, "num_attention_heads": 8}, "where its config implies (200000,)"),
    ],
    ids=["a-list", "string-for-int", "heads-not-dividing", "absurd-width"],
)
def test_a_malformed_transformers_config_is_one_sentence_and_exit_2(tiny_folder, tmp_path, capsys, edit, expected):
    folder = _hf_folder(tiny_folder, tmp_path / "hf")
    raw = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps(edit(raw)))
    with pytest.raises(HarnessError) as err:
        HubertPlugin().build(HubertParams(checkpoint=folder), seed=0)
    assert expected in str(err.value)
    _one_sentence(str(err.value))
    audio_dir = tmp_path / "audio"
    audio_dir.mkdir()
    import numpy as np
    import soundfile as sf

    sf.write(audio_dir / "a.wav", np.zeros(8000, np.float32) + 0.1, 16000)
    earlier = tmp_path / "feats" / "earlier.npy"
    earlier.parent.mkdir()
    np.save(earlier, np.ones(3))
    code = main(["extract", "--upstream", "hubert", "--checkpoint", str(folder), "--audio-dir", str(audio_dir),
                 "--layer", "all", "--out", str(earlier.parent)])
    err_text = capsys.readouterr().err
    assert code == 2 and expected in err_text and "Traceback" not in err_text
    assert np.load(earlier).tolist() == [1, 1, 1]


@pytest.mark.parametrize(
    ("model_cfg", "expected"),
    [
        ({"encoder_layers": 64, "encoder_ffn_embed_dim": 65536}, "lacks 1041 weights a hubert model needs"),
        ({"encoder_embed_dim": 200_000, "encoder_attention_heads": 8}, "lacks 209 weights a hubert model needs"),
        ({"encoder_embed_dim": "wide"}, "holds a model config with a field of the wrong type"),
        ({"encoder_attention_heads": 7}, "embed_dim must be divisible by num_heads"),
    ],
    ids=["64-layers-of-65536", "hidden-200000", "string-width", "heads-not-dividing"],
)
def test_an_absurd_fairseq_config_is_refused_within_a_second(tmp_path, model_cfg, expected):
    path = tmp_path / "hubert.pt"
    torch.save({"cfg": {"model": {"_name": "hubert", **model_cfg}, "task": {}},
                "model": {"encoder.layer_norm.weight": torch.ones(768)}}, path)
    start = time.perf_counter()
    with pytest.raises(CheckpointError) as err:
        HubertPlugin().build(HubertParams(checkpoint=path), seed=0)
    assert time.perf_counter() - start < 1.0
    assert expected in str(err.value)
    _one_sentence(str(err.value))
